//! The REST surface: path parsing, authentication and authorization, verbs, subresources,
//! watches, and the audit and metrics of every request.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::admission::{self, FieldValidation};
use crate::audit::AuditEntry;
use crate::auth::{self, Attributes, Condition};
use crate::discovery;
use crate::patch::{self, PatchType};
use crate::resources::{self, ResourceType, Subresource};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult};
use crate::store::{ListOptions, ListPage, body_precondition, meta_str, metadata_mut, rfc3339};
use crate::table::{self, IncludeObject};
use crate::{ApiServer, ClientCertificate};

/// A request for objects of one resource type.
#[derive(Clone, Debug)]
struct Target {
    rt: &'static ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<Subresource>,
}

/// What a path addresses.
enum Route {
    Version,
    Api,
    Apis,
    GroupVersion(String, String),
    OpenApiIndex,
    OpenApi(String),
    OpenApiV2,
    Metrics,
    /// `kubectl auth can-i`: nothing stored, answered at once.
    AccessReview,
    /// `kubectl auth can-i --list`: likewise.
    RulesReview,
    Resource(Target),
}

fn parse_route(path: &str) -> ApiResult<Route> {
    let trimmed = path.trim_end_matches('/');
    let segments: Vec<&str> = trimmed.split('/').filter(|s| !s.is_empty()).collect();
    let not_found = || ApiError::no_route(path);
    match segments.as_slice() {
        ["version"] => Ok(Route::Version),
        ["api"] => Ok(Route::Api),
        ["apis"] => Ok(Route::Apis),
        ["metrics"] => Ok(Route::Metrics),
        ["openapi", "v3"] => Ok(Route::OpenApiIndex),
        ["openapi", "v2"] => Ok(Route::OpenApiV2),
        ["openapi", "v3", rest @ ..] => Ok(Route::OpenApi(rest.join("/"))),
        [
            "apis",
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
        ] => Ok(Route::AccessReview),
        [
            "apis",
            "authorization.k8s.io",
            "v1",
            "selfsubjectrulesreviews",
        ] => Ok(Route::RulesReview),
        ["api", version] => Ok(Route::GroupVersion(String::new(), (*version).to_string())),
        ["apis", group, version] => Ok(Route::GroupVersion(
            (*group).to_string(),
            (*version).to_string(),
        )),
        ["api", version, rest @ ..] => resource_target("", version, rest)
            .map(Route::Resource)
            .ok_or_else(not_found),
        ["apis", group, version, rest @ ..] => resource_target(group, version, rest)
            .map(Route::Resource)
            .ok_or_else(not_found),
        _ => Err(not_found()),
    }
}

fn resource_target(group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let target = |plural: &str,
                  namespace: Option<&str>,
                  name: Option<&str>,
                  sub: Option<&str>|
     -> Option<Target> {
        let rt = resources::find(group, version, plural)?;
        let sub = match sub {
            Some(s) => Some(Subresource::parse(s).filter(|s| rt.has(*s))?),
            None => None,
        };
        if namespace.is_some() && !rt.namespaced {
            return None;
        }
        Some(Target {
            rt,
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            sub,
        })
    };
    match rest {
        ["namespaces", ns, plural] => target(plural, Some(ns), None, None),
        ["namespaces", ns, plural, name] => target(plural, Some(ns), Some(name), None),
        ["namespaces", ns, plural, name, sub] => target(plural, Some(ns), Some(name), Some(sub)),
        [plural] => target(plural, None, None, None),
        [plural, name] => target(plural, None, Some(name), None),
        [plural, name, sub] => target(plural, None, Some(name), Some(sub)),
        _ => None,
    }
}

