//! `index.html`: one static page that shows a run. For one layer: the
//! photo, the parameter count, the grid of maps, the filters, and each
//! filter beside its map with its numbers; for a stack: the input, then
//! each layer top to bottom with its parameter count, shapes, grid and
//! filters, then the total. One stylesheet and one builder for both.
//!
//! The page is self-contained: inline CSS, no external resources, images
//! by relative file name, so it opens straight from the output folder
//! (`file://`) with no server. A few lines of inline script count the
//! images that loaded and write `N/M` to `data-images-loaded` on `<body>`
//! and to the end of the title, so a headless browser can check the page.
//! A live page also embeds its data, the shader and its script (see
//! [`super::live`]); without WebGPU or JavaScript it is the static page.

use std::fmt::Write;

/// Everything the page shows. Image fields are file names relative to the
/// page (e.g. `input.png`); an empty one leaves its picture out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    /// Page title and heading.
    pub title: String,
    /// The input photo, e.g. `input.png`.
    pub input_image: String,
    /// The parameter count as the question asks it, e.g. `(3·5·5 + 1)·32 = 2432`.
    pub parameter_line: String,
    /// The parameter count in words, e.g. `2400 weights + 32 biases`.
    pub parameter_detail: String,
    /// The layer's options, e.g. `32 filters of 5×5, stride 1, …`.
    pub layer_line: String,
    /// The layer as PyTorch writes it, e.g. `nn.Conv2d(3, 32, kernel_size=5)`.
    pub pytorch_line: String,
    /// The grid of all maps, e.g. `grid.png`.
    pub grid_image: String,
    /// The picture of all filters, e.g. `filters.png`.
    pub filters_image: String,
    /// One entry per filter, in filter order.
    pub maps: Vec<PageMap>,
    /// Whether the page computes its maps itself in a WebGPU browser.
    pub live: Live,
    /// A stack's layers, shown instead of one layer's grid, filters and
    /// maps (the fields above then describe the run: `parameter_line` the
    /// total, `layer_line` the input).
    pub stack: Option<StackPage>,
    /// The explorer's data ([`super::explore::explore_data`]): with it the
    /// page answers `window.convmaps.layers()` and `receptiveField`, and
    /// draws a hovered value's receptive field on the photo.
    pub explore: Option<String>,
    /// The layer a one-layer page's grid shows, for the explorer.
    pub layer_name: String,
    /// Whether the explorer frames receptive fields on the input picture
    /// (a photo's; a tensor's picture is a grid of its channels).
    pub frame_input: bool,
}

/// A stack's part of the page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StackPage {
    /// The stack as given to `--layers`.
    pub spec: String,
    /// Each layer, top to bottom.
    pub layers: Vec<StackLayer>,
    /// The run in one line: backend, adapter, shader, bands, time.
    pub total: String,
}

/// One layer of a stack on the page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StackLayer {
    /// Its name, e.g. `conv1`.
    pub name: String,
    /// What flows into it, e.g. `↓ the input's 3 channels`.
    pub arrow: String,
    /// Its items, e.g. `32x5 → relu → maxpool2`.
    pub items: String,
    /// Its parameter count, e.g. `(3·5·5 + 1)·32 = 2432`.
    pub parameter_line: String,
    /// Its shapes, e.g. `input [3, 64, 64] → output [32, 30, 30]`.
    pub shapes: String,
    /// Its conv as PyTorch writes it.
    pub pytorch_line: String,
    /// Its maps K.
    pub maps: u32,
    /// Its grid of maps, e.g. `conv1/grid.png`.
    pub grid_image: String,
    /// Its filters, e.g. `conv1/filters.png`.
    pub filters_image: String,
}

/// The page's live part.
#[derive(Clone, Debug, PartialEq)]
pub enum Live {
    /// A static page, with the reason shown in one line (empty: no line).
    Off(String),
    /// The data the page computes with, as JSON already safe inside
    /// `<script>` (see [`super::live::live_data`]).
    On(String),
}

impl Default for Live {
    /// A static page with no line about it.
    fn default() -> Self {
        Live::Off(String::new())
    }
}

