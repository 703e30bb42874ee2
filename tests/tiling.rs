//! Big photos are split into bands of output rows and chunks of filters;
//! the pieces must equal an untiled run exactly, across band edges, for odd
//! sizes, strides, dilations, padding and groups.

mod common;

use common::{below, random_image, random_layer, rng};
use convmaps::cpu;
use convmaps::engine::{Engine, convolve_planned};
use convmaps::graph::plan::LayerPlan;
use convmaps::layer::{Layer, LayerSpec, Padding};
use convmaps::tensor::Tensor3;

/// Runs the plan and assembles the pieces into one `[K, OH, OW]` tensor,
/// checking that every element is written exactly once.
fn run_planned(engine: &dyn Engine, image: &Tensor3, layer: &Layer, plan: &LayerPlan) -> Tensor3 {
    let (out_height, out_width) = layer.spec.output_size(image.height, image.width).unwrap();
    let mut output = Tensor3::zeros(layer.spec.filters, out_height, out_width);
    let mut written = vec![0u8; output.data.len()];
    convolve_planned(
        engine,
        image,
        layer,
        plan,
        |first_filter, first_row, piece| {
            for k in 0..piece.channels {
                for y in 0..piece.height {
                    for x in 0..piece.width {
                        let index = (((first_filter + k) * out_height + first_row + y) * out_width
                            + x) as usize;
                        output.data[index] = piece.get(k, y, x);
                        written[index] += 1;
                    }
                }
            }
            Ok(())
        },
    )
    .unwrap();
    assert!(
        written.iter().all(|&n| n == 1),
        "the plan {plan:?} did not cover the output exactly once"
    );
    output
}

fn random_case(seed: u64) -> (Tensor3, Layer) {
    let mut rng = rng(seed);
    loop {
        let groups = [1, 3][below(&mut rng, 2) as usize];
        let spec = LayerSpec {
            in_channels: 3,
            filters: groups * (1 + below(&mut rng, 4)),
            kernel_height: 1 + below(&mut rng, 5),
            kernel_width: 1 + below(&mut rng, 4),
            stride: 1 + below(&mut rng, 3),
            padding: Padding {
                top: below(&mut rng, 7),
                bottom: below(&mut rng, 7),
                left: below(&mut rng, 3),
                right: below(&mut rng, 3),
            },
            dilation: 1 + below(&mut rng, 3),
            groups,
            bias: below(&mut rng, 3) != 0,
            activation: Default::default(),
        };
        let (height, width) = (1 + below(&mut rng, 23), 1 + below(&mut rng, 17));
        if spec.output_size(height, width).is_ok() {
            return (
                random_image(&mut rng, 3, height, width),
                random_layer(&mut rng, spec),
            );
        }
    }
}

/// Budgets from one output row of one filter group up to everything.
fn budgets(layer: &Layer, image: &Tensor3) -> Vec<u64> {
    let (_, out_width) = layer.spec.output_size(image.height, image.width).unwrap();
    let row = out_width as u64 * 4;
    let per_group = layer.spec.filters_per_group() as u64;
    let input_row = image.width as u64 * 4 * 3;
    let minimum = (row * per_group).max(input_row * layer.spec.dilated_kernel().0);
    vec![minimum, minimum + row, 3 * minimum, 1 << 30]
}

/// Every plan of bands and filter chunks gives exactly the untiled
/// result of the same engine, which matches the CPU reference.
fn banded_and_chunked_equals_untiled_exactly(engine: &dyn Engine) {
    let shader = engine.info().shader_name();
    for seed in 100..130 {
        let (image, layer) = random_case(seed);
        let (untiled, _) = engine.run(&image, &layer).unwrap();
        let reference = cpu::conv2d_direct(&image, &layer).unwrap();
        common::assert_close(
            &format!("{shader}, seed {seed} untiled"),
            &untiled,
            &reference,
            1e-5,
            1e-5,
        );
        for budget in budgets(&layer, &image) {
            let plan = LayerPlan::new(&layer.spec, image.height, image.width, budget).unwrap();
            let tiled = run_planned(engine, &image, &layer, &plan);
            assert!(
                tiled == untiled,
                "{shader}, seed {seed}, budget {budget}, {plan:?}: tiled output differs from untiled"
            );
        }
    }
}

/// A band submitted and dropped unread gives its output buffers back;
/// bands of any size after it run in them and read back their own maps.
fn bands_of_any_size_run_after_one_dropped_unread(engine: &dyn Engine) {
    let mut rng = rng(21);
    let big_input = random_image(&mut rng, 3, 40, 50);
    let big = random_layer(&mut rng, LayerSpec::new(3, 16, 5));
    let small_input = random_image(&mut rng, 3, 12, 9);
    let small = random_layer(&mut rng, LayerSpec::new(3, 3, 3));
    drop(engine.submit(&big_input, &big).unwrap());
    for (input, layer) in [
        (&big_input, &big),
        (&small_input, &small),
        (&big_input, &big),
    ] {
        let (maps, _) = engine
            .submit(input, layer)
            .unwrap()
            .read(|maps| Ok(maps.to_tensor()))
            .unwrap();
        let expected = cpu::conv2d_direct(input, layer).unwrap();
        common::assert_close(engine.info().shader_name(), &maps, &expected, 1e-5, 1e-5);
    }
}

engine_tests!(
    banded_and_chunked_equals_untiled_exactly,
    bands_of_any_size_run_after_one_dropped_unread,
);

#[test]
fn plan_respects_the_budget_and_splits_filters_on_group_boundaries() {
    let mut spec = LayerSpec::new(6, 12, 3);
    spec.groups = 3;
    // One output row of all 12 filters is 12·98·4 = 4704 bytes; one input row
    // (3 rows of halo, 2 channels per 4-filter group) is 2400.
    let plan = LayerPlan::new(&spec, 50, 100, 3000).unwrap();
    assert!(plan.filter_chunks.len() > 1);
    for chunk in &plan.filter_chunks {
        assert_eq!(chunk.start % 4, 0, "{plan:?}");
        assert!(chunk.len() as u64 * 98 * 4 <= 3000);
    }
    assert_eq!(plan.bands.first().unwrap().start, 0);
    assert_eq!(plan.bands.last().unwrap().end, 48);

    let whole = LayerPlan::new(&LayerSpec::new(3, 32, 5), 512, 512, 64 << 20).unwrap();
    assert_eq!((whole.bands.len(), whole.filter_chunks.len()), (1, 1));
}

#[test]
fn a_row_too_wide_for_any_budget_is_an_error_not_a_panic() {
    let spec = LayerSpec::new(3, 4, 3);
    assert!(LayerPlan::new(&spec, 10, 1000, 100).is_err());
}
