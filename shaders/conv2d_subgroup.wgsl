// conv2d_subgroup.wgsl: the fast shader on GPUs with subgroups of at least
// 8 invocations. The same terms as conv2d_direct.wgsl, summed in another
// order: by quads of 4 channels, then ky, then kx, then the 4 channels of
// the quad (the direct shader: c, ky, kx); then the bias, the residual
// where there is one, and the activation. The results differ from the
// direct shader's by the rounding of the sums, some √n·ε of Σ|terms| for n
// terms (tests/common's `reordering_allowance`).
//
// WHAT ONE INVOCATION COMPUTES
//
// An 8×8 register block: PIXELS = 8 adjacent output pixels of one output
// row, for FILTERS = 8 filters of one group (a "filter block"):
//
//   for each quad q of 4 input channels, ky < FH, kx < FW:    (runtime loops)
//       a[p] = the 4 channels of the input under tap (ky, kx) of pixel p
//                                                    (8 vec4 loads)
//       this tap's 4×8 weights: lane l of the subgroup loads vec4 l of 8
//                                                    (1 vec4 load)
//       w = subgroupShuffle(that vec4, m) for m < 8: every lane gets all 8
//       acc[p][k] += a[p][c] · w[c][k]               (256 multiply-adds)
//   output[k, oy, ox + p] = activation(acc[k][p] + bias[k] (+ residual))
//
// WHY IT IS FAST
//
// * A software GPU (lavapipe) runs 8 invocations side by side, one per
//   SIMD lane, and reads memory one lane at a time: a load costs the same
//   whether the 8 lanes read 8 different values or the same one. The
//   invocations of a subgroup compute the same filters, so each of them
//   loads a different eighth of the weights they all need, and a shuffle
//   with a constant lane (one register instruction) hands them round. One
//   load of weights per tap instead of eight.
// * Channels come in quads: one vec4 load brings 4 channels of a pixel.
// * Register blocking: 8 pixels × 8 filters, so each loaded value feeds
//   8 multiply-adds. The sums live in 16 vec4s, indexed only by constants.
// * Rows of taps (`ROW`, `TAPS`): a kernel 2 to 7 wide at stride 1 or 2
//   loads each input row's columns once for all its taps, not once a tap
//   (10 loads for 3 taps at stride 1, where tap by tap takes 24).
// * No bound checks while summing: the host (or `tensor_ops.wgsl`'s
//   pack_quads) stores the zero padding, and pixels past the right edge of
//   the output re-read the columns of the row's last pixel, or with `ROW`
//   the columns past it (never stored; a read past the buffer's end is
//   clamped by the runtime's bounds checks).
// * One dispatch per layer, from storage buffers: no windows, no tiles, and
//   enough workgroups for every core.
// * No packing step between two convs where only convs read the first's
//   output: it writes it as the second's quads (`out_quads`), which on
//   lavapipe took a fifth off MobileNetV2's forward pass.
//
// LAYOUT (written by `gpu::fast::subgroup` on the host)
//
// * input: [G][Q][HP][WP] vec4: group, channel quad (Q = ceil(C/G / 4),
//   channels past C/G are zeros), padded row, padded column.
// * weights: [G·B][Q][FH][FW][4][2] vec4: per filter block (B blocks of 8
//   filters per group, filters past K/G are zeros), per quad and tap, the
//   4 channels' weights of 8 filters as 2 vec4s (filters 0–3, 4–7).
// * bias: per filter block, its 8 filters' biases as 2 vec4s (zeros past the
//   group's end); a depthwise layer's, one vec4 per quad of channels.
// * residual: [K, OH, OW] when the layer adds one (else a dummy).
// * output: [K, OH, OW], row-major; or, with `out_quads`, the input quads
//   of the conv that reads it, [Q', HP', WP'] vec4s (one group: filter k
//   in lane k % 4 of quad k / 4), written at its padding's offsets. Where
//   the quads have padding or lanes past K, the host clears them first.

