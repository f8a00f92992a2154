#!/usr/bin/env bash
# scripts/ha-demo.sh: three vamp-server processes on shared stores, one of them leading
# (issue 24, docs/ha.md) — so anyone can watch a failover.
#
#   bash scripts/ha-demo.sh start DIR [postgres|etcd|zookeeper]   # the election's store (default postgres)
#   bash scripts/ha-demo.sh failover DIR [ROUNDS]                 # kill -9 the leader ROUNDS times (default 5)
#   bash scripts/ha-demo.sh stop DIR
#
# `start` starts, through scripts/services.sh with its own directory DIR/services, PostgreSQL
# (the persistence all three share), etcd or ZooKeeper when the election uses it, and a private
# dockerd (the driver: servers that elect a leader refuse the process driver, whose services
# would live on one server only); then three servers: node N's API on 127.0.0.1:1808N, its
# gateways on 127.0.0.N, its data in DIR/nodeN, its log in DIR/nodeN.log. It prints one line
# per server, `node N api http://…`. `failover` kills the leader with SIGKILL, times how long
# until another server leads (polling /api/v1/info every 50 ms), restarts the killed one and
# prints a line per round and the figures. `stop` stops exactly what `start` started, by the
# PIDs it recorded (and the services through services.sh). Needs root for the services.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/vamp/target}
# Ports of their own, so the demo runs beside the test services.
export PG_PORT=${PG_PORT:-54340} ETCD_PORT=${ETCD_PORT:-23890} ETCD_PEER_PORT=${ETCD_PEER_PORT:-23900} ZK_PORT=${ZK_PORT:-21820}

usage() { echo "usage: $0 start DIR [postgres|etcd|zookeeper] | failover DIR [ROUNDS] | stop DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 DIR=$(mkdir -p "$2" && cd "$2" && pwd)
PIDS=$DIR/pids
SERVER=$CARGO_TARGET_DIR/debug/vamp-server

starttime() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; set -- $s; echo "${20}"; }
is_ours() { [ -n "${2:-}" ] && [ "$(starttime "$1" 2>/dev/null)" = "$2" ]; }
info() { curl -s --max-time 1 "http://127.0.0.1:1808$1/api/v1/info" 2>/dev/null || true; }
leads() { info "$1" | grep -q '"leader":true'; }
term_of() { info "$1" | sed -n 's/.*"term":\([0-9]*\).*/\1/p'; }

start_node() { # N
  local n=$1
  # shellcheck disable=SC1091
  source "$DIR/services/env"
  local kv_kind=memory kv_servers=""
  case $(cat "$DIR/election") in
    etcd) kv_kind=etcd kv_servers=$VAMP_TEST_ETCD ;;
    zookeeper) kv_kind=zookeeper kv_servers=$VAMP_TEST_ZOOKEEPER ;;
  esac
  mkdir -p "$DIR/node$n"
  env VAMP_DRIVER__KIND=docker VAMP_DRIVER__DOCKER_HOST="$VAMP_TEST_DOCKER" \
    VAMP_PERSISTENCE__KIND=postgres VAMP_PERSISTENCE__URL="$VAMP_TEST_POSTGRES" \
    VAMP_KEY_VALUE__KIND=$kv_kind VAMP_KEY_VALUE__SERVERS="$kv_servers" \
    VAMP_ELECTION__KIND="$(cat "$DIR/election")" VAMP_ELECTION__NODE="node-$n" \
    VAMP_ELECTION__URL="http://127.0.0.1:1808$n/api/v1" VAMP_GATEWAYS__HOST="127.0.0.$n" \
    "$SERVER" --listen "127.0.0.1:1808$n" --data "$DIR/node$n" >> "$DIR/node$n.log" 2>&1 < /dev/null &
  local pid=$!
  # Not this shell's job: a SIGKILL of it is the failover's doing, not news.
  disown "$pid" 2>/dev/null || true
  grep -v "^node$n " "$PIDS" > "$PIDS.new" 2>/dev/null || true
  echo "node$n $pid $(starttime $pid)" >> "$PIDS.new"
  mv "$PIDS.new" "$PIDS"
  for _ in $(seq 1 200); do
    info "$n" | grep -q '"cluster"' && return 0
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$DIR/node$n.log" >&2; echo "node $n did not start" >&2; return 1; }
    sleep 0.1
  done
  echo "node $n did not answer within 20 s" >&2
  return 1
}

cmd_start() {
  local election=${1:-postgres} list="docker postgres"
  case $election in
    postgres) ;;
    etcd|zookeeper) list="$list $election" ;;
    *) usage ;;
  esac
  [ -f "$PIDS" ] && { echo "$DIR has a demo running: $0 stop $DIR" >&2; exit 1; }
  echo "$election" > "$DIR/election"
  cargo build -q -p vamp-server --features full
  VAMP_SVC_DIR=$DIR/services VAMP_SVC_LIST=$list VAMP_SVC_SWARM=0 bash scripts/services.sh start
  : > "$PIDS"
  for n in 1 2 3; do
    start_node "$n" || { cmd_stop; exit 1; }
    echo "node $n api http://127.0.0.1:1808$n/api/v1"
  done
}

cmd_failover() {
  local rounds=${1:-5} times=()
  for round in $(seq 1 "$rounds"); do
    local leader="" n before
    for _ in $(seq 1 100); do
      for n in 1 2 3; do leads "$n" && leader=$n; done
      [ -n "$leader" ] && break
      sleep 0.1
    done
    [ -n "$leader" ] || { echo "no leader" >&2; exit 1; }
    before=$(term_of "$leader")
    read -r _ pid st < <(grep "^node$leader " "$PIDS")
    is_ours "$pid" "$st" || { echo "node $leader is not the process started here" >&2; exit 1; }
    local t0 t1 next=""
    t0=$(date +%s%N)
    kill -KILL "$pid"
    for _ in $(seq 1 600); do
      for n in 1 2 3; do
        [ "$n" = "$leader" ] && continue
        if leads "$n" && [ "$(term_of "$n")" -gt "$before" ]; then next=$n; fi
      done
      [ -n "$next" ] && break
      sleep 0.05
    done
    t1=$(date +%s%N)
    [ -n "$next" ] || { echo "round $round: no new leader within 30 s" >&2; exit 1; }
    local ms=$(((t1 - t0) / 1000000))
    times+=("$ms")
    echo "round $round: node $leader killed (term $before), node $next leads after ${ms} ms (term $(term_of "$next"))"
    start_node "$leader"
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1; s+=$1} END {printf "failover over %d rounds: min %d ms, median %d ms, max %d ms, mean %d ms\n", NR, a[1], a[int((NR+1)/2)], a[NR], s/NR}'
}

cmd_stop() {
  if [ -f "$PIDS" ]; then
    local name pid st
    while read -r name pid st; do is_ours "$pid" "$st" && kill -TERM "$pid"; done < "$PIDS"
    local deadline=$((SECONDS + 20))
    while read -r name pid st; do
      while is_ours "$pid" "$st" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
      is_ours "$pid" "$st" && kill -KILL "$pid"
    done < "$PIDS"
    rm -f "$PIDS"
  fi
  VAMP_SVC_DIR=$DIR/services bash scripts/services.sh stop
}

case $cmd in
  start) cmd_start "${3:-postgres}" ;;
  failover) cmd_failover "${3:-5}" ;;
  stop) cmd_stop ;;
  *) usage ;;
esac
