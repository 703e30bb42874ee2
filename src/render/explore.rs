//! The explorer part of `index.html`: the graph's layers and every step's
//! windows, embedded as data, and the script (`explore.js`) that answers
//! `window.convmaps.layers()` and `receptiveField(name, x, y)` and draws a
//! hovered value's receptive field on the photo. `graph::field` is its
//! native twin.

use serde_json::json;

use std::path::Path;

use super::arithmetic::Embedded;
use super::colormap::{Colormap, Normalize};
use super::grid::GridLayout;
use super::live::{base64, script_json};
use super::{feature_file_name, grid_tile_size};
use crate::graph::Graph;
use crate::graph::field::Window;

/// Colours of the colour bar the page draws: the colour map at 256 even
/// steps of t from 0 to 1.
pub const BAR_COLOURS: u32 = 256;

/// A block's maps as the run wrote them: the folder (relative to the page)
/// and each map's smallest, largest and mean value.
pub type WrittenMaps = (String, Vec<[f32; 3]>);

/// How the run drew its maps, for the page to draw their colour bars.
#[derive(Clone, Copy, Debug, Default)]
pub struct Drawing {
    /// The colour map.
    pub colormap: Colormap,
    /// Which range each map's colours span.
    pub normalize: Normalize,
}

/// One map opened large: its arithmetic and its filter's editor
/// (`detail.js`), shared with a network's page.
pub const DETAIL_SCRIPT: &str = include_str!("detail.js");

/// The explorer's scripts, in the order they run (after `view.js`): one
/// value's arithmetic, one map opened large, the strips, and the explorer.
/// Plain JavaScript, no build step.
pub const SCRIPTS: [&str; 4] = [
    super::arithmetic::SCRIPT,
    DETAIL_SCRIPT,
    STRIPS_SCRIPT,
    include_str!("explore.js"),
];

/// Each layer's strip of thumbnails drawn in the page (`strips.js`),
/// shared with a network's page.
pub const STRIPS_SCRIPT: &str = include_str!("strips.js");

/// The data `explore.js` reads, as JSON safe inside `<script>`: the input
/// `[C, H, W]` and whether it is a photo (whose picture on the page the
/// receptive fields are framed on; a tensor's is a grid of its channels);
/// per step its input `[C, H, W]` and its windows along rows and columns;
/// per block (layer) its name, op, maps `[K, OH, OW]`, parameters, last
/// step, the layout of its grid picture, and per map its picture, range of
/// values (min, max, mean), the filter's bias and the range its colours
/// span, and its conv's arithmetic where `arithmetic` embeds it (with the
/// inputs the convs read); and the colour map's [`BAR_COLOURS`] colours
/// (RGB, base64).
pub fn explore_data(
    graph: &Graph,
    written: &[WrittenMaps],
    (drawing, photo): (Drawing, bool),
    arithmetic: Option<&Embedded>,
) -> String {
    let window = |w: Window| json!({"stride": w.stride, "pad": w.pad, "extent": w.extent});
    let steps: Vec<_> = graph
        .steps
        .iter()
        .zip(graph.windows())
        .map(|(step, (rows, columns))| {
            json!({"input": graph.input_of(step), "rows": window(rows), "columns": window(columns)})
        })
        .collect();
    let layers: Vec<_> = (0..graph.blocks.len())
        .map(|block| {
            let [maps, height, width] = graph.block_output(block);
            let (tile_width, tile_height) = grid_tile_size(maps, width, height);
            let grid = GridLayout::new(maps, tile_width, tile_height);
            let mut layer = json!({
                "name": graph.blocks[block].name,
                "op": "conv",
                "shape": [maps, height, width],
                "parameters": graph.layer(block).parameters().total,
                "lastStep": graph.blocks[block].steps.end - 1,
                "maps": map_details(graph, written, block, drawing),
                "grid": {
                    "columns": grid.columns,
                    "cellWidth": grid.cell_width,
                    "cellHeight": grid.cell_height,
                    "gap": super::GRID_GAP,
                    "width": grid.width,
                    "height": grid.height,
                    "maps": maps,
                    "mapWidth": width,
                    "mapHeight": height,
                },
            });
            match arithmetic.and_then(|a| a.convs.get(block)) {
                Some(Ok(conv)) => layer["conv"] = conv.clone(),
                Some(Err(why)) => layer["noArithmetic"] = why.clone().into(),
                None => {}
            }
            if let Some(strip) = arithmetic.and_then(|a| a.strips.get(block)) {
                layer["strip"] = strip.clone();
            }
            layer
        })
        .collect();
    let data = json!({
        "input": graph.input(),
        "photo": photo,
        "colormap": drawing.colormap.name(),
        "colours": colour_table(drawing.colormap),
        "steps": steps,
        "layers": layers,
        "inputs": arithmetic.map(|a| &a.inputs),
        "view": view_json(drawing),
    });
    script_json(&data.to_string())
}

/// How the run drew its maps, and every colour map's table, for the page's
/// strips and `setView`: `{colormap, normalize, colormaps, diverging}`.
pub fn view_json(drawing: Drawing) -> serde_json::Value {
    json!({
        "colormap": drawing.colormap.name(),
        "normalize": drawing.normalize.to_string(),
        "colormaps": colour_tables(),
        "diverging": Colormap::ALL
            .iter()
            .filter(|c| c.is_diverging())
            .map(|c| c.name())
            .collect::<Vec<_>>(),
    })
}

/// Every colour map's table: `{name: base64 of BAR_COLOURS RGB triples}`.
fn colour_tables() -> serde_json::Map<String, serde_json::Value> {
    Colormap::ALL
        .iter()
        .map(|&cmap| (cmap.name().to_string(), colour_table(cmap).into()))
        .collect()
}

/// `cmap` at [`BAR_COLOURS`] even steps of t from 0 to 1, as RGB triples
/// in base64: the table the pages draw colour bars and maps with.
pub fn colour_table(cmap: Colormap) -> String {
    let colours: Vec<u8> = (0..BAR_COLOURS)
        .flat_map(|i| cmap.colour(i as f32 / (BAR_COLOURS - 1) as f32))
        .collect();
    base64(&colours)
}

/// Each map of block `block`: its picture (relative to the page), its
/// values' range, its filter's bias (null without one) and the range its
/// colours span, as the run drew it.
fn map_details(
    graph: &Graph,
    written: &[WrittenMaps],
    block: usize,
    drawing: Drawing,
) -> Vec<serde_json::Value> {
    let Some((folder, maps)) = written.get(block) else {
        return Vec::new();
    };
    let all = maps.iter().fold(
        (f32::INFINITY, f32::NEG_INFINITY),
        |(lo, hi), [min, max, _]| (lo.min(*min), hi.max(*max)),
    );
    let diverging = drawing.colormap.is_diverging();
    let bias = &graph.layer(block).bias;
    let count = maps.len() as u32;
    maps.iter()
        .enumerate()
        .map(|(k, &[min, max, mean])| {
            let file = Path::new(folder).join(feature_file_name(k as u32, count));
            let (lo, hi) = drawing.normalize.range((min, max), all, diverging);
            json!({
                "file": file.to_string_lossy(),
                "min": min,
                "max": max,
                "mean": mean,
                "bias": bias.get(k),
                "range": [lo, hi],
            })
        })
        .collect()
}
