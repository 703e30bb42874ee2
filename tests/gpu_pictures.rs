//! Statistics and pixels made on the engine (`shaders/map_pictures.wgsl`
//! on a GPU) equal their CPU twins: min and max exactly, the mean to f32
//! rounding of the chunks' sums, and every pixel the CPU's colouring or,
//! where f32 rounding lands a value on the other side of a level, the next
//! level, in a tiny, counted fraction of pixels. Across every colour map and
//! normalisation, with flat maps and maps of a single value.

mod common;

use convmaps::engine::{CpuEngine, GpuEngine, Pictures, Wants};
use convmaps::gpu::ShaderKind;
use convmaps::layer::{Layer, LayerSpec, Padding};
use convmaps::render::colormap::{Colormap, Normalize};
use convmaps::render::quantise::{BandPixels, Quantise};
use convmaps::settings::Placement;
use convmaps::stats::{MapStats, gpu_partials};
use convmaps::tensor::Tensor3;

/// The engines under test: the CPU, both shaders with the statistics and
/// pixels made on the GPU (whatever the adapter's default), and the fast
/// shader with them made on the host. Empty after a visible skip when
/// there is no GPU.
fn engines() -> Vec<(String, Box<dyn Pictures>)> {
    let mut engines: Vec<(String, Box<dyn Pictures>)> = vec![("cpu".into(), Box::new(CpuEngine))];
    let Some(gpu) = common::gpu() else {
        return engines;
    };
    for (shader, on) in [
        (ShaderKind::Direct, Placement::Gpu),
        (ShaderKind::Fast, Placement::Gpu),
        (ShaderKind::Fast, Placement::Host),
    ] {
        let engine = GpuEngine::new(gpu.clone(), shader)
            .unwrap()
            .with_pictures_on(on);
        let name = format!("{} shader, pictures on the {on:?}", shader.name());
        engines.push((name, Box::new(engine)));
    }
    engines
}

#[test]
fn every_engine_gives_the_cpu_statistics() {
    for (name, engine) in engines() {
        eprintln!("{name}");
        statistics_equal_the_cpu_statistics(engine.as_ref());
    }
}

#[test]
fn every_engine_colours_as_the_cpu_within_one_level() {
    for (name, engine) in engines() {
        eprintln!("{name}");
        pixels_equal_the_cpu_colouring_within_one_level(engine.as_ref());
    }
}

#[test]
fn every_engine_draws_kept_maps_as_in_one_pass() {
    for (name, engine) in engines() {
        eprintln!("{name}");
        kept_maps_draw_the_pixels_of_one_pass(engine.as_ref());
    }
}

/// A few layers and inputs: several chunks of the statistics per map, an
/// output of a single value, flat maps (zero weights), odd sizes.
fn cases() -> Vec<(&'static str, Tensor3, Layer)> {
    let mut rng = common::rng(14);
    let mut cases = Vec::new();
    let image = common::random_image(&mut rng, 3, 75, 93);
    let layer = common::random_layer(&mut rng, LayerSpec::new(3, 5, 3));
    cases.push(("73×91, 2 chunks a map", image, layer));
    let image = common::random_image(&mut rng, 2, 3, 3);
    let layer = common::random_layer(&mut rng, LayerSpec::new(2, 4, 3));
    cases.push(("one value a map", image, layer));
    let image = common::random_image(&mut rng, 1, 9, 13);
    let spec = LayerSpec {
        padding: Padding::split(2, 2, false),
        ..LayerSpec::new(1, 3, 3)
    };
    let bias = vec![0.25, -1.0, 0.0];
    let flat = Layer::new(spec, vec![0.0; spec.weight_len()], bias).unwrap();
    cases.push(("flat maps", image, flat));
    cases
}

/// The band of `layer` over `image` as `engine` hands it back, with the
/// f32 maps: (statistics, maps, pixels).
fn band(
    engine: &dyn Pictures,
    image: &Tensor3,
    layer: &Layer,
    pixels: Option<&Quantise>,
) -> (Vec<MapStats>, Tensor3, Option<BandPixels>) {
    let wants = Wants {
        stats: true,
        maps: true,
        pixels,
        keep: false,
    };
    let submitted = engine.submit_maps(image, layer, wants).unwrap();
    let (out, _, _) = submitted
        .read(|band| Ok((band.stats, band.maps.unwrap().to_tensor(), band.pixels)))
        .unwrap();
    out
}

fn statistics_equal_the_cpu_statistics(engine: &dyn Pictures) {
    for (name, image, layer) in cases() {
        let (stats, maps, _) = band(engine, &image, &layer, None);
        assert_eq!(stats.len(), maps.channels as usize, "{name}");
        for (k, (stats, plane)) in stats.iter().zip(maps.planes()).enumerate() {
            let got = stats.summary();
            let cpu = MapStats::of(plane).summary();
            let twin = MapStats::from_partials(&gpu_partials(plane), plane.len() as u64).summary();
            assert_eq!((got.min, got.max), (cpu.min, cpu.max), "{name}, map {k}");
            let scale = cpu.min.abs().max(cpu.max.abs()).max(1e-30);
            for (what, mean) in [("CPU", cpu.mean), ("the shader's twin", twin.mean)] {
                assert!(
                    (got.mean - mean).abs() <= 1e-6 * scale,
                    "{name}, map {k}: mean {} against {what}'s {mean}",
                    got.mean
                );
            }
        }
    }
}

