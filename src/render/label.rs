//! A tiny built-in bitmap font (3×5 pixels per glyph) for labels drawn
//! into pictures: filter indices, biases, short numbers.
//!
//! Digits, `- + . , = : / ( ) ? %`, space and the lowercase letters
//! `a b c d e f h i k m n o r s t x` have glyphs; an uppercase letter uses
//! its lowercase glyph, and any other character is drawn as `?`.

use image::{Rgb, RgbImage};

/// Width of a glyph, in font pixels.
pub const GLYPH_WIDTH: u32 = 3;
/// Height of a glyph, in font pixels.
pub const GLYPH_HEIGHT: u32 = 5;
/// Distance from one glyph to the next, in font pixels (one blank column).
const ADVANCE: u32 = GLYPH_WIDTH + 1;

/// The rows of `c`'s glyph, top first; bit 2 is the left column.
fn glyph(c: char) -> [u8; 5] {
    match c {
        '0' => [0b111, 0b101, 0b101, 0b101, 0b111],
        '1' => [0b010, 0b110, 0b010, 0b010, 0b111],
        '2' => [0b111, 0b001, 0b111, 0b100, 0b111],
        '3' => [0b111, 0b001, 0b111, 0b001, 0b111],
        '4' => [0b101, 0b101, 0b111, 0b001, 0b001],
        '5' => [0b111, 0b100, 0b111, 0b001, 0b111],
        '6' => [0b111, 0b100, 0b111, 0b101, 0b111],
        '7' => [0b111, 0b001, 0b001, 0b010, 0b010],
        '8' => [0b111, 0b101, 0b111, 0b101, 0b111],
        '9' => [0b111, 0b101, 0b111, 0b001, 0b111],
        '-' => [0b000, 0b000, 0b111, 0b000, 0b000],
        '+' => [0b000, 0b010, 0b111, 0b010, 0b000],
        '.' => [0b000, 0b000, 0b000, 0b000, 0b010],
        ',' => [0b000, 0b000, 0b000, 0b010, 0b100],
        '=' => [0b000, 0b111, 0b000, 0b111, 0b000],
        ':' => [0b000, 0b010, 0b000, 0b010, 0b000],
        '/' => [0b001, 0b001, 0b010, 0b100, 0b100],
        '(' => [0b010, 0b100, 0b100, 0b100, 0b010],
        ')' => [0b010, 0b001, 0b001, 0b001, 0b010],
        '%' => [0b101, 0b001, 0b010, 0b100, 0b101],
        ' ' => [0b000; 5],
        'a' => [0b000, 0b011, 0b101, 0b101, 0b011],
        'b' => [0b100, 0b100, 0b111, 0b101, 0b111],
        'c' => [0b000, 0b011, 0b100, 0b100, 0b011],
        'd' => [0b001, 0b001, 0b011, 0b101, 0b011],
        'e' => [0b000, 0b011, 0b111, 0b100, 0b011],
        'f' => [0b011, 0b100, 0b110, 0b100, 0b100],
        'h' => [0b100, 0b100, 0b110, 0b101, 0b101],
        'i' => [0b010, 0b000, 0b010, 0b010, 0b010],
        'k' => [0b100, 0b101, 0b110, 0b101, 0b101],
        'm' => [0b000, 0b111, 0b111, 0b101, 0b101],
        'n' => [0b000, 0b110, 0b101, 0b101, 0b101],
        'o' => [0b000, 0b010, 0b101, 0b101, 0b010],
        'r' => [0b000, 0b101, 0b110, 0b100, 0b100],
        's' => [0b000, 0b011, 0b110, 0b011, 0b110],
        't' => [0b010, 0b111, 0b010, 0b010, 0b011],
        'x' => [0b000, 0b000, 0b101, 0b010, 0b101],
        c if c.is_ascii_uppercase() => glyph(c.to_ascii_lowercase()),
        _ => [0b111, 0b001, 0b010, 0b000, 0b010],
    }
}

/// Size `(width, height)` in pixels of what [`draw_text`] covers for
/// `text` at `scale` (0 counts as 1): the glyphs, one blank column between
/// them and a margin of `scale` pixels all round (the background box).
/// `(0, 0)` for empty text.
pub fn text_size(text: &str, scale: u32) -> (u32, u32) {
    let scale = scale.max(1);
    let chars = text.chars().count() as u32;
    if chars == 0 {
        return (0, 0);
    }
    let width = (chars.saturating_mul(ADVANCE) - 1)
        .saturating_add(2)
        .saturating_mul(scale);
    let height = (GLYPH_HEIGHT + 2).saturating_mul(scale);
    (width, height)
}

/// Draws `text` with its top-left corner at (`x`, `y`), each font pixel
/// `scale`×`scale` image pixels (0 counts as 1), in `fg`, on a box of `bg`
/// as large as [`text_size`] (no box for `None`). Whatever falls outside
/// the image is clipped; this never panics.
pub fn draw_text(
    image: &mut RgbImage,
    x: u32,
    y: u32,
    text: &str,
    scale: u32,
    fg: [u8; 3],
    bg: Option<[u8; 3]>,
) {
    let scale = scale.max(1);
    let (width, height) = text_size(text, scale);
    let (x, y) = (x as u64, y as u64);
    let image_width = image.width() as u64;
    let mut fill = |left: u64, top: u64, w: u64, h: u64, colour: [u8; 3]| {
        let right = (left + w).min(image.width() as u64);
        let bottom = (top + h).min(image.height() as u64);
        for py in top..bottom {
            for px in left..right {
                image.put_pixel(px as u32, py as u32, Rgb(colour));
            }
        }
    };
    if let Some(bg) = bg {
        fill(x, y, width as u64, height as u64, bg);
    }
    let s = scale as u64;
    for (i, c) in text.chars().enumerate() {
        let left = x + s + i as u64 * ADVANCE as u64 * s;
        if left >= image_width {
            break;
        }
        for (row, bits) in glyph(c).iter().enumerate() {
            for column in 0..GLYPH_WIDTH {
                if bits & (0b100 >> column) != 0 {
                    let px = left + column as u64 * s;
                    let py = y + s + row as u64 * s;
                    fill(px, py, s, s, fg);
                }
            }
        }
    }
}
