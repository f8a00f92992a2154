#!/usr/bin/env bash
# scripts/many-gateways.sh: 10 000 gateways in one server (issue 21). Starts a release
# `vamp-server` (SQLite persistence, embedded router with a shared virtual-host listener) and
# one `demo-app` backend, then
#   1. creates N gateways through the API, one POST each (8 at a time), each with a virtual
#      host of its own and no port — and prints how long that took;
#   2. checks that they page (`X-Total-Count`), prints the server's resident memory;
#   3. drives the 1st and the Nth host alternately with wrk on the shared listener and prints
#      both rates and their ratio.
# The HAProxy render of N gateways is measured by `cargo bench -p vamp-benches --bench
# gateway -- render` (docs/performance.md).
#
#   bash scripts/many-gateways.sh                   # N=10000, 3 rounds of 5 s, 32 connections
#   N=2000 ROUNDS=5 bash scripts/many-gateways.sh
#
# Everything listens on 127.0.0.1 (ports 27720-27722), every run is bounded, and the script
# stops exactly the processes it started (by PID), however it ends (KEEP=1 keeps the logs).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-10000}
ROUNDS=${ROUNDS:-3}
SECONDS_PER_ROUND=${SECONDS_PER_ROUND:-5}
API_PORT=27720 VHOST_PORT=27721 BACKEND=27722
source scripts/lib/side-by-side.sh
need wrk wrk
need curl curl
ports_free $API_PORT $VHOST_PORT $BACKEND
build_server

"$SERVER" demo-app --port $BACKEND --app-version a > "$WORK/backend.log" 2>&1 &
started $!
VAMP_SERVER__LISTEN=127.0.0.1:$API_PORT VAMP_SERVER__DATA_DIR="$WORK/data" \
  VAMP_DRIVER__KIND=process VAMP_WORKFLOWS__PERIOD=0 VAMP_SLA__PERIOD=0 VAMP_ROLLOUTS__PERIOD=0 \
  VAMP_GATEWAYS__VHOST_LISTEN=127.0.0.1:$VHOST_PORT VAMP_ROUTER__WORKERS=1 \
  "$SERVER" > "$WORK/server.log" 2>&1 &
SERVER_PID=$!
started $SERVER_PID
wait_url "http://127.0.0.1:$BACKEND/"
wait_url "http://127.0.0.1:$API_PORT/api/v1/info"

# One curl config per 8th of the gateways, run side by side: N POSTs in all.
api="http://127.0.0.1:$API_PORT/api/v1/gateways"
for part in $(seq 0 7); do
  for i in $(seq "$part" 8 $((N - 1))); do
    [ "$i" = "$part" ] || echo next
    printf 'url = "%s"\nheader = "content-type: application/x-yaml"\nfail\noutput = /dev/null\n' "$api"
    printf 'data-binary = "name: g%d\\nvirtual_hosts: [host%d.example]\\nroutes:\\n  \x27[127.0.0.1:%d]\x27: {weight: 100%%}\\n"\n' "$i" "$i" $BACKEND
  done > "$WORK/create-$part.curl"
done
echo "creating $N gateways through the API (one POST each, 8 clients)..."
t0=$(date +%s.%N)
for part in $(seq 0 7); do
  curl -s --config "$WORK/create-$part.curl" > "$WORK/create-$part.out" 2>&1 &
  CREATORS[$part]=$!
done
failed=0
for part in $(seq 0 7); do wait "${CREATORS[$part]}" || failed=1; done
t1=$(date +%s.%N)
[ $failed = 0 ] || { echo "some POSTs failed:" >&2; cat "$WORK"/create-*.out >&2; exit 1; }
total=$(curl -fs -D - -o /dev/null "$api?per_page=1" | awk -F': ' 'tolower($1) == "x-total-count" { print $2 + 0 }')
[ "$total" = "$N" ] || { echo "$total gateways listed, $N created" >&2; exit 1; }
wait_url "http://127.0.0.1:$VHOST_PORT/" -H "host: host$((N - 1)).example"
rss=$(awk '/VmRSS/ { print $2 }' /proc/$SERVER_PID/status)
hwm=$(awk '/VmHWM/ { print $2 }' /proc/$SERVER_PID/status)
awk -v n="$N" -v a="$t0" -v b="$t1" -v rss="$rss" -v hwm="$hwm" 'BEGIN {
  printf "created %d gateways in %.1f s (%.0f/s); %d listed; server RSS %.0f MB (peak %.0f MB)\n",
    n, b - a, n / (b - a), n, rss / 1024, hwm / 1024 }'

first=host0.example last=host$((N - 1)).example
wrk -t1 -c"$CONNECTIONS" -d2s -H "Host: $first" "http://127.0.0.1:$VHOST_PORT/" > /dev/null
printf '%-6s %-20s %12s %9s %7s\n' round host "requests/s" "p99 ms" errors
for round in $(seq "$ROUNDS"); do
  for host in $first $last; do
    read -r rps _ p99 errors <<< "$(wrk_round "http://127.0.0.1:$VHOST_PORT/" -H "Host: $host")"
    printf '%-6s %-20s %12s %9s %7s\n' "$round" "$host" "$rps" "$p99" "$errors"
    echo "$host $rps" >> "$WORK/results"
  done
done
awk -v first=$first -v last=$last '
  { n[$1]++; rps[$1] += $2 }
  END { printf "mean requests/s: 1st host %.0f, %s %.0f = %.3fx\n", rps[first]/n[first], last, rps[last]/n[last], (rps[last]/n[last])/(rps[first]/n[first]) }' "$WORK/results"
