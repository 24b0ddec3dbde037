//! The MVCC model against etcd's documented semantics, through `MemBackend` (which runs the same
//! model code as the Raft store).

use std::time::Duration;

use futures::StreamExt;
use hanode_kv::*;

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

fn get(key: &str) -> RangeRequest {
    RangeRequest {
        key: key.into(),
        ..Default::default()
    }
}

fn prefix(key: &str) -> RangeRequest {
    RangeRequest {
        key: key.into(),
        range_end: prefix_end(key.as_bytes()),
        ..Default::default()
    }
}

fn keys(resp: &RangeResponse) -> Vec<String> {
    resp.kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

/// An empty store is at revision 1 and every write transaction adds exactly one.
#[tokio::test]
async fn revisions_start_at_one_and_count_write_transactions() {
    let kv = MemBackend::default();
    assert_eq!(kv.range(get("a")).await.unwrap().header.revision, 1);
    assert_eq!(kv.put(put("a", "1")).await.unwrap().header.revision, 2);
    let txn = TxnRequest {
        success: vec![RequestOp::Put(put("b", "1")), RequestOp::Put(put("c", "1"))],
        ..Default::default()
    };
    assert_eq!(kv.txn(txn).await.unwrap().header.revision, 3);
    // A delete that removes nothing and a read-only txn do not advance the revision.
    let del = DeleteRangeRequest {
        key: "zzz".into(),
        ..Default::default()
    };
    assert_eq!(kv.delete_range(del).await.unwrap().header.revision, 3);
    let ro = TxnRequest {
        success: vec![RequestOp::Range(get("a"))],
        ..Default::default()
    };
    assert_eq!(kv.txn(ro).await.unwrap().header.revision, 3);
}

/// create_revision, mod_revision and version follow etcd, and version restarts after a delete.
#[tokio::test]
async fn per_key_revisions_and_version() {
    let kv = MemBackend::default();
    kv.put(put("k", "1")).await.unwrap();
    kv.put(put("k", "2")).await.unwrap();
    let got = kv.range(get("k")).await.unwrap().kvs[0].clone();
    assert_eq!(
        (got.create_revision, got.mod_revision, got.version),
        (2, 3, 2)
    );
    let del = DeleteRangeRequest {
        key: "k".into(),
        prev_kv: true,
        ..Default::default()
    };
    let resp = kv.delete_range(del).await.unwrap();
    assert_eq!(
        (resp.deleted, resp.prev_kvs[0].value.clone()),
        (1, b"2".to_vec())
    );
    kv.put(put("k", "3")).await.unwrap();
    let got = kv.range(get("k")).await.unwrap().kvs[0].clone();
    assert_eq!(
        (got.create_revision, got.mod_revision, got.version),
        (5, 5, 1)
    );
    let resp = kv
        .put(PutRequest {
            prev_kv: true,
            ..put("k", "4")
        })
        .await
        .unwrap();
    assert_eq!(resp.prev_kv.unwrap().value, b"3".to_vec());
}

/// Prefix, from-key, limit with `more` and `count`, keys-only, count-only and sorting.
#[tokio::test]
async fn range_forms_and_options() {
    let kv = MemBackend::default();
    for key in ["a/1", "a/2", "a/3", "b/1"] {
        kv.put(put(key, key)).await.unwrap();
    }
    assert_eq!(
        keys(&kv.range(prefix("a/")).await.unwrap()),
        ["a/1", "a/2", "a/3"]
    );
    let from_key = RangeRequest {
        key: "a/3".into(),
        range_end: vec![0],
        ..Default::default()
    };
    assert_eq!(keys(&kv.range(from_key).await.unwrap()), ["a/3", "b/1"]);
    let all = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..Default::default()
    };
    assert_eq!(kv.range(all).await.unwrap().count, 4);
    let limited = kv
        .range(RangeRequest {
            limit: 2,
            ..prefix("a/")
        })
        .await
        .unwrap();
    assert_eq!(
        (keys(&limited).len(), limited.more, limited.count),
        (2, true, 3)
    );
    let keys_only = kv
        .range(RangeRequest {
            keys_only: true,
            ..prefix("a/")
        })
        .await
        .unwrap();
    assert!(keys_only.kvs.iter().all(|kv| kv.value.is_empty()));
    let count_only = kv
        .range(RangeRequest {
            count_only: true,
            ..prefix("a/")
        })
        .await
        .unwrap();
    assert_eq!((count_only.kvs.len(), count_only.count), (0, 3));
    let desc = RangeRequest {
        sort_order: SortOrder::Descend,
        sort_target: SortTarget::Key,
        limit: 2,
        ..prefix("a/")
    };
    assert_eq!(keys(&kv.range(desc).await.unwrap()), ["a/3", "a/2"]);
    let by_mod = RangeRequest {
        sort_order: SortOrder::Descend,
        sort_target: SortTarget::Mod,
        ..RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        }
    };
    assert_eq!(keys(&kv.range(by_mod).await.unwrap())[0], "b/1");
    assert_eq!(kv.range(get("")).await.unwrap_err(), KvError::EmptyKey);
}

