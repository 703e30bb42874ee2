//! The page of a whole-network run: the photo as the model saw it, the
//! top classes as bars, where the model looked (CAM), then every node whose
//! maps were written, in the order the model runs them, with its op, output
//! shape, parameters and grid of maps. One file that opens from disk; every
//! name from the model is escaped.

use std::fmt::Write;

use super::model_detail::PageDetail;
use crate::render::explore::{DETAIL_SCRIPT, STRIPS_SCRIPT};
use crate::render::explore::{colour_table, view_json};
use crate::render::grid::GridLayout;
use crate::render::html::{STYLE, escape, url_path};
use crate::render::live::script_json;
use crate::render::{GRID_GAP, grid_tile_size};
use crate::render::{VIEW_SCRIPT, arithmetic};
use crate::report::model::{ModelSummary, flops_text};

/// The page as one HTML document. `has_file(folder, name)` says whether a
/// node's folder holds a file (`filters.png`, `overlay.png`).
pub fn model_html(
    summary: &ModelSummary,
    has_file: impl Fn(&str, &str) -> bool,
    detail: &PageDetail,
) -> String {
    let name = summary
        .model
        .path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let title = escape(&format!("{name} on {}", summary.input.path.display()));
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>\n{STYLE}.bar {{ background: #4a7fd4; height: 1em; display: inline-block; vertical-align: middle; }}\n\
         .classes td {{ padding: 0.2em 0.6em; }}\n\
         .view {{ width: 224px; height: auto; image-rendering: pixelated; }}\n</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );
    let model = &summary.model;
    let _ = writeln!(
        html,
        "<p class=\"layer\">{} nodes ran ({} folded at load, {} fused), {} parameters, {} per photo; input {:?} ({}).</p>",
        model.nodes,
        model.folded,
        model.fused,
        model.parameters,
        flops_text(model.flops),
        model.input_shape,
        model.layout.name()
    );
    write_top(&mut html, summary);
    write_overview(&mut html, summary);
    html.push_str("<h2>Maps, in the order the model computes them</h2>\n");
    for node in summary.nodes.iter().filter(|n| n.folder.is_some()) {
        let folder = node.folder.as_deref().unwrap_or_default();
        let shape: Vec<String> = node.shape.iter().map(usize::to_string).collect();
        let _ = write!(
            html,
            "<div class=\"stack-layer\" data-node=\"{}\">\n<h2>{} <small>{} → [{}], {} parameters</small></h2>\n<div class=\"pictures\">\n\
             <figure><img src=\"{}/grid.png\" alt=\"maps of {}\" loading=\"lazy\" data-grid=\"{}\"{}><figcaption>its maps</figcaption></figure>\n",
            escape(&node.name),
            escape(&node.name),
            escape(&node.op),
            shape.join(", "),
            node.parameters,
            url_path(folder),
            escape(&node.name),
            escape(&node.name),
            grid_size(&node.shape)
        );
        if node.op != "Conv" && has_file(folder, "overlay.png") {
            let _ = writeln!(
                html,
                "<figure><img src=\"{}/overlay.png\" alt=\"{} over the photo\" loading=\"lazy\"><figcaption>over the photo</figcaption></figure>",
                url_path(folder),
                escape(&node.name)
            );
        }
        if has_file(folder, "filters.png") {
            let _ = writeln!(
                html,
                "<figure><img src=\"{}/filters.png\" alt=\"filters of {}\" loading=\"lazy\"><figcaption>its filters</figcaption></figure>",
                url_path(folder),
                escape(&node.name)
            );
        }
        html.push_str("</div>\n</div>\n");
    }
    html.push_str("<div id=\"convmaps-detail\" class=\"map-detail\" hidden></div>\n");
    write_script(&mut html, summary, detail);
    html.push_str("</body>\n</html>\n");
    html
}

/// Every node that ran, in order, with what it reads in words: where the
/// graph merges (an Add of two computed values, a Concat) the page says so.
fn write_overview(html: &mut String, summary: &ModelSummary) {
    let computed: std::collections::HashSet<&str> = summary
        .nodes
        .iter()
        .flat_map(|n| n.outputs.iter().map(String::as_str))
        .collect();
    html.push_str("<h2>Every node, in the order it runs</h2>\n<details><summary>");
    let _ = write!(
        html,
        "{} nodes</summary>\n<table class=\"maps\">\n",
        summary.nodes.len()
    );
    html.push_str(
        "<tr><th>node</th><th>op</th><th>output</th><th>parameters</th><th>reads</th></tr>\n",
    );
    for node in &summary.nodes {
        let reads: Vec<&str> = node
            .inputs
            .iter()
            .map(String::as_str)
            .filter(|i| computed.contains(i) || *i == summary.model.input_name)
            .collect();
        let said = match (node.op.as_str(), reads.len()) {
            ("Add", 2) => format!("adds {} and {}", reads[0], reads[1]),
            ("Concat", n) => format!("concatenates {n} branches: {}", reads.join(", ")),
            (_, _) => reads.join(", "),
        };
        let shape: Vec<String> = node.shape.iter().map(usize::to_string).collect();
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">[{}]</td><td class=\"num\">{}</td><td>{}</td></tr>",
            escape(&node.name),
            escape(&node.op),
            shape.join(", "),
            node.parameters,
            escape(&said)
        );
    }
    html.push_str("</table>\n</details>\n");
}

