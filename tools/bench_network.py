#!/usr/bin/env python3
"""The README's whole-network speed figures: each model's forward pass on
convmaps (`convmaps bench --model`, the GPU's clock and the wall) beside
ONNX Runtime on this machine's CPU, in one run, with the ratio.

    python3 tools/bench_network.py MODEL.onnx[@WxH] [MODEL.onnx[@WxH] ...]
        [--convmaps target/release/convmaps] [--repeats 10] [--runs 2]
        [--size 224x224]

For each model, `--runs` times: `convmaps bench --model MODEL --repeats R
--shaders fast --json` (one untimed pass, then R passes), then ONNX
Runtime's CPU session on an input of the same shape (one untimed run, then
2·R runs). Prints one line per run and model: convmaps' median on the GPU's
clock and its median wall time, ONNX Runtime's median, and the ratio of
the two medians. A model of dynamic size runs at the size after its `@`
(`ppocr_cls.onnx@192x48`), else at `--size`.

Needs numpy and onnxruntime (not needed by convmaps itself or its tests).
"""
import argparse
import json
import statistics
import subprocess
import time

import numpy as np
import onnxruntime as ort


def convmaps_times(convmaps, model, repeats, size):
    """Median GPU and wall milliseconds of `convmaps bench --model`."""
    command = [convmaps, "bench", "--model", model, "--repeats", str(repeats),
               "--shaders", "fast", "--sizes", size, "--json"]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    rows = json.loads(out[out.index("["):])
    row = rows[0]
    return row["gpu_ms"], row["wall_ms"], row["size"]


def onnxruntime_ms(model, runs, size):
    """Median milliseconds of ONNX Runtime's CPU session, warm."""
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0]
    width, height = (int(v) for v in size.split("x"))
    # A fixed size as it is; a dynamic batch is 1, and a dynamic side the
    # height or width it is in NCHW (channels second) or NHWC (channels last).
    nhwc = feed.shape[-1] in (1, 3) and feed.shape[1] not in (1, 3)
    sides = {1: height, 2: width} if nhwc else {2: height, 3: width}
    shape = [d if isinstance(d, int) and d > 0 else sides.get(i, 1)
             for i, d in enumerate(feed.shape)]
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    session.run(None, {feed.name: x})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, {feed.name: x})
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), shape


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--convmaps", default="target/release/convmaps")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--size", default="224x224")
    args = parser.parse_args()
    print(f"onnxruntime {ort.__version__}")
    print("model                          size      convmaps GPU ms  wall ms  onnxruntime ms  ratio")
    for run in range(args.runs):
        for given in args.models:
            model, _, size = given.partition("@")
            size = size or args.size
            gpu, wall, size = convmaps_times(args.convmaps, model, args.repeats, size)
            reference, _ = onnxruntime_ms(model, 2 * args.repeats, size.replace("×", "x"))
            measured = gpu if gpu is not None else wall
            name = model if len(model) <= 30 else "…" + model[-29:]
            print(f"{name:30} {size:9} {measured:15.1f} {wall:8.1f} {reference:15.1f} "
                  f"{measured / reference:6.1f}x")


if __name__ == "__main__":
    main()
