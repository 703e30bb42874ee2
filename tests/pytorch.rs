//! PyTorch checkpoints read as model files: both formats, the dtypes,
//! strided views, checkpoint dicts, and the files that must be refused
//! (a pickle that would run a command, truncated and corrupt files).
//! Fixtures and expected values: tools/make_pytorch_fixtures.py.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use convmaps::Error;
use convmaps::model::pytorch::PytorchFile;
use convmaps::model::{self, DType, ModelFile};
use convmaps::npy;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pytorch")
        .join(name)
}

/// The values of a fixture `.npy` (f32).
fn expected(name: &str) -> Vec<f32> {
    npy::read_f32(&fixture(name)).expect("fixture .npy").1
}

fn open(name: &str) -> PytorchFile {
    PytorchFile::open(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The error of opening `path` then reading every tensor; asserts that it
/// is a bad-input error naming the file.
fn first_error(path: &Path) -> Option<String> {
    let result = PytorchFile::open(path).and_then(|mut file| {
        for name in file.tensor_names() {
            if name != "bn1.num_batches_tracked" {
                file.tensor(&name)?;
            }
        }
        Ok(())
    });
    let error = result.err()?;
    assert!(matches!(error, Error::Weights { .. }), "{error:?}");
    assert!(error.is_bad_input());
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    Some(message)
}

/// The small model's f32 checkpoints: both formats, a checkpoint dict and
/// the other pickle protocols.
const F32_FILES: [&str; 6] = [
    "state_dict.pt",
    "state_dict_legacy.pt",
    "checkpoint.pth",
    "state_dict_protocol4.pt",
    "state_dict_protocol5.pt",
    "state_dict_protocol4_legacy.pt",
];

/// The small model's checkpoints in the other float dtypes.
const OTHER_DTYPE_FILES: [&str; 6] = [
    "state_dict_f16.pt",
    "state_dict_f16_legacy.pt",
    "state_dict_bf16.pt",
    "state_dict_bf16_legacy.pt",
    "state_dict_f64.pt",
    "state_dict_f64_legacy.pt",
];

#[test]
fn every_format_lists_the_same_convs_in_order() {
    let names = [
        "conv1.weight",
        "bn1.weight",
        "bn1.bias",
        "bn1.running_mean",
        "bn1.running_var",
        "bn1.num_batches_tracked",
        "conv2.weight",
        "conv2.bias",
    ];
    for name in F32_FILES.into_iter().chain(OTHER_DTYPE_FILES) {
        let file = model::open(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected_format = if name.contains("legacy") {
            "pytorch (legacy)"
        } else {
            "pytorch (zip)"
        };
        assert_eq!(file.format(), expected_format, "{name}");
        assert_eq!(file.tensor_names(), names, "{name}");
        let convs = file.convs();
        assert_eq!(convs.len(), 2, "{name}");
        assert_eq!(
            (convs[0].name.as_str(), convs[0].bias.as_deref()),
            ("conv1", None)
        );
        assert_eq!(convs[0].weight_shape, [4, 3, 3, 3]);
        assert_eq!(
            (convs[1].name.as_str(), convs[1].bias.as_deref()),
            ("conv2", Some("conv2.bias"))
        );
        assert_eq!(convs[1].weight_shape, [2, 4, 3, 3]);
        assert!(
            convs
                .iter()
                .all(|c| c.geometry.is_none() && c.batch_norm.is_none())
        );
    }
}

#[test]
fn f32_weights_are_exact_in_both_formats_and_in_a_checkpoint_dict() {
    for name in F32_FILES {
        let mut file = open(name);
        for (tensor, npy, shape) in [
            ("conv1.weight", "conv1_weight.npy", vec![4, 3, 3, 3]),
            ("conv2.weight", "conv2_weight.npy", vec![2, 4, 3, 3]),
            ("conv2.bias", "conv2_bias.npy", vec![2]),
            ("bn1.running_var", "bn1_running_var.npy", vec![4]),
        ] {
            let read = file
                .tensor(tensor)
                .unwrap_or_else(|e| panic!("{name} {tensor}: {e}"));
            assert_eq!(read.dtype, DType::F32);
            assert_eq!(read.shape, shape, "{name} {tensor}");
            assert_eq!(read.values, expected(npy), "{name} {tensor}");
        }
    }
}

#[test]
fn a_checkpoint_dict_says_where_its_state_dict_was() {
    assert_eq!(open("checkpoint.pth").state_dict_key(), Some("state_dict"));
    assert_eq!(open("state_dict.pt").state_dict_key(), None);
}

#[test]
fn half_bfloat_and_double_read_as_their_f32_rounding() {
    for (suffix, dtype) in [
        ("f16", DType::F16),
        ("bf16", DType::BF16),
        ("f64", DType::F64),
    ] {
        let want = expected(&format!("conv1_weight_{suffix}.npy"));
        assert_ne!(
            want,
            expected("conv1_weight.npy"),
            "{suffix} rounds some value"
        );
        for name in [
            format!("state_dict_{suffix}.pt"),
            format!("state_dict_{suffix}_legacy.pt"),
        ] {
            let read = open(&name).tensor("conv1.weight").unwrap();
            assert_eq!(read.dtype, dtype, "{name}");
            assert_eq!(read.values, want, "{name}");
        }
    }
}

#[test]
fn a_big_endian_zip_reads_the_same_values() {
    let read = open("big_endian.pt").tensor("conv.weight").unwrap();
    assert_eq!(read.values, expected("conv1_weight.npy"));
}

#[test]
fn strided_views_into_shared_storages_read_row_major() {
    for name in ["views.pt", "views_legacy.pt"] {
        let mut file = open(name);
        let convs: Vec<_> = file
            .convs()
            .iter()
            .map(|c| (c.name.clone(), c.bias.clone()))
            .collect();
        assert_eq!(
            convs,
            [
                ("sliced".into(), None),
                ("transposed".into(), Some("transposed.bias".into()))
            ],
            "{name}"
        );
        for (tensor, shape) in [
            ("sliced.weight", vec![4, 3, 3, 3]),
            ("base", vec![4, 3, 3, 6]),
            ("transposed.weight", vec![4, 3, 3, 3]),
            ("transposed.bias", vec![4]),
        ] {
            let read = file
                .tensor(tensor)
                .unwrap_or_else(|e| panic!("{name} {tensor}: {e}"));
            assert_eq!(read.shape, shape, "{name} {tensor}");
            let npy = format!("views_{}.npy", tensor.replace('.', "_"));
            assert_eq!(read.values, expected(&npy), "{name} {tensor}");
        }
    }
}

#[test]
fn integer_tensors_are_listed_but_refused_by_name_and_dtype() {
    for name in ["state_dict.pt", "state_dict_legacy.pt"] {
        let mut file = open(name);
        assert_eq!(file.dtype_name("bn1.num_batches_tracked"), Some("int64"));
        let message = file
            .tensor("bn1.num_batches_tracked")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("bn1.num_batches_tracked") && message.contains("int64"),
            "{message}"
        );
        let missing = file.tensor("conv9.weight").unwrap_err().to_string();
        assert!(missing.contains("conv9.weight"), "{missing}");
    }
}

#[test]
fn a_pickle_that_would_run_a_command_is_refused_and_nothing_runs() {
    // The fixtures' payload is `os.system("touch /tmp/convmaps-pwned-fixture")`.
    let marker = Path::new("/tmp/convmaps-pwned-fixture");
    let _ = std::fs::remove_file(marker);
    for name in ["evil.pt", "evil_legacy.pt"] {
        let message = first_error(&fixture(name)).expect("refused");
        assert!(message.contains("posix.system"), "{message}");
    }
    assert!(!marker.exists());
}

/// A pickle (protocol 2) of `{"x": module.name("touch <marker>")}`.
fn calling_pickle(module: &str, name: &str, marker: &Path) -> Vec<u8> {
    let mut p = vec![0x80, 2, b'}', b'X', 1, 0, 0, 0, b'x'];
    p.extend(format!("c{module}\n{name}\n").bytes());
    let command = format!("touch {}", marker.display());
    p.push(b'X');
    p.extend((command.len() as u32).to_le_bytes());
    p.extend(command.bytes());
    p.extend([0x85, b'R', b's', b'.']);
    p
}

/// A zip checkpoint whose records are `records`, written stored.
fn write_zip(path: &Path, records: &[(&str, &[u8])]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in records {
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

/// A legacy checkpoint: magic, version, system info, then `object`.
fn legacy_file(object: &[u8]) -> Vec<u8> {
    let mut file = vec![
        0x80, 2, 0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, b'.',
    ];
    file.extend([0x80, 2, b'M', 0xe9, 0x03, b'.']);
    file.extend([0x80, 2, b'}', b'.']);
    file.extend(object);
    file
}

#[test]
fn hand_written_calls_of_other_globals_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    for (module, name) in [
        ("os", "system"),
        ("posix", "system"),
        ("builtins", "eval"),
        ("torch", "load"),
    ] {
        let pickle = calling_pickle(module, name, &marker);
        let zip_path = dir.path().join("evil.pt");
        write_zip(
            &zip_path,
            &[
                ("archive/data.pkl", &pickle),
                ("archive/byteorder", b"little"),
            ],
        );
        let legacy_path = dir.path().join("evil_legacy.pth");
        std::fs::write(&legacy_path, legacy_file(&pickle)).unwrap();
        for path in [zip_path, legacy_path] {
            let message = first_error(&path).expect("refused");
            assert!(message.contains(&format!("{module}.{name}")), "{message}");
        }
    }
    assert!(!marker.exists());
}

#[test]
fn truncated_files_are_errors_naming_the_file_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "state_dict.pt",
        "state_dict_legacy.pt",
        "views_legacy.pt",
        "checkpoint.pth",
    ] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let cut = dir.path().join(name);
        for length in (0..bytes.len()).step_by(37) {
            std::fs::write(&cut, &bytes[..length]).unwrap();
            assert!(
                first_error(&cut).is_some(),
                "{name} cut to {length} bytes reads"
            );
        }
    }
    let bytes = std::fs::read(fixture("state_dict.pt")).unwrap();
    let cut = dir.path().join("half.pt");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let message = first_error(&cut).unwrap();
    assert!(message.contains("zip"), "{message}");
}

