//! The command line end to end on a small image: exit codes, every promised
//! file, and reproducing a run from its own weights.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_not_written, convmaps};
use convmaps::npy;
use safetensors::{Dtype, SafeTensors};

/// The 37×29 photo of these tests.
fn small_photo(dir: &Path) -> PathBuf {
    common::photo(dir, 37, 29)
}

#[test]
fn run_writes_every_promised_file_and_weights_reproduce_features() {
    let dir = tempfile::tempdir().unwrap();
    let photo = small_photo(dir.path());
    let out = dir.path().join("out");
    convmaps([&photo])
        .args(["--filters", "12", "--raw"])
        .out(&out)
        .auto()
        .success()
        .says(&["(3·5·5 + 1)·12 = 912", "900 weights + 12 biases"]);
    assert_maps_and_grid(&out);
    let features = assert_weights_and_features(&out);
    assert_summary(&out);

    // The run's own weights reproduce its features bit for bit.
    let again = dir.path().join("again");
    convmaps([&photo])
        .arg("--weights")
        .arg(out.join("weights.safetensors"))
        .arg("--raw")
        .out(&again)
        .auto()
        .success();
    let (_, reproduced) = npy::read_f32(&again.join("features.npy")).unwrap();
    assert!(
        reproduced == features,
        "features differ when reloading the run's weights"
    );
    // No temporary files are left behind.
    for entry in std::fs::read_dir(&out).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.ends_with(".part"), "leftover temporary file {name}");
    }
}

/// 12 maps of (37 − 4)×(29 − 4), named with two digits, and the grid that
/// holds them as its layout says.
fn assert_maps_and_grid(out: &Path) {
    for k in 0..12 {
        let path = out.join(format!("feature_{k:02}.png"));
        let map = image::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!((map.width(), map.height()), (33, 25), "{}", path.display());
        assert_eq!(map.color(), image::ColorType::L8);
    }
    assert!(!out.join("feature_12.png").exists());
    let grid = image::open(out.join("grid.png")).unwrap();
    let layout = convmaps::render::grid::GridLayout::new(12, 33, 25);
    assert_eq!((grid.width(), grid.height()), (layout.width, layout.height));
    let map = image::open(out.join("feature_05.png")).unwrap().to_luma8();
    let (x, y) = layout.origin(5);
    let tile =
        image::imageops::crop_imm(&grid.to_rgb8(), x, y, layout.cell_width, layout.cell_height)
            .to_image();
    // Away from the label in its corner, the tile is map 5, enlarged.
    let (zoom, last) = (layout.zoom, (33 - 1, 25 - 1));
    let corner = tile.get_pixel(last.0 * zoom, last.1 * zoom).0[0];
    assert_eq!(corner, map.get_pixel(last.0, last.1).0[0]);
}

/// weights.safetensors holds weight [12, 3, 5, 5] and bias [12] in f32, and
/// features.npy the (12, 25, 33) maps, which it returns.
fn assert_weights_and_features(out: &Path) -> Vec<f32> {
    let bytes = std::fs::read(out.join("weights.safetensors")).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let weight = tensors.tensor("weight").unwrap();
    assert_eq!(
        (weight.dtype(), weight.shape()),
        (Dtype::F32, &[12, 3, 5, 5][..])
    );
    let bias = tensors.tensor("bias").unwrap();
    assert_eq!((bias.dtype(), bias.shape()), (Dtype::F32, &[12][..]));
    // features.npy: <f4, (12, 25, 33), C order.
    let (shape, features) = npy::read_f32(&out.join("features.npy")).unwrap();
    assert_eq!(shape, vec![12, 25, 33]);
    features
}

