//! Several photos in one call, folders, and photos refused before decoding.

mod common;

use std::path::Path;

use common::{Run, assert_not_written, convmaps, save_photo};

/// Two 2×2 filters on the CPU, over `args`.
fn run<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> Run {
    convmaps(args).args(["-k", "2", "-f", "3"]).cpu()
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
    let ran = run([&photos])
        .out(&out)
        .fails_with(1, &["broken.png", "1 of 3 photos failed"]);
    for name in ["a", "b"] {
        let summary = out.join(name).join("summary.json");
        assert!(summary.exists(), "{name}: {}", ran.text());
    }
    assert!(!out.join("broken").exists());
    assert!(!out.join("notes").exists());
}

#[test]
fn several_photos_get_one_directory_each_even_with_the_same_stem() {
    let dir = tempfile::tempdir().unwrap();
    let photos = ["same.png", "same.jpg", "other.png"].map(|name| dir.path().join(name));
    for photo in &photos {
        save_photo(photo, 8, 8);
    }
    let out = dir.path().join("out");
    run(&photos).out(&out).success();
    for name in ["same_png", "same_jpg", "other"] {
        assert!(out.join(name).join("feature_00.png").exists(), "{name}");
    }
}

#[test]
fn a_folder_without_photos_is_exit_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("readme.txt"), b"x").unwrap();
    run([dir.path()]).fails_with(2, &["no photos in it"]);
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
    let out = dir.path().join("out");
    run([&bomb])
        .out(&out)
        .fails_with(2, &["bomb.png: is 100000×100000", "--max-pixels"]);
    assert_not_written(&out);
}

#[test]
fn max_pixels_limits_the_photo_size() {
    let dir = tempfile::tempdir().unwrap();
    let photo = save_photo(&dir.path().join("p.png"), 20, 10);
    let out = dir.path().join("o");
    let limited = |pixels: &str| run([&photo]).args(["--max-pixels", pixels]).out(&out);
    limited("199").fails_with(2, &[]);
    limited("200").success();
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
    let input = |out: &Path| common::read_summary(out)["input"].clone();

    let upright = dir.path().join("upright");
    run([&photo]).arg("-o").arg(&upright).success();
    let input_upright = input(&upright);
    assert_eq!(
        (&input_upright["width"], &input_upright["height"]),
        (&30.into(), &40.into())
    );
    assert_eq!(input_upright["orientation"]["exif"], 6);
    assert_eq!(
        input_upright["orientation"]["applied"],
        "rotate 90° clockwise"
    );
    // 2 maps of (30 − 2)×(40 − 2): the maps stand upright too.
    let map = image::open(upright.join("feature_00.png")).unwrap();
    assert_eq!((map.width(), map.height()), (28, 38));

    let stored = dir.path().join("stored");
    run([&photo])
        .arg("-o")
        .arg(&stored)
        .arg("--ignore-orientation")
        .success();
    let input_stored = input(&stored);
    assert_eq!(
        (&input_stored["width"], &input_stored["height"]),
        (&40.into(), &30.into())
    );
    assert_eq!(input_stored["orientation"]["exif"], 1);
}

#[test]
fn a_successful_run_prints_no_error_line_even_without_a_runtime_dir() {
    let dir = tempfile::tempdir().unwrap();
    let photo = save_photo(&dir.path().join("small.png"), 20, 10);
    let ran = convmaps([&photo])
        .args(["-k", "2", "-f", "3", "-o"])
        .arg(dir.path().join("out"))
        .env_remove("XDG_RUNTIME_DIR")
        .auto()
        .success();
    assert!(
        !ran.stderr().lines().any(|line| line.starts_with("error")),
        "{}",
        ran.text()
    );
}
