//! Conv layers from model files: float dtypes read as f32, BatchNorm
//! folding against the conv followed by the BatchNorm, the layer table,
//! and the command line's --fold-bn and `convmaps layers`.

mod common;

use std::path::Path;

use common::{assert_close, assert_not_written, convmaps, random_image, rng, uniform};
use convmaps::cpu;
use convmaps::layer::{Layer, LayerSpec};
use convmaps::model::load::{FoldBatchNorm, load_conv};
use convmaps::model::{BatchNorm, fold_batch_norm};
use safetensors::Dtype;

/// Writes a safetensors file of `tensors` (name, dtype, shape, values as
/// f64, stored in that dtype).
fn write_model(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<f64>)]) {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, dtype, _, values)| {
            values
                .iter()
                .flat_map(|&v| match dtype {
                    Dtype::F16 => half::f16::from_f64(v).to_le_bytes().to_vec(),
                    Dtype::BF16 => half::bf16::from_f64(v).to_le_bytes().to_vec(),
                    Dtype::F32 => (v as f32).to_le_bytes().to_vec(),
                    Dtype::F64 => v.to_le_bytes().to_vec(),
                    Dtype::I32 => (v as i32).to_le_bytes().to_vec(),
                    other => panic!("no writer for {other:?}"),
                })
                .collect()
        })
        .collect();
    let views: Vec<(&str, safetensors::tensor::TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, dtype, shape, _), data)| {
            let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), data).unwrap();
            (*name, view)
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// [`write_model`] as `name` in a fresh folder: the folder, kept while it
/// lives, and the file.
fn model(
    name: &str,
    tensors: &[(&str, Dtype, Vec<usize>, Vec<f64>)],
) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    write_model(&path, tensors);
    (dir, path)
}

/// Values i/128 − 0.25, exact in every dtype here.
fn ramp(len: usize) -> Vec<f64> {
    (0..len).map(|i| i as f64 / 128.0 - 0.25).collect()
}

#[test]
fn every_float_dtype_reads_as_the_f32_of_its_stored_values() {
    let dir = tempfile::tempdir().unwrap();
    // 0.1 is not exact in any of them: each reads as its own rounding.
    let values: Vec<f64> = (0..54).map(|i| 0.1 * i as f64 - 2.0).collect();
    for (dtype, round) in [
        (
            Dtype::F16,
            (|v: f64| half::f16::from_f64(v).to_f32()) as fn(f64) -> f32,
        ),
        (Dtype::BF16, |v| half::bf16::from_f64(v).to_f32()),
        (Dtype::F32, |v| v as f32),
        (Dtype::F64, |v| v as f32),
    ] {
        let path = dir.path().join(format!("{dtype:?}.safetensors"));
        write_model(
            &path,
            &[("conv.weight", dtype, vec![2, 3, 3, 3], values.clone())],
        );
        let loaded = load_conv(&path, None, None).unwrap();
        let expected: Vec<f32> = values.iter().map(|&v| round(v)).collect();
        assert_eq!(loaded.weight, expected, "{dtype:?}");
        assert_eq!(
            loaded.origin.dtype.name(),
            format!("{dtype:?}").to_lowercase()
        );
    }
}

#[test]
fn integer_weights_are_refused_naming_the_tensor_and_dtype() {
    let int_weight = ("conv.weight", Dtype::I32, vec![2, 3, 3, 3], ramp(54));
    let (_dir, path) = model("ints.safetensors", &[int_weight]);
    let error = load_conv(&path, None, None).unwrap_err().to_string();
    assert!(
        error.contains("ints.safetensors") && error.contains("I32"),
        "{error}"
    );
}

