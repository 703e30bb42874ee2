//! A reader of the protobuf wire format, just enough for ONNX's messages:
//! varints, fixed 32- and 64-bit values and length-delimited fields, read
//! from a seekable stream so that large fields (tensor data) can be skipped
//! without reading them. Positions are byte offsets from the start of the
//! stream; every length is checked against the end of the enclosing
//! message before anything is read or allocated.

use std::io::{BufReader, Read, Seek, SeekFrom};

/// A wire-format error: what is wrong and at which byte.
pub(super) type WireResult<T> = std::result::Result<T, String>;

/// One field's value as the wire format carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Field {
    /// Wire type 0: an integer, enum or bool.
    Varint(u64),
    /// Wire type 1: eight little-endian bytes (double, fixed64).
    Fixed64([u8; 8]),
    /// Wire type 5: four little-endian bytes (float, fixed32).
    Fixed32([u8; 4]),
    /// Wire type 2: this many bytes follow (a string, bytes, an embedded
    /// message or a packed repeated field). The caller must consume them
    /// with [`Wire::bytes`], [`Wire::skip`] or by reading the message.
    Len(u64),
}

/// A protobuf stream with its read position.
pub(super) struct Wire<R> {
    reader: BufReader<R>,
    /// Bytes read or skipped from the start.
    pos: u64,
}

impl<R: Read + Seek> Wire<R> {
    /// A reader at the start of `reader`, which must be at its offset 0.
    pub(super) fn new(reader: R) -> Self {
        Wire {
            reader: BufReader::new(reader),
            pos: 0,
        }
    }

    /// The read position, in bytes from the start.
    pub(super) fn pos(&self) -> u64 {
        self.pos
    }

    /// The stream underneath.
    pub(super) fn into_inner(self) -> R {
        self.reader.into_inner()
    }

