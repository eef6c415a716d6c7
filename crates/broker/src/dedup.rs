//! A topic's dedup window: the event ids published recently, and where
//! each one landed.
//!
//! Every publish looks up and inserts each of its ids, and every id is
//! later forgotten, so this sits on the publish path of every event. The
//! table holds each id once (one allocation); the age-ordered queue holds
//! only the id's hash and position, so forgetting the oldest id finds its
//! entry by hash and compares positions, without hashing or comparing the
//! string again. Ids come from clients, so the hash is keyed (std's
//! `RandomState`), and a lookup always compares the id itself: two ids with
//! one hash are never taken for each other.

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};

use eddy_bus::DedupWindow;
use hashbrown::HashTable;

/// Where an event landed: partition and offset. Unique per event.
pub(crate) type At = (u32, u64);

#[derive(Debug)]
struct Entry {
    id: Box<str>,
    at: At,
}

/// An id in age order.
#[derive(Debug)]
struct Remembered {
    ts: i64,
    hash: u64,
    at: At,
}

/// Remembered event ids of a topic, oldest first. Tests give it a hasher
/// of their own.
#[derive(Debug, Default)]
pub(crate) struct Dedup<S = RandomState> {
    hasher: S,
    table: HashTable<Entry>,
    order: VecDeque<Remembered>,
}

impl<S: BuildHasher> Dedup<S> {
    /// The hash [`Dedup::get`] and [`Dedup::insert`] take for `id`.
    pub(crate) fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    /// Where the event with `id` (of hash `hash`) landed, if remembered.
    pub(crate) fn get(&self, hash: u64, id: &str) -> Option<At> {
        self.table.find(hash, |e| &*e.id == id).map(|e| e.at)
    }

    /// Remembers `id` at `at`, published at `ts`, unless it is already.
    pub(crate) fn insert(&mut self, hash: u64, id: &str, at: At, ts: i64) {
        let hasher = &self.hasher;
        let entry = self
            .table
            .entry(hash, |e| &*e.id == id, |e| hasher.hash_one(&*e.id));
        if let hashbrown::hash_table::Entry::Vacant(v) = entry {
            v.insert(Entry { id: id.into(), at });
            self.order.push_back(Remembered { ts, hash, at });
        }
    }

    /// Forgets ids older than the window or beyond its size.
    pub(crate) fn trim(&mut self, now: i64, window: &DedupWindow) {
        let oldest = now.saturating_sub_unsigned(window.age_ms);
        while let Some(r) = self.order.front() {
            if r.ts >= oldest && self.order.len() <= window.entries_max as usize {
                break;
            }
            let at = r.at;
            if let Ok(e) = self.table.find_entry(r.hash, |e| e.at == at) {
                e.remove();
            }
            self.order.pop_front();
        }
    }

    /// Ids remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(age_ms: u64, entries_max: u32) -> DedupWindow {
        DedupWindow {
            age_ms,
            entries_max,
        }
    }

    #[test]
    fn remembers_until_too_old_or_too_many() {
        // Proves ids are found where they landed, a second insert of an id
        // keeps the first position, and trim forgets oldest first, by age
        // and by count.
        let mut d = Dedup::<RandomState>::default();
        for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
            d.insert(d.hash(id), id, (0, i as u64), 100 + i as i64);
        }
        d.insert(d.hash("a"), "a", (1, 99), 200);
        assert_eq!(d.get(d.hash("a"), "a"), Some((0, 0)));
        assert_eq!(d.len(), 4);

        d.trim(1_101, &window(1_000, 10)); // oldest kept: ts 101
        assert_eq!(d.get(d.hash("a"), "a"), None);
        assert_eq!(d.get(d.hash("b"), "b"), Some((0, 1)));
        d.trim(1_101, &window(1_000, 2)); // at most 2
        assert_eq!(d.len(), 2);
        assert_eq!(d.get(d.hash("b"), "b"), None);
        assert_eq!(d.get(d.hash("d"), "d"), Some((0, 3)));
    }

    /// Hashes everything to one value.
    #[derive(Debug, Default)]
    struct Collide;

    impl BuildHasher for Collide {
        type Hasher = Constant;
        fn build_hasher(&self) -> Constant {
            Constant
        }
    }

    struct Constant;

    impl std::hash::Hasher for Constant {
        fn finish(&self) -> u64 {
            7
        }
        fn write(&mut self, _: &[u8]) {}
    }

    #[test]
    fn ids_sharing_a_hash_stay_apart() {
        // Proves a lookup compares the id itself, and forgetting one entry
        // leaves the others of the same hash: every id hashes alike here.
        let mut d = Dedup::<Collide>::default();
        for (i, id) in ["x", "y", "z", "u", "v"].iter().enumerate() {
            d.insert(d.hash(id), id, (0, i as u64), i as i64);
        }
        assert_eq!(d.get(7, "y"), Some((0, 1)));
        assert_eq!(d.get(7, "w"), None);
        d.trim(10, &window(1_000, 4)); // forgets "x" only
        assert_eq!(d.len(), 4);
        assert_eq!(d.get(7, "x"), None);
        for (i, id) in ["y", "z", "u", "v"].iter().enumerate() {
            assert_eq!(d.get(7, id), Some((0, i as u64 + 1)));
        }
    }
}
