//! The fast pipeline, with two kernels, picked per layer ([`FastKernel`]):
//!
//! * the subgroup kernel ([`subgroup`], `shaders/conv2d_subgroup.wgsl`),
//!   on GPUs with subgroups of 8 or more invocations, for depthwise layers
//!   and layers of at least [`SUBGROUP_CHANNELS`] channels per group whose
//!   buffers it binds: 8 pixels × 8 filters per invocation from input
//!   quads, one dispatch per layer, its sums in another order;
//! * the windows kernel, `shaders/conv2d_fast.wgsl`, for the rest and on
//!   every GPU: one invocation per block of 8 adjacent output pixels × 16
//!   filters, reading the input and the weights from uniform windows that
//!   the host lays out for it, in the direct shader's order.
//!
//! For the windows kernel, the host side does what the shader relies on
//! ([`layout`] computes it, with no GPU; this module compiles, binds and
//! submits):
//!
//! * **Strips.** The input is copied, zero padding included, into vertical
//!   strips of the output's columns, each stored row by row with the
//!   group's channels side by side (`[y][c][x]`), so that the input of a
//!   band of output rows is one contiguous range: a uniform window bound at
//!   a dynamic offset. No read the shader makes is ever out of bounds, and
//!   it tests no bound while it sums.
//! * **Weight blocks.** The weights are regrouped per block of 16 filters of
//!   one group (`[bias 16][c][ky][kx][16]`), zero-filled past the end of the
//!   group, so that the 16 weights of one tap are four consecutive vec4s.
//! * **Tiles.** One dispatch per tile (a band of rows of one strip) and per
//!   chunk of filter blocks that fits one window; the tile's place and the
//!   layer's geometry are a small uniform at a dynamic offset.
//!
//! A layer whose smallest tile or single weight block does not fit a
//! uniform window runs the same shader from storage buffers
//! (`conv2d_fast_storage`, which [`source`] generates from `conv2d_fast`
//! and which is built on first use), one tile covering the whole output.

mod layout;
mod source;
mod subgroup;

use std::sync::OnceLock;

use super::buffers::{buffer_init, check_buffers, check_workgroups, entry};
use super::resident::{DeviceTensor, QuadLayout, TensorOps, value_buffer};
use super::{ConvPass, ConvPipeline, Fused, FusedActivation, Gpu, QuadTarget};
use crate::error::{Error, Result};
use crate::layer::{Layer, LayerSpec};
use crate::settings::FastKernel;
use crate::tensor::Tensor3;
use layout::{
    Dispatch, MAX_WINDOW_BYTES, Plan, Tile, WORKGROUP_PIXELS, WORKGROUP_SIZE, dispatches,
    pack_strips, pack_weights,
};
use source::{STORAGE_ENTRY_POINT, UNIFORM_ENTRY_POINT};
use subgroup::SubgroupConv;

/// One compiled entry point of the shader and its bind group layout.
struct EntryPoint {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// The compiled fast convolution pipeline, both kernels: the direct
/// shader's results (to rounding) for the same inputs and layers, many
/// times sooner (some 60 times on a software GPU, for a photo and 32
/// filters of 5×5).
pub struct FastConv {
    module: wgpu::ShaderModule,
    /// Bytes of one uniform window, as the shader declares it.
    window_bytes: u64,
    /// `conv2d_fast`, reading uniform windows.
    uniform: EntryPoint,
    /// `conv2d_fast_storage`, built the first time a layer needs it.
    storage: OnceLock<EntryPoint>,
    /// `conv2d_subgroup`, which runs the layers [`FastKernel`] gives it
    /// whose buffers it can bind, where the GPU has subgroups.
    subgroup: Option<SubgroupConv>,
    /// The fewest channels per group a layer that is not depthwise needs
    /// to run on `subgroup` (0 with [`FastKernel::Subgroup`]).
    subgroup_channels: u32,
}

/// The fewest channels per group for which [`FastKernel::Auto`] runs a
/// layer that is not depthwise on the subgroup kernel. With fewer (a
/// photo's 3), its quads are part empty and a tap's loads feed few sums:
/// on lavapipe, 32 filters of 5×5 over a 1024×768 photo took 219 ms on the
/// windows and 199 ms on the subgroup kernel's rows of 5 taps (962 and 803
/// ms at 2048×1536), less than the 80 ms or so that building a subgroup
/// pipeline costs each run, while the windows kernel is built anyway.
/// From 8 channels on the subgroup kernel is far faster: a 3×3 layer from
/// 32 channels took 154 and 86 ms (before its rows of taps); RegNetY-400MF,
/// whose grouped convs see 8 channels per group, 199 ms with them on the
/// windows and 138 ms on the subgroup kernel.
pub const SUBGROUP_CHANNELS: u32 = 8;

/// A run's buffers besides its input, laid out and ready to upload: the
/// weight blocks and the tile uniforms (bytes), with the dispatches that
/// read them.
struct Upload {
    blocks: Vec<f32>,
    tiles: Vec<u8>,
    dispatches: Vec<Dispatch>,
}

impl FastConv {
    /// Compiles the shaders and builds the windows kernel's pipeline on
    /// `gpu`, then runs it once on a one-pixel layer: a GPU that compiles
    /// lazily, at the first dispatch (lavapipe does), compiles it here
    /// rather than in the first run's compute time. The subgroup kernel's
    /// pipelines, one per entry point, row of taps and fused activation,
    /// are built and warmed up the same way on first use, or all at once
    /// by [`ConvPipeline::prepare`]: most runs of one layer over a photo's
    /// 3 channels need none. One compilation of each pipeline serves every
    /// layer.
    pub fn new(gpu: &Gpu) -> Result<Self> {
        Self::with_kernel(gpu, FastKernel::Auto)
    }

