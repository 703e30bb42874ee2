//! One layer and a stack go through one pipeline: the same summary with
//! a `layers` entry per block, the same settings refused the same way, the
//! same page builder.

mod common;

use std::path::{Path, PathBuf};

use common::{Ran, Run, convmaps};
use serde_json::Value;

/// The binary on the CPU over the test photo in `dir` with `args`, writing
/// to `dir/out-<name>`, with no `CONVMAPS_*` variable but `envs`.
fn run(dir: &Path, name: &str, args: &[&str], envs: &[(&str, &str)]) -> (Ran, PathBuf) {
    let out = dir.join(format!("out-{name}"));
    let mut run: Run = convmaps([common::photo(dir, 24, 20)])
        .args(args)
        .args(["-q"])
        .cpu()
        .out(&out);
    for variable in convmaps::settings::VARIABLES {
        run = run.env_remove(variable);
    }
    for (key, value) in envs {
        run = run.env(key, value);
    }
    (run.output(), out)
}

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

#[test]
fn a_one_layer_summary_has_one_layers_entry_with_the_fields_of_a_stacks_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (one, one_out) = run(
        dir.path(),
        "one",
        &["-k", "3", "-f", "3", "--stride", "2"],
        &[],
    );
    one.success();
    let (stack, stack_out) = run(dir.path(), "stack", &["--layers", "3x3,relu,4x3/p1"], &[]);
    stack.success();

    let one = common::read_summary(&one_out);
    let stack = common::read_summary(&stack_out);
    let entries = one["layers"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "one entry for one layer");
    let entry = &entries[0];
    for stack_entry in stack["layers"].as_array().unwrap() {
        assert_eq!(keys(entry), keys(stack_entry), "an entry's fields");
    }
    assert_eq!(entry["name"], "conv1");
    assert_eq!(entry["folder"], "");
    assert_eq!(entry["items"], serde_json::json!(["3x3/s2"]));
    assert_eq!(entry["output_shape"], serde_json::json!([3, 9, 11]));
    // The top-level fields a one-layer summary always had are its entry's.
    for field in [
        "layer",
        "output",
        "maps",
        "maps_mode",
        "weights_file",
        "before_folding",
    ] {
        assert_eq!(one[field], entry[field], "{field}");
    }
    for field in ["parameters", "parameter_formula", "backend", "shader"] {
        assert_eq!(one[field], entry[field], "{field}");
    }
    assert_eq!(
        entry["layer"]["pytorch"],
        "nn.Conv2d(3, 3, kernel_size=3, stride=2)"
    );
    assert!(one.get("stack").is_none(), "no --layers spec for one layer");
    assert_eq!(stack["stack"], "3x3,relu,4x3/p1");
}

#[test]
fn a_maps_mode_that_is_no_mode_is_refused_by_name_for_a_stack_as_for_one_layer() {
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("one", &["-k", "2"][..]),
        ("stack", &["--layers", "2x3,relu,maxpool2,3x3"][..]),
    ] {
        let (output, out) = run(dir.path(), name, args, &[("CONVMAPS_MAPS_MODE", "bogus")]);
        output.fails_with(2, &["CONVMAPS_MAPS_MODE=bogus"]);
        common::assert_not_written(&out);
    }
}

#[test]
fn a_maps_mode_a_stack_cannot_take_is_refused_by_name_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    for mode in ["recompute", "one-pass"] {
        let (output, out) = run(
            dir.path(),
            mode,
            &["--layers", "2x3,3x3", "--normalize", "-1,1"],
            &[("CONVMAPS_MAPS_MODE", mode)],
        );
        output.fails_with(2, &[&format!("CONVMAPS_MAPS_MODE={mode}")]);
        common::assert_not_written(&out);
    }
}

#[test]
fn one_layer_and_stack_pages_share_one_stylesheet_and_count_their_images() {
    let dir = tempfile::tempdir().unwrap();
    let (one, one_out) = run(dir.path(), "one", &["-k", "2"], &[]);
    one.success();
    let (stack, stack_out) = run(dir.path(), "stack", &["--layers", "2x3,3x3"], &[]);
    stack.success();
    let style = |out: &Path| {
        let html = std::fs::read_to_string(out.join("index.html")).unwrap();
        let start = html.find("<style>").unwrap();
        let end = html.find("</style>").unwrap();
        (html[start..end].to_string(), html)
    };
    let (one_style, _) = style(&one_out);
    let (stack_style, stack_html) = style(&stack_out);
    assert_eq!(one_style, stack_style);
    assert!(stack_html.contains("imagesLoaded"), "the image count");
    let lines = [
        "nn.Conv2d(3, 2, kernel_size=3)",
        "nn.Conv2d(2, 3, kernel_size=3)",
    ];
    for line in lines {
        let paragraph = format!("<p class=\"pytorch\" data-pytorch><code>{line}</code></p>");
        assert!(stack_html.contains(&paragraph), "{line}");
    }
    for image in ["input.png", "conv1/grid.png", "conv2/filters.png"] {
        assert!(stack_html.contains(&format!("src=\"{image}\"")), "{image}");
    }
}

#[test]
fn a_stack_too_wide_for_its_bands_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (output, out) = run(
        dir.path(),
        "wide",
        &["--layers", "4x3,relu,4x3"],
        &[("CONVMAPS_BAND_BYTES", "64")],
    );
    output.fails_with(2, &["too wide"]);
    common::assert_not_written(&out);
}
