//! `convmaps PHOTO --model FILE.onnx`: a whole network run from the command
//! line. The maps it writes are the model's own tensors (ONNX Runtime's,
//! within 1e-4), its top 5 is ONNX Runtime's ranking, and a model that
//! cannot run is refused with exit 2 naming the node.

mod common;

use std::path::{Path, PathBuf};

use ::convmaps::npy;
use common::{Run, convmaps};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/net")
        .join(name)
}

/// Each golden value of a fixture: (node name, value name, file, top 5).
fn goldens(dir: &Path) -> Vec<(String, PathBuf, Option<Vec<u64>>)> {
    let text = std::fs::read_to_string(dir.join("golden.json")).expect("golden.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    json["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| {
            let top = v["top"]
                .as_array()
                .map(|t| t.iter().map(|i| i.as_u64().unwrap()).collect());
            (
                v["node"].as_str().unwrap().to_string(),
                dir.join(v["file"].as_str().unwrap()),
                top,
            )
        })
        .collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
    let worst = got
        .iter()
        .zip(want)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale;
    assert!(worst <= 1e-4, "{what}: {worst:e} off ONNX Runtime's");
}

/// Runs the fixture's own input tensor through the CLI with `--raw` and
/// checks every Conv node's `features.npy` and the top 5 against ONNX
/// Runtime's.
fn check_fixture_through_the_cli(name: &str, backend: impl Fn(Run) -> Option<Run>) {
    let dir = fixture(name);
    let out = tempfile::tempdir().expect("a temporary folder");
    let run = convmaps([dir.join("input.npy")])
        .arg("--model")
        .arg(dir.join("model.onnx"))
        .arg("--raw")
        .out(out.path());
    let Some(run) = backend(run) else {
        return;
    };
    run.success();
    let summary = common::read_summary(out.path());
    let nodes = summary["nodes"].as_array().expect("nodes");
    for (node, file, top) in goldens(&dir) {
        let (_, want) = npy::read_f32(&file).expect("golden");
        if let Some(top) = top {
            let got: Vec<u64> = summary["outputs"][0]["top"]
                .as_array()
                .expect("top")
                .iter()
                .map(|c| c["index"].as_u64().unwrap())
                .collect();
            assert_eq!(got, top, "{name}: top 5");
            continue;
        }
        let entry = nodes
            .iter()
            .find(|n| n["name"] == node.as_str())
            .expect("the node is listed");
        let folder = entry["folder"].as_str().expect("a Conv node has a folder");
        let (_, got) =
            npy::read_f32(&out.path().join(folder).join("features.npy")).expect("features.npy");
        assert_close(&format!("{name}: {node}"), &got, &want);
    }
}

#[test]
fn every_conv_of_a_default_export_is_onnx_runtimes_tensor_on_the_gpu() {
    check_fixture_through_the_cli("resnet_dy", |run| run.gpu());
    check_fixture_through_the_cli("mobilenetv3_dy", |run| run.gpu());
}

#[test]
fn every_conv_of_a_torchscript_export_is_onnx_runtimes_tensor_on_the_cpu() {
    check_fixture_through_the_cli("mobilenetv2_ts", |run| Some(run.cpu()));
}

#[test]
fn a_photo_is_fitted_to_the_model_and_the_run_is_reported() {
    let out = tempfile::tempdir().expect("a temporary folder");
    let photo = common::photo(out.path(), 64, 48);
    let Some(run) = convmaps([&photo])
        .arg("--model")
        .arg(fixture("resnet_ts/model.onnx"))
        .args(["--input-norm", "imagenet"])
        .out(out.path().join("run"))
        .gpu()
    else {
        return;
    };
    run.success().says(&["top 5", "class ", "cam.png"]);
    let summary = common::read_summary(&out.path().join("run"));
    assert_eq!(summary["input"]["resize"]["mode"], "fit");
    assert_eq!(
        summary["input"]["resize"]["to"],
        serde_json::json!([40, 40])
    );
    assert_eq!(
        summary["input"]["resize"]["resized"],
        serde_json::json!([53, 40])
    );
    let nodes = summary["nodes"].as_array().expect("nodes");
    let conv = nodes.iter().find(|n| n["op"] == "Conv").expect("a Conv");
    for key in [
        "name",
        "op",
        "inputs",
        "outputs",
        "shape",
        "parameters",
        "flops",
        "folder",
    ] {
        assert!(!conv[key].is_null(), "nodes[].{key}");
    }
    assert_eq!(conv["parameters"], 3 * 7 * 7 * 8 + 8);
    let top = summary["outputs"][0]["top"].as_array().expect("top");
    assert_eq!(top.len(), 5);
    let total: f64 = top.iter().map(|c| c["probability"].as_f64().unwrap()).sum();
    assert!(total > 0.0 && total <= 1.0 + 1e-6);
    let folders = nodes.iter().filter(|n| n["folder"].is_string()).count();
    assert_eq!(folders, 12, "one folder per Conv node");
    for file in ["cam.png", "index.html", "input.png", "summary.json"] {
        assert!(out.path().join("run").join(file).exists(), "{file}");
    }
    let page = std::fs::read_to_string(out.path().join("run/index.html")).expect("the page");
    assert!(page.contains("data-cam=\""), "the page shows the CAM");
    assert!(summary["gpu_compute_ms"].is_number() || summary["gpu_compute_ms"].is_null());
}

