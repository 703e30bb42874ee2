#!/usr/bin/env bash
# Times both shaders on this machine's GPU for the two big cases of the
# README's performance section, 12 MP with 32 filters and 50 MP with 64
# filters of 5×5, against the memory roofline (bytes written ÷ bandwidth),
# and saves the tables and their JSON.
#
#   tools/roofline.sh BANDWIDTH_GB_PER_S [OUT_DIR] [CONVMAPS] [PHOTO_12MP PHOTO_50MP]
#
# BANDWIDTH_GB_PER_S is the GPU's memory bandwidth (4800 for an H200).
# CONVMAPS is a built binary (default target/release/convmaps, built if
# missing). With the two photos, also runs them end to end (32 and 64
# filters) in the default mode and with the maps kept and recomputed, and
# saves each run's summary.json and its wall time and peak memory. A few
# minutes on a real GPU; far longer on a software one.
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

# End to end, when the photos are given: every file written, three times each.
if [ $# -ge 5 ]; then
    timer=()
    [ -x /usr/bin/time ] && timer=(/usr/bin/time -v)
    for case in "$4 32" "$5 64"; do
        set -- $case
        for mode in default keep recompute; do
            envs=()
            [ "$mode" = default ] || envs=("CONVMAPS_MAPS_MODE=$mode")
            for run in 1 2 3; do
                name="$out/e2e_$(basename "$1")_k$2_${mode}_$run"
                rm -rf "$name"
                env "${envs[@]}" "${timer[@]}" "$convmaps" "$1" --filters "$2" \
                    --out "$name" -q 2> "$name.time" || echo "failed: see $name.time"
                grep -E "Elapsed|Maximum resident" "$name.time" | tr '\n' ' '
                echo " $name"
                rm -f "$name"/*.png # keep summary.json, not gigabytes of pictures
            done
        done
    done
fi
