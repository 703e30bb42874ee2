//! The fast shader on GPUs whose subgroups have at least 8 invocations:
//! `shaders/conv2d_subgroup.wgsl`, one invocation per block of 8 adjacent
//! output pixels × 8 filters, one dispatch per layer, reading storage
//! buffers that the host (or `tensor_ops.wgsl`'s `pack_quads`, or the conv
//! before, writing its output as quads: [`crate::gpu::Fused`]) lays out:
//!
//! * **Quads.** The input, zero padding included, as `[G, Q, HP, WP]`
//!   vec4s: four channels of one pixel per vec4 (Q = ceil(C/G / 4) quads
//!   per group, the last one filled with zero channels).
//! * **Weight blocks.** Per block of 8 filters of one group, per quad and
//!   tap, the 4 channels' weights of the 8 filters as 2 vec4s:
//!   `[G·B, Q, FH, FW, 4, 2]` vec4s, zeros for filters past the group's end.
//!
//! The invocations of a subgroup share one filter block: each loads an
//! eighth of a tap's weights and subgroup shuffles hand them round (see the
//! shader). A software GPU reads memory one SIMD lane at a time, so this
//! divides its weight loads by eight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytemuck::{Pod, Zeroable};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::gpu::buffers::{buffer_init, check_buffers, check_workgroups, entry};
use crate::gpu::resident::{QuadLayout, value_buffer};
use crate::gpu::{Fused, FusedActivation};
use crate::layer::{Activation, Layer, LayerSpec};
use crate::tensor::Tensor3;

/// Output pixels per invocation, along a row.
pub(super) const PIXELS: u32 = 8;
/// Filters per invocation: one filter block.
pub(super) const FILTERS: u32 = 8;
/// The fewest invocations per subgroup the shader works with: the lanes
/// that load a tap's 8 vec4s of weights.
const MIN_SUBGROUP: u32 = 8;

/// The shader's source.
pub(super) const SHADER_SOURCE: &str = include_str!("../../../shaders/conv2d_subgroup.wgsl");

/// The shader's `Params` uniform, field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub(super) struct Params {
    out_height: u32,
    out_width: u32,
    stride: u32,
    dilation: u32,
    quads: u32,
    kernel_height: u32,
    kernel_width: u32,
    padded_height: u32,
    padded_width: u32,
    row_groups: u32,
    pixel_groups: u32,
    groups_x: u32,
    blocks_per_group: u32,
    filters_per_group: u32,
    has_bias: u32,
    has_activation: u32,
    alpha: f32,
    beta: f32,
    has_residual: u32,
    zero: u32,
    out_quads: u32,
    out_padded_height: u32,
    out_padded_width: u32,
    out_pad_top: u32,
    out_pad_left: u32,
}

/// A layer over an input of one size, laid out for the shader.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Plan {
    /// The input's layout.
    pub(super) quads: QuadLayout,
    /// The shader's uniform (without a residual).
    pub(super) params: Params,
    /// The dispatch's workgroups.
    pub(super) workgroups: [u32; 3],
    /// The stride (1 or 2) of a kernel 2 to 7 wide with dilation 1, whose
    /// pipeline loads each row's columns once for all its taps; 0 for any
    /// other kernel.
    pub(super) row: u32,
    /// The kernel's width where `row` is not 0 (else 0).
    pub(super) taps: u32,
    /// Whether the layer is depthwise (G = C = K): the entry point that
    /// computes 8 pixels of 4 channels per invocation.
    pub(super) depthwise: bool,
}

/// How the input of `spec` over an `in_height`×`in_width` input is packed:
/// each group's quads of channels with the padding (a depthwise layer's
/// channels as one group); refused when a padded side overflows.
fn quad_layout(spec: &LayerSpec, [in_height, in_width]: [u32; 2]) -> Result<QuadLayout> {
    let padded = |size: u32, before: u32, after: u32| {
        size.checked_add(before)
            .and_then(|s| s.checked_add(after))
            .ok_or_else(|| Error::GpuLimit(format!("a padded input side of {size} pixels")))
    };
    let pad = &spec.padding;
    let (groups, channels) = match is_depthwise(spec) {
        true => (1, spec.in_channels),
        false => (spec.groups, spec.channels_per_group()),
    };
    Ok(QuadLayout {
        groups,
        channels,
        quads: channels.div_ceil(4),
        padded_height: padded(in_height, pad.top, pad.bottom)?,
        padded_width: padded(in_width, pad.left, pad.right)?,
    })
}

