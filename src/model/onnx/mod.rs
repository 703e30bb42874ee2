//! ONNX models (`.onnx`) as a [`ModelFile`]: every 2-D `Conv` node of the
//! main graph is a conv layer, with the geometry its attributes state, the
//! `BatchNormalization` that reads its output, and whether it reads the
//! model's input.
//!
//! An ONNX file is one protobuf message (`ModelProto`) with no index, so the
//! whole file is parsed on opening to find the nodes. The parse streams the
//! file and skips tensor data: for each tensor (a graph initializer or a
//! `Constant` node's `value`) it keeps only its name, shape, type and where
//! its bytes lie (the byte range of `raw_data`, or of the `TensorProto`
//! when the values are in its typed fields, or a range of an external data
//! file beside the model: `external.rs`).
//! [`ModelFile::tensor_within`] then seeks to that range and reads only it,
//! after checking the tensor's shape against its caller's bound. Memory at
//! open is the graph's structure, never its weights. Convs inside subgraphs (`If`, `Loop`
//! bodies) and functions are not listed, nor are Convs whose weight or
//! bias is not in the file (fed as a graph input, or computed by other
//! nodes, as in quantized models): the file's other convs still are.

mod external;
mod proto;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Cursor, Read, Seek};
use std::ops::Range;
use std::path::{Path, PathBuf};

use self::external::ExternalData;
use self::proto::{Field, Wire, WireResult};
use super::{
    BatchNormRef, ConvRef, DType, Feed, FeedSource, FeedStep, FileGeometry, FilePadding,
    FileTensor, ModelFile, values_within,
};
use crate::error::{Error, Result};
use crate::layer::Padding;

/// `TensorProto.data_location` for data kept outside the model file.
const EXTERNAL: u64 = 1;
/// Identity nodes followed from a Conv's input to the tensor behind it.
const MAX_IDENTITY_HOPS: usize = 16;

/// A tensor of the file: what it is and where its values lie.
#[derive(Clone, Debug, Default)]
struct TensorInfo {
    /// The name nodes use for it (a Constant's output name).
    name: String,
    /// `TensorProto.dims`.
    dims: Vec<i64>,
    /// `TensorProto.data_type`.
    data_type: u64,
    /// Whether `data_location` is EXTERNAL.
    external: bool,
    /// `external_data`: (key, value) entries saying where its data lies.
    external_data: Vec<(String, String)>,
    /// The byte range of `raw_data` in the file, when present.
    raw: Option<Range<u64>>,
    /// The byte range of the whole `TensorProto` in the file.
    span: Range<u64>,
}

/// One attribute of a node, with the fields convmaps uses.
#[derive(Clone, Debug, Default)]
pub struct Attribute {
    /// The attribute's name.
    pub name: String,
    /// `i`: an integer.
    pub i: Option<i64>,
    /// `f`: a float.
    pub f: Option<f32>,
    /// `s`: a string.
    pub s: Option<String>,
    /// `ints`: integers.
    pub ints: Vec<i64>,
    /// `floats`: floats.
    pub floats: Vec<f32>,
    /// `t`: a tensor (a Constant's `value`; taken out of the node and
    /// listed among the file's tensors under the Constant's output name).
    t: Option<TensorInfo>,
}

/// One node of the graph.
#[derive(Clone, Debug, Default)]
pub struct Node {
    /// The node's name (may be empty).
    pub name: String,
    /// Its operator, such as `Conv`.
    pub op_type: String,
    /// Its operator set's domain (empty for the standard one).
    pub domain: String,
    /// The values it reads, in order (an empty name: an omitted input).
    pub inputs: Vec<String>,
    /// The values it writes.
    pub outputs: Vec<String>,
    /// Its attributes.
    pub attributes: Vec<Attribute>,
}

impl Node {
    /// The attribute `name` (the last, if it repeats).
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().rev().find(|a| a.name == name)
    }

    /// Whether this is the standard operator `op`.
    pub fn is(&self, op: &str) -> bool {
        self.op_type == op && self.is_standard()
    }

    /// Whether its operator is of the standard domain.
    pub fn is_standard(&self) -> bool {
        self.domain.is_empty() || self.domain == "ai.onnx"
    }

    /// The node's name, else its first output's.
    pub fn label(&self) -> String {
        match (self.name.is_empty(), self.outputs.first()) {
            (false, _) | (true, None) => self.name.clone(),
            (true, Some(output)) => output.clone(),
        }
    }

    /// Its input `index`, unless omitted.
    pub fn input(&self, index: usize) -> Option<&str> {
        self.inputs
            .get(index)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }
}

/// A graph input or output: its name, element type and shape, as far as
/// the file states them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ValueInfo {
    /// The value's name.
    pub name: String,
    /// `TensorProto.DataType` of its elements (1: FLOAT), 0 if unstated.
    pub elem_type: u64,
    /// Each dimension: its size, or `None` when symbolic or unstated;
    /// `None` for the whole when the file states no shape.
    pub shape: Option<Vec<Option<u64>>>,
}

