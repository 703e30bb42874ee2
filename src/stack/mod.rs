//! Stacks of layers: `--layers 32x5,relu,maxpool2,64x3`, where each conv's
//! maps are the next conv's channels. A stack is a list of steps (conv,
//! ReLU, max pooling), each knowing its output size and the input rows an
//! output band reads; the same list drives the CPU twin, the GPU run, the
//! page and the summary.
//!
//! The steps are grouped by conv: a group is a conv and the items after it
//! up to the next conv, and its maps (written to the conv's folder) are
//! taken after its last item.

mod bands;
pub mod names;
pub mod report;
pub mod spec;

pub use bands::{BandOp, BandStep, StackPlan, run_on_host, run_planned};
pub use spec::{ConvItem, Item, SpecItem};

use std::ops::Range;
use std::path::PathBuf;

use crate::banks::Init;
use crate::cpu;
use crate::error::{Error, Result};
use crate::layer::{Activation, Layer, ParameterCount};
use crate::model::load::{FoldBatchNorm, WeightsOrigin};
use crate::pool::PoolSpec;
use crate::resolve::{InputShape, LayerOptions, WeightsSource, resolve};
use crate::tensor::Tensor3;

/// What one step of a stack does.
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

/// One step and the shapes around it.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// What it does.
    pub op: Op,
    /// Its input, `[C, H, W]`.
    pub input: [u32; 3],
    /// Its output, `[C, OH, OW]`.
    pub output: [u32; 3],
}

/// A conv and the items after it up to the next conv: one folder of output.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    /// The layer's name: `conv1`, `conv2`, … or the model's name for it.
    pub name: String,
    /// The folder its files go to, inside the run's output directory: the
    /// name made safe ([`names::folder_names`]).
    pub folder: String,
    /// The items it includes, as written: `["32x5", "relu", "maxpool2"]`.
    pub items: Vec<String>,
    /// Its steps in [`Stack::steps`]; the first is the conv.
    pub steps: Range<usize>,
    /// Where the conv's weights came from, as the summary says it.
    pub weights_source: String,
    /// A model file's details about the conv (none for a built-in bank).
    pub origin: Option<WeightsOrigin>,
}

/// A stack resolved against its input: every shape known and checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Stack {
    /// The steps in order.
    pub steps: Vec<Step>,
    /// The conv groups in order.
    pub groups: Vec<Group>,
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

impl Stack {
    /// Resolves `items` over an input of shape `input`: each conv against
    /// the previous step's output, its weights from `options`. Fails with
    /// an error naming the item at fault.
    pub fn resolve(items: &[SpecItem], input: InputShape, options: &StackOptions) -> Result<Stack> {
        let mut steps: Vec<Step> = Vec::new();
        let mut groups: Vec<Group> = Vec::new();
        let mut shape = [input.channels, input.height, input.width];
        for (index, item) in items.iter().enumerate() {
            let at = |e: Error| {
                let message = match e {
                    Error::InvalidLayer(message) => message,
                    other => other.to_string(),
                };
                Error::InvalidLayer(format!("{}: {message}", item.describe(index)))
            };
            match &item.item {
                Item::Conv(conv) => {
                    let layer_input = InputShape {
                        channels: shape[0],
                        photo: input.photo && steps.is_empty(),
                        height: shape[1],
                        width: shape[2],
                    };
                    let counts = (groups.len(), steps.len());
                    let (group, step) =
                        conv_step(conv, layer_input, counts, options).map_err(at)?;
                    shape = step.output;
                    groups.push(group);
                    steps.push(step);
                }
                Item::Relu => match steps.last_mut() {
                    Some(Step {
                        op: Op::Conv(layer),
                        ..
                    }) if layer.spec.activation == Activation::None => {
                        layer.spec.activation = Activation::Relu;
                    }
                    _ => steps.push(Step {
                        op: Op::Relu,
                        input: shape,
                        output: shape,
                    }),
                },
                Item::MaxPool(pool) => {
                    let (height, width) = pool.output_size(shape[1], shape[2]).map_err(at)?;
                    let input = shape;
                    shape = [shape[0], height, width];
                    steps.push(Step {
                        op: Op::MaxPool(*pool),
                        input,
                        output: shape,
                    });
                }
            }
            let group = groups.last_mut().ok_or_else(|| {
                Error::InvalidLayer(format!(
                    "{}: a stack starts with a conv",
                    item.describe(index)
                ))
            })?;
            group.items.push(item.text.clone());
            group.steps.end = steps.len();
        }
        let folders = names::folder_names(groups.iter().map(|g| g.name.as_str()));
        for (group, folder) in groups.iter_mut().zip(folders) {
            group.folder = folder;
        }
        Ok(Stack { steps, groups })
    }

