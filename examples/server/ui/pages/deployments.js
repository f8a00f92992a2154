// Deployments: clusters → services → instances, status, a scale editor, export as a
// blueprint, undeploy.
import { html, link, useState } from '../lib.js';
import { api } from '../api.js';
import { useResource } from '../live.js';
import { Status, Title, Pager, Code, useNotice } from './common.js';

function List() {
  const [page, setPage] = useState(1);
  const deployments = useResource('deployments', ['deployments'], { per_page: 30, page });
  return html`<${Title}>Deployments</${Title}>
  <${Status} resource=${deployments} what="deployments" />
  ${deployments.data && (deployments.data.length === 0
    ? html`<p class="muted">Nothing deployed. Deploy a blueprint from <a href="#/artifacts/blueprints">Artifacts</a>.</p>`
    : html`<table><thead><tr><th>name</th><th>clusters</th><th>services</th><th>instances</th></tr></thead>
    <tbody>${deployments.data.map((d) => {
      const services = Object.values(d.clusters || {}).flatMap((c) => c.services || []);
      return html`<tr><td><a href=${link('deployments', d.name)}>${d.name}</a></td>
        <td>${Object.keys(d.clusters || {}).join(', ')}</td><td>${services.length}</td>
        <td>${services.reduce((s, x) => s + (x.instances || []).length, 0)}</td></tr>`;
    })}</tbody></table>`)}
  <${Pager} page=${page} setPage=${setPage} count=${(deployments.data || []).length} />`;
}

function Scale({ deployment, cluster, service, run }) {
  const scale = service.scale || {};
  const [value, setValue] = useState(null);
  const v = value || { cpu: scale.cpu, memory: scale.memory, instances: scale.instances };
  const id = `${cluster}-${service.breed.name}`.replace(/[^a-zA-Z0-9]/g, '-');
  const save = (e) => {
    e.preventDefault();
    run(`scale ${service.breed.name}`, async () => {
      await api('PUT', `deployments/${deployment}/clusters/${cluster}/services/${service.breed.name}/scale`, {
        body: { cpu: Number(v.cpu), memory: v.memory, instances: Number(v.instances) },
      });
      setValue(null);
    });
  };
  const field = (key, type) => html`<label>${key}<input id=${`${id}-${key}`} type=${type} value=${v[key]} size="6"
    min=${type === 'number' ? 0 : undefined} step=${key === 'cpu' ? 0.1 : 1}
    onInput=${(e) => setValue({ ...v, [key]: e.target.value })} /></label>`;
  return html`<form class="scale" onSubmit=${save} aria-label=${`scale of ${service.breed.name}`}>
    ${field('instances', 'number')} ${field('cpu', 'number')} ${field('memory', 'text')}
    <button type="submit" disabled=${value === null}>Scale</button></form>`;
}

function Detail({ name }) {
  const deployment = useResource(`deployments/${name}`, [`deployments:${name}`]);
  const [notice, run] = useNotice();
  const [exported, setExported] = useState(null);
  const d = deployment.data;
  const exportIt = () => run('export', async () => setExported(await api('GET', `deployments/${name}`, { query: { as_blueprint: true }, accept: 'yaml' })));
  const undeploy = () => {
    if (!confirm(`Undeploy ${name}? Its services stop.`)) return;
    run('undeploy', async () => {
      const blueprint = await api('GET', `deployments/${name}`, { query: { as_blueprint: true } });
      await api('DELETE', `deployments/${name}`, { body: blueprint });
      location.hash = '#/deployments';
    });
  };
  return html`<${Title} actions=${html`<button onClick=${exportIt}>Export as blueprint</button>
    <button class="danger" onClick=${undeploy}>Undeploy</button>`}>Deployment ${name}</${Title}>
  ${notice}
  <${Status} resource=${deployment} what="the deployment" />
  ${exported && html`<section><h2>As a blueprint</h2><${Code} value=${exported} /></section>`}
  ${d && Object.entries(d.clusters || {}).map(([cluster, c]) => html`<section class="cluster">
    <h2>Cluster ${cluster}</h2>
    ${(c.services || []).map((s) => html`<article class="service">
      <h3>${s.breed.name} <span class=${`phase ${s.status && s.status.phase && s.status.phase.name}`}>
        ${s.status ? `${s.status.intention} ${s.status.phase && s.status.phase.name}` : ''}</span></h3>
      ${s.status && s.status.phase && s.status.phase.message && html`<p class="error">${s.status.phase.message}</p>`}
      <p class="muted">health: ${s.health ? `${s.health.healthy} healthy, ${s.health.unhealthy} unhealthy, ${s.health.staged} staged` : '–'}</p>
      <${Scale} deployment=${name} cluster=${cluster} service=${s} run=${run} />
      <table class="instances"><thead><tr><th>instance</th><th>host</th><th>ports</th><th>deployed</th></tr></thead>
        <tbody>${(s.instances || []).map((i) => html`<tr><td>${i.name}</td><td>${i.host}</td>
          <td>${Object.entries(i.ports || {}).map(([p, n]) => `${p} ${n}`).join(', ')}</td><td>${i.deployed ? 'yes' : 'no'}</td></tr>`)}</tbody></table>
    </article>`)}
    ${c.gateways && Object.keys(c.gateways).length > 0 && html`<p>Gateways: ${Object.keys(c.gateways).map((p) => html`<a href=${link('gateways', `${name}/${cluster}/${p}`)}>${p}</a> `)}</p>`}
  </section>`)}`;
}

export function Deployments({ path }) {
  return path.length ? html`<${Detail} name=${path.join('/')} />` : html`<${List} />`;
}
