#!/usr/bin/env bash
# How often does `wsbench compare` fail a CI gate on noise, and how often does it catch a real
# regression? Counted, not asserted: the figures are for the report, the machine is shared.
#
#   scripts/compare-repeatability.sh [WORK_DIR]        (default results/compare-repeatability)
#
# 1. A/A at the default trial count: 10 runs of scenarios/quick.toml (2 trials each, unchanged),
#    compared pairwise (45 compares) with --fail-if 'p99 > +10%' --fail-if 'throughput < -5%'.
#    Every compare should exit 0.
# 2. A doubled p99 at 5 trials: a server that pauses P ms every 500 ms (2 % of messages delayed
#    by up to P ms: p99 about P/2) against one that pauses 2P ms every 1 s (2 % delayed by up to
#    2P ms: p99 about P). P is PAUSE_MS (default 20). 5 base runs x 4 candidate runs = 20 compares
#    with --fail-if 'p99 > +10%'; every compare should exit 1. The 5 base runs also give 10 A/A
#    compares at 5 trials, which should exit 0. DOUBLED_TRIALS changes the 5.
# Runs that already exist in WORK_DIR are reused, so the compares can be repeated with another
# build. Takes about 10 minutes on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-results/compare-repeatability}"
cargo build --release --quiet -p wsbench
wsbench="$PWD/target/release/wsbench"
mkdir -p "$work"

# run SCENARIO RESULTS RUN_ID [ARGS...]: one `wsbench run`, unless it is already there.
run() {
    local scenario="$1" results="$2" id="$3"
    shift 3
    local name
    name="$(sed -n 's/^name = "\(.*\)"/\1/p' "$scenario" | head -n 1)"
    if [ -f "$results/$name/$id/run.json" ]; then return; fi
    rm -rf "${results:?}/$name/$id"
    "$wsbench" run "$scenario" --results "$results" --run-id "$id" --no-report "$@" >"$work/$id.log" 2>&1 \
        || echo "compare-repeatability: run $id exited $? (see $work/$id.log)" >&2
}

# compare BASE CANDIDATE ARGS...: prints the exit code, keeps stdout and stderr in the log.
compare() {
    local code=0
    "$wsbench" compare "$@" >>"$work/compares.log" 2>&1 || code=$?
    echo "$code"
}

: >"$work/compares.log"
for i in $(seq -w 1 10); do run scenarios/quick.toml "$work/aa" "quick-$i"; done
declare -A aa=()
for i in $(seq -w 1 10); do
    for j in $(seq -w 1 10); do
        [ "$i" \< "$j" ] || continue
        c=$(compare "$work/aa/quick/quick-$i" "$work/aa/quick/quick-$j" --fail-if 'p99 > +10%' --fail-if 'throughput < -5%')
        aa[$c]=$(( ${aa[$c]:-0} + 1 ))
    done
done

pause_ms="${PAUSE_MS:-20}"
doubled="$work/doubled-${pause_ms}ms${DOUBLED_TRIALS:+-${DOUBLED_TRIALS}trials}"
for variant in base candidate; do
    if [ "$variant" = base ]; then every=500ms; pause="${pause_ms}ms"; else every=1s; pause="$((2 * pause_ms))ms"; fi
    cat >"$doubled-$variant.toml" <<EOF
name = "pause-$variant"
description = "open loop at 4,000 msgs/s against a server pausing $pause every $every"
trials = ${DOUBLED_TRIALS:-5}
[server]
runtime = "multi-thread"
workers = 2
pause_every = "$every"
pause_for = "$pause"
[load]
connections = 20
size = 32
rate = 4000
warmup = "1s"
duration = "4s"
drain_timeout = "1s"
[[configs]]
name = "multi-thread"
EOF
done
for i in 1 2 3 4 5; do run "$doubled-base.toml" "$doubled" "base-$i"; done
for i in 1 2 3 4; do run "$doubled-candidate.toml" "$doubled" "candidate-$i"; done
declare -A caught=() aa5=()
for i in 1 2 3 4 5; do
    for j in 1 2 3 4; do
        c=$(compare "$doubled/pause-base/base-$i" "$doubled/pause-candidate/candidate-$j" --fail-if 'p99 > +10%')
        caught[$c]=$(( ${caught[$c]:-0} + 1 ))
    done
    for j in 1 2 3 4 5; do
        [ "$i" -lt "$j" ] || continue
        c=$(compare "$doubled/pause-base/base-$i" "$doubled/pause-base/base-$j" --fail-if 'p99 > +10%')
        aa5[$c]=$(( ${aa5[$c]:-0} + 1 ))
    done
done

# exit-code histogram of an associative array, e.g. "exit 0: 44, exit 1: 1"
codes() {
    local -n h=$1
    local out=()
    for k in $(printf '%s\n' "${!h[@]}" | sort); do out+=("exit $k: ${h[$k]}"); done
    (IFS=,; echo "${out[*]}")
}
# median p99 (µs) of every run of a scenario, from the trials' summaries
p99s() {
    python3 - "$@" <<'PY'
import json, statistics, sys, glob
for run in sys.argv[1:]:
    v = [json.load(open(f))["latency_us"]["p99"] for f in sorted(glob.glob(run + "/*/trial-*/summary.json"))]
    print(f"  {run.split('/')[-1]}: median p99 {statistics.median(v)/1000:.2f} ms over {len(v)} trials")
PY
}
echo "A/A, quick.toml at its default trials (45 compares): $(codes aa)"
echo "doubled p99 (${pause_ms} ms every 500 ms vs $((2 * pause_ms)) ms every 1 s), ${DOUBLED_TRIALS:-5} trials, 'p99 > +10%' (20 compares): $(codes caught)"
echo "A/A, ${DOUBLED_TRIALS:-5} trials, 'p99 > +10%' (10 compares): $(codes aa5)"
p99s "$doubled"/pause-base/base-* "$doubled"/pause-candidate/candidate-*
echo "compare outputs: $work/compares.log"
