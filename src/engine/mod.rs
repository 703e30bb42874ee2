//! Two interfaces for everything that can run a graph: [`Engine`] computes
//! a band of it (one conv, [`Engine::submit`], or a band of a chain's
//! steps, [`Engine::submit_band`]) and hands it back ([`Submitted::read`]);
//! [`Pictures`] makes each band's statistics and pictures from its maps.
//! The CPU twin and the GPU pipelines implement both, are made once, and
//! the job, `convmaps bench` and the tests use only these interfaces;
//! which engine it is matters only here, where engines are made.

mod chain;
mod maps;

pub use chain::{run_chain, run_on_host};
pub use maps::{BandOut, KeptMaps, SubmittedMaps, Wants};

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cpu;
use crate::error::{Error, Result};
use crate::gpu::buffers::{PassTimer, check_buffers, record_readback, submit_readbacks};
use crate::gpu::{
    AdapterSummary, BandRecording, ConvPass, ConvPipeline, DeviceTensor, Gpu, InFlight,
    MapPictures, OutputSlot, RunTimings, ShaderKind, TensorOps,
};
use crate::graph::plan::{self, LayerPlan};
use crate::graph::{BandOp, BandStep};
use crate::layer::Layer;
use crate::net::{self, Array, NetRun, Network, ValueId};
use crate::render::quantise::Quantise;
use crate::settings::{FastKernel, Placement, Settings};
use crate::tensor::{RowSource, Tensor3, TensorView};
use maps::{GpuBand, Kept};

/// What ran a layer, for reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineInfo {
    /// The GPU or the CPU.
    pub backend: Backend,
    /// The WGSL shader that computed the sums; none where the CPU twin of
    /// the direct shader did.
    pub shader: Option<ShaderKind>,
    /// The GPU adapter, on the GPU.
    pub adapter: Option<AdapterSummary>,
    /// How the compute time ([`RunTimings::gpu_compute`], else
    /// [`RunTimings::compute`]) is measured.
    pub compute_timing: ComputeTiming,
    /// Where a stack's maps go between layers.
    pub between_layers: Placement,
    /// Where each band's statistics and pixels are made (on the GPU: in
    /// `shaders/map_pictures.wgsl`; on the host: from the f32 maps read back).
    pub pictures: Placement,
}

impl EngineInfo {
    /// `name (api)` of the adapter, or "CPU reference".
    pub fn adapter_line(&self) -> String {
        match &self.adapter {
            Some(adapter) => format!("{} ({})", adapter.name, adapter.backend),
            None => "CPU reference".to_string(),
        }
    }

    /// The program that computed the sums: `fast` or `direct` (the WGSL
    /// shaders), or `cpu` (the CPU twin of the direct shader).
    pub fn shader_name(&self) -> &'static str {
        self.shader.map_or("cpu", ShaderKind::name)
    }

    /// Whether the adapter is a software GPU (of type Cpu, such as lavapipe).
    pub fn software_gpu(&self) -> bool {
        self.adapter
            .as_ref()
            .is_some_and(|a| a.device_type == "Cpu")
    }
}

/// The GPU or the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A GPU, through wgpu.
    Gpu,
    /// The CPU twin.
    Cpu,
}

impl Backend {
    /// `gpu` or `cpu`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Gpu => "gpu",
            Backend::Cpu => "cpu",
        }
    }
}

/// How an engine's compute time is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComputeTiming {
    /// The GPU's timestamps around the compute pass.
    GpuTimestamps,
    /// Wall time in submit and wait (a GPU without timestamps).
    SubmitAndWait,
    /// Wall time (the CPU).
    WallTime,
}

impl serde::Serialize for ComputeTiming {
    /// As [`ComputeTiming::describe`] says it.
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.describe())
    }
}

impl ComputeTiming {
    /// How `summary.json` says it.
    pub fn describe(self) -> &'static str {
        match self {
            ComputeTiming::GpuTimestamps => "GPU timestamps around the compute pass",
            ComputeTiming::SubmitAndWait => "wall time in submit and wait",
            ComputeTiming::WallTime => "wall time",
        }
    }
}

