//! Shared test helpers: one GPU for the whole test binary, random tensors,
//! a closeness check whose failure names the worst element, and (in
//! `cli.rs`) the binary run with one backend policy and the photo it runs
//! on.
#![allow(dead_code, unused_imports)]

mod cli;

pub use cli::*;

use std::io::Write;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use convmaps::engine::{CpuEngine, Engine, GpuEngine};
use convmaps::gpu::{FastKernel, Gpu, ShaderKind};
use convmaps::layer::{Activation, Layer, LayerSpec, Padding};
use convmaps::tensor::Tensor3;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

/// Instantiates each named test body `fn(&dyn Engine)` once per engine of
/// the test table, as `<body>::<engine>`. The table: one line per engine
/// (and its constructor in [`make_engine`]).
#[macro_export]
macro_rules! engine_tests {
    ($($body:ident),* $(,)?) => {$(
        mod $body {
            #[test]
            fn cpu() { $crate::common::on_engine("cpu", super::$body) }
            #[test]
            fn direct() { $crate::common::on_engine("direct", super::$body) }
            #[test]
            fn fast() { $crate::common::on_engine("fast", super::$body) }
            #[test]
            fn fast_windows() { $crate::common::on_engine("fast-windows", super::$body) }
            #[test]
            fn fast_subgroup() { $crate::common::on_engine("fast-subgroup", super::$body) }
        }
    )*};
}

/// Makes the engine of the test table named `name`.
fn make_engine(name: &str) -> Result<Box<dyn Engine>, String> {
    let on_gpu = |shader| -> Result<Box<dyn Engine>, String> {
        let gpu = shared_gpu()?;
        let engine = GpuEngine::new(gpu, shader).map_err(|e| e.to_string())?;
        Ok(Box::new(engine))
    };
    match name {
        "cpu" => Ok(Box::new(CpuEngine)),
        "direct" => on_gpu(ShaderKind::Direct),
        "fast" => on_gpu(ShaderKind::Fast),
        // The fast shader's uniform-window kernel, which GPUs without
        // subgroups run, and its subgroup kernel on every layer (by default
        // small layers run on the windows).
        "fast-windows" => on_kernel(FastKernel::Windows),
        "fast-subgroup" => on_kernel(FastKernel::Subgroup),
        other => panic!("no engine {other:?} in the test table"),
    }
}

/// The fast shader's engine running `kernel`.
fn on_kernel(kernel: FastKernel) -> Result<Box<dyn Engine>, String> {
    let gpu = shared_gpu()?;
    let engine =
        GpuEngine::with_kernel(gpu, ShaderKind::Fast, kernel).map_err(|e| e.to_string())?;
    Ok(Box::new(engine))
}

/// The test binary's one GPU, made once.
fn shared_gpu() -> Result<Arc<Gpu>, String> {
    static GPU: OnceLock<Result<Arc<Gpu>, String>> = OnceLock::new();
    GPU.get_or_init(|| Gpu::new().map(Arc::new).map_err(|e| e.to_string()))
        .clone()
}

/// The engine named `name`, made once per test binary; `None` after a
/// visible skip when a GPU engine has no adapter (see [`skip`]).
pub fn engine(name: &'static str) -> Option<&'static dyn Engine> {
    static ENGINES: std::sync::Mutex<Vec<(&str, &'static dyn Engine)>> =
        std::sync::Mutex::new(Vec::new());
    let mut made = ENGINES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, engine)) = made.iter().find(|(n, _)| *n == name) {
        return Some(*engine);
    }
    match make_engine(name) {
        Ok(engine) => {
            let engine: &'static dyn Engine = Box::leak(engine);
            made.push((name, engine));
            Some(engine)
        }
        Err(reason) => {
            skip(&reason);
            None
        }
    }
}

/// Runs `body` on the engine named `name`, or skips visibly.
pub fn on_engine(name: &'static str, body: fn(&dyn Engine)) {
    if let Some(engine) = engine(name) {
        body(engine);
    }
}

/// The test binary's GPU, made once; `None` after a visible skip when
/// there is no adapter.
pub fn gpu() -> Option<Arc<Gpu>> {
    shared_gpu().map_err(|reason| skip(&reason)).ok()
}

/// GPU tests skipped so far in this test binary.
static SKIPPED: AtomicUsize = AtomicUsize::new(0);