    /// [`FastConv::new`], running `kernel`.
    pub fn with_kernel(gpu: &Gpu, kernel: FastKernel) -> Result<Self> {
        let subgroup = match kernel {
            FastKernel::Auto | FastKernel::Subgroup => SubgroupConv::new(gpu)?,
            FastKernel::Windows => None,
        };
        // The largest window the GPU binds, at most the 64 KiB the shader declares.
        let window_bytes = gpu
            .limits()
            .max_uniform_buffer_binding_size
            .min(MAX_WINDOW_BYTES)
            / 16
            * 16;
        let source = source::shader_source(window_bytes / 16).map_err(|message| Error::Gpu {
            stage: "pipeline creation",
            message,
        })?;
        let fast = gpu.scoped("pipeline creation", || {
            let module = gpu
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some("conv2d_fast.wgsl"),
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                });
            let window = wgpu::BufferSize::new(window_bytes);
            let uniform = build_entry_point(
                gpu,
                &module,
                UNIFORM_ENTRY_POINT,
                &[
                    uniform_layout(0, window),
                    uniform_layout(1, window),
                    storage_layout(2, false),
                    uniform_layout(3, tile_size()),
                ],
            );
            FastConv {
                module,
                window_bytes,
                uniform,
                storage: OnceLock::new(),
                subgroup,
                subgroup_channels: match kernel {
                    FastKernel::Subgroup => 0,
                    _ => SUBGROUP_CHANNELS,
                },
            }
        })?;
        let pixel = Tensor3::zeros(1, 1, 1);
        let layer = Layer::new(LayerSpec::new(1, 1, 1), vec![0.0], vec![0.0])?;
        fast.run(gpu, &pixel, &layer)?;
        Ok(fast)
    }

    /// Whether layers run on `conv2d_subgroup` (where their buffers fit).
    pub fn uses_subgroups(&self) -> bool {
        self.subgroup.is_some()
    }

    /// How many of the subgroup kernel's pipelines are built so far (one
    /// per entry point, row of taps and fused activation a run has needed).
    pub fn subgroup_pipelines(&self) -> usize {
        self.subgroup.as_ref().map_or(0, SubgroupConv::built)
    }

    /// The subgroup pipeline and its plan for `layer` over an input of
    /// `in_size`, where the GPU has one and the layer fits it.
    fn subgroup_plan(
        &self,
        gpu: &Gpu,
        layer: &Layer,
        in_size: [u32; 2],
        out_size: [u32; 2],
    ) -> Result<Option<(&SubgroupConv, subgroup::Plan)>> {
        let Some(pipeline) = &self.subgroup else {
            return Ok(None);
        };
        let spec = &layer.spec;
        if !subgroup::is_depthwise(spec) && spec.channels_per_group() < self.subgroup_channels {
            return Ok(None);
        }
        crate::gpu::check_loop_limit(gpu, layer)?;
        Ok(match pipeline.plan(gpu, layer, in_size, out_size) {
            Ok(plan) => Some((pipeline, plan)),
            // Too large for one dispatch from storage buffers: the windows
            // cut it into tiles.
            Err(Error::GpuLimit(_)) => None,
            Err(other) => return Err(other),
        })
    }

    /// The storage-buffer entry point, built on first use.
    fn storage_entry_point(&self, gpu: &Gpu) -> Result<&EntryPoint> {
        if let Some(entry_point) = self.storage.get() {
            return Ok(entry_point);
        }
        let built = gpu.scoped("pipeline creation", || {
            build_entry_point(
                gpu,
                &self.module,
                STORAGE_ENTRY_POINT,
                &[
                    storage_layout(2, false),
                    uniform_layout(3, tile_size()),
                    storage_layout(4, true),
                    storage_layout(5, true),
                ],
            )
        })?;
        Ok(self.storage.get_or_init(|| built))
    }

    /// Lays out `layer` for an `out_height`×`out_width` output on `gpu`:
    /// its plan, refused when its buffers (output included) or dispatches
    /// exceed the device's limits, with a message that gives the sizes.
    fn plan(&self, gpu: &Gpu, layer: &Layer, out_height: u32, out_width: u32) -> Result<Plan> {
        crate::gpu::check_loop_limit(gpu, layer)?;
        let output_bytes = layer.spec.output_bytes(out_height, out_width);
        let align = gpu.limits().min_uniform_buffer_offset_alignment as u64;
        let plan = Plan::new(
            &layer.spec,
            out_height,
            out_width,
            self.window_bytes / 4,
            align.div_ceil(4),
        )?;
        let input_bytes = plan.input_len().saturating_mul(4);
        let weight_bytes = plan.weight_len().saturating_mul(4);
        let max_bytes = if plan.storage {
            gpu.max_storage_binding()
        } else {
            // Uniform windows move by 32-bit dynamic offsets, and the
            // buffers hold one window of zeros after their data.
            gpu.limits().max_buffer_size.min(u32::MAX as u64) - self.window_bytes
        };
        check_buffers(
            &[("input", input_bytes), ("weight", weight_bytes)],
            max_bytes,
        )?;
        check_buffers(&[("output", output_bytes)], gpu.max_storage_binding())?;
        check_workgroups(
            gpu,
            &[
                ("output width", plan.strip_pixels.div_ceil(WORKGROUP_PIXELS)),
                ("output height", plan.tile_rows.div_ceil(WORKGROUP_SIZE)),
                ("filter count", plan.blocks_per_chunk),
            ],
        )?;
        Ok(plan)
    }

    /// The f32s after a buffer's data that keep the last uniform window
    /// inside it: one window of zeros (none for storage buffers).
    fn tail(&self, plan: &Plan) -> usize {
        if plan.storage {
            0
        } else {
            self.window_bytes as usize / 4
        }
    }

    /// The weight blocks and tiles of `plan` for `layer`. A window is
    /// always bound whole: the uniform buffers end in one window of zeros,
    /// which keeps the last windows inside them.
    fn lay_out(&self, gpu: &Gpu, layer: &Layer, plan: &Plan) -> Result<Upload> {
        let align = gpu.limits().min_uniform_buffer_offset_alignment as u64;
        let (dispatches, tiles) = dispatches(plan, &plan.geometry(layer)?, align)?;
        Ok(Upload {
            blocks: pack_weights(layer, plan, self.tail(plan)),
            tiles,
            dispatches,
        })
    }

    /// The entry point `plan` runs.
    fn entry_point(&self, gpu: &Gpu, plan: &Plan) -> Result<&EntryPoint> {
        if plan.storage {
            self.storage_entry_point(gpu)
        } else {
            Ok(&self.uniform)
        }
    }

    /// Records `layer`'s compute pass as `plan` lays it out, reading the
    /// strips in `strip_buffer` and writing `output`: the weight blocks and
    /// tiles uploaded and bound, then one dispatch per tile and chunk of
    /// filter blocks (timed by `timestamps` where given).
    fn record_pass(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        (layer, plan, strip_buffer): (&Layer, &Plan, &wgpu::Buffer),
        output: &wgpu::Buffer,
        timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) -> Result<()> {
        let entry_point = self.entry_point(gpu, plan)?;
        let upload = self.lay_out(gpu, layer, plan)?;
        let bind_group = self.bind(
            gpu,
            strip_buffer,
            &upload,
            plan.storage,
            entry_point,
            output,
        )?;
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("conv2d_fast"),
            timestamp_writes: timestamps,
        });
        record_dispatches(&mut pass, entry_point, &bind_group, &upload, plan.storage);
        Ok(())
    }

    /// Uploads the buffers of `upload` and binds them, with `output`, for
    /// `entry_point`.
    fn bind(
        &self,
        gpu: &Gpu,
        strip_buffer: &wgpu::Buffer,
        upload: &Upload,
        storage: bool,
        entry_point: &EntryPoint,
        output: &wgpu::Buffer,
    ) -> Result<wgpu::BindGroup> {
        gpu.scoped("upload", || {
            let usage = if storage {
                wgpu::BufferUsages::STORAGE
            } else {
                wgpu::BufferUsages::UNIFORM
            };
            let blocks = bytemuck::cast_slice(&upload.blocks);
            let block_buffer =
                buffer_init(gpu, "weight blocks [G,block,1+C/G·FH·FW,16]", blocks, usage);
            let uniform = wgpu::BufferUsages::UNIFORM;
            let tile_buffer = buffer_init(gpu, "tiles", &upload.tiles, uniform);
            let tile_entry = sized_entry(3, &tile_buffer, tile_size());
            let entries = if storage {
                vec![
                    entry(2, output),
                    tile_entry,
                    entry(4, strip_buffer),
                    entry(5, &block_buffer),
                ]
            } else {
                let window = wgpu::BufferSize::new(self.window_bytes);
                vec![
                    sized_entry(0, strip_buffer, window),
                    sized_entry(1, &block_buffer, window),
                    entry(2, output),
                    tile_entry,
                ]
            };
            gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("conv2d_fast"),
                layout: &entry_point.layout,
                entries: &entries,
            })
        })
    }
}

