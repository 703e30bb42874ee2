//! Whole networks against ONNX Runtime: each fixture under
//! tests/fixtures/net/ (small torchvision architectures exported by
//! tools/make_network_fixtures.py with both of PyTorch's exporters) is
//! run, and every Conv node's output and every graph output must be within
//! 1e-4 of the largest |value| of ONNX Runtime's tensor.

use std::path::{Path, PathBuf};

use convmaps::gpu::FastConv;
use convmaps::gpu::resident::TensorOps;
use convmaps::net::gpu::{GpuNet, NetOps};
use convmaps::net::ops::{Conv, Op};
use convmaps::net::{self, Array, Network, ValueId};
use convmaps::npy;
use convmaps::settings::FastKernel;
use convmaps::tensor::Tensor3;

/// Relative tolerance against each tensor's largest |value|.
const TOLERANCE: f32 = 1e-4;

/// A fixture's golden value: the value's name and its file.
struct Golden {
    value: String,
    node: String,
    file: PathBuf,
    top: Option<Vec<usize>>,
}

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/net");
    let root = std::env::var_os("CONVMAPS_NET_FIXTURES").map_or(root, PathBuf::from);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("the fixtures folder")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.join("golden.json").exists())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no fixtures in {}", root.display());
    dirs
}

fn goldens(dir: &Path) -> Vec<Golden> {
    let text = std::fs::read_to_string(dir.join("golden.json")).expect("golden.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    json["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| Golden {
            value: v["value"].as_str().expect("value").to_string(),
            node: v["node"].as_str().expect("node").to_string(),
            file: dir.join(v["file"].as_str().expect("file")),
            top: v["top"]
                .as_array()
                .map(|t| t.iter().map(|i| i.as_u64().unwrap() as usize).collect()),
        })
        .collect()
}

fn load(dir: &Path) -> (Network, Array) {
    let (shape, data) = npy::read_f32(&dir.join("input.npy")).expect("input.npy");
    let mut model = net::open(&dir.join("model.onnx")).expect("the model opens");
    let network = model
        .network([shape[1] as u32, shape[2] as u32])
        .expect("the model loads");
    let photo = Tensor3::from_vec(shape[0] as u32, shape[1] as u32, shape[2] as u32, data);
    let input = net::input::model_input(&photo, None, &network.input);
    (network, input)
}

fn value_id(network: &Network, name: &str) -> ValueId {
    network
        .values
        .iter()
        .position(|v| v.name == name)
        .unwrap_or_else(|| panic!("no value {name:?}"))
}

