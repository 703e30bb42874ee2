//! Which values of a network are written straight into the quads of the
//! convs that read them: the subgroup kernel's input layout
//! (`gpu::fast::subgroup`), channels in vec4s with the zero padding. A conv
//! writes them in its own dispatch, and a Mul of maps by a factor per
//! channel (squeeze-and-excitation) as the packing step of the conv after
//! it. Either way the value skips a pass over memory: on lavapipe the
//! packing steps between convs took about a fifth of MobileNetV2's and
//! EfficientNet-B0's forward pass.

use std::collections::HashMap;

use super::ops::{Binary, Op};
use super::{Network, Node, ValueId};
use crate::gpu::QuadTarget;

/// The values of `net` that live as quads, each with its quads' layout: a
/// value whose node can write it as quads (`writes`: a conv on the
/// subgroup kernel, or a Mul that [`scales_channels`]), that only convs
/// read, each as its input (not as a residual) and each reading the same
/// quads (`reads`: the quads a conv node reads, where it reads any), and
/// that is neither read back (`keep`) nor a graph output.
pub fn quad_values(
    net: &Network,
    keep: &[ValueId],
    reads: impl Fn(&Node) -> Option<QuadTarget>,
    writes: impl Fn(&Node) -> bool,
) -> HashMap<ValueId, QuadTarget> {
    let mut readers: HashMap<ValueId, Vec<(&Node, usize)>> = HashMap::new();
    for node in &net.nodes {
        for (position, &input) in node.inputs.iter().enumerate() {
            readers.entry(input).or_default().push((node, position));
        }
    }
    let mut quads = HashMap::new();
    for node in &net.nodes {
        let value = node.output;
        if keep.contains(&value) || net.outputs.contains(&value) || !writes(node) {
            continue;
        }
        let Some(readers) = readers.get(&value) else {
            continue;
        };
        let mut targets = readers.iter().map(|&(reader, position)| match reader.op {
            Op::Conv(_) if position == 0 => reads(reader),
            _ => None,
        });
        let Some(Some(first)) = targets.next() else {
            continue;
        };
        if targets.all(|target| target == Some(first)) {
            quads.insert(value, first);
        }
    }
    quads
}