/// Computing a graph band by band: what runs a conv (or a band of a
/// chain's steps) over one band of input at a time.
pub trait Engine: Send + Sync {
    /// What this engine is.
    fn info(&self) -> EngineInfo;

    /// The most bytes one band's input or output may take on this engine
    /// (a GPU's largest storage buffer; unbounded on the CPU).
    fn max_band_bytes(&self) -> u64;

    /// Makes room, once, for bands whose output takes up to `bytes`, so
    /// that no band waits for memory later. Optional: bands larger than
    /// reserved still run.
    fn reserve(&self, bytes: u64) -> Result<()> {
        let _ = bytes;
        Ok(())
    }

    /// Frees what [`Engine::reserve`] and past bands kept, once a run's
    /// bands are done, so that memory is not held while its pictures are
    /// written. Optional.
    fn release(&self) {}

    /// Starts running `layer` over `input` `[C, H, W]`; the maps
    /// `[K, OH, OW]` are handed over by [`Submitted::read`]. A GPU works
    /// on the band in the background while the caller submits the next
    /// one or stores the last.
    ///
    /// Fails with [`Error::Mismatch`] when the input does not fit the
    /// layer, [`Error::GpuLimit`] when a buffer or dispatch exceeds the
    /// device, and [`Error::Gpu`] when the GPU reports an error.
    fn submit(&self, input: &Tensor3, layer: &Layer) -> Result<Submitted>;

    /// Runs `layer` over `input` `[C, H, W]` to the end and returns the maps
    /// `[K, OH, OW]` with the run's timings.
    fn run(&self, input: &Tensor3, layer: &Layer) -> Result<(Tensor3, RunTimings)> {
        self.submit(input, layer)?.into_tensor()
    }

    /// Starts running one band of a stack: `steps` one after the other over
    /// `input` `[C, H, W]`, handing back the output of each step marked
    /// `emit`, in order. By default through host memory
    /// ([`chain::run_on_host`]); a GPU engine keeps the band on the GPU.
    fn submit_band(&self, input: Tensor3, steps: &[BandStep]) -> Result<Vec<Submitted>> {
        chain::run_on_host(|input, layer| self.run(input, layer), input, steps)
    }

    /// Runs a whole network over `input` (its input value) and hands back
    /// the values `keep` lists. By default with the CPU twins
    /// ([`net::cpu::run`]); a GPU engine runs it in its shaders.
    fn run_network(&self, net: &Network, input: Array, keep: &[ValueId]) -> Result<NetRun> {
        net::cpu::run(net, input, keep)
    }

    /// Bytes of one band: [`Engine::max_band_bytes`], at most
    /// [`plan::DEFAULT_BAND_BYTES`] (a job's settings may set it).
    fn band_budget(&self) -> u64 {
        plan::DEFAULT_BAND_BYTES.min(self.max_band_bytes())
    }
}

/// Making each band's statistics and pictures from its maps, on the
/// engine that computed them. By default on the host from the f32 maps
/// (the CPU twins); a GPU engine makes them in shaders and reads back only
/// what was asked for.
pub trait Pictures: Engine {
    /// Starts running `layer` over `input` `[C, H, W]` for a job: each map's
    /// statistics are always handed back by [`SubmittedMaps::read`], and
    /// the f32 maps, their pixels or a kept copy as `wants` says. By
    /// default all of it is made on the host from the f32 maps (the CPU
    /// twins); a GPU engine makes it in shaders and reads back only what
    /// was asked for.
    fn submit_maps(&self, input: &Tensor3, layer: &Layer, wants: Wants) -> Result<SubmittedMaps> {
        Ok(SubmittedMaps::on_host(self.submit(input, layer)?, wants))
    }

