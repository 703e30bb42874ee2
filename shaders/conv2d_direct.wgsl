// conv2d_direct.wgsl: the teaching shader.
//
// One invocation computes ONE output pixel of ONE filter:
//
//   output[k, oy, ox] = activation(bias[k]
//       + sum over c in k's group, ky < kernel_height, kx < kernel_width of
//           input[c, oy·stride − pad_top + ky·dilation, ox·stride − pad_left + kx·dilation]
//           × weight[k, c − group_start, ky, kx])
//
// Every tensor is a flat row-major f32 array (PyTorch's layout):
//   input  [C, H, W]
//   weight [K, C/G, FH, FW]   (OIHW)
//   bias   [K]                (one value per filter, shared by every channel and position)
//   output [K, OH, OW]
//
// The CPU twin is `cpu::conv2d_direct_pixel` in src/cpu.rs: same names, same index math.

// Layer geometry, written by the host (`gpu::direct::Params`). All counts in elements.
struct Params {
    in_channels: u32,        // C
    in_height: u32,          // H
    in_width: u32,           // W
    filters: u32,            // K
    out_height: u32,         // OH
    out_width: u32,          // OW
    kernel_height: u32,      // FH
    kernel_width: u32,       // FW
    stride: u32,             // step between windows, in input pixels
    dilation: u32,           // step between taps inside a window, in input pixels
    pad_top: u32,            // zero rows above the image
    pad_left: u32,           // zero columns left of the image
    channels_per_group: u32, // C / G
    filters_per_group: u32,  // K / G
    has_bias: u32,           // 1: add bias[k]; 0: a layer without bias
    activation: u32,         // after the bias: 0 none, 1 ReLU (max(0, x))
}

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

// 8×8 pixels of one filter per workgroup. The host dispatches
// (ceil(OW/8), ceil(OH/8), K) workgroups, so x is the output column,
// y the output row and z the filter: no dimension comes near the
// 65,535-workgroups limit for any photo a user has.
@compute @workgroup_size(8, 8, 1)
fn conv2d_direct(@builtin(global_invocation_id) id: vec3<u32>) {
    let out_x = id.x;
    let out_y = id.y;
    let filter_index = id.z;
    // The grid is rounded up to whole workgroups: invocations past the
    // edge of the output have nothing to compute.
    if (out_x >= params.out_width || out_y >= params.out_height || filter_index >= params.filters) {
        return;
    }

    // Filter k sees only the input channels of its group.
    let group = filter_index / params.filters_per_group;
    let first_channel = group * params.channels_per_group;

    // Top-left corner of the window in input coordinates. Signed, because
    // padding puts it above or left of the image.
    let origin_y = i32(out_y * params.stride) - i32(params.pad_top);
    let origin_x = i32(out_x * params.stride) - i32(params.pad_left);

    var sum = 0.0;
    for (var c = 0u; c < params.channels_per_group; c++) {
        let in_channel = first_channel + c;
        for (var ky = 0u; ky < params.kernel_height; ky++) {
            let in_y = origin_y + i32(ky * params.dilation);
            // Zero padding: taps outside the image contribute nothing and are never read.
            if (in_y < 0 || in_y >= i32(params.in_height)) {
                continue;
            }
            for (var kx = 0u; kx < params.kernel_width; kx++) {
                let in_x = origin_x + i32(kx * params.dilation);
                if (in_x < 0 || in_x >= i32(params.in_width)) {
                    continue;
                }
                // input[in_channel, in_y, in_x]
                let input_index = (in_channel * params.in_height + u32(in_y)) * params.in_width + u32(in_x);
                // weight[filter_index, c, ky, kx]
                let weight_index = ((filter_index * params.channels_per_group + c) * params.kernel_height + ky) * params.kernel_width + kx;
                sum += input[input_index] * weight[weight_index];
            }
        }
    }

    // The filter's single bias, added once, after the whole window.
    if (params.has_bias != 0u) {
        sum += bias[filter_index];
    }

    // The activation, after the bias.
    if (params.activation == 1u) {
        sum = max(sum, 0.0);
    }

    // output[filter_index, out_y, out_x]
    output[(filter_index * params.out_height + out_y) * params.out_width + out_x] = sum;
}
