//! The fast pipeline: `shaders/conv2d_fast.wgsl`, one invocation per block
//! of 8 adjacent output pixels × 16 filters, reading the input and the
//! weights from uniform windows that the host lays out for it.
//!
//! The host side does what the shader relies on:
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
//! uniform window runs the same kernel from storage buffers
//! (`conv2d_fast_storage`, compiled on first use), one tile covering the
//! whole output.

use std::sync::OnceLock;
use std::time::Instant;

use rayon::prelude::*;

use super::buffers::{
    InFlight, OutputSlot, buffer_init, check_buffers, check_workgroups, entry, submit_run,
};
use super::{ConvPipeline, Gpu};
use crate::error::Result;
use crate::layer::{Layer, LayerSpec};
use crate::tensor::Tensor3;

/// The shader's source, compiled into the binary.
pub const SHADER_SOURCE: &str = include_str!("../../shaders/conv2d_fast.wgsl");

/// Output pixels per invocation along x (`PIXELS` in the shader).
const PIXELS: u32 = 8;
/// Filters per invocation: one weight block (`FILTERS` in the shader).
const FILTERS: u32 = 16;
/// Workgroup size in x (pixel blocks) and y (rows), as declared in the shader.
const WORKGROUP_SIZE: u32 = 8;
/// Output columns one workgroup covers.
const WORKGROUP_PIXELS: u32 = WORKGROUP_SIZE * PIXELS;
/// The shader's window size, which [`FastConv::new`] lowers on a GPU whose
/// uniform bindings are smaller than 64 KiB.
const WINDOW_DECLARATION: &str = "const WINDOW_VEC4S: u32 = 4096u;";
/// The window the shader declares, in bytes.
const MAX_WINDOW_BYTES: u64 = 65536;
/// What one dispatch costs, in invocation-taps (one invocation running one
/// tap of its loop), when choosing the tile shape: it buys a few idle
/// invocations less, not a thousand dispatches more.
const DISPATCH_COST: u64 = 1024;

/// The shader's `Tile` uniform, field for field: the layer's geometry and
/// where one dispatch's tile is.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Tile {
    out_height: u32,
    out_width: u32,
    stride: u32,
    dilation: u32,
    channels: u32,
    kernel_height: u32,
    kernel_width: u32,
    strip_width: u32,
    has_bias: u32,
    block_vec4s: u32,
    /// Always 0: the shader ORs it, masked by a row number, into its loop
    /// bounds so that no driver specialises the shader for their values.
    zero: u32,
    input_base: u32,
    weight_base: u32,
    out_x: u32,
    out_y: u32,
    width: u32,
    rows: u32,
    first_filter: u32,
    filter_end: u32,
    activation: u32,
}

/// One compiled entry point and its bind group layout.
struct Kernel {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// The compiled fast convolution pipeline: the direct kernel's results (to
/// rounding) for the same inputs and layers, many times sooner (some 60
/// times on a software GPU, for a photo and 32 filters of 5×5).
pub struct FastConv {
    module: wgpu::ShaderModule,
    /// Bytes of one uniform window, as the shader declares it.
    window_bytes: u64,
    /// `conv2d_fast`, reading uniform windows.
    uniform: Kernel,
    /// `conv2d_fast_storage`, built the first time a layer needs it.
    storage: OnceLock<Kernel>,
}

/// How a run is cut into strips, tiles and chunks of filter blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Plan {
    /// Read strips and weight blocks from storage buffers: a window is too
    /// small for them.
    storage: bool,
    groups: u32,
    /// C/G.
    channels: u32,
    /// K/G.
    filters_per_group: u32,
    out_height: u32,
    out_width: u32,
    /// Input rows between consecutive output rows: the stride.
    stride: u32,
    /// Output columns per strip, a multiple of [`PIXELS`].
    strip_pixels: u32,
    /// Input values per channel in one strip row.
    strip_width: u32,
    /// Strips per group.
    strips: u32,
    /// Padded input rows each strip holds: all the output reads.
    strip_rows: u32,
    /// Output rows per tile.
    tile_rows: u32,
    /// Weight blocks per group: ceil(K/G / 16).
    blocks_per_group: u32,
    /// f32s per weight block: (1 + C/G·FH·FW)·16.
    block_len: u64,
    /// Weight blocks per dispatch.
    blocks_per_chunk: u32,
}

