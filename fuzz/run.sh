#!/usr/bin/env bash
# Runs every fuzz target (or those named) for a fixed time each: fails on any crash, hang
# (an input taking over 10 s) or allocation past the limits. The committed seeds in
# corpus/<target>/ are read; new inputs go to a scratch folder, so a run leaves the tree clean.
#   fuzz/run.sh [-t SECONDS] [-r RUNS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
seconds=25 runs=
while getopts "t:r:" o; do
    case $o in
        t) seconds=$OPTARG ;;
        r) runs=$OPTARG ;;
        *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
limits=(-rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 -max_len=65536 -print_final_stats=1)
if [ -n "$runs" ]; then limits+=(-runs="$runs"); else limits+=(-max_total_time="$seconds"); fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t"
    echo "fuzz: $t (${runs:+$runs runs}${runs:-$seconds s})"
    if ! cargo +nightly fuzz run -O "$t" "$scratch/$t" "corpus/$t" -- "${limits[@]}" >"$scratch/$t.log" 2>&1; then
        tail -n 40 "$scratch/$t.log"
        echo "fuzz: $t FAILED; the input is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$scratch/$t.log" | sed "s/^/fuzz: $t: /"
done
