//! The picture-making pieces: colour maps, normalisation ranges, the
//! labelled colour grid, the bitmap font, the filters picture and the page.

use convmaps::layer::{Layer, LayerSpec};
use convmaps::render::colormap::{Colormap, Normalize, to_rgb8};
use convmaps::render::filters::{
    CHANNEL_GAP, FILTER_GAP, FRAME_COLOUR, FiltersLayout, bias_label, filter_tile, filters_picture,
    weight_level,
};
use convmaps::render::grid::{
    GridLayout, MIN_TILE_SIDE, RgbGridTile, label_rect, labelled_grid, rgb_grid,
};
use convmaps::render::html::{Page, PageMap, index_html};
use convmaps::render::label::{draw_text, text_size};
use convmaps::render::{GRID_GAP, GRID_MAX_SIDE, grid_shape, grid_tile_size, to_gray8};
use image::{Rgb, RgbImage};

fn rgb(pixels: &[u8]) -> [u8; 3] {
    [pixels[0], pixels[1], pixels[2]]
}

// ---------------------------------------------------------------- colours

#[test]
fn gray_is_black_at_0_and_white_at_1() {
    assert_eq!(Colormap::Gray.colour(0.0), [0, 0, 0]);
    assert_eq!(Colormap::Gray.colour(1.0), [255, 255, 255]);
    assert_eq!(Colormap::Gray.colour(0.5), [128, 128, 128]);
    let pixels = to_rgb8(&[-2.0, 0.0, 2.0], -2.0, 2.0, Colormap::Gray);
    assert_eq!(pixels, [0, 0, 0, 128, 128, 128, 255, 255, 255]);
}

#[test]
fn gray_to_rgb8_repeats_to_gray8_in_each_channel() {
    let map: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
    let gray = to_gray8(&map, -3.0, 3.0);
    let colour = to_rgb8(&map, -3.0, 3.0, Colormap::Gray);
    for (g, c) in gray.iter().zip(colour.chunks_exact(3)) {
        assert_eq!([*g; 3], rgb(c));
    }
}

#[test]
fn rdbu_is_near_white_at_zero_red_for_positive_blue_for_negative() {
    let pixels = to_rgb8(&[0.0, 1.0, -1.0, 0.3, -0.3], -1.0, 1.0, Colormap::Rdbu);
    let zero = rgb(&pixels[0..3]);
    assert!(
        zero.iter().all(|&v| v >= 235),
        "zero should be near-white, got {zero:?}"
    );
    // (value, colour, the channel that leads, the one it leads by 40).
    for (i, name, colour, lead, other) in [
        (1, "+1", "red", 0, 2),
        (3, "+0.3", "red", 0, 2),
        (2, "-1", "blue", 2, 0),
        (4, "-0.3", "blue", 2, 0),
    ] {
        let pixel = rgb(&pixels[i * 3..]);
        assert!(
            pixel[lead] > pixel[other] + 40,
            "{name} should be {colour}, got {pixel:?}"
        );
    }
    assert!(Colormap::Rdbu.is_diverging());
    assert!(!Colormap::Viridis.is_diverging());
}

#[test]
fn viridis_is_dark_purple_at_0_and_yellow_at_1() {
    let [r, g, b] = Colormap::Viridis.colour(0.0);
    assert!(
        r < 90 && g < 30 && b > 60 && b > g,
        "low end {:?}",
        [r, g, b]
    );
    let [r, g, b] = Colormap::Viridis.colour(1.0);
    assert!(r > 220 && g > 200 && b < 60, "high end {:?}", [r, g, b]);
    // to_rgb8 hits the same ends through the lookup table.
    let pixels = to_rgb8(&[0.0, 10.0], 0.0, 10.0, Colormap::Viridis);
    assert_eq!(rgb(&pixels[0..3]), Colormap::Viridis.colour(0.0));
    assert_eq!(rgb(&pixels[3..6]), Colormap::Viridis.colour(1.0));
}

#[test]
fn colour_clamps_t_and_nan_goes_to_the_neutral_point() {
    for cmap in Colormap::ALL {
        assert_eq!(cmap.colour(-3.0), cmap.colour(0.0), "{cmap}");
        assert_eq!(cmap.colour(7.0), cmap.colour(1.0), "{cmap}");
        let neutral = if cmap.is_diverging() { 0.5 } else { 0.0 };
        assert_eq!(cmap.colour(f32::NAN), cmap.colour(neutral), "{cmap}");
    }
}

