#!/usr/bin/env python3
"""Builds the whole-network fixtures under tests/fixtures/net/: small
versions of torchvision architectures (narrow widths, small inputs, their
own random initialisation from a fixed seed, BatchNorm statistics set away
from 0 and 1), exported with both of PyTorch's ONNX exporters, and what
ONNX Runtime computes from them.

Run with a Python that has torch, torchvision, onnx, onnxscript and
onnxruntime:

    python tools/make_network_fixtures.py [OUT_DIR] [--all]
    python tools/make_network_fixtures.py --ppocr MODEL [OUT_DIR]
    python tools/make_network_fixtures.py --big DIR

For each model NAME and exporter in COMMITTED (each of the ten with
`--all`) (`ts`: the TorchScript exporter, opset 17;
`dy`: today's default, the dynamo exporter, opset 18, weights in
NAME.onnx.data), OUT_DIR/NAME_EXPORTER/ holds:

- model.onnx (and model.onnx.data for `dy`), exactly as the exporter wrote it;
- input.npy: the input tensor [3, H, W], little-endian f32;
- golden/NNN.npy: ONNX Runtime's value of each Conv node's output and of
  each graph output (batch dimension dropped);
- golden.json: for each golden file, the node that writes it (name, op,
  output value name) and its shape, and the graph output's top 5 classes.

OUT_DIR/bad/ holds small malformed graphs the loader must refuse.

`--ppocr MODEL [OUT_DIR]` writes OUT_DIR/ppocr_cls/ from the PP-OCR
text-direction classifier `ch_ppocr_mobile_v2.0_cls_infer.onnx` (from the
`rapidocr_onnxruntime` wheel, `pip download rapidocr_onnxruntime`).

`--big DIR` writes, instead, full-size ResNet-18 (224x224) exported the
default way, for measuring speed; it is not committed.
"""

import json
import os
import shutil
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torchvision
from torchvision.models import efficientnet, mobilenetv2, mobilenetv3, regnet, resnet

SEED = 20261205