/// The records of a zip fixture.
fn zip_records(name: &str) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(fixture(name)).unwrap()).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut record = archive.by_index(i).unwrap();
            let mut bytes = Vec::new();
            record.read_to_end(&mut bytes).unwrap();
            (record.name().unwrap().to_string(), bytes)
        })
        .collect()
}

#[test]
fn corrupt_pickles_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let records = zip_records("state_dict.pt");
    let corruptions: [&[u8]; 5] = [
        b"",
        b"\x80\x02}q\x00(X\xff\xff\xff\x7f",
        b"\x80\x02\xff.",
        b"\x80\x02h\x07.",
        b"\x80\x02u.",
    ];
    for (i, corrupt) in corruptions.iter().enumerate() {
        let path = dir.path().join(format!("corrupt{i}.pt"));
        let replaced: Vec<(&str, &[u8])> = records
            .iter()
            .map(|(n, b)| {
                (
                    n.as_str(),
                    if n.ends_with("data.pkl") {
                        *corrupt
                    } else {
                        b.as_slice()
                    },
                )
            })
            .collect();
        write_zip(&path, &replaced);
        let message = first_error(&path).expect("refused");
        assert!(message.contains("data.pkl"), "{message}");
        let legacy = dir.path().join(format!("corrupt{i}.pth"));
        std::fs::write(&legacy, legacy_file(corrupt)).unwrap();
        first_error(&legacy).expect("refused");
    }
}

