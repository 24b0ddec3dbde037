//! The Raft link: AppendEntries (replication, heartbeats, ReadIndex confirmations) sent over
//! plain framed mTLS connections instead of unary gRPC calls.
//!
//! Why: on a busy machine every hand-off between tasks is a wakeup, often on another thread,
//! and AppendEntries sits on every write's critical path. A unary tonic call goes caller →
//! channel buffer task → HTTP/2 connection task → socket, and on the far side connection task
//! → stream task → handler, with HTTP/2 headers both ways. On a link the caller writes to the
//! socket itself and the far side's connection task calls Raft directly.
//!
//! A link shares the peer port with gRPC: the client offers only the ALPN protocol
//! [`LINK_ALPN`], and the server hands such connections to [`serve`]. A server that does not
//! offer it (an older hanode) is reached over gRPC instead.
//!
//! Wire format: a message is a 4-byte big-endian length and then that many bytes. A request
//! is one [`Kind`] byte and a postcard payload; its reply is a postcard payload. One request
//! is outstanding per connection at a time, so replies need no ids; concurrent callers take
//! separate connections from a small pool.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::ServerName;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::network::{MAX_PEER_MESSAGE_BYTES, PeerTls};

/// The ALPN protocol that selects a Raft link on the peer port.
pub const LINK_ALPN: &[u8] = b"hanode-raft/1";

/// How long a TCP connect to a peer may take before the peer counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Idle connections kept per peer: replication, ReadIndex rounds and heartbeats overlap.
const IDLE_PER_PEER: usize = 4;

/// A server closes a link that brought no request for this long, so connections from a
/// member that vanished (power cut, removed) do not pile up.
const SERVER_IDLE_LIMIT: Duration = Duration::from_secs(60);

/// A client does not reuse a link idle for this long: the server may be closing it.
const CLIENT_IDLE_LIMIT: Duration = Duration::from_secs(30);

/// How long a connection whose caller gave up waits for the late reply before it is closed.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// How long to keep using gRPC for a peer that refused the link before asking again (it may
/// have been upgraded meanwhile).
const RETRY_UNSUPPORTED_AFTER: Duration = Duration::from_secs(60);

/// What a link request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// openraft `AppendEntriesRequest`; the reply is `Result<AppendEntriesResponse, RaftError>`.
    AppendEntries = 1,
}

impl Kind {
    pub(crate) fn from_byte(byte: u8) -> Option<Kind> {
        match byte {
            1 => Some(Kind::AppendEntries),
            _ => None,
        }
    }
}

/// Why a link request failed, in the terms the caller acts on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    /// The peer does not speak the link: use gRPC.
    #[error("peer does not offer the Raft link")]
    Unsupported,
    /// No connection could be made: the request was never sent.
    #[error("{0}")]
    Connect(String),
    /// The connection broke or the peer misbehaved after the request was sent: it may or may
    /// not have been processed.
    #[error("{0}")]
    Exchange(String),
}

/// A request as it goes on the wire: length, kind, payload.
pub(crate) fn request_frame<T: Serialize>(kind: Kind, body: &T) -> Result<Vec<u8>, String> {
    frame(vec![0, 0, 0, 0, kind as u8], body)
}

/// A reply as it goes on the wire: length, payload.
pub(crate) fn reply_frame<T: Serialize>(body: &T) -> Result<Vec<u8>, String> {
    frame(vec![0, 0, 0, 0], body)
}

fn frame<T: Serialize>(head: Vec<u8>, body: &T) -> Result<Vec<u8>, String> {
    let mut bytes = postcard::to_extend(body, head).map_err(|e| e.to_string())?;
    let len = bytes.len() - 4;
    if len > MAX_PEER_MESSAGE_BYTES {
        return Err(format!(
            "a {len}-byte peer message is over the {MAX_PEER_MESSAGE_BYTES}-byte limit"
        ));
    }
    let len = u32::try_from(len).map_err(|e| e.to_string())?;
    bytes[..4].copy_from_slice(&len.to_be_bytes());
    Ok(bytes)
}

/// Reads one message; `None` when the other side closed the connection between messages.
async fn read_message<R: AsyncRead + Unpin>(io: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; 4];
    let first = io.read(&mut header).await?;
    if first == 0 {
        return Ok(None);
    }
    io.read_exact(&mut header[first..]).await?;
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_PEER_MESSAGE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a {len}-byte peer message is over the {MAX_PEER_MESSAGE_BYTES}-byte limit"),
        ));
    }
    let mut body = vec![0; len];
    io.read_exact(&mut body).await?;
    Ok(Some(body))
}

