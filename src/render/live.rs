//! The live part of `index.html`: the data the page computes with, the
//! shader it runs and its scripts, all embedded at build time.
//!
//! In a WebGPU browser the page runs `shaders/conv2d_direct.wgsl` itself on
//! the photo's preview with the run's weights and biases, lets a person edit
//! a filter, shows one output value's sum, redraws the maps in any of the
//! command line's colour maps and normalisations, and re-plans the layer
//! with fresh weights, the command line's own for a seed.
//! `index.html#selftest` compares its maps with maps the native run computed
//! on the same preview, for the run's layer and for a second geometry.

use serde_json::json;

use crate::banks::{Init, filter_bank};
use crate::cpu::conv2d_direct_pixel;
use crate::error::Result;
use crate::layer::{Layer, LayerSpec, Padding};
use crate::render::colormap::{Colormap, Normalize};
use crate::render::explore::{Drawing, view_json};
use crate::tensor::Tensor3;
use crate::weights::kaiming_uniform;

/// The teaching shader, verbatim.
pub const SHADER: &str = include_str!("../../shaders/conv2d_direct.wgsl");

/// The page's scripts, in the order they run (after `view.js`): the
/// command line's random initialisation and built-in banks, and the live
/// page. Plain JavaScript, no build step.
pub const SCRIPTS: [&str; 3] = [
    include_str!("random.js"),
    include_str!("banks.js"),
    include_str!("live.js"),
];

/// Filters whose native maps the page checks itself against.
pub const CHECKED_FILTERS: u32 = 2;

/// Most values of one native map embedded for the check; a bigger map is
/// sampled every `step` values (row-major), so the page stays small.
pub const CHECKED_VALUES: usize = 4096;

/// The seed of the second geometry the page re-plans to in its self-test.
pub const REPLAN_SEED: u64 = 7;

/// How the page starts: the weights and seed its re-planned layers take
/// first, and how the run drew its maps.
#[derive(Clone, Copy, Debug)]
pub struct LiveStart {
    /// The run's built-in weights (a bank, or random), or random where the
    /// run read a file.
    pub init: Init,
    /// The run's seed when its weights were random, else the default.
    pub seed: u64,
    /// The run's colour map.
    pub colormap: Colormap,
    /// The run's normalisation.
    pub normalize: Normalize,
}

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
/// photo's `name` (any text: escaped like the rest), the preview (8-bit
/// RGB, base64), the layer's geometry, its f32 weights `[K, C/G, FH, FW]`
/// and biases `[K]` (base64 of little-endian f32), the native maps of the
/// first [`CHECKED_FILTERS`] filters on the preview, how the maps start
/// drawn with every colour map's table, and the self-test's second
/// geometry with its native maps.
pub fn live_data(
    name: &str,
    preview: &image::RgbImage,
    layer: &Layer,
    start: LiveStart,
) -> Result<String> {
    let input = preview_tensor(preview);
    let (out_height, out_width) = layer.output_size_for(&input)?;
    let spec = &layer.spec;
    let p = spec.padding;
    let symmetric = p.top == p.bottom && p.left == p.right && p.top == p.left;
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
            "padTop": p.top,
            "padLeft": p.left,
            "padBottom": p.bottom,
            "padRight": p.right,
            "padding": symmetric.then_some(p.top),
            "dilation": spec.dilation,
            "groups": spec.groups,
            "hasBias": !layer.bias.is_empty(),
            "activation": spec.activation.code(),
        },
        "outHeight": out_height,
        "outWidth": out_width,
        "weight": f32_base64(&layer.weight),
        "bias": f32_base64(&layer.bias),
        "check": native_check(&input, layer, (out_height, out_width)),
        "seed": start.seed,
        "init": start.init.name(),
        "bankCheck": bank_check()?,
        "view": view_json(Drawing {
            colormap: start.colormap,
            normalize: start.normalize,
        }),
        "replanCheck": replan_check(&input, spec)?,
    });
    Ok(script_json(&data.to_string()))
}

