//! Turning feature maps into pictures: normalisation to 8 bits, PNG
//! encoding and the grid of all maps.

pub mod arithmetic;
pub mod colormap;
pub mod explore;
pub mod filters;
pub mod grid;
pub mod html;
pub mod label;
pub mod live;
pub mod quantise;
pub mod strip;

use std::fs::File;
use std::io::Write;
use std::path::Path;

use image::ImageEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};

use crate::error::{Error, Result};
use crate::output::{AtomicFile, write_atomic};
use crate::tensor::RowSource;

/// Maps `lo..=hi` linearly onto `0..=255`, rounding to nearest. A flat map
/// (`hi <= lo`) becomes mid-grey, 128, so it reads as "no contrast" rather
/// than as black or white.
pub fn to_gray8(map: &[f32], lo: f32, hi: f32) -> Vec<u8> {
    let mut out = Vec::with_capacity(map.len());
    extend_gray8(&mut out, map, lo, hi);
    out
}

/// [`to_gray8`], appending to `out` (so a caller can reuse one buffer for
/// band after band).
pub fn extend_gray8(out: &mut Vec<u8>, map: &[f32], lo: f32, hi: f32) {
    if hi <= lo {
        out.resize(out.len() + map.len(), 128);
        return;
    }
    let scale = 255.0 / (hi - lo);
    // Adding one half and truncating rounds these non-negative values to
    // nearest without a call per pixel (as `round` does, but for values a
    // hair below one half, which the f32 addition rounds up).
    out.extend(
        map.iter()
            .map(|&v| (((v - lo) * scale).clamp(0.0, 255.0) + 0.5) as u8),
    );
}

/// Writes an 8-bit RGB PNG atomically.
pub fn write_png_rgb(path: &Path, image: &image::RgbImage) -> Result<()> {
    write_atomic(path, |w| {
        PngEncoder::new_with_quality(w, CompressionType::Fast, FilterType::Adaptive)
            .write_image(
                image.as_raw(),
                image.width(),
                image.height(),
                image::ExtendedColorType::Rgb8,
            )
            .map_err(std::io::Error::other)
    })
}

/// A tensor's channels `[C, H, W]` as a labelled grid of grey tiles, each
/// stretched over its own range (as the feature grid is), shrunk so that
/// its longer side is at most `max_side` pixels: how the page shows an
/// input that is not a photo.
pub fn channel_grid(tensor: &crate::tensor::Tensor3, max_side: u32) -> image::RgbImage {
    let count = tensor.channels;
    let (width, height) = (tensor.width, tensor.height);
    let tiles: Vec<grid::RgbGridTile> = tensor
        .planes()
        .map(|plane| {
            let (lo, hi) = plane
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                });
            let mut tile = grid::RgbGridTile::for_grid(count, width, height);
            tile.add_gray_rows(0, &to_gray8(plane, lo, hi));
            tile
        })
        .collect();
    let labels: Vec<String> = (0..count).map(|c| c.to_string()).collect();
    let grid = grid::labelled_grid(&tiles, &labels);
    let scale = (max_side as f64 / grid.width().max(grid.height()) as f64).min(1.0);
    if scale >= 1.0 {
        return grid;
    }
    let size = |side: u32| ((side as f64 * scale).round() as u32).max(1);
    image::imageops::resize(
        &grid,
        size(grid.width()),
        size(grid.height()),
        image::imageops::FilterType::Triangle,
    )
}

/// An 8-bit RGB preview of a `[3, H, W]` tensor in `[0, 1]`, shrunk (box
/// filter) so that its longer side is at most `max_side` pixels.
pub fn preview_rgb(image: &(impl RowSource + ?Sized), max_side: u32) -> image::RgbImage {
    let [channels, height, width] = image.shape();
    let scale = (max_side as f64 / width.max(height) as f64).min(1.0);
    let preview_width = ((width as f64 * scale).round() as u32).max(1);
    let preview_height = ((height as f64 * scale).round() as u32).max(1);
    let mut tile = grid::RgbGridTile::new(width, height, preview_width, preview_height);
    // A few rows at a time, so that a big photo is never all f32 at once.
    const ROWS: u32 = 64;
    let mut pixels = Vec::with_capacity(ROWS as usize * width as usize * 3);
    for first_row in (0..height).step_by(ROWS as usize) {
        let band = image.rows(0..channels, first_row..(first_row + ROWS).min(height));
        let channel = |c: u32| band.plane(c.min(channels - 1));
        pixels.clear();
        for (r, (g, b)) in channel(0).iter().zip(channel(1).iter().zip(channel(2))) {
            for v in [r, g, b] {
                pixels.push((v * 255.0).round().clamp(0.0, 255.0) as u8);
            }
        }
        tile.add_rows(first_row, &pixels);
    }
    tile.image()
}

