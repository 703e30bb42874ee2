//! Kernel throughput: `cargo bench`. Compute time only (upload and readback
//! excluded), on the adapter wgpu picks (honouring WGPU_* variables), and
//! the CPU reference. Sizes are small enough for a software GPU; use
//! `convmaps bench --sizes ...` for photo-sized runs.

use std::time::Duration;

use convmaps::bench::{case, flops};
use convmaps::gpu::{ConvKernel, DirectConv, Gpu};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn kernels(c: &mut Criterion) {
    let gpu = Gpu::new().ok();
    let direct = gpu.as_ref().and_then(|gpu| DirectConv::new(gpu).ok());
    for (width, height) in [(128, 96), (256, 192)] {
        let (image, layer) = case(width, height, 32, 5).expect("bench case");
        let mut group = c.benchmark_group(format!("conv {width}x{height} 32x5x5"));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(10));
        group.throughput(Throughput::Elements(
            flops(&image, &layer).expect("flops") as u64
        ));
        if let (Some(gpu), Some(direct)) = (&gpu, &direct) {
            group.bench_function("direct", |b| {
                b.iter_custom(|iterations| {
                    (0..iterations)
                        .map(|_| {
                            direct
                                .run(gpu, &image, &layer)
                                .expect("direct run")
                                .1
                                .compute
                        })
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
