// Gateways: every gateway with its live request rate; one gateway's routes with weight
// sliders (two routes move together so the sum stays 100 %), conditions with their strength,
// sticky, virtual hosts, and per-route live numbers from the `stats` stream.
import { html, link, num, pct, ms, weightOf, useState, useRef } from '../lib.js';
import { api } from '../api.js';
import { useResource, useStats, history } from '../live.js';
import { Status, Title, Pager, Spark, useNotice } from './common.js';

/**
 * New weights after `route` is set to `value`: the others share what is left in proportion
 * to their weights (evenly when they had none), in whole percents summing to 100.
 */
export function rebalance(weights, route, value) {
  const others = Object.keys(weights).filter((r) => r !== route);
  const out = { ...weights, [route]: value };
  if (others.length === 0) return { [route]: 100 };
  const left = 100 - value;
  const had = others.reduce((s, r) => s + weights[r], 0);
  let given = 0;
  others.forEach((r, i) => {
    const share = i === others.length - 1
      ? left - given
      : Math.round(had > 0 ? (left * weights[r]) / had : left / others.length);
    out[r] = Math.max(0, Math.min(left - given, share));
    given += out[r];
  });
  return out;
}

function List() {
  const [page, setPage] = useState(1);
  const gateways = useResource('gateways', ['gateways'], { per_page: 30, page });
  const stats = useStats();
  const rate = (g) => stats && stats.routes.filter((r) => r.gateway === g).reduce((s, r) => s + r.rate, 0);
  return html`<${Title}>Gateways</${Title}>
  <${Status} resource=${gateways} what="gateways" />
  ${gateways.data && html`<table><thead><tr><th>name</th><th>port</th><th>routes</th><th>virtual hosts</th><th class="num">req/s</th></tr></thead>
    <tbody>${gateways.data.map((g) => html`<tr>
      <td><a href=${link('gateways', g.name)}>${g.name}</a></td><td>${g.port || '–'}</td>
      <td>${Object.keys(g.routes || {}).length}</td><td>${(g.virtual_hosts || []).join(', ')}</td>
      <td class="num">${stats ? num(rate(g.name)) : '–'}</td></tr>`)}</tbody></table>`}
  <${Pager} page=${page} setPage=${setPage} count=${(gateways.data || []).length} />`;
}

function Detail({ name }) {
  const gateway = useResource(`gateways/${name}`, [`gateways:${name}`, 'gateways']);
  const stats = useStats();
  const [draft, setDraft] = useState(null);
  const timer = useRef(null);
  const [notice, run] = useNotice();
  const g = gateway.data;
  if (!g) return html`<${Title}>Gateway ${name}</${Title}><${Status} resource=${gateway} what="the gateway" />`;
  const routes = Object.entries(g.routes || {});
  const stored = Object.fromEntries(routes.map(([r, v]) => [r, weightOf(v)]));
  const weights = draft || stored;
  // One PUT once the slider rests for 300 ms (arrow keys change it step by step), with the
  // weights it rests at; until then the stored ones do not overwrite the draft.
  const save = (next) => {
    clearTimeout(timer.current);
    timer.current = setTimeout(async () => {
      const body = { ...g, routes: Object.fromEntries(routes.map(([r, v]) => [r, { ...v, weight: `${next[r]}%` }])) };
      delete body.kind;
      const saved = await run(`weights ${routes.map(([r]) => `${next[r]} %`).join(' / ')}`, () => api('PUT', `gateways/${name}`, { body }));
      if (saved && saved.routes) gateway.set(saved);
      else gateway.reload();
      setDraft(null);
    }, 300);
  };
  const routeStats = (r) => stats && stats.routes.find((s) => s.gateway === name && s.route === r);
  return html`<${Title}>Gateway ${name}</${Title}>
  <dl class="facts">
    <dt>port</dt><dd>${g.port || 'none (shared virtual-host listener)'}</dd>
    <dt>virtual hosts</dt><dd>${(g.virtual_hosts || []).join(', ') || '–'}</dd>
    <dt>sticky</dt><dd>${g.sticky || 'no'}</dd>
  </dl>
  ${notice}
  <table class="routes"><thead><tr><th>route</th><th>weight</th><th>condition</th><th class="num">req/s</th>
    <th class="num">errors</th><th class="num">p50</th><th class="num">p99</th><th>last minute: req/s, p99</th></tr></thead>
  <tbody>${routes.map(([r, v]) => {
    const s = routeStats(r);
    const id = `w-${r.replace(/[^a-zA-Z0-9]/g, '-')}`;
    return html`<tr key=${r} data-route=${r}>
      <td data-label="route">${r}</td>
      <td class="weight" data-label="weight"><input id=${id} type="range" min="0" max="100" step="1" value=${weights[r]}
          aria-label=${`weight of ${r}`} disabled=${routes.length < 2}
          onInput=${(e) => setDraft(rebalance(weights, r, Number(e.target.value)))}
          onChange=${(e) => save(rebalance(weights, r, Number(e.target.value)))} />
        <output for=${id} class="num">${weights[r]} %</output></td>
      <td data-label="condition">${v.condition ? html`<code>${v.condition.condition || v.condition}</code> <span class="muted">strength ${v.condition_strength}</span>` : '–'}</td>
      <td class="num" data-label="req/s">${s ? num(s.rate) : stats ? '0' : '–'}</td><td class="num" data-label="errors">${s ? pct(s.error_ratio) : '–'}</td>
      <td class="num" data-label="p50">${s ? ms(s.p50_ms) : '–'}</td><td class="num" data-label="p99">${s ? ms(s.p99_ms) : '–'}</td>
      <td data-label="last minute"><div class="charts"><${Spark} values=${(history.get(`${name}\n${r}`) || []).map((x) => x.rate)} label=${`requests per second of ${r}, last minute`} />
        <${Spark} values=${(history.get(`${name}\n${r}`) || []).map((x) => x.p99_ms || 0)} label=${`p99 latency of ${r}, last minute`} tone="latency" /></div></td>
    </tr>`;
  })}</tbody></table>`;
}

export function Gateways({ path }) {
  return path.length ? html`<${Detail} name=${path.join('/')} />` : html`<${List} />`;
}