/// Whether `spec` runs on a pipeline that loads each input row's columns
/// once for all its taps: a kernel 2 to 7 wide with stride 1 or 2 and
/// dilation 1.
pub(super) fn loads_rows(spec: &LayerSpec) -> bool {
    (2..=7).contains(&spec.kernel_width) && spec.dilation == 1 && (1..=2).contains(&spec.stride)
}

/// Whether `spec` is depthwise: one filter per channel, each seeing only
/// its own (G = C = K > 1).
pub(super) fn is_depthwise(spec: &LayerSpec) -> bool {
    spec.groups > 1 && spec.groups == spec.in_channels && spec.filters == spec.groups
}

impl Plan {
    /// The output's [OH, OW].
    pub(super) fn out_size(&self) -> [u32; 2] {
        [self.params.out_height, self.params.out_width]
    }

    /// The plan of `spec` over an `in_height`×`in_width` input giving an
    /// `out_height`×`out_width` output, `workgroup` invocations to a
    /// workgroup and at most `max_groups` workgroups per dimension.
    pub(super) fn new(
        spec: &LayerSpec,
        [in_height, in_width]: [u32; 2],
        [out_height, out_width]: [u32; 2],
        workgroup: u32,
        max_groups: u32,
    ) -> Result<Plan> {
        let depthwise = is_depthwise(spec);
        let quads = quad_layout(spec, [in_height, in_width])?;
        let groups = quads.groups;
        let row_groups = out_width.div_ceil(PIXELS);
        let pixel_groups = out_height as u64 * row_groups as u64;
        let pixel_groups = u32::try_from(pixel_groups)
            .map_err(|_| Error::GpuLimit(format!("{pixel_groups} groups of output pixels")))?;
        let workgroups_needed = pixel_groups.div_ceil(workgroup).max(1);
        let groups_x = workgroups_needed.min(max_groups.max(1));
        // A depthwise layer: one "block" per quad of channels, and K in
        // `filters_per_group`, which bounds the last quad's channels.
        let (filters_per_group, blocks_per_group) = match depthwise {
            true => (spec.filters, quads.quads),
            false => {
                let per_group = spec.filters / spec.groups;
                (per_group, per_group.div_ceil(FILTERS))
            }
        };
        let params = Params {
            out_height,
            out_width,
            stride: spec.stride,
            dilation: spec.dilation,
            quads: quads.quads,
            kernel_height: spec.kernel_height,
            kernel_width: spec.kernel_width,
            padded_height: quads.padded_height,
            padded_width: quads.padded_width,
            row_groups,
            pixel_groups,
            groups_x,
            blocks_per_group,
            filters_per_group,
            has_bias: spec.bias as u32,
            // ReLU, the one activation a layer has (`Variant::activation`
            // 0); a network's others come with `Fused`.
            has_activation: (spec.activation == Activation::Relu) as u32,
            alpha: 0.0,
            beta: 0.0,
            has_residual: 0,
            zero: 0,
            // Into [K, OH, OW] unless `Fused` says otherwise.
            ..Params::default()
        };
        let workgroups = [
            groups_x,
            groups * blocks_per_group,
            workgroups_needed.div_ceil(groups_x),
        ];
        let (row, taps) = match loads_rows(spec) {
            true => (spec.stride, spec.kernel_width),
            false => (0, 0),
        };
        Ok(Plan {
            quads,
            params,
            workgroups,
            row,
            taps,
            depthwise,
        })
    }

    /// The pipeline that runs this plan, applying `activation` where given.
    pub(super) fn variant(&self, activation: Option<FusedActivation>) -> Variant {
        Variant {
            depthwise: self.depthwise,
            row: self.row,
            taps: self.taps,
            activation: activation.map_or(0, |a| a.kind),
        }
    }

    /// f32s of the biases per block: 8 per filter block (a depthwise layer:
    /// 4 per quad).
    pub(super) fn bias_len(&self) -> u64 {
        self.workgroups[1] as u64 * if self.depthwise { 4 } else { FILTERS as u64 }
    }

