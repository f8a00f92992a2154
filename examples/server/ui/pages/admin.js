// Admin: what the server runs on, its configuration, its router, and the HAProxy
// configuration it renders when HAProxy routes.
import { html } from '../lib.js';
import { useResource } from '../live.js';
import { Status, Title, Code } from './common.js';

function Haproxy() {
  const haproxy = useResource('haproxy/configuration', ['gateways']);
  return html`<${Status} resource=${haproxy} what="the HAProxy configuration" />
    ${haproxy.data && html`<${Code} value=${haproxy.data.configuration} />`}`;
}

export function Admin() {
  const info = useResource('info');
  const config = useResource('config');
  const router = info.data && info.data.gateway_driver && info.data.gateway_driver.type;
  return html`<${Title}>Admin</${Title}>
  <section><h2>Server</h2><${Status} resource=${info} what="the server's information" />
    ${info.data && html`<dl class="facts">
      <dt>version</dt><dd>${info.data.version}</dd>
      <dt>running since</dt><dd>${info.data.running_since} (${info.data.uptime})</dd>
      <dt>persistence</dt><dd>${info.data.persistence && info.data.persistence.type}</dd>
      <dt>key-value store</dt><dd>${info.data.key_value && info.data.key_value.type}</dd>
      <dt>container driver</dt><dd>${info.data.container_driver && info.data.container_driver.type}</dd>
      <dt>router</dt><dd>${info.data.gateway_driver && info.data.gateway_driver.type}</dd>
    </dl><details><summary>all of /info</summary><${Code} value=${info.data} /></details>`}
  </section>
  <section><h2>Configuration</h2><${Status} resource=${config} what="the configuration" />
    ${config.data && html`<${Code} value=${config.data} />`}</section>
  ${router && html`<section><h2>HAProxy configuration</h2>
    ${router.startsWith('haproxy') ? html`<${Haproxy} />`
      : html`<p class="muted">The router is <code>${router}</code>: no HAProxy configuration.</p>`}
  </section>`}`;
}
