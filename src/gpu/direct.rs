//! The direct pipeline: `shaders/conv2d_direct.wgsl`, one invocation per
//! output pixel per filter.

use super::buffers::{buffer_init, check_buffers, check_workgroups, entry, storage_buffer};
use super::{ConvPass, ConvPipeline, DeviceTensor, Gpu, TensorOps};
use crate::error::Result;
use crate::layer::Layer;
use crate::tensor::Tensor3;

/// The shader's source, compiled into the binary.
pub const SHADER_SOURCE: &str = include_str!("../../shaders/conv2d_direct.wgsl");

/// Workgroup size in x and y, as declared in the shader.
const WORKGROUP_SIZE: u32 = 8;

/// The shader's `Params` uniform, field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    in_channels: u32,
    in_height: u32,
    in_width: u32,
    filters: u32,
    out_height: u32,
    out_width: u32,
    kernel_height: u32,
    kernel_width: u32,
    stride: u32,
    dilation: u32,
    pad_top: u32,
    pad_left: u32,
    channels_per_group: u32,
    filters_per_group: u32,
    has_bias: u32,
    activation: u32,
}

impl Params {
    /// The uniform for `layer` over an `in_height`×`in_width` input, with
    /// an `out_height`×`out_width` output.
    fn new(
        layer: &Layer,
        (in_height, in_width): (u32, u32),
        (out_height, out_width): (u32, u32),
    ) -> Self {
        let spec = &layer.spec;
        Params {
            in_channels: spec.in_channels,
            in_height,
            in_width,
            filters: spec.filters,
            out_height,
            out_width,
            kernel_height: spec.kernel_height,
            kernel_width: spec.kernel_width,
            stride: spec.stride,
            dilation: spec.dilation,
            pad_top: spec.padding.top,
            pad_left: spec.padding.left,
            channels_per_group: spec.channels_per_group(),
            filters_per_group: spec.filters_per_group(),
            has_bias: u32::from(!layer.bias.is_empty()),
            activation: spec.activation.code(),
        }
    }
}

/// The compiled direct convolution pipeline.
pub struct DirectConv {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

impl DirectConv {
    /// Compiles the shader and builds the pipeline on `gpu`.
    pub fn new(gpu: &Gpu) -> Result<Self> {
        gpu.scoped("pipeline creation", || {
            let module = gpu
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some("conv2d_direct.wgsl"),
                    source: wgpu::ShaderSource::Wgsl(SHADER_SOURCE.into()),
                });
            let pipeline = gpu
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some("conv2d_direct"),
                    layout: None,
                    module: &module,
                    entry_point: Some("conv2d_direct"),
                    compilation_options: Default::default(),
                    cache: gpu.pipeline_cache(),
                });
            let layout = pipeline.get_bind_group_layout(0);
            DirectConv { pipeline, layout }
        })
    }
}

impl DirectConv {
    /// The bind group of a run: `input` (on the GPU), the layer's weights,
    /// bias (a single zero when the layer has none, because a binding
    /// cannot be empty) and geometry, and `output`.
    fn bind(
        &self,
        gpu: &Gpu,
        input: &wgpu::Buffer,
        layer: &Layer,
        params: &Params,
        output: &wgpu::Buffer,
    ) -> Result<wgpu::BindGroup> {
        let bias: &[f32] = if layer.bias.is_empty() {
            &[0.0]
        } else {
            &layer.bias
        };
        gpu.scoped("upload", || {
            let weight_buffer = storage_buffer(gpu, "weight [K,C/G,FH,FW]", &layer.weight);
            let bias_buffer = storage_buffer(gpu, "bias [K]", bias);
            let params_buffer = buffer_init(
                gpu,
                "params",
                bytemuck::bytes_of(params),
                wgpu::BufferUsages::UNIFORM,
            );
            gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("conv2d_direct"),
                layout: &self.layout,
                entries: &[
                    entry(0, input),
                    entry(1, &weight_buffer),
                    entry(2, &bias_buffer),
                    entry(3, output),
                    entry(4, &params_buffer),
                ],
            })
        })
    }

    /// Records the dispatch: (ceil(OW/8), ceil(OH/8), K) workgroups.
    fn record_pass(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        bind_group: &wgpu::BindGroup,
        params: &Params,
    ) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, bind_group, &[]);
        pass.dispatch_workgroups(
            params.out_width.div_ceil(WORKGROUP_SIZE),
            params.out_height.div_ceil(WORKGROUP_SIZE),
            params.filters,
        );
    }
}

