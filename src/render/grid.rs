//! The grid of all maps in colour, each tile labelled with its filter
//! index: [`RgbGridTile`] shrinks one map while its rows stream past, and
//! [`labelled_grid`] lays the tiles out.

use image::{Rgb, RgbImage};

use super::label::{draw_text, text_size};
use super::{GRID_BACKGROUND, GRID_GAP, GRID_MAX_SIDE, grid_shape, grid_tile_size};

/// Tiles smaller than this (on their shorter side) are enlarged by an
/// integer factor, nearest-neighbour, when the picture has room, so tiny
/// maps stay visible and their labels cover only a corner.
pub const MIN_TILE_SIDE: u32 = 48;
/// A tile shorter or narrower than this (after enlargement) gets no label.
pub const MIN_LABELLED_SIDE: u32 = 6;
/// Label text colour (white).
pub const LABEL_FG: [u8; 3] = [255, 255, 255];
/// Label box colour (black).
pub const LABEL_BG: [u8; 3] = [0, 0, 0];

/// One map's tile of the colour grid, built row by row while the map
/// streams past: each tile pixel is the mean of the map pixels that fall in
/// it (a box filter, per colour channel), so any map size shrinks to the
/// tile without holding the map. Rows may arrive in any order.
pub struct RgbGridTile {
    map_width: u32,
    map_height: u32,
    tile_width: u32,
    tile_height: u32,
    sums: Vec<u32>,
    /// Tile column of each map column, `[map_width]`.
    column_tiles: Vec<u32>,
}

impl RgbGridTile {
    /// An empty tile of `tile_width`×`tile_height` for a `map_width`×`map_height`
    /// map (usually [`grid_tile_size`]; a tile larger than its map leaves
    /// background pixels, so use [`labelled_grid`]'s enlargement instead).
    pub fn new(map_width: u32, map_height: u32, tile_width: u32, tile_height: u32) -> Self {
        RgbGridTile {
            map_width: map_width.max(1),
            map_height: map_height.max(1),
            tile_width: tile_width.max(1),
            tile_height: tile_height.max(1),
            sums: vec![0; tile_width.max(1) as usize * tile_height.max(1) as usize * 3],
            column_tiles: (0..map_width.max(1))
                .map(|x| (x as u64 * tile_width.max(1) as u64 / map_width.max(1) as u64) as u32)
                .collect(),
        }
    }

    /// The tile for map `count` of `map_width`×`map_height`, sized by
    /// [`grid_tile_size`].
    pub fn for_grid(count: u32, map_width: u32, map_height: u32) -> Self {
        let (tile_width, tile_height) = grid_tile_size(count, map_width, map_height);
        RgbGridTile::new(map_width, map_height, tile_width, tile_height)
    }

    /// Tile width in pixels.
    pub fn width(&self) -> u32 {
        self.tile_width
    }

    /// Tile height in pixels.
    pub fn height(&self) -> u32 {
        self.tile_height
    }

    fn tile_x(&self, x: u32) -> usize {
        (x as u64 * self.tile_width as u64 / self.map_width as u64) as usize
    }

    fn tile_y(&self, y: u32) -> usize {
        (y as u64 * self.tile_height as u64 / self.map_height as u64) as usize
    }

    /// Adds map rows starting at `first_row`; `pixels` holds whole rows of
    /// interleaved RGB (3 bytes per map pixel). Rows past the map's last
    /// are ignored.
    pub fn add_rows(&mut self, first_row: u32, pixels: &[u8]) {
        let row_bytes = self.map_width as usize * 3;
        for (i, row) in pixels.chunks_exact(row_bytes).enumerate() {
            let y = first_row as u64 + i as u64;
            if y >= self.map_height as u64 {
                break;
            }
            let base = self.tile_y(y as u32) * self.tile_width as usize;
            for (rgb, &column) in row.chunks_exact(3).zip(&self.column_tiles) {
                let index = (base + column as usize) * 3;
                self.sums[index] += rgb[0] as u32;
                self.sums[index + 1] += rgb[1] as u32;
                self.sums[index + 2] += rgb[2] as u32;
            }
        }
    }

