//! Turning feature maps into pictures: normalisation to 8 bits, PNG
//! encoding and the grid of all maps.

pub mod colormap;
pub mod filters;
pub mod grid;
pub mod html;
pub mod label;

use std::fs::File;
use std::io::Write;
use std::path::Path;

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{GrayImage, ImageEncoder};

use crate::error::{Error, Result};
use crate::output::{AtomicFile, write_atomic};

/// Smallest and largest value of `map`; `(0, 0)` for an empty map.
pub fn min_max(map: &[f32]) -> (f32, f32) {
    if map.is_empty() {
        return (0.0, 0.0);
    }
    map.iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// Maps `lo..=hi` linearly onto `0..=255`, rounding to nearest. A flat map
/// (`hi <= lo`) becomes mid-grey, 128, so it reads as "no contrast" rather
/// than as black or white.
pub fn to_gray8(map: &[f32], lo: f32, hi: f32) -> Vec<u8> {
    if hi <= lo {
        return vec![128; map.len()];
    }
    let scale = 255.0 / (hi - lo);
    map.iter()
        .map(|&v| ((v - lo) * scale).round().clamp(0.0, 255.0) as u8)
        .collect()
}

/// Encodes an 8-bit grayscale image as PNG (fast compression).
pub fn encode_png_gray(
    writer: &mut dyn Write,
    width: u32,
    height: u32,
    pixels: &[u8],
) -> std::io::Result<()> {
    PngEncoder::new_with_quality(writer, CompressionType::Fast, FilterType::Adaptive)
        .write_image(pixels, width, height, image::ExtendedColorType::L8)
        .map_err(std::io::Error::other)
}

/// Writes an 8-bit grayscale PNG atomically.
pub fn write_png_gray(path: &Path, width: u32, height: u32, pixels: &[u8]) -> Result<()> {
    write_atomic(path, |w| encode_png_gray(w, width, height, pixels))
}

/// File name of map `index` of `count`: `feature_00.png`, zero-padded to at
/// least two digits and to the width of the largest index.
pub fn feature_file_name(index: u32, count: u32) -> String {
    let digits = count.saturating_sub(1).to_string().len().max(2);
    format!("feature_{index:0digits$}.png")
}

/// Largest width or height of the grid picture, in pixels.
pub const GRID_MAX_SIDE: u32 = 4096;
/// Gap between tiles and around the edge, in pixels.
pub const GRID_GAP: u32 = 2;
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

/// One map's tile of the grid, built row by row while the map streams past:
/// each tile pixel is the mean of the map pixels that fall in it (a box
/// filter), so any map size shrinks to the tile without holding the map.
pub struct GridTile {
    map_width: u32,
    map_height: u32,
    tile_width: u32,
    tile_height: u32,
    sums: Vec<u32>,
}

impl GridTile {
    /// An empty tile of `tile_width`×`tile_height` for a `map_width`×`map_height` map.
    pub fn new(map_width: u32, map_height: u32, tile_width: u32, tile_height: u32) -> Self {
        GridTile {
            map_width,
            map_height,
            tile_width,
            tile_height,
            sums: vec![0; tile_width as usize * tile_height as usize],
        }
    }

    fn tile_x(&self, x: u32) -> usize {
        (x as u64 * self.tile_width as u64 / self.map_width as u64) as usize
    }

    fn tile_y(&self, y: u32) -> usize {
        (y as u64 * self.tile_height as u64 / self.map_height as u64) as usize
    }

    /// Adds map rows starting at `first_row`; `pixels` holds whole rows.
    pub fn add_rows(&mut self, first_row: u32, pixels: &[u8]) {
        for (i, row) in pixels.chunks_exact(self.map_width as usize).enumerate() {
            let base = self.tile_y(first_row + i as u32) * self.tile_width as usize;
            for (x, &value) in row.iter().enumerate() {
                let index = base + self.tile_x(x as u32);
                self.sums[index] += value as u32;
            }
        }
    }

    /// The tile's pixels, `[tile_height, tile_width]`.
    pub fn pixels(&self) -> Vec<u8> {
        let counts = |tiles: u32, side: u32, tile_of: &dyn Fn(u32) -> usize| {
            let mut counts = vec![0u32; tiles as usize];
            for i in 0..side {
                counts[tile_of(i)] += 1;
            }
            counts
        };
        let columns = counts(self.tile_width, self.map_width, &|x| self.tile_x(x));
        let rows = counts(self.tile_height, self.map_height, &|y| self.tile_y(y));
        self.sums
            .iter()
            .enumerate()
            .map(|(i, &sum)| {
                let n = rows[i / self.tile_width as usize] * columns[i % self.tile_width as usize];
                if n == 0 {
                    GRID_BACKGROUND
                } else {
                    ((sum as f64 / n as f64).round()) as u8
                }
            })
            .collect()
    }
}

/// Lays finished tiles (each `tile_width`×`tile_height`, in map order) out
/// in a near-square grid, row by row, with [`GRID_GAP`] white pixels
/// between and around them.
pub fn grid_picture(tiles: &[GridTile]) -> GrayImage {
    let count = tiles.len() as u32;
    let (columns, rows) = grid_shape(count);
    let (tile_width, tile_height) = tiles
        .first()
        .map_or((1, 1), |t| (t.tile_width, t.tile_height));
    let mut picture = GrayImage::from_pixel(
        columns * tile_width + (columns + 1) * GRID_GAP,
        rows * tile_height + (rows + 1) * GRID_GAP,
        image::Luma([GRID_BACKGROUND]),
    );
    for (index, tile) in tiles.iter().enumerate() {
        let Some(tile) = GrayImage::from_raw(tile_width, tile_height, tile.pixels()) else {
            continue;
        };
        let (column, row) = (index as u32 % columns, index as u32 / columns);
        let x = GRID_GAP + column * (tile_width + GRID_GAP);
        let y = GRID_GAP + row * (tile_height + GRID_GAP);
        image::imageops::replace(&mut picture, &tile, x as i64, y as i64);
    }
    picture
}

/// Tiles whole 8-bit maps (each `width`×`height`) into the grid picture.
pub fn grid(maps: &[Vec<u8>], width: u32, height: u32) -> GrayImage {
    let (tile_width, tile_height) = grid_tile_size(maps.len() as u32, width, height);
    let tiles: Vec<GridTile> = maps
        .iter()
        .map(|map| {
            let mut tile = GridTile::new(width, height, tile_width, tile_height);
            tile.add_rows(0, map);
            tile
        })
        .collect();
    grid_picture(&tiles)
}

/// An 8-bit grayscale PNG written row band by row band, under a temporary
/// name until [`PngRowWriter::finish`].
pub struct PngRowWriter {
    file: AtomicFile,
    stream: png::StreamWriter<'static, File>,
}

impl PngRowWriter {
    /// Starts `path`, a `width`×`height` grayscale PNG (fast compression).
    pub fn create(path: &Path, width: u32, height: u32) -> Result<Self> {
        let file = AtomicFile::create(path)?;
        let handle = file.file().try_clone().map_err(|e| Error::io(path, e))?;
        let mut encoder = png::Encoder::new(handle, width, height);
        encoder.set_color(png::ColorType::Grayscale);
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
