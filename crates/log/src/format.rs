//! The on-disk format (version 1): segment headers, record batches and
//! records. Pure functions over bytes; no I/O. `docs/log-format.md` describes
//! the same layout for readers of the files.
//!
//! ```text
//! segment file  = segment header, batch*
//! segment header (24 bytes)
//!   0  [u8; 8]  magic  "EDDYLOG\0"
//!   8  u32      format version (1)
//!  12  u32      reserved (0)
//!  16  u64      base offset (equals the number in the file name)
//! batch (40-byte header, then records)
//!   0  u32  length        bytes after this field
//!   4  u32  crc           CRC-32C of bytes 8..4+length
//!   8  u64  base offset   offset of the first record
//!  16  u8   version (1)
//!  17  u8   attributes (0; reserved for compression)
//!  18  u16  reserved (0)
//!  20  u32  record count  at least 1
//!  24  i64  first timestamp (ms since the Unix epoch)
//!  32  i64  last timestamp
//! record = varint length, then that many bytes of:
//!   varint timestamp delta (from the batch's first timestamp)
//!   varint key length + 1 (0: no key), key bytes
//!   varint header count, per header: varint name length, UTF-8 name,
//!                                    varint value length, value bytes
//!   value bytes (the rest of the record)
//! ```
//! All integers are little-endian; varints are unsigned LEB128.

use bytes::Bytes;

use crate::Offset;

/// Magic bytes at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"EDDYLOG\0";
/// The format version written by this code.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of the segment file header.
pub const SEGMENT_HEADER_BYTES: usize = 24;
/// Bytes of a batch header.
pub const BATCH_HEADER_BYTES: usize = 40;
/// The largest batch the format allows. Reads bound a batch's length field
/// by this (not by the configured `batch_bytes_max`), so lowering that
/// setting never makes stored data unreadable.
pub const BATCH_BYTES_LIMIT: u32 = 256 * 1024 * 1024;
const BATCH_VERSION: u8 = 1;
/// Bytes covered by neither the length field nor the CRC field.
const LENGTH_FIELD_BYTES: usize = 4;
const CRC_START: usize = 8;
/// Below this many record bytes, sealing a batch runs the CRC over its
/// records again rather than combining their precomputed CRC: combining
/// costs 6–16 µs whatever the length, the CRC itself about 1 µs per 28 KiB
/// (measured on the bench machine with crc32c 0.6).
const CRC_COMBINE_MIN_BYTES: usize = 256 * 1024;

/// A header of a record: a name and a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header's name.
    pub name: String,
    /// The header's value.
    pub value: Bytes,
}

/// A record to append: an optional key, headers and a value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// The record's key, if any.
    pub key: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// The payload.
    pub value: Bytes,
}

impl Record {
    /// A record with only a value.
    pub fn new(value: impl Into<Bytes>) -> Self {
        Record {
            key: None,
            headers: Vec::new(),
            value: value.into(),
        }
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header {
            name: name.into(),
            value: value.into(),
        });
        self
    }
}

/// A record read back from the log. Key and values share the buffer the
/// batch was read into: reading copies record bodies once, from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// The record's offset.
    pub offset: Offset,
    /// The time the log appended it (ms since the Unix epoch).
    pub timestamp_ms: i64,
    /// The key, if any.
    pub key: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// The payload.
    pub value: Bytes,
}

/// The fixed fields of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Bytes after the length field.
    pub length: u32,
    /// CRC-32C stored in the batch.
    pub crc: u32,
    /// Offset of the first record.
    pub base_offset: u64,
    /// Number of records (at least 1).
    pub record_count: u32,
    /// Timestamp of the first record.
    pub first_timestamp_ms: i64,
    /// Timestamp of the last record.
    pub last_timestamp_ms: i64,
}

impl BatchHeader {
    /// Bytes of the whole batch on disk.
    pub fn total_bytes(&self) -> usize {
        LENGTH_FIELD_BYTES + self.length as usize
    }

