// Dashboard: deployments, gateways, rollouts and workflows at a glance, and recent events.
import { html, link, useState } from '../lib.js';
import { useResource, useStream, useStats } from '../live.js';
import { Status, Title } from './common.js';
import { EventRow } from './events.js';

function Card({ title, href, resource, children }) {
  return html`<section class="card">
    <h2><a href=${href}>${title}</a></h2>
    <${Status} resource=${resource} what=${title.toLowerCase()} />
    ${resource.data && children(resource.data)}
  </section>`;
}

export function Dashboard() {
  const deployments = useResource('deployments', ['deployments'], { per_page: 30 });
  const gateways = useResource('gateways', ['gateways'], { per_page: 30 });
  const rollouts = useResource('rollouts', ['rollouts']);
  const workflows = useResource('workflows', ['workflows'], { per_page: 30 });
  const recent = useResource('events', [], { per_page: 10 });
  const [live, setLive] = useState([]);
  useStream((type, data) => {
    if (type !== 'stats' && type !== 'workflow-log' && type !== 'connection' && data.tags) {
      setLive((l) => [data, ...l].slice(0, 10));
    }
  });
  const stats = useStats();
  const rateOf = (g) => (stats ? stats.routes.filter((r) => r.gateway === g).reduce((s, r) => s + r.rate, 0) : null);
  const events = [...live, ...(recent.data || [])]
    .filter((e, i, all) => all.findIndex((o) => o.id === e.id) === i)
    .slice(0, 10);
  return html`<${Title}>Dashboard</${Title}>
  <div class="cards">
    <${Card} title="Deployments" href="#/deployments" resource=${deployments}>${(list) => html`
      <p class="big">${list.length}</p>
      <ul>${list.map((d) => {
        const services = Object.values(d.clusters || {}).flatMap((c) => c.services || []);
        const healthy = services.reduce((s, x) => s + ((x.health && x.health.healthy) || 0), 0);
        const instances = services.reduce((s, x) => s + ((x.instances || []).length), 0);
        return html`<li><a href=${link('deployments', d.name)}>${d.name}</a>
          <span class="muted">${services.length} services, ${healthy}/${instances} healthy</span></li>`;
      })}</ul>`}</${Card}>
    <${Card} title="Gateways" href="#/gateways" resource=${gateways}>${(list) => html`
      <p class="big">${list.length}</p>
      <ul>${list.slice(0, 8).map((g) => html`<li><a href=${link('gateways', g.name)}>${g.name}</a>
        <span class="muted num">${rateOf(g.name) === null ? '' : `${rateOf(g.name).toFixed(1)} req/s`}</span></li>`)}</ul>`}</${Card}>
    <${Card} title="Rollouts" href="#/rollouts" resource=${rollouts}>${(list) => html`
      <p class="big">${list.length}</p>
      <ul>${list.map((r) => html`<li><a href=${link('rollouts', r.name)}>${r.name}</a>
        <span class=${`phase ${(r.status && r.status.phase) || ''}`}>${(r.status && r.status.phase) || 'new'}</span></li>`)}</ul>`}</${Card}>
    <${Card} title="Workflows" href="#/workflows" resource=${workflows}>${(list) => html`
      <p class="big">${list.length}</p>
      <ul>${list.map((w) => html`<li><a href=${link('workflows', w.name)}>${w.name}</a>
        <span class="muted">${w.status}</span></li>`)}</ul>`}</${Card}>
  </div>
  <section>
    <h2><a href="#/events">Recent events</a></h2>
    <${Status} resource=${recent} what="events" />
    <table class="events"><thead><tr><th>when</th><th>type</th><th>tags</th><th>value</th></tr></thead>
      <tbody>${events.map((e) => html`<${EventRow} key=${e.id} event=${e} />`)}</tbody></table>
  </section>`;
}
