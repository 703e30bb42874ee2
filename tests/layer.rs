//! Layer geometry without a GPU: parameter counts, output sizes, validation,
//! and the seeded initialisation.

use convmaps::layer::{Layer, LayerSpec, Padding, PaddingMode};
use convmaps::weights;

#[test]
fn parameter_count_is_c_f_f_plus_one_times_k_for_several_shapes() {
    // (C, F, K) -> (C·F·F + 1)·K
    let cases = [
        (3, 5, 32, 2432),
        (3, 3, 64, 1792),
        (1, 1, 1, 2),
        (3, 7, 10, 1480),
        (16, 3, 8, 1160),
    ];
    for (channels, kernel, filters, total) in cases {
        let layer = weights::kaiming_uniform(LayerSpec::new(channels, filters, kernel), 1).unwrap();
        let count = layer.parameters();
        assert_eq!(count.weights, (channels * kernel * kernel * filters) as u64);
        assert_eq!(
            count.biases, filters as u64,
            "one bias per filter, not per channel"
        );
        assert_eq!(count.total, total, "C={channels} F={kernel} K={filters}");
    }
}

#[test]
fn parameter_formula_spells_the_question_with_the_layers_numbers() {
    let layer = weights::kaiming_uniform(LayerSpec::new(3, 32, 5), 1).unwrap();
    assert_eq!(layer.parameter_formula(), "(3·5·5 + 1)·32 = 2432");

    let mut grouped = LayerSpec::new(3, 6, 3);
    grouped.groups = 3;
    let layer = weights::kaiming_uniform(grouped, 1).unwrap();
    assert_eq!(layer.parameter_formula(), "(3/3·3·3 + 1)·6 = 60");

    let mut no_bias = LayerSpec::new(3, 4, 3);
    no_bias.bias = false;
    let layer = weights::kaiming_uniform(no_bias, 1).unwrap();
    assert_eq!(layer.parameter_formula(), "3·3·3·4 = 108");
}

#[test]
fn output_size_follows_pytorch_formula() {
    let mut spec = LayerSpec::new(3, 1, 5);
    assert_eq!(spec.output_size(512, 512).unwrap(), (508, 508));
    assert_eq!(spec.output_size(400, 600).unwrap(), (396, 596));
    spec.stride = 2;
    spec.padding = Padding::uniform(1);
    spec.dilation = 2;
    // floor((20 + 2 − 2·4 − 1)/2) + 1 = 7; floor((13 + 2 − 9)/2) + 1 = 4
    assert_eq!(spec.output_size(20, 13).unwrap(), (7, 4));
}

#[test]
fn kernel_larger_than_image_is_an_error_naming_both_sizes() {
    let spec = LayerSpec::new(3, 1, 5);
    let error = spec.output_size(4, 10).unwrap_err().to_string();
    assert!(error.contains("10×4") && error.contains("5×5"), "{error}");
}

#[test]
fn invalid_specs_are_refused() {
    let mut spec = LayerSpec::new(3, 0, 5);
    assert!(
        spec.validate()
            .unwrap_err()
            .to_string()
            .contains("filters is 0")
    );
    spec = LayerSpec::new(3, 4, 0);
    assert!(spec.validate().is_err());
    spec = LayerSpec::new(3, 4, 3);
    spec.groups = 2;
    assert!(
        spec.validate()
            .unwrap_err()
            .to_string()
            .contains("groups = 2")
    );
}

#[test]
fn same_padding_puts_the_odd_pixel_bottom_right() {
    let odd = PaddingMode::Same.resolve(3, 3, 1, 1).unwrap();
    assert_eq!(odd, Padding::uniform(1));
    let even = PaddingMode::Same.resolve(4, 2, 1, 1).unwrap();
    assert_eq!((even.top, even.bottom, even.left, even.right), (1, 2, 0, 1));
    assert!(PaddingMode::Same.resolve(3, 3, 1, 2).is_err());
}