    /// [`RgbGridTile::add_rows`] for grey rows (1 byte per map pixel), drawn
    /// as equal red, green and blue. Each row is summed per tile column
    /// first, one addition per map pixel, then spread to the three channels.
    pub fn add_gray_rows(&mut self, first_row: u32, pixels: &[u8]) {
        let mut row_sums = vec![0u32; self.tile_width as usize];
        for (i, row) in pixels.chunks_exact(self.map_width as usize).enumerate() {
            let y = first_row as u64 + i as u64;
            if y >= self.map_height as u64 {
                break;
            }
            row_sums.fill(0);
            for (&value, &column) in row.iter().zip(&self.column_tiles) {
                row_sums[column as usize] += value as u32;
            }
            let base = self.tile_y(y as u32) * self.tile_width as usize * 3;
            let tile_row = &mut self.sums[base..base + row_sums.len() * 3];
            for (rgb, &sum) in tile_row.chunks_exact_mut(3).zip(&row_sums) {
                for channel in rgb {
                    *channel += sum;
                }
            }
        }
    }

    /// The tile's pixels, interleaved RGB, `[tile_height, tile_width, 3]`.
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
                let pixel = i / 3;
                let n = rows[pixel / self.tile_width as usize]
                    * columns[pixel % self.tile_width as usize];
                if n == 0 {
                    GRID_BACKGROUND
                } else {
                    (sum as f64 / n as f64).round() as u8
                }
            })
            .collect()
    }

    /// The tile as a picture.
    pub fn image(&self) -> RgbImage {
        RgbImage::from_raw(self.tile_width, self.tile_height, self.pixels())
            .unwrap_or_else(|| RgbImage::new(self.tile_width, self.tile_height))
    }
}

/// Where everything goes in the labelled grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GridLayout {
    /// Tiles per row: `grid_shape(count).0`.
    pub columns: u32,
    /// Rows of tiles.
    pub rows: u32,
    /// Integer enlargement of each tile (1: tiles as they are).
    pub zoom: u32,
    /// Width of a drawn tile: tile width × zoom.
    pub cell_width: u32,
    /// Height of a drawn tile: tile height × zoom.
    pub cell_height: u32,
    /// Picture width: columns·cell_width + (columns + 1)·GRID_GAP.
    pub width: u32,
    /// Picture height: rows·cell_height + (rows + 1)·GRID_GAP.
    pub height: u32,
    /// Scale of the label font (0: no labels, the tiles are too small).
    pub label_scale: u32,
}

impl GridLayout {
    /// The layout of `count` tiles of `tile_width`×`tile_height`: a
    /// near-square grid ([`grid_shape`]) with [`GRID_GAP`] between and
    /// around the tiles. Tiles whose shorter side is under
    /// [`MIN_TILE_SIDE`] are enlarged by the smallest integer factor that
    /// reaches it, or less where the picture would grow past
    /// [`GRID_MAX_SIDE`].
    pub fn new(count: u32, tile_width: u32, tile_height: u32) -> Self {
        let (columns, rows) = grid_shape(count);
        let (tile_width, tile_height) = (tile_width.max(1), tile_height.max(1));
        let short = tile_width.min(tile_height);
        let wanted = MIN_TILE_SIDE.div_ceil(short).max(1);
        let room = |tiles: u32, side: u32| {
            (GRID_MAX_SIDE.saturating_sub((tiles + 1) * GRID_GAP) as u64
                / (tiles as u64 * side as u64))
                .min(u32::MAX as u64) as u32
        };
        let zoom = wanted
            .min(room(columns, tile_width))
            .min(room(rows, tile_height))
            .max(1);
        let (cell_width, cell_height) = (tile_width * zoom, tile_height * zoom);
        let cell_short = cell_width.min(cell_height);
        let label_scale = if cell_short < MIN_LABELLED_SIDE {
            0
        } else {
            (cell_short / 40).clamp(1, 4)
        };
        GridLayout {
            columns,
            rows,
            zoom,
            cell_width,
            cell_height,
            width: super::span(columns, cell_width, GRID_GAP),
            height: super::span(rows, cell_height, GRID_GAP),
            label_scale,
        }
    }

