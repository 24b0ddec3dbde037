//! TLS listeners: accept, handshake off the accept loop, optionally check who the client is,
//! and hand finished connections to a server.

use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use hanode_pki::PeerIdentity;

/// Handshakes slower than this are dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A finished TLS connection and the identity of its client certificate, if any.
pub type Accepted = (TlsStream<TcpStream>, Option<PeerIdentity>);

/// The client identity on a TLS connection.
pub fn identity_of(stream: &TlsStream<TcpStream>) -> Option<PeerIdentity> {
    let certs = stream.get_ref().1.peer_certificates()?;
    hanode_pki::peer_identity(certs.first()?.as_ref())
}

/// Accepts TLS connections until `stop`; with `required_org`, connections whose client
/// certificate lacks that organization are closed.
pub fn accept(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    required_org: Option<&'static str>,
    stop: CancellationToken,
) -> mpsc::Receiver<Accepted> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let (tcp, remote) = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let stream =
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(%remote, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                let identity = identity_of(&stream);
                if let Some(org) = required_org
                    && !identity
                        .as_ref()
                        .is_some_and(|id| id.organizations.iter().any(|o| o == org))
                {
                    tracing::warn!(%remote, ?identity, "refusing a client without the {org} certificate");
                    return;
                }
                let _ = tx.send((stream, identity)).await;
            });
        }
    });
    rx
}

/// Splits accepted connections by the ALPN protocol the client chose: those that chose
/// `protocol` go to the second receiver, all others to the first.
pub fn split_by_alpn(
    mut rx: mpsc::Receiver<Accepted>,
    protocol: &'static [u8],
) -> (mpsc::Receiver<Accepted>, mpsc::Receiver<Accepted>) {
    let (other_tx, other_rx) = mpsc::channel(64);
    let (chosen_tx, chosen_rx) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(accepted) = rx.recv().await {
            let to = if accepted.0.get_ref().1.alpn_protocol() == Some(protocol) {
                &chosen_tx
            } else {
                &other_tx
            };
            // A side that stopped listening (shutdown) only loses its own connections.
            let _ = to.send(accepted).await;
        }
    });
    (other_rx, chosen_rx)
}

/// The same connections as a stream for tonic, which wants `Result<IO, E>` items.
pub fn incoming(
    rx: mpsc::Receiver<Accepted>,
) -> impl futures::Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> {
    use futures::StreamExt;
    ReceiverStream::new(rx).map(|(stream, _)| Ok(stream))
}
