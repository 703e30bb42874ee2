//! A run as a graph of steps: named tensors, and ops that read and write
//! them. One layer is the graph of one conv; `--layers 32x5,relu,maxpool2,64x3`
//! is a chain, where each conv's maps are the next conv's channels. Each
//! step knows the shapes it reads and writes; the same graph drives the
//! band plan ([`plan`]), the CPU twin ([`run_cpu`]), the engines, the
//! summary and the page.
//!
//! The steps fall into blocks: a block is a conv and the steps after it up
//! to the next conv (its activation, pooling), and its maps, written to
//! its own folder, are the tensor its last step writes.

pub mod field;
pub mod names;
pub mod plan;
pub mod spec;

pub use plan::{BandOp, BandStep, ChainPlan, LayerPlan, Plan};
pub use spec::{ConvItem, Item, SpecItem};

use std::ops::Range;
use std::path::PathBuf;

use crate::banks::Init;
use crate::cpu;
use crate::error::{Error, Result};
use crate::layer::{Activation, Layer, ParameterCount};
use crate::model::load::{FoldBatchNorm, WeightsOrigin};
use crate::model::{ConvRef, Feed, FeedSource, FeedStep};
use crate::pool::PoolSpec;
use crate::resolve::{InputShape, LayerOptions, Resolved, WeightsSource, resolve};
use crate::tensor::Tensor3;

/// A tensor of the graph: its name and shape `[C, H, W]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    /// `input`, or the step that writes it: `conv1`, `conv1.relu`, …
    pub name: String,
    /// `[C, H, W]`.
    pub shape: [u32; 3],
}

/// Index of a [`Value`] in [`Graph::values`].
pub type ValueId = usize;

/// What one step does.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A conv layer. A `relu` item right after a conv is its activation
    /// (the same values: the ReLU of the sum plus bias), one pass fewer.
    Conv(Layer),
    /// `max(x, 0)` on every value.
    Relu,
    /// Max pooling.
    MaxPool(PoolSpec),
}

/// One step: what it does, the value it reads and the value it writes.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// What it does.
    pub op: Op,
    /// The value it reads.
    pub reads: ValueId,
    /// The value it writes.
    pub writes: ValueId,
}

/// A conv and the steps after it up to the next conv: one folder of maps.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    /// The layer's name: `conv1`, `conv2`, … or the model's name for it.
    pub name: String,
    /// The folder its files go to, inside the run's output directory: the
    /// name made safe ([`names::folder_names`]); empty for a one-layer
    /// run, whose files go to the output directory itself.
    pub folder: String,
    /// The items it includes, as written: `["32x5", "relu", "maxpool2"]`.
    pub items: Vec<String>,
    /// Its steps in [`Graph::steps`]; the first is the conv, the last
    /// writes its maps.
    pub steps: Range<usize>,
    /// Where the conv's weights came from, as the summary says it.
    pub weights_source: String,
    /// A model file's details about the conv (none for a built-in bank).
    pub origin: Option<WeightsOrigin>,
}

/// A graph resolved against its input: every shape known and checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    /// Its values; the first is the input.
    pub values: Vec<Value>,
    /// The steps, in an order that writes each value before it is read.
    pub steps: Vec<Step>,
    /// The blocks in order.
    pub blocks: Vec<Block>,
    /// What a person should know about the graph that is no error (a
    /// stack of a model's convs that could not be checked against it).
    pub notes: Vec<String>,
}

/// What a stack's convs are made of besides their items.
#[derive(Clone, Debug, PartialEq)]
pub struct StackOptions {
    /// Whether CLI-defined convs have biases (`--no-bias` turns them off).
    pub bias: bool,
    /// The bank of CLI-defined convs (`--init`).
    pub init: Init,
    /// The seed of the first conv; conv n (from 0) gets `seed + n`, so that
    /// each is seeded distinctly and the first equals a one-layer run.
    pub seed: u64,
    /// The model whose convs named items are (`--weights`).
    pub model: Option<PathBuf>,
    /// Fold the BatchNorm after each named conv that has one (`--fold-bn`;
    /// its `if_present` lets a conv without one run as it is).
    pub fold_bn: Option<FoldBatchNorm>,
    /// Largest map, in pixels, any step may make (`--max-pixels`).
    pub max_pixels: u64,
}

