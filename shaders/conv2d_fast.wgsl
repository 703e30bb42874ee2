// conv2d_fast.wgsl: the fast shader. The same sums as conv2d_direct.wgsl,
// reorganised so that every value read from memory feeds many multiply-adds.
//
// WHAT ONE INVOCATION COMPUTES
//
// An 8×16 register block: PIXELS = 8 adjacent output pixels of one output
// row, for FILTERS = 16 filters of one group (a "filter block"):
//
//   for c < C/G, ky < FH, kx < FW:                         (runtime loops)
//       v[p] = input under tap (c, ky, kx) of pixel p, p < 8      (8 loads)
//       w[k] = weight[k, c, ky, kx], k < 16                        (4 vec4 loads)
//       acc[k][p] += v[p] · w[k]                                   (128 multiply-adds)
//   output[k, oy, ox + p] = activation(acc[k][p] (+ bias[k]))
//
// The direct shader loads one input value and one weight per multiply-add;
// here 12 loads feed 128.
//
// WHY IT IS FAST
//
// * Register blocking. The 8×16 sums live in 32 vec4s: `lo[k]` holds pixels
//   0–3 of filter k, `hi[k]` pixels 4–7. Every accumulator is named by a
//   constant index (`tap4` is only called with constants, `pick` selects by
//   a tree of `select`s), never by a runtime index, so the compiler keeps
//   them as plain values (registers) rather than an indexed array in memory.
// * Uniform windows. Loads, not arithmetic, bound a convolution, and many
//   GPUs read uniform buffers faster than storage buffers; a software GPU
//   (lavapipe) reads them some 20 times faster. The host lays the input and
//   the weights out so that a dispatch reads both from 64 KiB uniform
//   windows (see LAYOUT).
// * No bound checks while summing. The host stores the zero padding, so
//   every read in the loops below is inside the window: padding is read as
//   stored zeros, never tested for. Pixels past the right edge of the output
//   (OW not a multiple of 8) read the columns of the row's last pixel again,
//   and are not stored.
// * Small code. The loops over channels and taps keep runtime bounds, and so
//   does the store loop over filters: one compiled pipeline serves every
//   kernel size, stride, dilation, group count and bias, and it compiles in
//   a fraction of a second (no per-layer code generation).
//
// Each filter's sum runs over c, then ky, then kx, then the bias is added
// and the activation applied: the order of the direct shader and the CPU
// reference.
//
// LAYOUT (written by `gpu::fast` on the host)
//
// * The input is cut into vertical strips of the output's columns. A strip
//   holds every input value its windows read, padding zeros included, row by
//   row, with the group's channels side by side in each row:
//       strip[y][c][x]     (y, x: padded input coordinates from the strip's corner)
//   so the input of a band of output rows is one contiguous range: the
//   dispatch's input window. A strip row holds the columns of the output
//   pixels that exist, (min(strip pixels, OW) − 1)·stride + D·(FW − 1) + 1
//   per channel, and no more: pixels past the edge read no columns of
//   their own.
// * The weights are regrouped per block of 16 filters of one group:
//       block[bias 16][c][ky][kx][filter 16]
//   so the 16 weights of one tap are 4 consecutive vec4s. A block never
//   straddles two groups; filters past the end of a group (K/G not a
//   multiple of 16) have zero weights and are not stored.
// * One dispatch covers one tile (a band of rows of one strip) for a chunk of
//   consecutive filter blocks whose weights share one window. `tile` says
//   where everything is.
//
// When even the smallest tile or a single weight block does not fit a
// uniform window (very large kernels or channel counts), the host runs
// `conv2d_fast_storage` instead: the same shader reading the same layout from
// storage buffers, one tile covering the whole output. Slower, same sums.
// The host generates it from `conv2d_fast` (see THE LOADS below).
//
// The output is [K, OH, OW], row-major, as for the direct shader.

// Output pixels per invocation along x: two vec4s.
const PIXELS: u32 = 8u;
// Filters per invocation (one weight block).
const FILTERS: u32 = 16u;
// vec4s per tap (and in the bias header) of a weight block.
const FILTER_VEC4S: u32 = 4u;
// Size of a uniform window in vec4s: 4096 = 64 KiB, the usual limit of a
// uniform binding. The host lowers it on a GPU whose limit is smaller.
const WINDOW_VEC4S: u32 = 4096u;

