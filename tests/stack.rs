//! Stacks of layers (`--layers`): run band by band on every engine, each
//! block's maps must equal the untiled CPU twin of the whole stack, with
//! every row handed over exactly once, whatever the bands.

mod common;

use common::{below, random_image, rng};
use convmaps::banks::Init;
use convmaps::engine::Engine;
use convmaps::graph::{self, ChainPlan, Graph, StackOptions};
use convmaps::resolve::InputShape;
use convmaps::tensor::Tensor3;

engine_tests!(
    random_stacks_in_tiny_bands_equal_the_untiled_cpu_twin,
    a_three_layer_stack_in_one_band_equals_the_cpu_twin,
    an_onnx_models_two_convs_equal_onnx_runtimes_maps,
);

fn options(seed: u64) -> StackOptions {
    StackOptions {
        bias: true,
        init: Init::Random,
        seed,
        model: None,
        fold_bn: None,
        max_pixels: u64::MAX,
    }
}

fn resolve(spec: &str, channels: u32, height: u32, width: u32, seed: u64) -> Option<Graph> {
    let items = graph::spec::parse(spec, false).unwrap();
    let input = InputShape {
        channels,
        photo: false,
        height,
        width,
    };
    Graph::resolve(&items, input, &options(seed)).ok()
}

/// Runs `stack` over `image` in bands of at most `budget` bytes and
/// assembles each block's maps, checking every value is handed over once.
fn run_banded(engine: &dyn Engine, stack: &Graph, image: &Tensor3, budget: u64) -> Vec<Tensor3> {
    let plan = ChainPlan::new(stack, budget).unwrap();
    let mut outputs: Vec<Tensor3> = (0..stack.blocks.len())
        .map(|g| {
            let [k, h, w] = stack.block_output(g);
            Tensor3::zeros(k, h, w)
        })
        .collect();
    let mut counts: Vec<Vec<u8>> = outputs.iter().map(|t| vec![0; t.data.len()]).collect();
    convmaps::engine::run_chain(engine, image, (stack, &plan), |block, first_row, maps| {
        let out = &mut outputs[block];
        for k in 0..maps.channels {
            for y in 0..maps.height {
                for x in 0..maps.width {
                    let index = ((k * out.height + first_row + y) * out.width + x) as usize;
                    out.data[index] = maps.get(k, y, x);
                    counts[block][index] += 1;
                }
            }
        }
        Ok(())
    })
    .unwrap();
    for (block, counts) in counts.iter().enumerate() {
        assert!(
            counts.iter().all(|&c| c == 1),
            "block {block}: some values were handed over {} times, some {} times",
            counts.iter().max().unwrap(),
            counts.iter().min().unwrap()
        );
    }
    outputs
}

fn check(engine: &dyn Engine, what: &str, actual: &[Tensor3], expected: &[Tensor3]) {
    let exact = engine.info().backend == convmaps::engine::Backend::Cpu;
    for (block, (actual, expected)) in actual.iter().zip(expected).enumerate() {
        let what = format!("{what}, block {block}");
        if exact {
            assert_eq!(
                (actual.channels, actual.height, actual.width),
                (expected.channels, expected.height, expected.width),
                "{what}"
            );
            assert!(
                actual.data == expected.data,
                "{what}: CPU bands differ from untiled"
            );
        } else {
            common::assert_close(&what, actual, expected, 1e-4, 1e-5);
        }
    }
}

/// A random stack item: a conv with random geometry, relu or a pooling.
fn random_conv(rng: &mut rand_chacha::ChaCha8Rng, channels: u32) -> String {
    let groups = if channels.is_multiple_of(2) && below(rng, 3) == 0 {
        2
    } else {
        1
    };
    let filters = groups * (1 + below(rng, 4));
    let mut item = format!("{filters}x{}x{}", 1 + below(rng, 4), 1 + below(rng, 4));
    if below(rng, 2) == 0 {
        item += &format!("/s{}", 1 + below(rng, 2));
    }
    if below(rng, 2) == 0 {
        item += &format!("/p{}", below(rng, 3));
    }
    if below(rng, 3) == 0 {
        item += &format!("/d{}", 1 + below(rng, 2));
    }
    if groups > 1 {
        item += "/g2";
    }
    item
}

