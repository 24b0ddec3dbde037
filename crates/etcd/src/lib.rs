//! etcd v3 gRPC API over any [`KvBackend`]: KV, Watch, Lease, Cluster and Maintenance, one
//! module per service, one error table ([`error::status`]).
//!
//! Message types and server traits come from the `etcd-client` crate (feature `build-server`),
//! generated from etcd's own .proto files. This crate owns the translation and etcd's request
//! rules (size limit, `hasleader`); it does not own listeners or TLS.

use std::sync::Arc;

use etcd_client::proto::*;
use tonic::service::Routes;

use hanode_kv::{KvBackend, KvError};

mod cluster;
mod convert;
pub mod error;
mod kv;
mod lease;
mod maintenance;
mod watch;

pub use cluster::ClusterService;
pub use kv::KvService;
pub use lease::LeaseService;
pub use maintenance::MaintenanceService;
pub use watch::WatchService;

/// etcd's default request size limit (`--max-request-bytes`): 1.5 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 3 << 19;

/// Room gRPC framing may take beyond the request limit (etcd's `grpcOverheadBytes`).
const GRPC_OVERHEAD_BYTES: usize = 512 << 10;

/// Settings of the etcd API.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    /// Largest Put or Txn accepted; larger ones get "etcdserver: request is too large".
    pub max_request_bytes: usize,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        EtcdConfig {
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
        }
    }
}

/// Every etcd service over `backend`, ready to serve.
pub fn routes(backend: Arc<dyn KvBackend>, config: &EtcdConfig) -> Routes {
    let max_message = config.max_request_bytes + GRPC_OVERHEAD_BYTES;
    let kv = PbKvServer::new(KvService {
        backend: backend.clone(),
        max_request_bytes: config.max_request_bytes,
    })
    .max_decoding_message_size(max_message)
    .max_encoding_message_size(usize::MAX);
    let watch = PbWatchServer::new(WatchService {
        backend: backend.clone(),
    })
    .max_decoding_message_size(max_message)
    .max_encoding_message_size(usize::MAX);
    let lease = PbLeaseServer::new(LeaseService {
        backend: backend.clone(),
    })
    .max_decoding_message_size(max_message);
    let cluster = PbClusterServer::new(ClusterService {
        backend: backend.clone(),
    })
    .max_decoding_message_size(max_message);
    let maintenance = PbMaintenanceServer::new(MaintenanceService { backend })
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(usize::MAX);
    Routes::new(kv)
        .add_service(watch)
        .add_service(lease)
        .add_service(cluster)
        .add_service(maintenance)
}

/// Whether the client asked to fail when there is no leader (etcd's `hasleader` metadata, sent
/// by clientv3 on watches and keep-alive streams).
pub(crate) fn requires_leader<T>(request: &tonic::Request<T>) -> bool {
    request
        .metadata()
        .get("hasleader")
        .is_some_and(|v| v.as_bytes() == b"true")
}

/// Fails with "etcdserver: no leader" when the backend reports none.
pub(crate) async fn check_leader(backend: &dyn KvBackend) -> Result<(), tonic::Status> {
    let status = backend.status().await.map_err(|e| error::status(&e))?;
    if status.leader == 0 {
        return Err(error::status(&KvError::NoLeader));
    }
    Ok(())
}

/// Turns tonic's answer to an undecodable request (Internal, "failed to decode Protobuf
/// message") into InvalidArgument: the client sent bad bytes, the server is fine.
pub fn fix_decode_status<B>(mut response: http::Response<B>) -> http::Response<B> {
    let is_decode_error = response
        .headers()
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == b"13")
        && response.headers().get("grpc-message").is_some_and(|m| {
            // grpc-message is percent-encoded on the wire.
            m.to_str()
                .unwrap_or("")
                .replace("%20", " ")
                .starts_with("failed to decode Protobuf message")
        });
    if is_decode_error {
        response
            .headers_mut()
            .insert("grpc-status", http::HeaderValue::from_static("3"));
    }
    response
}
