//! The MVCC model of hanode's store and the interface front-ends use to reach a store.
//!
//! Owns etcd's key-value semantics: revisions (an empty store is at revision 1, +1 per write
//! transaction), per-key create/mod revision and version, ranges, transactions, compaction,
//! leases (TTL bookkeeping; expiry is decided by one node and applied as a command), and
//! watches. It does no I/O of its own: values are read through [`RevStore`] and writes come
//! back as [`Changes`]. It does not own replication (`hanode-store`) or wire formats
//! (`hanode-etcd`).

pub mod api;
mod backend;
mod error;
mod index;
mod lease;
mod mem;
mod mvcc;
mod watch;

pub use api::*;
pub use backend::{KvBackend, MemberList, SnapshotStream};
pub use error::{KvError, KvResult};
pub use index::{Rev, in_range};
pub use lease::Lessor;
pub use mem::{MemBackend, MemConfig};
pub use mvcc::{
    Applied, Changes, Command, MAX_LEASE_TTL_SECS, MAX_TXN_OPS, Meta, Mvcc, Record, RevStore,
    check_txn,
};
pub use watch::{History, WatchHub, WatchStream, Watcher};

/// The etcd server version hanode reports (the API level it implements).
pub const ETCD_VERSION: &str = "3.4.23";

/// The end of the range holding every key with `prefix` (etcdctl's `--prefix`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): every key from `prefix` on.
    vec![0]
}
