//! The RocksDB instance of a member: one database, one write-ahead log, column families for the
//! Raft log and for the state machine. Sharing the WAL means a synced log append also makes
//! every earlier state-machine write durable.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, DB, Options};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Raft log entries, keyed by big-endian index.
pub const CF_LOG: &str = "log";
/// Raft bookkeeping: vote, committed, purged, current snapshot.
pub const CF_RAFT: &str = "raft";
/// MVCC records, keyed by [`hanode_kv::Rev::to_bytes`].
pub const CF_REVS: &str = "revs";
/// Leases: big-endian id to TTL.
pub const CF_LEASES: &str = "leases";
/// State-machine bookkeeping: last applied, membership, MVCC meta.
pub const CF_META: &str = "meta";

/// Column families holding state-machine data (what snapshots carry).
pub const STATE_CFS: [&str; 3] = [CF_REVS, CF_LEASES, CF_META];

/// Memtable size of one column family.
const MEMTABLE_BYTES: usize = 16 << 20;

/// All memtables together.
const MEMTABLE_BUDGET_BYTES: usize = 48 << 20;

/// Block cache shared by every column family.
const BLOCK_CACHE_BYTES: usize = 32 << 20;

/// Opens (creating if needed) the member's database.
pub fn open(dir: &Path) -> Result<Arc<DB>, rocksdb::Error> {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    options.set_max_background_jobs(2);
    options.set_keep_log_file_num(4);
    // Memory: small memtables (the log is purged after snapshots, the state is mostly read
    // from the block cache) and one shared block cache, instead of RocksDB's 64 MiB per
    // column family.
    options.set_db_write_buffer_size(MEMTABLE_BUDGET_BYTES);
    let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES);
    let families = ALL_CFS.into_iter().map(|name| {
        let mut family = Options::default();
        family.set_write_buffer_size(MEMTABLE_BYTES);
        family.set_max_write_buffer_number(2);
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_block_cache(&cache);
        family.set_block_based_table_factory(&table);
        ColumnFamilyDescriptor::new(name, family)
    });
    Ok(Arc::new(DB::open_cf_descriptors(&options, dir, families)?))
}

/// The handle of a column family this module created.
pub fn cf<'a>(db: &'a DB, name: &str) -> &'a ColumnFamily {
    db.cf_handle(name)
        .unwrap_or_else(|| panic!("column family {name} is created by db::open"))
}

/// Serializes a bookkeeping value.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("in-memory serialization of plain data cannot fail")
}

/// Reads and decodes one bookkeeping value.
pub fn get<T: DeserializeOwned>(db: &DB, cf_name: &str, key: &[u8]) -> Result<Option<T>, String> {
    match db.get_cf(cf(db, cf_name), key).map_err(|e| e.to_string())? {
        None => Ok(None),
        Some(bytes) => postcard::from_bytes(&bytes)
            .map(Some)
            .map_err(|e| format!("corrupt {cf_name}/{}: {e}", String::from_utf8_lossy(key))),
    }
}

/// All column families.
pub const ALL_CFS: [&str; 5] = [CF_LOG, CF_RAFT, CF_REVS, CF_LEASES, CF_META];

fn size_of(db: &DB, families: &[&str]) -> u64 {
    let mut total = 0;
    for name in families {
        for property in [
            "rocksdb.total-sst-files-size",
            "rocksdb.cur-size-all-mem-tables",
        ] {
            total += db
                .property_int_value_cf(cf(db, name), property)
                .ok()
                .flatten()
                .unwrap_or(0);
        }
    }
    total
}

/// Bytes of state-machine data on disk and in memtables: what the space quota counts.
pub fn state_size_bytes(db: &DB) -> u64 {
    size_of(db, &STATE_CFS)
}

/// Bytes of the whole database (log included), as `endpoint status` reports DB SIZE.
pub fn total_size_bytes(db: &DB) -> u64 {
    size_of(db, &ALL_CFS)
}