#[test]
fn layer_refuses_a_bias_of_the_wrong_length() {
    let spec = LayerSpec::new(3, 2, 1);
    let error = Layer::new(spec, vec![0.0; 6], vec![0.0; 3])
        .unwrap_err()
        .to_string();
    assert!(error.contains("bias has 3 values, expected 2"), "{error}");
}

#[test]
fn initialisation_is_seeded_bounded_and_reproducible() {
    let spec = LayerSpec::new(3, 32, 5);
    let a = weights::kaiming_uniform(spec, 42).unwrap();
    let b = weights::kaiming_uniform(spec, 42).unwrap();
    let c = weights::kaiming_uniform(spec, 43).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.weight, c.weight);
    let bound = 1.0 / (75f32).sqrt();
    assert!(a.weight.iter().chain(&a.bias).all(|v| v.abs() <= bound));
    // Spread over the whole range, not stuck near zero.
    assert!(a.weight.iter().any(|v| v.abs() > 0.9 * bound));
    // Pinned values: the same seed gives these bits on every platform.
    assert_eq!(
        (a.weight[0].to_bits(), a.bias[31].to_bits()),
        (PINNED_FIRST_WEIGHT, PINNED_LAST_BIAS),
        "seed 42 changed: weight[0] = {}, bias[31] = {}",
        a.weight[0],
        a.bias[31]
    );
}

const PINNED_FIRST_WEIGHT: u32 = 3179446288; // −0.06372082
const PINNED_LAST_BIAS: u32 = 1037790310; // 0.10714035

#[test]
fn safetensors_round_trip_keeps_names_shapes_and_values() {
    let layer = weights::kaiming_uniform(LayerSpec::new(3, 4, 3), 5).unwrap();
    let bytes = weights::to_safetensors(&layer).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    std::fs::write(&path, bytes).unwrap();
    let loaded = convmaps::model::load::load_conv(&path, None, None).unwrap();
    assert_eq!(loaded.shape, [4, 3, 3, 3]);
    let source = convmaps::resolve::WeightsSource::Model {
        path,
        layer_name: None,
        fold_bn: None,
    };
    let input = convmaps::resolve::InputShape {
        channels: 3,
        photo: false,
        height: 8,
        width: 8,
    };
    let options = convmaps::resolve::LayerOptions::default();
    let rebuilt = convmaps::resolve::resolve(&options, input, &source, u64::MAX).unwrap();
    assert_eq!(rebuilt.layer, layer);
    assert_eq!(rebuilt.output_size, (6, 6));
}

#[test]
fn each_layer_is_written_as_pytorch_would_build_it() {
    let spec = |kernel: (u32, u32), padding: Padding, change: fn(&mut LayerSpec)| {
        let mut spec = LayerSpec::new(3, 16, kernel.0);
        spec.kernel_width = kernel.1;
        spec.padding = padding;
        change(&mut spec);
        spec
    };
    let cases = [
        (
            spec((5, 5), Padding::uniform(0), |_| {}),
            "nn.Conv2d(3, 16, kernel_size=5)",
        ),
        (
            spec((3, 3), Padding::uniform(1), |s| {
                s.stride = 2;
                s.groups = 3;
                s.in_channels = 3;
                s.filters = 6;
                s.bias = false;
            }),
            "nn.Conv2d(3, 6, kernel_size=3, stride=2, padding=1, groups=3, bias=False)",
        ),
        (
            spec((3, 5), Padding::split(2, 4, false), |s| s.dilation = 1),
            "nn.Conv2d(3, 16, kernel_size=(3, 5), padding=(1, 2))",
        ),
        (
            spec((4, 4), Padding::split(3, 3, false), |_| {}),
            "nn.Conv2d(3, 16, kernel_size=4)  # after F.pad(x, (1, 2, 1, 2))",
        ),
    ];
    for (spec, line) in cases {
        assert_eq!(spec.pytorch_line(), line);
    }
}
