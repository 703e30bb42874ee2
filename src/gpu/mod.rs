//! The GPU side: one [`Gpu`] (adapter, device, queue) made once and handed
//! to the pipelines ([`DirectConv`], the teaching shader, and [`FastConv`],
//! the register-blocked one), and GPU errors turned into [`Error`]s.

pub(crate) mod buffers;
pub mod cache;
mod direct;
mod fast;
pub mod pictures;
#[cfg(test)]
pub(crate) mod reflect;
pub mod resident;

pub use crate::settings::FastKernel;
pub use buffers::{InFlight, OutputSlot, RunTimings};
pub use direct::DirectConv;
pub use fast::{FastConv, SUBGROUP_CHANNELS};
pub use pictures::MapPictures;
pub use resident::{BandRecording, DeviceTensor, QuadTarget, TensorOps};

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::layer::Layer;
use crate::settings::CacheDir;
use crate::tensor::Tensor3;

/// The WGSL shaders that can run the layer (`--shader`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ShaderKind {
    /// `conv2d_direct.wgsl`: one invocation per output pixel per filter, the
    /// teaching shader.
    Direct,
    /// The fast shader, the default: `conv2d_subgroup.wgsl` (8 pixels × 8
    /// filters per invocation, subgroups sharing the weights) where the GPU
    /// has subgroups and the layer suits it, else `conv2d_fast.wgsl` (8
    /// pixels × 16 filters, read from uniform windows).
    #[default]
    Fast,
}

impl ShaderKind {
    /// Every shader, slowest first.
    pub const ALL: [ShaderKind; 2] = [ShaderKind::Direct, ShaderKind::Fast];

    /// The shader's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            ShaderKind::Direct => "direct",
            ShaderKind::Fast => "fast",
        }
    }

    /// Compiles this shader's pipeline on `gpu`.
    pub fn compile(self, gpu: &Gpu) -> Result<Box<dyn ConvPipeline>> {
        self.compile_with(gpu, FastKernel::Auto)
    }

    /// Compiles this shader's pipeline on `gpu`, the fast shader running
    /// `kernel`.
    pub fn compile_with(self, gpu: &Gpu, kernel: FastKernel) -> Result<Box<dyn ConvPipeline>> {
        Ok(match self {
            ShaderKind::Direct => Box::new(DirectConv::new(gpu)?),
            ShaderKind::Fast => Box::new(FastConv::with_kernel(gpu, kernel)?),
        })
    }
}

/// A conv's compute pass: the layer over `input` `[C, H, W]` (a
/// [`Tensor3`] in host memory, or a [`DeviceTensor`] in GPU memory),
/// recorded into `encoder`, writing the maps `[K, OH, OW]` into `output`
/// (at least that large), timed by `timestamps` where given.
pub struct ConvPass<'a, Input> {
    /// The input.
    pub input: &'a Input,
    /// The layer.
    pub layer: &'a Layer,
    /// Where the pass is recorded.
    pub encoder: &'a mut wgpu::CommandEncoder,
    /// Where the maps go.
    pub output: &'a wgpu::Buffer,
    /// The timestamps around the pass, where the adapter has them.
    pub timestamps: Option<wgpu::ComputePassTimestampWrites<'a>>,
}

/// Steps a network fuses into a conv, applied to each sum after the bias:
/// a residual `[K, OH, OW]` added, then an activation (instead of the
/// layer's own); and the layouts of its input and output where they are the
/// subgroup shader's quads, so that a conv hands its output to the next
/// without a packing step between them.
#[derive(Clone, Copy, Debug)]
pub struct Fused<'a> {
    /// The value added to the sums, where there is one.
    pub residual: Option<&'a wgpu::Buffer>,
    /// The function applied last, where there is one.
    pub activation: Option<FusedActivation>,
    /// The input already laid out as this conv's quads (the pass's input
    /// then only gives its shape), where a conv before it wrote them.
    pub input_quads: Option<&'a wgpu::Buffer>,
    /// Where the output goes: into the quads of the conv that reads it, in
    /// the pass's output buffer (cleared first where the conv leaves some of
    /// it: padding, lanes past its last filter); `None` for `[K, OH, OW]`.
    pub output_quads: Option<QuadTarget>,
}