/// A conv (with or without bias) and a BatchNorm with non-trivial
/// statistics, as a state dict.
fn conv_and_batch_norm(path: &Path, conv_bias: bool) -> (Layer, BatchNorm) {
    let mut rng = rng(17);
    let mut draw = |len: usize, lo: f32, hi: f32| -> Vec<f32> {
        (0..len).map(|_| uniform(&mut rng, lo, hi)).collect()
    };
    let weight = draw(4 * 3 * 3 * 3, -1.0, 1.0);
    let bias = if conv_bias {
        draw(4, -1.0, 1.0)
    } else {
        Vec::new()
    };
    let bn = BatchNorm {
        scale: draw(4, 0.5, 2.0),
        shift: draw(4, -1.0, 1.0),
        mean: draw(4, -0.5, 0.5),
        variance: draw(4, 0.1, 3.0),
        epsilon: 1e-5,
    };
    let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let mut tensors = vec![("conv1.weight", Dtype::F32, vec![4, 3, 3, 3], f64s(&weight))];
    if conv_bias {
        tensors.push(("conv1.bias", Dtype::F32, vec![4], f64s(&bias)));
    }
    for (name, values) in [
        ("bn1.weight", &bn.scale),
        ("bn1.bias", &bn.shift),
        ("bn1.running_mean", &bn.mean),
        ("bn1.running_var", &bn.variance),
    ] {
        tensors.push((name, Dtype::F32, vec![4], f64s(values)));
    }
    write_model(path, &tensors);
    let spec = LayerSpec {
        bias: conv_bias,
        ..LayerSpec::new(3, 4, 3)
    };
    (Layer::new(spec, weight, bias).unwrap(), bn)
}

#[test]
fn a_folded_conv_equals_the_conv_followed_by_its_batch_norm() {
    let dir = tempfile::tempdir().unwrap();
    for conv_bias in [false, true] {
        let path = dir.path().join(format!("bn{conv_bias}.safetensors"));
        let (conv, bn) = conv_and_batch_norm(&path, conv_bias);
        let input = random_image(&mut rng(3), 3, 9, 11);
        // The conv, then the BatchNorm per map: (x − μ)/√(σ² + ε)·γ + β.
        let mut expected = cpu::conv2d_direct(&input, &conv).unwrap();
        let plane = expected.plane_len();
        for (k, map) in expected.data.chunks_mut(plane).enumerate() {
            let std = (bn.variance[k] as f64 + bn.epsilon as f64).sqrt();
            for v in map {
                *v = (((*v as f64 - bn.mean[k] as f64) / std) * bn.scale[k] as f64
                    + bn.shift[k] as f64) as f32;
            }
        }
        let fold = FoldBatchNorm {
            name: Some("bn1".into()),
            epsilon: 1e-5,
            if_present: false,
        };
        let loaded = load_conv(&path, None, Some(&fold)).unwrap();
        let folded = Layer::new(
            LayerSpec::new(3, 4, 3),
            loaded.weight,
            loaded.bias.expect("a folded layer has a bias"),
        )
        .unwrap();
        let actual = cpu::conv2d_direct(&input, &folded).unwrap();
        assert_close(
            &format!("conv bias {conv_bias}"),
            &actual,
            &expected,
            1e-5,
            1e-5,
        );
        assert_eq!(loaded.origin.batch_norm.as_deref(), Some("bn1"));
    }
}

#[test]
fn folding_refuses_a_non_positive_variance_and_a_wrong_length() {
    let bn = |variance: Vec<f32>| BatchNorm {
        scale: vec![1.0; 2],
        shift: vec![0.0; 2],
        mean: vec![0.0; 2],
        variance,
        epsilon: 0.0,
    };
    let error = fold_batch_norm(&[1.0; 4], &[], &bn(vec![1.0, -1.0]), 2).unwrap_err();
    assert!(
        error.contains("running_var + eps is -1 for filter 1"),
        "{error}"
    );
    let error = fold_batch_norm(&[1.0; 4], &[], &bn(vec![1.0; 3]), 2).unwrap_err();
    assert!(
        error.contains("running_var has 3 values, expected 2"),
        "{error}"
    );
}

#[test]
fn fold_bn_on_the_command_line_restores_one_bias_per_filter_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.safetensors");
    conv_and_batch_norm(&model, false);
    let photo = common::photo(dir.path(), 12, 10);
    let out = dir.path().join("out");
    let with_model = || convmaps([&photo]).arg("--weights").arg(&model);
    with_model()
        .args(["--fold-bn", "bn1", "-o"])
        .arg(&out)
        .cpu()
        .success()
        .says(&[
            "(3·3·3 + 1)·4 = 112",
            "the conv alone 3·3·3·4 = 108, no bias",
        ]);
    let summary = common::read_summary(&out);
    assert_eq!(summary["parameters"]["biases"], 4);
    assert_eq!(summary["weights_file"]["batch_norm"], "bn1");
    assert_eq!(summary["weights_file"]["conv_bias"], false);
    let page = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(page.contains("bn1: 2·4 trained (γ, β) + 2·4 running (μ, σ²)"));

    with_model()
        .args(["--fold-bn", "bn9", "-o"])
        .arg(dir.path().join("never"))
        .fails_with(2, &["has no BatchNorm \"bn9\""]);
}

