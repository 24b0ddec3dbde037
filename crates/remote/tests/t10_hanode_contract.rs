//! The remote backend against hanode's own etcd API, served in-process over the in-memory
//! store: plaintext, and with the mutual TLS hanode storage nodes require.

mod common;

use common::{client_tls, config, contract, pki, serve_hanode, serve_hanode_tls};
use hanode_remote::RemoteBackend;

/// Every contract phase passes against hanode's etcd API over plaintext gRPC.
#[tokio::test]
async fn hanode_etcd_api_meets_the_contract() -> anyhow::Result<()> {
    let served = serve_hanode().await?;
    let backend = RemoteBackend::connect(config(&served.url, None)).await?;
    contract::run(&backend).await
}

/// Every contract phase passes over https with a client certificate issued by hanode's CA,
/// against a server that refuses clients without one.
#[tokio::test]
async fn hanode_etcd_api_over_mutual_tls_meets_the_contract() -> anyhow::Result<()> {
    let pki = pki()?;
    let served = serve_hanode_tls(&pki).await?;
    let backend = RemoteBackend::connect(config(&served.url, Some(client_tls(&pki, true)))).await?;
    contract::run(&backend).await
}

/// Without a client certificate the TLS server refuses the connection, and connect says so in
/// time, naming the endpoint and the TLS files instead of hanging.
#[tokio::test]
async fn missing_client_certificate_fails_connect_naming_the_tls_files() -> anyhow::Result<()> {
    let pki = pki()?;
    let served = serve_hanode_tls(&pki).await?;
    let mut settings = config(&served.url, Some(client_tls(&pki, false)));
    settings.connect_timeout = std::time::Duration::from_secs(1);
    let started = tokio::time::Instant::now();
    let err = RemoteBackend::connect(settings)
        .await
        .expect_err("a client without a certificate must be refused");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let message = err.to_string();
    assert!(message.contains(&served.url), "{message}");
    assert!(message.contains("TLS files"), "{message}");
    Ok(())
}

/// A CA that did not sign the server's certificate is refused the same way.
#[tokio::test]
async fn untrusted_server_certificate_fails_connect() -> anyhow::Result<()> {
    let pki = pki()?;
    let other = common::pki()?;
    let served = serve_hanode_tls(&pki).await?;
    let mut tls = client_tls(&pki, true);
    tls.ca_pem = other.ca_pem;
    let mut settings = config(&served.url, Some(tls));
    settings.connect_timeout = std::time::Duration::from_secs(1);
    let err = RemoteBackend::connect(settings)
        .await
        .expect_err("a server signed by another CA must not be trusted");
    assert!(err.to_string().contains(&served.url), "{err}");
    Ok(())
}

/// An endpoint nobody listens on costs one refused connection, not failed requests: every
/// request, writes included, goes on to the next endpoint (nothing was sent, so nothing can
/// apply twice) and the answering one is kept for later requests.
#[tokio::test]
async fn unreachable_endpoint_is_skipped_for_reads_and_writes() -> anyhow::Result<()> {
    use hanode_kv::{KvBackend, PutRequest, RangeRequest};
    let served = serve_hanode().await?;
    let dead = format!("http://127.0.0.1:{}", common::free_port()?);
    let mut settings = config(&dead, None);
    settings.endpoints.push(served.url.clone());
    let backend = RemoteBackend::connect(settings).await?;
    for i in 0..50 {
        let key = format!("/failover/{i}").into_bytes();
        backend
            .put(PutRequest {
                key: key.clone(),
                value: b"v".to_vec(),
                ..Default::default()
            })
            .await?;
        let got = backend
            .range(RangeRequest {
                key,
                ..Default::default()
            })
            .await?;
        assert_eq!(got.kvs.len(), 1, "write {i} not readable");
    }
    Ok(())
}
