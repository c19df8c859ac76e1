#!/usr/bin/env bash
# Load-generator memory holding many connections at a low rate: the built-in zero-alloc server
# in its own process (the fd limit is per process), one load generator, and its resident set
# read from /proc in the middle of the measured window. Per connection is the difference to a
# run with 100 connections (histograms, runtime and binary are the same in both), divided by
# the difference in connections.
#
#   scripts/benchmarks/loadgen-memory.sh [BIN_DIR ...]
#
# Each BIN_DIR holds wsbench-server and wsbench-loadgen (default target/release); several are
# measured in turn against one server, so builds compare in one session. Environment:
# CONNECTIONS (10000), RATE (100), ENGINE (zero-alloc).
set -euo pipefail
BINS=("${@:-target/release}")
CONNECTIONS=${CONNECTIONS:-10000} RATE=${RATE:-100} ENGINE=${ENGINE:-zero-alloc}
ulimit -n "$(ulimit -Hn)"
. "$(dirname "$0")/server.sh"
start_server "${BINS[0]}" --engine zero-alloc

# Prints "RSS_KiB established held" of one run with $2 connections of build $1.
measure() {
  local run
  run=$(mktemp -d -p "$OUT")
  "$1/wsbench-loadgen" --url "ws://$ADDR/" --engine "$ENGINE" --connections "$2" --connect-rate 5000 \
    --rate "$RATE" --warmup 1s --duration 4s --drain-timeout 1s --out "$run" 2>"$run.err" &
  local lg=$!
  # Connecting takes connections / 5000 s; sample after the window has begun.
  sleep $(( $2 / 5000 + 3 ))
  local rss_kib
  rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$lg/status")
  wait "$lg" || true
  [[ -f $run/summary.json ]] || { echo "loadgen wrote no summary:" >&2; tail -3 "$run.err" >&2; exit 1; }
  python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["connections"]; print(sys.argv[2], c["established"], c.get("held"))' "$run/summary.json" "$rss_kib"
}
for bin in "${BINS[@]}"; do
  read -r small _ _ < <(measure "$bin" 100)
  read -r big est held < <(measure "$bin" "$CONNECTIONS")
  python3 -c 'import sys; s,b,e=map(int,sys.argv[1:4]); print(f"{sys.argv[5]}: RSS {b/1024:.1f} MiB holding {e} connections (held {sys.argv[4]}), {s/1024:.1f} MiB with 100: {(b-s)/max(e-100,1):.2f} KiB per connection")' "$small" "$big" "$est" "$held" "$bin"
done
