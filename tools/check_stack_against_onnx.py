#!/usr/bin/env python3
"""Check a `convmaps PHOTO --layers SPEC` run against ONNX Runtime.

Usage:
    python3 tools/check_stack_against_onnx.py BINARY PHOTO SPEC
        [--backend gpu|cpu|both] [--weights MODEL] [--tol 1e-5] [--keep DIR]
    python3 tools/check_stack_against_onnx.py --self-test

Example:
    python3 tools/check_stack_against_onnx.py target/release/convmaps \\
        assets/photo.png 32x5,relu,maxpool2,64x3

For each backend (both by default, one after the other) this runs

    BINARY PHOTO --layers SPEC --raw --out TMP --backend B [--weights MODEL]

and reads what the run wrote, one folder per conv (conv1/, conv2/, ...
for a stack defined on the command line; the model's names made safe for
a model's convs):
    summary.json                  `layers`: each conv's folder, geometry
                                  (stride, padding, dilation, groups, bias)
                                  and `items` (the conv, then the relu and
                                  maxpool items up to the next conv)
    FOLDER/weights.safetensors    `weight` [K, C/G, FH, FW] f32, `bias` [K]
    FOLDER/features.npy           [K, OH, OW] f32: the maps after the conv
                                  and the items that follow it

The same stack is then built as one ONNX graph (Conv with those weights,
Relu, MaxPool with no padding and floor rounding) whose outputs are each
folder's maps, and ONNX Runtime runs it on the photo as convmaps reads it:
RGB, upright (EXIF orientation applied), 8-bit sample / 255, planar
[1, 3, H, W]. Use a lossless 8-bit photo (PNG, BMP, TIFF): JPEG decoders
round some samples differently, one level of 255 here and there, which
alone gives errors near 1e-2. When summary.json has no `layers` entry, each conv's
geometry comes from SPEC instead (defaults: stride 1, padding 0,
dilation 1, groups 1; `psame` pads as PyTorch's padding='same').

For every folder it prints max|convmaps - onnx| / max|onnx| over the whole
folder. Exit status: 0 when every folder is within --tol, 1 when any is
not (or a shape differs, or a value is not finite), 2 when the run failed.

--self-test checks this script without convmaps: random stacks are built
as ONNX graphs and run by ONNX Runtime, compared with a plain numpy
reference, and a fake output directory (written from the reference) is
checked through the same code that checks a real run, both passing and
with one value changed.

Run by hand; needs: pip install numpy onnx onnxruntime pillow safetensors
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from PIL import Image, ImageOps
from safetensors.numpy import load_file, save_file

OPSET = 17


# --- The photo, as convmaps reads it -------------------------------------------

def load_photo(path):
    """Photo as float32 [1, 3, H, W] in [0, 1]: upright, RGB, 8-bit / 255."""
    with Image.open(path) as image:
        upright = ImageOps.exif_transpose(image)  # the EXIF orientation, applied
        rgb = np.asarray(upright.convert("RGB"), dtype=np.uint8)  # [H, W, 3]
    x = rgb.astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


# --- The stack: groups of a conv and the items after it -----------------------
#
# A group is a dict:
#   folder   the folder its maps are in
#   stride, dilation, groups: ints
#   pads     [top, bottom, left, right]
#   after    ["relu" | ("maxpool", size, stride), ...], in order
#   weight   [K, C/G, FH, FW] f32, bias [K] f32 or None (filled in later)

CONV_ITEM = re.compile(r"^(\d+)x(\d+)(?:x(\d+))?((?:/[a-z]+\w*)*)$")
POOL_ITEM = re.compile(r"^maxpool(\d+)(?:/s(\d+))?$")


def parse_after(item):
    """A relu or maxpool item, else None."""
    if item.lower() == "relu":
        return "relu"
    m = POOL_ITEM.match(item)
    if m:
        size = int(m.group(1))
        return ("maxpool", size, int(m.group(2) or size))
    return None


def parse_spec(spec):
    """A CLI --layers spec as groups (without weights).

    conv: KxF or KxFHxFW, then /sS /pP /psame /dD /gG; relu; maxpoolN[/sS].
    """
    groups = []
    for item in (part.strip() for part in spec.split(",")):
        after = parse_after(item)
        if after is not None:
            if not groups:
                raise ValueError(f"`{item}`: a stack starts with a conv")
            groups[-1]["after"].append(after)
            continue
        m = CONV_ITEM.match(item)
        if not m:
            raise ValueError(f"`{item}`: not a conv, relu or maxpool item "
                             "(a model's layer names need summary.json)")
        fh = int(m.group(2))
        fw = int(m.group(3) or fh)
        stride, dilation, group_count, padding = 1, 1, 1, 0
        for option in filter(None, m.group(4).split("/")):
            key, value = option[0], option[1:]
            if key == "s":
                stride = int(value)
            elif key == "d":
                dilation = int(value)
            elif key == "g":
                group_count = int(value)
            elif key == "p":
                padding = value if value == "same" else int(value)
            else:
                raise ValueError(f"`{item}`: unknown option /{option}")
        if padding == "same":
            if stride != 1:
                raise ValueError(f"`{item}`: padding 'same' needs stride 1")
            # PyTorch's padding='same': the odd pixel goes to the bottom/right.
            total_y, total_x = dilation * (fh - 1), dilation * (fw - 1)
            pads = [total_y // 2, total_y - total_y // 2, total_x // 2, total_x - total_x // 2]
        else:
            pads = [padding] * 4
        groups.append({"folder": f"conv{len(groups) + 1}", "stride": stride,
                       "dilation": dilation, "groups": group_count, "pads": pads,
                       "after": []})
    return groups


def groups_from_summary(summary):
    """The groups summary.json's `layers` describes, or None without it."""
    layers = summary.get("layers")
    if not layers:
        return None
    groups = []
    for entry in layers:
        layer = entry["layer"]
        pad = layer["padding"]
        after = [parse_after(item) for item in entry["items"][1:]]
        if any(a is None for a in after):
            raise ValueError(f"{entry['folder']}: unknown item in {entry['items']}")
        if layer.get("activation", "none") == "relu" and "relu" not in after:
            after.insert(0, "relu")
        groups.append({"folder": entry["folder"], "stride": int(layer["stride"]),
                       "dilation": int(layer["dilation"]), "groups": int(layer["groups"]),
                       "pads": [int(pad[k]) for k in ("top", "bottom", "left", "right")],
                       "after": after})
    return groups


