#!/usr/bin/env bash
# scripts/bench.sh: runs one bench of benches/ with the real services it needs, started on
# 127.0.0.1 under a private directory and ports, and stopped again.
#
#   bash scripts/bench.sh retention postgres     # benches/benches/retention.rs on PostgreSQL
#   bash scripts/bench.sh backends etcd zookeeper postgres
#
# Each service's address is handed to the bench as VAMP_BENCH_<SERVICE> (the variables the
# benches read). Needs root on Debian 12 for the first install.
set -euo pipefail
cd "$(dirname "$0")/.."
bench=${1:?usage: scripts/bench.sh <bench> [service...]}
shift
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/vamp/target}
export VAMP_SVC_DIR=${VAMP_BENCH_DIR:-/tmp/vamp-bench} VAMP_SVC_LIST="$*"
export PG_PORT=${PG_PORT:-20433} ETCD_PORT=${ETCD_PORT:-23792} ETCD_PEER_PORT=${ETCD_PEER_PORT:-23802}
export ZK_PORT=${ZK_PORT:-21811}
if [ $# -gt 0 ]; then
  trap 'bash scripts/services.sh stop' EXIT
  bash scripts/services.sh start
  # shellcheck disable=SC1091
  source "$VAMP_SVC_DIR/env"
  export VAMP_BENCH_POSTGRES=${VAMP_TEST_POSTGRES:-} VAMP_BENCH_ETCD=${VAMP_TEST_ETCD:-}
  export VAMP_BENCH_ZOOKEEPER=${VAMP_TEST_ZOOKEEPER:-}
  for v in VAMP_BENCH_POSTGRES VAMP_BENCH_ETCD VAMP_BENCH_ZOOKEEPER; do
    [ -n "${!v}" ] || unset "$v"
  done
fi
cargo bench -q -p vamp-benches --bench "$bench"
