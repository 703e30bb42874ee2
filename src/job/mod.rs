//! One run of the tool, in stages, whatever its graph (one layer, or a
//! stack): the input in, the graph resolved against it, computed band by
//! band with each map's statistics, each block's pictures, the page and
//! the summary out.

mod chain;
mod chain_detail;
mod layer;
pub mod model;
mod model_detail;
mod model_page;
mod modes;
mod page;
mod pictures;

pub use modes::MapsMode;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::engine::{Pictures, PlannedTimings};
use crate::error::{Error, Result};
use crate::graph::spec::conv_items;
use crate::graph::{Graph, Plan};
use crate::input::{Input, InputFile};
use crate::layer::Layer;
use crate::npy::BandedNpy;
use crate::output::{check_output_dir, create_output_dir, write_bytes_atomic};
use crate::preprocess::{InputPrep, Layout, Normalization, Prepared};
use crate::render;
use crate::render::colormap::{Colormap, Normalize};
use crate::render::filters::filters_picture;
use crate::report::{LayerEntry, RunRecord, Summary};
use crate::resolve::{InputShape, LayerOptions, WeightsSource, resolve};
use crate::settings::Settings;
use crate::tensor::RowSource;
use crate::weights;

/// Which part of a run is under way, for progress reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Computing bands of the layer (`done`/`total` pieces).
    Compute,
    /// Normalising and encoding the pictures (`done`/`total` maps).
    Encode,
}

/// A progress report: `done` of `total` units of `stage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// The stage.
    pub stage: Stage,
    /// Units finished.
    pub done: u64,
    /// Units in all.
    pub total: u64,
}

/// Counts finished units of one stage and reports each to `progress`.
struct Counter<'a> {
    stage: Stage,
    done: u64,
    total: u64,
    progress: &'a (dyn Fn(Step) + Sync),
}

impl<'a> Counter<'a> {
    /// A count from zero of `total` units of `stage`.
    fn new(stage: Stage, total: u64, progress: &'a (dyn Fn(Step) + Sync)) -> Self {
        Counter {
            stage,
            done: 0,
            total,
            progress,
        }
    }

    /// One more unit done.
    fn tick(&mut self) {
        self.done += 1;
        (self.progress)(Step {
            stage: self.stage,
            done: self.done,
            total: self.total,
        });
    }
}

/// How the maps are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct View {
    /// Colour map of the feature PNGs and the grid.
    pub colormap: Colormap,
    /// Which range each map's colours span.
    pub normalize: Normalize,
    /// In `filters.png`, one grey tile per input channel instead of one RGB picture.
    pub per_channel_filters: bool,
}

impl Default for View {
    /// Grey, each map stretched over its own range.
    fn default() -> Self {
        View {
            colormap: Colormap::Gray,
            normalize: Normalize::PerMap,
            per_channel_filters: false,
        }
    }
}

/// Everything one run needs besides the engine.
#[derive(Clone, Debug)]
pub struct Job {
    /// The photo.
    pub input: PathBuf,
    /// The output directory.
    pub out_dir: PathBuf,
    /// The layer as the user states it; resolved once against the photo.
    pub layer: LayerOptions,
    /// Where the parameters come from.
    pub weights: WeightsSource,
    /// Also write `features.npy`, the raw f32 maps.
    pub raw: bool,
    /// How the maps are drawn.
    pub view: View,
    /// Largest photo, and largest output map, accepted, in pixels (width ×
    /// height), checked from the photo's header before anything is decoded.
    pub max_pixels: u64,
    /// Most bytes of copies of convs' inputs and weights the page embeds
    /// for one value's arithmetic and a filter's editor (stacks and
    /// networks).
    pub page_budget: usize,
    /// Turn the photo upright as its EXIF orientation says (as photo
    /// viewers do); false keeps the stored pixels.
    pub apply_orientation: bool,
    /// How the photo becomes the layer's input: its values multiplied by
    /// `input_scale` (1: 0–1; 255: 0–255), then normalised, in BGR order
    /// when `bgr`. The channels (luma, RGB, RGBA) follow the layer.
    pub input_scale: f32,
    /// Per-channel mean and std applied after scaling, if any.
    pub input_norm: Option<Normalization>,
    /// Channels in blue, green, red order.
    pub bgr: bool,
    /// A stack of layers (`--layers`) instead of one layer.
    pub stack: Option<StackJob>,
    /// The switches read from the environment by the program.
    pub settings: Settings,
}

