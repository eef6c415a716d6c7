//! The event store's index, pure (no I/O, no clock): every stream's
//! versions and where each one is in the store's log, its settings, and
//! the recent event ids that make a retried append idempotent.
//!
//! Appends decide here, under the store's lock, against everything written
//! so far (durable or not), so two appends with the same expected version
//! cannot both pass. Reads see only what is durable: they stop at the log's
//! readable end.
//!
//! Memory: 8 bytes per event (its position) plus about 100 bytes per stream
//! and 48 per remembered id (at most `ids_max`).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use eddy_bus::{BusError, ExpectedVersion, Result, StreamMetadata};

/// One stream.
#[derive(Debug, Default)]
pub(crate) struct StreamEntry {
    /// The `$all` position of every version, from 0.
    pub(crate) positions: Vec<u64>,
    /// Its settings.
    pub(crate) meta: StreamMetadata,
    /// Deleted, and not written since: reads as not existing.
    pub(crate) deleted: bool,
}

impl StreamEntry {
    /// The last version written (durable or not), if the stream exists.
    pub(crate) fn current(&self) -> Option<u64> {
        if self.deleted {
            return None;
        }
        (self.positions.len() as u64).checked_sub(1)
    }

    /// The versions a read may return, given the log's readable end and
    /// the time: `lo..=hi`, or `None` if none.
    pub(crate) fn readable(&self, visible_next: u64) -> Option<(u64, u64)> {
        if self.deleted {
            return None;
        }
        let n = self.positions.partition_point(|&p| p < visible_next) as u64;
        let hi = n.checked_sub(1)?;
        let mut lo = self.meta.truncate_before.unwrap_or(0);
        if let Some(c) = self.meta.max_count {
            lo = lo.max(n.saturating_sub(c));
        }
        (lo <= hi).then_some((lo, hi))
    }
}

/// What an append will do, decided by [`Index::decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Write the events; the first gets this version.
    Write { first_version: u64 },
    /// The events are the stream's already, from this version: nothing to
    /// write.
    Duplicate { first_version: u64 },
}

/// Every stream, and the recent event ids.
#[derive(Debug)]
pub(crate) struct Index<S = RandomState> {
    names: HashMap<Arc<str>, u32>,
    streams: Vec<(Arc<str>, StreamEntry)>,
    ids: Ids<S>,
}

/// Recent event ids → (stream number, version), oldest forgotten first.
/// Keyed by a 128-bit keyed hash of the id (two independent 64-bit keys),
/// so the id string is not kept; a false match would need a 128-bit
/// collision under keys chosen at random per process.
#[derive(Debug)]
struct Ids<S> {
    hashers: (S, S),
    map: HashMap<u128, (u32, u64)>,
    order: VecDeque<u128>,
    max: usize,
}

impl<S: BuildHasher> Ids<S> {
    fn key(&self, id: &str) -> u128 {
        (u128::from(self.hashers.0.hash_one(id)) << 64) | u128::from(self.hashers.1.hash_one(id))
    }

