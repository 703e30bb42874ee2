#!/usr/bin/env bash
# Remakes the README's pictures of the page in headless Chromium with
# WebGPU on its software GPU: the one-layer page re-planned
# (docs/replan.png), a stack's page with one map open (docs/stack-detail.png),
# and a network's page with one map and one value's arithmetic
# (docs/model-detail.png).
#
#   tools/screenshots.sh            # uses target/release/convmaps (built if missing)
#
# Needs Chromium (apt-get install chromium). Takes a few minutes on two CPU
# cores: the pages compute their maps in the browser.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=target/release/convmaps
[ -x "$binary" ] || cargo build --release
browser=$(command -v chromium || command -v chromium-browser)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# shot PAGE FRAGMENT OUTPUT WIDTHxHEIGHT
shot() {
  "$browser" --headless --no-sandbox --disable-gpu --no-first-run \
    --enable-unsafe-webgpu --virtual-time-budget=100000000 \
    --hide-scrollbars --user-data-dir="$work/profile" \
    --window-size="$4" --screenshot="$3" "file://$(realpath "$1")$2" 2>/dev/null
}

"$binary" assets/photo.png -k 8 -f 5 --out "$work/one" --quiet
shot "$work/one/index.html" \
  '#layer={"filters":8,"kernel":5,"stride":2,"padding":2}&view={"colormap":"rdbu","opacity":0.7}&map=3' \
  docs/replan.png 1100,1450

"$binary" assets/photo.png --layers 32x5,relu,maxpool2,64x3/s2/p1 --colormap rdbu --out "$work/stack" --quiet
shot "$work/stack/index.html" '#open=conv2/10@60,40' docs/stack-detail.png 1100,1300
echo "wrote docs/replan.png and docs/stack-detail.png"

# A network's page with one map open and one pixel's arithmetic: the real
# ResNet-18 when RESNET18 names its export (tools/make_network_fixtures.py
# --big DIR writes one), else the narrow fixture at 224×224.
if [ -n "${RESNET18:-}" ]; then
  model=$RESNET18 size=()
else
  model=tests/fixtures/net/resnet_dy/model.onnx size=(--resize 224x224)
fi
"$binary" assets/photo.png --model "$model" --input-norm imagenet "${size[@]}" --colormap rdbu \
  --out "$work/model" --quiet
conv=$(python3 -c 'import json,sys; print([n["name"] for n in json.load(open(sys.argv[1]))["nodes"] if n["op"] == "Conv"][2])' \
  "$work/model/summary.json")
shot "$work/model/index.html" "#open=$conv/5@30,20" docs/model-detail.png 1100,1300
echo "wrote docs/model-detail.png from $model"
