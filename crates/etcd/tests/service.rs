//! The etcd services over the in-memory backend, through the `etcd-client` crate: wire
//! behaviour (error strings, streams, snapshot framing) without RocksDB or Raft.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, GetOptions, WatchOptions};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use hanode_kv::{KvBackend, MemBackend};

async fn serve(backend: Arc<dyn KvBackend>) -> anyhow::Result<Client> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let routes = hanode_etcd::routes(backend, &hanode_etcd::EtcdConfig::default());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    Ok(Client::connect([format!("http://{addr}")], None).await?)
}

/// Reads, writes and the etcd error strings clients parse.
#[tokio::test]
async fn kv_round_trip_and_error_strings() -> anyhow::Result<()> {
    let mut client = serve(Arc::new(MemBackend::default())).await?;
    let put = client.put("a", "1", None).await?;
    assert_eq!(put.header().map(|h| h.revision()), Some(2));
    client.put("a", "2", None).await?;
    client.put("b", "3", None).await?;
    let got = client
        .get("a", Some(GetOptions::new().with_revision(2)))
        .await?;
    assert_eq!(got.kvs()[0].value(), b"1");
    let limited = client
        .get("", Some(GetOptions::new().with_all_keys().with_limit(1)))
        .await?;
    assert_eq!(
        (limited.kvs().len(), limited.more(), limited.count()),
        (1, true, 2)
    );
    client.compact(3, None).await?;
    let err = client
        .get("a", Some(GetOptions::new().with_revision(2)))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("etcdserver: mvcc: required revision has been compacted"),
        "{err}"
    );
    let err = client
        .get("a", Some(GetOptions::new().with_revision(99)))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("required revision is a future revision"),
        "{err}"
    );
    let err = client.lease_revoke(12345).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("etcdserver: requested lease not found"),
        "{err}"
    );
    Ok(())
}

/// A Put over the request limit is refused with etcd's message; nothing is stored.
#[tokio::test]
async fn oversized_put_is_request_too_large() -> anyhow::Result<()> {
    let mut client = serve(Arc::new(MemBackend::default())).await?;
    let value = vec![b'v'; hanode_etcd::DEFAULT_MAX_REQUEST_BYTES + 1];
    let err = client.put("big", value, None).await.unwrap_err();
    assert!(
        err.to_string().contains("etcdserver: request is too large"),
        "{err}"
    );
    assert_eq!(client.get("big", None).await?.count(), 0);
    Ok(())
}

/// A watch from a compacted revision is created, then cancelled with the compact revision.
#[tokio::test]
async fn watch_from_compacted_revision_is_cancelled() -> anyhow::Result<()> {
    let mut client = serve(Arc::new(MemBackend::default())).await?;
    for i in 0..3 {
        client.put("w", i.to_string(), None).await?;
    }
    client.compact(4, None).await?;
    let mut stream = client
        .watch("w", Some(WatchOptions::new().with_start_revision(2)))
        .await?;
    let mut canceled = None;
    for _ in 0..3 {
        let message = tokio::time::timeout(Duration::from_secs(5), stream.message()).await??;
        let Some(message) = message else { break };
        if message.canceled() {
            canceled = Some(message.compact_revision());
            break;
        }
    }
    assert_eq!(canceled, Some(4));
    Ok(())
}

/// Snapshot streams carry the data padded to 512 bytes and its SHA-256 at the end, which is
/// what etcdctl checks before it writes the file.
#[tokio::test]
async fn snapshot_stream_is_padded_and_checksummed() -> anyhow::Result<()> {
    let mut client = serve(Arc::new(MemBackend::default())).await?;
    client.put("s", "v", None).await?;
    let mut stream = client.snapshot().await?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await? {
        bytes.extend_from_slice(chunk.blob());
    }
    assert_eq!(bytes.len() % 512, 32);
    let (data, sum) = bytes.split_at(bytes.len() - 32);
    assert_eq!(Sha256::digest(data).as_slice(), sum);
    Ok(())
}

/// Keep-alive of an unknown lease answers TTL 0 on the stream, as etcd does; etcd-client
/// reads that answer as its own "lease not found" error.
#[tokio::test]
async fn keep_alive_of_unknown_lease_answers_zero_ttl() -> anyhow::Result<()> {
    let mut client = serve(Arc::new(MemBackend::default())).await?;
    let err = client
        .lease_keep_alive(424242)
        .await
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("lease not found")),
        "{err:?}"
    );
    Ok(())
}
