#!/usr/bin/env bash
# permessage-deflate on the zero-alloc engines, measured in interleaved runs (closed loop,
# one fresh server per run, 127.0.0.1):
#
#   scripts/benchmarks/deflate-ab.sh BASE_DIR NEW_DIR [ROUNDS] [SIZE]
#
# BASE_DIR holds a wsbench-server built before deflate, NEW_DIR this build's wsbench-server and
# wsbench-loadgen. Each round runs, in turn:
#   plain-base    BASE_DIR's server, no deflate         } the plain hot path must not slow
#   plain-new     NEW_DIR's server, no deflate          }
#   deflate-off   NEW_DIR's server with --deflate, client without it } what compression costs
#   deflate-on    NEW_DIR's server with --deflate, client with --deflate } in one run
# and prints one line per run (msgs/s, latency p50/p99, server and client CPU %, the wire/payload
# ratio) and the median of each configuration. wsbench's filler (a letter pattern) compresses
# far better than real payloads: read the ratio as a best case, the CPU as a floor.
# Environment: CONNECTIONS (10), IN_FLIGHT (1), DURATION (3s).
set -euo pipefail
base=${1:?usage: deflate-ab.sh BASE_DIR NEW_DIR [ROUNDS] [SIZE]}
new=${2:?usage: deflate-ab.sh BASE_DIR NEW_DIR [ROUNDS] [SIZE]}
rounds=${3:-5}
size=${4:-1KiB}
work=$(mktemp -d)
srv=""
trap '[[ -z $srv ]] || kill "$srv" 2>/dev/null || true; rm -rf "$work"' EXIT

run() { # NAME BIN SERVER_FLAGS CLIENT_FLAGS
  local name=$1 bin=$2 sflags=$3 cflags=$4 dir="$work/$1-$5"
  mkdir -p "$dir"
  # shellcheck disable=SC2086
  "$bin/wsbench-server" --engine zero-alloc --listen 127.0.0.1:0 --out "$dir/server" $sflags >"$dir/server.out" 2>/dev/null &
  srv=$!
  local addr=""
  for _ in $(seq 100); do addr=$(grep -o '127\.0\.0\.1:[0-9]*' "$dir/server.out" 2>/dev/null | head -1) && [[ -n $addr ]] && break; sleep 0.05; done
  [[ -n $addr ]] || { echo "wsbench-server did not start" >&2; exit 1; }
  # shellcheck disable=SC2086
  "$new/wsbench-loadgen" --url "ws://$addr/" --engine zero-alloc --connections "${CONNECTIONS:-10}" \
    --in-flight "${IN_FLIGHT:-1}" --size "$size" --duration "${DURATION:-3s}" --warmup 1s \
    --out "$dir/client" $cflags >/dev/null 2>&1 || { echo "$name: the load generator failed" >&2; exit 1; }
  kill -TERM "$srv"; wait "$srv" || true; srv=""
  python3 - "$dir" "$name" <<'EOF'
import json, sys
d, name = sys.argv[1], sys.argv[2]
c = json.load(open(f"{d}/client/summary.json"))
s = json.load(open(f"{d}/server/server.json"))
ratio = (c.get("deflate") or {}).get("ratio_out")
print(f"{name:12} {c['throughput_msgs_per_s']:9.0f} msgs/s  p50 {c['latency_us']['p50']:7.1f} us  p99 {c['latency_us']['p99']:8.1f} us"
      f"  server cpu {s['cpu_pct']:5.1f} %  client cpu {c['cpu']['process_pct']:5.1f} %"
      f"  ratio {ratio if ratio is None else round(ratio, 4)}")
EOF
}

for r in $(seq "$rounds"); do
  run plain-base "$base" "" "" "$r"
  run plain-new "$new" "" "" "$r"
  run deflate-off "$new" "--deflate" "" "$r"
  run deflate-on "$new" "--deflate" "--deflate" "$r"
done | tee "$work/lines"
echo "medians over $rounds rounds (msgs/s, p50 us, p99 us, server cpu %):"
python3 - "$work/lines" <<'EOF'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name = line.split()[0]
    nums = [float(x) for x in re.findall(r"(\d+\.?\d*) (?:msgs/s|us|%)", line)]
    rows.setdefault(name, []).append(nums)
for name, runs in rows.items():
    cols = list(zip(*runs))
    print(f"  {name:12}", "  ".join(f"{statistics.median(c):9.1f}" for c in cols[:4]))
EOF