impl ConvPipeline for FastConv {
    /// The contract of the direct shader, and its results to rounding (on
    /// the windows, the same sums in the same order, with fused
    /// multiply-adds): the quads or the strips laid out on the host.
    fn record_from_host(&self, gpu: &Gpu, pass: ConvPass<'_, Tensor3>) -> Result<()> {
        let (input, layer) = (pass.input, pass.layer);
        let spec = &layer.spec;
        let (out_height, out_width) = layer.output_size_for(input)?;
        let shape = [input.channels, input.height, input.width];
        if let Some((pipeline, plan)) = self.subgroup_plan_of(gpu, layer, shape)? {
            let quads = subgroup::pack_quads(input, spec, &plan.quads);
            let quads = gpu.scoped("upload", || {
                let quads = bytemuck::cast_slice(&quads);
                buffer_init(
                    gpu,
                    "input quads [G,Q,HP,WP,4]",
                    quads,
                    wgpu::BufferUsages::STORAGE,
                )
            })?;
            let pass_buffers = (layer, &plan, &quads);
            return pipeline.record_pass(
                gpu,
                pass.encoder,
                pass_buffers,
                (pass.output, Fused::NONE),
                pass.timestamps,
            );
        }
        let plan = self.plan(gpu, layer, out_height, out_width)?;

        // Upload: strips (then weight blocks and tiles, and the dispatches).
        let strips = pack_strips(input, spec, &plan, self.tail(&plan));
        let strip_buffer = gpu.scoped("upload", || {
            let usage = if plan.storage {
                wgpu::BufferUsages::STORAGE
            } else {
                wgpu::BufferUsages::UNIFORM
            };
            let strips = bytemuck::cast_slice(&strips);
            buffer_init(gpu, "input strips [G,strip,y,C/G,x]", strips, usage)
        })?;
        self.record_pass(
            gpu,
            pass.encoder,
            (layer, &plan, &strip_buffer),
            pass.output,
            pass.timestamps,
        )
    }

