#!/usr/bin/env bash
# Large messages streamed on one connection, two builds interleaved A B A B per depth: each
# build's server and load generator (closed loop, one connection, SIZE-byte messages, IN_FLIGHT
# messages in flight). Per build and depth: payload MB/s each way, CPU per message of the
# server (server.json) and of the load generator (/usr/bin/time), the server's allocations per
# message; medians with their range.
#
#   scripts/benchmarks/bulk-ab.sh OLD_BIN_DIR NEW_BIN_DIR
#
# Environment: SIZE (1762560, the largest of WebSockets.jl's sizes), DEPTHS ("1 2 8"), PAIRS
# (5), DURATION (2s), SERVER_ENGINE / CLIENT_ENGINE (zero-alloc), SERVER_ARGS (default
# "--workers 2 --max-message-size 4MiB"). ECHO_PAIR=1 also runs scripts/benchmarks/echo_pair.py
# (a minimal echo pair over loopback, no WebSocket) at the same depths, to tell what the
# kernel's loopback TCP does with deep pipelines from what wsbench does.
set -euo pipefail
OLD=$1 NEW=$2
SIZE=${SIZE:-1762560} DEPTHS=${DEPTHS:-"1 2 8"} PAIRS=${PAIRS:-5} DURATION=${DURATION:-2s}
SERVER_ENGINE=${SERVER_ENGINE:-zero-alloc} CLIENT_ENGINE=${CLIENT_ENGINE:-zero-alloc}
read -r -a SERVER_ARGS <<<"${SERVER_ARGS:---workers 2 --max-message-size 4MiB}"
here=$(dirname "$0")
. "$here/server.sh"

one() { # dir bin depth
  local dir=$1 bin=$2 depth=$3
  mkdir -p "$dir"
  start_server "$bin" --engine "$SERVER_ENGINE" --out "$dir/server" "${SERVER_ARGS[@]}"
  /usr/bin/time -f "%U %S" -o "$dir/lg.time" "$bin/wsbench-loadgen" --url "ws://$ADDR/" \
    --engine "$CLIENT_ENGINE" --connections 1 --size "$SIZE" --in-flight "$depth" \
    --warmup 500ms --duration "$DURATION" --out "$dir/lg" >/dev/null 2>"$dir/lg.err" || true
  kill -TERM "$SRV"; wait "$SRV" || true
  rm -rf "$OUT"
}

work=$(mktemp -d)
trap '[[ -n ${KEEP:-} ]] || rm -rf "$work"' EXIT
echo "== $SERVER_ENGINE server, $CLIENT_ENGINE client, $SIZE B, load: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$PAIRS"); do
  for depth in $DEPTHS; do
    one "$work/old-$depth-$i" "$OLD" "$depth"
    one "$work/new-$depth-$i" "$NEW" "$depth"
    if [[ -n ${ECHO_PAIR:-} ]]; then
      python3 "$here/echo_pair.py" "$SIZE" "$depth" 2 >>"$work/pair-$depth" || true
    fi
  done
done
python3 - "$work" "$PAIRS" "$SIZE" $DEPTHS <<'PY'
import json, statistics, sys, glob
work, pairs, size, depths = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
def show(label, xs, fmt):
    if xs:
        print(f"  {label}: {fmt(statistics.median(xs))} [{fmt(min(xs))}..{fmt(max(xs))}]", end="")
for depth in depths:
    for side in ("old", "new"):
        mbs, srv, cli, allocs = [], [], [], []
        for i in range(1, pairs + 1):
            d = f"{work}/{side}-{depth}-{i}"
            try:
                lg = json.load(open(f"{d}/lg/summary.json"))
                s = json.load(open(f"{d}/server/server.json"))
                user, sys_ = map(float, open(f"{d}/lg.time").read().split()[-2:])
            except (OSError, ValueError):
                continue
            mbs.append(lg["throughput_msgs_per_s"] * size / 1e6)
            n = s["counts"]["messages_in"]
            if n:
                srv.append(s["cpu_pct"] / 100 * s["duration_s"] * 1e3 / n)
                cli.append((user + sys_) * 1e3 / n)
            if s.get("allocations_per_message") is not None:
                allocs.append(s["allocations_per_message"])
        print(f"in_flight {depth} {side}:", end="")
        show("MB/s", mbs, lambda v: f"{v:,.0f}")
        show("server CPU ms/msg", srv, lambda v: f"{v:.3f}")
        show("loadgen CPU ms/msg", cli, lambda v: f"{v:.3f}")
        show("server allocs/msg", allocs, lambda v: f"{v:.3g}")
        print()
    pair = glob.glob(f"{work}/pair-{depth}")
    if pair:
        xs = [float(l.split()[-2]) for l in open(pair[0]) if l.strip()]
        print(f"in_flight {depth} echo pair:", end="")
        show("MB/s", xs, lambda v: f"{v:,.0f}")
        print()
PY