#[test]
fn a_zip_without_a_storage_record_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let records = zip_records("state_dict.pt");
    let kept: Vec<(&str, &[u8])> = records
        .iter()
        .filter(|(n, _)| !n.contains("/data/"))
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let path = dir.path().join("no_storages.pt");
    write_zip(&path, &kept);
    let mut file = PytorchFile::open(&path).unwrap();
    assert_eq!(file.convs().len(), 2, "listing needs no storage");
    let message = file.tensor("conv1.weight").unwrap_err().to_string();
    assert!(
        message.contains("data/") && message.contains("no_storages.pt"),
        "{message}"
    );
}

/// Where `values` (f32, little-endian) lie in `bytes`.
fn find_values(bytes: &[u8], values: &[f32]) -> usize {
    let needle: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the values are stored contiguously")
}

#[test]
fn reading_a_tensor_reads_only_its_own_storage() {
    let dir = tempfile::tempdir().unwrap();
    let conv1 = expected("conv1_weight.npy");
    let conv2 = expected("conv2_weight.npy");

    // Legacy: the file cut off right after conv1's storage still reads conv1.
    let bytes = std::fs::read(fixture("state_dict_legacy.pt")).unwrap();
    let end = find_values(&bytes, &conv1) + conv1.len() * 4;
    let cut = dir.path().join("cut_legacy.pt");
    std::fs::write(&cut, &bytes[..end]).unwrap();
    let mut file = PytorchFile::open(&cut).unwrap();
    assert_eq!(file.tensor("conv1.weight").unwrap().values, conv1);
    let after = end < find_values(&bytes, &conv2);
    assert_eq!(file.tensor("conv2.weight").is_err(), after);

    // Both formats: another storage's bytes overwritten with NaNs leave conv1
    // intact.
    for name in ["state_dict_legacy.pt", "state_dict.pt"] {
        let mut bytes = std::fs::read(fixture(name)).unwrap();
        let at = find_values(&bytes, &conv2);
        bytes[at..at + conv2.len() * 4].fill(0xff);
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let mut file = PytorchFile::open(&path).unwrap();
        assert_eq!(file.tensor("conv1.weight").unwrap().values, conv1, "{name}");
    }
}