/// The first [`CHECKED_FILTERS`] native maps of `layer` on `input`, sampled
/// as [`native_maps`] does: `{filters, step, values}`.
fn native_check(input: &Tensor3, layer: &Layer, (height, width): (u32, u32)) -> serde_json::Value {
    let (step, values) = native_maps(input, layer, height, width);
    json!({
        "filters": layer.spec.filters.min(CHECKED_FILTERS),
        "step": step,
        "values": f32_base64(&values),
    })
}

/// Every bank's weights for two shapes, as `banks::filter_bank` makes
/// them, for the page's self-test to hold its own banks (`banks.js`) to:
/// 8 filters of 3 channels × 5×4 (an even side), and 6 of 1 channel × 1×1
/// (where designs fall back to colour mixes).
fn bank_check() -> Result<serde_json::Value> {
    let shapes = [(8, 3, [5, 4]), (6, 1, [1, 1])];
    let mut checks = Vec::new();
    for (filters, channels, [height, width]) in shapes {
        let spec = LayerSpec {
            kernel_height: height,
            kernel_width: width,
            ..LayerSpec::new(channels, filters, height)
        };
        let mut banks = serde_json::Map::new();
        for init in Init::ALL.into_iter().filter(|&i| i != Init::Random) {
            let layer = filter_bank(init, spec, 0)?;
            banks.insert(init.name().to_string(), f32_base64(&layer.weight).into());
        }
        checks.push(json!({
            "shape": {
                "filters": filters,
                "channelsPerGroup": channels,
                "kernelHeight": height,
                "kernelWidth": width,
            },
            "banks": banks,
        }));
    }
    Ok(checks.into())
}

/// The second geometry the page's self-test re-plans to: 6 filters of 3×3
/// with stride 2, padding 1, dilation 2 and 3 groups (1×1 filters with
/// padding 1 where the preview is too small for that), with the command
/// line's random weights for [`REPLAN_SEED`]; with the formula, PyTorch
/// line, output size and native maps the page must reproduce.
fn replan_check(input: &Tensor3, run: &LayerSpec) -> Result<serde_json::Value> {
    let geometry = |kernel: u32, stride: u32, dilation: u32| LayerSpec {
        kernel_height: kernel,
        kernel_width: kernel,
        stride,
        padding: Padding::uniform(1),
        dilation,
        groups: 3,
        ..LayerSpec::new(run.in_channels, 6, kernel)
    };
    let mut spec = geometry(3, 2, 2);
    if kaiming_uniform(spec, REPLAN_SEED)?
        .output_size_for(input)
        .is_err()
    {
        spec = geometry(1, 1, 1);
    }
    spec.bias = run.bias;
    spec.activation = run.activation;
    let layer = kaiming_uniform(spec, REPLAN_SEED)?;
    let (height, width) = layer.output_size_for(input)?;
    let mut check = native_check(input, &layer, (height, width));
    check["options"] = json!({
        "filters": spec.filters,
        "kernel": spec.kernel_height,
        "stride": spec.stride,
        "padding": 1,
        "dilation": spec.dilation,
        "groups": spec.groups,
        "seed": REPLAN_SEED,
        "init": "random",
    });
    check["formula"] = layer.parameter_formula().into();
    check["pytorch"] = spec.pytorch_line().into();
    check["outWidth"] = width.into();
    check["outHeight"] = height.into();
    Ok(check)
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
        for source in [SHADER, super::super::VIEW_SCRIPT]
            .into_iter()
            .chain(SCRIPTS)
            .chain(super::super::explore::SCRIPTS)
        {
            let lower = source.to_ascii_lowercase();
            assert!(!lower.contains("</script") && !lower.contains("<!--"));
        }
        assert_eq!(script_json("\"</script>\""), "\"\\u003c/script>\"");
    }
}