/// summary.json has the promised fields, and timings that add up.
fn assert_summary(out: &Path) {
    let summary = common::read_summary(out);
    for (field, value) in [
        ("/input/width", 37),
        ("/input/height", 29),
        ("/input/channels", 3),
        ("/layer/filters", 12),
        ("/parameters/weights", 900),
        ("/parameters/biases", 12),
        ("/parameters/total", 912),
        ("/output/width", 33),
        ("/output/height", 25),
    ] {
        assert_eq!(summary.pointer(field).unwrap(), value, "{field}");
    }
    for key in ["decode", "upload", "compute", "readback", "encode", "total"] {
        assert!(summary["timings_ms"][key].is_number(), "timings_ms.{key}");
    }
    // The stages are disjoint parts of the run: they never add up to more
    // than the whole (how close they come depends on the machine's load).
    let timings = summary["timings_ms"].as_object().unwrap();
    let total = timings["total"].as_f64().unwrap();
    let stages: f64 = timings
        .iter()
        .filter(|(key, _)| key.as_str() != "total")
        .map(|(_, ms)| ms.as_f64().unwrap())
        .sum();
    assert!(
        stages <= total + 0.01,
        "stages add up to {stages} ms, more than the run's {total} ms: {timings:?}"
    );
    assert!(summary["gflops"].is_number());
    if summary["gpu_compute_ms"].is_number() {
        assert_eq!(
            summary["compute_timing"],
            "GPU timestamps around the compute pass"
        );
    }
    if common::require_gpu() {
        assert_eq!(summary["backend"], "gpu");
        assert!(summary["adapter"]["name"].is_string());
    }
}

#[test]
fn cpu_backend_runs_without_a_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    convmaps([&small_photo(dir.path())])
        .args(["-k", "2"])
        .out(&out)
        .cpu()
        .success();
    let summary = common::read_summary(&out);
    assert_eq!(summary["backend"], "cpu");
    assert!(summary["adapter"].is_null());
}

/// Runs the photo that `make` writes into a fresh folder, with `options`,
/// and asserts exit 2 naming `named`, with nothing written to `--out`.
fn assert_refused_photo(make: impl FnOnce(&Path) -> PathBuf, options: &[&str], named: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = convmaps([make(dir.path())]).args(options).out(&out);
    run.auto().fails_with(2, &[named]);
    assert_not_written(&out);
}

/// [`assert_refused_photo`] on the 37×29 photo.
fn assert_refused(options: &[&str], named: &str) {
    assert_refused_photo(small_photo, options, named);
}

/// [`assert_refused`] with `--weights` a safetensors file of `tensors`.
fn assert_refused_weights(tensors: &[(&str, Vec<usize>)], options: &[&str], named: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.safetensors");
    common::write_safetensors(&path, tensors);
    let weights = ["--weights", path.to_str().unwrap()];
    assert_refused(&[&weights[..], options].concat(), named);
}

/// Writes `bytes` as `dir/name`.
fn file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A 64×48 photo saved as `dir/cut.EXTENSION` and cut in half: the whole
/// file for a PNG; for a JPEG, what comes before its scan (a JPEG cut
/// inside its scan decodes, the blocks it misses left grey).
fn cut_photo(dir: &Path, extension: &str) -> PathBuf {
    let whole = common::save_photo(&dir.join(format!("whole.{extension}")), 64, 48);
    let bytes = std::fs::read(whole).unwrap();
    let scan = bytes.windows(2).position(|marker| marker == [0xFF, 0xDA]);
    let end = if extension == "jpg" {
        scan.expect("a JPEG has a start of scan")
    } else {
        bytes.len()
    };
    file(dir, &format!("cut.{extension}"), &bytes[..end / 2])
}

#[test]
fn missing_photo_is_exit_2_naming_the_file_and_writes_nothing() {
    assert_refused_photo(
        |dir| dir.join("no-such-photo.png"),
        &[],
        "no-such-photo.png",
    );
}

#[test]
fn text_file_named_png_is_exit_2() {
    let text = |dir: &Path| file(dir, "fake.png", b"this is not a picture\n");
    assert_refused_photo(text, &[], "fake.png");
}

