//! What a person looks at: the colour maps, the labelled grid, filters.png
//! and index.html, which must open offline with every image loaded (checked
//! in headless Chromium).

mod common;

use std::path::{Path, PathBuf};

use convmaps::npy;
use std::process::Command;
use std::time::{Duration, Instant};

/// The 40×30 photo at `path`: a bright red square (x 10..30, y 7..22) on a
/// dark ground.
fn photo_at(path: &Path) -> PathBuf {
    common::save_photo(path, 40, 30)
}

/// Runs the 40×30 photo on the CPU with `options` (split at spaces) in a
/// fresh folder; returns the folder, kept while it lives, and the run's
/// output directory in it.
fn run(options: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let photo = photo_at(&dir.path().join("square.png"));
    let out = run_photo(&photo, &dir.path().join("out"), options);
    (dir, out)
}

/// Runs `photo` on the CPU with `options` (split at spaces) into `out`,
/// which it returns.
fn run_photo(photo: &Path, out: &Path, options: &str) -> PathBuf {
    common::convmaps([photo])
        .out(out)
        .cpu()
        .args(options.split(' '))
        .success();
    out.to_path_buf()
}

#[test]
fn rdbu_colours_the_sign_of_each_value() {
    // Identity filters (zero bias): map 0 is the red channel, 230/255 inside
    // the square and 20/255 outside, drawn on a fixed −1..1 scale.
    let (_dir, out) = run("--init identity -k 3 -f 1 --colormap rdbu --normalize -1,1");
    let map = image::open(out.join("feature_00.png")).unwrap().to_rgb8();
    let inside = map.get_pixel(20, 15).0;
    let outside = map.get_pixel(2, 2).0;
    assert!(
        inside[0] > 100 && inside[0] > 2 * inside[2],
        "inside {inside:?} should be red"
    );
    assert!(
        outside.iter().all(|&c| c > 200),
        "outside {outside:?} should be near white"
    );
}

#[test]
fn gray_per_map_feature_pngs_stay_8_bit_grey_and_viridis_is_rgb() {
    let (_gray_dir, gray) = run("-k 2");
    assert_eq!(
        image::open(gray.join("feature_00.png")).unwrap().color(),
        image::ColorType::L8
    );
    let (_viridis_dir, viridis) = run("-k 2 --colormap viridis");
    let map = image::open(viridis.join("feature_00.png")).unwrap();
    assert_eq!(map.color(), image::ColorType::Rgb8);
}

#[test]
fn grid_and_filters_pictures_exist_with_one_cell_per_filter() {
    let (_dir, out) = run("-k 10 --init mixed");
    let grid = image::open(out.join("grid.png")).unwrap();
    let filters = image::open(out.join("filters.png")).unwrap();
    // 10 maps in a 4×3 grid: wider than tall, like the filters picture.
    assert!(
        grid.width() > grid.height(),
        "{}×{}",
        grid.width(),
        grid.height()
    );
    assert!(
        filters.width() > filters.height(),
        "{}×{}",
        filters.width(),
        filters.height()
    );
    for k in 0..10 {
        assert!(out.join(format!("filters/filter_{k:02}.png")).exists());
    }
}

fn chromium() -> Option<PathBuf> {
    let found = [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists());
    if found.is_none() {
        let required = std::env::var("REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "REQUIRE_BROWSER=1 but no Chromium at /usr/bin/chromium (apt-get install chromium)"
        );
        eprintln!("skipped: no Chromium");
    }
    found
}

#[test]
fn index_html_opens_offline_with_every_image_loaded() {
    let (_dir, out) = run("-k 6 --init gabor --colormap viridis");
    let html = page(&out);
    assert!(
        html.contains("(3·5·5 + 1)·6 = 456"),
        "the page states the parameter count"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page must not reach out"
    );
    let Some(browser) = chromium() else { return };
    let (dom, _) = open_page(&browser, &out, "", &["--virtual-time-budget=10000"]);
    // input, grid, filters, and for each of 6 filters its map and its picture.
    let expected = 3 + 2 * 6;
    assert!(
        dom.contains(&format!("data-images-loaded=\"{expected}/{expected}\"")),
        "not every image loaded:\n{}",
        dom.lines()
            .find(|l| l.contains("data-images-loaded"))
            .unwrap_or("(no counter in the DOM)")
    );
    // No WebGPU adapter without the flag: the static page, saying so.
    assert!(dom.contains("data-live=\"static\""), "{}", body_line(&dom));
    assert!(dom.contains("Live editing needs a browser with WebGPU"));
}

