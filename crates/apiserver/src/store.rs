//! Objects in the store: JSON values under `/registry/...`, with Kubernetes metadata rules.
//!
//! `metadata.resourceVersion` is never stored; it is the key's mod revision, set on every read.
//! Writes are compare-and-swap transactions on that revision, so a stale update gets 409 Conflict
//! and concurrent creates of one name get exactly one success.

use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine;
use futures::StreamExt;
use serde_json::{Map, Value, json};

use hanode_kv::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, EventType, KeyValue, KvBackend,
    PutRequest, RangeRequest, RequestOp, TxnRequest, WatchMessage, WatchRequest, prefix_end,
};

use crate::resources::{RESOURCES, ResourceType};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult};

/// Wall-clock reads go through this, so tests can fix time.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> SystemTime;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// RFC 3339 with second precision, as Kubernetes writes timestamps.
pub fn rfc3339(time: SystemTime) -> String {
    let seconds = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    jiff::Timestamp::from_second(seconds)
        .map_or_else(|_| "1970-01-01T00:00:00Z".into(), |t| t.to_string())
}

/// A new random UID in UUID v4 form.
pub fn new_uid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[0],
        b[1],
        b[2],
        b[3],
        b[4],
        b[5],
        b[6],
        b[7],
        b[8],
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    )
}

/// `metadata` of an object, created if missing.
pub fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    match object.get_mut("metadata") {
        Some(Value::Object(map)) => map,
        _ => unreachable!("metadata was just made an object"),
    }
}

/// A string field of `metadata`.
pub fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

/// Options of a list or watch.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `limit` (0 = all).
    pub limit: usize,
    /// `continue` token.
    pub continue_token: Option<String>,
    /// `resourceVersion` ("" or "0" or a number).
    pub resource_version: Option<String>,
}

/// A page of a list: objects as JSON values, or as the JSON text served ([`Store::list_json`]).
#[derive(Clone, Debug)]
pub struct ListPage<T = Value> {
    /// Matching objects.
    pub items: Vec<T>,
    /// Store revision the page was read at.
    pub resource_version: i64,
    /// Token for the next page.
    pub continue_token: Option<String>,
    /// Matching items after this page, when known.
    pub remaining: Option<i64>,
}

/// One watch event.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchEvent {
    /// ADDED, MODIFIED, DELETED, BOOKMARK or ERROR.
    pub kind: &'static str,
    /// The object (or a Status for ERROR).
    pub object: Value,
}

/// Objects of every resource type, over a key-value store.
#[derive(Clone)]
pub struct ObjectStore {
    kv: Arc<dyn KvBackend>,
    clock: Arc<dyn Clock>,
}

fn parse_rv(text: &str) -> ApiResult<i64> {
    text.parse::<i64>()
        .map_err(|_| ApiError::bad_request(format!("resourceVersion {text:?} is not a number")))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: i64,
    start: String,
}

impl ObjectStore {
    /// A store over `kv`.
    pub fn new(kv: Arc<dyn KvBackend>, clock: Arc<dyn Clock>) -> ObjectStore {
        ObjectStore { kv, clock }
    }