/// File name of map `index` of `count`: `feature_00.png`, zero-padded to at
/// least two digits and to the width of the largest index.
pub fn feature_file_name(index: u32, count: u32) -> String {
    let digits = count.saturating_sub(1).to_string().len().max(2);
    format!("feature_{index:0digits$}.png")
}

/// How the pages draw maps from values and their colour bars (`view.js`):
/// shared by the live part, the explorer and a network's page.
pub const VIEW_SCRIPT: &str = include_str!("view.js");

/// Largest width or height of the grid picture, in pixels.
pub const GRID_MAX_SIDE: u32 = 4096;
/// Gap between tiles and around the edge, in pixels.
pub const GRID_GAP: u32 = 2;

/// Pixels spanned by `count` cells of `cell` pixels with a gap of `gap`
/// before, between and after them.
pub fn span(count: u32, cell: u32, gap: u32) -> u32 {
    count * cell + (count + 1) * gap
}
/// Colour of the gaps (white).
pub const GRID_BACKGROUND: u8 = 255;

/// Columns and rows of a near-square grid for `count` tiles.
pub fn grid_shape(count: u32) -> (u32, u32) {
    let columns = (count as f64).sqrt().ceil().max(1.0) as u32;
    let rows = count.div_ceil(columns).max(1);
    (columns, rows)
}

/// Tile size for `count` maps of `width`×`height` in a grid within
/// [`GRID_MAX_SIDE`]: the map's own size, or shrunk keeping its aspect ratio.
pub fn grid_tile_size(count: u32, width: u32, height: u32) -> (u32, u32) {
    let (columns, rows) = grid_shape(count);
    let fit = |tiles: u32, side: u32| {
        let room = GRID_MAX_SIDE.saturating_sub(GRID_GAP * (tiles + 1)) as f64 / tiles as f64;
        room / side as f64
    };
    let scale = fit(columns, width).min(fit(rows, height)).min(1.0);
    (
        ((width as f64 * scale).floor() as u32).max(1),
        ((height as f64 * scale).floor() as u32).max(1),
    )
}

/// An 8-bit PNG written row band by row band, under a temporary name until
/// [`PngRowWriter::finish`].
pub struct PngRowWriter {
    file: AtomicFile,
    stream: png::StreamWriter<'static, File>,
}

impl PngRowWriter {
    /// Starts `path`, a `width`×`height` PNG (fast compression) of 8-bit
    /// grey, or of 8-bit RGB when `rgb`.
    pub fn create(path: &Path, width: u32, height: u32, rgb: bool) -> Result<Self> {
        let file = AtomicFile::create(path)?;
        let handle = file.file().try_clone().map_err(|e| Error::io(path, e))?;
        let mut encoder = png::Encoder::new(handle, width, height);
        encoder.set_color(if rgb {
            png::ColorType::Rgb
        } else {
            png::ColorType::Grayscale
        });
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Fast);
        let png_error = |e: png::EncodingError| Error::io(path, std::io::Error::other(e));
        let stream = encoder
            .write_header()
            .map_err(png_error)?
            .into_stream_writer()
            .map_err(png_error)?;
        Ok(PngRowWriter { file, stream })
    }

    /// Appends whole rows of pixels.
    pub fn write_rows(&mut self, pixels: &[u8]) -> Result<()> {
        self.stream
            .write_all(pixels)
            .map_err(|e| Error::io(self.file.path(), e))
    }

    /// Ends the PNG and renames it into place.
    pub fn finish(self) -> Result<()> {
        let path = self.file.path().to_path_buf();
        self.stream
            .finish()
            .map_err(|e| Error::io(&path, std::io::Error::other(e)))?;
        self.file.commit()
    }
}