impl DirectConv {
    /// The geometry of `layer` over an input of `[C, H, W]`, refused when it
    /// exceeds the device's buffer or dispatch limits.
    fn checked_params(&self, gpu: &Gpu, shape: [u32; 3], layer: &Layer) -> Result<Params> {
        let (out_height, out_width) = layer.output_size_of(shape)?;
        let [channels, height, width] = shape;
        let input_bytes = 4 * channels as u64 * height as u64 * width as u64;
        let output_bytes = layer.spec.output_bytes(out_height, out_width);
        check_limits(gpu, input_bytes, layer, output_bytes, out_height, out_width)?;
        Ok(Params::new(layer, (height, width), (out_height, out_width)))
    }

    /// Records the layer's pass over `input_buffer` into `encoder`, writing
    /// `output` (timed by `timestamps` where given).
    fn record_over(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        (input_buffer, layer, params): (&wgpu::Buffer, &Layer, &Params),
        output: &wgpu::Buffer,
        timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) -> Result<()> {
        let bind_group = self.bind(gpu, input_buffer, layer, params, output)?;
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("conv2d_direct"),
            timestamp_writes: timestamps,
        });
        self.record_pass(&mut pass, &bind_group, params);
        Ok(())
    }
}

impl ConvPipeline for DirectConv {
    fn record_from_host(&self, gpu: &Gpu, pass: ConvPass<'_, Tensor3>) -> Result<()> {
        let input = pass.input;
        let shape = [input.channels, input.height, input.width];
        let params = self.checked_params(gpu, shape, pass.layer)?;
        // Upload: the image (the weights, bias and geometry when bound).
        let input_buffer = gpu.scoped("upload", || {
            storage_buffer(gpu, "input [C,H,W]", &input.data)
        })?;
        let work = (&input_buffer, pass.layer, &params);
        self.record_over(gpu, pass.encoder, work, pass.output, pass.timestamps)
    }

    fn record(&self, gpu: &Gpu, _ops: &TensorOps, pass: ConvPass<'_, DeviceTensor>) -> Result<()> {
        let params = self.checked_params(gpu, pass.input.shape(), pass.layer)?;
        let work = (&pass.input.buffer, pass.layer, &params);
        self.record_over(gpu, pass.encoder, work, pass.output, pass.timestamps)
    }
}

/// Refuses a job that exceeds the device's buffer or dispatch limits, with
/// a message that gives the sizes.
fn check_limits(
    gpu: &Gpu,
    input_bytes: u64,
    layer: &Layer,
    output_bytes: u64,
    out_height: u32,
    out_width: u32,
) -> Result<()> {
    super::check_loop_limit(gpu, layer)?;
    check_buffers(
        &[
            ("input", input_bytes),
            ("weight", layer.weight.len() as u64 * 4),
            ("output", output_bytes),
        ],
        gpu.max_storage_binding(),
    )?;
    check_workgroups(
        gpu,
        &[
            ("output width", out_width.div_ceil(WORKGROUP_SIZE)),
            ("output height", out_height.div_ceil(WORKGROUP_SIZE)),
            ("filter count", layer.spec.filters),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::reflect::{rust_struct, wgsl_struct};

    #[test]
    fn params_matches_the_shaders_struct() {
        let host = rust_struct!(Params {
            in_channels,
            in_height,
            in_width,
            filters,
            out_height,
            out_width,
            kernel_height,
            kernel_width,
            stride,
            dilation,
            pad_top,
            pad_left,
            channels_per_group,
            filters_per_group,
            has_bias,
            activation,
        });
        assert_eq!(host, wgsl_struct(SHADER_SOURCE, "Params"));
    }
}
