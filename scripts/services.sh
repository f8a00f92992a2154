#!/usr/bin/env bash
# scripts/services.sh: real services for the integration tests, on 127.0.0.1, as plain
# background processes with their data under $VAMP_SVC_DIR (default /tmp/vamp-svc).
#
#   bash scripts/services.sh start     # install what is missing, start, wait until healthy
#   bash scripts/services.sh stop      # stop exactly the recorded PIDs, clean up mounts/sockets
#   bash scripts/services.sh status
#   bash scripts/services.sh restart etcd|zookeeper|postgres [DOWN]   # one store, on its data,
#                                      # down for DOWN seconds in between (default 0)
#   source "$VAMP_SVC_DIR/env"         # after start: VAMP_TEST_SERVICES and the addresses
#
# Services: docker (a private dockerd with no bridge network, on its own socket; with
# VAMP_SVC_SWARM=1, the default, it is also a one-node Swarm manager listening on
# 127.0.0.1:$SWARM_PORT, default 23770, with the ingress mesh and docker_gwbridge removed so
# services use host networking on loopback only; listed as the service `swarm`), etcd (v3 on
# 127.0.0.1:$ETCD_PORT, default 23790, peer port $ETCD_PEER_PORT, default 23800), postgres
# (PostgreSQL on 127.0.0.1:$PG_PORT, default 20432, trust auth, fsync off), zookeeper
# (standalone ZooKeeper 3.8 on 127.0.0.1:$ZK_PORT, default 21810, run with java directly,
# 256 MiB heap, jute.maxbuffer 8 MiB so 1 MiB values fit, admin server off) and haproxy
# (installed and checked only: every HAProxy test starts its own master-worker instance on free
# ports through vamp_gateway::haproxy::process) and prometheus (installed and checked only: each
# provider test starts a private Prometheus scraping its own targets, through
# vamp_core::testkit::services::PrivatePrometheus) and chromium (Debian's chromium and
# chromium-driver, installed and checked only: the web UI's browser tests start their own
# chromedriver, examples/server/tests/ui.rs). Needs root on Debian 12.
# Every PID is recorded with its kernel start time; stop signals a PID only if
# it still is the process that was started, so a reused PID is never touched.
set -uo pipefail
umask 022

DIR=${VAMP_SVC_DIR:-/tmp/vamp-svc}
PIDS=$DIR/pids
SERVICES=${VAMP_SVC_LIST:-docker etcd zookeeper postgres haproxy prometheus chromium}
PG_PORT=${PG_PORT:-20432}
ETCD_PORT=${ETCD_PORT:-23790}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-23800}
ZK_PORT=${ZK_PORT:-21810}
SWARM=${VAMP_SVC_SWARM:-1}
SWARM_PORT=${SWARM_PORT:-23770}
# zookeeper.jar's manifest lists its dependencies; slf4j-simple makes its log readable.
ZK_CLASSPATH=/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar
export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 DOCKER_BUILDKIT=0

log() { printf '[services %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
has() { case " $SERVICES " in *" $1 "*) return 0;; esac; return 1; }

# Field 22 of /proc/PID/stat (after the parenthesised command name).
starttime() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; set -- $s; echo "${20}"; }
record()    { echo "$1 $2 $(starttime "$2")" >> "$PIDS"; }
is_ours()   { [ -n "${2:-}" ] && [ "$(starttime "$1" 2>/dev/null)" = "$2" ]; }

pkgs_for() {
  case $1 in
    docker) echo docker.io busybox-static iproute2 ;;
    haproxy) echo haproxy ;;
    prometheus) echo prometheus ;;
    chromium) echo chromium chromium-driver ;;
    etcd) echo etcd-server ;;
    zookeeper) echo zookeeper ;;   # zookeeperd (init scripts) is not needed
    postgres) echo postgresql ;;
  esac
}

