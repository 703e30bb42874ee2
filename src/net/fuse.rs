//! Nodes fused where no one looks between them: a Sigmoid and the Mul of
//! its input by it (SiLU, as exporters write it) made one activation, a
//! BatchNormalization after a conv folded into the conv's weights and bias,
//! an Add of a value of the conv's shape to its output (a residual
//! connection) and then an activation applied by the conv itself, when the
//! conv's own output is read by that node alone and is neither kept (for
//! its maps, CAM) nor a graph output. Fewer nodes run, and the values that
//! are kept are the same.

use std::collections::HashMap;

use super::ops::{Binary, Op, Unary, UnaryKind};
use super::{Array, Network, ValueId};

/// Fuses what can be fused in `net`, keeping the values `keep` lists;
/// returns how many nodes were fused away.
pub fn fuse(net: &mut Network, keep: &[ValueId]) -> usize {
    let mut fused = 0;
    while let Some((sigmoid, mul)) = silu_pair(net, keep) {
        let x = net.nodes[sigmoid].inputs[0];
        let absorbed = net.nodes.remove(sigmoid);
        let mul = if sigmoid < mul { mul - 1 } else { mul };
        let node = &mut net.nodes[mul];
        node.op = Op::Unary(Unary {
            kind: UnaryKind::Silu,
            alpha: 0.0,
            beta: 0.0,
        });
        node.inputs = vec![x];
        node.fused.push(absorbed.name);
        fused += 1;
    }
    while let Some((conv, next)) = fusable_pair(net, keep) {
        match net.nodes[next].op {
            Op::Binary(Binary::Add) => {
                fuse_residual(net, conv, next);
                fused += 1;
                continue;
            }
            Op::Affine => fold_affine(net, conv, next),
            Op::Unary(unary) => {
                if let Op::Conv(geometry) = &mut net.nodes[conv].op {
                    geometry.activation = Some(unary);
                }
            }
            _ => unreachable!("only affines and activations are fused"),
        }
        let absorbed = net.nodes.remove(next);
        let node = &mut net.nodes[conv];
        node.output = absorbed.output;
        node.fused.push(absorbed.name);
        fused += 1;
    }
    fused
}

/// Who reads each value: the indices of the nodes, in order.
fn readers(net: &Network) -> HashMap<ValueId, Vec<usize>> {
    let mut readers: HashMap<ValueId, Vec<usize>> = HashMap::new();
    for (index, node) in net.nodes.iter().enumerate() {
        for &input in &node.inputs {
            readers.entry(input).or_default().push(index);
        }
    }
    readers
}

/// A Sigmoid of x whose output only a Mul of x by it reads (x · sigmoid(x),
/// as exporters write SiLU), the Sigmoid's output not looked at.
fn silu_pair(net: &Network, keep: &[ValueId]) -> Option<(usize, usize)> {
    let readers = readers(net);
    net.nodes.iter().enumerate().find_map(|(index, node)| {
        let Op::Unary(Unary {
            kind: UnaryKind::Sigmoid,
            ..
        }) = node.op
        else {
            return None;
        };
        let looked_at = keep.contains(&node.output) || net.outputs.contains(&node.output);
        let [mul] = readers.get(&node.output)?.as_slice() else {
            return None;
        };
        let multiplies = net.nodes[*mul].op == Op::Binary(Binary::Mul);
        let mut inputs = net.nodes[*mul].inputs.clone();
        inputs.sort_unstable();
        let mut expected = vec![node.inputs[0], node.output];
        expected.sort_unstable();
        (multiplies && inputs == expected && !looked_at).then_some((index, *mul))
    })
}

