//! The built-in filter banks: every bank fills every shape with finite
//! values, and each designed bank has the property its maps rely on.

mod common;

use convmaps::banks::{Init, filter_bank};
use convmaps::cpu::conv2d_direct;
use convmaps::layer::{Layer, LayerSpec, Padding, PaddingMode};
use convmaps::tensor::Tensor3;
use convmaps::weights::kaiming_uniform;

const SEED: u64 = 42;
const FILTER_COUNTS: [u32; 4] = [1, 3, 8, 33];
const CHANNELS_PER_GROUP: [u32; 2] = [1, 3];
const KERNELS: [(u32, u32); 5] = [(1, 1), (2, 2), (3, 3), (5, 3), (7, 7)];

/// A spec of K filters of `kernel` (FH, FW) over `channels` channels, one group.
fn spec(channels: u32, filters: u32, (height, width): (u32, u32)) -> LayerSpec {
    LayerSpec {
        kernel_height: height,
        kernel_width: width,
        ..LayerSpec::new(channels, filters, 1)
    }
}

/// Every spec of the test grid: K × C/G × kernel.
fn grid() -> impl Iterator<Item = LayerSpec> {
    FILTER_COUNTS.into_iter().flat_map(|k| {
        CHANNELS_PER_GROUP
            .into_iter()
            .flat_map(move |c| KERNELS.into_iter().map(move |f| spec(c, k, f)))
    })
}

fn bank(init: Init, spec: LayerSpec) -> Layer {
    filter_bank(init, spec, SEED)
        .unwrap_or_else(|e| panic!("{} bank for {spec:?} failed: {e}", init.name()))
}

/// Filter k's weights, `[C/G, FH, FW]`.
fn filter(layer: &Layer, k: usize) -> &[f32] {
    let len = layer.weight.len() / layer.spec.filters as usize;
    &layer.weight[k * len..(k + 1) * len]
}

fn filters(layer: &Layer) -> impl Iterator<Item = &[f32]> {
    (0..layer.spec.filters as usize).map(|k| filter(layer, k))
}

fn sum(values: &[f32]) -> f64 {
    values.iter().map(|&v| v as f64).sum()
}

#[test]
fn names_round_trip_and_every_init_is_listed_once() {
    for init in Init::ALL {
        assert_eq!(Init::from_name(init.name()), Some(init));
        assert!(!init.describe().is_empty());
    }
    let names: Vec<&str> = Init::ALL.iter().map(|i| i.name()).collect();
    assert_eq!(
        names,
        [
            "random", "gabor", "edges", "opponent", "blur", "identity", "mixed"
        ]
    );
    assert_eq!(Init::from_name("sobel"), None);
}

#[test]
fn every_bank_fills_every_shape_with_finite_values_of_the_right_lengths() {
    for init in Init::ALL {
        for spec in grid() {
            let layer = bank(init, spec);
            assert_eq!(layer.spec, spec);
            assert_eq!(layer.weight.len(), spec.weight_len(), "{init:?} {spec:?}");
            assert_eq!(layer.bias.len(), spec.filters as usize, "{init:?} {spec:?}");
            assert!(
                layer.weight.iter().all(|w| w.is_finite()),
                "{init:?} {spec:?} has a non-finite weight"
            );
            assert!(
                filters(&layer).all(|f| f.iter().any(|&w| w != 0.0)),
                "{init:?} {spec:?} has an all-zero filter"
            );
        }
    }
}

#[test]
fn every_bank_fills_grouped_layers() {
    for init in Init::ALL {
        for filters in [3, 33] {
            let spec = LayerSpec {
                groups: 3,
                ..LayerSpec::new(3, filters, 5)
            };
            let layer = bank(init, spec);
            assert_eq!(layer.weight.len(), filters as usize * 25, "{init:?}");
            assert!(layer.weight.iter().all(|w| w.is_finite()), "{init:?}");
        }
    }
}