/// Query parameters, decoded.
#[derive(Default)]
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(uri: &Uri) -> ApiResult<Query> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(uri.query().unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))?;
        Ok(Query(pairs))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    fn dry_run(&self) -> bool {
        self.0.iter().any(|(k, v)| k == "dryRun" && v == "All")
    }

    fn list_options(&self) -> ApiResult<ListOptions> {
        let labels = LabelSelector::parse(self.get("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("invalid labelSelector: {e}")))?;
        let fields = FieldSelector::parse(self.get("fieldSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("invalid fieldSelector: {e}")))?;
        let limit = match self.get("limit") {
            None | Some("") => 0,
            Some(text) => text
                .parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("limit {text:?} is not a number")))?,
        };
        Ok(ListOptions {
            labels,
            fields,
            limit,
            continue_token: self
                .get("continue")
                .filter(|t| !t.is_empty())
                .map(str::to_string),
            resource_version: self.get("resourceVersion").map(str::to_string),
        })
    }
}

fn verb_of(method: &Method, target: &Target, query: &Query) -> &'static str {
    match (method, target.name.is_some()) {
        (&Method::GET, true) => "get",
        (&Method::GET, false) if query.flag("watch") => "watch",
        (&Method::GET, false) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => "unknown",
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &axum::http::HeaderName) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    // to_vec, not to_string: Display goes through core::fmt for every string it writes.
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (code, [(CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// A list as JSON, written around the items' text: `{"kind":..,"metadata":..,"items":[..]}`.
fn json_list_response(rt: &ResourceType, page: &ListPage<Vec<u8>>) -> Response {
    let mut metadata = json!({"resourceVersion": page.resource_version.to_string()});
    if let Some(token) = &page.continue_token {
        metadata["continue"] = json!(token);
    }
    if let Some(remaining) = page.remaining.filter(|r| *r > 0) {
        metadata["remainingItemCount"] = json!(remaining);
    }
    let head =
        json!({"kind": rt.list_kind(), "apiVersion": rt.api_version(), "metadata": metadata});
    let items: usize = page.items.iter().map(|i| i.len() + 1).sum();
    let mut body = Vec::with_capacity(items + 256);
    let head = head.to_string();
    // The head object without its closing brace; the items follow inside it.
    body.extend_from_slice(head.strip_suffix('}').unwrap_or(&head).as_bytes());
    body.extend_from_slice(br#","items":["#);
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item);
    }
    body.extend_from_slice(b"]}");
    (StatusCode::OK, [(CONTENT_TYPE, "application/json")], body).into_response()
}

fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        if let Ok(value) =
            HeaderValue::from_str(&format!("299 - \"{}\"", warning.replace('"', "'")))
        {
            response.headers_mut().append("warning", value);
        }
    }
    response
}

/// Everything the main handler needs about one request.
struct Call {
    target: Target,
    verb: &'static str,
    query: Query,
    headers: HeaderMap,
    body: Bytes,
    condition: Condition,
}

impl ApiServer {
    /// The router of the Kubernetes-style API (mount under the server's own routes).
    pub fn router(self: Arc<Self>) -> Router {
        Router::new().fallback(handle).with_state(self)
    }

    fn parse_body(&self, headers: &HeaderMap, body: &Bytes) -> ApiResult<Value> {
        if body.len() > self.config.max_body_bytes {
            return Err(ApiError::too_large(self.config.max_body_bytes));
        }
        let content_type = header(headers, &CONTENT_TYPE);
        let media = content_type.split(';').next().unwrap_or("").trim();
        match media {
            "" | "application/json" | "*/*" => serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
            }),
            "application/yaml" | "application/x-yaml" | "text/yaml" => {
                serde_yaml_ng::from_slice(body).map_err(|e| {
                    ApiError::bad_request(format!("the request body is not valid YAML: {e}"))
                })
            }
            _ if crate::protobuf::is_protobuf(content_type) => crate::protobuf::decode(body)
                .map_err(|e| {
                    ApiError::bad_request(format!(
                        "the protobuf request body cannot be decoded: {e}"
                    ))
                }),
            other => Err(ApiError::unsupported_media_type(format!(
                "the body content type {other:?} is not supported: send application/json, application/yaml or application/vnd.kubernetes.protobuf"
            ))),
        }
    }

    async fn dispatch(self: &Arc<Self>, call: Call) -> ApiResult<Response> {
        let Call {
            target,
            verb,
            query,
            headers,
            body,
            condition,
        } = call;
        let rt = target.rt;
        let ns = target.namespace.as_deref();
        let accept = header(&headers, &ACCEPT).to_string();
        let dry_run = query.dry_run();
        let validation = FieldValidation::parse(query.get("fieldValidation"));
        if verb != "list"
            && verb != "watch"
            && verb != "deletecollection"
            && verb != "create"
            && target.name.is_none()
        {
            return Err(ApiError::method_not_allowed(format!(
                "{verb} needs an object name"
            )));
        }
        match (verb, target.sub) {
            ("list", None) => {
                let options = query.list_options()?;
                if !table::wants_table(&accept) {
                    let page = self.store.list_json(rt, ns, &options).await?;
                    return Ok(json_list_response(rt, &page));
                }
                let include = IncludeObject::from_query(query.get("includeObject"));
                let builder = table::TableBuilder::new(rt.kind, include, self.store.clock().now());
                let page = self
                    .store
                    .list_map(rt, ns, &options, |object| builder.row(object))
                    .await?;
                let mut t = builder.finish(page.items, &page.resource_version.to_string());
                if let Some(token) = &page.continue_token {
                    t["metadata"]["continue"] = json!(token);
                }
                Ok(json_response(StatusCode::OK, &t))
            }
            ("watch", None) => self.watch(target, &query, &accept).await,
            ("get", None) => {
                let object = self
                    .store
                    .get(rt, ns, target.name.as_deref().unwrap_or_default())
                    .await?;
                if table::wants_table(&accept) {
                    let rv = meta_str(&object, "resourceVersion")
                        .unwrap_or("0")
                        .to_string();
                    let include = IncludeObject::from_query(query.get("includeObject"));
                    let t = table::table(
                        rt.kind,
                        std::slice::from_ref(&object),
                        &rv,
                        include,
                        self.store.clock().now(),
                    );
                    return Ok(json_response(StatusCode::OK, &t));
                }
                Ok(json_response(StatusCode::OK, &object))
            }
            ("get", Some(Subresource::Status)) => {
                let object = self
                    .store
                    .get(rt, ns, target.name.as_deref().unwrap_or_default())
                    .await?;
                Ok(json_response(StatusCode::OK, &object))
            }
            ("create", None) => {
                let mut object = self.parse_body(&headers, &body)?;
                self.name_from_generate_name(&mut object);
                if let Condition::NamedAs(allowed) = &condition
                    && meta_str(&object, "name") != Some(allowed.as_str())
                {
                    return Err(ApiError::forbidden(format!(
                        "node \"{allowed}\" may only create its own {} (named \"{allowed}\")",
                        rt.kind
                    )));
                }
                let warnings = admission::validate(rt, ns, &object, validation)?;
                if let Some(ns) = ns {
                    self.store.require_namespace(ns).await?;
                }
                admission::default(rt.kind, &mut object);
                self.allocate(rt, &mut object, dry_run).await?;
                let created = self.store.create(rt, ns, object, dry_run).await?;
                Ok(with_warnings(
                    json_response(StatusCode::CREATED, &created),
                    &warnings,
                ))
            }
            ("create", Some(Subresource::Binding)) => {
                self.bind(&target, &headers, &body, dry_run).await
            }
            ("update", sub @ (None | Some(Subresource::Status))) => {
                let object = self.parse_body(&headers, &body)?;
                let warnings = admission::validate(rt, ns, &object, validation)?;
                let name = target.name.clone().unwrap_or_default();
                if meta_str(&object, "name") != Some(name.as_str()) {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({}) does not match the name on the URL ({name})",
                        meta_str(&object, "name").unwrap_or_default()
                    )));
                }
                let precondition = body_precondition(&object)?;
                let status_only = sub == Some(Subresource::Status);
                let updated = self
                    .store
                    .update_with(rt, ns, &name, dry_run, |current| {
                        check_precondition(rt, &name, &current, precondition)?;
                        check_condition(&condition, &current)?;
                        let mut next = merge_status(rt, &current, object.clone(), status_only);
                        admission::default(rt.kind, &mut next);
                        Ok(next)
                    })
                    .await?;
                Ok(with_warnings(
                    json_response(StatusCode::OK, &updated),
                    &warnings,
                ))
            }
            ("patch", sub @ (None | Some(Subresource::Status))) => {
                let patch_type = PatchType::from_content_type(header(&headers, &CONTENT_TYPE)).ok_or_else(|| {
                    ApiError::unsupported_media_type(format!(
                        "the patch content type {:?} is not supported: use application/merge-patch+json, application/strategic-merge-patch+json or application/json-patch+json",
                        header(&headers, &CONTENT_TYPE)
                    ))
                })?;
                if body.len() > self.config.max_body_bytes {
                    return Err(ApiError::too_large(self.config.max_body_bytes));
                }
                let name = target.name.clone().unwrap_or_default();
                let status_only = sub == Some(Subresource::Status);
                let mut warnings = Vec::new();
                let updated = self
                    .store
                    .update_with(rt, ns, &name, dry_run, |current| {
                        check_condition(&condition, &current)?;
                        let patched = patch::apply(patch_type, rt.kind, &current, &body)
                            .map_err(patch_error)?;
                        let precondition = body_precondition(&patched)?;
                        if precondition.is_some()
                            && meta_str(&patched, "resourceVersion")
                                != meta_str(&current, "resourceVersion")
                        {
                            return Err(ApiError::conflict(rt.plural, rt.group, &name));
                        }
                        let mut next = merge_status(rt, &current, patched, status_only);
                        warnings = admission::validate(rt, ns, &next, validation)?;
                        admission::default(rt.kind, &mut next);
                        Ok(next)
                    })
                    .await?;
                Ok(with_warnings(
                    json_response(StatusCode::OK, &updated),
                    &warnings,
                ))
            }
            ("delete", None) => {
                let name = target.name.clone().unwrap_or_default();
                let options: Value = if body.is_empty() {
                    json!({})
                } else {
                    self.parse_body(&headers, &body).unwrap_or(json!({}))
                };
                let precondition = options
                    .get("preconditions")
                    .and_then(|p| p.get("resourceVersion"))
                    .and_then(Value::as_str)
                    .map(|rv| {
                        rv.parse::<i64>().map_err(|_| {
                            ApiError::bad_request("preconditions.resourceVersion is not a number")
                        })
                    })
                    .transpose()?;
                let dry_run = dry_run
                    || options
                        .get("dryRun")
                        .and_then(Value::as_array)
                        .is_some_and(|a| a.iter().any(|v| v == "All"));
                let deleted = self
                    .store
                    .delete(rt, ns, &name, precondition, dry_run)
                    .await?;
                Ok(json_response(StatusCode::OK, &deleted))
            }
            ("deletecollection", None) => {
                let options = query.list_options()?;
                let deleted = self
                    .store
                    .delete_collection(rt, ns, &options, dry_run)
                    .await?;
                let header = self.store.kv().current_header().await?;
                let list = json!({"kind": rt.list_kind(), "apiVersion": rt.api_version(),
                    "metadata": {"resourceVersion": header.revision.to_string()}, "items": deleted});
                Ok(json_response(StatusCode::OK, &list))
            }
            ("get", Some(Subresource::Scale)) => {
                let object = self
                    .store
                    .get(rt, ns, target.name.as_deref().unwrap_or_default())
                    .await?;
                Ok(json_response(StatusCode::OK, &scale_of(&object)?))
            }
            ("update" | "patch", Some(Subresource::Scale)) => {
                self.scale(&target, verb, &headers, &body, dry_run).await
            }
            (verb, sub) => Err(ApiError::method_not_allowed(format!(
                "{verb} is not supported on {}{}",
                rt.plural,
                sub.map(|s| format!("/{}", s.name())).unwrap_or_default()
            ))),
        }
    }

    fn name_from_generate_name(&self, object: &mut Value) {
        let has_name = meta_str(object, "name").is_some_and(|n| !n.is_empty());
        if has_name {
            return;
        }
        if let Some(prefix) = meta_str(object, "generateName").map(str::to_string) {
            const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
            let suffix: String = (0..5)
                .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
                .collect();
            metadata_mut(object).insert("name".into(), json!(format!("{prefix}{suffix}")));
        }
    }

    /// Assigns what the server owns: a Service's cluster IP.
    async fn allocate(
        &self,
        rt: &ResourceType,
        object: &mut Value,
        dry_run: bool,
    ) -> ApiResult<()> {
        if rt.kind != "Service" || dry_run {
            return Ok(());
        }
        let service_type = object
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP");
        let wanted = object
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("");
        if service_type == "ExternalName" || wanted == "None" || !wanted.is_empty() {
            return Ok(());
        }
        let ip = crate::services::allocate_cluster_ip(self.store.kv()).await?;
        object["spec"]["clusterIP"] = json!(ip);
        object["spec"]["clusterIPs"] = json!([ip]);
        Ok(())
    }

    async fn bind(
        &self,
        target: &Target,
        headers: &HeaderMap,
        body: &Bytes,
        dry_run: bool,
    ) -> ApiResult<Response> {
        let binding = self.parse_body(headers, body)?;
        let node = binding
            .pointer("/target/name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ApiError::bad_request("the Binding has no target.name"))?
            .to_string();
        let name = target.name.clone().unwrap_or_default();
        let rt = target.rt;
        self.store
            .update_with(
                rt,
                target.namespace.as_deref(),
                &name,
                dry_run,
                |mut pod| match pod.pointer("/spec/nodeName").and_then(Value::as_str) {
                    Some(current) if !current.is_empty() => Err(ApiError {
                        code: StatusCode::CONFLICT,
                        reason: "Conflict",
                        message: format!("pod {name} is already assigned to node \"{current}\""),
                        details: None,
                    }),
                    _ => {
                        pod["spec"]["nodeName"] = json!(node);
                        Ok(pod)
                    }
                },
            )
            .await?;
        Ok(json_response(
            StatusCode::CREATED,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        ))
    }

    async fn scale(
        &self,
        target: &Target,
        verb: &str,
        headers: &HeaderMap,
        body: &Bytes,
        dry_run: bool,
    ) -> ApiResult<Response> {
        let rt = target.rt;
        let name = target.name.clone().unwrap_or_default();
        let updated = self
            .store
            .update_with(
                rt,
                target.namespace.as_deref(),
                &name,
                dry_run,
                |mut object| {
                    let current_scale = scale_of(&object)?;
                    let new_scale = if verb == "patch" {
                        let patch_type =
                            PatchType::from_content_type(header(headers, &CONTENT_TYPE))
                                .ok_or_else(|| {
                                    ApiError::unsupported_media_type(
                                        "unsupported patch content type for scale",
                                    )
                                })?;
                        patch::apply(patch_type, "Scale", &current_scale, body)
                            .map_err(patch_error)?
                    } else {
                        serde_json::from_slice(body).map_err(|e| {
                            ApiError::bad_request(format!("the Scale body is not valid JSON: {e}"))
                        })?
                    };
                    let replicas = new_scale
                        .pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .filter(|r| *r >= 0)
                        .ok_or_else(|| {
                            ApiError::invalid(
                                "Scale",
                                "autoscaling",
                                &name,
                                vec![crate::status::Cause {
                                    reason: "FieldValueInvalid",
                                    message: "Invalid value: must be a non-negative integer".into(),
                                    field: "spec.replicas".into(),
                                }],
                            )
                        })?;
                    object["spec"]["replicas"] = json!(replicas);
                    Ok(object)
                },
            )
            .await?;
        Ok(json_response(StatusCode::OK, &scale_of(&updated)?))
    }

    async fn watch(
        self: &Arc<Self>,
        target: Target,
        query: &Query,
        accept: &str,
    ) -> ApiResult<Response> {
        let options = query.list_options()?;
        let rt = target.rt;
        let namespace = target.namespace.clone();
        let as_table = table::wants_table(accept);
        let include = IncludeObject::from_query(query.get("includeObject"));
        let bookmarks = query.flag("allowWatchBookmarks");
        let timeout = query
            .get("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .map(Duration::from_secs);
        let start = options.resource_version.clone().unwrap_or_default();
        let mut initial = Vec::new();
        let after = if start.is_empty() || start == "0" {
            // No resume point: the current objects as ADDED, then changes.
            let page = self
                .store
                .list(
                    rt,
                    namespace.as_deref(),
                    &ListOptions {
                        limit: 0,
                        continue_token: None,
                        ..options.clone()
                    },
                )
                .await?;
            initial = page
                .items
                .into_iter()
                .map(|object| crate::store::WatchEvent {
                    kind: "ADDED",
                    object,
                })
                .collect();
            page.resource_version
        } else {
            start.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!("resourceVersion {start:?} is not a number"))
            })?
        };
        let events = self.store.watch(rt, namespace, after, options).await?;
        let guard = self.metrics.watch_opened();
        let api = self.clone();
        let clock = self.store.clock().clone();
        let render = move |event: crate::store::WatchEvent, first: &mut bool| -> Bytes {
            let object = if as_table && event.kind != "ERROR" && event.kind != "BOOKMARK" {
                let rv = meta_str(&event.object, "resourceVersion")
                    .unwrap_or("0")
                    .to_string();
                let mut t = table::table(
                    rt.kind,
                    std::slice::from_ref(&event.object),
                    &rv,
                    include,
                    clock.now(),
                );
                if !*first && let Some(map) = t.as_object_mut() {
                    map.remove("columnDefinitions");
                }
                *first = false;
                t
            } else {
                event.object
            };
            let mut line = json!({"type": event.kind, "object": object})
                .to_string()
                .into_bytes();
            line.push(b'\n');
            Bytes::from(line)
        };
        let interval = api.config.bookmark_interval;
        let stream = async_stream(
            initial, events, bookmarks, interval, rt, api, render, timeout, guard,
        );
        let mut response = Response::new(Body::from_stream(stream));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(response)
    }
}

