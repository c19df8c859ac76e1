#!/usr/bin/env bash
# What the gate costs a WebSocket handshake: the load generator's handshake time (request
# written -> 101 parsed, summary.json handshake_us) against a server with no gate and against one
# with every check on (--conn-rate, --allow-origin, --token-secret, the load generator minting a
# token per connection), interleaved A B A B, one line per run and the medians at the end.
#
#   scripts/benchmarks/gate-handshake.sh BIN_DIR
#
# BIN_DIR holds wsbench-server and wsbench-loadgen. Environment: PAIRS (5), CONNECTIONS (500),
# CONNECT_RATE (1000 per second), ENGINE (zero-alloc). The machine is shared: read the spread.
set -euo pipefail
BIN=$1
PAIRS=${PAIRS:-5} CONNECTIONS=${CONNECTIONS:-500} CONNECT_RATE=${CONNECT_RATE:-1000} ENGINE=${ENGINE:-zero-alloc}
WORK=$(mktemp -d)
SRV=
trap '[[ -n $SRV ]] && kill "$SRV" 2>/dev/null; rm -rf "$WORK"' EXIT
head -c 32 /dev/urandom | base64 >"$WORK/secret"

run_case() { # name, server flags...
  local name=$1; shift
  "$BIN/wsbench-server" --listen 127.0.0.1:0 --engine "$ENGINE" "$@" >"$WORK/server.out" 2>/dev/null &
  SRV=$!
  for _ in $(seq 100); do grep -q listening "$WORK/server.out" 2>/dev/null && break; sleep 0.05; done
  local addr; addr=$(grep -o '127\.0\.0\.1:[0-9]*' "$WORK/server.out" | head -1)
  local mint=()
  [[ $name == gate ]] && mint=(--token-secret "$WORK/secret")
  "$BIN/wsbench-loadgen" --url "ws://$addr/" --engine "$ENGINE" --connections "$CONNECTIONS" \
    --connect-rate "$CONNECT_RATE" --warmup 0s --duration 1s --in-flight 1 "${mint[@]}" --out "$WORK/$name" >/dev/null 2>&1 || true
  kill "$SRV"; wait "$SRV" 2>/dev/null || true; SRV=
  python3 -c "
import json, sys
s = json.load(open('$WORK/$name/summary.json'))
h = s['handshake_us']
print(f\"$name established {s['connections']['established']}/{s['connections']['target']} handshake p50 {h['p50']:.1f} us p99 {h['p99']:.1f} us\")
" | tee -a "$WORK/lines"
}

for _ in $(seq "$PAIRS"); do
  run_case none
  # A rate the load never reaches: the bucket is consulted, never empty.
  run_case gate --conn-rate 1000000/s --conn-burst 1000000 --allow-origin https://a.example --token-secret "$WORK/secret"
done
python3 - "$WORK/lines" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for name in ("none", "gate"):
    p50 = [float(r[5]) for r in rows if r[0] == name]
    p99 = [float(r[8]) for r in rows if r[0] == name]
    print(f"{name}: median handshake p50 {statistics.median(p50):.1f} us (runs {min(p50):.1f}-{max(p50):.1f}), p99 {statistics.median(p99):.1f} us")
PY
