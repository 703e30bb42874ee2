//! What a person looks at: the colour maps, the labelled grid, filters.png
//! and index.html, which must open offline with every image loaded (checked
//! in headless Chromium).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn photo(dir: &Path) -> PathBuf {
    let image = image::RgbImage::from_fn(40, 30, |x, y| {
        let inside = (12..28).contains(&x) && (8..22).contains(&y);
        image::Rgb([if inside { 230 } else { 20 }, (x * 6) as u8, (y * 8) as u8])
    });
    let path = dir.join("square.png");
    image.save(&path).unwrap();
    path
}

fn run(dir: &Path, name: &str, options: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let photo = photo(dir);
    let output = Command::new(env!("CARGO_BIN_EXE_convmaps"))
        .arg(&photo)
        .args(["--out", out.to_str().unwrap(), "--backend", "cpu"])
        .args(options)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", common::text(&output));
    out
}

#[test]
fn rdbu_colours_the_sign_of_each_value() {
    let dir = tempfile::tempdir().unwrap();
    // Identity filters (zero bias): map 0 is the red channel, 230/255 inside
    // the square and 20/255 outside, drawn on a fixed −1..1 scale.
    let out = run(
        dir.path(),
        "rdbu",
        &[
            "--init",
            "identity",
            "-k",
            "3",
            "-f",
            "1",
            "--colormap",
            "rdbu",
            "--normalize",
            "-1,1",
        ],
    );
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
    let dir = tempfile::tempdir().unwrap();
    let gray = run(dir.path(), "gray", &["-k", "2"]);
    assert_eq!(
        image::open(gray.join("feature_00.png")).unwrap().color(),
        image::ColorType::L8
    );
    let viridis = run(dir.path(), "viridis", &["-k", "2", "--colormap", "viridis"]);
    let map = image::open(viridis.join("feature_00.png")).unwrap();
    assert_eq!(map.color(), image::ColorType::Rgb8);
}

#[test]
fn grid_and_filters_pictures_exist_with_one_cell_per_filter() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), "pictures", &["-k", "10", "--init", "mixed"]);
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
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        "page",
        &["-k", "6", "--init", "gabor", "--colormap", "viridis"],
    );
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(
        html.contains("(3·5·5 + 1)·6 = 456"),
        "the page states the parameter count"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page must not reach out"
    );
    let profile = tempfile::tempdir().unwrap();
    let page = out.join("index.html").canonicalize().unwrap();
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
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout);
    // input, grid, filters, and for each of 6 filters its map and its picture.
    let expected = 3 + 2 * 6;
    assert!(
        dom.contains(&format!("data-images-loaded=\"{expected}/{expected}\"")),
        "not every image loaded:\n{}",
        dom.lines()
            .find(|l| l.contains("data-images-loaded"))
            .unwrap_or("(no counter in the DOM)")
    );
}
