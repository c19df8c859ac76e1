#!/usr/bin/env bash
# A broadcast room measured three ways, interleaved round by round against one built-in server
# (serving ws:// and, with a throwaway CA made by openssl, wss:// on a second port):
#   ws 1 process    the whole room in one load generator
#   wss 1 process   the same over TLS, the certificate checked against --ca
#   ws N shards     the room split over N load generators (`--shard i/N --start-at`), collected
# and prints per configuration: deliveries/s, reach, delivery latency p50/p99, completion p99
# (per shard for the shards: a lower bound of the room's), and TLS and WebSocket handshake p50.
#
#   scripts/benchmarks/fanout-shards.sh BIN_DIR   (BIN_DIR holds wsbench, wsbench-server, wsbench-loadgen)
#
# Environment: MEMBERS (400), PUBLISHERS (2), RATE (100 msgs/s over all publishers), SHARDS (2),
# ROUNDS (3), DURATION (3s), ENGINE (server engine, zero-alloc). On one host the shards share
# its cores with the server: this measures what splitting costs here, not what hosts would give.
set -euo pipefail
BIN=$1
MEMBERS=${MEMBERS:-400} PUBLISHERS=${PUBLISHERS:-2} RATE=${RATE:-100} SHARDS=${SHARDS:-2} ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-3s} ENGINE=${ENGINE:-zero-alloc}
. "$(dirname "$0")/server.sh"
start_server "$BIN" --engine "$ENGINE" --workload broadcast
WS=$ADDR
# A second server for wss://: a CA and a certificate it issues for 127.0.0.1.
PLAIN=$SRV
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$OUT/ca.key" -out "$OUT/ca.pem" -days 1 -subj /CN=bench-ca 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$OUT/key.pem" -out "$OUT/cert.csr" -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$OUT/ext"
openssl x509 -req -in "$OUT/cert.csr" -CA "$OUT/ca.pem" -CAkey "$OUT/ca.key" -CAcreateserial -out "$OUT/cert.pem" -days 1 -extfile "$OUT/ext" 2>/dev/null
"$BIN/wsbench-server" --listen 127.0.0.1:0 --engine "$ENGINE" --workload broadcast --tls-cert "$OUT/cert.pem" --tls-key "$OUT/key.pem" >"$OUT/tls-server.out" 2>/dev/null &
TLS_SRV=$!
trap 'kill "$PLAIN" "$TLS_SRV" 2>/dev/null || true; rm -rf "$OUT"' EXIT
for _ in $(seq 100); do grep -q listening "$OUT/tls-server.out" 2>/dev/null && break; sleep 0.05; done
WSS=$(grep -o '127\.0\.0\.1:[0-9]*' "$OUT/tls-server.out" | head -1)
[[ -n $WSS ]] || { echo "the wss:// server did not start" >&2; exit 1; }

load=(--workload broadcast --connections "$MEMBERS" --publishers "$PUBLISHERS" --rate "$RATE" --warmup 1s --duration "$DURATION" --threads 2 --connect-rate 2000)
for r in $(seq "$ROUNDS"); do
  "$BIN/wsbench-loadgen" --url "ws://$WS/" "${load[@]}" --out "$OUT/ws-$r" >/dev/null 2>&1 || echo "round $r: ws run failed" >&2
  "$BIN/wsbench-loadgen" --url "wss://$WSS/" --ca "$OUT/ca.pem" "${load[@]}" --out "$OUT/wss-$r" >/dev/null 2>&1 || echo "round $r: wss run failed" >&2
  at=$(date -u -d '+4 seconds' +%Y-%m-%dT%H:%M:%SZ)
  pids=()
  for i in $(seq 0 $((SHARDS - 1))); do
    "$BIN/wsbench-loadgen" --url "ws://$WS/" "${load[@]}" --shard "$i/$SHARDS" --start-at "$at" --out "$OUT/sharded-$r" >/dev/null 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || echo "round $r: a shard failed" >&2; done
  "$BIN/wsbench" collect "$OUT/sharded-$r" --out "$OUT/collected-$r" --config room >/dev/null 2>&1 || echo "round $r: collect failed" >&2
done

python3 - "$OUT" "$ROUNDS" "$SHARDS" "$MEMBERS" "$RATE" <<'PY'
import json, os, statistics, sys
out, rounds, shards, members, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def figures(path):
    if not os.path.exists(path):
        return None
    s = json.load(open(path))
    f = s["fanout"]
    setup = lambda k: (s.get(k) or {}).get("p50", float("nan"))
    return {"deliveries/s": f["deliveries_per_s"], "reach %": f["reach"] * 100, "p50 us": s["latency_us"]["p50"], "p99 us": s["latency_us"]["p99"],
            "completion p99 us": (f.get("completion_us") or {}).get("p99", float("nan")), "tls p50 us": setup("tls_us"), "handshake p50 us": setup("handshake_us")}
rows = {"ws 1 process": [figures(f"{out}/ws-{r}/summary.json") for r in range(1, rounds + 1)],
        "wss 1 process": [figures(f"{out}/wss-{r}/summary.json") for r in range(1, rounds + 1)],
        f"ws {shards} shards": [figures(f"{out}/collected-{r}/room/trial-1/summary.json") for r in range(1, rounds + 1)]}
print(f"room of {members}, {rate} msgs/s published, {rounds} rounds; median (min-max)")
for label, runs in rows.items():
    runs = [r for r in runs if r]
    if not runs:
        print(f"{label:>14}: no result")
        continue
    cells = []
    for key in runs[0]:
        v = [r[key] for r in runs]
        cells.append(f"{key} {statistics.median(v):.0f} ({min(v):.0f}-{max(v):.0f})" if key != "reach %" else f"{key} {min(v):.2f}")
    print(f"{label:>14}: " + ", ".join(cells))
PY