#[test]
fn a_zero_width_range_paints_the_middle_colour() {
    let pixels = to_rgb8(&[4.0, 4.0], 4.0, 4.0, Colormap::Magma);
    assert_eq!(rgb(&pixels[0..3]), Colormap::Magma.colour(0.5));
    assert_eq!(rgb(&pixels[3..6]), Colormap::Magma.colour(0.5));
    assert_eq!(to_rgb8(&[1.0], 1.0, 1.0, Colormap::Gray), [128, 128, 128]);
}

#[test]
fn every_colour_map_is_found_by_its_name() {
    for cmap in Colormap::ALL {
        assert_eq!(Colormap::from_name(cmap.name()), Some(cmap));
        assert_eq!(cmap.name().parse::<Colormap>(), Ok(cmap));
    }
    assert_eq!(Colormap::from_name("Viridis"), Some(Colormap::Viridis));
    assert_eq!(Colormap::from_name("grey"), Some(Colormap::Gray));
    assert_eq!(Colormap::from_name("rainbowz"), None);
    assert!("nope".parse::<Colormap>().unwrap_err().contains("rdbu"));
}

// ----------------------------------------------------------- normalisation

#[test]
fn normalize_parse_accepts_per_map_global_and_ranges() {
    assert_eq!(Normalize::parse("per-map"), Ok(Normalize::PerMap));
    assert_eq!(Normalize::parse("global"), Ok(Normalize::Global));
    assert_eq!(
        Normalize::parse("-1,1"),
        Ok(Normalize::Fixed { lo: -1.0, hi: 1.0 })
    );
    assert_eq!(
        Normalize::parse("0,2.5"),
        Ok(Normalize::Fixed { lo: 0.0, hi: 2.5 })
    );
    assert_eq!(
        Normalize::parse(" -0.5 , 1e-1 "),
        Ok(Normalize::Fixed { lo: -0.5, hi: 0.1 })
    );
}

#[test]
fn normalize_parse_refuses_bad_ranges() {
    for bad in [
        "", "permap", "1", "1,", ",1", "a,b", "1,1", "2,1", "nan,1", "0,inf", "-inf,0", "1,2,3",
    ] {
        let error = Normalize::parse(bad).expect_err(bad);
        assert!(!error.is_empty(), "{bad}: empty message");
    }
    assert!(Normalize::parse("2,1").unwrap_err().contains("smaller"));
}

#[test]
fn ranges_pick_the_map_all_maps_or_the_fixed_values() {
    let (map, all) = ((0.5, 2.0), (-1.0, 3.0));
    assert_eq!(Normalize::PerMap.range(map, all, false), (0.5, 2.0));
    assert_eq!(Normalize::Global.range(map, all, false), (-1.0, 3.0));
    let fixed = Normalize::Fixed { lo: 0.0, hi: 2.5 };
    assert_eq!(fixed.range(map, all, false), (0.0, 2.5));
}

#[test]
fn diverging_ranges_are_symmetric_around_zero() {
    let (map, all) = ((0.5, 2.0), (-1.0, 3.0));
    assert_eq!(Normalize::PerMap.range(map, all, true), (-2.0, 2.0));
    assert_eq!(Normalize::Global.range(map, all, true), (-3.0, 3.0));
    let fixed = Normalize::Fixed { lo: -4.0, hi: 1.0 };
    assert_eq!(fixed.range(map, all, true), (-4.0, 4.0));
    assert_eq!(
        Normalize::PerMap.range((-0.25, -0.1), all, true),
        (-0.25, 0.25)
    );
    // A flat zero map stays zero-width: the caller paints it flat.
    let (lo, hi) = Normalize::PerMap.range((0.0, 0.0), all, true);
    assert_eq!(hi - lo, 0.0);
}

// -------------------------------------------------------------------- grid

fn gradient_map(width: u32, height: u32, k: u32) -> Vec<u8> {
    let values: Vec<f32> = (0..height)
        .flat_map(|y| (0..width).map(move |x| (x + y + k) as f32))
        .collect();
    // x + y + k runs from k to (width − 1) + (height − 1) + k.
    let (lo, hi) = (k as f32, (width + height - 2 + k) as f32);
    to_rgb8(&values, lo, hi, Colormap::Viridis)
}