/// The worst difference between `got` and `want`, relative to want's
/// largest |value|.
fn relative_error(got: &[f32], want: &[f32]) -> f32 {
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
    got.iter()
        .zip(want)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

fn check_run(dir: &Path, run: impl Fn(&Network, Array, &[ValueId]) -> net::NetRun) {
    let (network, input) = load(dir);
    let goldens = goldens(dir);
    let ids: Vec<ValueId> = goldens
        .iter()
        .map(|g| value_id(&network, &g.value))
        .collect();
    let result = run(&network, input, &ids);
    for (golden, id) in goldens.iter().zip(&ids) {
        let (shape, want) = npy::read_f32(&golden.file).expect("golden");
        let got = &result.values[id];
        assert_eq!(
            got.shape[1..],
            shape[..],
            "{}: {} shape",
            dir.display(),
            golden.node
        );
        let error = relative_error(&got.data, &want);
        assert!(
            error <= TOLERANCE,
            "{}: node {} is {error:e} off ONNX Runtime's",
            dir.display(),
            golden.node
        );
        if let Some(top) = &golden.top {
            let mut order: Vec<usize> = (0..got.data.len()).collect();
            order.sort_by(|&a, &b| got.data[b].total_cmp(&got.data[a]));
            assert_eq!(&order[..top.len()], &top[..], "{}: top 5", dir.display());
        }
    }
}

#[test]
fn cpu_twins_compute_every_conv_and_output_as_onnx_runtime_does() {
    for dir in fixtures() {
        check_run(&dir, |network, input, keep| {
            net::cpu::run(network, input, keep).expect("the network runs")
        });
    }
}

mod common;

#[test]
fn gpu_engines_compute_every_conv_and_output_as_onnx_runtime_does() {
    for name in ["fast", "direct"] {
        let Some(engine) = common::engine(name) else {
            return;
        };
        for dir in fixtures() {
            check_run(&dir, |network, input, keep| {
                engine
                    .run_network(network, input, keep)
                    .expect("the network runs")
            });
        }
    }
}

#[test]
fn fusing_batch_norms_activations_and_residual_adds_into_convs_changes_no_output() {
    let mut fused_somewhere = 0;
    let mut residuals_fused = 0;
    for dir in fixtures() {
        let (mut network, input) = load(&dir);
        let outputs = network.outputs.clone();
        let plain = net::cpu::run(&network, input.clone(), &outputs).expect("the network runs");
        let before = network.nodes.len();
        let fused = net::fuse::fuse(&mut network, &outputs);
        assert_eq!(network.nodes.len(), before - fused, "{}", dir.display());
        fused_somewhere += fused;
        residuals_fused += network
            .nodes
            .iter()
            .filter(|node| matches!(node.op, Op::Conv(Conv { residual: true, .. })))
            .count();
        let run = net::cpu::run(&network, input.clone(), &outputs).expect("the fused network runs");
        for output in &outputs {
            let error = relative_error(&run.values[output].data, &plain.values[output].data);
            assert!(
                error <= 1e-5,
                "{}: fused output {error:e} off",
                dir.display()
            );
        }
        // The subgroup kernel adds a residual and applies any activation in
        // the conv's dispatch; the windows and the direct shader run the
        // conv, an Add and the activation.
        for name in ["fast", "fast-subgroup", "fast-windows", "direct"] {
            let Some(engine) = common::engine(name) else {
                continue;
            };
            let gpu = engine
                .run_network(&network, input.clone(), &outputs)
                .expect("the fused network runs");
            for output in &outputs {
                let error = relative_error(&gpu.values[output].data, &plain.values[output].data);
                assert!(
                    error <= 1e-4,
                    "{}: fused output on the GPU ({name}) {error:e} off",
                    dir.display()
                );
            }
        }
    }
    // ResNet's ReLUs after convs, MobileNet's ReLU6, PP-OCR's BatchNorms.
    assert!(fused_somewhere > 50, "{fused_somewhere} nodes fused");
    // ResNet's and RegNet's residual Adds.
    assert!(
        residuals_fused >= 8,
        "{residuals_fused} residual Adds fused"
    );
}

/// Calls `test` with a [`GpuNet`] on the fast shader (its subgroup kernel
/// where the GPU has one) and that shader, where there is a GPU.
fn with_fast_runner(test: impl FnOnce(&GpuNet<'_>, &FastConv)) {
    let Some(gpu) = common::gpu() else {
        return;
    };
    let ops = NetOps::new(&gpu).expect("the shader compiles");
    let tensor_ops = TensorOps::new(&gpu).expect("the shader compiles");
    let fast = FastConv::with_kernel(&gpu, FastKernel::Auto).expect("the shader compiles");
    let runner = GpuNet {
        gpu: &gpu,
        ops: &ops,
        convs: Some((&fast, &tensor_ops)),
        budget: None,
    };
    test(&runner, &fast);
}

/// Each fixture network fused as a `--maps none` run fuses it, with its
/// input and outputs, and its folder.
fn fused_fixtures() -> impl Iterator<Item = (Network, Array, Vec<ValueId>, PathBuf)> {
    fixtures().into_iter().map(|dir| {
        let (mut network, input) = load(&dir);
        let outputs = network.outputs.clone();
        net::fuse::fuse(&mut network, &outputs);
        (network, input, outputs, dir)
    })
}

#[test]
fn convs_that_hand_their_outputs_on_as_quads_give_the_same_bits_as_without() {
    // A conv read only by convs writes its output straight into their input
    // quads when it is not read back, and a Mul by a factor per channel
    // (EfficientNet's squeeze-and-excitation) is packed for the conv after
    // it; reading every node's output back keeps them all as
    // [1, C, H, W]. The values are the same either way.
    with_fast_runner(|runner, fast| {
        let mut handed_on = 0;
        for (network, input, outputs, dir) in fused_fixtures() {
            let quads = runner.quad_values(&network, &outputs);
            handed_on += quads.len();
            let mut everything = outputs.clone();
            everything.extend(network.nodes.iter().map(|node| node.output));
            assert!(runner.quad_values(&network, &everything).is_empty());
            let with = runner
                .run(&network, input.clone(), &outputs)
                .expect("the network runs");
            let without = runner
                .run(&network, input, &everything)
                .expect("the network runs");
            for output in &outputs {
                assert!(
                    with.values[output].data == without.values[output].data,
                    "{}: {} differs with {} values as quads",
                    dir.display(),
                    network.values[*output].name,
                    quads.len()
                );
            }
        }
        if fast.uses_subgroups() {
            // MobileNet's expansions into its depthwise convs, ResNet's first
            // conv of a block into its second, EfficientNet's Muls, …: 157 over
            // the fixtures.
            assert!(handed_on >= 50, "{handed_on} values handed on as quads");
        }
    });
}

#[test]
fn a_network_run_builds_no_pipeline_that_preparing_it_did_not() {
    // Each subgroup pipeline a run needs is built (and run once on one
    // pixel) before the run is recorded, so that none is compiled inside
    // the run's GPU time: what `prepare_pipelines` builds is all a run uses.
    with_fast_runner(|runner, fast| {
        for (network, input, outputs, dir) in fused_fixtures() {
            runner
                .prepare_pipelines(&network)
                .expect("the pipelines build");
            let built = fast.subgroup_pipelines();
            runner
                .run(&network, input, &outputs)
                .expect("the network runs");
            assert_eq!(
                fast.subgroup_pipelines(),
                built,
                "{}: the run built a pipeline its preparation did not",
                dir.display()
            );
        }
        if fast.uses_subgroups() {
            // Rows of 3, 5 and 7 taps at both strides, the general loop, the
            // depthwise entry point, ReLU, ReLU6, SiLU, HardSwish and none: 23
            // pipelines over the fixtures.
            let built = fast.subgroup_pipelines();
            assert!(built >= 12, "{built} pipelines built");
        }
    });
}
