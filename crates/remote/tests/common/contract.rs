//! The contract every store behind a [`RemoteBackend`] must meet, hanode's etcd API and real
//! etcd alike: the same calls give the same answers and the same [`KvError`] variants. Each
//! phase uses its own key prefix and revisions it reads back, so phases do not depend on each
//! other's writes; compaction runs last as it discards history.

use anyhow::{Context, ensure};

use hanode_kv::*;
use hanode_remote::RemoteBackend;
use hanode_types::{LeaseId, Revision};

use super::next_message;

/// Runs every phase against a fresh store.
pub async fn run(backend: &RemoteBackend) -> anyhow::Result<()> {
    status_and_members(backend)
        .await
        .context("status and members")?;
    put_and_get(backend).await.context("put and get")?;
    ranges(backend).await.context("ranges")?;
    delete_with_prev_kv(backend).await.context("delete")?;
    transactions(backend).await.context("transactions")?;
    leases(backend).await.context("leases")?;
    watches(backend).await.context("watches")?;
    snapshot(backend).await.context("snapshot")?;
    compaction(backend).await.context("compaction")?;
    Ok(())
}

fn key(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn get(k: &str) -> RangeRequest {
    RangeRequest {
        key: key(k),
        ..Default::default()
    }
}

fn prefix(p: &str) -> RangeRequest {
    RangeRequest {
        key: key(p),
        range_end: prefix_end(p.as_bytes()),
        ..Default::default()
    }
}

fn put(k: &str, v: &str) -> PutRequest {
    PutRequest {
        key: key(k),
        value: key(v),
        ..Default::default()
    }
}

fn keys(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

/// Status, members, alarms and defragment of a single-member store.
async fn status_and_members(backend: &RemoteBackend) -> anyhow::Result<()> {
    let status = backend.status().await?;
    ensure!(
        status.version.starts_with("3."),
        "version {:?}",
        status.version
    );
    ensure!(status.header.cluster_id != 0, "no cluster id: {status:?}");
    ensure!(status.header.member_id != 0, "no member id: {status:?}");
    ensure!(status.header.raft_term >= 1, "no term: {status:?}");
    ensure!(
        status.leader == status.header.member_id,
        "a single member leads itself: {status:?}"
    );
    ensure!(!status.is_learner);
    let list = backend.member_list().await?;
    ensure!(list.members.len() == 1, "{list:?}");
    ensure!(list.members[0].id == status.header.member_id, "{list:?}");
    ensure!(!list.members[0].is_learner, "{list:?}");
    ensure!(!list.members[0].member.name.is_empty(), "{list:?}");
    let (_, alarms) = backend.alarm(AlarmAction::Get, 0, None).await?;
    ensure!(alarms.is_empty(), "{alarms:?}");
    backend.defragment().await?;
    Ok(())
}

/// A put moves the revision by one and the current header follows it; versions count writes.
async fn put_and_get(backend: &RemoteBackend) -> anyhow::Result<()> {
    let before = backend.current_header().await?;
    ensure!(before.revision >= 1 && before.member_id != 0, "{before:?}");
    let first = backend.put(put("/contract/kv/a", "1")).await?;
    ensure!(
        first.header.revision == before.revision + 1,
        "{before:?} then {first:?}"
    );
    ensure!(first.header.cluster_id == before.cluster_id);
    ensure!(first.prev_kv.is_none());
    let now = backend.current_header().await?;
    ensure!(now.revision == first.header.revision, "{now:?}");

    let got = backend.range(get("/contract/kv/a")).await?;
    ensure!(got.count == 1 && got.kvs.len() == 1, "{got:?}");
    let kv = &got.kvs[0];
    ensure!(kv.value == b"1" && kv.version == 1, "{kv:?}");
    ensure!(
        kv.create_revision == first.header.revision && kv.mod_revision == first.header.revision,
        "{kv:?}"
    );

    let second = backend
        .put(PutRequest {
            prev_kv: true,
            ..put("/contract/kv/a", "2")
        })
        .await?;
    let prev = second.prev_kv.context("prev_kv asked for")?;
    ensure!(prev.value == b"1" && prev.version == 1, "{prev:?}");
    let got = backend.range(get("/contract/kv/a")).await?;
    ensure!(
        got.kvs[0].version == 2 && got.kvs[0].value == b"2",
        "{got:?}"
    );
    ensure!(got.kvs[0].create_revision == first.header.revision);

    let missing = backend
        .put(PutRequest {
            ignore_value: true,
            ..put("/contract/kv/missing", "")
        })
        .await;
    ensure!(missing == Err(KvError::KeyNotFound), "{missing:?}");
    let empty = backend.put(put("", "v")).await;
    ensure!(empty == Err(KvError::EmptyKey), "{empty:?}");
    Ok(())
}

/// Prefix, limit, count, keys-only, sort, historic and filtered reads.
async fn ranges(backend: &RemoteBackend) -> anyhow::Result<()> {
    let p = "/contract/range/";
    let a = backend
        .put(put("/contract/range/a", "3"))
        .await?
        .header
        .revision;
    let b = backend
        .put(put("/contract/range/b", "1"))
        .await?
        .header
        .revision;
    backend.put(put("/contract/range/c", "22")).await?;

    let limited = backend
        .range(RangeRequest {
            limit: 2,
            ..prefix(p)
        })
        .await?;
    ensure!(
        keys(&limited.kvs) == ["/contract/range/a", "/contract/range/b"],
        "{limited:?}"
    );
    ensure!(limited.more && limited.count == 3, "{limited:?}");

    let keys_only = backend
        .range(RangeRequest {
            keys_only: true,
            ..prefix(p)
        })
        .await?;
    ensure!(keys_only.kvs.len() == 3, "{keys_only:?}");
    ensure!(
        keys_only.kvs.iter().all(|kv| kv.value.is_empty()),
        "{keys_only:?}"
    );

    let count_only = backend
        .range(RangeRequest {
            count_only: true,
            ..prefix(p)
        })
        .await?;
    ensure!(
        count_only.kvs.is_empty() && count_only.count == 3,
        "{count_only:?}"
    );

    let by_value = backend
        .range(RangeRequest {
            sort_order: SortOrder::Descend,
            sort_target: SortTarget::Value,
            ..prefix(p)
        })
        .await?;
    ensure!(
        keys(&by_value.kvs)
            == [
                "/contract/range/a",
                "/contract/range/c",
                "/contract/range/b"
            ],
        "values 3 > 22 > 1 as bytes: {by_value:?}"
    );
    let by_mod = backend
        .range(RangeRequest {
            sort_order: SortOrder::Descend,
            sort_target: SortTarget::Mod,
            ..prefix(p)
        })
        .await?;
    ensure!(
        keys(&by_mod.kvs)
            == [
                "/contract/range/c",
                "/contract/range/b",
                "/contract/range/a"
            ],
        "{by_mod:?}"
    );
    let ascending = backend
        .range(RangeRequest {
            sort_order: SortOrder::Ascend,
            sort_target: SortTarget::Key,
            ..prefix(p)
        })
        .await?;
    ensure!(
        keys(&ascending.kvs)
            == [
                "/contract/range/a",
                "/contract/range/b",
                "/contract/range/c"
            ],
        "{ascending:?}"
    );

    let historic = backend
        .range(RangeRequest {
            revision: a,
            ..prefix(p)
        })
        .await?;
    ensure!(keys(&historic.kvs) == ["/contract/range/a"], "{historic:?}");
    ensure!(historic.count == 1, "{historic:?}");

    let since_b = backend
        .range(RangeRequest {
            min_mod_revision: b,
            ..prefix(p)
        })
        .await?;
    ensure!(
        keys(&since_b.kvs) == ["/contract/range/b", "/contract/range/c"],
        "{since_b:?}"
    );

    let serializable = backend
        .range(RangeRequest {
            serializable: true,
            ..prefix(p)
        })
        .await?;
    ensure!(serializable.count == 3, "{serializable:?}");

    let now = backend.current_header().await?.revision;
    let future = backend
        .range(RangeRequest {
            revision: now + 1000,
            ..prefix(p)
        })
        .await;
    ensure!(future == Err(KvError::FutureRevision), "{future:?}");
    Ok(())
}

/// A range delete returns what it deleted.
async fn delete_with_prev_kv(backend: &RemoteBackend) -> anyhow::Result<()> {
    let p = "/contract/delete/";
    for (k, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
        backend.put(put(&format!("{p}{k}"), v)).await?;
    }
    let single = backend
        .delete_range(DeleteRangeRequest {
            key: key("/contract/delete/a"),
            range_end: Vec::new(),
            prev_kv: false,
        })
        .await?;
    ensure!(
        single.deleted == 1 && single.prev_kvs.is_empty(),
        "{single:?}"
    );
    let range = prefix(p);
    let deleted = backend
        .delete_range(DeleteRangeRequest {
            key: range.key.clone(),
            range_end: range.range_end.clone(),
            prev_kv: true,
        })
        .await?;
    ensure!(deleted.deleted == 2, "{deleted:?}");
    ensure!(
        keys(&deleted.prev_kvs) == ["/contract/delete/b", "/contract/delete/c"],
        "{deleted:?}"
    );
    ensure!(deleted.prev_kvs[0].value == b"2", "{deleted:?}");
    ensure!(backend.range(range).await?.count == 0);
    let nothing = backend
        .delete_range(DeleteRangeRequest {
            key: key("/contract/delete/a"),
            ..Default::default()
        })
        .await?;
    ensure!(nothing.deleted == 0, "{nothing:?}");
    Ok(())
}

fn compare(k: &str, result: CompareResult, target: CompareTarget) -> Compare {
    Compare {
        result,
        target,
        key: key(k),
        range_end: Vec::new(),
    }
}

/// Both branches, every compare target, nested transactions, and etcd's txn errors.
async fn transactions(backend: &RemoteBackend) -> anyhow::Result<()> {
    let k = "/contract/txn/k";
    let written = backend.put(put(k, "v")).await?.header.revision;
    let all_hold = vec![
        compare(k, CompareResult::Equal, CompareTarget::Mod(written)),
        compare(k, CompareResult::Equal, CompareTarget::Create(written)),
        compare(k, CompareResult::Equal, CompareTarget::Version(1)),
        compare(k, CompareResult::Equal, CompareTarget::Value(key("v"))),
        compare(k, CompareResult::Equal, CompareTarget::Lease(0)),
        compare(k, CompareResult::Less, CompareTarget::Mod(written + 1)),
        compare(k, CompareResult::Greater, CompareTarget::Version(0)),
        compare(k, CompareResult::NotEqual, CompareTarget::Value(key("w"))),
    ];
    let success = backend
        .txn(TxnRequest {
            compare: all_hold,
            success: vec![
                RequestOp::Put(PutRequest {
                    prev_kv: true,
                    ..put("/contract/txn/other", "x")
                }),
                RequestOp::Range(get(k)),
                RequestOp::DeleteRange(DeleteRangeRequest {
                    key: key("/contract/txn/missing"),
                    ..Default::default()
                }),
                RequestOp::Txn(TxnRequest {
                    compare: vec![compare(
                        k,
                        CompareResult::Equal,
                        CompareTarget::Value(key("v")),
                    )],
                    success: vec![RequestOp::Range(get(k))],
                    failure: Vec::new(),
                }),
            ],
            failure: vec![RequestOp::Range(get(k))],
        })
        .await?;
    ensure!(success.succeeded, "{success:?}");
    ensure!(success.header.revision == written + 1, "{success:?}");
    let [
        ResponseOp::Put(put_response),
        ResponseOp::Range(range),
        ResponseOp::DeleteRange(delete),
        ResponseOp::Txn(nested),
    ] = success.responses.as_slice()
    else {
        anyhow::bail!("responses out of shape: {success:?}");
    };
    ensure!(put_response.prev_kv.is_none(), "{put_response:?}");
    ensure!(range.kvs[0].value == b"v", "{range:?}");
    ensure!(delete.deleted == 0, "{delete:?}");
    ensure!(nested.succeeded, "{nested:?}");
    ensure!(
        matches!(nested.responses.as_slice(), [ResponseOp::Range(r)] if r.kvs[0].value == b"v"),
        "{nested:?}"
    );

    let failure = backend
        .txn(TxnRequest {
            compare: vec![
                compare(k, CompareResult::Equal, CompareTarget::Value(key("v"))),
                compare(k, CompareResult::Greater, CompareTarget::Mod(written + 100)),
            ],
            success: vec![RequestOp::Put(put(k, "never"))],
            failure: vec![RequestOp::Range(get(k))],
        })
        .await?;
    ensure!(!failure.succeeded, "{failure:?}");
    ensure!(
        matches!(failure.responses.as_slice(), [ResponseOp::Range(r)] if r.kvs[0].value == b"v"),
        "{failure:?}"
    );
    let no_lease = backend
        .txn(TxnRequest {
            compare: vec![compare(k, CompareResult::NotEqual, CompareTarget::Lease(0))],
            ..Default::default()
        })
        .await?;
    ensure!(!no_lease.succeeded, "{no_lease:?}");

    let duplicate = backend
        .txn(TxnRequest {
            success: vec![
                RequestOp::Put(put("/contract/txn/dup", "1")),
                RequestOp::Put(put("/contract/txn/dup", "2")),
            ],
            ..Default::default()
        })
        .await;
    ensure!(duplicate == Err(KvError::DuplicateKey), "{duplicate:?}");
    Ok(())
}

/// Grant (chosen and given ids), attach, keep alive, list, time-to-live with keys, revoke.
async fn leases(backend: &RemoteBackend) -> anyhow::Result<()> {
    let chosen = backend.lease_grant(0, 30).await?;
    ensure!(chosen.id > 0 && chosen.ttl == 30, "{chosen:?}");
    let id: LeaseId = 0x5eed_0001;
    let given = backend.lease_grant(id, 30).await?;
    ensure!(given.id == id && given.ttl == 30, "{given:?}");
    let again = backend.lease_grant(id, 30).await;
    ensure!(again == Err(KvError::LeaseExists { id }), "{again:?}");

    let k = "/contract/lease/k";
    backend
        .put(PutRequest {
            lease: id,
            ..put(k, "leased")
        })
        .await?;
    ensure!(backend.range(get(k)).await?.kvs[0].lease == id);
    let ttl = backend.lease_time_to_live(id, true).await?;
    ensure!(ttl.id == id && ttl.granted_ttl == 30, "{ttl:?}");
    ensure!(ttl.ttl > 0 && ttl.ttl <= 30, "{ttl:?}");
    ensure!(ttl.keys == [key(k)], "{ttl:?}");
    let without_keys = backend.lease_time_to_live(id, false).await?;
    ensure!(without_keys.keys.is_empty(), "{without_keys:?}");

    for round in 0..3 {
        let renewed = backend.lease_keep_alive(id).await?;
        ensure!(
            renewed.id == id && renewed.ttl == 30,
            "round {round}: {renewed:?}"
        );
        ensure!(renewed.header.member_id != 0, "round {round}: {renewed:?}");
    }
    let listed = backend.lease_leases().await?;
    ensure!(
        listed.leases.contains(&id) && listed.leases.contains(&chosen.id),
        "{listed:?}"
    );

    backend.lease_revoke(id).await?;
    ensure!(
        backend.range(get(k)).await?.count == 0,
        "revoking deletes attached keys"
    );
    let gone = backend.lease_keep_alive(id).await?;
    ensure!(gone.ttl == 0 && gone.id == id, "{gone:?}");
    let expired = backend.lease_time_to_live(id, true).await?;
    ensure!(expired.ttl == -1, "{expired:?}");
    let twice = backend.lease_revoke(id).await;
    ensure!(twice == Err(KvError::LeaseNotFound { id }), "{twice:?}");
    let orphan = backend
        .put(PutRequest {
            lease: id,
            ..put(k, "orphan")
        })
        .await;
    ensure!(orphan == Err(KvError::LeaseNotFound { id }), "{orphan:?}");
    let unknown = backend.lease_keep_alive(0x0bad_1ea5e).await?;
    ensure!(unknown.ttl == 0, "{unknown:?}");
    backend.lease_revoke(chosen.id).await?;
    Ok(())
}

fn events_of(message: Option<WatchMessage>) -> anyhow::Result<(Revision, Vec<Event>)> {
    match message {
        Some(WatchMessage::Events { revision, events }) => Ok((revision, events)),
        other => anyhow::bail!("expected events, got {other:?}"),
    }
}

/// A watch from a past revision replays history in order, one message per revision, with
/// previous values; a watch from now sees writes made after it was created; filters work.
async fn watches(backend: &RemoteBackend) -> anyhow::Result<()> {
    let p = "/contract/watch/";
    let r1 = backend
        .put(put("/contract/watch/a", "1"))
        .await?
        .header
        .revision;
    let r2 = backend
        .txn(TxnRequest {
            success: vec![
                RequestOp::Put(put("/contract/watch/b", "1")),
                RequestOp::Put(put("/contract/watch/c", "1")),
            ],
            ..Default::default()
        })
        .await?
        .header
        .revision;
    let r3 = backend
        .put(put("/contract/watch/a", "2"))
        .await?
        .header
        .revision;
    let r4 = backend
        .delete_range(DeleteRangeRequest {
            key: key("/contract/watch/a"),
            ..Default::default()
        })
        .await?
        .header
        .revision;
    let range = prefix(p);
    let mut history = backend
        .watch(WatchRequest {
            key: range.key.clone(),
            range_end: range.range_end.clone(),
            start_revision: r1,
            prev_kv: true,
            ..Default::default()
        })
        .await?;

    let (revision, events) = events_of(next_message(&mut history, "first put").await?)?;
    ensure!(revision == r1 && events.len() == 1, "{events:?}");
    ensure!(events[0].kind == EventType::Put && events[0].kv.value == b"1");
    ensure!(
        events[0].prev_kv.is_none(),
        "a created key has no previous value"
    );

    let (revision, events) = events_of(next_message(&mut history, "txn of two puts").await?)?;
    ensure!(revision == r2, "{revision} {events:?}");
    ensure!(
        keys(&events.iter().map(|e| e.kv.clone()).collect::<Vec<_>>())
            == ["/contract/watch/b", "/contract/watch/c"],
        "one message for both puts of one revision: {events:?}"
    );

    let (revision, events) = events_of(next_message(&mut history, "second put").await?)?;
    ensure!(revision == r3 && events[0].kv.version == 2, "{events:?}");
    let prev = events[0].prev_kv.as_ref().context("prev_kv of an update")?;
    ensure!(prev.value == b"1", "{prev:?}");

    let (revision, events) = events_of(next_message(&mut history, "delete").await?)?;
    ensure!(revision == r4, "{events:?}");
    ensure!(events[0].kind == EventType::Delete, "{events:?}");
    ensure!(events[0].kv.mod_revision == r4, "{events:?}");
    let prev = events[0].prev_kv.as_ref().context("prev_kv of a delete")?;
    ensure!(prev.value == b"2", "{prev:?}");
    drop(history);

    let mut deletes_only = backend
        .watch(WatchRequest {
            key: range.key.clone(),
            range_end: range.range_end.clone(),
            start_revision: r1,
            no_put: true,
            ..Default::default()
        })
        .await?;
    let (revision, events) = events_of(next_message(&mut deletes_only, "delete only").await?)?;
    ensure!(
        revision == r4 && events[0].kind == EventType::Delete,
        "{events:?}"
    );
    drop(deletes_only);

    // Created before `watch` returns: the next write must show up.
    let mut live = backend
        .watch(WatchRequest {
            key: key("/contract/watch/live"),
            ..Default::default()
        })
        .await?;
    let written = backend
        .put(put("/contract/watch/live", "now"))
        .await?
        .header
        .revision;
    let (revision, events) = events_of(next_message(&mut live, "live put").await?)?;
    ensure!(
        revision == written && events[0].kv.value == b"now",
        "{events:?}"
    );
    Ok(())
}

/// The snapshot stream carries the bytes it announces; etcd does not count the SHA-256 it
/// appends, hanode does.
async fn snapshot(backend: &RemoteBackend) -> anyhow::Result<()> {
    use futures::StreamExt;
    const CHECKSUM_BYTES: u64 = 32;
    let mut snapshot = backend.snapshot().await?;
    let mut total = 0u64;
    while let Some(chunk) = snapshot.chunks.next().await {
        total += chunk?.len() as u64;
    }
    ensure!(
        snapshot.size > 0 && (total == snapshot.size || total == snapshot.size + CHECKSUM_BYTES),
        "{total} bytes for {} announced",
        snapshot.size
    );
    Ok(())
}

/// After a compaction, reads and watches from before it fail with the compact revision, and
/// compacting again to an older revision does too.
async fn compaction(backend: &RemoteBackend) -> anyhow::Result<()> {
    let k = "/contract/compact/k";
    let old = backend.put(put(k, "old")).await?.header.revision;
    let new = backend.put(put(k, "new")).await?.header.revision;
    let header = backend
        .compact(CompactionRequest {
            revision: new,
            physical: true,
        })
        .await?;
    ensure!(header.revision >= new, "{header:?}");

    let read = backend
        .range(RangeRequest {
            revision: old,
            ..get(k)
        })
        .await;
    ensure!(
        read == Err(KvError::Compacted {
            compact_revision: new
        }),
        "{read:?}"
    );
    let at_compaction = backend
        .range(RangeRequest {
            revision: new,
            ..get(k)
        })
        .await?;
    ensure!(at_compaction.kvs[0].value == b"new", "{at_compaction:?}");

    let mut watch = backend
        .watch(WatchRequest {
            key: key(k),
            start_revision: old,
            ..Default::default()
        })
        .await?;
    let message = next_message(&mut watch, "compaction notice").await?;
    ensure!(
        message
            == Some(WatchMessage::Compacted {
                compact_revision: new
            }),
        "{message:?}"
    );
    let end = next_message(&mut watch, "end of a compacted watch").await?;
    ensure!(
        end.is_none(),
        "the stream ends after the compaction: {end:?}"
    );

    let again = backend
        .compact(CompactionRequest {
            revision: old,
            physical: false,
        })
        .await;
    ensure!(
        again
            == Err(KvError::Compacted {
                compact_revision: new
            }),
        "{again:?}"
    );
    let after = backend.put(put(k, "after")).await?.header.revision;
    ensure!(backend.current_header().await?.revision == after);
    Ok(())
}