impl Plan {
    /// Lays out `spec` with an `out_height`×`out_width` output for windows
    /// of `window_floats` f32s bound at offsets aligned to `align_floats`.
    fn new(
        spec: &LayerSpec,
        out_height: u32,
        out_width: u32,
        window_floats: u64,
        align_floats: u64,
    ) -> Plan {
        let channels = spec.channels_per_group() as u64;
        let stride = spec.stride as u64;
        let (kernel_rows, kernel_cols) = spec.dilated_kernel();
        let strip_width = |pixels: u64| (pixels - 1) * stride + kernel_cols;
        let taps = spec.taps_per_output();
        let block_len = (1 + taps) * FILTERS as u64;
        let blocks_per_group = spec.filters_per_group().div_ceil(FILTERS);
        // A window is bound at the aligned offset at or below its data, so
        // it must hold up to `align_floats` more than the data.
        let room = window_floats.saturating_sub(align_floats);
        let out_pixels = out_width.next_multiple_of(PIXELS) as u64;

        // The strip width of least cost: the invocations run (a workgroup is
        // 64 pixels wide, so narrower strips leave some idle) plus the
        // dispatches. Wider strips fit fewer rows in a window.
        let mut best: Option<(u64, u64, u64)> = None; // (cost, strip pixels, tile rows)
        if block_len <= room {
            for pixels in (PIXELS as u64..=out_pixels.min(1024)).step_by(PIXELS as usize) {
                let rows_in_window = room / (channels * strip_width(pixels));
                if rows_in_window < kernel_rows {
                    break;
                }
                let mut tile_rows =
                    ((rows_in_window - kernel_rows) / stride + 1).min(out_height as u64);
                if tile_rows < out_height as u64 && tile_rows >= WORKGROUP_SIZE as u64 {
                    tile_rows -= tile_rows % WORKGROUP_SIZE as u64; // whole workgroups
                }
                let strips = (out_width as u64).div_ceil(pixels);
                let tiles = strips * (out_height as u64).div_ceil(tile_rows);
                let invocations = strips
                    * pixels.div_ceil(WORKGROUP_PIXELS as u64)
                    * WORKGROUP_SIZE as u64
                    * out_height as u64;
                let cost = invocations * taps + tiles * DISPATCH_COST;
                if best.is_none_or(|(least, _, _)| cost < least) {
                    best = Some((cost, pixels, tile_rows));
                }
            }
        }
        let (storage, strip_pixels, tile_rows) = match best {
            Some((_, pixels, rows)) => (false, pixels as u32, rows as u32),
            // One tile, the whole output, from storage buffers.
            None => (true, out_pixels as u32, out_height),
        };
        let blocks_per_chunk = if storage {
            blocks_per_group
        } else {
            ((room / block_len) as u32).min(blocks_per_group)
        };
        Plan {
            storage,
            groups: spec.groups,
            channels: channels as u32,
            filters_per_group: spec.filters_per_group(),
            out_height,
            out_width,
            stride: spec.stride,
            strip_pixels,
            strip_width: strip_width(strip_pixels as u64) as u32,
            strips: out_width.div_ceil(strip_pixels),
            strip_rows: ((out_height as u64 - 1) * stride + kernel_rows) as u32,
            tile_rows,
            blocks_per_group,
            block_len,
            blocks_per_chunk,
        }
    }

    /// f32s per strip row: the group's channels side by side.
    fn row_len(&self) -> u64 {
        self.channels as u64 * self.strip_width as u64
    }

    /// f32s in one strip.
    fn strip_len(&self) -> u64 {
        self.strip_rows as u64 * self.row_len()
    }

    /// f32s in all strips of all groups.
    fn input_len(&self) -> u64 {
        self.groups as u64 * self.strips as u64 * self.strip_len()
    }

    /// f32s in all weight blocks.
    fn weight_len(&self) -> u64 {
        self.groups as u64 * self.blocks_per_group as u64 * self.block_len
    }
}

