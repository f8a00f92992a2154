#!/usr/bin/env bash
# scripts/proxy-vs-haproxy.sh: the embedded router against plain HAProxy, side by side, in one
# run (issue 21). Both split the same traffic 90/10 over the same two backends (two
# `vamp-server demo-app` processes), on the same number of threads (HAProxy's `nbthread`,
# the embedded router's `router.workers`); wrk drives them alternately, round after round,
# and the script prints requests/s, p50 and p99 of each round and the ratios of the means.
#
#   bash scripts/proxy-vs-haproxy.sh                       # threads 1 and 2, 3 rounds of 8 s
#   THREADS="1" ROUNDS=5 SECONDS_PER_ROUND=10 CONNECTIONS=64 bash scripts/proxy-vs-haproxy.sh
#   EXTRA=condition bash scripts/proxy-vs-haproxy.sh       # a condition checked on every request
#   EXTRA=gateways bash scripts/proxy-vs-haproxy.sh        # with 1 000 more gateways loaded
#   VAMP_SERVER_BIN=/tmp/vamp-server-before bash scripts/proxy-vs-haproxy.sh   # another build
#
# Everything listens on 127.0.0.1 (ports 27600-27699, 29000-29099 and, with EXTRA=gateways,
# 28000-28999), every run is bounded (wrk -d), and the script stops exactly the processes it
# started (by PID) when it ends, however it ends (KEEP=1 keeps their logs). Installs haproxy
# and wrk with apt when missing (root).
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=${THREADS:-"1 2"}
ROUNDS=${ROUNDS:-3}
EXTRA=${EXTRA:-}
BACKEND_A=27601 BACKEND_B=27602 HAPROXY_PORT=27611 ROUTER_PORT=27612 API_PORT=27620
source scripts/lib/side-by-side.sh
need wrk wrk
need curl curl
HAPROXY=${HAPROXY:-$(command -v haproxy || true)}
[ -n "$HAPROXY" ] || { need haproxy haproxy; HAPROXY=$(command -v haproxy); }
ports_free $BACKEND_A $BACKEND_B $HAPROXY_PORT $ROUTER_PORT $API_PORT
build_server

# Waits (at most 20 s) until something answers HTTP on the port.
wait_http() { wait_url "http://127.0.0.1:$1${2:-/}"; }

"$SERVER" demo-app --port $BACKEND_A --app-version a > "$WORK/a.log" 2>&1 &
PIDS+=($!)
"$SERVER" demo-app --port $BACKEND_B --app-version b > "$WORK/b.log" 2>&1 &
PIDS+=($!)
BACKENDS=("${PIDS[@]}")
wait_http $BACKEND_A
wait_http $BACKEND_B

condition_haproxy=""
condition_route=""
if [ "$EXTRA" = condition ]; then
  # Requests with header X-Canary would go to b (strength 100%), as a Vamp condition does:
  # every request is checked, none has it, so the split stays 90/10.
  condition_haproxy="  acl canary hdr_cnt(X-Canary) gt 0
  use_backend only_b if canary"
  condition_route=", condition: \"has header X-Canary\", condition_strength: 100%"
fi

echo "embedded router vs HAProxy $("$HAPROXY" -v | head -1 | awk '{print $3}'): 90/10 over two demo apps," \
  "wrk 1 thread, $CONNECTIONS connections, $ROUNDS rounds of ${SECONDS_PER_ROUND}s${EXTRA:+, extra: $EXTRA}"
printf '%-8s %-6s %-10s %12s %9s %9s %7s\n' threads round proxy "requests/s" "p50 ms" "p99 ms" errors

for threads in $THREADS; do
  cat > "$WORK/haproxy.cfg" << EOF
global
  nbthread $threads
  maxconn 4000
defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend bench
  bind 127.0.0.1:$HAPROXY_PORT
$condition_haproxy
  default_backend split
backend split
  balance roundrobin
  http-reuse always
  server a 127.0.0.1:$BACKEND_A weight 90
  server b 127.0.0.1:$BACKEND_B weight 10
