// Pieces every page uses.
import { html, messageOf, useState } from '../lib.js';

/** What a resource shows while it loads or when it failed. */
export function Status({ resource, what }) {
  if (resource.error && !resource.data) {
    return html`<p class="error" role="alert">Could not read ${what}: ${messageOf(resource.error)}</p>`;
  }
  if (resource.loading && !resource.data) return html`<p class="loading">Loading ${what}…</p>`;
  return null;
}

/** A page title with optional actions on its right. */
export function Title({ children, actions }) {
  return html`<div class="title"><h1>${children}</h1>${actions && html`<div class="actions">${actions}</div>`}</div>`;
}

/** The outcome of the last action on a page: a message, or an error in red. */
export function useNotice() {
  const [notice, setNotice] = useState(null);
  const show = html`<p class=${notice && notice.error ? 'error notice' : 'notice'} role="status"
    aria-live="polite">${notice ? notice.text : ''}</p>`;
  const run = async (what, fn) => {
    try {
      const out = await fn();
      setNotice({ text: `${what}: done` });
      return out;
    } catch (e) {
      setNotice({ text: `${what}: ${messageOf(e)}`, error: true });
      return undefined;
    }
  };
  return [show, run, setNotice];
}

/** Previous/next for a paged list (`per_page` 30, the API's most). */
export function Pager({ page, setPage, count, perPage = 30 }) {
  if (page === 1 && count < perPage) return null;
  return html`<div class="pager">
    <button disabled=${page <= 1} onClick=${() => setPage(page - 1)}>Previous</button>
    <span>page ${page}</span>
    <button disabled=${count < perPage} onClick=${() => setPage(page + 1)}>Next</button>
  </div>`;
}

/** A small line chart of `values` (the last minute of one number), fixed size. */
export function Spark({ values, label, max, tone }) {
  const w = 120;
  const hgt = 28;
  const top = Math.max(max || 0, ...values, 1e-9);
  const points = values
    .map((v, i) => `${((i / Math.max(values.length - 1, 1)) * w).toFixed(1)},${(hgt - (v / top) * (hgt - 2) - 1).toFixed(1)}`)
    .join(' ');
  return html`<svg class=${`spark ${tone || ''}`} viewBox="0 0 ${w} ${hgt}" width=${w} height=${hgt} role="img" aria-label=${label}>
    <polyline points=${points} fill="none" stroke="currentColor" stroke-width="1.5" />
  </svg>`;
}

/** JSON or text in a scrollable block. */
export function Code({ value }) {
  return html`<pre class="code">${typeof value === 'string' ? value : JSON.stringify(value, null, 2)}</pre>`;
}
