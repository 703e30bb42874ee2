//! The explorer part of `index.html`: the graph's layers and every step's
//! windows, embedded as data, and the script (`explore.js`) that answers
//! `window.convmaps.layers()` and `receptiveField(name, x, y)` and draws a
//! hovered value's receptive field on the photo. `graph::field` is its
//! native twin.

use serde_json::json;

use super::grid::GridLayout;
use super::grid_tile_size;
use super::live::script_json;
use crate::graph::Graph;
use crate::graph::field::Window;

/// The page's script: plain JavaScript, no build step.
pub const SCRIPT: &str = include_str!("explore.js");

/// The data `explore.js` reads, as JSON safe inside `<script>`: the input
/// `[C, H, W]` and whether it is a photo (whose picture on the page the
/// receptive fields are framed on; a tensor's is a grid of its channels);
/// per step its input `[C, H, W]` and its windows along rows
/// and columns; per block (layer) its name, op, maps `[K, OH, OW]`,
/// parameters, last step and the layout of its grid picture.
pub fn explore_data(graph: &Graph, photo: bool) -> String {
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
            json!({
                "name": graph.blocks[block].name,
                "op": "conv",
                "shape": [maps, height, width],
                "parameters": graph.layer(block).parameters().total,
                "lastStep": graph.blocks[block].steps.end - 1,
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
            })
        })
        .collect();
    let data = json!({"input": graph.input(), "photo": photo, "steps": steps, "layers": layers});
    script_json(&data.to_string())
}