fn random_stacks_in_tiny_bands_equal_the_untiled_cpu_twin(engine: &dyn Engine) {
    let mut rng = rng(12);
    let mut tried = 0;
    while tried < 24 {
        let layers = 2 + below(&mut rng, 2);
        let mut items = Vec::new();
        let mut channels = 1 + below(&mut rng, 4);
        let input_channels = channels;
        for _ in 0..layers {
            let conv = random_conv(&mut rng, channels);
            channels = conv.split('x').next().unwrap().parse().unwrap();
            items.push(conv);
            match below(&mut rng, 4) {
                0 => items.push("relu".into()),
                1 => items.push(format!("maxpool{}", 2 + below(&mut rng, 2))),
                2 => items.push("relu,maxpool2/s1".into()),
                _ => {}
            }
        }
        let spec = items.join(",");
        let (height, width) = (8 + below(&mut rng, 30), 8 + below(&mut rng, 20));
        let Some(stack) = resolve(&spec, input_channels, height, width, tried) else {
            continue; // a map shrank below a kernel
        };
        tried += 1;
        let image = random_image(&mut rng, input_channels, height, width);
        let expected = graph::run_cpu(&stack, &image).unwrap();
        // The smallest budget that plans: bands of one or two rows.
        let mut smallest = 64;
        while ChainPlan::new(&stack, smallest).is_err() {
            smallest *= 2;
        }
        for budget in [smallest, 3 * smallest, u64::MAX] {
            let actual = run_banded(engine, &stack, &image, budget);
            check(
                engine,
                &format!("{spec} over {width}×{height}, budget {budget}"),
                &actual,
                &expected,
            );
        }
    }
}

fn a_three_layer_stack_in_one_band_equals_the_cpu_twin(engine: &dyn Engine) {
    let spec = "8x5/p2,relu,maxpool2,6x3/s2/p1/g2,relu,maxpool3/s2,4x1";
    let stack = resolve(spec, 3, 37, 29, 7).expect("the stack fits");
    assert_eq!(stack.blocks.len(), 3);
    assert_eq!(stack.block_output(0), [8, 18, 14]);
    let image = random_image(&mut rng(3), 3, 37, 29);
    let expected = graph::run_cpu(&stack, &image).unwrap();
    let actual = run_banded(engine, &stack, &image, u64::MAX);
    check(engine, spec, &actual, &expected);
}

#[test]
fn a_stacks_parameters_add_up_per_conv() {
    // (3·5·5 + 1)·32 + (32·3·3 + 1)·64 = 2432 + 18496.
    let stack = resolve("32x5,relu,maxpool2,64x3", 3, 64, 64, 42).unwrap();
    assert_eq!(stack.layer(0).parameters().total, 2432);
    assert_eq!(stack.layer(1).parameters().total, 18496);
    assert_eq!(stack.parameters().total, 20928);
    assert_eq!(stack.blocks[0].items, ["32x5", "relu", "maxpool2"]);
    assert_eq!(stack.blocks[1].folder, "conv2");
}

#[test]
fn each_conv_is_seeded_distinctly_and_the_first_as_one_layer() {
    let stack = resolve("4x3,4x3", 4, 16, 16, 42).unwrap();
    assert_ne!(stack.layer(0).weight, stack.layer(1).weight);
    let again = resolve("4x3,4x3", 4, 16, 16, 42).unwrap();
    assert_eq!(stack, again);
}

#[test]
fn a_layer_that_shrinks_the_map_below_its_kernel_is_refused_naming_it() {
    let items = graph::spec::parse("8x5,maxpool4,8x5", false).unwrap();
    let input = InputShape {
        channels: 3,
        photo: false,
        height: 20,
        width: 20,
    };
    let error = Graph::resolve(&items, input, &options(1))
        .unwrap_err()
        .to_string();
    assert!(error.contains("item 3 `8x5`"), "{error}");
    let items = graph::spec::parse("8x3,8x3/g3", false).unwrap();
    let error = Graph::resolve(&items, input, &options(1))
        .unwrap_err()
        .to_string();
    assert!(error.contains("item 2 `8x3/g3`"), "{error}");
}

