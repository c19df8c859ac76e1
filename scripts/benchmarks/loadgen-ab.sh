#!/usr/bin/env bash
# Every load-generator speed and memory figure of two builds, interleaved A B A B against one
# built-in zero-alloc server: CPU per message, send-lag percentiles, msgs/s and RSS per
# connection, each as a median with its spread and the ratio new/old.
#
#   scripts/benchmarks/loadgen-ab.sh OLD_BIN_DIR NEW_BIN_DIR [-- extra loadgen flags, e.g. --realtime]
#
# Each BIN_DIR holds wsbench-server and wsbench-loadgen; the server is NEW's. Cases (CASES picks
# some, default all):
#   open20k    open loop, 20,000 msgs/s, 50 connections, 1 thread
#   open80k    open loop, 80,000 msgs/s, 50 connections, 1 thread
#   open100    open loop, 100 msgs/s, 1 connection (low load: latency as timed, e.g. user against
#              kernel receive stamps with one build twice and NEW_EXTRA="--rx-timestamps kernel")
#   open100k   open loop, 100,000 msgs/s, 50 connections, 1 thread
#   closed16   closed loop, 100 connections x 16 in flight, 1 thread
#   closed512  closed loop, 512 connections x 16 in flight, 1 thread
#   closed1    closed loop, 100 connections x 1 in flight, 1 thread
#   threads2   closed16 with 2 threads (compare with closed16 for the scaling)
#   memory     RSS per connection holding 10,000 connections at --rate 100 (less a 100-connection run)
#   scaling    not a build comparison: NEW at 1 and at 2 threads (load generator) and 1 and 2
#              workers (server), at the same total load, interleaved; prints CPU per message at 2
#              over CPU per message at 1 (see "Scaling without a free core" below)
#   uring      not a build comparison: the io_uring trial (NEW_BIN_DIR/examples/uring_trial, from
#              `cargo build --release -p wsbench-loadgen --example uring_trial`), epoll against
#              io_uring at 100 x 16 and 512 x 16, interleaved; run it with CASES=uring
# Environment: PAIRS (5), DURATION (3s), ENGINE (zero-alloc), NEW_EXTRA (flags for NEW only),
# SCALING_RATE (40000), TASKSET_SERVER / TASKSET_LOADGEN (placement, see below), PERF=1 (each
# load-generator run under `perf stat`: system calls and context switches per message, see below).
#
# CPU per message is the load generator's process CPU over the measured window (summary.json
# cpu.process_pct) divided by the messages sent per second (open loop) or answered per second
# (closed loop). The machine is shared: `uptime` is printed per case, read the spread first.
# With PERF=1, perf stat counts over the whole process run (warm-up and drain included), divided
# by the messages of warm-up and window (sent msgs/s x their length): context switches (the
# worker's sleeps), epoll_wait, sendto, recvfrom + recvmsg and timerfd_settime per message.
#
# Scaling without a free core: "2 threads >= 1.6 x 1 thread" cannot be timed when the server,
# the load generator and other work share two vCPUs. What can be measured is the cost of the
# second thread: CPU per message at 2 threads (or server workers) over 1, at the same total
# load (open loop at SCALING_RATE, default 40,000 msgs/s, 100 connections; and closed16), and
# open loop at the same rate per thread (50 connections and SCALING_RATE / 2 per thread: an open
# loop's CPU per message falls as a thread's rate rises, so the same-total figure also shows
# each thread's sparser schedule). Shared state and contention show as a higher ratio; at a
# ratio r, two free cores would give at most 2 / r times one thread's throughput (r <= 1.25:
# >= 1.6 x). A proxy, not the throughput itself.
set -euo pipefail
OLD=$1 NEW=$2
shift 2
[[ ${1:-} == -- ]] && shift
EXTRA=("$@")
PAIRS=${PAIRS:-5} DURATION=${DURATION:-3s} ENGINE=${ENGINE:-zero-alloc} SCALING_RATE=${SCALING_RATE:-40000}
CASES=${CASES:-"open20k open100k closed16 closed512 closed1 threads2 memory"}
read -r -a NEW_EXTRA <<<"${NEW_EXTRA:-}"
ulimit -n "$(ulimit -Hn)"
. "$(dirname "$0")/server.sh"
# TASKSET_SERVER / TASKSET_LOADGEN (CPU lists for `taskset -c`) place the shared server and the
# compared load generators, e.g. 0 and 1: on a quiet machine that keeps the two off each
# other's core; with other work on the machine, pinning can also leave a process waiting.
pinned() { # cpus command...
  local cpus=$1; shift
  if [[ -n $cpus ]]; then taskset -c "$cpus" "$@"; else "$@"; fi
}
TASKSET=${TASKSET_SERVER:-} start_server "$NEW" --engine zero-alloc --runtime current-thread