/// A stack of layers to run instead of one layer.
#[derive(Clone, Debug)]
pub struct StackJob {
    /// The spec as given, e.g. `32x5,relu,maxpool2,64x3`.
    pub spec: String,
    /// Its items, parsed.
    pub items: Vec<crate::graph::SpecItem>,
    /// What its convs are made of.
    pub options: crate::graph::StackOptions,
}

/// Runs one job on `engine` (which may carry `setup` time already spent
/// building it) and writes every output file. Returns the summary, which is
/// also written as `summary.json`.
///
/// The stages: read the input's header, resolve the graph against it
/// (every size checked before anything is allocated or written), decode,
/// plan the bands and choose how the maps become pictures (still nothing
/// written), compute each block's maps band by band (with each map's
/// statistics) and write their pictures, then the page and the summary.
pub fn run(
    engine: &dyn Pictures,
    job: &Job,
    setup: Duration,
    progress: &(dyn Fn(Step) + Sync),
) -> Result<Summary> {
    let started = Instant::now();
    check_output_dir(&job.out_dir)?;
    let (file, header) =
        timed(|| InputFile::open(&job.input, job.max_pixels, job.apply_orientation))?;
    let shape = file.shape();
    let (graph, weights_time) = timed(|| resolve_graph(job, shape))?;
    let orientation = file.orientation();
    let (decoded, decode) = timed(|| file.decode())?;
    let prep = input_prep(job, graph.input()[0], &decoded)?;

    let plan = Plan::new(&graph, band_budget(engine, &job.settings))?;
    let mode = MapsMode::choose(job, engine, &graph)?;

    create_output_dir(&job.out_dir)?;
    let computed = with_rows(&decoded, prep.as_ref(), |input| match &plan {
        Plan::Layer(plan) => layer::compute(
            engine,
            input,
            (&graph, plan, mode),
            (job, prep.as_ref(), orientation),
            progress,
        ),
        Plan::Chain(plan) => chain::compute(
            engine,
            input,
            (&graph, plan, mode),
            (job, orientation),
            progress,
        ),
    })?;
    let page_started = Instant::now();
    let mut summary = Summary::new(RunRecord {
        input: &job.input,
        input_shape: graph.input(),
        preprocessing: prep,
        orientation,
        stack: job.stack.as_ref().map(|stack| stack.spec.clone()),
        graph: &graph,
        layers: computed.layers,
        bands: computed.bands,
        engine: engine.info(),
        timings: computed.timings,
        decode: header + decode,
        weights: weights_time,
        setup,
    });
    let page_files = page::write_page(
        job,
        (&decoded, &graph),
        &summary,
        computed.arithmetic.as_ref(),
    )?;
    summary.files.extend(page_files);
    summary.files.push("summary.json".into());
    // summary.json is the last file; its encode and total times include
    // everything but writing itself.
    summary.finish(
        computed.encode + page_started.elapsed(),
        setup + started.elapsed(),
    );
    summary.write(&job.out_dir.join("summary.json"))?;
    Ok(summary)
}

/// What computing a graph's blocks and writing their files leaves.
struct Computed {
    /// Each block's entry of the summary.
    layers: Vec<LayerEntry>,
    /// Bands of output rows the work was split into.
    bands: u32,
    /// The engine's and the store's times, both passes.
    timings: PlannedTimings,
    /// Writing the blocks' files, a second pass's engine time aside.
    encode: Duration,
    /// A stack's arithmetic for its page (a one-layer page computes its own).
    arithmetic: Option<crate::render::arithmetic::Embedded>,
}

