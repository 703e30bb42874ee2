//! The fast shader's memory layout, with no GPU in it: how a run is cut into
//! strips, tiles and chunks of filter blocks ([`Plan`]), the input strips
//! and weight blocks the shader reads ([`pack_strips`], [`pack_weights`]),
//! and the [`Tile`] uniform of every [`Dispatch`] ([`dispatches`]).
//!
//! Lengths are counted in f32s unless a name says bytes. The window size and
//! the uniform offset alignment come in as plain numbers, so that all of it
//! is tested without a device. Sizes are computed in u64: a stride may be as
//! large as `u32::MAX`, and a size that does not fit the shader's 32-bit
//! indices is refused, never wrapped.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::layer::{Layer, LayerSpec};
use crate::tensor::Tensor3;

/// Output pixels per invocation along x (`PIXELS` in the shader).
pub(super) const PIXELS: u32 = 8;
/// Filters per invocation: one weight block (`FILTERS` in the shader).
pub(super) const FILTERS: u32 = 16;
/// Workgroup size in x (pixel blocks) and y (rows), as declared in the shader.
pub(super) const WORKGROUP_SIZE: u32 = 8;
/// Output columns one workgroup covers.
pub(super) const WORKGROUP_PIXELS: u32 = WORKGROUP_SIZE * PIXELS;
/// The uniform window the shader declares, in bytes (64 KiB, 4096 vec4s);
/// the host declares a smaller one on a GPU whose uniform bindings are
/// smaller.
pub(super) const MAX_WINDOW_BYTES: u64 = 65536;
/// What one dispatch costs, in invocation-taps (one invocation running one
/// tap of its loop), when choosing the tile shape: it buys a few idle
/// invocations less, not a thousand dispatches more.
const DISPATCH_COST: u64 = 1024;

/// The shader's `Tile` uniform, field for field: the layer's geometry and
/// where one dispatch's tile is. All counts in elements.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct Tile {
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
    /// 1: the workgroups' x runs along the tile's rows and y along its
    /// blocks of pixels (a narrow tile read from storage buffers, see
    /// [`LANES_ALONG_ROWS_WIDTH`]); 0: the other way round.
    lanes_along_rows: u32,
}

/// Tiles read from storage buffers and at most this many output pixels
/// wide (from uniform windows: one block of 8 pixels) put a workgroup's
/// consecutive invocations on consecutive rows rather than on consecutive
/// blocks of 8 pixels: a software GPU runs 8 invocations side by side, and
/// a tile 7 pixels wide would leave 7 of each 8 idle. Wider tiles keep
/// neighbouring invocations on neighbouring pixels, whose reads lie close
/// together. Measured on lavapipe, ResNet-18's convs: on 7×7 maps of 512
/// channels 80 → 20 ms, on 28×28 maps of 128 channels 30 → 19 ms; the
/// other way, 56×56 maps of 64 channels went 23 → 74 ms, and a strided
/// conv to 28×28 from uniform windows 26 → 83 ms; RegNetY-400MF's 1×1
/// convs to 7×7 from uniform windows, 23–44 ms → out of its slowest.
pub(super) const LANES_ALONG_ROWS_WIDTH: u32 = 32;

/// How a run is cut into strips, tiles and chunks of filter blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Plan {
    /// Read strips and weight blocks from storage buffers: a window is too
    /// small for them.
    pub(super) storage: bool,
    pub(super) groups: u32,
    /// C/G.
    pub(super) channels: u32,
    /// K/G.
    pub(super) filters_per_group: u32,
    pub(super) out_height: u32,
    pub(super) out_width: u32,
    /// Input rows between consecutive output rows: the stride.
    pub(super) stride: u32,
    /// Output columns per strip, a multiple of [`PIXELS`].
    pub(super) strip_pixels: u32,
    /// Input values per channel in one strip row: the columns the strip's
    /// existing output pixels read, `(min(strip_pixels, OW) − 1)·S + D·(FW − 1) + 1`.
    pub(super) strip_width: u32,
    /// Strips per group.
    pub(super) strips: u32,
    /// Padded input rows each strip holds: all the output reads,
    /// `(OH − 1)·S + D·(FH − 1) + 1`.
    pub(super) strip_rows: u32,
    /// Output rows per tile.
    pub(super) tile_rows: u32,
    /// Weight blocks per group: ceil(K/G / 16).
    pub(super) blocks_per_group: u32,
    /// f32s per weight block: (1 + C/G·FH·FW)·16.
    pub(super) block_len: u64,
    /// Weight blocks per dispatch.
    pub(super) blocks_per_chunk: u32,
}

