//! The feature PNGs and the labelled grid, streamed from the raw maps.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::{Stage, Step, View};
use crate::error::Result;
use crate::npy::BandedNpy;
use crate::render::colormap::{self, Colormap};
use crate::render::grid::{RgbGridTile, labelled_grid};
use crate::render::{self};
use crate::stats::MapStats;

/// Writes one PNG per map (coloured with `view`'s map and range) and the
/// labelled `grid.png`, reading the raw maps `[K, OH, OW]` back map by map,
/// in parallel, about a mebibyte at a time; returns the file names.
pub(super) fn write_pictures(
    out_dir: &Path,
    raw: &BandedNpy,
    stats: &[MapStats],
    view: &View,
    progress: &(dyn Fn(Step) + Sync),
) -> Result<Vec<String>> {
    let count = stats.len() as u32;
    let all = stats
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), s| {
            (lo.min(s.min), hi.max(s.max))
        });
    let names: Vec<String> = (0..count)
        .map(|k| render::feature_file_name(k, count))
        .collect();
    let done = AtomicU64::new(0);
    let tiles: Vec<RgbGridTile> = (0..count)
        .into_par_iter()
        .map(|k| {
            let stats = &stats[k as usize];
            let range =
                view.normalize
                    .range((stats.min, stats.max), all, view.colormap.is_diverging());
            let tile = write_map(&out_dir.join(&names[k as usize]), raw, k, range, view)?;
            progress(Step {
                stage: Stage::Encode,
                done: done.fetch_add(1, Ordering::Relaxed) + 1,
                total: count as u64,
            });
            Ok(tile)
        })
        .collect::<Result<_>>()?;
    let labels: Vec<String> = (0..count).map(|k| k.to_string()).collect();
    let grid = labelled_grid(&tiles, &labels);
    render::write_png_rgb(&out_dir.join("grid.png"), &grid)?;
    let mut files = names;
    files.push("grid.png".into());
    Ok(files)
}

/// Bytes of one map read back at a time.
const READ_BYTES: u64 = 1 << 20;

/// Writes map `k` of `raw` as the PNG `path`, coloured over `(lo, hi)`,
/// streaming its rows, and returns its grid tile.
fn write_map(
    path: &Path,
    raw: &BandedNpy,
    k: u32,
    (lo, hi): (f32, f32),
    view: &View,
) -> Result<RgbGridTile> {
    let [count, height, width] = raw.shape();
    let gray = view.colormap == Colormap::Gray;
    let rows_per_read = (READ_BYTES / (width as u64 * 4)).clamp(1, height as u64) as usize;
    let mut writer = render::PngRowWriter::create(path, width, height, !gray)?;
    let mut tile = RgbGridTile::for_grid(count, width, height);
    let mut reader = raw.map_reader(k)?;
    let mut values = vec![0.0f32; rows_per_read * width as usize];
    let mut pixels = Vec::new();
    for first_row in (0..height).step_by(rows_per_read) {
        let rows = rows_per_read.min((height - first_row) as usize);
        let values = &mut values[..rows * width as usize];
        reader.read(values)?;
        pixels.clear();
        if gray {
            render::extend_gray8(&mut pixels, values, lo, hi);
            tile.add_gray_rows(first_row, &pixels);
        } else {
            colormap::extend_rgb8(&mut pixels, values, lo, hi, view.colormap);
            tile.add_rows(first_row, &pixels);
        }
        writer.write_rows(&pixels)?;
    }
    writer.finish()?;
    Ok(tile)
}