/// The main graph of an ONNX file: its nodes in the file's order, its
/// inputs and outputs.
#[derive(Debug, Default)]
pub struct Graph {
    /// The nodes, in the file's order.
    pub nodes: Vec<Node>,
    /// Initializers and Constant values, in the file's order.
    tensors: Vec<TensorInfo>,
    /// Names of the initializers.
    pub initializers: Vec<String>,
    /// `graph.input`, initializers included where the file lists them.
    pub inputs: Vec<ValueInfo>,
    /// `graph.output`.
    pub outputs: Vec<ValueInfo>,
    /// The default domain's opset version (0 if unstated).
    pub opset: i64,
}

/// A tensor of integers read from the file (shapes, axes, indices).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntTensor {
    /// Its shape, outermost first.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub values: Vec<i64>,
}

/// An open ONNX model.
pub struct OnnxFile {
    path: PathBuf,
    file: File,
    graph: Graph,
    convs: Vec<ConvRef>,
}

impl OnnxFile {
    /// Opens `path` and parses its graph (not its tensors' values). Errors
    /// name the file: not an ONNX model, truncated, a Conv with no weight
    /// input or whose attributes make no sense. A Conv whose weight or bias
    /// is not in the file is left out of [`ModelFile::convs`].
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::weights_caused(path, "cannot read", e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::weights_caused(path, "cannot read", e))?
            .len();
        let mut wire = Wire::new(file);
        let graph = read_model(&mut wire, len)
            .map_err(|e| Error::weights(path, format!("not a valid ONNX model: {e}")))?
            .ok_or_else(|| Error::weights(path, "not an ONNX model: it has no graph"))?;
        let convs = list_convs(&graph).map_err(|e| Error::weights(path, e))?;
        Ok(OnnxFile {
            path: path.to_path_buf(),
            file: wire.into_inner(),
            graph,
            convs,
        })
    }

    /// The main graph: nodes, inputs, outputs.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Whether the file holds a tensor (an initializer or a Constant's
    /// value) called `name`.
    pub fn has_tensor(&self, name: &str) -> bool {
        self.graph.tensors.iter().any(|t| t.name == name)
    }

    /// Whether the tensor `name` holds integers or booleans (not floats).
    pub fn is_int_tensor(&self, name: &str) -> Result<bool> {
        Ok(int_size(self.info(name)?.data_type).is_some())
    }

    /// The integer tensor `name` (INT64, INT32, INT8, UINT8, BOOL, …) of at
    /// most `max_values` values, from its raw data, typed field or external
    /// data. Errors name the file and the tensor.
    pub fn int_tensor_within(&mut self, name: &str, max_values: usize) -> Result<IntTensor> {
        let info = self.info(name)?.clone();
        read_ints((&mut self.file, &self.path), &info, max_values)
            .map_err(|e| Error::weights(&self.path, e))
    }

    /// The conv a caller shows by default: the first that reads the model's
    /// input. Errors name the file when there is no Conv, or none reads the
    /// input.
    pub fn first_input_conv(&self) -> Result<&ConvRef> {
        if self.convs.is_empty() {
            return Err(Error::weights(&self.path, "has no 2-D Conv node"));
        }
        self.convs
            .iter()
            .find(|c| c.reads_input == Some(true))
            .ok_or_else(|| {
                let names: Vec<&str> = self.convs.iter().map(|c| c.name.as_str()).collect();
                Error::weights(
                    &self.path,
                    format!(
                        "has no Conv that reads the model's input (its Convs: {})",
                        names.join(", ")
                    ),
                )
            })
    }
}

impl ModelFile for OnnxFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn format(&self) -> &'static str {
        "onnx"
    }

    fn convs(&self) -> &[ConvRef] {
        &self.convs
    }

    fn tensor_names(&self) -> Vec<String> {
        self.graph.tensors.iter().map(|t| t.name.clone()).collect()
    }

    fn tensor_shape(&self, name: &str) -> Result<Vec<usize>> {
        let info = self.info(name)?;
        shape(info).map_err(|e| Error::weights(&self.path, format!("tensor {name:?} {e}")))
    }

    fn tensor_within(&mut self, name: &str, max_values: usize) -> Result<FileTensor> {
        let info = self.info(name)?.clone();
        read_tensor((&mut self.file, &self.path), &info, max_values)
            .map_err(|e| Error::weights(&self.path, e))
    }
}

impl OnnxFile {
    /// The tensor `name`, or an error naming the file.
    fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.graph
            .tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| Error::weights(&self.path, format!("has no tensor {name:?}")))
    }
}

// ---- Parsing the graph ----

