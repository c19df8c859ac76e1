#!/usr/bin/env bash
# Autobahn conformance of one wsbench server engine, or of the zero-alloc client, checked
# against its committed expectation.
#
#   conformance/run.sh ENGINE [--update]              a server engine (tungstenite, zero-alloc)
#   conformance/run.sh client-zero-alloc [--update]   the load generator's zero-alloc client
#   conformance/run.sh zero-alloc-deflate [--update]  permessage-deflate: cases 12.* and 13.*
#   conformance/run.sh client-zero-alloc-deflate [--update]
#
# A server: starts `wsbench-server --engine ENGINE` on 127.0.0.1 port 0 and runs kosoku's
# fuzzing client against it; the server must then exit cleanly on SIGTERM.
# The client: starts kosoku's fuzzing server on a free 127.0.0.1 port and runs
# `wsbench-loadgen --autobahn 127.0.0.1:PORT` against it (the handshake and codec of
# `--engine zero-alloc`); the load generator must run every case and exit 0.
# Either way the cases are 1.* to 7.*, 9.* and 10.* (301 cases); a target ending in -deflate
# runs the permessage-deflate cases 12.* and 13.* (216 cases) instead, the server started with
# `--deflate` and the client run with `--autobahn-deflate`, KOSOKU_PARALLELISM (default 2) cases
# at a time (most of their time is spent waiting on the network, 1000 messages per case).
# The report is reduced to one
# line per case (case id -> behavior, behaviorClose; durations left out, they differ every
# run) and diffed against conformance/expected-server-ENGINE.json or
# conformance/expected-client-zero-alloc.json. Exits non-zero on any difference, or on any
# case that is not OK/NON-STRICT/INFORMATIONAL with a clean close. `--update` rewrites the
# expected file instead of diffing.
#
# AUTOBAHN_CASES (space-separated kosoku case patterns, e.g. '12.1.* 13.1.*') runs a subset
# instead, judged against the expectation's entries for those cases.
#
# Environment: KOSOKU (default .venv/bin/kosoku, then kosoku on PATH), WSBENCH_SERVER (a
# server binary to test; by default target/release/wsbench-server, built first),
# WSBENCH_LOADGEN (likewise for the client: target/release/wsbench-loadgen). Reports go to
# results/conformance/, which git ignores.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${1:?usage: conformance/run.sh ENGINE|client-zero-alloc [--update]}"
update="${2:-}"

kosoku="${KOSOKU:-}"
if [ -z "$kosoku" ]; then
    if [ -x .venv/bin/kosoku ]; then kosoku=.venv/bin/kosoku; else kosoku=kosoku; fi
fi
cases=()
server_args=()
client_args=()
parallel=()
if [ -n "${AUTOBAHN_CASES:-}" ]; then
    # A subset (e.g. AUTOBAHN_CASES='12.1.* 13.1.*'): judged against the expectation's entries
    # for the cases that ran; the expectation itself can only be rewritten from a full run.
    if [ "$update" = "--update" ]; then
        echo "conformance: --update needs every case; unset AUTOBAHN_CASES" >&2
        exit 2
    fi
    read -ra patterns <<<"$AUTOBAHN_CASES" # split on spaces, never globbed
    for c in "${patterns[@]}"; do cases+=(-i "$c"); done
fi
if [[ "$target" == *-deflate ]]; then
    [ -n "${AUTOBAHN_CASES:-}" ] || for c in 12 13; do cases+=(-i "$c.*"); done
    parallel+=(-p "${KOSOKU_PARALLELISM:-2}")
    server_args+=(--deflate)
    client_args+=(--autobahn-deflate)
elif [ -z "${AUTOBAHN_CASES:-}" ]; then
    for c in 1 2 3 4 5 6 7 9 10; do cases+=(-i "$c.*"); done
fi

