//! A photo read as the model's input: luma, RGB, BGR or RGBA as the
//! layer's channels say, scaled and normalised as the model was trained.

mod common;

use std::path::Path;

use convmaps::photo;
use convmaps::preprocess::{InputPrep, Layout, Normalization, Prepared};
use convmaps::tensor::RowSource;

/// A 4×3 photo whose every pixel differs, with alpha when `alpha`.
fn save(path: &Path, alpha: bool) {
    let pixel = |x: u32, y: u32| [(x * 60) as u8, (y * 80 + 10) as u8, (x * y * 20 + 5) as u8];
    if alpha {
        image::RgbaImage::from_fn(4, 3, |x, y| {
            let [r, g, b] = pixel(x, y);
            image::Rgba([r, g, b, (x * 50 + y * 10) as u8])
        })
        .save(path)
        .unwrap();
    } else {
        image::RgbImage::from_fn(4, 3, |x, y| image::Rgb(pixel(x, y)))
            .save(path)
            .unwrap();
    }
}

fn read(path: &Path, prep: &InputPrep) -> convmaps::tensor::Tensor3 {
    let photo = photo::load(path, photo::DEFAULT_MAX_PIXELS).unwrap();
    let prepared = Prepared {
        photo: &photo,
        prep,
    };
    let [channels, height, _] = prepared.shape();
    prepared.rows(0..channels, 0..height)
}

/// The photo of [`save`] (with alpha when `alpha`) as `p.png` in a fresh
/// folder, which lives as long as the returned guard.
fn saved(alpha: bool) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.png");
    save(&path, alpha);
    (dir, path)
}

fn prep(layout: Layout) -> InputPrep {
    InputPrep {
        layout,
        scale: 1.0,
        normalization: None,
    }
}

/// `layout` at `scale`, then ImageNet's normalisation.
fn imagenet(layout: Layout, scale: f32) -> InputPrep {
    InputPrep {
        layout,
        scale,
        normalization: Some(Normalization::imagenet()),
    }
}

#[test]
fn luma_is_the_weighted_sum_of_the_zero_to_one_channels() {
    let (_dir, path) = saved(false);
    let rgb = read(&path, &prep(Layout::Rgb));
    let luma = read(&path, &prep(Layout::Luma));
    assert_eq!((luma.channels, luma.height, luma.width), (1, 3, 4));
    for y in 0..3 {
        for x in 0..4 {
            let expected =
                0.299 * rgb.get(0, y, x) + 0.587 * rgb.get(1, y, x) + 0.114 * rgb.get(2, y, x);
            assert!((luma.get(0, y, x) - expected).abs() < 1e-6, "({x}, {y})");
        }
    }
}

#[test]
fn bgr_reverses_the_channels_and_rgba_keeps_alpha() {
    let dir = tempfile::tempdir().unwrap();
    let (opaque, clear) = (dir.path().join("o.png"), dir.path().join("a.png"));
    save(&opaque, false);
    save(&clear, true);
    let rgb = read(&opaque, &prep(Layout::Rgb));
    let bgr = read(&opaque, &prep(Layout::Bgr));
    for c in 0..3 {
        assert_eq!(bgr.plane(c), rgb.plane(2 - c), "channel {c}");
    }
    let rgba = read(&clear, &prep(Layout::Rgba));
    assert_eq!(rgba.channels, 4);
    assert_eq!(rgba.get(3, 2, 3), (3 * 50 + 2 * 10) as f32 / 255.0);
    assert_eq!(rgba.get(0, 2, 3), 180.0 / 255.0);
    // An opaque photo read as RGBA has alpha 1 everywhere.
    assert!(
        read(&opaque, &prep(Layout::Rgba))
            .plane(3)
            .iter()
            .all(|&a| a == 1.0)
    );
    // Read as RGB, a photo with alpha is its colour channels alone.
    assert_eq!(read(&clear, &prep(Layout::Rgb)).plane(0), rgba.plane(0));
}

#[test]
fn scale_then_per_channel_normalisation() {
    let (_dir, path) = saved(false);
    let rgb = read(&path, &prep(Layout::Rgb));
    let normalised = read(&path, &imagenet(Layout::Rgb, 255.0));
    let (mean, std) = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);
    for c in 0..3 {
        for (i, (&n, &v)) in normalised.plane(c).iter().zip(rgb.plane(c)).enumerate() {
            let expected = (v * 255.0 - mean[c as usize]) / std[c as usize];
            assert!(
                (n - expected).abs() < 1e-4,
                "channel {c}, pixel {i}: {n} vs {expected}"
            );
        }
    }
}

#[test]
fn input_norm_parses_names_and_lists_and_refuses_the_rest() {
    assert_eq!(Normalization::parse("none").unwrap(), None);
    assert_eq!(
        Normalization::parse("imagenet").unwrap(),
        Some(Normalization::imagenet())
    );
    let custom = Normalization::parse("0.5/0.25").unwrap().unwrap();
    assert_eq!((custom.mean, custom.std), (vec![0.5], vec![0.25]));
    for bad in ["", "0.5", "0.5,0.5/0.25", "0.5/0", "a/b", "0.5/-1"] {
        assert!(Normalization::parse(bad).is_err(), "{bad:?} accepted");
    }
    assert!(imagenet(Layout::Luma, 1.0).validate().is_err());
}

#[test]
fn a_one_channel_model_reads_the_photo_as_luma_end_to_end() {
    let (dir, photo_path) = saved(false);
    let weight = dir.path().join("w.npy");
    let values: Vec<f32> = (0..18).map(|i| i as f32 / 18.0 - 0.5).collect();
    convmaps::npy::write_f32_nd(&weight, &[2, 1, 3, 3], &values).unwrap();
    let out = dir.path().join("out");
    common::convmaps([&photo_path, Path::new("--weights"), &weight])
        .args(["--no-bias", "--raw", "-o"])
        .arg(&out)
        .cpu()
        .success();
    let summary = common::read_summary(&out);
    assert_eq!(summary["input"]["channels"], 1);
    assert_eq!(summary["input"]["preprocessing"]["layout"], "luma");
    assert_eq!(summary["parameter_formula"], "1·3·3·2 = 18");
    let maps = convmaps::npy::read_f32_3d(&out.join("features.npy")).unwrap();
    let luma = read(&photo_path, &prep(Layout::Luma));
    let layer = convmaps::layer::Layer::new(
        convmaps::layer::LayerSpec {
            bias: false,
            ..convmaps::layer::LayerSpec::new(1, 2, 3)
        },
        values,
        Vec::new(),
    )
    .unwrap();
    assert_eq!(maps, convmaps::cpu::conv2d_direct(&luma, &layer).unwrap());
}

#[test]
fn bgr_normalises_each_channel_with_its_own_colours_statistics() {
    let (_dir, path) = saved(false);
    let rgb = read(&path, &prep(Layout::Rgb));
    let normalised = read(&path, &imagenet(Layout::Bgr, 1.0));
    // Channel 0 is blue, with blue's mean 0.406 and std 0.225.
    let expected = (rgb.get(2, 1, 1) - 0.406) / 0.225;
    assert!((normalised.get(0, 1, 1) - expected).abs() < 1e-5);
    assert_eq!(InputPrep::default(), prep(Layout::Rgb));
}
