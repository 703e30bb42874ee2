//! Whole networks (`--model FILE.onnx`): an ONNX graph loaded for one input
//! size as a list of nodes that run in order, each an op of the registry
//! ([`ops`]) with its output shape known, the weights read from the file
//! and the shape subgraphs folded away (`fold`). [`cpu::run`] runs it
//! with the CPU twins; the GPU runs it in `shaders/net_ops.wgsl`
//! (`net::gpu`).

pub mod array;
pub mod buffers;
pub mod check;
pub mod cpu;
pub mod field;
mod fold;
pub mod fuse;
pub mod gpu;
pub mod head;
pub mod input;
mod load;
pub mod memory;
pub mod movement;
pub mod ops;
pub mod quads;

use std::collections::HashMap;
use std::path::PathBuf;

pub use array::Array;
pub use load::{Layout, ModelInput, open};
pub use ops::Op;

/// What a run of a network hands back.
#[derive(Debug)]
pub struct NetRun {
    /// The values asked for.
    pub values: HashMap<ValueId, Array>,
    /// Each node's time, in node order, in milliseconds: the GPU's
    /// timestamps around its dispatches where the GPU has them, else wall
    /// time on the CPU; empty where neither is measured per node.
    pub node_ms: Vec<f64>,
    /// The whole forward pass on the GPU's clock, where it has timestamps.
    pub gpu_ms: Option<f64>,
    /// Wall time from the input's upload to the last value read back.
    pub total: std::time::Duration,
    /// What the run held in memory at once, as estimated before it ran.
    pub memory: memory::NetMemory,
}

/// A value's index in [`Network::values`].
pub type ValueId = usize;

/// A tensor the network reads or writes: the model's input, a weight or
/// constant, or a node's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// Its name in the model.
    pub name: String,
    /// Its shape for this input size, batch included.
    pub shape: Vec<usize>,
}

/// One node that runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Its name in the model (its output's, where the model names none).
    pub name: String,
    /// Its ONNX op type (`Conv`, `Add`, …).
    pub op_type: String,
    /// What it computes.
    pub op: Op,
    /// The values it reads, in the op's order.
    pub inputs: Vec<ValueId>,
    /// The value it writes.
    pub output: ValueId,
    /// The model's nodes fused into this one (a BatchNormalization folded
    /// into a conv, an activation applied by it), by name, in order.
    pub fused: Vec<String>,
}

/// A model's graph for one input size, ready to run.
#[derive(Debug)]
pub struct Network {
    /// The model file.
    pub path: PathBuf,
    /// The model's input.
    pub input: ModelInput,
    /// Every value, by [`ValueId`].
    pub values: Vec<Value>,
    /// The input value: `[1, 3, H, W]` (or `[1, H, W, 3]`).
    pub input_value: ValueId,
    /// The nodes, in an order in which each runs after what it reads.
    pub nodes: Vec<Node>,
    /// The values of weights and folded constants the nodes read.
    pub constants: HashMap<ValueId, Array>,
    /// The graph's outputs.
    pub outputs: Vec<ValueId>,
    /// Nodes folded away at load (constant and shape subgraphs).
    pub folded: usize,
}

impl Network {
    /// The shapes of `node`'s inputs.
    pub fn input_shapes(&self, node: &Node) -> Vec<&[usize]> {
        node.inputs
            .iter()
            .map(|&v| self.values[v].shape.as_slice())
            .collect()
    }

    /// The learned values `node` holds.
    pub fn parameters(&self, node: &Node) -> u64 {
        node.op.parameters(&self.input_shapes(node))
    }

    /// The floating-point operations `node` computes.
    pub fn flops(&self, node: &Node) -> u64 {
        node.op
            .flops(&self.input_shapes(node), &self.values[node.output].shape)
    }

    /// For each value, the index of the last node that reads it (`None`
    /// for values no node reads): where it may be freed.
    pub fn last_readers(&self) -> Vec<Option<usize>> {
        let mut last = vec![None; self.values.len()];
        for (index, node) in self.nodes.iter().enumerate() {
            for &input in &node.inputs {
                last[input] = Some(index);
            }
        }
        last
    }

    /// The node that writes `value`, if one does.
    pub fn writer(&self, value: ValueId) -> Option<&Node> {
        self.nodes.iter().find(|n| n.output == value)
    }
}
