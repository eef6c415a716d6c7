//! The sparse offset and time indexes of one segment.
//!
//! An entry is added for the first batch of a segment and then for the first
//! batch after every `index_interval_bytes` of data. Each entry names a
//! batch: its offset relative to the segment's base, its byte position, and
//! its first timestamp. On disk the same entries live in two files written
//! when a segment is sealed:
//!
//! ```text
//! <base>.index      entries of (u32 relative offset, u32 position), u32 CRC-32C
//! <base>.timeindex  entries of (i64 first timestamp, u32 relative offset), u32 CRC-32C
//! ```
//!
//! Each file ends with the CRC-32C of its entries, so a damaged entry is
//! detected rather than trusted. Both are derived data: they are not
//! fsynced, and a missing or damaged one is rebuilt from the segment on open.

/// One index entry: a batch boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Base offset of the batch minus the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the segment file.
    pub position: u32,
    /// First timestamp of the batch.
    pub timestamp_ms: i64,
}

const OFFSET_ENTRY_BYTES: usize = 8;
const TIME_ENTRY_BYTES: usize = 12;
const CRC_BYTES: usize = 4;

/// The entries of one segment, in increasing offset, position and time.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SegmentIndex {
    entries: Vec<IndexEntry>,
}

impl SegmentIndex {
    /// Adds an entry; the caller keeps them increasing.
    pub fn push(&mut self, entry: IndexEntry) {
        debug_assert!(self.entries.last().is_none_or(|l| {
            l.relative_offset < entry.relative_offset
                && l.position < entry.position
                && l.timestamp_ms <= entry.timestamp_ms
        }));
        self.entries.push(entry);
    }

    /// The entries.
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// The last entry whose batch starts at or before `relative_offset`.
    pub fn floor_offset(&self, relative_offset: u32) -> Option<IndexEntry> {
        let n = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        n.checked_sub(1).map(|i| self.entries[i])
    }

    /// The last entry whose batch starts strictly before `timestamp_ms`: every
    /// record before it is older than `timestamp_ms`, so a search for the first
    /// record at or after that time can start there.
    pub fn floor_time(&self, timestamp_ms: i64) -> Option<IndexEntry> {
        let n = self
            .entries
            .partition_point(|e| e.timestamp_ms < timestamp_ms);
        n.checked_sub(1).map(|i| self.entries[i])
    }

    /// The contents of the `.index` file.
    pub fn offset_file_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.entries.len() * OFFSET_ENTRY_BYTES);
        for e in &self.entries {
            b.extend_from_slice(&e.relative_offset.to_le_bytes());
            b.extend_from_slice(&e.position.to_le_bytes());
        }
        with_crc(b)
    }

    /// The contents of the `.timeindex` file.
    pub fn time_file_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.entries.len() * TIME_ENTRY_BYTES);
        for e in &self.entries {
            b.extend_from_slice(&e.timestamp_ms.to_le_bytes());
            b.extend_from_slice(&e.relative_offset.to_le_bytes());
        }
        with_crc(b)
    }

    /// Rebuilds an index from its two files, checking their CRCs, that they
    /// agree and are ordered, that the first entry is the segment's first
    /// batch, and that every position lies inside a segment of `segment_len`
    /// bytes.
    pub fn from_files(
        offsets: &[u8],
        times: &[u8],
        first_position: u32,
        segment_len: u64,
    ) -> Result<SegmentIndex, String> {
        let offsets = strip_crc(offsets).ok_or("offset index fails its CRC")?;
        let times = strip_crc(times).ok_or("time index fails its CRC")?;
        if !offsets.len().is_multiple_of(OFFSET_ENTRY_BYTES)
            || !times.len().is_multiple_of(TIME_ENTRY_BYTES)
        {
            return Err("index file length is not a whole number of entries".into());
        }
        let n = offsets.len() / OFFSET_ENTRY_BYTES;
        if n != times.len() / TIME_ENTRY_BYTES {
            return Err("offset and time indexes disagree on the entry count".into());
        }
        if n == 0 {
            return Err("index is empty".into());
        }
        let mut entries = Vec::with_capacity(n);
        for (o, t) in offsets
            .chunks_exact(OFFSET_ENTRY_BYTES)
            .zip(times.chunks_exact(TIME_ENTRY_BYTES))
        {
            let relative_offset = u32::from_le_bytes([o[0], o[1], o[2], o[3]]);
            let position = u32::from_le_bytes([o[4], o[5], o[6], o[7]]);
            let timestamp_ms = i64::from_le_bytes([t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]]);
            let time_rel = u32::from_le_bytes([t[8], t[9], t[10], t[11]]);
            if time_rel != relative_offset {
                return Err("offset and time indexes disagree".into());
            }
            let e = IndexEntry {
                relative_offset,
                position,
                timestamp_ms,
            };
            if let Some(l) = entries.last() {
                let l: &IndexEntry = l;
                if l.relative_offset >= e.relative_offset
                    || l.position >= e.position
                    || l.timestamp_ms > e.timestamp_ms
                {
                    return Err("index entries out of order".into());
                }
            }
            if u64::from(e.position) >= segment_len {
                return Err("index entry points past the end of the segment".into());
            }
            entries.push(e);
        }
        if entries[0].relative_offset != 0 || entries[0].position != first_position {
            return Err("index does not start at the segment's first batch".into());
        }
        Ok(SegmentIndex { entries })
    }
}