impl Graph {
    /// The graph of one conv layer, resolved already, over an input of
    /// shape `input`; its block, named after the model's conv where the
    /// weights come from one (else `conv1`), writes to the output
    /// directory itself. `items` are the layer as a stack would write it
    /// (e.g. `["32x5", "relu"]`), `source` where its parameters came from.
    pub fn single(layer: Resolved, input: [u32; 3], items: Vec<String>, source: String) -> Graph {
        let name = layer
            .origin
            .as_ref()
            .and_then(|origin| origin.layer.clone())
            .unwrap_or_else(|| "conv1".into());
        let mut graph = Graph::starting_at(input);
        graph.blocks.push(Block {
            name: name.clone(),
            folder: String::new(),
            items,
            steps: 0..0,
            weights_source: source,
            origin: layer.origin,
        });
        let (height, width) = layer.output_size;
        let shape = [layer.layer.spec.filters, height, width];
        graph.push(Op::Conv(layer.layer), name, shape);
        graph
    }

    /// Resolves the stack `items` over an input of shape `input`: each conv
    /// against the previous step's output, its weights from `options`.
    /// Fails with an error naming the item at fault.
    pub fn resolve(items: &[SpecItem], input: InputShape, options: &StackOptions) -> Result<Graph> {
        let notes = follows_the_model(items, options)?;
        let mut graph = Graph::starting_at([input.channels, input.height, input.width]);
        graph.notes = notes;
        for (index, item) in items.iter().enumerate() {
            let at = |e: Error| {
                let message = match e {
                    Error::InvalidLayer(message) => message,
                    other => other.to_string(),
                };
                Error::InvalidLayer(format!("{}: {message}", item.describe(index)))
            };
            graph.add_item(item, input.photo, options).map_err(at)?;
            let block = graph.blocks.last_mut().ok_or_else(|| {
                Error::InvalidLayer(format!(
                    "{}: a stack starts with a conv",
                    item.describe(index)
                ))
            })?;
            block.items.push(item.text.clone());
        }
        let folders = names::folder_names(graph.blocks.iter().map(|b| b.name.as_str()));
        for (block, folder) in graph.blocks.iter_mut().zip(folders) {
            block.folder = folder;
        }
        Ok(graph)
    }

