#!/usr/bin/env bash
# Do three unchanged capacity searches agree? Counted, not asserted: the figures are for the
# report, the machine is shared.
#
#   scripts/capacity-repeatability.sh [fixed|scenario|all] [SCENARIO] [WORK_DIR]
#
# fixed:    three searches against scripts/fixed_rate_server.py at R = 1000 msgs/s (a foreign
#           server whose capacity is R by construction; the scenario of cli/tests/capacity.rs).
# scenario: three runs of SCENARIO (default scenarios/capacity.toml), unchanged.
# For every configuration it prints the three capacities, whose limit each was (server or load
# generator), and the spread: the largest distance from the median, in % of the median. The
# target: within ±15 %, or labelled load-generator-limited. Needs python3 with `websockets`
# (WSBENCH_PYTHON, default .venv/bin/python) for `fixed`.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
scenario="${2:-scenarios/capacity.toml}"
work="${3:-results/capacity-repeatability}"
python="${WSBENCH_PYTHON:-.venv/bin/python}"
cargo build --release --quiet -p wsbench
wsbench="$PWD/target/release/wsbench"
mkdir -p "$work"

# search NAME SCENARIO: three runs into $work/NAME, then the table.
search() {
    local name="$1" file="$2"
    rm -rf "${work:?}/$name"
    for i in 1 2 3; do
        local started=$SECONDS
        "$wsbench" run "$file" --results "$work/$name" --run-id "run-$i" --no-report >"$work/$name-$i.log" 2>&1 \
            || echo "capacity-repeatability: $name run $i exited $? (see $work/$name-$i.log)" >&2
        echo "$name run $i: $((SECONDS - started)) s"
    done
    python3 - "$work/$name" <<'PY'
import glob, json, os, statistics, sys
runs = sorted(glob.glob(os.path.join(sys.argv[1], "*", "run-*")))
configs = {}
for run in runs:
    for path in sorted(glob.glob(os.path.join(run, "*", "trial-*", "capacity.json"))):
        c = json.load(open(path))
        config = path.split(os.sep)[-3]
        configs.setdefault(config, []).append(c)
for config, searches in configs.items():
    caps = [c["capacity_msgs_per_s"] for c in searches]
    median = statistics.median(caps)
    spread = max(abs(x - median) for x in caps) / median * 100 if median > 0 else float("nan")
    limits = [c.get("limited_by", "?") for c in searches]
    probes = [len(c["probes"]) for c in searches]
    behind = [sum(p.get("load_generator_behind", False) for p in c["probes"]) for c in searches]
    print(f"  {config}: capacities {', '.join(f'{x:.0f}' for x in caps)} msgs/s; limited by {', '.join(limits)}; "
          f"spread ±{spread:.1f} % of the median {median:.0f}; probes {probes}, load generator behind in {behind}")
    server = [x for x, l in zip(caps, limits) if l == "server"]
    if len(server) == len(caps):
        print(f"    all three limited by the server: {'within' if spread <= 15 else 'NOT within'} ±15 %")
    else:
        print(f"    {len(caps) - len(server)} of 3 labelled '{'/'.join(sorted(set(limits) - {'server'}))}'")
PY
}

if [ "$what" = fixed ] || [ "$what" = all ]; then
    cat >"$work/fixed-rate.toml" <<EOF
name = "capacity-known"
description = "capacity of scripts/fixed_rate_server.py at R = 1000 msgs/s under p99 <= 20ms"
trials = 1
[server]
command = ["$python", "$PWD/scripts/fixed_rate_server.py", "--port", "{port}", "--rate", "1000"]
[load]
connections = 10
warmup = "0.5s"
duration = "2s"
drain_timeout = "2s"
[search]
slo = "p99 <= 20ms"
precision = "5%"
start_rate = 600
max_rate = 2400
max_probes = 14
EOF
    echo "fixed-rate server, known capacity 1000 msgs/s:"
    search capacity-known "$work/fixed-rate.toml"
fi
if [ "$what" = scenario ] || [ "$what" = all ]; then
    echo "$scenario:"
    search scenario "$scenario"
fi
