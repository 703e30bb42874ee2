//! An ONNX model loaded for one input size: its nodes put in an order that
//! runs, its shape subgraphs folded, each other node parsed into an op of
//! the registry with its output shape inferred, and the weights it reads
//! taken from the file. A model that cannot run is refused here, before
//! anything runs, with an error that names the file, the node and what is
//! wrong.

mod shapes;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;

use super::fold::{self, Const, FOLDABLE};
use super::ops::{Binary, Conv, Gemm, Op, Pool, ShapeText, Unary, UnaryKind};
use super::{Array, Network, Node, Value, ValueId};
use crate::error::{Error, Result};
use crate::model::ModelFile;
use crate::model::onnx::{self, OnnxFile};

/// The most values one tensor of a model may hold (1 GiB of f32).
const MAX_TENSOR_VALUES: usize = 1 << 28;
/// Constants at most this large are read to fold shape subgraphs.
const MAX_FOLDED_VALUES: usize = 1 << 16;

/// The ops the registry runs, for the error that names an op outside it.
pub const SUPPORTED: [&str; 45] = [
    "Conv",
    "BatchNormalization",
    "Relu",
    "LeakyRelu",
    "Clip",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Tanh",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "ReduceMean",
    "Flatten",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Gemm",
    "MatMul",
    "Softmax",
    "Dropout",
    "Identity",
    "Constant",
    "ReduceSum",
    "ReduceMax",
    "Concat",
    "Split",
    "Slice",
    "Transpose",
    "Expand",
    "Resize",
    "Upsample",
    "ConvTranspose",
    "PRelu",
    "Pow",
    "Exp",
    "Log",
    "Sqrt",
    "Neg",
    "Abs",
    "Reciprocal",
];

/// How the model's input lays out a photo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Layout {
    /// `[N, C, H, W]`, as PyTorch's models take it.
    Nchw,
    /// `[N, H, W, C]`, as models converted from Keras and TensorFlow take it.
    Nhwc,
}

impl Layout {
    /// `NCHW` or `NHWC`.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Nchw => "NCHW",
            Layout::Nhwc => "NHWC",
        }
    }
}

/// The model's input, as its graph states it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInput {
    /// Its name.
    pub name: String,
    /// Where the channels are.
    pub layout: Layout,
    /// Channels (3).
    pub channels: u32,
    /// `[H, W]` when the model fixes them; `None` when they are dynamic.
    pub size: Option<[u32; 2]>,
}

/// An open ONNX model, its input known, not yet loaded for a size.
pub struct Model {
    file: OnnxFile,
    /// The model's input.
    pub input: ModelInput,
}

/// Opens the ONNX model at `path` and reads what its input is. Errors name
/// the file: not an ONNX model, no input or several, an input that is not
/// a photo's `[1, 3, H, W]` or `[1, H, W, 3]`.
pub fn open(path: &Path) -> Result<Model> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if let Some(other @ ("pt" | "pth" | "bin" | "safetensors" | "npy")) = extension.as_deref() {
        return Err(Error::weights(
            path,
            format!(
                "--model runs ONNX models; a .{other} file holds weights, not the graph that \
                 runs them: export the model with torch.onnx.export, or read its convs with --weights"
            ),
        ));
    }
    let file = OnnxFile::open(path)?;
    let input = model_input(file.graph()).map_err(|e| Error::weights(path, e))?;
    Ok(Model { file, input })
}

