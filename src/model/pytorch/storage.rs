//! Where a checkpoint's storages lie, and reading a byte range of one: a
//! zip record `<archive>/data/<key>` (stored, as PyTorch writes them; a
//! compressed one is refused), or a legacy storage's place in the file,
//! found at opening from the 8-byte headers alone.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use super::pickle::{self, Counted, StorageRef, Value};
use crate::error::{Error, Result};

/// The legacy format's magic number, 0x1950a86a20f9469cfc6c, as a pickled
/// int's little-endian bytes.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// The legacy format's protocol version.
const LEGACY_PROTOCOL: i64 = 1001;

/// Most bytes a zip checkpoint's `byteorder` record may hold.
const MAX_BYTEORDER: u64 = 16;

/// Most bytes a zip checkpoint's `data.pkl` may hold once decompressed.
const MAX_PICKLE: u64 = 1 << 30;

/// Most times its compressed size a `data.pkl` may decompress to, beyond
/// [`MIN_PICKLE_CAP`] (a pickle compresses a few times over; far more is
/// a record built to exhaust memory).
const MAX_PICKLE_RATIO: u64 = 256;

/// Bytes a `data.pkl` may decompress to whatever its compressed size.
const MIN_PICKLE_CAP: u64 = 1 << 20;

/// A checkpoint's storages.
pub enum Storages {
    /// The zip format.
    Zip {
        archive: zip::ZipArchive<File>,
        /// The records' common prefix, `<archive>/`.
        prefix: String,
        big_endian: bool,
    },
    /// The legacy format.
    Legacy {
        file: File,
        file_len: u64,
        /// Each storage's bytes: where they begin in the file and how many
        /// there are; absent when the file ends before its header.
        places: HashMap<Arc<str>, (u64, u64)>,
    },
}

impl Storages {
    /// "pytorch (zip)" or "pytorch (legacy)".
    pub fn format(&self) -> &'static str {
        match self {
            Storages::Zip { .. } => "pytorch (zip)",
            Storages::Legacy { .. } => "pytorch (legacy)",
        }
    }

    /// Whether the values are stored big-endian.
    pub fn big_endian(&self) -> bool {
        matches!(
            self,
            Storages::Zip {
                big_endian: true,
                ..
            }
        )
    }

    /// Reads `length` bytes from byte `start` of `storage`, and nothing
    /// else of the file.
    pub fn read(
        &mut self,
        path: &Path,
        storage: &StorageRef,
        start: u64,
        length: u64,
    ) -> Result<Vec<u8>> {
        let key = &storage.key;
        let cut = |have: u64| {
            Error::weights(
                path,
                format!(
                    "storage {key:?} is cut off: it holds {have} bytes, the tensor needs {}",
                    start + length
                ),
            )
        };
        let failed =
            |e: io::Error| Error::weights_caused(path, format!("cannot read storage {key:?}"), e);
        let bytes = match self {
            Storages::Zip {
                archive, prefix, ..
            } => {
                let name = format!("{prefix}data/{key}");
                let mut record = archive.by_name(&name).map_err(|e| {
                    Error::weights_caused(
                        path,
                        format!("has no record {name:?} for storage {key:?}"),
                        e,
                    )
                })?;
                if record.compression() != zip::CompressionMethod::Stored {
                    return Err(Error::weights(
                        path,
                        format!(
                            "storage record {name:?} is compressed ({}); PyTorch writes storages \
                             uncompressed (stored), and convmaps reads only those",
                            record.compression()
                        ),
                    ));
                }
                if record.size() < start + length {
                    return Err(cut(record.size()));
                }
                io::copy(&mut (&mut record).take(start), &mut io::sink()).map_err(failed)?;
                read_exactly(&mut record, length).map_err(failed)?
            }
            Storages::Legacy {
                file,
                file_len,
                places,
            } => {
                let &(begin, size) = places.get(&**key).ok_or_else(|| {
                    Error::weights(
                        path,
                        format!("storage {key:?} is missing: the file ends before it"),
                    )
                })?;
                let have = size.min(file_len.saturating_sub(begin));
                if have < start + length {
                    return Err(cut(have));
                }
                file.seek(SeekFrom::Start(begin + start)).map_err(failed)?;
                read_exactly(file, length).map_err(failed)?
            }
        };
        Ok(bytes)
    }
}