    /// The conv layer of group `group`.
    pub fn layer(&self, group: usize) -> &Layer {
        match &self.steps[self.groups[group].steps.start].op {
            Op::Conv(layer) => layer,
            _ => unreachable!("a group starts with its conv"),
        }
    }

    /// The input `[C, H, W]` of group `group` (its conv's).
    pub fn group_input(&self, group: usize) -> [u32; 3] {
        self.steps[self.groups[group].steps.start].input
    }

    /// The maps `[K, OH, OW]` group `group` hands over (after its last item).
    pub fn group_output(&self, group: usize) -> [u32; 3] {
        self.steps[self.groups[group].steps.end - 1].output
    }

    /// The parameters of every conv together.
    pub fn parameters(&self) -> ParameterCount {
        (0..self.groups.len())
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
                Op::Conv(layer) => layer.spec.flops(step.output[1], step.output[2]),
                _ => 0.0,
            })
            .sum()
    }
}

/// Where conv number `index` (from 0) of the stack takes its weights.
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

/// Resolves conv number `convs` (from 0) over `input` into its group,
/// whose first step it is, and that step (number `steps`).
fn conv_step(
    conv: &ConvItem,
    input: InputShape,
    (convs, steps): (usize, usize),
    options: &StackOptions,
) -> Result<(Group, Step)> {
    let source = conv_source(conv, convs, options);
    let resolved = resolve(
        &conv_options(conv, options),
        input,
        &source,
        options.max_pixels,
    )?;
    let layer = resolved.layer;
    let (height, width) = resolved.output_size;
    let group = Group {
        name: match conv {
            ConvItem::Named(name) => name.clone(),
            ConvItem::Cli(_) => format!("conv{}", convs + 1),
        },
        folder: String::new(),
        items: Vec::new(),
        steps: steps..steps,
        weights_source: source.describe(),
        origin: resolved.origin,
    };
    let step = Step {
        input: [layer.spec.in_channels, input.height, input.width],
        output: [layer.spec.filters, height, width],
        op: Op::Conv(layer),
    };
    Ok((group, step))
}

/// The layer options of a conv item; a named conv's shape and geometry
/// come from its file.
fn conv_options(conv: &ConvItem, options: &StackOptions) -> LayerOptions {
    let defaults = LayerOptions {
        bias: options.bias,
        ..LayerOptions::default()
    };
    match conv {
        ConvItem::Cli(cli) => LayerOptions {
            filters: cli.filters,
            kernel_size: cli.kernel_size,
            stride: cli.stride,
            padding: cli.padding,
            dilation: cli.dilation,
            groups: cli.groups,
            ..defaults
        },
        ConvItem::Named(_) => defaults,
    }
}

/// The CPU twin of a whole stack over `input` `[C, H, W]`, untiled: each
/// group's maps, step by step with the CPU twins of the shaders.
pub fn run_cpu(stack: &Stack, input: &Tensor3) -> Result<Vec<Tensor3>> {
    let mut outputs = Vec::with_capacity(stack.groups.len());
    let mut current = input.clone();
    for group in &stack.groups {
        for step in &stack.steps[group.steps.clone()] {
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
