//! ONNX models read as model files: the conv layers listed from the graph,
//! their geometry and BatchNorms, tensors read in every float encoding, the
//! first conv recomputed from what was read against its golden output,
//! and malformed files refused without a panic. The fixtures come from
//! tools/make_onnx_fixtures.py.

mod common;

use std::path::{Path, PathBuf};

use convmaps::cpu::conv2d_direct;
use convmaps::layer::{Layer, LayerSpec, Padding};
use convmaps::model::onnx::OnnxFile;
use convmaps::model::{
    self, BatchNormRef, ConvRef, DType, FileGeometry, FilePadding, FileTensor, ModelFile,
};
use convmaps::npy;
use convmaps::tensor::Tensor3;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/onnx")
        .join(name)
}

fn open(name: &str) -> Box<dyn ModelFile> {
    model::open(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn npy_values(name: &str) -> (Vec<usize>, Vec<f32>) {
    npy::read_f32(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn read(model: &mut dyn ModelFile, name: &str) -> FileTensor {
    model.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The error's message, checked to name `path`.
fn error_naming(result: convmaps::error::Result<impl Sized>, path: &Path) -> String {
    let Err(error) = result else {
        panic!("{} was accepted", path.display())
    };
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "{message:?} does not name {}",
        path.display()
    );
    message
}

fn explicit(top: u32, bottom: u32, left: u32, right: u32) -> FilePadding {
    FilePadding::Explicit(Padding {
        top,
        bottom,
        left,
        right,
    })
}

/// The geometry of a conv with the same stride and dilation on both axes.
fn geometry(stride: u32, padding: FilePadding, dilation: u32, group: u32) -> Option<FileGeometry> {
    Some(FileGeometry {
        strides: [stride; 2],
        padding,
        dilations: [dilation; 2],
        group,
    })
}

/// Writes `bytes` as `m.onnx` in a fresh folder (kept while the file is
/// read) and opens it.
fn open_bytes(bytes: &[u8]) -> (tempfile::TempDir, OnnxFile) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("m.onnx");
    std::fs::write(&path, bytes).expect("write");
    let model = OnnxFile::open(&path).expect("opens");
    (dir, model)
}

/// Conv, BatchNorm, Relu, an unnamed Conv: the graph of a.onnx and b.onnx.
fn assert_conv_bn_graph(convs: &[ConvRef]) {
    let names: Vec<&str> = convs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["conv1", "c2"],
        "node order; the unnamed Conv by its output"
    );
    let [first, second] = convs else {
        unreachable!()
    };
    assert_eq!(first.weight, "conv1.weight");
    assert_eq!(first.bias.as_deref(), Some("conv1.bias"));
    assert_eq!(first.weight_shape, [4, 3, 3, 3]);
    // pads [1, 0, 2, 1] are [top, left, bottom, right]
    assert_eq!(first.geometry, geometry(2, explicit(1, 2, 0, 1), 1, 1));
    assert_eq!(
        first.batch_norm,
        Some(BatchNormRef {
            name: "bn1".into(),
            scale: "bn1.scale".into(),
            shift: "bn1.shift".into(),
            mean: "bn1.mean".into(),
            variance: "bn1.var".into(),
            epsilon: Some(1e-3),
        })
    );
    assert_eq!(first.reads_input, Some(true));
    assert_eq!(second.weight, "conv2.weight");
    assert_eq!(second.bias, None);
    assert_eq!(second.weight_shape, [2, 4, 1, 1]);
    assert_eq!(
        second.geometry,
        geometry(1, explicit(0, 0, 0, 0), 1, 1),
        "defaults when the attributes are absent"
    );
    assert_eq!(second.batch_norm, None);
    assert_eq!(
        second.reads_input,
        Some(false),
        "it reads the Relu's output"
    );
}

#[test]
fn initializers_list_the_convs_with_geometry_and_batch_norm() {
    let model = open("a.onnx");
    assert_eq!(model.format(), "onnx");
    assert_conv_bn_graph(model.convs());
    let names = model.tensor_names();
    for name in [
        "conv1.weight",
        "conv1.bias",
        "bn1.var",
        "conv2.weight",
        "out_shape",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
}

#[test]
fn constant_nodes_list_the_same_convs() {
    assert_conv_bn_graph(open("b.onnx").convs());
}

#[test]
fn f32_raw_data_reads_exactly() {
    let mut model = open("a.onnx");
    for (tensor, expected) in [
        ("conv1.weight", "a_weight.npy"),
        ("conv1.bias", "a_bias.npy"),
        ("bn1.scale", "a_bn_scale.npy"),
        ("bn1.shift", "a_bn_shift.npy"),
        ("bn1.mean", "a_bn_mean.npy"),
        ("bn1.var", "a_bn_var.npy"),
    ] {
        let (shape, values) = npy_values(expected);
        let read = read(model.as_mut(), tensor);
        assert_eq!(read.dtype, DType::F32, "{tensor}");
        assert_eq!(read.shape, shape, "{tensor}");
        assert_eq!(read.values, values, "{tensor}");
    }
}

#[test]
fn f16_in_int32_data_and_raw_data_and_f32_in_float_data_read() {
    let mut model = open("b.onnx");
    let weight = read(model.as_mut(), "conv1.weight");
    assert_eq!(weight.dtype, DType::F16, "int32_data holding f16 bits");
    assert_eq!(weight.shape, [4, 3, 3, 3]);
    assert_eq!(weight.values, npy_values("b_weight.npy").1);
    let bias = read(model.as_mut(), "conv1.bias");
    assert_eq!(bias.dtype, DType::F16, "raw_data");
    assert_eq!(bias.values, npy_values("b_bias.npy").1);
    let variance = read(model.as_mut(), "bn1.var");
    assert_eq!(
        (variance.dtype, &variance.shape[..]),
        (DType::F32, &[4][..])
    );
    assert!(variance.values.iter().all(|&v| v >= 0.5), "{variance:?}");
    let second = read(model.as_mut(), "conv2.weight");
    assert_eq!((second.shape, second.values.len()), (vec![2, 4, 1, 1], 8));
}

#[test]
fn grouped_same_upper_dilated_conv_with_f64_and_bf16() {
    let mut model = open("c.onnx");
    let [conv] = model.convs() else {
        panic!("{:?}", model.convs())
    };
    assert_eq!(conv.name, "gconv");
    assert_eq!(conv.weight_shape, [6, 2, 3, 3]);
    assert_eq!(conv.bias.as_deref(), Some("gconv.bias"));
    assert_eq!(conv.geometry, geometry(2, FilePadding::SameUpper, 2, 2));
    assert_eq!(
        (conv.batch_norm.clone(), conv.reads_input),
        (None, Some(true))
    );
    let weight = read(model.as_mut(), "gconv.weight");
    assert_eq!(weight.dtype, DType::F64, "double_data");
    assert_eq!(
        weight.values,
        npy_values("c_weight.npy").1,
        "rounded to f32"
    );
    let bias = read(model.as_mut(), "gconv.bias");
    assert_eq!(bias.dtype, DType::F64, "raw_data");
    assert_eq!(bias.values, npy_values("c_bias.npy").1);
    let extra = read(model.as_mut(), "extra_bf16");
    assert_eq!(extra.dtype, DType::BF16);
    assert_eq!(extra.values, npy_values("c_extra_bf16.npy").1);
}

/// ONNX's SAME_UPPER padding for one axis: (before, after).
fn same_upper(input: u32, kernel: u32, stride: u32, dilation: u32) -> (u32, u32) {
    let out = input.div_ceil(stride);
    let needed = (out - 1) * stride + dilation * (kernel - 1) + 1;
    let total = needed.saturating_sub(input);
    (total / 2, total - total / 2)
}

/// The file's first conv as a layer, from the geometry and tensors read,
/// run by the CPU reference on NAME_input.npy and compared with
/// NAME_conv1.npy.
fn assert_first_conv_matches_golden(name: &str) {
    let mut model = open(&format!("{name}.onnx"));
    let conv = model.convs()[0].clone();
    let geometry = conv.geometry.expect("ONNX states the geometry");
    let input = npy::read_f32_3d(&fixture(&format!("{name}_input.npy"))).expect("input");
    let [k, c_per_group, fh, fw] = conv.weight_shape[..] else {
        unreachable!()
    };
    assert_eq!(geometry.strides[0], geometry.strides[1]);
    assert_eq!(geometry.dilations[0], geometry.dilations[1]);
    let (stride, dilation) = (geometry.strides[0], geometry.dilations[0]);
    let padding = match geometry.padding {
        FilePadding::Explicit(padding) => padding,
        FilePadding::SameUpper => {
            let (top, bottom) = same_upper(input.height, fh as u32, stride, dilation);
            let (left, right) = same_upper(input.width, fw as u32, stride, dilation);
            Padding {
                top,
                bottom,
                left,
                right,
            }
        }
        FilePadding::SameLower => unreachable!("no fixture uses it"),
    };
    let spec = LayerSpec {
        kernel_height: fh as u32,
        kernel_width: fw as u32,
        stride,
        padding,
        dilation,
        groups: geometry.group,
        bias: conv.bias.is_some(),
        ..LayerSpec::new(c_per_group as u32 * geometry.group, k as u32, 1)
    };
    let weight = read(model.as_mut(), &conv.weight).values;
    let bias = conv
        .bias
        .map_or_else(Vec::new, |b| read(model.as_mut(), &b).values);
    let layer = Layer::new(spec, weight, bias).expect("a valid layer");
    let output = conv2d_direct(&input, &layer).expect("runs");
    let golden: Tensor3 = npy::read_f32_3d(&fixture(&format!("{name}_conv1.npy"))).expect("golden");
    assert_eq!(
        (output.channels, output.height, output.width),
        (golden.channels, golden.height, golden.width),
        "{name}: output shape"
    );
    for (i, (&got, &want)) in output.data.iter().zip(&golden.data).enumerate() {
        assert!(
            (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
            "{name}: value {i}: {got} vs {want}"
        );
    }
}

#[test]
fn first_conv_from_what_was_read_matches_the_golden_output() {
    assert_first_conv_matches_golden("a");
    assert_first_conv_matches_golden("b");
}

#[test]
fn the_first_conv_of_a_default_torch_export_with_external_data_matches_onnx_runtime() {
    // e.onnx keeps its weights in e.onnx.data, as torch.onnx.export writes
    // them today (tools/make_torch_export_fixture.py).
    assert!(fixture("e.onnx.data").exists());
    assert_first_conv_matches_golden("e");
}

#[test]
fn same_upper_with_dilation_matches_the_reference_evaluator() {
    assert_first_conv_matches_golden("c");
}

#[test]
fn integer_and_external_tensors_are_refused_by_name() {
    let cases: [(&str, &str, &[&str]); 3] = [
        ("a.onnx", "out_shape", &["\"out_shape\"", "INT64"]),
        ("a.onnx", "no.such.tensor", &["no.such.tensor"]),
        ("d.onnx", "scale", &["\"scale\"", "external"]),
    ];
    for (file, tensor, needles) in cases {
        let message = error_naming(open(file).tensor(tensor), &fixture(file));
        for needle in needles {
            assert!(message.contains(needle), "{message}");
        }
    }
}

#[test]
fn a_model_without_conv_lists_none() {
    let path = fixture("d.onnx");
    let model = OnnxFile::open(&path).expect("opens");
    assert!(model.convs().is_empty());
    assert_eq!(model.tensor_names(), ["scale"]);
    let message = error_naming(model.first_input_conv(), &path);
    assert!(message.contains("no 2-D Conv"), "{message}");
    let model = OnnxFile::open(&fixture("a.onnx")).expect("opens");
    assert_eq!(model.first_input_conv().expect("conv1").name, "conv1");
}

/// Opens `bytes` as an ONNX file and reads every tensor: errors are fine,
/// panics are not. Returns the error opening it, if any.
fn try_everything(dir: &Path, bytes: &[u8]) -> Option<String> {
    let path = dir.join("model.onnx");
    std::fs::write(&path, bytes).expect("write");
    let opened = OnnxFile::open(&path);
    match opened {
        Ok(mut model) => {
            for name in model.tensor_names() {
                if let Err(e) = model.tensor(&name) {
                    error_naming(Err::<(), _>(e), &path);
                }
            }
            let _ = model.first_input_conv();
            None
        }
        Err(e) => Some(error_naming(Err::<(), _>(e), &path)),
    }
}

/// Calls `check` with a scratch folder and the bytes of each fixture that
/// has convs (a, b and c).
fn for_each_fixture(mut check: impl FnMut(&Path, &[u8])) {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in ["a.onnx", "b.onnx", "c.onnx"] {
        check(dir.path(), &std::fs::read(fixture(name)).expect("fixture"));
    }
}

#[test]
fn truncated_files_are_errors_naming_the_file() {
    for_each_fixture(|dir, bytes| {
        for cut in 0..bytes.len() {
            try_everything(dir, &bytes[..cut]);
        }
        let message = try_everything(dir, &bytes[..bytes.len() / 2]).expect("refused");
        assert!(message.contains("not a valid ONNX model"), "{message}");
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let message = try_everything(dir.path(), b"").expect("refused");
    assert!(message.contains("no graph"), "{message}");
    let message = try_everything(dir.path(), b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").expect("refused");
    assert!(message.contains("ONNX"), "{message}");
}

#[test]
fn corrupted_bytes_never_panic() {
    for_each_fixture(|dir, bytes| {
        for position in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut corrupted = bytes.to_vec();
                corrupted[position] ^= flip;
                try_everything(dir, &corrupted);
            }
        }
    });
}

/// A few protobuf messages written by hand, for graphs the fixtures do not
/// have: ONNX's field numbers from onnx.proto.
mod encode {
    pub fn varint(mut value: u64, out: &mut Vec<u8>) {
        while value >= 0x80 {
            out.push(value as u8 | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    pub fn int(number: u64, value: i64, out: &mut Vec<u8>) {
        varint(number << 3, out);
        varint(value as u64, out);
    }

    pub fn bytes(number: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(number << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    /// `TensorProto` of f32 `values` in raw_data.
    pub fn tensor(name: &str, dims: &[i64], values: &[f32]) -> Vec<u8> {
        let mut out = Vec::new();
        dims.iter().for_each(|&d| int(1, d, &mut out));
        int(2, 1, &mut out);
        bytes(8, name.as_bytes(), &mut out);
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        bytes(9, &raw, &mut out);
        out
    }

    /// `TensorProto` of f32 values kept outside the model file: in
    /// `location` from `offset`, `length` bytes when given.
    pub fn external_tensor(
        name: &str,
        dims: &[i64],
        location: &str,
        (offset, length): (u64, Option<u64>),
    ) -> Vec<u8> {
        let mut out = Vec::new();
        dims.iter().for_each(|&d| int(1, d, &mut out));
        int(2, 1, &mut out);
        bytes(8, name.as_bytes(), &mut out);
        let offset = offset.to_string();
        let length = length.map(|l| l.to_string());
        let mut pairs = vec![("location", location), ("offset", offset.as_str())];
        pairs.extend(length.as_deref().map(|l| ("length", l)));
        for (key, value) in pairs {
            let mut entry = Vec::new();
            bytes(1, key.as_bytes(), &mut entry);
            bytes(2, value.as_bytes(), &mut entry);
            bytes(13, &entry, &mut out);
        }
        int(14, 1, &mut out);
        out
    }

    /// `AttributeProto` with `ints`, or with string `s` when `ints` is empty.
    pub fn attribute(name: &str, ints: &[i64], s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        bytes(1, name.as_bytes(), &mut out);
        if ints.is_empty() {
            bytes(4, s.as_bytes(), &mut out);
        } else {
            ints.iter().for_each(|&i| int(8, i, &mut out));
        }
        out
    }

    /// `NodeProto`.
    pub fn node(op: &str, inputs: &[&str], output: &str, attributes: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        inputs.iter().for_each(|i| bytes(1, i.as_bytes(), &mut out));
        bytes(2, output.as_bytes(), &mut out);
        bytes(4, op.as_bytes(), &mut out);
        attributes.iter().for_each(|a| bytes(5, a, &mut out));
        out
    }

    /// `ModelProto` whose graph has `nodes`, `initializers` and `inputs`.
    pub fn model(nodes: &[Vec<u8>], initializers: &[Vec<u8>], inputs: &[&str]) -> Vec<u8> {
        let mut graph = Vec::new();
        nodes.iter().for_each(|n| bytes(1, n, &mut graph));
        initializers.iter().for_each(|t| bytes(5, t, &mut graph));
        for input in inputs {
            let mut value_info = Vec::new();
            bytes(1, input.as_bytes(), &mut value_info);
            bytes(11, &value_info, &mut graph);
        }
        let mut out = Vec::new();
        int(1, 8, &mut out);
        bytes(7, &graph, &mut out);
        out
    }
}

#[test]
fn identity_weights_initializer_inputs_and_other_dims_are_handled() {
    use encode::*;
    let weight = tensor("w", &[2, 1, 3, 3], &[0.5; 18]);
    let weight_1d = tensor("w1", &[2, 2, 3], &[0.0; 12]);
    let model = encode::model(
        &[
            node("Identity", &["w"], "w_copy", &[]),
            node(
                "Conv",
                &["x", "w_copy"],
                "y",
                &[attribute("auto_pad", &[], "VALID")],
            ),
            node(
                "Conv",
                &["w", "w"],
                "z",
                &[attribute("auto_pad", &[], "SAME_LOWER")],
            ),
            node("Conv", &["y", "w1"], "conv1d", &[]),
        ],
        &[weight, weight_1d],
        // Older files list initializers among the inputs too.
        &["x", "w"],
    );
    let (_dir, mut model) = open_bytes(&model);
    let convs = model.convs().to_vec();
    let names: Vec<&str> = convs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["y", "z"], "the 1-D conv is left out");
    assert_eq!(convs[0].weight, "w", "followed through the Identity");
    assert_eq!(
        convs[0].geometry.map(|g| g.padding),
        Some(explicit(0, 0, 0, 0))
    );
    assert_eq!(
        convs[1].geometry.map(|g| g.padding),
        Some(FilePadding::SameLower)
    );
    let reads: Vec<_> = convs.iter().map(|c| c.reads_input).collect();
    assert_eq!(
        reads,
        [Some(true), Some(false)],
        "w is an initializer, not an input"
    );
    assert_eq!(model.tensor("w").expect("w").values, [0.5; 18]);
}

#[test]
fn convs_with_bad_attributes_are_refused_by_name() {
    use encode::*;
    let weight = || tensor("w", &[2, 1, 3, 3], &[0.5; 18]);
    let cases = [
        (
            node(
                "Conv",
                &["x", "w"],
                "y",
                &[attribute("kernel_shape", &[5, 5], "")],
            ),
            "kernel_shape",
        ),
        (
            node("Conv", &["x", "w"], "y", &[attribute("pads", &[1, 1], "")]),
            "pads has 2 values",
        ),
        (
            node(
                "Conv",
                &["x", "w"],
                "y",
                &[attribute("strides", &[0, 1], "")],
            ),
            "strides has 0",
        ),
        (
            node(
                "Conv",
                &["x", "w"],
                "y",
                &[attribute("auto_pad", &[], "SIDEWAYS")],
            ),
            "SIDEWAYS",
        ),
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("m.onnx");
    for (conv, expected) in cases {
        std::fs::write(&path, encode::model(&[conv], &[weight()], &["x"])).expect("write");
        let message = error_naming(OnnxFile::open(&path), &path);
        assert!(
            message.contains(expected) && message.contains("\"y\""),
            "{message}"
        );
    }
}

#[test]
fn convs_whose_weight_or_bias_is_not_in_the_file_are_left_out() {
    use encode::*;
    let model = encode::model(
        &[
            // Weights fed as a graph input, as quantized models do.
            node("Conv", &["x", "w_in"], "from_input", &[]),
            node("Conv", &["x", "w", "no_bias"], "no_bias_conv", &[]),
            node("Conv", &["x", "w"], "kept", &[]),
        ],
        &[tensor("w", &[2, 1, 3, 3], &[0.5; 18])],
        &["x", "w_in"],
    );
    let (_dir, model) = open_bytes(&model);
    let names: Vec<&str> = model.convs().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["kept"]);
    assert_eq!(model.first_input_conv().expect("kept").name, "kept");
}

#[test]
fn many_convs_each_with_a_batch_norm_list_in_linear_time() {
    // 40 000 Conv + BatchNormalization pairs: a scan of the nodes and
    // tensors per conv would take minutes.
    use encode::*;
    let count = 40_000;
    let mut nodes = Vec::new();
    let mut initializers = Vec::new();
    for i in 0..count {
        let (w, y, z) = (format!("w{i}"), format!("y{i}"), format!("z{i}"));
        nodes.push(node("Conv", &["x", &w], &y, &[]));
        let bn_inputs = [y.as_str(), "s", "b", "m", "v"];
        nodes.push(node("BatchNormalization", &bn_inputs, &z, &[]));
        initializers.push(tensor(&w, &[1, 1, 1, 1], &[1.0]));
    }
    for name in ["s", "b", "m", "v"] {
        initializers.push(tensor(name, &[1], &[1.0]));
    }
    // Quadratic lookups would take minutes here; no time is asserted.
    let (_dir, model) = open_bytes(&encode::model(&nodes, &initializers, &["x"]));
    assert_eq!(model.convs().len(), count);
    let last = &model.convs()[count - 1];
    assert_eq!(
        last.batch_norm.as_ref().map(|b| b.name.as_str()),
        Some("z39999")
    );
}

/// A conv whose weight `[2, 1, 3, 3]` and bias `[2]` lie in `data` (the
/// weight from byte 0, the bias from byte 72), as today's exporters write
/// them: `m.onnx` in `dir`, with the data file's `location` and the
/// weight's stated `length`.
fn external_model(dir: &Path, location: &str, weight_length: Option<u64>) -> PathBuf {
    use encode::*;
    let weight = external_tensor("w", &[2, 1, 3, 3], location, (0, weight_length));
    let bias = external_tensor("b", &[2], location, (72, Some(8)));
    let conv = node("Conv", &["x", "w", "b"], "y", &[]);
    let path = dir.join("m.onnx");
    std::fs::write(&path, encode::model(&[conv], &[weight, bias], &["x"])).unwrap();
    path
}

/// The 20 values `external_model`'s data holds: the weight's 18, then the
/// bias's 2.
fn external_values() -> Vec<f32> {
    (0..20).map(|i| i as f32 * 0.25 - 2.0).collect()
}

fn write_values(path: &Path, values: &[f32]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn weights_in_an_external_data_file_are_read_from_their_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let model_path = external_model(dir.path(), "m.onnx.data", Some(72));
    write_values(&dir.path().join("m.onnx.data"), &external_values());
    let mut model = OnnxFile::open(&model_path).unwrap();
    assert_eq!(model.convs()[0].weight, "w");
    assert_eq!(model.tensor_shape("w").unwrap(), [2, 1, 3, 3]);
    assert_eq!(read(&mut model, "w").values, external_values()[..18]);
    assert_eq!(read(&mut model, "b").values, external_values()[18..]);
}

#[test]
fn external_data_behind_a_symbolic_link_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let blob = cache.path().join("blob");
    write_values(&blob, &external_values());
    std::os::unix::fs::symlink(&blob, dir.path().join("m.onnx.data")).unwrap();
    let mut model = OnnxFile::open(&external_model(dir.path(), "m.onnx.data", None)).unwrap();
    assert_eq!(read(&mut model, "w").values, external_values()[..18]);
}

#[test]
fn external_data_outside_the_folder_or_not_matching_its_tensor_is_refused_by_name() {
    let outside = tempfile::tempdir().unwrap();
    let absolute = outside.path().join("w.data");
    write_values(&absolute, &external_values());
    let absolute = absolute.display().to_string();
    let cases: [(&str, Option<u64>, &[f32], &str); 5] = [
        (&absolute, None, &[], "relative path"),
        ("../w.data", None, &[], "relative path"),
        ("m.onnx.data", Some(68), &[1.0; 20], "72"),
        ("m.onnx.data", None, &[1.0; 10], "shorter"),
        ("missing.data", None, &[], "missing.data"),
    ];
    for (location, length, values, needle) in cases {
        let dir = tempfile::tempdir().unwrap();
        let model_path = external_model(dir.path(), location, length);
        if !values.is_empty() {
            write_values(&dir.path().join("m.onnx.data"), values);
        }
        let mut model = OnnxFile::open(&model_path).unwrap();
        let message = error_naming(model.tensor("w"), &model_path);
        assert!(
            message.contains("\"w\"") && message.contains(needle),
            "{message}"
        );
    }
}

#[test]
fn a_run_reads_a_conv_from_external_data_and_refuses_one_outside_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let model_path = external_model(dir.path(), "m.onnx.data", Some(72));
    write_values(&dir.path().join("m.onnx.data"), &external_values());
    let photo = common::photo(dir.path(), 12, 10);
    common::convmaps([&photo])
        .arg("--weights")
        .arg(&model_path)
        .args(["-q", "--out"])
        .arg(dir.path().join("out"))
        .cpu()
        .success();
    let bad = tempfile::tempdir().unwrap();
    let model_path = external_model(bad.path(), "../m.onnx.data", None);
    common::convmaps([&photo])
        .arg("--weights")
        .arg(&model_path)
        .args(["-q", "--out"])
        .arg(bad.path().join("out"))
        .cpu()
        .fails_with(2, &["\"w\"", "../m.onnx.data"]);
}

#[test]
fn each_conv_says_what_the_graph_computes_before_it() {
    use convmaps::model::{Feed, FeedSource, FeedStep};
    use encode::*;
    let ints = |name: &str, values: &[i64]| attribute(name, values, "");
    let model = encode::model(
        &[
            node("Conv", &["x", "w"], "a", &[]),
            node("BatchNormalization", &["a", "s", "b", "m", "v"], "bn", &[]),
            node("Relu", &["bn"], "r", &[]),
            node(
                "MaxPool",
                &["r"],
                "p",
                &[
                    ints("kernel_shape", &[3, 3]),
                    ints("strides", &[2, 2]),
                    ints("pads", &[1, 1, 1, 1]),
                ],
            ),
            node("Identity", &["p"], "q", &[]),
            node("Conv", &["q", "w2"], "c2", &[]),
            node("Sigmoid", &["c2"], "sg", &[]),
            node("Mul", &["c2", "sg"], "sw", &[]),
            node("Conv", &["sw", "w2"], "c3", &[]),
            node(
                "MaxPool",
                &["c3"],
                "p2",
                &[ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])],
            ),
            node("Conv", &["p2", "w2"], "c4", &[]),
        ],
        &[
            tensor("w", &[2, 1, 3, 3], &[0.5; 18]),
            tensor("w2", &[2, 2, 3, 3], &[0.25; 36]),
        ],
        &["x"],
    );
    let (_dir, model) = open_bytes(&model);
    let feeds: Vec<Option<Feed>> = model.convs().iter().map(|c| c.feed.clone()).collect();
    let feed = |from: FeedSource, steps: Vec<FeedStep>| Some(Feed { from, steps });
    let pool = |size: u32, padded: bool| FeedStep::MaxPool {
        kernel: [size; 2],
        strides: [2; 2],
        padded,
    };
    assert_eq!(
        feeds,
        [
            feed(FeedSource::Input, vec![]),
            feed(
                FeedSource::Conv("a".into()),
                vec![
                    FeedStep::BatchNorm("bn".into()),
                    FeedStep::Relu,
                    pool(3, true)
                ],
            ),
            feed(
                FeedSource::Node {
                    op: "Mul".into(),
                    name: "sw".into()
                },
                vec![],
            ),
            feed(FeedSource::Conv("c3".into()), vec![pool(2, false)]),
        ]
    );
}

#[test]
fn a_folded_batch_norm_must_be_what_the_next_conv_reads() {
    use encode::*;
    // a → bn → relu, and c2 reading a itself, before the BatchNorm.
    let model = encode::model(
        &[
            node("Conv", &["x", "w"], "a", &[]),
            node("BatchNormalization", &["a", "s", "b", "m", "v"], "bn", &[]),
            node("Relu", &["bn"], "r", &[]),
            node("Conv", &["a", "w2"], "c2", &[]),
            node("Conv", &["r", "w2"], "c3", &[]),
        ],
        &[
            tensor("w", &[2, 1, 3, 3], &[0.5; 18]),
            tensor("w2", &[2, 2, 3, 3], &[0.25; 36]),
            tensor("s", &[2], &[1.5, 0.5]),
            tensor("b", &[2], &[0.1, -0.1]),
            tensor("m", &[2], &[0.2, 0.3]),
            tensor("v", &[2], &[1.0, 2.0]),
        ],
        &["x"],
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    std::fs::write(&path, model).unwrap();
    let photo = common::photo(dir.path(), 12, 10);
    let run = |fold: bool, out: &str| {
        let layers = if out == "c3" { "a,relu,c3" } else { "a,c2" };
        let run = common::convmaps([&photo]).args(["--layers", layers, "--weights"]);
        let run = run.arg(&path).cpu().out(dir.path().join(out));
        if fold { run.arg("--fold-bn") } else { run }
    };
    // As the model: c2 reads a's raw maps.
    run(false, "raw").success();
    // Folding bn into a would hand c2 maps the model never gives it.
    run(true, "folded").fails_with(2, &["`c2`", "`a` with BatchNormalization bn folded in"]);
    // c3 reads relu(bn(a)): the BatchNorm must be folded in.
    run(false, "c3").fails_with(2, &["add --fold-bn and write relu between them"]);
    run(true, "c3").success();
}