fn with_crc(mut entries: Vec<u8>) -> Vec<u8> {
    let crc = crc32c::crc32c(&entries);
    entries.extend_from_slice(&crc.to_le_bytes());
    entries
}

/// The entries of an index file whose trailing CRC matches them.
fn strip_crc(file: &[u8]) -> Option<&[u8]> {
    let split = file.len().checked_sub(CRC_BYTES)?;
    let (entries, crc) = file.split_at(split);
    (crc32c::crc32c(entries).to_le_bytes() == crc).then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> SegmentIndex {
        let mut i = SegmentIndex::default();
        for (r, p, t) in [(0, 24, 10), (5, 4200, 10), (9, 8400, 20), (20, 12600, 30)] {
            i.push(IndexEntry {
                relative_offset: r,
                position: p,
                timestamp_ms: t,
            });
        }
        i
    }

    #[test]
    fn floor_lookups() {
        // Proves offset and time lookups pick the right starting batch.
        let i = index();
        assert_eq!(i.floor_offset(0).unwrap().position, 24);
        assert_eq!(i.floor_offset(4).unwrap().position, 24);
        assert_eq!(i.floor_offset(5).unwrap().position, 4200);
        assert_eq!(i.floor_offset(100).unwrap().position, 12600);
        assert_eq!(i.floor_time(10), None);
        assert_eq!(i.floor_time(11).unwrap().relative_offset, 5);
        assert_eq!(i.floor_time(20).unwrap().relative_offset, 5);
        assert_eq!(i.floor_time(31).unwrap().relative_offset, 20);
    }

    #[test]
    fn files_round_trip_and_damage_is_detected() {
        // Proves the two index files rebuild the index, and damaged files are refused.
        let i = index();
        let (o, t) = (i.offset_file_bytes(), i.time_file_bytes());
        assert_eq!(SegmentIndex::from_files(&o, &t, 24, 20000).unwrap(), i);
        assert!(SegmentIndex::from_files(&o[..o.len() - 1], &t, 24, 20000).is_err());
        assert!(SegmentIndex::from_files(&o, &t[..t.len() - 12], 24, 20000).is_err());
        for i in 0..o.len() {
            let mut flipped = o.clone();
            flipped[i] ^= 1;
            assert!(
                SegmentIndex::from_files(&flipped, &t, 24, 20000).is_err(),
                "flip {i}"
            );
        }
        assert!(SegmentIndex::from_files(&o, &t, 24, 10000).is_err());
        let mut swapped = o.clone();
        swapped.swap(8, 16);
        let swapped = with_crc(swapped[..swapped.len() - 4].to_vec());
        assert!(SegmentIndex::from_files(&swapped, &t, 24, 20000).is_err());
        assert!(SegmentIndex::from_files(&[], &[], 24, 20000).is_err());
    }
}
