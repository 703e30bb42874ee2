//! Model readers bounded by the shape they expect: a tiny checkpoint that
//! declares a huge weight is refused before it is expanded, in little
//! memory; every reader refuses a tensor past its caller's bound; a
//! compressed PyTorch storage and safetensors headers the `safetensors`
//! crate refuses are errors naming the file. Then thousands of mutated
//! pickles, safetensors and `.npy` files through the readers: each loads or
//! is refused with an error naming the file, never a panic.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use convmaps::Error;
use convmaps::model::load::ConvInFile;
use convmaps::model::npy::NpyWeights;
use convmaps::model::pytorch::PytorchFile;
use convmaps::model::safetensors::SafetensorsFile;
use convmaps::model::{self, ModelFile};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

/// The address space the binary runs in when a test bounds its memory:
/// 200 MiB, far less than the 1 GiB a huge weight would take if expanded.
const MEMORY_LIMIT_KIB: u64 = 200 << 10;

/// Most values a mutation test lets a reader return: a mutated shape may
/// claim far more, and must be refused, not allocated.
const MUTANT_BOUND: usize = 1 << 16;

fn fixture(folder: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(folder)
        .join(name)
}

/// A pickle (protocol 2) of `{name: tensor}`, the tensor a view of shape
/// `shape` and strides `strides` into a float32 storage "0" of
/// `storage_len` values, as `torch.save` writes it.
fn tensor_pickle(name: &str, storage_len: i32, shape: &[i32], strides: &[i32]) -> Vec<u8> {
    let int = |value: i32| [&b"J"[..], &value.to_le_bytes()].concat();
    let tuple = |values: &[i32]| {
        let mut bytes = b"(".to_vec();
        values.iter().for_each(|&v| bytes.extend(int(v)));
        bytes.push(b't');
        bytes
    };
    let mut pickle = b"\x80\x02}(X".to_vec();
    pickle.extend((name.len() as u32).to_le_bytes());
    pickle.extend(name.bytes());
    pickle.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
    pickle.extend(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\n");
    pickle.extend(b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpu");
    pickle.extend(int(storage_len));
    pickle.extend(b"tQ");
    pickle.extend(int(0));
    pickle.extend(tuple(shape));
    pickle.extend(tuple(strides));
    pickle.extend(b"\x89ccollections\nOrderedDict\n)RtRu.");
    pickle
}

/// A zip checkpoint of `records`, each written with its compression method.
fn write_zip(path: &Path, records: &[(&str, &[u8], zip::CompressionMethod)]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, bytes, method) in records {
        let options = zip::write::SimpleFileOptions::default().compression_method(*method);
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

/// A zip checkpoint whose one storage holds `storage` (f32 values).
fn checkpoint(path: &Path, pickle: &[u8], storage: &[f32], method: zip::CompressionMethod) {
    let storage: Vec<u8> = storage.iter().flat_map(|v| v.to_le_bytes()).collect();
    let stored = zip::CompressionMethod::Stored;
    write_zip(
        path,
        &[
            ("archive/data.pkl", pickle, stored),
            ("archive/data/0", &storage, method),
            ("archive/byteorder", b"little", stored),
        ],
    );
}

/// The 538-byte kind of checkpoint: `{"weight": one stored value seen with
/// zero strides as [16384, 16384, 1, 1]}`, 2^28 values (1 GiB of f32) once
/// expanded.
fn huge_repeated_weight(path: &Path) {
    let pickle = tensor_pickle("weight", 1, &[16384, 16384, 1, 1], &[0, 0, 1, 1]);
    checkpoint(path, &pickle, &[0.5], zip::CompressionMethod::Stored);
}

/// Runs convmaps with `args`, its address space limited to
/// [`MEMORY_LIMIT_KIB`]: an allocation past it fails and aborts the
/// process, which then does not exit with 2.
#[test]
fn a_tiny_checkpoint_repeating_one_value_over_16384x16384_is_exit_2_in_200_mib() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("huge.pth");
    huge_repeated_weight(&model);
    let size = std::fs::metadata(&model).unwrap().len();
    assert!(size < 600, "the checkpoint is {size} bytes");
    let photo = common::photo(dir.path(), 8, 6);
    let out = dir.path().join("out");
    common::convmaps([&photo])
        .arg("--weights")
        .arg(&model)
        .cpu()
        .out(&out)
        .within_memory(MEMORY_LIMIT_KIB)
        .fails_with(
            2,
            &["huge.pth", "\"weight\"", "[16384, 16384, 1, 1]", "3 (RGB)"],
        );
    common::assert_not_written(&out);
}

#[test]
fn a_huge_repeated_weight_the_input_could_feed_is_refused_by_its_reader_in_200_mib() {
    // A tensor input of 16384 channels: the conv's shape fits it, and the
    // reader itself refuses to expand one value 2^28 times over.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("huge.pth");
    huge_repeated_weight(&model);
    let input = dir.path().join("wide.npy");
    convmaps::npy::write_f32_nd(&input, &[16384, 2, 2], &vec![0.25; 16384 * 4]).unwrap();
    common::convmaps([&input])
        .arg("--weights")
        .arg(&model)
        .arg("--no-bias")
        .cpu()
        .out(dir.path().join("out"))
        .within_memory(MEMORY_LIMIT_KIB)
        .fails_with(
            2,
            &["huge.pth", "\"weight\"", "1 stored values", "268435456"],
        );
}

/// Asserts that `result` is a bad-input error naming the file `name` and
/// each of `parts`.
fn assert_refused<T>(result: convmaps::error::Result<T>, name: &str, parts: &[&str]) {
    let Err(error) = result else {
        panic!("{name} was accepted")
    };
    assert!(matches!(error, Error::Weights { .. }), "{error:?}");
    assert!(error.is_bad_input(), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(name), "should name {name}: {message}");
    for part in parts {
        assert!(message.contains(part), "should say {part}: {message}");
    }
}

/// Reads `tensor` of `model` (`count` values of `shape`) at a bound of one
/// value fewer, which is refused naming it and its file, then at its own
/// count.
fn bounded_read(model: &mut dyn ModelFile, tensor: &str, count: usize, shape: &str) {
    let file = model.tensor_path(tensor).file_name().unwrap();
    let name = file.to_str().unwrap().to_string();
    let bound = format!("more than the {}", count - 1);
    assert_refused(
        model.tensor_within(tensor, count - 1),
        &name,
        &[tensor, shape, &bound],
    );
    let read = model
        .tensor_within(tensor, count)
        .expect("within its bound");
    assert_eq!(read.values.len(), count, "{name} {tensor}");
}

#[test]
fn every_reader_refuses_a_tensor_past_its_bound_naming_tensor_and_shape() {
    let pytorch = fixture("pytorch", "state_dict.pt");
    bounded_read(
        model::open(&pytorch).unwrap().as_mut(),
        "conv1.weight",
        108,
        "[4, 3, 3, 3]",
    );
    let mut onnx = model::open(&fixture("onnx", "a.onnx")).unwrap();
    let conv = onnx.convs()[0].clone();
    let count = conv.weight_shape.iter().product();
    let shape = format!("{:?}", conv.weight_shape);
    bounded_read(onnx.as_mut(), &conv.weight, count, &shape);

    let dir = tempfile::tempdir().unwrap();
    let layer =
        convmaps::weights::kaiming_uniform(convmaps::layer::LayerSpec::new(3, 2, 3), 7).unwrap();
    let safetensors = dir.path().join("layer.safetensors");
    std::fs::write(
        &safetensors,
        convmaps::weights::to_safetensors(&layer).unwrap(),
    )
    .unwrap();
    bounded_read(
        model::open(&safetensors).unwrap().as_mut(),
        "weight",
        54,
        "[2, 3, 3, 3]",
    );
    let (weight, bias) = (dir.path().join("w.npy"), dir.path().join("b.npy"));
    convmaps::npy::write_f32_nd(&weight, &[2, 3, 3, 3], &layer.weight).unwrap();
    convmaps::npy::write_f32_nd(&bias, &[2], &layer.bias).unwrap();
    let mut npy = NpyWeights::open(&weight, Some(&bias)).unwrap();
    bounded_read(&mut npy, "weight", 54, "[2, 3, 3, 3]");
    // The bias is in a file of its own, which its error names.
    assert_eq!(npy.tensor_path("bias"), bias);
    bounded_read(&mut npy, "bias", 2, "[2]");
}

#[test]
fn a_compressed_storage_record_is_refused_naming_it_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deflated.pt");
    let pickle = tensor_pickle("conv.weight", 54, &[2, 3, 3, 3], &[27, 9, 3, 1]);
    checkpoint(&path, &pickle, &[0.5; 54], zip::CompressionMethod::Deflated);
    let mut file = PytorchFile::open(&path).expect("opens: the pickle is stored");
    assert_refused(
        file.tensor("conv.weight"),
        "deflated.pt",
        &["\"archive/data/0\"", "compressed"],
    );
    let photo = common::photo(dir.path(), 8, 6);
    common::convmaps([&photo])
        .arg("--weights")
        .arg(&path)
        .arg("--no-bias")
        .cpu()
        .out(dir.path().join("out"))
        .within_memory(MEMORY_LIMIT_KIB)
        .fails_with(2, &["deflated.pt", "archive/data/0"]);
}

/// A safetensors file of `header` (JSON) and `data_len` bytes of data.
fn safetensors_bytes(header: &str, data_len: usize) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.bytes());
    bytes.extend(vec![0u8; data_len]);
    bytes
}

