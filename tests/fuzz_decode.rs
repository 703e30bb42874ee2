//! Thousands of mutated PNG and JPEG files through the decoding path: each
//! is decoded or refused with an error naming the file, never a panic.

mod common;

use std::path::Path;

use convmaps::photo;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

/// The files the mutants start from: the test photo as PNG and as JPEG,
/// and a 16-bit grey PNG.
fn seed_files(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let read = |path: &Path| std::fs::read(path).unwrap();
    let png = read(&common::save_photo(&dir.join("seed.png"), 19, 13));
    let jpeg = read(&common::save_photo(&dir.join("seed.jpg"), 19, 13));
    let gray16 = dir.join("gray16.png");
    image::ImageBuffer::<image::Luma<u16>, _>::from_fn(7, 5, |x, y| {
        image::Luma([(x * 9000 + y) as u16])
    })
    .save(&gray16)
    .unwrap();
    vec![("png", png), ("jpg", jpeg), ("png", read(&gray16))]
}

fn mutate(rng: &mut ChaCha8Rng, original: &[u8]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    match rng.next_u32() % 5 {
        0 => bytes.truncate(rng.next_u32() as usize % bytes.len()),
        1 => {
            for _ in 0..1 + rng.next_u32() % 8 {
                let i = rng.next_u32() as usize % bytes.len();
                bytes[i] ^= 1 << (rng.next_u32() % 8);
            }
        }
        2 => {
            let i = rng.next_u32() as usize % bytes.len();
            bytes[i] = rng.next_u32() as u8;
        }
        3 => {
            // Overwrite a header byte: dimensions, bit depth, colour type.
            let i = rng.next_u32() as usize % bytes.len().min(40);
            bytes[i] = [0, 0xFF, 0x7F, 0x80][rng.next_u32() as usize % 4];
        }
        _ => {
            let i = rng.next_u32() as usize % bytes.len();
            let junk: Vec<u8> = (0..rng.next_u32() % 64)
                .map(|_| rng.next_u32() as u8)
                .collect();
            bytes.splice(i..i, junk);
        }
    }
    bytes
}

#[test]
fn mutated_images_decode_or_fail_cleanly_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let (mut decoded, mut refused) = (0, 0);
    for (extension, original) in seed_files(dir.path()) {
        let path = dir.path().join(format!("mutant.{extension}"));
        for _ in 0..1000 {
            std::fs::write(&path, mutate(&mut rng, &original)).unwrap();
            // Small limit: a mutated header claiming a huge size is refused, not allocated.
            match photo::load_rgb(&path, 1 << 20) {
                Ok(tensor) => {
                    assert_eq!(tensor.channels, 3);
                    assert_eq!(tensor.data.len(), 3 * tensor.plane_len());
                    decoded += 1;
                }
                Err(error) => {
                    assert!(error.is_bad_input(), "{error}");
                    assert!(error.to_string().contains("mutant."), "{error}");
                    refused += 1;
                }
            }
        }
    }
    assert!(
        decoded > 0 && refused > 0,
        "decoded {decoded}, refused {refused}"
    );
}
