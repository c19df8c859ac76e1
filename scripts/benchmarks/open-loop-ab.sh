#!/usr/bin/env bash
# Two load-generator builds against the built-in server, interleaved A B A B, at one open-loop
# rate: CPU per message, send lag and answered msgs/s of each, medians with their spread, and
# the ratios new/old.
#
#   scripts/benchmarks/open-loop-ab.sh OLD_BIN_DIR NEW_BIN_DIR [-- extra loadgen flags]
#
# Environment: RATE (default 20000), CONNECTIONS (50), PAIRS (5), ENGINE (zero-alloc),
# DURATION (3s), NEW_EXTRA (flags for the new build only, e.g. "--spin 20us").
# CPU per message is the load generator's process CPU over the measured window (summary
# cpu.process_pct) divided by the messages it sent per second. The machine is shared: read the
# spread before the medians.
set -euo pipefail
OLD=$1 NEW=$2
shift 2
[[ ${1:-} == -- ]] && shift
EXTRA=("$@")
RATE=${RATE:-20000} CONNECTIONS=${CONNECTIONS:-50} PAIRS=${PAIRS:-5} ENGINE=${ENGINE:-zero-alloc} DURATION=${DURATION:-3s}
read -r -a NEW_EXTRA <<<"${NEW_EXTRA:-}"
. "$(dirname "$0")/server.sh"
start_server "$NEW" --runtime current-thread

run() { # label bin extra...
  local label=$1 bin=$2; shift 2
  "$bin/wsbench-loadgen" --url "ws://$ADDR/" --engine "$ENGINE" --connections "$CONNECTIONS" --threads 1 --rate "$RATE" \
    --warmup 1s --duration "$DURATION" --drain-timeout 1s ${EXTRA[@]+"${EXTRA[@]}"} "$@" --out "$OUT/$label" 2>/dev/null || true
}
for i in $(seq "$PAIRS"); do
  run "old-$i" "$OLD"
  run "new-$i" "$NEW" ${NEW_EXTRA[@]+"${NEW_EXTRA[@]}"}
done

python3 - "$OUT" "$PAIRS" "$RATE" <<'PY'
import json, statistics, sys
out, pairs, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def figures(label):
    s = json.load(open(f"{out}/{label}/summary.json"))
    sent = s["rate"]["sent_msgs_per_s"]
    return {"cpu_us_per_msg": s["cpu"]["process_pct"] / 100 / sent * 1e6 if sent else float("nan"),
            "send_lag_p50_us": s["send_lag_us"]["p50"], "send_lag_p99_us": s["send_lag_us"]["p99"],
            "answered_msgs_per_s": s["throughput_msgs_per_s"], "latency_p99_us": s["latency_us"]["p99"]}
runs = {side: [figures(f"{side}-{i}") for i in range(1, pairs + 1)] for side in ("old", "new")}
print(f"rate {rate} msgs/s, {pairs} pairs, median [min..max]")
for key in runs["old"][0]:
    med = {}
    for side in ("old", "new"):
        v = [r[key] for r in runs[side]]
        med[side] = statistics.median(v)
        print(f"  {key:20} {side}: {med[side]:10.1f}  [{min(v):.1f}..{max(v):.1f}]")
    print(f"  {key:20} new/old: {med['new'] / med['old']:.2f}" if med["old"] else f"  {key}: old is 0")
PY
