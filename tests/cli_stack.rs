//! `convmaps PHOTO --layers SPEC` end to end: a folder per conv, the
//! stack's summary and table, the same maps as the layers run one by one
//! and as an untiled run, and bad stacks refused with exit 2 naming the item.

mod common;

use std::path::Path;

use common::{assert_not_written, convmaps};
use convmaps::npy::read_f32_3d;

fn max_difference(a: &convmaps::tensor::Tensor3, b: &convmaps::tensor::Tensor3) -> f32 {
    assert_eq!(
        (a.channels, a.height, a.width),
        (b.channels, b.height, b.width)
    );
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn a_two_layer_stack_writes_both_layers_and_counts_20928_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    convmaps([common::photo(dir.path(), 40, 30)])
        .args(["--layers", "32x5,relu,maxpool2,64x3", "--raw"])
        .out(&out)
        .cpu()
        .success()
        .says(&["2432 + 18496 = 20928", "[32, 13, 18]", "[64, 11, 16]"]);
    for (folder, maps) in [("conv1", 32), ("conv2", 64)] {
        for file in [
            "grid.png",
            "filters.png",
            "weights.safetensors",
            "features.npy",
        ] {
            assert!(out.join(folder).join(file).exists(), "{folder}/{file}");
        }
        let last = format!("feature_{:02}.png", maps - 1);
        assert!(out.join(folder).join(&last).exists(), "{folder}/{last}");
    }
    let summary = common::read_summary(&out);
    assert_eq!(summary["parameters"]["total"], 20928);
    let layers = summary["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(
        layers[0]["items"],
        serde_json::json!(["32x5", "relu", "maxpool2"])
    );
    assert_eq!(layers[1]["parameters"]["total"], 18496);
    assert_eq!(layers[1]["input_shape"], serde_json::json!([32, 13, 18]));
    assert_eq!(
        layers[1]["layer"]["weight_shape"],
        serde_json::json!([64, 32, 3, 3])
    );
    let page = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(
        page.contains("conv2/grid.png") && page.contains("20928"),
        "{page}"
    );
    // The maps after ReLU and pooling are what conv1/ holds.
    let conv1 = read_f32_3d(&out.join("conv1/features.npy")).unwrap();
    assert!(
        conv1.data.iter().all(|&v| v >= 0.0),
        "conv1/ holds maps after its relu"
    );
}

#[test]
fn a_stack_equals_its_layers_run_one_by_one_through_features_npy() {
    let dir = tempfile::tempdir().unwrap();
    let photo = common::photo(dir.path(), 33, 27);
    let stacked = dir.path().join("stacked");
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    let raw = |input: &Path, seed: &str, options: &str, out: &Path| {
        let run = convmaps([input]).args(options.split(' '));
        run.args(["--raw", "--seed", seed]).out(out).cpu().success();
    };
    raw(&photo, "5", "--layers 6x3/p1,relu,4x3/s2", &stacked);
    raw(
        &photo,
        "5",
        "-k 6 -f 3 --padding 1 --activation relu",
        &first,
    );
    // Layer 2 by itself: layer 1's maps as its input, seeded as the stack seeds it.
    let features = first.join("features.npy");
    raw(&features, "6", "-k 4 -f 3 --stride 2", &second);
    for (stacked, alone) in [("conv1", &first), ("conv2", &second)] {
        let a = read_f32_3d(
            &dir.path()
                .join("stacked")
                .join(stacked)
                .join("features.npy"),
        )
        .unwrap();
        let b = read_f32_3d(&alone.join("features.npy")).unwrap();
        assert_eq!(max_difference(&a, &b), 0.0, "{stacked}");
    }
}