/// A layer's output and window as the search for the tile shape sees them,
/// in u64 so that no product overflows.
struct Extent {
    /// C/G.
    channels: u64,
    /// S, in input pixels.
    stride: u64,
    /// Input rows one output row reads: the dilated kernel's height.
    kernel_rows: u64,
    /// Input columns one output pixel reads: the dilated kernel's width.
    kernel_cols: u64,
    /// OH.
    out_height: u64,
    /// OW.
    out_width: u64,
    /// Multiply-adds per output value: C/G·FH·FW.
    taps: u64,
}

impl Extent {
    /// Input columns (per channel and row) that a strip of `pixels` output
    /// columns reads. Only pixels that exist count: the shader makes a pixel
    /// past the right edge of the output read the columns of the row's last
    /// pixel, so a strip wider than the output (OW < 8, or a huge stride)
    /// holds no columns of its own for it.
    fn strip_width(&self, pixels: u64) -> u64 {
        (pixels.min(self.out_width) - 1)
            .saturating_mul(self.stride)
            .saturating_add(self.kernel_cols)
    }

    /// Padded input rows that `rows` consecutive output rows read.
    fn input_rows(&self, rows: u64) -> u64 {
        (rows - 1)
            .saturating_mul(self.stride)
            .saturating_add(self.kernel_rows)
    }

    /// What strips of `pixels` columns and tiles of `tile_rows` rows cost:
    /// the invocations run (a workgroup is 64 pixels wide, so narrower
    /// strips leave some idle) times their taps, plus the dispatches.
    fn cost(&self, pixels: u64, tile_rows: u64) -> u64 {
        let strips = self.out_width.div_ceil(pixels);
        let tiles = strips.saturating_mul(self.out_height.div_ceil(tile_rows));
        let invocations = strips
            .saturating_mul(pixels.div_ceil(WORKGROUP_PIXELS as u64))
            .saturating_mul(WORKGROUP_SIZE as u64)
            .saturating_mul(self.out_height);
        invocations
            .saturating_mul(self.taps)
            .saturating_add(tiles.saturating_mul(DISPATCH_COST))
    }

    /// The strip width (output columns, a multiple of [`PIXELS`]) and tile
    /// height (output rows) of least cost whose tile input fits `room` f32s,
    /// or `None` when not even one row of 8 pixels fits. Wider strips fit
    /// fewer rows in a window.
    fn cheapest_tiles(&self, room: u64) -> Option<(u64, u64)> {
        let out_pixels = self.out_width.next_multiple_of(PIXELS as u64);
        let mut best: Option<(u64, u64, u64)> = None; // (cost, strip pixels, tile rows)
        for pixels in (PIXELS as u64..=out_pixels.min(1024)).step_by(PIXELS as usize) {
            let row_len = self.channels.saturating_mul(self.strip_width(pixels));
            let rows_in_window = room / row_len;
            if rows_in_window < self.kernel_rows {
                break;
            }
            let mut tile_rows =
                ((rows_in_window - self.kernel_rows) / self.stride + 1).min(self.out_height);
            if tile_rows < self.out_height && tile_rows >= WORKGROUP_SIZE as u64 {
                tile_rows -= tile_rows % WORKGROUP_SIZE as u64; // whole workgroups
            }
            let cost = self.cost(pixels, tile_rows);
            if best.is_none_or(|(least, _, _)| cost < least) {
                best = Some((cost, pixels, tile_rows));
            }
        }
        best.map(|(_, pixels, rows)| (pixels, rows))
    }
}

