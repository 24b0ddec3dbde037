//! Connecting to endpoints that do not answer fails within the connect timeout, with a message
//! that names the endpoints and says what to check.

mod common;

use std::time::Duration;

use hanode_remote::{RemoteBackend, RemoteConfig, RemoteError};
use tokio::time::Instant;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Slack for scheduling on a loaded two-core machine.
const SLACK: Duration = Duration::from_secs(2);

async fn connect_fails(endpoint: &str) -> anyhow::Result<RemoteError> {
    let started = Instant::now();
    let result = RemoteBackend::connect(RemoteConfig {
        endpoints: vec![endpoint.to_string()],
        connect_timeout: CONNECT_TIMEOUT,
        ..RemoteConfig::default()
    })
    .await;
    let elapsed = started.elapsed();
    let Err(err) = result else {
        anyhow::bail!("connect to {endpoint} succeeded");
    };
    assert!(elapsed < CONNECT_TIMEOUT + SLACK, "took {elapsed:?}: {err}");
    let message = err.to_string();
    assert!(message.contains(endpoint), "{message}");
    assert!(message.contains("--storage-endpoints"), "{message}");
    assert!(message.contains("TLS files"), "{message}");
    Ok(err)
}

/// A port where nothing listens: refused at once, reported when the timeout is over.
#[tokio::test]
async fn nothing_listening_fails_within_the_connect_timeout() -> anyhow::Result<()> {
    let endpoint = format!("http://127.0.0.1:{}", common::free_port()?);
    let err = connect_fails(&endpoint).await?;
    assert!(matches!(err, RemoteError::Unreachable { .. }), "{err}");
    Ok(())
}

/// A listener that takes the connection but never speaks HTTP/2 must not hang connect.
#[tokio::test]
async fn silent_listener_fails_within_the_connect_timeout() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let err = connect_fails(&endpoint).await?;
    assert!(matches!(err, RemoteError::Unreachable { .. }), "{err}");
    drop(listener);
    Ok(())
}

/// With several endpoints, the message names all of them.
#[tokio::test]
async fn every_endpoint_is_named() -> anyhow::Result<()> {
    let endpoints = vec![
        format!("http://127.0.0.1:{}", common::free_port()?),
        format!("http://127.0.0.1:{}", common::free_port()?),
    ];
    let err = RemoteBackend::connect(RemoteConfig {
        endpoints: endpoints.clone(),
        connect_timeout: CONNECT_TIMEOUT,
        ..RemoteConfig::default()
    })
    .await
    .expect_err("nothing listens");
    for endpoint in endpoints {
        assert!(err.to_string().contains(&endpoint), "{err}");
    }
    Ok(())
}
