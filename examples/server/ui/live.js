// Live data: one stream per tab (events, workflow output lines and the per-route `stats`
// the server sends about once a second), shared by every page; and resources that re-read
// themselves when an event says they changed — at most once a second each, never on a timer.
import { stream, get } from './api.js';
import { useState, useEffect, useRef } from './lib.js';

const listeners = new Set();
let controller = null;
let connected = false;

/** The newest `stats` message, for pages that open after it came. */
export let lastStats = null;

/** The last minute of each route's numbers: `"<gateway>\n<route>"` → `[{rate, p99_ms}]`. */
export const history = new Map();
const KEEP = 60;

function remember(stats) {
  const seen = new Set();
  for (const r of stats.routes || []) {
    const key = `${r.gateway}\n${r.route}`;
    seen.add(key);
    const list = history.get(key) || [];
    list.push({ rate: r.rate, p99_ms: r.p99_ms });
    if (list.length > KEEP) list.shift();
    history.set(key, list);
  }
  // A route left out of a message served nothing in that second.
  for (const [key, list] of history) {
    if (seen.has(key)) continue;
    list.push({ rate: 0, p99_ms: null });
    if (list.length > KEEP) list.shift();
    if (list.every((x) => x.rate === 0)) history.delete(key);
  }
}

function dispatch(message) {
  let data;
  try {
    data = JSON.parse(message.data);
  } catch (_) {
    return;
  }
  if (message.type === 'stats') {
    lastStats = data;
    remember(data);
  }
  for (const l of listeners) l(message.type, data);
}

/** Opens the stream (once). */
export function connect() {
  if (controller) return;
  controller = new AbortController();
  stream(dispatch, controller.signal, (up) => {
    connected = up;
    for (const l of listeners) l('connection', { up });
  });
}

/** Closes the stream (signing out). */
export function disconnect() {
  if (controller) controller.abort();
  controller = null;
}

/** Whether the stream is open now. */
export const isConnected = () => connected;

/** Calls `fn(type, data)` for every message while the component is mounted. */
export function useStream(fn) {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    const l = (type, data) => ref.current(type, data);
    listeners.add(l);
    return () => listeners.delete(l);
  }, []);
}

/** The newest `stats` message. */
export function useStats() {
  const [stats, setStats] = useState(lastStats);
  useStream((type, data) => type === 'stats' && setStats(data));
  return stats;
}

/** Whether an event's tags mention one of `prefixes` (`gateways` matches `gateways:x`). */
function mentions(event, prefixes) {
  const tags = event.tags || [];
  return prefixes.some((p) => tags.some((t) => t === p || t.startsWith(`${p}:`)));
}

/** The reads of the last second, shared by every component: `key` → `{at, promise}`. */
const reads = new Map();
const MIN_GAP = 1000;

function read(path, query, key) {
  const hit = reads.get(key);
  if (hit && Date.now() - hit.at < MIN_GAP) return hit.promise;
  const promise = get(path, query);
  reads.set(key, { at: Date.now(), promise });
  if (reads.size > 100) reads.delete(reads.keys().next().value);
  return promise;
}

/**
 * `{data, error, reload, set}` for `GET /api/v1/<path>`: read when the page opens and again when
 * an event tagged with one of `tags` arrives (or `reload` is called) — never more than once
 * a second for one resource, whichever components ask for it.
 */
export function useResource(path, tags = [], query) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const pending = useRef(null);
  const key = path + JSON.stringify(query || {});
  const load = () => {
    read(path, query, key).then(
      (data) => setState({ data, error: null, loading: false }),
      (error) => setState((s) => ({ data: s.data, error, loading: false })),
    );
  };
  useEffect(() => {
    setState({ data: null, error: null, loading: true });
    load();
    return () => {
      clearTimeout(pending.current);
      pending.current = null;
    };
  }, [key]);
  const reload = () => {
    if (pending.current) return;
    const last = reads.get(key);
    const wait = last ? Math.max(0, MIN_GAP - (Date.now() - last.at)) : 0;
    pending.current = setTimeout(() => {
      pending.current = null;
      load();
    }, wait);
  };
  useStream((type, data) => {
    if (type === 'workflow-log' || type === 'stats' || type === 'connection') return;
    if (tags.length && mentions(data, tags)) reload();
  });
  /** Shows `data` (e.g. what a write answered) as the resource's current value. */
  const set = (data) => {
    reads.set(key, { at: Date.now(), promise: Promise.resolve(data) });
    setState({ data, error: null, loading: false });
  };
  return { ...state, reload, set };
}
