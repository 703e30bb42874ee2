#!/usr/bin/env python3
"""Builds tests/fixtures/stack/: a two-conv ONNX model and ONNX Runtime's
maps of it, the golden files of tests/stack.rs.

Run with a Python that has numpy, onnx and onnxruntime:

    python tools/make_stack_fixtures.py [OUT_DIR]

stack.onnx: graph input "image" [1, 3, 23, 29], then
  /conv1/Conv        Conv 3->8, 5x5, pads 2, with bias
  Relu
  MaxPool            kernel 2, stride 2
  /block/conv2/Conv  Conv 8->6, 3x3, stride 2, pads 1, group 2, with bias
  Relu
Weights are f32 initializers drawn from a fixed seed. The conv names hold
"/", as exporters write them; convmaps makes them safe folder names.

input.npy  [3, 23, 29] f32 in [0, 1): the image without its batch axis.
conv1.npy  [8, 11, 14]: MaxPool(Relu(conv1(image))), what conv1_Conv/ holds.
conv2.npy  [6, 6, 7]:   Relu(conv2(...)), what block_conv2_Conv/ holds.
Both computed by ONNX Runtime from the model with the intermediate added
as a second output (only in memory: stack.onnx has one output).

names.txt: the two conv names, one a line, as `convmaps layers stack.onnx`
lists them and as --layers takes them (the Conv nodes' names):
    convmaps PHOTO --weights stack.onnx \
        --layers /conv1/Conv,relu,maxpool2,/block/conv2/Conv,relu
"""

import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
# The names a user types for the two convs: convmaps names an ONNX conv by
# its node's name (its first output's when the node has none).
CONV_NAMES = ["/conv1/Conv", "/block/conv2/Conv"]
HEIGHT, WIDTH = 23, 29
rng = np.random.default_rng(20261203)


def f32(shape, scale):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def build(extra_output):
    inits = [
        numpy_helper.from_array(W1, "conv1.weight"),
        numpy_helper.from_array(B1, "conv1.bias"),
        numpy_helper.from_array(W2, "conv2.weight"),
        numpy_helper.from_array(B2, "conv2.bias"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "conv1.weight", "conv1.bias"], ["c1"],
                         name=CONV_NAMES[0], kernel_shape=[5, 5], pads=[2, 2, 2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"], name="/relu1/Relu"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="/pool1/MaxPool",
                         kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2.weight", "conv2.bias"], ["c2"],
                         name=CONV_NAMES[1], kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1], group=2),
        helper.make_node("Relu", ["c2"], ["out"], name="/relu2/Relu"),
    ]
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 6, 6, 7])]
    if extra_output:
        outputs.append(helper.make_tensor_value_info("p1", TensorProto.FLOAT, [1, 8, 11, 14]))
    graph = helper.make_graph(
        nodes, "stack",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, HEIGHT, WIDTH])],
        outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


W1, B1 = f32((8, 3, 5, 5), 0.2), f32((8,), 0.1)
W2, B2 = f32((6, 4, 3, 3), 0.2), f32((6,), 0.1)
IMAGE = rng.random((1, 3, HEIGHT, WIDTH), dtype=np.float32)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "tests", "fixtures", "stack")
    os.makedirs(out, exist_ok=True)
    onnx.save(build(extra_output=False), os.path.join(out, "stack.onnx"))
    session = ort.InferenceSession(build(extra_output=True).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    final, pooled = session.run(["out", "p1"], {"image": IMAGE})
    save = lambda name, a: np.save(os.path.join(out, name), np.ascontiguousarray(a, dtype="<f4"))
    save("input.npy", IMAGE[0])
    save("conv1.npy", pooled[0])
    save("conv2.npy", final[0])
    with open(os.path.join(out, "names.txt"), "w", newline="\n") as names:
        names.write("".join(name + "\n" for name in CONV_NAMES))
    print("conv1", pooled[0].shape, "conv2", final[0].shape)


if __name__ == "__main__":
    main()
