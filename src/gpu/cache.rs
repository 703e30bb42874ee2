//! The pipeline cache kept between runs, so that a later run's setup starts
//! warm: the driver's compiled pipelines, saved in the user's cache
//! directory under a name keyed by the adapter (`convmaps/<key>.bin`), where
//! the backend supports one (Vulkan).
//!
//! The file is the cache's data behind a small header of our own: a magic
//! string, the data's length and its CRC-32. A file that is missing,
//! unreadable, truncated or corrupt is ignored, and data that another driver
//! or driver version wrote is turned down by the backend's own check; either
//! way the run compiles from scratch and rewrites the file. Nothing here is
//! ever an error of the run.

use std::path::{Path, PathBuf};

use crate::output::write_bytes_atomic;
use crate::settings::CacheDir;

/// The file's first bytes.
const MAGIC: &[u8; 8] = b"CMPCACHE";

/// Bytes before the data: magic, length (u64 LE), CRC-32 (u32 LE).
const HEADER_LEN: usize = 8 + 8 + 4;

/// Where the cache file of an adapter with cache key `key` goes, if
/// anywhere: as `dir` says, by default in the user's cache directory's
/// `convmaps/`.
pub fn cache_path(key: &str, dir: &CacheDir) -> Option<PathBuf> {
    let dir = match dir {
        CacheDir::Off => return None,
        CacheDir::At(dir) => dir.clone(),
        CacheDir::User => dirs::cache_dir()?.join("convmaps"),
    };
    Some(dir.join(format!("{key}.bin")))
}

/// The cache data stored in `path`, when the file is there, whole and
/// unchanged.
pub fn read(path: &Path) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).ok()?;
    unwrap(&bytes).map(<[u8]>::to_vec)
}

/// Writes `data` to `path` with its header, atomically, making the
/// directory if needed. Failing to write is not an error: the next run
/// starts cold.
pub fn write(path: &Path, data: &[u8]) -> bool {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    write_bytes_atomic(path, &wrap(data)).is_ok()
}

/// `data` behind the header.
fn wrap(data: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + data.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(data.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    bytes.extend_from_slice(data);
    bytes
}

/// The data of a file's `bytes`, when its header says they are whole.
fn unwrap(bytes: &[u8]) -> Option<&[u8]> {
    let (header, data) = bytes.split_at_checked(HEADER_LEN)?;
    let length = u64::from_le_bytes(header[8..16].try_into().ok()?);
    let checksum = u32::from_le_bytes(header[16..20].try_into().ok()?);
    let whole =
        &header[..8] == MAGIC && length == data.len() as u64 && crc32fast::hash(data) == checksum;
    whole.then_some(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_comes_back_only_from_a_whole_unchanged_file() {
        let data = b"pipeline cache data".to_vec();
        let file = wrap(&data);
        assert_eq!(unwrap(&file), Some(&data[..]));
        assert_eq!(unwrap(&file[..file.len() - 1]), None, "truncated");
        assert_eq!(unwrap(&file[..5]), None, "truncated in the header");
        let mut flipped = file.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(unwrap(&flipped), None, "corrupt");
        let mut other = file.clone();
        other[0] = b'X';
        assert_eq!(unwrap(&other), None, "not ours");
        assert_eq!(unwrap(&wrap(&[])), Some(&[][..]));
    }
}