# --- The stack as an ONNX graph, run by ONNX Runtime --------------------------

def onnx_stack(groups, x):
    """Each group's maps [K, OH, OW] for image x [1, C, H, W], by ONNX Runtime."""
    nodes, inits, outputs = [], [], []
    wire = "image"
    for g, group in enumerate(groups):
        top, bottom, left, right = group["pads"]
        inputs = [wire, f"w{g}"]
        inits.append(numpy_helper.from_array(group["weight"], f"w{g}"))
        if group["bias"] is not None:
            inputs.append(f"b{g}")
            inits.append(numpy_helper.from_array(group["bias"], f"b{g}"))
        nodes.append(helper.make_node(
            "Conv", inputs, [f"conv{g}"],
            kernel_shape=list(group["weight"].shape[2:]),
            strides=[group["stride"]] * 2,
            dilations=[group["dilation"]] * 2,
            group=group["groups"],
            pads=[top, left, bottom, right]))  # ONNX order: begins (H, W), then ends
        wire = f"conv{g}"
        for a, item in enumerate(group["after"]):
            out = f"g{g}_{a}"
            if item == "relu":
                nodes.append(helper.make_node("Relu", [wire], [out]))
            else:
                _, size, stride = item
                nodes.append(helper.make_node("MaxPool", [wire], [out],
                                              kernel_shape=[size, size],
                                              strides=[stride, stride]))
            wire = out
        group["wire"] = wire
        outputs.append(helper.make_tensor_value_info(wire, TensorProto.FLOAT, [1, None, None, None]))
    graph = helper.make_graph(
        nodes, "stack",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, list(x.shape))],
        outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # single thread: reproducible summation order
    session = ort.InferenceSession(model.SerializeToString(), opts,
                                   providers=["CPUExecutionProvider"])
    maps = session.run([g["wire"] for g in groups], {"image": x})
    return [np.ascontiguousarray(m[0], dtype=np.float32) for m in maps]


# --- Checking an output directory ---------------------------------------------

def relative_error(got, want):
    """max|got - want| / max|want|, in float64."""
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64)).max(initial=0.0)
    return diff / max(float(np.abs(want).max(initial=0.0)), 1e-30)


def find_run_dir(out):
    """`--out DIR` holds a single photo's run; DIR/<stem>/ several photos'."""
    if (out / "summary.json").exists():
        return out
    found = sorted(out.glob("*/summary.json"))
    if len(found) != 1:
        raise FileNotFoundError(f"no single summary.json under {out}")
    return found[0].parent


