//! Maps that stay in GPU memory between the steps of a stack: one band's
//! input is uploaded once, every conv, ReLU and pooling runs on GPU
//! buffers, recorded into one command encoder, and only the outputs asked
//! for are copied out for reading (`shaders/tensor_ops.wgsl`).

use std::ops::Range;

use super::Gpu;
use super::buffers::{buffer_init, check_buffers, check_workgroups, entry};
use crate::error::Result;
use crate::layer::LayerSpec;
use crate::pool::PoolSpec;
use crate::tensor::Tensor3;

/// The shader's source, compiled into the binary.
pub const SHADER_SOURCE: &str = include_str!("../../shaders/tensor_ops.wgsl");

/// Invocations per workgroup, as the shader declares.
const WORKGROUP: u32 = 256;

/// A `[C, H, W]` f32 tensor in a GPU storage buffer.
pub struct DeviceTensor {
    /// The values, row-major; at least 4 bytes even when empty.
    pub buffer: wgpu::Buffer,
    /// C.
    pub channels: u32,
    /// H.
    pub height: u32,
    /// W.
    pub width: u32,
}

impl DeviceTensor {
    /// A new tensor of `[channels, height, width]`, its contents unset;
    /// refused when larger than the GPU's largest storage buffer.
    pub fn new(gpu: &Gpu, [channels, height, width]: [u32; 3], label: &str) -> Result<Self> {
        let bytes = 4 * channels as u64 * height as u64 * width as u64;
        check_buffers(&[(label, bytes)], gpu.max_storage_binding())?;
        let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(DeviceTensor {
            buffer,
            channels,
            height,
            width,
        })
    }

    /// `tensor` uploaded.
    pub fn upload(gpu: &Gpu, tensor: &Tensor3) -> Result<Self> {
        let device = DeviceTensor::new(
            gpu,
            [tensor.channels, tensor.height, tensor.width],
            "band input [C,H,W]",
        )?;
        if !tensor.data.is_empty() {
            gpu.queue
                .write_buffer(&device.buffer, 0, bytemuck::cast_slice(&tensor.data));
        }
        Ok(device)
    }

    /// `[C, H, W]`.
    pub fn shape(&self) -> [u32; 3] {
        [self.channels, self.height, self.width]
    }

    /// Values: C·H·W.
    pub fn len(&self) -> u64 {
        self.channels as u64 * self.height as u64 * self.width as u64
    }

    /// Whether it holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How the fast shader's input strips are laid out (`gpu::fast`'s plan).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StripLayout {
    /// f32s of all strips of all groups.
    pub len: u64,
    /// C/G.
    pub channels: u32,
    /// Padded input rows per strip.
    pub strip_rows: u32,
    /// Strips per group.
    pub strips: u32,
    /// Input columns per strip row.
    pub strip_width: u32,
    /// Output columns per strip.
    pub strip_pixels: u32,
}

/// The shader's `OpParams` uniform, field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct OpParams {
    count: u32,
    channels: u32,
    in_height: u32,
    in_width: u32,
    out_height: u32,
    out_width: u32,
    size: u32,
    stride: u32,
    pad_top: u32,
    pad_left: u32,
    strip_rows: u32,
    strips: u32,
    strip_width: u32,
    strip_pixels: u32,
    row_groups: u32,
    _pad: u32,
}

/// The compiled entry points of `tensor_ops.wgsl`, made once per GPU.
pub struct TensorOps {
    relu: (wgpu::ComputePipeline, wgpu::BindGroupLayout),
    max_pool: (wgpu::ComputePipeline, wgpu::BindGroupLayout),
    pack_strips: (wgpu::ComputePipeline, wgpu::BindGroupLayout),
}

