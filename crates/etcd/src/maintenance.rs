//! etcd's Maintenance service.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use etcd_client::proto::*;
use hanode_kv::{AlarmAction, KvBackend, KvError};

use crate::convert;
use crate::error::status;

/// Which part of a snapshot stream a chunk is.
enum Tail {
    Data,
    Padding,
    Checksum,
}

/// Maintenance over a store.
pub struct MaintenanceService {
    pub(crate) backend: Arc<dyn KvBackend>,
}

#[tonic::async_trait]
impl PbMaintenanceService for MaintenanceService {
    async fn alarm(
        &self,
        request: Request<PbAlarmRequest>,
    ) -> Result<Response<PbAlarmResponse>, Status> {
        let req = request.into_inner();
        let action = match req.action {
            0 => AlarmAction::Get,
            1 => AlarmAction::Activate,
            2 => AlarmAction::Deactivate,
            other => {
                return Err(status(&KvError::InvalidArgument(format!(
                    "unknown alarm action {other}"
                ))));
            }
        };
        let (header, alarms) = self
            .backend
            .alarm(action, req.member_id, convert::alarm_type(req.alarm))
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(PbAlarmResponse {
            header: convert::header(header),
            alarms: alarms.into_iter().map(convert::alarm_member).collect(),
        }))
    }

    async fn status(
        &self,
        _request: Request<PbStatusRequest>,
    ) -> Result<Response<PbStatusResponse>, Status> {
        let s = self.backend.status().await.map_err(|e| status(&e))?;
        Ok(Response::new(PbStatusResponse {
            header: convert::header(s.header),
            version: s.version,
            db_size: s.db_size,
            leader: s.leader,
            raft_index: s.raft_index,
            raft_term: s.raft_term,
            raft_applied_index: s.raft_applied_index,
            errors: s.errors,
            db_size_in_use: s.db_size_in_use,
            is_learner: s.is_learner,
            ..Default::default()
        }))
    }

    async fn defragment(
        &self,
        _request: Request<PbDefragmentRequest>,
    ) -> Result<Response<PbDefragmentResponse>, Status> {
        let header = self.backend.defragment().await.map_err(|e| status(&e))?;
        Ok(Response::new(PbDefragmentResponse {
            header: convert::header(header),
        }))
    }

    async fn hash(
        &self,
        _request: Request<PbHashRequest>,
    ) -> Result<Response<PbHashResponse>, Status> {
        Err(status(&KvError::Unsupported("hash".into())))
    }

    async fn hash_kv(
        &self,
        request: Request<PbHashKvRequest>,
    ) -> Result<Response<PbHashKvResponse>, Status> {
        let (header, hash, compact_revision) = self
            .backend
            .hash_kv(request.into_inner().revision)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(PbHashKvResponse {
            header: convert::header(header),
            hash,
            compact_revision,
            hash_revision: header.revision,
        }))
    }

    type SnapshotStream = Pin<Box<dyn Stream<Item = Result<PbSnapshotResponse, Status>> + Send>>;

    async fn snapshot(
        &self,
        _request: Request<PbSnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let snapshot = self.backend.snapshot().await.map_err(|e| status(&e))?;
        let header = self
            .backend
            .current_header()
            .await
            .map_err(|e| status(&e))?;
        // As etcd 3.4: the data padded to a multiple of 512 bytes (etcdctl checks that, as
        // bbolt files are page-aligned), then its SHA-256 as a final 32-byte blob.
        let padding = (512 - snapshot.size % 512) % 512;
        let total = snapshot.size + padding + 32;
        let mut sent: u64 = 0;
        let mut digest = Some(Sha256::new());
        let data = snapshot.chunks.map(|chunk| (chunk, Tail::Data));
        let tail = futures::stream::iter([
            (Ok(vec![0u8; padding as usize]), Tail::Padding),
            (Ok(Vec::new()), Tail::Checksum),
        ]);
        let stream = data.chain(tail).filter_map(move |(chunk, part)| {
            let result = (|| {
                let mut blob = chunk.map_err(|e| status(&e))?;
                match part {
                    Tail::Checksum => {
                        blob = digest
                            .take()
                            .map(|d| d.finalize().to_vec())
                            .unwrap_or_default()
                    }
                    Tail::Data | Tail::Padding => {
                        if let Some(d) = digest.as_mut() {
                            d.update(&blob);
                        }
                    }
                }
                if blob.is_empty() {
                    return Ok(None);
                }
                sent += blob.len() as u64;
                Ok(Some(PbSnapshotResponse {
                    header: convert::header(header),
                    remaining_bytes: total.saturating_sub(sent),
                    blob,
                    version: String::new(),
                }))
            })();
            futures::future::ready(result.transpose())
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn move_leader(
        &self,
        request: Request<PbMoveLeaderRequest>,
    ) -> Result<Response<PbMoveLeaderResponse>, Status> {
        let header = self
            .backend
            .move_leader(request.into_inner().target_id)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(PbMoveLeaderResponse {
            header: convert::header(header),
        }))
    }

    async fn downgrade(
        &self,
        _request: Request<PbDowngradeRequest>,
    ) -> Result<Response<PbDowngradeResponse>, Status> {
        Err(status(&KvError::Unsupported("downgrade".into())))
    }
}