#[test]
fn grid_geometry_for_1_2_3_10_32_and_256_maps() {
    for (width, height) in [(508, 508), (64, 40), (8, 8), (3000, 200)] {
        for count in [1u32, 2, 3, 10, 32, 256] {
            let (tile_width, tile_height) = grid_tile_size(count, width, height);
            let layout = GridLayout::new(count, tile_width, tile_height);
            let (columns, rows) = grid_shape(count);
            assert_eq!((layout.columns, layout.rows), (columns, rows));
            assert!(layout.zoom >= 1);
            assert_eq!(layout.cell_width, tile_width * layout.zoom);
            assert_eq!(layout.cell_height, tile_height * layout.zoom);
            assert_eq!(
                layout.width,
                columns * layout.cell_width + (columns + 1) * GRID_GAP
            );
            assert_eq!(
                layout.height,
                rows * layout.cell_height + (rows + 1) * GRID_GAP
            );
            let case = format!("{count} maps of {width}×{height}: {layout:?}");
            assert!(layout.width <= GRID_MAX_SIDE, "{case}");
            assert!(layout.height <= GRID_MAX_SIDE, "{case}");
            // Small tiles grow to MIN_TILE_SIDE when there is room.
            if tile_width.min(tile_height) * layout.zoom < MIN_TILE_SIDE {
                let bigger = GridLayout {
                    zoom: layout.zoom + 1,
                    ..layout
                };
                let next_width = columns * tile_width * bigger.zoom + (columns + 1) * GRID_GAP;
                let next_height = rows * tile_height * bigger.zoom + (rows + 1) * GRID_GAP;
                assert!(
                    next_width > GRID_MAX_SIDE || next_height > GRID_MAX_SIDE,
                    "{case}"
                );
            }
            for index in [0, count - 1] {
                let (x, y) = layout.origin(index);
                assert_eq!(
                    x,
                    GRID_GAP + (index % columns) * (layout.cell_width + GRID_GAP)
                );
                assert_eq!(
                    y,
                    GRID_GAP + (index / columns) * (layout.cell_height + GRID_GAP)
                );
                assert!(x + layout.cell_width + GRID_GAP <= layout.width, "{case}");
                assert!(y + layout.cell_height + GRID_GAP <= layout.height, "{case}");
            }
        }
    }
}

#[test]
fn grid_picture_matches_its_layout_and_places_each_tile() {
    for count in [1u32, 2, 3, 10, 32] {
        let (width, height) = (40, 30);
        let maps: Vec<Vec<u8>> = (0..count)
            .map(|k| {
                let v = (k * 7) as u8;
                [v, 255 - v, 100].repeat((width * height) as usize)
            })
            .collect();
        let picture = rgb_grid(&maps, width, height);
        let (tile_width, tile_height) = grid_tile_size(count, width, height);
        let layout = GridLayout::new(count, tile_width, tile_height);
        assert_eq!(picture.dimensions(), (layout.width, layout.height));
        for k in 0..count {
            // Bottom-right corner of each tile: away from its label.
            let (x, y) = layout.origin(k);
            let pixel = picture.get_pixel(x + layout.cell_width - 1, y + layout.cell_height - 1);
            let v = (k * 7) as u8;
            assert_eq!(pixel.0, [v, 255 - v, 100], "tile {k}");
        }
        // Gaps are white.
        assert_eq!(picture.get_pixel(0, 0).0, [255; 3]);
    }
}

#[test]
fn tiny_maps_are_enlarged_to_stay_visible() {
    // 256 maps of 8×8: 8-px tiles, enlarged 6× to 48 px.
    let maps: Vec<Vec<u8>> = (0..256).map(|k| gradient_map(8, 8, k)).collect();
    let picture = rgb_grid(&maps, 8, 8);
    let layout = GridLayout::new(256, 8, 8);
    assert_eq!(layout.zoom, 6);
    assert_eq!(
        picture.dimensions(),
        (16 * 48 + 17 * GRID_GAP, 16 * 48 + 17 * GRID_GAP)
    );
    // Nearest-neighbour: the tile's last map pixel fills a 6×6 block.
    let (x, y) = layout.origin(255);
    let corner = picture.get_pixel(x + 47, y + 47).0;
    assert_eq!(picture.get_pixel(x + 42, y + 42).0, corner);
    assert_eq!(rgb(&maps[255][(63 * 3)..]), corner);
}