// Output pixels per invocation along x.
const PIXELS: u32 = 8u;
// Filters per invocation (one filter block).
const FILTERS: u32 = 8u;
// Invocations per workgroup: 8 (one SIMD batch) on a software GPU, more on
// a hardware one. Set by the host.
override WORKGROUP: u32 = 8u;
// The stride, 1 or 2, in the pipelines the host builds for layers whose
// kernel is TAPS = 2 to 7 wide with dilation 1 (most of a ResNet's work,
// and EfficientNet's 5×5 depthwise convs); 0 in the one for any other
// kernel. With a
// stride, the 7·ROW + TAPS columns of an input row that the 8 pixels'
// taps read are loaded once each (10 or 17 loads for 3 taps, not 24), one
// at a time, each added to the sums of the pixels that read it
// (`row_taps`). Pipeline constants, not uniforms: with both loops in one
// pipeline, a software GPU's compiler made both slow.
override ROW: u32 = 0u;
override TAPS: u32 = 3u;
// True in the pipelines of `conv2d_depthwise`, whose sums are one vec4 per
// pixel (`feed`).
override DEPTHWISE: bool = false;
// The activation a pipeline applies where `params.has_activation` says so,
// as net_ops.wgsl's unary_value names it (0 ReLU, …, 13 SiLU). A pipeline
// constant, not a uniform, so that only its formula is compiled: all
// fourteen, in each of a block's 64 stores, made a pipeline take three
// times as long to build on a software GPU.
override ACTIVATION: u32 = 0u;

struct Params {
    out_height: u32,       // OH
    out_width: u32,        // OW
    stride: u32,           // step between windows, in input pixels
    dilation: u32,         // step between taps, in input pixels
    quads: u32,            // Q: channel quads each filter sees
    kernel_height: u32,    // FH
    kernel_width: u32,     // FW
    padded_height: u32,    // HP: input rows, padding included
    padded_width: u32,     // WP: input columns, padding included
    row_groups: u32,       // ceil(OW / PIXELS): pixel groups per output row
    pixel_groups: u32,     // OH · row_groups
    groups_x: u32,         // workgroups along x (the grid's z continues it)
    blocks_per_group: u32, // B
    filters_per_group: u32, // K/G
    has_bias: u32,         // 1: add bias[k]
    has_activation: u32,   // 1: apply `activation` last
    alpha: f32,            // the activation's parameters (see ACTIVATION)
    beta: f32,
    has_residual: u32,     // 1: add residual[k, oy, ox] before the activation
    zero: u32,             // always 0; see `opaque`
    out_quads: u32,        // 1: write the output as the next conv's quads (below)
    out_padded_height: u32, // their HP', WP' and the zero rows above and
    out_padded_width: u32, //   columns left of the output in them
    out_pad_top: u32,
    out_pad_left: u32,
}

@group(0) @binding(0) var<storage, read> input: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> weights: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> residual: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

// Pixels p of filters 4j..4j+3: acc[2p + j].
alias Accumulators = array<vec4<f32>, 16>;

// `value`, as the compiler sees it: a number only known when the shader
// runs, so that one compiled pipeline serves every layer (some drivers
// recompile for the values of uniforms that bound loops).
fn opaque(value: u32, lane: u32) -> u32 {
    return value | (lane & params.zero);
}

// acc[2p + j] += a_p · w_j for the 8 pixels, one input channel: `a` holds
// that channel of pixels 0–3 and 4–7.
fn channel(acc: ptr<function, Accumulators>, lo: vec4<f32>, hi: vec4<f32>, w0: vec4<f32>, w1: vec4<f32>) {
    (*acc)[0] = fma(vec4(lo.x), w0, (*acc)[0]);
    (*acc)[1] = fma(vec4(lo.x), w1, (*acc)[1]);
    (*acc)[2] = fma(vec4(lo.y), w0, (*acc)[2]);
    (*acc)[3] = fma(vec4(lo.y), w1, (*acc)[3]);
    (*acc)[4] = fma(vec4(lo.z), w0, (*acc)[4]);
    (*acc)[5] = fma(vec4(lo.z), w1, (*acc)[5]);
    (*acc)[6] = fma(vec4(lo.w), w0, (*acc)[6]);
    (*acc)[7] = fma(vec4(lo.w), w1, (*acc)[7]);
    (*acc)[8] = fma(vec4(hi.x), w0, (*acc)[8]);
    (*acc)[9] = fma(vec4(hi.x), w1, (*acc)[9]);
    (*acc)[10] = fma(vec4(hi.y), w0, (*acc)[10]);
    (*acc)[11] = fma(vec4(hi.y), w1, (*acc)[11]);
    (*acc)[12] = fma(vec4(hi.z), w0, (*acc)[12]);
    (*acc)[13] = fma(vec4(hi.z), w1, (*acc)[13]);
    (*acc)[14] = fma(vec4(hi.w), w0, (*acc)[14]);
    (*acc)[15] = fma(vec4(hi.w), w1, (*acc)[15]);
}

