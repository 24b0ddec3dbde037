//! Cluster formation, replication, leader loss and restart, with in-process servers (real TLS,
//! RocksDB and Raft).

use std::time::Duration;

use hanode_kv::{KvBackend, PutRequest, RangeRequest};
use hanode_testkit::{TestCluster, wait};

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

fn get(key: &str, serializable: bool) -> RangeRequest {
    RangeRequest {
        key: key.into(),
        serializable,
        ..Default::default()
    }
}

async fn value_at(cluster: &TestCluster, index: usize, key: &str) -> Option<Vec<u8>> {
    let resp = cluster.node(index).range(get(key, true)).await.ok()?;
    resp.kvs.first().map(|kv| kv.value.clone())
}

/// Clusters of 1, 3 and 5 form with all members voting, elect one leader, and replicate a
/// write to every member.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clusters_of_one_three_and_five_form_and_replicate() -> anyhow::Result<()> {
    for size in [1usize, 3, 5] {
        let cluster = TestCluster::start(size).await?;
        let members = cluster.node(0).local_members();
        assert_eq!(members.len(), size);
        assert!(members.iter().all(|m| !m.is_learner), "{size}: all voters");
        let leader = cluster.leader(Duration::from_secs(5)).await?;
        // Write through a follower when there is one: it forwards to the leader.
        let via = (leader + 1) % size;
        cluster
            .node(via)
            .put(put("formed", &size.to_string()))
            .await?;
        for index in 0..size {
            wait::for_true(
                Duration::from_secs(5),
                &format!("server {index} to see the write"),
                || async {
                    value_at(&cluster, index, "formed").await == Some(size.to_string().into_bytes())
                },
            )
            .await?;
        }
        cluster.shutdown().await;
    }
    Ok(())
}

/// Linearizable reads on a follower see a write acknowledged just before by another member.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn linearizable_read_on_follower_sees_acknowledged_write() -> anyhow::Result<()> {
    let cluster = TestCluster::start(3).await?;
    let leader = cluster.leader(Duration::from_secs(5)).await?;
    let follower = (leader + 1) % 3;
    for i in 0..50 {
        let value = i.to_string();
        cluster.node(leader).put(put("lin", &value)).await?;
        let resp = cluster.node(follower).range(get("lin", false)).await?;
        assert_eq!(resp.kvs[0].value, value.into_bytes(), "read {i} is stale");
    }
    cluster.shutdown().await;
    Ok(())
}

/// When the leader stops, the others elect a new one and every acknowledged write is still
/// there; the old leader restarts from its data dir and catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_loss_elects_new_leader_and_keeps_writes() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(3).await?;
    let leader = cluster.leader(Duration::from_secs(5)).await?;
    for i in 0..20 {
        cluster
            .node(leader)
            .put(put(&format!("before/{i}"), "v"))
            .await?;
    }
    cluster.stop(leader).await;
    let rest: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let new_leader = cluster.leader_among(&rest, Duration::from_secs(5)).await?;
    assert_ne!(new_leader, leader);
    let resp = cluster
        .node(rest[0])
        .range(RangeRequest {
            key: "before/".into(),
            range_end: hanode_kv::prefix_end(b"before/"),
            ..Default::default()
        })
        .await?;
    assert_eq!(resp.count, 20);
    cluster.node(rest[1]).put(put("after", "v")).await?;
    cluster.restart(leader).await?;
    wait::for_true(
        Duration::from_secs(10),
        "the restarted server to catch up",
        || async { value_at(&cluster, leader, "after").await.is_some() },
    )
    .await?;
    cluster.shutdown().await;
    Ok(())
}

/// Replication travels over Raft links (the peer port's own ALPN protocol), not unary gRPC,
/// and keeps doing so after a follower restarts and every pooled link to it is stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replication_travels_over_raft_links() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(3).await?;
    let leader = cluster.leader(Duration::from_secs(5)).await?;
    cluster.node(leader).put(put("linked", "1")).await?;
    let traffic = cluster.node(leader).peer_traffic();
    assert!(traffic.append_entries_link > 0, "{traffic:?}");
    assert_eq!(traffic.append_entries_grpc, 0, "{traffic:?}");

    // Whoever leads after the restart must reach the restarted member, and without gRPC
    // the only way is a link made after the old ones went stale.
    let follower = (leader + 1) % 3;
    cluster.stop(follower).await;
    cluster.restart(follower).await?;
    let now_leader = cluster.leader(Duration::from_secs(5)).await?;
    cluster.node(now_leader).put(put("linked", "2")).await?;
    wait::for_true(
        Duration::from_secs(10),
        "the restarted follower to catch up",
        || async { value_at(&cluster, follower, "linked").await == Some(b"2".to_vec()) },
    )
    .await?;
    for index in 0..3 {
        let traffic = cluster.node(index).peer_traffic();
        assert_eq!(
            traffic.append_entries_grpc, 0,
            "server {index}: {traffic:?}"
        );
    }
    cluster.shutdown().await;
    Ok(())
}

/// A whole cluster restarts from disk with its data, revisions and leader election intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whole_cluster_restarts_from_disk() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(3).await?;
    let leader = cluster.leader(Duration::from_secs(5)).await?;
    let mut last_revision = 0;
    for i in 0..10 {
        last_revision = cluster
            .node(leader)
            .put(put(&format!("k{i}"), &i.to_string()))
            .await?
            .header
            .revision;
    }
    for index in 0..3 {
        cluster.stop(index).await;
    }
    for index in 0..3 {
        cluster.restart(index).await?;
    }
    let leader = cluster.leader(Duration::from_secs(10)).await?;
    let resp = cluster.node(leader).range(get("k9", false)).await?;
    assert_eq!(resp.kvs[0].value, b"9".to_vec());
    assert_eq!(resp.kvs[0].mod_revision, last_revision);
    assert!(resp.header.revision >= last_revision);
    cluster.shutdown().await;
    Ok(())
}
