//! The key index: for every key, the revisions at which it was written, grouped into
//! generations (a generation runs from a create to the delete that ends it). Values are not
//! here; they live in a [`crate::RevStore`] under their revision, so the index stays small.

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use hanode_types::Revision;

/// A write's position: `main` is the store revision, `sub` orders writes inside one transaction.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Rev {
    /// Store revision of the transaction.
    pub main: Revision,
    /// Position of the write inside its transaction.
    pub sub: i64,
}

impl Rev {
    /// Builds a revision pair.
    pub fn new(main: Revision, sub: i64) -> Self {
        Rev { main, sub }
    }

    /// 16 big-endian bytes, so byte order equals revision order (the storage key).
    pub fn to_bytes(self) -> [u8; 16] {
        debug_assert!(
            self.main >= 0 && self.sub >= 0,
            "revisions are never negative"
        );
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&(self.main as u64).to_be_bytes());
        out[8..].copy_from_slice(&(self.sub as u64).to_be_bytes());
        out
    }

    /// Inverse of [`Rev::to_bytes`]; `None` for a key of the wrong length.
    pub fn from_bytes(bytes: &[u8]) -> Option<Rev> {
        let main: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
        let sub: [u8; 8] = bytes.get(8..16)?.try_into().ok()?;
        (bytes.len() == 16).then(|| Rev {
            main: u64::from_be_bytes(main) as i64,
            sub: u64::from_be_bytes(sub) as i64,
        })
    }
}

/// One life of a key: created at `revs[0]` (unless compacted away), ended by a tombstone when
/// it is not the key's last generation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Generation {
    /// Number of writes ever made in this generation (the version of its last write).
    ver: i64,
    /// Revision that created the key in this generation.
    created: Rev,
    /// Revisions still held (compaction trims the front), ascending.
    revs: Vec<Rev>,
}

/// Where a key stood at some revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyAt {
    /// Revision of the write whose value was current.
    pub rev: Rev,
    /// Revision that created the key.
    pub created: Rev,
    /// The key's version at that write.
    pub version: i64,
}

/// History of one key. The last generation is the current one; it is empty while the key is
/// deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct KeyIndex {
    generations: Vec<Generation>,
}

impl KeyIndex {
    fn put(&mut self, rev: Rev) {
        if self.generations.is_empty() {
            self.generations.push(Generation::default());
        }
        let generation = self.generations.last_mut().expect("pushed above");
        if generation.revs.is_empty() {
            generation.created = rev;
        }
        debug_assert!(
            generation.revs.last().is_none_or(|last| *last < rev),
            "revisions only grow"
        );
        generation.revs.push(rev);
        generation.ver += 1;
    }

    /// Ends the current generation at `rev`. The caller checked the key is live.
    fn tombstone(&mut self, rev: Rev) {
        let generation = self
            .generations
            .last_mut()
            .expect("tombstone of a live key");
        debug_assert!(!generation.revs.is_empty(), "tombstone of a live key");
        generation.revs.push(rev);
        generation.ver += 1;
        self.generations.push(Generation::default());
    }

    fn is_live(&self) -> bool {
        self.generations.last().is_some_and(|g| !g.revs.is_empty())
    }

    /// The write that was current at revision `at`, if the key existed then.
    fn get(&self, at: Revision) -> Option<KeyAt> {
        let last = self.generations.len().checked_sub(1)?;
        for (i, generation) in self.generations.iter().enumerate().rev() {
            let Some(first) = generation.revs.first() else {
                continue;
            };
            if first.main > at {
                continue;
            }
            let n = generation.revs.partition_point(|r| r.main <= at);
            debug_assert!(n > 0);
            let closed = i < last;
            if closed && n == generation.revs.len() {
                // The newest write at or before `at` is this generation's tombstone.
                return None;
            }
            let version = generation.ver - (generation.revs.len() - n) as i64;
            return Some(KeyAt {
                rev: generation.revs[n - 1],
                created: generation.created,
                version,
            });
        }
        None
    }

    /// Drops what a compaction at `at` no longer needs: per generation everything before the
    /// newest write at or before `at`, and whole generations whose tombstone is at or before it.
    fn compact(&mut self, at: Revision, removed: &mut Vec<Rev>) {
        let last = self.generations.len() - 1;
        let mut keep = Vec::with_capacity(self.generations.len());
        for (i, mut generation) in std::mem::take(&mut self.generations)
            .into_iter()
            .enumerate()
        {
            let closed = i < last;
            let n = generation.revs.partition_point(|r| r.main <= at);
            if closed && n == generation.revs.len() {
                removed.extend(generation.revs);
                continue;
            }
            if n > 1 {
                removed.extend(generation.revs.drain(..n - 1));
            }
            if !generation.revs.is_empty() || !closed {
                keep.push(generation);
            }
        }
        self.generations = keep;
    }

    fn is_empty(&self) -> bool {
        self.generations.iter().all(|g| g.revs.is_empty())
    }
}

/// Whether `key` lies in the etcd-style range `[start, end)`; see [`crate::RangeRequest`].
pub fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    if end.is_empty() {
        return key == start;
    }
    if end == [0] {
        return key >= start;
    }
    key >= start && key < end
}