#[test]
fn labels_mark_the_corner_of_each_tile() {
    for (count, width, height) in [(1u32, 508, 508), (32, 100, 80), (256, 8, 8), (256, 60, 60)] {
        let tiles: Vec<RgbGridTile> = (0..count)
            .map(|k| {
                let mut tile = RgbGridTile::for_grid(count, width, height);
                tile.add_rows(0, &gradient_map(width, height, k));
                tile
            })
            .collect();
        let labels: Vec<String> = (0..count).map(|k| k.to_string()).collect();
        let plain = labelled_grid(&tiles, &[]);
        let labelled = labelled_grid(&tiles, &labels);
        assert_eq!(plain.dimensions(), labelled.dimensions());
        let layout = GridLayout::new(count, tiles[0].width(), tiles[0].height());
        for k in [0, count - 1] {
            let (x, y, w, h) = label_rect(&layout, k, &labels[k as usize]).expect("a label");
            let differs = (y..y + h)
                .flat_map(|py| (x..x + w).map(move |px| (px, py)))
                .filter(|&(px, py)| plain.get_pixel(px, py) != labelled.get_pixel(px, py))
                .count();
            assert!(
                differs > 0,
                "{count} maps of {width}×{height}: no label on tile {k}"
            );
            // The label stays in a corner: the tile's far corner is untouched.
            let (ox, oy) = layout.origin(k);
            let far = (ox + layout.cell_width - 1, oy + layout.cell_height - 1);
            assert_eq!(
                plain.get_pixel(far.0, far.1),
                labelled.get_pixel(far.0, far.1)
            );
            // …and covers at most a quarter of the tile.
            assert!(
                (w * h) as f64 <= 0.25 * (layout.cell_width * layout.cell_height) as f64,
                "{count} maps of {width}×{height}: label {w}×{h} on a {}×{} tile",
                layout.cell_width,
                layout.cell_height
            );
        }
        // Everything outside the label boxes is the same.
        let mut inside = vec![false; (labelled.width() * labelled.height()) as usize];
        for k in 0..count {
            if let Some((x, y, w, h)) = label_rect(&layout, k, &labels[k as usize]) {
                for py in y..y + h {
                    for px in x..x + w {
                        inside[(py * labelled.width() + px) as usize] = true;
                    }
                }
            }
        }
        let outside_differs = labelled
            .enumerate_pixels()
            .filter(|&(px, py, pixel)| {
                !inside[(py * labelled.width() + px) as usize] && plain.get_pixel(px, py) != pixel
            })
            .count();
        assert_eq!(outside_differs, 0);
    }
}

#[test]
fn tiles_under_6_px_get_no_label() {
    // One map of 2×4000: a 2-px-wide tile that cannot grow (4000 px tall).
    let (width, height) = (2, 4000);
    let mut tile = RgbGridTile::for_grid(1, width, height);
    tile.add_rows(0, &gradient_map(width, height, 0));
    let layout = GridLayout::new(1, tile.width(), tile.height());
    assert_eq!(layout.label_scale, 0);
    let tiles = [tile];
    assert_eq!(
        labelled_grid(&tiles, &["0".to_string()]),
        labelled_grid(&tiles, &[])
    );
}

#[test]
fn rgb_tile_is_the_box_filtered_mean_of_the_map_in_any_row_order() {
    // A 4×2 map into a 2×1 tile: each tile pixel averages a 2×2 block.
    let map: Vec<u8> = [
        [0, 10, 200],
        [4, 20, 100],
        [100, 0, 0],
        [200, 0, 0],
        [8, 30, 0],
        [12, 40, 100],
        [100, 0, 0],
        [100, 0, 0],
    ]
    .concat();
    let mut tile = RgbGridTile::new(4, 2, 2, 1);
    tile.add_rows(1, &map[12..]);
    tile.add_rows(0, &map[..12]);
    assert_eq!(tile.pixels(), [6, 25, 100, 125, 0, 0]);
}

// ------------------------------------------------------------------- font

