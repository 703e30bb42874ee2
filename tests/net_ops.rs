//! Each op of `shaders/net_ops.wgsl` against its CPU twin (src/net/cpu.rs)
//! on random shapes and attributes: convs with unequal strides, dilations
//! and padding per side, grouped and without bias; every activation;
//! broadcasting of every kind; max and average pooling with padding,
//! ceil_mode and count_include_pad; Gemm with each transposition and C
//! shape; softmax rows. Every conv here runs in `net_ops.wgsl` itself, not
//! on the conv shaders, but for the convs with every activation fused into
//! them, which run on the fast shader's subgroup kernel (each activation a
//! pipeline of its own there).

mod common;

use std::collections::HashMap;

use convmaps::gpu::ShaderKind;
use convmaps::gpu::resident::TensorOps;
use convmaps::net::gpu::{GpuNet, NetOps};
use convmaps::net::ops::{
    Binary, Conv, ConvTranspose, Coordinates, Gemm, Movement, Op, Pool, Reduce, Resize, Rounding,
    Unary, UnaryKind,
};
use convmaps::net::{Array, Layout, ModelInput, Network, Node, Value, cpu};
use convmaps::settings::FastKernel;
use rand_chacha::ChaCha8Rng;

/// Every activation a conv can apply, with its attributes (alpha, beta).
const ACTIVATIONS: [(UnaryKind, f32, f32); 12] = [
    (UnaryKind::Relu, 0.0, 0.0),
    (UnaryKind::LeakyRelu, 0.1, 0.0),
    (UnaryKind::Clip, 0.0, 6.0),
    (UnaryKind::Clip, f32::MIN, f32::MAX),
    (UnaryKind::Sigmoid, 0.0, 0.0),
    (UnaryKind::HardSigmoid, 1.0 / 6.0, 0.5),
    (UnaryKind::HardSwish, 0.0, 0.0),
    (UnaryKind::Tanh, 0.0, 0.0),
    (UnaryKind::Exp, 0.0, 0.0),
    (UnaryKind::Neg, 0.0, 0.0),
    (UnaryKind::Abs, 0.0, 0.0),
    (UnaryKind::Silu, 0.0, 0.0),
];

/// Random values in ±`scale`.
fn random(rng: &mut ChaCha8Rng, shape: &[usize], scale: f32) -> Array {
    let count = shape.iter().product();
    let data = (0..count)
        .map(|_| common::uniform(rng, -scale, scale))
        .collect();
    Array::new(shape.to_vec(), data)
}

/// A network of one node: `op` over `input` and the constants `rest`,
/// its output of the shape the op infers.
fn one_node(op: Op, input: Array, rest: Vec<Array>) -> (Network, Array) {
    let mut shapes: Vec<&[usize]> = vec![input.shape.as_slice()];
    shapes.extend(rest.iter().map(|a| a.shape.as_slice()));
    let shape = op.output_shape(&shapes).expect("the shapes fit");
    one_node_shaped(op, input, rest, shape)
}

/// A network of one node whose output has `shape`.
fn one_node_shaped(op: Op, input: Array, rest: Vec<Array>, shape: Vec<usize>) -> (Network, Array) {
    let mut values = vec![Value {
        name: "x".into(),
        shape: input.shape.clone(),
    }];
    let mut constants = HashMap::new();
    for (i, array) in rest.into_iter().enumerate() {
        values.push(Value {
            name: format!("c{i}"),
            shape: array.shape.clone(),
        });
        constants.insert(i + 1, array);
    }
    let inputs: Vec<usize> = (0..values.len()).collect();
    let output = values.len();
    values.push(Value {
        name: "y".into(),
        shape,
    });
    let network = Network {
        path: "test.onnx".into(),
        input: ModelInput {
            name: "x".into(),
            layout: Layout::Nchw,
            channels: 3,
            size: None,
        },
        values,
        input_value: 0,
        nodes: vec![Node {
            name: "node".into(),
            op_type: "Test".into(),
            op,
            inputs,
            output,
            fused: Vec::new(),
        }],
        constants,
        outputs: vec![output],
        folded: 0,
    };
    (network, input)
}

