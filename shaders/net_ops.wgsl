// net_ops.wgsl: the ops of a whole network (`--model`), one output value per
// invocation.
//
// Every tensor is a flat row-major f32 array with ONNX's shape, batch of one
// included: a conv reads x [1, C, H, W] and writes [1, K, OH, OW].
// The CPU twins are in src/net/cpu.rs, with the same names and index math:
// `conv_value`, `unary_value`, `binary_value`, `affine_value`, `pool_value`,
// `global_average_value`, `gemm_value` and `softmax_row`.

// Sizes and attributes, written by the host (`net::gpu::NetParams`). Each
// entry point reads the fields it needs.
struct NetParams {
    count: u32,              // output values
    row_groups: u32,         // workgroups per row of the dispatch grid
    kind: u32,               // unary: UnaryKind; binary: Binary; pool: 1 max, 0 average
    flags: u32,              // conv: 1 has bias, 2 a fused activation (kind, alpha, beta); binary: 1 broadcast; pool: 1 count_include_pad; gemm: 1 trans_a, 2 trans_b, 4 has C
    alpha: f32,              // unary: LeakyRelu's slope, Clip's min, HardSigmoid's alpha; gemm: alpha
    beta: f32,               // unary: Clip's max, HardSigmoid's beta; gemm: beta
    channels: u32,           // C of the input (affine: C)
    in_height: u32,          // H
    in_width: u32,           // W
    out_height: u32,         // OH
    out_width: u32,          // OW
    kernel_height: u32,      // FH
    kernel_width: u32,       // FW
    stride_y: u32,           // steps between windows
    stride_x: u32,
    dilation_y: u32,         // steps between taps
    dilation_x: u32,
    pad_top: u32,            // zero rows above the input
    pad_left: u32,           // zero columns left of it
    pad_bottom: u32,         // average pooling with count_include_pad: rows below
    pad_right: u32,          //   and columns right that count
    channels_per_group: u32, // conv: C/G
    filters_per_group: u32,  // conv: K/G
    inner: u32,              // affine: values per channel; softmax: row length; gemm: inner size
    columns: u32,            // gemm: N
    a_rows: u32,             // gemm: rows of A as it is used (M)
    c_rows: u32,             // gemm: rows of C (1 or M)
    c_columns: u32,          // gemm: columns of C (1 or N)
    size: u32,               // softmax, reduce: values along the axis
    coordinates: u32,        // resize: Coordinates' code
    rounding: u32,           // resize: Rounding's code
    scale_y: f32,            // resize: output over input height
    scale_x: f32,            // resize: output over input width
    out0: u32,               // binary: the output's sizes, padded to rank 4
    out1: u32,
    out2: u32,
    out3: u32,
    a0: u32,                 // binary: A's strides (0 along an axis it repeats on)
    a1: u32,
    a2: u32,
    a3: u32,
    b0: u32,                 // binary: B's strides
    b1: u32,
    b2: u32,
    b3: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> c: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;
@group(0) @binding(4) var<uniform> params: NetParams;

const WORKGROUP: u32 = 256u;

// The output index this invocation writes. The grid is 2-D (row_groups ×
// rows of workgroups), so that more than 65,535 workgroups fit a dispatch.
fn value_index(id: vec3<u32>) -> u32 {
    return id.y * params.row_groups * WORKGROUP + id.x;
}

// The output pixel of value i of maps [1, C, OH, OW]: (x, y, plane).
fn output_pixel(i: u32) -> vec3<u32> {
    return vec3(i % params.out_width, (i / params.out_width) % params.out_height,
                i / (params.out_width * params.out_height));
}

// The top-left tap of the window of output pixel `at`, in input
// coordinates (x, y): signed, because padding puts it above or left of the
// input.
fn window_origin(at: vec3<u32>) -> vec2<i32> {
    return vec2(i32(at.x * params.stride_x) - i32(params.pad_left),
                i32(at.y * params.stride_y) - i32(params.pad_top));
}

// Convolution: a = x [1, C, H, W], b = weight [K, C/G, FH, FW], c = bias [K];
// output [1, K, OH, OW]. Output (k, oy, ox) is bias[k] plus the sum over the
// C/G channels of k's group and the FH×FW window of input × weight, then the
// fused activation (flags bit 2, as `unary`); taps in the zero padding are
// skipped.
@compute @workgroup_size(256, 1, 1)
fn conv(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = value_index(id);
    if (i >= params.count) {
        return;
    }
    let at = output_pixel(i);
    let k = at.z;
    let first_channel = (k / params.filters_per_group) * params.channels_per_group;
    let origin = window_origin(at);
    let origin_x = origin.x;
    let origin_y = origin.y;
    var sum = 0.0;
    for (var ch = 0u; ch < params.channels_per_group; ch++) {
        let in_channel = first_channel + ch;
        for (var ky = 0u; ky < params.kernel_height; ky++) {
            let in_y = origin_y + i32(ky * params.dilation_y);
            if (in_y < 0 || in_y >= i32(params.in_height)) {
                continue;
            }
            for (var kx = 0u; kx < params.kernel_width; kx++) {
                let in_x = origin_x + i32(kx * params.dilation_x);
                if (in_x < 0 || in_x >= i32(params.in_width)) {
                    continue;
                }
                let input_index = (in_channel * params.in_height + u32(in_y)) * params.in_width + u32(in_x);
                let weight_index = ((k * params.channels_per_group + ch) * params.kernel_height + ky) * params.kernel_width + kx;
                sum += a[input_index] * b[weight_index];
            }
        }
    }
    if ((params.flags & 1u) != 0u) {
        sum += c[k];
    }
    if ((params.flags & 2u) != 0u) {
        sum = unary_value(sum);
    }
    output[i] = sum;
}

// One value through the function `kind` names (UnaryKind's codes).
fn unary_value(x: f32) -> f32 {
    switch params.kind {
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

// output[i] = f(a[i]).
@compute @workgroup_size(256, 1, 1)
fn unary(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = value_index(id);
    if (i >= params.count) {
        return;
    }
    output[i] = unary_value(a[i]);
}

// output[i] = a[·] op b[·], each input read at the output's coordinates with
// its own strides (0 along an axis it is broadcast on).
@compute @workgroup_size(256, 1, 1)
fn binary(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = value_index(id);
    if (i >= params.count) {
        return;
    }
    var a_index = i;
    var b_index = i;
    // flags bit 1: the shapes differ, and each index is worked out from the
    // output's coordinates (else both inputs are read at i).
    if ((params.flags & 1u) != 0u) {
        let sizes = array<u32, 4>(params.out0, params.out1, params.out2, params.out3);
        let a_strides = array<u32, 4>(params.a0, params.a1, params.a2, params.a3);
        let b_strides = array<u32, 4>(params.b0, params.b1, params.b2, params.b3);
        var rest = i;
        a_index = 0u;
        b_index = 0u;
        for (var axis = 3; axis >= 0; axis--) {
            let coordinate = rest % sizes[axis];
            rest = rest / sizes[axis];
            a_index += coordinate * a_strides[axis];
            b_index += coordinate * b_strides[axis];
        }
    }
    let x = a[a_index];
    let y = b[b_index];
    switch params.kind {
        case 0u: { output[i] = x + y; }
        case 1u: { output[i] = x - y; }
        case 2u: { output[i] = x * y; }
        case 3u: { output[i] = x / y; }
        case 4u: { output[i] = select(y * x, x, x >= 0.0); }
        default: { output[i] = power(x, y); }
    }
}

// xʸ, as Rust's powf: a negative x only to a whole power (else NaN).
fn power(x: f32, y: f32) -> f32 {
    let magnitude = pow(abs(x), y);
    if (x >= 0.0) {
        return magnitude;
    }
    if (y != round(y)) {
        return bitcast<f32>(0x7fc00000u);
    }
    let odd = (i32(abs(y)) % 2) == 1;
    return select(magnitude, -magnitude, odd);
}

// A BatchNormalization at inference: a = x [1, C, inner], b = scale [C],
// c = shift [C]; output[i] = x · scale[channel] + shift[channel].
@compute @workgroup_size(256, 1, 1)
fn affine(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = value_index(id);
    if (i >= params.count) {
        return;
    }
    let channel = (i / params.inner) % params.channels;
    output[i] = a[i] * b[channel] + c[channel];
}

// Pooling of a = x [1, C, H, W] into [1, C, OH, OW]: the largest value of
// the window (kind 1), or its mean over the taps in the image (kind 0; with
// count_include_pad, over the window clipped to the padded image).
@compute @workgroup_size(256, 1, 1)
fn pool(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = value_index(id);
    if (i >= params.count) {
        return;
    }
    let at = output_pixel(i);
    let channel = at.z;
    let origin = window_origin(at);
    let origin_x = origin.x;
    let origin_y = origin.y;
    // −infinity, which WGSL cannot write as a literal: the largest value of
    // a window entirely in the padding, as in ONNX Runtime.
    var largest = bitcast<f32>(0xff800000u);
    var sum = 0.0;
    var taps = 0u;
    // No branch around the load: a tap in the padding reads the nearest
    // value inside and counts for nothing (a software GPU reads memory one
    // lane at a time, and a load under a branch costs it far more). The
    // twin skips such taps; the sums are the same.
    let last = vec2(i32(params.in_width) - 1, i32(params.in_height) - 1);
    for (var ky = 0u; ky < params.kernel_height; ky++) {
        let in_y = origin_y + i32(ky * params.dilation_y);
        for (var kx = 0u; kx < params.kernel_width; kx++) {
            let in_x = origin_x + i32(kx * params.dilation_x);
            let inside = in_y >= 0 && in_y <= last.y && in_x >= 0 && in_x <= last.x;
            let at = vec2<u32>(clamp(vec2(in_x, in_y), vec2(0), last));
            let value = a[(channel * params.in_height + at.y) * params.in_width + at.x];
            largest = select(largest, max(largest, value), inside);
            sum += select(0.0, value, inside);
            taps += u32(inside);
        }
    }
    if (params.kind == 1u) {
        output[i] = largest;
        return;
    }
    var divisor = f32(taps);
    if ((params.flags & 1u) != 0u) {
        let end_y = min(origin_y + i32(params.kernel_height), i32(params.in_height + params.pad_bottom));
        let end_x = min(origin_x + i32(params.kernel_width), i32(params.in_width + params.pad_right));
        divisor = f32((end_y - origin_y) * (end_x - origin_x));
    }
    output[i] = sum / divisor;
}

// The mean of each channel of a = x [1, C, H, W]: output [1, C, 1, 1].
@compute @workgroup_size(256, 1, 1)
fn global_average(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = value_index(id);
    if (i >= params.count) {
        return;
    }
    let plane = params.in_height * params.in_width;
    var sum = 0.0;
    for (var p = 0u; p < plane; p++) {
        sum += a[i * plane + p];
    }
    output[i] = sum / f32(plane);
}

// alpha · A·B + beta · C: a = A [M, inner] (or [inner, M]), b = B [inner, N]
// (or [N, inner]), c = C broadcast from [c_rows, c_columns]; output [M, N].
@compute @workgroup_size(256, 1, 1)
fn gemm(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = value_index(id);
    if (i >= params.count) {
        return;
    }
    let row = i / params.columns;
    let column = i % params.columns;
    let trans_a = (params.flags & 1u) != 0u;
    let trans_b = (params.flags & 2u) != 0u;
    var sum = 0.0;
    for (var k = 0u; k < params.inner; k++) {
        let a_index = select(row * params.inner + k, k * params.a_rows + row, trans_a);
        let b_index = select(k * params.columns + column, column * params.inner + k, trans_b);
        sum += a[a_index] * b[b_index];
    }
    var bias = 0.0;
    if ((params.flags & 4u) != 0u) {
        let c_row = select(0u, row, params.c_rows > 1u);
        let c_column = select(0u, column, params.c_columns > 1u);
        bias = c[c_row * params.c_columns + c_column];
    }
    output[i] = params.alpha * sum + params.beta * bias;
}

// Softmax along an axis of `size` values `inner` apart: one invocation per
// softmax (count = values / size); softmax g starts at
// (g / inner)·size·inner + g % inner.
@compute @workgroup_size(256, 1, 1)
fn softmax(@builtin(global_invocation_id) id: vec3<u32>) {
    let g = value_index(id);
    if (g >= params.count) {
        return;
    }
    let first = (g / params.inner) * params.size * params.inner + g % params.inner;
    var largest = a[first];
    for (var j = 1u; j < params.size; j++) {
        largest = max(largest, a[first + j * params.inner]);
    }
    var total = 0.0;
    for (var j = 0u; j < params.size; j++) {
        total += exp(a[first + j * params.inner] - largest);
    }
    for (var j = 0u; j < params.size; j++) {
        let at = first + j * params.inner;
        output[at] = exp(a[at] - largest) / total;
    }
}

// The mean (kind 0), sum (1) or largest value (2) of `size` values `inner`
// apart: one invocation per output value, laid out as for softmax.
@compute @workgroup_size(256, 1, 1)
fn reduce(@builtin(global_invocation_id) id: vec3<u32>) {
    let g = value_index(id);
    if (g >= params.count) {
        return;
    }
    let first = (g / params.inner) * params.size * params.inner + g % params.inner;
    var sum = 0.0;
    var largest = a[first];
    for (var j = 0u; j < params.size; j++) {
        let value = a[first + j * params.inner];
        sum += value;
        largest = max(largest, value);
    }
    switch params.kind {
        case 0u: { output[g] = sum / f32(params.size); }
        case 1u: { output[g] = sum; }
        default: { output[g] = largest; }
    }
}

// A coordinate of the output mapped back to the input along an axis of
// `in_size` values resized to `out_size` by `scale`
// (coordinate_transformation_mode, Coordinates' codes).
fn source_coordinate(x: f32, scale: f32, in_size: u32, out_size: u32) -> f32 {
    switch params.coordinates {
        case 0u: { return (x + 0.5) / scale - 0.5; }
        case 1u: { return select(0.0, (x + 0.5) / scale - 0.5, out_size > 1u); }
        case 2u: { return select(0.0, x * f32(in_size - 1u) / f32(out_size - 1u), out_size > 1u); }
        case 3u: { return x / scale; }
        default: { return (x + 0.5) / scale; }
    }
}

// The nearest input index to coordinate `x` (nearest_mode, Rounding's
// codes), clamped to the axis.
fn nearest_index(x: f32, in_size: u32) -> u32 {
    var index = 0.0;
    switch params.rounding {
        case 0u: { index = select(round(x), floor(x), x == floor(x) + 0.5); }
        case 1u: { index = select(round(x), ceil(x), x == floor(x) + 0.5); }
        case 2u: { index = floor(x); }
        default: { index = ceil(x); }
    }
    return u32(clamp(index, 0.0, f32(in_size - 1u)));
}

// Resizing a = x [1, C, H, W] to [1, C, OH, OW]: the nearest input value
// (kind 0) or the bilinear mix of the four around (kind 1), coordinates
// clamped to the image.
@compute @workgroup_size(256, 1, 1)
fn resize(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = value_index(id);
    if (i >= params.count) {
        return;
    }
    let at = output_pixel(i);
    let out_x = at.x;
    let out_y = at.y;
    let plane = at.z * params.in_height * params.in_width;
    let y = source_coordinate(f32(out_y), params.scale_y, params.in_height, params.out_height);
    let x = source_coordinate(f32(out_x), params.scale_x, params.in_width, params.out_width);
    if (params.kind == 0u) {
        let in_y = nearest_index(y, params.in_height);
        let in_x = nearest_index(x, params.in_width);
        output[i] = a[plane + in_y * params.in_width + in_x];
        return;
    }
    let cy = clamp(y, 0.0, f32(params.in_height - 1u));
    let cx = clamp(x, 0.0, f32(params.in_width - 1u));
    let y0 = u32(floor(cy));
    let x0 = u32(floor(cx));
    let y1 = min(y0 + 1u, params.in_height - 1u);
    let x1 = min(x0 + 1u, params.in_width - 1u);
    let wy = cy - f32(y0);
    let wx = cx - f32(x0);
    let top = a[plane + y0 * params.in_width + x0] * (1.0 - wx) + a[plane + y0 * params.in_width + x1] * wx;
    let bottom = a[plane + y1 * params.in_width + x0] * (1.0 - wx) + a[plane + y1 * params.in_width + x1] * wx;
    output[i] = top * (1.0 - wy) + bottom * wy;
}

// Transposed convolution: a = x [1, C, H, W], b = weight [C, K/G, FH, FW],
// c = bias [K]; output [1, K, OH, OW]. Output (k, oy, ox) gathers every tap
// (c, ky, kx) of k's group whose input pixel (oy + pad_top − ky·dilation) /
// stride lands on a whole pixel of the image.
@compute @workgroup_size(256, 1, 1)
fn conv_transpose(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = value_index(id);
    if (i >= params.count) {
        return;
    }
    let at = output_pixel(i);
    let out_x = at.x;
    let out_y = at.y;
    let k = at.z;
    let group = k / params.filters_per_group;
    let k_in_group = k % params.filters_per_group;
    var sum = 0.0;
    for (var ch = 0u; ch < params.channels_per_group; ch++) {
        let in_channel = group * params.channels_per_group + ch;
        for (var ky = 0u; ky < params.kernel_height; ky++) {
            let ny = i32(out_y + params.pad_top) - i32(ky * params.dilation_y);
            if (ny < 0 || ny % i32(params.stride_y) != 0) {
                continue;
            }
            let in_y = u32(ny) / params.stride_y;
            if (in_y >= params.in_height) {
                continue;
            }
            for (var kx = 0u; kx < params.kernel_width; kx++) {
                let nx = i32(out_x + params.pad_left) - i32(kx * params.dilation_x);
                if (nx < 0 || nx % i32(params.stride_x) != 0) {
                    continue;
                }
                let in_x = u32(nx) / params.stride_x;
                if (in_x >= params.in_width) {
                    continue;
                }
                let input_index = (in_channel * params.in_height + in_y) * params.in_width + in_x;
                let weight_index = ((in_channel * params.filters_per_group + k_in_group) * params.kernel_height + ky) * params.kernel_width + kx;
                sum += a[input_index] * b[weight_index];
            }
        }
    }
    if ((params.flags & 1u) != 0u) {
        sum += c[k];
    }
    output[i] = sum;
}

// A strided copy (`net::movement`), with its own params: value i of the box
// `size*` is read at in_base + Σ coordinate·in_stride and written at
// out_base + Σ coordinate·out_stride (Concat, Slice, Split, Transpose,
// Expand).
struct CopyParams {
    count: u32,
    row_groups: u32,
    in_base: i32,
    out_base: i32,
    size0: u32,
    size1: u32,
    size2: u32,
    size3: u32,
    size4: u32,
    size5: u32,
    in0: i32,
    in1: i32,
    in2: i32,
    in3: i32,
    in4: i32,
    in5: i32,
    out0: i32,
    out1: i32,
    out2: i32,
    out3: i32,
    out4: i32,
    out5: i32,
}

@group(0) @binding(5) var<uniform> moves: CopyParams;

@compute @workgroup_size(256, 1, 1)
fn copy(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.y * moves.row_groups * WORKGROUP + id.x;
    if (i >= moves.count) {
        return;
    }
    let sizes = array<u32, 6>(moves.size0, moves.size1, moves.size2, moves.size3, moves.size4, moves.size5);
    let in_strides = array<i32, 6>(moves.in0, moves.in1, moves.in2, moves.in3, moves.in4, moves.in5);
    let out_strides = array<i32, 6>(moves.out0, moves.out1, moves.out2, moves.out3, moves.out4, moves.out5);
    var rest = i;
    var read_at = moves.in_base;
    var write_at = moves.out_base;
    for (var axis = 5; axis >= 0; axis--) {
        let coordinate = i32(rest % sizes[axis]);
        rest = rest / sizes[axis];
        read_at += coordinate * in_strides[axis];
        write_at += coordinate * out_strides[axis];
    }
    output[u32(write_at)] = a[u32(read_at)];
}