#[allow(clippy::too_many_arguments)]
fn async_stream<F>(
    initial: Vec<crate::store::WatchEvent>,
    events: futures::stream::BoxStream<'static, crate::store::WatchEvent>,
    bookmarks: bool,
    interval: Duration,
    rt: &'static ResourceType,
    api: Arc<ApiServer>,
    mut render: F,
    timeout: Option<Duration>,
    guard: crate::metrics::WatchGuard,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static
where
    F: FnMut(crate::store::WatchEvent, &mut bool) -> Bytes + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let _guard = guard;
        let mut first = true;
        for event in initial {
            if tx.send(render(event, &mut first)).await.is_err() {
                return;
            }
        }
        let mut events = events;
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            let sleep_until = deadline
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400 * 365));
            tokio::select! {
                event = events.next() => match event {
                    Some(event) => {
                        let error = event.kind == "ERROR";
                        if tx.send(render(event, &mut first)).await.is_err() || error {
                            return;
                        }
                    }
                    None => return,
                },
                _ = tick.tick(), if bookmarks => {
                    let Ok(header) = api.store.kv().current_header().await else { continue };
                    let object = json!({"kind": rt.kind, "apiVersion": rt.api_version(),
                        "metadata": {"resourceVersion": header.revision.to_string()}});
                    let event = crate::store::WatchEvent { kind: "BOOKMARK", object };
                    if tx.send(render(event, &mut first)).await.is_err() {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(sleep_until) => return,
                _ = tx.closed() => return,
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok)
}

fn patch_error(error: patch::PatchError) -> ApiError {
    match error {
        patch::PatchError::Malformed(text) => ApiError::bad_request(text),
        patch::PatchError::Invalid(text) => ApiError {
            code: StatusCode::UNPROCESSABLE_ENTITY,
            reason: "Invalid",
            message: text,
            details: None,
        },
        patch::PatchError::Unsupported(text) => ApiError::unsupported_media_type(text),
    }
}

fn check_precondition(
    rt: &ResourceType,
    name: &str,
    current: &Value,
    expected: Option<i64>,
) -> ApiResult<()> {
    if let Some(expected) = expected
        && meta_str(current, "resourceVersion") != Some(expected.to_string().as_str())
    {
        return Err(ApiError::conflict(rt.plural, rt.group, name));
    }
    Ok(())
}

fn check_condition(condition: &Condition, current: &Value) -> ApiResult<()> {
    match condition {
        Condition::None => Ok(()),
        Condition::NamedAs(_) => Ok(()),
        Condition::PodOnNode(node) => {
            if current.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node.as_str()) {
                Ok(())
            } else {
                Err(ApiError::forbidden(format!(
                    "node \"{node}\" can only update the status of pods bound to it"
                )))
            }
        }
    }
}

