//! The GPU kernel against its CPU twin on random shapes, and the bias
//! property: one bias per filter, added once, everywhere.

mod common;

use common::{assert_close, random_image, random_layer, rng};
use convmaps::cpu;
use convmaps::gpu::ConvKernel;
use convmaps::layer::{Activation, LayerSpec};

/// GPU and CPU sum the same terms in the same order; the GPU may fuse
/// multiply-adds, so allow a few ulps of the sum's magnitude.
const ABS: f32 = 1e-5;
const REL: f32 = 1e-5;

#[test]
fn gpu_matches_cpu_on_random_shapes_not_multiples_of_the_workgroup() {
    let Some(gpu) = common::gpu() else { return };
    // (filters, kernel, height, width): non-square, odd, and not multiples of 8.
    let shapes = [
        (1, 1, 1, 1),
        (1, 3, 3, 3),
        (2, 3, 9, 17),
        (5, 5, 23, 11),
        (7, 2, 8, 31),
        (8, 7, 19, 20),
        (13, 4, 33, 10),
        (32, 5, 21, 26),
    ];
    let mut rng = rng(7);
    for (filters, kernel, height, width) in shapes {
        let input = random_image(&mut rng, 3, height, width);
        let layer = random_layer(&mut rng, LayerSpec::new(3, filters, kernel));
        let expected = cpu::conv2d_direct(&input, &layer).unwrap();
        let actual = common::run_gpu(gpu, &input, &layer);
        assert_close(
            &format!("K={filters} F={kernel} H={height} W={width}"),
            &actual,
            &expected,
            ABS,
            REL,
        );
    }
}

#[test]
fn gpu_matches_cpu_on_random_geometry() {
    let Some(gpu) = common::gpu() else { return };
    let mut rng = rng(11);
    for _ in 0..40 {
        let (spec, height, width) = common::random_geometry(&mut rng, 4, 20);
        let input = random_image(&mut rng, spec.in_channels, height, width);
        let layer = random_layer(&mut rng, spec);
        let expected = cpu::conv2d_direct(&input, &layer).unwrap();
        let actual = common::run_gpu(gpu, &input, &layer);
        assert_close(
            &format!("{spec:?} on {height}×{width}"),
            &actual,
            &expected,
            ABS,
            REL,
        );
    }
}

/// Adding δ to bias[k] shifts map k by δ everywhere and leaves every other
/// map bit-identical.
fn check_bias_property(
    run: impl Fn(&convmaps::tensor::Tensor3, &convmaps::layer::Layer) -> convmaps::tensor::Tensor3,
) {
    let mut rng = rng(3);
    let input = random_image(&mut rng, 3, 12, 15);
    let layer = random_layer(&mut rng, LayerSpec::new(3, 4, 3));
    let before = run(&input, &layer);
    let delta = 0.75f32;
    for shifted in 0..4 {
        let mut changed = layer.clone();
        changed.bias[shifted] += delta;
        let after = run(&input, &changed);
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

#[test]
fn bias_shifts_only_its_own_map_on_cpu() {
    check_bias_property(|input, layer| cpu::conv2d_direct(input, layer).unwrap());
}

#[test]
fn bias_shifts_only_its_own_map_on_gpu() {
    let Some(gpu) = common::gpu() else { return };
    check_bias_property(|input, layer| common::run_gpu(gpu, input, layer));
}

/// ReLU in the shader (and the twin) is max(0, ·) of the raw output, after the bias.
fn check_relu(
    run: impl Fn(&convmaps::tensor::Tensor3, &convmaps::layer::Layer) -> convmaps::tensor::Tensor3,
) {
    let mut rng = rng(5);
    let input = random_image(&mut rng, 3, 9, 14);
    let mut layer = random_layer(&mut rng, LayerSpec::new(3, 5, 3));
    let raw = run(&input, &layer);
    layer.spec.activation = Activation::Relu;
    let relu = run(&input, &layer);
    assert!(
        raw.data.iter().any(|&v| v < 0.0),
        "the case needs negative outputs"
    );
    for (i, (&r, &a)) in raw.data.iter().zip(&relu.data).enumerate() {
        assert_eq!(a, r.max(0.0), "element {i}: raw {r}, relu {a}");
    }
}

#[test]
fn relu_is_max_zero_of_the_biased_sum_on_cpu() {
    check_relu(|input, layer| cpu::conv2d_direct(input, layer).unwrap());
}

#[test]
fn relu_is_max_zero_of_the_biased_sum_on_gpu() {
    let Some(gpu) = common::gpu() else { return };
    check_relu(|input, layer| common::run_gpu(gpu, input, layer));
}

#[test]
fn gpu_timestamps_time_the_compute_pass_when_the_device_has_them() {
    let Some(gpu) = common::gpu() else { return };
    let mut rng = rng(9);
    let input = random_image(&mut rng, 3, 40, 50);
    let layer = random_layer(&mut rng, LayerSpec::new(3, 8, 5));
    let (_, timings) = gpu.1.run(&gpu.0, &input, &layer).unwrap();
    if gpu
        .0
        .device
        .features()
        .contains(wgpu::Features::TIMESTAMP_QUERY)
    {
        let pass = timings.gpu_compute.expect("the device has timestamps");
        assert!(
            !pass.is_zero() && pass <= timings.compute + std::time::Duration::from_millis(5),
            "GPU pass {pass:?} against wall compute {:?}",
            timings.compute
        );
    } else {
        assert!(timings.gpu_compute.is_none());
    }
}

#[test]
fn threads_sharing_one_gpu_each_get_their_own_results() {
    let Some((gpu, fast)) = common::fast() else {
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
                    let (maps, _) = fast.run(gpu, &input, &layer).unwrap();
                    let expected = cpu::conv2d_direct(&input, &layer).unwrap();
                    assert_close("shared GPU", &maps, &expected, ABS, REL);
                }
            });
        }
    });
}
