//! One run of the tool: photo in, layer applied, pictures and reports out.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::banks::{self, Init};
use crate::cpu;
use crate::error::{Error, Result};
use crate::gpu::{ConvKernel, Gpu, GpuTimings, InFlight, KernelKind, OutputSlot, Pipeline};
use crate::layer::{Layer, LayerSpec, PaddingMode};
use crate::npy::BandedNpy;
use crate::output::{check_output_dir, create_output_dir, write_bytes_atomic};
use crate::photo::{self, Photo};
use crate::plan::{self, Plan};
use crate::render::colormap::{self, Colormap, Normalize};
use crate::render::filters::{filter_tile, filter_zoom, filters_picture};
use crate::render::grid::{RgbGridTile, labelled_grid};
use crate::render::html::{Page, PageMap, index_html};
use crate::report::{InputSummary, LayerSummary, MapSummary, OutputSummary, Summary, Timings, ms};
use crate::tensor::{Bands, Tensor3, TensorView};
use crate::{render, weights};

/// Which backend the user asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// The GPU when wgpu finds an adapter, else the CPU (with a notice).
    #[default]
    Auto,
    /// The GPU, or an error when there is none.
    Gpu,
    /// The CPU reference.
    Cpu,
}

/// What runs the layer: a GPU with its compiled pipeline, or the CPU twin.
pub enum Engine {
    /// The GPU path.
    Gpu {
        /// Device and queue, which several engines may share.
        gpu: Arc<Gpu>,
        /// The compiled kernel.
        pipeline: Pipeline,
    },
    /// The CPU reference.
    Cpu,
}

impl Engine {
    /// Bytes one band's output (or input) may take: the device's largest
    /// storage buffer, at most [`plan::DEFAULT_BAND_BYTES`]; the
    /// `CONVMAPS_BAND_BYTES` environment variable overrides it (tests use
    /// it to force tiny bands).
    pub fn band_budget(&self) -> u64 {
        let device_limit = match self {
            Engine::Gpu { gpu, .. } => {
                let limits = gpu.limits();
                limits
                    .max_storage_buffer_binding_size
                    .min(limits.max_buffer_size)
            }
            Engine::Cpu => u64::MAX,
        };
        Plan::budget_from_env(plan::DEFAULT_BAND_BYTES.min(device_limit))
    }

    /// Builds the engine for `choice`, with `kernel` on the GPU. With
    /// [`BackendChoice::Auto`] and no adapter, falls back to the CPU and
    /// returns the reason as a notice for the user.
    pub fn new(choice: BackendChoice, kernel: KernelKind) -> Result<(Engine, Option<String>)> {
        let gpu_engine = || Engine::on_gpu(Arc::new(Gpu::new()?), kernel);
        match choice {
            BackendChoice::Cpu => Ok((Engine::Cpu, None)),
            BackendChoice::Gpu => Ok((gpu_engine()?, None)),
            BackendChoice::Auto => match gpu_engine() {
                Ok(engine) => Ok((engine, None)),
                Err(error @ Error::NoAdapter(_)) => Ok((
                    Engine::Cpu,
                    Some(format!("{error}. Running on the CPU instead.")),
                )),
                Err(error) => Err(error),
            },
        }
    }

    /// An engine running `kernel` on `gpu`, which it shares.
    pub fn on_gpu(gpu: Arc<Gpu>, kernel: KernelKind) -> Result<Engine> {
        let pipeline = Pipeline::new(&gpu, kernel)?;
        Ok(Engine::Gpu { gpu, pipeline })
    }

