//! Pictures of the filters themselves: each filter's weights as a small
//! enlarged picture, zero at mid-grey, with its bias printed underneath.
//!
//! One symmetric scale serves the whole bank: a weight w is drawn at
//! 128 + 127·w / max|w|, max|w| over every weight of the layer, so 128 is
//! zero, 255 the largest positive weight and 1 its negative.

use image::{Rgb, RgbImage};

use super::label::{draw_text, text_size};
use super::{GRID_MAX_SIDE, grid_shape};
use crate::layer::Layer;

/// A filter is enlarged until it is at least this many pixels tall (when
/// the picture has room).
pub const MIN_FILTER_HEIGHT: u32 = 48;
/// Gap between filters and around the picture, in pixels.
pub const FILTER_GAP: u32 = 8;
/// Gap between the channel tiles of one filter, in pixels.
pub const CHANNEL_GAP: u32 = 2;
/// Gap between a filter and its bias label, in pixels.
pub const LABEL_GAP: u32 = 2;
/// Scale of the bias labels' font.
pub const LABEL_SCALE: u32 = 2;
/// Width of the frame around each filter's picture (and each channel's).
pub const FRAME: u32 = 1;
/// Colour of that frame: a slate blue no grey weight can take.
pub const FRAME_COLOUR: [u8; 3] = [90, 110, 150];
/// Background colour (white).
pub const BACKGROUND: [u8; 3] = [255, 255, 255];
/// Colour of the bias labels (black).
pub const LABEL_COLOUR: [u8; 3] = [0, 0, 0];

/// The largest |w| over all of the layer's weights: the weight drawn at
/// 255 (or 1, if negative). 0 for a layer whose weights are all zero.
pub fn weight_scale(layer: &Layer) -> f32 {
    layer
        .weight
        .iter()
        .filter(|w| w.is_finite())
        .fold(0.0f32, |m, w| m.max(w.abs()))
}

/// The 8-bit level of weight `w` on the symmetric scale `scale` (max|w|):
/// 128 + 127·w/scale, rounded; 128 (zero) when the scale is 0.
pub fn weight_level(w: f32, scale: f32) -> u8 {
    if scale > 0.0 && scale.is_finite() && w.is_finite() {
        (128.0 + 127.0 * w / scale).round().clamp(0.0, 255.0) as u8
    } else {
        128
    }
}

/// How a filter is drawn: one RGB picture (C/G = 3 and not per channel)
/// or one grey tile per input channel.
fn channel_tiles(layer: &Layer, per_channel: bool) -> u32 {
    let channels = layer.spec.channels_per_group();
    if !per_channel && channels == 3 {
        1
    } else {
        channels.max(1)
    }
}

/// Size `(width, height)` of one filter's picture at `zoom`.
fn tile_size(layer: &Layer, per_channel: bool, zoom: u32) -> (u32, u32) {
    let tiles = channel_tiles(layer, per_channel);
    let spec = &layer.spec;
    (
        tiles * (spec.kernel_width * zoom + 2 * FRAME) + (tiles - 1) * CHANNEL_GAP,
        spec.kernel_height * zoom + 2 * FRAME,
    )
}

/// Filter `k`'s picture, each weight a `zoom`×`zoom` square (0 counts as
/// 1), on the bank's symmetric scale ([`weight_scale`]). With C/G = 3 and
/// `!per_channel`, an FW×FH RGB picture whose channel c is weight[k, c];
/// otherwise one grey tile per input channel, side by side,
/// [`CHANNEL_GAP`] white pixels apart. Each block has a [`FRAME`]-pixel
/// frame of [`FRAME_COLOUR`], so a weight drawn white still shows its edge.
pub fn filter_tile(layer: &Layer, k: u32, per_channel: bool, zoom: u32) -> RgbImage {
    filter_tile_scaled(layer, k, per_channel, zoom.max(1), weight_scale(layer))
}

fn filter_tile_scaled(layer: &Layer, k: u32, per_channel: bool, zoom: u32, scale: f32) -> RgbImage {
    let spec = &layer.spec;
    let (fh, fw) = (spec.kernel_height, spec.kernel_width);
    let channels = spec.channels_per_group();
    let per_filter = (channels * fh * fw) as usize;
    let start = k as usize * per_filter;
    let weights = layer.weight.get(start..start + per_filter).unwrap_or(&[]);
    let level = |c: u32, y: u32, x: u32| {
        weights
            .get(((c * fh + y) * fw + x) as usize)
            .map_or(128, |&w| weight_level(w, scale))
    };
    let (width, height) = tile_size(layer, per_channel, zoom);
    let mut tile = RgbImage::from_pixel(width, height, Rgb(BACKGROUND));
    let blocks = channel_tiles(layer, per_channel);
    let block_width = fw * zoom + 2 * FRAME;
    for block in 0..blocks {
        let left = block * (block_width + CHANNEL_GAP);
        for y in 0..height {
            for x in left..left + block_width {
                let (wx, wy) = (x - left, y);
                let inside = (FRAME..block_width - FRAME).contains(&wx)
                    && (FRAME..height - FRAME).contains(&wy);
                let colour = if !inside {
                    FRAME_COLOUR
                } else {
                    let (kx, ky) = ((wx - FRAME) / zoom, (wy - FRAME) / zoom);
                    if blocks == 1 && channels == 3 {
                        [level(0, ky, kx), level(1, ky, kx), level(2, ky, kx)]
                    } else {
                        [level(block, ky, kx); 3]
                    }
                };
                tile.put_pixel(x, y, Rgb(colour));
            }
        }
    }
    tile
}