/// `ModelProto`: its graph (field 7), or `None` when it has none.
fn read_model<R: Read + Seek>(wire: &mut Wire<R>, end: u64) -> WireResult<Option<Graph>> {
    let mut graph: Option<Graph> = None;
    let mut opset = 0;
    while let Some((number, field)) = wire.next(end)? {
        match (number, field) {
            (7, Field::Len(len)) => {
                let end = wire.end_of(len);
                read_graph(wire, end, graph.get_or_insert_with(Graph::default))?;
            }
            (8, Field::Len(len)) => {
                let end = wire.end_of(len);
                let (domain, version) = read_opset(wire, end)?;
                if domain.is_empty() || domain == "ai.onnx" {
                    opset = version;
                }
            }
            _ => wire.skip_field(field)?,
        }
    }
    if let Some(graph) = graph.as_mut() {
        graph.opset = opset;
    }
    Ok(graph)
}

/// `GraphProto`: node (1), initializer (5), input (11). Repeated fields
/// append, as protobuf merges a message that appears twice.
fn read_graph<R: Read + Seek>(wire: &mut Wire<R>, end: u64, graph: &mut Graph) -> WireResult<()> {
    while let Some((number, field)) = wire.next(end)? {
        match (number, field) {
            (1, Field::Len(len)) => {
                let end = wire.end_of(len);
                let mut node = read_node(wire, end)?;
                // A Constant's value is listed under its output's name, a
                // ConstantOfShape's under `<output>::value`.
                let suffix = match node.op_type.as_str() {
                    _ if !node.is_standard() => None,
                    "Constant" => Some(""),
                    "ConstantOfShape" => Some("::value"),
                    _ => None,
                };
                if let Some(suffix) = suffix {
                    let value = node.attributes.iter_mut().find(|a| a.name == "value");
                    if let (Some(tensor), Some(output)) =
                        (value.and_then(|a| a.t.take()), node.outputs.first())
                    {
                        graph.tensors.push(TensorInfo {
                            name: format!("{output}{suffix}"),
                            ..tensor
                        });
                    }
                }
                graph.nodes.push(node);
            }
            (5, Field::Len(len)) => {
                let end = wire.end_of(len);
                let tensor = read_tensor_info(wire, end)?;
                graph.initializers.push(tensor.name.clone());
                graph.tensors.push(tensor);
            }
            (11, Field::Len(len)) => {
                let end = wire.end_of(len);
                graph.inputs.push(read_value_info(wire, end)?);
            }
            (12, Field::Len(len)) => {
                let end = wire.end_of(len);
                graph.outputs.push(read_value_info(wire, end)?);
            }
            _ => wire.skip_field(field)?,
        }
    }
    Ok(())
}

/// `OperatorSetIdProto`: domain (1), version (2).
fn read_opset<R: Read + Seek>(wire: &mut Wire<R>, end: u64) -> WireResult<(String, i64)> {
    let mut opset = (String::new(), 0);
    while let Some((number, field)) = wire.next(end)? {
        match (number, field) {
            (1, Field::Len(len)) => opset.0 = wire.string(len)?,
            (2, Field::Varint(v)) => opset.1 = v as i64,
            _ => wire.skip_field(field)?,
        }
    }
    Ok(opset)
}

/// `ValueInfoProto`: name (1), type (2) → `TypeProto.tensor_type` (1) →
/// elem_type (1), shape (2) → dim (1) → dim_value (1) or dim_param (2).
fn read_value_info<R: Read + Seek>(wire: &mut Wire<R>, end: u64) -> WireResult<ValueInfo> {
    let mut info = ValueInfo::default();
    while let Some((number, field)) = wire.next(end)? {
        match (number, field) {
            (1, Field::Len(len)) => info.name = wire.string(len)?,
            (2, Field::Len(len)) => {
                let end = wire.end_of(len);
                while let Some((number, field)) = wire.next(end)? {
                    match (number, field) {
                        (1, Field::Len(len)) => {
                            let end = wire.end_of(len);
                            read_tensor_type(wire, end, &mut info)?;
                        }
                        _ => wire.skip_field(field)?,
                    }
                }
            }
            _ => wire.skip_field(field)?,
        }
    }
    Ok(info)
}

/// `TypeProto.Tensor`: elem_type (1) and shape (2) into `info`.
fn read_tensor_type<R: Read + Seek>(
    wire: &mut Wire<R>,
    end: u64,
    info: &mut ValueInfo,
) -> WireResult<()> {
    while let Some((number, field)) = wire.next(end)? {
        match (number, field) {
            (1, Field::Varint(v)) => info.elem_type = v,
            (2, Field::Len(len)) => {
                let end = wire.end_of(len);
                let dims = info.shape.get_or_insert_with(Vec::new);
                while let Some((number, field)) = wire.next(end)? {
                    match (number, field) {
                        (1, Field::Len(len)) => {
                            let end = wire.end_of(len);
                            dims.push(read_dimension(wire, end)?);
                        }
                        _ => wire.skip_field(field)?,
                    }
                }
            }
            _ => wire.skip_field(field)?,
        }
    }
    Ok(())
}