/// The colour-table index the CPU gives `v` over `(lo, hi)`.
fn table_index(v: f32, (lo, hi): (f32, f32), diverging: bool) -> i64 {
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return 512;
    }
    let t = (v - lo) * (1.0 / (hi - lo));
    let t = if t.is_nan() {
        if diverging { 0.5 } else { 0.0 }
    } else {
        t.clamp(0.0, 1.0)
    };
    (t * 1024.0).round() as i64
}

/// Pixels of `pixels` that differ from `cpu`'s, each checked to be one
/// level (grey) or one table entry (colour) away; returns how many.
fn count_near_misses(
    what: &str,
    (pixels, cpu): (&BandPixels, &BandPixels),
    maps: &Tensor3,
    quantise: &Quantise,
) -> usize {
    assert_eq!(
        (pixels.map_len, pixels.maps),
        (cpu.map_len, cpu.maps),
        "{what}"
    );
    let bytes = quantise.bytes_per_pixel();
    let table = quantise.colormap.table();
    let mut misses = 0;
    for k in 0..cpu.maps {
        let (got, expected) = (pixels.map(k), cpu.map(k));
        for (p, (a, b)) in got.chunks(bytes).zip(expected.chunks(bytes)).enumerate() {
            if a == b {
                continue;
            }
            misses += 1;
            let v = maps.plane(k)[p];
            let range = quantise.ranges[k as usize];
            let near = if bytes == 1 {
                a[0].abs_diff(b[0]) == 1
            } else {
                let index = table_index(v, range, quantise.colormap.is_diverging());
                [index - 1, index + 1]
                    .iter()
                    .filter(|&&i| (0..table.len() as i64).contains(&i))
                    .any(|&i| table[i as usize][..] == *a)
            };
            assert!(
                near,
                "{what}: map {k} pixel {p} (value {v}, range {range:?}) is {a:?}, the CPU's {b:?}"
            );
        }
    }
    misses
}

fn pixels_equal_the_cpu_colouring_within_one_level(engine: &dyn Pictures) {
    let normalizations = [
        Normalize::PerMap,
        Normalize::Global,
        Normalize::Fixed { lo: -0.5, hi: 0.5 },
        Normalize::Fixed { lo: 0.0, hi: 3.0 },
    ];
    let (mut misses, mut pixels_seen) = (0, 0);
    for (name, image, layer) in cases() {
        let (stats, maps, _) = band(engine, &image, &layer, None);
        let all = stats
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), s| {
                (lo.min(s.min), hi.max(s.max))
            });
        for colormap in Colormap::ALL {
            for normalize in normalizations {
                let quantise = Quantise {
                    colormap,
                    ranges: stats
                        .iter()
                        .map(|s| normalize.range((s.min, s.max), all, colormap.is_diverging()))
                        .collect(),
                };
                let what = format!("{name}, {colormap}, {normalize}");
                let (_, again, pixels) = band(engine, &image, &layer, Some(&quantise));
                assert!(
                    again.data == maps.data,
                    "{what}: the maps are computed alike"
                );
                let pixels = pixels.expect("pixels asked for");
                let cpu = quantise.pixels_cpu(maps.view());
                misses += count_near_misses(&what, (&pixels, &cpu), &maps, &quantise);
                pixels_seen += maps.data.len();
            }
        }
    }
    eprintln!("{misses} of {pixels_seen} pixels one level from the CPU's");
    assert!(
        misses as f64 <= 1e-3 * pixels_seen as f64,
        "{misses} of {pixels_seen} pixels differ from the CPU's"
    );
}

fn kept_maps_draw_the_pixels_of_one_pass(engine: &dyn Pictures) {
    for (name, image, layer) in cases() {
        let quantise = Quantise {
            colormap: Colormap::Viridis,
            ranges: vec![(-1.0, 1.0); layer.spec.filters as usize],
        };
        let (_, _, direct) = band(engine, &image, &layer, Some(&quantise));
        let wants = Wants {
            stats: true,
            keep: true,
            ..Wants::default()
        };
        let (stats, _, kept) = engine
            .submit_maps(&image, &layer, wants)
            .unwrap()
            .read(|band| Ok(band.stats))
            .unwrap();
        assert_eq!(stats.len(), layer.spec.filters as usize, "{name}");
        let kept = kept.expect("the maps were kept");
        let (pixels, _, _) = engine
            .draw_kept(&kept, &quantise)
            .unwrap()
            .read(|band| Ok(band.pixels))
            .unwrap();
        assert!(pixels == direct, "{name}: kept maps drawn differently");
    }
}