/// The first conv (by index) whose output only one node reads, that node
/// an affine (for a conv without an activation or residual yet), an Add of
/// another value of the same shape (for a conv without an activation or
/// residual yet) or an activation (for a conv without one yet).
fn fusable_pair(net: &Network, keep: &[ValueId]) -> Option<(usize, usize)> {
    let readers = readers(net);
    net.nodes.iter().enumerate().find_map(|(index, node)| {
        let Op::Conv(conv) = &node.op else {
            return None;
        };
        let looked_at = keep.contains(&node.output) || net.outputs.contains(&node.output);
        let [next] = readers.get(&node.output)?.as_slice() else {
            return None;
        };
        let reader = &net.nodes[*next];
        let plain = conv.activation.is_none() && !conv.residual;
        let fits = match &reader.op {
            Op::Affine => plain && reader.inputs[0] == node.output,
            Op::Binary(Binary::Add) => {
                let other = residual_of(reader, node.output);
                plain
                    && other.is_some_and(|other| {
                        net.values[other].shape == net.values[node.output].shape
                    })
            }
            Op::Unary(_) => conv.activation.is_none(),
            _ => false,
        };
        (fits && !looked_at).then_some((index, *next))
    })
}

/// The other input of the Add node `add` of `value` to it, where it is
/// another value (not `value` added to itself).
fn residual_of(add: &super::Node, value: ValueId) -> Option<ValueId> {
    match add.inputs[..] {
        [a, b] if a == value && b != value => Some(b),
        [a, b] if b == value && a != value => Some(a),
        _ => None,
    }
}

/// Fuses the Add node `add` of the conv `conv`'s output and another value
/// into the conv: the other value becomes its residual input (after a bias,
/// zeros where it had none), its output the Add's, and it runs where the
/// Add ran, after the residual is computed.
fn fuse_residual(net: &mut Network, conv: usize, add: usize) {
    let residual = residual_of(&net.nodes[add], net.nodes[conv].output).expect("a residual");
    if net.nodes[conv].inputs.len() < 3 {
        let filters = net.values[net.nodes[conv].inputs[1]].shape[0];
        let name = format!("{}.zero_bias", net.nodes[conv].name);
        let bias = add_constant(net, name, Array::new(vec![filters], vec![0.0; filters]));
        net.nodes[conv].inputs.push(bias);
    }
    let mut node = net.nodes.remove(conv);
    let absorbed = &net.nodes[add - 1];
    node.inputs.push(residual);
    node.output = absorbed.output;
    node.fused.push(absorbed.name.clone());
    if let Op::Conv(geometry) = &mut node.op {
        geometry.bias = true;
        geometry.residual = true;
    }
    net.nodes[add - 1] = node;
}

/// Folds the affine node `affine` (scale and shift per channel) into the
/// conv `conv` before it: w'[k] = w[k]·scale[k], b'[k] = b[k]·scale[k] +
/// shift[k], as new constants (the old ones may have other readers).
fn fold_affine(net: &mut Network, conv: usize, affine: usize) {
    let scale = net.constants[&net.nodes[affine].inputs[1]].data.clone();
    let shift = net.constants[&net.nodes[affine].inputs[2]].data.clone();
    let node = &net.nodes[conv];
    let weight = &net.constants[&node.inputs[1]];
    let per_filter = weight.len() / scale.len().max(1);
    let folded: Vec<f32> = weight
        .data
        .iter()
        .enumerate()
        .map(|(i, w)| w * scale[i / per_filter])
        .collect();
    let bias: Vec<f32> = match node.inputs.get(2) {
        Some(b) => net.constants[b].data.clone(),
        None => vec![0.0; scale.len()],
    };
    let bias: Vec<f32> = (0..scale.len())
        .map(|k| bias[k] * scale[k] + shift[k])
        .collect();
    let weight_shape = weight.shape.clone();
    let name = node.name.clone();
    let weight_id = add_constant(
        net,
        format!("{name}.folded_weight"),
        Array::new(weight_shape, folded),
    );
    let bias_id = add_constant(
        net,
        format!("{name}.folded_bias"),
        Array::new(vec![bias.len()], bias),
    );
    let node = &mut net.nodes[conv];
    node.inputs.truncate(1);
    node.inputs.extend([weight_id, bias_id]);
    if let Op::Conv(geometry) = &mut node.op {
        geometry.bias = true;
    }
}

/// A new constant value.
fn add_constant(net: &mut Network, name: String, array: Array) -> ValueId {
    let id = net.values.len();
    net.values.push(super::Value {
        name,
        shape: array.shape.clone(),
    });
    net.constants.insert(id, array);
    id
}