/// Opens `out/index.html` with `fragment` (e.g. `#selftest`) in headless
/// Chromium with `flags`; returns the DOM after the page's scripts ran and
/// how long the browser took.
fn open_page(browser: &Path, out: &Path, fragment: &str, flags: &[&str]) -> (String, Duration) {
    let profile = tempfile::tempdir().unwrap();
    let page = out.join("index.html").canonicalize().unwrap();
    let url = format!(
        "file://{}",
        convmaps::render::html::url_path(&page.display().to_string())
    );
    let started = Instant::now();
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--dump-dom",
        ])
        .args(flags)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url + fragment)
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        elapsed,
    )
}

/// The `<body …>` line of a dumped DOM, for messages.
fn body_line(dom: &str) -> &str {
    dom.lines()
        .find(|l| l.contains("<body"))
        .unwrap_or("(no body in the DOM)")
}

/// The self-test's verdict from the dumped DOM's title: the worst relative
/// error of `selftest ok <error>`, or the whole title as the failure.
fn self_test_error(dom: &str) -> Result<f64, String> {
    let title = dom
        .split("<title>")
        .nth(1)
        .and_then(|rest| rest.split("</title>").next())
        .unwrap_or("(no title)");
    title
        .strip_prefix("selftest ok ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|error| error.parse().ok())
        .ok_or_else(|| title.to_string())
}

/// WebGPU in headless Chromium: with this flag it runs compute on its own
/// software GPU. A timer in the page holds the virtual clock while the GPU
/// works, so the budget only bounds a page that never finishes.
const WEBGPU: [&str; 2] = ["--enable-unsafe-webgpu", "--virtual-time-budget=100000000"];

/// Opens `out/index.html#selftest` with WebGPU, asserts that the page's
/// maps are within 1e-5 of the native ones, and returns the DOM.
fn assert_self_test_passes(browser: &Path, out: &Path) -> String {
    let (dom, took) = open_page(browser, out, "#selftest", &WEBGPU);
    let error = self_test_error(&dom).unwrap_or_else(|title| panic!("self-test: {title}"));
    eprintln!("self-test in headless Chromium: {took:?}, worst relative error {error:e}");
    assert!(error <= 1e-5, "worst relative error {error}");
    dom
}

/// The `index.html` a run wrote into `out`.
fn page(out: &Path) -> String {
    std::fs::read_to_string(out.join("index.html")).unwrap()
}

#[test]
fn live_page_computes_the_native_maps_on_webgpu() {
    let (_dir, out) = run("-k 4 -f 3 --init gabor");
    let html = page(&out);
    assert!(
        html.contains(include_str!("../shaders/conv2d_direct.wgsl")),
        "the page embeds the shader verbatim"
    );
    assert!(html.contains("id=\"convmaps-data\""));
    let Some(browser) = chromium() else { return };
    let dom = assert_self_test_passes(&browser, &out);
    assert!(dom.contains("data-live=\"webgpu\""), "{}", body_line(&dom));
}

#[test]
fn a_photo_path_with_markup_is_shown_as_text() {
    let dir = tempfile::tempdir().unwrap();
    // `/` separates folders, so the tag text runs across them.
    let folder = dir.path().join("x<").join("script><script>alert(1)<");
    std::fs::create_dir_all(&folder).unwrap();
    let photo = photo_at(&folder.join("script>.png"));
    assert!(
        photo
            .display()
            .to_string()
            .contains("x</script><script>alert(1)</script>.png")
    );
    let out = run_photo(&photo, &dir.path().join("out"), "-k 2 -f 3");
    let html = page(&out);
    assert!(
        !html.contains("alert(1)</script>"),
        "the path ends no script"
    );
    assert!(html.contains("x&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;.png"));
    assert!(html.contains("x\\u003c/script>\\u003cscript>alert(1)\\u003c/script>.png"));
    // The counter, view.js, the explorer's data and scripts, the live
    // data, the shader and the live scripts: no other.
    let scripts =
        3 + convmaps::render::explore::SCRIPTS.len() + 2 + convmaps::render::live::SCRIPTS.len();
    assert_eq!(html.matches("<script").count(), scripts);
    let Some(browser) = chromium() else { return };
    let dom = assert_self_test_passes(&browser, &out);
    assert!(!dom.contains("alert(1)</script>.png"));
}

#[test]
fn live_page_follows_every_option_of_the_geometry() {
    let Some(browser) = chromium() else { return };
    let options = "-k 6 -f 5x3 --stride 2 --padding 3 --dilation 2 --groups 3 --activation relu";
    let (_dir, out) = run(options);
    assert_self_test_passes(&browser, &out);
}

/// What the page at `out` answers to `#layer=<options>` (setLayer on
/// load), with JavaScript but without WebGPU, and its DOM.
fn replanned(browser: &Path, out: &Path, options: &str) -> (String, String) {
    let fragment = format!("#layer={}", convmaps::render::html::url_path(options));
    let (dom, _) = open_page(browser, out, &fragment, &["--virtual-time-budget=10000"]);
    let answer = dom
        .split("data-replanned=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no answer to {options}: {}", body_line(&dom)))
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    (answer, dom)
}