    /// "gpu" or "cpu".
    pub fn name(&self) -> &'static str {
        match self {
            Engine::Gpu { .. } => "gpu",
            Engine::Cpu => "cpu",
        }
    }

    /// The kernel that runs the layer: "direct", "fast", or "cpu" (the reference).
    pub fn kernel_name(&self) -> &'static str {
        match self {
            Engine::Gpu { pipeline, .. } => pipeline.kind().name(),
            Engine::Cpu => "cpu",
        }
    }

    /// Runs `layer` over `input` `[C, H, W]`, returning the maps `[K, OH, OW]`
    /// (upload and readback are zero on the CPU).
    pub fn convolve(&self, input: &Tensor3, layer: &Layer) -> Result<(Tensor3, GpuTimings)> {
        match self {
            Engine::Gpu { gpu, pipeline } => pipeline.run(gpu, input, layer),
            Engine::Cpu => {
                let started = Instant::now();
                let maps = cpu::conv2d_direct(input, layer)?;
                let compute = started.elapsed();
                Ok((
                    maps,
                    GpuTimings {
                        compute,
                        ..Default::default()
                    },
                ))
            }
        }
    }
}

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

/// Where the layer's parameters come from.
#[derive(Clone, Debug, PartialEq)]
pub enum WeightsSource {
    /// A built-in bank ([`banks::filter_bank`]); `Random` is PyTorch's
    /// default initialisation with this seed.
    Init {
        /// Which bank.
        init: Init,
        /// The generator's seed (for `Random`).
        seed: u64,
    },
    /// A safetensors file with `weight` and `bias`, optionally under a
    /// layer name's prefix (`conv1.weight`).
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The conv's prefix in the file, when it holds several.
        layer_name: Option<String>,
    },
    /// `.npy` files: the weight and, unless the layer has no bias, the bias.
    Npy {
        /// `[K, C/G, FH, FW]`, f32.
        weight: PathBuf,
        /// `[K]`, f32.
        bias: Option<PathBuf>,
    },
}

/// Everything one run needs besides the engine.
#[derive(Clone, Debug)]
pub struct Job {
    /// The photo.
    pub input: PathBuf,
    /// The output directory.
    pub out_dir: PathBuf,
    /// The layer's shape. `in_channels` is taken from the photo; with
    /// a weights file, so are K, FH and FW from the file.
    /// Its `padding` is replaced by [`Job::padding`] resolved against the kernel.
    pub spec: LayerSpec,
    /// Padding, resolved once the kernel size is known.
    pub padding: PaddingMode,
    /// Where the parameters come from.
    pub weights: WeightsSource,
    /// Also write `features.npy`, the raw f32 maps.
    pub raw: bool,
    /// How the maps are drawn.
    pub view: View,
    /// Largest photo accepted, in pixels (width × height), checked from the
    /// header before anything is decoded.
    pub max_pixels: u64,
}