    /// f32s of the weight blocks: 32 per block, quad and tap (a depthwise
    /// layer: 4 per quad and tap).
    pub(super) fn weight_len(&self) -> u64 {
        let p = &self.params;
        let taps = p.kernel_height as u64 * p.kernel_width as u64;
        match self.depthwise {
            true => p.quads as u64 * taps * 4,
            false => self.workgroups[1] as u64 * p.quads as u64 * taps * 32,
        }
    }
}

/// The input as the shader reads it, `[G, Q, HP, WP, 4]`: the CPU twin of
/// `tensor_ops.wgsl`'s `pack_quads`, with the same index math.
pub(super) fn pack_quads(input: &Tensor3, spec: &LayerSpec, layout: &QuadLayout) -> Vec<f32> {
    let mut quads = vec![0.0f32; layout.len() as usize];
    let channels = layout.channels as usize;
    let (rows, width) = (layout.padded_height as usize, layout.padded_width as usize);
    let (pad_top, pad_left) = (spec.padding.top as usize, spec.padding.left as usize);
    // One padded row of one quad at a time: (group · Q + quad, y).
    quads
        .par_chunks_exact_mut(width * 4)
        .enumerate()
        .for_each(|(r, row)| {
            let (quad_index, y) = (r / rows, r % rows);
            let (group, quad) = (
                quad_index / layout.quads as usize,
                quad_index % layout.quads as usize,
            );
            let Some(in_y) = y
                .checked_sub(pad_top)
                .filter(|&y| y < input.height as usize)
            else {
                return; // a padding row: zeros
            };
            for ci in 0..4 {
                let c = quad * 4 + ci;
                if c >= channels {
                    break; // the zero channels that fill the last quad
                }
                let plane = input.plane((group * channels + c) as u32);
                let source = &plane[in_y * input.width as usize..][..input.width as usize];
                for (x, &value) in source.iter().enumerate() {
                    row[(pad_left + x) * 4 + ci] = value;
                }
            }
        });
    quads
}

/// The weights regrouped into blocks of 8 filters of one group,
/// `[G·B, Q, FH, FW, 4, 2, 4]`: for each quad and tap, channel `ci` of the
/// quad holds filters 0–3 and then 4–7 of the block. Zeros for filters past
/// the group's end and for the channels that fill the last quad.
pub(super) fn pack_weights(layer: &Layer, plan: &Plan) -> Vec<f32> {
    let spec = &layer.spec;
    if plan.depthwise {
        return pack_depthwise_weights(layer, plan);
    }
    let p = &plan.params;
    let (channels, taps) = (
        spec.channels_per_group() as usize,
        (spec.kernel_height * spec.kernel_width) as usize,
    );
    let per_block = p.quads as usize * taps * 32;
    let mut blocks = vec![0.0f32; plan.weight_len() as usize];
    for (b, block) in blocks.chunks_exact_mut(per_block.max(1)).enumerate() {
        let group = b / p.blocks_per_group as usize;
        let first = (b % p.blocks_per_group as usize) * FILTERS as usize;
        let filters = (FILTERS as usize).min(p.filters_per_group as usize - first);
        for f in 0..filters {
            let k = group * p.filters_per_group as usize + first + f;
            let weights = &layer.weight[k * channels * taps..][..channels * taps];
            for (c, per_channel) in weights.chunks_exact(taps).enumerate() {
                let (quad, ci) = (c / 4, c % 4);
                for (t, &w) in per_channel.iter().enumerate() {
                    block[((quad * taps + t) * 4 + ci) * 8 + f] = w;
                }
            }
        }
    }
    blocks
}

