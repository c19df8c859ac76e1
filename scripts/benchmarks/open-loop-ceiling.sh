#!/usr/bin/env bash
# The open-loop rate one load-generator process sustains with send-lag p99 under 1 ms, against
# the built-in server on the same machine (current-thread runtime, sharing the cores).
#
#   scripts/benchmarks/open-loop-ceiling.sh [BIN_DIR] [ENGINE] [-- extra loadgen flags, e.g. --realtime]
#
# BIN_DIR holds wsbench-server and wsbench-loadgen (default target/release); ENGINE is
# tungstenite (default) or zero-alloc. Prints one line per rate and the highest rate whose send
# lag p99 stayed under 1 ms. Figures depend on what else the machine runs: compare builds in
# one session, interleaved.
set -euo pipefail
BIN=${1:-target/release}
ENGINE=${2:-tungstenite}
shift $(( $# >= 2 ? 2 : $# ))
[[ ${1:-} == -- ]] && shift
EXTRA=("$@")
RATES=${RATES:-"2000 5000 10000 20000 40000 80000 120000"}
. "$(dirname "$0")/server.sh"
start_server "$BIN" --runtime current-thread

best=0
for rate in $RATES; do
  # Exit 1 (a stalled echo, say) still leaves a summary worth reading.
  "$BIN/wsbench-loadgen" --url "ws://$ADDR/" --engine "$ENGINE" --connections 50 --rate "$rate" \
    --warmup 1s --duration 3s --drain-timeout 1s ${EXTRA[@]+"${EXTRA[@]}"} --out "$OUT/r$rate" 2>/dev/null || true
  line=$(python3 - "$OUT/r$rate/summary.json" "$rate" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
g, l = s["send_lag_us"], s["latency_us"]
ok = g["p99"] < 1000 and s["throughput_msgs_per_s"] >= 0.95 * float(sys.argv[2])
print(f"{'ok' if ok else 'no'} rate {sys.argv[2]:>7}: sent {s['rate']['sent_msgs_per_s']:>9.0f}/s  answered {s['throughput_msgs_per_s']:>9.0f}/s  "
      f"send lag p50 {g['p50']:>8.0f} µs p99 {g['p99']:>8.0f} µs  latency p99 {l['p99']:>9.0f} µs  busiest thread {s['cpu']['busiest_thread_pct']:.0f} %")
PY
)
  echo "${line#* }"
  [[ $line == ok* ]] && best=$rate
done
echo "highest rate with send-lag p99 < 1 ms: $best msgs/s ($ENGINE ${EXTRA[*]:-})"
