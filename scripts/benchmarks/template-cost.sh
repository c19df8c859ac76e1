#!/usr/bin/env bash
# What a template load costs the load generator beside wsbench's own echo messages: the same
# build on both sides of scripts/benchmarks/loadgen-ab.sh, tungstenite client, "old" sending
# the 32-byte header and checking echoes, "new" rendering a JSON-RPC template and pairing each
# reply by its id (the built-in server echoes the request, so the id comes back). Prints CPU per
# message, worker allocations per message, msgs/s and send lag for each, and the ratio.
#
#   scripts/benchmarks/template-cost.sh BIN_DIR [json|regex]
#
# Environment as loadgen-ab.sh (PAIRS, DURATION, CASES: default "open20k closed16").
set -euo pipefail
BIN=$1 RULE=${2:-json}
TEMPLATE='{"jsonrpc":"2.0","id":{seq},"method":"echo","params":["{rand:16}",{ts_ns}]}'
case $RULE in
  json) MATCH="--match-json /id" ;;
  regex) MATCH='--match-regex "id":(\d+)' ;;
  *) echo "rule is json or regex" >&2; exit 2 ;;
esac
# No spaces in the template or the rule: NEW_EXTRA is split on whitespace.
ENGINE=tungstenite CASES=${CASES:-"open20k closed16"} NEW_EXTRA="--template $TEMPLATE $MATCH" \
  exec "$(dirname "$0")/loadgen-ab.sh" "$BIN" "$BIN"
