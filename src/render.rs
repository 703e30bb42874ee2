//! Turning feature maps into pictures: normalisation to 8 bits, PNG
//! encoding and the grid of all maps.

use std::io::Write;
use std::path::Path;

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{GrayImage, ImageEncoder};

use crate::error::Result;
use crate::output::write_atomic;

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

/// Tiles the 8-bit maps (each `width`×`height`) in a near-square grid,
/// row by row, with [`GRID_GAP`] pixels between them. Maps are shrunk
/// (keeping their aspect ratio) so that the picture stays within
/// [`GRID_MAX_SIDE`] pixels on each side.
pub fn grid(maps: &[Vec<u8>], width: u32, height: u32) -> GrayImage {
    let count = maps.len() as u32;
    let (columns, rows) = grid_shape(count);
    let fit = |tiles: u32, side: u32| {
        let room = GRID_MAX_SIDE.saturating_sub(GRID_GAP * (tiles + 1)) as f64 / tiles as f64;
        room / side as f64
    };
    let scale = fit(columns, width).min(fit(rows, height)).min(1.0);
    let tile_width = ((width as f64 * scale).floor() as u32).max(1);
    let tile_height = ((height as f64 * scale).floor() as u32).max(1);
    let mut picture = GrayImage::from_pixel(
        columns * tile_width + (columns + 1) * GRID_GAP,
        rows * tile_height + (rows + 1) * GRID_GAP,
        image::Luma([GRID_BACKGROUND]),
    );
    for (index, map) in maps.iter().enumerate() {
        let Some(tile) = image::ImageBuffer::<image::Luma<u8>, &[u8]>::from_raw(width, height, map)
        else {
            continue;
        };
        let (column, row) = (index as u32 % columns, index as u32 / columns);
        let x = (GRID_GAP + column * (tile_width + GRID_GAP)) as i64;
        let y = (GRID_GAP + row * (tile_height + GRID_GAP)) as i64;
        if (tile_width, tile_height) == (width, height) {
            image::imageops::replace(&mut picture, &tile, x, y);
        } else {
            let small = image::imageops::resize(
                &tile,
                tile_width,
                tile_height,
                image::imageops::FilterType::Triangle,
            );
            image::imageops::replace(&mut picture, &small, x, y);
        }
    }
    picture
}
