#!/usr/bin/env bash
# scripts/ha-demo.sh: three vamp-server processes on shared stores, one of them leading
# (issue 24, docs/ha.md) — so anyone can watch a failover.
#
#   bash scripts/ha-demo.sh start DIR [postgres|etcd|zookeeper]   # the election's store (default postgres)
#   bash scripts/ha-demo.sh failover DIR [ROUNDS]                 # kill -9 the leader ROUNDS times (default 5)
#   bash scripts/ha-demo.sh chaos DIR [ELECTIONS]                 # the failure checks (default 10 elections)
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
#
# `chaos` is issue 24's failure check: it deploys a service (two versions, one instance each) on
# the private dockerd, starts a rollout that moves its traffic in 2-second steps, keeps a
# bounded API write load on all three servers, and forces ELECTIONS elections by turns with
# `kill -9` of the leader, `SIGSTOP` of it (resumed once another leads) and a restart of the
# election's store (down 4 s, longer than the lease). Then it checks, from what the store
# recorded: no leader's write of a stale term was accepted (the terms of fenced writes never go
# back; the leaders' terms only grow), every write answered 2xx is stored, no instance was
# started twice, the rollout never went back a step. Any failure exits non-zero.
# VAMP_SERVER_BIN: a vamp-server binary to run instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/vamp/target}
# Ports of their own, so the demo runs beside the test services.
# Every fixed port below the kernel's ephemeral range (32768-60999): a listener there can
# find an outgoing connection holding its port (a CI run once found 54340 taken).
export PG_PORT=${PG_PORT:-20434} ETCD_PORT=${ETCD_PORT:-23890} ETCD_PEER_PORT=${ETCD_PEER_PORT:-23900} ZK_PORT=${ZK_PORT:-21820}

