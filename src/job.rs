//! One run of the tool: photo in, layer applied, pictures and reports out.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::cpu;
use crate::error::{Error, Result};
use crate::gpu::{DirectConv, Gpu};
use crate::layer::{Layer, LayerSpec, PaddingMode};
use crate::output::{check_output_dir, create_output_dir, write_bytes_atomic};
use crate::report::{InputSummary, LayerSummary, OutputSummary, Summary, Timings, ms};
use crate::tensor::Tensor3;
use crate::{npy, photo, render, weights};

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
        /// Device and queue.
        gpu: Box<Gpu>,
        /// The compiled pipeline.
        direct: DirectConv,
    },
    /// The CPU reference.
    Cpu,
}

/// Stage times of one convolution.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConvTimings {
    /// Upload of image and parameters (zero on the CPU).
    pub upload: Duration,
    /// The convolution itself.
    pub compute: Duration,
    /// Readback of the maps (zero on the CPU).
    pub readback: Duration,
}

impl Engine {
    /// Builds the engine for `choice`. With [`BackendChoice::Auto`] and no
    /// adapter, falls back to the CPU and returns the reason as a notice
    /// for the user.
    pub fn new(choice: BackendChoice) -> Result<(Engine, Option<String>)> {
        let gpu_engine = || -> Result<Engine> {
            let gpu = Gpu::new()?;
            let direct = DirectConv::new(&gpu)?;
            Ok(Engine::Gpu {
                gpu: Box::new(gpu),
                direct,
            })
        };
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

    /// "gpu" or "cpu".
    pub fn name(&self) -> &'static str {
        match self {
            Engine::Gpu { .. } => "gpu",
            Engine::Cpu => "cpu",
        }
    }

    /// Runs `layer` over `input` `[C, H, W]`, returning the maps `[K, OH, OW]`.
    pub fn convolve(&self, input: &Tensor3, layer: &Layer) -> Result<(Tensor3, ConvTimings)> {
        match self {
            Engine::Gpu { gpu, direct } => {
                let (maps, t) = direct.run(gpu, input, layer)?;
                Ok((
                    maps,
                    ConvTimings {
                        upload: t.upload,
                        compute: t.compute,
                        readback: t.readback,
                    },
                ))
            }
            Engine::Cpu => {
                let started = Instant::now();
                let maps = cpu::conv2d_direct(input, layer)?;
                Ok((
                    maps,
                    ConvTimings {
                        compute: started.elapsed(),
                        ..Default::default()
                    },
                ))
            }
        }
    }
}

/// Where the layer's parameters come from.
#[derive(Clone, Debug, PartialEq)]
pub enum WeightsSource {
    /// PyTorch's default initialisation ([`weights::kaiming_uniform`]) with this seed.
    Init {
        /// The generator's seed.
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
    /// Largest photo accepted, in pixels (width × height), checked from the
    /// header before anything is decoded.
    pub max_pixels: u64,
}

/// The default output directory for `input`: `out/<file stem>/`.
pub fn default_out_dir(input: &Path) -> PathBuf {
    let stem = input
        .file_stem()
        .map(|s| s.to_os_string())
        .unwrap_or_else(|| "photo".into());
    Path::new("out").join(stem)
}

/// Runs one job on `engine` (which may carry `setup` time already spent
/// building it) and writes every output file. Returns the summary, which is
/// also written as `summary.json`.
pub fn run(engine: &Engine, job: &Job, setup: Duration) -> Result<Summary> {
    let started = Instant::now();
    check_output_dir(&job.out_dir)?;

    let stage = Instant::now();
    let image = photo::load_rgb(&job.input, job.max_pixels)?;
    let decode = stage.elapsed();

    let stage = Instant::now();
    let mut spec = job.spec;
    spec.in_channels = image.channels;
    let (mut layer, weights_source) = match &job.weights {
        WeightsSource::Init { seed } => (
            weights::kaiming_uniform(spec, *seed)?,
            format!("kaiming-uniform (seed {seed})"),
        ),
        WeightsSource::Safetensors { path, layer_name } => (
            weights::load_safetensors(path, layer_name.as_deref())?.into_layer(
                spec,
                image.channels,
                path,
            )?,
            path.display().to_string(),
        ),
        WeightsSource::Npy { weight, bias } => (
            weights::load_npy(weight, bias.as_deref())?.into_layer(spec, image.channels, weight)?,
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

    let (maps, conv) = engine.convolve(&image, &layer)?;

    let stage = Instant::now();
    create_output_dir(&job.out_dir)?;
    let mut files = write_maps(&job.out_dir, &maps)?;
    write_bytes_atomic(
        &job.out_dir.join("weights.safetensors"),
        &weights::to_safetensors(&layer)?,
    )?;
    files.push("weights.safetensors".into());
    if job.raw {
        npy::write_f32(&job.out_dir.join("features.npy"), &maps)?;
        files.push("features.npy".into());
    }
    files.push("summary.json".into());

    let flops = 2.0 * maps.data.len() as f64 * layer.spec.taps_per_output() as f64;
    let gflops = if conv.compute.is_zero() {
        0.0
    } else {
        flops / conv.compute.as_secs_f64() / 1e9
    };
    let mut summary = Summary {
        input: InputSummary {
            path: job.input.clone(),
            width: image.width,
            height: image.height,
            channels: image.channels,
        },
        layer: LayerSummary::new(&layer, weights_source),
        parameters: layer.parameters(),
        parameter_formula: layer.parameter_formula(),
        output: OutputSummary {
            width: maps.width,
            height: maps.height,
            maps: maps.channels,
        },
        backend: engine.name().to_string(),
        adapter: match engine {
            Engine::Gpu { gpu, .. } => Some(gpu.adapter_summary()),
            Engine::Cpu => None,
        },
        timings_ms: Timings {
            decode: ms(decode),
            weights: ms(weights_time),
            setup: ms(setup),
            upload: ms(conv.upload),
            compute: ms(conv.compute),
            readback: ms(conv.readback),
            encode: 0.0,
            total: 0.0,
        },
        compute_timing: match engine {
            Engine::Gpu { .. } => "wall time around submit and wait".into(),
            Engine::Cpu => "wall time".into(),
        },
        gflops,
        files,
    };
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

/// Writes one min–max normalised grayscale PNG per map (in parallel) and
/// `grid.png`; returns the file names.
fn write_maps(out_dir: &Path, maps: &Tensor3) -> Result<Vec<String>> {
    let count = maps.channels;
    let (width, height) = (maps.width, maps.height);
    let pictures: Vec<(String, Vec<u8>)> = maps
        .data
        .par_chunks(maps.plane_len())
        .enumerate()
        .map(|(index, map)| {
            let (lo, hi) = render::min_max(map);
            let pixels = render::to_gray8(map, lo, hi);
            let name = render::feature_file_name(index as u32, count);
            render::write_png_gray(&out_dir.join(&name), width, height, &pixels)?;
            Ok((name, pixels))
        })
        .collect::<Result<_>>()?;
    let (mut names, pixels): (Vec<String>, Vec<Vec<u8>>) = pictures.into_iter().unzip();
    let grid = render::grid(&pixels, width, height);
    render::write_png_gray(
        &out_dir.join("grid.png"),
        grid.width(),
        grid.height(),
        grid.as_raw(),
    )?;
    names.push("grid.png".into());
    Ok(names)
}
