//! One run of the tool, in stages: photo in, layer resolved, computed band
//! by band with each map's statistics, pictures, page and summary out.

mod modes;
mod page;
mod pictures;
mod stack;

pub use modes::MapsMode;

pub use stack::run_stack;

use std::path::Path;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::engine::{Engine, PlannedTimings};
use crate::error::{Error, Result};
use crate::input::{Input, InputFile};
use crate::layer::Layer;
use crate::npy::BandedNpy;
use crate::output::{check_output_dir, create_output_dir, write_bytes_atomic};
use crate::plan::Plan;
use crate::preprocess::{InputPrep, Layout, Normalization, Prepared};
use crate::render::colormap::{Colormap, Normalize};
use crate::report::{MapsModeSummary, RunRecord, Summary};
use crate::resolve::{LayerOptions, Resolved, WeightsSource, resolve};
use crate::settings::Settings;
use crate::stats::MapStats;
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
    /// A stack of layers (`--layers`) instead of one layer, run by
    /// [`run_stack`].
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
/// The stages: read the photo's header, resolve the layer against it
/// (every size checked before anything is allocated or written), decode,
/// plan the bands, compute them (with each map's statistics), write the
/// pictures, the page and the summary. (It reads best whole, stage after
/// stage with their timings, a little over 60 lines.)
pub fn run(
    engine: &dyn Engine,
    job: &Job,
    setup: Duration,
    progress: &(dyn Fn(Step) + Sync),
) -> Result<Summary> {
    let started = Instant::now();
    check_output_dir(&job.out_dir)?;
    let (file, header) =
        timed(|| InputFile::open(&job.input, job.max_pixels, job.apply_orientation))?;
    let shape = file.shape();
    let (resolved, weights_time) =
        timed(|| resolve(&job.layer, shape, &job.weights, job.max_pixels))?;
    let orientation = file.orientation();
    let (decoded, decode) = timed(|| file.decode())?;
    let prep = input_prep(job, resolved.layer.spec.in_channels, &decoded)?;
    let plan = Plan::new(
        &resolved.layer.spec,
        shape.height,
        shape.width,
        band_budget(engine, &job.settings),
    )?;

    create_output_dir(&job.out_dir)?;
    let drawn = with_bands(&decoded, prep.as_ref(), |input| {
        draw_maps(engine, input, (&resolved, &plan), job, progress)
    })?;
    let page_started = Instant::now();
    let mut summary = Summary::new(RunRecord {
        input: &job.input,
        input_size: (shape.width, shape.height, resolved.layer.spec.in_channels),
        preprocessing: prep,
        orientation,
        layer: &resolved.layer,
        weights_source: job.weights.describe(),
        pieces: (plan.bands.len() as u32, plan.filter_chunks.len() as u32),
        output_size: resolved.output_size,
        maps: drawn.stats.iter().map(MapStats::summary).collect(),
        engine: engine.info(),
        timings: drawn.timings,
        decode: header + decode,
        weights: weights_time,
        setup,
        files: drawn.files,
        weights_file: resolved.origin.clone(),
    });
    let page_files = write_page(job, &decoded, &resolved.layer, &summary)?;
    summary.files.extend(page_files);
    summary.files.push("summary.json".into());
    // summary.json is the last file; its encode and total times include
    // everything but writing itself.
    summary.maps_mode = Some(MapsModeSummary {
        mode: drawn.mode.name(),
        why: drawn.why,
        statistics: engine.info().pictures.name(),
        pixels: match drawn.mode {
            MapsMode::Spill => "host",
            _ => engine.info().pictures.name(),
        },
    });
    summary.finish(
        drawn.encode + page_started.elapsed(),
        setup + started.elapsed(),
    );
    summary.write(&job.out_dir.join("summary.json"))?;
    Ok(summary)
}