ensure_packages() {
  local want=() missing=() p s made_policy=0
  for s in $SERVICES; do want+=($(pkgs_for "$s")); done
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing packages ${missing[*]}: run as root"
  # Keep postinst scripts from starting daemons (dockerd would take the default bridge).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; made_policy=1
  fi
  log "installing ${missing[*]}"
  apt-get install -y -q --no-install-recommends "${missing[@]}" >> "$DIR/apt.log" 2>&1 \
    || { apt-get update -q >> "$DIR/apt.log" 2>&1 && apt-get install -y -q --no-install-recommends "${missing[@]}" >> "$DIR/apt.log" 2>&1; }
  local rc=$?
  [ $made_policy -eq 1 ] && rm -f /usr/sbin/policy-rc.d
  [ $rc -eq 0 ] || { tail -n 20 "$DIR/apt.log" >&2; die "apt-get install failed"; }
}

umount_leftovers() {   # dockerd leaves an nsfs mount at exec/netns/default
  awk -v d="$DIR/docker/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}

pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1; }
pg_ok() { "$(pgbin)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }
# `ruok` answers before the server serves sessions; `srvr` reports a mode only once it does.
zk_ok() { local r; r=$(exec 3<>"/dev/tcp/127.0.0.1/$ZK_PORT" && printf srvr >&3 && timeout 2 cat <&3); [[ $r == *"Mode: "* ]]; }
etcd_ok() { curl -sf -m 2 "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }

wait_for() {   # NAME PID SECONDS CMD...: bounded, fails fast if the process died
  local name=$1 pid=$2 deadline=$((SECONDS + $3)); shift 3
  until "$@" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { log "$name died while starting:"; tail -n 20 "$DIR/$name.log" >&2; return 1; }
    [ "$SECONDS" -lt "$deadline" ] || { log "$name not ready:"; tail -n 20 "$DIR/$name.log" >&2; return 1; }
    sleep 0.1
  done
}

# The stores, started on their data in $DIR (kept by `restart`, made afresh by `start`).
start_etcd() {
  nohup etcd --name vamp-test --data-dir "$DIR/etcd" --logger=zap --log-outputs=stderr \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "vamp-test=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state new \
    >> "$DIR/etcd.log" 2>&1 < /dev/null &
  record etcd $!
  wait_for etcd $! 30 etcd_ok
}

start_zookeeper() {
  mkdir -p "$DIR/zookeeper/data"
  printf '%s\n' tickTime=2000 initLimit=10 syncLimit=5 "dataDir=$DIR/zookeeper/data" \
    "clientPort=$ZK_PORT" clientPortAddress=127.0.0.1 4lw.commands.whitelist=ruok,srvr \
    admin.enableServer=false > "$DIR/zookeeper/zoo.cfg"
  nohup java -Xmx256m -Djute.maxbuffer=8388608 -cp "$ZK_CLASSPATH" \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$DIR/zookeeper/zoo.cfg" \
    >> "$DIR/zookeeper.log" 2>&1 < /dev/null &
  record zookeeper $!
  wait_for zookeeper $! 60 zk_ok
}

start_postgres() {
  local pg; pg=$(pgbin)
  runuser -u postgres -- "$pg/pg_ctl" -D "$DIR/pg/data" -l "$DIR/pg/postgres.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $DIR/pg -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start > /dev/null || { tail -n 25 "$DIR/pg/postgres.log" >&2; log "pg_ctl start failed"; return 1; }
  record postgres "$(head -n1 "$DIR/pg/data/postmaster.pid")"
  wait_for postgres "$(head -n1 "$DIR/pg/data/postmaster.pid")" 30 pg_ok
}

# Stops one store of an earlier start (by its recorded PID) and starts it again on its data:
# what the failover checks of scripts/ha-demo.sh do to the election's store.
cmd_restart() {
  local want=${1:-} name pid st
  case $want in etcd|zookeeper|postgres) ;; *) die "restart etcd|zookeeper|postgres" ;; esac
  [ -f "$PIDS" ] && grep -q "^$want " "$PIDS" || die "$want was not started here"
  read -r name pid st < <(grep "^$want " "$PIDS")
  if is_ours "$pid" "$st"; then
    if [ "$want" = postgres ]; then kill -INT "$pid"; else kill -TERM "$pid"; fi
    local deadline=$((SECONDS + 30))
    while is_ours "$pid" "$st" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    is_ours "$pid" "$st" && { log "$want ($pid) still runs: SIGKILL"; kill -KILL "$pid"; }
  fi
  grep -v "^$want " "$PIDS" > "$PIDS.new"; mv "$PIDS.new" "$PIDS"
  # Down for a while if asked (longer than a leader's lease: an election follows).
  sleep "${2:-0}"
  "start_$want" || die "$want did not start again"
  log "restarted $want"
}