// One dispatch: the layer's geometry and where the dispatch's tile is,
// written by the host (`gpu::fast::Tile`), one per dispatch at a dynamic
// offset. All counts in elements.
struct Tile {
    out_height: u32,    // OH
    out_width: u32,     // OW
    stride: u32,        // step between windows, in input pixels
    dilation: u32,      // step between taps inside a window, in input pixels
    channels: u32,      // C/G: channels each filter sees
    kernel_height: u32, // FH
    kernel_width: u32,  // FW
    strip_width: u32,   // values per channel in one strip row
    has_bias: u32,      // 1: add the bias; 0: a layer without bias
    block_vec4s: u32,   // vec4s per weight block: (1 + C/G·FH·FW)·16 / 4
    zero: u32,          // always 0; see `opaque`
    input_base: u32,    // index in the input window of the tile's first strip row
    weight_base: u32,   // vec4 index in the weight window of the chunk's first block
    out_x: u32,         // output column of the tile's first pixel
    out_y: u32,         // output row of the tile's first row
    width: u32,         // output columns in the tile (a multiple of PIXELS)
    rows: u32,          // output rows in the tile
    first_filter: u32,  // filter index of the first filter of the chunk's first block
    filter_end: u32,    // one past the group's last filter: filters beyond are padding
    activation: u32,    // after the bias: 0 none, 1 ReLU (max(0, x))
    lanes_along_rows: u32, // 1: x runs along the tile's rows, y along its pixel blocks
}

@group(0) @binding(0) var<uniform> input_window: array<vec4<f32>, WINDOW_VEC4S>;
@group(0) @binding(1) var<uniform> weight_window: array<vec4<f32>, WINDOW_VEC4S>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<uniform> tile: Tile;
// The same data for `conv2d_fast_storage`: all strips and all weight blocks.
@group(0) @binding(4) var<storage, read> input_storage: array<f32>;
@group(0) @binding(5) var<storage, read> weight_storage: array<vec4<f32>>;

// 4 pixels of each of the 16 filters.
alias Accumulators = array<vec4<f32>, FILTERS>;

// `value`, as the compiler sees it: a number only known when the shader
// runs. Some drivers (lavapipe among them) recompile a shader for the values
// of the uniforms that bound its loops or decide its branches; passing
// those through `opaque` keeps one compiled pipeline for every layer
// instead of a fresh compilation on every run.
fn opaque(value: u32, row: u32) -> u32 {
    return value | (row & tile.zero);
}

// acc[k + j] += pixels · w[j] for j < 4: one vec4 of weights (4 filters)
// times 4 pixels. Only ever called with a constant k.
fn tap4(acc: ptr<function, Accumulators>, k: u32, pixels: vec4<f32>, w: vec4<f32>) {
    (*acc)[k] = fma(pixels, vec4(w.x), (*acc)[k]);
    (*acc)[k + 1u] = fma(pixels, vec4(w.y), (*acc)[k + 1u]);
    (*acc)[k + 2u] = fma(pixels, vec4(w.z), (*acc)[k + 2u]);
    (*acc)[k + 3u] = fma(pixels, vec4(w.w), (*acc)[k + 3u]);
}

// One tap of the whole block: pixels `v_lo` (0–3) and `v_hi` (4–7) times the
// weights w0 (filters 0–3) … w3 (filters 12–15), 32 vec4 multiply-adds,
// spelled out so that there is nothing left to unroll.
fn tap(lo: ptr<function, Accumulators>, hi: ptr<function, Accumulators>, v_lo: vec4<f32>, v_hi: vec4<f32>,
       w0: vec4<f32>, w1: vec4<f32>, w2: vec4<f32>, w3: vec4<f32>) {
    tap4(lo, 0u, v_lo, w0);
    tap4(hi, 0u, v_hi, w0);
    tap4(lo, 4u, v_lo, w1);
    tap4(hi, 4u, v_hi, w1);
    tap4(lo, 8u, v_lo, w2);
    tap4(hi, 8u, v_hi, w2);
    tap4(lo, 12u, v_lo, w3);
    tap4(hi, 12u, v_hi, w3);
}

