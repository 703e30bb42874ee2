//! The command line end to end on a small image: exit codes, every promised
//! file, and reproducing a run from its own weights.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use convmaps::npy;
use safetensors::{Dtype, SafeTensors};

fn convmaps(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_convmaps"));
    command.args(args);
    // On CI the GPU must be used; elsewhere auto falls back to the CPU.
    if common::require_gpu() {
        command.args(["--backend", "gpu"]);
    }
    command.output().expect("run convmaps")
}

/// A 37×29 RGB PNG with a gradient and a bright square.
fn small_photo(dir: &Path) -> PathBuf {
    let image = image::RgbImage::from_fn(37, 29, |x, y| {
        let inside = (10..20).contains(&x) && (8..16).contains(&y);
        image::Rgb([(x * 6) as u8, (y * 8) as u8, if inside { 255 } else { 40 }])
    });
    let path = dir.join("small.png");
    image.save(&path).unwrap();
    path
}

#[test]
fn run_writes_every_promised_file_and_weights_reproduce_features() {
    let dir = tempfile::tempdir().unwrap();
    let photo = small_photo(dir.path());
    let out = dir.path().join("out");
    let output = convmaps(&[
        photo.to_str().unwrap(),
        "--filters",
        "12",
        "--raw",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", common::text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("(3·5·5 + 1)·12 = 912"),
        "{}",
        common::text(&output)
    );
    assert!(
        stdout.contains("900 weights + 12 biases"),
        "{}",
        common::text(&output)
    );

    // 12 maps of (37 − 4)×(29 − 4), named with two digits.
    for k in 0..12 {
        let path = out.join(format!("feature_{k:02}.png"));
        let map = image::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!((map.width(), map.height()), (33, 25), "{}", path.display());
        assert_eq!(map.color(), image::ColorType::L8);
    }
    assert!(!out.join("feature_12.png").exists());
    // The grid holds the 12 maps of 33×25 as its layout says.
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

    // weights.safetensors: weight [12, 3, 5, 5] and bias [12], f32.
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

    // summary.json has the promised fields.
    let summary = common::read_summary(&out);
    assert_eq!(summary["input"]["width"], 37);
    assert_eq!(summary["input"]["height"], 29);
    assert_eq!(summary["input"]["channels"], 3);
    assert_eq!(summary["layer"]["filters"], 12);
    assert_eq!(summary["parameters"]["weights"], 900);
    assert_eq!(summary["parameters"]["biases"], 12);
    assert_eq!(summary["parameters"]["total"], 912);
    assert_eq!(summary["output"]["width"], 33);
    assert_eq!(summary["output"]["height"], 25);
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

    // The run's own weights reproduce its features bit for bit.
    let again = dir.path().join("again");
    let output = convmaps(&[
        photo.to_str().unwrap(),
        "--weights",
        out.join("weights.safetensors").to_str().unwrap(),
        "--raw",
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", common::text(&output));
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

#[test]
fn cpu_backend_runs_without_a_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let photo = small_photo(dir.path());
    let out = dir.path().join("out");
    let output = Command::new(env!("CARGO_BIN_EXE_convmaps"))
        .args([
            photo.to_str().unwrap(),
            "-k",
            "2",
            "--backend",
            "cpu",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", common::text(&output));
    let summary = common::read_summary(&out);
    assert_eq!(summary["backend"], "cpu");
    assert!(summary["adapter"].is_null());
}

fn assert_bad_input(args: &[&str], expected_in_message: &str, should_not_exist: Option<&Path>) {
    let output = convmaps(args);
    assert_eq!(output.status.code(), Some(2), "{}", common::text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(expected_in_message),
        "expected {expected_in_message:?} in\n{}",
        common::text(&output)
    );
    assert!(!stderr.contains("panicked"), "{}", common::text(&output));
    if let Some(path) = should_not_exist {
        assert!(
            !path.exists(),
            "{} was created by a failed run",
            path.display()
        );
    }
}

#[test]
fn missing_photo_is_exit_2_naming_the_file_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    assert_bad_input(
        &["no-such-photo.png", "--out", out.to_str().unwrap()],
        "no-such-photo.png",
        Some(&out),
    );
}

#[test]
fn text_file_named_png_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("fake.png");
    std::fs::write(&fake, "this is not a picture\n").unwrap();
    let out = dir.path().join("out");
    assert_bad_input(
        &[fake.to_str().unwrap(), "--out", out.to_str().unwrap()],
        "fake.png",
        Some(&out),
    );
}

#[test]
fn empty_and_truncated_photos_are_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    assert_bad_input(
        &[empty.to_str().unwrap(), "--out", out.to_str().unwrap()],
        "empty.png: is empty",
        Some(&out),
    );

    let photo = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 3, y as u8 * 5, 77]));
    for extension in ["png", "jpg"] {
        let whole = dir.path().join(format!("whole.{extension}"));
        photo.save(&whole).unwrap();
        let bytes = std::fs::read(&whole).unwrap();
        let cut = dir.path().join(format!("cut.{extension}"));
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        assert_bad_input(
            &[cut.to_str().unwrap(), "--out", out.to_str().unwrap()],
            &format!("cut.{extension}"),
            Some(&out),
        );
    }
}

