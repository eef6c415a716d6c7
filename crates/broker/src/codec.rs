//! Binary encodings of the broker's own data: the event envelope inside a
//! log record, and the varint reader/writer the journal shares.
//!
//! An event is stored as one log record: the record key is the event key,
//! the record headers are the event's extension headers, and the record
//! value is the envelope followed by the data:
//!
//! ```text
//! u8 version (1) · varint presence flags · id · source · type ·
//! [subject] [datacontenttype] [dataschema] [correlationid] [causationid]
//! [traceparent] [time_ms as zigzag varint] · data (the rest)
//! ```
//!
//! Strings are a varint length and UTF-8 bytes. Decoding checks every
//! length and UTF-8 and returns `Corrupt`, never panics.

use bytes::Bytes;
use eddy_bus::{BusError, Event, Offset, Partition, Result, StoredEvent};
use eddy_log::format::{get_varint, put_varint};
use eddy_log::{Header, Record, StoredRecord};

const ENVELOPE_VERSION: u8 = 1;

const HAS_SUBJECT: u64 = 1;
const HAS_CONTENT_TYPE: u64 = 1 << 1;
const HAS_SCHEMA: u64 = 1 << 2;
const HAS_CORRELATION: u64 = 1 << 3;
const HAS_CAUSATION: u64 = 1 << 4;
const HAS_TRACEPARENT: u64 = 1 << 5;
const HAS_TIME: u64 = 1 << 6;
const KNOWN_FLAGS: u64 = (1 << 7) - 1;

/// Appends varint-framed values to a buffer.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u64(&mut self, v: u64) {
        put_varint(&mut self.buf, v);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        put_varint(&mut self.buf, u64::from(v));
    }
    pub(crate) fn i64(&mut self, v: i64) {
        put_varint(&mut self.buf, ((v << 1) ^ (v >> 63)) as u64);
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        put_varint(&mut self.buf, v.len() as u64);
        self.buf.extend_from_slice(v);
    }
    pub(crate) fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    pub(crate) fn opt_str(&mut self, v: Option<&str>) {
        match v {
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
            None => self.u8(0),
        }
    }
}

/// Reads what a [`Writer`] wrote; every failure is a `Corrupt` error
/// naming `what` was being decoded.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { buf, pos: 0, what }
    }
    pub(crate) fn corrupt(&self, why: &str) -> BusError {
        BusError::Corrupt(format!("{} at byte {}: {why}", self.what, self.pos))
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }
    pub(crate) fn u8(&mut self) -> Result<u8> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.corrupt("truncated"))?;
        self.pos += 1;
        Ok(b)
    }
    pub(crate) fn u64(&mut self) -> Result<u64> {
        let (v, pos) = get_varint(self.buf, self.pos).ok_or_else(|| self.corrupt("bad varint"))?;
        self.pos = pos;
        Ok(v)
    }
    pub(crate) fn u32(&mut self) -> Result<u32> {
        let v = self.u64()?;
        u32::try_from(v).map_err(|_| self.corrupt("value out of range"))
    }
    pub(crate) fn i64(&mut self) -> Result<i64> {
        let v = self.u64()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.u64()?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| self.pos.checked_add(l))
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| self.corrupt("length past the end"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    pub(crate) fn str(&mut self) -> Result<String> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| self.corrupt("invalid UTF-8"))
    }
    pub(crate) fn opt_str(&mut self) -> Result<Option<String>> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.str().map(Some),
            _ => Err(self.corrupt("bad option tag")),
        }
    }
    pub(crate) fn rest(&self) -> usize {
        self.pos
    }
}

/// The log record that stores `event` (its id already assigned).
pub(crate) fn event_to_record(event: &Event) -> Record {
    let mut flags = 0;
    let opts = [
        (HAS_SUBJECT, &event.subject),
        (HAS_CONTENT_TYPE, &event.data_content_type),
        (HAS_SCHEMA, &event.data_schema),
        (HAS_CORRELATION, &event.correlation_id),
        (HAS_CAUSATION, &event.causation_id),
        (HAS_TRACEPARENT, &event.traceparent),
    ];
    for (flag, v) in &opts {
        if v.is_some() {
            flags |= flag;
        }
    }
    if event.time_ms.is_some() {
        flags |= HAS_TIME;
    }
    let mut w = Writer {
        buf: Vec::with_capacity(64 + event.id.len() + event.ty.len() + event.data.len()),
    };
    w.u8(ENVELOPE_VERSION);
    w.u64(flags);
    w.str(&event.id);
    w.str(&event.source);
    w.str(&event.ty);
    for (_, v) in &opts {
        if let Some(s) = v {
            w.str(s);
        }
    }
    if let Some(t) = event.time_ms {
        w.i64(t);
    }
    w.buf.extend_from_slice(&event.data);
    Record {
        key: event
            .key
            .as_ref()
            .map(|k| Bytes::copy_from_slice(k.as_bytes())),
        headers: event
            .headers
            .iter()
            .map(|(n, v)| Header {
                name: n.clone(),
                value: Bytes::copy_from_slice(v.as_bytes()),
            })
            .collect(),
        value: Bytes::from(w.buf),
    }
}

/// The event id stored in a record, without decoding the rest.
pub(crate) fn record_event_id(value: &[u8]) -> Result<String> {
    let mut r = Reader::new(value, "event envelope");
    if r.u8()? != ENVELOPE_VERSION {
        return Err(r.corrupt("unknown envelope version"));
    }
    r.u64()?;
    r.str()
}