/// Runs `op` on the GPU and on its twin and holds them within `tolerance`
/// of the twin's largest |value|.
fn check(gpu: &GpuNet, what: &str, (op, input, rest): (Op, Array, Vec<Array>), tolerance: f32) {
    check_network(gpu, what, one_node(op, input, rest), tolerance);
}

/// Runs a one-node network on the GPU and on its twin, as [`check`].
fn check_network(gpu: &GpuNet, what: &str, (network, input): (Network, Array), tolerance: f32) {
    let output = network.outputs[0];
    let want = cpu::run(&network, input.clone(), &[output]).expect("the twin runs");
    let got = gpu
        .run(&network, input, &[output])
        .expect("the shader runs");
    let (want, got) = (&want.values[&output], &got.values[&output]);
    assert_eq!(want.shape, got.shape, "{what}");
    let scale = want
        .data
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(1e-6);
    for (i, (a, b)) in got.data.iter().zip(&want.data).enumerate() {
        let close = (a - b).abs() <= tolerance * scale || (a.is_infinite() && a == b);
        assert!(close, "{what}: value {i} is {a}, its twin {b}");
    }
}

fn with_gpu(body: impl Fn(&GpuNet, &mut ChaCha8Rng)) {
    let Some(gpu) = common::gpu() else {
        return;
    };
    let ops = NetOps::new(&gpu).expect("the shader compiles");
    let runner = GpuNet {
        budget: None,
        gpu: &gpu,
        ops: &ops,
        convs: None,
    };
    body(&runner, &mut common::rng(20261205));
}

#[test]
fn conv_matches_its_twin_for_any_geometry() {
    with_gpu(|gpu, rng| {
        for case in 0..40 {
            let mut pick = |n: u32| common::below(rng, n) + 1;
            let group = pick(3);
            let (channels, filters) = (group * pick(3), group * pick(3));
            let kernel = [pick(4), pick(4)];
            let strides = [pick(3), pick(3)];
            let dilations = [pick(2), pick(2)];
            let pads = [pick(3) - 1, pick(3) - 1, pick(3) - 1, pick(3) - 1];
            let size = [pick(8) + 8, pick(8) + 8];
            let conv = Conv {
                kernel,
                strides,
                pads,
                dilations,
                group,
                bias: case % 3 != 0,
                residual: false,
                activation: (case % 4 == 1).then_some(Unary {
                    kind: UnaryKind::HardSwish,
                    alpha: 0.0,
                    beta: 0.0,
                }),
            };
            let c = channels as usize;
            let input = random(rng, &[1, c, size[0] as usize, size[1] as usize], 1.0);
            let weight_shape = [
                filters as usize,
                c / group as usize,
                kernel[0] as usize,
                kernel[1] as usize,
            ];
            let mut rest = vec![random(rng, &weight_shape, 1.0)];
            if conv.bias {
                rest.push(random(rng, &[filters as usize], 1.0));
            }
            check(
                gpu,
                &format!("{conv:?}"),
                (Op::Conv(conv), input, rest),
                1e-5,
            );
        }
    });
}

