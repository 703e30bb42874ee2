//! Pieces both pipelines share: the timings a run reports, the checks
//! against the device's limits, buffer creation, and the submission and
//! reading back of a run.
//!
//! A run is submitted in one piece (its dispatches, the copy of its output
//! into a mappable buffer and, where the device has them, its timestamps)
//! and read back later as an [`InFlight`], so that a caller can prepare and
//! submit the next band while the GPU works on this one. The output and
//! mappable buffers live in an [`OutputSlot`] that the bands of one photo
//! reuse, instead of allocating and clearing their own.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use wgpu::util::DeviceExt;

use super::Gpu;
use crate::error::{Error, Result};
use crate::tensor::{Tensor3, TensorView};

/// Wall time of each stage of one run (on the CPU, compute alone).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RunTimings {
    /// Preparing the input, weight, bias and parameter buffers and
    /// recording the run.
    pub upload: Duration,
    /// Submitting the run (a GPU may do the work inside the submit call, as
    /// lavapipe does) and waiting for it and its copy into mappable memory:
    /// the part of the GPU's work that nothing else hid.
    pub compute: Duration,
    /// Reading the mapped output (and, where an engine makes a band's
    /// statistics and pixels on the host, making them).
    pub readback: Duration,
    /// The compute pass as the GPU's own timestamps measure it, when the
    /// device supports timestamp queries.
    pub gpu_compute: Option<Duration>,
}

impl RunTimings {
    /// Adds another run's times (bands of one job).
    pub fn add(&mut self, other: RunTimings) {
        self.upload += other.upload;
        self.compute += other.compute;
        self.readback += other.readback;
        self.gpu_compute = match (self.gpu_compute, other.gpu_compute) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
    }
}

/// The output buffer of a run and the mappable buffer it is copied into,
/// kept between runs: the bands of one photo reuse them, so that memory is
/// allocated and cleared once per photo rather than once per band. A slot
/// holds one run at a time; two let one band be read while the next runs.
#[derive(Debug, Default)]
pub struct OutputSlot {
    buffers: Option<(wgpu::Buffer, wgpu::Buffer)>,
}

impl OutputSlot {
    /// Makes the slot's buffers at least `bytes` long, if they are not:
    /// new buffers are cleared (the zero-fill wgpu owes a new buffer) and
    /// the queue waited for, so that neither counts as a run's compute.
    /// Reserving before the first submission keeps later runs from waiting.
    pub fn reserve(&mut self, gpu: &Gpu, bytes: u64) -> Result<()> {
        if self
            .buffers
            .as_ref()
            .is_some_and(|(output, _)| output.size() >= bytes)
        {
            return Ok(());
        }
        self.buffers = None; // free the old pair before making the new
        let buffers = gpu.scoped("upload", || {
            let (output, staging) = output_and_staging(gpu, bytes);
            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            encoder.clear_buffer(&output, 0, None);
            gpu.queue.submit([encoder.finish()]);
            (output, staging)
        })?;
        gpu.wait("upload")?;
        self.buffers = Some(buffers);
        Ok(())
    }

    /// The output and mappable buffers, at least `bytes` long
    /// ([`OutputSlot::reserve`]).
    pub(crate) fn buffers(
        &mut self,
        gpu: &Gpu,
        bytes: u64,
    ) -> Result<(wgpu::Buffer, wgpu::Buffer)> {
        self.reserve(gpu, bytes)?;
        let (output, staging) = self.buffers.as_ref().expect("reserved above");
        Ok((output.clone(), staging.clone()))
    }
}

/// How long a finished submission's map callback may take to arrive.
const MAP_CALLBACK_TIMEOUT: Duration = Duration::from_secs(60);

/// A buffer whose mapping has been asked for; it is mapped once the
/// submission that writes it has finished, and unmapped when this is
/// dropped, read or not, so that its slot can take the next run.
struct Mapping {
    buffer: wgpu::Buffer,
    bytes: u64,
    done: mpsc::Receiver<std::result::Result<(), wgpu::BufferAsyncError>>,
}

impl Mapping {
    /// Asks for the first `bytes` of `buffer` to be mapped for reading.
    fn start(buffer: wgpu::Buffer, bytes: u64) -> Self {
        let (sender, done) = mpsc::channel();
        buffer.map_async(wgpu::MapMode::Read, ..bytes, move |result| {
            let _ = sender.send(result);
        });
        Mapping {
            buffer,
            bytes,
            done,
        }
    }

