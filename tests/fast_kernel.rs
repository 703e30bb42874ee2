//! The fast shader's two kernels against the CPU reference at the edges of
//! their blocking, each as the default picks it ("fast") and on every layer
//! ("fast-subgroup", "fast-windows"): the subgroup kernel (8 pixels × 8
//! filters per invocation, quads of channels; depthwise layers 8 pixels × 4
//! channels) where the GPU has subgroups, and the uniform-window kernel (8
//! pixels × 16 filters, strips and bands of tiles, chunks of filter blocks,
//! the storage-buffer fallback) on every GPU; and
//! strides that leave fewer than 8 output columns, up to `u32::MAX`. Random
//! shapes and geometry run on every engine in gpu_vs_cpu.rs.
//!
//! `measure_fast_vs_direct_1024x768` (ignored) prints the throughput of both
//! shaders on a 1024×768 photo with 32 filters of 5×5:
//! `cargo test --release --test fast_kernel -- --ignored --nocapture`.

mod common;

use std::time::Instant;

use common::{ABS, REL, assert_close, random_image, random_layer, rng};
use convmaps::cpu;
use convmaps::engine::{Engine, GpuEngine};
use convmaps::gpu::ShaderKind;
use convmaps::layer::{Activation, LayerSpec, Padding};

/// Runs `spec` over a random `height`×`width` input on the fast shader (as
/// it picks its kernel, and on each kernel) and on the CPU, and compares.
fn check(spec: LayerSpec, height: u32, width: u32, seed: u64) {
    for kernel in ["fast", "fast-windows", "fast-subgroup"] {
        if let Some(fast) = common::engine(kernel) {
            common::assert_matches_reference(fast, &mut rng(seed), spec, height, width);
        }
    }
}

#[test]
fn one_filter() {
    check(LayerSpec::new(3, 1, 3), 10, 12, 1);
}

#[test]
fn filter_counts_around_the_block_of_16() {
    for filters in [15, 16, 17, 31, 33] {
        check(LayerSpec::new(3, filters, 3), 9, 13, filters as u64);
    }
}

#[test]
fn rows_of_taps_at_widths_around_the_pixel_block() {
    // Kernels 2 to 7 wide with dilation 1 and stride 1 or 2 run the
    // subgroup kernel's pipelines that load each row's columns once (10 or
    // 17 for 3 taps): output widths around multiples of its 8 pixels (the
    // last pixels of a row read past it), channels that leave the last quad
    // part-empty, groups, and a kernel 3 wide but 1 or 5 tall.
    for stride in [1, 2] {
        for (width, channels, groups) in [
            (7, 3, 1),
            (8, 4, 1),
            (9, 5, 1),
            (15, 8, 2),
            (16, 12, 3),
            (17, 6, 2),
        ] {
            let spec = LayerSpec {
                padding: Padding::uniform(1),
                groups,
                stride,
                ..LayerSpec::new(channels, 6 * groups, 3)
            };
            check(spec, 5 * stride, width * stride, width as u64);
        }
        for height in [1, 5] {
            let spec = LayerSpec {
                kernel_height: height,
                stride,
                ..LayerSpec::new(9, 10, 3)
            };
            check(spec, 7 * stride, 19 * stride, height as u64);
        }
        // Kernels 2, 5 and 7 wide (up to 7·2 + 7 = 21 columns a row).
        for (kernel, width, channels, groups) in [(2, 9, 8, 1), (5, 7, 12, 2), (7, 13, 9, 1)] {
            let spec = LayerSpec {
                padding: Padding::uniform(kernel / 2),
                groups,
                stride,
                ..LayerSpec::new(channels, 9 * groups, kernel)
            };
            check(spec, 4 * stride + kernel, width * stride, kernel as u64);
        }
    }
}

#[test]
fn depthwise_layers_at_widths_around_the_pixel_block() {
    // One filter per channel (G = C = K): the subgroup kernel's depthwise
    // entry point, 8 pixels × 4 channels per invocation. Channel counts that
    // leave the last quad part-empty, strides 1 and 2, kernels 2, 3, 5 and
    // 7 wide (rows of taps loaded once), dilation (the general loop),
    // widths around 8.
    let cases = [
        (3, 3, 1, 1, 7),
        (4, 3, 1, 1, 8),
        (6, 3, 2, 1, 17),
        (9, 5, 1, 1, 9),
        (5, 5, 2, 2, 16),
        (12, 3, 1, 2, 15),
        (8, 5, 2, 1, 9),
        (5, 7, 2, 1, 8),
        (4, 7, 1, 1, 13),
        (6, 2, 1, 1, 7),
    ];
    for (channels, kernel, stride, dilation, width) in cases {
        let spec = LayerSpec {
            stride,
            dilation,
            padding: Padding::uniform(kernel / 2),
            groups: channels,
            ..LayerSpec::new(channels, channels, kernel)
        };
        check(spec, 6 + kernel, width + 2 * kernel, width as u64);
    }
}