    /// The packed input and weight blocks of the kernel that runs `layer`.
    fn scratch_bytes(&self, gpu: &Gpu, layer: &Layer, shape: [u32; 3]) -> u64 {
        let Ok((out_height, out_width)) = layer.output_size_of(shape) else {
            return 0;
        };
        if let Ok(Some((_, plan))) = self.subgroup_plan_of(gpu, layer, shape) {
            return 4 * (plan.quads.len() + plan.weight_len() + plan.bias_len());
        }
        match self.plan(gpu, layer, out_height, out_width) {
            Ok(plan) => 4 * (plan.input_len() + plan.weight_len() + 2 * self.tail(&plan) as u64),
            Err(_) => 0,
        }
    }

    fn runs_depthwise(&self) -> bool {
        self.uses_subgroups()
    }

    /// The subgroup kernel's pipelines that `convs` run on, built side by
    /// side (a software GPU builds each on one core, in 60–85 ms on
    /// lavapipe).
    fn prepare(
        &self,
        gpu: &Gpu,
        convs: &[(&Layer, [u32; 3], Option<FusedActivation>)],
    ) -> Result<()> {
        let Some(pipeline) = &self.subgroup else {
            return Ok(());
        };
        let mut variants = Vec::new();
        for &(layer, shape, activation) in convs {
            if let Some((_, plan)) = self.subgroup_plan_of(gpu, layer, shape)? {
                variants.push(plan.variant(activation));
            }
        }
        pipeline.prepare(gpu, &variants)
    }

