// The API client: JSON or YAML over fetch, the bearer token from sessionStorage (never in a
// URL or a log), and the live stream read with fetch, since EventSource cannot send headers.
const TOKEN = 'vamp-token';

/** The token the user signed in with, if any. */
export function token() {
  return sessionStorage.getItem(TOKEN);
}

/** Keeps `value` as the token for this tab; `null` forgets it. */
export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN, value);
  else sessionStorage.removeItem(TOKEN);
}

/** An answer other than 2xx: `status`, the server's `message` and its structured `error`. */
export class ApiError extends Error {
  constructor(status, message, detail) {
    super(message);
    this.status = status;
    this.detail = detail;
  }
}

function headers(extra) {
  const h = { Accept: 'application/json', ...extra };
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

/** Tells the app to ask for a token (a 401). */
function unauthorized() {
  window.dispatchEvent(new Event('vamp:unauthorized'));
}

/**
 * Calls `/api/v1/<path>`. `body` is sent as JSON, or as YAML when `yaml` is set; `accept`
 * `'yaml'` returns the answer's text. Throws `ApiError` on a non-2xx answer.
 */
export async function api(method, path, { body, yaml, accept, query } = {}) {
  const url = new URL(`/api/v1/${path.replace(/^\//, '')}`, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    for (const one of [].concat(v)) url.searchParams.append(k, one);
  }
  const extra = {};
  let payload;
  if (yaml !== undefined) {
    extra['Content-Type'] = 'application/x-yaml';
    payload = yaml;
  } else if (body !== undefined) {
    extra['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  if (accept === 'yaml') extra.Accept = 'application/x-yaml';
  const res = await fetch(url, { method, headers: headers(extra), body: payload });
  if (res.status === 401) unauthorized();
  const text = await res.text();
  if (!res.ok) {
    let detail = {};
    try {
      detail = JSON.parse(text);
    } catch (_) {
      detail = { message: text };
    }
    throw new ApiError(res.status, detail.message || `${res.status} ${res.statusText}`, detail.error);
  }
  if (accept === 'yaml') return text;
  return text === '' ? null : JSON.parse(text);
}

/** GET shorthand. */
export const get = (path, query) => api('GET', path, { query });

/**
 * Reads `/api/v1/events/stream` and calls `onMessage({type, id, data})` for each message,
 * reconnecting after a second when the stream breaks, until `signal` aborts.
 */
export async function stream(onMessage, signal, onState = () => {}) {
  while (!signal.aborted) {
    try {
      const res = await fetch('/api/v1/events/stream', {
        headers: headers({ Accept: 'text/event-stream' }),
        signal,
      });
      if (res.status === 401) {
        unauthorized();
        return;
      }
      if (!res.ok || !res.body) throw new Error(`stream: ${res.status}`);
      onState(true);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const message = { type: 'message', id: null, data: '' };
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (field === 'event') message.type = val;
            else if (field === 'id') message.id = val;
            else if (field === 'data') message.data += (message.data ? '\n' : '') + val;
          }
          if (message.data) onMessage(message);
        }
      }
    } catch (e) {
      if (signal.aborted) return;
    }
    onState(false);
    await new Promise((r) => setTimeout(r, 1000));
  }
}
