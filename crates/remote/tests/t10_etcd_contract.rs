//! The remote backend against a real etcd 3.4 process: the same contract as hanode's API, plus
//! what only a real server shows (watch cancellation on the server, the server going away).

mod common;

use std::time::Duration;

use common::{DEADLINE, Etcd, connect, contract, next_message, wait_for};
use hanode_kv::{KvBackend, KvError, RangeRequest, WatchRequest};

/// Every contract phase passes against etcd 3.4, the store the API must run on unchanged.
#[tokio::test]
async fn etcd_meets_the_contract() -> anyhow::Result<()> {
    let etcd = Etcd::start().await?;
    let backend = connect(&etcd.url).await?;
    contract::run(&backend).await
}

/// Dropping a watch stream cancels the watch on the server: nothing leaks there.
#[tokio::test]
async fn dropping_a_watch_cancels_it_on_the_server() -> anyhow::Result<()> {
    const WATCHERS: &str = "etcd_debugging_mvcc_watcher_total";
    let etcd = Etcd::start().await?;
    let backend = connect(&etcd.url).await?;
    let watches = [
        backend
            .watch(WatchRequest {
                key: b"/dropped/a".to_vec(),
                ..Default::default()
            })
            .await?,
        backend
            .watch(WatchRequest {
                key: b"/dropped/b".to_vec(),
                start_revision: 1,
                ..Default::default()
            })
            .await?,
    ];
    wait_for("etcd to count both watchers", DEADLINE, || async {
        (etcd.metric(WATCHERS).await.ok()? >= 2.0).then_some(())
    })
    .await?;
    drop(watches);
    wait_for("etcd to drop the watchers", DEADLINE, || async {
        (etcd.metric(WATCHERS).await.ok()? == 0.0).then_some(())
    })
    .await?;
    Ok(())
}

/// When the store dies, an open watch stream ends (so the API closes its client's watch and
/// the client re-lists) and requests fail with a retryable error within the request timeout.
#[tokio::test]
async fn store_going_away_ends_watches_and_fails_requests_retryably() -> anyhow::Result<()> {
    let mut etcd = Etcd::start().await?;
    let backend = connect(&etcd.url).await?;
    let mut watch = backend
        .watch(WatchRequest {
            key: b"/gone".to_vec(),
            ..Default::default()
        })
        .await?;
    etcd.kill().await?;
    let end = next_message(&mut watch, "the end of the watch").await?;
    assert!(end.is_none(), "{end:?}");

    let started = tokio::time::Instant::now();
    let err = backend
        .range(RangeRequest {
            key: b"/gone".to_vec(),
            ..Default::default()
        })
        .await
        .expect_err("nothing serves the request");
    assert!(err.is_retryable(), "{err:?}");
    assert!(
        started.elapsed() < common::config("", None).request_timeout + Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(err, KvError::Stopped | KvError::Timeout),
        "{err:?}"
    );
    Ok(())
}