impl TensorOps {
    /// Compiles the shader's entry points on `gpu`.
    pub fn new(gpu: &Gpu) -> Result<Self> {
        gpu.scoped("pipeline creation", || {
            let module = gpu
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some("tensor_ops.wgsl"),
                    source: wgpu::ShaderSource::Wgsl(SHADER_SOURCE.into()),
                });
            let build = |entry_point: &str| {
                let pipeline =
                    gpu.device
                        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                            label: Some(entry_point),
                            layout: None,
                            module: &module,
                            entry_point: Some(entry_point),
                            compilation_options: Default::default(),
                            cache: None,
                        });
                let layout = pipeline.get_bind_group_layout(0);
                (pipeline, layout)
            };
            TensorOps {
                relu: build("relu"),
                max_pool: build("max_pool"),
                pack_strips: build("pack_strips"),
            }
        })
    }

    /// Records ReLU over `tensor`, in place.
    pub fn relu(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        tensor: &DeviceTensor,
    ) -> Result<()> {
        let params = OpParams {
            count: count(tensor.len())?,
            ..Default::default()
        };
        let buffers = (None, &tensor.buffer);
        self.dispatch(gpu, encoder, &self.relu, buffers, params, Grid::Values)
    }

    /// Records max pooling of `input` into a new tensor, and returns it.
    pub fn max_pool(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        input: &DeviceTensor,
        pool: &PoolSpec,
    ) -> Result<DeviceTensor> {
        let (out_height, out_width) = pool.output_size(input.height, input.width)?;
        let output = DeviceTensor::new(
            gpu,
            [input.channels, out_height, out_width],
            "pooled [C,OH,OW]",
        )?;
        let params = OpParams {
            count: count(output.len())?,
            channels: input.channels,
            in_height: input.height,
            in_width: input.width,
            out_height,
            out_width,
            size: pool.size,
            stride: pool.stride,
            ..Default::default()
        };
        let grid = [out_width.div_ceil(64), out_height, input.channels];
        let pipeline = &self.max_pool;
        let buffers = (Some(&input.buffer), &output.buffer);
        self.dispatch(gpu, encoder, pipeline, buffers, params, Grid::Planes(grid))?;
        Ok(output)
    }

    /// Records the packing of `input` into the fast shader's strips for a
    /// conv of `spec`, laid out as `layout`, into `strips`.
    pub fn pack_strips(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        input: &DeviceTensor,
        spec: &LayerSpec,
        layout: &StripLayout,
        strips: &wgpu::Buffer,
    ) -> Result<()> {
        let params = OpParams {
            count: count(layout.len)?,
            channels: layout.channels,
            in_height: input.height,
            in_width: input.width,
            stride: spec.stride,
            pad_top: spec.padding.top,
            pad_left: spec.padding.left,
            strip_rows: layout.strip_rows,
            strips: layout.strips,
            strip_width: layout.strip_width,
            strip_pixels: layout.strip_pixels,
            ..Default::default()
        };
        let planes = layout.len / (layout.strip_rows as u64 * layout.strip_width as u64).max(1);
        let grid = [
            layout.strip_width.div_ceil(64),
            layout.strip_rows,
            count(planes)?,
        ];
        let pipeline = &self.pack_strips;
        let buffers = (Some(&input.buffer), strips);
        self.dispatch(gpu, encoder, pipeline, buffers, params, Grid::Planes(grid))
    }

    /// Records a copy of rows `rows` of every channel of `input` into a new
    /// tensor, and returns it.
    pub fn crop_rows(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        input: &DeviceTensor,
        rows: Range<u32>,
    ) -> Result<DeviceTensor> {
        let output = DeviceTensor::new(
            gpu,
            [input.channels, rows.len() as u32, input.width],
            "cropped band [C,rows,W]",
        )?;
        let row_bytes = 4 * input.width as u64;
        let plane_bytes = row_bytes * input.height as u64;
        let bytes = row_bytes * rows.len() as u64;
        if bytes > 0 {
            for c in 0..input.channels as u64 {
                encoder.copy_buffer_to_buffer(
                    &input.buffer,
                    c * plane_bytes + rows.start as u64 * row_bytes,
                    &output.buffer,
                    c * bytes,
                    bytes,
                );
            }
        }
        Ok(output)
    }

    /// Records one pass of `pipeline` writing `params.count` values of the
    /// second buffer (from the first, when the entry point reads one) over
    /// `grid`.
    fn dispatch(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        (pipeline, layout): &(wgpu::ComputePipeline, wgpu::BindGroupLayout),
        (source, target): (Option<&wgpu::Buffer>, &wgpu::Buffer),
        mut params: OpParams,
        grid: Grid,
    ) -> Result<()> {
        if params.count == 0 {
            return Ok(());
        }
        let workgroups = match grid {
            Grid::Values => {
                let groups = params.count.div_ceil(WORKGROUP);
                let max = gpu.limits().max_compute_workgroups_per_dimension.max(1);
                params.row_groups = groups.min(max);
                [params.row_groups, groups.div_ceil(max), 1]
            }
            Grid::Planes(workgroups) => workgroups,
        };
        check_workgroups(
            gpu,
            &[
                ("band's columns", workgroups[0]),
                ("band's rows", workgroups[1]),
                ("band's planes", workgroups[2]),
            ],
        )?;
        let params_buffer = buffer_init(
            gpu,
            "tensor op params",
            bytemuck::bytes_of(&params),
            wgpu::BufferUsages::UNIFORM,
        );
        let mut entries = vec![entry(1, target), entry(2, &params_buffer)];
        if let Some(source) = source {
            entries.insert(0, entry(0, source));
        }
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("tensor op"),
            layout,
            entries: &entries,
        });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("tensor op"),
            timestamp_writes: None,
        });
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        let [x, y, z] = workgroups;
        pass.dispatch_workgroups(x, y, z);
        Ok(())
    }
}

/// How an entry point's invocations are laid out.
enum Grid {
    /// One per value, 256 to a workgroup, in rows of `row_groups` workgroups.
    Values,
    /// These workgroups: 64 columns each, by rows, by planes.
    Planes([u32; 3]),
}

/// A value count as the shader's u32, or an error.
fn count(values: u64) -> Result<u32> {
    u32::try_from(values).map_err(|_| {
        crate::Error::GpuLimit(format!(
            "a band of {values} values is more than a shader's 32-bit index reaches"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::reflect::{rust_struct, wgsl_struct};

    #[test]
    fn op_params_matches_the_shaders_struct() {
        let host = rust_struct!(OpParams {
            count,
            channels,
            in_height,
            in_width,
            out_height,
            out_width,
            size,
            stride,
            pad_top,
            pad_left,
            strip_rows,
            strips,
            strip_width,
            strip_pixels,
            row_groups,
            _pad,
        });
        assert_eq!(host, wgsl_struct(SHADER_SOURCE, "OpParams"));
    }
}