/// Runs one job on `engine` (which may carry `setup` time already spent
/// building it) and writes every output file. Returns the summary, which is
/// also written as `summary.json`.
pub fn run(
    engine: &Engine,
    job: &Job,
    setup: Duration,
    progress: &(dyn Fn(Step) + Sync),
) -> Result<Summary> {
    let started = Instant::now();
    check_output_dir(&job.out_dir)?;

    let stage = Instant::now();
    let image = photo::load(&job.input, job.max_pixels)?;
    let [channels, height, width] = image.shape();
    let decode = stage.elapsed();

    let stage = Instant::now();
    let mut spec = job.spec;
    spec.in_channels = channels;
    let (mut layer, weights_source) = match &job.weights {
        WeightsSource::Init { init, seed } => {
            let source = match init {
                Init::Random => format!("random: kaiming-uniform (seed {seed})"),
                designed => designed.name().to_string(),
            };
            (banks::filter_bank(*init, spec, *seed)?, source)
        }
        WeightsSource::Safetensors { path, layer_name } => (
            weights::load_safetensors(path, layer_name.as_deref())?
                .into_layer(spec, channels, path)?,
            path.display().to_string(),
        ),
        WeightsSource::Npy { weight, bias } => (
            weights::load_npy(weight, bias.as_deref())?.into_layer(spec, channels, weight)?,
            weight.display().to_string(),
        ),
    };
    let spec = &mut layer.spec;
    spec.padding = job.padding.resolve(
        spec.kernel_height,
        spec.kernel_width,
        spec.dilation,
        spec.stride,
    )?;
    let weights_time = stage.elapsed();

    // Fails here, before anything is written, when the kernel does not fit.
    let budget = engine.band_budget();
    let plan = Plan::new(&layer.spec, height, width, budget)?;
    let (out_height, out_width) = layer.spec.output_size(height, width)?;
    let filters = layer.spec.filters;

    // Pass 1: compute band by band into the raw maps file (features.npy, or
    // a temporary spill file), keeping only each map's statistics.
    create_output_dir(&job.out_dir)?;
    let raw_path = job.out_dir.join("features.npy");
    let raw = BandedNpy::create(&raw_path, [filters, out_height, out_width])?;
    let mut stats = vec![MapStats::default(); filters as usize];
    let pieces = (plan.bands.len() * plan.filter_chunks.len()) as u64;
    let mut done = 0;
    let conv = convolve_planned(
        engine,
        &image,
        &layer,
        &plan,
        |first_filter, first_row, maps| {
            let first = first_filter as usize;
            stats[first..first + maps.channels as usize]
                .par_iter_mut()
                .zip(maps.data.par_chunks(maps.plane_len()))
                .for_each(|(stats, map)| stats.add(map));
            raw.write_band(first_filter, first_row, maps)?;
            done += 1;
            progress(Step {
                stage: Stage::Compute,
                done,
                total: pieces,
            });
            Ok(())
        },
    )?;

    // Pass 2: read the maps back map by map, normalise each with its own
    // range, and stream PNG rows and grid tiles.
    let stage = Instant::now();
    // About a mebibyte of one map per read.
    let rows_per_read = ((1 << 20) / (out_width as u64 * 4)).clamp(1, out_height as u64) as u32;
    let mut files = write_pictures(
        &job.out_dir,
        &raw,
        &stats,
        &job.view,
        (out_height, out_width),
        rows_per_read,
        progress,
    )?;
    write_bytes_atomic(
        &job.out_dir.join("weights.safetensors"),
        &weights::to_safetensors(&layer)?,
    )?;
    files.push("weights.safetensors".into());
    if job.raw {
        raw.commit()?;
        files.push("features.npy".into());
    } else {
        drop(raw); // the spill file is deleted
    }
    files.push("summary.json".into());

    let flops = 2.0
        * filters as f64
        * out_height as f64
        * out_width as f64
        * layer.spec.taps_per_output() as f64;
    let compute_time = conv.gpu.gpu_compute.unwrap_or(conv.gpu.compute);
    let gflops = if compute_time.is_zero() {
        0.0
    } else {
        flops / compute_time.as_secs_f64() / 1e9
    };
    let mut summary = Summary {
        input: InputSummary {
            path: job.input.clone(),
            width,
            height,
            channels,
        },
        layer: LayerSummary::new(&layer, weights_source),
        parameters: layer.parameters(),
        parameter_formula: layer.parameter_formula(),
        output: OutputSummary {
            width: out_width,
            height: out_height,
            maps: filters,
            bands: plan.bands.len() as u32,
            filter_chunks: plan.filter_chunks.len() as u32,
        },
        maps: stats.iter().map(MapStats::summary).collect(),
        backend: engine.name().to_string(),
        kernel: engine.kernel_name().to_string(),
        adapter: match engine {
            Engine::Gpu { gpu, .. } => Some(gpu.adapter_summary()),
            Engine::Cpu => None,
        },
        timings_ms: Timings {
            decode: ms(decode),
            weights: ms(weights_time),
            setup: ms(setup),
            upload: ms(conv.gpu.upload),
            compute: ms(conv.gpu.compute),
            readback: ms(conv.gpu.readback),
            store: ms(conv.store),
            encode: 0.0,
            total: 0.0,
        },
        compute_timing: match (engine, conv.gpu.gpu_compute) {
            (Engine::Gpu { .. }, Some(_)) => "GPU timestamps around the compute pass".into(),
            (Engine::Gpu { .. }, None) => "wall time in submit and wait".into(),
            (Engine::Cpu, _) => "wall time".into(),
        },
        gpu_compute_ms: conv.gpu.gpu_compute.map(ms),
        gflops,
        files,
    };
    let page_files = write_page(&job.out_dir, &image, &layer, &summary, &job.view)?;
    summary.files.extend(page_files);
    // summary.json is the last file; its encode and total times include
    // everything but writing itself.
    summary.timings_ms.encode = ms(stage.elapsed());
    summary.timings_ms.total = ms(setup + started.elapsed());
    let json = serde_json::to_vec_pretty(&summary).map_err(|e| Error::Output {
        path: job.out_dir.join("summary.json"),
        message: e.to_string(),
    })?;
    write_bytes_atomic(&job.out_dir.join("summary.json"), &json)?;
    Ok(summary)
}

