//! Which GPU buffer each value of a network lives in. One submission holds
//! every buffer it uses until it ends, so a value's buffer is handed to a
//! later value of the same size once no node will read it again: a run's
//! memory is then the most its values need at once, not their sum.

use std::collections::HashMap;

use super::ops::Op;
use super::{Network, ValueId};

/// Each value's buffer (a slot) and each slot's size.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BufferPlan {
    /// The slot of each value a node writes, and of the model's input;
    /// `None` for constants (uploaded on their own) and unused values.
    pub slot_of: Vec<Option<usize>>,
    /// Each slot's bytes: 4 per f32, at least 4.
    pub slot_bytes: Vec<u64>,
}

impl BufferPlan {
    /// The plan for `net`, in its run order. A node's output takes a free
    /// slot of its size, or a new one; a view (Flatten, Reshape) shares its
    /// input's slot. After the node, each value it was the last to read is
    /// freed once no live value shares its slot. The model's input keeps
    /// its slot (it is uploaded, not written by a node).
    pub fn new(net: &Network) -> BufferPlan {
        BufferPlan::with_bytes(net, |value| bytes_of(net, value))
    }

    /// [`BufferPlan::new`] with each value's bytes as `bytes` gives them
    /// (at least 4): a value laid out as the next conv's quads
    /// (`net::quads`) takes more than its f32s.
    pub fn with_bytes(net: &Network, bytes: impl Fn(ValueId) -> u64) -> BufferPlan {
        let bytes = |value| bytes(value).max(4);
        let last = net.last_readers();
        let mut plan = BufferPlan {
            slot_of: vec![None; net.values.len()],
            slot_bytes: Vec::new(),
        };
        let mut users: Vec<usize> = Vec::new();
        let mut free: HashMap<u64, Vec<usize>> = HashMap::new();
        let input_bytes = bytes(net.input_value);
        plan.slot_of[net.input_value] = Some(plan.new_slot(input_bytes, &mut users));
        for (index, node) in net.nodes.iter().enumerate() {
            let first = node.inputs.first().and_then(|&input| plan.slot_of[input]);
            let slot = match (&node.op, first) {
                (Op::View, Some(shared)) => shared,
                _ => {
                    let bytes = bytes(node.output);
                    match free.get_mut(&bytes).and_then(Vec::pop) {
                        Some(slot) => slot,
                        None => plan.new_slot(bytes, &mut users),
                    }
                }
            };
            users[slot] += 1;
            plan.slot_of[node.output] = Some(slot);
            for &input in &node.inputs {
                let Some(slot) = plan.slot_of[input] else {
                    continue;
                };
                if last[input] != Some(index) || input == net.input_value {
                    continue;
                }
                users[slot] -= 1;
                if users[slot] == 0 {
                    free.entry(plan.slot_bytes[slot]).or_default().push(slot);
                }
            }
        }
        plan
    }

    /// A new slot of `bytes`, with no user yet.
    fn new_slot(&mut self, bytes: u64, users: &mut Vec<usize>) -> usize {
        self.slot_bytes.push(bytes);
        users.push(0);
        self.slot_bytes.len() - 1
    }

    /// Bytes of every slot.
    pub fn bytes(&self) -> u64 {
        self.slot_bytes.iter().sum()
    }
}

/// Bytes of a value's f32s, at least 4 (a buffer is never empty).
fn bytes_of(net: &Network, value: ValueId) -> u64 {
    (4 * net.values[value].shape.iter().product::<usize>() as u64).max(4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::ops::{Unary, UnaryKind};
    use crate::net::{Layout, ModelInput, Node, Value};

    /// A chain x → relu → relu → view → relu over `[1, 4, 8, 8]`.
    fn chain() -> Network {
        let value = |name: &str| Value {
            name: name.into(),
            shape: vec![1, 4, 8, 8],
        };
        let relu = Op::Unary(Unary {
            kind: UnaryKind::Relu,
            alpha: 0.0,
            beta: 0.0,
        });
        let node = |name: &str, op: &Op, input: usize, output: usize| Node {
            name: name.into(),
            op_type: "Relu".into(),
            op: op.clone(),
            inputs: vec![input],
            output,
            fused: Vec::new(),
        };
        Network {
            path: "chain.onnx".into(),
            input: ModelInput {
                name: "x".into(),
                layout: Layout::Nchw,
                channels: 4,
                size: None,
            },
            values: ["x", "a", "b", "v", "c"].map(value).to_vec(),
            input_value: 0,
            nodes: vec![
                node("a", &relu, 0, 1),
                node("b", &relu, 1, 2),
                node("v", &Op::View, 2, 3),
                node("c", &relu, 3, 4),
            ],
            constants: HashMap::new(),
            outputs: vec![4],
            folded: 0,
        }
    }

    #[test]
    fn a_value_no_node_reads_again_lends_its_buffer_and_a_view_shares_one() {
        let plan = BufferPlan::new(&chain());
        // x keeps its slot; a, then b; the view shares b's; c reuses a's
        // (freed after b), not b's (the view still reads it while c runs).
        assert_eq!(plan.slot_of, [Some(0), Some(1), Some(2), Some(2), Some(1)]);
        assert_eq!(plan.slot_bytes, [1024; 3]);
        assert_eq!(plan.bytes(), 3 * 1024);
    }

    #[test]
    fn a_value_of_other_bytes_takes_a_slot_of_its_own_size() {
        // b laid out larger (as quads): c cannot take b's slot, nor a's once
        // a is larger, so each gets one of its size.
        let net = chain();
        let plan = BufferPlan::with_bytes(&net, |value| if value == 2 { 2048 } else { 1024 });
        assert_eq!(plan.slot_of, [Some(0), Some(1), Some(2), Some(2), Some(1)]);
        assert_eq!(plan.slot_bytes, [1024, 1024, 2048]);
        let plan = BufferPlan::with_bytes(&net, |value| if value == 1 { 4096 } else { 1024 });
        assert_eq!(plan.slot_of, [Some(0), Some(1), Some(2), Some(2), Some(3)]);
        assert_eq!(plan.slot_bytes, [1024, 4096, 1024, 1024]);
    }
}