#[test]
fn layers_lists_each_conv_with_its_parameter_count_and_batch_norm() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.safetensors");
    let (_, _) = conv_and_batch_norm(&model, false);
    let stdout = convmaps([Path::new("layers"), &model]).success().stdout();
    let row = stdout
        .lines()
        .find(|l| l.starts_with("conv1"))
        .expect("a conv1 row");
    assert!(
        row.contains("3·3·3·4 = 108") && row.contains("bn1"),
        "{row}"
    );
    assert!(
        stdout.contains("1 conv layers (safetensors), 108 parameters"),
        "{stdout}"
    );

    let json = convmaps([Path::new("layers"), &model])
        .arg("--json")
        .success();
    let table: serde_json::Value = serde_json::from_str(&json.stdout()).unwrap();
    assert_eq!(
        table["layers"][0]["weight_shape"],
        serde_json::json!([4, 3, 3, 3])
    );
    assert_eq!(table["total_parameters"], 108);
}

fn onnx_fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/onnx")
        .join(name)
}

/// Resolves the first conv of an ONNX fixture over its own input, with the
/// geometry the file states.
fn resolve_onnx(
    name: &str,
    fold_bn: Option<FoldBatchNorm>,
) -> (convmaps::tensor::Tensor3, convmaps::resolve::Resolved) {
    let input = convmaps::npy::read_f32_3d(&onnx_fixture(&format!("{name}_input.npy"))).unwrap();
    let source = convmaps::resolve::WeightsSource::Model {
        path: onnx_fixture(&format!("{name}.onnx")),
        layer_name: None,
        fold_bn,
    };
    let shape = convmaps::resolve::InputShape {
        channels: input.channels,
        photo: false,
        height: input.height,
        width: input.width,
    };
    let options = convmaps::resolve::LayerOptions::default();
    let resolved = convmaps::resolve::resolve(&options, shape, &source, u64::MAX).unwrap();
    (input, resolved)
}

#[test]
fn an_onnx_conv_resolved_with_its_own_geometry_matches_the_runtime_output() {
    // (a): stride 2 and asymmetric pads; (c): groups, dilation 2, SAME_UPPER, f64.
    for name in ["a", "b", "c"] {
        let (input, resolved) = resolve_onnx(name, None);
        let expected =
            convmaps::npy::read_f32_3d(&onnx_fixture(&format!("{name}_conv1.npy"))).unwrap();
        let actual = cpu::conv2d_direct(&input, &resolved.layer).unwrap();
        assert_close(&format!("fixture {name}"), &actual, &expected, 1e-5, 1e-5);
        assert_eq!(resolved.origin.unwrap().format, "onnx");
    }
}

#[test]
fn folding_an_onnx_batch_norm_equals_the_conv_then_the_graphs_batch_norm() {
    let fold = FoldBatchNorm {
        name: None,
        epsilon: 1e-5, // the graph's own (1e-3) must win
        if_present: false,
    };
    let (input, resolved) = resolve_onnx("a", Some(fold));
    let conv = convmaps::npy::read_f32_3d(&onnx_fixture("a_conv1.npy")).unwrap();
    let read = |n: &str| {
        convmaps::npy::read_f32(&onnx_fixture(&format!("a_bn_{n}.npy")))
            .unwrap()
            .1
    };
    let (scale, shift, mean, var) = (read("scale"), read("shift"), read("mean"), read("var"));
    let mut expected = conv.clone();
    let plane = expected.plane_len();
    for (k, map) in expected.data.chunks_mut(plane).enumerate() {
        let std = (var[k] as f64 + 1e-3).sqrt();
        for v in map {
            *v = ((*v as f64 - mean[k] as f64) / std * scale[k] as f64 + shift[k] as f64) as f32;
        }
    }
    let actual = cpu::conv2d_direct(&input, &resolved.layer).unwrap();
    assert_close("conv then BatchNorm", &actual, &expected, 1e-5, 1e-5);
}

