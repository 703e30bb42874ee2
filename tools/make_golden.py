#!/usr/bin/env python3
"""Generate the golden Conv2d test cases under tests/golden/.

Each case is computed by an independent implementation (ONNX Runtime's CPU
Conv operator, run on a one-node ONNX model) and cross-checked against a plain
numpy reference.  Every case folder holds:

    input.npy     float32 [C, H, W]
    weight.npy    float32 [K, C/G, FH, FW]   (OIHW)
    bias.npy      float32 [K]                (absent when the case has no bias)
    expected.npy  float32 [K, OH, OW]        (ONNX Runtime output, batch dim removed)
    case.json     {"stride", "padding": [top, bottom, left, right],
                   "dilation", "groups", "bias", "note"}

Run by hand from the repository root:

    pip install numpy onnx onnxruntime pillow && python3 tools/make_golden.py

The output is deterministic: rerunning rewrites identical bytes.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
PHOTO = ROOT / "assets" / "photo.png"

# Relative tolerance of the numpy cross-check (relative to max |output|).
CROSS_CHECK_TOL = 1e-5

# name, seed, (C, H, W), K, (FH, FW), stride, padding [top, bottom, left, right],
# dilation, groups, bias, note
CASES = [
    ("photo_crop", 1, (3, 17, 23), 4, (5, 5), 1, [0, 0, 0, 0], 1, 1, True,
     "3x17x23 crop of assets/photo.png (rows 20..37, cols 400..423), 5x5 valid"),
    ("hand_small", 2, (3, 4, 5), 2, (3, 3), 1, [0, 0, 0, 0], 1, 1, True,
     "tiny 3x4x5 input, 3x3 valid"),
    ("stride2", 3, (3, 13, 11), 3, (3, 3), 2, [0, 0, 0, 0], 1, 1, True,
     "3x3 kernel, stride 2, no padding"),
    ("stride3_pad1", 4, (3, 14, 16), 2, (4, 4), 3, [1, 1, 1, 1], 1, 1, True,
     "4x4 kernel, stride 3, padding 1 on every side"),
    ("same_odd", 5, (3, 9, 10), 3, (3, 3), 1, [1, 1, 1, 1], 1, 1, True,
     "3x3 'same' padding"),
    ("same_even", 6, (3, 9, 10), 3, (4, 4), 1, [1, 2, 1, 2], 1, 1, True,
     "4x4 'same' padding, extra pixel at bottom/right (SAME_UPPER)"),
    ("dilation2", 7, (3, 15, 13), 2, (3, 3), 1, [0, 0, 0, 0], 2, 1, True,
     "3x3 kernel, dilation 2"),
    ("groups3", 8, (3, 10, 12), 6, (3, 3), 1, [0, 0, 0, 0], 1, 3, True,
     "groups 3 (depthwise with multiplier 2), weight [6,1,3,3]"),
    ("rect5x3", 9, (3, 12, 9), 2, (5, 3), 1, [2, 2, 1, 1], 1, 1, True,
     "rectangular 5 high x 3 wide kernel, padding [2,2,1,1]"),
    ("no_bias", 10, (3, 8, 9), 3, (3, 3), 1, [0, 0, 0, 0], 1, 1, False,
     "3x3 valid, no bias (no bias.npy)"),
    ("kernel1x1", 11, (3, 6, 7), 4, (1, 1), 1, [0, 0, 0, 0], 1, 1, True,
     "1x1 kernel"),
    ("kernel7x7", 12, (3, 16, 20), 2, (7, 7), 1, [3, 3, 3, 3], 1, 1, True,
     "7x7 kernel, padding 3"),
    ("nonsquare_stride2_dil2_pad2", 13, (3, 21, 9), 3, (3, 3), 2, [2, 2, 2, 2], 2, 1, True,
     "non-square input, 3x3 kernel, stride 2, dilation 2, padding 2"),
]


def photo_crop():
    """Rows 20..37, cols 400..423 of the photo as planar float32 [3, 17, 23]."""
    rgb = np.asarray(Image.open(PHOTO).convert("RGB"), dtype=np.uint8)  # [H, W, 3]
    crop = rgb[20:37, 400:423, :].astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(crop.transpose(2, 0, 1))


def out_size(xshape, wshape, stride, pad, dilation):
    """Output (OH, OW) of a convolution; pad is [top, bottom, left, right]."""
    _, H, W = xshape
    FH, FW = wshape[2:]
    top, bottom, left, right = pad
    OH = (H + top + bottom - dilation * (FH - 1) - 1) // stride + 1
    OW = (W + left + right - dilation * (FW - 1) - 1) // stride + 1
    return OH, OW


def onnx_conv(x, w, b, stride, pad, dilation, groups):
    """Run ONNX Runtime Conv on x [C,H,W]; pad is [top, bottom, left, right]."""
    top, bottom, left, right = pad
    inputs = ["X", "W"] + (["B"] if b is not None else [])
    node = helper.make_node(
        "Conv", inputs, ["Y"],
        kernel_shape=list(w.shape[2:]),
        strides=[stride, stride],
        dilations=[dilation, dilation],
        group=groups,
        pads=[top, left, bottom, right],  # ONNX order: begins (H, W), then ends (H, W)
    )
    # Weights and bias are graph initializers; only X is a runtime input.
    inits = [numpy_helper.from_array(w, "W")]
    if b is not None:
        inits.append(numpy_helper.from_array(b, "B"))
    oh, ow = out_size(x.shape, w.shape, stride, pad, dilation)
    graph = helper.make_graph(
        [node], "conv",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, *x.shape])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, w.shape[0], oh, ow])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # single thread: reproducible summation order
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"X": x[None]})
    return np.ascontiguousarray(y[0], dtype=np.float32)


def numpy_conv(x, w, b, stride, pad, dilation, groups):
    """Plain float64 reference: sum of shifted, strided slices of the padded input."""
    top, bottom, left, right = pad
    K, cg, FH, FW = w.shape
    kg = K // groups
    xp = np.pad(x.astype(np.float64), ((0, 0), (top, bottom), (left, right)))
    OH, OW = out_size(x.shape, w.shape, stride, pad, dilation)
    out = np.zeros((K, OH, OW), dtype=np.float64)
    for g in range(groups):
        xs = xp[g * cg:(g + 1) * cg]             # this group's input channels
        ws = w[g * kg:(g + 1) * kg].astype(np.float64)
        for i in range(FH):
            for j in range(FW):
                r0, c0 = i * dilation, j * dilation
                patch = xs[:, r0:r0 + stride * (OH - 1) + 1:stride,
                              c0:c0 + stride * (OW - 1) + 1:stride]  # [cg, OH, OW]
                out[g * kg:(g + 1) * kg] += np.einsum("kc,chw->khw", ws[:, :, i, j], patch)
    if b is not None:
        out += b.astype(np.float64)[:, None, None]
    return out


def make_case(name, seed, shape, K, ksize, stride, pad, dilation, groups, bias, note):
    C, H, W = shape
    FH, FW = ksize
    cg = C // groups
    rng = np.random.default_rng(seed)
    if name == "photo_crop":
        x = photo_crop()
        assert x.shape == shape, x.shape
    else:
        x = rng.random(shape, dtype=np.float32)
    bound = 1.0 / np.sqrt(cg * FH * FW)
    w = rng.uniform(-bound, bound, (K, cg, FH, FW)).astype(np.float32)
    b = rng.uniform(-bound, bound, (K,)).astype(np.float32) if bias else None

    y = onnx_conv(x, w, b, stride, pad, dilation, groups)
    ref = numpy_conv(x, w, b, stride, pad, dilation, groups)
    assert y.shape == ref.shape, (name, y.shape, ref.shape)
    scale = float(np.max(np.abs(ref)))
    err = float(np.max(np.abs(y.astype(np.float64) - ref)))
    rel = err / scale if scale > 0 else err
    print(f"{name:30s} out {str(list(y.shape)):14s} max|err| {err:.3e}  rel {rel:.3e}")
    assert rel <= CROSS_CHECK_TOL, f"{name}: ONNX Runtime and numpy disagree ({rel:.3e})"

    d = GOLDEN / name
    if d.exists():
        shutil.rmtree(d)  # start clean so a stale bias.npy never lingers
    d.mkdir(parents=True)
    np.save(d / "input.npy", x.astype("<f4"))
    np.save(d / "weight.npy", w.astype("<f4"))
    if b is not None:
        np.save(d / "bias.npy", b.astype("<f4"))
    np.save(d / "expected.npy", y.astype("<f4"))
    meta = {"stride": stride, "padding": list(pad), "dilation": dilation,
            "groups": groups, "bias": bias, "note": note}
    (d / "case.json").write_text(json.dumps(meta, indent=2) + "\n")
    return rel


def main():
    GOLDEN.mkdir(parents=True, exist_ok=True)
    worst = max(make_case(*case) for case in CASES)
    print(f"wrote {len(CASES)} cases to {GOLDEN}; worst cross-check rel error {worst:.3e}")


if __name__ == "__main__":
    main()