    /// Offset after the last record.
    pub fn next_offset(&self) -> u64 {
        self.base_offset
            .saturating_add(u64::from(self.record_count))
    }
}

/// Why bytes are not a valid batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchDefect {
    /// The bytes end before the batch does: a torn write, or the end of the data.
    Torn,
    /// The bytes are there but fail a check.
    Corrupt(String),
    /// A zero length field: the end of the data in a segment whose file was
    /// pre-written with zeros.
    End,
}

/// The sizes a batch is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest encoded record.
    pub record_bytes_max: u32,
    /// Largest encoded batch.
    pub batch_bytes_max: u32,
}

/// Writes the segment file header.
pub fn segment_header(base_offset: u64) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut h = [0u8; SEGMENT_HEADER_BYTES];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&base_offset.to_le_bytes());
    h
}

/// Checks a segment file header against the base offset in the file name.
pub fn check_segment_header(bytes: &[u8], base_offset: u64) -> Result<(), String> {
    if bytes.len() < SEGMENT_HEADER_BYTES {
        return Err(format!(
            "segment header is {} bytes, want {SEGMENT_HEADER_BYTES}",
            bytes.len()
        ));
    }
    if bytes[0..8] != SEGMENT_MAGIC {
        return Err("not an Eddy segment (bad magic)".into());
    }
    let version = u32_at(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(format!(
            "segment format version {version}, this build reads {FORMAT_VERSION}"
        ));
    }
    let base = u64_at(bytes, 16);
    if base != base_offset {
        return Err(format!(
            "segment header says base offset {base}, file name says {base_offset}"
        ));
    }
    Ok(())
}

/// A batch encoded by [`encode_batch`], waiting for its offset and time.
#[derive(Debug)]
pub struct EncodedBatch {
    /// Header and records; the header's offset, timestamps and CRC are unset
    /// until [`EncodedBatch::seal`].
    bytes: Vec<u8>,
    /// Number of records.
    pub record_count: u32,
    /// CRC-32C of the records part, computed outside any lock.
    records_crc: u32,
}

/// Encodes records into a batch, checking the limits. The base offset and
/// timestamp are filled in later by [`EncodedBatch::seal`].
pub fn encode_batch(records: &[Record], limits: Limits) -> Result<EncodedBatch, LimitError> {
    if records.is_empty() {
        return Err(LimitError::Empty);
    }
    let record_count =
        u32::try_from(records.len()).map_err(|_| LimitError::Batch { actual: u64::MAX })?;
    let estimate: usize = records
        .iter()
        .map(|r| r.value.len() + r.key.as_ref().map_or(0, |k| k.len()) + 8)
        .sum();
    let mut bytes = Vec::with_capacity(BATCH_HEADER_BYTES + estimate);
    bytes.resize(BATCH_HEADER_BYTES, 0);
    for record in records {
        let body = record_body_len(record);
        let total = varint_len(body as u64) + body;
        if total > limits.record_bytes_max as usize {
            return Err(LimitError::Record {
                actual: total as u64,
            });
        }
        if bytes.len() + total > limits.batch_bytes_max as usize {
            let actual = bytes.len() as u64
                + records
                    .iter()
                    .map(|r| record_body_len(r) as u64 + 10)
                    .sum::<u64>();
            return Err(LimitError::Batch { actual });
        }
        put_varint(&mut bytes, body as u64);
        put_varint(&mut bytes, 0); // timestamp delta: one append time per batch
        match &record.key {
            None => put_varint(&mut bytes, 0),
            Some(k) => {
                put_varint(&mut bytes, k.len() as u64 + 1);
                bytes.extend_from_slice(k);
            }
        }
        put_varint(&mut bytes, record.headers.len() as u64);
        for h in &record.headers {
            put_varint(&mut bytes, h.name.len() as u64);
            bytes.extend_from_slice(h.name.as_bytes());
            put_varint(&mut bytes, h.value.len() as u64);
            bytes.extend_from_slice(&h.value);
        }
        bytes.extend_from_slice(&record.value);
    }
    let length = (bytes.len() - LENGTH_FIELD_BYTES) as u32;
    bytes[0..4].copy_from_slice(&length.to_le_bytes());
    bytes[16] = BATCH_VERSION;
    bytes[20..24].copy_from_slice(&record_count.to_le_bytes());
    let records_crc = crc32c::crc32c(&bytes[BATCH_HEADER_BYTES..]);
    Ok(EncodedBatch {
        bytes,
        record_count,
        records_crc,
    })
}

