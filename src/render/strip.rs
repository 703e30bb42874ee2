//! A layer's strip of thumbnails on a stack's or a network's page: its
//! first maps, shrunk and embedded as 8-bit values, so that the page can
//! draw them in any colour map, normalisation and ReLU view without a new
//! run (`strips.js`). The run's own pictures stay as they were drawn.

use serde_json::json;

use super::arithmetic::extend_bytes;
use super::live::base64;

/// Maps a strip shows at most; the layer's grid shows them all.
pub const STRIP_MAPS: usize = 16;

/// Largest side of a thumbnail, in values.
pub const THUMBNAIL_SIDE: usize = 32;

/// The strip of `maps` `[K, H, W]` (row-major): the first
/// [`STRIP_MAPS`], each shrunk to at most [`THUMBNAIL_SIDE`] a side by
/// averaging the values each thumbnail pixel covers, then stored as bytes
/// over its own range: `{count, maps, width, height, lo, hi, bytes}`
/// (`maps` is K, `count` how many the strip holds).
pub fn strip_json(maps: &[f32], [count, height, width]: [usize; 3]) -> serde_json::Value {
    let shown = count.min(STRIP_MAPS);
    let (small_height, small_width) = (height.min(THUMBNAIL_SIDE), width.min(THUMBNAIL_SIDE));
    let plane = height * width;
    let mut lows = Vec::with_capacity(shown);
    let mut highs = Vec::with_capacity(shown);
    let mut bytes = Vec::with_capacity(shown * small_height * small_width);
    for map in maps.chunks(plane.max(1)).take(shown) {
        let small = shrink(map, [height, width], [small_height, small_width]);
        let (lo, hi) = extend_bytes(&mut bytes, &small);
        lows.push(lo);
        highs.push(hi);
    }
    json!({
        "count": shown,
        "maps": count,
        "width": small_width,
        "height": small_height,
        "lo": lows,
        "hi": highs,
        "bytes": base64(&bytes),
    })
}

/// `map` `[H, W]` shrunk to `[h, w]` (each no larger): each value the mean
/// of the values its cell covers, cell y spanning rows ⌊y·H/h⌋..⌊(y+1)·H/h⌋.
fn shrink(map: &[f32], [height, width]: [usize; 2], [h, w]: [usize; 2]) -> Vec<f32> {
    let mut small = Vec::with_capacity(h * w);
    for y in 0..h {
        let rows = y * height / h..(y + 1) * height / h;
        for x in 0..w {
            let columns = x * width / w..(x + 1) * width / w;
            let mut sum = 0.0f64;
            for row in rows.clone() {
                sum += map[row * width + columns.start..row * width + columns.end]
                    .iter()
                    .map(|&v| v as f64)
                    .sum::<f64>();
            }
            small.push((sum / (rows.len() * columns.len()) as f64) as f32);
        }
    }
    small
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_map_is_kept_and_a_large_one_averaged() {
        assert_eq!(
            shrink(&[1.0, 2.0, 3.0, 4.0], [2, 2], [2, 2]),
            vec![1.0, 2.0, 3.0, 4.0]
        );
        // 4×4 to 2×2: the mean of each 2×2 block.
        let map: Vec<f32> = (0..16).map(|v| v as f32).collect();
        assert_eq!(shrink(&map, [4, 4], [2, 2]), vec![2.5, 4.5, 10.5, 12.5]);
    }

    #[test]
    fn a_strip_holds_the_first_maps_as_bytes_over_their_range() {
        let maps: Vec<f32> = (0..20).flat_map(|k| [k as f32, k as f32 + 1.0]).collect();
        let strip = strip_json(&maps, [20, 1, 2]);
        assert_eq!(strip["count"], STRIP_MAPS);
        assert_eq!(strip["maps"], 20);
        assert_eq!(strip["lo"][3], 3.0);
        assert_eq!(strip["hi"][3], 4.0);
        let bytes: Vec<u8> = (0..STRIP_MAPS).flat_map(|_| [0u8, 255]).collect();
        assert_eq!(strip["bytes"], base64(&bytes));
    }
}
