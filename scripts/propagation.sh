#!/usr/bin/env bash
# scripts/propagation.sh: how long a weight change through the API takes to reach the traffic
# (issue 16), on both paths: the embedded router, and etcd + vamp-gateway-agent + HAProxy.
#
#   bash scripts/propagation.sh
#
# Starts a private etcd (and checks HAProxy is installed) with scripts/services.sh under its own
# directory and ports, builds the agent, runs benches/benches/propagation.rs, and stops what it
# started. Bounded: 24 flips per path, each waits at most 30 s. Needs root on Debian 12 for the
# first install.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/vamp/target}
export VAMP_SVC_DIR=${VAMP_PROP_DIR:-/tmp/vamp-propagation} VAMP_SVC_LIST="etcd haproxy"
export ETCD_PORT=${ETCD_PORT:-23791} ETCD_PEER_PORT=${ETCD_PEER_PORT:-23801}
trap 'bash scripts/services.sh stop' EXIT
bash scripts/services.sh start
# shellcheck disable=SC1091
source "$VAMP_SVC_DIR/env"
cargo build --release -q -p vamp-gateway-agent
VAMP_PROP_ETCD=$VAMP_TEST_ETCD VAMP_PROP_AGENT=$CARGO_TARGET_DIR/release/vamp-gateway-agent \
  VAMP_PROP_HAPROXY=$VAMP_TEST_HAPROXY \
  cargo bench -q -p vamp-benches --bench propagation
