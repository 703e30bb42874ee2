//! One value of a conv's map as its arithmetic, on a network's page: what
//! the page embeds for it (the conv's geometry, its weights and bias, and
//! its input, as f16 copies, for as many convs as fit a budget) and the
//! script that reads it (`arithmetic.js`). Hovering a map opened large then
//! shows the value as one window sum per input channel, `+ bias = value`.

use serde_json::json;

use super::live::{base64, f32_base64};

/// Most bytes of f16 copies a page embeds for its convs' arithmetic: the
/// weights and inputs of the convs that fit, in the order they run.
pub const BUDGET_BYTES: usize = 4 << 20;

/// The page's script: reads the embedded copies, sums one window channel
/// by channel, draws a filter one channel at a time.
pub const SCRIPT: &str = include_str!("arithmetic.js");

/// A conv's geometry, as ONNX states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// `[FH, FW]`.
    pub kernel: [u32; 2],
    /// `[height, width]` steps between windows.
    pub strides: [u32; 2],
    /// Zero padding `[top, left, bottom, right]`.
    pub pads: [u32; 4],
    /// `[height, width]` steps between taps.
    pub dilations: [u32; 2],
    /// Groups G.
    pub groups: u32,
}

/// Bytes the copies of a conv with `weights` weights and biases take, with
/// an input of `input` values not yet embedded for another conv.
pub fn cost(weights: usize, input: usize) -> usize {
    2 * (weights + input)
}

/// `values` as IEEE 754 half floats, little-endian, in base64 (about three
/// decimal digits each: the page says its sums are from these copies).
pub fn f16_base64(values: &[f32]) -> String {
    let bytes: Vec<u8> = values
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    base64(&bytes)
}

/// A conv for the page: its geometry, its weights `[K, C/G, FH, FW]` (f16),
/// its biases `[K]` (f32, null without), and the name of its input in the
/// page's `inputs`.
pub fn conv_json(
    geometry: Geometry,
    (weight, filters): (&[f32], usize),
    bias: Option<&[f32]>,
    input: &str,
) -> serde_json::Value {
    json!({
        "kernel": geometry.kernel,
        "strides": geometry.strides,
        "pads": geometry.pads,
        "dilations": geometry.dilations,
        "groups": geometry.groups,
        "filters": filters,
        "weight": f16_base64(weight),
        "bias": bias.map(f32_base64),
        "input": input,
    })
}

/// An input `[C, H, W]` for the page's `inputs` (f16).
pub fn input_json(shape: [usize; 3], values: &[f32]) -> serde_json::Value {
    json!({ "shape": shape, "values": f16_base64(values) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_copies_are_little_endian_ieee_halves() {
        // 1.0 is 0x3C00, −2.0 is 0xC000, 65504 the largest half.
        assert_eq!(
            f16_base64(&[1.0, -2.0, 65504.0]),
            base64(&[0x00, 0x3C, 0x00, 0xC0, 0xFF, 0x7B])
        );
    }

    #[test]
    fn the_budget_counts_two_bytes_a_value() {
        assert_eq!(cost(10, 5), 30);
    }
}
