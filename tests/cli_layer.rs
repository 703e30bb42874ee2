//! The whole Conv2d layer from the command line: geometry options on both
//! backends, weights from .npy and from a named conv in a safetensors file,
//! and every invalid combination refused with exit code 2.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_not_written, convmaps};
use convmaps::npy;
use npyz::WriterBuilder;

/// A 23×19 RGB photo.
fn photo(dir: &Path) -> PathBuf {
    common::photo(dir, 23, 19)
}

fn summary(out: &Path) -> serde_json::Value {
    common::read_summary(out)
}

/// `options` with each `--init NAME` left out: the GPU runs take the CPU
/// run's exact parameters instead.
fn without_init<'a>(options: &[&'a str]) -> Vec<&'a str> {
    let mut kept = Vec::new();
    let mut rest = options.iter();
    while let Some(&option) = rest.next() {
        if option == "--init" {
            rest.next();
        } else {
            kept.push(option);
        }
    }
    kept
}

/// Runs `options` on the CPU and on the GPU (when there is one) and returns
/// the CPU run's output directory after checking both agree.
fn run_both_backends(dir: &Path, name: &str, options: &[&str]) -> PathBuf {
    let photo = photo(dir);
    let cpu_out = dir.join(format!("{name}-cpu"));
    let run = convmaps([&photo]).arg("--raw").cpu().out(&cpu_out);
    run.args(options).success();
    let weights = cpu_out.join("weights.safetensors");
    for shader in ["fast", "direct"] {
        let gpu_out = dir.join(format!("{name}-gpu-{shader}"));
        let run = convmaps([&photo]).args(["--raw", "--shader", shader]);
        let Some(run) = run.out(&gpu_out).gpu() else {
            break;
        };
        if options.contains(&"--weights") {
            run.args(options).success();
        } else {
            let run = run.args(without_init(options)).arg("--weights");
            run.arg(&weights).success();
        }
        let cpu = npy::read_f32_3d(&cpu_out.join("features.npy")).unwrap();
        let gpu = npy::read_f32_3d(&gpu_out.join("features.npy")).unwrap();
        common::assert_close(&format!("{name}, {shader} shader"), &gpu, &cpu, 1e-5, 1e-5);
    }
    cpu_out
}

#[test]
fn geometry_options_agree_on_both_backends_with_pytorch_output_sizes() {
    let dir = tempfile::tempdir().unwrap();
    // (name, options, expected [K, OH, OW]) for a 23×19 photo.
    let cases = [
        ("stride2", "-k 3 -f 3 --stride 2", [3, 9, 11]),
        ("pad2", "-k 2 -f 5 --padding 2", [2, 19, 23]),
        ("same-even", "-k 2 -f 4 --padding same", [2, 19, 23]),
        ("dilation3", "-k 2 -f 3 --dilation 3", [2, 13, 17]),
        ("groups3", "-k 6 -f 3 --groups 3", [6, 17, 21]),
        ("rect5x3", "-k 2 -f 5x3 --stride 2 --padding 1", [2, 9, 12]),
        ("no-bias", "-k 4 -f 3 --no-bias", [4, 17, 21]),
        ("relu", "-k 4 -f 3 --activation relu", [4, 17, 21]),
    ];
    for (name, options, [maps, height, width]) in cases {
        let options: Vec<&str> = options.split(' ').collect();
        let out = run_both_backends(dir.path(), name, &options);
        let summary = summary(&out);
        assert_eq!(summary["output"]["maps"], maps, "{name}");
        assert_eq!(summary["output"]["height"], height, "{name}");
        assert_eq!(summary["output"]["width"], width, "{name}");
    }
    let groups = summary(&dir.path().join("groups3-cpu"));
    assert_eq!(groups["layer"]["groups"], 3);
    assert_eq!(groups["parameters"]["total"], 60, "(3/3·3·3 + 1)·6");
    assert_eq!(groups["parameter_formula"], "(3/3·3·3 + 1)·6 = 60");
    let no_bias = summary(&dir.path().join("no-bias-cpu"));
    assert_eq!(no_bias["parameters"]["biases"], 0);
    assert_eq!(no_bias["parameter_formula"], "3·3·3·4 = 108");
    let relu = summary(&dir.path().join("relu-cpu"));
    assert_eq!(relu["layer"]["activation"], "relu");
    for map in relu["maps"].as_array().unwrap() {
        assert!(map["min"].as_f64().unwrap() >= 0.0, "{map}");
    }
    let same = summary(&dir.path().join("same-even-cpu"));
    assert_eq!(same["layer"]["padding"]["top"], 1);
    assert_eq!(same["layer"]["padding"]["bottom"], 2);
}