#[test]
fn every_activation_fused_into_a_conv_on_the_subgroup_kernel_matches_its_twin() {
    let Some(gpu) = common::gpu() else {
        return;
    };
    let ops = NetOps::new(&gpu).expect("the shader compiles");
    let tensor_ops = TensorOps::new(&gpu).expect("the shader compiles");
    let fast = ShaderKind::Fast
        .compile_with(&gpu, FastKernel::Subgroup)
        .expect("the shader compiles");
    let runner = GpuNet {
        budget: None,
        gpu: &gpu,
        ops: &ops,
        convs: Some((fast.as_ref(), &tensor_ops)),
    };
    let rng = &mut common::rng(5);
    for (case, (kind, alpha, beta)) in ACTIVATIONS.into_iter().enumerate() {
        // Rows of 3 taps at strides 1 and 2, and the general loop (1×1);
        // a residual added before the activation every other case.
        let (kernel, stride) = [(3, 1), (3, 2), (1, 1)][case % 3];
        let conv = Conv {
            kernel: [kernel; 2],
            strides: [stride; 2],
            pads: [kernel / 2; 4],
            dilations: [1, 1],
            group: 1,
            bias: true,
            activation: Some(Unary { kind, alpha, beta }),
            residual: false,
        };
        let input = random(rng, &[1, 8, 9, 19], 1.0);
        let k = kernel as usize;
        let mut rest = vec![random(rng, &[12, 8, k, k], 0.5), random(rng, &[12], 0.5)];
        let shapes: Vec<&[usize]> = std::iter::once(&input)
            .chain(&rest)
            .map(|a| &a.shape[..])
            .collect();
        let shape = Op::Conv(conv)
            .output_shape(&shapes)
            .expect("the shapes fit");
        let residual = case % 2 == 0;
        if residual {
            rest.push(random(rng, &shape, 1.0));
        }
        let op = Op::Conv(Conv { residual, ..conv });
        let what = format!("{kind:?} fused, residual {residual}, {kernel}×{kernel}/{stride}");
        let network = one_node_shaped(op, input, rest, shape);
        check_network(&runner, &what, network, 1e-5);
    }
}

#[test]
fn every_activation_matches_its_twin() {
    with_gpu(|gpu, rng| {
        for (kind, alpha, beta) in ACTIVATIONS {
            let unary = Unary { kind, alpha, beta };
            let input = random(rng, &[1, 3, 7, 9], 10.0);
            check(
                gpu,
                &format!("{unary:?}"),
                (Op::Unary(unary), input, vec![]),
                1e-6,
            );
        }
    });
}

#[test]
fn binary_ops_broadcast_as_their_twins_do() {
    with_gpu(|gpu, rng| {
        let pairs: [(&[usize], &[usize]); 6] = [
            (&[1, 4, 5, 6], &[1, 4, 5, 6]),
            (&[1, 4, 5, 6], &[1, 4, 1, 1]),
            (&[1, 4, 5, 6], &[]),
            (&[1, 4, 5, 6], &[4, 1, 1]),
            (&[2, 3], &[3]),
            (&[1, 4, 1, 6], &[1, 1, 5, 1]),
        ];
        for kind in [
            Binary::Add,
            Binary::Sub,
            Binary::Mul,
            Binary::Div,
            Binary::PRelu,
            Binary::Pow,
        ] {
            for (a, b) in pairs {
                let input = random(rng, a, 2.0);
                let mut other = random(rng, b, 1.0);
                if kind == Binary::Div {
                    other
                        .data
                        .iter_mut()
                        .for_each(|v| *v = v.signum() * (v.abs() + 0.5));
                }
                if kind == Binary::Pow {
                    // Whole powers of any base.
                    other.data.iter_mut().for_each(|v| *v = (*v * 3.0).round());
                }
                let what = format!("{kind:?} {a:?} {b:?}");
                check(gpu, &what, (Op::Binary(kind), input, vec![other]), 1e-6);
            }
        }
    });
}

#[test]
fn affine_matches_its_twin() {
    with_gpu(|gpu, rng| {
        let input = random(rng, &[1, 5, 4, 3], 2.0);
        let rest = vec![random(rng, &[5], 2.0), random(rng, &[5], 2.0)];
        check(gpu, "affine", (Op::Affine, input, rest), 1e-6);
    });
}