#[test]
fn safetensors_headers_the_crate_refuses_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let f32_tensor = |name: &str, start: usize, end: usize| {
        let values = (end - start) / 4;
        format!(r#""{name}":{{"dtype":"F32","shape":[{values}],"data_offsets":[{start},{end}]}}"#)
    };
    let cases = [
        (
            "overlapping",
            f32_tensor("a", 0, 16) + "," + &f32_tensor("b", 8, 24),
            24,
        ),
        (
            "gap",
            f32_tensor("a", 0, 16) + "," + &f32_tensor("b", 20, 36),
            36,
        ),
        (
            "duplicate",
            f32_tensor("a", 0, 16) + "," + &f32_tensor("a", 16, 32),
            32,
        ),
        (
            "short_shape",
            r#""a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}"#.into(),
            16,
        ),
        ("past_the_data", f32_tensor("a", 0, 16), 12),
        ("before_more_data", f32_tensor("a", 0, 16), 20),
        (
            "no_dtype",
            r#""a":{"shape":[4],"data_offsets":[0,16]}"#.into(),
            16,
        ),
    ];
    for (name, tensors, data_len) in cases {
        let path = dir.path().join(format!("{name}.safetensors"));
        std::fs::write(
            &path,
            safetensors_bytes(&format!("{{{tensors}}}"), data_len),
        )
        .unwrap();
        let file_name = format!("{name}.safetensors");
        assert_refused(
            SafetensorsFile::open(&path),
            &file_name,
            &["not a valid safetensors file"],
        );
    }
    // The same tensors in a valid file, listed out of order in the header.
    let path = dir.path().join("valid.safetensors");
    let header = format!("{{{},{}}}", f32_tensor("b", 16, 32), f32_tensor("a", 0, 16));
    std::fs::write(&path, safetensors_bytes(&header, 32)).unwrap();
    let file = SafetensorsFile::open(&path).expect("valid");
    assert_eq!(
        file.tensor_names(),
        ["a", "b"],
        "in the order of their data"
    );
}