    fn fuses(&self, gpu: &Gpu, layer: &Layer, shape: [u32; 3]) -> bool {
        matches!(self.subgroup_plan_of(gpu, layer, shape), Ok(Some(_)))
    }

    /// The subgroup kernel's quads, where `layer` runs there and they hold
    /// its channels in order (one group, or groups of whole quads).
    fn input_quads(&self, gpu: &Gpu, layer: &Layer, shape: [u32; 3]) -> Option<QuadTarget> {
        let (_, plan) = self.subgroup_plan_of(gpu, layer, shape).ok()??;
        let layout = plan.quads;
        (layout.groups == 1 || layout.channels.is_multiple_of(4))
            .then(|| quad_target(&layout, &layer.spec))
    }

    fn writes_quads(&self, gpu: &Gpu, layer: &Layer, shape: [u32; 3]) -> bool {
        self.fuses(gpu, layer, shape) && writes_whole_quads(&layer.spec)
    }

    /// The subgroup kernel adds the residual and applies any activation in
    /// its own dispatch.
    fn record_fused(
        &self,
        gpu: &Gpu,
        ops: &TensorOps,
        mut pass: ConvPass<'_, DeviceTensor>,
        fused: Fused<'_>,
    ) -> Result<bool> {
        self.record_subgroup(gpu, ops, &mut pass, fused)
    }

    /// Packs the input on the GPU (quads for the subgroup kernel, strips for
    /// the windows), then runs the layer's dispatches, into `output`.
    fn record(
        &self,
        gpu: &Gpu,
        ops: &TensorOps,
        mut pass: ConvPass<'_, DeviceTensor>,
    ) -> Result<()> {
        if self.record_subgroup(gpu, ops, &mut pass, Fused::NONE)? {
            return Ok(());
        }
        let ConvPass {
            input,
            layer,
            encoder,
            output,
            timestamps,
        } = pass;
        let (out_height, out_width) = input.output_size_for(layer)?;
        let plan = self.plan(gpu, layer, out_height, out_width)?;
        let strips_len = plan.input_len() + self.tail(&plan) as u64;
        // `pack_strips` writes the whole buffer through a storage binding,
        // which may be smaller than the uniform path's buffers can be.
        check_buffers(
            &[("input strips", strips_len.saturating_mul(4))],
            gpu.max_storage_binding(),
        )?;
        let strip_buffer = gpu.scoped("upload", || {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("input strips [G,strip,y,C/G,x], packed on the GPU"),
                size: (strips_len * 4).max(4),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::UNIFORM,
                mapped_at_creation: false,
            })
        })?;
        ops.pack_strips(
            gpu,
            encoder,
            input,
            &layer.spec,
            &plan.strip_layout(),
            &strip_buffer,
        )?;
        self.record_pass(
            gpu,
            encoder,
            (layer, &plan, &strip_buffer),
            output,
            timestamps,
        )
    }
}

impl FastConv {
    /// Records `pass` on the subgroup kernel, with its input packed on the
    /// GPU (unless `fused` gives it as quads already) and `fused`'s steps
    /// applied; returns whether it did (not where the GPU has no subgroups
    /// or the layer does not run there). Fails with [`Error::Mismatch`]
    /// when `fused` has quads the layer cannot read or write.
    fn record_subgroup(
        &self,
        gpu: &Gpu,
        ops: &TensorOps,
        pass: &mut ConvPass<'_, DeviceTensor>,
        fused: Fused<'_>,
    ) -> Result<bool> {
        let (input, layer) = (pass.input, pass.layer);
        // Refused when the input does not fit the layer (its channels).
        input.output_size_for(layer)?;
        let shape = [input.channels, input.height, input.width];
        let Some((pipeline, plan)) = self.subgroup_plan_of(gpu, layer, shape)? else {
            if fused.has_quads() {
                let what = format!("quads for a conv off the subgroup kernel: {:?}", layer.spec);
                return Err(Error::Mismatch(what));
            }
            return Ok(false);
        };
        if fused.output_quads.is_some() && !writes_whole_quads(&layer.spec) {
            let what = format!(
                "output quads from a conv whose quads mix groups: {:?}",
                layer.spec
            );
            return Err(Error::Mismatch(what));
        }
        let encoder = &mut *pass.encoder;
        let packed;
        let quads = match fused.input_quads {
            Some(quads) => quads,
            None => {
                let label = "input quads [G,Q,HP,WP,4], packed on the GPU";
                packed = value_buffer(gpu, label, plan.quads.len() * 4);
                let target = quad_target(&plan.quads, &layer.spec);
                ops.pack_quads(gpu, encoder, (input, None), &target, &packed)?;
                &packed
            }
        };
        // The quads' zeros, which the conv does not write: their padding,
        // and the lanes past its last filter.
        if let Some(target) = fused.output_quads {
            let [out_height, out_width] = plan.out_size();
            let layout = target.layout;
            let whole = layout.padded_height == out_height
                && layout.padded_width == out_width
                && layout.channels.is_multiple_of(4);
            if !whole {
                encoder.clear_buffer(pass.output, 0, None);
            }
        }
        let buffers = (pass.output, fused);
        let timestamps = pass.timestamps.take();
        pipeline.record_pass(gpu, encoder, (layer, &plan, quads), buffers, timestamps)?;
        Ok(true)
    }