impl FastConv {
    /// Compiles the shader and builds the uniform-window pipeline on `gpu`,
    /// then runs it once on a one-pixel layer: a GPU that compiles lazily,
    /// at the first dispatch (lavapipe does), compiles here rather than in
    /// the first run's compute time. One compilation serves every layer.
    pub fn new(gpu: &Gpu) -> Result<Self> {
        // The largest window the GPU binds, at most the 64 KiB the shader declares.
        let window_bytes = gpu
            .limits()
            .max_uniform_buffer_binding_size
            .min(MAX_WINDOW_BYTES)
            / 16
            * 16;
        let source = if window_bytes == MAX_WINDOW_BYTES {
            SHADER_SOURCE.to_string()
        } else {
            SHADER_SOURCE.replace(
                WINDOW_DECLARATION,
                &format!("const WINDOW_VEC4S: u32 = {}u;", window_bytes / 16),
            )
        };
        let fast = gpu.scoped("pipeline creation", || {
            let module = gpu
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some("conv2d_fast.wgsl"),
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                });
            let window = wgpu::BufferSize::new(window_bytes);
            let uniform = kernel(
                gpu,
                &module,
                "conv2d_fast",
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
            }
        })?;
        let pixel = Tensor3::zeros(1, 1, 1);
        let layer = Layer::new(LayerSpec::new(1, 1, 1), vec![0.0], vec![0.0])?;
        fast.run(gpu, &pixel, &layer)?;
        Ok(fast)
    }

    /// The storage-buffer kernel, compiled on first use.
    fn storage_kernel(&self, gpu: &Gpu) -> Result<&Kernel> {
        if let Some(kernel) = self.storage.get() {
            return Ok(kernel);
        }
        let built = gpu.scoped("pipeline creation", || {
            kernel(
                gpu,
                &self.module,
                "conv2d_fast_storage",
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

    /// Refuses a job whose buffers or dispatches exceed the device's limits,
    /// with a message that gives the sizes.
    fn check_limits(&self, gpu: &Gpu, plan: &Plan, output_bytes: u64) -> Result<()> {
        let input_bytes = plan.input_len() * 4;
        let weight_bytes = plan.weight_len() * 4;
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
        )
    }
}

impl ConvPipeline for FastConv {
    /// The contract of the direct kernel, and its results to rounding (the
    /// same sums in the same order, with fused multiply-adds).
    fn submit(
        &self,
        gpu: &Gpu,
        input: &Tensor3,
        layer: &Layer,
        slot: &mut OutputSlot,
    ) -> Result<InFlight> {
        let spec = &layer.spec;
        let (out_height, out_width) = layer.output_size_for(input)?;
        let output_bytes = spec.output_bytes(out_height, out_width);
        let align = gpu.limits().min_uniform_buffer_offset_alignment as u64;
        let plan = Plan::new(
            spec,
            out_height,
            out_width,
            self.window_bytes / 4,
            align.div_ceil(4),
        );
        self.check_limits(gpu, &plan, output_bytes)?;
        let kernel = if plan.storage {
            self.storage_kernel(gpu)?
        } else {
            &self.uniform
        };

        // Upload: strips, weight blocks and one tile per dispatch. A window
        // is always bound whole: zeros after the data keep the last ones
        // inside their buffers.
        let started = Instant::now();
        let tail = if plan.storage {
            0
        } else {
            self.window_bytes as usize / 4
        };
        let strips = pack_strips(input, spec, &plan, tail);
        let blocks = pack_weights(layer, &plan, tail);
        let geometry = Tile {
            out_height,
            out_width,
            stride: spec.stride,
            dilation: spec.dilation,
            channels: plan.channels,
            kernel_height: spec.kernel_height,
            kernel_width: spec.kernel_width,
            strip_width: plan.strip_width,
            has_bias: u32::from(!layer.bias.is_empty()),
            block_vec4s: (plan.block_len / 4) as u32,
            activation: spec.activation.code(),
            ..Default::default()
        };
        let (dispatches, tiles) = dispatches(&plan, &geometry, align);
        let buffers = slot.buffers(gpu, output_bytes)?;
        let bind_group = gpu.scoped("upload", || {
            let usage = if plan.storage {
                wgpu::BufferUsages::STORAGE
            } else {
                wgpu::BufferUsages::UNIFORM
            };
            let strip_buffer = buffer_init(
                gpu,
                "input strips [G,strip,y,C/G,x]",
                bytemuck::cast_slice(&strips),
                usage,
            );
            let block_buffer = buffer_init(
                gpu,
                "weight blocks [G,block,1+C/G·FH·FW,16]",
                bytemuck::cast_slice(&blocks),
                usage,
            );
            let tile_buffer = buffer_init(gpu, "tiles", &tiles, wgpu::BufferUsages::UNIFORM);
            let output = &buffers.0;
            let tile_entry = sized_entry(3, &tile_buffer, tile_size());
            let entries = if plan.storage {
                vec![
                    entry(2, output),
                    tile_entry,
                    entry(4, &strip_buffer),
                    entry(5, &block_buffer),
                ]
            } else {
                let window = wgpu::BufferSize::new(self.window_bytes);
                vec![
                    sized_entry(0, &strip_buffer, window),
                    sized_entry(1, &block_buffer, window),
                    entry(2, output),
                    tile_entry,
                ]
            };
            gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("conv2d_fast"),
                layout: &kernel.layout,
                entries: &entries,
            })
        })?;

        // Compute: one dispatch per tile and chunk of filter blocks.
        let shape = [spec.filters, out_height, out_width];
        submit_run(gpu, "conv2d_fast", buffers, shape, started, |pass| {
            pass.set_pipeline(&kernel.pipeline);
            for dispatch in &dispatches {
                pass.set_bind_group(0, &bind_group, dispatch.offsets(plan.storage));
                let [x, y, z] = dispatch.workgroups;
                pass.dispatch_workgroups(x, y, z);
            }
        })
    }
}