/// One compiled pipeline of the shader and its bind group layout.
#[derive(Clone)]
struct Compiled {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// The biases per filter block, `[G·B, 8]` (a depthwise layer: per quad of
/// channels, `[Q, 4]`), zeros for filters past the group's end and for a
/// layer without biases.
pub(super) fn pack_bias(layer: &Layer, plan: &Plan) -> Vec<f32> {
    let p = &plan.params;
    let per_block = plan.bias_len() as usize / plan.workgroups[1].max(1) as usize;
    let mut packed = vec![0.0f32; plan.bias_len() as usize];
    if layer.bias.is_empty() {
        return packed;
    }
    for (b, block) in packed.chunks_exact_mut(per_block).enumerate() {
        let (first, end) = match plan.depthwise {
            true => (b * 4, layer.bias.len()),
            false => {
                let group = b / p.blocks_per_group as usize;
                let per_group = p.filters_per_group as usize;
                let first = group * per_group + (b % p.blocks_per_group as usize) * per_block;
                (first, (group + 1) * per_group)
            }
        };
        let count = end.saturating_sub(first).min(per_block);
        block[..count].copy_from_slice(&layer.bias[first..first + count]);
    }
    packed
}

/// A depthwise layer's weights, `[Q, FH, FW, 4]`: channel `q·4 + ci`'s
/// weight of each tap in lane ci, zeros past channel C.
fn pack_depthwise_weights(layer: &Layer, plan: &Plan) -> Vec<f32> {
    let taps = (layer.spec.kernel_height * layer.spec.kernel_width) as usize;
    let mut packed = vec![0.0f32; plan.weight_len() as usize];
    for (c, per_channel) in layer.weight.chunks_exact(taps.max(1)).enumerate() {
        let (quad, ci) = (c / 4, c % 4);
        for (t, &w) in per_channel.iter().enumerate() {
            packed[(quad * taps + t) * 4 + ci] = w;
        }
    }
    packed
}

/// The compiled subgroup pipelines.
pub(super) struct SubgroupConv {
    module: wgpu::ShaderModule,
    /// The pipelines asked for so far, each built and warmed up on first
    /// use or by [`SubgroupConv::prepare`] (`None` until then).
    pipelines: Mutex<HashMap<Variant, Slot>>,
    /// Invocations per workgroup: 8 on a software GPU (one SIMD batch, so
    /// that small maps keep every batch busy), 64 on a hardware one.
    workgroup: u32,
}

impl SubgroupConv {
    /// Compiles the shader where `gpu` has subgroups of at least 8
    /// invocations (its pipelines are built on first use); `None` where it
    /// has none.
    pub(super) fn new(gpu: &Gpu) -> Result<Option<Self>> {
        if gpu.subgroup_size().is_none_or(|size| size < MIN_SUBGROUP) {
            return Ok(None);
        }
        let workgroup = if gpu.info.device_type == wgpu::DeviceType::Cpu {
            8
        } else {
            64
        };
        gpu.scoped("pipeline creation", || {
            let module = gpu
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some("conv2d_subgroup.wgsl"),
                    source: wgpu::ShaderSource::Wgsl(SHADER_SOURCE.into()),
                });
            Some(SubgroupConv {
                module,
                pipelines: Default::default(),
                workgroup,
            })
        })
    }

    /// The slot of the pipeline `variant`.
    fn slot(&self, variant: Variant) -> Slot {
        lock(&self.pipelines).entry(variant).or_default().clone()
    }

    /// How many pipelines are built (and warmed up).
    pub(super) fn built(&self) -> usize {
        let slots: Vec<Slot> = lock(&self.pipelines).values().cloned().collect();
        slots.iter().filter(|slot| lock(slot).is_some()).count()
    }

    /// The pipeline `variant`, built and warmed up (see
    /// [`SubgroupConv::warm_up`]) on first use; a pipeline whose build or
    /// warm-up failed is built again when next asked for. Callers asking
    /// for the same pipeline wait for one build; others build side by side.
    fn compiled(&self, gpu: &Gpu, variant: Variant) -> Result<Compiled> {
        let slot = self.slot(variant);
        let mut slot = lock(&slot);
        if let Some(compiled) = &*slot {
            return Ok(compiled.clone());
        }
        let built = gpu.scoped("pipeline creation", || {
            compile(gpu, &self.module, self.workgroup, variant)
        })?;
        self.warm_up(gpu, variant, &built)?;
        *slot = Some(built.clone());
        Ok(built)
    }

    /// Builds the pipelines `variants` that are not built yet, side by side
    /// (on the thread pool), and warms them up: a network's pipelines
    /// before its run, which a software GPU compiles on the CPU's cores.
    /// Saves the pipeline cache after building any.
    pub(super) fn prepare(&self, gpu: &Gpu, variants: &[Variant]) -> Result<()> {
        let mut missing: Vec<Variant> = variants
            .iter()
            .copied()
            .filter(|&v| lock(&self.slot(v)).is_none())
            .collect();
        missing.sort_by_key(|v| (v.depthwise, v.row, v.taps, v.activation));
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        missing
            .par_iter()
            .try_for_each(|&variant| self.compiled(gpu, variant).map(drop))?;
        gpu.save_pipeline_cache();
        Ok(())
    }

    /// Runs the pipeline `variant`, `compiled`, once on one pixel, in a
    /// submission of its own, and waits: a GPU that compiles at the first
    /// dispatch (lavapipe does) compiles it here, and not inside a run
    /// being recorded, whose GPU time it would count.
    fn warm_up(&self, gpu: &Gpu, variant: Variant, compiled: &Compiled) -> Result<()> {
        let (pixels, layer) = warm_up_layer(variant)?;
        let in_size = [pixels.height, pixels.width];
        let (out_height, out_width) = layer.spec.output_size(pixels.height, pixels.width)?;
        let plan = self.plan(gpu, &layer, in_size, [out_height, out_width])?;
        debug_assert_eq!(
            plan.variant(None),
            Variant {
                activation: 0,
                ..variant
            }
        );
        let quads = value_buffer(gpu, "warm-up quads", plan.quads.len() * 4);
        let output = value_buffer(
            gpu,
            "warm-up output",
            layer.spec.output_bytes(out_height, out_width),
        );
        let fused = Fused {
            activation: Some(FusedActivation {
                kind: variant.activation,
                alpha: 0.0,
                beta: 0.0,
            }),
            ..Fused::NONE
        };
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        let pass = (&layer, &plan, &quads);
        self.record_on(gpu, compiled, &mut encoder, pass, (&output, fused), None)?;
        gpu.queue.submit([encoder.finish()]);
        gpu.wait("pipeline creation")
    }

    /// The plan of `layer` over an input of `in_size` [H, W] giving
    /// `out_size` [OH, OW]; refused when a buffer or the grid exceeds the
    /// device's limits.
    pub(super) fn plan(
        &self,
        gpu: &Gpu,
        layer: &Layer,
        in_size: [u32; 2],
        out_size: [u32; 2],
    ) -> Result<Plan> {
        let max_groups = gpu.limits().max_compute_workgroups_per_dimension;
        let plan = Plan::new(&layer.spec, in_size, out_size, self.workgroup, max_groups)?;
        let output_bytes = layer.spec.output_bytes(out_size[0], out_size[1]);
        check_buffers(
            &[
                ("input quads", plan.quads.len().saturating_mul(4)),
                ("weight blocks", plan.weight_len().saturating_mul(4)),
                ("output", output_bytes),
            ],
            gpu.max_storage_binding(),
        )?;
        check_workgroups(
            gpu,
            &[
                ("output pixels", plan.workgroups[2]),
                ("filter count", plan.workgroups[1]),
            ],
        )?;
        Ok(plan)
    }

    /// Records `layer`'s pass as `plan` lays it out: the weight blocks
    /// uploaded, the quads in `quads` read, `fused`'s residual [K, OH, OW]
    /// added and its activation applied where given, `output` written, in
    /// one dispatch (timed by `timestamps` where given).
    pub(super) fn record_pass(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        (layer, plan, quads): (&Layer, &Plan, &wgpu::Buffer),
        (output, fused): (&wgpu::Buffer, Fused<'_>),
        timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) -> Result<()> {
        let compiled = self.compiled(gpu, plan.variant(fused.activation))?;
        let pass = (layer, plan, quads);
        self.record_on(gpu, &compiled, encoder, pass, (output, fused), timestamps)
    }

    /// [`SubgroupConv::record_pass`] on the pipeline `compiled`.
    fn record_on(
        &self,
        gpu: &Gpu,
        compiled: &Compiled,
        encoder: &mut wgpu::CommandEncoder,
        (layer, plan, quads): (&Layer, &Plan, &wgpu::Buffer),
        (output, fused): (&wgpu::Buffer, Fused<'_>),
        timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) -> Result<()> {
        let bind_group = gpu.scoped("upload", || {
            let storage = wgpu::BufferUsages::STORAGE;
            let blocks = pack_weights(layer, plan);
            let blocks = buffer_init(
                gpu,
                "weight blocks [G·B,Q,FH,FW,4,8]",
                bytemuck::cast_slice(&blocks),
                storage,
            );
            let bias = pack_bias(layer, plan);
            let label = "biases per block [G·B,8]";
            let bias = buffer_init(gpu, label, bytemuck::cast_slice(&bias), storage);
            let residual = fused.residual;
            let mut params = Params {
                has_residual: residual.is_some() as u32,
                ..plan.params
            };
            if let Some(activation) = fused.activation {
                params.has_activation = 1;
                params.alpha = activation.alpha;
                params.beta = activation.beta;
            }
            if let Some(target) = fused.output_quads {
                params.out_quads = 1;
                params.out_padded_height = target.layout.padded_height;
                params.out_padded_width = target.layout.padded_width;
                params.out_pad_top = target.pad_top;
                params.out_pad_left = target.pad_left;
            }
            let params = buffer_init(
                gpu,
                "conv2d_subgroup params",
                bytemuck::bytes_of(&params),
                wgpu::BufferUsages::UNIFORM,
            );
            let none = residual
                .is_none()
                .then(|| buffer_init(gpu, "no residual", &[0; 4], storage));
            let residual = residual
                .or(none.as_ref())
                .expect("a residual or its stand-in");
            gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("conv2d_subgroup"),
                layout: &compiled.layout,
                entries: &[
                    entry(0, quads),
                    entry(1, &blocks),
                    entry(2, &bias),
                    entry(3, residual),
                    entry(4, output),
                    entry(5, &params),
                ],
            })
        })?;
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("conv2d_subgroup"),
            timestamp_writes: timestamps,
        });
        pass.set_pipeline(&compiled.pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        let [x, y, z] = plan.workgroups;
        pass.dispatch_workgroups(x, y, z);
        Ok(())
    }
}

