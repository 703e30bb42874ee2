//! Golden cases: one small enough to check by hand, and the cases under
//! tests/golden/ computed by an independent implementation (ONNX Runtime's
//! Conv; regenerate with `python3 tools/make_golden.py`). Every engine.

mod common;

use std::path::Path;

use convmaps::engine::Engine;
use convmaps::layer::{Layer, LayerSpec, Padding};
use convmaps::npy;
use convmaps::tensor::Tensor3;

/// Input `[3, 4, 4]` with `x[c, y, x] = 16c + 4y + x`; filter 0 is all ones
/// with bias 0.5, filter 1 picks the centre of channel 1 with bias −1.
///
/// Filter 0 at (oy, ox): Σ_c Σ_window (16c + 4y + x) + 0.5
///   = 3·(36·oy + 9·ox + 45) + 144·(0 + 1 + 2) + 0.5 = 567.5 + 108·oy + 27·ox.
/// Filter 1 at (oy, ox): x[1, oy + 1, ox + 1] − 1 = 20 + 4·oy + ox.
fn hand_case() -> (Tensor3, Layer, Tensor3) {
    let input = Tensor3::from_vec(3, 4, 4, (0..48).map(|i| i as f32).collect());
    let mut weight = vec![1.0; 27];
    let mut centre_of_channel_1 = vec![0.0; 27];
    centre_of_channel_1[9 + 4] = 1.0; // [c = 1, ky = 1, kx = 1]
    weight.extend(centre_of_channel_1);
    let layer = Layer::new(LayerSpec::new(3, 2, 3), weight, vec![0.5, -1.0]).unwrap();
    let expected = Tensor3::from_vec(
        2,
        2,
        2,
        vec![567.5, 594.5, 675.5, 702.5, 20.0, 21.0, 24.0, 25.0],
    );
    (input, layer, expected)
}

fn hand_checked_4x4x3_two_3x3_filters(engine: &dyn Engine) {
    let (input, layer, expected) = hand_case();
    assert_eq!(common::run(engine, &input, &layer), expected);
}

/// One case folder: input, weight, bias (optional), expected and case.json.
struct GoldenCase {
    name: String,
    input: Tensor3,
    layer: Layer,
    expected: Tensor3,
}

fn load_cases() -> Vec<GoldenCase> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("case.json").exists())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 10,
        "expected the golden cases under {}",
        root.display()
    );
    dirs.iter().map(|dir| load_case(dir)).collect()
}

fn load_case(dir: &Path) -> GoldenCase {
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("case.json")).unwrap()).unwrap();
    let number = |key: &str| {
        json[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{}: {key}", dir.display())) as u32
    };
    let pads: Vec<u32> = json["padding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let input = npy::read_f32_3d(&dir.join("input.npy")).unwrap();
    let (weight_shape, weight) = npy::read_f32(&dir.join("weight.npy")).unwrap();
    let bias = if dir.join("bias.npy").exists() {
        npy::read_f32(&dir.join("bias.npy")).unwrap().1
    } else {
        Vec::new()
    };
    let groups = number("groups");
    let spec = LayerSpec {
        in_channels: input.channels,
        filters: weight_shape[0] as u32,
        kernel_height: weight_shape[2] as u32,
        kernel_width: weight_shape[3] as u32,
        stride: number("stride"),
        padding: Padding {
            top: pads[0],
            bottom: pads[1],
            left: pads[2],
            right: pads[3],
        },
        dilation: number("dilation"),
        groups,
        bias: !bias.is_empty(),
        activation: Default::default(),
    };
    assert_eq!(
        weight_shape[1] as u32,
        input.channels / groups,
        "{}",
        dir.display()
    );
    GoldenCase {
        name: dir.file_name().unwrap().to_string_lossy().into_owned(),
        input,
        layer: Layer::new(spec, weight, bias).unwrap(),
        expected: npy::read_f32_3d(&dir.join("expected.npy")).unwrap(),
    }
}

/// Tolerance against an independent implementation: f32 sums of at most a
/// few hundred terms of size ≤ 1, summed in a different order.
const ABS: f32 = 1e-5;
const REL: f32 = 1e-5;

fn matches_the_independent_golden_files(engine: &dyn Engine) {
    for case in load_cases() {
        let output = common::run(engine, &case.input, &case.layer);
        common::assert_close(
            &format!("{}, case {}", engine.info().shader_name(), case.name),
            &output,
            &case.expected,
            ABS,
            REL,
        );
    }
}

engine_tests!(
    hand_checked_4x4x3_two_3x3_filters,
    matches_the_independent_golden_files,
);