/// One dispatch: its dynamic offsets (input window, weight window, tile)
/// and its workgroup counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dispatch {
    offsets: [u32; 3],
    workgroups: [u32; 3],
}

impl Dispatch {
    /// The dynamic offsets the bind group takes: all three for the uniform
    /// kernel, the tile's alone for the storage one.
    fn offsets(&self, storage: bool) -> &[u32] {
        if storage {
            &self.offsets[2..]
        } else {
            &self.offsets
        }
    }
}

/// Every dispatch of a run, in order, and the bytes of the tile buffer they
/// index: `geometry` completed with each dispatch's tile, one per
/// `align`-byte slot.
fn dispatches(plan: &Plan, geometry: &Tile, align: u64) -> (Vec<Dispatch>, Vec<u8>) {
    let tile_stride = (std::mem::size_of::<Tile>() as u64).next_multiple_of(align) as usize;
    // A uniform window is bound at the aligned offset at or below the first
    // f32 it is for; the shader's index of that f32 is the remainder.
    // Storage buffers are bound whole.
    let window = |start: u64| -> (u32, u32) {
        if plan.storage {
            (0, start as u32)
        } else {
            let offset = start * 4 / align * align;
            (offset as u32, (start - offset / 4) as u32)
        }
    };
    let mut dispatches = Vec::new();
    let mut tiles = Vec::new();
    for group in 0..plan.groups {
        for strip in 0..plan.strips {
            let out_x = strip * plan.strip_pixels;
            let width = plan
                .strip_pixels
                .min((plan.out_width - out_x).next_multiple_of(PIXELS));
            let strip_start = (group * plan.strips + strip) as u64 * plan.strip_len();
            for out_y in (0..plan.out_height).step_by(plan.tile_rows as usize) {
                let rows = plan.tile_rows.min(plan.out_height - out_y);
                let band_start = strip_start + out_y as u64 * plan.stride as u64 * plan.row_len();
                let (input_offset, input_base) = window(band_start);
                for first_block in
                    (0..plan.blocks_per_group).step_by(plan.blocks_per_chunk as usize)
                {
                    let blocks = plan
                        .blocks_per_chunk
                        .min(plan.blocks_per_group - first_block);
                    let chunk_start =
                        (group * plan.blocks_per_group + first_block) as u64 * plan.block_len;
                    let (weight_offset, weight_base) = window(chunk_start);
                    let tile = Tile {
                        input_base,
                        weight_base: weight_base / 4,
                        out_x,
                        out_y,
                        width,
                        rows,
                        first_filter: group * plan.filters_per_group + first_block * FILTERS,
                        filter_end: (group + 1) * plan.filters_per_group,
                        ..*geometry
                    };
                    let tile_offset = tiles.len() as u32;
                    tiles.extend_from_slice(bytemuck::bytes_of(&tile));
                    tiles.resize(tiles.len().next_multiple_of(tile_stride), 0);
                    dispatches.push(Dispatch {
                        offsets: [input_offset, weight_offset, tile_offset],
                        workgroups: [
                            width.div_ceil(WORKGROUP_PIXELS),
                            rows.div_ceil(WORKGROUP_SIZE),
                            blocks,
                        ],
                    });
                }
            }
        }
    }
    (dispatches, tiles)
}

