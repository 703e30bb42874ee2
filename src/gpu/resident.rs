//! Maps that stay in GPU memory between the steps of a stack: one band's
//! input is uploaded once, every conv, ReLU and pooling runs on GPU
//! buffers, recorded into one command encoder, and only the outputs asked
//! for are copied out for reading (`shaders/tensor_ops.wgsl`).
//!
//! [`TensorOps`] records single steps into a caller's encoder;
//! [`BandRecording`] holds the encoder and the readbacks of one band, and
//! submits them once.

use std::ops::Range;
use std::time::Instant;

use super::buffers::{
    InFlight, buffer_init, check_buffers, check_workgroups, entry, record_dispatch,
    record_readback, submit_readbacks,
};
use super::{AutoPipeline, ConvPass, ConvPipeline, Gpu, auto_pipelines};
use crate::error::{Error, Result};
use crate::layer::{Layer, LayerSpec};
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
        let buffer = value_buffer(gpu, label, bytes);
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

    /// The output size `(OH, OW)` of `layer` over this tensor, as
    /// [`Layer::output_size_for`] gives it for a host tensor: fails with
    /// [`Error::Mismatch`] when the channels are not the layer's.
    pub fn output_size_for(&self, layer: &Layer) -> Result<(u32, u32)> {
        layer.output_size_of(self.shape())
    }
}

/// A storage buffer of `bytes` (at least 4) that shaders write and that
/// can be copied from and into: a tensor kept in GPU memory.
pub(crate) fn value_buffer(gpu: &Gpu, label: &str, bytes: u64) -> wgpu::Buffer {
    gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes.max(4),
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
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

/// How the subgroup shader's input is laid out: `[G, Q, HP, WP]` vec4s
/// (`gpu::fast::subgroup`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuadLayout {
    /// G (1 for a depthwise layer, whose channels are packed as one group).
    pub groups: u32,
    /// Channels per group: C/G (C for a depthwise layer).
    pub channels: u32,
    /// Q: quads of channels per group, ceil(channels / 4).
    pub quads: u32,
    /// HP: input rows, padding included.
    pub padded_height: u32,
    /// WP: input columns, padding included.
    pub padded_width: u32,
}

impl QuadLayout {
    /// f32s of the whole layout.
    pub fn len(&self) -> u64 {
        self.groups as u64
            * self.quads as u64
            * self.padded_height as u64
            * self.padded_width as u64
            * 4
    }

    /// Whether the layout holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The quads a conv on the subgroup shader reads, as a conv before it may
/// write them: their layout, and where the input sits in them (the zero
/// rows above it and columns left of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuadTarget {
    /// The quads' layout.
    pub layout: QuadLayout,
    /// Zero rows above the input.
    pub pad_top: u32,
    /// Zero columns left of it.
    pub pad_left: u32,
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
    first_column: u32,
    first_row: u32,
    first_plane: u32,
    scaled: u32,
}

/// The compiled entry points of `tensor_ops.wgsl`, made once per GPU.
pub struct TensorOps {
    relu: AutoPipeline,
    max_pool: AutoPipeline,
    pack_strips: AutoPipeline,
    pack_quads: AutoPipeline,
    pack_quads_vec4: AutoPipeline,
    /// What a pack without a scale binds as one (never read).
    no_scale: wgpu::Buffer,
}

