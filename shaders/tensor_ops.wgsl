// tensor_ops.wgsl: the steps of a stack of layers between convs, on maps
// that stay in GPU memory, and the fast shader's input layouts made on the
// GPU (its windows kernel's strips, its subgroup kernel's quads).
//
// Every tensor is a flat row-major f32 array [C, H, W], as in conv2d_direct.wgsl.
// The CPU twins: `cpu::relu`, `cpu::max_pool_pixel`, `pack_strips` in
// src/gpu/fast/layout.rs and `pack_quads` in src/gpu/fast/subgroup.rs, with
// the same names and index math.

// Sizes, written by the host (`gpu::resident::OpParams`). Each entry point
// reads the fields it needs.
struct OpParams {
    count: u32,        // values to write
    channels: u32,     // C (pack_strips, pack_quads: the channels of one group)
    in_height: u32,    // H
    in_width: u32,     // W
    out_height: u32,   // OH (max_pool)
    out_width: u32,    // OW (max_pool)
    size: u32,         // the pooling window's side
    stride: u32,       // step between windows (pack_strips: the conv's stride)
    pad_top: u32,      // pack_strips, pack_quads: zero rows above the image
    pad_left: u32,     //   and columns left of it
    strip_rows: u32,   // pack_strips: padded input rows per strip
    strips: u32,       // pack_strips: strips per group
    strip_width: u32,  // pack_strips: input columns per strip row
    strip_pixels: u32, // pack_strips: output columns per strip
    row_groups: u32,   // relu: workgroups per row of the dispatch grid
    first_column: u32, // max_pool, pack_strips, pack_quads: the dispatch's
    first_row: u32,    //   first column (pack_quads_vec4: vec4 of a row),
    first_plane: u32,  //   row and plane (a grid larger than one dispatch
                       //   takes several)
    scaled: u32,       // pack_quads: 1 to multiply channel c by scale[c]
}

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read_write> output: array<f32>;
@group(0) @binding(2) var<uniform> params: OpParams;

const WORKGROUP: u32 = 256u;

// The index this invocation writes. The grid is 2-D (row_groups × rows of
// workgroups), so that more than 65,535 workgroups of values fit one dispatch.
fn value_index(id: vec3<u32>) -> u32 {
    return id.y * params.row_groups * WORKGROUP + id.x;
}

// ReLU in place: output[i] = max(output[i], 0).
@compute @workgroup_size(256, 1, 1)
fn relu(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = value_index(id);
    if (i >= params.count) {
        return;
    }
    output[i] = max(output[i], 0.0);
}

// Max pooling: output[c, oy, ox] = the largest input value of the size×size
// window whose top-left corner is (oy·stride, ox·stride), read row by row.
// The host dispatches (ceil(OW/64), OH, C) workgroups (in several
// dispatches when one is too small): x is the output column, y the row and
// z the channel.
@compute @workgroup_size(64, 1, 1)
fn max_pool(@builtin(global_invocation_id) id: vec3<u32>) {
    let out_x = id.x + params.first_column;
    let out_y = id.y + params.first_row;
    let channel = id.z + params.first_plane;
    if (out_x >= params.out_width) {
        return;
    }
    let origin_y = out_y * params.stride;
    let origin_x = out_x * params.stride;
    // Start from the window's first value (its top-left corner), as if from
    // −infinity, which WGSL cannot write: a window of −infinity pools to
    // −infinity, as in PyTorch.
    var largest = input[(channel * params.in_height + origin_y) * params.in_width + origin_x];
    for (var ky = 0u; ky < params.size; ky++) {
        for (var kx = 0u; kx < params.size; kx++) {
            let in_y = origin_y + ky;
            let in_x = origin_x + kx;
            let input_index = (channel * params.in_height + in_y) * params.in_width + in_x;
            largest = max(largest, input[input_index]);
        }
    }
    output[(channel * params.out_height + out_y) * params.out_width + out_x] = largest;
}

// The fast shader's input strips: value x of strip row r, where row r is
// (group, strip, y, c) nested in that order, is the input at padded row y
// and column strip·strip_pixels·stride − pad_left + x of channel
// group·channels + c, or zero in the padding. The host dispatches
// (ceil(strip_width/64), strip_rows, G·strips·C/G) workgroups: x is the
// column in the strip, y the padded row and z the (group, strip, c) plane.
@compute @workgroup_size(64, 1, 1)
fn pack_strips(@builtin(global_invocation_id) id: vec3<u32>) {
    let x = id.x + params.first_column;
    let y = id.y + params.first_row;
    let plane_index = id.z + params.first_plane;
    if (x >= params.strip_width) {
        return;
    }
    let c = plane_index % params.channels;
    let strip = (plane_index / params.channels) % params.strips;
    let group = plane_index / (params.channels * params.strips);
    let r = ((group * params.strips + strip) * params.strip_rows + y) * params.channels + c;
    let in_y = i32(y) - i32(params.pad_top);
    let first_x = i32(strip * params.strip_pixels * params.stride) - i32(params.pad_left);
    let in_x = first_x + i32(x);
    var value = 0.0;
    if (in_y >= 0 && in_y < i32(params.in_height) && in_x >= 0 && in_x < i32(params.in_width)) {
        let plane = group * params.channels + c;
        value = input[(plane * params.in_height + u32(in_y)) * params.in_width + u32(in_x)];
    }
    output[r * params.strip_width + x] = value;
}