    /// Hands the mapped bytes to `read`; the buffer is unmapped when this is
    /// dropped. Call once the submission has finished. Its map callback may
    /// still be running on another thread that polled the device (threads
    /// share a [`Gpu`]), so it is waited for, briefly.
    fn read<T>(self, stage: &'static str, read: impl FnOnce(&[u8]) -> T) -> Result<T> {
        let gpu_error = |message: String| Error::Gpu { stage, message };
        self.done
            .recv_timeout(MAP_CALLBACK_TIMEOUT)
            .map_err(|_| gpu_error("the map callback never ran".into()))?
            .map_err(|e| gpu_error(e.to_string()))?;
        let view = self
            .buffer
            .get_mapped_range(..self.bytes)
            .map_err(|e| gpu_error(e.to_string()))?;
        Ok(read(&view))
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Also cancels a mapping that was asked for and never completed.
        self.buffer.unmap();
    }
}

/// A submitted run: the GPU may still be computing it. [`InFlight::read`]
/// waits for it and hands over the maps.
pub struct InFlight {
    submission: wgpu::SubmissionIndex,
    output: Mapping,
    shape: [u32; 3],
    timestamps: Option<(Mapping, f32)>,
    upload: Duration,
    /// When the submit call began.
    submitted: Instant,
    /// Time spent in the submit call, which is compute on GPUs that run
    /// the work there.
    submit: Duration,
}

impl InFlight {
    /// Waits for the run, then hands `read` the maps `[K, OH, OW]` where
    /// they lie in mapped memory (no copy). Returns what `read` returns and
    /// the run's timings; `readback` counts the mapping, not `read`'s own
    /// time.
    pub fn read<T>(
        self,
        gpu: &Gpu,
        read: impl FnOnce(TensorView<'_>) -> Result<T>,
    ) -> Result<(T, RunTimings)> {
        let shape = self.shape;
        self.read_bytes(gpu, |bytes| read_view(shape, bytes, read))
    }

    /// Waits for the run, then hands `read` the bytes read back (pixels,
    /// partial statistics) where they lie in mapped memory. Returns what
    /// `read` returns and the run's timings.
    pub fn read_bytes<T>(
        self,
        gpu: &Gpu,
        read: impl FnOnce(&[u8]) -> Result<T>,
    ) -> Result<(T, RunTimings)> {
        self.read_bytes_until(gpu, read)
            .map(|(value, timings, _)| (value, timings))
    }

    /// [`InFlight::read_bytes`], also returning when the wait for the GPU ended.
    fn read_bytes_until<T>(
        self,
        gpu: &Gpu,
        read: impl FnOnce(&[u8]) -> Result<T>,
    ) -> Result<(T, RunTimings, Instant)> {
        let started = Instant::now();
        gpu.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(self.submission),
                timeout: None,
            })
            .map_err(|e| Error::Gpu {
                stage: "compute",
                message: e.to_string(),
            })?;
        gpu.check("compute")?;
        let waited = Instant::now();
        let compute = self.submit + (waited - started);
        let gpu_compute = match self.timestamps {
            Some((mapping, period)) => Some(mapping.read("timestamps", |bytes| {
                let ticks: [u64; 2] = bytemuck::pod_read_unaligned(bytes);
                let nanoseconds = ticks[1].saturating_sub(ticks[0]) as f64 * period as f64;
                Duration::from_nanos(nanoseconds as u64)
            })?),
            None => None,
        };
        let mut spent_in_read = Duration::ZERO;
        let started = Instant::now();
        // The mapping is at least 4 bytes long; hand over only the data.
        let len = self.shape.iter().map(|&n| n as usize).product::<usize>() * 4;
        let value = self.output.read("readback", |bytes| {
            let started = Instant::now();
            let value = read(&bytes[..len.min(bytes.len())]);
            spent_in_read = started.elapsed();
            value
        })??;
        let timings = RunTimings {
            upload: self.upload,
            compute,
            readback: started.elapsed().saturating_sub(spent_in_read),
            gpu_compute,
        };
        Ok((value, timings, waited))
    }

    /// Waits for the run and copies its maps out: the whole of a one-shot
    /// run, with `compute` the wall time from submit to the end of the wait
    /// and the copy counted as readback.
    pub fn into_tensor(self, gpu: &Gpu) -> Result<(Tensor3, RunTimings)> {
        let submitted = self.submitted;
        let mut copy = Duration::ZERO;
        let shape = self.shape;
        let (maps, mut timings, waited) = self.read_bytes_until(gpu, |bytes| {
            read_view(shape, bytes, |view| {
                let started = Instant::now();
                let maps = view.to_tensor();
                copy = started.elapsed();
                Ok(maps)
            })
        })?;
        // Here nothing else ran between submit and wait: count all of it.
        timings.compute = waited - submitted;
        timings.readback += copy;
        Ok((maps, timings))
    }
}