flags_of() { # case -> loadgen flags
  case $1 in
    open20k) echo "--connections 50 --threads 1 --rate 20000" ;;
    open80k) echo "--connections 50 --threads 1 --rate 80000" ;;
    open100) echo "--connections 1 --threads 1 --rate 100" ;;
    open100k) echo "--connections 50 --threads 1 --rate 100000" ;;
    closed16) echo "--connections 100 --threads 1 --in-flight 16" ;;
    closed512) echo "--connections 512 --threads 1 --in-flight 16 --connect-rate 5000" ;;
    closed1) echo "--connections 100 --threads 1 --in-flight 1" ;;
    threads2) echo "--connections 100 --threads 2 --in-flight 16" ;;
    *) echo "unknown case $1" >&2; exit 2 ;;
  esac
}

run() { # dir bin flags...
  local dir=$1 bin=$2; shift 2
  # Exit 1 (a stalled echo, say) still leaves a summary worth reading.
  local perf=()
  [[ ${PERF:-} == 1 ]] && perf=(perf stat -x, -o "$dir.perf" -e context-switches,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_recvmsg,syscalls:sys_enter_timerfd_settime)
  pinned "${TASKSET_LOADGEN:-}" ${perf[@]+"${perf[@]}"} "$bin/wsbench-loadgen" --url "ws://$ADDR/" --engine "$ENGINE" --warmup 1s --duration "$DURATION" --drain-timeout 1s \
    ${EXTRA[@]+"${EXTRA[@]}"} "$@" --out "$dir" 2>"$dir.err" || true
  [[ -f $dir/summary.json ]] || { echo "loadgen wrote no summary:" >&2; tail -3 "$dir.err" >&2; exit 1; }
}

# RSS in KiB of one run holding $2 connections at --rate 100, sampled inside the measured window.
rss_run() { # dir bin connections extra...
  local dir=$1 bin=$2 n=$3; shift 3
  "$bin/wsbench-loadgen" --url "ws://$ADDR/" --engine "$ENGINE" --connections "$n" --connect-rate 5000 --rate 100 \
    --warmup 1s --duration 4s --drain-timeout 1s ${EXTRA[@]+"${EXTRA[@]}"} "$@" --out "$dir" 2>"$dir.err" &
  local lg=$!
  sleep $(( n / 5000 + 3 ))
  awk '/VmRSS/ {print $2}' "/proc/$lg/status" >"$dir.rss"
  wait "$lg" || true
}

# Server CPU per message over its life (server.json), echoing SCALING_RATE msgs/s from one
# load-generator thread; the server runs with `--workers $2`, stopped with SIGTERM.
server_run() { # dir workers
  local dir=$1 workers=$2 srv addr
  mkdir -p "$dir"
  "$NEW/wsbench-server" --listen 127.0.0.1:0 --engine zero-alloc --runtime multi-thread --workers "$workers" --out "$dir/server" >"$dir/server.out" 2>/dev/null &
  srv=$!
  for _ in $(seq 100); do grep -q listening "$dir/server.out" 2>/dev/null && break; sleep 0.05; done
  addr=$(grep -o '127\.0\.0\.1:[0-9]*' "$dir/server.out" | head -1)
  [[ -n $addr ]] || { echo "wsbench-server --workers $workers did not start" >&2; exit 1; }
  "$NEW/wsbench-loadgen" --url "ws://$addr/" --engine "$ENGINE" --connections 100 --threads 1 --rate "$SCALING_RATE" --warmup 1s \
    --duration "$DURATION" --drain-timeout 1s --out "$dir/lg" >/dev/null 2>"$dir/lg.err" || true
  kill -TERM "$srv"; wait "$srv" || true
  [[ -f $dir/server/server.json ]] || { echo "the server wrote no server.json" >&2; exit 1; }
}