/// One filter's row on the page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PageMap {
    /// Filter index k.
    pub index: u32,
    /// Its map, e.g. `feature_07.png`.
    pub image: String,
    /// A picture of the filter's weights, if the caller writes one.
    pub filter_image: Option<String>,
    /// Smallest raw value of the map.
    pub min: f32,
    /// Largest raw value of the map.
    pub max: f32,
    /// Mean raw value of the map.
    pub mean: f32,
    /// The filter's bias (`None`: a layer without bias).
    pub bias: Option<f32>,
}

/// `text` with `& < > " '` escaped, safe in element content and in quoted
/// attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A relative file name as a URL path: every byte outside `A–Z a–z 0–9
/// - . _ ~ /` percent-encoded, so names with spaces, `#` or `?` still load
/// from `file://`.
pub fn url_path(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// A map statistic for the page: four decimals for ordinary magnitudes,
/// scientific notation for very small or large ones.
pub fn format_value(value: f32) -> String {
    let magnitude = value.abs();
    if value.is_nan() {
        "NaN".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "∞" } else { "−∞" }.to_string()
    } else if value == 0.0 {
        "0".to_string()
    } else if (1e-3..1e5).contains(&magnitude) {
        format!("{value:.4}")
    } else {
        format!("{value:.3e}")
    }
}

