// Rollouts: each one's steps as a progress bar, its weights, every analysis interval's
// numbers and verdict, and promote / abort / pause / resume / retry.
import { html, link, ago, pct, ms } from '../lib.js';
import { api } from '../api.js';
import { useResource } from '../live.js';
import { Status, Title, useNotice } from './common.js';

const COMMANDS = ['promote', 'pause', 'resume', 'abort', 'retry'];

function stepName(step) {
  if (step.weight !== undefined) return `weight ${step.weight}`;
  if (step.analysis !== undefined) return 'analysis';
  if (step.pause !== undefined) return `pause ${step.pause.duration || ''}`.trim();
  return Object.keys(step)[0] || 'step';
}

/** The steps as a bar: done, current, to come. */
function Steps({ rollout }) {
  const status = rollout.status || {};
  const at = status.step || 0;
  const finished = ['Succeeded', 'Promoted'].includes(status.phase);
  const steps = rollout.steps || [];
  return html`<ol class="steps" aria-label="steps">${steps.map((s, i) => {
    const state = finished || i < at ? 'done' : i === at ? 'current' : 'todo';
    return html`<li class=${state} aria-current=${state === 'current' ? 'step' : undefined}>${stepName(s)}</li>`;
  })}</ol>`;
}

function List() {
  const rollouts = useResource('rollouts', ['rollouts']);
  return html`<${Title}>Rollouts</${Title}>
  <${Status} resource=${rollouts} what="rollouts" />
  ${rollouts.data && (rollouts.data.length === 0
    ? html`<p class="muted">No rollouts. <code>vamp-server --demo --demo-rollout</code> starts one.</p>`
    : html`<table><thead><tr><th>name</th><th>gateway</th><th>phase</th><th>weights (stable / canary)</th><th>steps</th></tr></thead>
      <tbody>${rollouts.data.map((r) => html`<tr>
        <td><a href=${link('rollouts', r.name)}>${r.name}</a></td><td>${r.gateway}</td>
        <td><span class=${`phase ${(r.status && r.status.phase) || ''}`}>${(r.status && r.status.phase) || 'new'}</span></td>
        <td class="num">${r.status && r.status.weights ? `${r.status.weights.stable} / ${r.status.weights.canary}` : '–'}</td>
        <td><${Steps} rollout=${r} /></td></tr>`)}</tbody></table>`)}`;
}

function Detail({ name }) {
  const rollout = useResource(`rollouts/${name}`, [`rollouts:${name}`]);
  const [notice, run] = useNotice();
  const r = rollout.data;
  if (!r) return html`<${Title}>Rollout ${name}</${Title}><${Status} resource=${rollout} what="the rollout" />`;
  const status = r.status || {};
  const command = (c) => run(c, async () => {
    await api('POST', `rollouts/${name}/${c}`);
    rollout.reload();
  });
  const intervals = [...(status.intervals || [])].reverse();
  return html`<${Title} actions=${COMMANDS.map((c) => html`<button onClick=${() => command(c)} data-command=${c}>${c}</button>`)}>
    Rollout ${name}</${Title}>
  ${notice}
  <dl class="facts">
    <dt>phase</dt><dd><span class=${`phase ${status.phase || ''}`} data-phase=${status.phase}>${status.phase || 'new'}</span>
      ${status.message ? html` <span class="muted">${status.message}</span>` : ''}</dd>
    <dt>gateway</dt><dd><a href=${link('gateways', r.gateway)}>${r.gateway}</a></dd>
    <dt>stable</dt><dd>${r.stable} <b class="num">${status.weights ? status.weights.stable : '–'} %</b></dd>
    <dt>canary</dt><dd>${r.canary} <b class="num">${status.weights ? status.weights.canary : '–'} %</b></dd>
    <dt>verdicts</dt><dd>${status.verdicts ? Object.entries(status.verdicts).map(([k, v]) => `${k} ${v}`).join(', ') : '–'}</dd>
    <dt>updated</dt><dd>${ago(status.updated)}</dd>
  </dl>
  <${Steps} rollout=${r} />
  <h2>Analysis intervals</h2>
  ${intervals.length === 0 ? html`<p class="muted">No interval judged yet.</p>` : html`<table class="intervals">
    <thead><tr><th>when</th><th>step</th><th class="num">canary requests</th><th class="num">canary errors</th>
      <th class="num">stable requests</th><th>verdict</th><th>checks</th></tr></thead>
    <tbody>${intervals.map((i) => html`<tr>
      <td>${ago(i.at)}</td><td>${i.step + 1}</td>
      <td class="num">${i.canary.requests}</td><td class="num">${i.canary.errors}</td><td class="num">${i.stable.requests}</td>
      <td><span class=${`verdict ${i.verdict}`}>${i.verdict}</span></td>
      <td>${(i.checks || []).map((c) => html`<div class=${`check ${c.verdict}`}>${c.metric}: ${c.metric.startsWith('latency')
        ? `${ms(c.canary)} (stable ${ms(c.stable)})` : c.metric.includes('rate') ? `${pct(c.canary, 2)} (stable ${pct(c.stable, 2)})` : `${c.canary}`} — ${c.verdict}</div>`)}</td>
    </tr>`)}</tbody></table>`}`;
}

export function Rollouts({ path }) {
  return path.length ? html`<${Detail} name=${path.join('/')} />` : html`<${List} />`;
}