/// Times of a planned run ([`convolve_planned`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PlannedTimings {
    /// The GPU stages, summed over the pieces (on the CPU, compute alone).
    pub gpu: GpuTimings,
    /// Time in the sink, storing the pieces.
    pub store: Duration,
}

/// Runs `layer` over `image` band by band and filter chunk by filter chunk
/// as `plan` says, handing each piece `[filters, rows, OW]` to `sink` with
/// its first filter and first output row, in order. Together the pieces are
/// exactly the untiled output.
///
/// On the GPU each piece is submitted before the one before it is handed
/// over, so that a GPU that runs submissions in the background (a real
/// one) computes a band while `sink` stores the last; the pieces alternate
/// between two output slots, and reach `sink` where they lie in mapped
/// memory.
pub fn convolve_planned(
    engine: &Engine,
    image: &(impl Bands + ?Sized),
    layer: &Layer,
    plan: &Plan,
    mut sink: impl FnMut(u32, u32, TensorView<'_>) -> Result<()>,
) -> Result<PlannedTimings> {
    let [_, height, width] = image.shape();
    let (_, out_width) = layer.spec.output_size(height, width)?;
    let mut timings = PlannedTimings::default();
    let chunks: Vec<_> = plan
        .filter_chunks
        .iter()
        .map(|filters| (filters.start, layer.filter_chunk(filters.clone())))
        .collect();
    let mut slots = [OutputSlot::default(), OutputSlot::default()];
    if let Engine::Gpu { gpu, .. } = engine {
        // Both slots at the size of the largest piece, made before the
        // first submission, so that none waits on the GPU later.
        let rows = plan.bands.iter().map(|band| band.len()).max().unwrap_or(0) as u64;
        let filters = plan
            .filter_chunks
            .iter()
            .map(|c| c.len())
            .max()
            .unwrap_or(0) as u64;
        for slot in &mut slots {
            slot.reserve(gpu, filters * rows * out_width as u64 * 4)?;
        }
    }
    let mut pending = None;
    let pieces = plan
        .bands
        .iter()
        .flat_map(|band| std::iter::repeat(band).zip(&chunks));
    for (index, (band, (first_filter, (channels, chunk)))) in pieces.enumerate() {
        let (input_rows, band_spec) = layer.spec.band(band.clone());
        let mut chunk = chunk.clone();
        chunk.spec.padding = band_spec.padding;
        let input = image.padded_band(channels.clone(), input_rows);
        let piece = match engine {
            Engine::Gpu { gpu, pipeline } => Piece::Running(
                gpu,
                pipeline.submit(gpu, &input, &chunk, &mut slots[index % 2])?,
            ),
            Engine::Cpu => {
                let (maps, cpu_timings) = engine.convolve(&input, &chunk)?;
                timings.gpu.add(cpu_timings);
                Piece::Ready(maps)
            }
        };
        if let Some((filter, row, previous)) = pending.replace((*first_filter, band.start, piece)) {
            timings.add(previous.hand_over(|maps| sink(filter, row, maps))?);
        }
    }
    if let Some((filter, row, last)) = pending {
        timings.add(last.hand_over(|maps| sink(filter, row, maps))?);
    }
    Ok(timings)
}

impl PlannedTimings {
    /// Adds one piece's times.
    fn add(&mut self, (gpu, store): (GpuTimings, Duration)) {
        self.gpu.add(gpu);
        self.store += store;
    }
}

/// One piece of a planned run: computed (on the CPU), or submitted to the GPU.
enum Piece<'g> {
    Ready(Tensor3),
    Running(&'g Gpu, InFlight),
}

impl Piece<'_> {
    /// Waits for the piece if it is running and hands its maps to `sink`;
    /// returns its GPU timings and the time spent in `sink`.
    fn hand_over(
        self,
        sink: impl FnOnce(TensorView<'_>) -> Result<()>,
    ) -> Result<(GpuTimings, Duration)> {
        let timed_sink = |maps: TensorView<'_>| {
            let started = Instant::now();
            sink(maps).map(|()| started.elapsed())
        };
        match self {
            Piece::Ready(maps) => Ok((GpuTimings::default(), timed_sink(maps.view())?)),
            Piece::Running(gpu, run) => {
                let (store, gpu_timings) = run.read(gpu, timed_sink)?;
                Ok((gpu_timings, store))
            }
        }
    }
}

