//! The peer transport: tonic gRPC clients over mTLS, one lazily connected channel per member,
//! plus Raft links (see [`crate::link`]) for AppendEntries, with fault injection in front of
//! every call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use hanode_pki::CertKey;
use hanode_proto::peer::Blob;
use hanode_proto::peer::peer_client::PeerClient;
use hanode_types::{Member, NodeId};

use crate::durability::Durability;
use crate::faults::{Faults, Verdict};
use crate::link::{Kind, LinkError, Links};
use crate::types::{ForwardRequest, ForwardResponse, TypeConfig};

/// Largest peer message (a batch of entries or a snapshot chunk).
pub const MAX_PEER_MESSAGE_BYTES: usize = 512 << 20;

/// How the transport authenticates: the cluster CA and this member's peer certificate.
#[derive(Clone, Debug)]
pub struct PeerTls {
    /// Cluster CA certificate, PEM.
    pub ca_pem: String,
    /// This member's peer certificate and key.
    pub identity: CertKey,
}

/// Why a peer call failed, in the terms callers act on.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The request never reached the peer (no connection, or dropped by fault injection):
    /// safe to retry anywhere.
    #[error("peer {0} unreachable: {1}")]
    Unreachable(NodeId, String),
    /// The request may or may not have been processed.
    #[error("peer {0} call failed: {1}")]
    Failed(NodeId, String),
}

/// Channels to every member, shared by Raft replication and request forwarding.
#[derive(Clone)]
pub struct PeerNetwork {
    self_id: NodeId,
    tls: Option<Arc<ClientTlsConfig>>,
    faults: Arc<Faults>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// Raft links to every member (none without TLS: then AppendEntries goes over gRPC).
    links: Option<Arc<Links>>,
    /// AppendEntries sent, by transport.
    traffic: Arc<Traffic>,
    /// How far this member's log is on disk: AppendEntries never tells followers more.
    durability: Arc<Durability>,
}

