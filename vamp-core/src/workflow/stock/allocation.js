// The stock `allocation` workflow (spec §5.4), installed by the server on first start.
//
// Every VAMP_WORKFLOW_EXECUTION_PERIOD seconds it sums, per deployment, what its services
// ask of the scheduler — instances, instances × cpu, instances × memory (MB) — and publishes
// `{instances, cpu, memory}` as an event of type `allocation`, tagged `allocation`,
// `deployments:<d>`.

// "256MB", "1.5GB", "512 MiB", 128 → megabytes.
function megabytes(memory) {
  if (typeof memory === 'number') return memory;
  const m = /^\s*([0-9.]+)\s*([KMGT]?)i?B?\s*$/i.exec(String(memory || '0'));
  if (!m) return 0;
  const scale = { '': 1, K: 1 / 1024, M: 1, G: 1024, T: 1024 * 1024 }[m[2].toUpperCase()];
  return Number(m[1]) * scale;
}

async function run() {
  const deployments = await vamp.deployments();
  for (const d of deployments) {
    const sum = { instances: 0, cpu: 0, memory: 0 };
    for (const c of Object.values(d.clusters || {})) {
      for (const s of c.services || []) {
        const scale = s.scale || {};
        const instances = Number(scale.instances) || 0;
        sum.instances += instances;
        sum.cpu += instances * (Number(scale.cpu) || 0);
        sum.memory += instances * megabytes(scale.memory);
      }
    }
    sum.cpu = Math.round(sum.cpu * 1000) / 1000;
    sum.memory = Math.round(sum.memory * 100) / 100;
    await vamp.event(['allocation', `deployments:${d.name}`], sum, 'allocation');
  }
  console.log(`${deployments.length} deployments`);
}

run().catch((e) => { console.error(e.message); throw e; });