/// Reports a GPU test that cannot run, where the test harness does not hide
/// it (straight to the process's stderr, with a running count), or fails
/// the test when `REQUIRE_GPU=1`: CI never passes by skipping.
pub fn skip(reason: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("a GPU test")
        .to_string();
    if require_gpu() {
        panic!("REQUIRE_GPU=1 but the GPU is unusable ({test}): {reason}");
    }
    let count = SKIPPED.fetch_add(1, Ordering::Relaxed) + 1;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED GPU test {test} ({count} skipped in this binary): {reason}"
    );
}

/// Runs `layer` on `engine`, panicking with the error on failure.
pub fn run(engine: &dyn Engine, input: &Tensor3, layer: &Layer) -> Tensor3 {
    let name = engine.info().shader_name();
    engine
        .run(input, layer)
        .unwrap_or_else(|e| panic!("{name}: run failed: {e}"))
        .0
}

/// True when `REQUIRE_GPU=1`.
pub fn require_gpu() -> bool {
    std::env::var("REQUIRE_GPU").is_ok_and(|v| v == "1")
}

/// A seeded generator.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Uniform in `[lo, hi)`.
pub fn uniform(rng: &mut ChaCha8Rng, lo: f32, hi: f32) -> f32 {
    let unit = (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
    lo + (hi - lo) * unit
}

/// Below `bound` (which must be positive).
pub fn below(rng: &mut ChaCha8Rng, bound: u32) -> u32 {
    rng.next_u32() % bound
}

/// A `[channels, height, width]` tensor uniform in `[0, 1)`, like a photo.
pub fn random_image(rng: &mut ChaCha8Rng, channels: u32, height: u32, width: u32) -> Tensor3 {
    let len = (channels * height * width) as usize;
    Tensor3::from_vec(
        channels,
        height,
        width,
        (0..len).map(|_| uniform(rng, 0.0, 1.0)).collect(),
    )
}

/// A layer of `spec` with weights and biases uniform in `±1`.
pub fn random_layer(rng: &mut ChaCha8Rng, spec: LayerSpec) -> Layer {
    let weight = (0..spec.weight_len())
        .map(|_| uniform(rng, -1.0, 1.0))
        .collect();
    let bias = (0..spec.bias_len())
        .map(|_| uniform(rng, -1.0, 1.0))
        .collect();
    Layer::new(spec, weight, bias).expect("random layer")
}

/// How far an engine may be from the CPU reference when both sum the same
/// terms in the same order (a GPU may fuse multiply-adds): a few ulps of
/// the sum's magnitude.
pub const ABS: f32 = 1e-5;
pub const REL: f32 = 1e-5;

/// How far an engine that sums a value's n terms in another order (the
/// subgroup kernel: by quads of channels) may be from the CPU reference
/// besides [`ABS`] and [`REL`]: the rounding of a sum of n terms grows as
/// √n·ε·Σ|terms|; twice that.
pub fn reordering_allowance(terms: u64, term_magnitude: f32) -> f32 {
    2.0 * (terms as f32).sqrt() * f32::EPSILON * term_magnitude
}

/// Σ|terms| of every output value of `layer` over `input`: the layer run on
/// |input| with |weights| and |biases|.
pub fn term_magnitudes(input: &Tensor3, layer: &Layer) -> Tensor3 {
    let abs = |values: &[f32]| values.iter().map(|v| v.abs()).collect::<Vec<f32>>();
    let input = Tensor3::from_vec(input.channels, input.height, input.width, abs(&input.data));
    let spec = LayerSpec {
        activation: Activation::None,
        ..layer.spec
    };
    let layer = Layer::new(spec, abs(&layer.weight), abs(&layer.bias)).expect("|layer|");
    convmaps::cpu::conv2d_direct(&input, &layer).expect("term magnitudes")
}

/// Runs a random layer of `spec` over a random `height`×`width` input (in
/// that order from `rng`) on `engine`, asserts that its maps are within
/// [`ABS`] and [`REL`] of the CPU reference, plus the
/// [`reordering_allowance`] of each value's sum, and returns them.
pub fn assert_matches_reference(
    engine: &dyn Engine,
    rng: &mut ChaCha8Rng,
    spec: LayerSpec,
    height: u32,
    width: u32,
) -> Tensor3 {
    let input = random_image(rng, spec.in_channels, height, width);
    let layer = random_layer(rng, spec);
    let expected = convmaps::cpu::conv2d_direct(&input, &layer).unwrap();
    let actual = run(engine, &input, &layer);
    let what = format!(
        "{}: {spec:?} on {height}×{width}",
        engine.info().shader_name()
    );
    let magnitudes = term_magnitudes(&input, &layer);
    let terms = layer.spec.taps_per_output();
    assert_close_by(&what, &actual, &expected, |i, e| {
        ABS + REL * e.abs() + reordering_allowance(terms, magnitudes.data[i])
    });
    actual
}

/// Asserts `actual` and `expected` have the same shape and that every
/// element satisfies `|a − e| ≤ abs + rel·|e|`; on failure, names the worst
/// element by `[k, y, x]` with both values.
pub fn assert_close(what: &str, actual: &Tensor3, expected: &Tensor3, abs: f32, rel: f32) {
    assert_close_by(what, actual, expected, |_, e| abs + rel * e.abs());
}

/// Asserts `actual` and `expected` have the same shape and that every
/// element `i` satisfies `|a − e| ≤ tolerance(i, e)`; on failure, names the
/// worst element by `[k, y, x]` with both values.
pub fn assert_close_by(
    what: &str,
    actual: &Tensor3,
    expected: &Tensor3,
    tolerance: impl Fn(usize, f32) -> f32,
) {
    assert_eq!(
        (actual.channels, actual.height, actual.width),
        (expected.channels, expected.height, expected.width),
        "{what}: shapes differ ([K, OH, OW])"
    );
    let mut worst: Option<(usize, f32)> = None;
    for (i, (&a, &e)) in actual.data.iter().zip(&expected.data).enumerate() {
        let excess = (a - e).abs() - tolerance(i, e);
        let fails = excess > 0.0 || excess.is_nan();
        if fails && worst.is_none_or(|(_, w)| excess > w || excess.is_nan()) {
            worst = Some((i, excess));
        }
    }
    if let Some((i, _)) = worst {
        let plane = expected.plane_len();
        let (k, y, x) = (
            i / plane,
            (i % plane) / expected.width as usize,
            i % expected.width as usize,
        );
        panic!(
            "{what}: element [{k}, {y}, {x}] is {} but expected {} (|diff| {:e} > {:e})",
            actual.data[i],
            expected.data[i],
            (actual.data[i] - expected.data[i]).abs(),
            tolerance(i, expected.data[i])
        );
    }
}

/// The `summary.json` a run wrote into `out`.
pub fn read_summary(out: &std::path::Path) -> serde_json::Value {
    let path = out.join("summary.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A finished command's status, stdout and stderr, for failure messages.
pub fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A random valid layer over the whole option space (groups, rectangular
/// kernels, stride, padding, dilation, bias, ReLU) and an input size for it:
/// up to `filters_per_group` filters per group and `max_side` pixels a side.
pub fn random_geometry(
    rng: &mut ChaCha8Rng,
    filters_per_group: u32,
    max_side: u32,
) -> (LayerSpec, u32, u32) {
    loop {
        let groups = [1, 1, 3][below(rng, 3) as usize];
        let spec = LayerSpec {
            in_channels: 3 * (1 + below(rng, 2)),
            filters: groups * (1 + below(rng, filters_per_group)),
            kernel_height: 1 + below(rng, 5),
            kernel_width: 1 + below(rng, 5),
            stride: 1 + below(rng, 3),
            padding: Padding {
                top: below(rng, 3),
                bottom: below(rng, 3),
                left: below(rng, 3),
                right: below(rng, 3),
            },
            dilation: 1 + below(rng, 3),
            groups,
            bias: below(rng, 4) != 0,
            activation: if below(rng, 2) == 0 {
                Activation::None
            } else {
                Activation::Relu
            },
        };
        let (height, width) = (1 + below(rng, max_side), 1 + below(rng, max_side));
        // Skip a dilated kernel larger than the padded input.
        if spec.output_size(height, width).is_ok() {
            return (spec, height, width);
        }
    }
}

/// Writes a safetensors file of f32 tensors with these names and shapes
/// (values 0, 0.01, 0.02, …).
pub fn write_safetensors(path: &std::path::Path, tensors: &[(&str, Vec<usize>)]) {
    let buffers: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, shape)| {
            let count: usize = shape.iter().product();
            (0..count)
                .flat_map(|i| (i as f32 * 0.01).to_le_bytes())
                .collect()
        })
        .collect();
    let views: Vec<(&str, safetensors::tensor::TensorView)> = tensors
        .iter()
        .zip(&buffers)
        .map(|((name, shape), bytes)| {
            (
                *name,
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}