/// `TensorShapeProto.Dimension`: its `dim_value` (1), or `None` for a
/// `dim_param` (2), a size of 0 or less, or nothing.
fn read_dimension<R: Read + Seek>(wire: &mut Wire<R>, end: u64) -> WireResult<Option<u64>> {
    let mut size = None;
    while let Some((number, field)) = wire.next(end)? {
        match (number, field) {
            // Some exporters write −1 (or 0) for a size left open.
            (1, Field::Varint(v)) => size = Some(v).filter(|&v| (v as i64) > 0),
            _ => wire.skip_field(field)?,
        }
    }
    Ok(size)
}

/// `NodeProto`: input (1), output (2), name (3), op_type (4), attribute
/// (5), domain (7).
fn read_node<R: Read + Seek>(wire: &mut Wire<R>, end: u64) -> WireResult<Node> {
    let mut node = Node::default();
    while let Some((number, field)) = wire.next(end)? {
        match (number, field) {
            (1, Field::Len(len)) => node.inputs.push(wire.string(len)?),
            (2, Field::Len(len)) => node.outputs.push(wire.string(len)?),
            (3, Field::Len(len)) => node.name = wire.string(len)?,
            (4, Field::Len(len)) => node.op_type = wire.string(len)?,
            (7, Field::Len(len)) => node.domain = wire.string(len)?,
            (5, Field::Len(len)) => {
                let end = wire.end_of(len);
                node.attributes.push(read_attribute(wire, end)?);
            }
            _ => wire.skip_field(field)?,
        }
    }
    Ok(node)
}

/// `AttributeProto`: name (1), f (2), i (3), s (4), t (5), ints (8).
/// Subgraphs and lists of floats or tensors are skipped.
fn read_attribute<R: Read + Seek>(wire: &mut Wire<R>, end: u64) -> WireResult<Attribute> {
    let mut attribute = Attribute::default();
    while let Some((number, field)) = wire.next(end)? {
        match (number, field) {
            (1, Field::Len(len)) => attribute.name = wire.string(len)?,
            (2, Field::Fixed32(bytes)) => attribute.f = Some(f32::from_le_bytes(bytes)),
            (3, Field::Varint(v)) => attribute.i = Some(v as i64),
            (4, Field::Len(len)) => attribute.s = Some(wire.string(len)?),
            (5, Field::Len(len)) => {
                let end = wire.end_of(len);
                attribute.t = Some(read_tensor_info(wire, end)?);
            }
            (7, Field::Fixed32(bytes)) => attribute.floats.push(f32::from_le_bytes(bytes)),
            (7, Field::Len(len)) => attribute.floats.extend(
                wire.bytes(len)?
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            ),
            (8, field @ (Field::Varint(_) | Field::Len(_))) => {
                wire.varints(field, &mut attribute.ints)?
            }
            _ => wire.skip_field(field)?,
        }
    }
    Ok(attribute)
}

/// `TensorProto`'s description: dims (1), data_type (2), name (8),
/// raw_data (9, recorded, not read), data_location (14). The typed value
/// fields are skipped here and read by [`read_tensor`].
fn read_tensor_info<R: Read + Seek>(wire: &mut Wire<R>, end: u64) -> WireResult<TensorInfo> {
    let mut tensor = TensorInfo {
        span: wire.pos()..end,
        ..TensorInfo::default()
    };
    while let Some((number, field)) = wire.next(end)? {
        match (number, field) {
            (1, field @ (Field::Varint(_) | Field::Len(_))) => {
                wire.varints(field, &mut tensor.dims)?
            }
            (2, Field::Varint(v)) => tensor.data_type = v,
            (8, Field::Len(len)) => tensor.name = wire.string(len)?,
            (9, Field::Len(len)) => {
                tensor.raw = Some(wire.pos()..wire.end_of(len));
                wire.skip(len)?;
            }
            (13, Field::Len(len)) => {
                let end = wire.end_of(len);
                tensor.external_data.push(read_entry(wire, end)?);
            }
            (14, Field::Varint(v)) => tensor.external = v == EXTERNAL,
            _ => wire.skip_field(field)?,
        }
    }
    Ok(tensor)
}

/// `StringStringEntryProto`: key (1), value (2).
fn read_entry<R: Read + Seek>(wire: &mut Wire<R>, end: u64) -> WireResult<(String, String)> {
    let mut entry = (String::new(), String::new());
    while let Some((number, field)) = wire.next(end)? {
        match (number, field) {
            (1, Field::Len(len)) => entry.0 = wire.string(len)?,
            (2, Field::Len(len)) => entry.1 = wire.string(len)?,
            _ => wire.skip_field(field)?,
        }
    }
    Ok(entry)
}

// ---- From nodes to conv layers ----