impl Fused<'_> {
    /// Nothing fused: the layer as it is.
    pub const NONE: Fused<'static> = Fused {
        residual: None,
        activation: None,
        input_quads: None,
        output_quads: None,
    };

    /// Whether the input or the output is laid out as quads, which only
    /// the subgroup shader reads and writes.
    pub fn has_quads(&self) -> bool {
        self.input_quads.is_some() || self.output_quads.is_some()
    }
}

/// An activation as `net_ops.wgsl`'s `unary_value` names it: its kind's
/// code (`net::ops::UnaryKind`) and parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FusedActivation {
    /// The kind's code: 0 ReLU, 1 LeakyReLU, 2 Clip, 3 Sigmoid,
    /// 4 HardSigmoid, 5 HardSwish, 6 Tanh, … 13 SiLU.
    pub kind: u32,
    /// LeakyReLU's slope, Clip's minimum, HardSigmoid's alpha.
    pub alpha: f32,
    /// Clip's maximum, HardSigmoid's beta.
    pub beta: f32,
}

/// What every compiled pipeline does: submit a run of a layer, or run it to
/// the end.
pub trait ConvPipeline: Send + Sync {
    /// Records `pass`: its input and layer uploaded from host memory as
    /// this pipeline lays them out, and its dispatches in one compute pass.
    ///
    /// Fails with [`Error::GpuLimit`] when a buffer or the dispatch exceeds
    /// the device's limits, and with [`Error::Mismatch`] when the input
    /// does not fit the layer.
    fn record_from_host(&self, gpu: &Gpu, pass: ConvPass<'_, Tensor3>) -> Result<()>;

    /// Uploads `input` `[C, H, W]` and the layer and submits the run with
    /// its output in `slot`, without waiting for the GPU; [`InFlight::read`]
    /// waits and hands over the maps `[K, OH, OW]`. Submitting the next
    /// band before reading this one lets a GPU that runs in the background
    /// compute while the host stores.
    ///
    /// Fails as [`ConvPipeline::record_from_host`] does, and with
    /// [`Error::Gpu`] when the GPU reports an error.
    fn submit(
        &self,
        gpu: &Gpu,
        input: &Tensor3,
        layer: &Layer,
        slot: &mut OutputSlot,
    ) -> Result<InFlight> {
        let started = std::time::Instant::now();
        let (out_height, out_width) = layer.output_size_for(input)?;
        let shape = [layer.spec.filters, out_height, out_width];
        let bytes = layer.spec.output_bytes(out_height, out_width);
        // Refused before the slot grows to hold it.
        buffers::check_buffers(&[("output", bytes)], gpu.max_storage_binding())?;
        let buffers = slot.buffers(gpu, bytes)?;
        let output = buffers.0.clone();
        buffers::submit_run(gpu, buffers, shape, started, |encoder, timestamps| {
            let pass = ConvPass {
                input,
                layer,
                encoder,
                output: &output,
                timestamps,
            };
            self.record_from_host(gpu, pass)
        })
    }

    /// Records `pass` over its input already in GPU memory: the same sums
    /// as [`ConvPipeline::submit`], with the fast shader's input laid out
    /// on the GPU by `ops`.
    fn record(&self, gpu: &Gpu, ops: &TensorOps, pass: ConvPass<'_, DeviceTensor>) -> Result<()>;

    /// Bytes of the buffers [`ConvPipeline::record`] makes for `layer` over
    /// an input of `[C, H, W]`, besides the input and the output, which
    /// stay allocated until the submission ends: by default the weights
    /// and biases it uploads.
    fn scratch_bytes(&self, _gpu: &Gpu, layer: &Layer, _shape: [u32; 3]) -> u64 {
        4 * (layer.weight.len() + layer.bias.len()) as u64
    }

    /// Whether this pipeline has a kernel for depthwise layers (G = C = K)
    /// that does not compute a block of filters per group, most of them on
    /// zero weights.
    fn runs_depthwise(&self) -> bool {
        false
    }

    /// Whether [`ConvPipeline::record_fused`] records `layer` over an input
    /// of `[C, H, W]` (else the caller runs the fused steps itself).
    fn fuses(&self, _gpu: &Gpu, _layer: &Layer, _shape: [u32; 3]) -> bool {
        false
    }

    /// The quads `layer` reads over an input of `[C, H, W]`, where it runs
    /// on a kernel that reads quads and a conv before it may write them
    /// ([`Fused::output_quads`]): channels in order, channel c in lane
    /// c % 4 of quad c / 4 (one group, or groups of whole quads). By
    /// default none.
    fn input_quads(&self, _gpu: &Gpu, _layer: &Layer, _shape: [u32; 3]) -> Option<QuadTarget> {
        None
    }

    /// Whether [`ConvPipeline::record_fused`] can write `layer`'s output
    /// over an input of `[C, H, W]` as another conv's quads
    /// ([`Fused::output_quads`]). By default not.
    fn writes_quads(&self, _gpu: &Gpu, _layer: &Layer, _shape: [u32; 3]) -> bool {
        false
    }

    /// [`ConvPipeline::record`] with `fused`'s steps in the conv's own
    /// dispatch, where this pipeline can; returns whether it recorded
    /// anything (when not, the caller runs those steps itself).
    fn record_fused(
        &self,
        _gpu: &Gpu,
        _ops: &TensorOps,
        _pass: ConvPass<'_, DeviceTensor>,
        _fused: Fused<'_>,
    ) -> Result<bool> {
        Ok(false)
    }

    /// Builds, before a run, the pipelines that recording `convs` (each a
    /// layer, its input's `[C, H, W]` and the activation fused into it)
    /// will need and that are built on first use, side by side where it
    /// can: a network's pipelines before its first run. By default nothing.
    fn prepare(
        &self,
        _gpu: &Gpu,
        _convs: &[(&Layer, [u32; 3], Option<FusedActivation>)],
    ) -> Result<()> {
        Ok(())
    }

    /// Runs the layer over `input` `[C, H, W]` and reads back the maps
    /// `[K, OH, OW]`: one run from upload to readback.
    fn run(&self, gpu: &Gpu, input: &Tensor3, layer: &Layer) -> Result<(Tensor3, RunTimings)> {
        self.submit(gpu, input, layer, &mut OutputSlot::default())?
            .into_tensor(gpu)
    }
}

/// A compute pipeline whose bind group layout comes from its shader, and
/// that layout.
pub type AutoPipeline = (wgpu::ComputePipeline, wgpu::BindGroupLayout);

/// Compiles the WGSL `source` (named `label`) on `gpu` and builds a
/// pipeline for each of `entry_points`, in order, each with the layout its
/// shader declares, through the pipeline cache.
pub fn auto_pipelines<const N: usize>(
    gpu: &Gpu,
    label: &str,
    source: &str,
    entry_points: [&str; N],
) -> Result<[AutoPipeline; N]> {
    gpu.scoped("pipeline creation", || {
        let module = gpu
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        entry_points.map(|entry_point| {
            let pipeline = gpu
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry_point),
                    layout: None,
                    module: &module,
                    entry_point: Some(entry_point),
                    compilation_options: Default::default(),
                    cache: gpu.pipeline_cache(),
                });
            let layout = pipeline.get_bind_group_layout(0);
            (pipeline, layout)
        })
    })
}

