#!/usr/bin/env python3
"""Checks a convmaps run on an ONNX model's first layer against ONNX Runtime
running the model itself, cut after that layer (after its BatchNorm when the
run folded one).

    convmaps photo.png --weights model.onnx --fold-bn --input-norm imagenet --raw -o out/run
    python3 tools/check_model_layer.py model.onnx photo.png out/run

Reads out/run/summary.json for the layer's name, the folded BatchNorm and
the preprocessing, reads the photo with Pillow the same way (RGB, upright,
0-1 values, scale, mean and std), runs the cut model and prints the worst
error of a map relative to its largest |value|. Needs numpy, onnx,
onnxruntime and pillow.
"""
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnx.utils
import onnxruntime
from PIL import Image, ImageOps


def node_output(model, name):
    for node in model.graph.node:
        if node.name == name or (node.output and node.output[0] == name):
            return node.output[0]
    sys.exit(f"{name}: no such node in the model")


def photo_input(path, prep):
    image = ImageOps.exif_transpose(Image.open(path)).convert("RGBA")
    rgba = np.asarray(image, dtype=np.float64) / 255.0
    layout = prep["layout"]
    if layout == "luma":
        planes = [0.299 * rgba[..., 0] + 0.587 * rgba[..., 1] + 0.114 * rgba[..., 2]]
    else:
        order = [2, 1, 0] if layout.startswith("bgr") else [0, 1, 2]
        planes = [rgba[..., c] for c in order]
        if layout in ("rgba", "bgra"):
            planes.append(rgba[..., 3])
    x = np.stack(planes).astype(np.float32) * np.float32(prep["scale"])
    norm = prep.get("normalization")
    if norm:
        mean = np.asarray(norm["mean"], np.float32)[:, None, None]
        std = np.asarray(norm["std"], np.float32)[:, None, None]
        x = (x - mean) / std
    return x[None]


def main():
    model_path, photo, run = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    summary = json.loads((run / "summary.json").read_text())
    origin = summary["weights_file"]
    model = onnx.load(model_path)
    cut_at = node_output(model, origin["batch_norm"] or origin["layer"])
    inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    with tempfile.TemporaryDirectory() as tmp:
        cut = Path(tmp) / "cut.onnx"
        onnx.utils.extract_model(model_path, str(cut), inputs[:1], [cut_at])
        session = onnxruntime.InferenceSession(str(cut), providers=["CPUExecutionProvider"])
        x = photo_input(photo, summary["input"]["preprocessing"])
        expected = session.run(None, {inputs[0]: x})[0][0]
    actual = np.load(run / "features.npy")
    if actual.shape != expected.shape:
        sys.exit(f"shapes differ: convmaps {actual.shape}, ONNX Runtime {expected.shape}")
    scale = np.abs(expected).reshape(len(expected), -1).max(axis=1)
    worst = (np.abs(actual - expected).reshape(len(expected), -1).max(axis=1) / np.maximum(scale, 1e-12)).max()
    print(f"{len(actual)} maps of {actual.shape[2]}×{actual.shape[1]}: worst relative error {worst:.2e}")
    sys.exit(0 if worst < 1e-4 else 1)


if __name__ == "__main__":
    main()