// One tap: the 4 channels of the 8 pixels, a0..a7, times this tap's
// weights, which lane m of the subgroup loaded as `mine` (vec4 m of 8).
fn tap(acc: ptr<function, Accumulators>, a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32>,
       a4: vec4<f32>, a5: vec4<f32>, a6: vec4<f32>, a7: vec4<f32>, mine: vec4<f32>) {
    channel(acc, vec4(a0.x, a1.x, a2.x, a3.x), vec4(a4.x, a5.x, a6.x, a7.x),
            subgroupShuffle(mine, 0u), subgroupShuffle(mine, 1u));
    channel(acc, vec4(a0.y, a1.y, a2.y, a3.y), vec4(a4.y, a5.y, a6.y, a7.y),
            subgroupShuffle(mine, 2u), subgroupShuffle(mine, 3u));
    channel(acc, vec4(a0.z, a1.z, a2.z, a3.z), vec4(a4.z, a5.z, a6.z, a7.z),
            subgroupShuffle(mine, 4u), subgroupShuffle(mine, 5u));
    channel(acc, vec4(a0.w, a1.w, a2.w, a3.w), vec4(a4.w, a5.w, a6.w, a7.w),
            subgroupShuffle(mine, 6u), subgroupShuffle(mine, 7u));
}

// One value through the activation `ACTIVATION` names: the codes and
// formulas of net_ops.wgsl's `unary_value` (a unit test keeps them equal).
fn activation(x: f32) -> f32 {
    switch ACTIVATION {
        case 0u: { return max(x, 0.0); }
        case 1u: { return select(params.alpha * x, x, x >= 0.0); }
        case 2u: { return min(max(x, params.alpha), params.beta); }
        case 3u: { return 1.0 / (1.0 + exp(-x)); }
        case 4u: { return clamp(params.alpha * x + params.beta, 0.0, 1.0); }
        case 5u: { return x * clamp(x / 6.0 + 0.5, 0.0, 1.0); }
        case 6u: { return tanh(x); }
        case 7u: { return exp(x); }
        case 8u: { return log(x); }
        case 9u: { return sqrt(x); }
        case 10u: { return -x; }
        case 11u: { return abs(x); }
        case 12u: { return 1.0 / x; }
        default: { return x * (1.0 / (1.0 + exp(-x))); }
    }
}

// Writes the 4 values `value` (biases already added) of output pixel
// (oy, ox) = `pixel`, filters first + 4j + e for e < 4 (up to `filters` of
// the block): residual, activation, then into [K, OH, OW] or, with
// `out_quads`, lane e of quad (first + 4j) / 4 (`first` is a multiple of
// 4 wherever the host asks for quads).
fn store(value: vec4<f32>, first: u32, j: u32, filters: u32, pixel: vec2<u32>) {
    let plane = params.out_height * params.out_width;
    let at = pixel.x * params.out_width + pixel.y;
    let quad_row = (first / 4u + j) * params.out_padded_height + pixel.x + params.out_pad_top;
    let quad = quad_row * params.out_padded_width + pixel.y + params.out_pad_left;
    for (var e = 0u; e < 4u; e++) {
        let f = j * 4u + e;
        if (f < filters) {
            let k = first + f;
            let index = k * plane + at;
            var v = value[e];
            if (params.has_residual != 0u) { v += residual[index]; }
            if (params.has_activation != 0u) { v = activation(v); }
            output[select(index, quad * 4u + e, params.out_quads != 0u)] = v;
        }
    }
}

// Writes the sums of the pixels from (oy, ox) = `at` that exist (`room` of
// the 8): pixel p's filters 4j to 4j + 3 from the block's first (or a
// depthwise layer's channels) from sums[vecs·p + j] for j < vecs (2 for
// the subgroup entry point, 1 for the depthwise one), plus bias[j], then
// the residual and the activation (`store`). A loop at run time, its bound opaque to the
// compiler, so that the stores are compiled once and not once per pixel
// (which made a pipeline take twice as long to build on a software GPU);
// the array it indexes is a copy, so that the accumulators, indexed only
// by constants, stay in registers.
fn store_pixels(sums: Accumulators, vecs: u32, bias: array<vec4<f32>, 2>, first: u32, filters: u32,
                at: vec2<u32>, room: u32, lane: u32) {
    var copy = sums;
    let pixels = min(room, opaque(PIXELS, lane));
    for (var p = 0u; p < pixels; p++) {
        for (var j = 0u; j < vecs; j++) {
            store(copy[vecs * p + j] + bias[j], first, j, filters, at + vec2(0u, p));
        }
    }
}

