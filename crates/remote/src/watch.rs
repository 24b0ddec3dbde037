//! One remote watch as a [`WatchStream`]: etcd's responses become one message per revision,
//! a compaction becomes [`WatchMessage::Compacted`], and the stream ends when the remote watch
//! is canceled or its connection fails, so the front-end closes its client's watch and the
//! client re-lists. Nothing is spawned: dropping the stream drops the gRPC call, which cancels
//! the watch on the server.

use std::collections::VecDeque;
use std::sync::Arc;

use etcd_client::proto::PbWatchResponse;

use hanode_kv::{Event, WatchMessage, WatchStream};

use crate::convert;

/// What one response from the server means for the watcher.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Translated {
    /// Messages to hand on, in order.
    pub messages: Vec<WatchMessage>,
    /// The remote watch is over; nothing follows.
    pub ended: bool,
    /// Why the server canceled the watch, when it said so without a compaction.
    pub cancel_reason: Option<String>,
}

/// Translates one watch response. etcd may put several revisions in one response (a catch-up
/// from history); the store's model hands out one revision per message, so they are split by
/// mod revision, which every event of one revision shares.
pub(crate) fn translate(response: PbWatchResponse) -> Translated {
    let mut messages = Vec::new();
    let mut batch: Option<(i64, Vec<Event>)> = None;
    for event in response.events.into_iter().filter_map(convert::event) {
        let revision = event.kv.mod_revision;
        match &mut batch {
            Some((current, events)) if *current == revision => events.push(event),
            _ => {
                if let Some((revision, events)) = batch.take() {
                    messages.push(WatchMessage::Events { revision, events });
                }
                batch = Some((revision, vec![event]));
            }
        }
    }
    if let Some((revision, events)) = batch {
        messages.push(WatchMessage::Events { revision, events });
    }
    if response.compact_revision > 0 {
        // etcd cancels a watcher whose start revision was compacted away.
        messages.push(WatchMessage::Compacted {
            compact_revision: response.compact_revision,
        });
        return Translated {
            messages,
            ended: true,
            cancel_reason: None,
        };
    }
    if response.canceled {
        return Translated {
            messages,
            ended: true,
            cancel_reason: Some(response.cancel_reason),
        };
    }
    if messages.is_empty() && !response.created {
        // No events, not a creation or cancellation: a progress notification.
        let revision = response.header.map(|h| h.revision).unwrap_or_default();
        messages.push(WatchMessage::Progress { revision });
    }
    Translated {
        messages,
        ended: false,
        cancel_reason: None,
    }
}

/// A created remote watch and what it still has to hand on.
struct Remote {
    stream: etcd_client::WatchStream,
    pending: VecDeque<WatchMessage>,
    ended: bool,
    endpoints: Arc<str>,
}

impl Remote {
    async fn next(&mut self) -> Option<WatchMessage> {
        loop {
            if let Some(message) = self.pending.pop_front() {
                return Some(message);
            }
            if self.ended {
                return None;
            }
            match self.stream.message().await {
                Ok(Some(response)) => self.take(response.0),
                Ok(None) => {
                    tracing::debug!(endpoints = %self.endpoints, "remote watch stream closed");
                    self.ended = true;
                }
                Err(error) => {
                    tracing::info!(endpoints = %self.endpoints, %error, "remote watch failed; the watcher has to start over");
                    self.ended = true;
                }
            }
        }
    }

    fn take(&mut self, response: PbWatchResponse) {
        let translated = translate(response);
        if let Some(reason) = translated.cancel_reason {
            tracing::info!(endpoints = %self.endpoints, reason, "remote watch canceled");
        }
        self.pending.extend(translated.messages);
        self.ended |= translated.ended;
    }
}

/// Waits for the server to confirm the watch, then hands out its messages. Confirmation
/// matters: a watch from "now" (start revision 0) must see every write made after this returns.
pub(crate) async fn start(
    mut stream: etcd_client::WatchStream,
    endpoints: Arc<str>,
) -> Result<WatchStream, etcd_client::Error> {
    let remote = loop {
        let Some(response) = stream.message().await? else {
            return Err(etcd_client::Error::WatchError(
                "the server closed the watch stream before creating the watch".into(),
            ));
        };
        let created = response.created();
        let translated = translate(response.0);
        if let Some(reason) = &translated.cancel_reason
            && translated.messages.is_empty()
        {
            // Refused at creation ("etcdserver: no leader", ...): an error, not an empty watch.
            return Err(etcd_client::Error::GRpcStatus(tonic::Status::unavailable(
                reason.clone(),
            )));
        }
        if created || translated.ended || !translated.messages.is_empty() {
            break Remote {
                stream,
                pending: translated.messages.into(),
                ended: translated.ended,
                endpoints,
            };
        }
    };
    if remote.pending.is_empty() && remote.ended {
        return Ok(Box::pin(futures::stream::empty()));
    }
    Ok(Box::pin(futures::stream::unfold(
        remote,
        |mut remote| async move { remote.next().await.map(|message| (message, remote)) },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Subject, from_status};
    use etcd_client::proto::{PbEvent, PbKeyValue, PbResponseHeader};
    use hanode_kv::KvError;

    fn put(key: &str, revision: i64) -> PbEvent {
        PbEvent {
            r#type: 0,
            kv: Some(PbKeyValue {
                key: key.as_bytes().to_vec(),
                mod_revision: revision,
                create_revision: revision,
                version: 1,
                ..Default::default()
            }),
            prev_kv: None,
        }
    }

    fn revisions(t: &Translated) -> Vec<(i64, usize)> {
        t.messages
            .iter()
            .map(|m| match m {
                WatchMessage::Events { revision, events } => (*revision, events.len()),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    /// A catch-up response with several revisions becomes one message per revision.
    #[test]
    fn splits_a_batched_response_by_revision() {
        let t = translate(PbWatchResponse {
            events: vec![put("a", 5), put("b", 5), put("a", 6), put("c", 8)],
            ..Default::default()
        });
        assert_eq!(revisions(&t), vec![(5, 2), (6, 1), (8, 1)]);
        assert!(!t.ended);
    }

    #[test]
    fn compaction_ends_the_watch_with_its_revision() {
        let t = translate(PbWatchResponse {
            canceled: true,
            compact_revision: 12,
            cancel_reason: "etcdserver: mvcc: required revision has been compacted".into(),
            ..Default::default()
        });
        assert_eq!(
            t.messages,
            vec![WatchMessage::Compacted {
                compact_revision: 12
            }]
        );
        assert!(t.ended);
    }

    #[test]
    fn cancellation_ends_the_watch() {
        let t = translate(PbWatchResponse {
            canceled: true,
            cancel_reason: "etcdserver: no leader".into(),
            ..Default::default()
        });
        assert!(t.ended && t.messages.is_empty());
        let reason = tonic::Status::unavailable(t.cancel_reason.unwrap_or_default());
        assert_eq!(from_status(&reason, Subject::default()), KvError::NoLeader);
    }

    #[test]
    fn empty_response_is_progress_but_creation_is_not() {
        let header = Some(PbResponseHeader {
            revision: 40,
            ..Default::default()
        });
        let progress = translate(PbWatchResponse {
            header,
            ..Default::default()
        });
        assert_eq!(
            progress.messages,
            vec![WatchMessage::Progress { revision: 40 }]
        );
        let created = translate(PbWatchResponse {
            header,
            created: true,
            ..Default::default()
        });
        assert!(created.messages.is_empty() && !created.ended);
    }
}