#[test]
fn pooling_matches_its_twin_with_padding_and_ceil_mode() {
    with_gpu(|gpu, rng| {
        for case in 0..32 {
            let mut pick = |n: u32| common::below(rng, n) + 1;
            let kernel = [pick(3) + 1, pick(3) + 1];
            let pool = Pool {
                max: case % 2 == 0,
                kernel,
                strides: [pick(3), pick(3)],
                pads: [
                    pick(kernel[0]) - 1,
                    pick(kernel[1]) - 1,
                    pick(kernel[0]) - 1,
                    pick(kernel[1]) - 1,
                ],
                dilations: if case % 2 == 0 {
                    [pick(2), pick(2)]
                } else {
                    [1, 1]
                },
                ceil_mode: case % 4 < 2,
                count_include_pad: case % 8 >= 4,
            };
            let size = [9 + pick(6) as usize, 9 + pick(6) as usize];
            let input = random(rng, &[1, 3, size[0], size[1]], 3.0);
            check(
                gpu,
                &format!("{pool:?}"),
                (Op::Pool(pool), input, vec![]),
                1e-6,
            );
        }
    });
}

#[test]
fn global_average_matches_its_twin() {
    with_gpu(|gpu, rng| {
        let input = random(rng, &[1, 6, 7, 5], 3.0);
        check(
            gpu,
            "global average",
            (Op::GlobalAverage, input, vec![]),
            1e-6,
        );
    });
}

#[test]
fn gemm_matches_its_twin_for_each_transposition_and_c() {
    with_gpu(|gpu, rng| {
        let (m, k, n) = (3, 17, 5);
        for trans_a in [false, true] {
            for trans_b in [false, true] {
                let c_shapes: [Option<&[usize]>; 5] = [
                    None,
                    Some(&[n]),
                    Some(&[m, n]),
                    Some(&[1, n]),
                    Some(&[m, 1]),
                ];
                for c in c_shapes {
                    let gemm = Gemm {
                        trans_a,
                        trans_b,
                        alpha: 0.5,
                        beta: 2.0,
                    };
                    let a_shape = if trans_a { [k, m] } else { [m, k] };
                    let b_shape = if trans_b { [n, k] } else { [k, n] };
                    let a = random(rng, &a_shape, 1.0);
                    let mut rest = vec![random(rng, &b_shape, 1.0)];
                    rest.extend(c.map(|c| random(rng, c, 1.0)));
                    let what = format!("{gemm:?} C {c:?}");
                    check(gpu, &what, (Op::Gemm(gemm), a, rest), 1e-5);
                }
            }
        }
    });
}

#[test]
fn softmax_matches_its_twin() {
    with_gpu(|gpu, rng| {
        let input = random(rng, &[3, 10], 20.0);
        check(
            gpu,
            "softmax",
            (Op::Softmax { size: 10, inner: 1 }, input, vec![]),
            1e-5,
        );
    });
}

#[test]
fn positive_logs_and_roots_match_their_twins() {
    with_gpu(|gpu, rng| {
        for kind in [UnaryKind::Log, UnaryKind::Sqrt, UnaryKind::Reciprocal] {
            let mut input = random(rng, &[1, 2, 5, 7], 4.0);
            input.data.iter_mut().for_each(|v| *v = v.abs() + 0.1);
            let unary = Unary {
                kind,
                alpha: 0.0,
                beta: 0.0,
            };
            check(
                gpu,
                &format!("{kind:?}"),
                (Op::Unary(unary), input, vec![]),
                1e-6,
            );
        }
    });
}

#[test]
fn softmax_and_reductions_along_any_axis_match_their_twins() {
    with_gpu(|gpu, rng| {
        let shape = [2, 3, 4, 5];
        for (size, inner) in [(5, 1), (4, 5), (3, 20), (60, 1)] {
            let input = random(rng, &shape, 5.0);
            let op = Op::Softmax { size, inner };
            check(
                gpu,
                &format!("softmax {size} {inner}"),
                (op, input, vec![]),
                1e-5,
            );
            for kind in [Reduce::Mean, Reduce::Sum, Reduce::Max] {
                let input = random(rng, &shape, 5.0);
                let out = vec![120 / size];
                let op = Op::Reduce { kind, size, inner };
                let network = one_node_shaped(op, input, vec![], out);
                check_network(gpu, &format!("{kind:?} {size} {inner}"), network, 1e-5);
            }
        }
    });
}

