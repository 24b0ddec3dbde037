//! Protocol definitions hanode owns: the peer RPC service between store members.
//!
//! etcd's v3 API is not here: its generated server traits and messages come from the
//! `etcd-client` crate (feature `build-server`), built from etcd's own .proto files.

#![allow(missing_docs)] // generated code

/// The peer service (`hanode.peer.v1`).
pub mod peer {
    tonic::include_proto!("hanode.peer.v1");
}