    /// Starts making the pixels of a band kept by [`Pictures::submit_maps`],
    /// coloured as `quantise` says; [`SubmittedMaps::read`] hands them over.
    fn draw_kept(&self, kept: &KeptMaps, quantise: &Quantise) -> Result<SubmittedMaps> {
        match &kept.0 {
            Kept::Host(maps) => Ok(SubmittedMaps::drawn_on_host(maps, quantise)),
            Kept::Gpu(_) => Err(Error::Mismatch(
                "maps kept in GPU memory, drawn by an engine without a GPU".into(),
            )),
        }
    }

    /// The most bytes of f32 maps a job may keep on this engine between
    /// its passes (see [`KEEP_HOST_BYTES`]).
    fn keep_budget(&self) -> u64 {
        KEEP_HOST_BYTES
    }
}

/// The most bytes of f32 maps kept in host memory between a job's passes
/// (on the CPU, and on a software GPU, whose memory is host memory): 512
/// MiB, so that a run's peak memory stays under a gigabyte with the photo,
/// the bands and the encoders beside them.
pub const KEEP_HOST_BYTES: u64 = 512 << 20;

/// The most bytes of f32 maps kept in a real GPU's memory between a job's
/// passes: at most 4 GiB, and at most 8 of the device's largest buffers
/// (wgpu tells no device's memory size; its buffer limit is the size class
/// the driver states).
pub const KEEP_GPU_BYTES: u64 = 4 << 30;

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

/// The engine running `shader` on `gpu`, as `settings` say: the fast
/// shader's kernel, where maps go between layers and where pictures are
/// made, and the memory a network's run may hold.
pub fn gpu_engine(gpu: Arc<Gpu>, shader: ShaderKind, settings: &Settings) -> Result<GpuEngine> {
    let kernel = settings.fast_kernel.unwrap_or(FastKernel::Auto);
    let mut engine = GpuEngine::with_kernel(gpu, shader, kernel)?;
    if let Some(placement) = settings.between_layers {
        engine = engine.with_between_layers(placement);
    }
    if let Some(placement) = settings.pictures {
        engine = engine.with_pictures_on(placement);
    }
    if let Some(budget) = settings.gpu_memory {
        engine = engine.with_net_memory(Some(budget));
    }
    Ok(engine)
}

/// Opens the engine for `choice`, running `shader` on a GPU, placed as
/// `settings` say (the pipeline cache, where maps go between layers and
/// where pictures are made). With [`BackendChoice::Auto`] and no adapter,
/// falls back to the CPU and returns the reason as a notice for the user.
pub fn open(
    choice: BackendChoice,
    shader: ShaderKind,
    settings: &Settings,
) -> Result<(Box<dyn Pictures>, Option<String>)> {
    let on_gpu = || -> Result<Box<dyn Pictures>> {
        let gpu = Arc::new(Gpu::with_cache(&settings.cache_dir)?);
        Ok(Box::new(gpu_engine(gpu, shader, settings)?))
    };
    match choice {
        BackendChoice::Cpu => Ok((Box::new(CpuEngine), None)),
        BackendChoice::Gpu => Ok((on_gpu()?, None)),
        BackendChoice::Auto => match on_gpu() {
            Ok(engine) => Ok((engine, None)),
            Err(error @ Error::NoAdapter(_)) => Ok((
                Box::new(CpuEngine),
                Some(format!("{error}. Running on the CPU instead.")),
            )),
            Err(error) => Err(error),
        },
    }
}

/// The CPU twin of the direct shader ([`cpu::conv2d_direct`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuEngine;

impl Engine for CpuEngine {
    fn info(&self) -> EngineInfo {
        EngineInfo {
            backend: Backend::Cpu,
            shader: None,
            adapter: None,
            compute_timing: ComputeTiming::WallTime,
            between_layers: Placement::Host,
            pictures: Placement::Host,
        }
    }

    fn max_band_bytes(&self) -> u64 {
        u64::MAX
    }

