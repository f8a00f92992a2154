# scripts/lib/side-by-side.sh: what the load scripts share (proxy-vs-haproxy.sh,
# many-gateways.sh, mirror-bench.sh). Sourced, not run. After sourcing:
#   need <command> <package>       installs a missing tool with apt (as root) or stops
#   ports_free <port>...           stops if one of the loopback ports is taken
#   build_server                   builds the release vamp-server; sets SERVER (VAMP_SERVER_BIN
#                                  names a binary to use instead: a before/after comparison)
#   start <command...> > log &     then `started $!` records the PID; every recorded process is
#                                  stopped (by PID) when the script ends, however it ends, and
#                                  $WORK is removed unless KEEP=1
#   wait_url <url> [curl args]     waits at most 20 s for a 2xx
#   wrk_round <url> [wrk args]     one bounded wrk run: "requests/s p50_ms p99_ms errors"
# Uses ROUNDS-independent settings CONNECTIONS and SECONDS_PER_ROUND (set before sourcing).

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/vamp/target}
CONNECTIONS=${CONNECTIONS:-32}
SECONDS_PER_ROUND=${SECONDS_PER_ROUND:-8}

need() {
  command -v "$1" > /dev/null 2>&1 && return
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" > /dev/null
  else
    echo "missing $1: apt-get install $2 (as root)" >&2
    exit 1
  fi
}

ports_free() {
  local port
  for port in "$@"; do
    if ss -ltnH "sport = :$port" | grep -q .; then
      echo "port $port is taken on this machine: free it or edit the ports at the top" >&2
      exit 1
    fi
  done
}

build_server() {
  if [ -n "${VAMP_SERVER_BIN:-}" ]; then
    SERVER=$VAMP_SERVER_BIN
    return
  fi
  cargo build -q --release -p vamp-server
  SERVER=$CARGO_TARGET_DIR/release/vamp-server
}

WORK=$(mktemp -d)
PIDS=()
started() { PIDS+=("$1"); }
stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2> /dev/null || true; done
  PIDS=()
}
trap 'stop_all; [ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT

wait_url() {
  local url=$1
  shift
  for _ in $(seq 200); do
    curl -fs -o /dev/null "$@" "$url" && return 0
    sleep 0.1
  done
  echo "nothing answers $url after 20 s" >&2
  exit 1
}

wrk_round() {
  local url=$1 out
  shift
  out=$(wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_ROUND}s" --latency "$@" "$url")
  awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec:/ { rps = $2 }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    /Non-2xx or 3xx responses:/ { errors += $5 }
    /Socket errors:/ { errors += $4 + $6 + $8 + $10 }
    END { printf "%.0f %.3f %.3f %d\n", rps, p50, p99, errors + 0 }' <<< "$out"
}
