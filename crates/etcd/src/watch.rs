//! etcd's Watch service: many watches multiplexed on one bidirectional stream.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use etcd_client::proto::*;
use hanode_kv::{KvBackend, WatchMessage, WatchRequest};

use crate::convert;
use crate::error::status;

/// How often a watch created with `progress_notify` reports the revision when idle (etcd's
/// default).
const PROGRESS_NOTIFY_INTERVAL: Duration = Duration::from_secs(600);

/// Responses queued per stream before watchers wait for the client.
const STREAM_QUEUE: usize = 128;

/// Watch over a store.
pub struct WatchService {
    pub(crate) backend: Arc<dyn KvBackend>,
}

type Outbox = mpsc::Sender<Result<PbWatchResponse, Status>>;

fn response(header: Option<PbResponseHeader>, watch_id: i64) -> PbWatchResponse {
    PbWatchResponse {
        header,
        watch_id,
        ..Default::default()
    }
}

/// Runs one watch, forwarding its messages until it ends or is cancelled.
async fn pump(
    backend: Arc<dyn KvBackend>,
    watch_id: i64,
    mut stream: hanode_kv::WatchStream,
    progress_notify: bool,
    outbox: Outbox,
) {
    let mut progress = tokio::time::interval(PROGRESS_NOTIFY_INTERVAL);
    progress.tick().await;
    loop {
        let message = tokio::select! {
            message = stream.next() => message,
            _ = progress.tick(), if progress_notify => {
                let Ok(header) = backend.current_header().await else { continue };
                let _ = outbox.send(Ok(response(convert::header(header), watch_id))).await;
                continue;
            }
        };
        let Ok(header) = backend.current_header().await else {
            return;
        };
        let reply = match message {
            None => return,
            Some(WatchMessage::Events { revision, events }) => {
                progress.reset();
                PbWatchResponse {
                    header: convert::header(hanode_kv::ResponseHeader { revision, ..header }),
                    watch_id,
                    events: events.into_iter().map(convert::event).collect(),
                    ..Default::default()
                }
            }
            Some(WatchMessage::Progress { revision }) => response(
                convert::header(hanode_kv::ResponseHeader { revision, ..header }),
                watch_id,
            ),
            Some(WatchMessage::Compacted { compact_revision }) => PbWatchResponse {
                header: convert::header(header),
                watch_id,
                canceled: true,
                compact_revision,
                cancel_reason: "etcdserver: mvcc: required revision has been compacted".into(),
                ..Default::default()
            },
        };
        let last = reply.canceled;
        if outbox.send(Ok(reply)).await.is_err() || last {
            return;
        }
    }
}

#[tonic::async_trait]
impl PbWatchService for WatchService {
    type WatchStream = Pin<Box<dyn Stream<Item = Result<PbWatchResponse, Status>> + Send>>;

    async fn watch(
        &self,
        request: Request<Streaming<PbWatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        if crate::requires_leader(&request) {
            crate::check_leader(&*self.backend).await?;
        }
        let backend = self.backend.clone();
        let mut requests = request.into_inner();
        let (outbox, inbox) = mpsc::channel(STREAM_QUEUE);
        tokio::spawn(async move {
            let mut watches: HashMap<i64, JoinHandle<()>> = HashMap::new();
            let mut next_id: i64 = 0;
            while let Some(next) = requests.next().await {
                let Ok(req) = next else { break };
                let header = match backend.current_header().await {
                    Ok(header) => convert::header(header),
                    Err(e) => {
                        let _ = outbox.send(Err(status(&e))).await;
                        break;
                    }
                };
                match req.request_union {
                    Some(PbWatchRequestUnion::CreateRequest(create)) => {
                        let watch_id = if create.watch_id > 0 {
                            create.watch_id
                        } else {
                            next_id
                        };
                        if watches.contains_key(&watch_id) {
                            let mut reply = response(header, watch_id);
                            reply.created = true;
                            reply.canceled = true;
                            reply.cancel_reason = "etcdserver: duplicate watch ID".into();
                            let _ = outbox.send(Ok(reply)).await;
                            continue;
                        }
                        next_id = next_id.max(watch_id + 1);
                        let spec = WatchRequest {
                            key: create.key,
                            range_end: create.range_end,
                            start_revision: create.start_revision,
                            prev_kv: create.prev_kv,
                            no_put: create.filters.contains(&convert::FILTER_NOPUT),
                            no_delete: create.filters.contains(&convert::FILTER_NODELETE),
                        };
                        match backend.watch(spec).await {
                            Ok(stream) => {
                                let mut reply = response(header, watch_id);
                                reply.created = true;
                                if outbox.send(Ok(reply)).await.is_err() {
                                    break;
                                }
                                let task = tokio::spawn(pump(
                                    backend.clone(),
                                    watch_id,
                                    stream,
                                    create.progress_notify,
                                    outbox.clone(),
                                ));
                                watches.insert(watch_id, task);
                            }
                            Err(e) => {
                                let _ = outbox.send(Err(status(&e))).await;
                                break;
                            }
                        }
                    }
                    Some(PbWatchRequestUnion::CancelRequest(cancel)) => {
                        if let Some(task) = watches.remove(&cancel.watch_id) {
                            task.abort();
                            let mut reply = response(header, cancel.watch_id);
                            reply.canceled = true;
                            let _ = outbox.send(Ok(reply)).await;
                        }
                    }
                    Some(PbWatchRequestUnion::ProgressRequest(_)) => {
                        let _ = outbox.send(Ok(response(header, -1))).await;
                    }
                    None => {}
                }
                watches.retain(|_, task| !task.is_finished());
            }
            for (_, task) in watches {
                task.abort();
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(inbox))))
    }
}