#[test]
fn text_size_counts_glyphs_spacing_and_margin() {
    assert_eq!(text_size("", 3), (0, 0));
    assert_eq!(text_size("7", 1), (5, 7));
    assert_eq!(text_size("255", 1), (13, 7));
    assert_eq!(text_size("b=-0.123", 2), (66, 14));
}

#[test]
fn draw_text_paints_fg_on_its_box_and_clips_at_the_edge() {
    let mut image = RgbImage::from_pixel(20, 10, Rgb([50, 50, 50]));
    draw_text(&mut image, 0, 0, "1", 1, [255, 0, 0], Some([0, 0, 255]));
    // "1" is 010/110/010/010/111: its top row has ink in the middle column.
    assert_eq!(image.get_pixel(0, 0).0, [0, 0, 255]); // margin
    assert_eq!(image.get_pixel(2, 1).0, [255, 0, 0]); // ink
    assert_eq!(image.get_pixel(1, 1).0, [0, 0, 255]); // box
    assert_eq!(image.get_pixel(5, 0).0, [50, 50, 50]); // outside the box
    // Off the edge, huge scales, odd characters: clipped, never a panic.
    draw_text(&mut image, 18, 8, "-0.5e3 k?", 4, [0; 3], Some([9; 3]));
    draw_text(
        &mut image,
        u32::MAX,
        u32::MAX,
        "123",
        u32::MAX,
        [0; 3],
        None,
    );
    draw_text(&mut image, 0, 0, "ünïcode ✓", 0, [0; 3], None);
    assert_eq!(image.get_pixel(18, 8).0, [9; 3]);
}

// ----------------------------------------------------------------- filters

fn layer(in_channels: u32, filters: u32, kernel: u32, groups: u32, bias: bool) -> Layer {
    let mut spec = LayerSpec::new(in_channels, filters, kernel);
    spec.groups = groups;
    spec.bias = bias;
    let weight: Vec<f32> = (0..spec.weight_len())
        .map(|i| ((i * 37 % 101) as f32 / 101.0 - 0.5) * 0.2)
        .collect();
    let bias: Vec<f32> = (0..spec.bias_len())
        .map(|k| -0.123 + 0.01 * k as f32)
        .collect();
    Layer::new(spec, weight, bias).expect("a valid layer")
}

#[test]
fn filters_picture_of_8_rgb_filters_of_5x5() {
    let layer = layer(3, 8, 5, 1, true);
    let layout = FiltersLayout::new(&layer, false);
    // 5 px tall → ×10 = 50 px, plus a 1-px frame; 3 columns like the
    // 8-map grid.
    assert_eq!(layout.zoom, 10);
    assert_eq!((layout.tile_width, layout.tile_height), (52, 52));
    assert_eq!((layout.columns, layout.rows), (3, 3));
    assert_eq!((layout.columns, layout.rows), grid_shape(8));
    // The widest label ("b=-0.123" at scale 2) is 66 px: cells are 66 wide.
    assert_eq!(layout.cell_width, 66);
    assert_eq!(layout.cell_height, 52 + 2 + 14);
    let picture = filters_picture(&layer, false);
    assert_eq!(
        picture.dimensions(),
        (3 * 66 + 4 * FILTER_GAP, 3 * 68 + 4 * FILTER_GAP)
    );
}

#[test]
fn per_channel_filters_are_about_three_times_as_wide() {
    let layer = layer(3, 8, 5, 1, false);
    let rgb = FiltersLayout::new(&layer, false);
    let channels = FiltersLayout::new(&layer, true);
    assert_eq!(rgb.zoom, channels.zoom);
    assert_eq!(channels.tile_width, 3 * rgb.tile_width + 2 * CHANNEL_GAP);
    let (rgb_picture, channel_picture) = (
        filters_picture(&layer, false),
        filters_picture(&layer, true),
    );
    let ratio = channel_picture.width() as f64 / rgb_picture.width() as f64;
    assert!((2.5..=3.2).contains(&ratio), "ratio {ratio}");
    assert_eq!(rgb_picture.height(), channel_picture.height());
    // With groups = 3 each filter sees one channel: one grey tile.
    let grouped = self::layer(3, 6, 5, 3, true);
    assert_eq!(FiltersLayout::new(&grouped, false).tile_width, 52);
}

