#!/usr/bin/env python3
"""Builds the small ONNX models under tests/fixtures/onnx/ that tests/onnx.rs reads.

Run with a Python that has numpy, onnx and onnxruntime:

    python tools/make_onnx_fixtures.py [OUT_DIR]

Models (weights drawn from a fixed seed, so the files are reproducible):

  a.onnx  Conv 3->4 3x3 with bias, stride 2, pads [1, 0, 2, 1] (ONNX order:
          top, left, bottom, right), then BatchNormalization (epsilon 1e-3),
          Relu, a 1x1 Conv without bias and a Reshape whose shape is an INT64
          initializer. Weights are initializers in raw_data (f32).
  b.onnx  The same graph with every weight in a Constant node: the first
          conv's weight f16 in int32_data, its bias f16 in raw_data, the
          BatchNorm's tensors f32 in float_data.
  c.onnx  Grouped conv (4->6, 2 groups, 3x3), auto_pad SAME_UPPER, stride 2,
          dilation 2, f64 weights (weight in double_data, bias in raw_data),
          plus an unused bf16 initializer in int32_data.
  d.onnx  No Conv: image * scale, where scale's data_location is EXTERNAL.

For a, b and c: NAME_input.npy ([C, H, W]), NAME_weight.npy and NAME_bias.npy
(the first conv's weight and bias as f32, after any rounding of the stored
dtype) and NAME_conv1.npy ([K, OH, OW]): the first conv alone, run by ONNX
Runtime on that input (for c by the onnx package's reference evaluator, as
ONNX Runtime refuses dilation with SAME_UPPER). For a also a_bn_*.npy, the BatchNorm's tensors. Every
.npy is little-endian f32 in C order.
"""

import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

OPSET = 17
rng = np.random.default_rng(20240611)


def f32(shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def save_npy(out, name, array):
    np.save(os.path.join(out, name), np.ascontiguousarray(array, dtype="<f4"))


def run_first_conv(weight, bias, attrs, image, runtime=True):
    """The first conv alone, in f32, as ONNX Runtime computes it (or, with
    `runtime` false, the onnx package's reference evaluator): [K, OH, OW]."""
    inits = [numpy_helper.from_array(weight.astype(np.float32), "w")]
    inputs = ["x", "w"]
    if bias is not None:
        inits.append(numpy_helper.from_array(bias.astype(np.float32), "b"))
        inputs.append("b")
    node = helper.make_node("Conv", inputs, ["y"], **attrs)
    graph = helper.make_graph(
        [node], "first_conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *image.shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "k", "h", "w"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    if runtime:
        session = ort.InferenceSession(model.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        (y,) = session.run(None, {"x": image[None].astype(np.float32)})
    else:
        (y,) = ReferenceEvaluator(model).run(None, {"x": image[None].astype(np.float32)})
    return y[0]


def tensor(name, array, data_type, raw):
    """A TensorProto of `array` stored as `data_type`, in raw_data or in its typed field."""
    if raw:
        np_type = helper.tensor_dtype_to_np_dtype(data_type)
        return helper.make_tensor(name, data_type, array.shape,
                                  array.astype(np_type).tobytes(), raw=True)
    return helper.make_tensor(name, data_type, array.shape, array.flatten().tolist())


def constant(name, proto):
    return helper.make_node("Constant", [], [name], name=f"const_{name}", value=proto)


def save_model(out, name, graph, check=True):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="make_onnx_fixtures")
    if check:
        onnx.checker.check_model(model)
    with open(os.path.join(out, name), "wb") as f:
        f.write(model.SerializeToString())


def conv_bn_graph(as_constants):
    """Models a and b: their nodes, initializers and the first conv's values."""
    w1, b1 = f32((4, 3, 3, 3), 0.5), f32((4,), 0.1)
    bn = {"scale": f32((4,)) + 1.5, "shift": f32((4,), 0.3),
          "mean": f32((4,), 0.2), "var": np.abs(f32((4,))) + 0.5}
    w2 = f32((2, 4, 1, 1), 0.5)
    attrs = dict(strides=[2, 2], pads=[1, 0, 2, 1], dilations=[1, 1], kernel_shape=[3, 3])
    nodes, inits = [], []
    if as_constants:
        w1 = w1.astype(np.float16).astype(np.float32)
        b1 = b1.astype(np.float16).astype(np.float32)
        nodes += [constant("conv1.weight", tensor("", w1, TensorProto.FLOAT16, raw=False)),
                  constant("conv1.bias", tensor("", b1, TensorProto.FLOAT16, raw=True))]
        nodes += [constant(f"bn1.{k}", tensor("", v, TensorProto.FLOAT, raw=False))
                  for k, v in bn.items()]
        nodes.append(constant("conv2.weight", tensor("", w2, TensorProto.FLOAT, raw=False)))
    else:
        inits += [tensor("conv1.weight", w1, TensorProto.FLOAT, raw=True),
                  tensor("conv1.bias", b1, TensorProto.FLOAT, raw=True)]
        inits += [tensor(f"bn1.{k}", v, TensorProto.FLOAT, raw=True) for k, v in bn.items()]
        inits.append(tensor("conv2.weight", w2, TensorProto.FLOAT, raw=True))
    inits.append(tensor("out_shape", np.array([1, -1]), TensorProto.INT64, raw=True))
    nodes += [
        helper.make_node("Conv", ["image", "conv1.weight", "conv1.bias"], ["c1"],
                         name="conv1", **attrs),
        helper.make_node("BatchNormalization",
                         ["c1"] + [f"bn1.{k}" for k in bn], ["n1"], name="bn1", epsilon=1e-3),
        helper.make_node("Relu", ["n1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "conv2.weight"], ["c2"]),  # unnamed on purpose
        helper.make_node("Reshape", ["c2", "out_shape"], ["out"], name="flatten"),
    ]
    return nodes, inits, (w1, b1, attrs, bn)


def make_ab(out, name, as_constants):
    nodes, inits, (w1, b1, attrs, bn) = conv_bn_graph(as_constants)
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 9, 10])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 50])],
        inits,
    )
    save_model(out, f"{name}.onnx", graph)
    image = f32((3, 9, 10))
    save_npy(out, f"{name}_input.npy", image)
    save_npy(out, f"{name}_weight.npy", w1)
    save_npy(out, f"{name}_bias.npy", b1)
    save_npy(out, f"{name}_conv1.npy", run_first_conv(w1, b1, attrs, image))
    if not as_constants:
        for k, v in bn.items():
            save_npy(out, f"{name}_bn_{k}.npy", v)