#[test]
fn a_three_layer_stack_in_tiny_bands_equals_the_untiled_run() {
    let dir = tempfile::tempdir().unwrap();
    let photo = common::photo(dir.path(), 45, 61);
    let spec = "5x5/p2,relu,maxpool2,6x3/s2/g1,relu,maxpool3/s1,4x3/d2/p1";
    let mut outputs = Vec::new();
    for (name, budget) in [("untiled", None), ("tiled", Some("28000"))] {
        let out = dir.path().join(name);
        let mut run = convmaps([&photo]).args(["--layers", spec, "--raw"]);
        if let Some(budget) = budget {
            run = run.env("CONVMAPS_BAND_BYTES", budget);
        }
        run.out(&out).cpu().success();
        outputs.push(out);
    }
    let bands = common::read_summary(&outputs[1])["bands"].as_u64().unwrap();
    assert!(
        bands > 3,
        "the tiny budget should split the run, got {bands} bands"
    );
    for folder in ["conv1", "conv2", "conv3"] {
        let a = read_f32_3d(&outputs[0].join(folder).join("features.npy")).unwrap();
        let b = read_f32_3d(&outputs[1].join(folder).join("features.npy")).unwrap();
        assert_eq!(max_difference(&a, &b), 0.0, "{folder}");
    }
}

#[test]
fn bad_stacks_exit_2_naming_the_item_and_write_nothing() {
    let tensors = [("conv1.weight", vec![4, 3, 3, 3])];
    let (dir, photo, model) = common::photo_and_model((20, 20), &tensors);
    let model = model.to_str().unwrap();
    let npy = dir.path().join("bad.npy");
    convmaps::npy::write_f32_nd(&npy, &[4, 5], &[0.0; 20]).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--layers", "32x5,swish"], "item 2 `swish`"),
        (vec!["--layers", "8x3,16x3/g3"], "item 2 `16x3/g3`"),
        (vec!["--layers", "8x5,maxpool2,8x5,8x5"], "item 4 `8x5`"),
        (vec!["--layers", "maxpool2,8x3"], "item 1 `maxpool2`"),
        (
            vec!["--layers", "conv1,relu,conv9", "--weights", model],
            "item 3 `conv9`",
        ),
    ];
    let out = dir.path().join("out");
    for (args, named) in cases {
        let run = convmaps([&photo]).cpu().out(&out).args(args);
        run.fails_with(2, &[named]);
        assert_not_written(&out);
    }
    // A .npy input of the wrong rank, and one of integers.
    let ints = dir.path().join("ints.npy");
    let header = "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3, 4), }";
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    let padded = format!("{header:<117}\n");
    bytes.extend((padded.len() as u16).to_le_bytes());
    bytes.extend(padded.as_bytes());
    bytes.extend([0u8; 2 * 3 * 4 * 4]);
    std::fs::write(&ints, bytes).unwrap();
    for bad in [&npy, &ints] {
        let name = bad.file_name().unwrap().to_str().unwrap();
        let run = convmaps([bad]).args(["--layers", "4x3"]).cpu().out(&out);
        run.fails_with(2, &[name]);
        assert_not_written(&out);
    }
}

#[test]
fn named_convs_the_model_connects_otherwise_are_refused_saying_what_it_runs() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stack/stack.onnx");
    let dir = tempfile::tempdir().unwrap();
    let photo = common::photo(dir.path(), 30, 24);
    let out = dir.path().join("out");
    // In stack.onnx, /block/conv2/Conv reads MaxPool(Relu(/conv1/Conv)); its
    // convs are named by their nodes or by their weights.
    let specs = ["", "relu,", "relu,maxpool3/s2,", "maxpool2,relu,"]
        .map(|between| format!("/conv1/Conv,{between}/block/conv2/Conv"));
    let by_weight = "conv1.weight,relu,conv2.weight".to_string();
    for spec in specs.iter().chain([&by_weight]) {
        let run = convmaps([&photo]).args(["--layers", spec, "--weights"]);
        run.arg(&model).cpu().out(&out).fails_with(
            2,
            &[
                "stack.onnx",
                "`/conv1/Conv` → Relu → MaxPool 2×2 stride 2×2",
            ],
        );
        assert_not_written(&out);
    }
    let spec = "/conv1/Conv,relu,maxpool2,/block/conv2/Conv,relu";
    let run = convmaps([&photo]).args(["--layers", spec, "--weights"]);
    run.arg(&model).cpu().out(&out).success();
    // The refusal says what to write instead.
    let run = convmaps([&photo]).args(["--layers", "/conv1/Conv,/block/conv2/Conv", "--weights"]);
    let refused = run.arg(&model).cpu().out(&out);
    refused.fails_with(2, &["write relu,maxpool2 between them"]);
    // `convmaps layers` says what each conv reads: the items to write.
    let listed = convmaps(["layers"]).arg(&model).success();
    listed.says(&[
        "`/conv1/Conv` → Relu → MaxPool 2×2 stride 2×2",
        "the model's input",
    ]);
}