    /// A graph of nothing but its input, of shape `input`.
    fn starting_at(input: [u32; 3]) -> Graph {
        Graph {
            values: vec![Value {
                name: "input".into(),
                shape: input,
            }],
            steps: Vec::new(),
            blocks: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// The last value written (the input before any step).
    fn last_value(&self) -> ValueId {
        self.values.len() - 1
    }

    /// Appends `op`, reading the last value and writing a new one named
    /// `name` of shape `shape`, to the last block.
    fn push(&mut self, op: Op, name: String, shape: [u32; 3]) {
        let reads = self.last_value();
        self.values.push(Value { name, shape });
        self.steps.push(Step {
            op,
            reads,
            writes: reads + 1,
        });
        if let Some(block) = self.blocks.last_mut() {
            block.steps.end = self.steps.len();
        }
    }

    /// Adds a stack item after the last step: a conv opens a new block
    /// (a `relu` right after a conv becomes its activation).
    fn add_item(&mut self, item: &SpecItem, photo: bool, options: &StackOptions) -> Result<()> {
        let shape = self.values[self.last_value()].shape;
        let name = |what: &str| {
            let block = self.blocks.last().map_or("input", |b| b.name.as_str());
            format!("{block}.{what}")
        };
        match &item.item {
            Item::Conv(conv) => {
                let input = InputShape {
                    channels: shape[0],
                    photo: photo && self.steps.is_empty(),
                    height: shape[1],
                    width: shape[2],
                };
                let (block, layer, output) = conv_block(conv, input, self.blocks.len(), options)?;
                if self.steps.is_empty() {
                    // A photo is read as the channels the first conv takes.
                    self.values[0].shape[0] = layer.spec.in_channels;
                }
                self.blocks.push(Block {
                    steps: self.steps.len()..self.steps.len(),
                    ..block
                });
                let name = self.blocks[self.blocks.len() - 1].name.clone();
                self.push(Op::Conv(layer), name, output);
            }
            Item::Relu => match self.steps.last_mut() {
                Some(Step {
                    op: Op::Conv(layer),
                    ..
                }) if layer.spec.activation == Activation::None => {
                    layer.spec.activation = Activation::Relu;
                }
                _ => self.push(Op::Relu, name("relu"), shape),
            },
            Item::MaxPool(pool) => {
                let (height, width) = pool.output_size(shape[1], shape[2])?;
                self.push(
                    Op::MaxPool(*pool),
                    name(&item.text),
                    [shape[0], height, width],
                );
            }
        }
        Ok(())
    }

    /// The shape `[C, H, W]` of the value `step` reads.
    pub fn input_of(&self, step: &Step) -> [u32; 3] {
        self.values[step.reads].shape
    }

    /// The shape `[C, H, W]` of the value `step` writes.
    pub fn output_of(&self, step: &Step) -> [u32; 3] {
        self.values[step.writes].shape
    }

    /// The graph's input `[C, H, W]`.
    pub fn input(&self) -> [u32; 3] {
        self.values[0].shape
    }

    /// Whether the graph is one conv written to the output directory itself
    /// (a one-layer run, [`Graph::single`]), computed whole.
    pub fn is_one_layer(&self) -> bool {
        self.steps.len() == 1 && self.blocks.len() == 1 && self.blocks[0].folder.is_empty()
    }

    /// Whether every step reads the value the step before it wrote (the
    /// first, the input): a chain, which runs band by band.
    pub fn is_chain(&self) -> bool {
        self.steps
            .iter()
            .enumerate()
            .all(|(index, step)| step.reads == index && step.writes == index + 1)
    }

    /// The conv layer of block `block`.
    pub fn layer(&self, block: usize) -> &Layer {
        match &self.steps[self.blocks[block].steps.start].op {
            Op::Conv(layer) => layer,
            _ => unreachable!("a block starts with its conv"),
        }
    }

    /// The input `[C, H, W]` of block `block` (its conv's).
    pub fn block_input(&self, block: usize) -> [u32; 3] {
        self.input_of(&self.steps[self.blocks[block].steps.start])
    }

    /// The maps `[K, OH, OW]` block `block` hands over (after its last step).
    pub fn block_output(&self, block: usize) -> [u32; 3] {
        self.output_of(&self.steps[self.blocks[block].steps.end - 1])
    }

    /// The block whose maps step `step` writes, if any (a block's last step).
    pub fn block_written_by(&self, step: usize) -> Option<usize> {
        self.blocks.iter().position(|b| b.steps.end == step + 1)
    }

    /// The parameters of every conv together.
    pub fn parameters(&self) -> ParameterCount {
        (0..self.blocks.len())
            .map(|g| self.layer(g).parameters())
            .fold(ParameterCount::default(), |sum, count| ParameterCount {
                weights: sum.weights + count.weights,
                biases: sum.biases + count.biases,
                total: sum.total + count.total,
            })
    }

    /// Floating-point operations of every conv (2 per multiply-add).
    pub fn flops(&self) -> f64 {
        self.steps
            .iter()
            .map(|step| match &step.op {
                Op::Conv(layer) => {
                    let [_, height, width] = self.output_of(step);
                    layer.spec.flops(height, width)
                }
                _ => 0.0,
            })
            .sum()
    }
}

/// Refuses a stack whose named convs the model connects otherwise: where
/// a named conv follows another, the model's graph must run exactly the
/// stack's items between them (a BatchNorm that `--fold-bn` folds into the
/// first aside), else the second's maps would not be the model's. Formats
/// without a graph (state dicts) cannot be checked: they pass, with a note
/// that says so.
fn follows_the_model(items: &[SpecItem], options: &StackOptions) -> Result<Vec<String>> {
    let named = items
        .iter()
        .filter(|item| matches!(item.item, Item::Conv(ConvItem::Named(_))))
        .count();
    let (Some(path), 1..) = (&options.model, named) else {
        return Ok(Vec::new());
    };
    let model = crate::model::open(path)?;
    if model.convs().iter().all(|conv| conv.feed.is_none()) {
        return Ok((named >= 2)
            .then(|| {
                format!(
                    "{} ({}) has no graph: the stack runs its items between the model's convs as \
                 written, which may not be what the model computes there",
                    path.display(),
                    model.format()
                )
            })
            .into_iter()
            .collect());
    }
    let conv = |name: &str| {
        model
            .convs()
            .iter()
            .find(|c| c.name == name || c.weight == name)
    };
    let notes: Vec<String> = first_reads(items, conv).into_iter().collect();
    let mut previous: Option<&ConvRef> = None;
    let mut between: Vec<&Item> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match &item.item {
            Item::Conv(ConvItem::Named(name)) => {
                let this = conv(name);
                let feed = this.and_then(|c| c.feed.as_ref());
                if let (Some(from), Some(feed)) = (previous, feed) {
                    let folded = options.fold_bn.as_ref().and(from.batch_norm.as_ref());
                    let folded = folded.map(|batch_norm| batch_norm.name.as_str());
                    runs_as_the_model(feed, (&from.name, folded), &between).map_err(|why| {
                        Error::Weights {
                            path: path.clone(),
                            message: format!("{}: {why}", item.describe(index)),
                            source: None,
                        }
                    })?;
                }
                previous = this;
                between.clear();
            }
            Item::Conv(ConvItem::Cli(_)) => {
                previous = None;
                between.clear();
            }
            other => between.push(other),
        }
    }
    Ok(notes)
}

/// A note when the stack's first item is a model's conv that, in the
/// model, reads something other than the model's input as it is: the
/// stack feeds it the input itself.
fn first_reads<'m>(
    items: &[SpecItem],
    conv: impl Fn(&str) -> Option<&'m ConvRef>,
) -> Option<String> {
    let Item::Conv(ConvItem::Named(name)) = &items.first()?.item else {
        return None;
    };
    let feed = conv(name)?.feed.as_ref()?;
    let as_is = feed.from == FeedSource::Input && feed.steps.is_empty();
    (!as_is).then(|| {
        format!(
            "in the model, `{name}` reads {feed}; here it reads the input itself, so its maps \
             are not the model's"
        )
    })
}