#[test]
fn one_pixel_wide_input_and_output() {
    check(LayerSpec::new(3, 4, 1), 6, 1, 1);
    let tall = LayerSpec {
        kernel_width: 1,
        ..LayerSpec::new(3, 5, 3)
    };
    check(tall, 9, 1, 2);
    // A 3-wide kernel over a 3-wide photo: one output column.
    check(LayerSpec::new(3, 6, 3), 7, 3, 3);
}

#[test]
fn widths_that_are_not_multiples_of_the_pixel_block() {
    for width in [2, 7, 9, 12, 15, 17, 63, 65, 71] {
        check(LayerSpec::new(3, 3, 2), 4, width + 1, width as u64);
    }
}

#[test]
fn three_groups() {
    // One filter per group, then several (not a multiple of 16), with
    // channels per group above one.
    check(
        LayerSpec {
            groups: 3,
            ..LayerSpec::new(3, 3, 3)
        },
        11,
        14,
        1,
    );
    check(
        LayerSpec {
            groups: 3,
            ..LayerSpec::new(6, 21, 3)
        },
        9,
        18,
        2,
    );
}

#[test]
fn no_bias() {
    let spec = LayerSpec {
        bias: false,
        ..LayerSpec::new(3, 20, 3)
    };
    check(spec, 13, 19, 1);
}

#[test]
fn relu_after_the_bias() {
    let spec = LayerSpec {
        activation: Activation::Relu,
        ..LayerSpec::new(3, 18, 3)
    };
    check(spec, 12, 21, 1);
    let no_bias = LayerSpec {
        bias: false,
        ..spec
    };
    check(no_bias, 12, 21, 2);
}

/// `filters` 3×3 filters with `stride`, dilation 2 and an uneven padding.
fn dilated_and_padded(filters: u32, stride: u32) -> LayerSpec {
    LayerSpec {
        stride,
        dilation: 2,
        padding: Padding {
            top: 2,
            bottom: 1,
            left: 3,
            right: 2,
        },
        ..LayerSpec::new(3, filters, 3)
    }
}

#[test]
fn stride_3_dilation_2_and_padding() {
    check(dilated_and_padded(7, 3), 23, 29, 1);
}

#[test]
fn a_stride_of_u32_max_leaves_one_pixel() {
    // A 9×7 input holds the first 3×3 window; the next would start
    // 4294967295 pixels on. The strip holds that one window, not the 7
    // strides that the 7 missing pixels of the 8-pixel block would reach.
    let spec = LayerSpec {
        stride: u32::MAX,
        ..LayerSpec::new(3, 5, 3)
    };
    assert_eq!(spec.output_size(9, 7).unwrap(), (1, 1));
    check(spec, 9, 7, 1);
}

#[test]
fn a_stride_wider_than_the_padded_photo() {
    let spec = dilated_and_padded(17, 50);
    assert_eq!(spec.output_size(9, 7).unwrap(), (1, 1));
    check(spec, 9, 7, 1);
    let huge = LayerSpec {
        stride: u32::MAX,
        padding: Padding::uniform(4),
        ..LayerSpec::new(3, 4, 3)
    };
    assert_eq!(huge.output_size(9, 7).unwrap(), (1, 1));
    check(huge, 9, 7, 2);
}

#[test]
fn strides_that_leave_2_to_7_columns_of_a_wide_photo() {
    // (300 − 3) / stride + 1 output columns: fewer than one block of 8
    // pixels, the rest of the block past the right edge. 1 to 3 rows.
    for out_width in 2..=7u32 {
        let stride = 297 / (out_width - 1);
        let spec = LayerSpec {
            stride,
            ..LayerSpec::new(3, 6, 3)
        };
        assert_eq!(spec.output_size(120, 300).unwrap().1, out_width);
        check(spec, 120, 300, out_width as u64);
        let padded = LayerSpec {
            padding: Padding::uniform(1),
            activation: Activation::Relu,
            ..spec
        };
        check(padded, 120, 300, 10 + out_width as u64);
    }
}