#[test]
fn npy_weights_with_npy_bias_run_and_match_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/groups3");
    let weight = golden.join("weight.npy");
    let bias = golden.join("bias.npy");
    let out = run_both_backends(
        dir.path(),
        "npy",
        &[
            "--weights",
            weight.to_str().unwrap(),
            "--bias",
            bias.to_str().unwrap(),
            "--groups",
            "3",
        ],
    );
    let summary = summary(&out);
    assert_eq!(summary["layer"]["filters"], 6);
    assert_eq!(summary["parameters"]["total"], 60);
}

#[test]
fn layer_name_picks_one_conv_of_several_and_the_first_is_the_default() {
    let (dir, photo, model) = common::photo_and_model(
        (23, 19),
        &[
            ("conv1.weight", vec![4, 3, 3, 3]),
            ("conv1.bias", vec![4]),
            ("bn1.weight", vec![4]),
            ("conv2.weight", vec![2, 3, 5, 5]),
        ],
    );
    let out = dir.path().join("out");
    let with_model = || convmaps([&photo]).arg("--weights").arg(&model).out(&out);
    // Without a name: the first 4-D *.weight, the conv that sees the input.
    with_model().auto().success();
    assert_eq!(summary(&out)["layer"]["filters"], 4);
    assert_eq!(summary(&out)["weights_file"]["layer"], "conv1");

    with_model().args(["--layer-name", "conv3"]).fails_with(
        2,
        &["no conv layer \"conv3\" (--layer-name); its conv layers: conv1, conv2"],
    );

    with_model()
        .args(["--layer-name", "conv2"])
        .auto()
        .success();
    let summary = summary(&out);
    assert_eq!(summary["layer"]["filters"], 2);
    assert_eq!(summary["layer"]["kernel_size"], serde_json::json!([5, 5]));
    assert_eq!(
        summary["parameters"]["biases"], 0,
        "conv2 has no bias in the file"
    );
}

/// Asserts that the run of `args` is exit 2 with `expected` in stderr.
fn assert_exit_2(args: &[&str], expected: &str) {
    convmaps(args).fails_with(2, &[expected]);
}

#[test]
fn invalid_layer_combinations_are_exit_2_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let photo = photo(dir.path());
    let out = dir.path().join("never");
    let cases = [
        (
            "--groups 2",
            "groups = 2 must divide both the input channels (3)",
        ),
        ("--groups 3 -k 4", "the filters (4)"),
        ("--padding same --stride 2", "padding 'same' needs stride 1"),
        ("-f 5 --dilation 6", "smaller than the 25×25 kernel"),
        ("--stride 0", "--stride"),
        ("--stride -1", "--stride"),
        ("--dilation 0", "--dilation"),
        ("--groups 0", "--groups"),
        ("-f 3x0", "at least 1"),
        ("--padding -2", "--padding"),
    ];
    for (options, expected) in cases {
        let run = convmaps([&photo]).arg("-o").arg(&out);
        run.args(options.split(' ')).fails_with(2, &[expected]);
    }
    assert_not_written(&out);
}

#[test]
fn bad_npy_weights_are_exit_2_naming_file_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let photo = photo(dir.path());
    let photo = photo.to_str().unwrap();
    let weight = dir.path().join("w.npy");
    npy::write_f32_nd(&weight, &[2, 3, 3, 3], &[0.1; 54]).unwrap();
    let weight = weight.to_str().unwrap();

    assert_exit_2(
        &[photo, "--weights", weight],
        "needs --bias B.npy, or --no-bias",
    );

    let short_bias = dir.path().join("short.npy");
    npy::write_f32_nd(&short_bias, &[3], &[0.0; 3]).unwrap();
    assert_exit_2(
        &[
            photo,
            "--weights",
            weight,
            "--bias",
            short_bias.to_str().unwrap(),
        ],
        "bias has 3 values, expected 2",
    );

    let nan = dir.path().join("nan.npy");
    let mut values = vec![0.1; 54];
    values[7] = f32::NAN;
    npy::write_f32_nd(&nan, &[2, 3, 3, 3], &values).unwrap();
    assert_exit_2(
        &[photo, "--weights", nan.to_str().unwrap(), "--no-bias"],
        "nan.npy: weight holds a non-finite value (NaN) at index 7",
    );

    let three_d = dir.path().join("flat.npy");
    npy::write_f32_nd(&three_d, &[2, 27, 1], &[0.1; 54]).unwrap();
    assert_exit_2(
        &[photo, "--weights", three_d.to_str().unwrap(), "--no-bias"],
        "expected [K, C/G, FH, FW]",
    );

    let ints = dir.path().join("ints.npy");
    let mut writer = npyz::WriteOptions::<i32>::new()
        .default_dtype()
        .shape(&[2, 3, 3, 3])
        .writer(std::fs::File::create(&ints).unwrap())
        .begin_nd()
        .unwrap();
    writer.extend(std::iter::repeat_n(1i32, 54)).unwrap();
    writer.finish().unwrap();
    assert_exit_2(
        &[photo, "--weights", ints.to_str().unwrap(), "--no-bias"],
        "ints.npy: has dtype '<i4', expected a float",
    );
}

