#!/usr/bin/env bash
# User-space instructions per message of two load-generator builds, counted by valgrind's
# callgrind: a figure that other work on the machine does not move, for changes too small to
# show in CPU time on a shared 2-vCPU host (user space is a quarter of the load generator's CPU
# in closed loop; the rest is the kernel's TCP work).
#
#   scripts/benchmarks/loadgen-instructions.sh OLD_BIN_DIR NEW_BIN_DIR
#
# Per build and case it prints instructions per message of the whole process and of the
# connection tasks alone (`zero::run`, inclusive: building, checking and recording messages,
# the codec and the socket calls' user-space side), and new/old. Messages are every message
# sent (no warm-up: --warmup 0s); start-up (histograms, connecting) is in the whole-process
# figure, so compare runs of one DURATION. Under valgrind the load generator runs ~50x slower,
# so closed loop is self-paced and open loop runs at RATE (default 5,000 msgs/s), which it
# keeps. Needs valgrind (callgrind_annotate). Environment: CASES ("closed16 open"), DURATION
# (2s), RATE (5000).
set -euo pipefail
OLD=$1 NEW=$2
CASES=${CASES:-"closed16 open"} DURATION=${DURATION:-2s} RATE=${RATE:-5000}
command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null || { echo "needs valgrind" >&2; exit 2; }
. "$(dirname "$0")/server.sh"
start_server "$NEW" --engine zero-alloc --runtime current-thread

flags_of() {
  case $1 in
    closed16) echo "--connections 100 --threads 1 --in-flight 16" ;;
    open) echo "--connections 50 --threads 1 --rate $RATE" ;;
    *) echo "unknown case $1" >&2; exit 2 ;;
  esac
}

for c in $CASES; do
  echo "== $c ($(flags_of "$c"))"
  for side in old new; do
    bin=$OLD
    [[ $side == new ]] && bin=$NEW
    d=$OUT/$c-$side
    # shellcheck disable=SC2046
    valgrind --tool=callgrind --callgrind-out-file="$d.cg" "$bin/wsbench-loadgen" --url "ws://$ADDR/" --engine zero-alloc \
      $(flags_of "$c") --warmup 0s --duration "$DURATION" --drain-timeout 1s --out "$d" >"$d.log" 2>&1 || true
    [[ -f $d/summary.json ]] || { echo "no summary from $bin:" >&2; tail -3 "$d.log" >&2; exit 1; }
    msgs=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['messages']['sent'])" "$d/summary.json")
    callgrind_annotate --inclusive=yes "$d.cg" 2>/dev/null | awk -v n="$msgs" '
      /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1 }
      /zero::run::\{\{closure\}\} \[/ && !conn { gsub(",", "", $1); conn = $1 }
      END { printf "%d %.0f %.0f\n", n, total / n, conn / n }' >"$d.ir"
  done
  read -r n_old all_old conn_old <"$OUT/$c-old.ir"
  read -r n_new all_new conn_new <"$OUT/$c-new.ir"
  python3 - "$n_old" "$all_old" "$conn_old" "$n_new" "$all_new" "$conn_new" <<'PY'
import sys
n_old, all_old, conn_old, n_new, all_new, conn_new = map(float, sys.argv[1:])
print(f"  messages             old {n_old:10.0f}  new {n_new:10.0f}")
print(f"  whole process Ir/msg old {all_old:10.0f}  new {all_new:10.0f}  new/old {all_new / all_old:.2f}")
print(f"  connections  Ir/msg  old {conn_old:10.0f}  new {conn_new:10.0f}  new/old {conn_new / conn_old:.2f}")
PY
done