/// `tests/fixtures/stack/` (made by `tools/make_stack_fixtures.py`): the
/// model's `/conv1/Conv → Relu → MaxPool 2 → /block/conv2/Conv (stride 2,
/// pads 1, group 2) → Relu`, whose maps ONNX Runtime computed.
fn an_onnx_models_two_convs_equal_onnx_runtimes_maps(engine: &dyn Engine) {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stack");
    let image = convmaps::npy::read_f32_3d(&fixtures.join("input.npy")).unwrap();
    let [conv1, conv2] = fixture_conv_names();
    let spec = format!("{conv1},relu,maxpool2,{conv2},relu");
    let items = graph::spec::parse(&spec, true).unwrap();
    let input = InputShape {
        channels: 3,
        photo: false,
        height: image.height,
        width: image.width,
    };
    let options = StackOptions {
        model: Some(fixtures.join("stack.onnx")),
        ..options(0)
    };
    let stack = Graph::resolve(&items, input, &options).unwrap();
    assert_eq!(stack.layer(1).spec.groups, 2, "geometry from the file");
    let expected: Vec<Tensor3> = ["conv1.npy", "conv2.npy"]
        .iter()
        .map(|name| convmaps::npy::read_f32_3d(&fixtures.join(name)).unwrap())
        .collect();
    let mut smallest = 64;
    while ChainPlan::new(&stack, smallest).is_err() {
        smallest *= 2;
    }
    for budget in [smallest, u64::MAX] {
        let actual = run_banded(engine, &stack, &image, budget);
        for (block, (actual, expected)) in actual.iter().zip(&expected).enumerate() {
            let what = format!(
                "{}: block {block}, budget {budget}",
                engine.info().shader_name()
            );
            common::assert_close(&what, actual, expected, 1e-5, 1e-5);
        }
    }
}

/// The names a user types for the fixture's two convs, from
/// `tests/fixtures/stack/names.txt`.
fn fixture_conv_names() -> [String; 2] {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stack/names.txt");
    let text = std::fs::read_to_string(path).unwrap();
    let names: Vec<String> = text.lines().map(str::to_string).collect();
    names
        .try_into()
        .unwrap_or_else(|n| panic!("names.txt holds two names, got {n:?}"))
}

/// `names.txt` lists the fixture's convs as the model reader names them
/// (the names `convmaps layers stack.onnx` shows), in order.
#[test]
fn the_fixtures_names_are_the_readers_conv_names() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stack/stack.onnx");
    let model = convmaps::model::open(&path).unwrap();
    let names: Vec<&str> = model.convs().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, fixture_conv_names());
}

/// On a GPU, a stack whose maps stay in GPU memory (strips packed, ReLU
/// and pooling run by `tensor_ops.wgsl`) gives exactly the maps of the same
/// stack through host memory (strips packed by the host, the CPU twins of
/// ReLU and pooling), for both shaders, in tiny bands and whole.
#[test]
fn maps_kept_on_the_gpu_equal_maps_through_host_memory_exactly() {
    use convmaps::engine::GpuEngine;
    use convmaps::gpu::ShaderKind;
    use convmaps::settings::Placement;
    let Some(gpu) = common::gpu() else {
        return;
    };
    let spec = "6x5/p2,relu,maxpool2,8x3/s2/p1/g2,relu,maxpool3/s1,4x3/d2,relu,maxpool2/s1";
    let stack = resolve(spec, 3, 41, 37, 9).expect("the stack fits");
    let image = random_image(&mut rng(4), 3, 41, 37);
    for shader in ShaderKind::ALL {
        let engine = |mode| {
            GpuEngine::new(gpu.clone(), shader)
                .unwrap()
                .with_between_layers(mode)
        };
        let (on_gpu, via_host) = (engine(Placement::Gpu), engine(Placement::Host));
        assert_eq!(on_gpu.info().between_layers, Placement::Gpu);
        assert_eq!(via_host.info().between_layers, Placement::Host);
        for budget in [32_000, u64::MAX] {
            let kept = run_banded(&on_gpu, &stack, &image, budget);
            let through_host = run_banded(&via_host, &stack, &image, budget);
            for (block, (a, b)) in kept.iter().zip(&through_host).enumerate() {
                assert!(
                    a.data == b.data,
                    "{}: block {block}, budget {budget}: the maps differ",
                    shader.name()
                );
            }
        }
    }
}

/// The random stacks and the ONNX model's golden maps again on GPU engines
/// that keep the maps on the GPU (on a software GPU the table's engines
/// send them through host memory, which is faster there).
#[test]
fn stacks_with_maps_kept_on_the_gpu_equal_the_cpu_twin_and_onnx_runtime() {
    use convmaps::engine::GpuEngine;
    use convmaps::gpu::ShaderKind;
    use convmaps::settings::Placement;
    let Some(gpu) = common::gpu() else {
        return;
    };
    for shader in ShaderKind::ALL {
        let engine = GpuEngine::new(gpu.clone(), shader)
            .unwrap()
            .with_between_layers(Placement::Gpu);
        assert_eq!(engine.info().between_layers, Placement::Gpu);
        random_stacks_in_tiny_bands_equal_the_untiled_cpu_twin(&engine);
        an_onnx_models_two_convs_equal_onnx_runtimes_maps(&engine);
    }
}