// acc[f] for a runtime f, by a tree of selects over constant indices.
fn pick(acc: ptr<function, Accumulators>, f: u32) -> vec4<f32> {
    let odd = (f & 1u) != 0u;
    let p0 = select((*acc)[0], (*acc)[1], odd);
    let p1 = select((*acc)[2], (*acc)[3], odd);
    let p2 = select((*acc)[4], (*acc)[5], odd);
    let p3 = select((*acc)[6], (*acc)[7], odd);
    let p4 = select((*acc)[8], (*acc)[9], odd);
    let p5 = select((*acc)[10], (*acc)[11], odd);
    let p6 = select((*acc)[12], (*acc)[13], odd);
    let p7 = select((*acc)[14], (*acc)[15], odd);
    let b1 = (f & 2u) != 0u;
    let q0 = select(p0, p1, b1);
    let q1 = select(p2, p3, b1);
    let q2 = select(p4, p5, b1);
    let q3 = select(p6, p7, b1);
    let b2 = (f & 4u) != 0u;
    return select(select(q0, q1, b2), select(q2, q3, b2), (f & 8u) != 0u);
}

// Writes the block to output[k, out_y, out_x .. out_x + 8] for each of its
// filters k: adds the filter's bias (once, after the whole window) when the
// layer has biases, applies the activation, and skips padding filters and
// pixels past the right edge of the output.
fn store(lo: ptr<function, Accumulators>, hi: ptr<function, Accumulators>,
         bias: array<vec4<f32>, FILTER_VEC4S>, block: u32, x: u32, row: u32) {
    let first = tile.first_filter + block * FILTERS;
    let out_x = tile.out_x + x;
    let out_y = tile.out_y + row;
    let filters = min(FILTERS, tile.filter_end - first);
    let room = tile.out_width - out_x; // pixels left in the output row, at least 1
    let has_bias = opaque(tile.has_bias, row) != 0u;
    let relu = opaque(tile.activation, row) == 1u;
    for (var f = 0u; f < filters; f++) {
        var v_lo = pick(lo, f);
        var v_hi = pick(hi, f);
        if (has_bias) {
            let b = vec4(bias[f / 4u][f % 4u]);
            v_lo += b;
            v_hi += b;
        }
        if (relu) {
            v_lo = max(v_lo, vec4(0.0));
            v_hi = max(v_hi, vec4(0.0));
        }
        // output[first + f, out_y, out_x + p]
        let base = ((first + f) * tile.out_height + out_y) * tile.out_width + out_x;
        output[base] = v_lo.x;
        if (room > 1u) { output[base + 1u] = v_lo.y; }
        if (room > 2u) { output[base + 2u] = v_lo.z; }
        if (room > 3u) { output[base + 3u] = v_lo.w; }
        if (room > 4u) { output[base + 4u] = v_hi.x; }
        if (room > 5u) { output[base + 5u] = v_hi.y; }
        if (room > 6u) { output[base + 6u] = v_hi.z; }
        if (room > 7u) { output[base + 7u] = v_hi.w; }
    }
}

// THE LOADS
//
// Every load of the shader goes through one of these accessors. The entry
// point below calls only the uniform ones; the host makes its storage twin,
// `conv2d_fast_storage`, by copying its text with `input_at` and
// `weight_at` swapped for `input_storage_at` and `weight_storage_at` (WGSL
// cannot write one function for two address spaces). One body, two entry
// points, the same loads.

// One f32 of the input window: element i & 3 of vec4 i / 4.
fn input_at(i: u32) -> f32 {
    return input_window[i >> 2u][i & 3u];
}

// One vec4 of the weight window: one tap's weights of 4 filters (or 4 biases).
fn weight_at(w: u32) -> vec4<f32> {
    return weight_window[w];
}

// `input_at` for `conv2d_fast_storage`: i counts from the first strip.
fn input_storage_at(i: u32) -> f32 {
    return input_storage[i];
}

