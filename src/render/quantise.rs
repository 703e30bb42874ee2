//! How a band of feature maps becomes the 8-bit pixels of their PNGs: each
//! map normalised over its range and turned into grey levels or colours.
//!
//! [`Quantise`] says how (the colour map and each map's range), and
//! [`BandPixels`] holds the result laid out as `shaders/map_pictures.wgsl`'s
//! `quantise` entry point writes it. [`Quantise::pixels_cpu`] is its CPU
//! twin, and it is today's CPU colouring itself ([`super::extend_gray8`],
//! [`super::colormap::extend_rgb8`]), so that pictures made either way can
//! be compared value by value.

use rayon::prelude::*;

use super::colormap::{self, Colormap, TABLE_SIZE};
use crate::tensor::TensorView;

/// How the maps of one band become pixels: the colour map, and the value
/// range `(lo, hi)` each of the band's maps is drawn over (from
/// [`super::colormap::Normalize::range`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Quantise {
    /// The colour map; gray gives one byte a pixel, the others RGB.
    pub colormap: Colormap,
    /// `(lo, hi)` of each map of the band, in order.
    pub ranges: Vec<(f32, f32)>,
}

impl Quantise {
    /// Bytes per pixel: 1 (gray) or 3 (RGB).
    pub fn bytes_per_pixel(&self) -> usize {
        if self.colormap == Colormap::Gray {
            1
        } else {
            3
        }
    }

    /// The shader's per-map `(lo, scale, flat, 0)`: t = (v − lo)·scale, with
    /// scale = 255/(hi − lo) for gray levels and 1/(hi − lo) for a colour
    /// table, computed here in f32 as the CPU colouring computes it; flat
    /// (1.0) when the range has no width, as the CPU decides it.
    pub fn map_params(&self) -> Vec<[f32; 4]> {
        self.ranges
            .iter()
            .map(|&(lo, hi)| {
                let (flat, scale) = if self.colormap == Colormap::Gray {
                    (hi <= lo, 255.0 / (hi - lo))
                } else {
                    (
                        hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater),
                        1.0 / (hi - lo),
                    )
                };
                if flat {
                    [lo, 0.0, 1.0, 0.0]
                } else {
                    [lo, scale, 0.0, 0.0]
                }
            })
            .collect()
    }

    /// The colour table as the shader reads it: one `0x00BBGGRR` word per
    /// entry (one zero word for gray, which needs none).
    pub fn palette(&self) -> Vec<u32> {
        if self.colormap == Colormap::Gray {
            return vec![0];
        }
        self.colormap
            .table()
            .iter()
            .map(|&[r, g, b]| r as u32 | (g as u32) << 8 | (b as u32) << 16)
            .collect()
    }

    /// The table entry a NaN value gets: the middle for a diverging map,
    /// the first otherwise (as [`Colormap::colour_fast`]).
    pub fn nan_index(&self) -> u32 {
        if self.colormap.is_diverging() {
            (TABLE_SIZE as u32 - 1) / 2
        } else {
            0
        }
    }

    /// The last index of the colour table.
    pub fn table_last(&self) -> u32 {
        TABLE_SIZE as u32 - 1
    }

    /// Where each map's pixels lie for maps of `plane_len` values:
    /// `(map_len, map_stride)` in bytes, the stride a whole number of 4-byte
    /// words (the shader writes 4 pixels at a time).
    pub fn layout(&self, plane_len: usize) -> (usize, usize) {
        let map_len = plane_len * self.bytes_per_pixel();
        (map_len, plane_len.div_ceil(4) * 4 * self.bytes_per_pixel())
    }

    /// The CPU twin of the shader: the pixels of `maps` `[n, rows, OW]`
    /// (n = `ranges.len()`), coloured as the CPU has always coloured them,
    /// laid out as the shader lays them out.
    pub fn pixels_cpu(&self, maps: TensorView<'_>) -> BandPixels {
        let plane_len = maps.plane_len();
        let (map_len, map_stride) = self.layout(plane_len);
        let mut data = vec![0u8; map_stride * maps.channels as usize];
        if map_stride > 0 {
            data.par_chunks_mut(map_stride)
                .zip(maps.data.par_chunks(plane_len.max(1)))
                .zip(&self.ranges)
                .for_each(|((out, values), &(lo, hi))| {
                    let mut pixels = Vec::with_capacity(map_len);
                    if self.colormap == Colormap::Gray {
                        super::extend_gray8(&mut pixels, values, lo, hi);
                    } else {
                        colormap::extend_rgb8(&mut pixels, values, lo, hi, self.colormap);
                    }
                    out[..map_len].copy_from_slice(&pixels);
                });
        }
        BandPixels {
            data,
            maps: maps.channels,
            map_len,
            map_stride,
        }
    }
}

/// The 8-bit pixels of a band's maps: map k's `map_len` bytes (its rows of
/// grey levels or RGB triples) start at byte k·`map_stride`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BandPixels {
    /// The bytes, `maps`·`map_stride` of them.
    pub data: Vec<u8>,
    /// Maps in the band.
    pub maps: u32,
    /// Bytes of one map's pixels.
    pub map_len: usize,
    /// Bytes from one map's pixels to the next's.
    pub map_stride: usize,
}

impl BandPixels {
    /// Map `index`'s pixels, row after row.
    pub fn map(&self, index: u32) -> &[u8] {
        let start = index as usize * self.map_stride;
        &self.data[start..start + self.map_len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_cpu_pads_each_map_to_whole_words_and_colours_as_before() {
        let values: Vec<f32> = (0..10).map(|v| v as f32).collect();
        let maps = TensorView::new(2, 1, 5, &values);
        let gray = Quantise {
            colormap: Colormap::Gray,
            ranges: vec![(0.0, 4.0), (5.0, 5.0)],
        };
        let pixels = gray.pixels_cpu(maps);
        assert_eq!((pixels.map_len, pixels.map_stride), (5, 8));
        assert_eq!(
            pixels.map(0),
            super::super::to_gray8(&values[..5], 0.0, 4.0)
        );
        assert_eq!(pixels.map(1), &[128; 5]);
        let viridis = Quantise {
            colormap: Colormap::Viridis,
            ranges: vec![(0.0, 4.0), (5.0, 9.0)],
        };
        let pixels = viridis.pixels_cpu(maps);
        assert_eq!((pixels.map_len, pixels.map_stride), (15, 24));
        let expected = colormap::to_rgb8(&values[5..], 5.0, 9.0, Colormap::Viridis);
        assert_eq!(pixels.map(1), expected);
    }

    #[test]
    fn map_params_mark_a_range_without_width_as_flat() {
        let q = Quantise {
            colormap: Colormap::Rdbu,
            ranges: vec![(-2.0, 2.0), (1.0, 1.0)],
        };
        assert_eq!(
            q.map_params(),
            vec![[-2.0, 0.25, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0]]
        );
        assert_eq!(q.nan_index(), 512);
        assert_eq!(q.palette().len(), TABLE_SIZE);
    }
}