#[test]
fn designed_banks_have_zero_biases_and_no_bias_means_an_empty_bias() {
    for init in Init::ALL {
        for spec in grid() {
            let without = LayerSpec {
                bias: false,
                ..spec
            };
            assert!(bank(init, without).bias.is_empty(), "{init:?} {spec:?}");
            if init != Init::Random {
                assert!(bank(init, spec).bias.iter().all(|&b| b == 0.0));
            }
        }
    }
}

#[test]
fn random_equals_kaiming_uniform_bit_for_bit() {
    for spec in grid().chain([LayerSpec {
        bias: false,
        ..LayerSpec::new(3, 8, 5)
    }]) {
        for seed in [0, SEED, u64::MAX] {
            let ours = filter_bank(Init::Random, spec, seed).unwrap();
            let theirs = kaiming_uniform(spec, seed).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(ours.spec, theirs.spec);
            assert_eq!(bits(&ours.weight), bits(&theirs.weight), "{spec:?}");
            assert_eq!(bits(&ours.bias), bits(&theirs.bias), "{spec:?}");
        }
    }
}

#[test]
fn invalid_specs_are_refused_not_panicked_on() {
    for init in Init::ALL {
        let zero_groups = LayerSpec {
            groups: 0,
            ..LayerSpec::new(3, 8, 5)
        };
        assert!(filter_bank(init, zero_groups, SEED).is_err(), "{init:?}");
        assert!(filter_bank(init, LayerSpec::new(3, 0, 5), SEED).is_err());
    }
}

/// Calls `check(spec, k, filter)` for every filter of the `init` bank on
/// every spec of the grid whose kernel is at least `min_side` a side.
fn for_each_filter(init: Init, min_side: u32, check: impl Fn(LayerSpec, usize, &[f32])) {
    let large_enough = |s: &LayerSpec| s.kernel_height >= min_side && s.kernel_width >= min_side;
    for spec in grid().filter(large_enough) {
        let layer = bank(init, spec);
        for (k, f) in filters(&layer).enumerate() {
            check(spec, k, f);
        }
    }
}

/// Asserts that every filter of the `init` bank with a kernel of 3×3 and
/// up sums to zero: a flat image gives zero.
fn assert_zero_sum_from_3x3(init: Init) {
    for_each_filter(init, 3, |spec, k, f| {
        assert!(
            sum(f).abs() < 1e-5,
            "{init:?} {spec:?} filter {k} sums to {}",
            sum(f)
        );
    });
}

#[test]
fn edges_and_gabor_filters_are_zero_mean_for_kernels_of_3x3_and_up() {
    assert_zero_sum_from_3x3(Init::Edges);
    assert_zero_sum_from_3x3(Init::Gabor);
}

#[test]
fn gabor_filters_have_unit_l2_norm_for_kernels_of_3x3_and_up() {
    for_each_filter(Init::Gabor, 3, |spec, k, f| {
        let norm = f.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-5,
            "{spec:?} filter {k} has norm {norm}"
        );
    });
}

#[test]
fn opponent_filters_give_zero_on_a_flat_image_for_kernels_of_3x3_and_up() {
    assert_zero_sum_from_3x3(Init::Opponent);
}

#[test]
fn blur_filters_sum_to_one_over_all_channels_and_taps() {
    for_each_filter(Init::Blur, 1, |spec, k, f| {
        assert!(
            (sum(f) - 1.0).abs() < 1e-5,
            "{spec:?} filter {k} sums to {}",
            sum(f)
        );
        assert!(
            f.iter().all(|&w| w >= 0.0),
            "{spec:?} filter {k} is negative"
        );
    });
}

#[test]
fn blur_keeps_a_flat_grey_image_the_same_grey() {
    let layer = bank(Init::Blur, LayerSpec::new(3, 8, 5));
    let grey = Tensor3::from_vec(3, 9, 9, vec![0.4; 3 * 81]);
    let maps = conv2d_direct(&grey, &layer).unwrap();
    assert!(maps.data.iter().all(|&v| (v - 0.4).abs() < 1e-5));
}

