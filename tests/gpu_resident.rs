//! Maps kept in GPU memory between steps (`gpu::resident`): ReLU and max
//! pooling on the GPU against their CPU twins, convs recorded from GPU
//! buffers against the same shader's run from host memory, a whole chain
//! against the CPU reference, and the errors a recording returns.

mod common;

use common::{assert_close, below, random_image, random_layer, rng, uniform};
use convmaps::cpu;
use convmaps::error::Error;
use convmaps::gpu::{BandRecording, Gpu, ShaderKind, TensorOps};
use convmaps::layer::{Layer, LayerSpec, Padding};
use convmaps::pool::PoolSpec;
use convmaps::tensor::Tensor3;
use std::sync::Arc;

/// A `[channels, height, width]` tensor uniform in `[-1, 1)`: half of it
/// negative, for ReLU and for pooling windows that hold no positive value.
fn signed_tensor(seed: u64, channels: u32, height: u32, width: u32) -> Tensor3 {
    let mut rng = rng(seed);
    let len = channels as usize * height as usize * width as usize;
    let data = (0..len).map(|_| uniform(&mut rng, -1.0, 1.0)).collect();
    Tensor3::from_vec(channels, height, width, data)
}

/// Runs `record` in a fresh recording and reads back the tensors it asks
/// for, in order.
fn record_and_read(
    gpu: &Gpu,
    ops: &TensorOps,
    record: impl FnOnce(&mut BandRecording<'_>),
) -> Vec<Tensor3> {
    let mut band = BandRecording::new(gpu, ops);
    record(&mut band);
    band.submit()
        .expect("submit")
        .into_iter()
        .map(|run| run.into_tensor(gpu).expect("read back").0)
        .collect()
}

/// The test binary's GPU and its tensor ops; `None` after a visible skip
/// when there is no adapter.
fn gpu_and_ops() -> Option<(Arc<Gpu>, TensorOps)> {
    let gpu = common::gpu()?;
    let ops = TensorOps::new(&gpu).unwrap();
    Some((gpu, ops))
}

/// Max-pools `input` with `pool` in a recording on the GPU.
fn max_pool_on_gpu(gpu: &Gpu, ops: &TensorOps, input: &Tensor3, pool: &PoolSpec) -> Tensor3 {
    let mut read = record_and_read(gpu, ops, |band| {
        let tensor = band.upload(input).unwrap();
        let pooled = band.max_pool(&tensor, pool).unwrap();
        band.read_back(&pooled);
    });
    read.remove(0)
}

/// The workgroups one dimension of a dispatch holds on `gpu` (at most the
/// usual 65,535).
fn max_workgroups(gpu: &Gpu) -> u32 {
    gpu.limits()
        .max_compute_workgroups_per_dimension
        .min(65_535)
}

/// Panics naming the first value where `actual` and `expected` differ in
/// any bit (or shape).
fn assert_identical(what: &str, actual: &Tensor3, expected: &Tensor3) {
    assert_eq!(
        (actual.channels, actual.height, actual.width),
        (expected.channels, expected.height, expected.width),
        "{what}: shapes differ"
    );
    let differs = |(a, e): (&f32, &f32)| a.to_bits() != e.to_bits();
    if let Some(i) = actual.data.iter().zip(&expected.data).position(differs) {
        panic!(
            "{what}: value {i} is {} but expected {}",
            actual.data[i], expected.data[i]
        );
    }
}

#[test]
fn gpu_relu_equals_cpu_relu_exactly_including_a_grid_taller_than_one_row_of_workgroups() {
    let Some((gpu, ops)) = gpu_and_ops() else {
        return;
    };
    // One more row of 256-invocation workgroups than one dimension of the
    // dispatch holds (on a GPU with the usual 65,535 limit).
    let max_groups = max_workgroups(&gpu);
    let shapes = [
        (1, 1, 1),
        (3, 5, 7),
        (2, 17, 33),
        (1, 1, max_groups * 256 + 300),
    ];
    for (seed, (channels, height, width)) in shapes.into_iter().enumerate() {
        let input = signed_tensor(seed as u64, channels, height, width);
        let read = record_and_read(&gpu, &ops, |band| {
            let tensor = band.upload(&input).unwrap();
            band.relu(&tensor).unwrap();
            band.read_back(&tensor);
        });
        let mut expected = input.clone();
        cpu::relu(&mut expected);
        assert_identical(
            &format!("relu of {channels}×{height}×{width}"),
            &read[0],
            &expected,
        );
    }
}

#[test]
fn gpu_max_pool_equals_cpu_max_pool_exactly_for_windows_2_and_3_strides_1_to_3() {
    let Some((gpu, ops)) = gpu_and_ops() else {
        return;
    };
    let shapes = [(1, 3, 3), (2, 7, 9), (3, 12, 5), (4, 15, 16), (1, 33, 31)];
    let mut seed = 0;
    for (channels, height, width) in shapes {
        for size in [1, 2, 3] {
            for stride in [1, 2, 3] {
                let pool = PoolSpec { size, stride };
                seed += 1;
                let input = signed_tensor(seed, channels, height, width);
                let read = max_pool_on_gpu(&gpu, &ops, &input, &pool);
                let expected = cpu::max_pool(&input, &pool).unwrap();
                let what = format!("maxpool{size}/s{stride} of {channels}×{height}×{width}");
                assert_identical(&what, &read, &expected);
            }
        }
    }
}

#[test]
fn a_window_of_negative_infinity_pools_to_negative_infinity_on_the_gpu_and_the_cpu() {
    let Some((gpu, ops)) = gpu_and_ops() else {
        return;
    };
    // Left half −∞, right half −∞ but for one −5 per row.
    let mut input = Tensor3::from_vec(1, 2, 4, vec![f32::NEG_INFINITY; 8]);
    input.data[3] = -5.0;
    input.data[7] = -5.0;
    let pool = PoolSpec::square(2);
    let read = max_pool_on_gpu(&gpu, &ops, &input, &pool);
    let expected = Tensor3::from_vec(1, 1, 2, vec![f32::NEG_INFINITY, -5.0]);
    assert_identical("cpu", &cpu::max_pool(&input, &pool).unwrap(), &expected);
    assert_identical("gpu", &read, &expected);
}

#[test]
fn a_large_max_pool_runs_over_a_grid_taller_than_one_row_of_workgroups() {
    let Some((gpu, ops)) = gpu_and_ops() else {
        return;
    };
    let max_groups = max_workgroups(&gpu);
    // A 1×1 window with stride 1 copies every value: one invocation each.
    let input = signed_tensor(5, 1, 2, max_groups * 128 + 77);
    let pool = PoolSpec { size: 1, stride: 1 };
    let read = max_pool_on_gpu(&gpu, &ops, &input, &pool);
    assert_identical("maxpool1 of a wide band", &read, &input);
}

/// For each shader: the conv recorded over a tensor uploaded to the GPU
/// gives bit for bit what the same shader gives from the host tensor
/// (`ConvPipeline::run`), on random geometry (groups, stride, padding,
/// dilation, rectangular kernels, with and without bias, ReLU), on a band
/// wide enough for several of the fast shader's strips, and on a layer too
/// large for its uniform windows.
#[test]
fn conv_recorded_from_gpu_memory_equals_the_same_shaders_host_run_exactly() {
    let Some((gpu, ops)) = gpu_and_ops() else {
        return;
    };
    let mut rng = rng(21);
    let mut cases: Vec<(Tensor3, Layer)> = (0..24)
        .map(|_| {
            let (spec, height, width) = common::random_geometry(&mut rng, 10, 20);
            let input = random_image(&mut rng, spec.in_channels, height, width);
            (input, random_layer(&mut rng, spec))
        })
        .collect();
    let wide = LayerSpec {
        stride: 2,
        padding: Padding::uniform(1),
        ..LayerSpec::new(2, 5, 3)
    };
    cases.push((
        random_image(&mut rng, 2, 4, 2200),
        random_layer(&mut rng, wide),
    ));
    let storage = LayerSpec {
        bias: false,
        ..LayerSpec::new(64, 3, 11)
    };
    cases.push((
        random_image(&mut rng, 64, 13, 12),
        random_layer(&mut rng, storage),
    ));
    for shader in ShaderKind::ALL {
        let pipeline = shader.compile(&gpu).unwrap();
        for (input, layer) in &cases {
            let (expected, _) = pipeline.run(&gpu, input, layer).unwrap();
            let read = record_and_read(&gpu, &ops, |band| {
                let tensor = band.upload(input).unwrap();
                let maps = band.conv(&*pipeline, &tensor, layer).unwrap();
                band.read_back(&maps);
            });
            let what = format!(
                "{}: {:?} on {}×{}",
                shader.name(),
                layer.spec,
                input.height,
                input.width
            );
            assert_identical(&what, &read[0], &expected);
        }
    }
}

/// upload → conv (padded, strided) → ReLU → max pool → crop → conv (grouped,
/// dilated, no bias), all in one submission, equals the CPU reference step
/// by step; a tensor read back before an in-place ReLU keeps its values
/// from before it.
#[test]
fn a_chain_of_steps_kept_on_the_gpu_equals_the_cpu_reference_step_by_step() {
    let Some((gpu, ops)) = gpu_and_ops() else {
        return;
    };
    let mut rng = rng(8);
    for shader in ShaderKind::ALL {
        let pipeline = shader.compile(&gpu).unwrap();
        for _ in 0..3 {
            let first = LayerSpec {
                stride: 1 + below(&mut rng, 2),
                padding: Padding::uniform(below(&mut rng, 3)),
                ..LayerSpec::new(3, 6, 3)
            };
            let first = random_layer(&mut rng, first);
            let second = random_layer(
                &mut rng,
                LayerSpec {
                    dilation: 2,
                    groups: 2,
                    bias: false,
                    padding: Padding::uniform(1),
                    ..LayerSpec::new(6, 4, 3)
                },
            );
            let pool = PoolSpec {
                size: 2 + below(&mut rng, 2),
                stride: 1 + below(&mut rng, 2),
            };
            let height = 30 + below(&mut rng, 9);
            let input = random_image(&mut rng, 3, height, 21);

            // The CPU reference, step by step.
            let conv = cpu::conv2d_direct(&input, &first).unwrap();
            let mut relu = conv.clone();
            cpu::relu(&mut relu);
            let pooled = cpu::max_pool(&relu, &pool).unwrap();
            let rows = 1..pooled.height - 1;
            let cropped = pooled.slice(0..pooled.channels, rows.clone());
            let last = cpu::conv2d_direct(&cropped, &second).unwrap();

            let read = record_and_read(&gpu, &ops, |band| {
                let tensor = band.upload(&input).unwrap();
                let maps = band.conv(&*pipeline, &tensor, &first).unwrap();
                assert_eq!(band.read_back(&maps), 0);
                band.relu(&maps).unwrap();
                assert_eq!(band.read_back(&maps), 1);
                let pooled = band.max_pool(&maps, &pool).unwrap();
                assert_eq!(band.read_back(&pooled), 2);
                let cropped = band.crop_rows(&pooled, rows.clone()).unwrap();
                let maps = band.conv(&*pipeline, &cropped, &second).unwrap();
                assert_eq!(band.read_back(&maps), 3);
            });
            let name = shader.name();
            assert_eq!(read.len(), 4);
            assert_close(&format!("{name}: conv"), &read[0], &conv, 1e-5, 1e-5);
            assert_close(&format!("{name}: relu"), &read[1], &relu, 1e-5, 1e-5);
            assert_close(&format!("{name}: pooled"), &read[2], &pooled, 1e-5, 1e-5);
            assert_close(&format!("{name}: last conv"), &read[3], &last, 1e-5, 1e-5);
        }
    }
}

#[test]
fn a_recording_refuses_steps_that_do_not_fit_their_input_with_errors() {
    let Some((gpu, ops)) = gpu_and_ops() else {
        return;
    };
    let input = signed_tensor(1, 2, 6, 5);
    let mut band = BandRecording::new(&gpu, &ops);
    let tensor = band.upload(&input).unwrap();
    for shader in ShaderKind::ALL {
        let pipeline = shader.compile(&gpu).unwrap();
        let three_channels = random_layer(&mut rng(2), LayerSpec::new(3, 4, 3));
        let error = band.conv(&*pipeline, &tensor, &three_channels).err();
        assert!(matches!(error, Some(Error::Mismatch(_))), "{error:?}");
        let too_large = random_layer(&mut rng(2), LayerSpec::new(2, 4, 7));
        let error = band.conv(&*pipeline, &tensor, &too_large).err();
        assert!(matches!(error, Some(Error::Mismatch(_))), "{error:?}");
    }
    let error = band.crop_rows(&tensor, 4..7).err();
    assert!(matches!(error, Some(Error::Mismatch(_))), "{error:?}");
    let error = band.max_pool(&tensor, &PoolSpec::square(7)).err();
    assert!(matches!(error, Some(Error::Mismatch(_))), "{error:?}");
    let error = band
        .max_pool(&tensor, &PoolSpec { size: 0, stride: 1 })
        .err();
    assert!(matches!(error, Some(Error::InvalidLayer(_))), "{error:?}");
    // The recording is still usable after the refusals.
    band.relu(&tensor).unwrap();
    band.read_back(&tensor);
    let runs = band.submit().unwrap();
    let mut expected = input.clone();
    cpu::relu(&mut expected);
    let read = runs
        .into_iter()
        .next()
        .unwrap()
        .into_tensor(&gpu)
        .unwrap()
        .0;
    assert_identical("relu after refused steps", &read, &expected);
}
