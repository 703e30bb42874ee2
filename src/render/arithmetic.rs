//! One value of a conv's map as its arithmetic, on a stack's or a
//! network's page: what the page embeds for it (the conv's geometry, its
//! weights as f16 and its bias, its input as 8-bit copies, and the steps
//! after the conv, for as many convs as fit a budget) and the script that
//! reads it (`arithmetic.js`). Hovering a map opened large then shows the
//! value as one window sum per input channel, `+ bias = value`, and what
//! the steps after the conv make of it.

use serde_json::json;

use super::live::{base64, f32_base64};

/// Most mebibytes of copies a page embeds for its convs' arithmetic by
/// default (two bytes a weight, one an input value): the convs that fit, in
/// the order they run. `--page-budget` sets it.
pub const DEFAULT_BUDGET_MIB: u32 = 4;

/// Why a conv's arithmetic is not on the page, for a budget of `bytes`.
pub fn over_budget(bytes: usize) -> String {
    format!(
        "its weights and input are over the page's budget for arithmetic ({:.1} MiB of copies, \
         taken by the layers before it); --page-budget MIB embeds more",
        bytes as f64 / 1048576.0
    )
}

/// The page's script: reads the embedded copies, sums one window channel
/// by channel, draws a filter one channel at a time.
pub const SCRIPT: &str = include_str!("arithmetic.js");

/// What a stack's page embeds: per layer, in page order, its conv's
/// arithmetic ([`conv_json`]) or why the page has none, and its strip of
/// thumbnails (`strip::strip_json`); and the inputs the convs read
/// ([`input_json`]), by the name the page gives them.
#[derive(Debug, Default)]
pub struct Embedded {
    /// Per layer, in order.
    pub convs: Vec<std::result::Result<serde_json::Value, String>>,
    /// The inputs, by name.
    pub inputs: serde_json::Map<String, serde_json::Value>,
    /// Per layer, in order: its strip.
    pub strips: Vec<serde_json::Value>,
}

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
    2 * weights + input
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

/// A step after a conv, which the page applies to the conv's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// max(x, 0).
    Relu,
    /// The largest value of each `size`×`size` window, `stride` apart.
    MaxPool {
        /// Window side.
        size: u32,
        /// Step between windows.
        stride: u32,
    },
}

/// A conv for the page: its geometry, its weights `[K, C/G, FH, FW]` (f16),
/// its biases `[K]` (f32, null without), the name of its input in the
/// page's `inputs`, and the steps after it whose result the map shows.
pub fn conv_json(
    geometry: Geometry,
    (weight, filters): (&[f32], usize),
    bias: Option<&[f32]>,
    (input, then): (&str, &[Then]),
) -> serde_json::Value {
    let then: Vec<serde_json::Value> = then
        .iter()
        .map(|step| match *step {
            Then::Relu => json!({"op": "relu"}),
            Then::MaxPool { size, stride } => {
                json!({"op": "maxpool", "size": size, "stride": stride})
            }
        })
        .collect();
    json!({
        "then": then,
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

/// What the run computed for the page's self-test to hold its arithmetic
/// to: map 0 of `first` `[H, W]` (the layer's first map, row-major) at its
/// corners and centre, `[{map, x, y, value}]`, and `largest`, the largest
/// |value| of the layer's maps, which errors are measured against.
pub fn run_values(first: &[f32], [height, width]: [usize; 2], largest: f32) -> serde_json::Value {
    let points = [
        (0, 0),
        (width - 1, 0),
        (0, height - 1),
        (width - 1, height - 1),
        (width / 2, height / 2),
    ];
    let values: Vec<serde_json::Value> = points
        .iter()
        .map(|&(x, y)| json!({"map": 0, "x": x, "y": y, "value": first[y * width + x]}))
        .collect();
    json!({ "values": values, "largest": largest })
}

/// Appends `values` to `bytes` as bytes over their own range: each the
/// byte round(255·(v − lo)/(hi − lo)) (0 where the range is flat); returns
/// `(lo, hi)`. A page reads a byte q back as lo + q·(hi − lo)/255, within
/// (hi − lo)/510 of the value.
pub fn extend_bytes(bytes: &mut Vec<u8>, values: &[f32]) -> (f32, f32) {
    let lo = values.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let scale = if hi > lo { 255.0 / (hi - lo) } else { 0.0 };
    bytes.extend(
        values
            .iter()
            .map(|&v| ((v - lo) * scale).round().clamp(0.0, 255.0) as u8),
    );
    (lo, hi)
}

/// An input `[C, H, W]` for the page's `inputs`: each channel's smallest
/// and largest value, and each value as the byte round(255·(v − lo)/(hi −
/// lo)) of its channel's range (0 for a flat channel), in base64. A value
/// reads back within (hi − lo)/510 of itself.
pub fn input_json(shape: [usize; 3], values: &[f32]) -> serde_json::Value {
    let plane = shape[1] * shape[2];
    let mut lows = Vec::with_capacity(shape[0]);
    let mut highs = Vec::with_capacity(shape[0]);
    let mut bytes = Vec::with_capacity(values.len());
    for channel in values.chunks(plane.max(1)) {
        let (lo, hi) = extend_bytes(&mut bytes, channel);
        lows.push(lo);
        highs.push(hi);
    }
    json!({ "shape": shape, "lo": lows, "hi": highs, "bytes": base64(&bytes) })
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
    fn the_budget_counts_two_bytes_a_weight_and_one_an_input_value() {
        assert_eq!(cost(10, 5), 25);
    }

    #[test]
    fn an_input_is_a_byte_a_value_over_its_channels_range() {
        let json = input_json([2, 1, 3], &[0.0, 0.5, 1.0, 2.0, 2.0, 2.0]);
        assert_eq!(json["lo"], json!([0.0, 2.0]));
        assert_eq!(json["hi"], json!([1.0, 2.0]));
        // 0, 127.5 → 128, 255; a flat channel is all 0.
        assert_eq!(json["bytes"], base64(&[0, 128, 255, 0, 0, 0]));
    }
}