/// Lookups into a graph, built once: tensors by name, Identity nodes and
/// BatchNormalizations by the tensor they output or read.
struct Index<'g> {
    tensors: HashMap<&'g str, &'g TensorInfo>,
    identities: HashMap<&'g str, &'g Node>,
    batch_norms: HashMap<&'g str, &'g Node>,
    /// The node that writes each value.
    producers: HashMap<&'g str, &'g Node>,
    /// The graph inputs that are not initializers.
    real_inputs: HashSet<&'g str>,
}

impl<'g> Index<'g> {
    /// The index of `graph`; where names repeat, the first in file order.
    fn of(graph: &'g Graph) -> Self {
        let mut tensors = HashMap::new();
        for tensor in &graph.tensors {
            tensors.entry(tensor.name.as_str()).or_insert(tensor);
        }
        let mut identities = HashMap::new();
        let mut batch_norms = HashMap::new();
        let mut producers = HashMap::new();
        for node in &graph.nodes {
            for output in node.outputs.iter().filter(|o| !o.is_empty()) {
                producers.entry(output.as_str()).or_insert(node);
            }
            if let (true, Some(output)) = (node.is("Identity"), node.outputs.first()) {
                identities.entry(output.as_str()).or_insert(node);
            }
            if let (true, Some(input)) = (node.is("BatchNormalization"), node.input(0)) {
                batch_norms.entry(input).or_insert(node);
            }
        }
        let initializers: HashSet<&str> = graph.initializers.iter().map(String::as_str).collect();
        let real_inputs = graph
            .inputs
            .iter()
            .map(|input| input.name.as_str())
            .filter(|name| !initializers.contains(name))
            .collect();
        Index {
            tensors,
            identities,
            batch_norms,
            producers,
            real_inputs,
        }
    }

    /// The tensor called `name`, following `Identity` nodes back to it.
    fn resolve(&self, name: &str) -> Option<&'g TensorInfo> {
        let mut name = name;
        for _ in 0..MAX_IDENTITY_HOPS {
            if let Some(tensor) = self.tensors.get(name) {
                return Some(tensor);
            }
            name = self.identities.get(name)?.input(0)?;
        }
        None
    }
}

/// The 2-D Conv nodes as conv layers, in node order. Convs whose weight is
/// not 4-D (1-D and 3-D convs), or whose weight or bias is not in the file,
/// are left out.
fn list_convs(graph: &Graph) -> std::result::Result<Vec<ConvRef>, String> {
    let index = Index::of(graph);
    let mut convs = Vec::new();
    for node in graph.nodes.iter().filter(|n| n.is("Conv")) {
        let name = node.label();
        let weight_name = node
            .input(1)
            .ok_or_else(|| format!("Conv {name:?} has no weight input"))?;
        let Some(weight) = index.resolve(weight_name) else {
            continue;
        };
        if weight.dims.len() != 4 {
            continue;
        }
        let weight_shape = shape(weight).map_err(|e| format!("Conv {name:?}'s weight {e}"))?;
        let bias = match node.input(2).map(|bias| index.resolve(bias)) {
            None => None,
            Some(Some(bias)) => Some(bias.name.clone()),
            Some(None) => continue,
        };
        let geometry = geometry(node, [weight_shape[2], weight_shape[3]])
            .map_err(|e| format!("Conv {name:?}: {e}"))?;
        convs.push(ConvRef {
            weight: weight.name.clone(),
            bias,
            weight_shape,
            geometry: Some(geometry),
            batch_norm: batch_norm_after(&index, node),
            reads_input: Some(node.input(0).is_some_and(|i| index.real_inputs.contains(i))),
            feed: Some(feed_of(&index, node)),
            name,
        });
    }
    Ok(convs)
}

/// What `conv` reads: walked back from its input through the steps a
/// stack can run or fold (BatchNormalization, Relu, MaxPool; Identity and
/// Dropout pass through) to the conv or graph input they start from, or to
/// the first node that is none of them.
fn feed_of(index: &Index, conv: &Node) -> Feed {
    let mut steps = Vec::new();
    let mut value = conv.input(0).unwrap_or_default();
    // At most one hop per node: more would go round a cycle.
    let mut hops = index.producers.len() + 1;
    let from = loop {
        hops = hops.saturating_sub(1);
        if hops == 0 {
            break FeedSource::Unknown(value.to_string());
        }
        if index.real_inputs.contains(value) {
            break FeedSource::Input;
        }
        let Some(node) = index.producers.get(value) else {
            break FeedSource::Unknown(value.to_string());
        };
        let step = match (
            node.is("Conv"),
            node.domain.is_empty() || node.domain == "ai.onnx",
        ) {
            (true, _) => break FeedSource::Conv(node.label()),
            (false, false) => None,
            (false, true) => match node.op_type.as_str() {
                "Identity" | "Dropout" => Some(None),
                "Relu" => Some(Some(FeedStep::Relu)),
                "BatchNormalization" => Some(Some(FeedStep::BatchNorm(node.label()))),
                "MaxPool" => Some(Some(max_pool_step(node))),
                _ => None,
            },
        };
        let (Some(step), Some(input)) = (step, node.input(0)) else {
            break FeedSource::Node {
                op: node.op_type.clone(),
                name: node.label(),
            };
        };
        steps.extend(step);
        value = input;
    };
    steps.reverse();
    Feed { from, steps }
}