    fn submit(&self, input: &Tensor3, layer: &Layer) -> Result<Submitted> {
        let started = Instant::now();
        let maps = cpu::conv2d_direct(input, layer)?;
        Ok(Submitted(Band::Ready {
            maps,
            timings: RunTimings {
                compute: started.elapsed(),
                ..Default::default()
            },
        }))
    }
}

impl Pictures for CpuEngine {}

/// Output slots a GPU engine keeps between bands: two, so that one band
/// is read while the next runs.
const SLOTS: usize = 2;

/// Where maps go between a stack's layers, and where statistics and
/// pixels are made, on `gpu` unless the settings say otherwise: on a
/// software GPU (an adapter of type Cpu, such as lavapipe) on the host,
/// whose memory is its own anyway and where the CPU's loops are faster
/// than its shaders (measured: a 12 MP photo through two convs took
/// 20.3–20.9 s with the maps through the host against 23.8–24.0 s kept
/// on the GPU; on a 12 MP photo's band of 32 maps, 64 MB of f32, the
/// statistics shader took 90–190 ms and the grey pixels a further 230–320
/// ms, the CPU about 10–40 ms each); on a real GPU on the GPU, so that
/// only the maps to write, as 8-bit pixels, cross the bus.
pub fn suited_placement(gpu: &Gpu) -> Placement {
    if gpu.info.device_type == wgpu::DeviceType::Cpu {
        Placement::Host
    } else {
        Placement::Gpu
    }
}

/// A WGSL shader's pipeline on a GPU, which several engines may share.
/// The engine keeps the output buffers that bands reuse.
pub struct GpuEngine {
    gpu: Arc<Gpu>,
    shader: ShaderKind,
    pipeline: Box<dyn ConvPipeline>,
    /// The steps of a stack between its convs.
    ops: TensorOps,
    /// Each band's statistics and pixels.
    pictures: MapPictures,
    /// Where a stack's maps go between its layers.
    between_layers: Placement,
    /// Where each band's statistics and pixels are made.
    pictures_on: Placement,
    /// Output slots not in use by a submitted band.
    slots: Arc<Mutex<Vec<OutputSlot>>>,
    /// A network's ops, compiled on the first network run.
    net_ops: std::sync::OnceLock<net::gpu::NetOps>,
    /// The most bytes of GPU memory a network's run may hold at once.
    net_memory: Option<u64>,
}

impl GpuEngine {
    /// Compiles `shader` on `gpu`, placing maps between layers and
    /// pictures as [`suited_placement`] says for this GPU.
    pub fn new(gpu: Arc<Gpu>, shader: ShaderKind) -> Result<Self> {
        Self::with_kernel(gpu, shader, FastKernel::Auto)
    }

    /// [`GpuEngine::new`], the fast shader running `kernel`.
    pub fn with_kernel(gpu: Arc<Gpu>, shader: ShaderKind, kernel: FastKernel) -> Result<Self> {
        let pipeline = shader.compile_with(&gpu, kernel)?;
        let ops = TensorOps::new(&gpu)?;
        let pictures = MapPictures::new(&gpu)?;
        // The next run's setup starts warm.
        gpu.save_pipeline_cache();
        let placement = suited_placement(&gpu);
        let net_memory = net::memory::default_budget(gpu.info.device_type);
        Ok(GpuEngine {
            gpu,
            shader,
            pipeline,
            ops,
            pictures,
            between_layers: placement,
            pictures_on: placement,
            slots: Arc::default(),
            net_ops: std::sync::OnceLock::new(),
            net_memory,
        })
    }

    /// This engine, holding a network's run to `budget` bytes of GPU memory
    /// at once (`None`: no limit but the device's own buffer sizes).
    pub fn with_net_memory(self, budget: Option<u64>) -> Self {
        GpuEngine {
            net_memory: budget,
            ..self
        }
    }

    /// This engine, with a stack's maps going `between_layers`.
    pub fn with_between_layers(self, between_layers: Placement) -> Self {
        GpuEngine {
            between_layers,
            ..self
        }
    }