#[test]
fn the_largest_weight_on_red_is_drawn_255_128_128() {
    // Filter 5 of 8 has +max on channel 0 at the centre; filter 2 has
    // −max/2 on channel 2 at the centre; all else is zero.
    let spec = LayerSpec::new(3, 8, 5);
    let mut weight = vec![0.0f32; spec.weight_len()];
    let at = |k: usize, c: usize, y: usize, x: usize| ((k * 3 + c) * 5 + y) * 5 + x;
    weight[at(5, 0, 2, 2)] = 0.8;
    weight[at(2, 2, 2, 2)] = -0.4;
    let layer = Layer::new(spec, weight, vec![0.0; 8]).unwrap();
    let layout = FiltersLayout::new(&layer, false);
    let picture = filters_picture(&layer, false);
    let centre = |k: u32| {
        let (x, y) = layout.tile_origin(k);
        picture
            .get_pixel(x + layout.tile_width / 2, y + layout.tile_height / 2)
            .0
    };
    assert_eq!(centre(5), [255, 128, 128]);
    let [r, g, b] = centre(2);
    assert_eq!((r, g), (128, 128));
    assert!((64..=65).contains(&b), "−max/2 → 128 − 63.5, got {b}");
    assert_eq!(centre(0), [128, 128, 128]);
    // The corner weight of filter 5 is zero: mid-grey, inside its frame.
    let (x, y) = layout.tile_origin(5);
    assert_eq!(picture.get_pixel(x, y).0, FRAME_COLOUR);
    assert_eq!(picture.get_pixel(x + 1, y + 1).0, [128, 128, 128]);

    // Per channel: filter 5's red tile is white at its centre, the others
    // mid-grey; each 5×5 tile has a 1-px frame, 2 px apart.
    let tile = filter_tile(&layer, 5, true, 1);
    assert_eq!(tile.dimensions(), (3 * 7 + 2 * CHANNEL_GAP, 7));
    assert_eq!(tile.get_pixel(1 + 2, 1 + 2).0, [255; 3]);
    assert_eq!(tile.get_pixel(7 + 2 + 1 + 2, 1 + 2).0, [128; 3]);
    assert_eq!(tile.get_pixel(7, 3).0, [255; 3]); // the gap is background
    assert_eq!(tile.get_pixel(6, 3).0, FRAME_COLOUR);

    assert_eq!(weight_level(0.0, 0.0), 128);
    assert_eq!(weight_level(-1.0, 1.0), 1);
}

/// The (column, row) of each of `origins`, by the rank of its x and y
/// among all of them: where a cell sits, whatever the arithmetic placed it.
fn cell_ranks(origins: &[(u32, u32)]) -> Vec<(usize, usize)> {
    let rank = |values: Vec<u32>, v: u32| {
        let mut distinct = values;
        distinct.sort_unstable();
        distinct.dedup();
        distinct.binary_search(&v).unwrap()
    };
    let xs: Vec<u32> = origins.iter().map(|o| o.0).collect();
    let ys: Vec<u32> = origins.iter().map(|o| o.1).collect();
    origins
        .iter()
        .map(|&(x, y)| (rank(xs.clone(), x), rank(ys.clone(), y)))
        .collect()
}

#[test]
fn filter_i_sits_where_map_i_sits() {
    for count in [1u32, 3, 10, 32, 256] {
        let layer = layer(3, count, 3, 1, true);
        let filters = FiltersLayout::new(&layer, false);
        let maps = convmaps::render::grid::GridLayout::new(count, 30, 20);
        let filter_cells = cell_ranks(
            &(0..count)
                .map(|k| filters.cell_origin(k))
                .collect::<Vec<_>>(),
        );
        let map_cells = cell_ranks(&(0..count).map(|k| maps.origin(k)).collect::<Vec<_>>());
        assert_eq!(filter_cells, map_cells, "{count} filters");
        // Reading order: left to right, then top to bottom.
        assert!(
            filter_cells
                .windows(2)
                .all(|w| (w[0].1, w[0].0) < (w[1].1, w[1].0))
        );
    }
}