/// Exactly `length` bytes of `reader`, allocated as they arrive (a length
/// a corrupt file claims costs no memory it does not hold).
fn read_exactly(reader: &mut impl Read, length: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.take(length).read_to_end(&mut bytes)?;
    if (bytes.len() as u64) < length {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the storage ends after {} of {length} bytes", bytes.len()),
        ));
    }
    Ok(bytes)
}

/// Opens a zip checkpoint: its `data.pkl` and `byteorder` records.
pub fn open_zip(path: &Path) -> Result<(Value, Storages)> {
    let file = File::open(path).map_err(|e| Error::weights_caused(path, "cannot read", e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| {
        Error::weights_caused(
            path,
            "not a valid PyTorch zip checkpoint (truncated or corrupt zip)",
            e,
        )
    })?;
    let pickle_name = archive
        .file_names_raw()
        .filter_map(|n| std::str::from_utf8(n).ok())
        .find(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
        .map(str::to_string)
        .ok_or_else(|| {
            Error::weights(
                path,
                "is a zip without a data.pkl record: not a PyTorch checkpoint",
            )
        })?;
    let prefix = pickle_name.trim_end_matches("data.pkl").to_string();
    let big_endian = match read_record(path, &mut archive, &format!("{prefix}byteorder"), |_| {
        MAX_BYTEORDER
    })?
    .as_deref()
    {
        None | Some(b"little") => false,
        Some(b"big") => true,
        Some(other) => {
            return Err(Error::weights(
                path,
                format!(
                    "has a byteorder record {:?}, expected \"little\" or \"big\"",
                    String::from_utf8_lossy(other)
                ),
            ));
        }
    };
    let data = read_record(path, &mut archive, &pickle_name, |compressed| {
        compressed
            .saturating_mul(MAX_PICKLE_RATIO)
            .clamp(MIN_PICKLE_CAP, MAX_PICKLE)
    })?
    .unwrap_or_default();
    let loaded = pickle::load(&mut Counted::new(data.as_slice()))
        .map_err(|m| Error::weights(path, format!("{pickle_name}: {m}")))?;
    Ok((
        loaded.value,
        Storages::Zip {
            archive,
            prefix,
            big_endian,
        },
    ))
}

/// The decompressed bytes of record `name`, or `None` when the archive has
/// none; an error when they number more than `cap` of its compressed size.
fn read_record(
    path: &Path,
    archive: &mut zip::ZipArchive<File>,
    name: &str,
    cap: impl FnOnce(u64) -> u64,
) -> Result<Option<Vec<u8>>> {
    let failed = |e| Error::weights_caused(path, format!("cannot read record {name:?}"), e);
    let entry = match archive.by_name(name) {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(failed(e)),
    };
    let cap = cap(entry.compressed_size());
    let too_large = || {
        Error::weights(
            path,
            format!("record {name:?} holds more than {cap} bytes, more than a checkpoint's would"),
        )
    };
    if entry.size() > cap {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    entry
        .take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| failed(e.into()))?;
    if bytes.len() as u64 > cap {
        return Err(too_large());
    }
    Ok(Some(bytes))
}

/// Opens a legacy checkpoint: its pickles, then each storage's header.
pub fn open_legacy(path: &Path) -> Result<(Value, Storages)> {
    let not_pytorch = |m: String| {
        Error::weights(
            path,
            format!("not a PyTorch checkpoint (neither the zip nor the legacy format): {m}"),
        )
    };
    let corrupt =
        |m: String| Error::weights(path, format!("corrupt legacy PyTorch checkpoint: {m}"));
    let file = File::open(path).map_err(|e| Error::weights_caused(path, "cannot read", e))?;
    let file_len = file
        .metadata()
        .map_err(|e| Error::weights_caused(path, "cannot read", e))?
        .len();
    let mut reader = Counted::new(BufReader::new(file));
    let magic = pickle::load(&mut reader).map_err(not_pytorch)?;
    if !matches!(&magic.value, Value::BigInt(b) if b[..] == LEGACY_MAGIC) {
        return Err(not_pytorch(
            "it does not begin with the magic number".into(),
        ));
    }
    match pickle::load(&mut reader).map_err(corrupt)?.value {
        Value::Int(LEGACY_PROTOCOL) => {}
        other => {
            return Err(corrupt(format!(
                "protocol version {}, expected {LEGACY_PROTOCOL}",
                other.kind()
            )));
        }
    }
    pickle::load(&mut reader).map_err(|m| corrupt(format!("its system info: {m}")))?;
    let object = pickle::load(&mut reader).map_err(corrupt)?;
    let keys_start = reader.position;
    let keys = pickle::load(&mut reader).map_err(|m| corrupt(format!("its storage keys: {m}")))?;
    let data_start = reader.position;
    let keys = storage_keys(&keys.value, data_start - keys_start).map_err(corrupt)?;
    let mut file = reader.into_inner().into_inner();
    let places = scan_storages(&mut file, file_len, data_start, &keys, &object.storages)
        .map_err(|m| Error::weights(path, m))?;
    Ok((
        object.value,
        Storages::Legacy {
            file,
            file_len,
            places,
        },
    ))
}

/// The storage keys of a legacy file, whose pickle is `length` bytes
/// long: a list of strs, each written out (their text, all told, no
/// longer than the pickle).
fn storage_keys(value: &Value, length: u64) -> std::result::Result<Vec<String>, String> {
    let Value::List(list) = value else {
        return Err("its storage keys are not a list of strs".into());
    };
    let list = list.borrow();
    let texts: Option<Vec<&str>> = list.iter().map(Value::text).collect();
    let texts = texts.ok_or("its storage keys are not a list of strs")?;
    let total = texts.iter().map(|t| t.len() as u64).sum::<u64>();
    if total > length {
        return Err(format!(
            "its storage keys repeat: {total} bytes of keys in a {length}-byte pickle"
        ));
    }
    Ok(texts.into_iter().map(str::to_string).collect())
}

/// Each storage's place from `start` on, in the order of `keys`: an 8-byte
/// element count then the bytes. Only the headers are read; the scan stops
/// quietly where the file ends (those storages are missing when read).
fn scan_storages(
    file: &mut File,
    file_len: u64,
    start: u64,
    keys: &[String],
    storages: &[StorageRef],
) -> std::result::Result<HashMap<Arc<str>, (u64, u64)>, String> {
    let by_key: HashMap<&str, &StorageRef> = storages.iter().map(|s| (&*s.key, s)).collect();
    let mut places = HashMap::new();
    let mut at = start;
    for key in keys {
        let storage = by_key.get(key.as_str()).ok_or_else(|| {
            format!(
                "corrupt legacy PyTorch checkpoint: storage {key:?} is listed but no tensor uses it"
            )
        })?;
        let mut header = [0u8; 8];
        if at.saturating_add(8) > file_len
            || file.seek(SeekFrom::Start(at)).is_err()
            || file.read_exact(&mut header).is_err()
        {
            break;
        }
        let count = u64::from_le_bytes(header);
        let bytes = count
            .checked_mul(storage.element.size as u64)
            .ok_or_else(|| {
                format!(
                    "corrupt legacy PyTorch checkpoint: storage {key:?} claims {count} elements"
                )
            })?;
        places.insert(storage.key.clone(), (at + 8, bytes));
        at = (at + 8).saturating_add(bytes);
    }
    Ok(places)
}
