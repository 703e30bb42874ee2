//! The CPU reference: a loop-for-loop twin of `shaders/conv2d_direct.wgsl`,
//! with the same names and the same index math, used by `--backend cpu` and
//! by the tests that prove the GPU right.

use rayon::prelude::*;

use crate::error::Result;
use crate::layer::Layer;
use crate::pool::PoolSpec;
use crate::tensor::Tensor3;

/// Runs the layer over `input` `[C, H, W]` and returns the feature maps
/// `[K, OH, OW]`. Filters run in parallel; each output value is computed by
/// [`conv2d_direct_pixel`] exactly as one shader invocation computes it.
pub fn conv2d_direct(input: &Tensor3, layer: &Layer) -> Result<Tensor3> {
    let spec = &layer.spec;
    let (out_height, out_width) = layer.output_size_for(input)?;
    Ok(each_value(
        [spec.filters, out_height, out_width],
        |filter, out_x, out_y| conv2d_direct_pixel(input, layer, out_x, out_y, filter),
    ))
}

/// A `[planes, height, width]` tensor whose value `[p, y, x]` is
/// `value(p, x, y)`, as a shader's grid of invocations computes it: planes
/// in parallel, each row by row.
fn each_value(
    [planes, height, width]: [u32; 3],
    value: impl Fn(u32, u32, u32) -> f32 + Sync,
) -> Tensor3 {
    let mut output = Tensor3::zeros(planes, height, width);
    let plane_len = output.plane_len();
    if plane_len == 0 {
        return output;
    }
    output
        .data
        .par_chunks_mut(plane_len)
        .enumerate()
        .for_each(|(plane, values)| {
            for y in 0..height {
                for x in 0..width {
                    values[(y * width + x) as usize] = value(plane as u32, x, y);
                }
            }
        });
    output
}

/// One output value, `output[filter_index, out_y, out_x]`: the body of the
/// shader's `conv2d_direct` entry point, line for line.
pub fn conv2d_direct_pixel(
    input: &Tensor3,
    layer: &Layer,
    out_x: u32,
    out_y: u32,
    filter_index: u32,
) -> f32 {
    let spec = &layer.spec;
    let (in_height, in_width) = (input.height, input.width);
    let channels_per_group = spec.channels_per_group();
    let (kernel_height, kernel_width) = (spec.kernel_height, spec.kernel_width);
    let (stride, dilation) = (spec.stride, spec.dilation);

    // Filter k sees only the input channels of its group.
    let group = filter_index / spec.filters_per_group();
    let first_channel = group * channels_per_group;

    // Top-left corner of the window in input coordinates, signed for padding.
    let origin_y = (out_y * stride) as i64 - spec.padding.top as i64;
    let origin_x = (out_x * stride) as i64 - spec.padding.left as i64;

    let mut sum = 0.0f32;
    for c in 0..channels_per_group {
        let in_channel = first_channel + c;
        for ky in 0..kernel_height {
            let in_y = origin_y + (ky * dilation) as i64;
            if in_y < 0 || in_y >= in_height as i64 {
                continue;
            }
            for kx in 0..kernel_width {
                let in_x = origin_x + (kx * dilation) as i64;
                if in_x < 0 || in_x >= in_width as i64 {
                    continue;
                }
                let input_index =
                    ((in_channel * in_height + in_y as u32) * in_width + in_x as u32) as usize;
                let weight_index = (((filter_index * channels_per_group + c) * kernel_height + ky)
                    * kernel_width
                    + kx) as usize;
                sum += input.data[input_index] * layer.weight[weight_index];
            }
        }
    }

    // The filter's single bias, added once, after the whole window.
    if !layer.bias.is_empty() {
        sum += layer.bias[filter_index as usize];
    }

    // The activation, after the bias.
    spec.activation.apply(sum)
}

/// Max pooling of `input` `[C, H, W]` to `[C, OH, OW]`: the twin of
/// `max_pool` in `shaders/tensor_ops.wgsl`, one output value per invocation,
/// the window read row by row from its top-left corner.
pub fn max_pool(input: &Tensor3, pool: &PoolSpec) -> Result<Tensor3> {
    let (out_height, out_width) = pool.output_size(input.height, input.width)?;
    Ok(each_value(
        [input.channels, out_height, out_width],
        |channel, out_x, out_y| max_pool_pixel(input, pool, out_x, out_y, channel),
    ))
}

/// One pooled value, `output[channel, out_y, out_x]`: the largest input
/// value in its window.
pub fn max_pool_pixel(
    input: &Tensor3,
    pool: &PoolSpec,
    out_x: u32,
    out_y: u32,
    channel: u32,
) -> f32 {
    let origin_y = out_y * pool.stride;
    let origin_x = out_x * pool.stride;
    // Start from the window's first value (its top-left corner), as the
    // shader does: the same as starting from −infinity.
    let mut largest =
        input.data[((channel * input.height + origin_y) * input.width + origin_x) as usize];
    for ky in 0..pool.size {
        for kx in 0..pool.size {
            let in_y = origin_y + ky;
            let in_x = origin_x + kx;
            let input_index = ((channel * input.height + in_y) * input.width + in_x) as usize;
            largest = largest.max(input.data[input_index]);
        }
    }
    largest
}

/// ReLU in place, `max(x, 0)` for every value: the twin of `relu` in
/// `shaders/tensor_ops.wgsl`.
pub fn relu(tensor: &mut Tensor3) {
    tensor
        .data
        .par_iter_mut()
        .for_each(|value| *value = value.max(0.0));
}
