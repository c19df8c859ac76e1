# Sourced by the benchmark scripts: start_server BIN [server flags...] starts BIN/wsbench-server
# on a free loopback port in the background and sets OUT (a scratch folder, removed on exit),
# SRV (its pid, killed on exit) and ADDR (host:port), or exits 1 when it does not come up.
start_server() {
  local bin=$1; shift
  OUT=$(mktemp -d)
  trap 'kill "$SRV" 2>/dev/null || true; rm -rf "$OUT"' EXIT
  # TASKSET (a CPU list), when set, pins the server.
  ${TASKSET:+taskset -c "$TASKSET"} "$bin/wsbench-server" --listen 127.0.0.1:0 "$@" >"$OUT/server.out" 2>/dev/null &
  SRV=$!
  for _ in $(seq 100); do grep -q listening "$OUT/server.out" 2>/dev/null && break; sleep 0.05; done
  ADDR=$(grep -o '127\.0\.0\.1:[0-9]*' "$OUT/server.out" | head -1)
  [[ -n $ADDR ]] || { echo "wsbench-server did not start" >&2; exit 1; }
}