/// The key index of the whole store.
#[derive(Clone, Debug, Default)]
pub struct TreeIndex {
    keys: BTreeMap<Vec<u8>, KeyIndex>,
}

impl TreeIndex {
    /// Records a put of `key` at `rev`.
    pub fn put(&mut self, key: &[u8], rev: Rev) {
        match self.keys.get_mut(key) {
            Some(index) => index.put(rev),
            None => {
                let mut index = KeyIndex::default();
                index.put(rev);
                self.keys.insert(key.to_vec(), index);
            }
        }
    }

    /// Records a delete of a live `key` at `rev`; returns false if the key was not live.
    pub fn tombstone(&mut self, key: &[u8], rev: Rev) -> bool {
        match self.keys.get_mut(key) {
            Some(index) if index.is_live() => {
                index.tombstone(rev);
                true
            }
            _ => false,
        }
    }

    /// Where `key` stood at revision `at`.
    pub fn get(&self, key: &[u8], at: Revision) -> Option<KeyAt> {
        self.keys.get(key)?.get(at)
    }

    /// Every key in `[start, end)` that existed at `at`, in key order.
    pub fn range<'a>(
        &'a self,
        start: &'a [u8],
        end: &'a [u8],
        at: Revision,
    ) -> impl Iterator<Item = (&'a [u8], KeyAt)> + 'a {
        let upper: Bound<&[u8]> = if end.is_empty() {
            Bound::Included(start)
        } else if end == [0] {
            Bound::Unbounded
        } else if end <= start {
            // An empty range; `BTreeMap::range` would panic on start > end.
            Bound::Excluded(start)
        } else {
            Bound::Excluded(end)
        };
        self.keys
            .range::<[u8], _>((Bound::Included(start), upper))
            .filter_map(move |(key, index)| Some((key.as_slice(), index.get(at)?)))
    }

    /// Applies a compaction at `at`, returning the revisions whose values can be deleted.
    pub fn compact(&mut self, at: Revision) -> Vec<Rev> {
        let mut removed = Vec::new();
        self.keys.retain(|_, index| {
            index.compact(at, &mut removed);
            !index.is_empty()
        });
        removed.sort_unstable();
        removed
    }

    /// Number of keys with any history held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64) -> Rev {
        Rev::new(main, 0)
    }

    #[test]
    fn rev_bytes_sort_like_revisions() {
        let a = Rev::new(2, 9);
        let b = Rev::new(3, 0);
        assert!(a.to_bytes() < b.to_bytes());
        assert_eq!(Rev::from_bytes(&b.to_bytes()), Some(b));
        assert_eq!(Rev::from_bytes(&[1, 2]), None);
    }

    #[test]
    fn get_follows_generations_and_tombstones() {
        let mut index = TreeIndex::default();
        index.put(b"k", r(2));
        index.put(b"k", r(3));
        assert!(index.tombstone(b"k", r(4)));
        index.put(b"k", r(6));
        assert_eq!(index.get(b"k", 1), None);
        assert_eq!(
            index.get(b"k", 2),
            Some(KeyAt {
                rev: r(2),
                created: r(2),
                version: 1
            })
        );
        assert_eq!(index.get(b"k", 3).map(|k| k.version), Some(2));
        assert_eq!(index.get(b"k", 4), None);
        assert_eq!(index.get(b"k", 5), None);
        assert_eq!(
            index.get(b"k", 6),
            Some(KeyAt {
                rev: r(6),
                created: r(6),
                version: 1
            })
        );
        assert!(!index.tombstone(b"missing", r(7)));
    }

    #[test]
    fn compaction_keeps_latest_live_revision_and_versions() {
        let mut index = TreeIndex::default();
        index.put(b"a", r(2));
        index.put(b"a", r(3));
        index.put(b"a", r(5));
        index.put(b"b", r(4));
        assert!(index.tombstone(b"b", r(6)));
        let removed = index.compact(5);
        assert_eq!(removed, vec![r(2), r(3)]);
        assert_eq!(
            index.get(b"a", 5),
            Some(KeyAt {
                rev: r(5),
                created: r(2),
                version: 3
            })
        );
        assert_eq!(index.get(b"b", 5).map(|k| k.rev), Some(r(4)));
        let removed = index.compact(6);
        assert_eq!(removed, vec![r(4), r(6)]);
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn range_honours_etcd_range_end_forms() {
        let mut index = TreeIndex::default();
        for (i, key) in [b"a", b"b", b"c"].iter().enumerate() {
            index.put(*key, r(2 + i as i64));
        }
        let keys = |start: &[u8], end: &[u8]| -> Vec<Vec<u8>> {
            index
                .range(start, end, 10)
                .map(|(k, _)| k.to_vec())
                .collect()
        };
        assert_eq!(keys(b"b", b""), vec![b"b".to_vec()]);
        assert_eq!(keys(b"b", b"\0"), vec![b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(keys(b"a", b"c"), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(keys(b"c", b"a"), Vec::<Vec<u8>>::new());
        assert_eq!(keys(b"\0", b"\0").len(), 3);
    }
}