/// The most loop iterations a software GPU's shader runs correctly per
/// invocation: Mesa's llvmpipe (lavapipe) ends a shader's loops after a
/// fixed count, silently (a guard against shaders that never end), and the
/// maps come out wrong. Measured with 1×1 kernels (10,900 channels exact,
/// 10,950 wrong) and 3×3 kernels (3,600 channels exact, 3,700 wrong), on
/// both shaders; [`loop_iterations`] counts them against 65,535.
pub const SOFTWARE_GPU_LOOP_ITERATIONS: u64 = 65_535;

/// The loop iterations the conv shaders run per invocation for `layer`, as
/// the driver counts them: per channel of a group, its FH·FW taps, 2·FH for
/// the rows and 3 for the channel itself (fitted to the measurements of
/// [`SOFTWARE_GPU_LOOP_ITERATIONS`]).
pub fn loop_iterations(layer: &Layer) -> u64 {
    let spec = &layer.spec;
    let (rows, columns) = (spec.kernel_height as u64, spec.kernel_width as u64);
    spec.channels_per_group() as u64 * (rows * columns + 2 * rows + 3)
}

/// Refuses, on a software GPU (an adapter of type Cpu), a layer whose sums
/// would need more loop iterations per invocation than its driver runs
/// ([`SOFTWARE_GPU_LOOP_ITERATIONS`]): the driver would stop them early and
/// hand back wrong maps without an error.
pub fn check_loop_limit(gpu: &Gpu, layer: &Layer) -> Result<()> {
    let iterations = loop_iterations(layer);
    if gpu.info.device_type == wgpu::DeviceType::Cpu && iterations > SOFTWARE_GPU_LOOP_ITERATIONS {
        let spec = &layer.spec;
        return Err(Error::GpuLimit(format!(
            "a filter over {} channels of {}×{} needs about {iterations} loop iterations per \
             output value, more than this software GPU ({}) runs correctly \
             ({SOFTWARE_GPU_LOOP_ITERATIONS}); use --backend cpu, or a real GPU",
            spec.channels_per_group(),
            spec.kernel_height,
            spec.kernel_width,
            gpu.info.name
        )));
    }
    Ok(())
}