/// A bias as its label reads: `b=-0.123` (three decimals; scientific
/// notation for magnitudes under 0.001 or from 1000 on).
pub fn bias_label(bias: f32) -> String {
    let magnitude = bias.abs();
    if bias == 0.0 {
        "b=0".to_string()
    } else if (0.001..1000.0).contains(&magnitude) {
        format!("b={bias:.3}")
    } else {
        format!("b={bias:.1e}")
    }
}

/// Where everything goes in the filters picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FiltersLayout {
    /// Filters per row: `grid_shape(K).0`, as in the maps grid.
    pub columns: u32,
    /// Rows of filters.
    pub rows: u32,
    /// Each weight is a `zoom`×`zoom` square.
    pub zoom: u32,
    /// Size of one filter's picture.
    pub tile_width: u32,
    /// Size of one filter's picture.
    pub tile_height: u32,
    /// Height of the bias label under each filter (0 without bias).
    pub label_height: u32,
    /// Width of one cell (filter or its label, whichever is wider).
    pub cell_width: u32,
    /// Height of one cell: the filter, the label gap and the label.
    pub cell_height: u32,
    /// Picture width: columns·cell_width + (columns + 1)·FILTER_GAP.
    pub width: u32,
    /// Picture height: rows·cell_height + (rows + 1)·FILTER_GAP.
    pub height: u32,
}

impl FiltersLayout {
    /// The layout of `layer`'s filters: enlarged by the smallest integer
    /// factor that makes them [`MIN_FILTER_HEIGHT`] tall, or less where the
    /// picture would pass [`GRID_MAX_SIDE`] (but at least 1).
    pub fn new(layer: &Layer, per_channel: bool) -> Self {
        let count = layer.spec.filters.max(1);
        let (columns, rows) = grid_shape(count);
        let (label_width, label_height) = if layer.bias.is_empty() {
            (0, 0)
        } else {
            layer.bias.iter().fold((0, 0), |(w, h), &b| {
                let (bw, bh) = text_size(&bias_label(b), LABEL_SCALE);
                (w.max(bw), h.max(bh))
            })
        };
        let make = |zoom: u32| {
            let (tile_width, tile_height) = tile_size(layer, per_channel, zoom);
            let cell_width = tile_width.max(label_width);
            let cell_height = tile_height
                + if label_height > 0 {
                    LABEL_GAP + label_height
                } else {
                    0
                };
            FiltersLayout {
                columns,
                rows,
                zoom,
                tile_width,
                tile_height,
                label_height,
                cell_width,
                cell_height,
                width: super::span(columns, cell_width, FILTER_GAP),
                height: super::span(rows, cell_height, FILTER_GAP),
            }
        };
        let wanted = MIN_FILTER_HEIGHT
            .div_ceil(layer.spec.kernel_height.max(1))
            .max(1);
        (1..=wanted)
            .rev()
            .map(make)
            .find(|l| l.width <= GRID_MAX_SIDE && l.height <= GRID_MAX_SIDE)
            .unwrap_or_else(|| make(1))
    }

    /// Top-left corner of filter `index`'s cell.
    pub fn cell_origin(&self, index: u32) -> (u32, u32) {
        let (column, row) = (index % self.columns, index / self.columns);
        (
            FILTER_GAP + column * (self.cell_width + FILTER_GAP),
            FILTER_GAP + row * (self.cell_height + FILTER_GAP),
        )
    }

    /// Top-left corner of filter `index`'s picture (centred in its cell).
    pub fn tile_origin(&self, index: u32) -> (u32, u32) {
        let (x, y) = self.cell_origin(index);
        (x + (self.cell_width - self.tile_width) / 2, y)
    }
}

/// The zoom [`filters_picture`] draws `layer` at, for [`filter_tile`]
/// pictures that match it.
pub fn filter_zoom(layer: &Layer, per_channel: bool) -> u32 {
    FiltersLayout::new(layer, per_channel).zoom
}

/// Every filter of `layer` as a picture, in filter order, in a near-square
/// grid with the maps grid's column count (filter i sits where map i sits),
/// on a white background: each filter drawn by [`filter_tile`] at
/// [`filter_zoom`], with its bias ([`bias_label`]) printed underneath when
/// the layer has biases.
pub fn filters_picture(layer: &Layer, per_channel: bool) -> RgbImage {
    let layout = FiltersLayout::new(layer, per_channel);
    let scale = weight_scale(layer);
    let mut picture = RgbImage::from_pixel(layout.width, layout.height, Rgb(BACKGROUND));
    for k in 0..layer.spec.filters {
        let tile = filter_tile_scaled(layer, k, per_channel, layout.zoom, scale);
        let (x, y) = layout.tile_origin(k);
        image::imageops::replace(&mut picture, &tile, x as i64, y as i64);
        if let Some(&bias) = layer.bias.get(k as usize) {
            let text = bias_label(bias);
            let (text_width, _) = text_size(&text, LABEL_SCALE);
            let (cell_x, cell_y) = layout.cell_origin(k);
            let text_x = cell_x + layout.cell_width.saturating_sub(text_width) / 2;
            let text_y = cell_y + layout.tile_height + LABEL_GAP;
            draw_text(
                &mut picture,
                text_x,
                text_y,
                &text,
                LABEL_SCALE,
                LABEL_COLOUR,
                None,
            );
        }
    }
    picture
}