/// Decodes a stored record of `topic`'s `partition` into an event.
/// Headers whose names start with `skip_prefix` are left out (the broker's
/// own metadata on dead letters) and returned separately.
pub(crate) fn record_to_event(
    topic: &str,
    partition: u32,
    rec: &StoredRecord,
) -> Result<(StoredEvent, Meta)> {
    let value = &rec.value;
    let mut r = Reader::new(value, "event envelope");
    if r.u8()? != ENVELOPE_VERSION {
        return Err(r.corrupt("unknown envelope version"));
    }
    let flags = r.u64()?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(r.corrupt("unknown attribute flags"));
    }
    let id = r.str()?;
    let source = r.str()?;
    let ty = r.str()?;
    let mut opt = |flag: u64| -> Result<Option<String>> {
        if flags & flag != 0 {
            r.str().map(Some)
        } else {
            Ok(None)
        }
    };
    let subject = opt(HAS_SUBJECT)?;
    let data_content_type = opt(HAS_CONTENT_TYPE)?;
    let data_schema = opt(HAS_SCHEMA)?;
    let correlation_id = opt(HAS_CORRELATION)?;
    let causation_id = opt(HAS_CAUSATION)?;
    let traceparent = opt(HAS_TRACEPARENT)?;
    let time_ms = if flags & HAS_TIME != 0 {
        Some(r.i64()?)
    } else {
        None
    };
    let data = value.slice(r.rest()..);
    let key = match &rec.key {
        Some(k) => Some(
            String::from_utf8(k.to_vec())
                .map_err(|_| BusError::Corrupt("event key is not UTF-8".into()))?,
        ),
        None => None,
    };
    let mut headers = Vec::with_capacity(rec.headers.len());
    let mut meta = Vec::new();
    for h in &rec.headers {
        let v = String::from_utf8(h.value.to_vec())
            .map_err(|_| BusError::Corrupt(format!("header {:?} is not UTF-8", h.name)))?;
        if h.name.starts_with(META_PREFIX) {
            meta.push((h.name.clone(), v));
        } else {
            headers.push((h.name.clone(), v));
        }
    }
    Ok((
        StoredEvent {
            topic: topic.to_string(),
            partition: Partition(partition),
            offset: Offset(rec.offset.0),
            timestamp_ms: rec.timestamp_ms,
            event: Event {
                id,
                source,
                ty,
                subject,
                time_ms,
                data_content_type,
                data_schema,
                data,
                key,
                correlation_id,
                causation_id,
                traceparent,
                headers,
            },
        },
        meta,
    ))
}

/// The broker's metadata headers of a stored record (`eddy:` names).
pub(crate) type Meta = Vec<(String, String)>;

/// Prefix of the broker's metadata headers on dead letters. No event header
/// can start with it: extension names are lowercase letters and digits.
pub(crate) const META_PREFIX: &str = "eddy:";

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(rec: Record) -> StoredRecord {
        StoredRecord {
            offset: eddy_log::Offset(7),
            timestamp_ms: 1234,
            key: rec.key,
            headers: rec.headers,
            value: rec.value,
        }
    }

    #[test]
    fn event_round_trip() {
        let full = Event {
            id: "e-1".into(),
            source: "/orders".into(),
            ty: "OrderPlaced".into(),
            subject: Some("order-1".into()),
            time_ms: Some(-5),
            data_content_type: Some("application/json".into()),
            data_schema: Some("s".into()),
            data: Bytes::from_static(b"{\"total\":3}"),
            key: Some("order-1".into()),
            correlation_id: Some("c".into()),
            causation_id: Some("d".into()),
            traceparent: Some("00-ab-cd-01".into()),
            headers: vec![("tenant".into(), "acme".into())],
        };
        for e in [full, Event::new("T", "").with_id("x")] {
            let rec = event_to_record(&e);
            assert_eq!(record_event_id(&rec.value).unwrap(), e.id);
            let (back, meta) = record_to_event("orders", 2, &stored(rec)).unwrap();
            assert!(meta.is_empty());
            assert_eq!(back.event, e);
            assert_eq!(
                (back.topic.as_str(), back.partition.0, back.offset.0),
                ("orders", 2, 7)
            );
            assert_eq!(back.timestamp_ms, 1234);
        }
    }

    #[test]
    fn damaged_envelopes_are_errors_not_panics() {
        let rec = event_to_record(&Event::new("OrderPlaced", "data").with_id("abc"));
        let value = rec.value.clone();
        for cut in 0..value.len() {
            let mut r = rec.clone();
            r.value = value.slice(..cut);
            // Any prefix either decodes (the data is the tail) or is an error.
            let _ = record_to_event("t", 0, &stored(r));
        }
        let mut bad = value.to_vec();
        bad[0] = 9;
        let mut r = rec.clone();
        r.value = Bytes::from(bad);
        assert!(matches!(
            record_to_event("t", 0, &stored(r)),
            Err(BusError::Corrupt(_))
        ));
        let mut bad = value.to_vec();
        bad[1] = 0x7f; // unknown flags
        let mut r = rec;
        r.value = Bytes::from(bad);
        assert!(record_to_event("t", 0, &stored(r)).is_err());
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_records_never_panics(
            value in proptest::collection::vec(proptest::num::u8::ANY, 0..256),
            key in proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..16)),
        ) {
            // Proves the envelope decoder returns errors, not panics, on
            // any stored bytes.
            let rec = StoredRecord {
                offset: eddy_log::Offset(0),
                timestamp_ms: 0,
                key: key.map(Bytes::from),
                headers: vec![Header { name: "h".into(), value: Bytes::from_static(&[0xff]) }],
                value: Bytes::from(value),
            };
            let _ = record_to_event("t", 0, &rec);
            let _ = record_event_id(&rec.value);
        }
    }
}
