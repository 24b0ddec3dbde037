//! The server side of the peer port: Raft RPCs (over gRPC or a Raft link) into openraft,
//! forwarded requests into the leader's handlers.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tonic::{Request, Response, Status};

use hanode_proto::peer::Blob;
use hanode_proto::peer::peer_server::{Peer, PeerServer};

use hanode_types::NodeId;
use openraft::error::RaftError;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse};

use crate::link::{self, Kind};
use crate::network::MAX_PEER_MESSAGE_BYTES;
use crate::node::Core;
use crate::types::{ForwardRequest, TypeConfig};

/// Answers peers on behalf of one member.
pub struct PeerService {
    core: Arc<Core>,
}

impl PeerService {
    pub(crate) fn server(core: Arc<Core>) -> PeerServer<PeerService> {
        PeerServer::new(PeerService { core })
            .max_decoding_message_size(MAX_PEER_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_PEER_MESSAGE_BYTES)
    }
}

fn decode<T: DeserializeOwned>(request: Request<Blob>) -> Result<T, Status> {
    postcard::from_bytes(&request.into_inner().data)
        .map_err(|e| Status::invalid_argument(format!("malformed peer message: {e}")))
}

fn encode<T: Serialize>(reply: &T) -> Result<Response<Blob>, Status> {
    postcard::to_stdvec(reply)
        .map(|data| Response::new(Blob { data }))
        .map_err(|e| Status::internal(format!("cannot encode peer reply: {e}")))
}

async fn append_entries(
    core: &Core,
    rpc: AppendEntriesRequest<TypeConfig>,
) -> Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
    core.note_leader_contact(rpc.vote.leader_id().voted_for());
    core.raft.append_entries(rpc).await
}

/// Answers one Raft link request (a kind byte and a postcard payload) with a whole reply
/// frame; an error closes the link.
pub(crate) async fn answer_link(core: &Core, request: Vec<u8>) -> Result<Vec<u8>, String> {
    let (&kind, body) = request
        .split_first()
        .ok_or_else(|| "empty Raft link request".to_string())?;
    match Kind::from_byte(kind) {
        Some(Kind::AppendEntries) => {
            let rpc = postcard::from_bytes(body)
                .map_err(|e| format!("malformed AppendEntries on a Raft link: {e}"))?;
            link::reply_frame(&append_entries(core, rpc).await)
        }
        None => Err(format!("unknown Raft link request kind {kind}")),
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn append_entries(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        encode(&append_entries(&self.core, decode(request)?).await)
    }

    async fn vote(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let rpc: openraft::raft::VoteRequest<hanode_types::NodeId> = decode(request)?;
        self.core.note_vote_request(rpc.vote.leader_id().term);
        encode(&self.core.raft.vote(rpc).await)
    }

    async fn install_snapshot(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let rpc = decode(request)?;
        encode(&self.core.raft.install_snapshot(rpc).await)
    }

    async fn forward(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let forwarded: ForwardRequest = decode(request)?;
        let deadline = Instant::now() + self.core.config.request_timeout;
        encode(&self.core.handle_local(forwarded, deadline).await)
    }
}