/// A one-pixel output, its input and a layer that run on the pipeline
/// `variant` (its activation aside): what warms that pipeline up. Zero
/// weights, 8 channels (enough for a layer that is not depthwise to run
/// there) or 4 depthwise.
pub(super) fn warm_up_layer(variant: Variant) -> Result<(Tensor3, Layer)> {
    let depthwise = variant.depthwise;
    let channels = if depthwise {
        4
    } else {
        super::SUBGROUP_CHANNELS
    };
    let kernel_width = if variant.row == 0 { 1 } else { variant.taps };
    let spec = LayerSpec {
        kernel_height: 1,
        stride: variant.row.max(1),
        groups: if depthwise { channels } else { 1 },
        ..LayerSpec::new(channels, if depthwise { channels } else { 1 }, kernel_width)
    };
    let weights = vec![0.0; spec.weight_len()];
    let bias = vec![0.0; spec.filters as usize];
    Ok((
        Tensor3::zeros(channels, 1, kernel_width),
        Layer::new(spec, weights, bias)?,
    ))
}

/// A pipeline's place in [`SubgroupConv`]: `None` until it is built.
type Slot = Arc<Mutex<Option<Compiled>>>;

/// `mutex` locked; one that a panicking thread left is still consistent
/// here (a slot is written only once its pipeline is built and warm).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a compiled pipeline runs: its entry point and pipeline constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct Variant {
    /// `conv2d_depthwise`, else `conv2d_subgroup` (`DEPTHWISE`).
    pub(super) depthwise: bool,
    /// `ROW`: see [`Plan::row`].
    pub(super) row: u32,
    /// `TAPS`: see [`Plan::taps`].
    pub(super) taps: u32,
    /// `ACTIVATION`: the code of the activation it applies where the
    /// uniform says so (a fused one's, else ReLU's, 0).
    pub(super) activation: u32,
}

