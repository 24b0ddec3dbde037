//! [`RemoteBackend`]: every [`KvBackend`] call as one etcd v3 request (keep-alive: one round on
//! a cached stream), bounded by the request timeout, its answer translated field by field and
//! its errors through [`crate::error`]'s table.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::proto::PbLeaseKeepAliveResponse;
use etcd_client::{
    AlarmOptions, Certificate, Client, ClusterClient, CompactionOptions, ConnectOptions,
    GetOptions, Identity, KvClient, LeaseClient, LeaseGrantOptions, LeaseKeepAliveStream,
    LeaseKeeper, LeaseTimeToLiveOptions, MaintenanceClient, MemberAddOptions, TlsOptions,
    WatchClient, WatchFilterType, WatchOptions,
};
use futures::StreamExt;

use hanode_kv::{
    AlarmAction, AlarmMember, AlarmType, CompactionRequest, DeleteRangeRequest,
    DeleteRangeResponse, KvBackend, KvError, KvResult, LeaseGrantResponse, LeaseKeepAliveResponse,
    LeaseLeasesResponse, LeaseTimeToLiveResponse, MemberInfo, MemberList, PutRequest, PutResponse,
    RangeRequest, RangeResponse, RequestOp, ResponseHeader, SnapshotStream, StatusResponse,
    TxnRequest, TxnResponse, WatchRequest, WatchStream,
};
use hanode_types::{LeaseId, NodeId, Revision};

use crate::config::{RemoteConfig, RemoteTls};
use crate::convert;
use crate::error::{RemoteError, Subject, kv_error, never_sent};
use crate::watch;

/// HTTP/2 ping interval on connections with open streams, so a watch on a dead connection ends
/// instead of waiting forever. Above etcd's minimum (5 s) so etcd does not call it abuse.
const PING_INTERVAL: Duration = Duration::from_secs(10);

/// Pause between status checks while [`RemoteBackend::connect`] waits for an endpoint.
const CONNECT_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Keep-alive streams kept open, one per lease; beyond this a round opens and drops its own.
const MAX_KEEP_ALIVE_STREAMS: usize = 1024;

/// The key [`RemoteBackend::current_header`] reads: never written, so the read is cheap.
const HEADER_KEY: &[u8] = b"\0";

/// An open keep-alive stream for one lease.
struct KeepAlive {
    keeper: LeaseKeeper,
    responses: LeaseKeepAliveStream,
}

impl KeepAlive {
    /// One renewal; `None` when the stream is gone.
    async fn round(&mut self) -> Result<Option<PbLeaseKeepAliveResponse>, etcd_client::Error> {
        self.keeper.keep_alive().await?;
        Ok(self.responses.message().await?.map(|r| r.0))
    }
}

/// The clients of one endpoint. Each endpoint has its own connections, so a dead endpoint
/// fails only the requests sent to it and the backend can move on to the next one.
struct Member {
    url: String,
    kv: KvClient,
    /// Watches ask the server to cancel them when it loses its leader (etcd's `hasleader`), so
    /// a watcher on a partitioned member ends and starts over elsewhere instead of going quiet.
    watch: WatchClient,
    lease: LeaseClient,
    cluster: ClusterClient,
    maintenance: MaintenanceClient,
}

impl Member {
    async fn connect(url: &str, options: &ConnectOptions) -> Result<Member, etcd_client::Error> {
        // Client::connect only sets up the channel; the connection opens on the first request.
        let client = Client::connect([url], Some(options.clone())).await?;
        let watcher =
            Client::connect([url], Some(options.clone().with_require_leader(true))).await?;
        Ok(Member {
            url: url.to_string(),
            // etcd sends ranges of any size (Kubernetes lists); gRPC's 4 MiB default would
            // fail them.
            kv: client.kv_client().max_decoding_message_size(usize::MAX),
            watch: watcher.watch_client().max_decoding_message_size(usize::MAX),
            lease: client.lease_client(),
            cluster: client.cluster_client(),
            maintenance: client.maintenance_client(),
        })
    }
}

struct Inner {
    /// One per endpoint, in the configured order.
    members: Vec<Member>,
    /// The member requests go to first (etcd's clientv3 pins one endpoint too); moves on when
    /// a request cannot reach it.
    pinned: AtomicUsize,
    /// The endpoints as configured, for messages.
    endpoints: Arc<str>,
    request_timeout: Duration,
    keep_alives: Mutex<HashMap<LeaseId, KeepAlive>>,
}