/// Answers link requests on one accepted connection until the peer closes it, a message is
/// malformed, no request came for [`SERVER_IDLE_LIMIT`], or `stop` completes. `answer` turns a request (kind byte and payload) into a
/// whole reply frame, or an error that closes the connection.
pub(crate) async fn serve<S, A, F>(mut io: S, answer: A, stop: impl Future<Output = ()>)
where
    S: AsyncRead + AsyncWrite + Unpin,
    A: Fn(Vec<u8>) -> F,
    F: Future<Output = Result<Vec<u8>, String>>,
{
    let mut stop = std::pin::pin!(stop);
    loop {
        let step = async {
            let request = match tokio::time::timeout(SERVER_IDLE_LIMIT, read_message(&mut io)).await
            {
                Ok(Ok(Some(request))) => request,
                Ok(Ok(None)) | Err(_) => return false,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "Raft link closed");
                    return false;
                }
            };
            let reply = match answer(request).await {
                Ok(reply) => reply,
                Err(e) => {
                    tracing::warn!(error = %e, "closing a Raft link after a malformed request");
                    return false;
                }
            };
            let written = async {
                io.write_all(&reply).await?;
                io.flush().await
            };
            if let Err(e) = written.await {
                tracing::debug!(error = %e, "Raft link closed while replying");
                return false;
            }
            true
        };
        let go_on = tokio::select! {
            biased;
            _ = &mut stop => false,
            go_on = step => go_on,
        };
        if !go_on {
            return;
        }
    }
}

/// One client connection.
struct Link {
    stream: TlsStream<TcpStream>,
    /// When the last exchange ended.
    used: Instant,
}

/// How an exchange on a connection failed.
struct ExchangeFailure {
    /// The connection ended before any reply: it was closed while pooled (a restarted peer),
    /// so the request may go again on a new one.
    stale: bool,
    reason: String,
}

/// A connection carrying one request. If the caller gives up after the request went out
/// (its deadline passed while the peer was slow), dropping this drains that one reply in the
/// background and pools the connection again, so a slow answer does not cost a new TLS
/// handshake on the next call.
struct InFlight {
    links: Arc<Links>,
    addr: String,
    link: Option<Link>,
    /// The whole request is written and its reply not yet read.
    awaiting_reply: bool,
}