/// Hands `read` the maps `[K, OH, OW]` (`shape`) that `bytes` hold.
/// Mapped ranges are aligned far beyond an f32's 4 bytes; an unaligned one
/// would still be read correctly, through a copy.
fn read_view<T>(
    [filters, height, width]: [u32; 3],
    bytes: &[u8],
    read: impl FnOnce(TensorView<'_>) -> Result<T>,
) -> Result<T> {
    let copied;
    let data: &[f32] = match bytemuck::try_cast_slice(bytes) {
        Ok(data) => data,
        Err(_) => {
            copied = bytemuck::pod_collect_to_vec::<u8, f32>(bytes);
            &copied
        }
    };
    read(TensorView::new(filters, height, width, data))
}

/// Records a run with `record` (its compute pass timed by the timestamp
/// writes it is handed, where the device has them), then the copy of the
/// first `shape` f32s of `output` into `staging`, submits both without
/// waiting, and asks for the mapping. `upload_started` is when the caller
/// began preparing the run, for its upload time.
pub(crate) fn submit_run(
    gpu: &Gpu,
    (output, staging): (wgpu::Buffer, wgpu::Buffer),
    shape: [u32; 3],
    upload_started: Instant,
    record: impl FnOnce(
        &mut wgpu::CommandEncoder,
        Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) -> Result<()>,
) -> Result<InFlight> {
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    let timer = PassTimer::new(gpu);
    gpu.scoped("compute", || {
        record(&mut encoder, timer.as_ref().map(PassTimer::writes))
    })??;
    let bytes = shape.iter().map(|&n| n as u64).product::<u64>() * 4;
    if bytes > 0 {
        encoder.copy_buffer_to_buffer(&output, 0, &staging, 0, bytes);
    }
    let mut runs = submit_readbacks(gpu, encoder, vec![(staging, shape)], upload_started, timer)?;
    Ok(runs.remove(0))
}

/// Records, at the end of `encoder`'s work, the copy of the first `shape`
/// f32s of `source` into a new mappable buffer, and returns it with the shape.
pub(crate) fn record_readback(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    source: &wgpu::Buffer,
    shape: [u32; 3],
) -> (wgpu::Buffer, [u32; 3]) {
    let bytes = shape.iter().map(|&n| n as u64).product::<u64>() * 4;
    let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size: bytes.max(4),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    if bytes > 0 {
        encoder.copy_buffer_to_buffer(source, 0, &staging, 0, bytes);
    }
    (staging, shape)
}

/// Submits `encoder`'s work without waiting and asks for each readback's
/// mapping: one [`InFlight`] per readback, in order, all of one
/// submission. The first carries the upload and submit times, and the
/// timestamps of `timer`'s pass when given.
pub(crate) fn submit_readbacks(
    gpu: &Gpu,
    mut encoder: wgpu::CommandEncoder,
    readbacks: Vec<(wgpu::Buffer, [u32; 3])>,
    upload_started: Instant,
    timer: Option<PassTimer>,
) -> Result<Vec<InFlight>> {
    if let Some(timer) = &timer {
        timer.resolve(&mut encoder);
    }
    let (submission, upload, submitted, submit) = gpu.scoped("compute", || {
        let commands = encoder.finish();
        let upload = upload_started.elapsed();
        let submitted = Instant::now();
        let submission = gpu.queue.submit([commands]);
        (submission, upload, submitted, submitted.elapsed())
    })?;
    let mut timestamps = timer.map(|timer| {
        (
            Mapping::start(timer.staging, 16),
            gpu.queue.get_timestamp_period(),
        )
    });
    Ok(readbacks
        .into_iter()
        .enumerate()
        .map(|(index, (staging, shape))| {
            let bytes = shape.iter().map(|&n| n as u64).product::<u64>() * 4;
            let first = index == 0;
            InFlight {
                submission: submission.clone(),
                output: Mapping::start(staging, bytes.max(4)),
                shape,
                timestamps: timestamps.take(),
                upload: if first { upload } else { Duration::ZERO },
                submitted,
                submit: if first { submit } else { Duration::ZERO },
            }
        })
        .collect())
}

/// GPU timestamps at the beginning and end of one compute pass, on devices
/// with timestamp queries.
pub(crate) struct PassTimer {
    query_set: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    staging: wgpu::Buffer,
}

impl PassTimer {
    /// A timer, or `None` when the device cannot write timestamps.
    pub(crate) fn new(gpu: &Gpu) -> Option<Self> {
        if !gpu.has_timestamps() {
            return None;
        }
        let buffer = |label, usage| {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: 16,
                usage,
                mapped_at_creation: false,
            })
        };
        Some(PassTimer {
            query_set: gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("compute pass timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            }),
            resolved: buffer(
                "timestamps",
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            ),
            staging: buffer(
                "timestamps readback",
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            ),
        })
    }

    /// The pass descriptor's timestamp writes.
    pub(crate) fn writes(&self) -> wgpu::ComputePassTimestampWrites<'_> {
        wgpu::ComputePassTimestampWrites {
            query_set: &self.query_set,
            beginning_of_pass_write_index: Some(0),
            end_of_pass_write_index: Some(1),
        }
    }

    /// Records, after the pass, the copy of the timestamps to a mappable buffer.
    fn resolve(&self, encoder: &mut wgpu::CommandEncoder) {
        encoder.resolve_query_set(&self.query_set, 0..2, &self.resolved, 0);
        encoder.copy_buffer_to_buffer(&self.resolved, 0, &self.staging, 0, 16);
    }
}

