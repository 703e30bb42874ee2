//! What a run reports, as plain data: `summary.json` ([`Summary`], with a
//! [`LayerEntry`] per block of the graph) and the terminal text
//! (`terminal.rs`). A one-layer run and a stack report alike.

pub mod model;
mod run;
mod terminal;

pub use run::{OneLayer, RunRecord, Summary};

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::engine::{Backend, ComputeTiming, EngineInfo, PlannedTimings};
use crate::gpu::AdapterSummary;
use crate::graph::Graph;
use crate::layer::{Layer, LayerSpec, ParameterCount};
use crate::model::load::WeightsOrigin;
use crate::photo::Orientation;
use crate::preprocess::InputPrep;
use crate::settings::Placement;
pub use crate::stats::MapSummary;

/// What one layer (a block of the graph: a conv and the steps after it)
/// reports: the fields of each entry of `summary.json`'s `layers`, and of
/// a one-layer run's summary itself.
#[derive(Clone, Debug, Serialize)]
pub struct LayerReport {
    /// The layer's input.
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
    /// What ran the layer, and how fast.
    #[serde(flatten)]
    pub ran: RanOn,
    /// Files written, relative to the output directory.
    pub files: Vec<String>,
    /// Where a weights file's numbers came from: its format, the conv's
    /// name, the dtype read as f32, the BatchNorm folded in.
    pub weights_file: Option<WeightsOrigin>,
    /// With a BatchNorm folded in, the counts before folding: the conv's
    /// own and the BatchNorm's.
    pub before_folding: Option<BeforeFolding>,
    /// How the maps became pictures: `one-pass`, `recompute` or `spill`,
    /// and why.
    pub maps_mode: Option<MapsModeSummary>,
}

/// How the maps became pictures, and why that way.
#[derive(Clone, Debug, Serialize)]
pub struct MapsModeSummary {
    /// `one-pass` (pictures written as each band is computed), `keep` (the
    /// f32 maps held in the engine's memory until the statistics are in),
    /// `recompute` (statistics first, then each band computed again for its
    /// pictures) or `spill` (the f32 maps through the disk).
    pub mode: &'static str,
    /// Why this mode.
    pub why: String,
    /// Where each map's statistics were made: `gpu` (in a shader) or
    /// `host` (from the f32 maps read back).
    pub statistics: &'static str,
    /// Where the pictures' pixels were made: `gpu` or `host` (a spill's
    /// always on the host, from the maps on disk).
    pub pixels: &'static str,
}

/// The parameter counts of a conv and the BatchNorm folded into it, before
/// folding: the folded layer has one bias per filter again.
#[derive(Clone, Debug, Serialize)]
pub struct BeforeFolding {
    /// The conv's own count, e.g. `3·7·7·64 = 9408, no bias`.
    pub conv: String,
    /// The BatchNorm's values, e.g. `bn1: 2·64 trained (γ, β) + 2·64 running (μ, σ²)`.
    pub batch_norm: String,
}

impl BeforeFolding {
    /// The counts for `layer`, folded from a conv with or without its own
    /// bias and the BatchNorm `name`.
    fn new(layer: &Layer, conv_bias: bool, name: &str) -> Self {
        let spec = &layer.spec;
        let filters = spec.filters;
        let (_, formula) = crate::model::table::count_and_formula(&spec.weight_shape(), conv_bias);
        let conv = if conv_bias {
            formula
        } else {
            format!("{formula}, no bias")
        };
        BeforeFolding {
            conv,
            batch_norm: format!("{name}: 2·{filters} trained (γ, β) + 2·{filters} running (μ, σ²)"),
        }
    }
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
    /// The EXIF orientation applied to turn the photo upright (`exif` 1,
    /// "none", when the file has none or `--ignore-orientation` was given).
    pub orientation: Orientation,
    /// How a photo was read as the layer's input: `layout` (luma, rgb,
    /// bgr, rgba, bgra), `scale` (1 or 255) and `normalization` {mean,
    /// std}; null for a tensor input, read as it is.
    pub preprocessing: Option<InputPrep>,
}

impl InputSummary {
    /// The input at `path`, of shape `[C, H, W]` as read.
    pub fn new(
        path: &Path,
        [channels, height, width]: [u32; 3],
        orientation: Orientation,
        preprocessing: Option<InputPrep>,
    ) -> Self {
        InputSummary {
            path: path.to_path_buf(),
            width,
            height,
            channels,
            orientation,
            preprocessing,
        }
    }
}

