//! [`KvBackend`] for a store member: writes through Raft, linearizable reads behind a read
//! barrier, serializable reads and watches from the local state machine.

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use tokio::io::AsyncReadExt;

use hanode_kv::*;
use hanode_types::{LeaseId, Member, NodeId, Revision};

use crate::node::{StoreNode, unexpected};
use crate::types::{ForwardRequest, ForwardResponse};

/// Chunk size of `snapshot` streams (etcd uses 32 KiB).
const SNAPSHOT_CHUNK_BYTES: usize = 32 << 10;

impl StoreNode {
    fn with_header<T>(&self, revision: Revision, f: impl FnOnce(ResponseHeader) -> T) -> T {
        f(self.header(revision))
    }

    async fn apply_command(&self, command: Command) -> KvResult<Applied> {
        if command.costs_space() {
            self.check_quota().await?;
        }
        self.core().propose(command).await
    }

    /// Refuses space-consuming writes past the quota, raising the NOSPACE alarm once.
    async fn check_quota(&self) -> KvResult<()> {
        if self.core().state_size_cached() <= self.core().config.quota_bytes {
            return Ok(());
        }
        let alarm = AlarmMember {
            member_id: self.id(),
            alarm: AlarmType::NoSpace,
        };
        let raised = self.shared().read().mvcc.alarms().contains(&alarm);
        if !raised {
            tracing::warn!(
                quota_bytes = self.core().config.quota_bytes,
                "space quota exceeded, raising NOSPACE"
            );
            let raise = Command::Alarm {
                action: AlarmAction::Activate,
                member_id: alarm.member_id,
                alarm: alarm.alarm,
            };
            if let Err(e) = self.core().propose(raise).await {
                tracing::warn!(error = %e, "could not raise the NOSPACE alarm");
            }
        }
        Err(KvError::NoSpace)
    }

    async fn forward(&self, request: ForwardRequest) -> KvResult<ForwardResponse> {
        let deadline = tokio::time::Instant::now() + self.core().config.request_timeout;
        self.core().route(request, deadline).await
    }

    fn members(&self, members: Vec<MemberInfo>) -> MemberList {
        MemberList {
            header: self.header(0),
            members,
        }
    }
}

#[async_trait]
impl KvBackend for StoreNode {
    async fn range(&self, req: RangeRequest) -> KvResult<RangeResponse> {
        if !req.serializable {
            self.read_barrier(self.core().config.request_timeout)
                .await?;
        }
        let shared = self.shared().clone();
        // Large ranges read many values from RocksDB: keep them off the async workers.
        let resp = tokio::task::spawn_blocking(move || {
            let state = shared.read();
            state.mvcc.range(&shared.revs(), &req)
        })
        .await
        .map_err(|e| KvError::Storage(e.to_string()))??;
        Ok(
            self.with_header(resp.header.revision, |header| RangeResponse {
                header,
                ..resp
            }),
        )
    }

    async fn put(&self, req: PutRequest) -> KvResult<PutResponse> {
        match self.apply_command(Command::Put(req)).await? {
            Applied::Put(resp) => {
                Ok(
                    self.with_header(resp.header.revision, |header| PutResponse {
                        header,
                        ..resp
                    }),
                )
            }
            other => Err(KvError::Storage(format!("unexpected {other:?}"))),
        }
    }

    async fn delete_range(&self, req: DeleteRangeRequest) -> KvResult<DeleteRangeResponse> {
        match self.apply_command(Command::DeleteRange(req)).await? {
            Applied::DeleteRange(resp) => {
                Ok(
                    self.with_header(resp.header.revision, |header| DeleteRangeResponse {
                        header,
                        ..resp
                    }),
                )
            }
            other => Err(KvError::Storage(format!("unexpected {other:?}"))),
        }
    }

    async fn txn(&self, req: TxnRequest) -> KvResult<TxnResponse> {
        check_txn(&req)?;
        match self.apply_command(Command::Txn(req)).await? {
            Applied::Txn(resp) => {
                Ok(
                    self.with_header(resp.header.revision, |header| TxnResponse {
                        header,
                        ..resp
                    }),
                )
            }
            other => Err(KvError::Storage(format!("unexpected {other:?}"))),
        }
    }