/// The entry point of `module` that runs `variant`, with `WORKGROUP` =
/// `workgroup`.
fn compile(gpu: &Gpu, module: &wgpu::ShaderModule, workgroup: u32, variant: Variant) -> Compiled {
    let entry_point = match variant.depthwise {
        true => "conv2d_depthwise",
        false => "conv2d_subgroup",
    };
    let pipeline = gpu
        .device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry_point),
            layout: None,
            module,
            entry_point: Some(entry_point),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &[
                    ("WORKGROUP", workgroup as f64),
                    ("ROW", variant.row as f64),
                    ("TAPS", variant.taps.max(2) as f64),
                    ("DEPTHWISE", variant.depthwise as u32 as f64),
                    ("ACTIVATION", variant.activation as f64),
                ],
                ..Default::default()
            },
            cache: gpu.pipeline_cache(),
        });
    let layout = pipeline.get_bind_group_layout(0);
    Compiled { pipeline, layout }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::reflect::{rust_struct, wgsl_struct};
    use crate::layer::Padding;

    #[test]
    fn params_match_the_shaders_struct() {
        let host = rust_struct!(Params {
            out_height,
            out_width,
            stride,
            dilation,
            quads,
            kernel_height,
            kernel_width,
            padded_height,
            padded_width,
            row_groups,
            pixel_groups,
            groups_x,
            blocks_per_group,
            filters_per_group,
            has_bias,
            has_activation,
            alpha,
            beta,
            has_residual,
            zero,
            out_quads,
            out_padded_height,
            out_padded_width,
            out_pad_top,
            out_pad_left,
        });
        assert_eq!(host, wgsl_struct(SHADER_SOURCE, "Params"));
    }

    /// The `case` lines of the `switch` in the function `name` of `source`.
    fn cases<'s>(source: &'s str, name: &str) -> Vec<&'s str> {
        let body = &source[source.find(&format!("fn {name}(")).expect(name)..];
        let body = &body[..body.find("\n}\n").expect("the function's end")];
        body.lines()
            .map(str::trim)
            .filter(|line| line.starts_with("case") || line.starts_with("default"))
            .collect()
    }

    #[test]
    fn the_fused_activations_are_net_ops_unary_values() {
        let ours = cases(SHADER_SOURCE, "activation");
        let net_ops = cases(crate::net::gpu::SHADER_SOURCE, "unary_value");
        assert!(ours.len() >= 14, "{ours:?}");
        assert_eq!(ours, net_ops);
    }

    fn plan_of(spec: &LayerSpec, size: [u32; 2]) -> Plan {
        let (height, width) = spec.output_size(size[0], size[1]).expect("a valid layer");
        Plan::new(spec, size, [height, width], 8, 65535).expect("a plan")
    }

    #[test]
    fn a_depthwise_layer_packs_its_channels_as_one_group_of_quads() {
        let spec = LayerSpec {
            groups: 6,
            padding: Padding::uniform(1),
            ..LayerSpec::new(6, 6, 3)
        };
        let plan = plan_of(&spec, [10, 20]);
        assert!(plan.depthwise && plan.row == 1 && plan.taps == 3);
        assert_eq!(
            (plan.quads.groups, plan.quads.channels, plan.quads.quads),
            (1, 6, 2)
        );
        assert_eq!(
            (plan.quads.padded_height, plan.quads.padded_width),
            (12, 22)
        );
        // One workgroup row per quad; 3 pixel groups per row, 10 rows.
        assert_eq!(plan.workgroups, [4, 2, 1]);
        assert_eq!(plan.weight_len(), 2 * 9 * 4);
        // Grouped but not depthwise: blocks of 8 filters per group.
        let grouped = LayerSpec {
            groups: 2,
            stride: 2,
            ..LayerSpec::new(6, 18, 3)
        };
        let plan = plan_of(&grouped, [10, 20]);
        assert!(!plan.depthwise && plan.row == 2, "3 wide, stride 2");
        assert_eq!(
            (plan.quads.groups, plan.quads.channels, plan.quads.quads),
            (2, 3, 1)
        );
        assert_eq!(
            plan.workgroups[1],
            2 * 2,
            "two blocks of 8 for 9 filters per group"
        );
    }

    #[test]
    fn kernels_2_to_7_wide_with_stride_1_or_2_and_no_dilation_load_rows() {
        let row = |kernel_width, stride, dilation| {
            let spec = LayerSpec {
                kernel_width,
                stride,
                dilation,
                ..LayerSpec::new(8, 8, 3)
            };
            let plan = plan_of(&spec, [20, 20]);
            (plan.row, plan.taps)
        };
        assert_eq!(row(3, 1, 1), (1, 3));
        assert_eq!(row(3, 2, 1), (2, 3));
        assert_eq!(row(7, 2, 1), (2, 7));
        assert_eq!(row(2, 1, 1), (1, 2));
        assert_eq!(row(3, 3, 1), (0, 0), "stride 3");
        assert_eq!(row(3, 1, 2), (0, 0), "dilated");
        assert_eq!(row(1, 1, 1), (0, 0), "1 wide");
        assert_eq!(row(9, 1, 1), (0, 0), "9 wide");
    }

    #[test]
    fn each_warm_up_layer_runs_on_the_pipeline_it_warms_up() {
        let rows = [(0, 0), (1, 2), (1, 3), (1, 7), (2, 3), (2, 5), (2, 7)];
        for depthwise in [false, true] {
            for (row, taps) in rows {
                let variant = Variant {
                    depthwise,
                    row,
                    taps,
                    activation: 0,
                };
                let (pixels, layer) = warm_up_layer(variant).expect("a layer");
                let plan = plan_of(&layer.spec, [pixels.height, pixels.width]);
                assert_eq!(plan.variant(None), variant);
                assert_eq!(pixels.channels, layer.spec.in_channels);
            }
        }
    }

    #[test]
    fn biases_are_packed_per_block_of_eight_filters_of_one_group() {
        // 2 groups of 10 filters: blocks of 8 and 2 in each.
        let spec = LayerSpec {
            groups: 2,
            ..LayerSpec::new(16, 20, 1)
        };
        let bias: Vec<f32> = (0..20).map(|k| k as f32 + 1.0).collect();
        let layer = Layer::new(spec, vec![0.0; 20 * 8], bias).expect("a layer");
        let packed = pack_bias(&layer, &plan_of(&layer.spec, [1, 1]));
        let blocks: Vec<&[f32]> = packed.chunks(8).collect();
        assert_eq!(blocks.len(), 4);
        assert_eq!(blocks[0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        assert_eq!(blocks[1], [9.0, 10.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(blocks[2], [11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0]);
        assert_eq!(blocks[3], [19.0, 20.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        // Depthwise: one vec4 per quad of channels.
        let depthwise = LayerSpec {
            groups: 6,
            ..LayerSpec::new(6, 6, 3)
        };
        let bias: Vec<f32> = (0..6).map(|k| k as f32 + 1.0).collect();
        let layer = Layer::new(depthwise, vec![0.0; 6 * 9], bias).expect("a layer");
        let packed = pack_bias(&layer, &plan_of(&layer.spec, [3, 3]));
        assert_eq!(packed, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0, 0.0]);
    }

    #[test]
    fn weight_blocks_hold_each_taps_four_channels_of_eight_filters() {
        let spec = LayerSpec {
            bias: false,
            ..LayerSpec::new(5, 9, 1)
        };
        // weight[k, c] = 10·k + c.
        let weight = (0..9)
            .flat_map(|k| (0..5).map(move |c| (10 * k + c) as f32))
            .collect();
        let layer = Layer::new(spec, weight, Vec::new()).expect("a layer");
        let plan = plan_of(&layer.spec, [2, 2]);
        let blocks = pack_weights(&layer, &plan);
        // 2 blocks × 2 quads × 1 tap × 4 channels × 8 filters.
        assert_eq!(blocks.len(), 2 * 2 * 32);
        let at = |block: usize, quad: usize, ci: usize, f: usize| {
            blocks[((block * 2 + quad) * 4 + ci) * 8 + f]
        };
        assert_eq!(at(0, 0, 0, 0), 0.0);
        assert_eq!(at(0, 0, 3, 7), 73.0);
        assert_eq!(at(0, 1, 0, 2), 24.0); // channel 4 of filter 2
        assert_eq!(at(0, 1, 1, 2), 0.0); // channel 5 does not exist
        assert_eq!(at(1, 0, 2, 0), 82.0); // filter 8, channel 2
        assert_eq!(at(1, 0, 2, 1), 0.0); // filter 9 does not exist
    }
}