impl EncodedBatch {
    /// The encoded bytes, as they will be written.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Sets the base offset and the append time, and computes the CRC.
    pub fn seal(&mut self, base_offset: u64, timestamp_ms: i64) {
        let b = &mut self.bytes;
        b[8..16].copy_from_slice(&base_offset.to_le_bytes());
        b[24..32].copy_from_slice(&timestamp_ms.to_le_bytes());
        b[32..40].copy_from_slice(&timestamp_ms.to_le_bytes());
        let head_crc = crc32c::crc32c(&b[CRC_START..BATCH_HEADER_BYTES]);
        let records = &b[BATCH_HEADER_BYTES..];
        // Under the log's lock: take the cheaper way (see the constant).
        let crc = if records.len() <= CRC_COMBINE_MIN_BYTES {
            crc32c::crc32c_append(head_crc, records)
        } else {
            crc32c::crc32c_combine(head_crc, self.records_crc, records.len())
        };
        b[4..8].copy_from_slice(&crc.to_le_bytes());
    }
}

/// A limit broken while encoding; the log turns it into a
/// [`crate::LogError::LimitExceeded`] naming the setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitError {
    /// No records.
    Empty,
    /// One record is larger than `record_bytes_max`.
    Record {
        /// Its encoded size.
        actual: u64,
    },
    /// The batch is larger than `batch_bytes_max`.
    Batch {
        /// Its encoded size (an upper bound).
        actual: u64,
    },
}

fn record_body_len(r: &Record) -> usize {
    let key = match &r.key {
        None => 1,
        Some(k) => varint_len(k.len() as u64 + 1) + k.len(),
    };
    let headers: usize = r
        .headers
        .iter()
        .map(|h| {
            varint_len(h.name.len() as u64)
                + h.name.len()
                + varint_len(h.value.len() as u64)
                + h.value.len()
        })
        .sum();
    1 + key + varint_len(r.headers.len() as u64) + headers + r.value.len()
}

/// Reads the fixed header of the batch at the start of `bytes` and checks
/// the fields that can be checked without the body. [`BATCH_BYTES_LIMIT`]
/// bounds the length field so a damaged length cannot make us read gigabytes.
pub fn peek_batch_header(bytes: &[u8]) -> Result<BatchHeader, BatchDefect> {
    if bytes.len() < LENGTH_FIELD_BYTES {
        return Err(BatchDefect::Torn);
    }
    let length = u32_at(bytes, 0);
    if length == 0 {
        return Err(BatchDefect::End);
    }
    let total = LENGTH_FIELD_BYTES as u64 + u64::from(length);
    if total < BATCH_HEADER_BYTES as u64 + 1 {
        return Err(BatchDefect::Corrupt(format!(
            "batch length {length} is too small"
        )));
    }
    if total > u64::from(BATCH_BYTES_LIMIT) {
        return Err(BatchDefect::Corrupt(format!(
            "batch length {length} exceeds the format's limit of {BATCH_BYTES_LIMIT}"
        )));
    }
    if bytes.len() < BATCH_HEADER_BYTES {
        return Err(BatchDefect::Torn);
    }
    Ok(BatchHeader {
        length,
        crc: u32_at(bytes, 4),
        base_offset: u64_at(bytes, 8),
        record_count: u32_at(bytes, 20),
        first_timestamp_ms: i64_at(bytes, 24),
        last_timestamp_ms: i64_at(bytes, 32),
    })
}