impl Plan {
    /// Lays out `spec` with an `out_height`×`out_width` output (both at
    /// least 1) for windows of `window_floats` f32s bound at offsets aligned
    /// to `align_floats` f32s.
    ///
    /// Fails with [`Error::GpuLimit`] when a strip is too large for the
    /// shader's 32-bit indices.
    pub(super) fn new(
        spec: &LayerSpec,
        out_height: u32,
        out_width: u32,
        window_floats: u64,
        align_floats: u64,
    ) -> Result<Plan> {
        let (kernel_rows, kernel_cols) = spec.dilated_kernel();
        let extent = Extent {
            channels: spec.channels_per_group() as u64,
            stride: spec.stride as u64,
            kernel_rows,
            kernel_cols,
            out_height: out_height as u64,
            out_width: out_width as u64,
            taps: spec.taps_per_output(),
        };
        let block_len = (1 + extent.taps) * FILTERS as u64;
        let blocks_per_group = spec.filters_per_group().div_ceil(FILTERS);
        // A window is bound at the aligned offset at or below its data, so
        // it must hold up to `align_floats` more than the data.
        let room = window_floats.saturating_sub(align_floats);
        let tiles = if block_len <= room {
            extent.cheapest_tiles(room)
        } else {
            None
        };
        let (storage, strip_pixels, tile_rows) = match tiles {
            Some((pixels, rows)) => (false, pixels, rows),
            // One tile, the whole output, from storage buffers.
            None => (
                true,
                extent.out_width.next_multiple_of(PIXELS as u64),
                extent.out_height,
            ),
        };
        let blocks_per_chunk = if storage {
            blocks_per_group
        } else {
            ((room / block_len) as u32).min(blocks_per_group)
        };
        Ok(Plan {
            storage,
            groups: spec.groups,
            channels: spec.channels_per_group(),
            filters_per_group: spec.filters_per_group(),
            out_height,
            out_width,
            stride: spec.stride,
            strip_pixels: fits_u32(strip_pixels, "strip width in output pixels")?,
            strip_width: fits_u32(extent.strip_width(strip_pixels), "strip width")?,
            strips: fits_u32(extent.out_width.div_ceil(strip_pixels), "strip count")?,
            strip_rows: fits_u32(extent.input_rows(extent.out_height), "strip height")?,
            tile_rows: fits_u32(tile_rows, "tile height")?,
            blocks_per_group,
            block_len,
            blocks_per_chunk,
        })
    }

    /// How the strips are laid out, for packing them on the GPU.
    pub(super) fn strip_layout(&self) -> crate::gpu::resident::StripLayout {
        crate::gpu::resident::StripLayout {
            len: self.input_len(),
            channels: self.channels,
            strip_rows: self.strip_rows,
            strips: self.strips,
            strip_width: self.strip_width,
            strip_pixels: self.strip_pixels,
        }
    }

    /// f32s per strip row: the group's channels side by side.
    pub(super) fn row_len(&self) -> u64 {
        self.channels as u64 * self.strip_width as u64
    }

    /// f32s in one strip.
    pub(super) fn strip_len(&self) -> u64 {
        (self.strip_rows as u64).saturating_mul(self.row_len())
    }

    /// f32s in all strips of all groups.
    pub(super) fn input_len(&self) -> u64 {
        (self.groups as u64 * self.strips as u64).saturating_mul(self.strip_len())
    }

    /// f32s in all weight blocks.
    pub(super) fn weight_len(&self) -> u64 {
        (self.groups as u64 * self.blocks_per_group as u64).saturating_mul(self.block_len)
    }

    /// The [`Tile`] fields every dispatch of `layer` shares: the layer's
    /// geometry and this plan's strip width. The tile's place is filled in
    /// by [`dispatches`].
    pub(super) fn geometry(&self, layer: &Layer) -> Result<Tile> {
        let spec = &layer.spec;
        Ok(Tile {
            out_height: self.out_height,
            out_width: self.out_width,
            stride: spec.stride,
            dilation: spec.dilation,
            channels: self.channels,
            kernel_height: spec.kernel_height,
            kernel_width: spec.kernel_width,
            strip_width: self.strip_width,
            has_bias: u32::from(!layer.bias.is_empty()),
            block_vec4s: fits_u32(self.block_len / 4, "weight block")?,
            activation: spec.activation.code(),
            ..Default::default()
        })
    }