/// The job's graph resolved against an input of `shape`: its stack, or
/// its one layer.
fn resolve_graph(job: &Job, shape: InputShape) -> Result<Graph> {
    if let Some(stack) = &job.stack {
        return Graph::resolve(&stack.items, shape, &stack.options);
    }
    let resolved = resolve(&job.layer, shape, &job.weights, job.max_pixels)?;
    let spec = &resolved.layer.spec;
    let input = [spec.in_channels, shape.height, shape.width];
    // A model's conv goes by its name, as a stack's item would.
    let mut items = conv_items(spec);
    if let Some(name) = resolved.origin.as_ref().and_then(|o| o.layer.clone()) {
        items[0] = name;
    }
    Ok(Graph::single(
        resolved,
        input,
        items,
        job.weights.describe(),
    ))
}

/// Hands `work` the layer's input: a photo as `prep` reads it (plain RGB
/// straight from its samples), or a tensor as it is.
fn with_rows<T>(
    decoded: &Input,
    prep: Option<&InputPrep>,
    work: impl FnOnce(&dyn RowSource) -> Result<T>,
) -> Result<T> {
    match (decoded, prep) {
        (Input::Photo(photo), Some(prep)) if !prep.is_plain_rgb() => {
            work(&Prepared { photo, prep })
        }
        (Input::Photo(photo), _) => work(photo),
        (Input::Tensor(tensor), _) => work(tensor),
    }
}

/// Longest side of `input.png`, the input's preview on the page, in pixels.
const INPUT_PREVIEW_SIDE: u32 = 1024;

/// Bytes of one band on `engine`: as `settings` say, else the engine's budget.
fn band_budget(engine: &dyn Pictures, settings: &Settings) -> u64 {
    settings.band_bytes.unwrap_or_else(|| engine.band_budget())
}

/// Runs `work` and returns its value with the time it took.
fn timed<T>(work: impl FnOnce() -> Result<T>) -> Result<(T, Duration)> {
    let started = Instant::now();
    work().map(|value| (value, started.elapsed()))
}

/// How the input is read for a layer of `channels` input channels: a photo as
/// [`photo_prep`] says; a tensor as it is (the photo-only options are
/// refused for it).
fn input_prep(job: &Job, channels: u32, input: &Input) -> Result<Option<InputPrep>> {
    match input {
        Input::Photo(_) => photo_prep(job, channels).map(Some),
        Input::Tensor(_) if job.bgr || job.input_norm.is_some() || job.input_scale != 1.0 => {
            Err(Error::InvalidLayer(format!(
                "--bgr, --input-norm and --input-scale read a photo; {} is a tensor, read as it is",
                job.input.display()
            )))
        }
        Input::Tensor(_) => Ok(None),
    }
}

/// How the photo is read for a layer of `channels` input channels: its channels (luma, RGB,
/// RGBA) follow the layer's, in BGR order when asked, scaled and normalised.
fn photo_prep(job: &Job, channels: u32) -> Result<InputPrep> {
    let layout = Layout::for_channels(channels, job.bgr).ok_or_else(|| {
        Error::Mismatch(format!(
            "the layer reads {channels} channels; a photo can be read as 1 (luma), 3 (RGB) or 4 (RGBA)"
        ))
    })?;
    let prep = InputPrep {
        layout,
        scale: job.input_scale,
        normalization: job.input_norm.clone(),
    };
    prep.validate()?;
    Ok(prep)
}

/// Writes `weights.safetensors`, and keeps `features.npy` when asked for
/// (else a spill file is deleted); returns the file names.
fn write_weights_and_raw(
    out_dir: &Path,
    job: &Job,
    layer: &Layer,
    raw: Option<BandedNpy>,
) -> Result<Vec<String>> {
    write_bytes_atomic(
        &out_dir.join("weights.safetensors"),
        &weights::to_safetensors(layer)?,
    )?;
    let mut files = vec!["weights.safetensors".to_string()];
    if let (true, Some(raw)) = (job.raw, raw) {
        raw.commit()?;
        files.push("features.npy".into());
    }
    Ok(files)
}

/// Writes `filters.png`, a picture of `layer`'s filters, into `dir`;
/// returns its name.
fn write_filters(dir: &Path, layer: &Layer, view: &View) -> Result<String> {
    render::write_png_rgb(
        &dir.join("filters.png"),
        &filters_picture(layer, view.per_channel_filters),
    )?;
    Ok("filters.png".into())
}
