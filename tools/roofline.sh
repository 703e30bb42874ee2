#!/usr/bin/env bash
# Times both shaders on this machine's GPU for the two big cases of the
# README's performance section, 12 MP with 32 filters and 50 MP with 64
# filters of 5×5, against the memory roofline (bytes written ÷ bandwidth),
# and saves the tables and their JSON.
#
#   tools/roofline.sh BANDWIDTH_GB_PER_S [OUT_DIR] [CONVMAPS]
#
# BANDWIDTH_GB_PER_S is the GPU's memory bandwidth (4800 for an H200).
# CONVMAPS is a built binary (default target/release/convmaps, built if
# missing). A few minutes on a real GPU; far longer on a software one.
set -euo pipefail
bandwidth=${1:?usage: tools/roofline.sh BANDWIDTH_GB_PER_S [OUT_DIR] [CONVMAPS]}
out=${2:-roofline}
convmaps=${3:-target/release/convmaps}
[ -x "$convmaps" ] || cargo build --release
mkdir -p "$out"
for case in "4032x3024 32" "8192x6144 64"; do
    set -- $case
    "$convmaps" bench --sizes "$1" --filters "$2" --shaders fast,direct \
        --bandwidth "$bandwidth" --repeats 3 --json | tee "$out/bench_$1_k$2.txt"
done
