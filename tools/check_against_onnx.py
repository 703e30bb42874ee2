#!/usr/bin/env python3
"""Check a `convmaps PHOTO --raw` output directory against ONNX Runtime.

Usage:
    python3 tools/check_against_onnx.py OUT_DIR [--root DIR] [--tol 1e-5]

OUT_DIR must hold the files written by `--raw`:
    summary.json         input.path and the layer options (stride, padding,
                         dilation, groups, bias)
    weights.safetensors  `weight` [K, C/G, FH, FW] f32, `bias` [K] f32 if biased
    features.npy         the tool's output, [K, OH, OW] f32

The photo is reloaded (RGB, /255, planar [1, 3, H, W]); a relative input.path
is resolved against --root (default: the current directory, which should be
the directory convmaps was run from). ONNX Runtime's CPU Conv is run with the
same weights and options, and each output map is compared with features.npy.
The error of a map is its max |difference| divided by that map's max |value|
in the ONNX Runtime result. Exit status: 0 when every map is within --tol,
1 when any is not (or the shapes differ, or the output is not finite).

Run by hand; needs: pip install numpy onnx onnxruntime pillow safetensors
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from safetensors.numpy import load_file

# The same ONNX Runtime Conv that made the golden files.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_golden import onnx_conv  # noqa: E402


def load_photo(path):
    """Photo as float32 [1, 3, H, W] in [0, 1]."""
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)  # [H, W, 3]
    x = rgb.astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", type=Path, help="output directory of `convmaps PHOTO --raw`")
    ap.add_argument("--root", type=Path, default=Path("."),
                    help="directory that relative input paths are resolved against "
                         "(default: current directory)")
    ap.add_argument("--tol", type=float, default=1e-5,
                    help="max allowed per-map error relative to the map's max |value| "
                         "(default: 1e-5)")
    args = ap.parse_args()

    # --- Read what convmaps wrote -------------------------------------------
    summary = json.loads((args.out_dir / "summary.json").read_text())
    layer = summary["layer"]
    stride, dilation, groups = int(layer["stride"]), int(layer["dilation"]), int(layer["groups"])
    pad = {k: int(layer["padding"][k]) for k in ("top", "bottom", "left", "right")}
    has_bias = bool(layer["bias"])

    tensors = load_file(str(args.out_dir / "weights.safetensors"))
    w = np.ascontiguousarray(tensors["weight"], dtype=np.float32)
    b = None
    if has_bias:
        if "bias" not in tensors:
            sys.exit("error: summary says bias=true but weights.safetensors has no `bias`")
        b = np.ascontiguousarray(tensors["bias"], dtype=np.float32)
    got = np.load(args.out_dir / "features.npy")

    photo = Path(summary["input"]["path"])
    if not photo.is_absolute():
        photo = args.root / photo
    x = load_photo(photo)

    print(f"photo     {photo}  [{x.shape[1]}, {x.shape[2]}, {x.shape[3]}]")
    print(f"layer     weight {list(w.shape)}  bias {has_bias}  stride {stride}  "
          f"padding {pad}  dilation {dilation}  groups {groups}")

    # --- Reference ------------------------------------------------------------
    pads = [pad["top"], pad["bottom"], pad["left"], pad["right"]]
    want = onnx_conv(x[0], w, b, stride, pads, dilation, groups)
    if layer.get("activation", "none") == "relu":
        want = np.maximum(want, 0.0)  # convmaps applies ReLU after the bias
    print(f"shape     convmaps {list(got.shape)}  onnx {list(want.shape)}")
    if got.shape != want.shape:
        print("FAIL: output shapes differ")
        return 1
    if not np.all(np.isfinite(got)):
        print(f"FAIL: features.npy has {np.count_nonzero(~np.isfinite(got))} non-finite values")
        return 1

    # --- Compare, per map -----------------------------------------------------
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    max_abs = float(diff.max())
    map_err = diff.reshape(diff.shape[0], -1).max(axis=1)               # [K]
    map_scale = np.abs(want).reshape(want.shape[0], -1).max(axis=1)     # [K]
    # An all-zero reference map would divide by zero; any error there counts fully.
    map_rel = map_err / np.maximum(map_scale.astype(np.float64), 1e-30)
    worst = int(np.argmax(map_rel))
    k, i, j = np.unravel_index(int(np.argmax(diff)), diff.shape)

    print(f"max |diff| {max_abs:.3e}  at map {k} (y={i}, x={j}): "
          f"convmaps {got[k, i, j]:.7g} vs onnx {want[k, i, j]:.7g}")
    print(f"worst map {worst}: max |diff| {map_err[worst]:.3e} / scale "
          f"{map_scale[worst]:.4g} = rel {map_rel[worst]:.3e}")

    ok = map_rel[worst] <= args.tol
    verdict = "PASS" if ok else "FAIL"
    print(f"{verdict}: {want.shape[0]} maps of {want.shape[1]}x{want.shape[2]}, "
          f"worst relative error {map_rel[worst]:.3e} (tol {args.tol:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