/// The maps and the factors of a Mul of maps `[1, C, H, W]` by a factor
/// per channel `[1, C, 1, 1]` (in either order), as their values: what the
/// packing step of the conv after it can multiply as it packs.
pub fn scales_channels(net: &Network, node: &Node) -> Option<(ValueId, ValueId)> {
    let (Op::Binary(Binary::Mul), &[a, b]) = (&node.op, &node.inputs[..]) else {
        return None;
    };
    let shape = |value: ValueId| net.values[value].shape.as_slice();
    let [1, channels, _, _] = *shape(node.output) else {
        return None;
    };
    let per_channel = [1, channels, 1, 1];
    match (
        shape(a) == shape(node.output),
        shape(b) == shape(node.output),
    ) {
        (true, false) if shape(b) == per_channel => Some((a, b)),
        (false, true) if shape(a) == per_channel => Some((b, a)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::resident::QuadLayout;
    use crate::net::ops::{Conv, Unary, UnaryKind};
    use crate::net::{Layout, ModelInput, Value};

    /// The quads every conv of these tests reads: its padding, 1 or 0, is
    /// the first of its pads.
    fn target_of(node: &Node) -> Option<QuadTarget> {
        let Op::Conv(conv) = &node.op else {
            return None;
        };
        let pad = conv.pads[0];
        Some(QuadTarget {
            layout: QuadLayout {
                groups: 1,
                channels: 8,
                quads: 2,
                padded_height: 8 + 2 * pad,
                padded_width: 8 + 2 * pad,
            },
            pad_top: pad,
            pad_left: pad,
        })
    }

    /// A 3×3 conv with `pad` on each side.
    fn conv(pad: u32) -> Op {
        Op::Conv(Conv {
            kernel: [3, 3],
            strides: [1, 1],
            pads: [pad; 4],
            dilations: [1, 1],
            group: 1,
            bias: false,
            activation: None,
            residual: false,
        })
    }

    /// A network of `nodes` (op, inputs) over values 0..=n, value 0 its
    /// input and node i writing value i + 1, with `outputs`.
    fn network(nodes: Vec<(Op, Vec<ValueId>)>, outputs: Vec<ValueId>) -> Network {
        let values = (0..=nodes.len())
            .map(|i| Value {
                name: format!("v{i}"),
                shape: vec![1, 8, 8, 8],
            })
            .collect();
        let nodes = nodes
            .into_iter()
            .enumerate()
            .map(|(i, (op, inputs))| Node {
                name: format!("n{i}"),
                op_type: String::new(),
                op,
                inputs,
                output: i + 1,
                fused: Vec::new(),
            })
            .collect();
        Network {
            path: "test.onnx".into(),
            input: ModelInput {
                name: "v0".into(),
                layout: Layout::Nchw,
                channels: 8,
                size: None,
            },
            values,
            input_value: 0,
            nodes,
            constants: HashMap::new(),
            outputs,
            folded: 0,
        }
    }

    #[test]
    fn a_value_only_convs_read_through_the_same_quads_lives_as_quads() {
        // v1 = conv(v0); v2 = conv(v1); v3 = conv(v1); v4 = v2 + v3.
        let add = Op::Binary(Binary::Add);
        let net = network(
            vec![
                (conv(1), vec![0]),
                (conv(1), vec![1]),
                (conv(1), vec![1]),
                (add, vec![2, 3]),
            ],
            vec![4],
        );
        let quads = quad_values(&net, &[], target_of, |_| true);
        assert_eq!(quads.keys().copied().collect::<Vec<_>>(), vec![1]);
        assert_eq!(quads[&1], target_of(&net.nodes[1]).unwrap());
    }

    #[test]
    fn a_mul_by_a_factor_per_channel_is_packed_for_the_conv_after_it() {
        // v1 = conv(v0); v2 = mean of v1 [1, 8, 1, 1] (here a conv); v3 =
        // v1 · v2; v4 = v2 · v1; v5 = v1 · v1; v6..v8 = convs of v3..v5.
        let mul = || Op::Binary(Binary::Mul);
        let mut net = network(
            vec![
                (conv(1), vec![0]),
                (conv(0), vec![1]),
                (mul(), vec![1, 2]),
                (mul(), vec![2, 1]),
                (mul(), vec![1, 1]),
                (conv(0), vec![3]),
                (conv(0), vec![4]),
                (conv(0), vec![5]),
            ],
            vec![6, 7, 8],
        );
        net.values[2].shape = vec![1, 8, 1, 1];
        let scaled: Vec<_> = net.nodes.iter().map(|n| scales_channels(&net, n)).collect();
        let expected = [
            None,
            None,
            Some((1, 2)),
            Some((1, 2)),
            None,
            None,
            None,
            None,
        ];
        assert_eq!(scaled, expected);
        let writes = |node: &Node| scales_channels(&net, node).is_some();
        let mut quads: Vec<ValueId> = quad_values(&net, &[], target_of, writes)
            .into_keys()
            .collect();
        quads.sort();
        assert_eq!(quads, [3, 4]);
    }

    #[test]
    fn a_value_read_otherwise_kept_or_written_by_what_cannot_write_quads_stays_flat() {
        let relu = Op::Unary(Unary {
            kind: UnaryKind::Relu,
            alpha: 0.0,
            beta: 0.0,
        });
        // (network, values read back, whether the conv can write quads)
        let cases = [
            // Read by a conv and by a ReLU.
            (
                network(
                    vec![(conv(1), vec![0]), (conv(1), vec![1]), (relu, vec![1])],
                    vec![2, 3],
                ),
                vec![],
                true,
            ),
            // Read by two convs that read different quads (their padding).
            (
                network(
                    vec![(conv(1), vec![0]), (conv(1), vec![1]), (conv(0), vec![1])],
                    vec![2, 3],
                ),
                vec![],
                true,
            ),
            // Read as a conv's residual (its fourth input).
            (
                network(
                    vec![(conv(1), vec![0]), (conv(1), vec![0, 5, 6, 1])],
                    vec![2],
                ),
                vec![],
                true,
            ),
            // Read by one conv as its input and as its residual.
            (
                network(
                    vec![(conv(1), vec![0]), (conv(1), vec![1, 5, 6, 1])],
                    vec![2],
                ),
                vec![],
                true,
            ),
            // Read back, as maps are.
            (
                network(vec![(conv(1), vec![0]), (conv(1), vec![1])], vec![2]),
                vec![1],
                true,
            ),
            // A graph output.
            (
                network(vec![(conv(1), vec![0]), (conv(1), vec![1])], vec![1, 2]),
                vec![],
                true,
            ),
            // Read by nothing.
            (network(vec![(conv(1), vec![0])], vec![]), vec![], true),
            // Written by a conv that cannot write quads.
            (
                network(vec![(conv(1), vec![0]), (conv(1), vec![1])], vec![2]),
                vec![],
                false,
            ),
        ];
        for (i, (net, keep, writes)) in cases.into_iter().enumerate() {
            let quads = quad_values(&net, &keep, target_of, |_| writes);
            assert!(quads.is_empty(), "case {i}: {quads:?}");
        }
    }
}