#[test]
fn a_replanned_layer_is_the_layer_its_command_line_makes() {
    let (dir, out) = run("-k 4 -f 3");
    let Some(browser) = chromium() else { return };
    for (options, weights, formula) in [
        (
            r#"{"filters":6,"kernel":"5x3","stride":2,"padding":1,"dilation":2,"groups":3,"seed":9}"#,
            "random: kaiming-uniform (seed 9)",
            "(3/3·5·3 + 1)·6 = 96",
        ),
        (
            r#"{"filters":8,"kernel":4,"padding":"same","init":"gabor"}"#,
            "gabor",
            "(3·4·4 + 1)·8 = 392",
        ),
    ] {
        let (answer, dom) = replanned(&browser, &out, options);
        let answer: serde_json::Value =
            serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"));
        assert_eq!(answer["formula"], formula, "C/G·FH·FW + 1 per filter");
        assert_eq!(answer["weights"], weights);
        // Without WebGPU the texts still follow: the formula and the PyTorch line.
        assert!(dom.contains("data-live=\"static\""), "{}", body_line(&dom));
        let pytorch = answer["pytorch"].as_str().unwrap();
        assert!(dom.contains(&format!("<code>{pytorch}</code>")));
        assert!(dom.contains(&format!("<p class=\"parameters\">{formula}</p>")));
        // The command it gives, run natively, makes the same layer.
        let command = answer["command"].as_str().unwrap();
        let words: Vec<&str> = command.split(' ').collect();
        assert_eq!(words[0], "convmaps", "{command}");
        let native = dir.path().join(format!("native_{}", answer["parameters"]));
        common::convmaps(&words[1..]).out(&native).cpu().success();
        let summary = common::read_summary(&native);
        assert_eq!(summary["parameter_formula"], answer["formula"]);
        assert_eq!(summary["layer"]["pytorch"], answer["pytorch"]);
        assert_eq!(summary["output"]["width"], answer["outputWidth"]);
        assert_eq!(summary["output"]["height"], answer["outputHeight"]);
        assert_eq!(summary["parameters"]["total"], answer["parameters"]);
        assert_eq!(summary["layer"]["weights_source"], weights);
    }
}

#[test]
fn a_layer_the_photo_cannot_take_is_not_replanned_and_the_page_says_why() {
    let (_dir, out) = run("-k 4 -f 3");
    let Some(browser) = chromium() else { return };
    for (options, reason) in [
        (
            r#"{"groups":2}"#,
            "error: groups 2 must divide the 3 input channels and the 4 filters",
        ),
        (
            r#"{"kernel":15,"dilation":4}"#,
            "error: a 15×15 kernel with dilation 4 spans 57×57 pixels, more than the padded 40×30 input",
        ),
        (
            r#"{"stride":0}"#,
            "error: stride 0 is not a whole number from 1 to 8",
        ),
        (
            r#"{"padding":"same","stride":2}"#,
            "error: padding 'same' needs stride 1 (got 2), as in PyTorch",
        ),
    ] {
        let (answer, dom) = replanned(&browser, &out, options);
        assert_eq!(answer, reason, "{options}");
        assert!(dom.contains("Not re-planned:"), "{options}");
        assert!(
            dom.contains("<p class=\"parameters\">(3·3·3 + 1)·4 = 112</p>"),
            "the run's formula stays: {options}"
        );
    }
}

