//! What a network's page embeds to open one map: each written node's maps'
//! statistics and the range their colours span, and, for the convs whose
//! weights and input fit the page's budget, what the page needs
//! to show one value as its arithmetic (`render::arithmetic`).

use std::collections::{HashMap, HashSet};

use crate::net::array::maps_shape;
use crate::net::ops::Op;
use crate::net::{Array, NetRun, Network, ValueId};
use crate::render::arithmetic::{self, Geometry};
use crate::render::explore::Drawing;

/// Each map of a node: `[min, max, mean]`. (The page works out the range
/// its colours span from these, as the run did.)
pub(super) type MapDetail = [f32; 3];

/// What the page embeds beyond the summary.
#[derive(Default)]
pub(super) struct PageDetail {
    /// Each written node's maps, by node name.
    pub maps: HashMap<String, Vec<MapDetail>>,
    /// Each written conv's arithmetic, or why the page has none, by node name.
    pub convs: HashMap<String, std::result::Result<serde_json::Value, String>>,
    /// The inputs the convs read, by value name.
    pub inputs: serde_json::Map<String, serde_json::Value>,
    /// Each written node's strip of thumbnails, by node name.
    pub strips: HashMap<String, serde_json::Value>,
    /// How the maps were drawn.
    pub drawing: Drawing,
}

/// The chosen Conv nodes whose copies fit the budget, in run order (a conv
/// that does not fit is skipped and later ones still tried), and the values
/// they read that the run must keep (the model's input is at hand anyway).
pub(super) fn arithmetic_plan(
    (network, budget): (&Network, usize),
    chosen: &[usize],
) -> (Vec<usize>, Vec<ValueId>) {
    let mut used = 0;
    let mut counted = HashSet::new();
    let mut nodes = Vec::new();
    for &index in chosen {
        let node = &network.nodes[index];
        let Op::Conv(conv) = &node.op else { continue };
        let Some(weight) = network.constants.get(&node.inputs[1]) else {
            continue;
        };
        let input = node.inputs[0];
        if conv.activation.is_some() || maps_shape(&network.values[input].shape).is_none() {
            continue;
        }
        let input_len = match counted.contains(&input) {
            true => 0,
            false => network.values[input].shape.iter().product(),
        };
        let cost = arithmetic::cost(weight.data.len(), input_len);
        if used + cost <= budget {
            used += cost;
            counted.insert(input);
            nodes.push(index);
        }
    }
    let keep = counted
        .into_iter()
        .filter(|&v| v != network.input_value)
        .collect();
    (nodes, keep)
}

/// The arithmetic of each conv in `convs` (the plan's), from the run's
/// values and the model's `input`; every other written conv gets the reason
/// it has none.
pub(super) fn conv_details(
    (network, budget): (&Network, usize),
    (written, convs): (&[usize], &[usize]),
    run: &NetRun,
    input: &Array,
    detail: &mut PageDetail,
) {
    for &index in written {
        let node = &network.nodes[index];
        let Op::Conv(conv) = &node.op else { continue };
        if !convs.contains(&index) {
            detail
                .convs
                .insert(node.name.clone(), Err(arithmetic::over_budget(budget)));
            continue;
        }
        let source = node.inputs[0];
        let value = match source == network.input_value {
            true => Some(input),
            false => run.values.get(&source),
        };
        let (Some(value), Some(weight)) = (value, network.constants.get(&node.inputs[1])) else {
            continue;
        };
        let Some([c, h, w]) = maps_shape(&value.shape) else {
            continue;
        };
        let name = network.values[source].name.clone();
        detail.inputs.entry(name.clone()).or_insert_with(|| {
            arithmetic::input_json([c as usize, h as usize, w as usize], &value.data)
        });
        let bias = node.inputs.get(2).and_then(|b| network.constants.get(b));
        let geometry = Geometry {
            kernel: conv.kernel,
            strides: conv.strides,
            pads: conv.pads,
            dilations: conv.dilations,
            groups: conv.group,
        };
        let mut json = arithmetic::conv_json(
            geometry,
            (&weight.data, weight.shape[0]),
            bias.map(|b| b.data.as_slice()),
            (&name, &[]),
        );
        if let Some(out) = run.values.get(&node.output)
            && let Some([_, height, width]) = maps_shape(&out.shape)
        {
            let first = &out.data[..(height * width) as usize];
            let largest = out.data.iter().fold(0f32, |m, v| m.max(v.abs()));
            let size = [height as usize, width as usize];
            json["run"] = arithmetic::run_values(first, size, largest);
        }
        detail.convs.insert(node.name.clone(), Ok(json));
    }
}
