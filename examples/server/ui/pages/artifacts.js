// Breeds, blueprints and the other stored artifacts: list and search, revisions, and a
// YAML editor that validates on the server and shows an error at its line; blueprints can
// be deployed as a new deployment or merged into one.
import { html, link, useState, useEffect, useRef, messageOf } from '../lib.js';
import { api, ApiError } from '../api.js';
import { useResource } from '../live.js';
import { Status, Title, Pager, Code, useNotice } from './common.js';

export const KINDS = ['breeds', 'blueprints', 'scales', 'slas', 'escalations', 'routes', 'conditions', 'rewrites', 'templates', 'workflows'];

const TEMPLATE = {
  breeds: 'name: my-service:1.0.0\ndeployable:\n  type: command\n  definition: my-service --port $PORT\nports:\n  web: 8080/http\n',
  blueprints: 'name: my-blueprint\nclusters:\n  my-cluster:\n    services:\n      - breed: my-service:1.0.0\n',
};

function KindNav({ kind }) {
  return html`<nav class="kinds" aria-label="artifact kinds">${KINDS.map((k) => html`<a href=${link('artifacts', k)}
    aria-current=${k === kind ? 'page' : undefined}>${k}</a>`)}</nav>`;
}

function List({ kind }) {
  const [page, setPage] = useState(1);
  const [search, setSearch] = useState('');
  const list = useResource(kind, [kind], { per_page: 30, page });
  const shown = (list.data || []).filter((a) => a.name.toLowerCase().includes(search.toLowerCase()));
  return html`<${Title} actions=${html`<a class="button" href=${link('artifacts', kind, '+new')}>New</a>`}>Artifacts</${Title}>
  <${KindNav} kind=${kind} />
  <div class="filter" role="search"><label for="search">Search ${kind}</label>
    <input id="search" type="search" value=${search} onInput=${(e) => setSearch(e.target.value)} /></div>
  <${Status} resource=${list} what=${kind} />
  ${list.data && html`<ul class="artifacts">${shown.map((a) => html`<li><a href=${link('artifacts', kind, a.name)}>${a.name}</a></li>`)}</ul>
    ${shown.length === 0 && html`<p class="muted">No ${kind}${search ? ` matching “${search}”` : ''}.</p>`}`}
  <${Pager} page=${page} setPage=${setPage} count=${(list.data || []).length} />`;
}

/** A text area with line numbers; the line of `error` is marked and its message shown. */
export function Editor({ value, onInput, error }) {
  const area = useRef(null);
  const gutter = useRef(null);
  const lines = value.split('\n').length;
  useEffect(() => {
    if (!error || !error.line || !area.current) return;
    const start = value.split('\n').slice(0, error.line - 1).join('\n').length + (error.line > 1 ? 1 : 0);
    area.current.focus();
    area.current.setSelectionRange(start, start);
  }, [error]);
  return html`<div class="editor">
    <div class="gutter" ref=${gutter} aria-hidden="true">${Array.from({ length: lines }, (_, i) => html`<div
      class=${error && error.line === i + 1 ? 'bad' : ''}>${i + 1}</div>`)}</div>
    <textarea ref=${area} spellcheck="false" aria-label="definition (YAML or JSON)" value=${value}
      onInput=${(e) => onInput(e.target.value)}
      onScroll=${(e) => { gutter.current.scrollTop = e.target.scrollTop; }}></textarea>
  </div>
  ${error && html`<p class="error editor-error" role="alert" data-line=${error.line || ''}>${error.line ? `line ${error.line}${error.column ? `, column ${error.column}` : ''}: ` : ''}${error.message}</p>`}`;
}

