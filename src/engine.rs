//! One interface for everything that can run a layer: the CPU twin and the
//! GPU pipelines alike are made once, take one band at a time
//! ([`Engine::submit`]) and hand it back ([`Submitted::read`]). The job,
//! `convmaps bench` and the tests use only this interface; which engine it
//! is matters only here, where engines are made.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cpu;
use crate::error::{Error, Result};
use crate::gpu::{
    AdapterSummary, BandRecording, ConvPipeline, Gpu, InFlight, OutputSlot, RunTimings, ShaderKind,
    TensorOps,
};
use crate::layer::Layer;
use crate::plan::{self, Plan};
use crate::stack::{self, BandOp, BandStep};
use crate::tensor::{Bands, Tensor3, TensorView};

/// What ran a layer, for reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineInfo {
    /// "gpu" or "cpu".
    pub backend: &'static str,
    /// The program that computed the sums: "direct" or "fast" (the WGSL
    /// shaders), or "cpu" (the CPU twin of the direct shader).
    pub shader: &'static str,
    /// The GPU adapter, on the GPU.
    pub adapter: Option<AdapterSummary>,
    /// How the compute time ([`RunTimings::gpu_compute`], else
    /// [`RunTimings::compute`]) is measured.
    pub compute_timing: &'static str,
    /// Where a stack's maps go between layers: "gpu" (kept in GPU memory)
    /// or "host" (host memory).
    pub between_layers: &'static str,
}

impl EngineInfo {
    /// `name (api)` of the adapter, or "CPU reference".
    pub fn adapter_line(&self) -> String {
        match &self.adapter {
            Some(adapter) => format!("{} ({})", adapter.name, adapter.backend),
            None => "CPU reference".to_string(),
        }
    }
}

/// Something that runs a layer over one band of input at a time.
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
    /// ([`stack::run_on_host`]); a GPU engine keeps the band on the GPU.
    fn submit_stack(&self, input: Tensor3, steps: &[BandStep]) -> Result<Vec<Submitted>> {
        stack::run_on_host(|input, layer| self.run(input, layer), input, steps)
    }

    /// Bytes of one band: [`Engine::max_band_bytes`], at most
    /// [`plan::DEFAULT_BAND_BYTES`], or `CONVMAPS_BAND_BYTES` when set
    /// (tests use it to force tiny bands).
    fn band_budget(&self) -> u64 {
        Plan::budget_from_env(plan::DEFAULT_BAND_BYTES.min(self.max_band_bytes()))
    }
}

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