#[test]
fn zero_filters_and_zero_kernel_are_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let photo = small_photo(dir.path());
    assert_bad_input(
        &[photo.to_str().unwrap(), "--filters", "0"],
        "--filters",
        None,
    );
    assert_bad_input(
        &[photo.to_str().unwrap(), "--kernel-size", "0"],
        "at least 1",
        None,
    );
}

#[test]
fn photo_smaller_than_the_kernel_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let photo = small_photo(dir.path());
    let out = dir.path().join("out");
    assert_bad_input(
        &[
            photo.to_str().unwrap(),
            "--kernel-size",
            "31",
            "--out",
            out.to_str().unwrap(),
        ],
        "smaller than the 31×31 kernel",
        Some(&out),
    );
}

#[test]
fn out_that_cannot_be_created_is_exit_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let photo = small_photo(dir.path());
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let inside = file.join("maps");
    assert_bad_input(
        &[photo.to_str().unwrap(), "--out", inside.to_str().unwrap()],
        "plain-file",
        None,
    );
}

#[test]
fn out_that_is_a_file_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let photo = small_photo(dir.path());
    let file = dir.path().join("taken");
    std::fs::write(&file, "x").unwrap();
    assert_bad_input(
        &[photo.to_str().unwrap(), "--out", file.to_str().unwrap()],
        "not a directory",
        None,
    );
}

#[test]
fn weights_with_the_wrong_bias_length_are_exit_2_naming_the_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let photo = small_photo(dir.path());
    let path = dir.path().join("bad.safetensors");
    common::write_safetensors(&path, &[("weight", vec![2, 3, 3, 3]), ("bias", vec![3])]);
    assert_bad_input(
        &[photo.to_str().unwrap(), "--weights", path.to_str().unwrap()],
        "bias has 3 values, expected 2",
        None,
    );
}

#[test]
fn weights_for_another_channel_count_are_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let photo = small_photo(dir.path());
    // A photo reads as 1, 3 or 4 channels; 5 needs a tensor input.
    let path = dir.path().join("five.safetensors");
    common::write_safetensors(&path, &[("weight", vec![2, 5, 3, 3]), ("bias", vec![2])]);
    assert_bad_input(
        &[photo.to_str().unwrap(), "--weights", path.to_str().unwrap()],
        "the conv reads 5 channels; a photo can be read as 1 (luma), 3 (RGB) or 4 (RGBA)",
        None,
    );
    // 2 channels per group × 3 groups = 6: not a photo's either.
    let path = dir.path().join("grouped.safetensors");
    common::write_safetensors(&path, &[("weight", vec![3, 2, 3, 3]), ("bias", vec![3])]);
    assert_bad_input(
        &[
            photo.to_str().unwrap(),
            "--weights",
            path.to_str().unwrap(),
            "--groups",
            "3",
        ],
        "the conv reads 6 channels",
        None,
    );
}

#[test]
fn tiny_bands_give_the_same_files_as_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let photo = small_photo(dir.path());
    let run_with_budget = |name: &str, budget: Option<&str>| {
        let out = dir.path().join(name);
        let mut command = Command::new(env!("CARGO_BIN_EXE_convmaps"));
        command.args([
            photo.to_str().unwrap(),
            "-k",
            "6",
            "-f",
            "3",
            "--stride",
            "2",
            "--dilation",
            "2",
        ]);
        command.args(["--padding", "3", "--raw", "--out", out.to_str().unwrap()]);
        if common::require_gpu() {
            command.args(["--backend", "gpu"]);
        }
        if let Some(budget) = budget {
            command.env("CONVMAPS_BAND_BYTES", budget);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{}", common::text(&output));
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
    if common::gpu().is_none() {
        return;
    }
    let output = Command::new(env!("CARGO_BIN_EXE_convmaps"))
        .args(["bench", "--sizes", "40x30", "--filters", "4"])
        .args(["--repeats", "1", "--bandwidth", "100", "--json"])
        .output()
        .expect("run convmaps bench");
    assert!(output.status.success(), "{}", common::text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("× roofline"), "{stdout}");
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
fn bench_refuses_a_bandwidth_that_is_not_positive() {
    let output = Command::new(env!("CARGO_BIN_EXE_convmaps"))
        .args(["bench", "--bandwidth", "0"])
        .output()
        .expect("run convmaps bench");
    assert_eq!(output.status.code(), Some(2), "{}", common::text(&output));
    assert!(
        common::text(&output).contains("bandwidth in GB/s above zero"),
        "{}",
        common::text(&output)
    );
}

#[test]
fn summary_gives_each_maps_min_max_and_mean_of_the_raw_maps() {
    let dir = tempfile::tempdir().unwrap();
    let photo = small_photo(dir.path());
    let out = dir.path().join("out");
    // 37×29 with 3×3 filters: maps of 35×27, 945 values (not a multiple of 8).
    let output = convmaps(&[
        photo.to_str().unwrap(),
        "--filters",
        "5",
        "--kernel-size",
        "3",
        "--raw",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", common::text(&output));
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
