//! Several photos in one call, folders, and photos refused before decoding.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convmaps"))
        .args(args)
        .args(["--backend", "cpu", "-k", "2", "-f", "3"])
        .output()
        .expect("run convmaps")
}

fn save_photo(path: &Path, width: u32, height: u32) {
    image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 9]))
        .save(path)
        .unwrap();
}

#[test]
fn a_folder_with_one_bad_file_processes_the_rest_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    save_photo(&photos.join("a.png"), 12, 10);
    save_photo(&photos.join("b.jpg"), 9, 14);
    std::fs::write(photos.join("broken.png"), b"not a png").unwrap();
    std::fs::write(photos.join("notes.txt"), b"ignored").unwrap();
    let out = dir.path().join("out");
    let output = run(&[photos.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", common::text(&output));
    assert!(
        common::text(&output).contains("broken.png"),
        "{}",
        common::text(&output)
    );
    assert!(
        common::text(&output).contains("1 of 3 photos failed"),
        "{}",
        common::text(&output)
    );
    for name in ["a", "b"] {
        assert!(
            out.join(name).join("summary.json").exists(),
            "{name}: {}",
            common::text(&output)
        );
    }
    assert!(!out.join("broken").exists());
    assert!(!out.join("notes").exists());
}

#[test]
fn several_photos_get_one_directory_each_even_with_the_same_stem() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("same.png");
    let jpg = dir.path().join("same.jpg");
    let other = dir.path().join("other.png");
    save_photo(&png, 8, 8);
    save_photo(&jpg, 8, 8);
    save_photo(&other, 8, 8);
    let out = dir.path().join("out");
    let output = run(&[
        png.to_str().unwrap(),
        jpg.to_str().unwrap(),
        other.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", common::text(&output));
    for name in ["same_png", "same_jpg", "other"] {
        assert!(out.join(name).join("feature_00.png").exists(), "{name}");
    }
}

#[test]
fn a_folder_without_photos_is_exit_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("readme.txt"), b"x").unwrap();
    let output = run(&[dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", common::text(&output));
    assert!(
        common::text(&output).contains("no photos in it"),
        "{}",
        common::text(&output)
    );
}

/// CRC-32 (as PNG chunks use it), bit by bit.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
    out
}

#[test]
fn a_decompression_bomb_header_is_refused_from_the_header_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.png");
    let mut header = Vec::new();
    header.extend_from_slice(&100_000u32.to_be_bytes());
    header.extend_from_slice(&100_000u32.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend(chunk(b"IHDR", &header));
    bytes.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    bytes.extend(chunk(b"IEND", &[]));
    std::fs::write(&bomb, bytes).unwrap();
    let output = run(&[
        bomb.to_str().unwrap(),
        "--out",
        dir.path().join("out").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", common::text(&output));
    assert!(
        common::text(&output).contains("bomb.png: is 100000×100000"),
        "{}",
        common::text(&output)
    );
    assert!(
        common::text(&output).contains("--max-pixels"),
        "{}",
        common::text(&output)
    );
    assert!(!dir.path().join("out").exists());
}

#[test]
fn max_pixels_limits_the_photo_size() {
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("p.png");
    save_photo(&photo, 20, 10);
    let output = run(&[
        photo.to_str().unwrap(),
        "--max-pixels",
        "199",
        "--out",
        dir.path().join("o").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", common::text(&output));
    let output = run(&[
        photo.to_str().unwrap(),
        "--max-pixels",
        "200",
        "--out",
        dir.path().join("o").to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", common::text(&output));
}

/// A `width`×`height` PNG whose EXIF orientation tag says `orientation`
/// (6: the stored pixels are to be turned 90° clockwise to stand upright).
fn save_photo_with_orientation(path: &Path, width: u32, height: u32, orientation: u16) {
    save_photo(path, width, height);
    let png = std::fs::read(path).unwrap();
    // Big-endian TIFF header, IFD0 with one entry: tag 0x0112 (Orientation),
    // type SHORT, count 1, the value left-aligned in its 4 bytes; no next IFD.
    let mut exif = b"MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01".to_vec();
    exif.extend_from_slice(&orientation.to_be_bytes());
    exif.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    // The eXIf chunk goes after IHDR (8-byte signature + 25-byte chunk).
    let mut bytes = png[..33].to_vec();
    bytes.extend(chunk(b"eXIf", &exif));
    bytes.extend_from_slice(&png[33..]);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_photo_is_turned_upright_by_its_exif_orientation_unless_asked_not_to() {
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("phone.png");
    save_photo_with_orientation(&photo, 40, 30, 6);
    let summary = |out: &Path| -> serde_json::Value { common::read_summary(out) };

    let upright = dir.path().join("upright");
    let output = run(&[photo.to_str().unwrap(), "-o", upright.to_str().unwrap()]);
    assert!(output.status.success(), "{}", common::text(&output));
    let input = &summary(&upright)["input"];
    assert_eq!(
        (&input["width"], &input["height"]),
        (&30.into(), &40.into())
    );
    assert_eq!(input["orientation"]["exif"], 6);
    assert_eq!(input["orientation"]["applied"], "rotate 90° clockwise");
    // 2 maps of (30 − 2)×(40 − 2): the maps stand upright too.
    let map = image::open(upright.join("feature_00.png")).unwrap();
    assert_eq!((map.width(), map.height()), (28, 38));

    let stored = dir.path().join("stored");
    let output = run(&[
        photo.to_str().unwrap(),
        "-o",
        stored.to_str().unwrap(),
        "--ignore-orientation",
    ]);
    assert!(output.status.success(), "{}", common::text(&output));
    let input = &summary(&stored)["input"];
    assert_eq!(
        (&input["width"], &input["height"]),
        (&40.into(), &30.into())
    );
    assert_eq!(input["orientation"]["exif"], 1);
}

#[test]
fn a_successful_run_prints_no_error_line_even_without_a_runtime_dir() {
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("small.png");
    save_photo(&photo, 20, 10);
    let mut command = Command::new(env!("CARGO_BIN_EXE_convmaps"));
    command
        .args([photo.to_str().unwrap(), "-k", "2", "-f", "3", "-o"])
        .arg(dir.path().join("out"))
        .env_remove("XDG_RUNTIME_DIR");
    if common::require_gpu() {
        command.args(["--backend", "gpu"]);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", common::text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.lines().any(|line| line.starts_with("error")),
        "{}",
        common::text(&output)
    );
}