    /// Records one band of a stack on the GPU and submits it: the input
    /// uploaded once, each step on GPU buffers, each emitting step's output
    /// copied out for reading.
    fn submit_band_on_gpu(&self, input: Tensor3, steps: &[BandStep]) -> Result<Vec<InFlight>> {
        let mut band = BandRecording::new(&self.gpu, &self.ops);
        let mut current = band.upload(&input)?;
        drop(input);
        for step in steps {
            if let Some(rows) = &step.crop {
                current = band.crop_rows(&current, rows.clone())?;
            }
            current = match &step.op {
                BandOp::Conv(layer) => band.conv(self.pipeline.as_ref(), &current, layer)?,
                BandOp::Relu => {
                    band.relu(&current)?;
                    current
                }
                BandOp::MaxPool(pool) => band.max_pool(&current, pool)?,
            };
            if step.emit {
                band.read_back(&current);
            }
        }
        band.submit()
    }

    /// This engine, with each band's statistics and pixels made `on`.
    pub fn with_pictures_on(self, on: Placement) -> Self {
        GpuEngine {
            pictures_on: on,
            ..self
        }
    }

    /// The GPU this engine runs on.
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// A free output slot (a new, empty one when all are in use).
    fn take_slot(&self) -> OutputSlot {
        self.slots
            .lock()
            .ok()
            .and_then(|mut free| free.pop())
            .unwrap_or_default()
    }
}

/// What one GPU submission makes of a band's maps besides the conv.
#[derive(Default)]
struct PictureWork<'a> {
    /// Each map's statistics.
    stats: bool,
    /// The pixels, coloured as this says.
    pixels: Option<&'a Quantise>,
    /// The f32 maps' readback, recorded already.
    maps: Option<crate::gpu::pictures::Readback>,
    /// The maps' buffer, when kept.
    kept: Option<DeviceTensor>,
    /// The output slot the maps were written into, if any.
    lease: Option<SlotLease>,
}

impl GpuEngine {
    /// Records what `work` asks of the maps `[n, rows, OW]` in `output`
    /// into `encoder` (their statistics, then their pixels), and submits it
    /// with those readbacks and the f32 maps' when given.
    fn submit_pictures(
        &self,
        mut encoder: wgpu::CommandEncoder,
        (output, shape): (&wgpu::Buffer, [u32; 3]),
        work: PictureWork<'_>,
        timer: Option<PassTimer>,
        started: Instant,
    ) -> Result<SubmittedMaps> {
        let PictureWork {
            stats,
            pixels,
            maps,
            kept,
            lease,
        } = work;
        let gpu = &self.gpu;
        let mut readbacks = Vec::new();
        if stats {
            readbacks.push(
                self.pictures
                    .record_stats(gpu, &mut encoder, (output, shape))?,
            );
        }
        let layout = match pixels {
            Some(quantise) => {
                let readback =
                    self.pictures
                        .record_quantise(gpu, &mut encoder, (output, shape), quantise)?;
                readbacks.push(readback);
                Some(quantise.layout(shape[1] as usize * shape[2] as usize))
            }
            None => None,
        };
        let wants_maps = maps.is_some();
        readbacks.extend(maps);
        let mut runs = submit_readbacks(gpu, encoder, readbacks, started, timer)?.into_iter();
        Ok(SubmittedMaps::on_gpu(GpuBand {
            gpu: gpu.clone(),
            shape,
            stats: if stats { runs.next() } else { None },
            pixels: layout.and_then(|layout| runs.next().map(|run| (run, layout))),
            maps: if wants_maps { runs.next() } else { None },
            kept,
            _lease: lease,
        }))
    }
}

impl Engine for GpuEngine {
    fn info(&self) -> EngineInfo {
        EngineInfo {
            backend: Backend::Gpu,
            shader: Some(self.shader),
            adapter: Some(self.gpu.adapter_summary()),
            compute_timing: if self.gpu.has_timestamps() {
                ComputeTiming::GpuTimestamps
            } else {
                ComputeTiming::SubmitAndWait
            },
            between_layers: self.between_layers,
            pictures: self.pictures_on,
        }
    }