#[test]
fn live_part_is_off_when_the_photo_is_not_read_as_plain_rgb() {
    let (_dir, out) = run("-k 2 --input-scale 255");
    let html = page(&out);
    assert!(html.contains("<body data-live=\"static\">"));
    assert!(html.contains("Live editing is off for this page: the layer reads the photo"));
    assert!(!html.contains("convmaps-data"));
}

/// The explorer's answers on the page at `out` (`#explore-check`): its
/// `layers()`, receptive fields and hovered values, from the title.
fn explorer_answers(browser: &Path, out: &Path) -> serde_json::Value {
    let (dom, _) = open_page(
        browser,
        out,
        "#explore-check",
        &["--virtual-time-budget=10000"],
    );
    let title = dom
        .split("<title>explore ")
        .nth(1)
        .and_then(|rest| rest.split("</title>").next())
        .unwrap_or_else(|| panic!("no explorer answers in the title: {}", body_line(&dom)));
    serde_json::from_str(title).unwrap_or_else(|e| panic!("{e}: {title}"))
}

#[test]
fn the_explorer_gives_each_layer_and_its_receptive_fields_as_the_graph_does() {
    use convmaps::graph::{Graph, StackOptions, spec};
    let spec_text = "4x3,relu,maxpool2,5x3/s2/p1,relu";
    let (_dir, out) = run(&format!("--layers {spec_text}"));
    let html = page(&out);
    assert!(html.contains("id=\"convmaps-graph\"") && html.contains("data-layer=\"conv2\""));
    let Some(browser) = chromium() else { return };
    let answers = explorer_answers(&browser, &out);
    let summary = common::read_summary(&out);
    let listed: Vec<(String, serde_json::Value)> = summary["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_string(),
                l["output_shape"].clone(),
            )
        })
        .collect();
    let shown: Vec<(String, serde_json::Value)> = answers["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["name"].as_str().unwrap().to_string(), l["shape"].clone()))
        .collect();
    assert_eq!(shown, listed, "layers() against summary.json");

    let options = StackOptions {
        bias: true,
        init: convmaps::banks::Init::Random,
        seed: 0,
        model: None,
        fold_bn: None,
        max_pixels: 1 << 30,
    };
    let input = convmaps::resolve::InputShape {
        channels: 3,
        photo: true,
        height: 30,
        width: 40,
    };
    let graph = Graph::resolve(&spec::parse(spec_text, false).unwrap(), input, &options).unwrap();
    let fields = answers["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 6);
    for field in fields {
        let block = graph
            .blocks
            .iter()
            .position(|b| b.name == field["name"].as_str().unwrap())
            .unwrap();
        let at = |key: &str| field[key].as_u64().unwrap() as u32;
        let expected = graph
            .receptive_field(block, at("x"), at("y"))
            .map(|[x0, y0, x1, y1]| serde_json::json!({"x0": x0, "y0": y0, "x1": x1, "y1": y1}));
        assert_eq!(
            field["field"],
            expected.unwrap_or(serde_json::Value::Null),
            "{field}"
        );
    }
    // Opened large: the last layer's last map, with its values and range.
    let opened = &answers["opened"];
    let last = summary["layers"].as_array().unwrap().last().unwrap();
    let k = last["output_shape"][0].as_u64().unwrap() as usize - 1;
    assert_eq!(opened["map"], k as u64);
    assert_eq!(opened["file"], format!("conv2/feature_{k:02}.png"));
    assert_eq!(answers["shown"], opened["file"]);
    assert!(out.join(opened["file"].as_str().unwrap()).exists());
    // The same f32 values (the page writes them as f64).
    let f32_of = |value: &serde_json::Value| value.as_f64().unwrap() as f32;
    for stat in ["min", "max", "mean"] {
        assert_eq!(
            f32_of(&opened[stat]),
            f32_of(&last["maps"][k][stat]),
            "{stat}"
        );
    }
    let range = [f32_of(&opened["range"][0]), f32_of(&opened["range"][1])];
    let (min, max) = (
        f32_of(&last["maps"][k]["min"]),
        f32_of(&last["maps"][k]["max"]),
    );
    assert_eq!(range, [min, max], "each map over its own range");
    assert!(opened["bias"].is_number());
    // The pointer at the middle of a layer's last map finds that map's middle.
    for hovered in answers["hovered"].as_array().unwrap() {
        let name = hovered["name"].as_str().unwrap();
        let block = graph.blocks.iter().position(|b| b.name == name).unwrap();
        let [maps, height, width] = graph.block_output(block);
        let value = &hovered["value"];
        assert_eq!(value["map"], maps - 1, "{hovered}");
        let near =
            |got: &serde_json::Value, want: u32| got.as_i64().unwrap().abs_diff(want as i64) <= 1;
        assert!(
            near(&value["x"], width / 2) && near(&value["y"], height / 2),
            "{hovered}"
        );
    }
}

#[test]
fn a_one_layer_page_follows_its_grid_and_each_map_picture() {
    let (_dir, out) = run("-k 3 -f 3 --stride 2 --raw");
    let Some(browser) = chromium() else { return };
    let answers = explorer_answers(&browser, &out);
    let hovered = answers["hovered"].as_array().unwrap();
    // The grid's last map, then each map's own picture, at their middles:
    // the 40×30 photo, 3×3 stride 2, gives maps of 19×14.
    let maps: Vec<u64> = hovered
        .iter()
        .map(|h| h["value"]["map"].as_u64().unwrap())
        .collect();
    assert_eq!(maps, [2, 0, 1, 2], "{hovered:?}");
    for value in hovered.iter().map(|h| &h["value"]) {
        let (x, y) = (value["x"].as_i64().unwrap(), value["y"].as_i64().unwrap());
        assert!((x - 9).abs() <= 1 && (y - 7).abs() <= 1, "{value}");
    }
    let field = &answers["fields"][2]["field"];
    assert_eq!(
        field,
        &serde_json::json!({"x0": 18, "y0": 14, "x1": 20, "y1": 16})
    );
    // A map opened large shows its arithmetic from the live part's exact
    // values, and its editor recomputes it.
    let sums = answers["sums"].as_array().unwrap();
    assert_eq!(sums.len(), 2 * 3, "two maps, three points each");
    let folder_of = |_: &serde_json::Value| out.clone();
    assert_sums_are_the_runs(sums, folder_of);
    assert_the_editor_recomputes_the_map(&answers["edited"], "conv1", folder_of);
}

#[test]
fn a_tensor_inputs_page_names_receptive_fields_without_framing_its_channel_grid() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("maps.npy");
    convmaps::npy::write_f32_nd(&input, &[3, 12, 10], &[0.5; 360]).unwrap();
    let out = dir.path().join("out");
    common::convmaps([&input])
        .args(["--layers", "2x3,relu,2x3"])
        .cpu()
        .out(&out)
        .success();
    let html = page(&out);
    assert!(html.contains("id=\"convmaps-graph\"") && html.contains("convmaps-field-note"));
    assert!(
        !html.contains("id=\"convmaps-field\""),
        "input.png of a tensor is a grid of its channels, not the input's pixels"
    );
}

