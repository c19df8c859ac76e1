#!/usr/bin/env bash
# Server speed of two builds, interleaved A B A B: one load generator (the NEW build's, or
# LOADGEN) against each build's server in turn, per case. Per build: answered msgs/s, the
# server's CPU per message (server.json cpu_pct over its life, divided by the messages it
# echoed), and its allocations per message; medians with their range and the ratio new/old.
#
#   scripts/benchmarks/server-ab.sh OLD_BIN_DIR NEW_BIN_DIR
#
# Cases (CASES picks some): pipe1k (100 connections x 16 in flight, 1 KiB messages), pipe32
# (the same, 32 B), closed1 (100 connections x 1 in flight, 32 B), sparse (open loop, 1,000
# connections sharing 500 msgs/s: each quiet for 2 s between messages; not in the default
# CASES, give it a DURATION of several seconds). Environment: PAIRS (5),
# DURATION (3s), ENGINES ("tungstenite zero-alloc"), SERVER_ARGS (flags for both servers, e.g.
# "--runtime multi-thread --workers 2"), OLD_ARGS / NEW_ARGS (flags for one side only: with the
# same BIN_DIR twice, `OLD_ARGS="--workers 1" NEW_ARGS="--workers 2"` compares worker counts),
# TASKSET_SERVER / TASKSET_LOADGEN (CPU lists for `taskset -c`, to place the two processes),
# LOADGEN (a BIN_DIR; default NEW), LOADGEN_THREADS (1).
set -euo pipefail
OLD=$1 NEW=$2
PAIRS=${PAIRS:-5} DURATION=${DURATION:-3s} ENGINES=${ENGINES:-"tungstenite zero-alloc"}
CASES=${CASES:-"pipe1k pipe32 closed1"} LOADGEN=${LOADGEN:-$NEW}
read -r -a SERVER_ARGS <<<"${SERVER_ARGS:-}"
read -r -a OLD_ARGS <<<"${OLD_ARGS:-}"
read -r -a NEW_ARGS <<<"${NEW_ARGS:-}"
ulimit -n "$(ulimit -Hn)"
. "$(dirname "$0")/server.sh"

flags_of() {
  case $1 in
    pipe1k) echo "--connections 100 --in-flight 16 --size 1KiB" ;;
    pipe32) echo "--connections 100 --in-flight 16 --size 32" ;;
    closed1) echo "--connections 100 --in-flight 1 --size 32" ;;
    sparse) echo "--connections 1000 --connect-rate 5000 --rate 500 --size 32" ;;
    *) echo "unknown case $1" >&2; exit 2 ;;
  esac
}

pin() { # cpus command... (execs the command, pinned when cpus is set, so that $! is its pid)
  local cpus=$1; shift
  if [[ -n $cpus ]]; then exec taskset -c "$cpus" "$@"; else exec "$@"; fi
}

one() { # dir bin engine case [server flags...]
  local dir=$1 bin=$2 engine=$3 case=$4
  shift 4
  mkdir -p "$dir"
  start_server_pinned "$bin" --engine "$engine" --out "$dir/server" ${SERVER_ARGS[@]+"${SERVER_ARGS[@]}"} "$@"
  # shellcheck disable=SC2046
  (pin "${TASKSET_LOADGEN:-}" "$LOADGEN/wsbench-loadgen" --url "ws://$ADDR/" --engine zero-alloc --threads "${LOADGEN_THREADS:-1}" \
    $(flags_of "$case") --warmup 1s --duration "$DURATION" --drain-timeout 1s --out "$dir/lg" \
    >/dev/null 2>"$dir/lg.err") || true
  kill -TERM "$SRV"; wait "$SRV" || true
}

start_server_pinned() {
  local bin=$1; shift
  OUT=$(mktemp -d)
  (pin "${TASKSET_SERVER:-}" "$bin/wsbench-server" --listen 127.0.0.1:0 "$@" >"$OUT/server.out" 2>/dev/null) &
  SRV=$!
  for _ in $(seq 100); do grep -q listening "$OUT/server.out" 2>/dev/null && break; sleep 0.05; done
  ADDR=$(grep -o '127\.0\.0\.1:[0-9]*' "$OUT/server.out" | head -1)
  rm -rf "$OUT"
  [[ -n $ADDR ]] || { echo "wsbench-server did not start" >&2; exit 1; }
}

work=$(mktemp -d)
trap '[[ -n ${KEEP:-} ]] || rm -rf "$work"' EXIT
for engine in $ENGINES; do
  for case in $CASES; do
    echo "== $engine $case ($(flags_of "$case")), load: $(cut -d' ' -f1-3 /proc/loadavg)"
    for i in $(seq "$PAIRS"); do
      one "$work/$engine-$case-old-$i" "$OLD" "$engine" "$case" ${OLD_ARGS[@]+"${OLD_ARGS[@]}"}
      one "$work/$engine-$case-new-$i" "$NEW" "$engine" "$case" ${NEW_ARGS[@]+"${NEW_ARGS[@]}"}
    done
    python3 - "$work" "$engine" "$case" "$PAIRS" <<'PY'
import json, statistics, sys, os
work, engine, case, pairs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def figures(side):
    out = {"msgs/s": [], "server CPU us/msg": [], "server allocs/msg": []}
    for i in range(1, pairs + 1):
        d = f"{work}/{engine}-{case}-{side}-{i}"
        try:
            lg = json.load(open(f"{d}/lg/summary.json"))
            srv = json.load(open(f"{d}/server/server.json"))
        except (OSError, ValueError):
            continue
        out["msgs/s"].append(lg["throughput_msgs_per_s"])
        echoed = srv["counts"]["messages_out"]
        busy_s = srv["cpu_pct"] / 100 * srv["duration_s"]
        if echoed:
            out["server CPU us/msg"].append(busy_s * 1e6 / echoed)
        a = srv.get("allocations_per_message")
        if a is not None:
            out["server allocs/msg"].append(a)
    return out
old, new = figures("old"), figures("new")
for k in old:
    if not old[k] or not new[k]:
        print(f"  {k}: no figures (old {len(old[k])}, new {len(new[k])} runs)"); continue
    mo, mn = statistics.median(old[k]), statistics.median(new[k])
    fmt = (lambda v: f"{v:,.0f}") if k == "msgs/s" else (lambda v: f"{v:.3g}")
    ratio = f"{mn / mo:.2f}" if mo else "n/a"
    print(f"  {k:>18}: old {fmt(mo)} [{fmt(min(old[k]))}..{fmt(max(old[k]))}]  "
          f"new {fmt(mn)} [{fmt(min(new[k]))}..{fmt(max(new[k]))}]  new/old {ratio}")
PY
  done
done