#[test]
fn empty_and_truncated_photos_are_exit_2_naming_the_file() {
    assert_refused_photo(
        |dir| file(dir, "empty.png", b""),
        &[],
        "empty.png: is empty",
    );
    assert_refused_photo(|dir| cut_photo(dir, "png"), &[], "cut.png");
    assert_refused_photo(|dir| cut_photo(dir, "jpg"), &[], "cut.jpg");
}

#[test]
fn zero_filters_and_zero_kernel_are_exit_2() {
    assert_refused(&["--filters", "0"], "--filters");
    assert_refused(&["--kernel-size", "0"], "at least 1");
}

#[test]
fn photo_smaller_than_the_kernel_is_exit_2() {
    assert_refused(&["--kernel-size", "31"], "smaller than the 31×31 kernel");
}

/// Runs the 37×29 photo with the `--out` that `out` makes of a plain file,
/// and asserts exit 2 naming `named`.
fn assert_refused_out(out: impl FnOnce(PathBuf) -> PathBuf, named: &str) {
    let dir = tempfile::tempdir().unwrap();
    let plain = file(dir.path(), "plain-file", b"x");
    let run = convmaps([small_photo(dir.path())]).out(out(plain));
    run.auto().fails_with(2, &[named]);
}

#[test]
fn out_that_cannot_be_created_is_exit_2_naming_it() {
    assert_refused_out(|plain| plain.join("maps"), "plain-file");
}

#[test]
fn out_that_is_a_file_is_exit_2() {
    assert_refused_out(|plain| plain, "not a directory");
}

#[test]
fn weights_with_the_wrong_bias_length_are_exit_2_naming_the_mismatch() {
    let tensors = [("weight", vec![2, 3, 3, 3]), ("bias", vec![3])];
    assert_refused_weights(&tensors, &[], "bias has 3 values, expected 2");
}

#[test]
fn weights_for_another_channel_count_are_exit_2() {
    // A photo reads as 1, 3 or 4 channels; 5 needs a tensor input.
    assert_refused_weights(
        &[("weight", vec![2, 5, 3, 3]), ("bias", vec![2])],
        &[],
        "the conv reads 5 channels; a photo can be read as 1 (luma), 3 (RGB) or 4 (RGBA)",
    );
    // 2 channels per group × 3 groups = 6: not a photo's either.
    assert_refused_weights(
        &[("weight", vec![3, 2, 3, 3]), ("bias", vec![3])],
        &["--groups", "3"],
        "the conv reads 6 channels",
    );
}

#[test]
fn tiny_bands_give_the_same_files_as_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let photo = small_photo(dir.path());
    let run_with_budget = |name: &str, budget: Option<&str>| {
        let out = dir.path().join(name);
        let mut run = convmaps([&photo])
            .args(["-k", "6", "-f", "3", "--stride", "2", "--dilation", "2"])
            .args(["--padding", "3", "--raw"])
            .out(&out)
            .auto();
        if let Some(budget) = budget {
            run = run.env("CONVMAPS_BAND_BYTES", budget);
        }
        run.success();
        out
    };
    let whole = run_with_budget("whole", None);
    // An input band of one output row is 3·5·37·4 = 2220 bytes: bands of one row.
    let banded = run_with_budget("banded", Some("3000"));
    let summary = common::read_summary(&banded);
    assert!(
        summary["output"]["bands"].as_u64().unwrap() > 5,
        "{summary}"
    );
    for name in [
        "features.npy",
        "feature_00.png",
        "feature_05.png",
        "grid.png",
        "weights.safetensors",
    ] {
        let a = std::fs::read(whole.join(name)).unwrap();
        let b = std::fs::read(banded.join(name)).unwrap();
        assert!(a == b, "{name} differs between one pass and tiny bands");
    }
}