// acc for pixel p += the 4 channels `a` under one of its taps times that
// tap's weights: `mine` as lane m of the subgroup loaded vec4 m of 8 (the
// subgroup entry point's sums: filters 0–3 at 2p, 4–7 at 2p + 1), or, in a
// depthwise pipeline, the 4 channels' own weights (sums at p).
fn feed(acc: ptr<function, Accumulators>, p: u32, a: vec4<f32>, mine: vec4<f32>) {
    if (DEPTHWISE) {
        (*acc)[p] = fma(a, mine, (*acc)[p]);
        return;
    }
    var lo = (*acc)[2u * p];
    var hi = (*acc)[2u * p + 1u];
    lo = fma(vec4(a.x), subgroupShuffle(mine, 0u), lo);
    hi = fma(vec4(a.x), subgroupShuffle(mine, 1u), hi);
    lo = fma(vec4(a.y), subgroupShuffle(mine, 2u), lo);
    hi = fma(vec4(a.y), subgroupShuffle(mine, 3u), hi);
    lo = fma(vec4(a.z), subgroupShuffle(mine, 4u), lo);
    hi = fma(vec4(a.z), subgroupShuffle(mine, 5u), hi);
    lo = fma(vec4(a.w), subgroupShuffle(mine, 6u), lo);
    hi = fma(vec4(a.w), subgroupShuffle(mine, 7u), hi);
    (*acc)[2u * p] = lo;
    (*acc)[2u * p + 1u] = hi;
}

// Whether pixel (c − kx) / ROW reads column c of a row with its tap kx
// (pixel 0's tap 0 reading column 0).
fn reads(c: u32, kx: u32) -> bool {
    let step = max(ROW, 1u);
    return c >= kx && (c - kx) % step == 0u && (c - kx) / step < PIXELS;
}

// One tap's weights for each kx < TAPS of a `ROW` pipeline (the rest
// unused): as lane m loaded them for the subgroup entry point, a vec4 of 4
// channels for the depthwise one.
alias Taps = array<vec4<f32>, 7>;

// Column c of a row, `a`, added to the sums of each pixel that reads it,
// times the weights of the tap it reads it with (`w[kx]` for tap kx).
// `c` is a constant wherever this is called, so the branches fold away.
fn column(acc: ptr<function, Accumulators>, a: vec4<f32>, c: u32, w: Taps) {
    let step = max(ROW, 1u);
    if (reads(c, 0u)) { feed(acc, c / step, a, w[0]); }
    if (reads(c, 1u)) { feed(acc, (c - 1u) / step, a, w[1]); }
    if (2u < TAPS && reads(c, 2u)) { feed(acc, (c - 2u) / step, a, w[2]); }
    if (3u < TAPS && reads(c, 3u)) { feed(acc, (c - 3u) / step, a, w[3]); }
    if (4u < TAPS && reads(c, 4u)) { feed(acc, (c - 4u) / step, a, w[4]); }
    if (5u < TAPS && reads(c, 5u)) { feed(acc, (c - 5u) / step, a, w[5]); }
    if (6u < TAPS && reads(c, 6u)) { feed(acc, (c - 6u) / step, a, w[6]); }
}

// The TAPS taps of the 8 pixels in one input row (`ROW` pipelines): its
// 7·ROW + TAPS columns from pixel 0's (at least 9), each loaded once, in
// order, so that each pixel's taps are summed in the order of the general
// loop. A pixel past the output's edge reads columns past it (never
// stored; reads past the buffer are clamped).
fn row_taps(acc: ptr<function, Accumulators>, row: u32, w: Taps) {
    let columns = 7u * ROW + TAPS;
    column(acc, input[row], 0u, w);
    column(acc, input[row + 1u], 1u, w);
    column(acc, input[row + 2u], 2u, w);
    column(acc, input[row + 3u], 3u, w);
    column(acc, input[row + 4u], 4u, w);
    column(acc, input[row + 5u], 5u, w);
    column(acc, input[row + 6u], 6u, w);
    column(acc, input[row + 7u], 7u, w);
    column(acc, input[row + 8u], 8u, w);
    if (9u < columns) { column(acc, input[row + 9u], 9u, w); }
    if (10u < columns) { column(acc, input[row + 10u], 10u, w); }
    if (11u < columns) { column(acc, input[row + 11u], 11u, w); }
    if (12u < columns) { column(acc, input[row + 12u], 12u, w); }
    if (13u < columns) { column(acc, input[row + 13u], 13u, w); }
    if (14u < columns) { column(acc, input[row + 14u], 14u, w); }
    if (15u < columns) { column(acc, input[row + 15u], 15u, w); }
    if (16u < columns) { column(acc, input[row + 16u], 16u, w); }
    if (17u < columns) { column(acc, input[row + 17u], 17u, w); }
    if (18u < columns) { column(acc, input[row + 18u], 18u, w); }
    if (19u < columns) { column(acc, input[row + 19u], 19u, w); }
    if (20u < columns) { column(acc, input[row + 20u], 20u, w); }
}