#[test]
fn a_model_page_lists_every_node_and_the_top_classes() {
    let dir = tempfile::tempdir().unwrap();
    let photo = common::save_photo(&dir.path().join("photo.png"), 48, 40);
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/net/resnet_dy/model.onnx");
    let out = dir.path().join("out");
    common::convmaps([&photo])
        .arg("--model")
        .arg(&model)
        .arg("--raw")
        .out(&out)
        .cpu()
        .success();
    let summary = common::read_summary(&out);
    let html = page(&out);
    assert!(
        html.contains("adds "),
        "the overview says where a residual is added"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page must not reach out"
    );
    let Some(browser) = chromium() else { return };
    let (dom, _) = open_page(
        &browser,
        &out,
        "#model-check",
        &["--virtual-time-budget=10000"],
    );
    let title = dom
        .split("<title>")
        .nth(1)
        .and_then(|rest| rest.split("</title>").next())
        .expect("a title");
    let json = title
        .strip_prefix("model ")
        .unwrap_or_else(|| panic!("the page's check did not run: {title}"))
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    let checked: serde_json::Value = serde_json::from_str(&json).expect("the title holds JSON");
    let layers = checked["layers"].as_array().expect("layers");
    let nodes = summary["nodes"].as_array().expect("nodes");
    assert_eq!(layers.len(), nodes.len());
    for (layer, node) in layers.iter().zip(nodes) {
        assert_eq!(layer["name"], node["name"]);
        assert_eq!(layer["shape"], node["shape"]);
        assert_eq!(layer["parameters"], node["parameters"]);
    }
    // The stem: 7×7, stride 2, padding 3 on the 40×40 photo.
    assert_eq!(checked["fields"]["name"], nodes[0]["name"]);
    assert_eq!(
        checked["fields"]["at"],
        serde_json::json!([{"x0": 0, "y0": 0, "x1": 3, "y1": 3}, {"x0": 7, "y0": 7, "x1": 13, "y1": 13}])
    );
    // Hovering pixel (0, 0) of its first map frames photo pixels 0–3 of 40,
    // on the photo as the page draws it.
    let hovered = &checked["hovered"];
    assert_eq!(hovered["hidden"], false, "{hovered}");
    let scale = hovered["photoWidth"].as_f64().unwrap() / 40.0;
    assert!(hovered["left"].as_f64().unwrap().abs() < 1e-6, "{hovered}");
    assert!(
        (hovered["width"].as_f64().unwrap() - 4.0 * scale).abs() < 1e-3,
        "{hovered}"
    );
    let (shown, top) = (
        checked["top"].as_array().unwrap(),
        summary["outputs"][0]["top"].as_array().unwrap(),
    );
    assert_eq!(shown.len(), 5);
    for (a, b) in shown.iter().zip(top) {
        assert_eq!((&a["index"], &a["label"]), (&b["index"], &b["label"]));
        let (p, q) = (
            a["probability"].as_f64().unwrap(),
            b["probability"].as_f64().unwrap(),
        );
        assert!((p - q).abs() < 1e-6, "{p} {q}");
    }
    assert_maps_open_with_their_arithmetic(&out, nodes, &checked);
    assert_page_self_test_passes(&browser, &out);
}