// The subgroup shader's input, [G, Q, HP, WP] vec4s (`gpu::fast::subgroup`):
// the vec4 at (group, quad, padded row y, padded column x) holds, in lane
// ci, the input at row y − pad_top and column x − pad_left of channel
// group·channels + quad·4 + ci, or zero in the padding and for the channels
// past C/G that fill the last quad. One invocation per vec4: the host
// dispatches (ceil(WP/64), HP, G·Q) workgroups: x is the padded column, y
// the padded row and z the (group, quad) plane. Fields: channels = C/G,
// strips = Q, strip_rows = HP, strip_width = WP.
@group(0) @binding(1) var<storage, read_write> quads: array<vec4<f32>>;
// With `scaled`, a factor per channel of the input: a network's
// Mul of maps [1, C, H, W] by [1, C, 1, 1] (squeeze-and-excitation), packed
// for the conv that reads its product (`net::quads`). The same product,
// x · scale[c], as the Mul computes.
@group(0) @binding(3) var<storage, read> scale: array<f32>;

// The factors of the 4 channels from `channel` (the last quad's missing
// channels read the last one's) where the pack is `scaled`, else ones.
fn quad_scale(channel: u32, last: u32) -> vec4<f32> {
    if (params.scaled == 0u) {
        return vec4(1.0);
    }
    return vec4(scale[channel], scale[channel + min(1u, last)], scale[channel + min(2u, last)],
                scale[channel + min(3u, last)]);
}

@compute @workgroup_size(64, 1, 1)
fn pack_quads(@builtin(global_invocation_id) id: vec3<u32>) {
    // No branches around the loads: a software GPU reads memory one lane at
    // a time, and a load under a branch costs it far more. An invocation
    // past the last column writes the last column again (the same values);
    // one in the padding reads the image's first value and writes zero.
    let x = min(id.x + params.first_column, params.strip_width - 1u);
    let y = id.y + params.first_row;
    let quad_index = id.z + params.first_plane; // group · Q + quad
    let first = (quad_index % params.strips) * 4u;
    let group = quad_index / params.strips;
    let in_y = i32(y) - i32(params.pad_top);
    let in_x = i32(x) - i32(params.pad_left);
    let inside = in_y >= 0 && in_y < i32(params.in_height) && in_x >= 0 && in_x < i32(params.in_width);
    let plane_len = params.in_height * params.in_width;
    let pixel = select(0u, u32(in_y) * params.in_width + u32(in_x), inside);
    let at = (group * params.channels + first) * plane_len + pixel;
    // Channels of the group from this quad's first on: the last quad's
    // missing channels read the group's last one again, and are zeroed.
    let last = params.channels - first - 1u;
    let read = vec4(input[at], input[at + min(1u, last) * plane_len],
                    input[at + min(2u, last) * plane_len], input[at + min(3u, last) * plane_len]);
    let value = read * quad_scale(group * params.channels + first, last);
    let keep = vec4(inside) & (vec4(0u, 1u, 2u, 3u) <= vec4(last));
    quads[(quad_index * params.strip_rows + y) * params.strip_width + x] = select(vec4(0.0), value, keep);
}

// pack_quads for an input whose width W is a multiple of 4, read as vec4s:
// one invocation per 4 adjacent input pixels of one row of one quad, not
// per padded vec4. Its 4 vec4 loads, one per channel of the quad, become
// the 4 pixels' vec4s of 4 channels. The same index math as pack_quads for
// the pixels inside the input; the padding is left as the buffer holds it,
// which the host clears first. A software GPU reads memory one lane at a
// time, and a load costs it about the same whatever its width: a quarter
// of pack_quads' loads. The host dispatches (ceil(W/4/8), ceil(H/8), G·Q)
// workgroups of 8×8: x the vec4 of the row, y the row, z the plane.
@group(0) @binding(0) var<storage, read> input_vec4s: array<vec4<f32>>;

@compute @workgroup_size(8, 8, 1)
fn pack_quads_vec4(@builtin(global_invocation_id) id: vec3<u32>) {
    let row_vecs = params.in_width / 4u;
    let plane_vecs = params.in_height * row_vecs;
    // Past the row's or the plane's end: the last 4 pixels again (the same
    // values).
    let i = min(id.x + params.first_column, row_vecs - 1u);
    let y = min(id.y + params.first_row, params.in_height - 1u);
    let n = y * row_vecs + i;
    let quad_index = id.z + params.first_plane; // group · Q + quad
    let first = (quad_index % params.strips) * 4u;
    let group = quad_index / params.strips;
    let at = (group * params.channels + first) * plane_vecs + n;
    // The last quad's missing channels read the group's last one again, and
    // are zeroed.
    let last = params.channels - first - 1u;
    let factor = quad_scale(group * params.channels + first, last);
    let c0 = input_vec4s[at] * factor.x;
    let c1 = input_vec4s[at + min(1u, last) * plane_vecs] * factor.y;
    let c2 = input_vec4s[at + min(2u, last) * plane_vecs] * factor.z;
    let c3 = input_vec4s[at + min(3u, last) * plane_vecs] * factor.w;
    let keep = vec4(0u, 1u, 2u, 3u) <= vec4(last);
    let x = (quad_index * params.strip_rows + y + params.pad_top) * params.strip_width + i * 4u + params.pad_left;
    quads[x] = select(vec4(0.0), vec4(c0.x, c1.x, c2.x, c3.x), keep);
    quads[x + 1u] = select(vec4(0.0), vec4(c0.y, c1.y, c2.y, c3.y), keep);
    quads[x + 2u] = select(vec4(0.0), vec4(c0.z, c1.z, c2.z, c3.z), keep);
    quads[x + 3u] = select(vec4(0.0), vec4(c0.w, c1.w, c2.w, c3.w), keep);
}
