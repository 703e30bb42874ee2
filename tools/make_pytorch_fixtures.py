#!/usr/bin/env python3
"""Writes the PyTorch checkpoint fixtures of tests/pytorch.rs with real
PyTorch and a fixed seed, and the values the tests expect as .npy files next
to them, so that the tests run without Python.

    python tools/make_pytorch_fixtures.py   # writes tests/fixtures/pytorch/

The model: conv1 (3->4, 3x3, no bias), bn1 (BatchNorm2d(4) with non-trivial
running statistics), conv2 (4->2, 3x3, with bias).
"""

import io
import os
import zipfile

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "pytorch")

# The file the command in evil.pt would create, were its pickle ever run.
EVIL_MARKER = "/tmp/convmaps-pwned-fixture"


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 4, 3, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(4)
        self.conv2 = torch.nn.Conv2d(4, 2, 3)


class Evil:
    """Runs a command when unpickled by a pickle reader that runs code."""

    def __reduce__(self):
        return (os.system, (f"touch {EVIL_MARKER}",))


def save_npy(name, tensor):
    np.save(os.path.join(OUT, name), tensor.detach().to(torch.float32).contiguous().numpy())


def save(name, obj, legacy=False):
    torch.save(obj, os.path.join(OUT, name), _use_new_zipfile_serialization=not legacy)


def tiny_model():
    torch.manual_seed(7)
    model = Tiny()
    with torch.no_grad():
        model.bn1.weight.uniform_(0.5, 1.5)
        model.bn1.bias.uniform_(-0.5, 0.5)
        model.bn1.running_mean.uniform_(-1.0, 1.0)
        model.bn1.running_var.uniform_(0.5, 2.0)
        model.bn1.num_batches_tracked.fill_(12)
    return model


def views():
    """Tensors that are non-contiguous views sharing one storage each."""
    torch.manual_seed(11)
    base = torch.randn(4, 3, 3, 6)
    sliced = base[..., 1:4]  # offset 1, strides (54, 18, 6, 1)
    other = torch.randn(3, 4, 3, 3)
    transposed = other.transpose(0, 1)  # strides (9, 36, 3, 1)
    assert not sliced.is_contiguous() and not transposed.is_contiguous()
    return {
        "sliced.weight": sliced,
        "base": base,
        "transposed.weight": transposed,
        "transposed.bias": other[0, :, 0, 0],  # offset 0, stride 9
    }


def big_endian(source, target):
    """Rewrites a zip checkpoint of f32 storages as a big-endian one."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if "/data/" in info.filename:
                data = np.frombuffer(data, "<f4").astype(">f4").tobytes()
            elif info.filename.endswith("/byteorder"):
                data = b"big"
            zout.writestr(info.filename, data)


def folded_golden(model):
    """conv1 then bn1 (eval mode) on a fixed input: what --fold-bn bn1 must give."""
    torch.manual_seed(21)
    x = torch.rand(1, 3, 9, 10)
    model.eval()
    with torch.no_grad():
        y = model.bn1(model.conv1(x))
    save_npy("folded_input.npy", x[0])
    save_npy("conv1_bn1_output.npy", y[0])


def main():
    os.makedirs(OUT, exist_ok=True)
    model = tiny_model()
    folded_golden(model)
    sd = model.state_dict()
    # Parameters, not plain tensors: pickled through _rebuild_parameter.
    save("parameters.pt", dict(model.named_parameters()))
    save("state_dict.pt", sd)
    save("state_dict_legacy.pt", sd, legacy=True)
    save("checkpoint.pth", {"epoch": 3, "optimizer": {"lr": 0.1}, "state_dict": sd})
    # Newer pickle protocols: FRAME, MEMOIZE, SHORT_BINUNICODE, STACK_GLOBAL.
    for protocol in [4, 5]:
        torch.save(sd, os.path.join(OUT, f"state_dict_protocol{protocol}.pt"), pickle_protocol=protocol)
    torch.save(
        sd,
        os.path.join(OUT, "state_dict_protocol4_legacy.pt"),
        pickle_protocol=4,
        _use_new_zipfile_serialization=False,
    )
    for name in ["conv1.weight", "conv2.weight", "conv2.bias", "bn1.running_var"]:
        save_npy(name.replace(".", "_") + ".npy", sd[name])

    for suffix, dtype in [("f16", torch.float16), ("bf16", torch.bfloat16), ("f64", torch.float64)]:
        typed = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in sd.items()}
        if dtype == torch.float64:
            # Digits beyond f32's, so that reading must round.
            torch.manual_seed(13)
            typed["conv1.weight"] += 1e-9 * torch.randn(typed["conv1.weight"].shape, dtype=dtype)
        save(f"state_dict_{suffix}.pt", typed)
        save(f"state_dict_{suffix}_legacy.pt", typed, legacy=True)
        save_npy(f"conv1_weight_{suffix}.npy", typed["conv1.weight"])

    v = views()
    save("views.pt", v)
    save("views_legacy.pt", v, legacy=True)
    for name, tensor in v.items():
        save_npy("views_" + name.replace(".", "_") + ".npy", tensor)

    save("evil.pt", {"conv1.weight": sd["conv1.weight"], "payload": Evil()})
    save("evil_legacy.pt", {"conv1.weight": sd["conv1.weight"], "payload": Evil()}, legacy=True)

    one = {"conv.weight": sd["conv1.weight"]}
    buffer = io.BytesIO()
    torch.save(one, buffer)
    buffer.seek(0)
    big_endian(buffer, os.path.join(OUT, "big_endian.pt"))
    assert torch.equal(torch.load(os.path.join(OUT, "big_endian.pt"))["conv.weight"], sd["conv1.weight"])


if __name__ == "__main__":
    main()