/// The model page's check opened the stem's map 0 with its statistics and
/// picture, and summed the first and last map of every conv at corners and
/// centre from its f16 copies within 1% of the largest |value| the run
/// wrote (features.npy); no conv of the small fixture is over the budget.
fn assert_maps_open_with_their_arithmetic(
    out: &Path,
    nodes: &[serde_json::Value],
    checked: &serde_json::Value,
) {
    let folder_of = |name: &serde_json::Value| {
        let node = nodes.iter().find(|n| &n["name"] == name).unwrap();
        out.join(node["folder"].as_str().unwrap())
    };
    let opened = &checked["opened"];
    let (_, stem) = npy::read_f32(&folder_of(&nodes[0]["name"]).join("features.npy")).unwrap();
    let plane = stem.len() / nodes[0]["shape"][1].as_u64().unwrap() as usize;
    let first = &stem[..plane];
    let min = first.iter().copied().fold(f32::INFINITY, f32::min);
    let mean = first.iter().map(|&v| v as f64).sum::<f64>() / plane as f64;
    // Six significant digits on the page.
    let close =
        |key: &str, want: f64| (opened[key].as_f64().unwrap() - want).abs() <= 1e-5 * want.abs();
    assert!(close("min", min as f64), "{opened}");
    assert!(close("mean", mean), "{opened}");
    assert!(
        out.join(opened["file"].as_str().unwrap()).exists(),
        "{opened}"
    );
    let sums = checked["sums"].as_array().unwrap();
    let convs = nodes.iter().filter(|n| n["op"] == "Conv").count();
    assert_eq!(sums.len(), convs * 2 * 3, "two maps, three points each");
    assert_eq!(checked["without"], serde_json::json!([]));
    assert_sums_are_the_runs(sums, folder_of);
    let last_conv = nodes.iter().rev().find(|n| n["op"] == "Conv").unwrap();
    assert_the_editor_recomputes_the_map(
        &checked["edited"],
        last_conv["name"].as_str().unwrap(),
        folder_of,
    );
    let written = nodes.iter().filter(|n| !n["folder"].is_null()).count();
    assert_the_strips_follow_set_view(&checked["view"], written as u64);
}

