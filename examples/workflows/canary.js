// A canary release as a workflow — Vamp's recipe, on the `vamp` object of JavaScript workflows.
//
// Each run (a daemon: every VAMP_WORKFLOW_EXECUTION_PERIOD seconds) looks at the canary's
// traffic since the last run. Too many errors: every request goes back to the stable route and
// the release stops. Otherwise the canary gets CANARY_STEP more percent, up to 100.
// What a run saw is kept as an event (`canary:<gateway>`), which the next run reads back.
//
// The built-in rollouts (`kind: rollouts`, docs/rollouts.md) do this with statistics, gates
// and webhooks; this script shows what the workflow API can do.
//
// Environment (the workflow's breed declares them):
//   CANARY_GATEWAY          the gateway, e.g. shop/web/webport
//   CANARY_STABLE           the stable route, e.g. shop/web/shop:1.0.0/webport
//   CANARY_CANARY           the canary route
//   CANARY_STEP             percent per run (default 10)
//   CANARY_MAX_ERROR_RATE   the canary's highest acceptable share of failed requests (default 0.05)
//   CANARY_MIN_REQUESTS     canary requests a run needs before it judges (default 20)

const env = process.env;
const gateway = env.CANARY_GATEWAY;
const stable = env.CANARY_STABLE;
const canary = env.CANARY_CANARY;
const step = Number(env.CANARY_STEP || 10);
const maxErrorRate = Number(env.CANARY_MAX_ERROR_RATE || 0.05);
const minRequests = Number(env.CANARY_MIN_REQUESTS || 20);
const tag = `canary:${gateway}`;

const percent = (weight) => Number(String(weight || '0').replace('%', ''));

async function run() {
  const [last] = await vamp.events([tag]);
  const seen = last ? last.value : { state: 'shifting', requests: 0, errors: 0 };
  if (seen.state !== 'shifting') {
    console.log(`${gateway}: ${seen.state}, nothing to do`);
    return;
  }
  const gw = await vamp.get('gateways', gateway);
  if (!gw) throw new Error(`no gateway ${gateway}`);
  const weight = percent(gw.routes[canary] && gw.routes[canary].weight);
  const counts = (await vamp.stats()).find((s) => s.gateway === gateway && s.route === canary)
    || { requests: 0, errors: 0 };
  const requests = counts.requests - seen.requests;
  const errors = counts.errors - seen.errors;
  const note = (state, extra) => vamp.event([tag, `canary:${state}`],
    Object.assign({ state, requests: counts.requests, errors: counts.errors, weight }, extra));

  if (weight > 0 && requests >= minRequests && errors / requests > maxErrorRate) {
    await vamp.setWeights(gateway, { [stable]: 100, [canary]: 0 });
    console.error(`${gateway}: ${errors} of ${requests} canary requests failed: rolled back`);
    await note('rolled-back', { failed: errors, of: requests });
    return;
  }
  if (weight > 0 && requests < minRequests) {
    console.log(`${gateway}: ${requests} canary requests since the last run, waiting for ${minRequests}`);
    return;
  }
  if (weight >= 100) {
    console.log(`${gateway}: the canary takes all traffic`);
    await note('promoted');
    return;
  }
  const next = Math.min(100, weight + step);
  await vamp.setWeights(gateway, { [stable]: 100 - next, [canary]: next });
  console.log(`${gateway}: canary ${weight}% → ${next}% (${errors} of ${requests} failed)`);
  await note('shifting', { weight: next });
}

run().catch((e) => { console.error(e.message); throw e; });