/// Whether `items` run what the model runs from conv `from` (whose
/// BatchNorm `folded` is folded into it) to the conv `feed` describes; if
/// not, what differs.
fn runs_as_the_model(
    feed: &Feed,
    (from, folded): (&str, Option<&str>),
    items: &[&Item],
) -> std::result::Result<(), String> {
    // A BatchNorm folded into `from` is in its maps already: the model must
    // run it first.
    let (bn_first, steps) = match (folded, feed.steps.split_first()) {
        (Some(folded), Some((FeedStep::BatchNorm(name), rest))) => (name == folded, rest),
        (Some(_), _) => (false, &feed.steps[..]),
        (None, _) => (true, &feed.steps[..]),
    };
    let same = bn_first
        && steps.len() == items.len()
        && steps
            .iter()
            .zip(items)
            .all(|(step, item)| match (step, item) {
                (FeedStep::Relu, Item::Relu) => true,
                (
                    FeedStep::MaxPool {
                        kernel,
                        strides,
                        padded: false,
                    },
                    Item::MaxPool(pool),
                ) => *kernel == [pool.size; 2] && *strides == [pool.stride; 2],
                _ => false,
            });
    let reads_from = feed.from == FeedSource::Conv(from.to_string());
    if reads_from && same {
        return Ok(());
    }
    let start = match folded {
        Some(name) => format!("`{from}` with BatchNormalization {name} folded in"),
        None => format!("`{from}`"),
    };
    let stack: Vec<String> = std::iter::once(start)
        .chain(items.iter().map(|item| item_name(item)))
        .collect();
    Err(format!(
        "in the model it reads {feed}; the stack gives it {}: its maps would not be the model's \
         (a stack runs convs, relu and maxpoolN/sS only){}",
        stack.join(" → "),
        advice(feed, (reads_from, bn_first, folded), steps)
    ))
}

/// What to write instead, when items can say what the model runs:
/// `; write relu,maxpool2 between them`, or with `--fold-bn` first.
fn advice(
    feed: &Feed,
    (reads_from, bn_first, folded): (bool, bool, Option<&str>),
    steps: &[FeedStep],
) -> String {
    let between = |steps: &[FeedStep]| {
        let items: Option<Vec<String>> = steps.iter().map(step_item).collect();
        items.map(|items| match items.is_empty() {
            true => "nothing".to_string(),
            false => items.join(","),
        })
    };
    match (reads_from, bn_first, folded, feed.steps.split_first()) {
        (true, true, None, Some((FeedStep::BatchNorm(_), rest))) => between(rest)
            .map_or(String::new(), |items| {
                format!("; add --fold-bn and write {items} between them")
            }),
        (true, true, _, _) => between(steps).map_or(String::new(), |items| {
            format!("; write {items} between them")
        }),
        _ => String::new(),
    }
}