pub(crate) const STYLE: &str = "\
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #222; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: 0.5em; word-break: break-all; }
h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
.top { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
.top figure { margin: 0; }
.top img { max-width: 360px; max-height: 360px; }
figcaption { font-size: 0.85em; color: #666; }
.parameters { font-family: ui-monospace, monospace; font-size: 2.4em; font-weight: bold; margin: 0.2em 0; }
.detail, .layer { font-size: 1.05em; margin: 0.3em 0; }
img.wide { max-width: 100%; height: auto; }
img.pixelated, .maps td.filter img { image-rendering: pixelated; }
table.maps { border-collapse: collapse; }
.maps th, .maps td { padding: 0.4em 0.8em; border-bottom: 1px solid #eee; text-align: left; vertical-align: middle; }
.maps td.num { font-family: ui-monospace, monospace; text-align: right; white-space: nowrap; }
.maps td.map img { max-width: 256px; max-height: 256px; }
.maps td.filter img { height: 96px; width: auto; }
.maps td.filter img { cursor: pointer; }
.live h2 { margin-top: 1em; }
.replan label, .view label { display: inline-block; margin: 0.2em 1em 0.2em 0; white-space: nowrap; }
.replan input { width: 4.5em; }
.view input[type=number] { width: 6em; }
.replan-note.error { color: #b00020; }
.command code { font-size: 0.95em; background: #f4f4f4; padding: 0.1em 0.3em; }
.live-row { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-end; margin: 0.5em 0; }
.live-row figure { margin: 0; }
.overlay { position: relative; display: inline-block; line-height: 0; }
.overlay canvas.photo { width: 360px; height: auto; }
.overlay canvas.map { position: absolute; left: 0; top: 0; width: 100%; height: 100%; image-rendering: pixelated; }
.colour-caption { font-size: 0.85em; color: #666; max-width: 256px; }
.filter-channels canvas { margin: 0 3px 3px 0; image-rendering: pixelated; }
.strip { margin: 0.3em 0; }
.strip canvas { width: 48px; height: auto; margin: 0 2px 2px 0; image-rendering: pixelated; }
.filter-editor canvas { width: 256px; height: auto; image-rendering: pixelated; }
.map-sums { font-family: ui-monospace, monospace; font-size: 0.9em; white-space: pre-wrap; }
.live-grid { display: flex; flex-wrap: wrap; gap: 0.5em; }
.live-grid figure { margin: 0; }
.live-grid canvas { width: 128px; height: auto; image-rendering: pixelated; cursor: crosshair; outline: 2px solid transparent; }
.live-grid canvas.selected { outline-color: #e6007e; }
.live-status { font-size: 1.05em; padding: 0.5em; background: #f4f4f4; }
.live-panel { position: fixed; right: 1em; top: 1em; max-height: 90vh; overflow: auto; background: #fff; border: 1px solid #ccc; padding: 0.5em 1em; font-size: 0.85em; }
.live-panel h3 { margin: 0.2em 0; }
.live-weights { border-collapse: collapse; margin: 0.3em 0; }
.live-weights input { width: 7em; font-family: ui-monospace, monospace; }
.live-bias input[type=number] { width: 7em; }
.live-sum { font-family: ui-monospace, monospace; }
.stack-layer, .stack-total { border: 1px solid #ccc; border-radius: 0.5em; padding: 1em; margin: 0.5em 0; }
.arrow { text-align: center; color: #666; margin: 0.25em; }
.items, .stack { font-family: ui-monospace, monospace; }
.pytorch code { font-size: 0.95em; background: #f4f4f4; padding: 0.1em 0.3em; }
.stack-layer .pictures { display: flex; gap: 1em; flex-wrap: wrap; align-items: flex-start; }
.stack-layer figure { margin: 0; }
.stack-layer h2 { margin-top: 0; }
.field-frame { position: relative; display: inline-block; line-height: 0; }
.map-overlay { position: absolute; left: 0; top: 0; width: 100%; height: 100%; image-rendering: pixelated; pointer-events: none; }
.field { position: absolute; border: 2px solid #e6007e; box-sizing: border-box; pointer-events: none; }
.field-note { display: block; min-height: 1.2em; font-size: 0.85em; color: #666; }
img[data-layer] { cursor: crosshair; }
.map-detail { position: fixed; right: 1em; top: 1em; max-width: 540px; max-height: 90vh; overflow: auto; background: #fff; border: 1px solid #ccc; padding: 0.5em 1em; font-size: 0.9em; }
.map-detail img { width: 512px; max-width: 100%; height: auto; image-rendering: pixelated; display: block; }
.map-detail button { float: right; }
.colour-bar canvas { width: 256px; height: 12px; display: block; margin-top: 0.5em; }
.colour-labels { display: flex; justify-content: space-between; width: 256px; font-family: ui-monospace, monospace; }
.stack-layer img { max-width: 100%; image-rendering: pixelated; }
";

const SCRIPT: &str = "\
window.addEventListener('load', function () {
  var images = document.getElementsByTagName('img');
  var loaded = 0;
  for (var i = 0; i < images.length; i++) {
    if (images[i].complete && images[i].naturalWidth > 0) { loaded++; }
  }
  var counted = loaded + '/' + images.length;
  document.body.dataset.imagesLoaded = counted;
  document.title = document.title + ' [' + counted + ' images loaded]';
});
";

/// An `<img>` for `name` with `alt` text and `class`.
fn img(name: &str, alt: &str, class: &str) -> String {
    img_followed(name, alt, class, ("", None))
}

/// An `<img>` for `name`, with `data-layer` (and `data-map`) for the
/// explorer to follow when `layer` is not empty.
fn img_followed(name: &str, alt: &str, class: &str, (layer, map): (&str, Option<u32>)) -> String {
    let mut data = String::new();
    if !layer.is_empty() {
        data = format!(" data-layer=\"{}\"", escape(layer));
        if let Some(map) = map {
            data.push_str(&format!(" data-map=\"{map}\""));
        }
    }
    format!(
        "<img src=\"{}\" alt=\"{}\" class=\"{}\"{data}>",
        escape(&url_path(name)),
        escape(alt),
        escape(class)
    )
}

/// The layer's PyTorch line in a paragraph marked `data-pytorch` (nothing
/// when there is none).
fn pytorch_paragraph(line: &str) -> String {
    if line.is_empty() {
        return String::new();
    }
    format!(
        "<p class=\"pytorch\" data-pytorch><code>{}</code></p>",
        escape(line)
    )
}

/// [`img_followed`] as a link to the picture itself.
fn linked_img(name: &str, alt: &str, class: &str, follow: (&str, Option<u32>)) -> String {
    format!(
        "<a href=\"{}\">{}</a>",
        escape(&url_path(name)),
        img_followed(name, alt, class, follow)
    )
}

/// The input photo's `<img>`; with the explorer, in a frame that the
/// hovered value's receptive field is drawn over, with a caption for it.
fn input_img(page: &Page, alt: &str) -> String {
    let image = img(&page.input_image, alt, "input");
    let note = "<span id=\"convmaps-field-note\" class=\"field-note\"></span>";
    match (&page.explore, page.frame_input) {
        (None, _) => image,
        (Some(_), false) => format!("{image}{note}"),
        (Some(_), true) => format!(
            "<span class=\"field-frame\">{image}<span id=\"convmaps-field\" class=\"field\" \
             hidden></span></span>{note}"
        ),
    }
}

/// The explorer's data and script.
fn write_explore(html: &mut String, page: &Page) {
    if let Some(data) = &page.explore {
        let _ = writeln!(
            html,
            "<div id=\"convmaps-detail\" class=\"map-detail\" hidden></div>\n\
             <script type=\"application/json\" id=\"convmaps-graph\">{data}</script>",
        );
        for script in super::explore::SCRIPTS {
            let _ = write!(html, "<script>\n{script}</script>\n");
        }
    }
}

/// The scripts both the explorer and the live part use (`view.js`), once.
fn write_shared_scripts(html: &mut String, page: &Page) {
    if page.explore.is_some() || matches!(page.live, Live::On(_)) {
        let _ = write!(html, "<script>\n{}</script>\n", super::VIEW_SCRIPT);
    }
}

/// The page for `page`, as one HTML document.
pub fn index_html(page: &Page) -> String {
    let mut html = String::new();
    let title = escape(&page.title);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>\n{STYLE}</style>\n</head>\n<body{}>\n<h1>{title}</h1>\n",
        body_live(&page.live)
    );

    match &page.stack {
        Some(stack) => write_stack(&mut html, page, stack),
        None => {
            write_top(&mut html, page);
            write_pictures(&mut html, page);
            if !page.maps.is_empty() {
                write_maps_table(&mut html, &page.maps, &page.layer_name);
            }
        }
    }
    let _ = write!(html, "<script>\n{SCRIPT}</script>\n");
    write_shared_scripts(&mut html, page);
    write_explore(&mut html, page);
    write_live(&mut html, &page.live);
    html.push_str("</body>\n</html>\n");
    html
}

/// The live part: a static page's reason, or the data, the shader and the
/// script that compute the maps in the browser.
fn write_live(html: &mut String, live: &Live) {
    match live {
        Live::Off(reason) if reason.is_empty() => {}
        Live::Off(reason) => {
            let _ = writeln!(
                html,
                "<p class=\"live-status\">Live editing is off for this page: {}.</p>",
                escape(reason)
            );
        }
        Live::On(data) => {
            let _ = write!(
                html,
                "<script type=\"application/json\" id=\"convmaps-data\">{data}</script>\n\
                 <script type=\"text/wgsl\" id=\"convmaps-wgsl\">\n{}</script>\n",
                super::live::SHADER,
            );
            for script in super::live::SCRIPTS {
                let _ = write!(html, "<script>\n{script}</script>\n");
            }
        }
    }
}

/// The `<body>` attribute of a static page: `data-live="static"`; a live
/// page's script sets it.
fn body_live(live: &Live) -> &'static str {
    match live {
        Live::Off(_) => " data-live=\"static\"",
        Live::On(_) => "",
    }
}

/// The photo and the parameter count with its numbers.
fn write_top(html: &mut String, page: &Page) {
    html.push_str("<section class=\"top\">\n");
    if !page.input_image.is_empty() {
        let _ = writeln!(
            html,
            "<figure>{}<figcaption>input: {}</figcaption></figure>",
            input_img(page, "the input photo"),
            escape(&page.input_image)
        );
    }
    html.push_str("<div>\n");
    let _ = writeln!(
        html,
        "<p class=\"parameters\">{}</p>",
        escape(&page.parameter_line)
    );
    for (class, text) in [
        ("detail", &page.parameter_detail),
        ("layer", &page.layer_line),
    ] {
        if !text.is_empty() {
            let _ = writeln!(html, "<p class=\"{class}\">{}</p>", escape(text));
        }
    }
    html.push_str(&pytorch_paragraph(&page.pytorch_line));
    html.push_str("</div>\n</section>\n");
}

/// The grid of all maps and the filters picture.
fn write_pictures(html: &mut String, page: &Page) {
    if !page.grid_image.is_empty() {
        let _ = writeln!(
            html,
            "<h2>Feature maps</h2>\n{}",
            linked_img(
                &page.grid_image,
                "all feature maps in a grid",
                "wide",
                (&page.layer_name, None)
            )
        );
    }
    if !page.filters_image.is_empty() {
        let _ = writeln!(
            html,
            "<h2>Filters</h2>\n<p>Each filter's weights, zero at mid-grey, on one scale for the \
             whole bank; its bias underneath. Filter i sits where map i sits in the grid.</p>\n\
             <a href=\"{}\">{}</a>",
            escape(&url_path(&page.filters_image)),
            img(
                &page.filters_image,
                "the filters' weights",
                "wide pixelated"
            )
        );
    }
}

/// Each filter beside its map, with the map's range and the filter's bias;
/// the explorer follows each map of layer `layer`.
fn write_maps_table(html: &mut String, maps: &[PageMap], layer: &str) {
    let with_filters = maps.iter().any(|m| m.filter_image.is_some());
    html.push_str("<h2>Each filter and its map</h2>\n<table class=\"maps\">\n<tr><th>filter</th>");
    if with_filters {
        html.push_str("<th>weights</th>");
    }
    html.push_str("<th>map</th><th>min</th><th>max</th><th>mean</th><th>bias</th></tr>\n");
    for map in maps {
        let k = map.index;
        let _ = write!(html, "<tr id=\"map-{k}\"><td class=\"num\">{k}</td>");
        if with_filters {
            html.push_str("<td class=\"filter\">");
            if let Some(name) = map.filter_image.as_deref().filter(|n| !n.is_empty()) {
                html.push_str(&img(name, &format!("filter {k}"), "filter"));
            }
            html.push_str("</td>");
        }
        html.push_str("<td class=\"map\">");
        if !map.image.is_empty() {
            let alt = format!("feature map {k}");
            html.push_str(&linked_img(&map.image, &alt, "map", (layer, Some(k))));
        }
        let bias = map.bias.map_or("none".to_string(), format_value);
        let _ = writeln!(
            html,
            "</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&format_value(map.min)),
            escape(&format_value(map.max)),
            escape(&format_value(map.mean)),
            escape(&bias)
        );
    }
    html.push_str("</table>\n");
}

/// A stack's part: the spec and the input, each layer in a box with an
/// arrow before it, then the whole stack's count and run.
fn write_stack(html: &mut String, page: &Page, stack: &StackPage) {
    let _ = writeln!(
        html,
        "<p class=\"stack\">--layers {}</p>\n<section class=\"stack-layer\"><h2>input</h2><p>{}</p>{}</section>",
        escape(&stack.spec),
        escape(&page.layer_line),
        input_img(page, "the input")
    );
    for layer in &stack.layers {
        let _ = writeln!(
            html,
            "<div class=\"arrow\">{}</div>\n<section class=\"stack-layer\"><h2>{}</h2>\
             <p class=\"items\">{}</p><p class=\"parameters\">{} parameters</p><p>{}</p>{}\
             <div class=\"pictures\"><figure>{}<figcaption>the {} maps</figcaption></figure>\
             <figure>{}<figcaption>its filters</figcaption></figure></div></section>",
            escape(&layer.arrow),
            escape(&layer.name),
            escape(&layer.items),
            escape(&layer.parameter_line),
            escape(&layer.shapes),
            pytorch_paragraph(&layer.pytorch_line),
            img_followed(
                &layer.grid_image,
                &format!("feature maps of {}", layer.name),
                "grid",
                (&layer.name, None)
            ),
            layer.maps,
            img(
                &layer.filters_image,
                &format!("filters of {}", layer.name),
                "filters"
            ),
        );
    }
    let _ = writeln!(
        html,
        "<section class=\"stack-total\"><h2>the whole stack</h2>\
         <p class=\"parameters\">{} parameters</p><p>{}</p></section>",
        escape(&page.parameter_line),
        escape(&stack.total)
    );
}