function Deploy({ name, run }) {
  const deployments = useResource('deployments', ['deployments'], { per_page: 30 });
  const [target, setTarget] = useState(name);
  const [merge, setMerge] = useState('');
  const send = (to, what) => run(`${what} ${to}`, async () => {
    const blueprint = await api('GET', `blueprints/${name}`);
    delete blueprint.kind;
    await api('PUT', `deployments/${to}`, { body: blueprint });
    location.hash = link('deployments', to);
  });
  return html`<section class="deploy"><h2>Deploy</h2>
    <form onSubmit=${(e) => { e.preventDefault(); send(target, 'deploy as'); }}>
      <label for="deploy-as">Deploy as</label><input id="deploy-as" value=${target} onInput=${(e) => setTarget(e.target.value)} required />
      <button type="submit">Deploy</button></form>
    <form onSubmit=${(e) => { e.preventDefault(); merge && send(merge, 'merge to'); }}>
      <label for="merge-to">Merge to</label><select id="merge-to" value=${merge} onChange=${(e) => setMerge(e.target.value)}>
        <option value="">choose a deployment</option>
        ${(deployments.data || []).map((d) => html`<option value=${d.name}>${d.name}</option>`)}</select>
      <button type="submit" disabled=${!merge}>Merge</button></form>
  </section>`;
}

function Revisions({ kind, name }) {
  const revisions = useResource(`${kind}/${name}/revisions`, [`${kind}:${name}`]);
  const [open, setOpen] = useState(null);
  return html`<section><h2>Revisions</h2><${Status} resource=${revisions} what="the revisions" />
    ${revisions.data && html`<ol class="revisions" reversed>${[...revisions.data].reverse().map((r) => html`<li>
      <button class="link" onClick=${() => setOpen(open === r.revision ? null : r.revision)}>revision ${r.revision}</button>
      <span class="muted">${r.at}${r.deleted ? ' (deleted)' : ''}</span>
      ${open === r.revision && r.value && html`<${Code} value=${r.value} />`}</li>`)}</ol>`}</section>`;
}

function Detail({ kind, name }) {
  const isNew = name === '+new';
  const [text, setText] = useState(isNew ? TEMPLATE[kind] || 'name: \n' : null);
  const [error, setError] = useState(null);
  const [loadError, setLoadError] = useState(null);
  const [notice, run, setNotice] = useNotice();
  useEffect(() => {
    if (isNew) return;
    api('GET', `${kind}/${name}`, { accept: 'yaml' }).then(setText, setLoadError);
  }, [kind, name]);
  const send = async (validateOnly) => {
    setError(null);
    const query = validateOnly ? { validate_only: true } : {};
    try {
      if (isNew) await api('POST', kind, { yaml: text, query });
      else await api('PUT', `${kind}/${name}`, { yaml: text, query });
      setNotice({ text: validateOnly ? 'valid' : 'saved' });
    } catch (e) {
      setNotice(null);
      // The server's structured error names the line and column; its message then needs no
      // second "line N" prefix.
      const d = e instanceof ApiError && e.detail && e.detail.line ? e.detail : null;
      setError(d
        ? { message: `${d.path ? `${d.path}: ` : ''}${d.message}${d.hint ? ` (hint: ${d.hint})` : ''}`, line: d.line, column: d.column }
        : { message: messageOf(e) });
    }
  };
  const remove = () => confirm(`Delete ${kind}/${name}?`) && run('delete', async () => {
    await api('DELETE', `${kind}/${name}`);
    location.hash = link('artifacts', kind);
  });
  return html`<${Title} actions=${html`<button onClick=${() => send(true)}>Validate</button>
    <button onClick=${() => send(false)} class="primary">Save</button>
    ${!isNew && html`<button class="danger" onClick=${remove}>Delete</button>`}`}>${isNew ? `New in ${kind}` : `${kind}/${name}`}</${Title}>
  <${KindNav} kind=${kind} />
  ${notice}
  ${loadError && html`<p class="error" role="alert">Could not read ${kind}/${name}: ${messageOf(loadError)}</p>`}
  ${text !== null && html`<${Editor} value=${text} onInput=${setText} error=${error} />`}
  ${kind === 'blueprints' && !isNew && html`<${Deploy} name=${name} run=${run} />`}
  ${!isNew && html`<${Revisions} kind=${kind} name=${name} />`}`;
}

export function Artifacts({ path }) {
  const [kind = 'breeds', ...rest] = path;
  return rest.length ? html`<${Detail} kind=${kind} name=${rest.join('/')} />` : html`<${List} kind=${kind} />`;
}