#[test]
fn files_that_are_not_checkpoints_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("empty.pt", &b""[..]),
        ("text.bin", b"hello, world\n"),
        ("pickle.pt", b"\x80\x02K\x07."),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        first_error(&path).expect("refused");
    }
    // A legacy file whose object is a list, not a dict.
    let path = dir.path().join("list.pt");
    std::fs::write(&path, legacy_file(b"\x80\x02]q\x00.\x80\x02].")).unwrap();
    let message = first_error(&path).expect("refused");
    assert!(message.contains("state dict"), "{message}");
}

#[test]
fn a_deeply_nested_pickle_is_refused_without_overflowing_the_stack() {
    let dir = tempfile::tempdir().unwrap();
    // A tuple nested a million deep, then an empty list of storage keys.
    let mut object = vec![0x80, 2, b')'];
    object.extend(std::iter::repeat_n(0x85u8, 1_000_000));
    object.push(b'.');
    object.extend(b"\x80\x02].");
    let path = dir.path().join("nested.pt");
    std::fs::write(&path, legacy_file(&object)).unwrap();
    let message = first_error(&path).expect("refused");
    assert!(message.contains("state dict"), "{message}");
}

#[test]
fn every_pytorch_extension_opens_by_its_name() {
    let dir = tempfile::tempdir().unwrap();
    for (name, source) in [
        ("pytorch_model.bin", "state_dict.pt"),
        ("model.PTH", "state_dict_legacy.pt"),
        ("model.pt", "checkpoint.pth"),
    ] {
        let path = dir.path().join(name);
        std::fs::copy(fixture(source), &path).unwrap();
        let mut file = model::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(file.convs().len(), 2, "{name}");
        let read = file.tensor("conv1.weight").unwrap();
        assert_eq!(read.values, expected("conv1_weight.npy"), "{name}");
    }
}

#[test]
fn parameters_read_like_tensors() {
    let mut file = open("parameters.pt");
    assert_eq!(file.convs().len(), 2);
    assert_eq!(
        file.tensor("conv1.weight").unwrap().values,
        expected("conv1_weight.npy")
    );
    assert_eq!(
        file.tensor("conv2.bias").unwrap().values,
        expected("conv2_bias.npy")
    );
}