// The weights of a row's TAPS taps from index `at`, tap kx's at
// `at + kx · spacing`.
fn row_weights(at: u32, spacing: u32) -> Taps {
    var w: Taps;
    w[0] = weights[at];
    w[1] = weights[at + spacing];
    if (2u < TAPS) { w[2] = weights[at + 2u * spacing]; }
    if (3u < TAPS) { w[3] = weights[at + 3u * spacing]; }
    if (4u < TAPS) { w[4] = weights[at + 4u * spacing]; }
    if (5u < TAPS) { w[5] = weights[at + 5u * spacing]; }
    if (6u < TAPS) { w[6] = weights[at + 6u * spacing]; }
    return w;
}

// The window of one quad of channels over the 8 pixels from (oy, ox) = at,
// summed into acc, kernel = (FH, FW) taps: tap by tap, or row by row in a
// `ROW` pipeline. `plane` is the quad's first padded row, `first` the index
// of its first tap's weights, each tap's 8 apart for the subgroup entry
// point (a lane's eighth) and 1 for the depthwise one (a vec4 of 4
// channels). Returns the index past the window's weights.
fn window(acc: ptr<function, Accumulators>, plane: u32, at: vec2<u32>, kernel: vec2<u32>, first: u32) -> u32 {
    let stride = params.stride;
    let dilation = params.dilation;
    let spacing = select(8u, 1u, DEPTHWISE);
    let columns = column_offsets(at.y);
    let lo = columns[0];
    let hi = columns[1];
    var w = first;
    for (var ky = 0u; ky < kernel.x; ky++) {
        let row = (plane + at.x * stride + ky * dilation) * params.padded_width + at.y * stride;
        if (ROW != 0u) {
            row_taps(acc, row, row_weights(w, spacing));
            w += spacing * TAPS;
            continue;
        }
        for (var kx = 0u; kx < kernel.y; kx++) {
            let i = row + kx * dilation;
            let a0 = input[i + lo.x];
            let a1 = input[i + lo.y];
            let a2 = input[i + lo.z];
            let a3 = input[i + lo.w];
            let a4 = input[i + hi.x];
            let a5 = input[i + hi.y];
            let a6 = input[i + hi.z];
            let a7 = input[i + hi.w];
            if (DEPTHWISE) {
                depthwise_tap(acc, a0, a1, a2, a3, a4, a5, a6, a7, weights[w]);
            } else {
                tap(acc, a0, a1, a2, a3, a4, a5, a6, a7, weights[w]);
            }
            w += spacing;
        }
    }
    return w;
}

// The pixel group an invocation computes: (n, oy, ox), n its index (past
// the last group for invocations that round the grid up: those compute the
// last group again and store nothing), oy its output row and ox its first
// output column.
fn pixel_group(wg: vec3<u32>, li: u32) -> vec3<u32> {
    let n = (wg.z * params.groups_x + wg.x) * WORKGROUP + li;
    let group_index = min(n, params.pixel_groups - 1u);
    return vec3(n, group_index / params.row_groups, (group_index % params.row_groups) * PIXELS);
}

// The input columns pixels 0–3 and 4–7 of the group at `ox` read right of
// pixel 0's: p·stride, or the row's last pixel's columns when p is past the
// output's right edge.
fn column_offsets(ox: u32) -> array<vec4<u32>, 2> {
    let last = params.out_width - ox - 1u;
    return array(min(vec4(0u, 1u, 2u, 3u), vec4(last)) * params.stride,
                 min(vec4(4u, 5u, 6u, 7u), vec4(last)) * params.stride);
}

