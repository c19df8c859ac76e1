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
# cargo-fuzz needs nightly flags (sanitizers). Without a nightly toolchain, the stable one is
# told to accept them: the same compiler, only the channel's gate differs.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
else
    echo "fuzz: no nightly toolchain; using the stable one with RUSTC_BOOTSTRAP=1" >&2
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <("${fuzz[@]}" list)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
if ! "${fuzz[@]}" build -O >"$scratch/build.log" 2>&1; then
    tail -n 40 "$scratch/build.log"
    echo "fuzz: the targets do not build" >&2
    exit 1
fi
limits=(-rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 -max_len=65536 -print_final_stats=1)
if [ -n "$runs" ]; then limits+=(-runs="$runs") label="$runs runs"; else limits+=(-max_total_time="$seconds") label="$seconds s"; fi
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t"
    echo "fuzz: $t ($label)"
    if ! "${fuzz[@]}" run -O "$t" "$scratch/$t" "corpus/$t" -- "${limits[@]}" >"$scratch/$t.log" 2>&1; then
        tail -n 40 "$scratch/$t.log"
        echo "fuzz: $t FAILED; the input is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$scratch/$t.log" | sed "s/^/fuzz: $t: /"
done