/// A zip checkpoint whose records are `records`, written deflated.
fn write_deflated_zip(path: &Path, records: &[(&str, &[u8])]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    for (name, bytes) in records {
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

/// Refused, in both formats, with an error naming the file: a pickle of a
/// few MB that would ask for far more memory (the process would abort) or
/// time (the test would run for minutes) if the reader copied or scanned as
/// it went. No time is asserted: speed is for benchmarks.
fn refused(name: &str, pickle: &[u8]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join(format!("{name}.pt"));
    write_zip(
        &zip_path,
        &[
            ("archive/data.pkl", pickle),
            ("archive/byteorder", b"little"),
        ],
    );
    let legacy_path = dir.path().join(format!("{name}_legacy.pt"));
    std::fs::write(&legacy_path, legacy_file(pickle)).unwrap();
    let mut messages = Vec::new();
    for path in [zip_path, legacy_path] {
        messages.push(first_error(&path).expect("refused"));
    }
    messages
}

/// A pickle that pushes a 1 MiB str, then `copy` a million times.
fn copying_pickle(copy: &[u8]) -> Vec<u8> {
    let mut pickle = vec![0x80, 2, b'X'];
    pickle.extend((1u32 << 20).to_le_bytes());
    pickle.extend(std::iter::repeat_n(b'a', 1 << 20));
    pickle.extend(b"q\x00");
    for _ in 0..1_000_000 {
        pickle.extend(copy);
    }
    pickle.push(b'.');
    pickle
}

#[test]
fn copying_a_long_str_a_million_times_costs_no_copy_of_it() {
    // DUP, BINGET, LONG_BINGET, BINPUT, MEMOIZE: a terabyte if each copied it.
    for (name, copy) in [
        ("dup", &b"2"[..]),
        ("binget", b"h\x00"),
        ("long_binget", b"j\x00\x00\x00\x00"),
        ("binput", b"q\x01"),
        ("memoize", b"\x94"),
    ] {
        let messages = refused(name, &copying_pickle(copy));
        assert!(messages[0].contains("state dict"), "{}", messages[0]);
    }
}

#[test]
fn copying_a_long_list_into_dicts_over_and_over_is_refused() {
    // A list of 100 000 pairs, then OrderedDict(list) 100 000 times, each
    // kept on the stack: 10^10 pairs if nothing stopped it.
    let mut pickle = b"\x80\x02ccollections\nOrderedDict\nq\x00](K\x01K\x02\x86".to_vec();
    pickle.extend(std::iter::repeat_n(b'2', 99_999));
    pickle.extend(b"eq\x01");
    for _ in 0..100_000 {
        pickle.extend(b"h\x00h\x01\x85R");
    }
    pickle.push(b'.');
    for message in refused("pairs", &pickle) {
        assert!(message.contains("exhaust memory"), "{message}");
    }
}

#[test]
fn a_dict_of_many_distinct_keys_reads_in_linear_time() {
    // 200 000 SETITEMs: a scan of the dict per key would take minutes.
    let mut pickle = b"\x80\x02}(".to_vec();
    for i in 0..200_000 {
        let key = format!("key{i}");
        pickle.push(b'X');
        pickle.extend((key.len() as u32).to_le_bytes());
        pickle.extend(key.bytes());
        pickle.extend(b"K\x00");
    }
    pickle.extend(b"u.");
    let message = &refused("keys", &pickle)[0];
    let start: String = message.chars().take(300).collect();
    assert!(message.contains("no tensors"), "{start}");
}

#[test]
fn a_record_that_decompresses_past_its_cap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let records = zip_records("state_dict.pt");
    let zeros = vec![0u8; 32 << 20];
    for record in ["data.pkl", "byteorder"] {
        let replaced: Vec<(&str, &[u8])> = records
            .iter()
            .map(|(n, b)| {
                let bomb = n.ends_with(&format!("/{record}"));
                (n.as_str(), if bomb { &zeros[..] } else { b.as_slice() })
            })
            .collect();
        let path = dir.path().join("bomb.pt");
        write_deflated_zip(&path, &replaced);
        let message = first_error(&path).expect("refused");
        assert!(
            message.contains(record) && message.contains("more than") && message.len() < 1000,
            "{}",
            &message[..message.len().min(1000)]
        );
    }
}

#[test]
fn a_size_one_dimension_with_a_huge_stride_reads() {
    // {"w": _rebuild_tensor_v2(storage of 4 floats, 0, (2, 1, 2),
    // (1, 2**63 - 1, 2), False, OrderedDict())}
    let mut pickle = b"\x80\x02}(X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n(".to_vec();
    pickle.extend(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\n");
    pickle.extend(b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQK\x00");
    pickle.extend(b"(K\x02K\x01K\x02t(K\x01\x8a\x08");
    pickle.extend(i64::MAX.to_le_bytes());
    pickle.extend(b"K\x02t\x89ccollections\nOrderedDict\n)RtRu.");
    let storage: Vec<u8> = [0.0f32, 1.0, 2.0, 3.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stride.pt");
    write_zip(
        &path,
        &[
            ("archive/data.pkl", &pickle),
            ("archive/data/0", &storage),
            ("archive/byteorder", b"little"),
        ],
    );
    let read = open_path(&path).tensor("w").unwrap();
    assert_eq!(read.shape, [2, 1, 2]);
    assert_eq!(read.values, [0.0, 2.0, 1.0, 3.0]);
}

fn open_path(path: &Path) -> PytorchFile {
    PytorchFile::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