    fn insert(&mut self, key: u128, at: (u32, u64)) {
        if self.max == 0 {
            return;
        }
        if self.map.insert(key, at).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > self.max {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

impl Index<RandomState> {
    /// An empty index remembering at most `ids_max` event ids.
    pub(crate) fn new(ids_max: usize) -> Index {
        Index::with_hashers((RandomState::new(), RandomState::new()), ids_max)
    }
}

impl<S: BuildHasher> Index<S> {
    pub(crate) fn with_hashers(hashers: (S, S), ids_max: usize) -> Index<S> {
        Index {
            names: HashMap::new(),
            streams: Vec::new(),
            ids: Ids {
                hashers,
                map: HashMap::new(),
                order: VecDeque::new(),
                max: ids_max,
            },
        }
    }

    /// A stream, if it was ever written.
    pub(crate) fn get(&self, stream: &str) -> Option<&StreamEntry> {
        let &n = self.names.get(stream)?;
        self.streams.get(n as usize).map(|(_, e)| e)
    }

    fn number(&mut self, stream: &str) -> u32 {
        if let Some(&n) = self.names.get(stream) {
            return n;
        }
        let n = self.streams.len() as u32;
        let name: Arc<str> = Arc::from(stream);
        self.names.insert(Arc::clone(&name), n);
        self.streams.push((name, StreamEntry::default()));
        n
    }

    fn entry_mut(&mut self, stream: &str) -> &mut StreamEntry {
        let n = self.number(stream) as usize;
        &mut self.streams[n].1
    }

    /// Decides an append of events with `ids` to `stream`: a retried
    /// append (every id the stream's, in order, at consecutive versions) is
    /// a duplicate whatever `expected` says; an id that is another
    /// stream's, or only some of the ids being the stream's, is refused;
    /// otherwise `expected` must hold. Changes nothing.
    pub(crate) fn decide(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        ids: &[&str],
    ) -> Result<Decision> {
        let number = self.names.get(stream).copied();
        let current = self.get(stream).and_then(StreamEntry::current);
        let conflict = || BusError::WrongExpectedVersion {
            stream: stream.to_string(),
            expected: expected.to_string(),
            actual: current,
        };
        let mut found = ids
            .iter()
            .map(|id| self.ids.map.get(&self.ids.key(id)).copied());
        if let Some(Some((s, v))) = found.next() {
            if Some(s) != number {
                let other = self.streams.get(s as usize).map_or("?", |(n, _)| n);
                return Err(BusError::EventIdInUse {
                    id: ids[0].to_string(),
                    stream: other.to_string(),
                    version: v,
                });
            }
            let all_there = found.zip(1u64..).all(|(at, i)| at == Some((s, v + i)));
            let live = current.is_some_and(|c| v + ids.len() as u64 - 1 <= c);
            return if all_there && live {
                Ok(Decision::Duplicate { first_version: v })
            } else {
                Err(conflict())
            };
        }
        for (i, at) in found.enumerate() {
            if let Some((s, v)) = at {
                let other = self.streams.get(s as usize).map_or("?", |(n, _)| n);
                return Err(BusError::EventIdInUse {
                    id: ids[i + 1].to_string(),
                    stream: other.to_string(),
                    version: v,
                });
            }
        }
        let ok = match expected {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current.is_none(),
            ExpectedVersion::Exists => current.is_some(),
            ExpectedVersion::Exact(n) => current == Some(n),
        };
        if !ok {
            return Err(conflict());
        }
        let next = self.get(stream).map_or(0, |e| e.positions.len() as u64);
        Ok(Decision::Write {
            first_version: next,
        })
    }

    /// Records events of `stream` with `ids` written at consecutive
    /// positions from `first_position`. Returns the first one's version.
    pub(crate) fn record_events<'a>(
        &mut self,
        stream: &str,
        ids: impl IntoIterator<Item = &'a str>,
        first_position: u64,
    ) -> u64 {
        let n = self.number(stream);
        let first_version = self.streams[n as usize].1.positions.len() as u64;
        for (i, id) in ids.into_iter().enumerate() {
            let key = self.ids.key(id);
            let entry = &mut self.streams[n as usize].1;
            entry.deleted = false;
            entry.positions.push(first_position + i as u64);
            self.ids.insert(key, (n, first_version + i as u64));
        }
        first_version
    }

    /// Records new settings of `stream` (and whether it is deleted).
    pub(crate) fn record_meta(&mut self, stream: &str, meta: StreamMetadata, deleted: bool) {
        let e = self.entry_mut(stream);
        e.meta = meta;
        e.deleted = deleted;
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasherDefault;

    use super::*;

    type Fixed = BuildHasherDefault<std::collections::hash_map::DefaultHasher>;

    fn index(ids_max: usize) -> Index<Fixed> {
        Index::with_hashers((Fixed::default(), Fixed::default()), ids_max)
    }

    fn write(
        ix: &mut Index<Fixed>,
        stream: &str,
        expected: ExpectedVersion,
        ids: &[&str],
    ) -> Result<Decision> {
        let d = ix.decide(stream, expected, ids)?;
        if let Decision::Write { .. } = d {
            let at = ix
                .streams
                .iter()
                .map(|(_, e)| e.positions.len() as u64)
                .sum();
            ix.record_events(stream, ids.iter().copied(), at);
        }
        Ok(d)
    }

    #[test]
    fn expected_versions_are_checked() {
        use ExpectedVersion::*;
        let mut ix = index(100);
        assert!(matches!(
            write(&mut ix, "a-1", Exists, &["x"]),
            Err(BusError::WrongExpectedVersion { actual: None, .. })
        ));
        assert_eq!(
            write(&mut ix, "a-1", NoStream, &["e0"]).unwrap(),
            Decision::Write { first_version: 0 }
        );
        assert_eq!(
            write(&mut ix, "a-1", Exact(0), &["e1", "e2"]).unwrap(),
            Decision::Write { first_version: 1 }
        );
        match write(&mut ix, "a-1", Exact(0), &["e3"]) {
            Err(BusError::WrongExpectedVersion {
                actual, expected, ..
            }) => {
                assert_eq!((actual, expected.as_str()), (Some(2), "0"));
            }
            other => panic!("{other:?}"),
        }
        assert!(write(&mut ix, "a-1", NoStream, &["e3"]).is_err());
        assert_eq!(
            write(&mut ix, "a-1", Exists, &["e3"]).unwrap(),
            Decision::Write { first_version: 3 }
        );
        assert_eq!(
            write(&mut ix, "a-1", Any, &["e4"]).unwrap(),
            Decision::Write { first_version: 4 }
        );
    }

    #[test]
    fn a_retried_append_is_a_duplicate_and_a_partial_one_a_conflict() {
        use ExpectedVersion::*;
        let mut ix = index(100);
        write(&mut ix, "a-1", NoStream, &["e0", "e1"]).unwrap();
        write(&mut ix, "a-1", Exact(1), &["e2"]).unwrap();
        assert_eq!(
            write(&mut ix, "a-1", NoStream, &["e0", "e1"]).unwrap(),
            Decision::Duplicate { first_version: 0 }
        );
        assert_eq!(
            write(&mut ix, "a-1", Exact(1), &["e2"]).unwrap(),
            Decision::Duplicate { first_version: 2 }
        );
        assert!(matches!(
            write(&mut ix, "a-1", Any, &["e1", "e9"]),
            Err(BusError::WrongExpectedVersion { .. })
        ));
        assert!(matches!(
            write(&mut ix, "a-1", Any, &["e1", "e0"]),
            Err(BusError::WrongExpectedVersion { .. })
        ));
        match write(&mut ix, "b-1", Any, &["new", "e2"]) {
            Err(BusError::EventIdInUse {
                id,
                stream,
                version,
            }) => assert_eq!((id.as_str(), stream.as_str(), version), ("e2", "a-1", 2)),
            other => panic!("{other:?}"),
        }
        assert!(ix.get("b-1").is_none(), "a refused append changes nothing");
    }

    #[test]
    fn only_the_last_ids_are_remembered() {
        let mut ix = index(2);
        write(&mut ix, "a-1", ExpectedVersion::Any, &["e0", "e1", "e2"]).unwrap();
        assert_eq!(ix.ids.map.len(), 2);
        // e0 is forgotten: appending it again is a new event.
        assert_eq!(
            write(&mut ix, "a-1", ExpectedVersion::Any, &["e0"]).unwrap(),
            Decision::Write { first_version: 3 }
        );
    }

    #[test]
    fn deleted_streams_read_as_absent_and_number_on() {
        let mut ix = index(10);
        write(&mut ix, "a-1", ExpectedVersion::Any, &["e0", "e1"]).unwrap();
        ix.record_meta(
            "a-1",
            StreamMetadata {
                truncate_before: Some(2),
                ..StreamMetadata::default()
            },
            true,
        );
        assert_eq!(ix.get("a-1").unwrap().current(), None);
        assert_eq!(ix.get("a-1").unwrap().readable(100), None);
        assert_eq!(
            write(&mut ix, "a-1", ExpectedVersion::NoStream, &["e2"]).unwrap(),
            Decision::Write { first_version: 2 }
        );
        assert_eq!(ix.get("a-1").unwrap().readable(100), Some((2, 2)));
    }

    #[test]
    fn reads_stop_at_the_durable_end_and_honour_the_settings() {
        let mut ix = index(10);
        write(
            &mut ix,
            "a-1",
            ExpectedVersion::Any,
            &["e0", "e1", "e2", "e3"],
        )
        .unwrap();
        let e = ix.get("a-1").unwrap();
        assert_eq!(e.readable(4), Some((0, 3)));
        assert_eq!(
            e.readable(2),
            Some((0, 1)),
            "positions 2 and 3 are not durable yet"
        );
        assert_eq!(e.readable(0), None);
        ix.record_meta(
            "a-1",
            StreamMetadata {
                max_count: Some(3),
                truncate_before: Some(2),
                ..StreamMetadata::default()
            },
            false,
        );
        assert_eq!(ix.get("a-1").unwrap().readable(4), Some((2, 3)));
        ix.record_meta(
            "a-1",
            StreamMetadata {
                max_count: Some(1),
                ..StreamMetadata::default()
            },
            false,
        );
        assert_eq!(ix.get("a-1").unwrap().readable(4), Some((3, 3)));
    }
}
