#!/usr/bin/env python3
"""Checks a `convmaps PHOTO --model M.onnx --raw -o OUT` run against ONNX
Runtime, and times both.

    python tools/check_network_against_onnx.py OUT [--runs N]

ONNX Runtime runs the model on the very input convmaps gave it
(OUT/input.npy), with every Conv output convmaps wrote as an extra graph
output. For each node folder in OUT/summary.json it prints the worst
difference of features.npy from ONNX Runtime's tensor, relative to that
tensor's largest |value|, and whether the top 5 agree. Then it times the
plain model on ONNX Runtime's CPU provider (median of N runs after one
warm-up) beside convmaps' forward pass (the GPU's clock, and wall time).
Exits 1 when any tensor is more than 1e-4 off or the top 5 differ.
"""

import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort


def main() -> None:
    out = sys.argv[1]
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 10
    summary = json.load(open(os.path.join(out, "summary.json")))
    model_path = summary["model"]["path"]
    image = np.load(os.path.join(out, "input.npy"))
    model = onnx.load(model_path)
    written = {n["outputs"][0]: n for n in summary["nodes"] if n.get("folder")}
    known = {o.name for o in model.graph.output}
    for name in written:
        if name not in known:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "all.onnx")
        onnx.save(model, path)
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: image}
        values = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
    worst = 0.0
    for name, node in written.items():
        mine = np.load(os.path.join(out, node["folder"], "features.npy"))
        theirs = values[name][0].reshape(mine.shape)
        error = float(np.abs(mine - theirs).max() / max(np.abs(theirs).max(), 1e-12))
        worst = max(worst, error)
        print(f"{node['name']:<40} {str(list(mine.shape)):<18} {error:.2e}")
    agree = True
    for output in summary["outputs"]:
        if output["top"]:
            logits = values[output["name"]].reshape(-1)
            theirs = [int(i) for i in np.argsort(-logits, kind="stable")[:5]]
            mine = [c["index"] for c in output["top"]]
            agree &= theirs == mine
            print(f"top 5 {mine} (ONNX Runtime {theirs})")
    plain = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    feed = {plain.get_inputs()[0].name: image}
    plain.run(None, feed)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        plain.run(None, feed)
        times.append((time.perf_counter() - started) * 1e3)
    ort_ms = statistics.median(times)
    gpu_ms = summary.get("gpu_compute_ms")
    run_ms = summary["timings_ms"]["run"]
    print(f"worst relative difference {worst:.2e}")
    print(f"ONNX Runtime (CPU, {ort.get_device()}): {ort_ms:.1f} ms (median of {runs})")
    if gpu_ms:
        print(f"convmaps forward pass: {gpu_ms:.1f} ms on the GPU's clock ({gpu_ms / ort_ms:.2f}x ONNX Runtime)")
    print(f"convmaps run, wall: {run_ms:.1f} ms ({run_ms / ort_ms:.2f}x ONNX Runtime)")
    sys.exit(0 if worst <= 1e-4 and agree else 1)


if __name__ == "__main__":
    main()
