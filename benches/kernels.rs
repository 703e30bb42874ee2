//! Shader throughput: `cargo bench`. Compute time only (upload and readback
//! excluded), on the adapter wgpu picks (honouring WGPU_* variables), and
//! the CPU reference. Sizes are small enough for a software GPU; use
//! `convmaps bench --sizes ...` for photo-sized runs.

use std::time::Duration;

use std::sync::Arc;

use convmaps::bench::{case, flops};
use convmaps::engine::{Engine, GpuEngine};
use convmaps::gpu::{Gpu, ShaderKind};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn kernels(c: &mut Criterion) {
    let direct = Gpu::new()
        .ok()
        .and_then(|gpu| GpuEngine::new(Arc::new(gpu), ShaderKind::Direct).ok());
    for (width, height) in [(128, 96), (256, 192)] {
        let (image, layer) = case(width, height, 32, 5).expect("bench case");
        let mut group = c.benchmark_group(format!("conv {width}x{height} 32x5x5"));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(10));
        group.throughput(Throughput::Elements(
            flops(&image, &layer).expect("flops") as u64
        ));
        if let Some(direct) = &direct {
            group.bench_function("direct", |b| {
                b.iter_custom(|iterations| {
                    (0..iterations)
                        .map(|_| direct.run(&image, &layer).expect("direct run").1.compute)
                        .sum()
                })
            });
        }
        group.bench_function("cpu", |b| {
            b.iter(|| convmaps::cpu::conv2d_direct(&image, &layer).expect("cpu run"))
        });
        group.finish();
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
