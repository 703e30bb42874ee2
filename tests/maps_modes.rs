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

use common::convmaps;

/// Runs `photo` with 3×3 filters (5 of them unless `extra` says `-k`) on
/// `backend` in `mode`, the pictures made `on` the GPU or the host, in
/// bands of 6000 bytes; returns the summary.
fn run(
    photo: &Path,
    out: &Path,
    (backend, on, mode): (&str, &str, &str),
    extra: &[&str],
) -> serde_json::Value {
    let filters: &[&str] = if extra.contains(&"-k") {
        &[]
    } else {
        &["-k", "5"]
    };
    convmaps([photo])
        .args(["-f", "3", "-q"])
        .out(out)
        .args(extra)
        .args(filters)
        .backend(backend)
        .env("CONVMAPS_MAPS_MODE", mode)
        .env("CONVMAPS_PICTURES", on)
        .env("CONVMAPS_BAND_BYTES", "6000")
        .success();
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
    let photo = common::photo(dir.path(), 37, 29);
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

/// A run of the `width`×`height` photo into `dir/out` with `options`, in
/// the mode the binary picks itself.
fn picked(dir: &Path, (width, height): (u32, u32), options: &[&str]) -> common::Run {
    let photo = common::photo(dir, width, height);
    let out = dir.join("out");
    convmaps([&photo])
        .args(options)
        .out(out)
        .env_remove("CONVMAPS_MAPS_MODE")
}

#[test]
fn the_mode_is_chosen_and_said_in_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let options = ["-k", "2", "-q", "--normalize", "-1,1"];
    picked(dir.path(), (20, 16), &options).cpu().success();
    let out = dir.path().join("out");
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
    for (budget, mode) in [("100000000", "keep"), ("1000", "spill")] {
        let dir = tempfile::tempdir().unwrap();
        picked(dir.path(), (40, 30), &["-k", "3"])
            .env("CONVMAPS_KEEP_BYTES", budget)
            .cpu()
            .success()
            // The terminal says it too.
            .says(&[&format!("pictures    {mode}: ")]);
        let out = dir.path().join("out");
        let summary = common::read_summary(&out);
        assert_eq!(summary["maps_mode"]["mode"], mode, "budget {budget}");
        let leftovers = common::leftovers(&out);
        assert!(leftovers.is_empty(), "{mode}: {leftovers:?}");
    }
}

#[test]
fn a_keep_budget_that_is_not_a_number_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    picked(dir.path(), (12, 10), &["-k", "2", "-q"])
        .env("CONVMAPS_KEEP_BYTES", "lots")
        .cpu()
        .fails_with(2, &["CONVMAPS_KEEP_BYTES=lots"]);
}

#[test]
fn a_pictures_setting_that_is_not_gpu_or_host_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let run = picked(dir.path(), (12, 10), &["-k", "2", "-q"]);
    if let Some(run) = run.env("CONVMAPS_PICTURES", "cpu").gpu() {
        run.fails_with(2, &["CONVMAPS_PICTURES=cpu"]);
    }
}