#[test]
fn layers_with_a_model_names_its_own_nodes() {
    let dir = fixture("resnet_dy");
    let goldens = goldens(&dir);
    let picked: Vec<&(String, PathBuf, Option<Vec<u64>>)> = goldens
        .iter()
        .filter(|g| g.2.is_none())
        .skip(3)
        .take(2)
        .collect();
    let names: Vec<&str> = picked.iter().map(|g| g.0.as_str()).collect();
    let out = tempfile::tempdir().expect("a temporary folder");
    convmaps([dir.join("input.npy")])
        .arg("--model")
        .arg(dir.join("model.onnx"))
        .args(["--layers", &names.join(","), "--raw"])
        .out(out.path())
        .cpu()
        .success();
    let summary = common::read_summary(out.path());
    let with_folders: Vec<&serde_json::Value> = summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["folder"].is_string())
        .collect();
    assert_eq!(with_folders.len(), 2);
    for (golden, node) in picked.iter().zip(with_folders) {
        assert_eq!(node["name"], golden.0.as_str());
        let (_, want) = npy::read_f32(&golden.1).unwrap();
        let folder = node["folder"].as_str().unwrap();
        let (_, got) = npy::read_f32(&out.path().join(folder).join("features.npy")).unwrap();
        assert_close(&golden.0, &got, &want);
    }
}

#[test]
fn malformed_graphs_are_refused_naming_the_node() {
    let out = tempfile::tempdir().expect("a temporary folder");
    let photo = common::photo(out.path(), 8, 8);
    let cases: [(&str, &[&str]); 7] = [
        ("bad_op", &["odd_one", "Celu", "does not run", "Conv"]),
        (
            "bad_range",
            &[
                "count_up",
                "(Range)",
                "reads values computed from the photo",
            ],
        ),
        ("bad_cycle", &["cycle", "first"]),
        ("bad_missing", &["adds", "nowhere", "no node writes"]),
        ("bad_shapes", &["clash", "do not broadcast"]),
        ("bad_short", &["\"w\"", "raw data"]),
        ("bad_outside", &["\"w\"", ".."]),
    ];
    for (name, needles) in cases {
        let model = fixture(&format!("bad/{name}.onnx"));
        let target = out.path().join(name);
        convmaps([&photo])
            .arg("--model")
            .arg(&model)
            .out(&target)
            .cpu()
            .fails_with(2, needles);
        common::assert_not_written(&target);
    }
}

#[test]
fn an_unknown_node_in_maps_is_refused() {
    let out = tempfile::tempdir().expect("a temporary folder");
    let photo = common::photo(out.path(), 40, 40);
    convmaps([&photo])
        .arg("--model")
        .arg(fixture("resnet_ts/model.onnx"))
        .args(["--maps", "no_such_node"])
        .out(out.path().join("run"))
        .cpu()
        .fails_with(2, &["no_such_node", "has no node"]);
    common::assert_not_written(&out.path().join("run"));
}

#[test]
fn verify_reports_every_node_against_its_twin() {
    let dir = fixture("regnet_dy");
    let out = tempfile::tempdir().expect("a temporary folder");
    let Some(run) = convmaps([dir.join("input.npy")])
        .arg("--model")
        .arg(dir.join("model.onnx"))
        .arg("--verify")
        .out(out.path())
        .gpu()
    else {
        return;
    };
    run.success().says(&["verify"]);
    let summary = common::read_summary(out.path());
    let worst = summary["verify"].as_f64().expect("verify");
    assert!(worst < 1e-4, "{worst}");
    assert!(
        summary["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["verify"].is_number())
    );
}

#[test]
fn a_probability_map_output_is_drawn_over_the_photo() {
    let out = tempfile::tempdir().expect("a temporary folder");
    let photo = common::photo(out.path(), 80, 40);
    let Some(run) = convmaps([&photo])
        .arg("--model")
        .arg(fixture("textdet_dy/model.onnx"))
        .args(["--maps", "none", "--raw"])
        .out(out.path().join("run"))
        .gpu()
    else {
        return;
    };
    run.success().says(&["output", "[1, 1, 40, 80]"]);
    let summary = common::read_summary(&out.path().join("run"));
    assert_eq!(
        summary["input"]["resize"]["mode"], "none",
        "a dynamic model takes the photo as it is"
    );
    let output = &summary["outputs"][0];
    assert_eq!(output["shape"], serde_json::json!([1, 1, 40, 80]));
    let folders: Vec<&str> = summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["folder"].as_str())
        .collect();
    assert_eq!(folders.len(), 1, "only the output's maps: {folders:?}");
    let folder = out.path().join("run").join(folders[0]);
    for file in ["overlay.png", "grid.png", "features.npy"] {
        assert!(folder.join(file).exists(), "{file}");
    }
    let npy = out
        .path()
        .join("run")
        .join(output["npy"].as_str().expect("npy"));
    let (shape, values) = npy::read_f32(&npy).expect("the output's values");
    assert_eq!(shape, [1, 1, 40, 80]);
    assert!(
        values.iter().all(|v| (0.0..=1.0).contains(v)),
        "a sigmoid's probabilities"
    );
}