#[test]
fn a_models_layer_names_with_separators_write_only_inside_out() {
    let (dir, photo, model) = common::photo_and_model(
        (16, 16),
        &[
            ("../../escape/conv.weight", vec![4, 3, 3, 3]),
            ("../../escape/conv.bias", vec![4]),
            ("a\\b/..\\c.weight", vec![2, 4, 1, 1]),
        ],
    );
    let out = dir.path().join("inside").join("out");
    let run = convmaps([&photo]).arg("--weights").arg(&model);
    let run = run.args(["--layers", "../../escape/conv,relu,a\\b/..\\c"]);
    run.out(&out).cpu().success();
    assert!(!dir.path().join("escape").exists() && !dir.path().join("inside/escape").exists());
    let mut folders: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    assert_eq!(folders, ["a_b_.._c", "escape_conv"]);
    let summary = common::read_summary(&out);
    assert_eq!(summary["layers"][0]["name"], "../../escape/conv");
}

#[test]
fn fold_bn_in_a_stack_folds_each_named_conv_that_has_a_batch_norm() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pytorch");
    let out = dir.path().join("out");
    convmaps([fixtures.join("folded_input.npy")])
        .arg("--weights")
        .arg(fixtures.join("state_dict.pt"))
        .args(["--layers", "conv1,relu,conv2", "--fold-bn"])
        .out(&out)
        .cpu()
        .success();
    let summary = common::read_summary(&out);
    assert_eq!(summary["layers"][0]["weights_file"]["batch_norm"], "bn1");
    assert!(summary["layers"][1]["weights_file"]["batch_norm"].is_null());
    // conv1 had no bias; folding gives it one per filter: 108 + 4.
    assert_eq!(summary["parameters"]["total"], 112 + 74);
}

#[test]
fn fold_bn_in_a_stack_never_drops_a_batch_norm_it_cannot_fold() {
    // bn1 has 3 scales for conv1's 4 filters: folding it must fail, loudly.
    let (dir, photo, model) = common::photo_and_model(
        (12, 12),
        &[
            ("conv1.weight", vec![4, 3, 3, 3]),
            ("bn1.weight", vec![3]),
            ("bn1.bias", vec![4]),
            ("bn1.running_mean", vec![4]),
            ("bn1.running_var", vec![4]),
            ("conv2.weight", vec![2, 4, 1, 1]),
        ],
    );
    let out = dir.path().join("out");
    let stack = || {
        let run = convmaps([&photo]).arg("--weights").arg(&model);
        run.args(["--layers", "conv1,relu,conv2"]).cpu().out(&out)
    };
    stack().arg("--fold-bn").fails_with(2, &["bn1", "item 1"]);
    assert_not_written(&out);
    // A named BatchNorm would go into every conv: refused with --layers.
    stack()
        .args(["--fold-bn", "bn1"])
        .fails_with(2, &["--fold-bn NAME"]);
}

/// The PNG files of every folder under `out`, with their bytes, sorted.
fn pngs_under(out: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in common::files_under(out) {
        let name = entry
            .strip_prefix(out)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".png") {
            files.push((name, std::fs::read(&entry).unwrap()));
        }
    }
    files.sort();
    files
}