/// The page's data (every node with its maps and, for a conv that fits,
/// its arithmetic; the inputs those convs read; the top classes; the colour
/// map) and its scripts.
fn write_script(html: &mut String, summary: &ModelSummary, detail: &PageDetail) {
    let layers: Vec<serde_json::Value> = summary
        .nodes
        .iter()
        .map(|n| {
            let mut layer = serde_json::json!({
                "name": n.name,
                "op": n.op,
                "shape": n.shape,
                "parameters": n.parameters,
                "folder": n.folder,
                "reads": n.inputs,
                "field": n.field,
                "grid": n.folder.as_ref().and_then(|_| grid_of(&n.shape)),
                "maps": detail.maps.get(&n.name).map(|maps| short_maps(maps)),
                "strip": detail.strips.get(&n.name),
            });
            match detail.convs.get(&n.name) {
                Some(Ok(conv)) => layer["conv"] = conv.clone(),
                Some(Err(why)) => layer["noArithmetic"] = why.clone().into(),
                None => {}
            }
            layer
        })
        .collect();
    let top = summary
        .outputs
        .iter()
        .find(|o| !o.top.is_empty())
        .map_or(&[][..], |o| &o.top);
    let input = &summary.model.input_shape;
    let size = match input[..] {
        [_, _, h, w] if summary.model.layout == crate::net::Layout::Nchw => [h, w],
        [_, h, w, _] => [h, w],
        _ => [0, 0],
    };
    let colormap = detail.drawing.colormap;
    let data = serde_json::json!({
        "layers": layers,
        "top": top,
        "input": size,
        "inputs": detail.inputs,
        "colormap": colormap.name(),
        "colours": colour_table(colormap),
        "view": view_json(detail.drawing),
    });
    let _ = writeln!(
        html,
        "<script type=\"application/json\" id=\"convmaps-model\">{}</script>",
        script_json(&data.to_string()),
    );
    for script in [
        VIEW_SCRIPT,
        arithmetic::SCRIPT,
        DETAIL_SCRIPT,
        STRIPS_SCRIPT,
        SCRIPT,
    ] {
        let _ = write!(html, "<script>\n{script}</script>\n");
    }
}

/// Each map's `[min, max, mean]` to six significant digits, enough for the
/// page's words and colour bars, and a third of the page's size for a
/// network of thousands of maps.
fn short_maps(maps: &[[f32; 3]]) -> serde_json::Value {
    let short = |v: f32| -> serde_json::Value {
        format!("{v:.5e}")
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map_or(serde_json::Value::Null, Into::into)
    };
    maps.iter()
        .map(|map| serde_json::Value::Array(map.iter().map(|&v| short(v)).collect()))
        .collect()
}

/// Where each map lies in a node's `grid.png` (as the grid was drawn), for
/// the page to find the map and pixel under the pointer.
fn grid_of(shape: &[usize]) -> Option<serde_json::Value> {
    let [maps, height, width] = crate::net::array::maps_shape(shape)?;
    let (tile_width, tile_height) = grid_tile_size(maps, width, height);
    let grid = GridLayout::new(maps, tile_width, tile_height);
    Some(serde_json::json!({
        "columns": grid.columns,
        "cellWidth": grid.cell_width,
        "cellHeight": grid.cell_height,
        "gap": GRID_GAP,
        "width": grid.width,
        "height": grid.height,
        "maps": maps,
        "mapWidth": width,
        "mapHeight": height,
    }))
}

/// ` width="…" height="…"` of a node's grid picture, so that the page
/// lays it out (and finds the map under the pointer) before it loads.
fn grid_size(shape: &[usize]) -> String {
    grid_of(shape).map_or_else(String::new, |grid| {
        format!(" width=\"{}\" height=\"{}\"", grid["width"], grid["height"])
    })
}

/// The page's script (`src/render/model.js`).
const SCRIPT: &str = include_str!("../render/model.js");

/// The photo, the top classes and the CAM of each.
fn write_top(html: &mut String, summary: &ModelSummary) {
    html.push_str(
        "<div class=\"top\">\n<figure><span class=\"field-frame\"><img src=\"input.png\" \
         alt=\"the photo as the model saw it\" class=\"view\" id=\"convmaps-input\"><span \
         id=\"convmaps-field\" class=\"field\" hidden></span></span><figcaption>the photo as the \
         model saw it; hover a map to frame the pixels it depends on</figcaption></figure>\n",
    );
    for output in summary.outputs.iter().filter(|o| !o.top.is_empty()) {
        let _ = writeln!(
            html,
            "<table class=\"classes\"><caption>top {} of {}</caption>",
            output.top.len(),
            escape(&output.name)
        );
        for class in &output.top {
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td class=\"num\">{:.1}%</td><td><span class=\"bar\" style=\"width: {:.0}px\"></span></td></tr>",
                escape(&class.label),
                class.probability * 100.0,
                (class.probability * 200.0).max(1.0)
            );
        }
        html.push_str("</table>\n");
    }
    for cam in &summary.cams {
        let _ = writeln!(
            html,
            "<figure><img src=\"{}\" alt=\"where the model looked for {}\" class=\"view\" data-cam=\"{}\"><figcaption>where it looked for {} (CAM from {})</figcaption></figure>",
            url_path(&cam.file),
            escape(&cam.label),
            cam.class,
            escape(&cam.label),
            escape(&cam.maps)
        );
    }
    html.push_str("</div>\n");
}