/// The layer's options, in PyTorch's names: its resolved geometry
/// (`filters`, `kernel_size` `[FH, FW]`, `stride`, `padding` on each side,
/// `dilation`, `groups`, `bias`, `activation`), its `weight_shape`
/// `[K, C/G, FH, FW]`, where the weights came from (`weights_source`:
/// "random: kaiming-uniform (seed N)", a bank's name or a file path), and
/// the layer as PyTorch writes it (`pytorch`: `nn.Conv2d(3, 32,
/// kernel_size=5)`).
#[derive(Clone, Debug)]
pub struct LayerSummary {
    /// The layer's geometry.
    pub spec: LayerSpec,
    /// Where the weights came from.
    pub weights_source: String,
}

impl LayerSummary {
    /// Describes `layer`, whose weights came from `weights_source`.
    pub fn new(layer: &Layer, weights_source: String) -> Self {
        LayerSummary {
            spec: layer.spec,
            weights_source,
        }
    }
}

impl Serialize for LayerSummary {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let spec = &self.spec;
        let mut layer = serializer.serialize_struct("LayerSummary", 11)?;
        layer.serialize_field("filters", &spec.filters)?;
        layer.serialize_field("kernel_size", &[spec.kernel_height, spec.kernel_width])?;
        layer.serialize_field("stride", &spec.stride)?;
        layer.serialize_field("padding", &spec.padding)?;
        layer.serialize_field("dilation", &spec.dilation)?;
        layer.serialize_field("groups", &spec.groups)?;
        layer.serialize_field("bias", &spec.bias)?;
        layer.serialize_field("activation", &spec.activation)?;
        layer.serialize_field("weight_shape", &spec.weight_shape())?;
        layer.serialize_field("weights_source", &self.weights_source)?;
        layer.serialize_field("pytorch", &spec.pytorch_line())?;
        layer.end()
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

impl Timings {
    /// The stages before and during the compute: `[decode, weights, setup]`
    /// and the engine's and store's times; `encode` and `total` are set
    /// when the run ends.
    pub fn new([decode, weights, setup]: [Duration; 3], timings: &PlannedTimings) -> Self {
        let run = &timings.run;
        Timings {
            decode: ms(decode),
            weights: ms(weights),
            setup: ms(setup),
            upload: ms(run.upload),
            compute: ms(run.compute),
            readback: ms(run.readback),
            store: ms(timings.store),
            encode: 0.0,
            total: 0.0,
        }
    }
}

/// The facts of a finished layer, from which [`LayerReport::new`]
/// builds its report.
pub struct LayerRecord<'a> {
    /// The graph that ran, and the block this report is of: its layer,
    /// input, maps, weights source and file come from there.
    pub block: (&'a Graph, usize),
    /// The input's path as given.
    pub input: &'a Path,
    /// How a photo was read as the layer's input (none for a tensor, or a
    /// layer after the first).
    pub preprocessing: Option<InputPrep>,
    /// The orientation applied to the stored pixels.
    pub orientation: Orientation,
    /// The bands and filter chunks it ran in.
    pub pieces: (u32, u32),
    /// Each map's range, in filter order.
    pub maps: Vec<MapSummary>,
    /// What ran it.
    pub engine: EngineInfo,
    /// The engine's and the store's times of its own steps, summed over
    /// the bands (reading the input and making the engine are the run's).
    pub timings: PlannedTimings,
    /// Files written so far, relative to the block's folder.
    pub files: Vec<String>,
}

impl LayerReport {
    /// The report of a layer; `timings_ms.encode` and `total` are set by
    /// [`LayerReport::finish`].
    pub fn new(record: LayerRecord<'_>) -> LayerReport {
        let (graph, block) = record.block;
        let layer = graph.layer(block);
        let info = &graph.blocks[block];
        let [_, out_height, out_width] = graph.block_output(block);
        LayerReport {
            input: InputSummary::new(
                record.input,
                graph.block_input(block),
                record.orientation,
                record.preprocessing,
            ),
            layer: LayerSummary::new(layer, info.weights_source.clone()),
            parameters: layer.parameters(),
            parameter_formula: layer.parameter_formula(),
            output: OutputSummary {
                width: out_width,
                height: out_height,
                maps: layer.spec.filters,
                bands: record.pieces.0,
                filter_chunks: record.pieces.1,
            },
            maps: record.maps,
            ran: RanOn::new(
                record.engine,
                [Duration::ZERO; 3],
                &record.timings,
                layer.spec.flops(out_height, out_width),
            ),
            files: record.files,
            before_folding: info.origin.as_ref().and_then(|origin| {
                let name = origin.batch_norm.as_deref()?;
                Some(BeforeFolding::new(layer, origin.conv_bias, name))
            }),
            weights_file: info.origin.clone(),
            maps_mode: None,
        }
    }