impl PeerNetwork {
    /// A transport for member `self_id`; `tls` None means plain HTTP/2 (only for tests of
    /// this crate).
    pub fn new(
        self_id: NodeId,
        tls: Option<&PeerTls>,
        faults: Arc<Faults>,
        durability: Arc<Durability>,
    ) -> Result<PeerNetwork, hanode_pki::PkiError> {
        let links = tls.map(Links::new).transpose()?;
        let tls = tls.map(|tls| {
            Arc::new(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(&tls.ca_pem))
                    .identity(Identity::from_pem(
                        &tls.identity.cert_pem,
                        &tls.identity.key_pem,
                    )),
            )
        });
        Ok(PeerNetwork {
            self_id,
            tls,
            faults,
            channels: Arc::new(Mutex::new(HashMap::new())),
            links,
            traffic: Arc::default(),
            durability,
        })
    }

    /// How many AppendEntries this member sent over links and over gRPC.
    pub fn traffic(&self) -> PeerTraffic {
        PeerTraffic {
            append_entries_link: self.traffic.link.load(Ordering::Relaxed),
            append_entries_grpc: self.traffic.grpc.load(Ordering::Relaxed),
        }
    }

    /// The faults this transport obeys.
    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }

    fn channel(&self, member: &Member) -> Result<Channel, String> {
        let addr = member.peer_addr().to_string();
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(channel) = channels.get(&addr) {
            return Ok(channel.clone());
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|e| format!("bad peer address {addr}: {e}"))?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5));
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config((**tls).clone())
                .map_err(|e| e.to_string())?;
        }
        let channel = endpoint.connect_lazy();
        channels.insert(addr, channel.clone());
        Ok(channel)
    }

    /// Applies injected faults to a call to `target`: drop it, delay it, or hold it while
    /// the path is paused (like a stopped process), at most `timeout`.
    async fn admit(&self, target: NodeId, timeout: Option<Duration>) -> Result<(), PeerError> {
        match self.faults.check(self.self_id, target) {
            Verdict::Drop => Err(PeerError::Unreachable(
                target,
                "dropped by fault injection".into(),
            )),
            Verdict::Deliver(Some(delay)) => {
                tokio::time::sleep(delay).await;
                Ok(())
            }
            Verdict::Deliver(None) => Ok(()),
            Verdict::Hang => {
                let resumed = async {
                    while self.faults.is_paused(self.self_id, target) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                };
                let limit = timeout.unwrap_or(Duration::from_secs(3600));
                tokio::time::timeout(limit, resumed)
                    .await
                    .map_err(|_| PeerError::Failed(target, "timed out: the peer is paused".into()))
            }
        }
    }

    /// One call to `target`: fault check, encode, send, decode. AppendEntries goes over a
    /// Raft link when the peer offers one, everything else over gRPC.
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        target: NodeId,
        member: &Member,
        method: Method,
        request: &Req,
        timeout: Option<Duration>,
    ) -> Result<Resp, PeerError> {
        self.admit(target, timeout).await?;
        if let Method::AppendEntries = method {
            if let Some(links) = &self.links
                && let Some(result) = self
                    .call_link(links, target, member, request, timeout)
                    .await
            {
                self.traffic.link.fetch_add(1, Ordering::Relaxed);
                return result;
            }
            self.traffic.grpc.fetch_add(1, Ordering::Relaxed);
        }
        let channel = self
            .channel(member)
            .map_err(|e| PeerError::Unreachable(target, e))?;
        let mut client = PeerClient::new(channel)
            .max_decoding_message_size(MAX_PEER_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_PEER_MESSAGE_BYTES);
        let data =
            postcard::to_stdvec(request).map_err(|e| PeerError::Failed(target, e.to_string()))?;
        let mut req = tonic::Request::new(Blob { data });
        if let Some(timeout) = timeout {
            req.set_timeout(timeout);
        }
        let call = async {
            match method {
                Method::AppendEntries => client.append_entries(req).await,
                Method::Vote => client.vote(req).await,
                Method::InstallSnapshot => client.install_snapshot(req).await,
                Method::Forward => client.forward(req).await,
            }
        };
        // The grpc-timeout header only tells the server; a peer that stopped (SIGSTOP, a dead
        // link) never answers, so the caller enforces the deadline itself.
        let result = match timeout {
            Some(limit) => tokio::time::timeout(limit, call)
                .await
                .map_err(|_| PeerError::Failed(target, format!("no answer within {limit:?}")))?,
            None => call.await,
        };
        let blob = result
            .map_err(|status| classify(target, status))?
            .into_inner();
        postcard::from_bytes(&blob.data)
            .map_err(|e| PeerError::Failed(target, format!("bad reply: {e}")))
    }

    /// One AppendEntries over a Raft link; `None` if the peer does not offer links.
    async fn call_link<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        links: &Arc<Links>,
        target: NodeId,
        member: &Member,
        request: &Req,
        timeout: Option<Duration>,
    ) -> Option<Result<Resp, PeerError>> {
        let frame = match crate::link::request_frame(Kind::AppendEntries, request) {
            Ok(frame) => frame,
            Err(e) => return Some(Err(PeerError::Failed(target, e))),
        };
        let limit = timeout.unwrap_or(Duration::from_secs(3600));
        let reply = links.request(member.peer_addr(), &frame, limit).await;
        match reply {
            Ok(bytes) => Some(
                postcard::from_bytes(&bytes)
                    .map_err(|e| PeerError::Failed(target, format!("bad reply: {e}"))),
            ),
            Err(LinkError::Unsupported) => None,
            Err(LinkError::Connect(e)) => Some(Err(PeerError::Unreachable(target, e))),
            Err(LinkError::Exchange(e)) => Some(Err(PeerError::Failed(target, e))),
        }
    }

    /// Hands a request to the leader `target`.
    pub async fn forward(
        &self,
        target: NodeId,
        member: &Member,
        request: &ForwardRequest,
        timeout: Duration,
    ) -> Result<Result<ForwardResponse, hanode_kv::KvError>, PeerError> {
        self.call(target, member, Method::Forward, request, Some(timeout))
            .await
    }
}

/// Counts of AppendEntries calls by transport (failed ones included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerTraffic {
    /// Sent over a Raft link.
    pub append_entries_link: u64,
    /// Sent over gRPC (no TLS, or a peer without links).
    pub append_entries_grpc: u64,
}

#[derive(Default)]
struct Traffic {
    link: AtomicU64,
    grpc: AtomicU64,
}

#[derive(Clone, Copy)]
enum Method {
    AppendEntries,
    Vote,
    InstallSnapshot,
    Forward,
}