#[test]
fn a_small_stacks_maps_are_kept_in_memory_and_drawn_as_when_spilled() {
    let dir = tempfile::tempdir().unwrap();
    let photo = common::photo(dir.path(), 41, 33);
    let mut runs = Vec::new();
    for mode in [None, Some("spill")] {
        let out = dir.path().join(format!("out-{mode:?}"));
        let mut run = convmaps([&photo])
            .args([
                "--layers",
                "6x3,relu,maxpool2,5x3/p1",
                "--colormap",
                "viridis",
            ])
            .arg("-q")
            .env("CONVMAPS_BAND_BYTES", "9000");
        if let Some(mode) = mode {
            run = run.env("CONVMAPS_MAPS_MODE", mode);
        }
        run.out(&out).cpu().success();
        let summary = common::read_summary(&out);
        assert!(summary["bands"].as_u64().unwrap() > 1, "several bands");
        let expected = if mode.is_some() { "spill" } else { "keep" };
        for layer in summary["layers"].as_array().unwrap() {
            assert_eq!(layer["maps_mode"]["mode"], expected, "{mode:?}");
        }
        let leftovers = common::leftovers(&out);
        assert!(leftovers.is_empty(), "{mode:?}: {leftovers:?}");
        runs.push(pngs_under(&out));
    }
    assert!(runs[0].len() >= 12, "{:?}", runs[0].len());
    assert!(
        runs[0] == runs[1],
        "kept and spilled stacks draw different pictures"
    );
}

#[test]
fn a_stack_of_a_state_dicts_convs_runs_saying_it_could_not_be_checked() {
    let tensors = [
        ("conv1.weight", vec![4, 3, 3, 3]),
        ("conv2.weight", vec![2, 4, 3, 3]),
    ];
    let (dir, photo, model) = common::photo_and_model((20, 16), &tensors);
    let out = dir.path().join("out");
    let ran = convmaps([&photo])
        .args(["--layers", "conv1,relu,conv2", "--weights"])
        .arg(&model)
        .cpu()
        .out(&out)
        .success();
    ran.says(&["note", "has no graph"]);
    let summary = common::read_summary(&out);
    let notes = summary["notes"].as_array().expect("notes");
    assert!(
        notes[0].as_str().unwrap().contains("has no graph"),
        "{notes:?}"
    );
    // A stack of the command line's own convs has nothing to note.
    let plain = dir.path().join("plain");
    convmaps([&photo])
        .args(["--layers", "4x3,relu,2x3", "-q"])
        .cpu()
        .out(&plain)
        .success();
    assert!(common::read_summary(&plain).get("notes").is_none());
}

#[test]
fn a_stack_starting_at_a_models_inner_conv_notes_that_it_reads_the_input_itself() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stack/stack.onnx");
    let dir = tempfile::tempdir().unwrap();
    // /block/conv2/Conv reads 8 channels; the model feeds it MaxPool(Relu(conv1)).
    let maps = dir.path().join("maps.npy");
    convmaps::npy::write_f32_nd(&maps, &[8, 9, 11], &[0.25; 8 * 9 * 11]).unwrap();
    let out = dir.path().join("inner");
    let run = convmaps([&maps]).args(["--layers", "/block/conv2/Conv,relu", "--weights"]);
    run.arg(&model).cpu().out(&out).success().says(&[
        "note",
        "`/block/conv2/Conv` reads `/conv1/Conv` → Relu → MaxPool 2×2 stride 2×2",
    ]);
    let notes = common::read_summary(&out)["notes"].clone();
    assert_eq!(notes.as_array().map(Vec::len), Some(1), "{notes}");
    // The model's first conv reads the input as it is: nothing to note.
    let photo = common::photo(dir.path(), 30, 24);
    let first = dir.path().join("first");
    let run = convmaps([&photo]).args(["--layers", "/conv1/Conv,relu", "--weights"]);
    run.arg(&model).cpu().out(&first).args(["-q"]).success();
    assert!(common::read_summary(&first).get("notes").is_none());
}