/// Hands `work` the layer's input: a photo as `prep` reads it (plain RGB
/// straight from its samples), or a tensor as it is.
fn with_bands<T>(
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

/// What computing and drawing the maps leaves.
struct Drawn {
    /// Each map's statistics.
    stats: Vec<MapStats>,
    /// The engine's and the store's times, both passes.
    timings: PlannedTimings,
    /// The files written.
    files: Vec<String>,
    /// How the maps became pictures, and why.
    mode: MapsMode,
    why: String,
    /// Writing the pictures and weights, a second pass's engine time aside.
    encode: Duration,
}

/// Computes the layer and writes its pictures, weights and raw maps, in
/// the mode [`MapsMode::choose`] picks.
fn draw_maps(
    engine: &dyn Engine,
    input: &dyn RowSource,
    (resolved, plan): (&Resolved, &Plan),
    job: &Job,
    progress: &(dyn Fn(Step) + Sync),
) -> Result<Drawn> {
    let layer = &resolved.layer;
    let (mode, why) = MapsMode::choose(job, engine, layer, resolved.output_size)?;
    let (out_height, out_width) = resolved.output_size;
    let maps_shape = [layer.spec.filters, out_height, out_width];
    let (mut streamed, fixed) = match mode {
        MapsMode::OnePass => {
            let (pictures, ranges) = modes::one_pass_pictures(job, maps_shape)?;
            (Some(pictures), Some(ranges))
        }
        _ => (None, None),
    };
    let raw = (job.raw || mode == MapsMode::Spill)
        .then(|| BandedNpy::create(&job.out_dir.join("features.npy"), maps_shape))
        .transpose()?;
    let pass = modes::FirstPass {
        mode,
        fixed: fixed.as_deref(),
        raw_sink: raw.as_ref(),
        pictures: streamed.as_mut(),
    };
    let first = modes::first_pass(engine, input, (layer, plan, job), pass, progress)?;
    let (stats, mut timings) = (first.stats, first.timings);
    let encode_started = Instant::now();
    let second_pass = (job, stats.as_slice(), maps_shape);
    let (mut files, second) = match (mode, streamed, &raw) {
        (MapsMode::OnePass, Some(pictures), _) => (pictures.finish(&job.out_dir)?, None),
        (MapsMode::Spill, _, Some(raw)) => {
            let files = pictures::write_pictures(&job.out_dir, raw, &stats, &job.view, progress)?;
            (files, None)
        }
        (MapsMode::Keep, _, _) => {
            let (files, second) =
                modes::draw_kept_pictures(engine, first.kept, second_pass, progress)?;
            (files, Some(second))
        }
        _ => {
            let (files, second) =
                modes::recompute_pictures(engine, input, layer, plan, second_pass, progress)?;
            (files, Some(second))
        }
    };
    let second_pass = second.map_or(Duration::ZERO, |second| {
        timings.run.add(second.run);
        modes::engine_time(&second)
    });
    files.extend(write_weights_and_raw(&job.out_dir, job, layer, raw)?);
    Ok(Drawn {
        stats,
        timings,
        files,
        mode,
        why,
        encode: encode_started.elapsed().saturating_sub(second_pass),
    })
}

/// Writes the page and its pictures, with the input's preview.
fn write_page(job: &Job, input: &Input, layer: &Layer, summary: &Summary) -> Result<Vec<String>> {
    let preview = input.preview(INPUT_PREVIEW_SIDE);
    page::write_page(&job.out_dir, &preview, layer, summary, &job.view)
}

/// Longest side of `input.png`, the input's preview on the page, in pixels.
const INPUT_PREVIEW_SIDE: u32 = 1024;

/// Bytes of one band on `engine`: as `settings` say, else the engine's budget.
fn band_budget(engine: &dyn Engine, settings: &Settings) -> u64 {
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

/// Writes the feature PNGs, the grid and `weights.safetensors`, and keeps
/// `features.npy` when asked for (else the spill file is deleted); returns
/// the file names.
fn write_maps(
    out_dir: &Path,
    job: &Job,
    layer: &Layer,
    raw: BandedNpy,
    stats: &[MapStats],
    progress: &(dyn Fn(Step) + Sync),
) -> Result<Vec<String>> {
    let mut files = pictures::write_pictures(out_dir, &raw, stats, &job.view, progress)?;
    files.extend(write_weights_and_raw(out_dir, job, layer, Some(raw))?);
    Ok(files)
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
