//! Decoding photos: value scaling, alpha dropped, grayscale to three equal
//! channels, JPEG as well as PNG.

use convmaps::photo;

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
    use convmaps::tensor::Bands;
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
                    photo.band(channels.clone(), rows.clone()),
                    tensor.slice(channels.clone(), rows.clone()),
                    "{path:?} channels {channels:?} rows {rows:?}"
                );
            }
        }
    }
}
