#!/usr/bin/env bash
# One load from one process against the same load split into shards that start together
# (`--shard i/N --start-at`) and are merged with `wsbench collect`, interleaved round by round,
# against the built-in server: answered msgs/s, latency p50/p99 and send lag p99 of each.
#
#   scripts/benchmarks/shards.sh BIN_DIR        (BIN_DIR holds wsbench, wsbench-server, wsbench-loadgen)
#
# Environment: RATE (default 20000), CONNECTIONS (40), SHARDS (2), ROUNDS (3), ENGINE
# (zero-alloc), DURATION (3s). On one host the shards share its cores with the server: this
# measures what splitting costs or gains here, not what separate hosts would give.
set -euo pipefail
BIN=$1
RATE=${RATE:-20000} CONNECTIONS=${CONNECTIONS:-40} SHARDS=${SHARDS:-2} ROUNDS=${ROUNDS:-3} ENGINE=${ENGINE:-zero-alloc} DURATION=${DURATION:-3s}
. "$(dirname "$0")/server.sh"
start_server "$BIN" --runtime multi-thread --workers 1

load=(--url "ws://$ADDR/" --engine "$ENGINE" --connections "$CONNECTIONS" --rate "$RATE" --warmup 1s --duration "$DURATION" --drain-timeout 1s)
for r in $(seq "$ROUNDS"); do
  "$BIN/wsbench-loadgen" "${load[@]}" --out "$OUT/one-$r" 2>/dev/null || true
  at=$(date -u -d '+4 seconds' +%Y-%m-%dT%H:%M:%SZ)
  pids=()
  for i in $(seq 0 $((SHARDS - 1))); do
    "$BIN/wsbench-loadgen" "${load[@]}" --shard "$i/$SHARDS" --start-at "$at" --out "$OUT/sharded-$r" 2>/dev/null &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || true; done
  "$BIN/wsbench" collect "$OUT/sharded-$r" --out "$OUT/collected-$r" >/dev/null 2>&1 || echo "round $r: collect failed" >&2
done

python3 - "$OUT" "$ROUNDS" "$RATE" "$SHARDS" <<'PY'
import json, statistics, sys
out, rounds, rate, shards = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def figures(path):
    s = json.load(open(path))
    return {"answered/s": s["throughput_msgs_per_s"], "p50 us": s["latency_us"]["p50"], "p99 us": s["latency_us"]["p99"],
            "send lag p99 us": s["send_lag_us"]["p99"], "late": (s.get("start") or {}).get("late", False)}
rows = {"1 process": [figures(f"{out}/one-{r}/summary.json") for r in range(1, rounds + 1)],
        f"{shards} shards": [figures(f"{out}/collected-{r}/sharded/trial-1/summary.json") for r in range(1, rounds + 1)]}
print(f"rate {rate} msgs/s, {rounds} rounds; median (min-max)")
for label, runs in rows.items():
    cells = []
    for key in ["answered/s", "p50 us", "p99 us", "send lag p99 us"]:
        v = [r[key] for r in runs]
        cells.append(f"{key} {statistics.median(v):.0f} ({min(v):.0f}-{max(v):.0f})")
    late = sum(r["late"] for r in runs)
    print(f"{label:>10}: " + ", ".join(cells) + (f", late in {late} rounds" if late else ""))
PY