    async fn compact(&self, req: CompactionRequest) -> KvResult<ResponseHeader> {
        match self.apply_command(Command::Compact(req)).await? {
            Applied::Compact(header) => Ok(self.header(header.revision)),
            other => Err(KvError::Storage(format!("unexpected {other:?}"))),
        }
    }

    async fn lease_grant(&self, id: LeaseId, ttl: i64) -> KvResult<LeaseGrantResponse> {
        let id = if id == 0 {
            (rand::random::<i64>() & i64::MAX).max(1)
        } else {
            id
        };
        let ttl = ttl.max(self.core().config.min_lease_ttl_secs);
        match self.apply_command(Command::LeaseGrant { id, ttl }).await? {
            Applied::LeaseGrant(resp) => {
                Ok(
                    self.with_header(resp.header.revision, |header| LeaseGrantResponse {
                        header,
                        ..resp
                    }),
                )
            }
            other => Err(KvError::Storage(format!("unexpected {other:?}"))),
        }
    }

    async fn lease_revoke(&self, id: LeaseId) -> KvResult<ResponseHeader> {
        match self.apply_command(Command::LeaseRevoke { id }).await? {
            Applied::LeaseRevoke(header) => Ok(self.header(header.revision)),
            other => Err(KvError::Storage(format!("unexpected {other:?}"))),
        }
    }

    async fn lease_keep_alive(&self, id: LeaseId) -> KvResult<LeaseKeepAliveResponse> {
        let ttl = match self.forward(ForwardRequest::LeaseKeepAlive(id)).await? {
            ForwardResponse::LeaseTtl(ttl) => ttl,
            other => return Err(unexpected(other)),
        };
        let revision = self.shared().read().mvcc.revision();
        Ok(LeaseKeepAliveResponse {
            header: self.header(revision),
            id,
            ttl,
        })
    }

    async fn lease_time_to_live(
        &self,
        id: LeaseId,
        keys: bool,
    ) -> KvResult<LeaseTimeToLiveResponse> {
        let ttl = match self.forward(ForwardRequest::LeaseTimeToLive(id)).await? {
            ForwardResponse::LeaseTtl(ttl) => ttl,
            other => return Err(unexpected(other)),
        };
        self.read_barrier(self.core().config.request_timeout)
            .await?;
        let state = self.shared().read();
        let header = self.header(state.mvcc.revision());
        Ok(match state.mvcc.lease(id) {
            None => LeaseTimeToLiveResponse {
                header,
                id,
                ttl: -1,
                ..Default::default()
            },
            Some((granted_ttl, attached)) => LeaseTimeToLiveResponse {
                header,
                id,
                ttl,
                granted_ttl,
                keys: if keys { attached } else { Vec::new() },
            },
        })
    }

    async fn lease_leases(&self) -> KvResult<LeaseLeasesResponse> {
        self.read_barrier(self.core().config.request_timeout)
            .await?;
        let state = self.shared().read();
        Ok(LeaseLeasesResponse {
            header: self.header(state.mvcc.revision()),
            leases: state.mvcc.leases().into_iter().map(|(id, _)| id).collect(),
        })
    }

    async fn watch(&self, req: WatchRequest) -> KvResult<WatchStream> {
        // Served from the local state machine, like etcd; clients that need a leader say so
        // (`hasleader`) and the etcd layer checks it.
        let shared = self.shared().clone();
        let history: Arc<dyn History> = shared.clone();
        Ok(shared.hub.watch(req, history).into_stream())
    }

    async fn current_header(&self) -> KvResult<ResponseHeader> {
        let revision = self.shared().read().mvcc.revision();
        Ok(self.header(revision))
    }

    async fn member_list(&self) -> KvResult<MemberList> {
        Ok(self.members(self.local_members()))
    }

    async fn member_add(
        &self,
        peer_urls: Vec<String>,
        is_learner: bool,
    ) -> KvResult<(MemberInfo, MemberList)> {
        let peer_url = peer_urls
            .first()
            .cloned()
            .ok_or_else(|| KvError::InvalidArgument("member add needs a peer URL".into()))?;
        let member = Member {
            peer_url,
            stay_learner: is_learner,
            ..Member::default()
        };
        let (id, members) = self.join_member(member).await?;
        let info = members
            .iter()
            .find(|m| m.id == id)
            .cloned()
            .ok_or(KvError::MemberNotFound { id })?;
        Ok((info, self.members(members)))
    }

