#!/usr/bin/env python3
"""Checks a stack run of convmaps against ONNX Runtime running the same
stack built from the run's own weights.

    convmaps assets/photo.png --layers 32x5,relu,maxpool2,64x3 --raw
    pip install numpy onnx onnxruntime pillow
    python3 tools/check_stack_against_onnx.py out/photo

For each conv folder listed in summary.json's `layers` (in order), reads
`weights.safetensors` (weight [K, C/G, FH, FW], bias [K]) and
`features.npy` [K, OH, OW], builds the layer's items as ONNX nodes (Conv
with the summary's stride, padding, dilation and groups; Relu; MaxPool
kernel N stride S), runs the whole stack on the photo read as convmaps
reads it (RGB, 8-bit / 255, [1, 3, H, W]; photos without an EXIF rotation),
and prints each folder's worst error relative to its largest |value|.
Exits 1 when one exceeds 1e-5.
"""

import json
import os
import struct
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from PIL import Image


def read_safetensors(path):
    """{name: f32 array} of a safetensors file of f32 tensors."""
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    body = data[8 + length :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        tensors[name] = np.frombuffer(body[start:end], dtype="<f4").reshape(info["shape"])
    return tensors


def nodes_for(layer, index, source, inits):
    """The ONNX nodes of one conv folder's items; returns (nodes, output)."""
    folder_weights = read_safetensors(os.path.join(RUN, layer["folder"], "weights.safetensors"))
    w, b = f"w{index}", f"b{index}"
    inits.append(numpy_helper.from_array(folder_weights["weight"], w))
    inputs = [source, w]
    if "bias" in folder_weights and folder_weights["bias"].size:
        inits.append(numpy_helper.from_array(folder_weights["bias"], b))
        inputs.append(b)
    geometry = layer["layer"]
    pad = geometry["padding"]
    nodes = [
        helper.make_node(
            "Conv", inputs, [f"conv{index}"],
            kernel_shape=geometry["kernel_size"],
            strides=[geometry["stride"]] * 2,
            dilations=[geometry["dilation"]] * 2,
            group=geometry["groups"],
            pads=[pad["top"], pad["left"], pad["bottom"], pad["right"]],
        )
    ]
    current = f"conv{index}"
    for n, item in enumerate(layer["items"][1:]):
        name = f"l{index}_{n}"
        if item == "relu":
            nodes.append(helper.make_node("Relu", [current], [name]))
        elif item.startswith("maxpool"):
            size, _, stride = item[len("maxpool"):].partition("/s")
            size = int(size)
            stride = int(stride) if stride else size
            nodes.append(helper.make_node("MaxPool", [current], [name],
                                          kernel_shape=[size, size], strides=[stride, stride]))
        else:
            raise SystemExit(f"unknown item {item}")
        current = name
    if geometry["activation"] == "relu" and "relu" not in layer["items"]:
        nodes.append(helper.make_node("Relu", [current], [f"act{index}"]))
        current = f"act{index}"
    return nodes, current


def main():
    global RUN
    RUN = sys.argv[1] if len(sys.argv) > 1 else "out/photo"
    summary = json.load(open(os.path.join(RUN, "summary.json")))
    rgb = np.asarray(Image.open(summary["input"]["path"]).convert("RGB"), dtype=np.float32) / 255.0
    image = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])
    inits, nodes, outputs, source = [], [], [], "image"
    for index, layer in enumerate(summary["layers"]):
        layer_nodes, source = nodes_for(layer, index, source, inits)
        nodes += layer_nodes
        outputs.append(helper.make_tensor_value_info(source, TensorProto.FLOAT, None))
    graph = helper.make_graph(
        nodes, "stack",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, list(image.shape))],
        outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"image": image})
    worst = 0.0
    for layer, reference in zip(summary["layers"], expected):
        ours = np.load(os.path.join(RUN, layer["folder"], "features.npy"))
        reference = reference[0]
        if ours.shape != reference.shape:
            raise SystemExit(f"{layer['folder']}: shape {ours.shape}, ONNX Runtime {reference.shape}")
        error = np.abs(ours - reference).max() / max(np.abs(reference).max(), 1e-30)
        worst = max(worst, error)
        print(f"{layer['folder']:>12}  {str(ours.shape):>18}  worst relative error {error:.2e}")
    sys.exit(0 if worst <= 1e-5 else 1)


if __name__ == "__main__":
    main()