cmd_start() {
  mkdir -p "$DIR"
  if [ -f "$PIDS" ]; then
    local name pid st
    while read -r name pid st; do is_ours "$pid" "$st" && die "$name ($pid) from an earlier start still runs: $0 stop"; done < "$PIDS"
  fi
  umount_leftovers
  rm -rf "$DIR/docker" "$DIR/etcd" "$DIR/zookeeper" "$DIR/pg" "$PIDS" "$DIR/env"
  ensure_packages
  local list=""
  : > "$DIR/env"
  if has docker; then
    mkdir -p "$DIR/docker"
    export DOCKER_HOST=unix://$DIR/docker/docker.sock
    # No bridge, no iptables: containers use host networking on loopback only.
    nohup dockerd --data-root "$DIR/docker/root" --exec-root "$DIR/docker/exec" \
      --pidfile "$DIR/docker/dockerd.pid" -H "$DOCKER_HOST" \
      --bridge=none --iptables=false --ip-forward=false --ip-masq=false --userland-proxy=false \
      --storage-driver=overlay2 --shutdown-timeout=3 > "$DIR/docker.log" 2>&1 < /dev/null &
    record docker $!
    wait_for docker $! 60 docker version || { cmd_stop; exit 1; }
    echo "export VAMP_TEST_DOCKER=$DOCKER_HOST DOCKER_HOST=$DOCKER_HOST DOCKER_BUILDKIT=0" >> "$DIR/env"
    list="$list docker"
    if [ "$SWARM" = 1 ]; then
      swarm_init || { log "swarm init failed"; cmd_stop; exit 1; }
      echo "export VAMP_TEST_SWARM=$DOCKER_HOST" >> "$DIR/env"
      list="$list swarm"
    fi
  fi
  if has etcd; then
    start_etcd || { cmd_stop; exit 1; }
    # The binary too: outage tests start private instances of their own.
    echo "export VAMP_TEST_ETCD=http://127.0.0.1:$ETCD_PORT VAMP_TEST_ETCD_BIN=$(command -v etcd)" >> "$DIR/env"
    list="$list etcd"
  fi
  if has zookeeper; then
    start_zookeeper || { cmd_stop; exit 1; }
    # The classpath too: outage tests start private servers of their own.
    echo "export VAMP_TEST_ZOOKEEPER=127.0.0.1:$ZK_PORT VAMP_TEST_ZOOKEEPER_CLASSPATH=$ZK_CLASSPATH" >> "$DIR/env"
    list="$list zookeeper"
  fi
  if has postgres; then
    local pg; pg=$(pgbin)
    [ -x "$pg/initdb" ] || { cmd_stop; die "no PostgreSQL server under /usr/lib/postgresql"; }
    mkdir -p "$DIR/pg"; chown postgres:postgres "$DIR/pg"
    runuser -u postgres -- "$pg/initdb" -D "$DIR/pg/data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
      > "$DIR/postgres-initdb.log" 2>&1 || { cat "$DIR/postgres-initdb.log" >&2; cmd_stop; die "initdb failed"; }
    start_postgres || { cmd_stop; exit 1; }
    # The server binaries too: outage tests start private clusters of their own.
    echo "export VAMP_TEST_POSTGRES=postgres://postgres@127.0.0.1:$PG_PORT/postgres VAMP_TEST_POSTGRES_BIN=$pg" >> "$DIR/env"
    list="$list postgres"
  fi
  if has haproxy; then
    command -v haproxy > /dev/null || die "haproxy is not on PATH after installing it"
    echo "export VAMP_TEST_HAPROXY=$(command -v haproxy)" >> "$DIR/env"
    list="$list haproxy"
  fi
  if has prometheus; then
    command -v prometheus > /dev/null || die "prometheus is not on PATH after installing it"
    echo "export VAMP_TEST_PROMETHEUS=$(command -v prometheus)" >> "$DIR/env"
    list="$list prometheus"
  fi
  if has chromium; then
    # The web UI's browser tests start their own chromedriver (and it its Chromium).
    command -v chromedriver > /dev/null || die "chromedriver is not on PATH after installing chromium-driver"
    command -v chromium > /dev/null || die "chromium is not on PATH after installing it"
    echo "export VAMP_TEST_CHROMIUM=$(command -v chromedriver) VAMP_TEST_CHROMIUM_BIN=$(command -v chromium)" >> "$DIR/env"
    list="$list chromium"
  fi
  echo "export VAMP_TEST_SERVICES='${list# }'" >> "$DIR/env"
  log "started:$list"
}