usage() { echo "usage: $0 start DIR [postgres|etcd|zookeeper] | failover DIR [ROUNDS] | chaos DIR [ELECTIONS] | stop DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 DIR=$(mkdir -p "$2" && cd "$2" && pwd)
PIDS=$DIR/pids
SERVER=${VAMP_SERVER_BIN:-$CARGO_TARGET_DIR/debug/vamp-server}

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
    VAMP_GATEWAYS__PORTS=20100-20399 \
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
  # PostgreSQL runs as its own user: it must reach its data under DIR (mktemp -d makes 0700).
  chmod a+rx "$DIR"
  # A given binary (scripts/test.sh: the one the test suite built) is used as it is.
  [ -n "${VAMP_SERVER_BIN:-}" ] || cargo build -q -p vamp-server --features full
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

# --- chaos: the failure checks of issue 24 --------------------------------------------------

api() { # N METHOD PATH [BODY]: the HTTP status of a call to node N (000 when it did not answer)
  local n=$1 method=$2 path=$3
  if [ $# -ge 4 ]; then
    curl -s -o /dev/null -w '%{http_code}' --max-time 3 -X "$method" \
      -H 'Content-Type: application/x-yaml' --data-binary "$4" "http://127.0.0.1:1808$n/api/v1$path" || true
  else
    curl -s -o /dev/null -w '%{http_code}' --max-time 3 -X "$method" "http://127.0.0.1:1808$n/api/v1$path" || true
  fi
}
sql() { psql -qtAX "$VAMP_TEST_POSTGRES" -c "$1"; }
leader_now() { local n; for n in 1 2 3; do leads "$n" && { echo "$n"; return 0; }; done; return 1; }
wait_leader() { # MIN_TERM [EXCEPT]: waits (bounded, 60 s) for a node other than EXCEPT leading in a term >= MIN_TERM; prints it
  local n
  for _ in $(seq 1 1200); do
    for n in 1 2 3; do
      [ "$n" = "${2:-}" ] && continue
      if leads "$n" && [ "$(term_of "$n")" -ge "$1" ]; then echo "$n"; return 0; fi
    done
    sleep 0.05
  done
  return 1
}
fail() { echo "CHAOS FAILED: $*" >&2; exit 1; }

# Bounded API write load: one breed PUT every 50 ms, round robin over the three servers, at
# most $1 of them or until DIR/load.stop exists; each answer recorded as "NAME STATUS".
write_load() {
  local i n
  for i in $(seq 1 "$1"); do
    [ -f "$DIR/load.stop" ] && break
    n=$((i % 3 + 1))
    echo "load-$i $(api "$n" PUT "/breeds/load-$i" "name: load-$i
deployable: vamp-test/demo-app:1
ports: {web: 8080/http}")" >> "$DIR/load"
    sleep 0.05
  done
}

cmd_chaos() {
  local rounds=${1:-10} store n t0
  # shellcheck disable=SC1091
  source "$DIR/services/env"
  store=$(cat "$DIR/election")
  [ -f "$PIDS" ] || fail "no demo runs in $DIR: $0 start $DIR first"
  bash scripts/images.sh > "$DIR/images.log" 2>&1 || { cat "$DIR/images.log" >&2; fail "images did not build"; }
  n=$(wait_leader 1) || fail "no leader"
  # A deployment on the shared dockerd (one instance of each version) and a rollout that moves
  # its traffic in 2-second steps: the leader writes (fenced) all along.
  t0=$(date +%s)
  for v in 1 2; do
    [[ $(api "$n" POST /breeds "name: demo:$v
deployable: vamp-test/demo-app:1
ports: {web: 8080/http}
environment_variables: {VAMP_DEMO_VERSION: '$v'}") == 2* ]] || fail "breed demo:$v not stored"
  done
  [[ $(api "$n" POST /deployments "name: chaos
gateways:
  9301: front/web
clusters:
  front:
    gateways:
      web:
        routes:
          demo:1: {weight: 100%}
          demo:2: {weight: 0%}
    services:
      - breed: demo:1
      - breed: demo:2") == 2* ]] || fail "deployment not accepted"
  for n in 1 2 3; do
    for _ in $(seq 1 600); do
      curl -sf --max-time 1 "http://127.0.0.$n:9301/" > /dev/null && break
      sleep 0.1
    done
    curl -sf --max-time 1 "http://127.0.0.$n:9301/" > /dev/null || fail "node $n does not serve the deployment's gateway"
  done
  local steps="" w
  for w in $(seq 2 2 98); do steps="$steps
  - weight: $w%
  - pause: 2s"; done
  [[ $(api 1 POST /rollouts "name: chaos
gateway: chaos/front/web
stable: chaos/front/demo:1/web
canary: chaos/front/demo:2/web
steps:$steps") == 2* ]] || fail "rollout not accepted"

  rm -f "$DIR/load" "$DIR/load.stop"
  write_load 5000 &
  local loader=$! kinds=(kill stop restart) elections=0 round=0 times_kill=() times_stop=() times_restart=()
  while [ "$elections" -lt "$rounds" ] && [ "$round" -lt $((rounds * 2)) ]; do
    round=$((round + 1))
    local kind=${kinds[$(((round - 1) % 3))]} leader before pid st next ms t1 t2
    leader=$(wait_leader 1) || fail "round $round: no leader"
    before=$(term_of "$leader")
    read -r _ pid st < <(grep "^node$leader " "$PIDS")
    is_ours "$pid" "$st" || fail "node $leader is not the process started here"
    t1=$(date +%s%N)
    case $kind in
      kill)
        kill -KILL "$pid"
        next=$(wait_leader $((before + 1)) "$leader") || fail "round $round: no leader after kill -9"
        ;;
      stop)
        kill -STOP "$pid"
        next=$(wait_leader $((before + 1)) "$leader") || { kill -CONT "$pid"; fail "round $round: no leader after SIGSTOP"; }
        ;;
      restart)
        VAMP_SVC_DIR=$DIR/services bash scripts/services.sh restart "$store" 4 2> /dev/null \
          || fail "round $round: $store did not restart"
        next=$(wait_leader "$before") || fail "round $round: no leader after the $store restart"
        ;;
    esac
    t2=$(date +%s%N)
    ms=$(((t2 - t1) / 1000000))
    local after; after=$(term_of "$next")
    [ "$after" -gt "$before" ] && elections=$((elections + 1))
    case $kind in
      kill) times_kill+=("$ms"); start_node "$leader" ;;
      stop)
        times_stop+=("$ms")
        # Resumed after it lost its lease: it must learn so, and its writes are refused.
        kill -CONT "$pid"
        for _ in $(seq 1 200); do leads "$leader" || break; sleep 0.1; done
        leads "$leader" && fail "round $round: node $leader still says it leads after SIGCONT"
        ;;
      restart) times_restart+=("$ms") ;;
    esac
    # The new leader acts: the rollout goes on under its term (bounded, 30 s).
    local acted=0 since=$((t1 / 1000000000))
    for _ in $(seq 1 300); do
      acted=$(sql "SELECT count(*) FROM artifact_revisions WHERE kind = 'rollout-status' AND name = 'chaos' AND fence_term >= $after AND written_at >= to_timestamp($since)" 2>/dev/null || echo 0)
      [ "${acted:-0}" -gt 0 ] && break
      sleep 0.1
    done
    [ "${acted:-0}" -gt 0 ] || fail "round $round: the leader in term $after did not move the rollout on within 30 s"
    echo "round $round ($kind): node $leader led in term $before; node $next leads in term $after after ${ms} ms, and moves the rollout on"
  done
  touch "$DIR/load.stop"
  wait "$loader" || true
  [ "$elections" -ge "$rounds" ] || fail "only $elections elections in $round rounds"

  # 1. No write from a stale term: per fence scope, the terms of the leaders' writes never go
  #    back in the order the database wrote them.
  local fenced stale terms
  fenced=$(sql "SELECT count(*) FROM artifact_revisions WHERE fence_term IS NOT NULL AND written_at >= to_timestamp($t0)")
  terms=$(sql "SELECT count(DISTINCT fence_term) FROM artifact_revisions WHERE fence_term IS NOT NULL AND written_at >= to_timestamp($t0)")
  stale=$(sql "SELECT count(*) FROM (SELECT fence_term, lag(fence_term) OVER (PARTITION BY fence_scope ORDER BY written_at, kind, name, revision) AS prev FROM artifact_revisions WHERE fence_term IS NOT NULL) w WHERE fence_term < prev")
  [ "$fenced" -gt 0 ] || fail "no fenced write was made"
  [ "$stale" = 0 ] || fail "$stale writes of a stale term were accepted"
  # … nor after a larger term's leader said it leads (a paused leader, resumed).
  local late refused
  late=$(sql "SELECT count(*) FROM artifact_revisions r WHERE r.fence_term IS NOT NULL AND EXISTS (SELECT 1 FROM events e JOIN event_tags t ON t.event_id = e.id WHERE t.tag = 'cluster:leader' AND (e.value::json->>'term')::bigint > r.fence_term AND e.at < (extract(epoch FROM r.written_at) * 1e9)::bigint)")
  [ "$late" = 0 ] || fail "$late writes were made in a term after a larger one began"
  refused=$(cat "$DIR"/node*.log | grep -c 'fenced: ' || true)
  # The leaders' terms, as each leader recorded them when it began to act: never back (one
  # that stopped acting while the store was away and renewed the same lease says so again).
  local leader_terms
  leader_terms=$(sql "SELECT (e.value::json->>'term') FROM events e JOIN event_tags t ON t.event_id = e.id WHERE t.tag = 'cluster:leader' AND e.id > 0 ORDER BY e.id" | tr '\n' ' ')
  echo "$leader_terms" | awk '{for (i = 2; i <= NF; i++) if ($i + 0 < $(i-1) + 0) exit 1}' \
    || fail "leader terms went back: $leader_terms"
  # 2. Every write answered 2xx is stored.
  local ok missing
  ok=$(awk '$2 ~ /^2/ {print $1}' "$DIR/load")
  missing=$(for name in $ok; do echo "$name"; done | sort > "$DIR/load.ok"; \
    sql "SELECT name FROM artifacts WHERE kind = 'breeds' AND live AND name LIKE 'load-%'" | sort | comm -23 "$DIR/load.ok" - | wc -l)
  [ "$missing" = 0 ] || fail "$missing writes answered 2xx are not stored"
  # 3. No service instance started twice: two containers started since the deployment, two run.
  local started running
  started=$(docker events --since "$t0" --until "$(date +%s)" --filter event=start \
    --filter image=vamp-test/demo-app:1 --format '{{.ID}}' | wc -l)
  running=$(docker ps -q --filter ancestor=vamp-test/demo-app:1 | wc -l)
  [ "$started" = 2 ] && [ "$running" = 2 ] || fail "containers started: $started, running: $running (want 2 and 2)"
  # 4. The rollout continued from its step: its steps never went back, and it moved on.
  local back steps_seen last
  back=$(sql "SELECT count(*) FROM (SELECT (value::json->>'step')::int AS step, lag((value::json->>'step')::int) OVER (ORDER BY revision) AS prev FROM artifact_revisions WHERE kind = 'rollout-status' AND name = 'chaos' AND value IS NOT NULL) s WHERE step < prev")
  steps_seen=$(sql "SELECT count(DISTINCT value::json->>'step') FROM artifact_revisions WHERE kind = 'rollout-status' AND name = 'chaos'")
  last=$(sql "SELECT value::json->>'phase' FROM artifacts WHERE kind = 'rollout-status' AND name = 'chaos'")
  [ "$back" = 0 ] || fail "the rollout went back a step $back times"
  case $last in rolled_back|aborted|RolledBack|Aborted) fail "the rollout ended $last" ;; esac
  local writes answered
  writes=$(wc -l < "$DIR/load")
  answered=$(wc -l < "$DIR/load.ok")
  echo "chaos on $store: $elections elections in $round rounds; $fenced fenced writes in $terms terms, none stale ($refused stale ones refused); $answered of $writes API writes answered 2xx, all stored; 2 containers started, 2 running; rollout through $steps_seen steps, never back, now $last"
  local kind_name
  for kind_name in kill stop restart; do
    local -n times="times_$kind_name"
    [ ${#times[@]} -gt 0 ] || continue
    printf '%s\n' "${times[@]}" | sort -n | awk -v k="$kind_name" '{a[NR]=$1; s+=$1} END {printf "  %s: %d rounds, new leader after min %d ms, median %d ms, max %d ms\n", k, NR, a[1], a[int((NR+1)/2)], a[NR]}'
  done
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
  chaos) cmd_chaos "${3:-10}" ;;
  stop) cmd_stop ;;
  *) usage ;;
esac