/// Opens the engine for `choice`, running `shader` on a GPU. With
/// [`BackendChoice::Auto`] and no adapter, falls back to the CPU and
/// returns the reason as a notice for the user.
pub fn open(
    choice: BackendChoice,
    shader: ShaderKind,
) -> Result<(Box<dyn Engine>, Option<String>)> {
    let on_gpu = || -> Result<Box<dyn Engine>> {
        Ok(Box::new(GpuEngine::new(Arc::new(Gpu::new()?), shader)?))
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
            backend: "cpu",
            shader: "cpu",
            adapter: None,
            compute_timing: "wall time",
            between_layers: "host",
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

/// Output slots a GPU engine keeps between bands: two, so that one band
/// is read while the next runs.
const SLOTS: usize = 2;

/// Where a stack's maps go between its steps on a GPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BetweenLayers {
    /// They stay in GPU memory: a band is uploaded once and only the
    /// outputs handed back are read.
    #[default]
    Gpu,
    /// Each conv's output is read back to host memory, pooled and ReLU'd
    /// there, and uploaded again for the next conv (for comparison).
    Host,
}

impl BetweenLayers {
    /// Where maps go on `gpu` unless asked otherwise: on a software GPU
    /// (an adapter of type Cpu, such as lavapipe) through host memory,
    /// which is its own memory anyway and where the CPU pools and lays out
    /// the strips faster than its shaders do (measured: 20.3–20.9 s against
    /// 23.8–24.0 s for a 12 MP photo through two convs); on a real GPU kept
    /// there, so that only the maps to write cross the bus.
    pub fn default_for(gpu: &Gpu) -> Self {
        if gpu.info.device_type == wgpu::DeviceType::Cpu {
            BetweenLayers::Host
        } else {
            BetweenLayers::Gpu
        }
    }
}

/// Environment variable that chooses where a stack's maps go between
/// layers on the GPU: `gpu` or `host` (by default, [`BetweenLayers::default_for`]).
pub const BETWEEN_LAYERS_ENV: &str = "CONVMAPS_BETWEEN_LAYERS";

/// A WGSL shader's pipeline on a GPU, which several engines may share.
/// The engine keeps the output buffers that bands reuse.
pub struct GpuEngine {
    gpu: Arc<Gpu>,
    shader: ShaderKind,
    pipeline: Box<dyn ConvPipeline>,
    /// The steps of a stack between its convs.
    ops: TensorOps,
    between_layers: BetweenLayers,
    /// Output slots not in use by a submitted band.
    slots: Arc<Mutex<Vec<OutputSlot>>>,
}

impl GpuEngine {
    /// Compiles `shader` on `gpu`. A stack's maps go between layers as
    /// `CONVMAPS_BETWEEN_LAYERS` says (`gpu` or `host`), else as
    /// [`BetweenLayers::default_for`] this GPU.
    pub fn new(gpu: Arc<Gpu>, shader: ShaderKind) -> Result<Self> {
        let pipeline = shader.compile(&gpu)?;
        let ops = TensorOps::new(&gpu)?;
        // The next run's setup starts warm.
        gpu.save_pipeline_cache();
        let between_layers = match std::env::var(BETWEEN_LAYERS_ENV).as_deref() {
            Ok("host") => BetweenLayers::Host,
            Ok("gpu") => BetweenLayers::Gpu,
            _ => BetweenLayers::default_for(&gpu),
        };
        Ok(GpuEngine {
            gpu,
            shader,
            pipeline,
            ops,
            between_layers,
            slots: Arc::default(),
        })
    }

    /// This engine, with a stack's maps going `between_layers`.
    pub fn with_between_layers(self, between_layers: BetweenLayers) -> Self {
        GpuEngine {
            between_layers,
            ..self
        }
    }

    /// Records one band of a stack on the GPU and submits it: the input
    /// uploaded once, each step on GPU buffers, each emitting step's output
    /// copied out for reading.
    fn submit_stack_on_gpu(&self, input: Tensor3, steps: &[BandStep]) -> Result<Vec<InFlight>> {
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

impl Engine for GpuEngine {
    fn info(&self) -> EngineInfo {
        EngineInfo {
            backend: "gpu",
            shader: self.shader.name(),
            adapter: Some(self.gpu.adapter_summary()),
            compute_timing: if self.gpu.has_timestamps() {
                "GPU timestamps around the compute pass"
            } else {
                "wall time in submit and wait"
            },
            between_layers: match self.between_layers {
                BetweenLayers::Gpu => "gpu",
                BetweenLayers::Host => "host",
            },
        }
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

    fn submit_stack(&self, input: Tensor3, steps: &[BandStep]) -> Result<Vec<Submitted>> {
        if self.between_layers == BetweenLayers::Host {
            return stack::run_on_host(|input, layer| self.run(input, layer), input, steps);
        }
        let runs = self.submit_stack_on_gpu(input, steps)?;
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
    image: &(impl Bands + ?Sized),
    layer: &Layer,
    plan: &Plan,
    mut sink: impl FnMut(u32, u32, TensorView<'_>) -> Result<()>,
) -> Result<PlannedTimings> {
    let [_, height, width] = image.shape();
    let (_, out_width) = layer.spec.output_size(height, width)?;
    engine.reserve(plan.largest_piece_bytes(out_width))?;
    let chunks: Vec<_> = plan
        .filter_chunks
        .iter()
        .map(|filters| (filters.start, layer.filter_chunk(filters.clone())))
        .collect();
    let mut timings = PlannedTimings::default();
    let mut hand_over = |(filter, row, piece): (u32, u32, Submitted)| -> Result<()> {
        let ((), run) = piece.read(|maps| {
            let started = Instant::now();
            let stored = sink(filter, row, maps);
            timings.store += started.elapsed();
            stored
        })?;
        timings.run.add(run);
        Ok(())
    };
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
            let input = image.padded_band(channels.clone(), input_rows);
            let piece = engine.submit(&input, &chunk)?;
            if let Some(previous) = pending.replace((*first_filter, band.start, piece)) {
                hand_over(previous)?;
            }
        }
    }
    if let Some(last) = pending {
        hand_over(last)?;
    }
    engine.release();
    Ok(timings)
}