    fn run_network(&self, net: &Network, input: Array, keep: &[ValueId]) -> Result<NetRun> {
        let ops = match self.net_ops.get() {
            Some(ops) => ops,
            None => {
                let ops = net::gpu::NetOps::new(&self.gpu)?;
                self.gpu.save_pipeline_cache();
                self.net_ops.get_or_init(|| ops)
            }
        };
        let runner = net::gpu::GpuNet {
            gpu: &self.gpu,
            ops,
            convs: Some((self.pipeline.as_ref(), &self.ops)),
            budget: self.net_memory,
        };
        runner.run(net, input, keep)
    }

    fn max_band_bytes(&self) -> u64 {
        self.gpu.max_storage_binding()
    }

    fn reserve(&self, bytes: u64) -> Result<()> {
        let mut slots: Vec<OutputSlot> = (0..SLOTS).map(|_| self.take_slot()).collect();
        let reserved = slots
            .iter_mut()
            .try_for_each(|slot| slot.reserve(&self.gpu, bytes));
        if let Ok(mut free) = self.slots.lock() {
            free.extend(slots);
        }
        reserved
    }

    fn release(&self) {
        if let Ok(mut free) = self.slots.lock() {
            free.clear();
        }
    }

    fn submit_band(&self, input: Tensor3, steps: &[BandStep]) -> Result<Vec<Submitted>> {
        if self.between_layers == Placement::Host {
            return chain::run_on_host(|input, layer| self.run(input, layer), input, steps);
        }
        let runs = self.submit_band_on_gpu(input, steps)?;
        Ok(runs
            .into_iter()
            .map(|run| {
                Submitted(Band::Running {
                    run: Box::new(run),
                    gpu: self.gpu.clone(),
                    _lease: SlotLease {
                        slot: None,
                        free: self.slots.clone(),
                    },
                })
            })
            .collect())
    }

    fn submit(&self, input: &Tensor3, layer: &Layer) -> Result<Submitted> {
        let mut slot = self.take_slot();
        let run = self.pipeline.submit(&self.gpu, input, layer, &mut slot);
        let lease = SlotLease {
            slot: Some(slot),
            free: self.slots.clone(),
        };
        Ok(Submitted(Band::Running {
            run: Box::new(run?),
            gpu: self.gpu.clone(),
            _lease: lease,
        }))
    }
}

impl Pictures for GpuEngine {
    /// The conv, the statistics and the pixels recorded into one
    /// submission; only what `wants` asks for is read back.
    fn submit_maps(&self, input: &Tensor3, layer: &Layer, wants: Wants) -> Result<SubmittedMaps> {
        if self.pictures_on == Placement::Host {
            return Ok(SubmittedMaps::on_host(self.submit(input, layer)?, wants));
        }
        let started = Instant::now();
        let gpu = &self.gpu;
        let (out_height, out_width) = layer.output_size_for(input)?;
        let shape = [layer.spec.filters, out_height, out_width];
        let bytes = layer.spec.output_bytes(out_height, out_width);
        // Refused before any buffer is made for it.
        check_buffers(&[("output", bytes)], gpu.max_storage_binding())?;
        let (output, staging, lease, kept) = if wants.keep {
            let kept = DeviceTensor::new(gpu, shape, "kept maps [K,OH,OW]")?;
            (kept.buffer.clone(), None, None, Some(kept))
        } else {
            let mut slot = self.take_slot();
            let (output, staging) = slot.buffers(gpu, bytes)?;
            let lease = SlotLease {
                slot: Some(slot),
                free: self.slots.clone(),
            };
            (output, Some(staging), Some(lease), None)
        };
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        let timer = PassTimer::new(gpu);
        gpu.scoped("compute", || {
            let pass = ConvPass {
                input,
                layer,
                encoder: &mut encoder,
                output: &output,
                timestamps: timer.as_ref().map(PassTimer::writes),
            };
            self.pipeline.record_from_host(gpu, pass)
        })??;
        let maps = match (wants.maps, staging) {
            (false, _) => None,
            (true, Some(staging)) => {
                if bytes > 0 {
                    encoder.copy_buffer_to_buffer(&output, 0, &staging, 0, bytes);
                }
                Some((staging, shape))
            }
            (true, None) => Some(record_readback(gpu, &mut encoder, &output, shape)),
        };
        let work = PictureWork {
            stats: wants.stats,
            pixels: wants.pixels,
            maps,
            kept,
            lease,
        };
        self.submit_pictures(encoder, (&output, shape), work, timer, started)
    }