/// A MaxPool node as a [`FeedStep`]: its kernel and strides, and whether
/// it pads, dilates or rounds up.
fn max_pool_step(node: &Node) -> FeedStep {
    let pair = |name: &str, default: u32| -> [u32; 2] {
        match node.attribute(name).map(|a| a.ints.as_slice()) {
            Some([a, b]) => [*a as u32, *b as u32],
            _ => [default; 2],
        }
    };
    let nonzero = |name: &str| {
        node.attribute(name)
            .is_some_and(|a| a.ints.iter().any(|&v| v != 0) || a.i.is_some_and(|v| v != 0))
    };
    let auto_pad = node
        .attribute("auto_pad")
        .and_then(|a| a.s.as_deref())
        .is_some_and(|pad| !pad.is_empty() && pad != "NOTSET" && pad != "VALID");
    let dilated = pair("dilations", 1) != [1, 1];
    FeedStep::MaxPool {
        kernel: pair("kernel_shape", 0),
        strides: pair("strides", 1),
        padded: nonzero("pads") || nonzero("ceil_mode") || auto_pad || dilated,
    }
}

/// The BatchNormalization that reads `conv`'s output, with its four
/// tensors (inputs 1..4) and `epsilon` (default 1e-5).
fn batch_norm_after(index: &Index, conv: &Node) -> Option<BatchNormRef> {
    let output = conv.outputs.first().filter(|o| !o.is_empty())?;
    let bn = index.batch_norms.get(output.as_str())?;
    let tensor = |at: usize| -> Option<String> {
        let name = bn.input(at)?;
        Some(
            index
                .resolve(name)
                .map_or_else(|| name.to_string(), |t| t.name.clone()),
        )
    };
    Some(BatchNormRef {
        name: bn.label(),
        scale: tensor(1)?,
        shift: tensor(2)?,
        mean: tensor(3)?,
        variance: tensor(4)?,
        epsilon: Some(bn.attribute("epsilon").and_then(|a| a.f).unwrap_or(1e-5)),
    })
}

/// A Conv's geometry from its attributes, checked against the weight's
/// kernel `[FH, FW]`.
fn geometry(node: &Node, kernel: [usize; 2]) -> std::result::Result<FileGeometry, String> {
    let pair = |name: &str| -> std::result::Result<[u32; 2], String> {
        match node.attribute(name) {
            None => Ok([1, 1]),
            Some(a) => match positive(name, &a.ints)?[..] {
                [h, w] => Ok([h, w]),
                _ => Err(format!("{name} has {} values, expected 2", a.ints.len())),
            },
        }
    };
    if let Some(shape) = node.attribute("kernel_shape") {
        let agrees = shape.ints.len() == 2
            && shape
                .ints
                .iter()
                .zip(kernel)
                .all(|(&s, k)| s as u64 == k as u64 && s >= 0);
        if !agrees {
            return Err(format!(
                "kernel_shape {:?} does not agree with its weight's {kernel:?}",
                shape.ints
            ));
        }
    }
    let group = match node.attribute("group").and_then(|a| a.i) {
        None => 1,
        Some(g) => positive("group", &[g])?[0],
    };
    let auto_pad = node.attribute("auto_pad").and_then(|a| a.s.as_deref());
    let padding = match auto_pad.unwrap_or("NOTSET") {
        "NOTSET" | "" => FilePadding::Explicit(pads(node)?),
        "VALID" => FilePadding::Explicit(Padding::default()),
        "SAME_UPPER" => FilePadding::SameUpper,
        "SAME_LOWER" => FilePadding::SameLower,
        other => return Err(format!("unknown auto_pad {other:?}")),
    };
    Ok(FileGeometry {
        strides: pair("strides")?,
        padding,
        dilations: pair("dilations")?,
        group,
    })
}

/// `pads` `[top, left, bottom, right]` (ONNX's order: begins, then ends)
/// as a [`Padding`]; none when absent.
fn pads(node: &Node) -> std::result::Result<Padding, String> {
    let Some(attribute) = node.attribute("pads") else {
        return Ok(Padding::default());
    };
    let pixels = attribute
        .ints
        .iter()
        .map(|&p| u32::try_from(p).map_err(|_| format!("pads has {p}, expected 0 or more")))
        .collect::<std::result::Result<Vec<u32>, String>>()?;
    match pixels[..] {
        [top, left, bottom, right] => Ok(Padding {
            top,
            bottom,
            left,
            right,
        }),
        _ => Err(format!(
            "pads has {} values, expected 4 (a 2-D conv)",
            pixels.len()
        )),
    }
}