/// A store reached over the etcd v3 API. Cheap to clone: clones share the connections.
#[derive(Clone)]
pub struct RemoteBackend {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RemoteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteBackend")
            .field("endpoints", &self.inner.endpoints)
            .finish()
    }
}

fn tls_options(tls: &RemoteTls) -> TlsOptions {
    let options = TlsOptions::new().ca_certificate(Certificate::from_pem(&tls.ca_pem));
    match (&tls.cert_pem, &tls.key_pem) {
        (Some(cert), Some(key)) => options.identity(Identity::from_pem(cert, key)),
        _ => options,
    }
}

impl RemoteBackend {
    /// Checks `config`, connects, and proves an endpoint answers (a status request) within the
    /// connect timeout; fails with a message naming the endpoints otherwise.
    pub async fn connect(config: RemoteConfig) -> Result<RemoteBackend, RemoteError> {
        config.validate()?;
        let endpoints: Arc<str> = config.endpoint_list().into();
        let mut options = ConnectOptions::new()
            .with_connect_timeout(config.connect_timeout)
            .with_keep_alive(PING_INTERVAL, config.request_timeout);
        if let Some(tls) = &config.tls {
            options = options.with_tls(tls_options(tls));
        }
        let mut members = Vec::with_capacity(config.endpoints.len());
        for url in &config.endpoints {
            let member =
                Member::connect(url, &options)
                    .await
                    .map_err(|source| RemoteError::Client {
                        endpoints: endpoints.to_string(),
                        source,
                    })?;
            members.push(member);
        }
        let backend = RemoteBackend {
            inner: Arc::new(Inner {
                members,
                pinned: AtomicUsize::new(0),
                endpoints,
                request_timeout: config.request_timeout,
                keep_alives: Mutex::new(HashMap::new()),
            }),
        };
        backend.wait_for_answer(config.connect_timeout).await?;
        tracing::debug!(endpoints = %backend.inner.endpoints, "storage endpoints answer");
        Ok(backend)
    }

