#!/usr/bin/env bash
# Autobahn conformance of one wsbench server engine, checked against its committed expectation.
#
#   conformance/run.sh ENGINE [--update]
#
# Starts `wsbench-server --engine ENGINE` on 127.0.0.1 port 0, runs kosoku's fuzzing client
# (cases 1.* to 7.*, 9.* and 10.*: 301 cases) against it, reduces the report to one line per
# case (case id -> behavior, behaviorClose; durations left out, they differ every run) and
# diffs that against conformance/expected-server-ENGINE.json. Exits non-zero on any difference,
# on any case that is not OK/NON-STRICT/INFORMATIONAL with a clean close, or if the server
# does not exit cleanly on SIGTERM. `--update` rewrites the expected file instead of diffing.
#
# Environment: KOSOKU (default .venv/bin/kosoku, then kosoku on PATH), WSBENCH_SERVER (a
# server binary to test; by default target/release/wsbench-server, built first). Reports go to
# results/conformance/, which git ignores.
set -euo pipefail
cd "$(dirname "$0")/.."

engine="${1:?usage: conformance/run.sh ENGINE [--update]}"
update="${2:-}"
expected="conformance/expected-server-$engine.json"
out="results/conformance/server-$engine"

kosoku="${KOSOKU:-}"
if [ -z "$kosoku" ]; then
    if [ -x .venv/bin/kosoku ]; then kosoku=.venv/bin/kosoku; else kosoku=kosoku; fi
fi
server="${WSBENCH_SERVER:-}"
if [ -z "$server" ]; then
    # A no-op when the release build is current; never tests a stale binary.
    cargo build --release --quiet -p wsbench-server
    server=target/release/wsbench-server
fi

rm -rf "$out"
mkdir -p "$out"
"$server" --engine "$engine" --listen 127.0.0.1:0 >"$out/server.stdout" 2>"$out/server.stderr" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT

# The readiness line: {"event":"listening","addr":"127.0.0.1:PORT","pid":...}
addr=""
for _ in $(seq 100); do
    addr="$(sed -n 's/.*"addr":"\([^"]*\)".*/\1/p' "$out/server.stdout" | head -n 1)"
    [ -n "$addr" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "conformance: the server exited early:" >&2; cat "$out/server.stderr" >&2; exit 1; }
    sleep 0.1
done
[ -n "$addr" ] || { echo "conformance: no readiness line from the server within 10 s" >&2; exit 1; }

cases=()
for c in 1 2 3 4 5 6 7 9 10; do cases+=(-i "$c.*"); done
# Failing cases are judged below from the report, so kosoku's own exit status only matters
# when it wrote no report at all.
"$kosoku" -m fuzzingclient "${cases[@]}" -o "$out/reports" "$addr" >"$out/kosoku.log" 2>&1 || true
if [ ! -f "$out/reports/index.json" ]; then
    echo "conformance: kosoku wrote no report; see $out/kosoku.log" >&2
    tail -n 20 "$out/kosoku.log" >&2
    exit 1
fi

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
trap - EXIT
if [ "$status" -ne 0 ]; then
    echo "conformance: the server exited with status $status after SIGTERM" >&2
    exit 1
fi

passing=0
python3 - "$out/reports/index.json" "$out/results.json" <<'EOF' || passing=$?
import json
import sys

index_path, compact_path = sys.argv[1], sys.argv[2]
agents = json.load(open(index_path))
if len(agents) != 1:
    sys.exit(f"conformance: expected one agent in {index_path}, found {len(agents)}")
(cases,) = agents.values()

def key(case_id):
    return [int(part) for part in case_id.split(".")]

lines = [
    f'  "{cid}": {{"behavior": "{r["behavior"]}", "behaviorClose": "{r["behaviorClose"]}"}}'
    for cid, r in sorted(cases.items(), key=lambda kv: key(kv[0]))
]
with open(compact_path, "w") as f:
    f.write("{\n" + ",\n".join(lines) + "\n}\n")

bad = [
    f"{cid}: behavior={r['behavior']} behaviorClose={r['behaviorClose']}"
    for cid, r in sorted(cases.items(), key=lambda kv: key(kv[0]))
    if r["behavior"] not in ("OK", "NON-STRICT", "INFORMATIONAL")
    or r["behaviorClose"] not in ("OK", "INFORMATIONAL")
]
print(f"conformance: {len(cases) - len(bad)} passed, {len(bad)} failed")
for line in bad:
    print("  " + line)
sys.exit(1 if bad else 0)
EOF

if [ "$update" = "--update" ]; then
    cp "$out/results.json" "$expected"
    echo "conformance: wrote $expected"
    exit "$passing"
fi
if ! diff -u "$expected" "$out/results.json"; then
    echo "conformance: $engine differs from $expected (reports in $out/reports)" >&2
    exit 1
fi
echo "conformance: $engine matches $expected"
exit "$passing"