impl InFlight {
    async fn exchange(&mut self, frame: &[u8]) -> Result<Vec<u8>, ExchangeFailure> {
        let failure = |stale: bool, reason: String| ExchangeFailure { stale, reason };
        let Some(link) = self.link.as_mut() else {
            return Err(failure(false, "the connection is gone".into()));
        };
        link.stream
            .write_all(frame)
            .await
            .map_err(|e| failure(true, format!("cannot send: {e}")))?;
        link.stream
            .flush()
            .await
            .map_err(|e| failure(true, format!("cannot send: {e}")))?;
        self.awaiting_reply = true;
        let reply = read_message(&mut link.stream).await;
        self.awaiting_reply = false;
        match reply {
            Ok(Some(reply)) => {
                if let Some(mut link) = self.link.take() {
                    link.used = Instant::now();
                    self.links.put(&self.addr, link);
                }
                Ok(reply)
            }
            Ok(None) => Err(failure(true, "the peer closed the connection".into())),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => Err(failure(false, e.to_string())),
            Err(e) => Err(failure(true, format!("no reply: {e}"))),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let Some(mut link) = self.link.take() else {
            return;
        };
        // A half-written request or a broken connection cannot be reused.
        if !self.awaiting_reply {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let links = self.links.clone();
        let addr = std::mem::take(&mut self.addr);
        runtime.spawn(async move {
            let drained = tokio::time::timeout(DRAIN_LIMIT, read_message(&mut link.stream)).await;
            if let Ok(Ok(Some(_))) = drained {
                link.used = Instant::now();
                links.put(&addr, link);
            }
        });
    }
}

/// Client side: connections to every peer, made on demand and pooled.
pub(crate) struct Links {
    connector: TlsConnector,
    idle: Mutex<HashMap<String, Vec<Link>>>,
    /// Peers that refused the link, and when.
    unsupported: Mutex<HashMap<String, Instant>>,
}

impl Links {
    /// Links authenticated with this member's peer certificate, trusting the cluster CA.
    pub(crate) fn new(tls: &PeerTls) -> Result<Arc<Links>, hanode_pki::PkiError> {
        let config =
            hanode_pki::tls::client_config(&tls.ca_pem, Some(&tls.identity), &[LINK_ALPN])?;
        Ok(Arc::new(Links {
            connector: TlsConnector::from(config),
            idle: Mutex::new(HashMap::new()),
            unsupported: Mutex::new(HashMap::new()),
        }))
    }

    /// Sends one request frame to the peer at `addr` and returns its reply, within `limit`.
    /// AppendEntries is idempotent, so a request that fails on a pooled connection the peer
    /// closed meanwhile (a restart) is sent once more on a new connection.
    pub(crate) async fn request(
        self: &Arc<Self>,
        addr: &str,
        frame: &[u8],
        limit: Duration,
    ) -> Result<Vec<u8>, LinkError> {
        let deadline = Instant::now() + limit;
        if self.refused_recently(addr) {
            return Err(LinkError::Unsupported);
        }
        let mut retried = false;
        if let Some(link) = self.take(addr) {
            match self.exchange(addr, link, frame, deadline, limit).await {
                Ok(reply) => return Ok(reply),
                Err(failure) if !failure.stale => return Err(LinkError::Exchange(failure.reason)),
                Err(failure) => {
                    tracing::debug!(addr, reason = %failure.reason, "pooled Raft link was stale");
                    retried = true;
                }
            }
        }
        let link = match self.connect(addr, deadline).await {
            Ok(link) => link,
            // The stale connection may have delivered the request before it broke.
            Err(LinkError::Connect(reason)) if retried => return Err(LinkError::Exchange(reason)),
            Err(e) => return Err(e),
        };
        self.exchange(addr, link, frame, deadline, limit)
            .await
            .map_err(|failure| LinkError::Exchange(failure.reason))
    }

    async fn exchange(
        self: &Arc<Self>,
        addr: &str,
        link: Link,
        frame: &[u8],
        deadline: Instant,
        limit: Duration,
    ) -> Result<Vec<u8>, ExchangeFailure> {
        let mut in_flight = InFlight {
            links: self.clone(),
            addr: addr.to_string(),
            link: Some(link),
            awaiting_reply: false,
        };
        // A stopped peer never answers: the deadline is the caller's to keep.
        tokio::time::timeout_at(deadline, in_flight.exchange(frame))
            .await
            .unwrap_or_else(|_| {
                Err(ExchangeFailure {
                    stale: false,
                    reason: format!("no answer within {limit:?}"),
                })
            })
    }

    /// Connections waiting in the pool, to every peer.
    #[cfg(test)]
    pub(crate) fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.values().map(Vec::len).sum()
    }

    fn refused_recently(&self, addr: &str) -> bool {
        let mut unsupported = self.unsupported.lock().unwrap_or_else(|p| p.into_inner());
        match unsupported.get(addr) {
            Some(at) if at.elapsed() < RETRY_UNSUPPORTED_AFTER => true,
            Some(_) => {
                unsupported.remove(addr);
                false
            }
            None => false,
        }
    }

    fn take(&self, addr: &str) -> Option<Link> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let links = idle.get_mut(addr)?;
        links.retain(|link| link.used.elapsed() < CLIENT_IDLE_LIMIT);
        links.pop()
    }

    fn put(&self, addr: &str, link: Link) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        // Also forget connections nobody will reuse (to members removed or moved).
        idle.retain(|_, links| {
            links.retain(|link| link.used.elapsed() < CLIENT_IDLE_LIMIT);
            !links.is_empty()
        });
        let links = idle.entry(addr.to_string()).or_default();
        if links.len() < IDLE_PER_PEER {
            links.push(link);
        }
    }

    /// A new connection, TCP and TLS, within [`CONNECT_TIMEOUT`] and the caller's deadline.
    /// Nothing is sent on failure, so every failure is [`LinkError::Connect`].
    async fn connect(&self, addr: &str, deadline: Instant) -> Result<Link, LinkError> {
        let limit = deadline.min(Instant::now() + CONNECT_TIMEOUT);
        tokio::time::timeout_at(limit, self.handshake(addr))
            .await
            .unwrap_or_else(|_| {
                Err(LinkError::Connect(format!(
                    "no TLS connection to {addr} in time (a stopped or overloaded peer)"
                )))
            })
    }

    async fn handshake(&self, addr: &str) -> Result<Link, LinkError> {
        let name = server_name(addr).map_err(LinkError::Connect)?;
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| LinkError::Connect(format!("cannot connect to {addr}: {e}")))?;
        tcp.set_nodelay(true)
            .map_err(|e| LinkError::Connect(format!("cannot set TCP_NODELAY: {e}")))?;
        let stream = match self.connector.connect(name, tcp).await {
            Ok(stream) => stream,
            Err(e) if refuses_alpn(&e) => return Err(self.refused(addr)),
            Err(e) => {
                return Err(LinkError::Connect(format!(
                    "TLS handshake with {addr} failed: {e}"
                )));
            }
        };
        if stream.get_ref().1.alpn_protocol() != Some(LINK_ALPN) {
            return Err(self.refused(addr));
        }
        Ok(Link {
            stream,
            used: Instant::now(),
        })
    }

    fn refused(&self, addr: &str) -> LinkError {
        tracing::info!(addr, "peer does not offer the Raft link; using gRPC for it");
        self.unsupported
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(addr.to_string(), Instant::now());
        LinkError::Unsupported
    }
}

