//! The pipeline cache kept between runs (`CONVMAPS_CACHE_DIR`): written by
//! a run, and a file that is truncated, from another driver (data the
//! backend does not take) or unreadable is ignored and rewritten, never a
//! failure.

mod common;

use std::path::{Path, PathBuf};

/// Runs the tool on the GPU (the test checked for one) with its cache in
/// `cache_dir`; asserts success.
fn run_with_cache(cache_dir: &Path, out: &Path) {
    let photo = out.with_extension("png");
    if !photo.exists() {
        common::save_photo(&photo, 16, 12);
    }
    common::convmaps([&photo])
        .args(["-k", "2", "-q"])
        .out(out)
        .env("CONVMAPS_CACHE_DIR", cache_dir)
        .backend("gpu")
        .success();
}

/// The cache files in `dir`.
fn cache_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Whether `path` holds a whole cache file: magic, length, CRC-32, data.
fn is_whole(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    bytes.len() >= 20
        && &bytes[..8] == b"CMPCACHE"
        && u64::from_le_bytes(bytes[8..16].try_into().unwrap()) == bytes.len() as u64 - 20
        && u32::from_le_bytes(bytes[16..20].try_into().unwrap()) == crc32fast::hash(&bytes[20..])
}

/// A cache file whose header is whole but whose data no backend wrote.
fn foreign(data: &[u8]) -> Vec<u8> {
    let mut bytes = b"CMPCACHE".to_vec();
    bytes.extend((data.len() as u64).to_le_bytes());
    bytes.extend(crc32fast::hash(data).to_le_bytes());
    bytes.extend(data);
    bytes
}

#[test]
fn a_bad_cache_file_is_ignored_and_rewritten_never_a_failure() {
    let Some(gpu) = common::gpu() else {
        return;
    };
    if gpu.pipeline_cache().is_none() {
        common::skip("this adapter has no pipeline cache");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let out = dir.path().join("out");
    run_with_cache(&cache_dir, &out);
    let files = cache_files(&cache_dir);
    assert_eq!(files.len(), 1, "one cache file: {files:?}");
    let file = &files[0];
    assert!(is_whole(file), "the first run writes a whole file");
    let good = std::fs::read(file).unwrap();

    let bad_files: [(&str, Vec<u8>); 4] = [
        ("truncated", good[..good.len() / 2].to_vec()),
        ("empty", Vec::new()),
        ("another driver's", foreign(&[0x5a; 300])),
        ("corrupt", {
            let mut corrupt = good.clone();
            *corrupt.last_mut().unwrap() ^= 0xff;
            corrupt
        }),
    ];
    for (what, bytes) in bad_files {
        std::fs::write(file, &bytes).unwrap();
        run_with_cache(&cache_dir, &out);
        assert!(is_whole(file), "a {what} file is rewritten whole");
    }

    // A cache that cannot be read or written (a directory in its place).
    std::fs::remove_file(file).unwrap();
    std::fs::create_dir(file).unwrap();
    run_with_cache(&cache_dir, &out);
    assert!(file.is_dir());
}