scaling() {
  for i in $(seq "$PAIRS"); do
    for t in 1 2; do
      run "$OUT/scaling-open-$t-$i" "$NEW" --connections 100 --threads "$t" --rate "$SCALING_RATE"
      # The same rate per thread: open-loop CPU per message falls as a thread's rate rises (more
      # sends per wake-up), which the same-total comparison mixes with the cost of sharing.
      run "$OUT/scaling-perthread-$t-$i" "$NEW" --connections $((50 * t)) --threads "$t" --rate $((SCALING_RATE / 2 * t))
      run "$OUT/scaling-closed-$t-$i" "$NEW" --connections 100 --threads "$t" --in-flight 16
      server_run "$OUT/scaling-server-$t-$i" "$t"
    done
  done
  python3 - "$OUT" "$PAIRS" "$SCALING_RATE" <<'PY'
import json, statistics, sys
out, pairs, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def loadgen(d):
    s = json.load(open(f"{d}/summary.json"))
    per_s = s["rate"]["sent_msgs_per_s"] if s["config"].get("rate") is not None else s["throughput_msgs_per_s"]
    return s["cpu"]["process_pct"] / 100 / per_s * 1e6 if per_s else float("nan")
def server(d):
    srv = json.load(open(f"{d}/server/server.json"))
    echoed = srv["counts"]["messages_out"]
    return srv["cpu_pct"] / 100 * srv["duration_s"] * 1e6 / echoed if echoed else float("nan")
print(f"  CPU per message (us), median [min..max] over {pairs} runs each; ratio = 2 / 1")
for name, kind, read in ((f"loadgen open loop {rate} msgs/s, threads", "open", loadgen),
                         (f"loadgen open loop {int(rate) // 2} msgs/s per thread", "perthread", loadgen),
                         ("loadgen closed 100 x 16, threads", "closed", loadgen),
                         (f"server, {rate} msgs/s, workers", "server", server)):
    v = {t: [read(f"{out}/scaling-{kind}-{t}-{i}") for i in range(1, pairs + 1)] for t in (1, 2)}
    m = {t: statistics.median(v[t]) for t in v}
    r = m[2] / m[1]
    print(f"  {name:42} 1: {m[1]:7.3f} [{min(v[1]):.3f}..{max(v[1]):.3f}]  2: {m[2]:7.3f} [{min(v[2]):.3f}..{max(v[2]):.3f}]"
          f"  ratio {r:.2f}  (free cores: at most {2 / r:.2f} x)")
PY
}

for c in $CASES; do
  echo "== $c ($(uptime | sed 's/.*load/load/'))"
  if [[ $c == scaling ]]; then
    scaling
    continue
  fi
  if [[ $c == uring ]]; then
    trial=$NEW/examples/uring_trial
    [[ -x $trial ]] || { echo "no $trial: build it with cargo build --release -p wsbench-loadgen --example uring_trial" >&2; exit 1; }
    for shape in "100 16" "512 16"; do
      for i in $(seq "$PAIRS"); do
        for mode in epoll uring; do
          # shellcheck disable=SC2086
          "$trial" "$ADDR" "$mode" $shape "${DURATION%s}" >>"$OUT/uring-${shape// /x}.txt"
        done
      done
      python3 - "$OUT/uring-${shape// /x}.txt" <<'PY'
import re, statistics, sys
lines = open(sys.argv[1]).read().splitlines()
runs = {m: [float(re.search(r"([0-9.]+) us CPU", l).group(1)) for l in lines if l.startswith(m)] for m in ("epoll", "uring")}
rates = {m: [float(re.search(r": ([0-9]+) msgs/s", l).group(1)) for l in lines if l.startswith(m)] for m in ("epoll", "uring")}
print(f"  {lines[0].split(':')[0].replace('epoll ', '')}: median [min..max] over {len(runs['epoll'])} runs each")
for key, d in (("cpu_us_per_msg", runs), ("msgs_per_s", rates)):
    med = {m: statistics.median(v) for m, v in d.items()}
    print(f"  {key:20}  epoll {med['epoll']:10.3f} [{min(d['epoll']):.3f}..{max(d['epoll']):.3f}]  uring {med['uring']:10.3f} [{min(d['uring']):.3f}..{max(d['uring']):.3f}]  uring/epoll {med['uring'] / med['epoll']:.2f}")