/// Reads at a historic revision see the past; compacted and future revisions fail as etcd's.
#[tokio::test]
async fn historic_reads_and_compaction_errors() {
    let kv = MemBackend::default();
    kv.put(put("k", "v1")).await.unwrap(); // rev 2
    kv.put(put("k", "v2")).await.unwrap(); // rev 3
    kv.put(put("k", "v3")).await.unwrap(); // rev 4
    let at2 = kv
        .range(RangeRequest {
            revision: 2,
            ..get("k")
        })
        .await
        .unwrap();
    assert_eq!(at2.kvs[0].value, b"v1".to_vec());
    assert_eq!(
        at2.header.revision, 4,
        "the header carries the current revision"
    );
    assert_eq!(
        kv.range(RangeRequest {
            revision: 9,
            ..get("k")
        })
        .await
        .unwrap_err(),
        KvError::FutureRevision
    );
    kv.compact(CompactionRequest {
        revision: 3,
        physical: true,
    })
    .await
    .unwrap();
    assert_eq!(
        kv.range(RangeRequest {
            revision: 2,
            ..get("k")
        })
        .await
        .unwrap_err(),
        KvError::Compacted {
            compact_revision: 3
        }
    );
    let at3 = kv
        .range(RangeRequest {
            revision: 3,
            ..get("k")
        })
        .await
        .unwrap();
    assert_eq!(at3.kvs[0].value, b"v2".to_vec());
    assert_eq!(
        kv.compact(CompactionRequest {
            revision: 3,
            physical: false
        })
        .await
        .unwrap_err(),
        KvError::Compacted {
            compact_revision: 3
        }
    );
    assert_eq!(
        kv.compact(CompactionRequest {
            revision: 10,
            physical: false
        })
        .await
        .unwrap_err(),
        KvError::FutureRevision
    );
}

/// Compares on value, version, create, mod and lease pick the branch; all writes of a txn
/// share one revision; invalid txns are refused before anything is written.
#[tokio::test]
async fn txn_compares_branches_and_validation() {
    let kv = MemBackend::default();
    kv.put(put("k", "v")).await.unwrap(); // rev 2
    let cmp = |target: CompareTarget, result: CompareResult| Compare {
        result,
        target,
        key: "k".into(),
        range_end: Vec::new(),
    };
    for (compare, expect) in [
        (
            cmp(CompareTarget::Value(b"v".to_vec()), CompareResult::Equal),
            true,
        ),
        (
            cmp(CompareTarget::Value(b"x".to_vec()), CompareResult::Equal),
            false,
        ),
        (cmp(CompareTarget::Version(1), CompareResult::Equal), true),
        (cmp(CompareTarget::Create(2), CompareResult::Equal), true),
        (cmp(CompareTarget::Mod(1), CompareResult::Greater), true),
        (cmp(CompareTarget::Mod(2), CompareResult::Less), false),
        (cmp(CompareTarget::Lease(0), CompareResult::Equal), true),
        (
            cmp(CompareTarget::Version(0), CompareResult::NotEqual),
            true,
        ),
    ] {
        let txn = TxnRequest {
            compare: vec![compare.clone()],
            ..Default::default()
        };
        assert_eq!(kv.txn(txn).await.unwrap().succeeded, expect, "{compare:?}");
    }
    // A missing key: numeric targets compare as 0, a value compare never holds.
    let missing = Compare {
        key: "nope".into(),
        target: CompareTarget::Mod(0),
        result: CompareResult::Equal,
        range_end: Vec::new(),
    };
    let txn = TxnRequest {
        compare: vec![missing],
        success: vec![
            RequestOp::Put(put("nope", "created")),
            RequestOp::Range(get("nope")),
        ],
        failure: vec![],
    };
    let resp = kv.txn(txn).await.unwrap();
    assert!(resp.succeeded);
    match &resp.responses[1] {
        ResponseOp::Range(range) => assert_eq!(range.kvs[0].value, b"created".to_vec()),
        other => panic!("unexpected {other:?}"),
    }
    let dup = TxnRequest {
        success: vec![RequestOp::Put(put("a", "1")), RequestOp::Put(put("a", "2"))],
        ..Default::default()
    };
    assert_eq!(kv.txn(dup).await.unwrap_err(), KvError::DuplicateKey);
    let overlap = TxnRequest {
        success: vec![
            RequestOp::DeleteRange(DeleteRangeRequest {
                key: "a".into(),
                range_end: "b".into(),
                prev_kv: false,
            }),
            RequestOp::Put(put("a1", "2")),
        ],
        ..Default::default()
    };
    assert_eq!(kv.txn(overlap).await.unwrap_err(), KvError::DuplicateKey);
    let too_many = TxnRequest {
        success: (0..=MAX_TXN_OPS)
            .map(|i| RequestOp::Put(put(&format!("t{i}"), "v")))
            .collect(),
        ..Default::default()
    };
    assert_eq!(kv.txn(too_many).await.unwrap_err(), KvError::TooManyOps);
    let bad_lease = TxnRequest {
        success: vec![
            RequestOp::Put(put("x", "1")),
            RequestOp::Put(PutRequest {
                lease: 42,
                ..put("y", "1")
            }),
        ],
        ..Default::default()
    };
    let before = kv.range(get("k")).await.unwrap().header.revision;
    assert_eq!(
        kv.txn(bad_lease).await.unwrap_err(),
        KvError::LeaseNotFound { id: 42 }
    );
    assert_eq!(
        kv.range(get("x")).await.unwrap().kvs.len(),
        0,
        "nothing of a failed txn is written"
    );
    assert_eq!(kv.range(get("k")).await.unwrap().header.revision, before);
}

