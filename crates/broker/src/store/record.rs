//! The event store's records in its log.
//!
//! An event is stored as the bus stores one (the envelope of `codec.rs`),
//! with two more headers: `eddy:stream` (its stream) and `eddy:version`
//! (its version, in decimal). A stream's new settings are a record with
//! `eddy:stream` and `eddy:meta` headers and this value:
//!
//! ```text
//! u8 version (1) · varint flags (1 deleted, 2 max age, 4 max count,
//! 8 truncate before) · [max_age_ms] [max_count] [truncate_before]
//! ```
//!
//! Event ids cannot start with `eddy:` headers: extension names are
//! lowercase letters and digits, so the store's headers never clash.

use bytes::Bytes;
use eddy_bus::{BusError, Event, RecordedEvent, Result, StreamMetadata};
use eddy_log::{Header, Record, StoredRecord};

use crate::codec::{Reader, Writer, event_to_record, record_to_event};

const STREAM: &str = "eddy:stream";
const VERSION: &str = "eddy:version";
const META: &str = "eddy:meta";
const META_FORMAT: u8 = 1;
const DELETED: u64 = 1;
const MAX_AGE: u64 = 1 << 1;
const MAX_COUNT: u64 = 1 << 2;
const TRUNCATE: u64 = 1 << 3;

fn header(name: &str, value: &str) -> Header {
    Header {
        name: name.to_string(),
        value: Bytes::copy_from_slice(value.as_bytes()),
    }
}

/// The record of `event` as version `version` of `stream`.
pub(crate) fn event_record(stream: &str, version: u64, event: &Event) -> Record {
    let mut r = event_to_record(event);
    r.headers.push(header(STREAM, stream));
    r.headers.push(header(VERSION, &version.to_string()));
    r
}

/// The record of new settings of `stream`.
pub(crate) fn meta_record(stream: &str, meta: &StreamMetadata, deleted: bool) -> Record {
    let mut flags = if deleted { DELETED } else { 0 };
    let opts = [
        (MAX_AGE, meta.max_age_ms),
        (MAX_COUNT, meta.max_count),
        (TRUNCATE, meta.truncate_before),
    ];
    for (flag, v) in opts {
        if v.is_some() {
            flags |= flag;
        }
    }
    let mut w = Writer::default();
    w.u8(META_FORMAT);
    w.u64(flags);
    for (_, v) in opts {
        if let Some(v) = v {
            w.u64(v);
        }
    }
    Record {
        key: None,
        headers: vec![header(STREAM, stream), header(META, "1")],
        value: Bytes::from(w.buf),
    }
}

/// A record of the store, decoded.
#[derive(Debug)]
pub(crate) enum StoreRecord {
    /// An event.
    Event(Box<RecordedEvent>),
    /// New settings of a stream.
    Meta {
        stream: String,
        meta: StreamMetadata,
        deleted: bool,
    },
}

fn corrupt(rec: &StoredRecord, why: &str) -> BusError {
    BusError::Corrupt(format!("event store record {}: {why}", rec.offset.0))
}

/// Decodes a record of the store.
pub(crate) fn decode(rec: &StoredRecord) -> Result<StoreRecord> {
    let find = |name: &str| rec.headers.iter().find(|h| h.name == name);
    let text = |h: &Header| {
        std::str::from_utf8(&h.value)
            .map(str::to_string)
            .map_err(|_| corrupt(rec, "a header is not UTF-8"))
    };
    let stream = text(find(STREAM).ok_or_else(|| corrupt(rec, "no stream"))?)?;
    if find(META).is_some() {
        let mut r = Reader::new(&rec.value, "stream metadata");
        if r.u8()? != META_FORMAT {
            return Err(corrupt(rec, "unknown metadata format"));
        }
        let flags = r.u64()?;
        let mut opt = |flag: u64| -> Result<Option<u64>> {
            if flags & flag != 0 {
                r.u64().map(Some)
            } else {
                Ok(None)
            }
        };
        let meta = StreamMetadata {
            max_age_ms: opt(MAX_AGE)?,
            max_count: opt(MAX_COUNT)?,
            truncate_before: opt(TRUNCATE)?,
        };
        return Ok(StoreRecord::Meta {
            stream,
            meta,
            deleted: flags & DELETED != 0,
        });
    }
    let version = text(find(VERSION).ok_or_else(|| corrupt(rec, "no version"))?)?
        .parse()
        .map_err(|_| corrupt(rec, "a version is not a number"))?;
    let (stored, _meta) = record_to_event("", 0, rec)?;
    Ok(StoreRecord::Event(Box::new(RecordedEvent {
        stream,
        version,
        position: rec.offset.0,
        timestamp_ms: rec.timestamp_ms,
        event: stored.event,
    })))
}

#[cfg(test)]
mod tests {
    use eddy_log::Offset;

    use super::*;

    fn stored(r: Record, offset: u64) -> StoredRecord {
        StoredRecord {
            offset: Offset(offset),
            timestamp_ms: 7,
            key: r.key,
            headers: r.headers,
            value: r.value,
        }
    }

    #[test]
    fn events_and_settings_round_trip() {
        let e = Event::new("OrderPlaced", "{}")
            .with_id("e-1")
            .with_key("k")
            .with_header("tenant", "x");
        match decode(&stored(event_record("order-1", 3, &e), 9)).unwrap() {
            StoreRecord::Event(r) => {
                assert_eq!(
                    (r.stream.as_str(), r.version, r.position),
                    ("order-1", 3, 9)
                );
                assert_eq!(r.timestamp_ms, 7);
                assert_eq!(r.event, e, "the store's own headers are not the event's");
            }
            other => panic!("{other:?}"),
        }
        let meta = StreamMetadata {
            max_age_ms: Some(5),
            max_count: None,
            truncate_before: Some(2),
        };
        match decode(&stored(meta_record("order-1", &meta, true), 1)).unwrap() {
            StoreRecord::Meta {
                stream,
                meta: m,
                deleted,
            } => assert_eq!((stream.as_str(), m, deleted), ("order-1", meta, true)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn damaged_records_are_errors() {
        let e = Event::new("X", "").with_id("e");
        let mut r = stored(event_record("a-1", 0, &e), 0);
        r.headers.retain(|h| h.name != VERSION);
        assert!(matches!(decode(&r), Err(BusError::Corrupt(_))));
        let mut m = stored(meta_record("a-1", &StreamMetadata::default(), false), 0);
        m.value = Bytes::from_static(&[1, 4]);
        assert!(matches!(decode(&m), Err(BusError::Corrupt(_))));
        let mut m = stored(meta_record("a-1", &StreamMetadata::default(), false), 0);
        m.headers.remove(0);
        assert!(matches!(decode(&m), Err(BusError::Corrupt(_))));
    }
}