# A one-node Swarm on loopback (shared/services.md): the manager listens on 127.0.0.1 only, and
# the ingress overlay (10.0.0.0/24) and docker_gwbridge (172.x) are removed, so services run
# with host networking and nothing listens beyond loopback.
swarm_init() {
  timeout 60 docker swarm init --advertise-addr 127.0.0.1 --listen-addr "127.0.0.1:$SWARM_PORT" \
    --data-path-addr 127.0.0.1 > /dev/null || return 1
  echo y | docker network rm ingress > /dev/null 2>&1
  local i
  for i in $(seq 100); do docker network inspect ingress > /dev/null 2>&1 || break; sleep 0.1; done
  for i in $(seq 50); do
    docker network rm docker_gwbridge > /dev/null 2>&1 || ! docker network inspect docker_gwbridge > /dev/null 2>&1 && break
    sleep 0.1
  done
  # dockerd may drop the network object but leave the Linux bridge behind.
  if ip link show docker_gwbridge > /dev/null 2>&1; then ip link delete docker_gwbridge || return 1; fi
  ! docker network inspect ingress > /dev/null 2>&1
}

cmd_stop() {
  [ -f "$PIDS" ] || { umount_leftovers; return 0; }
  local name pid st
  if grep -q '^docker ' "$PIDS"; then
    export DOCKER_HOST=unix://$DIR/docker/docker.sock
    # Swarm services first (their tasks would be restarted), then containers, or dockerd
    # waits out each one's stop timeout.
    if [ "$(timeout 10 docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)" = active ]; then
      timeout 30 docker service ls -q 2>/dev/null | xargs -r timeout 30 docker service rm > /dev/null 2>&1
      timeout 30 docker swarm leave --force > /dev/null 2>&1
    fi
    timeout 30 docker ps -aq 2>/dev/null | xargs -r timeout 30 docker rm -f > /dev/null 2>&1
  fi
  # PostgreSQL: SIGINT is the fast shutdown (SIGTERM would wait for every client).
  while read -r name pid st; do
    is_ours "$pid" "$st" || continue
    if [ "$name" = postgres ]; then kill -INT "$pid"; else kill -TERM "$pid"; fi
  done < "$PIDS"
  local deadline=$((SECONDS + 30))
  while read -r name pid st; do
    while is_ours "$pid" "$st" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    is_ours "$pid" "$st" && { log "$name ($pid) still runs: SIGKILL"; kill -KILL "$pid"; }
  done < "$PIDS"
  umount_leftovers
  rm -f "$PIDS" "$DIR/docker/docker.sock"
  log "stopped"
}

cmd_status() {
  [ -f "$PIDS" ] || { echo "not started"; return 1; }
  local name pid st
  while read -r name pid st; do
    if is_ours "$pid" "$st"; then echo "$name $pid running"; else echo "$name $pid gone"; fi
  done < "$PIDS"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_restart "${2:-}" "${3:-0}" ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|status|restart STORE" >&2; exit 2 ;;
esac