/// Leases: keys attach and detach, revoke deletes them, unknown leases are etcd's errors.
#[tokio::test]
async fn leases_attach_revoke_and_report() {
    let kv = MemBackend::default();
    let lease = kv.lease_grant(0, 60).await.unwrap();
    assert!(lease.id > 0);
    assert_eq!(lease.ttl, 60);
    assert_eq!(
        kv.lease_grant(lease.id, 5).await.unwrap_err(),
        KvError::LeaseExists { id: lease.id }
    );
    kv.put(PutRequest {
        lease: lease.id,
        ..put("a", "1")
    })
    .await
    .unwrap();
    kv.put(PutRequest {
        lease: lease.id,
        ..put("b", "1")
    })
    .await
    .unwrap();
    kv.put(put("b", "2")).await.unwrap(); // b moves off the lease
    let ttl = kv.lease_time_to_live(lease.id, true).await.unwrap();
    assert_eq!(
        (ttl.granted_ttl, ttl.keys.clone()),
        (60, vec![b"a".to_vec()])
    );
    assert!(ttl.ttl > 0 && ttl.ttl <= 60);
    assert_eq!(kv.lease_leases().await.unwrap().leases, vec![lease.id]);
    assert_eq!(kv.lease_keep_alive(lease.id).await.unwrap().ttl, 60);
    kv.lease_revoke(lease.id).await.unwrap();
    assert!(kv.range(get("a")).await.unwrap().kvs.is_empty());
    assert_eq!(kv.range(get("b")).await.unwrap().kvs.len(), 1);
    assert_eq!(
        kv.lease_revoke(lease.id).await.unwrap_err(),
        KvError::LeaseNotFound { id: lease.id }
    );
    assert_eq!(kv.lease_keep_alive(lease.id).await.unwrap().ttl, 0);
    assert_eq!(
        kv.lease_time_to_live(lease.id, false).await.unwrap().ttl,
        -1
    );
    assert_eq!(
        kv.put(PutRequest {
            lease: 777,
            ..put("c", "1")
        })
        .await
        .unwrap_err(),
        KvError::LeaseNotFound { id: 777 }
    );
}

/// An expired lease is revoked (its keys deleted) by the deciding node, and keep-alives
/// postpone that.
#[tokio::test(start_paused = true)]
async fn lease_expiry_deletes_keys_unless_kept_alive() {
    let kv = MemBackend::default();
    let kept = kv.lease_grant(0, 3).await.unwrap().id;
    let dropped = kv.lease_grant(0, 3).await.unwrap().id;
    kv.put(PutRequest {
        lease: kept,
        ..put("kept", "1")
    })
    .await
    .unwrap();
    kv.put(PutRequest {
        lease: dropped,
        ..put("dropped", "1")
    })
    .await
    .unwrap();
    for _ in 0..5 {
        tokio::time::advance(Duration::from_secs(1)).await;
        kv.lease_keep_alive(kept).await.unwrap();
    }
    assert!(kv.range(get("dropped")).await.unwrap().kvs.is_empty());
    assert_eq!(kv.range(get("kept")).await.unwrap().kvs.len(), 1);
    assert_eq!(kv.lease_leases().await.unwrap().leases, vec![kept]);
}