    /// Where the uniform window for the data starting at f32 `start` is
    /// bound: its byte offset, aligned down to `align` bytes, and the index
    /// of `start` inside the window. Storage buffers are bound whole: offset
    /// 0, and `start` itself.
    fn window(&self, start: u64, align: u64) -> Result<(u32, u32)> {
        if self.storage {
            return Ok((0, fits_u32(start, "storage buffer index")?));
        }
        let offset = start * 4 / align * align;
        Ok((
            fits_u32(offset, "uniform window offset")?,
            fits_u32(start - offset / 4, "uniform window index")?,
        ))
    }

    /// The dispatch of one tile (`group`, `strip`, first output row `out_y`)
    /// and chunk of filter blocks (from `first_block`): its input and
    /// weight window offsets, its workgroups, and its [`Tile`] uniform,
    /// `geometry` completed.
    fn dispatch(&self, geometry: &Tile, align: u64, at: [u32; 4]) -> Result<(Dispatch, Tile)> {
        let [group, strip, out_y, first_block] = at;
        let out_x = strip * self.strip_pixels;
        // The strip's columns, or the output's last ones rounded up to whole
        // blocks of pixels (in u64: OW may be close to u32::MAX).
        let left = (self.out_width - out_x) as u64;
        let width = (self.strip_pixels as u64).min(left.next_multiple_of(PIXELS as u64)) as u32;
        let rows = self.tile_rows.min(self.out_height - out_y);
        let strip_start = (group as u64 * self.strips as u64 + strip as u64) * self.strip_len();
        let band_start = strip_start + out_y as u64 * self.stride as u64 * self.row_len();
        let (input_offset, input_base) = self.window(band_start, align)?;
        let blocks = self
            .blocks_per_chunk
            .min(self.blocks_per_group - first_block);
        let chunk_start =
            (group as u64 * self.blocks_per_group as u64 + first_block as u64) * self.block_len;
        let (weight_offset, weight_base) = self.window(chunk_start, align)?;
        let along_rows = match self.storage {
            true => width <= LANES_ALONG_ROWS_WIDTH,
            false => width <= PIXELS,
        };
        let tile = Tile {
            input_base,
            weight_base: weight_base / 4,
            out_x,
            out_y,
            width,
            rows,
            first_filter: group * self.filters_per_group + first_block * FILTERS,
            filter_end: (group + 1) * self.filters_per_group,
            lanes_along_rows: along_rows as u32,
            ..*geometry
        };
        let (across, down) = (
            width.div_ceil(WORKGROUP_PIXELS),
            rows.div_ceil(WORKGROUP_SIZE),
        );
        let dispatch = Dispatch {
            offsets: [input_offset, weight_offset, 0],
            workgroups: match along_rows {
                true => [down, across, blocks],
                false => [across, down, blocks],
            },
        };
        Ok((dispatch, tile))
    }
}

/// `value` as a u32, or [`Error::GpuLimit`] naming `what` when the
/// shader's 32-bit arithmetic cannot hold it.
fn fits_u32(value: u64, what: &str) -> Result<u32> {
    u32::try_from(value).map_err(|_| {
        Error::GpuLimit(format!(
            "the fast shader's {what} would be {value}, more than its 32-bit indices reach; \
             use a smaller photo or padding, or --backend cpu"
        ))
    })
}

/// One dispatch: its dynamic offsets (input window, weight window, tile),
/// in bytes, and its workgroup counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Dispatch {
    pub(super) offsets: [u32; 3],
    pub(super) workgroups: [u32; 3],
}