/// The pipeline cache of `device`, filled from its file when that holds a
/// whole, unchanged cache, with the file's path; none where the device has
/// no pipeline cache or the backend keys none, or with [`CacheDir::Off`].
fn open_pipeline_cache(
    device: &wgpu::Device,
    info: &wgpu::AdapterInfo,
    cache_dir: &CacheDir,
) -> (Option<wgpu::PipelineCache>, Option<PathBuf>) {
    if !device.features().contains(wgpu::Features::PIPELINE_CACHE) {
        return (None, None);
    }
    let Some(path) =
        wgpu::util::pipeline_cache_key(info).and_then(|key| cache::cache_path(&key, cache_dir))
    else {
        return (None, None);
    };
    let data = cache::read(&path);
    // SAFETY: `data` is what `PipelineCache::get_data` returned in an
    // earlier run, as `cache::read` checks (the file's length and CRC-32
    // are those `cache::write` gave it); wgpu and the driver turn down data
    // of another adapter or driver, and `fallback` then makes an empty cache.
    let pipeline_cache = unsafe {
        device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
            label: Some("convmaps pipeline cache"),
            data: data.as_deref(),
            fallback: true,
        })
    };
    (Some(pipeline_cache), Some(path))
}

/// What a run reports about the adapter it used.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AdapterSummary {
    /// The adapter's name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub name: String,
    /// The graphics API: "vulkan", "metal", "dx12" or "gl".
    pub backend: String,
    /// "DiscreteGpu", "IntegratedGpu", "VirtualGpu", "Cpu" (a software GPU) or "Other".
    pub device_type: String,
}

