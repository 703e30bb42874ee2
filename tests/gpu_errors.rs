//! GPU errors come back as errors with a message, never as a panic from
//! wgpu's default handler.

mod common;

use convmaps::Error;

#[test]
fn a_validation_error_inside_a_scope_is_an_error_naming_the_stage() {
    let Some(gpu) = common::gpu() else {
        return;
    };
    let too_big = gpu.limits().max_buffer_size.saturating_add(4);
    let result = gpu.scoped("test allocation", || {
        gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("too big"),
            size: too_big,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        })
    });
    match result {
        Err(Error::Gpu { stage, message }) => {
            assert_eq!(stage, "test allocation");
            assert!(!message.is_empty());
        }
        Err(other) => panic!("expected a GPU error, got {other}"),
        Ok(_) => panic!("a buffer over max_buffer_size was accepted"),
    }
}

/// A layer of 1×1 filters over `channels` channels and a random 2×2 input.
fn deep_layer(channels: u32) -> (convmaps::tensor::Tensor3, convmaps::layer::Layer) {
    let mut rng = common::rng(u64::from(channels));
    let image = common::random_image(&mut rng, channels, 2, 2);
    let layer = common::random_layer(&mut rng, convmaps::layer::LayerSpec::new(channels, 2, 1));
    (image, layer)
}

#[test]
fn a_layer_past_a_software_gpus_loop_limit_is_refused_not_computed_wrong() {
    let Some(gpu) = common::gpu() else {
        return;
    };
    let software = gpu.info.device_type == wgpu::DeviceType::Cpu;
    for shader in [
        convmaps::gpu::ShaderKind::Direct,
        convmaps::gpu::ShaderKind::Fast,
    ] {
        let engine = convmaps::engine::GpuEngine::new(gpu.clone(), shader).unwrap();
        // 10,900·6 = 65,400 iterations: runs, and right.
        let (image, layer) = deep_layer(10_900);
        assert!(convmaps::gpu::loop_iterations(&layer) <= 65_535);
        let expected = convmaps::cpu::conv2d_direct(&image, &layer).unwrap();
        let maps = common::run(&engine, &image, &layer);
        common::assert_close("10,900 channels", &maps, &expected, 1e-4, 1e-4);
        // 10,950·6 = 65,700: measured wrong on lavapipe, so refused there.
        let (image, layer) = deep_layer(10_950);
        let result = convmaps::engine::Engine::run(&engine, &image, &layer);
        match (software, result) {
            (true, Err(Error::GpuLimit(message))) => {
                assert!(message.contains("10950 channels"), "{message}");
                assert!(message.contains("--backend cpu"), "{message}");
            }
            (true, other) => panic!(
                "{shader:?}: expected a refusal, got {:?}",
                other.map(|_| ())
            ),
            (false, result) => {
                let expected = convmaps::cpu::conv2d_direct(&image, &layer).unwrap();
                let (maps, _) = result.unwrap();
                common::assert_close("10,950 channels", &maps, &expected, 1e-4, 1e-4);
            }
        }
    }
}
