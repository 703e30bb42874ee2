//! What a run reports: `summary.json` and the terminal summary.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::gpu::AdapterSummary;
use crate::layer::{Activation, Layer, Padding, ParameterCount};

/// Everything `summary.json` holds.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// The photo that was read.
    pub input: InputSummary,
    /// The layer's options.
    pub layer: LayerSummary,
    /// Parameter counts: the lengths of the uploaded buffers.
    pub parameters: ParameterCount,
    /// The parameter count as the question asks it, e.g. `(3·5·5 + 1)·32 = 2432`.
    pub parameter_formula: String,
    /// Size of each output map.
    pub output: OutputSummary,
    /// Each map's raw range, in filter order.
    pub maps: Vec<MapSummary>,
    /// "gpu" or "cpu".
    pub backend: String,
    /// The kernel that ran the layer: "fast", "direct", or "cpu" (the reference).
    pub kernel: String,
    /// The GPU adapter, when the GPU ran the layer.
    pub adapter: Option<AdapterSummary>,
    /// Wall time of each stage, in milliseconds.
    pub timings_ms: Timings,
    /// How `gflops` was timed: "GPU timestamps around the compute pass" where
    /// the adapter supports them, else "wall time in submit and wait";
    /// "wall time" on the CPU. (`timings_ms.compute` is always wall time, so
    /// that the stages add up to the total.)
    pub compute_timing: String,
    /// The compute passes by the GPU's timestamps, in milliseconds, when the
    /// adapter supports them.
    pub gpu_compute_ms: Option<f64>,
    /// 2·K·OH·OW·(C/G)·FH·FW floating-point operations / compute time, in GFLOP/s.
    pub gflops: f64,
    /// Files written, relative to the output directory.
    pub files: Vec<String>,
}

/// The input photo.
#[derive(Clone, Debug, Serialize)]
pub struct InputSummary {
    /// Path as given.
    pub path: PathBuf,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Channels (3: RGB).
    pub channels: u32,
}

/// The layer's options, in PyTorch's names.
#[derive(Clone, Debug, Serialize)]
pub struct LayerSummary {
    /// K.
    pub filters: u32,
    /// `[FH, FW]`.
    pub kernel_size: [u32; 2],
    /// Step between windows.
    pub stride: u32,
    /// Zero padding on each side.
    pub padding: Padding,
    /// Step between kernel taps.
    pub dilation: u32,
    /// G.
    pub groups: u32,
    /// Whether each filter has a bias.
    pub bias: bool,
    /// Applied after the bias: "none" or "relu".
    pub activation: Activation,
    /// `[K, C/G, FH, FW]`.
    pub weight_shape: [usize; 4],
    /// Where the weights came from: "kaiming-uniform (seed N)" or a file path.
    pub weights_source: String,
}

impl LayerSummary {
    /// Describes `layer`, whose weights came from `weights_source`.
    pub fn new(layer: &Layer, weights_source: String) -> Self {
        let spec = &layer.spec;
        LayerSummary {
            filters: spec.filters,
            kernel_size: [spec.kernel_height, spec.kernel_width],
            stride: spec.stride,
            padding: spec.padding,
            dilation: spec.dilation,
            groups: spec.groups,
            bias: spec.bias,
            activation: spec.activation,
            weight_shape: spec.weight_shape(),
            weights_source,
        }
    }
}

/// Output map size.
#[derive(Clone, Debug, Serialize)]
pub struct OutputSummary {
    /// OW.
    pub width: u32,
    /// OH.
    pub height: u32,
    /// K maps.
    pub maps: u32,
    /// Bands of output rows the work was split into (1: one pass).
    pub bands: u32,
    /// Chunks of filters the work was split into (1: all at once).
    pub filter_chunks: u32,
}

/// The range of one map's raw values (before normalisation).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct MapSummary {
    /// Smallest value.
    pub min: f32,
    /// Largest value.
    pub max: f32,
    /// Mean value.
    pub mean: f32,
}

/// Stage times in milliseconds. `total` is the wall time of the whole run;
/// the stages add up to it (to within a millisecond of bookkeeping).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Timings {
    /// Reading and decoding the photo.
    pub decode: f64,
    /// Building the layer's parameters (initialisation or loading).
    pub weights: f64,
    /// Finding the adapter, opening the device, compiling the pipeline.
    pub setup: f64,
    /// Uploading image, weights and bias.
    pub upload: f64,
    /// Running the layer.
    pub compute: f64,
    /// Reading the maps back.
    pub readback: f64,
    /// Writing the raw maps to disk, band by band, with their statistics.
    pub store: f64,
    /// Normalising, encoding and writing every picture and file.
    pub encode: f64,
    /// The whole run.
    pub total: f64,
}

/// Milliseconds in a duration.
pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

impl Summary {
    /// The terminal summary: a small aligned table.
    pub fn terminal_text(&self, out_dir: &std::path::Path) -> String {
        let t = &self.timings_ms;
        let p = &self.parameters;
        let l = &self.layer;
        let adapter = match &self.adapter {
            Some(a) => format!("{} ({}, {})", a.name, a.backend, a.device_type),
            None => "none: the CPU reference ran the layer".to_string(),
        };
        let biases = if p.biases == 0 {
            "no biases".to_string()
        } else {
            format!("{} biases", p.biases)
        };
        let padding = &l.padding;
        let padding = if padding.top == padding.bottom
            && padding.top == padding.left
            && padding.top == padding.right
        {
            padding.top.to_string()
        } else {
            format!(
                "{}/{}/{}/{} (top/bottom/left/right)",
                padding.top, padding.bottom, padding.left, padding.right
            )
        };
        let stages = [
            ("decode", t.decode),
            ("setup", t.setup),
            ("upload", t.upload),
            ("compute", t.compute),
            ("readback", t.readback),
            ("store", t.store),
            ("encode", t.encode),
            ("total", t.total),
        ];
        let names: Vec<String> = stages
            .iter()
            .map(|(name, _)| format!("{name:>9}"))
            .collect();
        let values: Vec<String> = stages.iter().map(|(_, ms)| format!("{ms:>9.0}")).collect();
        let rows = [
            (
                "input",
                format!(
                    "{} ({}×{}, {} channels)",
                    self.input.path.display(),
                    self.input.width,
                    self.input.height,
                    self.input.channels
                ),
            ),
            (
                "layer",
                format!(
                    "{} filters of {}×{}, stride {}, padding {padding}, dilation {}, groups {}{}",
                    l.filters,
                    l.kernel_size[0],
                    l.kernel_size[1],
                    l.stride,
                    l.dilation,
                    l.groups,
                    if l.activation == Activation::Relu {
                        ", then ReLU"
                    } else {
                        ""
                    }
                ),
            ),
            ("weights", l.weights_source.clone()),
            (
                "parameters",
                format!(
                    "{} ({} weights + {biases})",
                    self.parameter_formula, p.weights
                ),
            ),
            (
                "output",
                format!(
                    "{} maps of {}×{} in {}",
                    self.output.maps,
                    self.output.width,
                    self.output.height,
                    out_dir.display()
                ),
            ),
            (
                "backend",
                format!("{} ({} kernel): {adapter}", self.backend, self.kernel),
            ),
            ("time (ms)", names.join("")),
            ("", values.join("")),
            (
                "throughput",
                format!("{:.2} GFLOP/s in compute", self.gflops),
            ),
        ];
        rows.iter()
            .map(|(key, value)| format!("{key:<11} {value}").trim_end().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }
}