/// A device and queue on one adapter, with its limits.
///
/// Made once and handed to every pipeline, so tests and callers can share
/// one. Errors the GPU reports outside an error scope are kept and returned
/// by the next [`Gpu::check`] instead of panicking.
pub struct Gpu {
    /// The logical device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// What the adapter says about itself.
    pub info: wgpu::AdapterInfo,
    uncaptured: Arc<Mutex<Option<String>>>,
    /// The driver's pipeline cache, kept between runs in `cache_file`
    /// ([`cache`]), where the backend supports one.
    pipeline_cache: Option<wgpu::PipelineCache>,
    cache_file: Option<PathBuf>,
}

impl Gpu {
    /// Finds an adapter and opens a device on it, honouring wgpu's
    /// environment variables: `WGPU_BACKEND` (e.g. `vulkan`, `gl`),
    /// `WGPU_ADAPTER_NAME` (a substring of the adapter's name) and
    /// `WGPU_POWER_PREF` (`low` or `high`). The device gets the adapter's own
    /// limits, so large photos are not held to wgpu's conservative defaults.
    ///
    /// Returns [`Error::NoAdapter`] when there is no usable adapter. The
    /// pipeline cache is kept in the user's cache directory.
    pub fn new() -> Result<Self> {
        Self::with_cache(&CacheDir::User)
    }

    /// [`Gpu::new`], with the pipeline cache kept where `cache_dir` says.
    pub fn with_cache(cache_dir: &CacheDir) -> Result<Self> {
        pollster::block_on(Self::new_async(cache_dir))
    }