    /// [`FastConv::subgroup_plan`] for an input of `shape` `[C, H, W]`.
    fn subgroup_plan_of(
        &self,
        gpu: &Gpu,
        layer: &Layer,
        [_, height, width]: [u32; 3],
    ) -> Result<Option<(&SubgroupConv, subgroup::Plan)>> {
        let (out_height, out_width) = layer.spec.output_size(height, width)?;
        self.subgroup_plan(gpu, layer, [height, width], [out_height, out_width])
    }
}

/// Records `upload`'s dispatches of `entry_point`: one per tile and chunk of
/// filter blocks.
fn record_dispatches(
    pass: &mut wgpu::ComputePass<'_>,
    entry_point: &EntryPoint,
    bind_group: &wgpu::BindGroup,
    upload: &Upload,
    storage: bool,
) {
    pass.set_pipeline(&entry_point.pipeline);
    for dispatch in &upload.dispatches {
        pass.set_bind_group(0, bind_group, dispatch.offsets(storage));
        let [x, y, z] = dispatch.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }
}

/// A bind group entry for the first `size` bytes of `buffer`, which a
/// dynamic offset moves.
fn sized_entry(
    binding: u32,
    buffer: &wgpu::Buffer,
    size: Option<wgpu::BufferSize>,
) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer,
            offset: 0,
            size,
        }),
    }
}

/// The quads `layout` of a layer of `spec`, with its padding.
fn quad_target(layout: &QuadLayout, spec: &LayerSpec) -> QuadTarget {
    QuadTarget {
        layout: *layout,
        pad_top: spec.padding.top,
        pad_left: spec.padding.left,
    }
}

/// Whether a conv of `spec` on the subgroup kernel can write its output as
/// quads of channels in order: each of its filter blocks starts at a
/// multiple of 4 (one group, depthwise, or groups of whole quads).
fn writes_whole_quads(spec: &LayerSpec) -> bool {
    spec.groups == 1 || subgroup::is_depthwise(spec) || spec.filters_per_group().is_multiple_of(4)
}

/// The size of the shader's `Tile`, as a binding size.
fn tile_size() -> Option<wgpu::BufferSize> {
    wgpu::BufferSize::new(std::mem::size_of::<Tile>() as u64)
}

/// A uniform binding of `size` bytes at a dynamic offset.
///
/// Every uniform of the fast pipeline moves with each dispatch: a layout that
/// mixed a static uniform in with these crashed lavapipe 22.3.
fn uniform_layout(binding: u32, size: Option<wgpu::BufferSize>) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: true,
            min_binding_size: size,
        },
        count: None,
    }
}