/// A batch read back and checked: CRC, version, and the framing of every
/// record. Its records share `data`.
#[derive(Debug, Clone)]
pub struct Batch {
    header: BatchHeader,
    data: Bytes,
}

impl Batch {
    /// Checks the batch at the start of `data` (which may hold more bytes
    /// after it) and returns it with its size on disk.
    pub fn decode(data: &Bytes) -> Result<Batch, BatchDefect> {
        let header = peek_batch_header(data)?;
        let total = header.total_bytes();
        if data.len() < total {
            return Err(BatchDefect::Torn);
        }
        let data = data.slice(..total);
        let crc = crc32c::crc32c(&data[CRC_START..]);
        if crc != header.crc {
            return Err(BatchDefect::Corrupt(format!(
                "CRC mismatch (stored {:#010x}, computed {crc:#010x})",
                header.crc
            )));
        }
        if data[16] != BATCH_VERSION {
            return Err(BatchDefect::Corrupt(format!(
                "unknown batch version {}",
                data[16]
            )));
        }
        if data[17] != 0 {
            return Err(BatchDefect::Corrupt(format!(
                "unknown batch attributes {:#04x}",
                data[17]
            )));
        }
        if header.record_count == 0 {
            return Err(BatchDefect::Corrupt("batch holds no records".into()));
        }
        if header.last_timestamp_ms < header.first_timestamp_ms {
            return Err(BatchDefect::Corrupt("last timestamp before first".into()));
        }
        if header
            .base_offset
            .checked_add(u64::from(header.record_count))
            .is_none()
        {
            return Err(BatchDefect::Corrupt("offsets overflow".into()));
        }
        let batch = Batch { header, data };
        let mut pos = BATCH_HEADER_BYTES;
        let mut count = 0u32;
        let mut prev_ts = header.first_timestamp_ms;
        while pos < batch.data.len() {
            let (parts, next) = parse_record(&batch.data, pos).map_err(BatchDefect::Corrupt)?;
            let ts = header
                .first_timestamp_ms
                .checked_add_unsigned(parts.ts_delta)
                .filter(|ts| *ts >= prev_ts && *ts <= header.last_timestamp_ms)
                .ok_or_else(|| BatchDefect::Corrupt("record timestamp out of order".into()))?;
            prev_ts = ts;
            count += 1;
            pos = next;
        }
        if count != header.record_count {
            return Err(BatchDefect::Corrupt(format!(
                "header says {} records, body holds {count}",
                header.record_count
            )));
        }
        Ok(batch)
    }

    /// The batch's fixed fields.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// Offset of the first record.
    pub fn base_offset(&self) -> Offset {
        Offset(self.header.base_offset)
    }

    /// Offset after the last record.
    pub fn next_offset(&self) -> Offset {
        Offset(self.header.next_offset())
    }

    /// Number of records.
    pub fn record_count(&self) -> u32 {
        self.header.record_count
    }

    /// Bytes on disk.
    pub fn size_bytes(&self) -> usize {
        self.data.len()
    }

    /// The raw bytes, exactly as stored.
    pub fn as_bytes(&self) -> &Bytes {
        &self.data
    }

    /// The records, in offset order.
    pub fn records(&self) -> Records<'_> {
        Records {
            batch: self,
            pos: BATCH_HEADER_BYTES,
            index: 0,
        }
    }
}

/// Iterator over the records of a [`Batch`].
#[derive(Debug)]
pub struct Records<'a> {
    batch: &'a Batch,
    pos: usize,
    index: u32,
}