/// The input cut into the plan's strips, `[G, strip, y, C/G, x]`, zero
/// padding included, followed by `tail` zeros.
///
/// Strip `j` holds, for every padded input row `y` the output reads and
/// every channel of the group, the padded columns
/// `[j·strip_pixels·S, j·strip_pixels·S + strip_width)`.
fn pack_strips(input: &Tensor3, spec: &LayerSpec, plan: &Plan, tail: usize) -> Vec<f32> {
    let mut strips = vec![0.0f32; plan.input_len() as usize + tail];
    let (height, width) = (input.height as i64, input.width as i64);
    let (channels, strip_rows) = (plan.channels as usize, plan.strip_rows as usize);
    let strip_width = plan.strip_width as usize;
    let rows = strips[..plan.input_len() as usize].par_chunks_exact_mut(strip_width);
    // Row r of the strips is (group, strip, y, c), nested in that order.
    rows.enumerate().for_each(|(r, row)| {
        let c = r % channels;
        let y = (r / channels) % strip_rows;
        let strip = (r / (channels * strip_rows)) % plan.strips as usize;
        let group = r / (channels * strip_rows * plan.strips as usize);
        let in_y = y as i64 - spec.padding.top as i64;
        if in_y < 0 || in_y >= height {
            return; // a padding row: zeros
        }
        let first_x =
            strip as i64 * plan.strip_pixels as i64 * spec.stride as i64 - spec.padding.left as i64;
        // The columns of this strip row inside the image; the rest are zeros.
        let (from, to) = (first_x.max(0), (first_x + strip_width as i64).min(width));
        if from < to {
            let plane = input.plane((group * channels + c) as u32);
            let source = &plane[(in_y * width) as usize..][from as usize..to as usize];
            row[(from - first_x) as usize..(to - first_x) as usize].copy_from_slice(source);
        }
    });
    strips
}