/// Whether a handshake failed because the server offers none of our ALPN protocols.
fn refuses_alpn(error: &io::Error) -> bool {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|e| {
            matches!(
                e,
                rustls::Error::AlertReceived(rustls::AlertDescription::NoApplicationProtocol)
            )
        })
}

/// The name the peer's certificate must carry: its IP address, or its host name.
fn server_name(addr: &str) -> Result<ServerName<'static>, String> {
    if let Ok(socket) = addr.parse::<SocketAddr>() {
        return Ok(ServerName::IpAddress(socket.ip().into()));
    }
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    ServerName::try_from(host.to_string()).map_err(|e| format!("bad peer address {addr}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_eof_between_messages_is_a_clean_close() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let frame = request_frame(Kind::AppendEntries, &("hello", 7u64)).unwrap();
        a.write_all(&frame).await.unwrap();
        drop(a);
        let message = read_message(&mut b).await.unwrap().unwrap();
        assert_eq!(Kind::from_byte(message[0]), Some(Kind::AppendEntries));
        let body: (String, u64) = postcard::from_bytes(&message[1..]).unwrap();
        assert_eq!(body, ("hello".to_string(), 7));
        assert!(read_message(&mut b).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_oversized_length_is_refused_before_allocating() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let len = u32::try_from(MAX_PEER_MESSAGE_BYTES + 1).unwrap();
        a.write_all(&len.to_be_bytes()).await.unwrap();
        let err = read_message(&mut b).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("over the"), "{err}");
    }

    #[tokio::test]
    async fn a_truncated_message_is_an_error_not_a_close() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&[0, 0, 0, 9, 1, 2]).await.unwrap();
        drop(a);
        let err = read_message(&mut b).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn serve_answers_in_order_and_closes_on_a_malformed_request() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let served = tokio::spawn(serve(
            server,
            |request: Vec<u8>| async move {
                match Kind::from_byte(request[0]) {
                    Some(Kind::AppendEntries) => {
                        let n: u64 =
                            postcard::from_bytes(&request[1..]).map_err(|e| e.to_string())?;
                        reply_frame(&(n * 2))
                    }
                    None => Err(format!("unknown kind {}", request[0])),
                }
            },
            std::future::pending(),
        ));
        for n in [1u64, 2, 3] {
            client
                .write_all(&request_frame(Kind::AppendEntries, &n).unwrap())
                .await
                .unwrap();
        }
        for n in [1u64, 2, 3] {
            let reply = read_message(&mut client).await.unwrap().unwrap();
            assert_eq!(postcard::from_bytes::<u64>(&reply).unwrap(), n * 2);
        }
        client.write_all(&[0, 0, 0, 1, 99]).await.unwrap();
        assert!(read_message(&mut client).await.unwrap().is_none());
        served.await.unwrap();
    }

    /// A link nobody uses is closed by the server, so vanished clients do not leak tasks.
    #[tokio::test(start_paused = true)]
    async fn serve_closes_an_idle_link() {
        let (_client, server) = tokio::io::duplex(64);
        let served = tokio::spawn(serve(
            server,
            |_request: Vec<u8>| async { Err::<Vec<u8>, String>("unused".into()) },
            std::future::pending(),
        ));
        tokio::task::yield_now().await; // the server starts waiting for a request
        tokio::time::advance(SERVER_IDLE_LIMIT - Duration::from_secs(1)).await;
        tokio::task::yield_now().await;
        assert!(!served.is_finished());
        tokio::time::advance(Duration::from_secs(2)).await;
        tokio::time::timeout(Duration::from_secs(1), served)
            .await
            .expect("an idle link is closed")
            .unwrap();
    }

    #[test]
    fn server_names_come_from_ip_or_host() {
        assert!(matches!(
            server_name("127.0.0.2:2380").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]:2380").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("node-a.example:2380").unwrap(),
            ServerName::DnsName(_)
        ));
    }
}