    async fn member_remove(&self, id: NodeId) -> KvResult<MemberList> {
        match self.forward(ForwardRequest::RemoveMember(id)).await? {
            ForwardResponse::Members(members) => Ok(self.members(members)),
            other => Err(unexpected(other)),
        }
    }

    async fn member_promote(&self, id: NodeId) -> KvResult<MemberList> {
        match self.forward(ForwardRequest::PromoteMember(id)).await? {
            ForwardResponse::Members(members) => Ok(self.members(members)),
            other => Err(unexpected(other)),
        }
    }

    async fn status(&self) -> KvResult<StatusResponse> {
        let metrics = self.metrics();
        let revision = self.shared().read().mvcc.revision();
        let db = &self.shared().db;
        let is_learner = !metrics
            .membership_config
            .membership()
            .voter_ids()
            .any(|id| id == self.id());
        let mut errors = Vec::new();
        if metrics.current_leader.is_none() {
            errors.push("etcdserver: no leader".to_string());
        }
        let alarms = self.shared().read().mvcc.alarms();
        if alarms.iter().any(|a| a.alarm == AlarmType::NoSpace) {
            errors.push("memberID:0 alarm:NOSPACE".to_string());
        }
        Ok(StatusResponse {
            header: self.header(revision),
            version: ETCD_VERSION.into(),
            db_size: crate::db::total_size_bytes(db) as i64,
            db_size_in_use: crate::db::state_size_bytes(db) as i64,
            leader: metrics.current_leader.unwrap_or(0),
            raft_index: metrics.last_log_index.unwrap_or(0),
            raft_term: metrics.current_term,
            raft_applied_index: metrics.last_applied.map_or(0, |l| l.index),
            errors,
            is_learner,
        })
    }

    async fn alarm(
        &self,
        action: AlarmAction,
        member_id: NodeId,
        alarm: Option<AlarmType>,
    ) -> KvResult<(ResponseHeader, Vec<AlarmMember>)> {
        if action == AlarmAction::Deactivate {
            self.core().invalidate_size_cache();
        }
        let alarms = match (action, alarm) {
            (AlarmAction::Get, _) | (_, None) => self.shared().read().mvcc.alarms(),
            (action, Some(alarm)) => match self
                .core()
                .propose(Command::Alarm {
                    action,
                    member_id,
                    alarm,
                })
                .await?
            {
                Applied::Alarm(alarms) => alarms,
                other => return Err(KvError::Storage(format!("unexpected {other:?}"))),
            },
        };
        let revision = self.shared().read().mvcc.revision();
        Ok((self.header(revision), alarms))
    }

    async fn defragment(&self) -> KvResult<ResponseHeader> {
        let db = self.shared().db.clone();
        tokio::task::spawn_blocking(move || {
            for name in crate::db::ALL_CFS {
                db.compact_range_cf(crate::db::cf(&db, name), None::<&[u8]>, None::<&[u8]>);
            }
        })
        .await
        .map_err(|e| KvError::Storage(e.to_string()))?;
        self.core().invalidate_size_cache();
        let revision = self.shared().read().mvcc.revision();
        Ok(self.header(revision))
    }

    async fn snapshot(&self) -> KvResult<SnapshotStream> {
        let db = self.shared().db.clone();
        let dir = self.core().config.snapshot_dir.clone();
        let path = dir.join(format!("client-{:016x}.tmp", rand::random::<u64>()));
        let write_path = path.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let mut out = std::io::BufWriter::new(std::fs::File::create(&write_path)?);
            let view = db.snapshot();
            crate::state_machine::write_snapshot_data(&db, &view, &mut out)?;
            use std::io::Write;
            out.flush()
        })
        .await
        .map_err(|e| KvError::Storage(e.to_string()))?
        .map_err(|e| KvError::Storage(format!("writing snapshot: {e}")))?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| KvError::Storage(e.to_string()))?;
        // Unlinked now; the open handle keeps the data readable until the stream ends.
        let _ = std::fs::remove_file(&path);
        let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
        let chunks = futures::stream::unfold(Some(file), |file| async move {
            let mut file = file?;
            let mut buf = vec![0u8; SNAPSHOT_CHUNK_BYTES];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(buf), Some(file)))
                }
                Err(e) => Some((Err(KvError::Storage(e.to_string())), None)),
            }
        })
        .boxed();
        Ok(SnapshotStream { size, chunks })
    }
}