#[test]
fn npy_weights_of_any_float_dtype_and_fortran_order_give_the_f32_layer() {
    let dir = tempfile::tempdir().unwrap();
    let photo = photo(dir.path());
    // 2 filters of 3×3 over 3 channels; value i/64 at C index i.
    let values: Vec<f64> = (0..54).map(|i| i as f64 / 64.0).collect();
    let write = |name: &str, fortran: bool, write: &dyn Fn(&std::path::Path, bool)| {
        let path = dir.path().join(name);
        write(&path, fortran);
        path
    };
    let as_f64 = |path: &std::path::Path, fortran: bool| {
        // Fortran order stores the same tensor column-major.
        let mut data = vec![0.0f64; 54];
        for (i, &v) in values.iter().enumerate() {
            let (k, c, y, x) = (i / 27, (i / 9) % 3, (i / 3) % 3, i % 3);
            let f = k + 2 * (c + 3 * (y + 3 * x));
            data[if fortran { f } else { i }] = v;
        }
        let mut writer = npyz::WriteOptions::<f64>::new()
            .default_dtype()
            .shape(&[2, 3, 3, 3])
            .order(if fortran {
                npyz::Order::Fortran
            } else {
                npyz::Order::C
            })
            .writer(std::fs::File::create(path).unwrap())
            .begin_nd()
            .unwrap();
        writer.extend(data).unwrap();
        writer.finish().unwrap();
    };
    let reference = dir.path().join("f32.npy");
    let f32_values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    npy::write_f32_nd(&reference, &[2, 3, 3, 3], &f32_values).unwrap();
    let mut saved = Vec::new();
    for (name, path) in [
        ("f32", reference.clone()),
        ("f64", write("c64.npy", false, &as_f64)),
        ("f64-fortran", write("f64.npy", true, &as_f64)),
    ] {
        let out = dir.path().join(name);
        let run = convmaps([&photo]).arg("--weights").arg(&path);
        run.args(["--no-bias", "--raw", "-o"])
            .arg(&out)
            .cpu()
            .success();
        saved.push((name, npy::read_f32_3d(&out.join("features.npy")).unwrap()));
    }
    for (name, maps) in &saved[1..] {
        assert_eq!(maps, &saved[0].1, "{name} weights give other maps than f32");
    }
}

#[test]
fn every_built_in_bank_runs_and_is_saved_like_any_weights() {
    let dir = tempfile::tempdir().unwrap();
    for init in [
        "random", "gabor", "edges", "opponent", "blur", "identity", "mixed",
    ] {
        let out = run_both_backends(dir.path(), init, &["--init", init, "-k", "8", "-f", "5"]);
        let summary = summary(&out);
        assert!(
            summary["layer"]["weights_source"]
                .as_str()
                .unwrap()
                .starts_with(init),
            "{init}: {summary}"
        );
        assert_eq!(summary["parameters"]["total"], 608, "{init}");
        assert!(out.join("weights.safetensors").exists());
    }
}

#[test]
fn init_and_weights_together_are_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let photo = photo(dir.path());
    assert_exit_2(
        &[
            photo.to_str().unwrap(),
            "--init",
            "gabor",
            "--weights",
            "w.safetensors",
        ],
        "cannot be used with",
    );
}

/// Runs `args` (with `-o` into a fresh folder) and checks that it is
/// refused with exit 2, a one-line message containing each of `expected`,
/// and no output directory.
fn assert_refused_before_writing(args: &[&str], expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let photo = photo(dir.path());
    let out = dir.path().join("out");
    let ran = convmaps([&photo]).arg("-o").arg(&out).args(args);
    let ran = ran.fails_with(2, expected);
    let stderr = ran.stderr();
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors.len(),
        1,
        "{args:?}: one error line expected in\n{}",
        ran.text()
    );
    for part in expected {
        assert!(
            errors[0].contains(part),
            "{args:?}: {part:?} not in {:?}",
            errors[0]
        );
    }
    assert_not_written(&out);
}