impl Iterator for Records<'_> {
    type Item = StoredRecord;

    fn next(&mut self) -> Option<StoredRecord> {
        let data = &self.batch.data;
        if self.pos >= data.len() {
            return None;
        }
        // `Batch::decode` walked these records already, so this cannot fail;
        // if it somehow did, stopping is safer than returning garbage.
        let (parts, next) = parse_record(data, self.pos).ok()?;
        let h = &self.batch.header;
        let record = StoredRecord {
            offset: Offset(h.base_offset + u64::from(self.index)),
            timestamp_ms: h.first_timestamp_ms.saturating_add_unsigned(parts.ts_delta),
            key: parts.key.map(|(s, e)| data.slice(s..e)),
            headers: parts
                .headers
                .iter()
                .map(|&((ns, ne), (vs, ve))| Header {
                    name: String::from_utf8_lossy(&data[ns..ne]).into_owned(),
                    value: data.slice(vs..ve),
                })
                .collect(),
            value: data.slice(parts.value.0..parts.value.1),
        };
        self.pos = next;
        self.index += 1;
        Some(record)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.batch.header.record_count - self.index) as usize;
        (left, Some(left))
    }
}

type Span = (usize, usize);

struct RecordParts {
    ts_delta: u64,
    key: Option<Span>,
    headers: Vec<(Span, Span)>,
    value: Span,
}

/// Parses the record at `pos`; returns its parts as byte ranges of `buf`
/// and the position after it.
fn parse_record(buf: &[u8], pos: usize) -> Result<(RecordParts, usize), String> {
    let (len, body_start) = get_varint(buf, pos).ok_or("bad record length")?;
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| body_start.checked_add(l))
        .filter(|&e| e <= buf.len())
        .ok_or("record runs past the end of its batch")?;
    let body = &buf[..end];
    let (ts_delta, p) = get_varint(body, body_start).ok_or("bad timestamp delta")?;
    let (key_tag, mut p) = get_varint(body, p).ok_or("bad key length")?;
    let key = if key_tag == 0 {
        None
    } else {
        let span = take(body, p, key_tag - 1).ok_or("key runs past its record")?;
        p = span.1;
        Some(span)
    };
    let (n_headers, mut p) = get_varint(body, p).ok_or("bad header count")?;
    // Each header needs at least two bytes, which bounds the allocation.
    if n_headers > ((end - p) / 2) as u64 {
        return Err("header count larger than the record".into());
    }
    let mut headers = Vec::with_capacity(n_headers as usize);
    for _ in 0..n_headers {
        let (nl, q) = get_varint(body, p).ok_or("bad header name length")?;
        let name = take(body, q, nl).ok_or("header name runs past its record")?;
        if std::str::from_utf8(&body[name.0..name.1]).is_err() {
            return Err("header name is not UTF-8".into());
        }
        let (vl, q) = get_varint(body, name.1).ok_or("bad header value length")?;
        let value = take(body, q, vl).ok_or("header value runs past its record")?;
        p = value.1;
        headers.push((name, value));
    }
    Ok((
        RecordParts {
            ts_delta,
            key,
            headers,
            value: (p, end),
        },
        end,
    ))
}

fn take(buf: &[u8], start: usize, len: u64) -> Option<Span> {
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    (end <= buf.len()).then_some((start, end))
}

