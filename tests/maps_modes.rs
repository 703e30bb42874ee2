//! The ways a run's maps become pictures (one pass with a fixed range; the
//! maps kept in the engine's memory; statistics then a second compute pass;
//! f32 maps through the disk), each forced with `CONVMAPS_MAPS_MODE`, write
//! the same files byte for byte, across normalisations and colour maps, in
//! several bands, on the CPU and on the GPU. (On the GPU, spill colours the
//! maps on the CPU and the other modes in a shader: the same bytes where
//! the GPU rounds as IEEE says, as lavapipe does; `gpu_pictures.rs` holds
//! any GPU to the rounding rule pixel by pixel.)

mod common;

use std::path::Path;
use std::process::Command;

fn run(
    photo: &Path,
    out: &Path,
    (backend, on, mode): (&str, &str, &str),
    extra: &[&str],
) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_convmaps"))
        .arg(photo)
        .args(["-f", "3", "--backend", backend, "-q", "--out"])
        .arg(out)
        .args(extra)
        .args(if extra.contains(&"-k") {
            &[][..]
        } else {
            &["-k", "5"][..]
        })
        .env("CONVMAPS_MAPS_MODE", mode)
        .env("CONVMAPS_PICTURES", on)
        .env("CONVMAPS_BAND_BYTES", "6000")
        .output()
        .expect("run convmaps");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{mode} {extra:?}: {}",
        common::text(&output)
    );
    common::read_summary(out)
}

/// The first mode's name, files and map statistics, which the others must equal.
type FirstRun = (String, Vec<(String, Vec<u8>)>, serde_json::Value);

