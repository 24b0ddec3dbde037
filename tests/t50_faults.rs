//! Faults on the peer network: partitions, lagging followers and snapshots, lease expiry
//! across a leader change.

use std::time::Duration;

use hanode_kv::{KvBackend, KvError, PutRequest, RangeRequest, prefix_end};
use hanode_testkit::{ClusterOptions, TestCluster, wait};

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

/// A member cut off from the others refuses linearizable reads and writes (it cannot know
/// it is current), while the majority keeps serving both; after healing it catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn minority_partition_refuses_linearizable_requests_while_majority_serves()
-> anyhow::Result<()> {
    let options = ClusterOptions {
        request_timeout: Duration::from_secs(2),
        ..ClusterOptions::default()
    };
    let cluster = TestCluster::start_with(3, options).await?;
    let leader = cluster.leader(Duration::from_secs(5)).await?;
    // Cut off the leader: the harder case, since it still believes it leads for a while.
    let minority = leader;
    let majority: Vec<usize> = (0..3).filter(|i| *i != minority).collect();
    cluster.node(leader).put(put("before", "1")).await?;
    // A lease renewed on the leader just before the cut: its renewals take the fast path
    // (leadership confirmed moments ago) until that confirmation is too old to trust.
    let lease = cluster.node(leader).lease_grant(0, 30).await?.id;
    assert!(cluster.node(leader).lease_keep_alive(lease).await?.ttl > 0);
    assert!(cluster.node(leader).lease_keep_alive(lease).await?.ttl > 0);
    cluster.isolate(minority);

    let new_leader = cluster
        .leader_among(&majority, Duration::from_secs(10))
        .await?;
    cluster
        .node(new_leader)
        .put(put("during", "majority"))
        .await?;
    let read = cluster
        .node(majority[0])
        .range(RangeRequest {
            key: "during".into(),
            ..Default::default()
        })
        .await?;
    assert_eq!(read.kvs.len(), 1);

    let write = cluster.node(minority).put(put("during", "minority")).await;
    assert!(
        matches!(write, Err(KvError::Timeout | KvError::NoLeader)),
        "minority write: {write:?}"
    );
    let read = cluster
        .node(minority)
        .range(RangeRequest {
            key: "during".into(),
            ..Default::default()
        })
        .await;
    assert!(
        matches!(read, Err(KvError::Timeout | KvError::NoLeader)),
        "minority read: {read:?}"
    );
    // Serializable reads are local and allowed, and see only old data.
    let stale = cluster
        .node(minority)
        .range(RangeRequest {
            key: "during".into(),
            serializable: true,
            ..Default::default()
        })
        .await?;
    assert!(stale.kvs.is_empty());
    // The cut-off leader still believes it leads, but a renewal there would be a promise the
    // new leader does not know about: it is refused, and the majority renews the lease.
    let renewal = cluster.node(minority).lease_keep_alive(lease).await;
    assert!(
        matches!(renewal, Err(KvError::Timeout | KvError::NoLeader)),
        "minority keep-alive: {renewal:?}"
    );
    assert!(cluster.node(majority[0]).lease_keep_alive(lease).await?.ttl > 0);

    cluster.heal();
    wait::for_true(
        Duration::from_secs(10),
        "the healed member to catch up",
        || async {
            cluster
                .node(minority)
                .range(RangeRequest {
                    key: "during".into(),
                    ..Default::default()
                })
                .await
                .is_ok_and(|r| r.kvs.first().is_some_and(|kv| kv.value == b"majority"))
        },
    )
    .await?;
    cluster.shutdown().await;
    Ok(())
}