#[test]
fn an_output_cut_into_several_strips_and_bands() {
    // 296 columns and 146 rows: 5 strips of 64 columns, 3 bands of rows.
    check(LayerSpec::new(3, 4, 5), 150, 300, 1);
}

#[test]
fn weights_split_into_chunks_of_filter_blocks() {
    // 64·3·3 weights per filter: one 16-filter block fills most of a
    // 64 KiB window, so 40 filters take three dispatches per tile.
    check(LayerSpec::new(64, 40, 3), 8, 19, 1);
}

#[test]
fn a_kernel_too_large_for_uniform_windows_runs_from_storage_buffers() {
    // One block of 16 filters of 64·9·9 weights is 324 KiB.
    check(LayerSpec::new(64, 17, 9), 11, 12, 1);
}

#[test]
fn narrow_tiles_run_with_invocations_along_rows() {
    // 128·3·3 and 120·3·3 weights per filter: blocks too large for a
    // uniform window; outputs 13 and 31 pixels wide: narrow tiles, whose
    // invocations the host lays along the rows (`tile.lanes_along_rows`).
    check(LayerSpec::new(128, 20, 3), 25, 15, 3);
    let strided = LayerSpec {
        stride: 2,
        ..LayerSpec::new(120, 33, 3)
    };
    check(strided, 21, 63, 4);
    // From uniform windows, a tile of one block of 8 pixels: 7 wide.
    check(LayerSpec::new(16, 20, 3), 20, 9, 5);
}

/// Prints compile time and GFLOP/s of both shaders for a 1024×768 RGB photo
/// and 32 filters of 5×5. No assertion on time. (Set
/// `MESA_SHADER_CACHE_DISABLE=true` to time a cold compile on lavapipe.)
#[test]
#[ignore]
fn measure_fast_vs_direct_1024x768() {
    let Some(gpu) = common::gpu() else { return };
    let mut rng = rng(5);
    let input = random_image(&mut rng, 3, 768, 1024);
    let layer = random_layer(&mut rng, LayerSpec::new(3, 32, 5));
    let (out_height, out_width) = layer.spec.output_size(768, 1024).unwrap();
    let flops = layer.spec.flops(out_height, out_width);
    let gflops = |seconds: f64| flops / seconds / 1e9;

    // Compile time: the fast pipeline compiles, then dispatches once so
    // that a GPU that compiles lazily (lavapipe) finishes the job there. The
    // direct pipeline, likewise timed up to its first (tiny) run, for scale.
    let started = Instant::now();
    let fast = GpuEngine::new(gpu.clone(), ShaderKind::Fast).unwrap();
    let created = started.elapsed();
    let tiny = random_image(&mut rng, 3, 8, 8);
    let tiny_layer = random_layer(&mut rng, LayerSpec::new(3, 16, 3));
    let started = Instant::now();
    fast.run(&tiny, &tiny_layer).unwrap();
    let first = started.elapsed();
    let started = Instant::now();
    let direct = GpuEngine::new(gpu.clone(), ShaderKind::Direct).unwrap();
    direct.run(&tiny, &tiny_layer).unwrap();
    let direct_created = started.elapsed();
    println!(
        "fast: compiled {created:.1?} (and one dispatch), then a tiny run {first:.1?}; \
         direct: compiled and a tiny run {direct_created:.1?}"
    );

    let expected = cpu::conv2d_direct(&input, &layer).unwrap();
    let measure = |name: &str, engine: &GpuEngine| {
        let started = Instant::now();
        let (maps, t) = engine.run(&input, &layer).unwrap();
        let total = started.elapsed();
        assert_close(&format!("{name} 1024×768"), &maps, &expected, ABS, REL);
        println!(
            "{:7} compute {:.1?} = {:.2} GFLOP/s (upload {:.1?}, readback {:.1?}, total {total:.1?} = {:.2} GFLOP/s)",
            format!("{name}:"),
            t.compute,
            gflops(t.compute.as_secs_f64()),
            t.upload,
            t.readback,
            gflops(total.as_secs_f64()),
        );
    };
    for _ in 0..3 {
        measure("fast", &fast);
    }
    measure("direct", &direct);
}