// ---- Mutated files ----

/// `original` with one deterministic mutation: a cut, flipped bits, a byte
/// replaced, a byte of its first 64 set to an edge value, or junk inserted.
fn mutate(rng: &mut ChaCha8Rng, original: &[u8]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    let at = |rng: &mut ChaCha8Rng, len: usize| rng.next_u32() as usize % len.max(1);
    match rng.next_u32() % 5 {
        0 => bytes.truncate(at(rng, original.len())),
        1 => {
            for _ in 0..1 + rng.next_u32() % 8 {
                let i = at(rng, bytes.len());
                bytes[i] ^= 1 << (rng.next_u32() % 8);
            }
        }
        2 => {
            let i = at(rng, bytes.len());
            bytes[i] = rng.next_u32() as u8;
        }
        3 => {
            // Lengths, opcodes and headers sit near the start.
            let i = at(rng, bytes.len().min(64));
            bytes[i] = [0, 0xFF, 0x7F, 0x80][rng.next_u32() as usize % 4];
        }
        _ => {
            let i = at(rng, bytes.len());
            let junk: Vec<u8> = (0..rng.next_u32() % 64)
                .map(|_| rng.next_u32() as u8)
                .collect();
            bytes.splice(i..i, junk);
        }
    }
    bytes
}