#[test]
fn identity_reproduces_the_input_exactly_with_same_padding() {
    let mut rng = common::rng(7);
    let image = common::random_image(&mut rng, 3, 9, 11);
    for filters in [3, 8] {
        let spec = LayerSpec {
            padding: Padding::uniform(1),
            ..LayerSpec::new(3, filters, 3)
        };
        let maps = conv2d_direct(&image, &bank(Init::Identity, spec)).unwrap();
        assert_eq!((maps.channels, maps.height, maps.width), (filters, 9, 11));
        for k in 0..filters {
            assert_eq!(maps.plane(k), image.plane(k % 3), "map {k}");
        }
    }
}

#[test]
fn identity_of_even_and_rectangular_kernels_lines_up_with_same_padding() {
    let mut rng = common::rng(8);
    let image = common::random_image(&mut rng, 3, 8, 10);
    for (height, width) in [(2, 2), (4, 4), (5, 3), (1, 1)] {
        let padding = PaddingMode::Same.resolve(height, width, 1, 1).unwrap();
        let spec = LayerSpec {
            padding,
            ..spec(3, 3, (height, width))
        };
        let maps = conv2d_direct(&image, &bank(Init::Identity, spec)).unwrap();
        assert_eq!(maps.data, image.data, "{height}×{width}");
    }
}

/// A 3-channel image, 0 left of column `step` and 1 from it on.
fn vertical_step(height: u32, width: u32, step: u32) -> Tensor3 {
    let data = (0..3 * height * width)
        .map(|i| f32::from(u8::from(i % width >= step)))
        .collect();
    Tensor3::from_vec(3, height, width, data)
}

#[test]
fn the_vertical_edge_filter_responds_about_one_across_a_step_and_zero_on_flat() {
    for kernel in [3, 5, 7] {
        let layer = bank(Init::Edges, LayerSpec::new(3, 8, kernel));
        let maps = conv2d_direct(&vertical_step(12, 16, 8), &layer).unwrap();
        let vertical = maps.plane(0);
        let peak = vertical.iter().cloned().fold(f32::MIN, f32::max);
        assert!((peak - 1.0).abs() < 1e-4, "{kernel}×{kernel}: peak {peak}");
        // The horizontal-edge filter (90°, index K/2) sees no edge at all.
        let horizontal = maps.plane(4);
        assert!(
            horizontal.iter().all(|v| v.abs() < 1e-5),
            "{kernel}×{kernel}"
        );

        let flat = Tensor3::from_vec(3, 12, 16, vec![0.7; 3 * 12 * 16]);
        let maps = conv2d_direct(&flat, &layer).unwrap();
        assert!(
            maps.data.iter().all(|v| v.abs() < 1e-5),
            "{kernel}×{kernel}"
        );
    }
}

#[test]
fn every_bank_of_eight_5x5_filters_has_distinct_filters() {
    for init in Init::ALL {
        let layer = bank(init, LayerSpec::new(3, 8, 5));
        let first = filter(&layer, 0);
        assert!(
            filters(&layer).any(|f| f != first),
            "{init:?}: all identical"
        );
    }
}

#[test]
fn designed_banks_of_eight_5x5_filters_are_pairwise_distinct() {
    for init in [
        Init::Edges,
        Init::Gabor,
        Init::Opponent,
        Init::Blur,
        Init::Mixed,
    ] {
        let layer = bank(init, LayerSpec::new(3, 8, 5));
        for a in 0..8 {
            for b in a + 1..8 {
                let diff = filter(&layer, a)
                    .iter()
                    .zip(filter(&layer, b))
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0f32, f32::max);
                assert!(diff > 1e-3, "{init:?}: filters {a} and {b} are the same");
            }
        }
    }
}

#[test]
fn one_by_one_kernels_become_colour_mixes() {
    let layer = bank(Init::Opponent, LayerSpec::new(3, 6, 1));
    let third = 1.0 / 3.0;
    let expected: [[f32; 3]; 6] = [
        [1.0, -1.0, 0.0],
        [-1.0, 1.0, 0.0],
        [-0.5, -0.5, 1.0],
        [0.5, 0.5, -1.0],
        [third, third, third],
        [-third, -third, -third],
    ];
    for (k, mix) in expected.iter().enumerate() {
        assert_eq!(filter(&layer, k), mix, "filter {k}");
    }
}
