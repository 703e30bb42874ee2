//! The feature PNGs and the labelled grid: streamed from the raw maps on
//! disk ([`write_pictures`]), or written band by band as the maps are
//! computed ([`StreamedPictures`]), with the same pixels either way.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::{Stage, Step, View};
use crate::error::Result;
use crate::npy::BandedNpy;
use crate::render::colormap::{self, Colormap};
use crate::render::grid::{RgbGridTile, labelled_grid};
use crate::render::quantise::BandPixels;
use crate::render::{self};
use crate::stats::MapStats;

/// The range each map's colours span, from the maps' statistics (unused
/// for a fixed `--normalize LO,HI`, which needs none).
pub(super) fn map_ranges(stats: &[MapStats], view: &View) -> Vec<(f32, f32)> {
    let all = stats
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), s| {
            (lo.min(s.min), hi.max(s.max))
        });
    let diverging = view.colormap.is_diverging();
    stats
        .iter()
        .map(|s| view.normalize.range((s.min, s.max), all, diverging))
        .collect()
}

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
    let [count, height, width] = raw.shape();
    let ranges = map_ranges(stats, view);
    let names = map_names(count);
    let done = AtomicU64::new(0);
    let tiles: Vec<RgbGridTile> = (0..count)
        .into_par_iter()
        .map(|k| {
            let path = out_dir.join(&names[k as usize]);
            let picture =
                MapPicture::create(&path, [count, height, width], ranges[k as usize], view)?;
            let tile = write_map(picture, raw, k)?;
            progress(Step {
                stage: Stage::Encode,
                done: done.fetch_add(1, Ordering::Relaxed) + 1,
                total: count as u64,
            });
            Ok(tile)
        })
        .collect::<Result<_>>()?;
    write_grid(out_dir, &tiles, names)
}

/// `feature_00.png`, … for `count` maps.
fn map_names(count: u32) -> Vec<String> {
    (0..count)
        .map(|k| render::feature_file_name(k, count))
        .collect()
}

/// Writes `grid.png` of `tiles`, labelled with their indices; returns the
/// map files' `names` and the grid's.
fn write_grid(
    out_dir: &Path,
    tiles: &[RgbGridTile],
    mut names: Vec<String>,
) -> Result<Vec<String>> {
    let labels: Vec<String> = (0..tiles.len()).map(|k| k.to_string()).collect();
    let grid = labelled_grid(tiles, &labels);
    render::write_png_rgb(&out_dir.join("grid.png"), &grid)?;
    names.push("grid.png".into());
    Ok(names)
}

/// Bytes of one map read back at a time.
const READ_BYTES: u64 = 1 << 20;

/// Writes map `k` of `raw` into `picture`, streaming its rows, and returns
/// its grid tile.
fn write_map(mut picture: MapPicture, raw: &BandedNpy, k: u32) -> Result<RgbGridTile> {
    let [_, height, width] = raw.shape();
    let rows_per_read = (READ_BYTES / (width as u64 * 4)).clamp(1, height as u64) as usize;
    let mut reader = raw.map_reader(k)?;
    let mut values = vec![0.0f32; rows_per_read * width as usize];
    for first_row in (0..height).step_by(rows_per_read) {
        let rows = rows_per_read.min((height - first_row) as usize);
        let values = &mut values[..rows * width as usize];
        reader.read(values)?;
        picture.add_rows(first_row, values)?;
    }
    picture.finish()
}

/// One map's PNG and grid tile, written rows at a time in order.
struct MapPicture {
    writer: render::PngRowWriter,
    tile: RgbGridTile,
    range: (f32, f32),
    colormap: Colormap,
    pixels: Vec<u8>,
}

impl MapPicture {
    /// Starts the PNG `path` of one of `count` maps of `height`×`width`,
    /// coloured over `range` with `view`'s colour map.
    fn create(
        path: &Path,
        [count, height, width]: [u32; 3],
        range: (f32, f32),
        view: &View,
    ) -> Result<Self> {
        let gray = view.colormap == Colormap::Gray;
        Ok(MapPicture {
            writer: render::PngRowWriter::create(path, width, height, !gray)?,
            tile: RgbGridTile::for_grid(count, width, height),
            range,
            colormap: view.colormap,
            pixels: Vec::new(),
        })
    }

    /// Colours whole rows `values` (from row `first_row`), adds them to the
    /// tile and writes them.
    fn add_rows(&mut self, first_row: u32, values: &[f32]) -> Result<()> {
        let (lo, hi) = self.range;
        let mut pixels = std::mem::take(&mut self.pixels);
        pixels.clear();
        if self.colormap == Colormap::Gray {
            render::extend_gray8(&mut pixels, values, lo, hi);
        } else {
            colormap::extend_rgb8(&mut pixels, values, lo, hi, self.colormap);
        }
        let written = self.add_pixels(first_row, &pixels);
        self.pixels = pixels;
        written
    }

    /// Adds whole rows of coloured `pixels` (grey levels, or RGB triples),
    /// from row `first_row`, to the tile and writes them.
    fn add_pixels(&mut self, first_row: u32, pixels: &[u8]) -> Result<()> {
        if self.colormap == Colormap::Gray {
            self.tile.add_gray_rows(first_row, pixels);
        } else {
            self.tile.add_rows(first_row, pixels);
        }
        self.writer.write_rows(pixels)
    }

    /// Ends the PNG and returns the tile.
    fn finish(self) -> Result<RgbGridTile> {
        self.writer.finish()?;
        Ok(self.tile)
    }
}

/// Every map's PNG written band by band as the maps are computed, with
/// the ranges known beforehand (a fixed range, or a first pass's
/// statistics): no raw maps go through the disk.
pub(super) struct StreamedPictures {
    maps: Vec<MapPicture>,
    names: Vec<String>,
}

impl StreamedPictures {
    /// Starts the PNGs of maps `[K, OH, OW]` in `out_dir`, map k coloured
    /// over `ranges[k]`.
    pub(super) fn create(
        out_dir: &Path,
        shape: [u32; 3],
        ranges: &[(f32, f32)],
        view: &View,
    ) -> Result<Self> {
        let names = map_names(shape[0]);
        let maps = names
            .par_iter()
            .zip(ranges)
            .map(|(name, &range)| MapPicture::create(&out_dir.join(name), shape, range, view))
            .collect::<Result<_>>()?;
        Ok(StreamedPictures { maps, names })
    }

    /// Adds a piece of the maps' pixels (maps from `first_map`, rows from
    /// `first_row`); each map's rows must come in order.
    pub(super) fn write_pixels(
        &mut self,
        first_map: u32,
        first_row: u32,
        pixels: &BandPixels,
    ) -> Result<()> {
        let first = first_map as usize;
        self.maps[first..first + pixels.maps as usize]
            .par_iter_mut()
            .enumerate()
            .try_for_each(|(k, picture)| picture.add_pixels(first_row, pixels.map(k as u32)))
    }

    /// Ends every PNG and writes the grid; returns the file names.
    pub(super) fn finish(self, out_dir: &Path) -> Result<Vec<String>> {
        let tiles: Vec<RgbGridTile> = self
            .maps
            .into_par_iter()
            .map(MapPicture::finish)
            .collect::<Result<_>>()?;
        write_grid(out_dir, &tiles, self.names)
    }
}