/// Each value a page summed from its copies (`{name, map, x, y, value}`)
/// is within 1% of the largest |value| of the maps the run wrote into the
/// layer's `features.npy`: 8-bit copies of the input and f16 weights.
fn assert_sums_are_the_runs(
    sums: &[serde_json::Value],
    folder_of: impl Fn(&serde_json::Value) -> PathBuf,
) {
    let mut worst = 0f64;
    for sum in sums {
        let (shape, maps) = npy::read_f32(&folder_of(&sum["name"]).join("features.npy")).unwrap();
        let largest = maps.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
        let at = |key: &str| sum[key].as_u64().unwrap() as usize;
        let value = maps[(at("map") * shape[1] + at("y")) * shape[2] + at("x")] as f64;
        let error = (sum["value"].as_f64().unwrap() - value).abs() / largest;
        assert!(
            error < 1e-2,
            "{sum}: the run wrote {value}, relative error {error}"
        );
        worst = worst.max(error);
    }
    eprintln!("the page's sums: worst error {worst:e} of the largest |value|");
}

#[test]
fn a_stacks_page_shows_each_value_as_its_arithmetic_through_relu_and_pooling() {
    let (_dir, out) = run("--layers 4x3,relu,maxpool2,5x3/s2/p1 --raw");
    let Some(browser) = chromium() else { return };
    let answers = explorer_answers(&browser, &out);
    let sums = answers["sums"].as_array().unwrap();
    assert_eq!(
        sums.len(),
        2 * 2 * 3,
        "two layers, two maps, three points each"
    );
    assert_eq!(answers["without"], serde_json::json!([]));
    assert!(
        sums.iter()
            .any(|s| s["name"] == "conv1" && s["value"].as_f64().unwrap() > 0.0),
        "some value is above ReLU's zero: {sums:?}"
    );
    let folder_of = |name: &serde_json::Value| out.join(name.as_str().unwrap());
    assert_sums_are_the_runs(sums, folder_of);
    assert_the_editor_recomputes_the_map(&answers["edited"], "conv2", folder_of);
    assert_the_strips_follow_set_view(&answers["view"], 2);
    assert_eq!(
        answers["overlay"], answers["shown"],
        "the opened map lies ready over the photo"
    );
    assert_page_self_test_passes(&browser, &out);
}

/// `index.html#selftest` of a stack's or a network's page (no WebGPU
/// needed): the page's sums within 1% of the values the run embedded, its
/// strips and its editor.
fn assert_page_self_test_passes(browser: &Path, out: &Path) {
    let (dom, _) = open_page(browser, out, "#selftest", &["--virtual-time-budget=10000"]);
    let error = self_test_error(&dom).unwrap_or_else(|title| panic!("self-test: {title}"));
    assert!(error < 1e-2, "worst relative error {error}");
}

/// setView redrew every value of the first strip's first map in the
/// colour the table gives it, refused an unknown colour map, and the page
/// had `strips` strips.
fn assert_the_strips_follow_set_view(view: &serde_json::Value, strips: u64) {
    assert_eq!(view["strips"], strips, "{view}");
    assert!(view["values"].as_u64().unwrap() > 0, "{view}");
    assert_eq!(view["wrong"], 0, "{view}");
    assert_eq!(view["refused"], true, "{view}");
}

#[test]
fn a_page_budget_of_zero_embeds_no_arithmetic_and_says_how_to_embed_more() {
    let (_dir, out) = run("--layers 4x3,relu,maxpool2,5x3/s2/p1 --page-budget 0");
    let html = page(&out);
    assert!(html.contains("over the page's budget for arithmetic (0.0 MiB of copies"));
    assert!(html.contains("--page-budget MIB embeds more"));
    let Some(browser) = chromium() else { return };
    let answers = explorer_answers(&browser, &out);
    assert_eq!(answers["without"], serde_json::json!(["conv1", "conv2"]));
    assert_eq!(answers["sums"], serde_json::json!([]));
}

/// The page's editor of `name`'s filter 0 (its conv with no steps after
/// it) gave the run's map before any change, moved every value by δ with
/// the bias, and gave the map back on Reset.
fn assert_the_editor_recomputes_the_map(
    edited: &serde_json::Value,
    name: &str,
    folder_of: impl Fn(&serde_json::Value) -> PathBuf,
) {
    let points = edited["points"].as_array().unwrap();
    assert!(points.iter().all(|p| p["name"] == name), "{edited}");
    assert_sums_are_the_runs(points, folder_of);
    assert!(edited["offByDelta"].as_f64().unwrap() < 1e-5, "{edited}");
    assert_eq!(edited["restored"], 0.0, "{edited}");
}