/// The weights and biases regrouped into blocks of 16 filters of one group,
/// `[G, block, 1 + C/G·FH·FW, 16]`: the block's 16 biases, then the 16
/// weights of each tap `(c, ky, kx)` in order, zeros for filters past the
/// end of the group (and for the biases of a layer without). Followed by
/// `tail` zeros.
fn pack_weights(layer: &Layer, plan: &Plan, tail: usize) -> Vec<f32> {
    let taps = layer.spec.taps_per_output() as usize;
    let filters = FILTERS as usize;
    let (per_group, blocks_per_group) = (
        plan.filters_per_group as usize,
        plan.blocks_per_group as usize,
    );
    let mut blocks = vec![0.0f32; plan.weight_len() as usize + tail];
    let all = blocks[..plan.weight_len() as usize].chunks_exact_mut(plan.block_len as usize);
    for (b, block) in all.enumerate() {
        let group = b / blocks_per_group;
        let first = (b % blocks_per_group) * filters;
        for f in 0..filters.min(per_group - first) {
            let k = group * per_group + first + f;
            if !layer.bias.is_empty() {
                block[f] = layer.bias[k];
            }
            for (t, &w) in layer.weight[k * taps..][..taps].iter().enumerate() {
                block[(1 + t) * filters + f] = w;
            }
        }
    }
    blocks
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

/// The size of the shader's `Tile`, as a binding size.
fn tile_size() -> Option<wgpu::BufferSize> {
    wgpu::BufferSize::new(std::mem::size_of::<Tile>() as u64)
}

/// A uniform binding of `size` bytes at a dynamic offset.
///
/// Every uniform of the fast kernel moves with each dispatch: a layout that
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
fn kernel(
    gpu: &Gpu,
    module: &wgpu::ShaderModule,
    entry_point: &str,
    entries: &[wgpu::BindGroupLayoutEntry],
) -> Kernel {
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
            cache: None,
        });
    Kernel { pipeline, layout }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::Padding;

    /// 64 KiB windows at 32-byte offsets, as lavapipe has them.
    fn plan(spec: &LayerSpec, height: u32, width: u32) -> Plan {
        let (out_height, out_width) = spec.output_size(height, width).unwrap();
        Plan::new(spec, out_height, out_width, 16384, 8)
    }

    #[test]
    fn the_shader_declares_the_window_the_host_replaces() {
        assert!(SHADER_SOURCE.contains(WINDOW_DECLARATION));
        assert_eq!(std::mem::size_of::<Tile>(), 80);
    }

    #[test]
    fn an_rgb_photo_gets_uniform_tiles_whose_input_fits_a_window() {
        let spec = LayerSpec::new(3, 32, 5);
        let plan = plan(&spec, 768, 1024);
        assert!(!plan.storage);
        assert_eq!(plan.strip_pixels % PIXELS, 0);
        assert_eq!((plan.blocks_per_group, plan.blocks_per_chunk), (2, 2));
        let in_rows = (plan.tile_rows as u64 - 1) + 5;
        assert!(in_rows * plan.row_len() + 8 <= 16384);
        assert_eq!(plan.strip_width, plan.strip_pixels + 4);
    }

    #[test]
    fn large_kernels_fall_back_to_storage_buffers() {
        // One block of 16 filters of 64·11·11 weights is 484 KiB.
        let spec = LayerSpec::new(64, 16, 11);
        assert!(plan(&spec, 40, 40).storage);
    }

    #[test]
    fn many_filters_are_split_into_chunks_that_fit_a_window() {
        let spec = LayerSpec::new(16, 256, 3);
        let plan = plan(&spec, 30, 30);
        assert!(!plan.storage);
        assert!(plan.blocks_per_chunk < plan.blocks_per_group);
        assert!(plan.blocks_per_chunk as u64 * plan.block_len + 8 <= 16384);
    }

    #[test]
    fn every_dispatch_reads_inside_its_windows() {
        let spec = LayerSpec {
            stride: 3,
            dilation: 2,
            padding: Padding::uniform(2),
            groups: 3,
            ..LayerSpec::new(6, 9, 4)
        };
        let plan = plan(&spec, 300, 500);
        let (dispatches, tiles) = dispatches(&plan, &Tile::default(), 32);
        assert!(dispatches.len() > 3);
        for (dispatch, tile) in dispatches.iter().zip(tiles.chunks(96)) {
            let tile: Tile = bytemuck::pod_read_unaligned(&tile[..80]);
            let in_rows = (tile.rows - 1) * spec.stride + spec.dilated_kernel().0 as u32;
            let last_input = tile.input_base as u64 + in_rows as u64 * plan.row_len();
            assert!(last_input <= 16384, "{tile:?}");
            let last_weight =
                tile.weight_base as u64 * 4 + dispatch.workgroups[2] as u64 * plan.block_len;
            assert!(last_weight <= 16384, "{tile:?}");
            assert_eq!(dispatch.offsets[0] % 32, 0);
            assert_eq!(dispatch.offsets[2] % 32, 0);
        }
    }

    #[test]
    fn strips_hold_the_padded_input() {
        let spec = LayerSpec {
            padding: Padding {
                top: 1,
                bottom: 0,
                left: 2,
                right: 1,
            },
            stride: 2,
            ..LayerSpec::new(2, 1, 3)
        };
        let input = Tensor3::from_vec(2, 5, 7, (0..70).map(|i| i as f32 + 1.0).collect());
        let (out_height, out_width) = spec.output_size(5, 7).unwrap();
        let plan = Plan::new(&spec, out_height, out_width, 16384, 8);
        let strips = pack_strips(&input, &spec, &plan, 0);
        let padded = |c: u32, y: i64, x: i64| -> f32 {
            let (y, x) = (y - 1, x - 2);
            if (0..5).contains(&y) && (0..7).contains(&x) {
                input.get(c, y as u32, x as u32)
            } else {
                0.0
            }
        };
        let (width, rows) = (plan.strip_width as usize, plan.strip_rows as usize);
        for (i, &value) in strips.iter().enumerate() {
            let x = i % width;
            let c = (i / width) % 2;
            let y = (i / width / 2) % rows;
            let strip = i / width / 2 / rows;
            let first_x = (strip * plan.strip_pixels as usize * 2) as i64;
            assert_eq!(value, padded(c as u32, y as i64, first_x + x as i64), "{i}");
        }
    }
}