#[test]
fn filters_pictures_stay_reasonable_for_256_filters_and_kernels_1_to_11() {
    for kernel in [1, 3, 5, 7, 11] {
        for per_channel in [false, true] {
            let layer = layer(3, 256, kernel, 1, true);
            let layout = FiltersLayout::new(&layer, per_channel);
            let case = format!("{kernel}×{kernel}, per channel {per_channel}: {layout:?}");
            assert!(layout.width <= GRID_MAX_SIDE, "{case}");
            assert!(layout.height <= GRID_MAX_SIDE, "{case}");
            assert!(layout.tile_height >= 40, "{case}");
        }
    }
}

#[test]
fn bias_labels_are_printed_under_each_filter_only_with_bias() {
    assert_eq!(bias_label(-0.123), "b=-0.123");
    assert_eq!(bias_label(0.0), "b=0");
    assert_eq!(bias_label(1.5e-5), "b=1.5e-5");
    let with = layer(3, 4, 5, 1, true);
    let without = layer(3, 4, 5, 1, false);
    let layout = FiltersLayout::new(&with, false);
    let picture = filters_picture(&with, false);
    let (x, y) = layout.cell_origin(0);
    let label_top = y + layout.tile_height;
    let ink = (label_top..label_top + layout.label_height + 2)
        .flat_map(|py| (x..x + layout.cell_width).map(move |px| (px, py)))
        .filter(|&(px, py)| picture.get_pixel(px, py).0 == [0, 0, 0])
        .count();
    assert!(ink > 20, "only {ink} dark pixels under filter 0");
    let bare = FiltersLayout::new(&without, false);
    assert_eq!(bare.label_height, 0);
    assert_eq!(bare.cell_height, bare.tile_height);
    assert!(
        filters_picture(&without, false)
            .pixels()
            .all(|p| p.0 != [0, 0, 0])
    );
}

// -------------------------------------------------------------------- page

fn page() -> Page {
    Page {
        title: "photo.png <script>alert(1)</script> & co".to_string(),
        input_image: "input.png".to_string(),
        parameter_line: "(3·5·5 + 1)·32 = 2432".to_string(),
        parameter_detail: "2400 weights + 32 biases".to_string(),
        layer_line: "32 filters of 5×5, stride 1".to_string(),
        pytorch_line: "nn.Conv2d(3, 32, kernel_size=5)".to_string(),
        grid_image: "grid.png".to_string(),
        filters_image: "filters.png".to_string(),
        maps: (0..3)
            .map(|k| PageMap {
                index: k,
                image: format!("feature_{k:02}.png"),
                filter_image: Some(format!("filter_{k:02}.png")),
                min: -1.5,
                max: 2.25,
                mean: 0.125,
                bias: Some(-0.0625),
            })
            .collect(),
        live: Default::default(),
        stack: None,
        explore: None,
        layer_name: String::new(),
        frame_input: false,
    }
}

#[test]
fn page_shows_every_image_by_its_relative_name() {
    let html = index_html(&page());
    for name in [
        "input.png",
        "grid.png",
        "filters.png",
        "feature_00.png",
        "feature_02.png",
        "filter_01.png",
    ] {
        assert!(html.contains(&format!("src=\"{name}\"")), "{name} missing");
    }
    assert!(html.contains("(3·5·5 + 1)·32 = 2432"));
    assert!(html.contains("-0.0625") && html.contains("2.2500") && html.contains("0.1250"));
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("src=\"/"));
    assert_eq!(html.matches("<img ").count(), 3 + 3 + 3);
}

#[test]
fn page_escapes_text() {
    let html = index_html(&page());
    assert!(
        html.contains("<title>photo.png &lt;script&gt;alert(1)&lt;/script&gt; &amp; co</title>")
    );
    assert!(!html.contains("<script>alert"));
    // One script element: the counter.
    assert_eq!(html.matches("<script>").count(), 1);
    let mut odd = page();
    odd.maps[0].image = "my map #1.png".to_string();
    let html = index_html(&odd);
    assert!(html.contains("src=\"my%20map%20%231.png\""));
}

#[test]
fn page_without_filter_pictures_or_bias_leaves_them_out() {
    let mut page = page();
    for map in &mut page.maps {
        map.filter_image = None;
        map.bias = None;
    }
    page.filters_image.clear();
    let html = index_html(&page);
    assert!(!html.contains("filter_0"));
    assert!(!html.contains("<th>weights</th>"));
    assert!(!html.contains("filters.png"));
    assert!(html.contains(">none<"));
}