/// The stack item that runs `step`, if one does.
fn step_item(step: &FeedStep) -> Option<String> {
    match step {
        FeedStep::Relu => Some("relu".into()),
        FeedStep::MaxPool {
            kernel: [size, width],
            strides: [stride, stride_x],
            padded: false,
        } if size == width && stride == stride_x => Some(item_name(&Item::MaxPool(PoolSpec {
            size: *size,
            stride: *stride,
        }))),
        _ => None,
    }
}

/// A stack item between convs, as written.
fn item_name(item: &Item) -> String {
    match item {
        Item::Relu => "relu".into(),
        Item::MaxPool(pool) if pool.stride == pool.size => format!("maxpool{}", pool.size),
        Item::MaxPool(pool) => format!("maxpool{}/s{}", pool.size, pool.stride),
        Item::Conv(_) => "a conv".into(),
    }
}

/// Where conv number `index` (from 0) of a stack takes its weights.
fn conv_source(conv: &ConvItem, index: usize, options: &StackOptions) -> WeightsSource {
    match (conv, &options.model) {
        (ConvItem::Named(name), Some(path)) => WeightsSource::Model {
            path: path.clone(),
            layer_name: Some(name.clone()),
            fold_bn: options.fold_bn.clone(),
        },
        _ => WeightsSource::Init {
            init: options.init,
            seed: options.seed.wrapping_add(index as u64),
        },
    }
}

/// Resolves conv number `convs` (from 0) of a stack over `input` into its
/// block (with no steps yet), its layer and its output `[K, OH, OW]`.
fn conv_block(
    conv: &ConvItem,
    input: InputShape,
    convs: usize,
    options: &StackOptions,
) -> Result<(Block, Layer, [u32; 3])> {
    let source = conv_source(conv, convs, options);
    let resolved = resolve(
        &conv_options(conv, options),
        input,
        &source,
        options.max_pixels,
    )?;
    let (height, width) = resolved.output_size;
    let block = Block {
        name: match conv {
            ConvItem::Named(name) => name.clone(),
            ConvItem::Cli(_) => format!("conv{}", convs + 1),
        },
        folder: String::new(),
        items: Vec::new(),
        steps: 0..0,
        weights_source: source.describe(),
        origin: resolved.origin,
    };
    let output = [resolved.layer.spec.filters, height, width];
    Ok((block, resolved.layer, output))
}

/// The layer options of a conv item; a named conv's shape and geometry
/// come from its file.
fn conv_options(conv: &ConvItem, options: &StackOptions) -> LayerOptions {
    LayerOptions {
        geometry: match conv {
            ConvItem::Cli(geometry) => *geometry,
            ConvItem::Named(_) => Default::default(),
        },
        bias: options.bias,
        ..LayerOptions::default()
    }
}

/// The CPU twin of a whole chain over `input` `[C, H, W]`, untiled: each
/// block's maps, step by step with the CPU twins of the shaders.
pub fn run_cpu(graph: &Graph, input: &Tensor3) -> Result<Vec<Tensor3>> {
    let mut outputs = Vec::with_capacity(graph.blocks.len());
    let mut current = input.clone();
    for block in &graph.blocks {
        for step in &graph.steps[block.steps.clone()] {
            current = match &step.op {
                Op::Conv(layer) => cpu::conv2d_direct(&current, layer)?,
                Op::Relu => {
                    cpu::relu(&mut current);
                    current
                }
                Op::MaxPool(pool) => cpu::max_pool(&current, pool)?,
            };
        }
        outputs.push(current.clone());
    }
    Ok(outputs)
}

/// For tests: the stack `spec` (as `--layers` writes it) over an RGB photo
/// of `height`×`width`, with random weights from seed 1.
#[cfg(test)]
pub(crate) fn test_stack(spec: &str, height: u32, width: u32) -> Graph {
    let options = StackOptions {
        bias: true,
        init: crate::banks::Init::Random,
        seed: 1,
        model: None,
        fold_bn: None,
        max_pixels: 1 << 30,
    };
    let input = crate::resolve::InputShape {
        channels: 3,
        photo: true,
        height,
        width,
    };
    Graph::resolve(&spec::parse(spec, false).unwrap(), input, &options).unwrap()
}
