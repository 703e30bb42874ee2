//! Decoding photos: value scaling, alpha dropped, grayscale to three equal
//! channels, JPEG as well as PNG, and photos turned upright by their EXIF
//! orientation.

use std::path::{Path, PathBuf};

use convmaps::photo::{self, Orientation};
use convmaps::tensor::Tensor3;

#[test]
fn eight_bit_rgb_is_sample_over_255_in_planar_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rgb.png");
    image::RgbImage::from_fn(3, 2, |x, y| image::Rgb([x as u8 * 100, y as u8 * 255, 7]))
        .save(&path)
        .unwrap();
    let tensor = photo::load_rgb(&path, photo::DEFAULT_MAX_PIXELS).unwrap();
    assert_eq!((tensor.channels, tensor.height, tensor.width), (3, 2, 3));
    assert_eq!(tensor.get(0, 0, 2), 200.0 / 255.0);
    assert_eq!(tensor.get(1, 1, 0), 1.0);
    assert_eq!(tensor.get(2, 1, 1), 7.0 / 255.0);
}

#[test]
fn sixteen_bit_is_sample_over_65535() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rgb16.png");
    image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(2, 2, |x, _| {
        image::Rgb([x as u16 * 1000, 65535, 0])
    })
    .save(&path)
    .unwrap();
    let tensor = photo::load_rgb(&path, photo::DEFAULT_MAX_PIXELS).unwrap();
    assert_eq!(tensor.get(0, 0, 1), 1000.0 / 65535.0);
    assert_eq!(tensor.get(1, 1, 1), 1.0);
}

#[test]
fn alpha_is_dropped_and_gray_becomes_three_equal_channels() {
    let dir = tempfile::tempdir().unwrap();
    let rgba = dir.path().join("rgba.png");
    image::RgbaImage::from_pixel(2, 2, image::Rgba([10, 20, 30, 0]))
        .save(&rgba)
        .unwrap();
    let tensor = photo::load_rgb(&rgba, photo::DEFAULT_MAX_PIXELS).unwrap();
    assert_eq!(tensor.channels, 3);
    assert_eq!(tensor.get(2, 1, 1), 30.0 / 255.0);

    let gray = dir.path().join("gray.png");
    image::GrayImage::from_pixel(2, 3, image::Luma([51]))
        .save(&gray)
        .unwrap();
    let tensor = photo::load_rgb(&gray, photo::DEFAULT_MAX_PIXELS).unwrap();
    assert_eq!((tensor.channels, tensor.height, tensor.width), (3, 3, 2));
    assert!(tensor.data.iter().all(|&v| v == 51.0 / 255.0));
}

#[test]
fn jpeg_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("photo.jpg");
    image::RgbImage::from_pixel(16, 8, image::Rgb([200, 100, 50]))
        .save(&path)
        .unwrap();
    let tensor = photo::load_rgb(&path, photo::DEFAULT_MAX_PIXELS).unwrap();
    assert_eq!((tensor.channels, tensor.height, tensor.width), (3, 8, 16));
    // JPEG is lossy: close to the flat colour.
    assert!((tensor.get(0, 4, 8) - 200.0 / 255.0).abs() < 0.02);
}

#[test]
fn empty_and_truncated_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let error = photo::load_rgb(&empty, photo::DEFAULT_MAX_PIXELS).unwrap_err();
    assert!(error.is_bad_input());
    assert!(error.to_string().contains("empty.png"), "{error}");

    let whole = dir.path().join("whole.png");
    image::RgbImage::from_pixel(64, 64, image::Rgb([1, 2, 3]))
        .save(&whole)
        .unwrap();
    let bytes = std::fs::read(&whole).unwrap();
    let truncated = dir.path().join("truncated.png");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let error = photo::load_rgb(&truncated, photo::DEFAULT_MAX_PIXELS).unwrap_err();
    assert!(error.to_string().contains("truncated.png"), "{error}");
}