def check_run(run_dir, x, spec, tol):
    """Checks a run's folders against ONNX Runtime; True when all are within tol."""
    summary = json.loads((run_dir / "summary.json").read_text())
    groups = groups_from_summary(summary)
    source = "summary.json"
    if groups is None:
        groups, source = parse_spec(spec), "the spec"
    print(f"  {len(groups)} convs, geometry from {source}")
    for group in groups:
        tensors = load_file(str(run_dir / group["folder"] / "weights.safetensors"))
        group["weight"] = np.ascontiguousarray(tensors["weight"], dtype=np.float32)
        bias = tensors.get("bias")
        group["bias"] = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
    wants = onnx_stack(groups, x)
    ok = True
    for group, want in zip(groups, wants):
        got = np.load(run_dir / group["folder"] / "features.npy")
        name = f"{group['folder']}/".ljust(24)
        if got.shape != want.shape:
            print(f"  {name} FAIL: shape convmaps {list(got.shape)} onnx {list(want.shape)}")
            ok = False
            continue
        if not np.all(np.isfinite(got)):
            print(f"  {name} FAIL: {np.count_nonzero(~np.isfinite(got))} non-finite values")
            ok = False
            continue
        err = relative_error(got, want)
        verdict = "ok" if err <= tol else "FAIL"
        ok &= err <= tol
        print(f"  {name} {list(got.shape)}  max rel error {err:.3e}  {verdict}")
    return ok


def run_and_check(args):
    x = load_photo(args.photo)
    if Path(args.photo).suffix.lower() in (".jpg", ".jpeg"):
        print("warning: a JPEG photo; decoders differ by a level in some samples, "
              "so expect errors near 1e-2 (use a PNG)")
    print(f"photo {args.photo}  [{x.shape[1]}, {x.shape[2]}, {x.shape[3]}]  stack {args.spec}")
    backends = ["gpu", "cpu"] if args.backend == "both" else [args.backend]
    failed = False
    with tempfile.TemporaryDirectory(prefix="convmaps-stack-") as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        for backend in backends:
            out = root / backend
            command = [args.binary, args.photo, "--layers", args.spec, "--raw",
                       "--out", str(out), "--backend", backend, "--quiet"]
            if args.weights:
                command += ["--weights", args.weights]
            print(f"{backend}: {' '.join(command)}")
            run = subprocess.run(command, capture_output=True, text=True)
            if run.returncode != 0:
                print(run.stdout + run.stderr)
                print(f"{backend}: convmaps exited {run.returncode}")
                return 2
            if not check_run(find_run_dir(out), x, args.spec, args.tol):
                failed = True
    print("FAIL" if failed else f"PASS: every folder within {args.tol:g}")
    return 1 if failed else 0


# --- Self-test -----------------------------------------------------------------