    /// Sets the encode stage's time and the layer's total.
    pub fn finish(&mut self, encode: Duration, total: Duration) {
        self.ran.finish(encode, total);
    }
}

/// What ran a run or a layer, and how fast: the fields `summary.json` and
/// each of its `layers` entries share.
#[derive(Clone, Debug, Serialize)]
pub struct RanOn {
    /// "gpu" or "cpu".
    pub backend: Backend,
    /// The program that computed the sums: the WGSL shader "fast" or
    /// "direct", or "cpu" (the CPU twin of the direct shader).
    pub shader: String,
    /// The GPU adapter, when the GPU ran.
    pub adapter: Option<AdapterSummary>,
    /// Where a stack's maps go between layers: "gpu" (they stay in GPU
    /// memory) or "host" (read back and uploaded again; the CPU).
    pub between_layers: Placement,
    /// Wall time of each stage, in milliseconds; they add up to `total`.
    pub timings_ms: Timings,
    /// How `gflops` was timed: "GPU timestamps around the compute pass"
    /// where the adapter supports them, else "wall time in submit and
    /// wait"; "wall time" on the CPU. (`timings_ms.compute` is always wall
    /// time, so that the stages add up to the total.)
    pub compute_timing: ComputeTiming,
    /// The compute passes by the GPU's timestamps, in milliseconds, when
    /// the adapter supports them.
    pub gpu_compute_ms: Option<f64>,
    /// Every conv's floating-point operations (2·K·OH·OW·(C/G)·FH·FW each)
    /// / compute time, in GFLOP/s.
    pub gflops: f64,
}

impl RanOn {
    /// `engine`'s facts, with the times of `[decode, weights, setup]` and
    /// of the engine and the store, and `flops` floating-point operations
    /// done; `timings_ms.encode` and `total` are set by [`RanOn::finish`].
    pub fn new(
        engine: EngineInfo,
        before: [Duration; 3],
        timings: &PlannedTimings,
        flops: f64,
    ) -> Self {
        let compute = timings.compute();
        RanOn {
            backend: engine.backend,
            shader: engine.shader_name().to_string(),
            adapter: engine.adapter,
            between_layers: engine.between_layers,
            timings_ms: Timings::new(before, timings),
            compute_timing: engine.compute_timing,
            gpu_compute_ms: timings.run.gpu_compute.map(ms),
            gflops: if compute.is_zero() {
                0.0
            } else {
                flops / compute.as_secs_f64() / 1e9
            },
        }
    }

    /// Sets the encode stage's time and the total.
    pub fn finish(&mut self, encode: Duration, total: Duration) {
        self.timings_ms.encode = ms(encode);
        self.timings_ms.total = ms(total);
    }
}

/// Milliseconds in a duration.
pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// One block of the graph in `summary.json`'s `layers`: its report, and
/// where it sits in the graph.
#[derive(Clone, Debug, Serialize)]
pub struct LayerEntry {
    /// The layer's name: `conv1`, … or the model's.
    pub name: String,
    /// Its folder inside the output directory (empty: the directory itself).
    pub folder: String,
    /// The items its maps include, as a stack writes them: `["32x5",
    /// "relu", "maxpool2"]`.
    pub items: Vec<String>,
    /// Its input `[C, H, W]`.
    pub input_shape: [u32; 3],
    /// The maps its folder holds, `[K, OH, OW]`, after all its items.
    pub output_shape: [u32; 3],
    /// The layer's report; its `output` is the conv's own output, before
    /// the items after it. Its times are its own steps' (upload, compute,
    /// readback, store) and the writing of its files (encode); on a GPU
    /// that keeps a stack's maps between layers, the first layer's hold
    /// the whole band's.
    #[serde(flatten)]
    pub report: LayerReport,
}

impl LayerEntry {
    /// The entry of block `block` of `graph`, reported by `report`.
    pub fn new(graph: &Graph, block: usize, report: LayerReport) -> Self {
        let info = &graph.blocks[block];
        LayerEntry {
            name: info.name.clone(),
            folder: info.folder.clone(),
            items: info.items.clone(),
            input_shape: graph.block_input(block),
            output_shape: graph.block_output(block),
            report,
        }
    }
}
