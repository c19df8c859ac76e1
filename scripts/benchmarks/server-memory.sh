#!/usr/bin/env bash
# Server memory under the three floods of scripts/flood.py (claimed frames, pending handshakes,
# idle upgraded connections), on both engines, for one or more builds interleaved. Per build,
# engine and flood: the RSS raised while the connections are held (worst round), bytes per
# connection, what is left after they close, and, for every build after the first, the ratio
# of its held RSS to the first build's (the baseline: build it from a worktree of the base
# branch).
#
#   scripts/benchmarks/server-memory.sh [BASE_BIN_DIR [NEW_BIN_DIR ...]]
#
# Each BIN_DIR holds wsbench-server (default target/release). Environment: FLOODS ("claim
# handshake idle"), ENGINES ("zero-alloc tungstenite"), ROUNDS (2 floods per server), REPEATS
# (1: each build's run is repeated this often, interleaved A B A B, and the median kept),
# SERVER_ARGS (extra server flags for every build). The connection counts are flood.py's
# defaults (2,000 claims, 15,000 handshakes, 10,000 idle). Figures depend on what else the
# machine runs; compare builds in one session only.
set -euo pipefail
BINS=("${@:-target/release}")
FLOODS=${FLOODS:-"claim handshake idle"} ENGINES=${ENGINES:-"zero-alloc tungstenite"}
ROUNDS=${ROUNDS:-2} REPEATS=${REPEATS:-1}
read -r -a SERVER_ARGS <<<"${SERVER_ARGS:-}"
ulimit -n "$(ulimit -Hn)"
here=$(dirname "$0")
for flood in $FLOODS; do
  for engine in $ENGINES; do
    runs=$(mktemp)
    for _ in $(seq "$REPEATS"); do
      for bin in "${BINS[@]}"; do
        # Exit 1 (over the bound, or a failure) still prints the figures, failures included.
        json=$(python3 "$here/../flood.py" "$bin/wsbench-server" --engine "$engine" --flood "$flood" \
          --rounds "$ROUNDS" ${SERVER_ARGS[@]+-- "${SERVER_ARGS[@]}"} 2>/dev/null || true)
        printf '%s\t%s\n' "$bin" "${json:-{\}}" >>"$runs"
      done
    done
    python3 - "$runs" "${BINS[@]}" <<'PY'
import json, statistics, sys
path, bins = sys.argv[1], sys.argv[2:]
per_bin = {b: [] for b in bins}
for line in open(path):
    b, text = line.rstrip("\n").split("\t", 1)
    per_bin[b].append(json.loads(text))
base = None
for b in bins:
    runs = [r for r in per_bin[b] if "held_bytes_per_connection" in r]
    if not runs:
        print(f"{b}: flood.py printed nothing"); continue
    r = sorted(runs, key=lambda r: r["held_growth_mib"])[len(runs) // 2]
    held = r["held_bytes_per_connection"]
    spread = ""
    if len(runs) > 1:
        vals = [x["held_bytes_per_connection"] for x in runs]
        spread = f" [{min(vals)}..{max(vals)}]"
    if base is None:
        base, ratio = held, "baseline"
    else:
        ratio = f"{held / base:.2f}x baseline" if base > 0 else "n/a"
    failures = {}
    for x in runs:
        for k, v in x["failures"].items():
            failures[k] = failures.get(k, 0) + v
    print(f"{r['flood']:>9} {r['engine']:>11} {b}: held +{r['held_growth_mib']:5.1f} MiB "
          f"({held:>6} B{spread} per connection of {r['connections']}, {ratio}), "
          f"after close +{r['after_growth_mib']:4.1f} MiB, failures {failures or 'none'}")
PY
    rm -f "$runs"
  done
done