def numpy_conv(x, w, b, stride, pads, dilation, groups):
    """Direct conv of x [C, H, W], pads [top, bottom, left, right], in float64."""
    top, bottom, left, right = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (top, bottom), (left, right)))
    k, cg, fh, fw = w.shape
    oh = (xp.shape[1] - dilation * (fh - 1) - 1) // stride + 1
    ow = (xp.shape[2] - dilation * (fw - 1) - 1) // stride + 1
    y = np.zeros((k, oh, ow))
    kg = k // groups
    for f in range(k):
        c0 = (f // kg) * cg
        for i in range(fh):
            for j in range(fw):
                rows = slice(i * dilation, i * dilation + stride * (oh - 1) + 1, stride)
                cols = slice(j * dilation, j * dilation + stride * (ow - 1) + 1, stride)
                y[f] += np.tensordot(w[f, :, i, j], xp[c0:c0 + cg, rows, cols], axes=1)
        if b is not None:
            y[f] += b[f]
    return y


def numpy_stack(groups, x):
    """Each group's maps for image x [1, C, H, W], in plain numpy."""
    maps, a = [], x[0]
    for group in groups:
        a = numpy_conv(a, group["weight"], group["bias"], group["stride"],
                       group["pads"], group["dilation"], group["groups"])
        for item in group["after"]:
            if item == "relu":
                a = np.maximum(a, 0.0)
            else:
                _, size, stride = item
                oh = (a.shape[1] - size) // stride + 1
                ow = (a.shape[2] - size) // stride + 1
                a = np.max([a[:, i:i + stride * (oh - 1) + 1:stride,
                              j:j + stride * (ow - 1) + 1:stride]
                            for i in range(size) for j in range(size)], axis=0)
        maps.append(a.astype(np.float32))
    return maps


def with_weights(groups, channels, filters, kernels, rng):
    """Gives each group random weights [K, C/G, FH, FW] (small values) and a bias."""
    for group, k, (fh, fw) in zip(groups, filters, kernels):
        shape = (k, channels // group["groups"], fh, fw)
        group["weight"] = (rng.standard_normal(shape) * 0.2).astype(np.float32)
        group["bias"] = (rng.standard_normal(k) * 0.1).astype(np.float32)
        channels = k
    return groups


def self_test():
    rng = np.random.default_rng(7)
    cases = [
        # spec, filters, kernels: [1, 3, 23, 29] image
        ("8x5/p2,relu,maxpool2,6x3/s2/p1/g2,relu", [8, 6], [(5, 5), (3, 3)]),
        ("6x3x5/psame,maxpool3/s2,relu,4x3/d2/psame,relu,4x2/g4", [6, 4, 4],
         [(3, 5), (3, 3), (2, 2)]),
        ("5x4/d2/p3,relu", [5], [(4, 4)]),
    ]
    assert parse_spec("64x3/s2/p1")[0]["pads"] == [1, 1, 1, 1]
    assert parse_spec("4x4/psame")[0]["pads"] == [1, 2, 1, 2]
    assert parse_spec("4x2x4/d3/psame")[0]["pads"] == [1, 2, 4, 5]
    assert parse_spec("8x3,maxpool3/s2")[0]["after"] == [("maxpool", 3, 2)]
    ok = True
    x = rng.random((1, 3, 23, 29), dtype=np.float32)
    for spec, filters, kernels in cases:
        groups = with_weights(parse_spec(spec), 3, filters, kernels, rng)
        errors = [relative_error(a, b)
                  for a, b in zip(onnx_stack(groups, x), numpy_stack(groups, x))]
        good = max(errors) <= 1e-5
        ok &= good
        print(f"onnx vs numpy  {spec}: {', '.join(f'{e:.2e}' for e in errors)}  "
              f"{'ok' if good else 'FAIL'}")

    # A fake run directory, as convmaps writes it, checked like a real one:
    # with summary.json's `layers`, and from the spec alone.
    spec, filters, kernels = cases[1]
    groups = with_weights(parse_spec(spec), 3, filters, kernels, rng)
    maps = numpy_stack(groups, x)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        layers = []
        for group, m, item_texts in zip(groups, maps, [["6x3x5/psame", "maxpool3/s2", "relu"],
                                                       ["4x3/d2/psame", "relu"], ["4x2/g4"]]):
            folder = run_dir / group["folder"]
            folder.mkdir()
            tensors = {"weight": group["weight"], "bias": group["bias"]}
            save_file(tensors, str(folder / "weights.safetensors"))
            np.save(folder / "features.npy", m)
            top, bottom, left, right = group["pads"]
            layers.append({"folder": group["folder"], "items": item_texts, "layer": {
                "stride": group["stride"], "dilation": group["dilation"],
                "groups": group["groups"], "activation": "none",
                "padding": {"top": top, "bottom": bottom, "left": left, "right": right}}})
        summary = {"stack": spec, "layers": layers}
        (run_dir / "summary.json").write_text(json.dumps(summary))
        print("fake run, geometry from summary.json:")
        ok &= check_run(run_dir, x, spec, 1e-5)
        (run_dir / "summary.json").write_text(json.dumps({"stack": spec}))
        print("fake run, geometry from the spec:")
        ok &= check_run(run_dir, x, spec, 1e-5)
        maps[1][2, 3, 1] += 1e-3 * np.abs(maps[1]).max()
        np.save(run_dir / "conv2" / "features.npy", maps[1])
        print("fake run, one value of conv2 changed by 1e-3 of its largest (must FAIL):")
        caught = not check_run(run_dir, x, spec, 1e-5)
        ok &= caught
    print("self-test", "PASS" if ok else "FAIL")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary", nargs="?", help="the convmaps binary")
    ap.add_argument("photo", nargs="?", help="the photo to run it on")
    ap.add_argument("spec", nargs="?", help="the --layers spec, e.g. 32x5,relu,maxpool2,64x3")
    ap.add_argument("--backend", choices=["gpu", "cpu", "both"], default="both",
                    help="which backend(s) to run (default: both, gpu first)")
    ap.add_argument("--tol", type=float, default=1e-5,
                    help="max allowed error relative to the folder's max |value| "
                         "(default: 1e-5)")
    ap.add_argument("--weights", metavar="MODEL",
                    help="a model whose convs SPEC names, passed on to convmaps")
    ap.add_argument("--keep", metavar="DIR",
                    help="write the runs to DIR/<backend>/ and keep them")
    ap.add_argument("--self-test", action="store_true",
                    help="check this script on synthetic stacks, without convmaps")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    if not (args.binary and args.photo and args.spec):
        ap.error("BINARY, PHOTO and SPEC are needed (or --self-test)")
    return run_and_check(args)


if __name__ == "__main__":
    sys.exit(main())
