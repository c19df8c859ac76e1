#!/usr/bin/env bash
# Server memory under the three floods of scripts/flood.py (claimed frames, pending handshakes,
# idle upgraded connections), on both engines, for one or more builds interleaved: one line
# per build, engine and flood with the RSS raised while the connections are held (worst round),
# bytes per connection and what is left after they close.
#
#   scripts/benchmarks/server-memory.sh [BIN_DIR ...]
#
# Each BIN_DIR holds wsbench-server (default target/release). Environment: FLOODS ("claim
# handshake idle"), ENGINES ("zero-alloc tungstenite"), ROUNDS (2). The connection counts are
# flood.py's defaults (2,000 claims, 15,000 handshakes, 10,000 idle). Figures depend on what
# else the machine runs; compare builds in one session.
set -euo pipefail
BINS=("${@:-target/release}")
FLOODS=${FLOODS:-"claim handshake idle"} ENGINES=${ENGINES:-"zero-alloc tungstenite"}
ROUNDS=${ROUNDS:-2}
ulimit -n "$(ulimit -Hn)"
here=$(dirname "$0")
for flood in $FLOODS; do
  for engine in $ENGINES; do
    for bin in "${BINS[@]}"; do
      # Exit 1 (over the bound, or a failure) still prints the figures, failures included.
      json=$(python3 "$here/../flood.py" "$bin/wsbench-server" --engine "$engine" --flood "$flood" \
        --rounds "$ROUNDS" 2>/dev/null || true)
      python3 - "$bin" "$json" <<'PY'
import json, sys
bin, text = sys.argv[1], sys.argv[2]
if not text.strip():
    print(f"{bin}: flood.py printed nothing"); sys.exit(0)
r = json.loads(text)
print(f"{r['flood']:>9} {r['engine']:>11} {bin}: held +{r['held_growth_mib']:5.1f} MiB "
      f"({r['held_bytes_per_connection']:>6} B per connection of {r['connections']}), "
      f"after close +{r['after_growth_mib']:4.1f} MiB, failures {r['failures'] or 'none'}")
PY
    done
  done
done