fn classify(target: NodeId, status: tonic::Status) -> PeerError {
    // A transport error before the request was written comes back as Unavailable with a
    // connection error as its source: the peer never saw it.
    let text = status.message().to_string();
    let not_sent = status.code() == tonic::Code::Unavailable
        && (text.contains("connect") || text.contains("dns") || text.contains("refused"));
    if not_sent {
        PeerError::Unreachable(target, text)
    } else {
        PeerError::Failed(target, format!("{:?}: {text}", status.code()))
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerConnection {
        PeerConnection {
            network: self.clone(),
            target,
            member: node.clone(),
        }
    }
}

/// Raft's connection to one member.
pub struct PeerConnection {
    network: PeerNetwork,
    target: NodeId,
    member: Member,
}

impl PeerConnection {
    async fn raft_call<Req, Resp, E>(
        &self,
        method: Method,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, Member, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let reply: Result<Resp, RaftError<NodeId, E>> = self
            .network
            .call(
                self.target,
                &self.member,
                method,
                request,
                Some(option.hard_ttl()),
            )
            .await
            .map_err(|e| match e {
                PeerError::Unreachable(..) => RPCError::Unreachable(Unreachable::new(&e)),
                PeerError::Failed(..) => RPCError::Network(NetworkError::new(&e)),
            })?;
        reply.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        // A follower must not apply what the leader could still lose to a power cut.
        rpc.leader_commit = self.network.durability.clamp_commit(rpc.leader_commit);
        self.raft_call(Method::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Member, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.raft_call(Method::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        self.raft_call(Method::Vote, &rpc, &option).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::{Instant, SystemTime};

    use hanode_pki::tls::{ClientAuth, server_config};
    use hanode_pki::{ClusterCa, LeafKind, LeafRequest};
    use openraft::Vote;
    use tokio::net::TcpListener;
    use tokio::sync::Notify;
    use tokio_rustls::TlsAcceptor;

    use super::*;
    use crate::link::{self, LINK_ALPN};

    fn tls(ca: &ClusterCa) -> PeerTls {
        let identity = ca
            .issue(
                &LeafRequest {
                    common_name: "hanode-peer:test".into(),
                    organizations: vec!["hanode:peers".into()],
                    sans: vec!["127.0.0.1".into()],
                    kind: LeafKind::Peer,
                },
                SystemTime::now(),
            )
            .unwrap();
        PeerTls {
            ca_pem: ca.cert_pem().to_string(),
            identity,
        }
    }

    /// When a fake peer answers.
    #[derive(Clone, Copy)]
    enum Answer {
        Now,
        After(Duration),
        Never,
    }

    /// A peer port that answers every AppendEntries with success, when `answer` says;
    /// `close` drops every open connection.
    struct FakePeer {
        member: Member,
        accepted: Arc<AtomicUsize>,
        requests: Arc<AtomicUsize>,
        close: Arc<Notify>,
    }

    async fn fake_peer(tls: &PeerTls, alpn: &'static [&'static [u8]], when: Answer) -> FakePeer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let member = Member {
            peer_url: format!("https://{}", listener.local_addr().unwrap()),
            ..Member::default()
        };
        let config = server_config(&tls.identity, ClientAuth::Required(&tls.ca_pem), alpn).unwrap();
        let acceptor = TlsAcceptor::from(config);
        let peer = FakePeer {
            member,
            accepted: Arc::default(),
            requests: Arc::default(),
            close: Arc::default(),
        };
        let (accepted, requests, close) = (
            peer.accepted.clone(),
            peer.requests.clone(),
            peer.close.clone(),
        );
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let Ok(stream) = acceptor.accept(tcp).await else {
                    continue;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                let (requests, close) = (requests.clone(), close.clone());
                tokio::spawn(async move {
                    let answer = |request: Vec<u8>| {
                        let requests = requests.clone();
                        async move {
                            requests.fetch_add(1, Ordering::SeqCst);
                            match when {
                                Answer::Now => {}
                                Answer::After(delay) => tokio::time::sleep(delay).await,
                                Answer::Never => std::future::pending::<()>().await,
                            }
                            let _: AppendEntriesRequest<TypeConfig> =
                                postcard::from_bytes(&request[1..]).map_err(|e| e.to_string())?;
                            let reply: Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>> =
                                Ok(AppendEntriesResponse::Success);
                            link::reply_frame(&reply)
                        }
                    };
                    link::serve(stream, answer, close.notified()).await;
                });
            }
        });
        peer
    }

    fn heartbeat() -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(1, 1),
            prev_log_id: None,
            entries: vec![],
            leader_commit: None,
        }
    }

    async fn connection(tls: &PeerTls, faults: Arc<Faults>, peer: &FakePeer) -> PeerConnection {
        let mut network = PeerNetwork::new(1, Some(tls), faults, Durability::new(None)).unwrap();
        network.new_client(2, &peer.member).await
    }

    /// AppendEntries travels over one pooled Raft link, survives the peer closing it, and
    /// obeys injected faults before anything is sent.
    #[tokio::test]
    async fn append_entries_uses_a_pooled_link_that_survives_a_peer_restart() {
        let ca = ClusterCa::generate(SystemTime::now()).unwrap();
        let tls = tls(&ca);
        let peer = fake_peer(&tls, &[b"h2", LINK_ALPN], Answer::Now).await;
        let faults = Arc::new(Faults::new());
        let mut conn = connection(&tls, faults.clone(), &peer).await;
        let option = RPCOption::new(Duration::from_secs(5));

        for _ in 0..5 {
            let reply = conn.append_entries(heartbeat(), option.clone()).await;
            assert!(
                matches!(reply, Ok(AppendEntriesResponse::Success)),
                "{reply:?}"
            );
        }
        assert_eq!(peer.requests.load(Ordering::SeqCst), 5);
        assert_eq!(
            peer.accepted.load(Ordering::SeqCst),
            1,
            "one connection, reused"
        );

        // The peer drops its connections (a restart): the next call reconnects by itself.
        peer.close.notify_waiters();
        let reply = conn.append_entries(heartbeat(), option.clone()).await;
        assert!(
            matches!(reply, Ok(AppendEntriesResponse::Success)),
            "{reply:?}"
        );
        assert_eq!(peer.accepted.load(Ordering::SeqCst), 2);

        faults.block(1, 2);
        let reply = conn.append_entries(heartbeat(), option.clone()).await;
        assert!(matches!(reply, Err(RPCError::Unreachable(_))), "{reply:?}");
        assert_eq!(
            peer.requests.load(Ordering::SeqCst),
            6,
            "a dropped call is never sent"
        );
    }

    /// A peer that takes a request and never answers (a stopped process) costs the caller its
    /// deadline, not more, and the call counts as possibly delivered.
    #[tokio::test]
    async fn a_silent_peer_fails_the_call_at_its_deadline() {
        let ca = ClusterCa::generate(SystemTime::now()).unwrap();
        let tls = tls(&ca);
        let peer = fake_peer(&tls, &[b"h2", LINK_ALPN], Answer::Never).await;
        let mut conn = connection(&tls, Arc::new(Faults::new()), &peer).await;
        let started = Instant::now();
        let reply = conn
            .append_entries(heartbeat(), RPCOption::new(Duration::from_secs(2)))
            .await;
        assert!(matches!(reply, Err(RPCError::Network(_))), "{reply:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(peer.requests.load(Ordering::SeqCst), 1);
    }

    /// One AppendEntries with a generous deadline, which must succeed.
    async fn assert_succeeds(conn: &mut PeerConnection) {
        let reply = conn
            .append_entries(heartbeat(), RPCOption::new(Duration::from_secs(10)))
            .await;
        assert!(
            matches!(reply, Ok(AppendEntriesResponse::Success)),
            "{reply:?}"
        );
    }

    /// A reply that comes after the caller gave up is read in the background, and the
    /// connection serves the next call: a slow follower costs no new TLS handshake.
    #[tokio::test]
    async fn a_late_reply_is_drained_and_its_connection_reused() {
        let ca = ClusterCa::generate(SystemTime::now()).unwrap();
        let tls = tls(&ca);
        let peer = fake_peer(
            &tls,
            &[b"h2", LINK_ALPN],
            Answer::After(Duration::from_millis(400)),
        )
        .await;
        let mut conn = connection(&tls, Arc::new(Faults::new()), &peer).await;
        // Connect and warm up within a generous deadline.
        assert_succeeds(&mut conn).await;
        let reply = conn
            .append_entries(heartbeat(), RPCOption::new(Duration::from_millis(100)))
            .await;
        assert!(matches!(reply, Err(RPCError::Network(_))), "{reply:?}");
        // The late reply arrives and is drained; only then is the connection pooled again.
        let drained = async {
            while conn.network.links.as_ref().unwrap().idle_count() == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), drained)
            .await
            .expect("the drained connection returns to the pool");
        assert_succeeds(&mut conn).await;
        assert_eq!(peer.accepted.load(Ordering::SeqCst), 1, "no new handshake");
        assert_eq!(peer.requests.load(Ordering::SeqCst), 3);
    }

    /// A peer port without the link protocol (an older hanode) is reported as such, so the
    /// caller uses gRPC; an unreachable port is reported as unreachable.
    #[tokio::test]
    async fn links_tell_an_older_peer_from_an_unreachable_one() {
        let ca = ClusterCa::generate(SystemTime::now()).unwrap();
        let tls = tls(&ca);
        let links = Links::new(&tls).unwrap();
        let frame = link::request_frame(Kind::AppendEntries, &heartbeat()).unwrap();

        let old = fake_peer(&tls, &[b"h2"], Answer::Now).await;
        let reply = links
            .request(old.member.peer_addr(), &frame, Duration::from_secs(5))
            .await;
        assert!(matches!(reply, Err(LinkError::Unsupported)), "{reply:?}");
        assert_eq!(old.requests.load(Ordering::SeqCst), 0);

        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap().to_string();
        drop(closed);
        let reply = links.request(&addr, &frame, Duration::from_secs(5)).await;
        assert!(matches!(reply, Err(LinkError::Connect(_))), "{reply:?}");
    }
}
