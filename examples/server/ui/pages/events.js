// Events: the stored events with tag filters, and new ones as they arrive.
import { html, ago, useState } from '../lib.js';
import { useResource, useStream } from '../live.js';
import { Status, Title, Pager } from './common.js';

/** One event as a table row. */
export function EventRow({ event }) {
  const value = event.value && typeof event.value === 'object' && event.value.text
    ? event.value.text
    : JSON.stringify(event.value);
  return html`<tr>
    <td class="when" title=${event.timestamp}>${ago(event.timestamp)}</td>
    <td>${event.type}</td>
    <td class="tags">${(event.tags || []).map((t) => html`<span class="tag">${t}</span> `)}</td>
    <td class="value">${value && value.length > 240 ? value.slice(0, 240) + '…' : value}</td>
  </tr>`;
}

/** Whether `event` carries every tag of `tags` (the API's rule). */
const carries = (event, tags) => tags.every((t) => (event.tags || []).includes(t));

export function Events() {
  const [text, setText] = useState('');
  const [tags, setTags] = useState([]);
  const [page, setPage] = useState(1);
  const [live, setLive] = useState([]);
  const stored = useResource('events', [], { tag: tags, per_page: 30, page });
  useStream((type, data) => {
    if (type === 'stats' || type === 'workflow-log' || type === 'connection' || !data.tags) return;
    if (page === 1 && carries(data, tags)) setLive((l) => [data, ...l].slice(0, 100));
  });
  const apply = (e) => {
    e.preventDefault();
    setTags(text.split(',').map((t) => t.trim()).filter(Boolean));
    setLive([]);
    setPage(1);
  };
  const rows = [...live, ...(stored.data || [])].filter(
    (e, i, all) => all.findIndex((o) => o.id === e.id) === i,
  );
  return html`<${Title}>Events</${Title}>
  <form class="filter" onSubmit=${apply} role="search">
    <label for="tags">Tags (all of them, comma-separated)</label>
    <input id="tags" value=${text} onInput=${(e) => setText(e.target.value)} placeholder="deployments, rollouts:shop" />
    <button type="submit">Filter</button>
  </form>
  <${Status} resource=${stored} what="events" />
  <table class="events"><thead><tr><th>when</th><th>type</th><th>tags</th><th>value</th></tr></thead>
    <tbody>${rows.map((e) => html`<${EventRow} key=${e.id} event=${e} />`)}</tbody></table>
  <${Pager} page=${page} setPage=${(p) => { setLive([]); setPage(p); }} count=${(stored.data || []).length} />`;
}