/// The minimum TTL applies to short grants, as etcd's lessor does.
#[tokio::test]
async fn short_lease_gets_minimum_ttl() {
    let kv = MemBackend::new(MemConfig {
        min_lease_ttl_secs: 2,
        ..MemConfig::default()
    });
    assert_eq!(kv.lease_grant(0, 1).await.unwrap().ttl, 2);
}

async fn next_events(stream: &mut WatchStream) -> (i64, Vec<Event>) {
    match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
        Ok(Some(WatchMessage::Events { revision, events })) => (revision, events),
        other => panic!("expected events, got {other:?}"),
    }
}

/// A watch from an old revision replays history with prev_kv, then follows live writes,
/// batching all events of one revision together.
#[tokio::test]
async fn watch_replays_history_then_follows_live() {
    let kv = MemBackend::default();
    kv.put(put("w/a", "1")).await.unwrap(); // 2
    kv.put(put("w/a", "2")).await.unwrap(); // 3
    kv.put(put("other", "x")).await.unwrap(); // 4
    let req = WatchRequest {
        key: "w/".into(),
        range_end: prefix_end(b"w/"),
        start_revision: 2,
        prev_kv: true,
        ..Default::default()
    };
    let mut stream = kv.watch(req).await.unwrap();
    let (rev, events) = next_events(&mut stream).await;
    assert_eq!((rev, events[0].prev_kv.clone()), (2, None));
    let (rev, events) = next_events(&mut stream).await;
    assert_eq!(rev, 3);
    assert_eq!(events[0].prev_kv.as_ref().unwrap().value, b"1".to_vec());
    let txn = TxnRequest {
        success: vec![
            RequestOp::Put(put("w/b", "1")),
            RequestOp::DeleteRange(DeleteRangeRequest {
                key: "w/a".into(),
                ..Default::default()
            }),
        ],
        ..Default::default()
    };
    kv.txn(txn).await.unwrap(); // 5
    let (rev, events) = next_events(&mut stream).await;
    assert_eq!(rev, 5);
    assert_eq!(
        events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EventType::Put, EventType::Delete]
    );
    assert_eq!(events[1].kv.mod_revision, 5);
    assert_eq!(events[1].prev_kv.as_ref().unwrap().value, b"2".to_vec());
}

