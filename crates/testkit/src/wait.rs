//! Waiting for facts: poll a condition until it holds or a deadline passes, then fail with a
//! message saying what was awaited.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(20);

/// Polls `check` until it returns `Some`, or fails after `timeout` naming `what`.
pub async fn until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls a boolean condition; see [`until`].
pub async fn for_true<F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    until(timeout, what, || {
        let fut = check();
        async move { fut.await.then_some(()) }
    })
    .await
}
