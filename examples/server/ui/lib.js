// The UI's small toolkit: Preact with htm (vendored, scripts/ui-vendor.sh), formatting, and
// the hash router. No build step: every file here is served as it is.
import { h, render } from './vendor/preact.mjs';
import htm from './vendor/htm.mjs';

export { render };
export { useState, useEffect, useRef, useMemo, useCallback } from './vendor/hooks.mjs';

/** Tagged templates for Preact elements. */
export const html = htm.bind(h);

/** `#/gateways/a%2Fb` → `['gateways', 'a/b']`. */
export function routeOf(hash) {
  const path = (hash || '').replace(/^#\/?/, '');
  return path === '' ? [] : path.split('/').map(decodeURIComponent);
}

/** A hash link to a page: `link('gateways', 'a/b')` → `#/gateways/a%2Fb`. */
export function link(...parts) {
  return '#/' + parts.map(encodeURIComponent).join('/');
}

/** A number with at most `digits` decimals, '–' when absent. */
export function num(v, digits = 1) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  return Number(v).toLocaleString('en', { maximumFractionDigits: digits });
}

/** A ratio 0–1 as a percentage. */
export function pct(v, digits = 1) {
  return v === null || v === undefined ? '–' : `${num(v * 100, digits)} %`;
}

/** Milliseconds, e.g. `1.2 ms`. */
export function ms(v) {
  return v === null || v === undefined ? '–' : `${num(v, v < 10 ? 2 : 0)} ms`;
}

/** How long ago an ISO time was, e.g. `5 s ago`. */
export function ago(iso) {
  if (!iso) return '–';
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** A weight as a number of percent: `"90%"` → 90. */
export function weightOf(route) {
  const w = route && route.weight;
  if (w === undefined || w === null) return 0;
  return Number(String(w).replace('%', '')) || 0;
}

/** The message of an error thrown by the API client (or any error). */
export function messageOf(e) {
  return (e && e.message) || String(e);
}