/// `values` as u32, each 1 or more.
fn positive(name: &str, values: &[i64]) -> std::result::Result<Vec<u32>, String> {
    values
        .iter()
        .map(|&v| {
            u32::try_from(v)
                .ok()
                .filter(|&v| v > 0)
                .ok_or_else(|| format!("{name} has {v}, expected 1 or more"))
        })
        .collect()
}

// ---- Reading a tensor's values ----

/// The tensor's dims as sizes; errors for a negative one.
fn shape(tensor: &TensorInfo) -> std::result::Result<Vec<usize>, String> {
    tensor
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("has a dimension of {d}")))
        .collect()
}

/// The dtype of ONNX `data_type` code, or an error naming the type.
fn dtype(tensor: &TensorInfo) -> std::result::Result<DType, String> {
    const NAMES: [&str; 27] = [
        "UNDEFINED",
        "FLOAT",
        "UINT8",
        "INT8",
        "UINT16",
        "INT16",
        "INT32",
        "INT64",
        "STRING",
        "BOOL",
        "FLOAT16",
        "DOUBLE",
        "UINT32",
        "UINT64",
        "COMPLEX64",
        "COMPLEX128",
        "BFLOAT16",
        "FLOAT8E4M3FN",
        "FLOAT8E4M3FNUZ",
        "FLOAT8E5M2",
        "FLOAT8E5M2FNUZ",
        "UINT4",
        "INT4",
        "FLOAT4E2M1",
        "FLOAT8E8M0",
        "UINT2",
        "INT2",
    ];
    match tensor.data_type {
        1 => Ok(DType::F32),
        10 => Ok(DType::F16),
        11 => Ok(DType::F64),
        16 => Ok(DType::BF16),
        code => {
            let type_name = usize::try_from(code)
                .ok()
                .and_then(|c| NAMES.get(c))
                .unwrap_or(&"an unknown type");
            Err(format!(
                "tensor {:?} has type {type_name} ({code}), expected FLOAT, FLOAT16, BFLOAT16 or DOUBLE",
                tensor.name
            ))
        }
    }
}

/// Reads `tensor`'s values from `file` (the model at `path`): its
/// `raw_data` range, else the typed field its dtype uses (float_data,
/// double_data, or int32_data holding f16/bf16 bits in each value's low 16
/// bits), or its external data. A tensor of more than `max_values` values
/// is refused before any is read.
fn read_tensor(
    (file, path): (&mut File, &Path),
    tensor: &TensorInfo,
    max_values: usize,
) -> std::result::Result<FileTensor, String> {
    let name = &tensor.name;
    let dtype = dtype(tensor)?;
    let shape = shape(tensor).map_err(|e| format!("tensor {name:?} {e}"))?;
    let count = values_within(name, &shape, max_values)?;
    let Some(bytes_len) = count.checked_mul(dtype.size()) else {
        return Err(format!("tensor {name:?} has a shape too large: {shape:?}"));
    };
    if tensor.external || (!tensor.external_data.is_empty() && tensor.raw.is_none()) {
        let bytes =
            ExternalData::parse(name, &tensor.external_data)?.read(name, path, bytes_len as u64)?;
        return Ok(FileTensor {
            shape,
            dtype,
            values: dtype.to_f32_le(&bytes),
        });
    }
    if let Some(raw) = tensor
        .raw
        .as_ref()
        .filter(|raw| raw.end - raw.start != bytes_len as u64)
    {
        // Refused before it is read: its length alone says it does not fit.
        return Err(format!(
            "tensor {name:?} holds {} bytes of raw data, its shape {shape:?} of {} needs {bytes_len}",
            raw.end - raw.start,
            dtype.name()
        ));
    }
    let range = tensor.raw.clone().unwrap_or_else(|| tensor.span.clone());
    let mut wire = Wire::new(&mut *file);
    wire.seek(range.start)
        .map_err(|e| format!("cannot read tensor {name:?}: {e}"))?;
    let span = wire
        .bytes(range.end - range.start)
        .map_err(|e| format!("cannot read tensor {name:?}: {e}"))?;
    let bytes = match tensor.raw {
        Some(_) => span,
        None => {
            typed_values(&span, dtype).map_err(|e| format!("tensor {name:?} is not valid: {e}"))?
        }
    };
    if bytes.len() != bytes_len {
        return Err(format!(
            "tensor {name:?} holds {} values of {}, its shape {shape:?} needs {count}",
            bytes.len() / dtype.size(),
            dtype.name()
        ));
    }
    Ok(FileTensor {
        shape,
        dtype,
        values: dtype.to_f32_le(&bytes),
    })
}

