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
}

impl GpuTimings {
    /// Adds another run's times (bands of one job).
    pub fn add(&mut self, other: GpuTimings) {
        self.upload += other.upload;
        self.compute += other.compute;
        self.readback += other.readback;
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
pub(crate) fn read_back(
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
    let (sender, receiver) = std::sync::mpsc::channel();
    staging.map_async(wgpu::MapMode::Read, .., move |result| {
        let _ = sender.send(result);
    });
    gpu.wait("readback")?;
    receiver
        .recv()
        .map_err(|_| Error::Gpu {
            stage: "readback",
            message: "the map callback never ran".into(),
        })?
        .map_err(|e| Error::Gpu {
            stage: "readback",
            message: e.to_string(),
        })?;
    let data = {
        let view = staging.get_mapped_range(..).map_err(|e| Error::Gpu {
            stage: "readback",
            message: e.to_string(),
        })?;
        bytemuck::pod_collect_to_vec::<u8, f32>(&view)
    };
    staging.unmap();
    Ok(data)
}