/// Running statistics of one map.
#[derive(Clone, Copy, Debug)]
struct MapStats {
    min: f32,
    max: f32,
    sum: f64,
    count: u64,
}

impl Default for MapStats {
    fn default() -> Self {
        MapStats {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            sum: 0.0,
            count: 0,
        }
    }
}

impl MapStats {
    /// Takes in more of the map's values.
    fn add(&mut self, values: &[f32]) {
        // Eight independent lanes, so that the compiler can use vector
        // instructions instead of one long chain of dependent additions.
        const LANES: usize = 8;
        let mut lo = [self.min; LANES];
        let mut hi = [self.max; LANES];
        let mut sum = [0.0f64; LANES];
        let chunks = values.chunks_exact(LANES);
        let rest = chunks.remainder();
        for chunk in chunks {
            for lane in 0..LANES {
                let v = chunk[lane];
                lo[lane] = if v < lo[lane] { v } else { lo[lane] };
                hi[lane] = if v > hi[lane] { v } else { hi[lane] };
                sum[lane] += v as f64;
            }
        }
        for &v in rest {
            lo[0] = lo[0].min(v);
            hi[0] = hi[0].max(v);
            sum[0] += v as f64;
        }
        self.min = lo.into_iter().fold(f32::INFINITY, f32::min);
        self.max = hi.into_iter().fold(f32::NEG_INFINITY, f32::max);
        self.sum += sum.iter().sum::<f64>();
        self.count += values.len() as u64;
    }

    fn summary(&self) -> MapSummary {
        MapSummary {
            min: self.min,
            max: self.max,
            mean: if self.count == 0 {
                0.0
            } else {
                (self.sum / self.count as f64) as f32
            },
        }
    }
}

/// Writes one PNG per map (coloured with `view`'s map and range) and the
/// labelled `grid.png`, reading the raw maps back map by map, in parallel,
/// `rows_per_read` rows (1 to `height`) at a time; returns the file names.
fn write_pictures(
    out_dir: &Path,
    raw: &BandedNpy,
    stats: &[MapStats],
    view: &View,
    (height, width): (u32, u32),
    rows_per_read: u32,
    progress: &(dyn Fn(Step) + Sync),
) -> Result<Vec<String>> {
    let count = stats.len() as u32;
    let all = stats
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), s| {
            (lo.min(s.min), hi.max(s.max))
        });
    let diverging = view.colormap.is_diverging();
    let gray = view.colormap == Colormap::Gray;
    let names: Vec<String> = (0..count)
        .map(|k| render::feature_file_name(k, count))
        .collect();
    let rows_per_read = rows_per_read as usize;
    let done = AtomicU64::new(0);
    let tiles: Vec<RgbGridTile> = (0..count)
        .into_par_iter()
        .map(|k| {
            let mut writer = render::PngRowWriter::create(
                &out_dir.join(&names[k as usize]),
                width,
                height,
                !gray,
            )?;
            let stats = &stats[k as usize];
            let (lo, hi) = view.normalize.range((stats.min, stats.max), all, diverging);
            let mut tile = RgbGridTile::for_grid(count, width, height);
            let mut reader = raw.map_reader(k)?;
            let mut values = vec![0.0f32; rows_per_read * width as usize];
            let mut pixels = Vec::new();
            for first_row in (0..height).step_by(rows_per_read) {
                let rows = rows_per_read.min((height - first_row) as usize);
                let values = &mut values[..rows * width as usize];
                reader.read(values)?;
                pixels.clear();
                if gray {
                    render::extend_gray8(&mut pixels, values, lo, hi);
                    tile.add_gray_rows(first_row, &pixels);
                } else {
                    colormap::extend_rgb8(&mut pixels, values, lo, hi, view.colormap);
                    tile.add_rows(first_row, &pixels);
                }
                writer.write_rows(&pixels)?;
            }
            writer.finish()?;
            progress(Step {
                stage: Stage::Encode,
                done: done.fetch_add(1, Ordering::Relaxed) + 1,
                total: count as u64,
            });
            Ok(tile)
        })
        .collect::<Result<_>>()?;
    let labels: Vec<String> = (0..count).map(|k| k.to_string()).collect();
    let grid = labelled_grid(&tiles, &labels);
    render::write_png_rgb(&out_dir.join("grid.png"), &grid)?;
    let mut files = names;
    files.push("grid.png".into());
    Ok(files)
}