/// The size in bytes of an integer or boolean ONNX `data_type`, and
/// whether it is signed; `None` for any other type.
fn int_size(data_type: u64) -> Option<(usize, bool)> {
    match data_type {
        2 | 9 => Some((1, false)),
        3 => Some((1, true)),
        4 => Some((2, false)),
        5 => Some((2, true)),
        6 => Some((4, true)),
        7 => Some((8, true)),
        12 => Some((4, false)),
        13 => Some((8, false)),
        _ => None,
    }
}

/// Reads the integer tensor `tensor` from `file` (the model at `path`):
/// its raw data, typed field (int32_data, int64_data, uint64_data) or
/// external data, at most `max_values` values.
fn read_ints(
    (file, path): (&mut File, &Path),
    tensor: &TensorInfo,
    max_values: usize,
) -> std::result::Result<IntTensor, String> {
    let name = &tensor.name;
    let (size, signed) = int_size(tensor.data_type).ok_or_else(|| {
        format!(
            "tensor {name:?} has type {}, expected integers",
            tensor.data_type
        )
    })?;
    let shape = shape(tensor).map_err(|e| format!("tensor {name:?} {e}"))?;
    let count = values_within(name, &shape, max_values)?;
    let from_bytes = |bytes: &[u8]| -> Vec<i64> {
        bytes
            .chunks_exact(size)
            .map(|c| {
                let mut wide = [0u8; 8];
                wide[..size].copy_from_slice(c);
                let value = u64::from_le_bytes(wide);
                let shift = 64 - 8 * size as u32;
                match signed {
                    true => ((value << shift) as i64) >> shift,
                    false => value as i64,
                }
            })
            .collect()
    };
    let values = if tensor.external || (!tensor.external_data.is_empty() && tensor.raw.is_none()) {
        let bytes = ExternalData::parse(name, &tensor.external_data)?.read(
            name,
            path,
            (count * size) as u64,
        )?;
        from_bytes(&bytes)
    } else {
        let range = tensor.raw.clone().unwrap_or_else(|| tensor.span.clone());
        if range.end - range.start > (max_values as u64).saturating_mul(10).saturating_add(64) {
            return Err(format!(
                "tensor {name:?} holds more data than its shape {shape:?}"
            ));
        }
        let mut wire = Wire::new(&mut *file);
        wire.seek(range.start)
            .map_err(|e| format!("cannot read tensor {name:?}: {e}"))?;
        let span = wire
            .bytes(range.end - range.start)
            .map_err(|e| format!("cannot read tensor {name:?}: {e}"))?;
        match tensor.raw {
            Some(_) => from_bytes(&span),
            None => typed_ints(&span).map_err(|e| format!("tensor {name:?} is not valid: {e}"))?,
        }
    };
    if values.len() != count {
        return Err(format!(
            "tensor {name:?} holds {} values, its shape {shape:?} needs {count}",
            values.len()
        ));
    }
    Ok(IntTensor { shape, values })
}

/// The integers of a `TensorProto` (`message`, its bytes) in its typed
/// fields: int32_data (5), int64_data (7) or uint64_data (11).
fn typed_ints(message: &[u8]) -> WireResult<Vec<i64>> {
    let mut wire = Wire::new(Cursor::new(message));
    let end = message.len() as u64;
    let mut values = Vec::new();
    while let Some((number, field)) = wire.next(end)? {
        match (number, field) {
            (5 | 7 | 11, field @ (Field::Varint(_) | Field::Len(_))) => {
                let first = values.len();
                wire.varints(field, &mut values)?;
                if number == 5 {
                    // int32_data holds each value sign-extended to 64 bits
                    // or as its 32-bit pattern; read the low 32 bits.
                    for v in &mut values[first..] {
                        *v = *v as i32 as i64;
                    }
                }
            }
            _ => wire.skip_field(field)?,
        }
    }
    Ok(values)
}

/// The values of a `TensorProto` (`message`, its bytes) held in the typed
/// field for `dtype`, as little-endian bytes of that dtype.
fn typed_values(message: &[u8], dtype: DType) -> WireResult<Vec<u8>> {
    let mut wire = Wire::new(Cursor::new(message));
    let end = message.len() as u64;
    let mut bytes = Vec::new();
    while let Some((number, field)) = wire.next(end)? {
        match (number, dtype, field) {
            (4, DType::F32, Field::Fixed32(value)) => bytes.extend(value),
            (10, DType::F64, Field::Fixed64(value)) => bytes.extend(value),
            (4, DType::F32, Field::Len(len)) | (10, DType::F64, Field::Len(len)) => {
                bytes.extend(wire.bytes(len)?)
            }
            (5, DType::F16 | DType::BF16, field @ (Field::Varint(_) | Field::Len(_))) => {
                let mut values = Vec::new();
                wire.varints(field, &mut values)?;
                bytes.extend(values.iter().flat_map(|&v| (v as u16).to_le_bytes()));
            }
            _ => wire.skip_field(field)?,
        }
    }
    Ok(bytes)
}