/// Writes through the main resource keep the stored status (when the type has a status
/// subresource); writes through `/status` change only the status.
fn merge_status(rt: &ResourceType, current: &Value, mut next: Value, status_only: bool) -> Value {
    if status_only {
        let mut merged = current.clone();
        merged["status"] = next.get("status").cloned().unwrap_or(json!({}));
        return merged;
    }
    if rt.has(Subresource::Status) {
        match current.get("status") {
            Some(status) => next["status"] = status.clone(),
            None => {
                if let Some(map) = next.as_object_mut() {
                    map.remove("status");
                }
            }
        }
    }
    next
}

/// The `autoscaling/v1 Scale` view of a Deployment or ReplicaSet.
fn scale_of(object: &Value) -> ApiResult<Value> {
    let selector = object
        .pointer("/spec/selector")
        .map(LabelSelector::from_label_selector)
        .transpose()
        .map_err(|e| ApiError::internal(format!("stored selector is invalid: {e}")))?
        .map(|s| s.to_string())
        .unwrap_or_default();
    let meta = object.get("metadata").cloned().unwrap_or(json!({}));
    let keep = [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ];
    let metadata: serde_json::Map<String, Value> = meta
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| keep.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": object.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0)},
        "status": {
            "replicas": object.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    }))
}

/// The single entry point: authenticate, authorize, dispatch, audit, count.
async fn handle(
    State(api): State<Arc<ApiServer>>,
    certificate: Option<Extension<ClientCertificate>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let certificate = certificate.and_then(|Extension(c)| c.0);
    let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let identity = auth::authenticate(certificate.as_ref(), authorization, &api.tokens);
    let path = uri.path().to_string();
    let mut audit = AuditEntry {
        timestamp: String::new(),
        user: identity
            .as_ref()
            .map(|i| i.user.clone())
            .unwrap_or_default(),
        groups: identity
            .as_ref()
            .map(|i| i.groups.clone())
            .unwrap_or_default(),
        verb: method.as_str().to_lowercase(),
        resource: path.clone(),
        subresource: None,
        namespace: None,
        name: None,
        code: 0,
        latency_ms: 0.0,
    };
    // The metric's resource label: bounded (a resource or a kind of path), never a raw path.
    let mut metric_resource = "unmatched".to_string();
    let result: ApiResult<Response> = async {
        // Read at most the limit, so an oversized body is refused before it is buffered whole.
        let limit = api.config.max_body_bytes;
        let body = axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| ApiError::too_large(limit))?;
        let route = parse_route(&path)?;
        metric_resource = match &route {
            Route::Version => "version".into(),
            Route::Api | Route::Apis | Route::GroupVersion(..) => "discovery".into(),
            Route::OpenApiIndex | Route::OpenApi(_) | Route::OpenApiV2 => "openapi".into(),
            Route::Metrics => "metrics".into(),
            Route::AccessReview => "selfsubjectaccessreviews".into(),
            Route::RulesReview => "selfsubjectrulesreviews".into(),
            Route::Resource(target) => target.rt.plural.into(),
        };
        if matches!(route, Route::Version) && method == Method::GET {
            return Ok(json_response(StatusCode::OK, &discovery::version()));
        }
        let identity = identity?;
        match route {
            Route::Version => Err(ApiError::method_not_allowed("only GET /version is served")),
            Route::Api => Ok(discovery::api(
                header(&headers, &ACCEPT),
                &api.config.server_address,
            )),
            Route::Apis => Ok(discovery::apis(header(&headers, &ACCEPT))),
            Route::GroupVersion(group, version) => discovery::resource_list(&group, &version)
                .map(|list| json_response(StatusCode::OK, &list))
                .ok_or_else(|| ApiError::no_route(&path)),
            Route::OpenApiIndex => Ok(json_response(StatusCode::OK, &discovery::openapi_index())),
            Route::OpenApiV2 => {
                if header(&headers, &ACCEPT).contains("protobuf") {
                    Ok((
                        [(CONTENT_TYPE, crate::openapi_v2::MEDIA_TYPE)],
                        crate::openapi_v2::document(),
                    )
                        .into_response())
                } else {
                    Ok(json_response(StatusCode::OK, &discovery::openapi_v2_json()))
                }
            }
            Route::OpenApi(rest) => discovery::openapi_group_version(&rest)
                .map(|doc| json_response(StatusCode::OK, &doc))
                .ok_or_else(|| ApiError::no_route(&path)),
            Route::Metrics => {
                if !identity.in_group(auth::MASTERS) {
                    return Err(ApiError::forbidden(format!(
                        "User \"{}\" cannot get path \"/metrics\"",
                        identity.user
                    )));
                }
                Ok((
                    [(CONTENT_TYPE, "text/plain; version=0.0.4")],
                    api.metrics.render(),
                )
                    .into_response())
            }
            Route::AccessReview => {
                audit.resource = "selfsubjectaccessreviews".into();
                if method != Method::POST {
                    return Err(ApiError::method_not_allowed(
                        "selfsubjectaccessreviews are only created (POST)",
                    ));
                }
                audit.verb = "create".into();
                let review = api.parse_body(&headers, &body)?;
                let spec = review.get("spec").cloned().unwrap_or_else(|| json!({}));
                let (allowed, reason) = auth::review(&identity, &spec)?;
                let mut status = json!({"allowed": allowed});
                if !reason.is_empty() {
                    status["reason"] = json!(reason);
                }
                let answer = json!({
                    "kind": "SelfSubjectAccessReview",
                    "apiVersion": "authorization.k8s.io/v1",
                    "metadata": {"creationTimestamp": null},
                    "spec": spec,
                    "status": status,
                });
                Ok(json_response(StatusCode::CREATED, &answer))
            }
            Route::RulesReview => {
                audit.resource = "selfsubjectrulesreviews".into();
                if method != Method::POST {
                    return Err(ApiError::method_not_allowed(
                        "selfsubjectrulesreviews are only created (POST)",
                    ));
                }
                audit.verb = "create".into();
                let review = api.parse_body(&headers, &body)?;
                let spec = review.get("spec").cloned().unwrap_or_else(|| json!({}));
                let namespace = spec.get("namespace").and_then(Value::as_str).unwrap_or("");
                let (resource_rules, non_resource_rules, incomplete) =
                    auth::rules(&identity, namespace);
                let answer = json!({
                    "kind": "SelfSubjectRulesReview",
                    "apiVersion": "authorization.k8s.io/v1",
                    "metadata": {"creationTimestamp": null},
                    "spec": spec,
                    "status": {
                        "resourceRules": resource_rules,
                        "nonResourceRules": non_resource_rules,
                        "incomplete": incomplete,
                    },
                });
                Ok(json_response(StatusCode::CREATED, &answer))
            }
            Route::Resource(target) => {
                let query = Query::parse(&uri)?;
                let verb = verb_of(&method, &target, &query);
                audit.verb = verb.to_string();
                audit.resource = target.rt.plural.to_string();
                audit.subresource = target.sub.map(|s| s.name().to_string());
                audit.namespace = target.namespace.clone();
                audit.name = target.name.clone();
                let attrs = Attributes {
                    verb,
                    group: target.rt.group,
                    resource: target.rt.plural,
                    subresource: target.sub.map(Subresource::name),
                    namespace: target.namespace.as_deref(),
                    name: target.name.as_deref(),
                };
                let condition = auth::authorize(&identity, &attrs)?;
                api.dispatch(Call {
                    target,
                    verb,
                    query,
                    headers: headers.clone(),
                    body,
                    condition,
                })
                .await
            }
        }
    }
    .await;
    let response = result.unwrap_or_else(IntoResponse::into_response);
    let latency = started.elapsed();
    audit.code = response.status().as_u16();
    audit.latency_ms = latency.as_secs_f64() * 1000.0;
    audit.timestamp = rfc3339(api.store.clock().now());
    api.metrics
        .observe(&audit.verb, &metric_resource, audit.code, latency);
    if let Some(log) = &api.audit {
        log.record(&audit);
    }
    response
}