    /// The next field of a message that ends at byte `end`: its number and
    /// value, or `None` at the end. A field that would run past `end` is an
    /// error (a truncated or corrupt file).
    pub(super) fn next(&mut self, end: u64) -> WireResult<Option<(u32, Field)>> {
        if self.pos >= end {
            return Ok(None);
        }
        let at = self.pos;
        let key = self.varint(end)?;
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|&n| n != 0)
            .ok_or_else(|| format!("invalid field number {} at byte {at}", key >> 3))?;
        let field = match key & 7 {
            0 => Field::Varint(self.varint(end)?),
            1 => Field::Fixed64(self.array(end)?),
            5 => Field::Fixed32(self.array(end)?),
            2 => {
                let len = self.varint(end)?;
                if len > end - self.pos {
                    return Err(format!(
                        "field {number} at byte {at} claims {len} bytes, only {} remain",
                        end - self.pos
                    ));
                }
                Field::Len(len)
            }
            other => return Err(format!("unsupported wire type {other} at byte {at}")),
        };
        Ok(Some((number, field)))
    }

    /// The end (exclusive) of a length-delimited field of `len` bytes that
    /// begins at the read position.
    pub(super) fn end_of(&self, len: u64) -> u64 {
        self.pos.saturating_add(len)
    }

    /// Reads `len` bytes (the payload of a [`Field::Len`] just returned).
    pub(super) fn bytes(&mut self, len: u64) -> WireResult<Vec<u8>> {
        let size = usize::try_from(len).map_err(|_| format!("a field of {len} bytes"))?;
        let mut buffer = vec![0u8; size];
        self.reader
            .read_exact(&mut buffer)
            .map_err(|e| format!("cannot read {len} bytes at byte {}: {e}", self.pos))?;
        self.pos += len;
        Ok(buffer)
    }

    /// Reads `len` bytes as UTF-8 text (invalid sequences replaced).
    pub(super) fn string(&mut self, len: u64) -> WireResult<String> {
        Ok(String::from_utf8_lossy(&self.bytes(len)?).into_owned())
    }

    /// Skips `len` bytes without reading them.
    pub(super) fn skip(&mut self, len: u64) -> WireResult<()> {
        let offset = i64::try_from(len).map_err(|_| format!("a field of {len} bytes"))?;
        self.reader
            .seek_relative(offset)
            .map_err(|e| format!("cannot skip {len} bytes at byte {}: {e}", self.pos))?;
        self.pos += len;
        Ok(())
    }

    /// Skips whatever `field` still holds in the stream (a `Len` payload).
    pub(super) fn skip_field(&mut self, field: Field) -> WireResult<()> {
        match field {
            Field::Len(len) => self.skip(len),
            _ => Ok(()),
        }
    }

    /// Appends the integers of a repeated int32/int64 field to `values`:
    /// one varint, or a packed run of them.
    pub(super) fn varints(&mut self, field: Field, values: &mut Vec<i64>) -> WireResult<()> {
        match field {
            Field::Varint(v) => values.push(v as i64),
            Field::Len(len) => {
                let end = self.end_of(len);
                while self.pos < end {
                    values.push(self.varint(end)? as i64);
                }
            }
            _ => {
                return Err(format!(
                    "an integer field of the wrong type at byte {}",
                    self.pos
                ));
            }
        }
        Ok(())
    }

    /// Positions the stream at byte `pos` (for reading a recorded range).
    pub(super) fn seek(&mut self, pos: u64) -> WireResult<()> {
        self.reader
            .seek(SeekFrom::Start(pos))
            .map_err(|e| format!("cannot seek to byte {pos}: {e}"))?;
        self.pos = pos;
        Ok(())
    }

    /// A base-128 varint of at most ten bytes, all before `end`.
    fn varint(&mut self, end: u64) -> WireResult<u64> {
        let at = self.pos;
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            if self.pos >= end {
                return Err(format!("a varint at byte {at} runs past its message"));
            }
            let [byte] = self.array::<1>(end)?;
            value |= u64::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(format!("a varint at byte {at} is longer than ten bytes"))
    }

    /// `N` bytes, all before `end`.
    fn array<const N: usize>(&mut self, end: u64) -> WireResult<[u8; N]> {
        if (N as u64) > end.saturating_sub(self.pos) {
            return Err(format!(
                "a value at byte {} runs past its message",
                self.pos
            ));
        }
        let mut bytes = [0u8; N];
        self.reader
            .read_exact(&mut bytes)
            .map_err(|e| format!("cannot read at byte {}: {e}", self.pos))?;
        self.pos += N as u64;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn wire(bytes: &[u8]) -> Wire<Cursor<Vec<u8>>> {
        Wire::new(Cursor::new(bytes.to_vec()))
    }

    #[test]
    fn reads_each_wire_type() {
        // field 1 varint 300; field 2 fixed64; field 3 len 2 "hi"; field 4 fixed32
        let mut bytes = vec![0x08, 0xac, 0x02, 0x11];
        bytes.extend(1.5f64.to_le_bytes());
        bytes.extend([0x1a, 2, b'h', b'i', 0x25]);
        bytes.extend(2.5f32.to_le_bytes());
        let end = bytes.len() as u64;
        let mut w = wire(&bytes);
        assert_eq!(w.next(end), Ok(Some((1, Field::Varint(300)))));
        assert_eq!(
            w.next(end),
            Ok(Some((2, Field::Fixed64(1.5f64.to_le_bytes()))))
        );
        assert_eq!(w.next(end), Ok(Some((3, Field::Len(2)))));
        assert_eq!(w.string(2).as_deref(), Ok("hi"));
        assert_eq!(
            w.next(end),
            Ok(Some((4, Field::Fixed32(2.5f32.to_le_bytes()))))
        );
        assert_eq!(w.next(end), Ok(None));
    }

    #[test]
    fn packed_and_unpacked_varints_both_read() {
        // field 1 packed [3, 270], then field 1 unpacked 5
        let bytes = [0x0a, 3, 3, 0x8e, 0x02, 0x08, 5];
        let end = bytes.len() as u64;
        let mut w = wire(&bytes);
        let mut values = Vec::new();
        while let Some((_, field)) = w.next(end).expect("valid") {
            w.varints(field, &mut values).expect("valid");
        }
        assert_eq!(values, [3, 270, 5]);
    }

    #[test]
    fn lengths_past_the_end_and_bad_keys_are_errors() {
        let bytes = [0x0a, 9, 1, 2];
        assert!(wire(&bytes).next(4).unwrap_err().contains("claims 9 bytes"));
        let bytes = [0x0b, 0];
        assert!(wire(&bytes).next(2).unwrap_err().contains("wire type 3"));
        let bytes = [0x00, 0];
        assert!(wire(&bytes).next(2).unwrap_err().contains("field number 0"));
        let bytes = [0x08, 0x80];
        assert!(wire(&bytes).next(2).unwrap_err().contains("runs past"));
        let bytes = [0x08; 1]
            .iter()
            .chain(&[0xff; 11])
            .copied()
            .collect::<Vec<_>>();
        assert!(wire(&bytes).next(12).unwrap_err().contains("ten bytes"));
    }
}
