// Workflows: status, schedule, the last executions and their logs; suspend / restart.
import { html, link, ago } from '../lib.js';
import { api } from '../api.js';
import { useResource } from '../live.js';
import { Status, Title, Pager, useNotice } from './common.js';
import { useState } from '../lib.js';

function schedule(w) {
  const s = w.schedule;
  if (!s) return '–';
  if (typeof s === 'string') return s;
  if (s.event) return `event ${[].concat(s.event.tags || []).join(', ')}`;
  if (s.time) return `time ${s.time.period || ''}`;
  return JSON.stringify(s);
}

function List() {
  const [page, setPage] = useState(1);
  const workflows = useResource('workflows', ['workflows'], { per_page: 30, page });
  return html`<${Title}>Workflows</${Title}>
  <${Status} resource=${workflows} what="workflows" />
  ${workflows.data && html`<table><thead><tr><th>name</th><th>breed</th><th>schedule</th><th>status</th></tr></thead>
    <tbody>${workflows.data.map((w) => html`<tr><td><a href=${link('workflows', w.name)}>${w.name}</a></td>
      <td>${(w.breed && w.breed.name) || w.breed}</td><td>${schedule(w)}</td><td>${w.status}</td></tr>`)}</tbody></table>`}
  <${Pager} page=${page} setPage=${setPage} count=${(workflows.data || []).length} />`;
}

function Execution({ run }) {
  return html`<details class="execution">
    <summary><span class=${`verdict ${run.status === 'succeeded' ? 'pass' : run.status === 'failed' ? 'fail' : ''}`}>${run.status}</span>
      run ${run.id}, started ${ago(run.started)}${run.exit_status !== undefined && run.exit_status !== null ? `, exit ${run.exit_status}` : ''}</summary>
    <pre class="code">${(run.log || []).map((l) => `${l.stderr ? '! ' : ''}${l.text}`).join('\n') || '(no output)'}</pre>
  </details>`;
}

function Detail({ name }) {
  const workflow = useResource(`workflows/${name}`, [`workflows:${name}`]);
  const executions = useResource(`workflows/${name}/executions`, [`workflows:${name}`]);
  const [notice, run] = useNotice();
  const w = workflow.data;
  const setStatus = (status) => run(status, async () => {
    await api('PUT', `workflows/${name}/status`, { body: status });
    workflow.reload();
  });
  const runs = executions.data ? [...(executions.data.last || [])].reverse() : [];
  return html`<${Title} actions=${html`<button onClick=${() => setStatus('suspended')}>suspend</button>
    <button onClick=${() => setStatus('restarting')}>restart</button>
    <a class="button" href=${link('artifacts', 'workflows', name)}>edit</a>`}>Workflow ${name}</${Title}>
  ${notice}
  <${Status} resource=${workflow} what="the workflow" />
  ${w && html`<dl class="facts"><dt>status</dt><dd data-status=${w.status}>${w.status}</dd>
    <dt>schedule</dt><dd>${schedule(w)}</dd><dt>breed</dt><dd>${(w.breed && w.breed.name) || w.breed}</dd>
    ${executions.data && html`<dt>runs</dt><dd>${executions.data.succeeded_total} succeeded, ${executions.data.failed_total} failed,
      ${executions.data.dropped_events} events dropped</dd>`}</dl>`}
  <h2>Last executions</h2>
  <${Status} resource=${executions} what="the executions" />
  ${runs.map((r) => html`<${Execution} key=${r.id} run=${r} />`)}`;
}

export function Workflows({ path }) {
  return path.length ? html`<${Detail} name=${path.join('/')} />` : html`<${List} />`;
}
