// The stock `health` workflow (spec §5.3), installed by the server on first start.
//
// Every VAMP_WORKFLOW_EXECUTION_PERIOD seconds, from the router's own counters over the last
// HEALTH_TIME_WINDOW seconds (default 60; Vamp searched 500 s of access logs):
//   route health    0 if it answered any 5xx (or failed a connection) in the window, else 1
//   gateway health  the same over all its routes
//   service health  the product of its routes' health in its cluster's gateways, times
//                   healthy / running instances when the scheduler reports both (Vamp meant
//                   to; its script passed the wrong value: spec Q7)
//   cluster health  the product of its services' health
//   deployment      the product of its clusters' health
// published as events of type `health`, tagged as Vamp did: `gateways:<g>`, `gateway`
// (+ `routes:<r>`, `route`); `deployments:<d>`, `deployment` / + `clusters:<c>`, `cluster` /
// + `services:<s>`, `service`; and `health`. /api/v1/health/… answers with the newest value.

const window = Number(process.env.HEALTH_TIME_WINDOW) || 60;

const publish = (tags, value) => vamp.event([...tags, 'health'], value, 'health');

async function run() {
  const traffic = await vamp.traffic(window);
  if (!traffic.counted) console.log('the router counts no traffic: services are judged by their instances only');
  const routes = new Map();
  for (const g of traffic.gateways) {
    const gateway = [`gateways:${g.name}`, 'gateway'];
    for (const r of g.routes) {
      const health = r.errors > 0 ? 0 : 1;
      routes.set(r.name, health);
      await publish([...gateway, `routes:${r.name}`, 'route'], health);
    }
    await publish(gateway, g.errors > 0 ? 0 : 1);
  }
  const unhealthy = [];
  for (const d of await vamp.deployments()) {
    let deployment = 1;
    for (const [cluster, c] of Object.entries(d.clusters || {})) {
      let clusterHealth = 1;
      for (const s of c.services || []) {
        const service = s.breed && s.breed.name;
        if (!service) continue;
        // Its routes in the cluster's gateways are named <deployment>/<cluster>/<service>/<port>.
        const prefix = `${d.name}/${cluster}/${service}/`;
        let health = 1;
        for (const [route, h] of routes) if (route.startsWith(prefix)) health *= h;
        const counts = s.health || {};
        if (counts.running > 0 && counts.healthy + counts.unhealthy === counts.running) {
          health *= counts.healthy / counts.running;
        }
        await publish([`deployments:${d.name}`, `clusters:${cluster}`, `services:${service}`, 'service'], health);
        if (health < 1) unhealthy.push(`${d.name}/${cluster}/${service}`);
        clusterHealth *= health;
      }
      await publish([`deployments:${d.name}`, `clusters:${cluster}`, 'cluster'], clusterHealth);
      deployment *= clusterHealth;
    }
    await publish([`deployments:${d.name}`, 'deployment'], deployment);
  }
  console.log(unhealthy.length ? `unhealthy: ${unhealthy.join(', ')}` : 'all healthy');
}

run().catch((e) => { console.error(e.message); throw e; });