    async fn new_async(cache_dir: &CacheDir) -> Result<Self> {
        // Without WGPU_BACKEND, look at the primary APIs (Vulkan, Metal,
        // DX12) first and at OpenGL only when they have no adapter: probing
        // GL needlessly is slow and noisy on headless machines.
        let adapter = if std::env::var_os("WGPU_BACKEND").is_some() {
            Self::find_adapter(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
                .await
        } else {
            let mut primary = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
            primary.backends = wgpu::Backends::PRIMARY;
            match Self::find_adapter(primary).await {
                Err(Error::NoAdapter(_)) => {
                    let mut secondary =
                        wgpu::InstanceDescriptor::new_without_display_handle_from_env();
                    secondary.backends = wgpu::Backends::SECONDARY;
                    Self::find_adapter(secondary).await
                }
                found => found,
            }
        }?;
        let info = adapter.get_info();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("convmaps"),
                required_limits: adapter.limits(),
                // GPU timestamps time the compute pass where the adapter can;
                // a pipeline cache keeps compiled pipelines between runs;
                // subgroups let the fast shader share loaded weights.
                required_features: adapter.features()
                    & (wgpu::Features::TIMESTAMP_QUERY
                        | wgpu::Features::PIPELINE_CACHE
                        | wgpu::Features::SUBGROUP),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Gpu {
                stage: "device creation",
                message: e.to_string(),
            })?;

        let uncaptured = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&uncaptured);
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            if let Ok(mut slot) = sink.lock() {
                slot.get_or_insert_with(|| error.to_string());
            }
        }));
        let lost = Arc::clone(&uncaptured);
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut slot) = lost.lock() {
                slot.get_or_insert_with(|| format!("device lost ({reason:?}): {message}"));
            }
        });
        let (pipeline_cache, cache_file) = open_pipeline_cache(&device, &info, cache_dir);
        Ok(Gpu {
            device,
            queue,
            info,
            uncaptured,
            pipeline_cache,
            cache_file,
        })
    }

    /// The pipeline cache every pipeline is built with, where there is one.
    pub fn pipeline_cache(&self) -> Option<&wgpu::PipelineCache> {
        self.pipeline_cache.as_ref()
    }

    /// Saves the pipeline cache, with what the pipelines built so far
    /// added, for the next run; returns whether it was written. Never an
    /// error: a cache that cannot be written leaves the next run cold.
    pub fn save_pipeline_cache(&self) -> bool {
        match (&self.pipeline_cache, &self.cache_file) {
            (Some(cache), Some(path)) => cache
                .get_data()
                .is_some_and(|data| cache::write(path, &data)),
            _ => false,
        }
    }

    /// The adapter `WGPU_ADAPTER_NAME` names, or the one wgpu prefers
    /// (honouring `WGPU_POWER_PREF`), among the instance's backends.
    async fn find_adapter(descriptor: wgpu::InstanceDescriptor) -> Result<wgpu::Adapter> {
        let instance = wgpu::Instance::new(descriptor);
        match std::env::var("WGPU_ADAPTER_NAME") {
            Ok(wanted) if !wanted.is_empty() => {
                let wanted_lower = wanted.to_lowercase();
                let adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
                let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
                adapters
                    .into_iter()
                    .find(|a| a.get_info().name.to_lowercase().contains(&wanted_lower))
                    .ok_or_else(|| {
                        Error::NoAdapter(format!(
                            " whose name contains WGPU_ADAPTER_NAME={wanted:?} (adapters: {})",
                            if names.is_empty() {
                                "none".to_string()
                            } else {
                                names.join(", ")
                            }
                        ))
                    })
            }
            _ => instance
                .request_adapter(&wgpu::RequestAdapterOptions {
                    power_preference: wgpu::PowerPreference::from_env().unwrap_or_default(),
                    ..Default::default()
                })
                .await
                .map_err(|e| Error::NoAdapter(format!(" ({e})"))),
        }
    }

    /// The adapter's name, API and type, for reports.
    pub fn adapter_summary(&self) -> AdapterSummary {
        AdapterSummary {
            name: self.info.name.clone(),
            backend: self.info.backend.to_string(),
            device_type: format!("{:?}", self.info.device_type),
        }
    }

    /// The device's limits (the adapter's own).
    pub fn limits(&self) -> wgpu::Limits {
        self.device.limits()
    }

    /// The fewest invocations a subgroup of this device has, where the
    /// device runs subgroup operations in compute shaders; `None` where it
    /// does not.
    pub fn subgroup_size(&self) -> Option<u32> {
        let features = self.device.features();
        (features.contains(wgpu::Features::SUBGROUP) && self.info.subgroup_min_size > 0)
            .then_some(self.info.subgroup_min_size)
    }

    /// The largest storage buffer binding this GPU takes, in bytes.
    pub fn max_storage_binding(&self) -> u64 {
        let limits = self.limits();
        limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size)
    }

    /// Whether the device writes GPU timestamps around compute passes.
    pub fn has_timestamps(&self) -> bool {
        self.device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Runs `work` inside error scopes for validation, out-of-memory and
    /// internal errors, and returns the first error the GPU reported as
    /// [`Error::Gpu`] naming `stage`.
    pub fn scoped<T>(&self, stage: &'static str, work: impl FnOnce() -> T) -> Result<T> {
        let out_of_memory = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = work();
        let errors = [
            pollster::block_on(validation.pop()),
            pollster::block_on(internal.pop()),
            pollster::block_on(out_of_memory.pop()),
        ];
        if let Some(error) = errors.into_iter().flatten().next() {
            return Err(Error::Gpu {
                stage,
                message: error.to_string(),
            });
        }
        self.check(stage)?;
        Ok(value)
    }

    /// Waits until the queue is idle; a lost device or a timeout is an error.
    pub fn wait(&self, stage: &'static str) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu {
                stage,
                message: e.to_string(),
            })?;
        self.check(stage)
    }

    /// Returns an error the GPU reported outside any scope (or a device
    /// loss) since the last check.
    pub fn check(&self, stage: &'static str) -> Result<()> {
        let pending = self.uncaptured.lock().ok().and_then(|mut slot| slot.take());
        match pending {
            Some(message) => Err(Error::Gpu { stage, message }),
            None => Ok(()),
        }
    }
}