impl Dispatch {
    /// The dynamic offsets the bind group takes: all three for the uniform
    /// entry point, the tile's alone for the storage one.
    pub(super) fn offsets(&self, storage: bool) -> &[u32] {
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
///
/// Fails with [`Error::GpuLimit`] when an offset does not fit 32 bits.
pub(super) fn dispatches(
    plan: &Plan,
    geometry: &Tile,
    align: u64,
) -> Result<(Vec<Dispatch>, Vec<u8>)> {
    let tile_stride = (std::mem::size_of::<Tile>() as u64).next_multiple_of(align) as usize;
    let mut dispatches = Vec::new();
    let mut tiles = Vec::new();
    for group in 0..plan.groups {
        for strip in 0..plan.strips {
            for out_y in (0..plan.out_height).step_by(plan.tile_rows as usize) {
                let chunks = (0..plan.blocks_per_group).step_by(plan.blocks_per_chunk as usize);
                for first_block in chunks {
                    let at = [group, strip, out_y, first_block];
                    let (mut dispatch, tile) = plan.dispatch(geometry, align, at)?;
                    dispatch.offsets[2] = fits_u32(tiles.len() as u64, "tile buffer offset")?;
                    tiles.extend_from_slice(bytemuck::bytes_of(&tile));
                    tiles.resize(tiles.len().next_multiple_of(tile_stride), 0);
                    dispatches.push(dispatch);
                }
            }
        }
    }
    Ok((dispatches, tiles))
}

/// The input cut into the plan's strips, `[G, strip, y, C/G, x]`, zero
/// padding included, followed by `tail` zeros.
///
/// Strip `j` holds, for every padded input row `y` the output reads and
/// every channel of the group, the padded columns
/// `[j·strip_pixels·S, j·strip_pixels·S + strip_width)`.
pub(super) fn pack_strips(input: &Tensor3, spec: &LayerSpec, plan: &Plan, tail: usize) -> Vec<f32> {
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
        // The strip's first output column is an existing pixel, so its
        // input column is inside the padded row: no overflow.
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
pub(super) fn pack_weights(layer: &Layer, plan: &Plan, tail: usize) -> Vec<f32> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::fast::source::SHADER_SOURCE;
    use crate::gpu::reflect::{rust_struct, wgsl_struct};
    use crate::layer::Padding;

    /// 64 KiB windows at 32-byte offsets, as lavapipe has them.
    fn plan(spec: &LayerSpec, height: u32, width: u32) -> Plan {
        let (out_height, out_width) = spec.output_size(height, width).unwrap();
        Plan::new(spec, out_height, out_width, 16384, 8).unwrap()
    }

    #[test]
    fn tile_matches_the_shaders_struct() {
        let host = rust_struct!(Tile {
            out_height,
            out_width,
            stride,
            dilation,
            channels,
            kernel_height,
            kernel_width,
            strip_width,
            has_bias,
            block_vec4s,
            zero,
            input_base,
            weight_base,
            out_x,
            out_y,
            width,
            rows,
            first_filter,
            filter_end,
            activation,
            lanes_along_rows,
        });
        assert_eq!(host, wgsl_struct(SHADER_SOURCE, "Tile"));
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
    fn a_stride_wider_than_the_photo_needs_one_kernel_of_input() {
        // A 1×1 output: the strip holds the window of its one pixel, not
        // 7 strides more for the 7 pixels of its block that do not exist.
        for stride in [8, 1000, u32::MAX] {
            let spec = LayerSpec {
                stride,
                ..LayerSpec::new(3, 4, 3)
            };
            let plan = plan(&spec, 9, 7);
            assert_eq!((plan.out_height, plan.out_width), (1, 1));
            assert!(!plan.storage, "{plan:?}");
            assert_eq!((plan.strip_width, plan.strip_rows), (3, 3), "{plan:?}");
            assert_eq!(plan.input_len(), 27);
            let (dispatches, _) = dispatches(&plan, &Tile::default(), 32).unwrap();
            assert_eq!(dispatches.len(), 1);
        }
    }

    #[test]
    fn strips_hold_the_columns_of_the_pixels_that_exist() {
        // Stride 5, kernel 3 dilated by 2 (5 columns wide), and output
        // widths on both sides of one block of 8 pixels.
        for width in [5, 10, 25, 40, 45, 50, 200] {
            let spec = LayerSpec {
                stride: 5,
                dilation: 2,
                ..LayerSpec::new(3, 4, 3)
            };
            let plan = plan(&spec, 9, width);
            let pixels = plan.strip_pixels.min(plan.out_width);
            assert_eq!(plan.strip_width, (pixels - 1) * 5 + 5, "{plan:?}");
        }
    }

    #[test]
    fn a_strip_too_tall_for_32_bit_indices_is_refused() {
        // u32::MAX output rows of a kernel 2 rows tall read 2^32 input rows.
        let spec = LayerSpec {
            kernel_height: 2,
            ..LayerSpec::new(1, 1, 1)
        };
        let error = Plan::new(&spec, u32::MAX, 1, 16384, 8).unwrap_err();
        assert!(matches!(error, Error::GpuLimit(_)), "{error}");
    }

    /// Follows the shader's index arithmetic for every invocation of every
    /// dispatch of `spec` over a `height`×`width` input, for the taps that
    /// reach furthest (last channel, last row and column of the kernel), and
    /// checks that every pixel reads inside its strip row, its strip and its
    /// window, with indices that fit 32 bits.
    fn assert_reads_inside(spec: &LayerSpec, height: u32, width: u32) {
        let plan = plan(spec, height, width);
        let (dispatches, tiles) = dispatches(&plan, &Tile::default(), 32).unwrap();
        let slot = (std::mem::size_of::<Tile>() as u64).next_multiple_of(32) as usize;
        let stride = spec.stride as u64;
        let (kernel_rows, kernel_cols) = spec.dilated_kernel();
        for (dispatch, tile) in dispatches.iter().zip(tiles.chunks(slot)) {
            let tile: Tile = bytemuck::pod_read_unaligned(&tile[..size_of::<Tile>()]);
            let end = if plan.storage {
                plan.input_len()
            } else {
                16384
            };
            assert_eq!(
                dispatch.workgroups[0],
                tile.width.div_ceil(WORKGROUP_PIXELS)
            );
            for x in (0..tile.width as u64).step_by(PIXELS as usize) {
                let last = (plan.out_width - tile.out_x) as u64 - x - 1;
                for row in 0..tile.rows as u64 {
                    let strip_row = (tile.out_y as u64 + row) * stride + kernel_rows - 1;
                    assert!(strip_row < plan.strip_rows as u64, "{tile:?}");
                    for p in 0..PIXELS as u64 {
                        let column = (x + p.min(last)) * stride + kernel_cols - 1;
                        assert!(column < plan.strip_width as u64, "{spec:?} {tile:?} {p}");
                        let row_start = (row * stride + (kernel_rows - 1)) * plan.channels as u64
                            + (plan.channels as u64 - 1);
                        let i = tile.input_base as u64 + row_start * plan.strip_width as u64;
                        let i = i + x * stride + p.min(last) * stride + (kernel_cols - 1);
                        assert!(i < end && i < 1 << 32, "{spec:?} {tile:?} reads {i}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_pixel_reads_inside_its_strip() {
        let geometry = |stride, padding, dilation, kernel| LayerSpec {
            stride,
            padding: Padding::uniform(padding),
            dilation,
            ..LayerSpec::new(3, 5, kernel)
        };
        assert_reads_inside(&geometry(u32::MAX, 0, 1, 3), 9, 7);
        assert_reads_inside(&geometry(40, 2, 1, 3), 9, 7);
        assert_reads_inside(&geometry(3, 2, 2, 3), 150, 300);
        assert_reads_inside(&geometry(1, 1, 1, 5), 40, 73);
        // Output widths 2 to 9 on a wide photo: (300 − 3) / stride + 1.
        for out_width in 2..=9u32 {
            let stride = 297 / (out_width - 1);
            assert_reads_inside(&geometry(stride, 0, 1, 3), 10, 300);
        }
        // The storage fallback: one tile over the whole output.
        assert_reads_inside(&geometry(2, 0, 1, 11), 40, 45);
        let grouped = LayerSpec {
            groups: 3,
            ..geometry(3, 2, 2, 4)
        };
        assert_reads_inside(&grouped, 300, 500);
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
        let (dispatches, tiles) = dispatches(&plan, &Tile::default(), 32).unwrap();
        assert!(dispatches.len() > 3);
        for (dispatch, tile) in dispatches.iter().zip(tiles.chunks(96)) {
            let tile: Tile = bytemuck::pod_read_unaligned(&tile[..size_of::<Tile>()]);
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
        let plan = plan(&spec, 5, 7);
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