// THE ENTRY POINT
//
// The host dispatches (groups_x, G·B, ceil(pixel groups / WORKGROUP /
// groups_x)): x (then z) walks the output's pixel groups, 8 pixels of one
// row each, y the filter blocks. Every invocation of a subgroup runs every
// loop to the end (no early return), so that the shuffles see all lanes.
@compute @workgroup_size(WORKGROUP, 1, 1)
fn conv2d_subgroup(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32,
                   @builtin(subgroup_invocation_id) lane: u32) {
    let group = pixel_group(wg, li);
    let n = group.x;
    let oy = group.y;
    let ox = group.z;
    let block = wg.y;
    let conv_group = block / params.blocks_per_group;
    let first = conv_group * params.filters_per_group + (block % params.blocks_per_group) * FILTERS;
    let filters = min(FILTERS, (conv_group + 1u) * params.filters_per_group - first);

    let quads = opaque(params.quads, lane);
    let kernel = vec2(opaque(params.kernel_height, lane), opaque(params.kernel_width, lane));

    var acc: Accumulators;
    // This lane's eighth of each tap's weights.
    var w = block * quads * kernel.x * kernel.y * 8u + (lane & 7u);
    for (var q = 0u; q < quads; q++) {
        let plane = (conv_group * quads + q) * params.padded_height;
        w = window(&acc, plane, vec2(oy, ox), kernel, w);
    }
    if (n >= params.pixel_groups) {
        return;
    }
    // The block's 8 biases, loaded once per invocation.
    var b = array(vec4(0.0), vec4(0.0));
    if (params.has_bias != 0u) {
        b = array(bias[2u * block], bias[2u * block + 1u]);
    }
    store_pixels(acc, 2u, b, first, filters, vec2(oy, ox), params.out_width - ox, lane);
}

// THE DEPTHWISE ENTRY POINT
//
// A depthwise layer (one filter per channel: G = C = K) has no sum across
// channels for a subgroup to share: each invocation computes 8 adjacent
// pixels × one quad of 4 channels, 8 vec4 sums, from the input quads of
// all C channels (laid out as one group) and the weights as [Q, FH, FW]
// vec4s (zeros past channel C). Per tap, 8 vec4 loads (10 or 17 per row
// of 3 taps with `ROW` and `TAPS`) feed 32 multiply-adds, where one value per
// invocation would load a value and a weight for each. `filters_per_group`
// is K here. The host dispatches (groups_x, Q, ceil(pixel groups /
// WORKGROUP / groups_x)).

// acc[p] += a_p · w for the 8 pixels: one tap of 4 channels.
fn depthwise_tap(acc: ptr<function, Accumulators>, a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>,
                 a3: vec4<f32>, a4: vec4<f32>, a5: vec4<f32>, a6: vec4<f32>, a7: vec4<f32>, w: vec4<f32>) {
    (*acc)[0] = fma(a0, w, (*acc)[0]);
    (*acc)[1] = fma(a1, w, (*acc)[1]);
    (*acc)[2] = fma(a2, w, (*acc)[2]);
    (*acc)[3] = fma(a3, w, (*acc)[3]);
    (*acc)[4] = fma(a4, w, (*acc)[4]);
    (*acc)[5] = fma(a5, w, (*acc)[5]);
    (*acc)[6] = fma(a6, w, (*acc)[6]);
    (*acc)[7] = fma(a7, w, (*acc)[7]);
}

@compute @workgroup_size(WORKGROUP, 1, 1)
fn conv2d_depthwise(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let group = pixel_group(wg, li);
    let n = group.x;
    let oy = group.y;
    let ox = group.z;
    let quad = wg.y;
    let first = quad * 4u;
    let channels = min(4u, params.filters_per_group - first);

    let kernel = vec2(opaque(params.kernel_height, li), opaque(params.kernel_width, li));

    // acc[p]: pixel p's 4 channels (acc[8..16] unused).
    var acc: Accumulators;
    let plane = quad * params.padded_height;
    window(&acc, plane, vec2(oy, ox), kernel, quad * kernel.x * kernel.y);
    if (n >= params.pixel_groups) {
        return;
    }
    var b = array(vec4(0.0), vec4(0.0));
    if (params.has_bias != 0u) {
        b[0] = bias[quad];
    }
    store_pixels(acc, 1u, b, first, channels, vec2(oy, ox), params.out_width - ox, li);
}
