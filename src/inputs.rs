//! Turning the command line's inputs (files and folders) into a list of
//! photos, each with its own output directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// File extensions read as photos when a folder is given.
pub const PHOTO_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "bmp", "gif", "tif", "tiff", "webp"];

fn is_photo_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| PHOTO_EXTENSIONS.iter().any(|p| p.eq_ignore_ascii_case(e)))
}

/// Expands `paths`: a file stays as it is (it is checked when decoded); a
/// folder becomes its photo files (by extension, not recursing), sorted by
/// name. A folder with no photo in it is an error naming the folder.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut photos = Vec::new();
    for path in paths {
        if !path.is_dir() {
            photos.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path)
            .map_err(|e| Error::image_caused(path, "cannot list the folder", e))?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_photo_name(p))
            .collect();
        if found.is_empty() {
            return Err(Error::image(
                path,
                format!(
                    "is a folder with no photos in it (looked for .{})",
                    PHOTO_EXTENSIONS.join(", .")
                ),
            ));
        }
        found.sort();
        photos.extend(found);
    }
    Ok(photos)
}

/// The output directory of each photo. One photo with `out` given writes
/// into `out` itself; otherwise each photo gets `<out or "out">/<file stem>/`,
/// or `<stem>_<extension>` when two photos share a stem.
pub fn output_dirs(photos: &[PathBuf], out: Option<&Path>) -> Vec<PathBuf> {
    if let (Some(out), [_]) = (out, photos) {
        return vec![out.to_path_buf()];
    }
    let root = out.unwrap_or(Path::new("out"));
    let stem = |p: &PathBuf| {
        p.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "photo".into())
    };
    let mut counts: HashMap<String, usize> = HashMap::new();
    for photo in photos {
        *counts.entry(stem(photo)).or_default() += 1;
    }
    photos
        .iter()
        .map(|photo| {
            let name = stem(photo);
            if counts[&name] > 1 {
                let extension = photo
                    .extension()
                    .map(|e| e.to_string_lossy().into_owned())
                    .unwrap_or_default();
                root.join(format!("{name}_{extension}"))
            } else {
                root.join(name)
            }
        })
        .collect()
}
