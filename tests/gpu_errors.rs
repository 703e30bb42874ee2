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