/// A follower that misses more writes than the leader keeps in its log is brought up to date
/// by a snapshot, and then serves the same data.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lagging_follower_catches_up_by_snapshot() -> anyhow::Result<()> {
    let options = ClusterOptions {
        snapshot_logs_since_last: 50,
        logs_to_keep_after_snapshot: 5,
        ..ClusterOptions::default()
    };
    let cluster = TestCluster::start_with(3, options).await?;
    let leader = cluster.leader(Duration::from_secs(5)).await?;
    let lagging = (leader + 1) % 3;
    cluster.isolate(lagging);
    for i in 0..300 {
        cluster
            .node(leader)
            .put(put(&format!("snap/{i:03}"), &i.to_string()))
            .await?;
    }
    wait::for_true(
        Duration::from_secs(10),
        "the leader to purge its log past the follower",
        || async {
            let metrics = cluster.node(leader).metrics();
            let lagging_applied = cluster
                .node(lagging)
                .metrics()
                .last_applied
                .map_or(0, |l| l.index);
            metrics.purged.is_some_and(|p| p.index > lagging_applied)
        },
    )
    .await?;
    cluster.heal();
    let range = RangeRequest {
        key: "snap/".into(),
        range_end: prefix_end(b"snap/"),
        serializable: true,
        ..Default::default()
    };
    wait::for_true(
        Duration::from_secs(20),
        "the follower to install the snapshot",
        || async {
            cluster
                .node(lagging)
                .range(range.clone())
                .await
                .is_ok_and(|r| r.count == 300)
        },
    )
    .await?;
    assert!(
        cluster.node(lagging).metrics().snapshot.is_some(),
        "caught up through a snapshot"
    );
    let on_leader = cluster
        .node(leader)
        .range(RangeRequest {
            serializable: true,
            ..range.clone()
        })
        .await?;
    let on_follower = cluster.node(lagging).range(range).await?;
    assert_eq!(on_leader.kvs, on_follower.kvs);
    // It keeps replicating normally afterwards.
    cluster.node(leader).put(put("after-snapshot", "1")).await?;
    wait::for_true(
        Duration::from_secs(5),
        "normal replication after the snapshot",
        || async {
            cluster
                .node(lagging)
                .range(RangeRequest {
                    key: "after-snapshot".into(),
                    serializable: true,
                    ..Default::default()
                })
                .await
                .is_ok_and(|r| r.count == 1)
        },
    )
    .await?;
    cluster.shutdown().await;
    Ok(())
}

/// A lease is expired by whoever leads: after the leader that granted it stops, the new
/// leader still expires it (within TTL plus an election) and its keys go; a kept-alive lease
/// survives the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lease_expiry_survives_leader_change() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(3).await?;
    let leader = cluster.leader(Duration::from_secs(5)).await?;
    let lapsing = cluster.node(leader).lease_grant(0, 3).await?.id;
    let kept = cluster.node(leader).lease_grant(0, 3).await?.id;
    cluster
        .node(leader)
        .put(PutRequest {
            lease: lapsing,
            ..put("lease/lapsing", "1")
        })
        .await?;
    cluster
        .node(leader)
        .put(PutRequest {
            lease: kept,
            ..put("lease/kept", "1")
        })
        .await?;
    cluster.stop(leader).await;
    let rest: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let new_leader = cluster.leader_among(&rest, Duration::from_secs(5)).await?;
    let keeper = cluster.node(rest[0]).clone();
    let keep_alive = tokio::spawn(async move {
        loop {
            let _ = keeper.lease_keep_alive(kept).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let get = |key: &str| RangeRequest {
        key: key.into(),
        ..Default::default()
    };
    wait::for_true(
        Duration::from_secs(15),
        "the lapsed lease's key to be deleted",
        || async {
            cluster
                .node(new_leader)
                .range(get("lease/lapsing"))
                .await
                .is_ok_and(|r| r.count == 0)
        },
    )
    .await?;
    assert_eq!(
        cluster
            .node(new_leader)
            .range(get("lease/kept"))
            .await?
            .count,
        1
    );
    let ttl = cluster
        .node(rest[1])
        .lease_time_to_live(lapsing, false)
        .await?;
    assert_eq!(ttl.ttl, -1, "the revoked lease is gone on every member");
    keep_alive.abort();
    cluster.shutdown().await;
    Ok(())
}

/// A leader that stops answering (paused, like SIGSTOP) is replaced, and writes through the
/// others resume, within a few election timeouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paused_leader_is_replaced() -> anyhow::Result<()> {
    let cluster = TestCluster::start(3).await?;
    let leader = cluster.leader(Duration::from_secs(5)).await?;
    let rest: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let paused_at = tokio::time::Instant::now();
    cluster.pause(leader);
    let new_leader = cluster.leader_among(&rest, Duration::from_secs(10)).await?;
    let elected = paused_at.elapsed();
    cluster.node(rest[0]).put(put("after-pause", "1")).await?;
    let resumed = paused_at.elapsed();
    println!("paused leader: new leader after {elected:?}, first write after {resumed:?}");
    assert_ne!(new_leader, leader);
    cluster.heal();
    cluster.shutdown().await;
    Ok(())
}