def make_c(out):
    w = rng.standard_normal((6, 2, 3, 3)) * 0.5
    b = rng.standard_normal((6,)) * 0.1
    attrs = dict(strides=[2, 2], auto_pad="SAME_UPPER", dilations=[2, 2], group=2)
    extra = f32((3,))
    inits = [tensor("gconv.weight", w, TensorProto.DOUBLE, raw=False),
             tensor("gconv.bias", b, TensorProto.DOUBLE, raw=True),
             tensor("extra_bf16", extra, TensorProto.BFLOAT16, raw=False)]
    node = helper.make_node("Conv", ["image", "gconv.weight", "gconv.bias"], ["out"],
                            name="gconv", **attrs)
    graph = helper.make_graph(
        [node], "c",
        [helper.make_tensor_value_info("image", TensorProto.DOUBLE, [1, 4, 7, 8])],
        [helper.make_tensor_value_info("out", TensorProto.DOUBLE, [1, 6, 4, 4])],
        inits,
    )
    save_model(out, "c.onnx", graph)
    image = f32((4, 7, 8))
    w32, b32 = w.astype(np.float32), b.astype(np.float32)
    save_npy(out, "c_input.npy", image)
    save_npy(out, "c_weight.npy", w32)
    save_npy(out, "c_bias.npy", b32)
    # ONNX Runtime refuses dilation with SAME_UPPER: the reference evaluator runs it.
    save_npy(out, "c_conv1.npy", run_first_conv(w32, b32, attrs, image, runtime=False))
    bf16 = numpy_helper.to_array(inits[2]).astype(np.float32)
    save_npy(out, "c_extra_bf16.npy", bf16)


def make_d(out):
    scale = helper.make_tensor("scale", TensorProto.FLOAT, [1], [0.0])
    del scale.float_data[:]
    scale.data_location = TensorProto.EXTERNAL
    entry = scale.external_data.add()
    entry.key, entry.value = "location", "scale.bin"
    graph = helper.make_graph(
        [helper.make_node("Mul", ["image", "scale"], ["out"], name="mul")], "d",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 4, 4])],
        [scale],
    )
    # The external file is not written: the reader must refuse the tensor
    # without looking for it, so the model is not checked either.
    save_model(out, "d.onnx", graph, check=False)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "tests", "fixtures", "onnx")
    os.makedirs(out, exist_ok=True)
    make_ab(out, "a", as_constants=False)
    make_ab(out, "b", as_constants=True)
    make_c(out)
    make_d(out)


if __name__ == "__main__":
    main()