impl TensorOps {
    /// Compiles the shader's entry points on `gpu`.
    pub fn new(gpu: &Gpu) -> Result<Self> {
        let [relu, max_pool, pack_strips, pack_quads, pack_quads_vec4] = auto_pipelines(
            gpu,
            "tensor_ops.wgsl",
            SHADER_SOURCE,
            [
                "relu",
                "max_pool",
                "pack_strips",
                "pack_quads",
                "pack_quads_vec4",
            ],
        )?;
        Ok(TensorOps {
            relu,
            max_pool,
            pack_strips,
            pack_quads,
            pack_quads_vec4,
            no_scale: value_buffer(gpu, "no scale", 4),
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
        let buffers = (None, &tensor.buffer, None);
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
        let buffers = (Some(&input.buffer), &output.buffer, None);
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
        let buffers = (Some(&input.buffer), strips, None);
        self.dispatch(gpu, encoder, pipeline, buffers, params, Grid::Planes(grid))
    }

    /// Records the packing of `input` into the subgroup shader's quads
    /// `[G, Q, HP, WP, 4]` as `target` lays them out, into `quads`, each
    /// channel c multiplied by `scale[c]` where a scale is given: by
    /// `pack_quads_vec4` where the input's width is a multiple of 4 (4
    /// pixels a load: on lavapipe a 96×112×112 input packed in 1.4 ms, not
    /// 2.2; `quads` is cleared first, so it needs `COPY_DST` usage, as
    /// `value_buffer`'s have), else by `pack_quads`.
    pub fn pack_quads(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        (input, scale): (&DeviceTensor, Option<&wgpu::Buffer>),
        target: &QuadTarget,
        quads: &wgpu::Buffer,
    ) -> Result<()> {
        let layout = &target.layout;
        let params = OpParams {
            count: count(layout.len())?,
            channels: layout.channels,
            in_height: input.height,
            in_width: input.width,
            pad_top: target.pad_top,
            pad_left: target.pad_left,
            strip_rows: layout.padded_height,
            strips: layout.quads,
            strip_width: layout.padded_width,
            scaled: scale.is_some() as u32,
            ..Default::default()
        };
        let planes = count(layout.groups as u64 * layout.quads as u64)?;
        let scale = scale.unwrap_or(&self.no_scale);
        let buffers = (Some(&input.buffer), quads, Some(scale));
        // Rows of whole vec4s: read 4 pixels a load, into a cleared buffer
        // (the padding stays zero).
        if input.width % 4 == 0 {
            encoder.clear_buffer(quads, 0, None);
            let grid = [
                (input.width / 4).div_ceil(8),
                input.height.div_ceil(8),
                planes,
            ];
            let pipeline = &self.pack_quads_vec4;
            return self.dispatch(gpu, encoder, pipeline, buffers, params, Grid::Tiles(grid));
        }
        let grid = [
            layout.padded_width.div_ceil(64),
            layout.padded_height,
            planes,
        ];
        self.dispatch(
            gpu,
            encoder,
            &self.pack_quads,
            buffers,
            params,
            Grid::Planes(grid),
        )
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
        if rows.start > rows.end || rows.end > input.height {
            return Err(Error::Mismatch(format!(
                "rows {}..{} of a band of {} rows",
                rows.start, rows.end, input.height
            )));
        }
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
        (pipeline, layout): &AutoPipeline,
        (source, target, scale): Buffers<'_>,
        mut params: OpParams,
        grid: Grid,
    ) -> Result<()> {
        if params.count == 0 {
            return Ok(());
        }
        let max = gpu.limits().max_compute_workgroups_per_dimension.max(1);
        let [width, height] = match grid {
            Grid::Tiles(_) => [8, 8],
            _ => [64, 1],
        };
        let dispatches: Vec<([u32; 3], OpParams)> = match grid {
            Grid::Values => {
                let groups = params.count.div_ceil(WORKGROUP);
                params.row_groups = groups.min(max);
                let rows = groups.div_ceil(max);
                check_workgroups(gpu, &[("band's rows of values", rows)])?;
                vec![([params.row_groups, rows, 1], params)]
            }
            // Columns, rows and planes of workgroups (64 columns of one row,
            // or 8×8 for tiles), in as many dispatches as the device's limit
            // on workgroups per dimension needs.
            Grid::Planes([columns, rows, planes]) | Grid::Tiles([columns, rows, planes]) => {
                let chunks = |total: u32| {
                    (0..total)
                        .step_by(max as usize)
                        .map(move |first| (first, (total - first).min(max)))
                };
                let mut all = Vec::new();
                for (first_plane, plane_groups) in chunks(planes) {
                    for (first_row, row_groups) in chunks(rows) {
                        for (first_group, column_groups) in chunks(columns) {
                            let here = OpParams {
                                first_column: first_group * width,
                                first_row: first_row * height,
                                first_plane,
                                ..params
                            };
                            all.push(([column_groups, row_groups, plane_groups], here));
                        }
                    }
                }
                all
            }
        };
        for (workgroups, params) in dispatches {
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
            if let Some(scale) = scale {
                entries.push(entry(3, scale));
            }
            record_dispatch(
                gpu,
                encoder,
                (pipeline, layout),
                ("tensor op", &entries),
                workgroups,
            );
        }
        Ok(())
    }
}

/// A tensor op's buffers: what it reads (binding 0, where it reads
/// anything), what it writes (1), and the pack's scale (3).
type Buffers<'a> = (
    Option<&'a wgpu::Buffer>,
    &'a wgpu::Buffer,
    Option<&'a wgpu::Buffer>,
);

/// How an entry point's invocations are laid out.
enum Grid {
    /// One per value, 256 to a workgroup, in rows of `row_groups` workgroups.
    Values,
    /// These workgroups: 64 columns each, by rows, by planes; split into
    /// several dispatches where one dimension exceeds the device's limit.
    Planes([u32; 3]),
    /// As `Planes`, with workgroups of 8 columns by 8 rows.
    Tiles([u32; 3]),
}

/// One band's GPU work, recorded in order into one command encoder and
/// submitted once: the band uploaded, each step run on GPU buffers, and only
/// the tensors [`BandRecording::read_back`] names copied out for reading.
///
/// Buffers are made per band and freed when the last [`DeviceTensor`] or
/// [`InFlight`] holding them is dropped. Each step fails with
/// [`Error::Mismatch`] when its input does not fit it, [`Error::GpuLimit`]
/// when a buffer or a dispatch exceeds the device's limits, and
/// [`Error::Gpu`] when the GPU reports an error while it is recorded.
pub struct BandRecording<'g> {
    gpu: &'g Gpu,
    ops: &'g TensorOps,
    encoder: wgpu::CommandEncoder,
    /// The mappable copy of each tensor to read back, and its `[C, H, W]`.
    readbacks: Vec<(wgpu::Buffer, [u32; 3])>,
    /// When recording began: the band's upload time runs to the submit.
    started: Instant,
}