/// A storage buffer binding.
fn storage_layout(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

/// Builds `entry_point` of `module` with a bind group layout of `entries`.
fn build_entry_point(
    gpu: &Gpu,
    module: &wgpu::ShaderModule,
    entry_point: &str,
    entries: &[wgpu::BindGroupLayoutEntry],
) -> EntryPoint {
    let layout = gpu
        .device
        .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(entry_point),
            entries,
        });
    let pipeline_layout = gpu
        .device
        .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(entry_point),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
    let pipeline = gpu
        .device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry_point),
            layout: Some(&pipeline_layout),
            module,
            entry_point: Some(entry_point),
            compilation_options: Default::default(),
            cache: gpu.pipeline_cache(),
        });
    EntryPoint { pipeline, layout }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::buffers::{record_readback, submit_readbacks};
    use crate::layer::Padding;

    /// Padding that differs on every side.
    const UNEVEN: Padding = Padding {
        top: 2,
        bottom: 0,
        left: 1,
        right: 3,
    };

    /// The GPU, or `None` after a visible skip when there is none (a
    /// failure when `REQUIRE_GPU=1`), as the GPU integration tests do.
    fn gpu_or_skip() -> Option<Gpu> {
        match Gpu::new() {
            Ok(gpu) => Some(gpu),
            Err(error) if std::env::var("REQUIRE_GPU").is_ok_and(|v| v == "1") => {
                panic!("REQUIRE_GPU=1 but the GPU is unusable: {error}")
            }
            Err(error) => {
                eprintln!("SKIPPED GPU test: {error}");
                None
            }
        }
    }

    /// Packs `input` for `spec` on the GPU with `tensor_ops.wgsl` and
    /// returns the whole strip buffer as the fast shader binds it (tail
    /// included), with the plan.
    fn packed_on_gpu(
        gpu: &Gpu,
        ops: &TensorOps,
        fast: &FastConv,
        input: &Tensor3,
        layer: &Layer,
    ) -> (Vec<f32>, Plan) {
        let (out_height, out_width) = layer.output_size_for(input).unwrap();
        let plan = fast.plan(gpu, layer, out_height, out_width).unwrap();
        let len = plan.input_len() + fast.tail(&plan) as u64;
        let device = DeviceTensor::upload(gpu, input).unwrap();
        let strips = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("strips under test"),
            size: len * 4,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::UNIFORM
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        ops.pack_strips(
            gpu,
            &mut encoder,
            &device,
            &layer.spec,
            &plan.strip_layout(),
            &strips,
        )
        .unwrap();
        let readback = record_readback(gpu, &mut encoder, &strips, [1, 1, len as u32]);
        let run = submit_readbacks(
            gpu,
            encoder,
            vec![readback],
            std::time::Instant::now(),
            None,
        )
        .unwrap()
        .pop()
        .unwrap();
        (run.into_tensor(gpu).unwrap().0.data, plan)
    }

    /// Packs `input` into `target`'s quads on the GPU, each channel c
    /// times `scale[c]` where given, into a buffer that held other values
    /// before (so that a padding left unwritten would show), and reads
    /// them back.
    fn quads_packed_on_gpu(
        gpu: &Gpu,
        ops: &TensorOps,
        (input, scale): (&Tensor3, Option<&[f32]>),
        target: &QuadTarget,
    ) -> Vec<f32> {
        let len = target.layout.len();
        let device = DeviceTensor::upload(gpu, input).unwrap();
        let quads = value_buffer(gpu, "quads under test", len * 4);
        let stale = vec![-7.0f32; len as usize];
        gpu.queue
            .write_buffer(&quads, 0, bytemuck::cast_slice(&stale));
        let scale = scale.map(|factors| {
            let usage = wgpu::BufferUsages::STORAGE;
            buffer_init(
                gpu,
                "scale under test",
                bytemuck::cast_slice(factors),
                usage,
            )
        });
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        ops.pack_quads(gpu, &mut encoder, (&device, scale.as_ref()), target, &quads)
            .unwrap();
        let readback = record_readback(gpu, &mut encoder, &quads, [1, 1, len as u32]);
        let started = std::time::Instant::now();
        let run = submit_readbacks(gpu, encoder, vec![readback], started, None)
            .unwrap()
            .pop()
            .unwrap();
        run.into_tensor(gpu).unwrap().0.data
    }

    #[test]
    fn quads_packed_on_the_gpu_by_either_entry_point_scaled_or_not_equal_the_hosts_exactly() {
        let Some(gpu) = gpu_or_skip() else {
            return;
        };
        let ops = TensorOps::new(&gpu).unwrap();
        let uneven = UNEVEN;
        // (channels, groups, padding, height, width): widths that are a
        // multiple of 4 take pack_quads_vec4, the others pack_quads; the
        // odd cases are scaled (both entry points, groups of 5 channels).
        let cases = [
            (8, 1, Padding::uniform(1), 6, 8),
            (8, 1, Padding::uniform(1), 6, 7),
            (6, 1, uneven, 5, 12),
            (6, 1, uneven, 5, 10),
            (12, 2, Padding::default(), 3, 4),
            (10, 2, Padding::uniform(2), 9, 16),
            (3, 1, Padding::default(), 1, 4),
            (5, 1, Padding::uniform(3), 7, 9),
        ];
        let mut vec4_rows_seen = [false; 2];
        for (i, (channels, groups, padding, height, width)) in cases.into_iter().enumerate() {
            let spec = LayerSpec {
                padding,
                groups,
                ..LayerSpec::new(channels, groups, 3)
            };
            let per_group = channels / groups;
            let layout = QuadLayout {
                groups,
                channels: per_group,
                quads: per_group.div_ceil(4),
                padded_height: height + padding.top + padding.bottom,
                padded_width: width + padding.left + padding.right,
            };
            let target = quad_target(&layout, &spec);
            let len = (channels * height * width) as usize;
            // Values ≥ 1, so that no stored value passes for padding.
            let data: Vec<f32> = (0..len).map(|i| i as f32 + 1.0).collect();
            let input = Tensor3::from_vec(channels, height, width, data.clone());
            // Every other case scaled, as a Mul by [1, C, 1, 1] before the
            // conv is: the host packs the Mul's product.
            let scale: Vec<f32> = (0..channels).map(|c| 0.5 + c as f32 * 0.37).collect();
            let scaled = i % 2 == 1;
            let product = match scaled {
                true => {
                    let plane = (height * width) as usize;
                    let values = data.iter().enumerate().map(|(j, v)| v * scale[j / plane]);
                    Tensor3::from_vec(channels, height, width, values.collect())
                }
                false => input.clone(),
            };
            let scale = scaled.then_some(&scale[..]);
            let actual = quads_packed_on_gpu(&gpu, &ops, (&input, scale), &target);
            let expected = subgroup::pack_quads(&product, &spec, &layout);
            assert_eq!(actual.len(), expected.len(), "{spec:?} {layout:?}");
            if let Some(i) = (0..expected.len()).find(|&i| actual[i] != expected[i]) {
                panic!(
                    "{spec:?} on {height}×{width}, {layout:?}, scaled {scaled}: quad value {i} is {} on the GPU, {} on the host",
                    actual[i], expected[i]
                );
            }
            vec4_rows_seen[(width % 4 == 0) as usize] = true;
        }
        assert_eq!(
            vec4_rows_seen,
            [true, true],
            "the cases miss an entry point"
        );
    }

    #[test]
    fn strips_packed_on_the_gpu_equal_the_hosts_exactly() {
        let Some(gpu) = gpu_or_skip() else {
            return;
        };
        let ops = TensorOps::new(&gpu).unwrap();
        let fast = FastConv::new(&gpu).unwrap();
        let spec = |channels, kernel, stride, padding, dilation, groups| LayerSpec {
            stride,
            padding,
            dilation,
            groups,
            bias: false,
            ..LayerSpec::new(channels, groups * 2, kernel)
        };
        let uneven = UNEVEN;
        // (spec, height, width)
        let cases = [
            (spec(3, 3, 1, Padding::default(), 1, 1), 7, 9),
            (spec(3, 5, 1, Padding::uniform(2), 1, 1), 13, 11),
            (spec(2, 3, 2, uneven, 1, 1), 9, 14),
            (spec(4, 3, 3, Padding::uniform(1), 2, 2), 17, 10),
            (spec(6, 2, 1, uneven, 3, 3), 12, 12),
            (spec(3, 4, 5, Padding::uniform(3), 1, 3), 20, 31),
            // More than one strip: over 1024 output columns.
            (spec(1, 3, 1, Padding::uniform(1), 1, 1), 3, 1100),
            (spec(2, 3, 2, uneven, 2, 2), 5, 2300),
            // Too large for a window: the storage layout, no tail.
            (spec(64, 11, 2, Padding::uniform(1), 1, 1), 30, 27),
        ];
        let (mut strips_seen, mut storage_seen) = (false, false);
        for (spec, height, width) in cases {
            let len = (spec.in_channels * height * width) as usize;
            // Values ≥ 1, so that no stored value passes for padding.
            let data = (0..len).map(|i| i as f32 + 1.0).collect();
            let input = Tensor3::from_vec(spec.in_channels, height, width, data);
            let weight = vec![0.0; spec.weight_len()];
            let layer = Layer::new(spec, weight, Vec::new()).unwrap();
            let (actual, plan) = packed_on_gpu(&gpu, &ops, &fast, &input, &layer);
            let expected = pack_strips(&input, &spec, &plan, fast.tail(&plan));
            assert_eq!(actual.len(), expected.len(), "{spec:?} {plan:?}");
            if let Some(i) = (0..expected.len()).find(|&i| actual[i] != expected[i]) {
                panic!(
                    "{spec:?} on {height}×{width}, {plan:?}: strip value {i} is {} on the GPU, {} on the host",
                    actual[i], expected[i]
                );
            }
            strips_seen |= plan.strips > 1;
            storage_seen |= plan.storage;
        }
        assert!(strips_seen && storage_seen, "the cases miss a layout");
    }
}
