//! The etcd v3 API through a client nobody here wrote: the Rust `etcd-client` crate, against
//! an in-process cluster (watch streams, transactions, lease keep-alive streams, members).

use std::time::Duration;

use etcd_client::{
    Compare, CompareOp, EventType, GetOptions, PutOptions, Txn, TxnOp, WatchOptions,
};
use hanode_testkit::TestCluster;

/// Watch, txn, leases and member list work through `etcd-client`, and a watch on one member
/// sees writes made through another.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_client_crate_drives_the_cluster() -> anyhow::Result<()> {
    let cluster = TestCluster::start(3).await?;
    let mut writer = cluster.etcd_client(&[0]).await?;
    let mut watcher = cluster.etcd_client(&[2]).await?;

    let mut stream = watcher
        .watch(
            "job/",
            Some(WatchOptions::new().with_prefix().with_prev_key()),
        )
        .await?;
    writer.put("job/1", "queued", None).await?;
    let txn = Txn::new()
        .when([Compare::value("job/1", CompareOp::Equal, "queued")])
        .and_then([
            TxnOp::put("job/1", "running", None),
            TxnOp::put("job/2", "queued", None),
        ])
        .or_else([TxnOp::get("job/1", None)]);
    let resp = writer.txn(txn).await?;
    assert!(resp.succeeded());

    let mut events = Vec::new();
    while events.len() < 3 {
        let message = tokio::time::timeout(Duration::from_secs(5), stream.message()).await??;
        let message = message.ok_or_else(|| anyhow::anyhow!("watch ended"))?;
        for event in message.events() {
            let kv = event
                .kv()
                .ok_or_else(|| anyhow::anyhow!("event without kv"))?;
            events.push((
                event.event_type(),
                kv.key_str()?.to_string(),
                kv.value_str()?.to_string(),
            ));
        }
    }
    assert_eq!(
        events,
        vec![
            (EventType::Put, "job/1".into(), "queued".into()),
            (EventType::Put, "job/1".into(), "running".into()),
            (EventType::Put, "job/2".into(), "queued".into()),
        ]
    );

    let lease = writer.lease_grant(10, None).await?;
    writer
        .put(
            "session",
            "alive",
            Some(PutOptions::new().with_lease(lease.id())),
        )
        .await?;
    let (mut keeper, mut replies) = writer.lease_keep_alive(lease.id()).await?;
    keeper.keep_alive().await?;
    let reply = tokio::time::timeout(Duration::from_secs(5), replies.message()).await??;
    assert_eq!(reply.map(|r| r.ttl()), Some(10));
    let ttl = watcher.lease_time_to_live(lease.id(), None).await?;
    assert!(ttl.ttl() > 0 && ttl.ttl() <= 10);
    writer.lease_revoke(lease.id()).await?;
    let gone = watcher
        .get("session", Some(GetOptions::new().with_count_only()))
        .await?;
    assert_eq!(gone.count(), 0);

    let members = watcher.member_list().await?;
    assert_eq!(members.members().len(), 3);
    assert!(members.members().iter().all(|m| !m.is_learner()));
    drop((stream, keeper, replies, writer, watcher));
    cluster.shutdown().await;
    Ok(())
}