    /// The key-value store.
    pub fn kv(&self) -> &Arc<dyn KvBackend> {
        &self.kv
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The object stored in `kv`, with kind, apiVersion and resourceVersion set.
    pub fn decode(rt: &ResourceType, kv: &KeyValue) -> ApiResult<Value> {
        let mut object: Value = serde_json::from_slice(&kv.value).map_err(|e| {
            ApiError::internal(format!(
                "stored object {} is not JSON: {e}",
                String::from_utf8_lossy(&kv.key)
            ))
        })?;
        object["apiVersion"] = json!(rt.api_version());
        object["kind"] = json!(rt.kind);
        metadata_mut(&mut object)
            .insert("resourceVersion".into(), json!(kv.mod_revision.to_string()));
        Ok(object)
    }

    fn encode(object: &Value) -> Vec<u8> {
        let mut stored = object.clone();
        if let Some(Value::Object(meta)) = stored.get_mut("metadata") {
            meta.remove("resourceVersion");
            meta.remove("selfLink");
        }
        serde_json::to_vec(&stored).unwrap_or_default()
    }

    /// Reads one object (linearizably).
    pub async fn get(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<Value> {
        self.get_opt(rt, namespace, name)
            .await?
            .ok_or_else(|| ApiError::not_found(rt.plural, rt.group, name))
    }

    /// Reads one object if it exists.
    pub async fn get_opt(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<Option<Value>> {
        let key = rt.key(namespace, name).into_bytes();
        let resp = self
            .kv
            .range(RangeRequest {
                key,
                ..Default::default()
            })
            .await?;
        resp.kvs.first().map(|kv| Self::decode(rt, kv)).transpose()
    }

    /// Fails with 404 `namespaces "x" not found` unless the namespace exists.
    pub async fn require_namespace(&self, namespace: &str) -> ApiResult<()> {
        let key = format!("/registry/namespaces/{namespace}").into_bytes();
        let resp = self
            .kv
            .range(RangeRequest {
                key,
                count_only: true,
                ..Default::default()
            })
            .await?;
        if resp.count == 0 {
            return Err(ApiError::not_found("namespaces", "", namespace));
        }
        Ok(())
    }

    /// The stored object as served, as JSON text. Objects in the form [`Self::encode`] writes
    /// (`{"apiVersion":..,"kind":..,"metadata":{"..`) get their resourceVersion spliced in
    /// without building a JSON tree, which dominated the cost of large lists; anything else
    /// goes through [`Self::decode`]. Either way the text is checked to be JSON.
    pub fn served_json(rt: &ResourceType, kv: &KeyValue) -> ApiResult<Vec<u8>> {
        let head = format!(
            r#"{{"apiVersion":"{}","kind":"{}","metadata":{{"#,
            rt.api_version(),
            rt.kind
        );
        if let Some(rest) = kv.value.strip_prefix(head.as_bytes())
            && rest.first() == Some(&b'"')
            && serde_json::from_slice::<serde::de::IgnoredAny>(&kv.value).is_ok()
        {
            let mut out = Vec::with_capacity(kv.value.len() + 48);
            out.extend_from_slice(head.as_bytes());
            out.extend_from_slice(
                format!(r#""resourceVersion":"{}","#, kv.mod_revision).as_bytes(),
            );
            out.extend_from_slice(rest);
            return Ok(out);
        }
        let object = Self::decode(rt, kv)?;
        Ok(serde_json::to_vec(&object).unwrap_or_default())
    }

    /// Lists objects, in key order, filtered by selectors, paged by `limit`/`continue`.
    pub async fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> ApiResult<ListPage> {
        self.list_map(rt, namespace, options, |object| object).await
    }

    /// [`Self::list`] with each selected object turned into an item by `map` as it is read.
    pub async fn list_map<T>(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        options: &ListOptions,
        map: impl Fn(Value) -> T,
    ) -> ApiResult<ListPage<T>> {
        self.scan(rt, namespace, options, |kv| {
            Ok(Self::selected(rt, kv, options)?.map(&map))
        })
        .await
    }

    /// [`Self::list`] as JSON text per object, for lists without selectors (nothing needs
    /// the parsed object). With selectors it parses, like [`Self::list`].
    pub async fn list_json(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> ApiResult<ListPage<Vec<u8>>> {
        let unfiltered = options.labels.is_empty() && options.fields.is_empty();
        self.scan(rt, namespace, options, |kv| {
            if unfiltered {
                return Self::served_json(rt, kv).map(Some);
            }
            let object = Self::selected(rt, kv, options)?;
            Ok(object.map(|o| serde_json::to_vec(&o).unwrap_or_default()))
        })
        .await
    }

    /// The stored object, decoded, if the list's selectors keep it.
    fn selected(
        rt: &ResourceType,
        kv: &KeyValue,
        options: &ListOptions,
    ) -> ApiResult<Option<Value>> {
        let object = Self::decode(rt, kv)?;
        let keep = options.labels.matches_object(&object) && options.fields.matches(&object);
        Ok(keep.then_some(object))
    }

    /// The scan behind the lists: `item` turns each stored object into a list item, or `None`
    /// when the selectors leave it out.
    async fn scan<T>(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        options: &ListOptions,
        item: impl Fn(&KeyValue) -> ApiResult<Option<T>>,
    ) -> ApiResult<ListPage<T>> {
        let prefix = match namespace {
            Some(ns) if rt.namespaced => rt.namespace_prefix(ns),
            _ => rt.prefix(),
        };
        let end = prefix_end(prefix.as_bytes());
        let (mut start, mut revision, serializable) = match &options.continue_token {
            Some(token) => {
                let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(token)
                    .map_err(|_| ApiError::bad_request("the continue token is not valid"))?;
                let token: ContinueToken = serde_json::from_slice(&bytes)
                    .map_err(|_| ApiError::bad_request("the continue token is not valid"))?;
                if !token.start.starts_with(&prefix) {
                    return Err(ApiError::bad_request(
                        "the continue token belongs to another list",
                    ));
                }
                (token.start.into_bytes(), token.rv, false)
            }
            None => {
                // "0" asks for any version: a local (serializable) read is fine.
                let serializable = options.resource_version.as_deref() == Some("0");
                (prefix.clone().into_bytes(), 0, serializable)
            }
        };
        if let Some(name) = options.fields.exact_name() {
            // A point read instead of a scan (kubectl wait/delete use metadata.name=...).
            let key = format!("{prefix}{name}");
            if start.as_slice() > key.as_bytes() {
                return Ok(ListPage {
                    items: Vec::new(),
                    resource_version: revision,
                    continue_token: None,
                    remaining: None,
                });
            }
            start = key.into_bytes();
        }
        let mut items = Vec::new();
        let chunk = if options.limit == 0 {
            0
        } else {
            (options.limit * 2).max(64) as i64
        };
        loop {
            let req = RangeRequest {
                key: start.clone(),
                range_end: if options.fields.exact_name().is_some() {
                    Vec::new()
                } else {
                    end.clone()
                },
                limit: chunk,
                revision,
                serializable,
                ..Default::default()
            };
            let resp = self.kv.range(req).await?;
            if revision == 0 {
                revision = resp.header.revision;
            }
            let mut next_start = None;
            for kv in &resp.kvs {
                if let Some(object) = item(kv)? {
                    items.push(object);
                    if options.limit > 0 && items.len() == options.limit {
                        let mut after = kv.key.clone();
                        after.push(0);
                        next_start = Some(after);
                        break;
                    }
                }
            }
            if let Some(after) = next_start {
                let more = self
                    .kv
                    .range(RangeRequest {
                        key: after.clone(),
                        range_end: end.clone(),
                        revision,
                        count_only: true,
                        serializable,
                        ..Default::default()
                    })
                    .await?;
                let continue_token = (more.count > 0).then(|| {
                    let token = ContinueToken {
                        rv: revision,
                        start: String::from_utf8_lossy(&after).into_owned(),
                    };
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(serde_json::to_vec(&token).unwrap_or_default())
                });
                let remaining =
                    (options.labels.is_empty() && options.fields.is_empty()).then_some(more.count);
                return Ok(ListPage {
                    items,
                    resource_version: revision,
                    continue_token,
                    remaining,
                });
            }
            if !resp.more {
                return Ok(ListPage {
                    items,
                    resource_version: revision,
                    continue_token: None,
                    remaining: None,
                });
            }
            let Some(last) = resp.kvs.last() else {
                return Ok(ListPage {
                    items,
                    resource_version: revision,
                    continue_token: None,
                    remaining: None,
                });
            };
            start = last.key.clone();
            start.push(0);
        }
    }

    /// Creates an object; 409 AlreadyExists if the name is taken.
    pub async fn create(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        mut object: Value,
        dry_run: bool,
    ) -> ApiResult<Value> {
        let now = rfc3339(self.clock.now());
        let name = meta_str(&object, "name").unwrap_or_default().to_string();
        let meta = metadata_mut(&mut object);
        meta.insert("uid".into(), json!(new_uid()));
        meta.insert("creationTimestamp".into(), json!(now));
        meta.remove("resourceVersion");
        meta.remove("deletionTimestamp");
        if let Some(ns) = namespace.filter(|_| rt.namespaced) {
            meta.insert("namespace".into(), json!(ns));
        } else {
            meta.remove("namespace");
        }
        if object.get("spec").is_some() {
            metadata_mut(&mut object).insert("generation".into(), json!(1));
        }
        object["apiVersion"] = json!(rt.api_version());
        object["kind"] = json!(rt.kind);
        if dry_run {
            return Ok(object);
        }
        let key = rt.key(namespace, &name).into_bytes();
        // Create revision 0: the key does not exist.
        if !self
            .put_if(key, CompareTarget::Create(0), &mut object)
            .await?
        {
            return Err(ApiError::already_exists(rt.plural, rt.group, &name));
        }
        Ok(object)
    }

    /// Writes `object` over the stored one if its revision is still `expected`; 409 otherwise.
    pub async fn write_if(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        mut object: Value,
        expected: i64,
    ) -> ApiResult<Value> {
        let key = rt.key(namespace, name).into_bytes();
        if !self
            .put_if(key, CompareTarget::Mod(expected), &mut object)
            .await?
        {
            return Err(ApiError::conflict(rt.plural, rt.group, name));
        }
        Ok(object)
    }

    /// Stores `object` at `key` if the key's `target` compares equal, in one transaction;
    /// on success sets the object's resourceVersion to the write's revision.
    async fn put_if(
        &self,
        key: Vec<u8>,
        target: CompareTarget,
        object: &mut Value,
    ) -> ApiResult<bool> {
        let txn = TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Equal,
                target,
                key: key.clone(),
                range_end: Vec::new(),
            }],
            success: vec![RequestOp::Put(PutRequest {
                key,
                value: Self::encode(object),
                ..Default::default()
            })],
            failure: Vec::new(),
        };
        let resp = self.kv.txn(txn).await?;
        if resp.succeeded {
            metadata_mut(object).insert(
                "resourceVersion".into(),
                json!(resp.header.revision.to_string()),
            );
        }
        Ok(resp.succeeded)
    }

    /// Read-modify-write with retries on concurrent changes: `change` gets the current object
    /// (its resourceVersion set) and returns the new one. A precondition (a resourceVersion the
    /// caller sent) is checked by `change` itself.
    pub async fn update_with<F>(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        dry_run: bool,
        mut change: F,
    ) -> ApiResult<Value>
    where
        F: FnMut(Value) -> ApiResult<Value>,
    {
        for _ in 0..8 {
            let current = self.get(rt, namespace, name).await?;
            let revision = parse_rv(meta_str(&current, "resourceVersion").unwrap_or("0"))?;
            let mut next = change(current.clone())?;
            preserve_system_fields(&current, &mut next);
            next["apiVersion"] = json!(rt.api_version());
            next["kind"] = json!(rt.kind);
            if next.get("spec") != current.get("spec") || next.get("data") != current.get("data") {
                let generation = current
                    .get("metadata")
                    .and_then(|m| m.get("generation"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                if next.get("spec").is_some() {
                    metadata_mut(&mut next).insert("generation".into(), json!(generation + 1));
                }
            }
            if dry_run {
                return Ok(next);
            }
            if strip_rv(&next) == strip_rv(&current) {
                // Nothing changed: no new revision, like Kubernetes.
                return Ok(current);
            }
            match self.write_if(rt, namespace, name, next, revision).await {
                Err(e) if e.reason == "Conflict" => continue,
                other => return other,
            }
        }
        Err(ApiError::conflict(rt.plural, rt.group, name))
    }

    /// Deletes an object (and, for a namespace, everything in it); returns its last state.
    pub async fn delete(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        precondition_rv: Option<i64>,
        dry_run: bool,
    ) -> ApiResult<Value> {
        let current = self.get(rt, namespace, name).await?;
        let revision = parse_rv(meta_str(&current, "resourceVersion").unwrap_or("0"))?;
        if let Some(expected) = precondition_rv
            && expected != revision
        {
            return Err(ApiError::conflict(rt.plural, rt.group, name));
        }
        if dry_run {
            return Ok(current);
        }
        let key = rt.key(namespace, name).into_bytes();
        let mut ops = vec![RequestOp::DeleteRange(DeleteRangeRequest {
            key: key.clone(),
            ..Default::default()
        })];
        if rt.kind == "Namespace" && rt.group.is_empty() {
            for other in RESOURCES.iter().filter(|r| r.namespaced) {
                let prefix = other.namespace_prefix(name);
                ops.push(RequestOp::DeleteRange(DeleteRangeRequest {
                    range_end: prefix_end(prefix.as_bytes()),
                    key: prefix.into_bytes(),
                    prev_kv: false,
                }));
            }
        }
        let txn = TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Equal,
                target: CompareTarget::Mod(revision),
                key,
                range_end: Vec::new(),
            }],
            success: ops,
            failure: Vec::new(),
        };
        let resp = self.kv.txn(txn).await?;
        if !resp.succeeded {
            return Err(ApiError::conflict(rt.plural, rt.group, name));
        }
        let mut last = current;
        metadata_mut(&mut last).insert(
            "resourceVersion".into(),
            json!(resp.header.revision.to_string()),
        );
        Ok(last)
    }

    /// Deletes every object a list would return; returns them.
    pub async fn delete_collection(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        options: &ListOptions,
        dry_run: bool,
    ) -> ApiResult<Vec<Value>> {
        let page = self
            .list(
                rt,
                namespace,
                &ListOptions {
                    limit: 0,
                    continue_token: None,
                    ..options.clone()
                },
            )
            .await?;
        let mut deleted = Vec::new();
        for object in page.items {
            let name = meta_str(&object, "name").unwrap_or_default().to_string();
            let ns = meta_str(&object, "namespace").map(str::to_string);
            match self.delete(rt, ns.as_deref(), &name, None, dry_run).await {
                Ok(gone) => deleted.push(gone),
                Err(e) if e.reason == "NotFound" => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }

    /// Events on objects of `rt` (in `namespace`) after `after_revision`, filtered by the
    /// selectors: objects moving into the selection are ADDED, out of it DELETED.
    pub async fn watch(
        &self,
        rt: &'static ResourceType,
        namespace: Option<String>,
        after_revision: i64,
        options: ListOptions,
    ) -> ApiResult<futures::stream::BoxStream<'static, WatchEvent>> {
        let prefix = match namespace.as_deref() {
            Some(ns) if rt.namespaced => rt.namespace_prefix(ns),
            _ => rt.prefix(),
        };
        let (key, range_end) = match options.fields.exact_name() {
            Some(name) => (format!("{prefix}{name}").into_bytes(), Vec::new()),
            None => (prefix.clone().into_bytes(), prefix_end(prefix.as_bytes())),
        };
        let stream = self
            .kv
            .watch(WatchRequest {
                key,
                range_end,
                start_revision: after_revision + 1,
                prev_kv: true,
                ..Default::default()
            })
            .await?;
        let events = stream.flat_map(move |message| {
            let out: Vec<WatchEvent> = match message {
                WatchMessage::Events { events, .. } => events
                    .into_iter()
                    .filter_map(|event| translate(rt, &options, event))
                    .collect(),
                WatchMessage::Compacted { compact_revision } => vec![WatchEvent {
                    kind: "ERROR",
                    object: ApiError::expired(format!(
                        "too old resource version: {after_revision} ({compact_revision})"
                    ))
                    .to_status(),
                }],
                WatchMessage::Progress { .. } => Vec::new(),
            };
            futures::stream::iter(out)
        });
        Ok(events.boxed())
    }
}

fn translate(
    rt: &ResourceType,
    options: &ListOptions,
    event: hanode_kv::Event,
) -> Option<WatchEvent> {
    let matches =
        |object: &Value| options.labels.matches_object(object) && options.fields.matches(object);
    let previous = event
        .prev_kv
        .as_ref()
        .and_then(|kv| ObjectStore::decode(rt, kv).ok());
    let was = previous.as_ref().is_some_and(matches);
    match event.kind {
        EventType::Put => {
            let object = ObjectStore::decode(rt, &event.kv).ok()?;
            let is = matches(&object);
            match (was, is) {
                (_, true) if previous.is_none() => Some(WatchEvent {
                    kind: "ADDED",
                    object,
                }),
                (true, true) => Some(WatchEvent {
                    kind: "MODIFIED",
                    object,
                }),
                (false, true) => Some(WatchEvent {
                    kind: "ADDED",
                    object,
                }),
                (true, false) => Some(WatchEvent {
                    kind: "DELETED",
                    object,
                }),
                (false, false) => None,
            }
        }
        EventType::Delete => {
            let mut object = previous?;
            if !was {
                return None;
            }
            metadata_mut(&mut object).insert(
                "resourceVersion".into(),
                json!(event.kv.mod_revision.to_string()),
            );
            Some(WatchEvent {
                kind: "DELETED",
                object,
            })
        }
    }
}

fn strip_rv(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(Value::Object(meta)) = copy.get_mut("metadata") {
        meta.remove("resourceVersion");
    }
    copy
}

/// Fields clients may not change: uid, creationTimestamp, namespace, name.
fn preserve_system_fields(current: &Value, next: &mut Value) {
    let meta = metadata_mut(next);
    for field in [
        "uid",
        "creationTimestamp",
        "name",
        "namespace",
        "generation",
    ] {
        match current.get("metadata").and_then(|m| m.get(field)) {
            Some(value) => {
                meta.insert(field.into(), value.clone());
            }
            None => {
                meta.remove(field);
            }
        }
    }
    meta.remove("resourceVersion");
}

/// The resourceVersion a write must match, from the body (`metadata.resourceVersion`).
pub fn body_precondition(object: &Value) -> ApiResult<Option<i64>> {
    match meta_str(object, "resourceVersion") {
        None | Some("") => Ok(None),
        Some(text) => parse_rv(text).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(value: Vec<u8>) -> KeyValue {
        KeyValue {
            key: b"/registry/pods/default/web".to_vec(),
            value,
            mod_revision: 42,
            create_revision: 40,
            version: 3,
            lease: 0,
        }
    }

    /// The spliced text and the parsed object are the same object.
    #[test]
    fn served_json_matches_decode() {
        let pods = crate::resources::find("", "v1", "pods").expect("pods");
        let object = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]},
        });
        let kv = stored(ObjectStore::encode(&object));
        let served: Value =
            serde_json::from_slice(&ObjectStore::served_json(pods, &kv).expect("served"))
                .expect("json");
        assert_eq!(served, ObjectStore::decode(pods, &kv).expect("decoded"));
        assert_eq!(served["metadata"]["resourceVersion"], "42");
    }

    /// Stored text in another shape (another writer, another key order) is parsed instead;
    /// text that is not JSON is an error, never passed on.
    #[test]
    fn served_json_parses_what_it_cannot_splice() {
        let pods = crate::resources::find("", "v1", "pods").expect("pods");
        let kv = stored(br#"{"metadata":{"name":"web"},"kind":"Pod","apiVersion":"v1"}"#.to_vec());
        let served: Value =
            serde_json::from_slice(&ObjectStore::served_json(pods, &kv).expect("served"))
                .expect("json");
        assert_eq!(served["metadata"]["resourceVersion"], "42");
        assert_eq!(served["kind"], "Pod");

        let broken = stored(br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"#.to_vec());
        assert!(ObjectStore::served_json(pods, &broken).is_err());
    }
}