    /// Pixels of maps kept in GPU memory made there; of maps kept in host
    /// memory, on the host.
    fn draw_kept(&self, kept: &KeptMaps, quantise: &Quantise) -> Result<SubmittedMaps> {
        match &kept.0 {
            Kept::Host(maps) => Ok(SubmittedMaps::drawn_on_host(maps, quantise)),
            Kept::Gpu(tensor) => {
                let started = Instant::now();
                let encoder = self.gpu.device.create_command_encoder(&Default::default());
                let output = (&tensor.buffer, tensor.shape());
                let work = PictureWork {
                    pixels: Some(quantise),
                    ..PictureWork::default()
                };
                self.submit_pictures(encoder, output, work, None, started)
            }
        }
    }

    /// On a software GPU, whose memory is host memory, and where the
    /// pictures are made on the host (which keeps its copy there),
    /// [`KEEP_HOST_BYTES`]; on a real one, [`KEEP_GPU_BYTES`] or 8 of its
    /// largest buffers, whichever is less.
    fn keep_budget(&self) -> u64 {
        if self.gpu.info.device_type == wgpu::DeviceType::Cpu || self.pictures_on == Placement::Host
        {
            KEEP_HOST_BYTES
        } else {
            KEEP_GPU_BYTES.min(self.gpu.limits().max_buffer_size.saturating_mul(8))
        }
    }
}

/// An output slot lent to one submitted band; it goes back to its engine
/// when the band has been read or dropped.
struct SlotLease {
    slot: Option<OutputSlot>,
    free: Arc<Mutex<Vec<OutputSlot>>>,
}

impl Drop for SlotLease {
    fn drop(&mut self) {
        if let (Some(slot), Ok(mut free)) = (self.slot.take(), self.free.lock()) {
            free.push(slot);
        }
    }
}

/// A band submitted to an engine: computed already (CPU), or running on
/// the GPU. Dropping it unread is allowed.
pub struct Submitted(Band);

enum Band {
    Ready {
        maps: Tensor3,
        timings: RunTimings,
    },
    Running {
        // Declared before the lease: the run's mapping is released before
        // its slot goes back to the engine.
        run: Box<InFlight>,
        gpu: Arc<Gpu>,
        _lease: SlotLease,
    },
}

impl Submitted {
    /// Maps computed already, with the time they took.
    pub fn ready(maps: Tensor3, timings: RunTimings) -> Self {
        Submitted(Band::Ready { maps, timings })
    }

    /// Waits for the band and hands `read` its maps `[K, OH, OW]` (on the
    /// GPU where they lie in mapped memory, with no copy). Returns what
    /// `read` returns and the band's timings; `readback` does not count
    /// `read`'s own time.
    pub fn read<T>(
        self,
        read: impl FnOnce(TensorView<'_>) -> Result<T>,
    ) -> Result<(T, RunTimings)> {
        match self.0 {
            Band::Ready { maps, timings } => Ok((read(maps.view())?, timings)),
            Band::Running { run, gpu, _lease } => run.read(&gpu, read),
        }
    }

    /// Waits for the band and copies its maps out: the whole of a one-shot
    /// run, with the wait counted as compute.
    pub fn into_tensor(self) -> Result<(Tensor3, RunTimings)> {
        match self.0 {
            Band::Ready { maps, timings } => Ok((maps, timings)),
            Band::Running { run, gpu, _lease } => run.into_tensor(&gpu),
        }
    }
}

/// Times of a planned run ([`convolve_planned`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PlannedTimings {
    /// The engine's stages, summed over the pieces.
    pub run: RunTimings,
    /// Time in the sink, storing the pieces.
    pub store: Duration,
}