#[test]
fn options_that_an_onnx_file_sets_are_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let photo = common::photo(dir.path(), 12, 10);
    let with_model = || {
        convmaps([&photo])
            .arg("--weights")
            .arg(onnx_fixture("a.onnx"))
    };
    let never = dir.path().join("never");
    with_model()
        .args(["--stride", "1", "--padding", "2", "-o"])
        .arg(&never)
        .fails_with(2, &["--stride, --padding cannot change them"]);
    assert_not_written(&never);

    let out = dir.path().join("out");
    with_model().arg("-o").arg(&out).cpu().success();
    let summary = common::read_summary(&out);
    assert_eq!(summary["layer"]["stride"], 2);
    assert_eq!(
        summary["layer"]["padding"],
        serde_json::json!({"top": 1, "bottom": 2, "left": 0, "right": 1})
    );
    assert_eq!(summary["weights_file"]["layer"], "conv1");
}

/// A PyTorch checkpoint's conv1 folded with bn1 equals PyTorch's own
/// conv1 → bn1 in eval mode (tools/make_pytorch_fixtures.py), through both
/// file formats.
#[test]
fn a_folded_pytorch_conv_equals_pytorchs_conv_then_batch_norm() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pytorch");
    let input = convmaps::npy::read_f32_3d(&fixtures.join("folded_input.npy")).unwrap();
    let expected = convmaps::npy::read_f32_3d(&fixtures.join("conv1_bn1_output.npy")).unwrap();
    for file in ["state_dict.pt", "state_dict_legacy.pt", "checkpoint.pth"] {
        let source = convmaps::resolve::WeightsSource::Model {
            path: fixtures.join(file),
            layer_name: None,
            fold_bn: Some(FoldBatchNorm {
                name: Some("bn1".into()),
                epsilon: 1e-5,
                if_present: false,
            }),
        };
        let shape = convmaps::resolve::InputShape {
            channels: 3,
            photo: false,
            height: input.height,
            width: input.width,
        };
        let options = convmaps::resolve::LayerOptions::default();
        let resolved = convmaps::resolve::resolve(&options, shape, &source, u64::MAX).unwrap();
        let actual = cpu::conv2d_direct(&input, &resolved.layer).unwrap();
        assert_close(file, &actual, &expected, 1e-5, 1e-5);
        let origin = resolved.origin.unwrap();
        assert_eq!(origin.layer.as_deref(), Some("conv1"));
        assert!(!origin.conv_bias, "conv1 has bias=False");
    }
}

#[test]
fn without_a_name_a_state_dict_gives_its_first_conv_that_reads_an_image() {
    // Sorted by name, as safetensors files are: the block's conv comes first.
    let (_dir, path) = model(
        "sorted.safetensors",
        &[
            (
                "blocks.0.conv.weight",
                Dtype::F32,
                vec![2, 8, 3, 3],
                ramp(144),
            ),
            ("stem.weight", Dtype::F32, vec![4, 3, 3, 3], ramp(108)),
        ],
    );
    let loaded = load_conv(&path, None, None).unwrap();
    assert_eq!(loaded.origin.layer.as_deref(), Some("stem"));
}

#[test]
fn a_bare_fold_bn_on_a_state_dict_takes_the_batch_norm_its_names_suggest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bn.safetensors");
    conv_and_batch_norm(&path, false);
    let fold = FoldBatchNorm {
        name: None,
        epsilon: 1e-5,
        if_present: false,
    };
    let loaded = load_conv(&path, None, Some(&fold)).unwrap();
    assert_eq!(loaded.origin.batch_norm.as_deref(), Some("bn1"));
    convmaps([Path::new("x.png"), Path::new("--weights"), &path])
        .args(["--fold-bn", "--no-bias"])
        .fails_with(2, &["--no-bias would drop it"]);
}

#[test]
fn a_truncated_or_padded_npy_is_refused_not_misread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.npy");
    convmaps::npy::write_f32_nd(&path, &[2, 3, 3, 3], &[0.5; 54]).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for (name, changed) in [
        ("short.npy", bytes[..bytes.len() - 4].to_vec()),
        ("long.npy", [bytes.as_slice(), &[0; 4]].concat()),
    ] {
        let bad = dir.path().join(name);
        std::fs::write(&bad, changed).unwrap();
        let error = convmaps::model::npy::load_npy(&bad, None)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(name) && error.contains("bytes of values"),
            "{error}"
        );
    }
}