#[test]
fn a_photos_bands_are_slices_of_its_whole_tensor_at_8_and_16_bits() {
    use convmaps::tensor::RowSource;
    let dir = tempfile::tempdir().unwrap();
    let eight = dir.path().join("rgb8.png");
    image::RgbImage::from_fn(7, 5, |x, y| {
        image::Rgb([(x * 30) as u8, (y * 50) as u8, (x * y) as u8])
    })
    .save(&eight)
    .unwrap();
    let sixteen = dir.path().join("rgb16.png");
    image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(7, 5, |x, y| {
        image::Rgb([(x * 9000) as u16, (y * 13000) as u16, (x * y * 1000) as u16])
    })
    .save(&sixteen)
    .unwrap();
    for path in [eight, sixteen] {
        let photo = photo::load(&path, photo::DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(photo.shape(), [3, 5, 7]);
        let tensor = photo.to_tensor();
        assert_eq!(
            tensor,
            photo::load_rgb(&path, photo::DEFAULT_MAX_PIXELS).unwrap()
        );
        for channels in [0..3, 1..2, 2..3, 0..2] {
            for rows in [0..5, 1..4, 4..5, 0..1] {
                assert_eq!(
                    photo.rows(channels.clone(), rows.clone()),
                    tensor.slice(channels.clone(), rows.clone()),
                    "{path:?} channels {channels:?} rows {rows:?}"
                );
            }
        }
    }
}

// EXIF orientation. The test files are made here: a small photo whose every
// pixel differs, stored as the EXIF orientation says a camera stores it,
// with an Exif block that carries only the orientation tag.

const MAX: u64 = photo::DEFAULT_MAX_PIXELS;

/// Upright size of the orientation test photo: 5×3, no symmetry.
const WIDTH: u32 = 5;
const HEIGHT: u32 = 3;

/// The upright photo's pixel at column `x`, row `y`: all 15 differ.
fn upright_pixel(x: u32, y: u32) -> [u8; 3] {
    [(x * 60) as u8, (y * 120) as u8, (x * 7 + y * 40 + 5) as u8]
}

/// Where the upright pixel (x, y) of a `width`×`height` upright photo is
/// stored in a file of EXIF orientation `exif`, from the tag's definition:
/// which side of the upright scene the stored row 0 and column 0 are.
fn stored_xy(exif: u8, x: u32, y: u32, width: u32, height: u32) -> (u32, u32) {
    let (right, bottom) = (width - 1 - x, height - 1 - y);
    match exif {
        1 => (x, y),          // row 0 top, column 0 left
        2 => (right, y),      // row 0 top, column 0 right
        3 => (right, bottom), // row 0 bottom, column 0 right
        4 => (x, bottom),     // row 0 bottom, column 0 left
        5 => (y, x),          // row 0 left, column 0 top
        6 => (y, right),      // row 0 right, column 0 top
        7 => (bottom, right), // row 0 right, column 0 bottom
        8 => (bottom, x),     // row 0 left, column 0 bottom
        _ => unreachable!("EXIF orientation is 1..=8"),
    }
}

/// The stored size of a `width`×`height` upright photo: swapped for 5..=8.
fn stored_size(exif: u8, width: u32, height: u32) -> (u32, u32) {
    if exif >= 5 {
        (height, width)
    } else {
        (width, height)
    }
}

/// The pixels a file of orientation `exif` stores for the upright photo
/// `pixel` of `width`×`height`.
fn stored_image(
    exif: u8,
    width: u32,
    height: u32,
    pixel: impl Fn(u32, u32) -> [u8; 3],
) -> image::RgbImage {
    let (stored_width, stored_height) = stored_size(exif, width, height);
    let mut stored = image::RgbImage::new(stored_width, stored_height);
    for y in 0..height {
        for x in 0..width {
            let (sx, sy) = stored_xy(exif, x, y, width, height);
            stored.put_pixel(sx, sy, image::Rgb(pixel(x, y)));
        }
    }
    stored
}

/// The `[3, H, W]` tensor of 8-bit pixels: value = sample / 255.
fn tensor_of(image: &image::RgbImage) -> Tensor3 {
    let mut tensor = Tensor3::zeros(3, image.height(), image.width());
    let plane = tensor.plane_len();
    for (i, pixel) in image.pixels().enumerate() {
        for c in 0..3 {
            tensor.data[c * plane + i] = pixel[c] as f32 / 255.0;
        }
    }
    tensor
}

/// The upright `[3, height, width]` tensor of a stored tensor of
/// orientation `exif`.
fn upright_of(stored: &Tensor3, exif: u8, width: u32, height: u32) -> Tensor3 {
    assert_eq!(
        (stored.width, stored.height),
        stored_size(exif, width, height)
    );
    let mut upright = Tensor3::zeros(3, height, width);
    for c in 0..3 {
        for y in 0..height {
            for x in 0..width {
                let (sx, sy) = stored_xy(exif, x, y, width, height);
                upright.data[((c * height + y) * width + x) as usize] = stored.get(c, sy, sx);
            }
        }
    }
    upright
}

/// Checks that a decoded JPEG `tensor` is `expected` but for the loss of
/// JPEG at quality 95: every value within 0.05 (any two of the test photo's
/// pixels differ by more than 0.2 in some channel).
fn assert_close(tensor: &Tensor3, expected: &Tensor3, path: &Path) {
    assert_eq!(
        (tensor.channels, tensor.height, tensor.width),
        (expected.channels, expected.height, expected.width),
        "{path:?}"
    );
    let error = tensor
        .data
        .iter()
        .zip(&expected.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(error < 0.05, "{path:?}: off by {error}");
}

/// An Exif block (a TIFF header and IFD0) whose only entry is the
/// orientation tag 0x0112 = `exif`, SHORT, in either byte order.
fn exif_block(exif: u8, big_endian: bool) -> Vec<u8> {
    let u16_bytes = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u32_bytes = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut block = Vec::new();
    block.extend(if big_endian { b"MM" } else { b"II" });
    block.extend(u16_bytes(42));
    block.extend(u32_bytes(8)); // IFD0 right after the header
    block.extend(u16_bytes(1)); // one entry
    block.extend(u16_bytes(0x0112)); // orientation
    block.extend(u16_bytes(3)); // SHORT
    block.extend(u32_bytes(1)); // one value
    block.extend(u16_bytes(exif as u16)); // the value, left in its 4 bytes
    block.extend([0, 0]);
    block.extend(u32_bytes(0)); // no next IFD
    block
}

/// Writes `stored` as a JPEG with an APP1 Exif segment right after SOI.
fn write_jpeg(path: &Path, stored: &image::RgbImage, exif: u8, big_endian: bool) {
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
        .encode_image(stored)
        .unwrap();
    assert_eq!(jpeg[..2], [0xFF, 0xD8], "SOI");
    let block = exif_block(exif, big_endian);
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend(((2 + 6 + block.len()) as u16).to_be_bytes());
    app1.extend(b"Exif\0\0");
    app1.extend(block);
    jpeg.splice(2..2, app1);
    std::fs::write(path, jpeg).unwrap();
}

/// Writes `stored` as a PNG with an eXIf chunk.
fn write_png(path: &Path, stored: &image::RgbImage, exif: u8, big_endian: bool) {
    use image::ImageEncoder;
    let mut png = Vec::new();
    let mut encoder = image::codecs::png::PngEncoder::new(&mut png);
    encoder
        .set_exif_metadata(exif_block(exif, big_endian))
        .unwrap();
    encoder
        .write_image(
            stored.as_raw(),
            stored.width(),
            stored.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    std::fs::write(path, png).unwrap();
}

/// The test photo stored with orientation `exif`: a JPEG of each byte order
/// and a PNG.
fn orientation_files(dir: &Path, exif: u8) -> (Vec<PathBuf>, PathBuf) {
    let stored = stored_image(exif, WIDTH, HEIGHT, upright_pixel);
    let jpegs = [true, false]
        .into_iter()
        .map(|big_endian| {
            let path = dir.join(format!(
                "exif{exif}-{}.jpg",
                ["ii", "mm"][big_endian as usize]
            ));
            write_jpeg(&path, &stored, exif, big_endian);
            path
        })
        .collect();
    let png = dir.join(format!("exif{exif}.png"));
    write_png(&png, &stored, exif, false);
    (jpegs, png)
}

/// Checks that a file of EXIF orientation `exif` is read upright, by
/// `load_rgb`, `load` and `open(.., true)`.
fn assert_decodes_upright(exif: u8) {
    let dir = tempfile::tempdir().unwrap();
    let (jpegs, png) = orientation_files(dir.path(), exif);
    let expected = Orientation::from_exif(exif).unwrap();

    // PNG is lossless: the upright photo itself.
    let upright = tensor_of(&image::RgbImage::from_fn(WIDTH, HEIGHT, |x, y| {
        image::Rgb(upright_pixel(x, y))
    }));
    assert_eq!(photo::load_rgb(&png, MAX).unwrap(), upright, "PNG");
    let file = photo::open(&png, MAX, true).unwrap();
    assert_eq!(file.orientation(), expected);
    assert_eq!(file.decode().unwrap().to_tensor(), upright, "PNG via open");

    // JPEG is lossy: the file's own stored pixels, turned upright here.
    for jpeg in jpegs {
        let stored = photo::open(&jpeg, MAX, false)
            .unwrap()
            .decode()
            .unwrap()
            .to_tensor();
        let file = photo::open(&jpeg, MAX, true).unwrap();
        assert_eq!(file.orientation(), expected, "{jpeg:?}");
        let decoded = file.decode().unwrap().to_tensor();
        assert_eq!(
            decoded,
            upright_of(&stored, exif, WIDTH, HEIGHT),
            "{jpeg:?}"
        );
        assert_close(&decoded, &upright, &jpeg);
        assert_eq!(photo::load_rgb(&jpeg, MAX).unwrap(), decoded, "{jpeg:?}");
        assert_eq!(
            photo::load(&jpeg, MAX).unwrap().to_tensor(),
            decoded,
            "{jpeg:?}"
        );
        // The check tells orientations apart: no other one of the same
        // shape gives these pixels.
        for other in (1..=8).filter(|&o| o != exif && (o >= 5) == (exif >= 5)) {
            assert_ne!(
                decoded,
                upright_of(&stored, other, WIDTH, HEIGHT),
                "{jpeg:?} as {other}"
            );
        }
    }
}

#[test]
fn exif_orientation_1_keeps_the_stored_pixels() {
    assert_decodes_upright(1);
}

#[test]
fn exif_orientation_2_is_undone_by_a_left_right_flip() {
    assert_decodes_upright(2);
}

#[test]
fn exif_orientation_3_is_undone_by_a_180_degree_rotation() {
    assert_decodes_upright(3);
}

#[test]
fn exif_orientation_4_is_undone_by_a_top_bottom_flip() {
    assert_decodes_upright(4);
}

#[test]
fn exif_orientation_5_is_undone_by_a_transpose() {
    assert_decodes_upright(5);
}

#[test]
fn exif_orientation_6_is_undone_by_a_clockwise_quarter_turn() {
    assert_decodes_upright(6);
}

#[test]
fn exif_orientation_7_is_undone_by_a_transverse() {
    assert_decodes_upright(7);
}

#[test]
fn exif_orientation_8_is_undone_by_a_counter_clockwise_quarter_turn() {
    assert_decodes_upright(8);
}

#[test]
fn without_applying_orientation_the_stored_pixels_are_kept_and_no_transform_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    for exif in 1..=8 {
        let (jpegs, png) = orientation_files(dir.path(), exif);
        let stored = stored_image(exif, WIDTH, HEIGHT, upright_pixel);
        let (stored_width, stored_height) = stored_size(exif, WIDTH, HEIGHT);

        let file = photo::open(&png, MAX, false).unwrap();
        assert_eq!(file.orientation(), Orientation::NoTransforms, "{exif}");
        assert_eq!((file.width(), file.height()), (stored_width, stored_height));
        assert_eq!(file.decode().unwrap().to_tensor(), tensor_of(&stored));

        for jpeg in jpegs {
            let file = photo::open(&jpeg, MAX, false).unwrap();
            assert_eq!(file.orientation(), Orientation::NoTransforms, "{jpeg:?}");
            assert_eq!((file.width(), file.height()), (stored_width, stored_height));
            let tensor = file.decode().unwrap().to_tensor();
            assert_eq!((tensor.width, tensor.height), (stored_width, stored_height));
            assert_close(&tensor, &tensor_of(&stored), &jpeg);
        }
    }
}

#[test]
fn open_reports_the_upright_size_from_the_header_without_decoding_pixels() {
    let dir = tempfile::tempdir().unwrap();
    // 64×40 of noise, so the PNG's pixel data is big enough to cut in two.
    let (width, height) = (64, 40);
    let noise = |x: u32, y: u32| {
        let h = (x * 7919 + y * 104_729).wrapping_mul(2_654_435_761);
        [(h >> 24) as u8, (h >> 16) as u8, (h >> 8) as u8]
    };
    for exif in 1..=8 {
        let path = dir.path().join(format!("cut{exif}.png"));
        write_png(
            &path,
            &stored_image(exif, width, height, noise),
            exif,
            exif % 2 == 0,
        );
        // Cut the file in the middle of its pixel data: only a decode can
        // notice.
        let mut bytes = std::fs::read(&path).unwrap();
        let idat = bytes.windows(4).position(|w| w == b"IDAT").unwrap();
        let len = u32::from_be_bytes(bytes[idat - 4..idat].try_into().unwrap()) as usize;
        assert!(len > 1000, "{len}");
        bytes.truncate(idat + 4 + len / 2);
        std::fs::write(&path, bytes).unwrap();

        let file = photo::open(&path, MAX, true).unwrap();
        assert_eq!((file.width(), file.height()), (width, height), "{exif}");
        assert_eq!(file.orientation().exif(), exif);
        let error = file.decode().unwrap_err();
        assert!(error.to_string().contains("cannot decode"), "{error}");
        assert!(
            error.to_string().contains(&format!("cut{exif}.png")),
            "{error}"
        );

        let file = photo::open(&path, MAX, false).unwrap();
        assert_eq!(
            (file.width(), file.height()),
            stored_size(exif, width, height)
        );
    }
}

#[test]
fn the_max_pixels_check_runs_on_the_header_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let (_, png) = orientation_files(dir.path(), 6);
    let error = photo::open(&png, 14, true).unwrap_err();
    assert!(error.to_string().contains("is 5×3"), "{error}");
    assert!(error.to_string().contains("--max-pixels"), "{error}");
    assert!(photo::open(&png, 15, true).is_ok());
}

#[test]
fn orientations_number_describe_and_serialize_as_exif_and_applied() {
    for exif in 1..=8 {
        let orientation = Orientation::from_exif(exif).unwrap();
        assert_eq!(orientation.exif(), exif);
        assert_eq!(orientation.transposes(), exif >= 5);
        assert_eq!(
            serde_json::to_value(orientation).unwrap(),
            serde_json::json!({"exif": exif, "applied": orientation.describe()})
        );
    }
    assert_eq!(Orientation::from_exif(0), None);
    assert_eq!(Orientation::from_exif(9), None);
    assert_eq!(Orientation::NoTransforms.describe(), "none");
    assert_eq!(Orientation::FlipHorizontal.describe(), "flip horizontal");
    assert_eq!(Orientation::Rotate90.describe(), "rotate 90° clockwise");
    assert_eq!(
        serde_json::to_string(&Orientation::Rotate90).unwrap(),
        r#"{"exif":6,"applied":"rotate 90° clockwise"}"#
    );
    let mut descriptions: Vec<_> = Orientation::ALL.iter().map(|o| o.describe()).collect();
    descriptions.sort();
    descriptions.dedup();
    assert_eq!(descriptions.len(), 8);
}
