//! Every engine against the CPU reference on random shapes and geometry,
//! and the bias property (one bias per filter, added once, everywhere) and
//! ReLU on every engine. Each body runs once per engine of the test table
//! (`engine_tests!` in tests/common).

mod common;

use common::{ABS, REL, assert_close, assert_matches_reference, random_image, random_layer, rng};
use convmaps::cpu;
use convmaps::engine::Engine;
use convmaps::layer::{Activation, LayerSpec};

fn matches_the_reference_on_shapes_not_multiples_of_the_blocks(engine: &dyn Engine) {
    // (filters, kernel, height, width): odd, non-square, not multiples of the
    // 8×8 workgroup, the 8-pixel block or the 16-filter block.
    let shapes = [
        (1, 1, 1, 1),
        (1, 3, 3, 3),
        (2, 3, 9, 17),
        (5, 5, 23, 11),
        (7, 2, 8, 31),
        (8, 7, 19, 20),
        (13, 4, 33, 10),
        (16, 5, 12, 16),
        (32, 5, 21, 26),
        (40, 3, 14, 70),
    ];
    let mut rng = rng(7);
    for (filters, kernel, height, width) in shapes {
        let spec = LayerSpec::new(3, filters, kernel);
        assert_matches_reference(engine, &mut rng, spec, height, width);
    }
}

fn matches_the_reference_on_random_geometry(engine: &dyn Engine) {
    let mut rng = rng(11);
    for _ in 0..40 {
        let (spec, height, width) = common::random_geometry(&mut rng, 12, 24);
        assert_matches_reference(engine, &mut rng, spec, height, width);
    }
}

/// Adding δ to bias[k] shifts map k by δ everywhere and leaves every other
/// map bit-identical.
fn bias_shifts_only_its_own_map(engine: &dyn Engine) {
    let mut rng = rng(3);
    let input = random_image(&mut rng, 3, 12, 15);
    let layer = random_layer(&mut rng, LayerSpec::new(3, 4, 3));
    let before = common::run(engine, &input, &layer);
    let delta = 0.75f32;
    for shifted in 0..4 {
        let mut changed = layer.clone();
        changed.bias[shifted] += delta;
        let after = common::run(engine, &input, &changed);
        for k in 0..4u32 {
            for (i, (&b, &a)) in before.plane(k).iter().zip(after.plane(k)).enumerate() {
                if k as usize == shifted {
                    assert!(
                        (a - b - delta).abs() <= 1e-5 * (1.0 + b.abs()),
                        "bias[{shifted}] += {delta}: map {k} element {i} moved from {b} to {a}"
                    );
                } else {
                    assert_eq!(
                        a, b,
                        "bias[{shifted}] += {delta} changed map {k} element {i}"
                    );
                }
            }
        }
    }
}

/// ReLU is max(0, ·) of the raw output, after the bias.
fn relu_is_max_zero_of_the_biased_sum(engine: &dyn Engine) {
    let mut rng = rng(5);
    let input = random_image(&mut rng, 3, 9, 14);
    let mut layer = random_layer(&mut rng, LayerSpec::new(3, 18, 3));
    let raw = common::run(engine, &input, &layer);
    layer.spec.activation = Activation::Relu;
    let relu = common::run(engine, &input, &layer);
    assert!(
        raw.data.iter().any(|&v| v < 0.0),
        "the case needs negative outputs"
    );
    for (i, (&r, &a)) in raw.data.iter().zip(&relu.data).enumerate() {
        assert_eq!(a, r.max(0.0), "element {i}: raw {r}, relu {a}");
    }
}

/// An input with the wrong channel count, or smaller than the kernel, is
/// refused as a mismatch, not a panic or a GPU error.
fn a_mismatched_input_is_refused(engine: &dyn Engine) {
    let mut rng = rng(1);
    let layer = random_layer(&mut rng, LayerSpec::new(3, 2, 3));
    for input in [
        random_image(&mut rng, 1, 8, 8),
        random_image(&mut rng, 3, 2, 8),
    ] {
        let error = engine.run(&input, &layer).unwrap_err();
        assert!(matches!(error, convmaps::Error::Mismatch(_)), "{error}");
    }
}

/// A stride larger than the input: one window per axis, a 1×1 map.
fn a_stride_larger_than_the_input_gives_one_pixel(engine: &dyn Engine) {
    let mut rng = rng(13);
    for stride in [8, 1000, u32::MAX] {
        let spec = LayerSpec {
            stride,
            ..LayerSpec::new(3, 5, 3)
        };
        let actual = assert_matches_reference(engine, &mut rng, spec, 9, 7);
        assert_eq!((actual.height, actual.width), (1, 1), "stride {stride}");
    }
}

engine_tests!(
    matches_the_reference_on_shapes_not_multiples_of_the_blocks,
    matches_the_reference_on_random_geometry,
    bias_shifts_only_its_own_map,
    relu_is_max_zero_of_the_biased_sum,
    a_mismatched_input_is_refused,
    a_stride_larger_than_the_input_gives_one_pixel,
);

#[test]
fn gpu_timestamps_are_reported_exactly_when_the_device_has_them() {
    let Some(engine) = common::engine("fast") else {
        return;
    };
    let Some(gpu) = common::gpu() else { return };
    let mut rng = rng(9);
    let input = random_image(&mut rng, 3, 40, 50);
    let layer = random_layer(&mut rng, LayerSpec::new(3, 8, 5));
    let (_, timings) = engine.run(&input, &layer).unwrap();
    assert_eq!(timings.gpu_compute.is_some(), gpu.has_timestamps());
    assert!(timings.gpu_compute.is_none_or(|pass| !pass.is_zero()));
}

#[test]
fn threads_sharing_one_engine_each_get_their_own_results() {
    let Some(engine) = common::engine("fast") else {
        return;
    };
    // Any thread's poll may run another's map callbacks; every run must
    // still read back its own maps.
    std::thread::scope(|scope| {
        for seed in 0..8u64 {
            scope.spawn(move || {
                let mut rng = rng(100 + seed);
                for _ in 0..100 {
                    let input = random_image(&mut rng, 3, 5, 6);
                    let layer = random_layer(&mut rng, LayerSpec::new(3, 4, 3));
                    let (maps, _) = engine.run(&input, &layer).unwrap();
                    let expected = cpu::conv2d_direct(&input, &layer).unwrap();
                    assert_close("shared GPU", &maps, &expected, ABS, REL);
                }
            });
        }
    });
}