/// The files whose bytes must not depend on the mode.
fn picture_files(out: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(out)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            name.ends_with(".png") || name.ends_with(".safetensors") || name.ends_with(".npy")
        })
        .map(|name| {
            let bytes = std::fs::read(out.join(&name)).unwrap();
            (name, bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_maps_mode_writes_the_same_files_on_the_cpu() {
    every_maps_mode_writes_the_same_files("cpu", "host");
}

#[test]
fn every_maps_mode_writes_the_same_files_on_the_gpu() {
    if common::gpu().is_some() {
        every_maps_mode_writes_the_same_files("gpu", "gpu");
        every_maps_mode_writes_the_same_files("gpu", "host");
    }
}

/// Runs every mode on `backend` with the pictures made `on` (the GPU
/// engine's `CONVMAPS_PICTURES`).
fn every_maps_mode_writes_the_same_files(backend: &str, on: &str) {
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("photo.png");
    image::RgbImage::from_fn(37, 29, |x, y| {
        image::Rgb([
            (x * 7 % 256) as u8,
            (y * 11 % 256) as u8,
            ((x * y) % 256) as u8,
        ])
    })
    .save(&photo)
    .unwrap();
    let views: [&[&str]; 6] = [
        &["--normalize", "per-map"],
        // One output row of 48 maps exceeds the band: chunks of filters
        // (split on group boundaries).
        &[
            "-k",
            "48",
            "--groups",
            "3",
            "--normalize",
            "global",
            "--colormap",
            "turbo",
        ],
        &["--normalize", "global", "--colormap", "viridis"],
        &["--normalize", "per-map", "--colormap", "rdbu"],
        &["--normalize", "-0.5,0.5", "--colormap", "magma"],
        &["--normalize", "0,2", "--raw"],
    ];
    for view in views {
        let fixed = !view.contains(&"per-map") && !view.contains(&"global");
        let mut modes = vec!["spill", "keep", "recompute"];
        if fixed {
            modes.push("one-pass");
        }
        let mut first: Option<FirstRun> = None;
        for mode in modes {
            let out = dir.path().join(format!("out-{mode}"));
            let summary = run(&photo, &out, (backend, on, mode), view);
            assert_eq!(summary["maps_mode"]["mode"], mode, "{view:?}");
            assert_eq!(summary["maps_mode"]["statistics"], on, "{backend} {view:?}");
            let pixels = if mode == "spill" { "host" } else { on };
            assert_eq!(summary["maps_mode"]["pixels"], pixels, "{backend} {view:?}");
            assert!(
                summary["output"]["bands"].as_u64().unwrap() > 1,
                "several bands"
            );
            if view.contains(&"48") {
                assert!(summary["output"]["filter_chunks"].as_u64().unwrap() > 1);
            }
            let files = picture_files(&out);
            assert!(files.len() >= 6, "{mode} {view:?}: {files:?}");
            match &first {
                None => first = Some((mode.to_string(), files, summary["maps"].clone())),
                Some((first_mode, first_files, maps)) => {
                    for ((name, bytes), (first_name, first_bytes)) in files.iter().zip(first_files)
                    {
                        assert_eq!(name, first_name, "{view:?}");
                        assert!(
                            bytes == first_bytes,
                            "{backend} ({on}), {view:?}: {name} differs between {mode} and {first_mode}"
                        );
                    }
                    assert_eq!(files.len(), first_files.len(), "{view:?}");
                    assert_eq!(&summary["maps"], maps, "{view:?}: the statistics");
                }
            }
            std::fs::remove_dir_all(&out).unwrap();
        }
    }
}

#[test]
fn the_mode_is_chosen_and_said_in_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("photo.png");
    image::RgbImage::from_fn(20, 16, |x, y| image::Rgb([x as u8, y as u8, 3]))
        .save(&photo)
        .unwrap();
    let out = dir.path().join("out");
    let output = Command::new(env!("CARGO_BIN_EXE_convmaps"))
        .arg(&photo)
        .args([
            "-k",
            "2",
            "--backend",
            "cpu",
            "-q",
            "--normalize",
            "-1,1",
            "--out",
        ])
        .arg(&out)
        .env_remove("CONVMAPS_MAPS_MODE")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", common::text(&output));
    let summary = common::read_summary(&out);
    assert_eq!(summary["maps_mode"]["mode"], "one-pass");
    assert!(
        summary["maps_mode"]["why"]
            .as_str()
            .unwrap()
            .contains("fixed")
    );
    // No f32 maps were left behind or spilled next to the pictures.
    assert!(!out.join("features.npy").exists());
}

#[test]
fn maps_that_fit_the_budget_are_kept_and_never_touch_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("photo.png");
    image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8, y as u8, 9]))
        .save(&photo)
        .unwrap();
    for (budget, mode) in [("100000000", "keep"), ("1000", "spill")] {
        let out = dir.path().join(format!("out-{mode}"));
        let output = Command::new(env!("CARGO_BIN_EXE_convmaps"))
            .arg(&photo)
            .args(["-k", "3", "--backend", "cpu", "--out"])
            .arg(&out)
            .env_remove("CONVMAPS_MAPS_MODE")
            .env("CONVMAPS_KEEP_BYTES", budget)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", common::text(&output));
        // The terminal says it too.
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains(&format!("pictures    {mode}: ")),
            "{stdout}"
        );
        let summary = common::read_summary(&out);
        assert_eq!(summary["maps_mode"]["mode"], mode, "budget {budget}");
        let leftovers: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains("features") || name.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{mode}: {leftovers:?}");
    }
}

#[test]
fn a_keep_budget_that_is_not_a_number_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("photo.png");
    image::RgbImage::from_fn(12, 10, |x, y| image::Rgb([x as u8, y as u8, 1]))
        .save(&photo)
        .unwrap();
    let out = dir.path().join("out");
    let output = Command::new(env!("CARGO_BIN_EXE_convmaps"))
        .arg(&photo)
        .args(["-k", "2", "--backend", "cpu", "-q", "--out"])
        .arg(&out)
        .env_remove("CONVMAPS_MAPS_MODE")
        .env("CONVMAPS_KEEP_BYTES", "lots")
        .output()
        .unwrap();
    let text = common::text(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("CONVMAPS_KEEP_BYTES=lots"), "{text}");
}

#[test]
fn a_pictures_setting_that_is_not_gpu_or_host_is_refused_by_name() {
    if common::gpu().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("photo.png");
    image::RgbImage::from_fn(12, 10, |x, y| image::Rgb([x as u8, y as u8, 1]))
        .save(&photo)
        .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_convmaps"))
        .arg(&photo)
        .args(["-k", "2", "--backend", "gpu", "-q", "--out"])
        .arg(dir.path().join("out"))
        .env("CONVMAPS_PICTURES", "cpu")
        .output()
        .unwrap();
    let text = common::text(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("CONVMAPS_PICTURES=cpu"), "{text}");
}