backend only_b
  http-reuse always
  server b 127.0.0.1:$BACKEND_B
EOF
  "$HAPROXY" -f "$WORK/haproxy.cfg" -db > "$WORK/haproxy.log" 2>&1 &
  PIDS+=($!)
  VAMP_SERVER__LISTEN=127.0.0.1:$API_PORT VAMP_SERVER__DATA_DIR="$WORK/data-$threads" \
    VAMP_PERSISTENCE__KIND=memory VAMP_ROUTER__WORKERS=$threads VAMP_DRIVER__KIND=process \
    VAMP_WORKFLOWS__PERIOD=0 VAMP_SLA__PERIOD=0 VAMP_ROLLOUTS__PERIOD=0 \
    VAMP_GATEWAYS__PORTS=29000-29099 \
    "$SERVER" > "$WORK/server.log" 2>&1 &
  PIDS+=($!)
  wait_http $HAPROXY_PORT
  wait_http $API_PORT /api/v1/info
  curl -fs -o /dev/null -X POST "http://127.0.0.1:$API_PORT/api/v1/gateways" -H 'content-type: application/x-yaml' \
    --data-binary "name: bench
port: $ROUTER_PORT/http
routes:
  '[127.0.0.1:$BACKEND_A]': {weight: 90%}
  '[127.0.0.1:$BACKEND_B]': {weight: 10%$condition_route}
"
  if [ "$EXTRA" = gateways ]; then
    for i in $(seq 0 999); do
      printf -- "---\nkind: gateways\nname: extra-%d\nport: %d/http\nroutes:\n  '[127.0.0.1:%d]': {weight: 100%%}\n" \
        "$i" $((28000 + i)) $BACKEND_A
    done > "$WORK/extra.yaml"
    curl -fs -o /dev/null -X POST "http://127.0.0.1:$API_PORT/api/v1" -H 'content-type: application/x-yaml' \
      --data-binary @"$WORK/extra.yaml"
  fi
  wait_http $ROUTER_PORT
  # Warm both up (connection pools, caches) before the first measured round.
  wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$HAPROXY_PORT/" > /dev/null
  wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$ROUTER_PORT/" > /dev/null
  for round in $(seq "$ROUNDS"); do
    for proxy in haproxy embedded; do
      port=$HAPROXY_PORT
      [ $proxy = embedded ] && port=$ROUTER_PORT
      read -r rps p50 p99 errors <<< "$(wrk_round "http://127.0.0.1:$port/")"
      printf '%-8s %-6s %-10s %12s %9s %9s %7s\n' "$threads" "$round" $proxy "$rps" "$p50" "$p99" "$errors"
      echo "$threads $proxy $rps $p50 $p99" >> "$WORK/results"
    done
  done
  # This thread count's HAProxy and server stop; the backends stay.
  for pid in "${PIDS[@]}"; do
    case " ${BACKENDS[*]} " in *" $pid "*) ;; *) kill "$pid" 2> /dev/null || true; wait "$pid" 2> /dev/null || true ;; esac
  done
  PIDS=("${BACKENDS[@]}")
done

echo
echo "means (embedded / HAProxy):"
awk '
  { n[$1" "$2]++; rps[$1" "$2] += $3; p50[$1" "$2] += $4; p99[$1" "$2] += $5; t[$1] = 1 }
  END {
    for (th in t) {
      h = th" haproxy"; e = th" embedded"
      printf "threads %s: requests/s %.0f vs %.0f = %.2fx; p50 %.3f vs %.3f ms = %.2fx; p99 %.3f vs %.3f ms = %.2fx\n",
        th, rps[e]/n[e], rps[h]/n[h], (rps[e]/n[e])/(rps[h]/n[h]),
        p50[e]/n[e], p50[h]/n[h], (p50[e]/n[e])/(p50[h]/n[h]),
        p99[e]/n[e], p99[h]/n[h], (p99[e]/n[e])/(p99[h]/n[h])
    }
  }' "$WORK/results" | sort