// `weight_at` for `conv2d_fast_storage`: w counts from the first block.
fn weight_storage_at(w: u32) -> vec4<f32> {
    return weight_storage[w];
}

// THE ENTRY POINT
//
// The host dispatches (ceil(tile.width / 64), ceil(tile.rows / 8), blocks):
// x is the pixel block in the tile row (8 per workgroup: 64 pixels), y the
// row in the tile, z the filter block in the dispatch's chunk; for a tile
// read from storage buffers and at most 32 pixels wide, (ceil(tile.rows /
// 8), ceil(tile.width / 64), blocks), x and y swapped
// (`tile.lanes_along_rows`).
//
// The two marker lines around it tell the host what to copy; keep every
// load inside between them going through `input_at` and `weight_at`.
// ENTRY POINT BEGIN
@compute @workgroup_size(8, 8, 1)
fn conv2d_fast(@builtin(global_invocation_id) id: vec3<u32>) {
    // A narrow tile puts neighbouring invocations on neighbouring rows, so
    // that they all have work (the host dispatches its grid transposed).
    let along_rows = opaque(tile.lanes_along_rows, id.x) != 0u;
    let x = select(id.x, id.y, along_rows) * PIXELS;
    let row = select(id.y, id.x, along_rows);
    let block = id.z;
    // The grid is rounded up to whole workgroups: nothing to do past the tile.
    if (x >= tile.width || row >= tile.rows) {
        return;
    }
    let stride = tile.stride;
    let dilation = tile.dilation;
    let channels = opaque(tile.channels, row);
    let kernel_height = opaque(tile.kernel_height, row);
    let kernel_width = opaque(tile.kernel_width, row);
    let block_start = tile.weight_base + block * tile.block_vec4s;

    // Pixel p of the block reads p·stride columns right of pixel 0, if it
    // exists. A pixel past the right edge of the output (OW not a multiple
    // of 8) reads the columns of the row's last pixel instead: its sum is
    // never stored, and so the host's strips need no columns for pixels that
    // do not exist (a stride wider than the photo needs no strip 8 strides
    // wide). `last` is the place in the block of the output row's last
    // pixel: room − 1, where room, the pixels left in the row, is at least 1
    // (x < tile.width, and the host rounds the tile's width up from the
    // output's). The 8 offsets are computed once, before the loops, so that
    // each load in the loop costs one add, as a plain p·stride would.
    let last = tile.out_width - (tile.out_x + x) - 1u;
    let columns_lo = min(vec4(0u, 1u, 2u, 3u), vec4(last)) * stride; // pixels 0–3
    let columns_hi = min(vec4(4u, 5u, 6u, 7u), vec4(last)) * stride; // pixels 4–7

    var lo: Accumulators; // pixels 0–3 of each filter
    var hi: Accumulators; // pixels 4–7
    // The weights of the block's first tap follow its bias header.
    var w = block_start + FILTER_VEC4S;
    for (var c = 0u; c < channels; c++) {
        for (var ky = 0u; ky < kernel_height; ky++) {
            // Strip row of this tap for this output row, then channel c,
            // then pixel 0's column.
            let row_start = tile.input_base + ((row * stride + ky * dilation) * tile.channels + c) * tile.strip_width + x * stride;
            for (var kx = 0u; kx < kernel_width; kx++) {
                // Pixel 0 of this tap reads i; pixel p, i + columns[p].
                let i = row_start + kx * dilation;
                let v_lo = vec4(input_at(i), input_at(i + columns_lo.y), input_at(i + columns_lo.z), input_at(i + columns_lo.w));
                let v_hi = vec4(input_at(i + columns_hi.x), input_at(i + columns_hi.y), input_at(i + columns_hi.z), input_at(i + columns_hi.w));
                tap(&lo, &hi, v_lo, v_hi, weight_at(w), weight_at(w + 1u), weight_at(w + 2u), weight_at(w + 3u));
                w += FILTER_VEC4S;
            }
        }
    }
    let bias = array<vec4<f32>, FILTER_VEC4S>(weight_at(block_start), weight_at(block_start + 1u),
                                              weight_at(block_start + 2u), weight_at(block_start + 3u));
    store(&lo, &hi, bias, block, x, row);
}
// ENTRY POINT END