# Reduces kosoku's report REPORTS/index.json into COMPACT, judges every case, then rewrites
# (--update) or diffs EXPECTED; NAME is the target in messages. Ends the script.
reduce_and_compare() {
    local reports="$1" compact="$2" expected="$3" name="$4"
    if [ ! -f "$reports/index.json" ]; then
        echo "conformance: kosoku wrote no report in $reports" >&2
        exit 1
    fi
    local passing=0
    python3 - "$reports/index.json" "$compact" <<'EOF' || passing=$?
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
        cp "$compact" "$expected"
        echo "conformance: wrote $expected"
        exit "$passing"
    fi
    local wanted="$expected"
    if [ -n "${AUTOBAHN_CASES:-}" ]; then
        # Only the expectation's lines for the cases that ran.
        wanted="$compact.expected"
        python3 - "$expected" "$compact" "$wanted" <<'EOF'
import json
import sys

expected, compact, out = sys.argv[1:]
ran = json.load(open(compact))
want = json.load(open(expected))
missing = sorted(set(ran) - set(want))
if missing:
    sys.exit(f"conformance: {len(missing)} cases ran that {expected} does not know: {missing[:5]}")
key = lambda cid: [int(p) for p in cid.split(".")]
lines = [f'  "{cid}": {{"behavior": "{want[cid]["behavior"]}", "behaviorClose": "{want[cid]["behaviorClose"]}"}}' for cid in sorted(ran, key=key)]
with open(out, "w") as f:
    f.write("{\n" + ",\n".join(lines) + "\n}\n")
EOF
    fi
    if ! diff -u "$wanted" "$compact"; then
        echo "conformance: $name differs from $expected (reports in $reports)" >&2
        exit 1
    fi
    echo "conformance: $name matches $expected"
    exit "$passing"
}

# The binary to test: GIVEN (from the environment) if set, else the release build of PACKAGE,
# built first (a no-op when current; never tests a stale binary).
release_binary() { # GIVEN PACKAGE
    if [ -n "$1" ]; then
        echo "$1"
    else
        cargo build --release --quiet -p "$2"
        echo "target/release/$2"
    fi
}

if [ "${target%-deflate}" = client-zero-alloc ]; then
    out="results/conformance/$target"
    loadgen="$(release_binary "${WSBENCH_LOADGEN:-}" wsbench-loadgen)"
    rm -rf "$out"
    mkdir -p "$out"

    # A free port, asked of the OS and then bound by kosoku: another process may take it in
    # between, so a fuzzing server that exits before accepting connections is retried.
    pid=""
    trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null || true' EXIT
    port=""
    for _ in 1 2 3 4 5; do
        port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
        "$kosoku" -m fuzzingserver "${cases[@]}" -o "$out/reports" "127.0.0.1:$port" >"$out/kosoku.log" 2>&1 &
        pid=$!
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            # Accepting TCP: ready. (A bare connection is harmless to the fuzzing server.)
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break 2; fi
            sleep 0.1
        done
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        pid=""
    done
    if [ -z "$pid" ]; then
        echo "conformance: kosoku's fuzzing server did not start; see $out/kosoku.log" >&2
        tail -n 20 "$out/kosoku.log" >&2
        exit 1
    fi

    status=0
    "$loadgen" --autobahn "127.0.0.1:$port" ${client_args[@]+"${client_args[@]}"} >"$out/loadgen.stdout" 2>"$out/loadgen.stderr" || status=$?
    if [ "$status" -ne 0 ]; then
        echo "conformance: wsbench-loadgen --autobahn exited with status $status:" >&2
        cat "$out/loadgen.stderr" >&2
        exit 1
    fi
    # After /updateReports the fuzzing server writes its report and exits by itself (status 1
    # when a case failed; judged below from the report). One that lingers is stopped.
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
    trap - EXIT
    reduce_and_compare "$out/reports" "$out/results.json" "conformance/expected-$target.json" "$target"
fi

engine="${target%-deflate}"
expected="conformance/expected-server-$target.json"
out="results/conformance/server-$target"
server="$(release_binary "${WSBENCH_SERVER:-}" wsbench-server)"

rm -rf "$out"
mkdir -p "$out"
"$server" --engine "$engine" ${server_args[@]+"${server_args[@]}"} --listen 127.0.0.1:0 >"$out/server.stdout" 2>"$out/server.stderr" &
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

# Failing cases are judged below from the report, so kosoku's own exit status only matters
# when it wrote no report at all.
"$kosoku" -m fuzzingclient "${cases[@]}" ${parallel[@]+"${parallel[@]}"} -o "$out/reports" "$addr" >"$out/kosoku.log" 2>&1 || true
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

reduce_and_compare "$out/reports" "$out/results.json" "$expected" "$target"
