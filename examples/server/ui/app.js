// The web UI (issue 23; spec §7.1): a shell with the navigation, the hash router, the
// sign-in form, and the pages in ./pages/.
import { html, render, useState, useEffect, routeOf } from './lib.js';
import { token, setToken, get, ApiError } from './api.js';
import { connect, disconnect, useStream } from './live.js';
import { Dashboard } from './pages/dashboard.js';
import { Deployments } from './pages/deployments.js';
import { Gateways } from './pages/gateways.js';
import { Rollouts } from './pages/rollouts.js';
import { Workflows } from './pages/workflows.js';
import { Artifacts } from './pages/artifacts.js';
import { Events } from './pages/events.js';
import { Admin } from './pages/admin.js';

const PAGES = [
  ['', 'Dashboard', Dashboard],
  ['deployments', 'Deployments', Deployments],
  ['gateways', 'Gateways', Gateways],
  ['rollouts', 'Rollouts', Rollouts],
  ['workflows', 'Workflows', Workflows],
  ['artifacts', 'Artifacts', Artifacts],
  ['events', 'Events', Events],
  ['admin', 'Admin', Admin],
];

function useHash() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function Login({ onDone, failed }) {
  const [value, setValue] = useState('');
  const [error, setError] = useState(failed ? 'That token was refused.' : null);
  const submit = async (e) => {
    e.preventDefault();
    setToken(value.trim());
    try {
      await get('info');
      onDone();
    } catch (err) {
      setToken(null);
      setError(err instanceof ApiError && err.status === 401 ? 'That token was refused.' : err.message);
    }
  };
  return html`<main class="login">
    <form onSubmit=${submit} aria-labelledby="login-title">
      <h1 id="login-title">Sign in to Vamp</h1>
      <p>This server needs an API token (<code>server.tokens</code>).</p>
      <label for="token">API token</label>
      <input id="token" name="token" type="password" autocomplete="current-password"
        value=${value} onInput=${(e) => setValue(e.target.value)} autofocus required />
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <button type="submit">Sign in</button>
    </form>
  </main>`;
}

function LiveDot() {
  const [up, setUp] = useState(false);
  useStream((type, data) => type === 'connection' && setUp(data.up));
  return html`<span class=${`live ${up ? 'up' : ''}`} title=${up ? 'live' : 'connecting'}
    aria-label=${up ? 'live updates on' : 'live updates connecting'}></span>`;
}

function App() {
  const hash = useHash();
  const [auth, setAuth] = useState('checking');
  useEffect(() => {
    const on = () => {
      disconnect();
      setAuth('login');
    };
    window.addEventListener('vamp:unauthorized', on);
    get('info').then(
      () => setAuth('ok'),
      (e) => setAuth(e instanceof ApiError && e.status === 401 ? 'login' : 'ok'),
    );
    return () => window.removeEventListener('vamp:unauthorized', on);
  }, []);
  useEffect(() => {
    if (auth === 'ok') connect();
  }, [auth]);
  if (auth === 'checking') return html`<p class="loading">Loading…</p>`;
  if (auth === 'login') return html`<${Login} failed=${!!token()} onDone=${() => setAuth('ok')} />`;
  const [page, ...rest] = routeOf(hash);
  const found = PAGES.find(([p]) => p === (page || '')) || PAGES[0];
  const Page = found[2];
  const signOut = () => {
    setToken(null);
    disconnect();
    setAuth('login');
  };
  return html`<div class="shell">
    <header>
      <a class="brand" href="#/">Vamp</a>
      <nav aria-label="pages">
        ${PAGES.map(([p, label]) => html`<a href=${'#/' + p}
          aria-current=${found[0] === p ? 'page' : undefined}>${label}</a>`)}
      </nav>
      <${LiveDot} />
      ${token() && html`<button class="link" onClick=${signOut}>Sign out</button>`}
    </header>
    <main id="page" data-page=${found[0] || 'dashboard'}>
      <${Page} path=${rest} />
    </main>
  </div>`;
}

// Errors a test (or a curious user) can read: `window.vampErrors`.
window.vampErrors = [];
window.addEventListener('error', (e) => window.vampErrors.push(String(e.message)));
window.addEventListener('unhandledrejection', (e) => window.vampErrors.push(String(e.reason)));

render(html`<${App} />`, document.getElementById('app'));
document.body.dataset.ready = 'true';
