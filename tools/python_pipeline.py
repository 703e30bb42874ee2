#!/usr/bin/env python3
"""The comparison pipeline for the README's speed figures: what a user might
write in Python for the job `convmaps PHOTO --filters K` does. Pillow reads the
photo, ONNX Runtime's CPU Conv runs K random 5x5 filters (padding 0,
stride 1), each map is stretched over its own min..max to 8 bits and saved
by Pillow as one PNG per map.

    python3 tools/python_pipeline.py PHOTO OUT_DIR [--filters 32] [--kernel 5]

Prints the seconds of each stage and the total. Needs numpy, pillow, onnx
and onnxruntime (not needed by convmaps itself or its tests).
"""
import argparse
import os
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from PIL import Image


def conv_model(weight, bias):
    """A one-node ONNX model: Conv with the given weight and bias."""
    k, c, fh, fw = weight.shape
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[fh, fw])
    graph = helper.make_graph(
        [node],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, None, None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            helper.make_tensor("w", TensorProto.FLOAT, weight.shape, weight.ravel()),
            helper.make_tensor("b", TensorProto.FLOAT, bias.shape, bias.ravel()),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo")
    parser.add_argument("out")
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--kernel", type=int, default=5)
    args = parser.parse_args()
    times = {}
    started = time.perf_counter()

    t = time.perf_counter()
    photo = np.asarray(Image.open(args.photo).convert("RGB"), dtype=np.float32) / 255.0
    x = photo.transpose(2, 0, 1)[None].copy()
    times["decode"] = time.perf_counter() - t

    t = time.perf_counter()
    rng = np.random.default_rng(0)
    bound = 1.0 / np.sqrt(3 * args.kernel * args.kernel)
    weight = rng.uniform(-bound, bound, (args.filters, 3, args.kernel, args.kernel)).astype(np.float32)
    bias = rng.uniform(-bound, bound, args.filters).astype(np.float32)
    session = ort.InferenceSession(
        conv_model(weight, bias).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    maps = session.run(None, {"x": x})[0][0]
    times["compute"] = time.perf_counter() - t

    t = time.perf_counter()
    os.makedirs(args.out, exist_ok=True)
    for k, plane in enumerate(maps):
        lo, hi = float(plane.min()), float(plane.max())
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        pixels = np.clip((plane - lo) * scale + 0.5, 0, 255).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(os.path.join(args.out, f"feature_{k:02d}.png"))
    times["encode"] = time.perf_counter() - t

    times["total"] = time.perf_counter() - started
    print(" ".join(f"{name} {seconds:.2f} s" for name, seconds in times.items()))


if __name__ == "__main__":
    main()
