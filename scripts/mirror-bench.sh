#!/usr/bin/env bash
# scripts/mirror-bench.sh: does mirroring cost the client anything? (issue 21). One release
# `vamp-server` (embedded router, one worker) serves two gateways over the same `demo-app`
# backend: `plain`, and `mirrored`, whose route copies 100 % of its requests to a second
# demo-app that takes 1 s per answer. wrk drives the two alternately, round after round, and
# the script prints requests/s, p50 and p99 of each and the ratios of the means.
#
#   bash scripts/mirror-bench.sh                 # 3 rounds of 8 s, 32 connections
#   ROUNDS=5 SECONDS_PER_ROUND=10 bash scripts/mirror-bench.sh
#
# Everything listens on 127.0.0.1 (ports 27730-27734), every run is bounded, and the script
# stops exactly the processes it started (by PID), however it ends (KEEP=1 keeps the logs).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
API_PORT=27730 PLAIN=27731 MIRRORED=27732 BACKEND=27733 SLOW=27734
source scripts/lib/side-by-side.sh
need wrk wrk
need curl curl
ports_free $API_PORT $PLAIN $MIRRORED $BACKEND $SLOW
build_server

"$SERVER" demo-app --port $BACKEND --app-version a > "$WORK/backend.log" 2>&1 &
started $!
VAMP_DEMO_LATENCY_MS=1000 "$SERVER" demo-app --port $SLOW --app-version slow > "$WORK/slow.log" 2>&1 &
started $!
VAMP_SERVER__LISTEN=127.0.0.1:$API_PORT VAMP_SERVER__DATA_DIR="$WORK/data" \
  VAMP_PERSISTENCE__KIND=memory VAMP_DRIVER__KIND=process VAMP_ROUTER__WORKERS=1 \
  VAMP_WORKFLOWS__PERIOD=0 VAMP_SLA__PERIOD=0 VAMP_ROLLOUTS__PERIOD=0 \
  "$SERVER" > "$WORK/server.log" 2>&1 &
started $!
wait_url "http://127.0.0.1:$BACKEND/"
wait_url "http://127.0.0.1:$API_PORT/api/v1/info"
api="http://127.0.0.1:$API_PORT/api/v1/gateways"
curl -fs -o /dev/null -X POST "$api" -H 'content-type: application/x-yaml' --data-binary "name: plain
port: $PLAIN/http
routes:
  '[127.0.0.1:$BACKEND]': {weight: 100%}
"
curl -fs -o /dev/null -X POST "$api" -H 'content-type: application/x-yaml' --data-binary "name: mirrored
port: $MIRRORED/http
routes:
  '[127.0.0.1:$BACKEND]':
    weight: 100%
    mirror: {target: '127.0.0.1:$SLOW', percentage: 100%}
"
wait_url "http://127.0.0.1:$PLAIN/"
wait_url "http://127.0.0.1:$MIRRORED/"

echo "mirroring 100% to an instance that answers in 1 s: wrk 1 thread, $CONNECTIONS connections, $ROUNDS rounds of ${SECONDS_PER_ROUND}s"
wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$PLAIN/" > /dev/null
wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$MIRRORED/" > /dev/null
printf '%-6s %-10s %12s %9s %9s %7s\n' round gateway "requests/s" "p50 ms" "p99 ms" errors
for round in $(seq "$ROUNDS"); do
  for gateway in plain mirrored; do
    port=$PLAIN
    [ $gateway = mirrored ] && port=$MIRRORED
    read -r rps p50 p99 errors <<< "$(wrk_round "http://127.0.0.1:$port/")"
    printf '%-6s %-10s %12s %9s %9s %7s\n' "$round" $gateway "$rps" "$p50" "$p99" "$errors"
    echo "$gateway $rps $p50 $p99" >> "$WORK/results"
  done
done
awk '
  { n[$1]++; rps[$1] += $2; p50[$1] += $3; p99[$1] += $4 }
  END {
    printf "means (mirrored / plain): requests/s %.0f vs %.0f = %.2fx; p50 %.3f vs %.3f ms = %.2fx; p99 %.3f vs %.3f ms = %.2fx\n",
      rps["mirrored"]/n["mirrored"], rps["plain"]/n["plain"], (rps["mirrored"]/n["mirrored"])/(rps["plain"]/n["plain"]),
      p50["mirrored"]/n["mirrored"], p50["plain"]/n["plain"], (p50["mirrored"]/n["mirrored"])/(p50["plain"]/n["plain"]),
      p99["mirrored"]/n["mirrored"], p99["plain"]/n["plain"], (p99["mirrored"]/n["mirrored"])/(p99["plain"]/n["plain"])
  }' "$WORK/results"