impl<'g> BandRecording<'g> {
    /// An empty recording on `gpu`, with the steps of `ops`.
    pub fn new(gpu: &'g Gpu, ops: &'g TensorOps) -> Self {
        BandRecording {
            gpu,
            ops,
            encoder: gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("band"),
                }),
            readbacks: Vec::new(),
            started: Instant::now(),
        }
    }

    /// Uploads `input` `[C, H, W]`; the copy happens at the submission,
    /// before the recorded steps run.
    pub fn upload(&mut self, input: &Tensor3) -> Result<DeviceTensor> {
        let gpu = self.gpu;
        gpu.scoped("upload", || DeviceTensor::upload(gpu, input))?
    }

    /// Records `layer` over `input` with `pipeline`: the maps `[K, OH, OW]`,
    /// `(OH, OW) = layer.spec.output_size(H, W)`, padded as the layer's spec
    /// says, the same sums as [`ConvPipeline::submit`] over the same values
    /// from host memory.
    pub fn conv(
        &mut self,
        pipeline: &dyn ConvPipeline,
        input: &DeviceTensor,
        layer: &Layer,
    ) -> Result<DeviceTensor> {
        let (out_height, out_width) = input.output_size_for(layer)?;
        let shape = [layer.spec.filters, out_height, out_width];
        let (gpu, ops, encoder) = (self.gpu, self.ops, &mut self.encoder);
        gpu.scoped("upload", || {
            let output = DeviceTensor::new(gpu, shape, "maps [K,OH,OW]")?;
            pipeline.record(
                gpu,
                ops,
                ConvPass {
                    input,
                    layer,
                    encoder,
                    output: &output.buffer,
                    timestamps: None,
                },
            )?;
            Ok(output)
        })?
    }

    /// Records ReLU over `tensor`, in place.
    pub fn relu(&mut self, tensor: &DeviceTensor) -> Result<()> {
        let (gpu, ops, encoder) = (self.gpu, self.ops, &mut self.encoder);
        gpu.scoped("compute", || ops.relu(gpu, encoder, tensor))?
    }

    /// Records max pooling of `input` `[C, H, W]`: a new `[C, OH, OW]`.
    pub fn max_pool(&mut self, input: &DeviceTensor, pool: &PoolSpec) -> Result<DeviceTensor> {
        let (gpu, ops, encoder) = (self.gpu, self.ops, &mut self.encoder);
        gpu.scoped("compute", || ops.max_pool(gpu, encoder, input, pool))?
    }

    /// Records the copy of rows `rows` of every channel of `input` into a
    /// new tensor `[C, rows, W]` (one buffer copy per channel).
    pub fn crop_rows(&mut self, input: &DeviceTensor, rows: Range<u32>) -> Result<DeviceTensor> {
        let (gpu, ops, encoder) = (self.gpu, self.ops, &mut self.encoder);
        gpu.scoped("compute", || ops.crop_rows(gpu, encoder, input, rows))?
    }

    /// Asks for `tensor`, as the steps recorded so far leave it, to be read
    /// back after the submission; returns its index in
    /// [`BandRecording::submit`]'s list.
    pub fn read_back(&mut self, tensor: &DeviceTensor) -> usize {
        let readback = record_readback(self.gpu, &mut self.encoder, &tensor.buffer, tensor.shape());
        self.readbacks.push(readback);
        self.readbacks.len() - 1
    }

    /// Submits everything at once without waiting: one [`InFlight`] per
    /// [`BandRecording::read_back`], in order, each read with
    /// [`InFlight::read`] or [`InFlight::into_tensor`]. The first carries
    /// the band's upload and submit times; none has GPU timestamps.
    pub fn submit(self) -> Result<Vec<InFlight>> {
        self.gpu.check("upload")?;
        submit_readbacks(self.gpu, self.encoder, self.readbacks, self.started, None)
    }
}

/// A value count as the shader's u32, or an error.
fn count(values: u64) -> Result<u32> {
    u32::try_from(values).map_err(|_| {
        Error::GpuLimit(format!(
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
            first_column,
            first_row,
            first_plane,
            scaled,
        });
        assert_eq!(host, wgsl_struct(SHADER_SOURCE, "OpParams"));
    }
}