impl PlannedTimings {
    /// The compute time: the GPU's timestamps where the device has them,
    /// else the wall time spent computing.
    pub fn compute(&self) -> Duration {
        self.run.gpu_compute.unwrap_or(self.run.compute)
    }
}

/// Runs `layer` over `image` band by band and filter chunk by filter chunk
/// as `plan` says, handing each piece `[filters, rows, OW]` to `sink` with
/// its first filter and first output row, in order. Together the pieces are
/// exactly the untiled output.
///
/// Each piece is submitted before the one before it is handed over, so
/// that a GPU that runs submissions in the background (a real one)
/// computes a band while `sink` stores the last.
pub fn convolve_planned(
    engine: &dyn Engine,
    image: &(impl RowSource + ?Sized),
    layer: &Layer,
    plan: &LayerPlan,
    mut sink: impl FnMut(u32, u32, TensorView<'_>) -> Result<()>,
) -> Result<PlannedTimings> {
    let mut timings = PlannedTimings::default();
    for_each_piece(
        engine,
        image,
        (layer, plan, true),
        |input, chunk, _| engine.submit(input, chunk),
        |filter, row, piece: Submitted| {
            let ((), run) = piece.read(|maps| {
                let started = Instant::now();
                let stored = sink(filter, row, maps);
                timings.store += started.elapsed();
                stored
            })?;
            timings.run.add(run);
            Ok(())
        },
    )?;
    Ok(timings)
}

/// Submits `layer` over `image` piece by piece as `plan` says (each band of
/// output rows for each chunk of filters, in order) with `submit`, given
/// the piece's input `[C, rows_in, W]`, its layer and its first filter; and
/// hands each submitted piece to `hand_over` with its first filter and
/// first output row. Each piece is submitted before the one before it is
/// handed over, so that a GPU that runs submissions in the background
/// computes a band while the host stores the last. The engine's output
/// slots are reserved first when `reserve` (not for maps kept in buffers
/// of their own).
pub fn for_each_piece<P>(
    engine: &dyn Engine,
    image: &(impl RowSource + ?Sized),
    (layer, plan, reserve): (&Layer, &LayerPlan, bool),
    mut submit: impl FnMut(&Tensor3, &Layer, u32) -> Result<P>,
    mut hand_over: impl FnMut(u32, u32, P) -> Result<()>,
) -> Result<()> {
    let [_, height, width] = image.shape();
    let (_, out_width) = layer.spec.output_size(height, width)?;
    if reserve {
        engine.reserve(plan.largest_piece_bytes(out_width))?;
    }
    let chunks: Vec<_> = plan
        .filter_chunks
        .iter()
        .map(|filters| (filters.start, layer.filter_chunk(filters.clone())))
        .collect();
    let mut pending = None;
    for band in &plan.bands {
        for (first_filter, (channels, chunk)) in &chunks {
            let (input_rows, band_spec) = layer.spec.band(band.clone());
            let chunk = Layer {
                spec: crate::layer::LayerSpec {
                    padding: band_spec.padding,
                    ..chunk.spec
                },
                ..chunk.clone()
            };
            let input = image.padded_rows(channels.clone(), input_rows);
            let piece = submit(&input, &chunk, *first_filter)?;
            if let Some((filter, row, previous)) =
                pending.replace((*first_filter, band.start, piece))
            {
                hand_over(filter, row, previous)?;
            }
        }
    }
    if let Some((filter, row, last)) = pending {
        hand_over(filter, row, last)?;
    }
    engine.release();
    Ok(())
}