    /// Asks for status until an endpoint answers or `timeout` passes.
    async fn wait_for_answer(&self, timeout: Duration) -> Result<(), RemoteError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last_error = String::from("no endpoint answered");
        loop {
            let status = self.call("status", Subject::default(), |member| {
                let mut maintenance = member.maintenance.clone();
                async move { maintenance.status().await }
            });
            match tokio::time::timeout_at(deadline, status).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(error)) => last_error = error.to_string(),
                Err(_) => break,
            }
            if tokio::time::Instant::now() + CONNECT_RETRY_PAUSE >= deadline {
                break;
            }
            tokio::time::sleep(CONNECT_RETRY_PAUSE).await;
        }
        Err(RemoteError::Unreachable {
            endpoints: self.inner.endpoints.to_string(),
            timeout,
            last_error,
        })
    }

    /// Runs one request within the request timeout and translates its failure. `request`
    /// sends it to one member; when that member cannot be reached (the request never left), it
    /// goes to the next, and the first member that answers is pinned for later requests.
    async fn call<'a, T, F, Fut>(
        &'a self,
        op: &'static str,
        subject: Subject,
        request: F,
    ) -> KvResult<T>
    where
        F: Fn(&'a Member) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>> + 'a,
    {
        let deadline = tokio::time::Instant::now() + self.inner.request_timeout;
        let members = &self.inner.members;
        let first = self.inner.pinned.load(Ordering::Relaxed);
        let mut unreachable = None;
        for attempt in 0..members.len() {
            let index = (first + attempt) % members.len();
            let member = &members[index];
            match tokio::time::timeout_at(deadline, request(member)).await {
                Ok(Ok(value)) => {
                    if attempt > 0 {
                        self.pin(first, index);
                    }
                    return Ok(value);
                }
                Ok(Err(error)) if never_sent(&error) => {
                    tracing::debug!(endpoint = %member.url, op, %error, "storage endpoint unreachable");
                    unreachable = Some(error);
                }
                Ok(Err(error)) => {
                    let error = self.translate(op, subject, &error).await;
                    if matches!(
                        error,
                        KvError::NoLeader
                            | KvError::Timeout
                            | KvError::Unhealthy
                            | KvError::Stopped
                    ) {
                        // A member cut off from its leader (or going away): the request may
                        // have been applied, so it is not sent again, but the next ones go to
                        // another member.
                        self.pin(first, (index + 1) % members.len());
                    }
                    return Err(error);
                }
                Err(_) => {
                    tracing::warn!(
                        endpoint = %member.url,
                        op,
                        timeout = ?self.inner.request_timeout,
                        "the storage endpoint did not answer in time"
                    );
                    // A frozen member (paused VM, stopped process) takes connections and never
                    // answers; the next requests go to another member.
                    self.pin(first, (index + 1) % members.len());
                    return Err(KvError::Timeout);
                }
            }
        }
        match unreachable {
            Some(error) => Err(self.translate(op, subject, &error).await),
            None => Err(KvError::Stopped),
        }
    }

    /// Moves the pin from `from` to `to` unless another request moved it already.
    fn pin(&self, from: usize, to: usize) {
        if from == to {
            return;
        }
        let moved = self
            .inner
            .pinned
            .compare_exchange(from, to, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        if moved {
            tracing::info!(
                from = %self.inner.members[from].url,
                to = %self.inner.members[to].url,
                "storage endpoint unreachable or unable to serve; using the next one"
            );
        }
    }

    async fn translate(
        &self,
        op: &'static str,
        subject: Subject,
        error: &etcd_client::Error,
    ) -> KvError {
        match kv_error(error, subject) {
            KvError::Compacted { .. } => KvError::Compacted {
                compact_revision: self.compact_revision().await.unwrap_or(0),
            },
            retry if retry.is_retryable() => {
                tracing::warn!(
                    endpoints = %self.inner.endpoints,
                    op,
                    %error,
                    "the storage endpoints could not serve a request"
                );
                retry
            }
            other => other,
        }
    }

    /// The revision the remote store is compacted to. etcd's range error does not say; a watch
    /// from revision 1 does: the server cancels it at once with the compact revision.
    async fn compact_revision(&self) -> Option<Revision> {
        let mut client = self.pinned_member().watch.clone();
        let probe = async move {
            let options = WatchOptions::new().with_start_revision(1);
            let mut stream = client.watch(HEADER_KEY, Some(options)).await.ok()?;
            loop {
                let response = stream.message().await.ok()??;
                if response.compact_revision() > 0 {
                    return Some(response.compact_revision());
                }
                if response.canceled() {
                    return None;
                }
            }
        };
        tokio::time::timeout(self.inner.request_timeout, probe)
            .await
            .ok()
            .flatten()
    }

    fn pinned_member(&self) -> &Member {
        &self.inner.members[self.inner.pinned.load(Ordering::Relaxed) % self.inner.members.len()]
    }

    fn keep_alives(&self) -> MutexGuard<'_, HashMap<LeaseId, KeepAlive>> {
        // Only map updates happen under this lock: a panic cannot leave it half-done.
        self.inner
            .keep_alives
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One keep-alive round for `id`, on its cached stream or a new one; `None` when the
    /// lease does not exist.
    async fn keep_alive_round(
        &self,
        member: &Member,
        id: LeaseId,
    ) -> Result<Option<(PbLeaseKeepAliveResponse, KeepAlive)>, etcd_client::Error> {
        let cached = self.keep_alives().remove(&id);
        if let Some(mut stream) = cached
            && let Ok(Some(response)) = stream.round().await
        {
            return Ok(Some((response, stream)));
        }
        // No stream yet, or it broke (its endpoint went away): open one.
        let mut lease = member.lease.clone();
        let (keeper, responses) = match lease.keep_alive(id).await {
            Ok(pair) => pair,
            Err(error)
                if kv_error(&error, Subject::lease(id)) == (KvError::LeaseNotFound { id }) =>
            {
                return Ok(None);
            }
            Err(error) => return Err(error),
        };
        // etcd-client used the first answer to check the lease exists and keeps it to itself:
        // a second round brings the TTL and header.
        let mut stream = KeepAlive { keeper, responses };
        match stream.round().await? {
            Some(response) => Ok(Some((response, stream))),
            None => Err(etcd_client::Error::LeaseKeepAliveError(
                "the keep-alive stream closed".into(),
            )),
        }
    }
}

/// The first lease a transaction's puts attach, so "lease not found" names it.
fn txn_lease(txn: &TxnRequest) -> LeaseId {
    txn.success
        .iter()
        .chain(&txn.failure)
        .map(|op| match op {
            RequestOp::Put(put) => put.lease,
            RequestOp::Txn(nested) => txn_lease(nested),
            RequestOp::Range(_) | RequestOp::DeleteRange(_) => 0,
        })
        .find(|id| *id != 0)
        .unwrap_or(0)
}

fn members(
    header: Option<&etcd_client::proto::PbResponseHeader>,
    members: Vec<etcd_client::proto::PbMember>,
) -> MemberList {
    MemberList {
        header: convert::header(header),
        members: members.into_iter().map(convert::member).collect(),
    }
}

#[async_trait]
impl KvBackend for RemoteBackend {
    async fn range(&self, req: RangeRequest) -> KvResult<RangeResponse> {
        let options = convert::get_options(&req);
        let response = self
            .call("range", Subject::default(), |member| {
                let mut kv = member.kv.clone();
                let (key, options) = (req.key.clone(), options.clone());
                async move { kv.get(key, Some(options)).await }
            })
            .await?;
        Ok(convert::range_response(response.0))
    }

    async fn put(&self, req: PutRequest) -> KvResult<PutResponse> {
        let options = convert::put_options(&req);
        let response = self
            .call("put", Subject::lease(req.lease), |member| {
                let mut kv = member.kv.clone();
                let (key, value) = (req.key.clone(), req.value.clone());
                let options = options.clone();
                async move { kv.put(key, value, Some(options)).await }
            })
            .await?;
        Ok(convert::put_response(response.0))
    }

    async fn delete_range(&self, req: DeleteRangeRequest) -> KvResult<DeleteRangeResponse> {
        let options = convert::delete_options(&req);
        let response = self
            .call("delete_range", Subject::default(), |member| {
                let mut kv = member.kv.clone();
                let (key, options) = (req.key.clone(), options.clone());
                async move { kv.delete(key, Some(options)).await }
            })
            .await?;
        Ok(convert::delete_response(response.0))
    }

    async fn txn(&self, req: TxnRequest) -> KvResult<TxnResponse> {
        let subject = Subject::lease(txn_lease(&req));
        let txn = convert::txn(req);
        let response = self
            .call("txn", subject, |member| {
                let mut kv = member.kv.clone();
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })
            .await?;
        Ok(convert::txn_response(response.0))
    }

    async fn compact(&self, req: CompactionRequest) -> KvResult<ResponseHeader> {
        let options = req
            .physical
            .then(|| CompactionOptions::new().with_physical());
        let response = self
            .call("compact", Subject::default(), |member| {
                let mut kv = member.kv.clone();
                let options = options.clone();
                async move { kv.compact(req.revision, options).await }
            })
            .await?;
        Ok(convert::header(response.0.header.as_ref()))
    }

    async fn lease_grant(&self, id: LeaseId, ttl: i64) -> KvResult<LeaseGrantResponse> {
        let response = self
            .call("lease_grant", Subject::lease(id), |member| {
                let mut lease = member.lease.clone();
                let options = LeaseGrantOptions::new().with_id(id);
                async move { lease.grant(ttl, Some(options)).await }
            })
            .await?
            .0;
        Ok(LeaseGrantResponse {
            header: convert::header(response.header.as_ref()),
            id: response.id,
            ttl: response.ttl,
        })
    }

    async fn lease_revoke(&self, id: LeaseId) -> KvResult<ResponseHeader> {
        self.keep_alives().remove(&id);
        let response = self
            .call("lease_revoke", Subject::lease(id), |member| {
                let mut lease = member.lease.clone();
                async move { lease.revoke(id).await }
            })
            .await?;
        Ok(convert::header(response.0.header.as_ref()))
    }

    async fn lease_keep_alive(&self, id: LeaseId) -> KvResult<LeaseKeepAliveResponse> {
        let round = self
            .call("lease_keep_alive", Subject::lease(id), |member| {
                self.keep_alive_round(member, id)
            })
            .await?;
        let Some((response, stream)) = round else {
            return Ok(LeaseKeepAliveResponse {
                // The answer stands without a header; the header is only for completeness.
                header: self.current_header().await.unwrap_or_default(),
                id,
                ttl: 0,
            });
        };
        if response.ttl > 0 {
            let mut cache = self.keep_alives();
            if cache.len() < MAX_KEEP_ALIVE_STREAMS {
                cache.insert(id, stream);
            }
        }
        Ok(LeaseKeepAliveResponse {
            header: convert::header(response.header.as_ref()),
            id: response.id,
            ttl: response.ttl.max(0),
        })
    }

    async fn lease_time_to_live(
        &self,
        id: LeaseId,
        keys: bool,
    ) -> KvResult<LeaseTimeToLiveResponse> {
        let result = self
            .call("lease_time_to_live", Subject::lease(id), |member| {
                let mut lease = member.lease.clone();
                let options = keys.then(|| LeaseTimeToLiveOptions::new().with_keys());
                async move { lease.time_to_live(id, options).await }
            })
            .await;
        match result {
            Ok(response) => {
                let response = response.0;
                Ok(LeaseTimeToLiveResponse {
                    header: convert::header(response.header.as_ref()),
                    id: response.id,
                    ttl: response.ttl,
                    granted_ttl: response.granted_ttl,
                    keys: response.keys,
                })
            }
            // etcd answers TTL -1 for an unknown lease; a proxy in between may send the error.
            Err(KvError::LeaseNotFound { .. }) => Ok(LeaseTimeToLiveResponse {
                id,
                ttl: -1,
                ..Default::default()
            }),
            Err(error) => Err(error),
        }
    }

    async fn lease_leases(&self) -> KvResult<LeaseLeasesResponse> {
        let response = self
            .call("lease_leases", Subject::default(), |member| {
                let mut lease = member.lease.clone();
                async move { lease.leases().await }
            })
            .await?
            .0;
        Ok(LeaseLeasesResponse {
            header: convert::header(response.header.as_ref()),
            leases: response.leases.into_iter().map(|l| l.id).collect(),
        })
    }

    async fn watch(&self, req: WatchRequest) -> KvResult<WatchStream> {
        let mut options = WatchOptions::new()
            .with_range(req.range_end)
            .with_start_revision(req.start_revision);
        if req.prev_kv {
            options = options.with_prev_key();
        }
        let mut filters = Vec::new();
        if req.no_put {
            filters.push(WatchFilterType::NoPut);
        }
        if req.no_delete {
            filters.push(WatchFilterType::NoDelete);
        }
        if !filters.is_empty() {
            options = options.with_filters(filters);
        }
        self.call("watch", Subject::default(), |member| {
            let mut client = member.watch.clone();
            let (key, options) = (req.key.clone(), options.clone());
            let endpoint: Arc<str> = member.url.as_str().into();
            async move {
                let stream = client.watch(key, Some(options)).await?;
                watch::start(stream, endpoint).await
            }
        })
        .await
    }

    async fn current_header(&self) -> KvResult<ResponseHeader> {
        // A linearizable read: its header carries the revision as of now, not of one member's
        // possibly stale state.
        let response = self
            .call("current_header", Subject::default(), |member| {
                let mut kv = member.kv.clone();
                let options = GetOptions::new().with_limit(1).with_count_only();
                async move { kv.get(HEADER_KEY, Some(options)).await }
            })
            .await?;
        Ok(convert::header(response.0.header.as_ref()))
    }

    async fn member_list(&self) -> KvResult<MemberList> {
        let response = self
            .call("member_list", Subject::default(), |member| {
                let mut cluster = member.cluster.clone();
                async move { cluster.member_list().await }
            })
            .await?
            .0;
        Ok(members(response.header.as_ref(), response.members))
    }

    async fn member_add(
        &self,
        peer_urls: Vec<String>,
        is_learner: bool,
    ) -> KvResult<(MemberInfo, MemberList)> {
        let response = self
            .call("member_add", Subject::default(), |member| {
                let mut cluster = member.cluster.clone();
                let options = is_learner.then(|| MemberAddOptions::new().with_is_learner());
                let peer_urls = peer_urls.clone();
                async move { cluster.member_add(peer_urls, options).await }
            })
            .await?
            .0;
        let added = response.member.map(convert::member).ok_or_else(|| {
            KvError::Storage(format!(
                "member add on {} answered without the new member",
                self.inner.endpoints
            ))
        })?;
        Ok((added, members(response.header.as_ref(), response.members)))
    }

    async fn member_remove(&self, id: NodeId) -> KvResult<MemberList> {
        let response = self
            .call("member_remove", Subject::member(id), |member| {
                let mut cluster = member.cluster.clone();
                async move { cluster.member_remove(id).await }
            })
            .await?
            .0;
        Ok(members(response.header.as_ref(), response.members))
    }

    async fn member_promote(&self, id: NodeId) -> KvResult<MemberList> {
        let response = self
            .call("member_promote", Subject::member(id), |member| {
                let mut cluster = member.cluster.clone();
                async move { cluster.member_promote(id).await }
            })
            .await?
            .0;
        Ok(members(response.header.as_ref(), response.members))
    }

    async fn status(&self) -> KvResult<StatusResponse> {
        let response = self
            .call("status", Subject::default(), |member| {
                let mut maintenance = member.maintenance.clone();
                async move { maintenance.status().await }
            })
            .await?;
        Ok(convert::status(response.0))
    }

    async fn alarm(
        &self,
        action: AlarmAction,
        member_id: NodeId,
        alarm: Option<AlarmType>,
    ) -> KvResult<(ResponseHeader, Vec<AlarmMember>)> {
        let response = self
            .call("alarm", Subject::member(member_id), |member| {
                let mut maintenance = member.maintenance.clone();
                let mut options = AlarmOptions::new();
                options.with_member(member_id);
                let (action, alarm) = (convert::alarm_action(action), convert::alarm_type(alarm));
                async move { maintenance.alarm(action, alarm, Some(options)).await }
            })
            .await?
            .0;
        let alarms = response
            .alarms
            .into_iter()
            .filter_map(|a| convert::alarm_member(a.member_id, a.alarm))
            .collect();
        Ok((convert::header(response.header.as_ref()), alarms))
    }

    async fn defragment(&self) -> KvResult<ResponseHeader> {
        let response = self
            .call("defragment", Subject::default(), |member| {
                let mut maintenance = member.maintenance.clone();
                async move { maintenance.defragment().await }
            })
            .await?;
        Ok(convert::header(response.0.header.as_ref()))
    }

    /// The remote's snapshot bytes as it sends them (for etcd: the bbolt file, then its
    /// SHA-256), and as `size` what the remote announces (etcd leaves its 32-byte SHA-256 out,
    /// hanode counts it). The request timeout bounds the start, not the whole transfer.
    async fn snapshot(&self) -> KvResult<SnapshotStream> {
        let (first, rest) = self
            .call("snapshot", Subject::default(), |member| {
                let mut maintenance = member.maintenance.clone();
                async move {
                    let mut stream = maintenance.snapshot().await?;
                    let first = stream.message().await?;
                    Ok((first, stream))
                }
            })
            .await?;
        let Some(first) = first.map(|r| r.0) else {
            return Ok(SnapshotStream {
                size: 0,
                chunks: Box::pin(futures::stream::empty()),
            });
        };
        let size = first.blob.len() as u64 + first.remaining_bytes;
        let rest = futures::stream::unfold(Some(rest), |stream| async move {
            let mut stream = stream?;
            match stream.message().await {
                Ok(Some(chunk)) => Some((Ok(chunk.0.blob), Some(stream))),
                Ok(None) => None,
                Err(error) => Some((Err(kv_error(&error, Subject::default())), None)),
            }
        });
        Ok(SnapshotStream {
            size,
            chunks: futures::stream::once(async move { Ok(first.blob) })
                .chain(rest)
                .boxed(),
        })
    }

    async fn hash_kv(&self, revision: Revision) -> KvResult<(ResponseHeader, u32, Revision)> {
        let response = self
            .call("hash_kv", Subject::default(), |member| {
                let mut maintenance = member.maintenance.clone();
                async move { maintenance.hash_kv(revision).await }
            })
            .await?
            .0;
        Ok((
            convert::header(response.header.as_ref()),
            response.hash,
            response.compact_revision,
        ))
    }

    /// etcd accepts this only on the current leader; other members answer an error.
    async fn move_leader(&self, target: NodeId) -> KvResult<ResponseHeader> {
        let response = self
            .call("move_leader", Subject::member(target), |member| {
                let mut maintenance = member.maintenance.clone();
                async move { maintenance.move_leader(target).await }
            })
            .await?;
        Ok(convert::header(response.0.header.as_ref()))
    }
}
