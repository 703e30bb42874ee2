//! Nodes fused where no one looks between them: a Sigmoid and the Mul of
//! its input by it (SiLU, as exporters write it) made one activation, a
//! BatchNormalization after a conv folded into the conv's weights and bias,
//! and an activation after a conv applied by the conv itself, when the conv's own output is read by
//! that node alone and is neither kept (for its maps, CAM) nor a graph
//! output. Fewer nodes run, and the values that are kept are the same.

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

/// The first conv (by index) whose output only the next node reads, that
/// node an affine (a conv without an activation yet) or an activation.
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
        let fits = match &net.nodes[*next].op {
            Op::Affine => conv.activation.is_none() && net.nodes[*next].inputs[0] == node.output,
            Op::Unary(_) => conv.activation.is_none(),
            _ => false,
        };
        (fits && !looked_at).then_some((index, *next))
    })
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
