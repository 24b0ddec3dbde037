//! The peer transport: tonic gRPC clients over mTLS, one lazily connected channel per member,
//! with fault injection in front of every call.

use std::collections::HashMap;
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
    ) -> PeerNetwork {
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
        PeerNetwork {
            self_id,
            tls,
            faults,
            channels: Arc::new(Mutex::new(HashMap::new())),
            durability,
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

    /// One call to `target`: fault check, encode, send, decode.
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        target: NodeId,
        member: &Member,
        method: Method,
        request: &Req,
        timeout: Option<Duration>,
    ) -> Result<Resp, PeerError> {
        match self.faults.check(self.self_id, target) {
            Verdict::Drop => {
                return Err(PeerError::Unreachable(
                    target,
                    "dropped by fault injection".into(),
                ));
            }
            Verdict::Deliver(Some(delay)) => tokio::time::sleep(delay).await,
            Verdict::Deliver(None) => {}
            Verdict::Hang => {
                // Like a stopped process: no answer until resumed, or the caller gives up.
                let resumed = async {
                    while self.faults.is_paused(self.self_id, target) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                };
                let limit = timeout.unwrap_or(Duration::from_secs(3600));
                if tokio::time::timeout(limit, resumed).await.is_err() {
                    return Err(PeerError::Failed(
                        target,
                        "timed out: the peer is paused".into(),
                    ));
                }
            }
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