#[test]
fn a_dynamic_model_runs_at_the_photos_size_or_resize() {
    let dir = fixture("yolo_ts");
    let out = tempfile::tempdir().expect("a temporary folder");
    let photo = common::photo(out.path(), 72, 40);
    convmaps([&photo])
        .arg("--model")
        .arg(dir.join("model.onnx"))
        .args(["--maps", "none"])
        .out(out.path().join("as_is"))
        .cpu()
        .success();
    let summary = common::read_summary(&out.path().join("as_is"));
    assert_eq!(
        summary["model"]["input_shape"],
        serde_json::json!([1, 3, 40, 72])
    );
    convmaps([&photo])
        .arg("--model")
        .arg(dir.join("model.onnx"))
        .args(["--maps", "none", "--resize", "64x32"])
        .out(out.path().join("resized"))
        .cpu()
        .success();
    let summary = common::read_summary(&out.path().join("resized"));
    assert_eq!(
        summary["model"]["input_shape"],
        serde_json::json!([1, 3, 32, 64])
    );
    assert_eq!(summary["input"]["resize"]["mode"], "size");
}

#[test]
fn a_checkpoint_given_as_a_model_is_refused_with_what_to_do() {
    let out = tempfile::tempdir().expect("a temporary folder");
    let photo = common::photo(out.path(), 16, 16);
    let checkpoint =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pytorch/state_dict.pt");
    convmaps([&photo])
        .arg("--model")
        .arg(&checkpoint)
        .out(out.path().join("run"))
        .cpu()
        .fails_with(
            2,
            &["state_dict.pt", "ONNX", "torch.onnx.export", "--weights"],
        );
    common::assert_not_written(&out.path().join("run"));
}

#[test]
fn layers_says_whether_model_runs_a_file() {
    convmaps(["layers"])
        .arg(fixture("resnet_dy/model.onnx"))
        .success()
        .says(&["--model runs it at 40×40", "Conv ×12", "Add ×4"]);
    convmaps(["layers"])
        .arg(fixture("bad/bad_op.onnx"))
        .success()
        .says(&["--model would refuse it", "odd_one", "Celu"]);
    let ran = convmaps(["layers", "--json"])
        .arg(fixture("yolo_ts/model.onnx"))
        .success();
    let json: serde_json::Value = serde_json::from_str(&ran.stdout()).expect("JSON");
    assert_eq!(
        json["network"]["size"],
        serde_json::json!([224, 224]),
        "a dynamic model at 224×224"
    );
    assert_eq!(json["network"]["ops"]["Resize"], 1);
}

#[test]
fn a_run_that_needs_more_gpu_memory_than_it_may_use_is_refused_before_it_runs() {
    let out = tempfile::tempdir().expect("a temporary folder");
    // A model of dynamic size runs at the photo's: some MB at 256×192.
    let photo = common::photo(out.path(), 256, 192);
    let model = fixture("textdet_dy/model.onnx");
    let Some(run) = convmaps([&photo])
        .arg("--model")
        .arg(&model)
        .args(["--maps", "none"])
        .out(out.path().join("fits"))
        .gpu()
    else {
        return;
    };
    run.success();
    let summary = common::read_summary(&out.path().join("fits"));
    let memory = &summary["model"]["memory"];
    let part = |key: &str| memory[key].as_u64().expect(key);
    let total = part("weights") + part("values") + part("scratch") + part("readback");
    assert_eq!(summary["model"]["memory_bytes"].as_u64(), Some(total));
    // The conv pipeline packs the convs' weights itself: they are not
    // uploaded twice, so less than the model's parameters stays as weights.
    let parameters = summary["model"]["parameters"].as_u64().expect("parameters");
    assert!(part("weights") < 4 * parameters, "{memory}");
    assert!(part("scratch") > 0, "{memory}");
    assert!(total > 2_000_000, "{memory}");

    // Half of that: refused before it runs, with the numbers and what to do.
    let budget = (total / 2_000_000).to_string();
    convmaps([&photo])
        .arg("--model")
        .arg(&model)
        .args(["--maps", "none", "--gpu-memory", &budget])
        .out(out.path().join("refused"))
        .gpu()
        .expect("the GPU of the first run")
        .fails_with(1, &["needs", "MB of GPU memory at once", "--resize"]);
    common::assert_not_written(&out.path().join("refused"));
}