PY
    done
    continue
  fi
  for i in $(seq "$PAIRS"); do
    for side in old new; do
      bin=$OLD extra=()
      [[ $side == new ]] && bin=$NEW extra=(${NEW_EXTRA[@]+"${NEW_EXTRA[@]}"})
      if [[ $c == memory ]]; then
        rss_run "$OUT/$c-$side-$i-small" "$bin" 100 ${extra[@]+"${extra[@]}"}
        rss_run "$OUT/$c-$side-$i" "$bin" 10000 ${extra[@]+"${extra[@]}"}
      else
        # shellcheck disable=SC2046
        run "$OUT/$c-$side-$i" "$bin" $(flags_of "$c") ${extra[@]+"${extra[@]}"}
      fi
    done
  done
  python3 - "$OUT" "$c" "$PAIRS" <<'PY'
import json, statistics, sys
out, case, pairs = sys.argv[1], sys.argv[2], int(sys.argv[3])
def warmup_s(w):
    # summary.json writes durations as text ("1s", "500ms").
    w = str(w)
    for unit, k in (("ms", 1e-3), ("us", 1e-6), ("s", 1.0)):
        if w.endswith(unit):
            return float(w[: -len(unit)]) * k
    return 0.0
def figures(d):
    if case == "memory":
        small, big = (int(open(f"{d}{s}.rss").read()) for s in ("-small", ""))
        s = json.load(open(f"{d}/summary.json"))
        est = s["connections"]["established"]
        return {"rss_kib_per_conn": (big - small) / max(est - 100, 1), "connections_held": s["connections"].get("held") or 0}
    s = json.load(open(f"{d}/summary.json"))
    open_loop = s["config"].get("rate") is not None
    per_s = s["rate"]["sent_msgs_per_s"] if open_loop else s["throughput_msgs_per_s"]
    f = {"cpu_us_per_msg": s["cpu"]["process_pct"] / 100 / per_s * 1e6 if per_s else float("nan"),
         "answered_msgs_per_s": s["throughput_msgs_per_s"], "busiest_thread_pct": s["cpu"]["busiest_thread_pct"],
         "latency_p50_us": s["latency_us"]["p50"], "latency_p99_us": s["latency_us"]["p99"],
         "service_p50_us": s["service_time_us"]["p50"], "service_p99_us": s["service_time_us"]["p99"],
         "worker_allocs_per_msg": s.get("worker_allocations_per_message") or 0.0,
         "unanswered+errors": s["messages"]["unanswered"] + s["messages"]["errors"] + s["messages"]["corrupted"]}
    try:
        ev = {}
        for line in open(f"{d}.perf"):
            p = line.strip().split(",")
            if len(p) > 3 and p[0][:1].isdigit():
                ev[p[2].split(":")[-1].replace("sys_enter_", "")] = float(p[0])
        whole = per_s * (s["duration_s"] + warmup_s(s["config"]["warmup"]))
        f.update({"ctx_switches_per_msg": ev["context-switches"] / whole, "epoll_wait_per_msg": ev["epoll_wait"] / whole,
                  "sendto_per_msg": ev["sendto"] / whole, "recv_per_msg": (ev["recvfrom"] + ev["recvmsg"]) / whole,
                  "timerfd_settime_per_msg": ev["timerfd_settime"] / whole})
    except (OSError, KeyError):
        pass
    if open_loop:
        g = s["send_lag_us"]
        f.update({"sent_msgs_per_s": per_s, "send_lag_p50_us": g["p50"], "send_lag_p99_us": g["p99"], "send_lag_p99_9_us": g["p99_9"]})
    return f
runs = {side: [figures(f"{out}/{case}-{side}-{i}") for i in range(1, pairs + 1)] for side in ("old", "new")}
print(f"  median [min..max] over {pairs} runs each")
for key in runs["old"][0]:
    med = {}
    line = f"  {key:20}"
    for side in ("old", "new"):
        v = [r[key] for r in runs[side]]
        med[side] = statistics.median(v)
        line += f"  {side} {med[side]:10.2f} [{min(v):.2f}..{max(v):.2f}]"
    line += f"  new/old {med['new'] / med['old']:.2f}" if med["old"] else "  new/old -"
    print(line)
PY
done
