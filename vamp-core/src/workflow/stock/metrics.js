// The stock `metrics` workflow (spec §5.2), installed by the server on first start.
//
// Every VAMP_WORKFLOW_EXECUTION_PERIOD seconds it measures each gateway and each of its
// routes over the last METRICS_TIME_WINDOW seconds (default: the period, so one run's window
// ends where the next one's starts) from the router's own counters, and publishes events of
// type `metrics`:
//   metrics:rate          requests per second, 2 decimals
//   metrics:responseTime  the mean response time in ms, 1 decimal (0 without requests; none
//                         when the router measures no response times)
// tagged `gateways:<g>`, `gateway`; a route's add `routes:<r>`, `route`. It is the one
// producer of these events: the SLA runtime judges the gateways' responseTime and
// /api/v1/metrics/… answers with the newest value.

const period = Number(process.env.VAMP_WORKFLOW_EXECUTION_PERIOD) || 10;
const window = Number(process.env.METRICS_TIME_WINDOW) || period;
const round = (x, digits) => Math.round(x * 10 ** digits) / 10 ** digits;

async function publish(tags, measured) {
  await vamp.event([...tags, 'metrics:rate'], round(measured.rate, 2), 'metrics');
  if (measured.responseTime !== null) {
    await vamp.event([...tags, 'metrics:responseTime'], round(measured.responseTime, 1), 'metrics');
  }
}

async function run() {
  const traffic = await vamp.traffic(window);
  if (!traffic.counted) {
    console.log('the router counts no traffic: no metrics');
    return;
  }
  if (traffic.seconds === 0) {
    console.log('the first run: counting starts now');
    return;
  }
  const seconds = round(traffic.seconds, 3);
  for (const g of traffic.gateways) {
    const gateway = [`gateways:${g.name}`, 'gateway'];
    await publish(gateway, g);
    for (const r of g.routes) await publish([...gateway, `routes:${r.name}`, 'route'], r);
    if (g.requests > 0) console.log(`${g.name}: ${g.requests} requests, ${g.errors} failed in ${seconds} s`);
  }
  console.log(`${traffic.gateways.length} gateways measured over ${seconds} s`);
}

run().catch((e) => { console.error(e.message); throw e; });