/// Appends `v` as an unsigned LEB128 varint.
pub fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Bytes [`put_varint`] writes for `v`.
pub fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Reads a varint at `pos`; returns it and the position after it.
pub fn get_varint(buf: &[u8], mut pos: usize) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(pos)?;
        pos += 1;
        if shift == 63 && b > 1 {
            return None;
        }
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some((v, pos));
        }
    }
    None
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    u64_at(b, at) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        record_bytes_max: 1 << 20,
        batch_bytes_max: 1 << 24,
    };

    fn sample() -> Vec<Record> {
        vec![
            Record::new("v0"),
            Record::new(Bytes::new())
                .with_key("k1")
                .with_header("h", "x"),
            Record::new(vec![7u8; 300])
                .with_key(Bytes::new())
                .with_header("a", "")
                .with_header("ü", "1"),
        ]
    }

    #[test]
    fn batch_round_trips() {
        // Proves encode → seal → decode returns the same records, offsets and time.
        let mut enc = encode_batch(&sample(), LIMITS).unwrap();
        enc.seal(42, 1_700_000_000_000);
        let bytes = Bytes::from(enc.bytes);
        let batch = Batch::decode(&bytes).unwrap();
        assert_eq!(batch.base_offset(), Offset(42));
        assert_eq!(batch.next_offset(), Offset(45));
        let got: Vec<_> = batch.records().collect();
        for (i, (g, want)) in got.iter().zip(sample()).enumerate() {
            assert_eq!(g.offset, Offset(42 + i as u64));
            assert_eq!(g.timestamp_ms, 1_700_000_000_000);
            assert_eq!(g.key, want.key);
            assert_eq!(g.headers, want.headers);
            assert_eq!(g.value, want.value);
        }
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn seal_checksums_short_and_long_batches_alike() {
        // Proves both ways of sealing (CRC run again, CRC combined) write
        // the CRC of the whole batch, on either side of the threshold.
        for len in [10, CRC_COMBINE_MIN_BYTES - 100, CRC_COMBINE_MIN_BYTES + 100] {
            let mut enc = encode_batch(&[Record::new(vec![3u8; len])], LIMITS).unwrap();
            enc.seal(7, 1_700_000_000_000);
            let b = &enc.bytes;
            let want = crc32c::crc32c(&b[CRC_START..]);
            assert_eq!(b[4..8], want.to_le_bytes(), "record of {len} bytes");
            let bytes = Bytes::from(enc.bytes);
            assert_eq!(Batch::decode(&bytes).unwrap().records().count(), 1);
        }
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        // Proves a single damaged byte anywhere in a batch is never accepted.
        let mut enc = encode_batch(&sample(), LIMITS).unwrap();
        enc.seal(7, 99);
        for i in 0..enc.bytes.len() {
            let mut b = enc.bytes.clone();
            b[i] ^= 0x5a;
            let r = Batch::decode(&Bytes::from(b));
            assert!(r.is_err(), "flip at byte {i} accepted");
        }
    }

    #[test]
    fn every_truncation_is_torn_or_corrupt() {
        // Proves a batch cut at any byte is reported, not returned.
        let mut enc = encode_batch(&sample(), LIMITS).unwrap();
        enc.seal(0, 0);
        for cut in 0..enc.bytes.len() {
            let b = Bytes::copy_from_slice(&enc.bytes[..cut]);
            assert!(Batch::decode(&b).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn limits_are_enforced() {
        // Proves oversized records and batches and empty batches are refused.
        let small = Limits {
            record_bytes_max: 100,
            batch_bytes_max: 300,
        };
        assert_eq!(encode_batch(&[], small).unwrap_err(), LimitError::Empty);
        assert!(matches!(
            encode_batch(&[Record::new(vec![0u8; 200])], small),
            Err(LimitError::Record { .. })
        ));
        let four = vec![Record::new(vec![0u8; 80]); 4];
        assert!(matches!(
            encode_batch(&four, small),
            Err(LimitError::Batch { .. })
        ));
    }

    #[test]
    fn varints_round_trip_and_reject_overflow() {
        // Proves varint encoding matches its length function and bad input is refused.
        for v in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v));
            assert_eq!(get_varint(&b, 0), Some((v, b.len())));
        }
        assert_eq!(get_varint(&[0xff; 11], 0), None);
        assert_eq!(get_varint(&[0x80], 0), None);
    }

    #[test]
    fn segment_header_checks() {
        // Proves the segment header detects wrong magic, version and base offset.
        let h = segment_header(100);
        assert!(check_segment_header(&h, 100).is_ok());
        assert!(check_segment_header(&h, 101).is_err());
        assert!(check_segment_header(&h[..10], 100).is_err());
        let mut bad = h;
        bad[8] = 9;
        assert!(check_segment_header(&bad, 100).is_err());
    }
}