/// Watch filters drop puts or deletes; without prev_kv none is attached.
#[tokio::test]
async fn watch_filters() {
    let kv = MemBackend::default();
    let req = WatchRequest {
        key: "f".into(),
        no_put: true,
        ..Default::default()
    };
    let mut stream = kv.watch(req).await.unwrap();
    kv.put(put("f", "1")).await.unwrap();
    kv.delete_range(DeleteRangeRequest {
        key: "f".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let (rev, events) = next_events(&mut stream).await;
    assert_eq!(
        (rev, events.len(), events[0].kind),
        (3, 1, EventType::Delete)
    );
    assert!(events[0].prev_kv.is_none());
}

/// A watch that starts before the compacted revision is cancelled with the compact revision.
#[tokio::test]
async fn watch_from_compacted_revision_is_cancelled() {
    let kv = MemBackend::default();
    for i in 0..4 {
        kv.put(put("c", &i.to_string())).await.unwrap();
    }
    kv.compact(CompactionRequest {
        revision: 4,
        physical: true,
    })
    .await
    .unwrap();
    let mut stream = kv
        .watch(WatchRequest {
            key: "c".into(),
            start_revision: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    let message = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap();
    assert_eq!(
        message,
        Some(WatchMessage::Compacted {
            compact_revision: 4
        })
    );
}

/// A watcher that does not read for a long time loses nothing: it catches up from history.
#[tokio::test]
async fn slow_watcher_catches_up_without_gaps() {
    let kv = MemBackend::default();
    let mut stream = kv
        .watch(WatchRequest {
            key: "s".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let writes = 1000;
    for i in 0..writes {
        kv.put(put("s", &i.to_string())).await.unwrap();
    }
    for i in 0..writes {
        let (rev, events) = next_events(&mut stream).await;
        assert_eq!(rev, 2 + i);
        assert_eq!(events[0].kv.value, i.to_string().into_bytes());
    }
}

/// Past the quota, writes fail with NOSPACE and raise the alarm, while reads and deletes work;
/// disarming after freeing space lets writes in again.
#[tokio::test]
async fn space_quota_raises_nospace_and_keeps_reads_and_deletes() {
    let kv = MemBackend::new(MemConfig {
        quota_bytes: 4096,
        ..MemConfig::default()
    });
    let big = "x".repeat(1024);
    let mut refused = None;
    for i in 0..16 {
        if let Err(e) = kv.put(put(&format!("q/{i}"), &big)).await {
            refused = Some(e);
            break;
        }
    }
    assert_eq!(refused, Some(KvError::NoSpace));
    let (_, alarms) = kv.alarm(AlarmAction::Get, 0, None).await.unwrap();
    assert_eq!(alarms[0].alarm, AlarmType::NoSpace);
    assert!(kv.range(prefix("q/")).await.unwrap().count > 0);
    assert_eq!(
        kv.put(put("tiny", "1")).await.unwrap_err(),
        KvError::NoSpace
    );
    let del = DeleteRangeRequest {
        key: "q/".into(),
        range_end: prefix_end(b"q/"),
        prev_kv: false,
    };
    assert!(kv.delete_range(del).await.unwrap().deleted > 0);
    let rev = kv.current_header().await.unwrap().revision;
    kv.compact(CompactionRequest {
        revision: rev,
        physical: true,
    })
    .await
    .unwrap();
    kv.alarm(AlarmAction::Deactivate, 0, Some(AlarmType::NoSpace))
        .await
        .unwrap();
    kv.put(put("tiny", "1")).await.unwrap();
}

/// A store rebuilt from its persisted records, meta and leases answers exactly like the
/// original: the path every restart and snapshot install takes.
#[test]
fn restore_rebuilds_the_same_state() {
    use std::collections::BTreeMap;

    #[derive(Default)]
    struct Records(BTreeMap<Rev, Record>);
    impl RevStore for Records {
        fn get(&self, rev: Rev) -> KvResult<Option<Record>> {
            Ok(self.0.get(&rev).cloned())
        }
        fn scan_from(&self, from: Rev, visit: &mut dyn FnMut(Rev, Record) -> bool) -> KvResult<()> {
            for (rev, record) in self.0.range(from..) {
                if !visit(*rev, record.clone()) {
                    break;
                }
            }
            Ok(())
        }
    }

    let mut mvcc = Mvcc::new();
    let mut records = Records::default();
    let mut leases = BTreeMap::new();
    let mut apply = |mvcc: &mut Mvcc, records: &mut Records, command: Command| {
        let mut changes = Changes::default();
        let result = mvcc.apply(records, &command, &mut changes);
        for rev in changes.deletes {
            records.0.remove(&rev);
        }
        records.0.extend(changes.puts);
        leases.extend(changes.lease_puts);
        for id in changes.lease_deletes {
            leases.remove(&id);
        }
        result
    };
    apply(
        &mut mvcc,
        &mut records,
        Command::LeaseGrant { id: 7, ttl: 60 },
    )
    .unwrap();
    for i in 0..20 {
        let lease = if i % 5 == 0 { 7 } else { 0 };
        let put = PutRequest {
            lease,
            ..put(&format!("k/{:02}", i % 8), &i.to_string())
        };
        apply(&mut mvcc, &mut records, Command::Put(put)).unwrap();
    }
    let del = DeleteRangeRequest {
        key: "k/03".into(),
        ..Default::default()
    };
    apply(&mut mvcc, &mut records, Command::DeleteRange(del)).unwrap();
    apply(
        &mut mvcc,
        &mut records,
        Command::Compact(CompactionRequest {
            revision: 12,
            physical: true,
        }),
    )
    .unwrap();

    let lease_list: Vec<(i64, i64)> = leases.iter().map(|(id, ttl)| (*id, *ttl)).collect();
    let restored = Mvcc::restore(&mvcc.meta(), &records, lease_list).unwrap();
    assert_eq!(restored.meta(), mvcc.meta());
    assert_eq!(restored.lease(7), mvcc.lease(7));
    for revision in [0, 12, 15, mvcc.revision()] {
        let req = RangeRequest {
            revision,
            ..prefix("k/")
        };
        assert_eq!(
            restored.range(&records, &req).unwrap(),
            mvcc.range(&records, &req).unwrap(),
            "at {revision}"
        );
    }
    let history_a = mvcc.history(&records, b"k/", b"k0", 12, 100, 100).unwrap();
    let history_b = restored
        .history(&records, b"k/", b"k0", 12, 100, 100)
        .unwrap();
    assert_eq!(history_a, history_b);
}
