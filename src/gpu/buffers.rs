//! Pieces both pipelines share: the timings a run reports, the checks
//! against the device's limits, buffer creation and reading a buffer back.

use std::time::Duration;

use wgpu::util::DeviceExt;

use super::Gpu;
use crate::error::{Error, Result};

/// Wall time of each GPU stage of one run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GpuTimings {
    /// Creating and filling the input, weight, bias and parameter buffers.
    pub upload: Duration,
    /// Submitting the dispatch and waiting for it to finish.
    pub compute: Duration,
    /// Copying the output to a mappable buffer and reading it back.
    pub readback: Duration,
    /// The compute pass as the GPU's own timestamps measure it, when the
    /// device supports timestamp queries.
    pub gpu_compute: Option<Duration>,
}

impl GpuTimings {
    /// Adds another run's times (bands of one job).
    pub fn add(&mut self, other: GpuTimings) {
        self.upload += other.upload;
        self.compute += other.compute;
        self.readback += other.readback;
        self.gpu_compute = match (self.gpu_compute, other.gpu_compute) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
    }
}

/// Records one compute pass with `record`, submits it and waits for it.
/// Returns the wall time around submit and wait, and the pass's own time by
/// GPU timestamps where the device has them.
pub(crate) fn run_compute_pass(
    gpu: &Gpu,
    label: &str,
    record: impl FnOnce(&mut wgpu::ComputePass<'_>),
) -> Result<(Duration, Option<Duration>)> {
    let started = std::time::Instant::now();
    let timer = PassTimer::new(gpu);
    gpu.scoped("compute", || {
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(label),
                timestamp_writes: timer.as_ref().map(PassTimer::writes),
            });
            record(&mut pass);
        }
        if let Some(timer) = &timer {
            timer.resolve(&mut encoder);
        }
        gpu.queue.submit([encoder.finish()]);
    })?;
    gpu.wait("compute")?;
    let wall = started.elapsed();
    let timed = timer.map(|timer| timer.elapsed(gpu)).transpose()?;
    Ok((wall, timed))
}

/// Submits the zero-fill wgpu owes a new output buffer before its first use,
/// so that it is paid during upload and `compute` times the convolution.
pub(crate) fn clear_output(gpu: &Gpu, output: &wgpu::Buffer) {
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    encoder.clear_buffer(output, 0, None);
    gpu.queue.submit([encoder.finish()]);
}

/// GPU timestamps at the beginning and end of one compute pass, on devices
/// with timestamp queries.
struct PassTimer {
    query_set: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    staging: wgpu::Buffer,
}

impl PassTimer {
    /// A timer, or `None` when the device cannot write timestamps.
    fn new(gpu: &Gpu) -> Option<Self> {
        if !gpu
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
        {
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
    fn writes(&self) -> wgpu::ComputePassTimestampWrites<'_> {
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

    /// The time between the two timestamps, once the pass has finished.
    fn elapsed(&self, gpu: &Gpu) -> Result<Duration> {
        let ticks: Vec<u64> = map_and_read(gpu, &self.staging, "timestamps")?;
        let nanoseconds =
            ticks[1].saturating_sub(ticks[0]) as f64 * gpu.queue.get_timestamp_period() as f64;
        Ok(Duration::from_nanos(nanoseconds as u64))
    }
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

/// The largest storage buffer binding this GPU takes, in bytes.
pub(crate) fn max_storage_binding(gpu: &Gpu) -> u64 {
    let limits = gpu.limits();
    limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size)
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

/// Copies `buffer` into `staging`, maps it and returns its f32 values.
fn read_back(
    gpu: &Gpu,
    buffer: &wgpu::Buffer,
    staging: &wgpu::Buffer,
    bytes: u64,
) -> Result<Vec<f32>> {
    gpu.scoped("readback", || {
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, 0, staging, 0, bytes);
        gpu.queue.submit([encoder.finish()]);
    })?;
    map_and_read(gpu, staging, "readback")
}

/// Reads the output `[filters, out_height, out_width]` back through
/// `staging`, recording the time in `timings.readback`.
pub(crate) fn read_back_maps(
    gpu: &Gpu,
    output: &wgpu::Buffer,
    staging: &wgpu::Buffer,
    [filters, out_height, out_width]: [u32; 3],
    timings: &mut GpuTimings,
) -> Result<crate::tensor::Tensor3> {
    let started = std::time::Instant::now();
    let bytes = filters as u64 * out_height as u64 * out_width as u64 * 4;
    let data = read_back(gpu, output, staging, bytes)?;
    timings.readback = started.elapsed();
    Ok(crate::tensor::Tensor3::from_vec(
        filters, out_height, out_width, data,
    ))
}

/// Maps `staging` (whose copy has been submitted), waits, and returns its
/// contents as values of `T`.
pub(crate) fn map_and_read<T: bytemuck::Pod>(
    gpu: &Gpu,
    staging: &wgpu::Buffer,
    stage: &'static str,
) -> Result<Vec<T>> {
    let (sender, receiver) = std::sync::mpsc::channel();
    staging.map_async(wgpu::MapMode::Read, .., move |result| {
        let _ = sender.send(result);
    });
    gpu.wait(stage)?;
    let gpu_error = |message: String| Error::Gpu { stage, message };
    receiver
        .recv()
        .map_err(|_| gpu_error("the map callback never ran".into()))?
        .map_err(|e| gpu_error(e.to_string()))?;
    let data = {
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| gpu_error(e.to_string()))?;
        bytemuck::pod_collect_to_vec::<u8, T>(&view)
    };
    staging.unmap();
    Ok(data)
}