/// Writes `filters.png`, one small picture per filter under `filters/`,
/// a preview of the photo as `input.png`, and `index.html`, which shows
/// them all with each map's range; returns the file names.
fn write_page(
    out_dir: &Path,
    image: &Photo,
    layer: &Layer,
    summary: &Summary,
    view: &View,
) -> Result<Vec<String>> {
    let mut files = Vec::new();
    render::write_png_rgb(
        &out_dir.join("filters.png"),
        &filters_picture(layer, view.per_channel_filters),
    )?;
    files.push("filters.png".to_string());

    render::write_png_rgb(
        &out_dir.join("input.png"),
        &render::preview_rgb(image, INPUT_PREVIEW_SIDE),
    )?;
    files.push("input.png".to_string());

    let filter_dir = out_dir.join("filters");
    std::fs::create_dir_all(&filter_dir).map_err(|e| Error::io(&filter_dir, e))?;
    let zoom = filter_zoom(layer, view.per_channel_filters);
    let count = layer.spec.filters;
    let filter_names: Vec<String> = (0..count)
        .into_par_iter()
        .map(|k| {
            let name = format!(
                "filters/{}",
                render::feature_file_name(k, count).replace("feature", "filter")
            );
            let tile = filter_tile(layer, k, view.per_channel_filters, zoom);
            render::write_png_rgb(&out_dir.join(&name), &tile).map(|()| name)
        })
        .collect::<Result<_>>()?;

    let spec = &layer.spec;
    let page = Page {
        title: format!("convmaps: {}", summary.input.path.display()),
        input_image: "input.png".into(),
        parameter_line: summary.parameter_formula.clone(),
        parameter_detail: format!(
            "{} weights ({} filters × {} channels × {}×{}) + {} biases (one per filter)",
            summary.parameters.weights,
            spec.filters,
            spec.channels_per_group(),
            spec.kernel_height,
            spec.kernel_width,
            summary.parameters.biases
        ),
        layer_line: format!(
            "{}×{} photo → {} maps of {}×{}; kernel {}×{}, stride {}, dilation {}, groups {}; weights: {}",
            summary.input.width,
            summary.input.height,
            summary.output.maps,
            summary.output.width,
            summary.output.height,
            spec.kernel_height,
            spec.kernel_width,
            spec.stride,
            spec.dilation,
            spec.groups,
            summary.layer.weights_source
        ),
        grid_image: "grid.png".into(),
        filters_image: "filters.png".into(),
        maps: summary
            .maps
            .iter()
            .zip(&filter_names)
            .enumerate()
            .map(|(k, (map, filter_image))| PageMap {
                index: k as u32,
                image: render::feature_file_name(k as u32, count),
                filter_image: Some(filter_image.clone()),
                min: map.min,
                max: map.max,
                mean: map.mean,
                bias: layer.bias.get(k).copied(),
            })
            .collect(),
    };
    write_bytes_atomic(&out_dir.join("index.html"), index_html(&page).as_bytes())?;
    files.extend(filter_names);
    files.push("index.html".to_string());
    Ok(files)
}

/// Longest side of `input.png`, the photo's preview on the page, in pixels.
const INPUT_PREVIEW_SIDE: u32 = 1024;