#[test]
fn bench_prints_a_row_per_shader_with_the_roofline_and_json() {
    let Some(bench) = convmaps(["bench", "--sizes", "40x30", "--filters", "4"])
        .args(["--repeats", "1", "--bandwidth", "100", "--json"])
        .needs_gpu()
    else {
        return;
    };
    let stdout = bench.success().says(&["× roofline"]).stdout();
    for shader in ["direct", "fast"] {
        assert!(
            stdout
                .lines()
                .any(|line| line.starts_with(shader) && line.contains("40×30")),
            "no {shader} row in\n{stdout}"
        );
    }
    let json = &stdout[stdout.find('[').expect("JSON rows")..];
    let rows: Vec<serde_json::Value> = serde_json::from_str(json).unwrap();
    assert_eq!(rows.len(), 2);
    // 4 maps of 36×26 f32, written at 100 GB/s.
    let bytes = 4 * 4 * 36 * 26;
    for row in &rows {
        assert_eq!(row["bytes_written"], bytes);
        let roofline = row["roofline_ms"].as_f64().unwrap();
        assert!(
            (roofline - bytes as f64 / 100e9 * 1e3).abs() < 1e-12,
            "{row}"
        );
        assert!(row["ms"].as_f64().unwrap() > 0.0, "{row}");
    }
}

#[test]
fn bench_times_a_whole_network_on_each_engine_warm() {
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/net/textdet_dy/model.onnx");
    let Some(bench) = convmaps(["bench", "--model"])
        .arg(&model)
        .args([
            "--sizes",
            "48x32",
            "--shaders",
            "fast",
            "--cpu",
            "--repeats",
            "2",
            "--json",
        ])
        .needs_gpu()
    else {
        return;
    };
    let stdout = bench
        .success()
        .says(&["GPU ms (med)", "wall ms med"])
        .stdout();
    let json = &stdout[stdout.find('[').expect("JSON rows")..];
    let rows: Vec<serde_json::Value> = serde_json::from_str(json).unwrap();
    let shaders: Vec<&str> = rows.iter().map(|r| r["shader"].as_str().unwrap()).collect();
    assert_eq!(shaders, ["fast", "cpu"]);
    for row in &rows {
        // A model of dynamic size runs at the size asked for.
        assert_eq!(row["size"], "48×32", "{row}");
        assert_eq!(row["runs"], 2, "{row}");
        assert!(row["wall_ms"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["memory_bytes"].as_u64().unwrap() > 0, "{row}");
    }
    // The CPU has no GPU clock; the GPU's median is at least its fastest.
    assert!(rows[1]["gpu_ms"].is_null());
    if let (Some(median), Some(min)) = (rows[0]["gpu_ms"].as_f64(), rows[0]["gpu_min_ms"].as_f64())
    {
        assert!(median >= min, "{}", rows[0]);
    }
}

#[test]
fn bench_refuses_a_bandwidth_that_is_not_positive() {
    convmaps(["bench", "--bandwidth", "0"]).fails_with(2, &["bandwidth in GB/s above zero"]);
}

#[test]
fn summary_gives_each_maps_min_max_and_mean_of_the_raw_maps() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // 37×29 with 3×3 filters: maps of 35×27, 945 values (not a multiple of 8).
    convmaps([&small_photo(dir.path())])
        .args(["--filters", "5", "--kernel-size", "3", "--raw"])
        .out(&out)
        .auto()
        .success();
    let features = npy::read_f32_3d(&out.join("features.npy")).unwrap();
    let summary = common::read_summary(&out);
    let maps = summary["maps"].as_array().unwrap();
    assert_eq!(maps.len(), 5);
    for (k, map) in maps.iter().enumerate() {
        let values = features.plane(k as u32);
        let min = values.iter().copied().fold(f32::INFINITY, f32::min);
        let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64;
        assert_eq!(map["min"].as_f64().unwrap() as f32, min, "map {k}: {map}");
        assert_eq!(map["max"].as_f64().unwrap() as f32, max, "map {k}: {map}");
        let reported = map["mean"].as_f64().unwrap();
        assert!(
            (reported - mean).abs() <= 1e-6 * mean.abs().max(1.0),
            "map {k}: mean {reported} against {mean}"
        );
    }
}
