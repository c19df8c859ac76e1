#!/usr/bin/env bash
# Allocations per message counted from outside: wsbench's own counter is not trusted here.
#
#   scripts/foreign/alloc-check.sh [SECONDS]
#
# malloc_count.so (LD_PRELOAD) counts every malloc-family call of one process and writes the
# count on SIGUSR2; two signals SECONDS apart in steady state, divided by the messages between
# them, give allocations per message. Three measurements:
#   1. `wsbench-server --engine zero-alloc` under a foreign load generator (ws_client.py, the
#      Python `websockets` package: 100 connections, 20-byte messages, one in flight);
#   2. the same with `--handler alloc`, the allocating contrast (must come out well above 1);
#   3. `wsbench-loadgen --engine zero-alloc` (closed loop, 100 connections) against a foreign
#      server: uWebSockets.js (uws-echo.mjs) when `npm install --prefix scripts/foreign` has
#      been run, else a Python `websockets` echo server.
# Needs gcc, python3 with `websockets` (WSBENCH_PYTHON, default .venv/bin/python) and, for
# uWebSockets.js, node. Everything listens on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-6}"
python="${WSBENCH_PYTHON:-.venv/bin/python}"
work="results/alloc-check"
rm -rf "$work" && mkdir -p "$work"
gcc -O2 -shared -fPIC -o "$work/malloc_count.so" scripts/foreign/malloc_count.c -ldl
cargo build --release --quiet -p wsbench-server -p wsbench-loadgen
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

# Prints the listening address a wsbench server announced in FILE.
wait_addr() {
    for _ in $(seq 100); do
        addr="$(sed -n 's/.*"addr":"\([^"]*\)".*/\1/p' "$1" | head -n 1)"
        [ -n "$addr" ] && { echo "$addr"; return; }
        sleep 0.1
    done
    echo "alloc-check: no listening line in $1" >&2
    exit 1
}

# Prints one result line: allocations between the two SIGUSR2 lines of COUNTS, over RATE
# messages per second for the SECONDS between them.
report() { # NAME COUNTS RATE
    local allocs; allocs="$(awk 'NR==1{a=$2} NR==2{print $2-a}' "$2")"
    awk -v n="$1" -v a="$allocs" -v r="$3" -v s="$seconds" \
        'BEGIN { m = r * s; printf "%-34s %10.0f msgs/s  %8d allocations over %6.0f messages: %.5f per message\n", n, r, a, m, a / m }'
}

server_case() { # NAME, then server flags
    local name="$1"; shift
    local counts="$PWD/$work/$name.counts"
    MALLOC_COUNT_OUT="$counts" LD_PRELOAD="$PWD/$work/malloc_count.so" \
        target/release/wsbench-server --listen 127.0.0.1:0 "$@" >"$work/$name.stdout" 2>"$work/$name.stderr" &
    local pid=$!; pids+=("$pid")
    local addr; addr="$(wait_addr "$work/$name.stdout")"
    local total=$((seconds + 4))
    "$python" scripts/foreign/ws_client.py --url "ws://$addr/" --connections 100 --size 20 --seconds "$total" >"$work/$name.client.json" &
    local client=$!
    sleep 2; kill -USR2 "$pid"; sleep "$seconds"; kill -USR2 "$pid"
    wait "$client"
    kill -TERM "$pid"; wait "$pid" || true
    report "$name" "$counts" "$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["rate"])' "$work/$name.client.json")"
}

server_case "server zero-alloc (foreign client)" --engine zero-alloc --runtime current-thread
server_case "server zero-alloc --handler alloc" --engine zero-alloc --runtime current-thread --handler alloc

# The zero-alloc load generator against a foreign server.
if command -v node >/dev/null && [ -d scripts/foreign/node_modules/uws-pack ]; then
    foreign="uWebSockets.js"; port=$(( 20000 + RANDOM % 20000 ))
    node scripts/foreign/uws-echo.mjs "$port" 2>"$work/foreign.stderr" &
else
    foreign="Python websockets"; port=$(( 20000 + RANDOM % 20000 ))
    "$python" -c 'import asyncio, sys, websockets
async def echo(ws):
    async for m in ws: await ws.send(m)
async def main():
    async with websockets.serve(echo, "127.0.0.1", int(sys.argv[1]), max_size=None, compression=None): await asyncio.Future()
asyncio.run(main())' "$port" 2>"$work/foreign.stderr" &
fi
pids+=("$!")
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
counts="$PWD/$work/loadgen.counts"
MALLOC_COUNT_OUT="$counts" LD_PRELOAD="$PWD/$work/malloc_count.so" \
    target/release/wsbench-loadgen --url "ws://127.0.0.1:$port/" --engine zero-alloc --connections 100 --in-flight 1 \
    --warmup 1s --duration "$((seconds + 3))s" --out "$work/loadgen" 2>"$work/loadgen.stderr" &
lg=$!
sleep 3; kill -USR2 "$lg"; sleep "$seconds"; kill -USR2 "$lg"
wait "$lg" || true
report "loadgen zero-alloc ($foreign)" "$counts" "$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["throughput_msgs_per_s"])' "$work/loadgen/summary.json")"