/// Records one compute pass of `pipeline` into `encoder`: its buffers
/// bound as `entries` through `layout`, dispatched over `workgroups`
/// `[x, y, z]`; `label` names the bind group and the pass.
pub(crate) fn record_dispatch(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    (pipeline, layout): (&wgpu::ComputePipeline, &wgpu::BindGroupLayout),
    (label, entries): (&str, &[wgpu::BindGroupEntry<'_>]),
    [x, y, z]: [u32; 3],
) {
    let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout,
        entries,
    });
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(label),
        timestamp_writes: None,
    });
    pass.set_pipeline(pipeline);
    pass.set_bind_group(0, &bind_group, &[]);
    pass.dispatch_workgroups(x, y, z);
}

/// A bind group entry for the whole of `buffer`.
pub(crate) fn entry(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buffer.as_entire_binding(),
    }
}

/// A buffer holding `contents`, for `usage`.
pub(crate) fn buffer_init(
    gpu: &Gpu,
    label: &str,
    contents: &[u8],
    usage: wgpu::BufferUsages,
) -> wgpu::Buffer {
    gpu.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage,
        })
}

/// A read-only storage buffer holding `contents`.
pub(crate) fn storage_buffer(gpu: &Gpu, label: &str, contents: &[f32]) -> wgpu::Buffer {
    buffer_init(
        gpu,
        label,
        bytemuck::cast_slice(contents),
        wgpu::BufferUsages::STORAGE,
    )
}

/// The output buffer of `bytes`, a storage buffer that can be cleared and
/// copied from, and the mappable buffer it is copied into for reading back.
pub(crate) fn output_and_staging(gpu: &Gpu, bytes: u64) -> (wgpu::Buffer, wgpu::Buffer) {
    let output = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("output [K,OH,OW]"),
        size: bytes,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size: bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    (output, staging)
}

/// Refuses buffers larger than `max_bytes`, which is this GPU's largest
/// storage buffer binding unless the caller says otherwise, with a message
/// that gives the sizes.
pub(crate) fn check_buffers(buffers: &[(&str, u64)], max_bytes: u64) -> Result<()> {
    for &(name, bytes) in buffers {
        if bytes > max_bytes {
            return Err(Error::GpuLimit(format!(
                "the {name} buffer needs {:.1} MiB, more than this GPU's largest storage buffer \
                 ({:.1} MiB); use a smaller photo or fewer filters, or --backend cpu",
                bytes as f64 / 1048576.0,
                max_bytes as f64 / 1048576.0
            )));
        }
    }
    Ok(())
}

/// Refuses dispatches with more workgroups in one dimension than the GPU
/// allows.
pub(crate) fn check_workgroups(gpu: &Gpu, groups: &[(&str, u32)]) -> Result<()> {
    let max_groups = gpu.limits().max_compute_workgroups_per_dimension;
    for &(name, count) in groups {
        if count > max_groups {
            return Err(Error::GpuLimit(format!(
                "the {name} needs {count} workgroups in one dimension, more than this GPU's {max_groups}"
            )));
        }
    }
    Ok(())
}