/// Whether a mutant loaded or was refused.
#[derive(Default, Debug)]
struct Outcomes {
    loaded: usize,
    refused: usize,
}

impl Outcomes {
    /// Counts `result`, asserting that an error is a bad-input error naming
    /// one of `files`.
    fn count<T>(&mut self, result: convmaps::error::Result<T>, files: &[&Path]) {
        match result {
            Ok(_) => self.loaded += 1,
            Err(error) => {
                let message = error.to_string();
                assert!(error.is_bad_input(), "{message}");
                assert!(
                    files
                        .iter()
                        .any(|f| message.contains(&f.display().to_string())),
                    "should name the file: {message}"
                );
                self.refused += 1;
            }
        }
    }

    /// Asserts that some mutants loaded and some were refused.
    fn assert_both(&self, what: &str) {
        assert!(self.loaded > 0 && self.refused > 0, "{what}: {self:?}");
    }
}

/// Opens a model with `open` and reads every tensor within
/// [`MUTANT_BOUND`], then opens it again and loads its default conv as a
/// layer would: every error must name one of `files`, nothing may panic.
fn read_everything(
    open: &dyn Fn() -> convmaps::error::Result<Box<dyn ModelFile>>,
    files: &[&Path],
    outcomes: &mut Outcomes,
) {
    let everything = open().map(|mut model| {
        for name in model.tensor_names() {
            let read = model.tensor_within(&name, MUTANT_BOUND);
            Outcomes::default().count(read, files);
        }
    });
    outcomes.count(everything, files);
    let layer = open()
        .and_then(|model| ConvInFile::choose(model, None))
        .and_then(|conv| {
            let shape = conv.shape().weight;
            let values = shape.iter().map(|&d| d as u64).product::<u64>();
            // A conv that claims more than the bound is skipped here: the
            // bounded reads above read its values within the bound.
            if values <= MUTANT_BOUND as u64 {
                conv.read(None).map(drop)
            } else {
                Ok(())
            }
        });
    Outcomes::default().count(layer, files);
}

#[test]
fn mutated_pytorch_pickles_and_files_load_or_fail_cleanly_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mutant.pt");
    let open = || PytorchFile::open(&path).map(|f| Box::new(f) as Box<dyn ModelFile>);
    let mut rng = ChaCha8Rng::seed_from_u64(538);
    // The pickle of a zip checkpoint, mutated and zipped again (a mutated
    // record would mostly fail the zip's checksum, never reaching the pickle).
    let zip = std::fs::read(fixture("pytorch", "state_dict.pt")).unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&zip)).unwrap();
    let mut records: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..archive.len() {
        let mut record = archive.by_index(i).unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut record, &mut bytes).unwrap();
        records.push((record.name().unwrap().to_string(), bytes));
    }
    let pickle_index = records
        .iter()
        .position(|(name, _)| name.ends_with("data.pkl"))
        .unwrap();
    let mut outcomes = Outcomes::default();
    for _ in 0..800 {
        let mut mutant = records.clone();
        mutant[pickle_index].1 = mutate(&mut rng, &records[pickle_index].1);
        let stored = zip::CompressionMethod::Stored;
        let listed: Vec<(&str, &[u8], zip::CompressionMethod)> = mutant
            .iter()
            .map(|(name, bytes)| (name.as_str(), bytes.as_slice(), stored))
            .collect();
        write_zip(&path, &listed);
        read_everything(&open, &[&path], &mut outcomes);
    }
    outcomes.assert_both("mutated pickles in a zip");
    for (fixture_name, count) in [("state_dict_legacy.pt", 800), ("state_dict.pt", 400)] {
        let original = std::fs::read(fixture("pytorch", fixture_name)).unwrap();
        let mut outcomes = Outcomes::default();
        for _ in 0..count {
            std::fs::write(&path, mutate(&mut rng, &original)).unwrap();
            read_everything(&open, &[&path], &mut outcomes);
        }
        outcomes.assert_both(fixture_name);
    }
}