/// The graph's one input that is not an initializer, and its layout.
fn model_input(graph: &onnx::Graph) -> std::result::Result<ModelInput, String> {
    let initializers: HashSet<&str> = graph.initializers.iter().map(String::as_str).collect();
    let inputs: Vec<&onnx::ValueInfo> = graph
        .inputs
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .collect();
    let [input] = inputs[..] else {
        let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
        return Err(format!(
            "has {} inputs ({}); convmaps runs models with one input, the photo",
            names.len(),
            names.join(", ")
        ));
    };
    if !matches!(input.elem_type, 0 | 1) {
        return Err(format!(
            "its input {:?} has element type {}, expected FLOAT (1)",
            input.name, input.elem_type
        ));
    }
    let dims = input.shape.clone().unwrap_or_else(|| vec![None; 4]);
    let size = |d: Option<u64>| d.and_then(|d| u32::try_from(d).ok());
    let (layout, channels, h, w) = match dims[..] {
        [_, Some(3), h, w] => (Layout::Nchw, 3, h, w),
        [_, h, w, Some(3)] => (Layout::Nhwc, 3, h, w),
        [_, None, h, w] => (Layout::Nchw, 3, h, w),
        _ => {
            let shown: Vec<String> = dims
                .iter()
                .map(|d| d.map_or("?".to_string(), |d| d.to_string()))
                .collect();
            return Err(format!(
                "its input {:?} has shape [{}], expected a photo's [N, 3, H, W] or [N, H, W, 3]",
                input.name,
                shown.join(", ")
            ));
        }
    };
    if let [Some(n), ..] = dims[..]
        && n != 1
    {
        return Err(format!(
            "its input {:?} takes a batch of {n}; convmaps runs a batch of one",
            input.name
        ));
    }
    Ok(ModelInput {
        name: input.name.clone(),
        layout,
        channels,
        size: size(h).zip(size(w)).map(|(h, w)| [h, w]),
    })
}