#[test]
fn a_padding_that_would_wrap_is_refused_naming_the_option() {
    // 4294967295 on each side of 23×19: 32-bit arithmetic would wrap.
    assert_refused_before_writing(
        &["--padding", "4294967295"],
        &["--padding 4294967295", "8589934613×8589934609"],
    );
}

#[test]
fn a_dilated_kernel_beyond_any_image_is_refused_naming_both_options() {
    assert_refused_before_writing(
        &["--dilation", "4294967295", "-f", "5"],
        &[
            "--dilation 4294967295",
            "5×5 kernel (--kernel-size)",
            "17179869181",
        ],
    );
}

#[test]
fn a_stride_beyond_32_bits_is_refused_naming_the_option() {
    assert_refused_before_writing(&["--stride", "4294967296"], &["--stride", "4294967296"]);
}

#[test]
fn an_output_map_larger_than_max_pixels_is_refused_naming_both_options() {
    // 23×19 padded by 100000 on each side: 200019×200015 output pixels.
    assert_refused_before_writing(
        &["--padding", "100000", "-f", "1"],
        &["200023×200019", "--padding 100000", "--max-pixels"],
    );
    assert_refused_before_writing(
        &["--padding", "10", "--max-pixels", "1000"],
        &["39×35", "--max-pixels"],
    );
}

#[test]
fn a_stride_larger_than_the_photo_gives_the_first_window_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_both_backends(
        dir.path(),
        "huge-stride",
        &["-k", "3", "--stride", "4294967295"],
    );
    let maps = npy::read_f32_3d(&out.join("features.npy")).unwrap();
    assert_eq!((maps.channels, maps.height, maps.width), (3, 1, 1));
    assert_eq!(summary(&out)["output"]["width"], 1);
}

#[test]
fn a_runs_feature_maps_are_the_next_layers_input_channels() {
    let dir = tempfile::tempdir().unwrap();
    let photo = photo(dir.path());
    let first = dir.path().join("first");
    let run = convmaps([&photo]).args(["-k", "6", "-f", "3", "--raw", "-o"]);
    run.arg(&first).cpu().success();
    // Layer 2 reads layer 1's 6 maps as its 6 channels.
    let second = dir.path().join("second");
    let features = first.join("features.npy");
    let run = convmaps([&features]).args(["-k", "4", "-f", "3", "--raw", "-o"]);
    run.arg(&second)
        .auto()
        .success()
        .says(&["(6·3·3 + 1)·4 = 220"]);
    let summary = summary(&second);
    assert_eq!(summary["input"]["channels"], 6);
    assert!(summary["input"]["preprocessing"].is_null());
    assert!(second.join("input.png").exists() && second.join("filters.png").exists());

    // Layer 2's maps are the CPU reference over layer 1's maps.
    let input = npy::read_f32_3d(&features).unwrap();
    let bytes = std::fs::read(second.join("weights.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let floats = |name: &str| -> Vec<f32> {
        tensors
            .tensor(name)
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    let layer = convmaps::layer::Layer::new(
        convmaps::layer::LayerSpec::new(6, 4, 3),
        floats("weight"),
        floats("bias"),
    )
    .unwrap();
    let expected = convmaps::cpu::conv2d_direct(&input, &layer).unwrap();
    let actual = npy::read_f32_3d(&second.join("features.npy")).unwrap();
    common::assert_close("layer 2", &actual, &expected, 1e-5, 1e-5);
}

#[test]
fn a_tensor_input_of_the_wrong_rank_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let flat = dir.path().join("flat.npy");
    npy::write_f32_nd(&flat, &[4, 5], &[0.5; 20]).unwrap();
    assert_refused_before_writing_input(
        &flat,
        "flat.npy: has shape [4, 5], expected an input tensor",
    );
    let batched = dir.path().join("batched.npy");
    npy::write_f32_nd(&batched, &[1, 2, 6, 7], &[0.5; 84]).unwrap();
    let out = dir.path().join("out");
    let run = convmaps([&batched]).args(["-k", "2", "-f", "3", "-o"]);
    run.arg(&out).auto().success();
    assert_eq!(summary(&out)["input"]["channels"], 2);
}

/// Runs convmaps on `input` and checks it is refused with exit 2 naming
/// `expected`, writing nothing.
fn assert_refused_before_writing_input(input: &Path, expected: &str) {
    let out = input.with_extension("out");
    convmaps([input])
        .arg("-o")
        .arg(&out)
        .fails_with(2, &[expected]);
    assert_not_written(&out);
}
