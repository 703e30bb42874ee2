#!/usr/bin/env python3
"""Builds tests/fixtures/onnx/e.onnx the way users export models today:
`torch.onnx.export(model, args, "e.onnx")` with its default exporter, which
keeps the weights beside the model in `e.onnx.data` (ONNX external data).

Run with a Python that has torch, onnx and onnxruntime:

    python tools/make_torch_export_fixture.py [OUT_DIR]

The model, from a fixed seed: Conv 3->4 5x5 with bias, stride 2, padding 2,
then BatchNorm2d (running statistics set away from 0 and 1), ReLU, and a
Conv 4->2 3x3. Besides e.onnx and e.onnx.data it writes e_input.npy
([3, 20, 24]) and e_conv1.npy ([K, OH, OW]): the output of the graph's first
Conv node, run by ONNX Runtime on that input (the graph cut after that
node, so whatever the exporter made of the layers, the golden is what the
file's first conv computes). Every .npy is little-endian f32 in C order.
"""

import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch

SEED = 20261205


def model() -> torch.nn.Module:
    torch.manual_seed(SEED)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 5, stride=2, padding=2),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 2, 3),
    )
    bn = net[1]
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.3, -0.2, 0.1, 0.5]))
        bn.running_var.copy_(torch.tensor([0.5, 2.0, 1.5, 0.8]))
        bn.weight.copy_(torch.tensor([1.2, 0.7, -0.9, 1.1]))
        bn.bias.copy_(torch.tensor([0.05, -0.1, 0.2, 0.0]))
    return net.eval()


def first_conv_output(path: str, image: np.ndarray) -> np.ndarray:
    """The first Conv node's output, as ONNX Runtime computes it."""
    graph = onnx.load(path)
    conv = next(node for node in graph.graph.node if node.op_type == "Conv")
    del graph.graph.output[:]
    graph.graph.output.append(onnx.helper.make_empty_tensor_value_info(conv.output[0]))
    cut = path + ".cut.onnx"
    onnx.save(graph, cut)
    try:
        session = ort.InferenceSession(cut, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: image[None]}
        return session.run(None, feed)[0][0]
    finally:
        os.remove(cut)


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/onnx"
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "e.onnx")
    image = np.random.default_rng(SEED).random((3, 20, 24), dtype=np.float32)
    torch.onnx.export(model(), (torch.from_numpy(image[None]),), path)
    if not os.path.exists(path + ".data"):
        sys.exit("the exporter kept the weights inside e.onnx: expected e.onnx.data beside it")
    np.save(os.path.join(out, "e_input.npy"), image.astype("<f4"))
    golden = first_conv_output(path, image)
    np.save(os.path.join(out, "e_conv1.npy"), golden.astype("<f4"))
    print(f"e.onnx: first conv output {golden.shape}")


if __name__ == "__main__":
    main()