    /// Top-left corner of tile `index` in the picture.
    pub fn origin(&self, index: u32) -> (u32, u32) {
        let (column, row) = (index % self.columns, index / self.columns);
        (
            GRID_GAP + column * (self.cell_width + GRID_GAP),
            GRID_GAP + row * (self.cell_height + GRID_GAP),
        )
    }
}

/// Lays finished tiles (in map order, all the size of the first) out in a
/// near-square grid ([`GridLayout`]), with white gaps between and around
/// them, and draws `labels[i]` (when there is one and it is not empty) in
/// the top-left corner of tile `i`: white on a black box, clipped to the
/// tile, its size growing with the tile; tiles under
/// [`MIN_LABELLED_SIDE`] pixels get no label.
pub fn labelled_grid(tiles: &[RgbGridTile], labels: &[String]) -> RgbImage {
    let (tile_width, tile_height) = tiles.first().map_or((1, 1), |t| (t.width(), t.height()));
    let layout = GridLayout::new(tiles.len() as u32, tile_width, tile_height);
    let mut picture = RgbImage::from_pixel(layout.width, layout.height, Rgb([GRID_BACKGROUND; 3]));
    for (index, tile) in tiles.iter().enumerate() {
        let mut cell = tile.image();
        if layout.zoom > 1 {
            cell = image::imageops::resize(
                &cell,
                cell.width() * layout.zoom,
                cell.height() * layout.zoom,
                image::imageops::FilterType::Nearest,
            );
        }
        if cell.width() != layout.cell_width || cell.height() != layout.cell_height {
            cell = image::imageops::crop_imm(&cell, 0, 0, layout.cell_width, layout.cell_height)
                .to_image();
        }
        let label = labels.get(index).map(String::as_str).unwrap_or("");
        if layout.label_scale > 0 && !label.is_empty() {
            draw_text(
                &mut cell,
                0,
                0,
                label,
                layout.label_scale,
                LABEL_FG,
                Some(LABEL_BG),
            );
        }
        let (x, y) = layout.origin(index as u32);
        image::imageops::replace(&mut picture, &cell, x as i64, y as i64);
    }
    picture
}

/// Where the label of tile `index` lies in the picture, `(x, y, width,
/// height)`, clipped to the tile; `None` when it draws none.
pub fn label_rect(layout: &GridLayout, index: u32, label: &str) -> Option<(u32, u32, u32, u32)> {
    if layout.label_scale == 0 || label.is_empty() {
        return None;
    }
    let (w, h) = text_size(label, layout.label_scale);
    let (x, y) = layout.origin(index);
    Some((x, y, w.min(layout.cell_width), h.min(layout.cell_height)))
}

/// Tiles whole maps (each `width`×`height`, interleaved RGB) into the
/// labelled grid, each labelled with its index.
pub fn rgb_grid(maps: &[Vec<u8>], width: u32, height: u32) -> RgbImage {
    let count = maps.len() as u32;
    let tiles: Vec<RgbGridTile> = maps
        .iter()
        .map(|map| {
            let mut tile = RgbGridTile::for_grid(count, width, height);
            tile.add_rows(0, map);
            tile
        })
        .collect();
    let labels: Vec<String> = (0..count).map(|k| k.to_string()).collect();
    labelled_grid(&tiles, &labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_rows_give_the_tile_of_the_same_rows_as_rgb() {
        let (width, height) = (37u32, 29u32);
        let grey: Vec<u8> = (0..width * height).map(|i| (i * 53 % 256) as u8).collect();
        let rgb: Vec<u8> = grey.iter().flat_map(|&g| [g; 3]).collect();
        let mut from_grey = RgbGridTile::new(width, height, 10, 7);
        let mut from_rgb = RgbGridTile::new(width, height, 10, 7);
        // In two pieces, the second first: rows may come in any order.
        let split = 13 * width as usize;
        from_grey.add_gray_rows(13, &grey[split..]);
        from_grey.add_gray_rows(0, &grey[..split]);
        from_rgb.add_rows(0, &rgb);
        assert_eq!(from_grey.pixels(), from_rgb.pixels());
    }
}