class TinyResNet(torch.nn.Module):
    """ResNet-18's structure (stem, max pool, BasicBlocks with residual
    additions and strided 1x1 downsampling, global average pool, linear)
    with one block per stage and widths 8, 16, 24, 32."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 7, stride=2, padding=3, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.relu = torch.nn.ReLU(inplace=True)
        self.maxpool = torch.nn.MaxPool2d(3, stride=2, padding=1)
        stages = []
        width = 8
        for planes, stride in [(8, 1), (16, 2), (24, 2), (32, 2)]:
            down = None
            if stride != 1 or width != planes:
                down = torch.nn.Sequential(
                    torch.nn.Conv2d(width, planes, 1, stride=stride, bias=False),
                    torch.nn.BatchNorm2d(planes),
                )
            stages.append(resnet.BasicBlock(width, planes, stride, down))
            width = planes
        self.layers = torch.nn.Sequential(*stages)
        self.avgpool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(width, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.avgpool(self.layers(x))
        return self.fc(torch.flatten(x, 1))


def tiny_mobilenetv2() -> torch.nn.Module:
    """MobileNetV2 at width 0.25, its last 1x1 conv 160 wide (not 1280)."""
    net = mobilenetv2.MobileNetV2(num_classes=10, width_mult=0.25)
    last = net.features[-1]
    net.features[-1] = type(last)(last[0].in_channels, 160, kernel_size=1, activation_layer=torch.nn.ReLU6)
    net.classifier[-1] = torch.nn.Linear(160, 10)
    return net


def tiny_mobilenetv3() -> torch.nn.Module:
    settings, _ = mobilenetv3._mobilenet_v3_conf("mobilenet_v3_small", width_mult=0.25)
    return mobilenetv3.MobileNetV3(settings, last_channel=128, num_classes=10)


def tiny_efficientnet() -> torch.nn.Module:
    settings, _ = efficientnet._efficientnet_conf(
        "efficientnet_b0", width_mult=0.25, depth_mult=0.25
    )
    return efficientnet.EfficientNet(settings, 0.2, last_channel=160, num_classes=10)


def tiny_regnet() -> torch.nn.Module:
    params = regnet.BlockParams.from_init_params(
        depth=4, w_0=8, w_a=8.0, w_m=2.0, group_width=8, se_ratio=0.25
    )
    return regnet.RegNet(params, num_classes=10)


def tiny_squeezenet() -> torch.nn.Module:
    """SqueezeNet 1.1's structure (ceil_mode max pools, Fire modules whose
    two expand branches are concatenated, a conv classifier and a global
    average pool) at widths 4-32."""
    from torchvision.models.squeezenet import Fire

    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=2, ceil_mode=True),
        Fire(16, 4, 8, 8), Fire(16, 4, 8, 8),
        nn.MaxPool2d(3, stride=2, ceil_mode=True),
        Fire(16, 8, 16, 16),
        nn.Dropout(0.5), nn.Conv2d(32, 10, 1), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )


def tiny_googlenet() -> torch.nn.Module:
    """GoogLeNet's structure (BasicConv2d with BatchNorm, ceil_mode pools,
    Inception blocks of four concatenated branches) at widths 4-32."""
    import sys

    g = sys.modules["torchvision.models.googlenet"]
    nn = torch.nn
    return nn.Sequential(
        g.BasicConv2d(3, 16, kernel_size=3, stride=2, padding=1),
        nn.MaxPool2d(3, stride=2, ceil_mode=True),
        g.Inception(16, 8, 4, 8, 2, 4, 4),
        g.Inception(24, 8, 8, 16, 4, 4, 4),
        nn.MaxPool2d(3, stride=2, ceil_mode=True),
        g.Inception(32, 8, 8, 16, 4, 8, 8),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(40, 10),
    )


def tiny_shufflenet() -> torch.nn.Module:
    import sys

    m = sys.modules["torchvision.models.shufflenetv2"]
    return m.ShuffleNetV2([1, 2, 1], [8, 16, 32, 64, 64], num_classes=10)


class SiLUConv(torch.nn.Module):
    """Conv, BatchNorm, SiLU: a YOLO-style detector's conv."""

    def __init__(self, inputs: int, outputs: int, kernel: int = 1, stride: int = 1):
        super().__init__()
        self.conv = torch.nn.Conv2d(inputs, outputs, kernel, stride, kernel // 2, bias=False)
        self.bn = torch.nn.BatchNorm2d(outputs)

    def forward(self, x):
        return torch.nn.functional.silu(self.bn(self.conv(x)))


class C2f(torch.nn.Module):
    """Split in two, a bottleneck on one half, concatenate all three."""

    def __init__(self, channels: int):
        super().__init__()
        self.cv1 = SiLUConv(channels, channels)
        self.m = torch.nn.Sequential(SiLUConv(channels // 2, channels // 2, 3), SiLUConv(channels // 2, channels // 2, 3))
        self.cv2 = SiLUConv(3 * channels // 2, channels)

    def forward(self, x):
        a, b = self.cv1(x).chunk(2, 1)
        return self.cv2(torch.cat([a, b, b + self.m(b)], 1))


class SPPF(torch.nn.Module):
    """Three 5x5 max pools in a row, concatenated."""

    def __init__(self, channels: int):
        super().__init__()
        self.cv1 = SiLUConv(channels, channels // 2)
        self.cv2 = SiLUConv(channels * 2, channels)
        self.pool = torch.nn.MaxPool2d(5, 1, 2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.pool(x)
        y2 = self.pool(y1)
        return self.cv2(torch.cat([x, y1, y2, self.pool(y2)], 1))


class TinyYolo(torch.nn.Module):
    """A YOLO-style detector: a backbone of strided convs and C2f blocks,
    SPPF, nearest upsampling concatenated with an earlier map, and a head
    whose boxes and classes go through Reshape, Transpose and Softmax."""

    def __init__(self):
        super().__init__()
        self.stem = SiLUConv(3, 8, 3, 2)
        self.down1 = SiLUConv(8, 16, 3, 2)
        self.c2f1 = C2f(16)
        self.down2 = SiLUConv(16, 32, 3, 2)
        self.sppf = SPPF(32)
        self.up = torch.nn.Upsample(scale_factor=2, mode="nearest")
        self.c2f2 = C2f(48)
        self.head = torch.nn.Conv2d(48, 12, 1)

    def forward(self, x):
        p3 = self.c2f1(self.down1(self.stem(x)))
        p4 = self.sppf(self.down2(p3))
        y = self.c2f2(torch.cat([self.up(p4), p3], 1))
        out = self.head(y)
        n, _, h, w = out.shape
        boxes, classes = out.split([4, 8], 1)
        classes = classes.reshape(n, 8, h * w).transpose(1, 2).softmax(-1)
        return out, boxes.sigmoid(), classes


class TinyTextDetector(torch.nn.Module):
    """A text detector's shape (PP-OCR's DB head): downsampling convs, a
    transposed conv and a bilinear resize back up, a sigmoid probability map
    [1, 1, H, W]."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.down = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.Hardswish(),
        )
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.out = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x):
        y = self.up(self.down(x))
        y = torch.nn.functional.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)
        return torch.sigmoid(self.out(y))


# name -> (constructor, input height and width)
MODELS = {
    "resnet": (TinyResNet, 40),
    "mobilenetv2": (tiny_mobilenetv2, 32),
    "mobilenetv3": (tiny_mobilenetv3, 32),
    "efficientnet": (tiny_efficientnet, 32),
    "regnet": (tiny_regnet, 32),
    "squeezenet": (tiny_squeezenet, 48),
    "googlenet": (tiny_googlenet, 48),
    "shufflenet": (tiny_shufflenet, 48),
    "yolo": (TinyYolo, 48),
    "textdet": (TinyTextDetector, 40),
}

# Models exported with dynamic height and width (and run at a second size).
DYNAMIC = {"yolo": (32, 64), "textdet": (24, 56)}


# The fixtures committed: every architecture once and ResNet with both
# exporters, about 3 MB in all. `--all` writes both exporters of each.
COMMITTED = [
    ("resnet", "ts"),
    ("resnet", "dy"),
    ("mobilenetv2", "ts"),
    ("mobilenetv3", "dy"),
    ("efficientnet", "ts"),
    ("regnet", "dy"),
    ("squeezenet", "ts"),
    ("googlenet", "dy"),
    ("shufflenet", "ts"),
    ("yolo", "ts"),
    ("textdet", "dy"),
]


def initialised(net: torch.nn.Module) -> torch.nn.Module:
    """`net` in evaluation mode, every BatchNorm's statistics and affine
    parameters drawn away from 0 and 1 (from the global seed)."""
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n) * 0.3)
                module.running_var.copy_(torch.rand(n) * 1.5 + 0.5)
                module.weight.copy_(torch.randn(n) * 0.4 + 1.0)
                module.bias.copy_(torch.randn(n) * 0.2)
    return net.eval()


def export(net: torch.nn.Module, image: np.ndarray, path: str, exporter: str, dynamic: bool) -> None:
    args = (torch.from_numpy(image[None]),)
    if exporter == "ts":
        axes = {"input": {2: "height", 3: "width"}} if dynamic else None
        torch.onnx.export(
            net, args, path, dynamo=False, opset_version=17,
            input_names=["input"], dynamic_axes=axes,
        )
    elif dynamic:
        height, width = torch.export.Dim("height", min=16), torch.export.Dim("width", min=16)
        torch.onnx.export(net, args, path, dynamic_shapes={"x": {2: height, 3: width}})
    else:
        torch.onnx.export(net, args, path)


def goldens(path: str, image: np.ndarray, every: int = 1) -> tuple[list[dict], list[np.ndarray]]:
    """Every `every`-th Conv node's output (each one's by default) and every
    graph output, as ONNX Runtime computes them from `image`."""
    model = onnx.load(path)
    graph = model.graph
    outputs = [o.name for o in graph.output]
    wanted = []
    convs = [n for n in graph.node if n.op_type == "Conv" and n.output[0] not in outputs]
    for node in convs[::every]:
        wanted.append({"node": node.name or node.output[0], "op": "Conv", "value": node.output[0]})
    for name in outputs:
        writer = next(n for n in graph.node if name in n.output)
        label = writer.name or writer.output[0]
        wanted.append({"node": label, "op": writer.op_type, "value": name, "output": True})
    known = set(outputs)
    for entry in wanted:
        if entry["value"] not in known:
            graph.output.append(onnx.helper.make_empty_tensor_value_info(entry["value"]))
            known.add(entry["value"])
    with tempfile.TemporaryDirectory() as scratch:
        cut = os.path.join(scratch, "all.onnx")
        onnx.save(model, cut)
        session = ort.InferenceSession(cut, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        values = session.run(None, {session.get_inputs()[0].name: image[None]})
    by_name = dict(zip(names, values))
    tensors = [by_name[entry["value"]][0] for entry in wanted]
    return wanted, tensors


def write_goldens(folder: str, path: str, image: np.ndarray, every: int = 1) -> int:
    """input.npy, golden/NNN.npy and golden.json for the model at `path`
    run on `image` [3, H, W]; returns how many goldens."""
    os.makedirs(os.path.join(folder, "golden"), exist_ok=True)
    np.save(os.path.join(folder, "input.npy"), image.astype("<f4"))
    wanted, tensors = goldens(path, image, every)
    for index, (entry, tensor) in enumerate(zip(wanted, tensors)):
        file = f"golden/{index:03}.npy"
        np.save(os.path.join(folder, file), np.ascontiguousarray(tensor, dtype="<f4"))
        entry["file"] = file
        entry["shape"] = list(tensor.shape)
        if entry.get("output"):
            logits = tensor.reshape(-1)
            entry["top"] = [int(i) for i in np.argsort(-logits, kind="stable")[:5]]
    name = os.path.basename(folder)
    with open(os.path.join(folder, "golden.json"), "w") as f:
        json.dump({"model": name, "values": wanted}, f, indent=1)
    return len(wanted)


def write_ppocr(out: str, model_path: str) -> None:
    """The real PP-OCR text-direction classifier (as rapidocr_onnxruntime
    ships it, Apache-2.0) with every fourth Conv's golden, on a 48x96 input."""
    folder = os.path.join(out, "ppocr_cls")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    path = os.path.join(folder, "model.onnx")
    shutil.copy(model_path, path)
    image = np.random.default_rng(SEED).random((3, 48, 96), dtype=np.float32)
    image = (image - 0.5) / 0.5
    count = write_goldens(folder, path, image, every=4)
    print(f"{folder}: {count} goldens")


def write_fixture(out: str, name: str, exporter: str) -> None:
    make, size = MODELS[name]
    torch.manual_seed(SEED)
    net = initialised(make())
    image = np.random.default_rng(SEED).random((3, size, size), dtype=np.float32)
    image = (image - 0.45) / 0.25
    folder = os.path.join(out, f"{name}_{exporter}")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(os.path.join(folder, "golden"))
    path = os.path.join(folder, "model.onnx")
    export(net, image, path, exporter, name in DYNAMIC)
    count = write_goldens(folder, path, image)
    print(f"{folder}: {count} goldens, {os.path.getsize(path)} bytes of model")
    if name in DYNAMIC:
        second = f"{folder}_{DYNAMIC[name][0]}x{DYNAMIC[name][1]}"
        shutil.rmtree(second, ignore_errors=True)
        os.makedirs(second)
        for file in os.listdir(folder):
            if file.startswith("model.onnx"):
                shutil.copy(os.path.join(folder, file), second)
        h, w = DYNAMIC[name]
        other = np.random.default_rng(SEED + 1).random((3, h, w), dtype=np.float32)
        count = write_goldens(second, os.path.join(second, "model.onnx"), (other - 0.45) / 0.25)
        print(f"{second}: {count} goldens at {h}x{w}")


def write_malformed(out: str) -> None:
    """Small graphs a loader must refuse, each with a Conv that reads the
    photo first: bad_op.onnx (an op outside the registry), bad_cycle.onnx
    (two nodes that read each other), bad_missing.onnx (a node reads a value
    nothing writes), bad_shapes.onnx (an Add of shapes that do not
    broadcast), bad_short.onnx (a weight whose data is shorter than its
    shape), bad_outside.onnx (external data in `../`) and bad_range.onnx (a
    Range whose limit is computed from the photo's values)."""
    from onnx import TensorProto, helper, numpy_helper

    folder = os.path.join(out, "bad")
    os.makedirs(folder, exist_ok=True)
    weight = numpy_helper.from_array(np.full((4, 3, 3, 3), 0.1, dtype=np.float32), "w")
    conv = helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)

    def save(name, nodes, initializers):
        graph = helper.make_graph(nodes, name, [x], [y], initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        onnx.save(model, os.path.join(folder, name + ".onnx"))

    save("bad_op", [conv, helper.make_node("Celu", ["c"], ["y"], name="odd_one")], [weight])
    save("bad_cycle", [
        conv,
        helper.make_node("Add", ["c", "b"], ["a"], name="first"),
        helper.make_node("Relu", ["a"], ["b"], name="second"),
        helper.make_node("Identity", ["b"], ["y"], name="out"),
    ], [weight])
    save("bad_missing", [conv, helper.make_node("Add", ["c", "nowhere"], ["y"], name="adds")], [weight])
    three = numpy_helper.from_array(np.ones((1, 3, 1, 1), dtype=np.float32), "three")
    save("bad_shapes", [conv, helper.make_node("Add", ["c", "three"], ["y"], name="clash")], [weight, three])
    short = numpy_helper.from_array(np.full((4, 3, 3, 3), 0.1, dtype=np.float32), "w")
    short.raw_data = short.raw_data[:100]
    save("bad_short", [conv, helper.make_node("Relu", ["c"], ["y"], name="relu")], [short])
    outside = numpy_helper.from_array(np.full((4, 3, 3, 3), 0.1, dtype=np.float32), "w")
    outside.ClearField("raw_data")
    outside.data_location = TensorProto.EXTERNAL
    for key, value in [("location", "../weights.bin"), ("offset", "0"), ("length", "432")]:
        entry = outside.external_data.add()
        entry.key, entry.value = key, value
    save("bad_outside", [conv, helper.make_node("Relu", ["c"], ["y"], name="relu")], [outside])
    start = numpy_helper.from_array(np.array(0.0, dtype=np.float32), "start")
    step = numpy_helper.from_array(np.array(1.0, dtype=np.float32), "step")
    save("bad_range", [
        conv,
        helper.make_node("ReduceMax", ["c"], ["most"], name="most", keepdims=0),
        helper.make_node("Range", ["start", "most", "step"], ["y"], name="count_up"),
    ], [weight, start, step])
    print(f"{folder}: seven malformed graphs")


def write_keras_style(out: str) -> None:
    """A model as converters from Keras write them, made with ONNX's helper:
    an NHWC input [1, 24, 32, 3] transposed to NCHW, convs with PRelu
    (a slope per channel), and the output transposed back to NHWC."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(SEED)
    folder = os.path.join(out, "keras_nhwc")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)

    def tensor(name, shape, scale=0.3):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    nodes = [
        helper.make_node("Transpose", ["image"], ["nchw"], name="to_nchw", perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("PRelu", ["c1", "slope1"], ["p1"], name="prelu1"),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("PRelu", ["c2", "slope2"], ["p2"], name="prelu2"),
        helper.make_node("Transpose", ["p2"], ["features"], name="to_nhwc", perm=[0, 2, 3, 1]),
    ]
    initializers = [
        tensor("w1", (8, 3, 3, 3)), tensor("b1", (8,)), tensor("slope1", (8, 1, 1), 0.2),
        tensor("w2", (6, 8, 3, 3)), tensor("b2", (6,)), tensor("slope2", (6, 1, 1), 0.2),
    ]
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 24, 32, 3])
    features = helper.make_tensor_value_info("features", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "keras_style", [image], [features], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = os.path.join(folder, "model.onnx")
    onnx.save(model, path)
    nhwc = rng.random((24, 32, 3), dtype=np.float32)
    # input.npy holds the photo as [3, H, W]; the model reads it as NHWC.
    chw = np.ascontiguousarray(nhwc.transpose(2, 0, 1))
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    wanted = [{"node": "conv1", "op": "Conv", "value": "c1"}, {"node": "conv2", "op": "Conv", "value": "c2"},
              {"node": "to_nhwc", "op": "Transpose", "value": "features", "output": True}]
    cut = onnx.load(path)
    for name in ["c1", "c2"]:
        cut.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    with tempfile.TemporaryDirectory() as scratch:
        all_path = os.path.join(scratch, "all.onnx")
        onnx.save(cut, all_path)
        session = ort.InferenceSession(all_path, providers=["CPUExecutionProvider"])
        values = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"image": nhwc[None]})))
    os.makedirs(os.path.join(folder, "golden"))
    np.save(os.path.join(folder, "input.npy"), chw)
    for index, entry in enumerate(wanted):
        file = f"golden/{index:03}.npy"
        np.save(os.path.join(folder, file), np.ascontiguousarray(values[entry["value"]][0], dtype="<f4"))
        entry["file"] = file
        entry["shape"] = list(values[entry["value"]][0].shape)
    with open(os.path.join(folder, "golden.json"), "w") as f:
        json.dump({"model": "keras_nhwc", "values": wanted}, f, indent=1)
    print(f"{folder}: 3 goldens")


def helper_fixture(out: str, name: str):
    """A fresh folder OUT/NAME for a model made with ONNX's helper, the
    seeded generator, and the weight `w` [4, 3, 3, 3] of its first conv."""
    from onnx import numpy_helper

    rng = np.random.default_rng(SEED)
    folder = os.path.join(out, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    weight = numpy_helper.from_array((rng.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32), "w")
    return folder, rng, weight


def save_helper_fixture(place, nodes, outputs, initializers) -> None:
    """Saves the graph of `nodes` (input x [1, 3, 6, 8], the named outputs)
    as model.onnx in the fixture's folder, opset 17, and its goldens on a
    random image from the fixture's generator. place = (folder, rng)."""
    from onnx import TensorProto, helper

    folder, rng = place
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 8])
    values = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs]
    graph = helper.make_graph(nodes, os.path.basename(folder), [x], values, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = os.path.join(folder, "model.onnx")
    onnx.save(model, path)
    image = rng.random((3, 6, 8), dtype=np.float32)
    count = write_goldens(folder, path, image)
    print(f"{folder}: {count} goldens")


def write_fill_model(out: str) -> None:
    """Shape subgraphs with ConstantOfShape (a `value` of 0.5), Range and
    Expand, as dynamic exports write them: y = conv(x) + fill + range,
    broadcast over the conv's shape, made with ONNX's helper."""
    from onnx import TensorProto, helper, numpy_helper

    folder, rng, weight = helper_fixture(out, "fill")
    half = helper.make_tensor("half", TensorProto.FLOAT, [1], [0.5])
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Shape", ["c"], ["shape"], name="shape"),
        helper.make_node("ConstantOfShape", ["shape"], ["fill"], name="fill", value=half),
        helper.make_node("Constant", [], ["start"], name="start", value_float=0.0),
        helper.make_node("Constant", [], ["delta"], name="delta", value_float=0.25),
        helper.make_node("Constant", [], ["limit"], name="limit", value_float=2.0),
        helper.make_node("Range", ["start", "limit", "delta"], ["ramp"], name="ramp"),
        helper.make_node("Expand", ["ramp", "shape"], ["ramps"], name="expand"),
        helper.make_node("Add", ["c", "fill"], ["filled"], name="add_fill"),
        helper.make_node("Add", ["filled", "ramps"], ["y"], name="add_ramp"),
    ]
    save_helper_fixture((folder, rng), nodes, ["y"], [weight])


def write_reduce_apart(out: str) -> None:
    """Reductions over axes that are not next to each other, as a model's
    head may write them: the mean over channels and width (kept), the sum
    over axes -3 and -1 given as an input, and the largest over batch and
    height, of a conv's output; made with ONNX's helper."""
    from onnx import helper, numpy_helper

    folder, rng, weight = helper_fixture(out, "reduce_apart")
    axes = numpy_helper.from_array(np.array([-3, -1], dtype=np.int64), "axes")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("ReduceMean", ["c"], ["mean"], name="mean", axes=[1, 3], keepdims=1),
        helper.make_node("ReduceSum", ["c", "axes"], ["sum"], name="sum", keepdims=0),
        helper.make_node("ReduceMax", ["c"], ["max"], name="max", axes=[0, 2], keepdims=1),
    ]
    save_helper_fixture((folder, rng), nodes, ["mean", "sum", "max"], [weight, axes])


def write_big(out: str) -> None:
    """Full-size ResNet-18, exported the default way, with its ImageNet
    input size, for the speed measurements."""
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(SEED)
    net = initialised(torchvision.models.resnet18())
    image = np.random.default_rng(SEED).random((3, 224, 224), dtype=np.float32)
    torch.onnx.export(net, (torch.from_numpy(image[None]),), os.path.join(out, "resnet18.onnx"))
    print(f"{out}/resnet18.onnx")


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["--big"]:
        write_big(args[1])
        return
    if args[:1] == ["--ppocr"]:
        write_ppocr(args[2] if len(args) > 2 else "tests/fixtures/net", args[1])
        return
    every = "--all" in args
    args = [a for a in args if a != "--all"]
    out = args[0] if args else "tests/fixtures/net"
    pairs = [(n, e) for n in MODELS for e in ["ts", "dy"]] if every else COMMITTED
    for name, exporter in pairs:
        write_fixture(out, name, exporter)
    write_keras_style(out)
    write_fill_model(out)
    write_reduce_apart(out)
    write_malformed(out)


if __name__ == "__main__":
    main()