#[test]
fn moves_match_their_twins() {
    with_gpu(|gpu, rng| {
        let x = random(rng, &[1, 3, 4, 5], 1.0);
        let other = random(rng, &[1, 2, 4, 5], 1.0);
        let concat = Op::Move(Movement::Concat { axis: 1 });
        let network = one_node_shaped(concat, x.clone(), vec![other], vec![1, 5, 4, 5]);
        check_network(gpu, "concat channels", network, 0.0);
        let wide = random(rng, &[1, 3, 4, 2], 1.0);
        let concat = Op::Move(Movement::Concat { axis: 3 });
        let network = one_node_shaped(concat, x.clone(), vec![wide], vec![1, 3, 4, 7]);
        check_network(gpu, "concat columns", network, 0.0);
        let slice = Op::Move(Movement::Slice {
            starts: vec![0, 2, 1, 4],
            steps: vec![1, -1, 2, -2],
        });
        let network = one_node_shaped(slice, x.clone(), vec![], vec![1, 3, 2, 3]);
        check_network(gpu, "slice", network, 0.0);
        let transpose = Op::Move(Movement::Transpose {
            perm: vec![0, 2, 3, 1],
        });
        let network = one_node_shaped(transpose, x.clone(), vec![], vec![1, 4, 5, 3]);
        check_network(gpu, "transpose", network, 0.0);
        let column = random(rng, &[3, 1, 5], 1.0);
        let network = one_node_shaped(Op::Move(Movement::Expand), column, vec![], vec![2, 3, 4, 5]);
        check_network(gpu, "expand", network, 0.0);
    });
}

#[test]
fn resize_matches_its_twin_in_every_mode() {
    with_gpu(|gpu, rng| {
        let coordinates = [
            Coordinates::HalfPixel,
            Coordinates::PytorchHalfPixel,
            Coordinates::AlignCorners,
            Coordinates::Asymmetric,
            Coordinates::TfHalfPixelForNn,
        ];
        let roundings = [
            Rounding::RoundPreferFloor,
            Rounding::RoundPreferCeil,
            Rounding::Floor,
            Rounding::Ceil,
        ];
        for (i, coordinates) in coordinates.into_iter().enumerate() {
            for (j, rounding) in roundings.into_iter().enumerate() {
                for (linear, scales) in [
                    (false, [2.0, 2.0]),
                    (true, [2.0, 1.5]),
                    (false, [0.5, 3.0]),
                    (true, [0.75, 0.5]),
                ] {
                    let resize = Resize {
                        linear,
                        coordinates,
                        rounding,
                        scales,
                    };
                    let input = random(rng, &[1, 2, 6 + i, 8 + j], 1.0);
                    check(
                        gpu,
                        &format!("{resize:?}"),
                        (Op::Resize(resize), input, vec![]),
                        1e-5,
                    );
                }
            }
        }
    });
}

#[test]
fn transposed_conv_matches_its_twin() {
    with_gpu(|gpu, rng| {
        for case in 0..24 {
            let mut pick = |n: u32| common::below(rng, n) + 1;
            let group = pick(2);
            let (channels, per_group) = (group * pick(3), pick(3));
            let kernel = [pick(4), pick(4)];
            let conv = ConvTranspose {
                kernel,
                strides: [pick(3), pick(3)],
                pads: [pick(2) - 1, pick(2) - 1, pick(2) - 1, pick(2) - 1],
                dilations: [pick(2), pick(2)],
                group,
                output_padding: [0, case % 2],
                bias: case % 3 != 0,
            };
            let size = [pick(5) + 2, pick(5) + 2];
            let input = random(
                rng,
                &[1, channels as usize, size[0] as usize, size[1] as usize],
                1.0,
            );
            let weight = [
                channels as usize,
                per_group as usize,
                kernel[0] as usize,
                kernel[1] as usize,
            ];
            let mut rest = vec![random(rng, &weight, 1.0)];
            if conv.bias {
                rest.push(random(rng, &[(per_group * group) as usize], 1.0));
            }
            check(
                gpu,
                &format!("{conv:?}"),
                (Op::ConvTranspose(conv), input, rest),
                1e-5,
            );
        }
    });
}