impl Model {
    /// The model file's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The model loaded for an input of `height`×`width` pixels: nodes in
    /// an order that runs, shapes inferred, weights read. Errors name the
    /// file and the node: an op outside the registry, a cycle, a value no
    /// node writes, shapes that do not fit, a tensor whose data is short.
    pub fn network(&mut self, [height, width]: [u32; 2]) -> Result<Network> {
        let path = self.file.path().to_path_buf();
        let input_shape = match self.input.layout {
            Layout::Nchw => vec![
                1,
                self.input.channels as usize,
                height as usize,
                width as usize,
            ],
            Layout::Nhwc => vec![
                1,
                height as usize,
                width as usize,
                self.input.channels as usize,
            ],
        };
        let nodes = self.file.graph().nodes.clone();
        let outputs: Vec<String> = self
            .file
            .graph()
            .outputs
            .iter()
            .map(|o| o.name.clone())
            .collect();
        let order = run_order(&self.file, &nodes, &self.input.name)
            .map_err(|e| Error::weights(&path, e))?;
        let mut loader = Loader::new(&mut self.file, &self.input.name, input_shape);
        for index in order {
            let node = &nodes[index];
            loader.add(node).map_err(|e| {
                Error::weights(
                    &path,
                    format!("node {:?} ({}): {e}", node.label(), node.op_type),
                )
            })?;
        }
        let outputs = outputs
            .iter()
            .map(|name| {
                loader.ids.get(name).copied().ok_or_else(|| {
                    Error::weights(
                        &path,
                        format!("its output {name:?} is not computed by any node"),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Network {
            path,
            input: self.input.clone(),
            values: loader.values,
            input_value: 0,
            nodes: loader.nodes,
            constants: loader.constants,
            outputs,
            folded: loader.folded,
        })
    }
}

/// The nodes' indices in an order in which each comes after the nodes
/// that write what it reads (the file's order where it allows). Errors
/// name a node that reads a value nothing writes, or the nodes of a cycle.
fn run_order(
    file: &OnnxFile,
    nodes: &[onnx::Node],
    input: &str,
) -> std::result::Result<Vec<usize>, String> {
    let mut writer: HashMap<&str, usize> = HashMap::new();
    for (index, node) in nodes.iter().enumerate() {
        for output in node.outputs.iter().filter(|o| !o.is_empty()) {
            writer.entry(output.as_str()).or_insert(index);
        }
    }
    let mut waits_for = vec![0usize; nodes.len()];
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (index, node) in nodes.iter().enumerate() {
        let mut seen = HashSet::new();
        for name in node.inputs.iter().filter(|i| !i.is_empty()) {
            match writer.get(name.as_str()) {
                Some(&w) if seen.insert(w) => {
                    waits_for[index] += 1;
                    readers[w].push(index);
                }
                Some(_) => {}
                None if name == input || file.has_tensor(name) => {}
                None => {
                    return Err(format!(
                        "node {:?} ({}) reads {name:?}, which no node writes and the file does not hold",
                        node.label(),
                        node.op_type
                    ));
                }
            }
        }
    }
    let mut ready: VecDeque<usize> = (0..nodes.len()).filter(|&i| waits_for[i] == 0).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(index) = ready.pop_front() {
        order.push(index);
        for &reader in &readers[index] {
            waits_for[reader] -= 1;
            if waits_for[reader] == 0 {
                ready.push_back(reader);
            }
        }
    }
    if order.len() < nodes.len() {
        let stuck: Vec<String> = (0..nodes.len())
            .filter(|&i| waits_for[i] > 0)
            .take(5)
            .map(|i| format!("{:?}", nodes[i].label()))
            .collect();
        return Err(format!(
            "its graph has a cycle: nodes {} wait, through each other, for their own outputs",
            stuck.join(", ")
        ));
    }
    Ok(order)
}

/// What a node reads, as the op takes it.
enum Input {
    /// A value of the graph, by name.
    Named(String),
    /// A constant made at load (a BatchNorm's scale and shift), its name
    /// and values.
    Made(String, Array),
}

/// A node parsed: its op, its inputs in the op's order, and its output
/// shape where the op does not infer it (a view's).
struct Parsed {
    op: Op,
    inputs: Vec<Input>,
    shape: Option<Vec<usize>>,
}

/// The network as it is built, node by node.
struct Loader<'f> {
    file: &'f mut OnnxFile,
    values: Vec<Value>,
    ids: HashMap<String, ValueId>,
    /// Values known at load (folded, or small tensors of the file).
    consts: HashMap<String, Const>,
    constants: HashMap<ValueId, Array>,
    nodes: Vec<Node>,
    folded: usize,
    opset: i64,
}

impl<'f> Loader<'f> {
    fn new(file: &'f mut OnnxFile, input: &str, shape: Vec<usize>) -> Self {
        let opset = file.graph().opset;
        let mut ids = HashMap::new();
        ids.insert(input.to_string(), 0);
        Loader {
            file,
            values: vec![Value {
                name: input.to_string(),
                shape,
            }],
            ids,
            consts: HashMap::new(),
            constants: HashMap::new(),
            nodes: Vec::new(),
            folded: 0,
            opset,
        }
    }

    /// Adds `node`: folded when what it reads is known, else parsed.
    fn add(&mut self, node: &onnx::Node) -> std::result::Result<(), String> {
        if !node.is_standard() {
            return Err(format!(
                "its domain {:?} is not the standard one; convmaps runs {}",
                node.domain,
                SUPPORTED.join(", ")
            ));
        }
        let output = node.outputs.first().filter(|o| !o.is_empty());
        let output = output.ok_or("it writes no output")?.clone();
        if node.op_type == "Constant" && self.file.has_tensor(&output) {
            self.folded += 1;
            return Ok(());
        }
        if node.op_type == "Split" {
            return self.split(node);
        }
        if node.op_type == "ConstantOfShape" {
            let shape = self.known(node.input(0).ok_or("it has no shape input")?)?;
            let shape = shape.ok_or("its shape is not known at load")?;
            let fill = self.known(&format!("{output}::value"))?;
            let value = fold::constant_of_shape(&shape, fill.as_ref(), MAX_FOLDED_VALUES * 16)?;
            self.consts.insert(output, value);
            self.folded += 1;
            return Ok(());
        }
        if FOLDABLE.contains(&node.op_type.as_str()) {
            let inputs = node
                .inputs
                .iter()
                .map(|name| self.known(name))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let shapes: Vec<Option<Vec<usize>>> =
                node.inputs.iter().map(|name| self.shape_of(name)).collect();
            if let Some(value) = fold::evaluate(node, &inputs, &shapes)? {
                self.consts.insert(output, value);
                self.folded += 1;
                return Ok(());
            }
        }
        let parsed = self.parse(node)?;
        self.push(node, parsed, output)
    }

    /// Adds the parsed node and its output value.
    fn push(
        &mut self,
        node: &onnx::Node,
        parsed: Parsed,
        output: String,
    ) -> std::result::Result<(), String> {
        self.push_named(node, parsed, (node.label(), output))
    }

    /// Adds the parsed node, under `name`, and its output value `output`.
    fn push_named(
        &mut self,
        node: &onnx::Node,
        parsed: Parsed,
        (name, output): (String, String),
    ) -> std::result::Result<(), String> {
        let inputs = parsed
            .inputs
            .into_iter()
            .map(|input| self.value_of(input))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let shapes: Vec<&[usize]> = inputs
            .iter()
            .map(|&v| self.values[v].shape.as_slice())
            .collect();
        let shape = match parsed.shape {
            Some(shape) => shape,
            None => parsed.op.output_shape(&shapes)?,
        };
        let id = self.values.len();
        self.values.push(Value {
            name: output.clone(),
            shape,
        });
        self.ids.insert(output, id);
        self.nodes.push(Node {
            name,
            op_type: node.op_type.clone(),
            op: parsed.op,
            inputs,
            output: id,
            fused: Vec::new(),
        });
        Ok(())
    }

    /// The value an op reads: a computed one, or a constant given a value.
    fn value_of(&mut self, input: Input) -> std::result::Result<ValueId, String> {
        let (name, array) = match input {
            Input::Named(name) => {
                if let Some(&id) = self.ids.get(&name) {
                    return Ok(id);
                }
                let array = self.array(&name)?;
                (name, array)
            }
            Input::Made(name, array) => (name, array),
        };
        let id = self.values.len();
        self.values.push(Value {
            name: name.clone(),
            shape: array.shape.clone(),
        });
        self.ids.insert(name, id);
        self.constants.insert(id, array);
        Ok(id)
    }

    /// The float tensor `name`: folded, or read from the file.
    fn array(&mut self, name: &str) -> std::result::Result<Array, String> {
        if let Some(value) = self.consts.get(name) {
            if value.int {
                return Err(format!("it reads {name:?}, integers, as data"));
            }
            return Ok(Array::new(value.shape.clone(), value.as_f32()));
        }
        if !self.file.has_tensor(name) {
            return Err(format!("it reads {name:?}, which is not computed"));
        }
        if self.file.is_int_tensor(name).map_err(message)? {
            return Err(format!("it reads {name:?}, integers, as data"));
        }
        let tensor = self
            .file
            .tensor_within(name, MAX_TENSOR_VALUES)
            .map_err(message)?;
        Ok(Array::new(tensor.shape, tensor.values))
    }

    /// The value `name` when it is known at load and small; `None` for a
    /// computed value, a large tensor or an omitted input.
    fn known(&mut self, name: &str) -> std::result::Result<Option<Const>, String> {
        if name.is_empty() || self.ids.contains_key(name) {
            return Ok(None);
        }
        if let Some(value) = self.consts.get(name) {
            return Ok(Some(value.clone()));
        }
        if !self.file.has_tensor(name) {
            return Ok(None);
        }
        let error = message;
        let shape = self.file.tensor_shape(name).map_err(error)?;
        if shape.iter().product::<usize>() > MAX_FOLDED_VALUES {
            return Ok(None);
        }
        let value = if self.file.is_int_tensor(name).map_err(error)? {
            let ints = self
                .file
                .int_tensor_within(name, MAX_FOLDED_VALUES)
                .map_err(error)?;
            Const::ints(ints.shape, ints.values)
        } else {
            let floats = self
                .file
                .tensor_within(name, MAX_FOLDED_VALUES)
                .map_err(error)?;
            Const::floats(floats.shape, &floats.values)
        };
        self.consts.insert(name.to_string(), value.clone());
        Ok(Some(value))
    }

    /// The shape of `name`, where known.
    fn shape_of(&self, name: &str) -> Option<Vec<usize>> {
        if let Some(&id) = self.ids.get(name) {
            return Some(self.values[id].shape.clone());
        }
        if let Some(value) = self.consts.get(name) {
            return Some(value.shape.clone());
        }
        self.file.tensor_shape(name).ok()
    }

    /// The integers of input `index` of `node`, known at load, or the
    /// attribute `attribute` (opsets before an input took its place).
    fn ints_of(
        &mut self,
        node: &onnx::Node,
        (index, attribute): (usize, &str),
    ) -> std::result::Result<Option<Vec<i64>>, String> {
        if let Some(name) = node.input(index) {
            let value = self.known(name)?;
            let value = value.ok_or_else(|| format!("its input {name:?} is not known at load"))?;
            return Ok(Some(value.as_ints()));
        }
        Ok(node.attribute(attribute).map(|a| a.ints.clone()))
    }

    /// The float of input `index`, known at load.
    fn float_of(
        &mut self,
        node: &onnx::Node,
        index: usize,
    ) -> std::result::Result<Option<f32>, String> {
        let Some(name) = node.input(index) else {
            return Ok(None);
        };
        let value = self.known(name)?;
        match value.as_ref().map(|v| v.values.as_slice()) {
            Some([v]) => Ok(Some(*v as f32)),
            _ => Err(format!(
                "its input {name:?} is not one number known at load"
            )),
        }
    }
}

// ---- Parsing each op ----

impl Loader<'_> {
    /// `node` as an op of the registry, or why it is not one.
    fn parse(&mut self, node: &onnx::Node) -> std::result::Result<Parsed, String> {
        let x = || Input::Named(node.inputs.first().cloned().unwrap_or_default());
        let unary = |kind, alpha, beta| Parsed {
            op: Op::Unary(Unary { kind, alpha, beta }),
            inputs: vec![x()],
            shape: None,
        };
        let float =
            |name: &str, default: f32| node.attribute(name).and_then(|a| a.f).unwrap_or(default);
        Ok(match node.op_type.as_str() {
            "Conv" => self.conv(node)?,
            "BatchNormalization" => self.batch_norm(node)?,
            "Relu" => unary(UnaryKind::Relu, 0.0, 0.0),
            "LeakyRelu" => unary(UnaryKind::LeakyRelu, float("alpha", 0.01), 0.0),
            "Sigmoid" => unary(UnaryKind::Sigmoid, 0.0, 0.0),
            "Tanh" => unary(UnaryKind::Tanh, 0.0, 0.0),
            "HardSwish" => unary(UnaryKind::HardSwish, 0.0, 0.0),
            "HardSigmoid" => unary(
                UnaryKind::HardSigmoid,
                float("alpha", 0.2),
                float("beta", 0.5),
            ),
            "Clip" => {
                let (min, max) = match self.opset < 11 && node.inputs.len() < 2 {
                    true => (float("min", f32::MIN), float("max", f32::MAX)),
                    false => (
                        self.float_of(node, 1)?.unwrap_or(f32::MIN),
                        self.float_of(node, 2)?.unwrap_or(f32::MAX),
                    ),
                };
                unary(UnaryKind::Clip, min, max)
            }
            "Add" | "Sub" | "Mul" | "Div" => self.binary(node)?,
            "MaxPool" | "AveragePool" => self.pool(node)?,
            "GlobalAveragePool" => Parsed {
                op: Op::GlobalAverage,
                inputs: vec![x()],
                shape: None,
            },
            "ReduceMean" | "ReduceSum" | "ReduceMax" => self.reduce(node)?,
            "Gemm" | "MatMul" => gemm(node),
            "Softmax" => self.softmax(node)?,
            "Concat" => self.concat(node)?,
            "Slice" => self.slice(node)?,
            "Transpose" => self.transpose(node)?,
            "Expand" => self.expand(node)?,
            "Resize" | "Upsample" => self.resize(node)?,
            "ConvTranspose" => self.conv_transpose(node)?,
            "PRelu" | "Pow" => self.binary(node)?,
            "Exp" => unary(UnaryKind::Exp, 0.0, 0.0),
            "Log" => unary(UnaryKind::Log, 0.0, 0.0),
            "Sqrt" => unary(UnaryKind::Sqrt, 0.0, 0.0),
            "Neg" => unary(UnaryKind::Neg, 0.0, 0.0),
            "Abs" => unary(UnaryKind::Abs, 0.0, 0.0),
            "Reciprocal" => unary(UnaryKind::Reciprocal, 0.0, 0.0),
            "Flatten" | "Reshape" | "Squeeze" | "Unsqueeze" | "Identity" | "Dropout" => {
                self.view(node)?
            }
            "Range" | "Shape" | "Gather" | "Cast" | "Constant" => {
                return Err(format!(
                    "it reads values computed from the photo, not known when the model is \
                     loaded; convmaps computes {} only from constants and shapes",
                    node.op_type
                ));
            }
            other => {
                return Err(format!(
                    "convmaps does not run {other} yet; it runs {}",
                    SUPPORTED.join(", ")
                ));
            }
        })
    }

    /// The input shape of `node`'s first input.
    fn first_shape(&self, node: &onnx::Node) -> std::result::Result<Vec<usize>, String> {
        let name = node.input(0).ok_or("it has no input")?;
        self.shape_of(name)
            .ok_or_else(|| format!("the shape of its input {name:?} is not known"))
    }

    fn conv(&mut self, node: &onnx::Node) -> std::result::Result<Parsed, String> {
        let weight = node.input(1).ok_or("it has no weight")?.to_string();
        let shape = self.shape_of(&weight).unwrap_or_default();
        let &[_, _, fh, fw] = shape.as_slice() else {
            return Err(format!(
                "its weight {weight:?} has shape {}; convmaps runs 2-D convs",
                ShapeText(&shape)
            ));
        };
        let kernel = [fh as u32, fw as u32];
        let window = window_attributes(node, kernel, &self.first_shape(node)?)?;
        let group = positive(
            node.attribute("group").and_then(|a| a.i).unwrap_or(1),
            "group",
        )?;
        let mut inputs = vec![Input::Named(node.inputs[0].clone()), Input::Named(weight)];
        if let Some(bias) = node.input(2) {
            inputs.push(Input::Named(bias.to_string()));
        }
        Ok(Parsed {
            op: Op::Conv(Conv {
                kernel,
                strides: window.strides,
                pads: window.pads,
                dilations: window.dilations,
                group,
                bias: inputs.len() == 3,
                activation: None,
                residual: false,
            }),
            inputs,
            shape: None,
        })
    }

    /// BatchNormalization at inference as scale and shift per channel:
    /// scale = γ / √(σ² + ε), shift = β − μ · scale.
    fn batch_norm(&mut self, node: &onnx::Node) -> std::result::Result<Parsed, String> {
        let epsilon = node.attribute("epsilon").and_then(|a| a.f).unwrap_or(1e-5);
        let mut tensors = Vec::new();
        for index in 1..5 {
            let name = node.input(index).ok_or("it has fewer than 5 inputs")?;
            tensors.push(self.array(name)?.data);
        }
        let [gamma, beta, mean, variance] = &tensors[..] else {
            unreachable!("four tensors were read");
        };
        let channels = gamma.len();
        if [beta, mean, variance].iter().any(|t| t.len() != channels) {
            return Err("its scale, bias, mean and variance differ in length".into());
        }
        let scale: Vec<f32> = (0..channels)
            .map(|c| gamma[c] / (variance[c] + epsilon).sqrt())
            .collect();
        let shift: Vec<f32> = (0..channels)
            .map(|c| beta[c] - mean[c] * scale[c])
            .collect();
        let label = node.label();
        Ok(Parsed {
            op: Op::Affine,
            inputs: vec![
                Input::Named(node.inputs[0].clone()),
                Input::Made(format!("{label}.scale"), Array::new(vec![channels], scale)),
                Input::Made(format!("{label}.shift"), Array::new(vec![channels], shift)),
            ],
            shape: None,
        })
    }

    fn binary(&mut self, node: &onnx::Node) -> std::result::Result<Parsed, String> {
        let kind = match node.op_type.as_str() {
            "Add" => Binary::Add,
            "Sub" => Binary::Sub,
            "Mul" => Binary::Mul,
            "PRelu" => Binary::PRelu,
            "Pow" => Binary::Pow,
            _ => Binary::Div,
        };
        let [a, b] = [0, 1].map(|i| node.input(i).map(str::to_string));
        let (Some(a), Some(b)) = (a, b) else {
            return Err("it needs two inputs".into());
        };
        for name in [&a, &b] {
            let rank = self.shape_of(name).map_or(0, |s| s.len());
            if rank > 4 {
                return Err(format!(
                    "its input {name:?} has rank {rank}; convmaps broadcasts up to 4"
                ));
            }
        }
        Ok(Parsed {
            op: Op::Binary(kind),
            inputs: vec![Input::Named(a), Input::Named(b)],
            shape: None,
        })
    }

    fn pool(&mut self, node: &onnx::Node) -> std::result::Result<Parsed, String> {
        if node.outputs.get(1).is_some_and(|o| !o.is_empty()) {
            return Err(
                "it writes the indices of its maxima; convmaps computes only the values".into(),
            );
        }
        let kernel = match node.attribute("kernel_shape").map(|a| a.ints.as_slice()) {
            Some(&[h, w]) => [positive(h, "kernel_shape")?, positive(w, "kernel_shape")?],
            _ => return Err("it has no 2-D kernel_shape".into()),
        };
        let window = window_attributes(node, kernel, &self.first_shape(node)?)?;
        let flag = |name: &str| node.attribute(name).and_then(|a| a.i).unwrap_or(0) != 0;
        Ok(Parsed {
            op: Op::Pool(Pool {
                max: node.op_type == "MaxPool",
                kernel,
                strides: window.strides,
                pads: window.pads,
                dilations: window.dilations,
                ceil_mode: flag("ceil_mode"),
                count_include_pad: flag("count_include_pad"),
            }),
            inputs: vec![Input::Named(node.inputs[0].clone())],
            shape: None,
        })
    }

    /// A node that changes only the shape: its output shape.
    fn view(&mut self, node: &onnx::Node) -> std::result::Result<Parsed, String> {
        let shape = self.first_shape(node)?;
        if node.op_type == "Dropout" && node.outputs.get(1).is_some_and(|o| !o.is_empty()) {
            return Err("it writes a mask; convmaps runs Dropout at inference only".into());
        }
        let int =
            |name: &str, default: i64| node.attribute(name).and_then(|a| a.i).unwrap_or(default);
        let out = match node.op_type.as_str() {
            "Flatten" => fold::flattened(&shape, int("axis", 1))?,
            "Reshape" => {
                let target = self
                    .ints_of(node, (1, ""))?
                    .ok_or("it has no shape input")?;
                fold::reshaped(&shape, &target, int("allowzero", 0) != 0)?
            }
            "Squeeze" | "Unsqueeze" => {
                let axes = self.ints_of(node, (1, "axes"))?.unwrap_or_default();
                fold::squeezed(&shape, &axes, node.op_type == "Unsqueeze")?
            }
            _ => shape,
        };
        Ok(Parsed {
            op: Op::View,
            inputs: vec![Input::Named(node.inputs[0].clone())],
            shape: Some(out),
        })
    }
}

/// Gemm (with its attributes) or MatMul (A·B) of two matrices.
fn gemm(node: &onnx::Node) -> Parsed {
    let flag = |name: &str| node.attribute(name).and_then(|a| a.i).unwrap_or(0) != 0;
    let float = |name: &str| node.attribute(name).and_then(|a| a.f).unwrap_or(1.0);
    let op = match node.op_type.as_str() {
        "Gemm" => Gemm {
            trans_a: flag("transA"),
            trans_b: flag("transB"),
            alpha: float("alpha"),
            beta: float("beta"),
        },
        _ => Gemm::default(),
    };
    let count = if node.op_type == "Gemm" { 3 } else { 2 };
    let inputs = (0..count)
        .filter_map(|i| node.input(i))
        .map(|name| Input::Named(name.to_string()))
        .collect();
    Parsed {
        op: Op::Gemm(op),
        inputs,
        shape: None,
    }
}

/// A window's strides, dilations and padding as a node's attributes state
/// them, `auto_pad` resolved against `input` `[1, C, H, W]`.
struct Window {
    strides: [u32; 2],
    dilations: [u32; 2],
    pads: [u32; 4],
}

fn window_attributes(
    node: &onnx::Node,
    kernel: [u32; 2],
    input: &[usize],
) -> std::result::Result<Window, String> {
    let pair = |name: &str| -> std::result::Result<[u32; 2], String> {
        match node.attribute(name).map(|a| a.ints.as_slice()) {
            None | Some([]) => Ok([1, 1]),
            Some(&[h, w]) => Ok([positive(h, name)?, positive(w, name)?]),
            Some(other) => Err(format!("{name} {other:?} is not 2-D")),
        }
    };
    let strides = pair("strides")?;
    let dilations = pair("dilations")?;
    if let Some(stated) = node.attribute("kernel_shape")
        && stated.ints != [kernel[0] as i64, kernel[1] as i64]
    {
        return Err(format!(
            "its kernel_shape {:?} is not its weight's {kernel:?}",
            stated.ints
        ));
    }
    let auto_pad = node.attribute("auto_pad").and_then(|a| a.s.clone());
    let pads = match auto_pad.as_deref().unwrap_or("NOTSET") {
        "NOTSET" | "" => match node.attribute("pads").map(|a| a.ints.as_slice()) {
            None | Some([]) => [0; 4],
            Some(&[t, l, b, r]) => [t, l, b, r].map(|p| u32::try_from(p).unwrap_or(u32::MAX)),
            Some(other) => return Err(format!("pads {other:?} is not 2-D")),
        },
        "VALID" => [0; 4],
        same @ ("SAME_UPPER" | "SAME_LOWER") => {
            let &[_, _, h, w] = input else {
                return Err(format!(
                    "expected an input [1, C, H, W], got {}",
                    ShapeText(input)
                ));
            };
            same_pads(
                [h as u32, w as u32],
                (kernel, strides, dilations),
                same == "SAME_UPPER",
            )
        }
        other => {
            return Err(format!(
                "auto_pad {other:?} is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER"
            ));
        }
    };
    if pads.contains(&u32::MAX) {
        return Err("its pads are negative".into());
    }
    Ok(Window {
        strides,
        dilations,
        pads,
    })
}

/// `SAME_*` padding: output = ceil(input / stride), the odd pixel at the
/// end (upper) or the beginning (lower).
fn same_pads(
    size: [u32; 2],
    (kernel, strides, dilations): ([u32; 2], [u32; 2], [u32; 2]),
    upper: bool,
) -> [u32; 4] {
    let total = |axis: usize| {
        let out = size[axis].div_ceil(strides[axis]);
        let span = (kernel[axis] - 1) * dilations[axis] + 1;
        ((out - 1) * strides[axis] + span).saturating_sub(size[axis])
    };
    let [th, tw] = [total(0), total(1)];
    let (small_h, small_w) = (th / 2, tw / 2);
    match upper {
        true => [small_h, small_w, th - small_h, tw - small_w],
        false => [th - small_h, tw - small_w, small_h, small_w],
    }
}

/// What a file's error says, without the file's path (the caller's error
/// names it).
fn message(error: Error) -> String {
    match error {
        Error::Weights { message, .. } => message,
        other => other.to_string(),
    }
}

/// `value` as a u32 of 1 or more, or an error naming the attribute.
fn positive(value: i64, name: &str) -> std::result::Result<u32, String> {
    u32::try_from(value)
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("{name} has {value}, expected 1 or more"))
}
