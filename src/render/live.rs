//! The live part of `index.html`: the data the page computes with, the
//! shader it runs and its script, all embedded at build time.
//!
//! In a WebGPU browser the page runs `shaders/conv2d_direct.wgsl` itself on
//! the photo's preview with the run's weights and biases, lets a person edit
//! a filter, and shows one output value's sum. `index.html#selftest`
//! compares its maps with maps the native run computed on the same preview.

use serde_json::json;

use crate::cpu::conv2d_direct_pixel;
use crate::error::Result;
use crate::layer::Layer;
use crate::tensor::Tensor3;

/// The teaching shader, verbatim.
pub const SHADER: &str = include_str!("../../shaders/conv2d_direct.wgsl");

/// The page's script: plain JavaScript, no build step.
pub const SCRIPT: &str = include_str!("live.js");

/// Filters whose native maps the page checks itself against.
pub const CHECKED_FILTERS: u32 = 2;

/// Most values of one native map embedded for the check; a bigger map is
/// sampled every `step` values (row-major), so the page stays small.
pub const CHECKED_VALUES: usize = 4096;

/// The preview as the layer's input `[3, H, W]`: each 8-bit sample / 255,
/// as the native run reads a photo.
pub fn preview_tensor(preview: &image::RgbImage) -> Tensor3 {
    let (width, height) = preview.dimensions();
    let mut tensor = Tensor3::zeros(3, height, width);
    let plane = (width * height) as usize;
    for (i, pixel) in preview.pixels().enumerate() {
        for c in 0..3 {
            tensor.data[c * plane + i] = pixel.0[c] as f32 / 255.0;
        }
    }
    tensor
}

/// The page's data as JSON, ready to sit inside a `<script>` element: the
/// photo's `name` (any text: escaped like the rest), the preview (8-bit RGB, base64), the layer's geometry, its f32 weights
/// `[K, C/G, FH, FW]` and biases `[K]` (base64 of little-endian f32), and
/// the native maps of the first [`CHECKED_FILTERS`] filters on the preview.
pub fn live_data(name: &str, preview: &image::RgbImage, layer: &Layer) -> Result<String> {
    let input = preview_tensor(preview);
    let (out_height, out_width) = layer.output_size_for(&input)?;
    let spec = &layer.spec;
    let (step, checked) = native_maps(&input, layer, out_height, out_width);
    let data = json!({
        "name": name,
        "width": input.width,
        "height": input.height,
        "rgb": base64(preview.as_raw()),
        "layer": {
            "filters": spec.filters,
            "channels": spec.in_channels,
            "kernelHeight": spec.kernel_height,
            "kernelWidth": spec.kernel_width,
            "stride": spec.stride,
            "padTop": spec.padding.top,
            "padLeft": spec.padding.left,
            "dilation": spec.dilation,
            "groups": spec.groups,
            "hasBias": !layer.bias.is_empty(),
            "activation": spec.activation.code(),
        },
        "outHeight": out_height,
        "outWidth": out_width,
        "weight": f32_base64(&layer.weight),
        "bias": f32_base64(&layer.bias),
        "check": {
            "filters": spec.filters.min(CHECKED_FILTERS),
            "step": step,
            "values": f32_base64(&checked),
        },
    });
    Ok(script_json(&data.to_string()))
}

/// The first [`CHECKED_FILTERS`] maps on `input`, each sampled every `step`
/// values (row-major), computed by the CPU reference; returns `step` and
/// the values, map after map.
fn native_maps(
    input: &Tensor3,
    layer: &Layer,
    out_height: u32,
    out_width: u32,
) -> (usize, Vec<f32>) {
    let plane = out_height as usize * out_width as usize;
    let step = plane.div_ceil(CHECKED_VALUES).max(1);
    let filters = layer.spec.filters.min(CHECKED_FILTERS);
    let mut values = Vec::new();
    for k in 0..filters {
        for i in (0..plane).step_by(step) {
            let (y, x) = (
                (i / out_width as usize) as u32,
                (i % out_width as usize) as u32,
            );
            values.push(conv2d_direct_pixel(input, layer, x, y, k));
        }
    }
    (step, values)
}

/// JSON text safe inside `<script>`: every `<` written as `\u003c`, so no
/// text in it can close the element or open a comment.
pub fn script_json(json: &str) -> String {
    json.replace('<', "\\u003c")
}

/// `values` as little-endian bytes, in base64.
pub fn f32_base64(values: &[f32]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    base64(&bytes)
}

/// Standard base64 (RFC 4648, with `=` padding).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(f32_base64(&[1.0]), "AACAPw==");
    }

    #[test]
    fn embedded_sources_cannot_close_their_script() {
        for source in [SHADER, SCRIPT] {
            let lower = source.to_ascii_lowercase();
            assert!(!lower.contains("</script") && !lower.contains("<!--"));
        }
        assert_eq!(script_json("\"</script>\""), "\"\\u003c/script>\"");
    }
}