#[test]
fn mutated_safetensors_files_load_or_fail_cleanly_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let layer =
        convmaps::weights::kaiming_uniform(convmaps::layer::LayerSpec::new(3, 4, 3), 1).unwrap();
    let original = convmaps::weights::to_safetensors(&layer).unwrap();
    let path = dir.path().join("mutant.safetensors");
    let open = || SafetensorsFile::open(&path).map(|f| Box::new(f) as Box<dyn ModelFile>);
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let mut outcomes = Outcomes::default();
    for _ in 0..1500 {
        std::fs::write(&path, mutate(&mut rng, &original)).unwrap();
        read_everything(&open, &[&path], &mut outcomes);
    }
    outcomes.assert_both("mutated safetensors");
}

#[test]
fn mutated_npy_weights_and_biases_load_or_fail_cleanly_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (weight, bias) = (dir.path().join("w.npy"), dir.path().join("b.npy"));
    let layer =
        convmaps::weights::kaiming_uniform(convmaps::layer::LayerSpec::new(3, 4, 3), 2).unwrap();
    convmaps::npy::write_f32_nd(&weight, &[4, 3, 3, 3], &layer.weight).unwrap();
    convmaps::npy::write_f32_nd(&bias, &[4], &layer.bias).unwrap();
    let originals = [
        std::fs::read(&weight).unwrap(),
        std::fs::read(&bias).unwrap(),
    ];
    let open = || NpyWeights::open(&weight, Some(&bias)).map(|f| Box::new(f) as Box<dyn ModelFile>);
    let mut rng = ChaCha8Rng::seed_from_u64(1935);
    let mut outcomes = Outcomes::default();
    for round in 0..1500 {
        let (mutated, kept) = if round % 2 == 0 { (0, 1) } else { (1, 0) };
        let paths = [&weight, &bias];
        std::fs::write(paths[mutated], mutate(&mut rng, &originals[mutated])).unwrap();
        std::fs::write(paths[kept], &originals[kept]).unwrap();
        read_everything(&open, &[&weight, &bias], &mut outcomes);
    }
    outcomes.assert_both("mutated .npy files");
}

/// A `.npy` file (version `major`.0) of `header` (its dict) then `data`.
fn npy_bytes(major: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0x93, b'N', b'U', b'M', b'P', b'Y', major, 0];
    let text = format!("{header}\n");
    match major {
        1 => bytes.extend((text.len() as u16).to_le_bytes()),
        _ => bytes.extend((text.len() as u32).to_le_bytes()),
    }
    bytes.extend(text.bytes());
    bytes.extend(data);
    bytes
}

#[test]
fn npy_headers_claiming_more_than_their_file_are_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.npy");
    // A version 2 header length of 4 GiB in a 20-byte file.
    let mut claims = npy_bytes(2, "", &[]);
    claims[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&path, &claims).unwrap();
    assert_refused(NpyWeights::open(&path, None), "w.npy", &["header claims"]);
    // Shapes whose values cannot be counted, or that the data does not hold.
    for shape in ["(4294967296, 4294967296, 4294967296)", "(2, 3, 3, 3)"] {
        let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        std::fs::write(&path, npy_bytes(1, &header, &[0; 16])).unwrap();
        assert_refused(NpyWeights::open(&path, None), "w.npy", &["bytes of values"]);
    }
}
