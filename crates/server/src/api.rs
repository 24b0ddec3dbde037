//! The HTTPS API port: health, the join flow, and hanode's own member and status endpoints.
//! (The Kubernetes-style API is mounted here too once it exists.)

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use hanode_kv::KvBackend;
use hanode_pki::CertKey;
use hanode_store::{LearnerState, ServerState, StoreNode};
use hanode_types::{format_id, parse_id};

use crate::certs::{MASTERS_ORG, PEER_ORG};
use crate::join::{CACERTS_PATH, JOIN_PATH, JoinHandler, JoinRequest};
use hanode_apiserver::ClientCertificate;
use hanode_apiserver::status::ApiError;

/// How long `/readyz` waits for the store barrier.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Requires a client certificate in one of `orgs`.
fn require(identity: &ClientCertificate, orgs: &[&str]) -> Result<(), ApiError> {
    match &identity.0 {
        None => Err(ApiError::unauthorized(
            "a client certificate is required (for example <data-dir>/pki/admin.crt and admin.key)",
        )),
        Some(id) if !id.organizations.iter().any(|o| orgs.contains(&o.as_str())) => {
            Err(ApiError::forbidden(format!(
                "user {:?} may not use this endpoint; it needs a certificate of group {}",
                id.common_name,
                orgs.join(" or ")
            )))
        }
        Some(_) => Ok(()),
    }
}

/// What the API handlers of a store member share.
pub struct ApiState {
    /// The store member.
    pub node: StoreNode,
    /// The cluster CA certificate.
    pub ca_pem: String,
    /// This server's client identity for calls to other members.
    pub admin: CertKey,
    /// This member's name.
    pub node_name: String,
}

/// One member's own view, from `/hanode/v1/local-status`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LocalStatus {
    /// Member id (hex).
    pub id: String,
    /// Member name.
    pub name: String,
    /// Raft role: leader, follower, learner, candidate.
    pub role: String,
    /// Leader id as this member sees it (hex), empty if none.
    pub leader: String,
    /// Current term.
    pub term: u64,
    /// Last log index.
    pub last_log_index: u64,
    /// Last applied index.
    pub applied_index: u64,
    /// Whether `/readyz` would say ok.
    pub ready: bool,
    /// Why not, if not.
    pub error: String,
}

/// One member in `hanode member list` / `hanode status`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberView {
    /// Member id (hex).
    pub id: String,
    /// Name (empty until started).
    pub name: String,
    /// voter or learner.
    pub role: String,
    /// For learners: why it is one.
    pub note: String,
    /// Peer URL.
    pub peer_url: String,
    /// etcd client URLs.
    pub client_urls: Vec<String>,
    /// API URL.
    pub api_url: String,
    /// True for the current leader.
    pub is_leader: bool,
    /// The member's own status, when it answered.
    pub status: Option<LocalStatus>,
    /// Why it did not answer.
    pub status_error: String,
}

/// Builds the API router of a store member (health, member and status endpoints).
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/healthz", get(readyz))
        .route("/hanode/v1/local-status", get(local_status))
        .route("/hanode/v1/members", get(members))
        .route("/hanode/v1/status", get(cluster_status))
        .route("/hanode/v1/members/{id}/{action}", post(change_member))
        .with_state(state)
}

/// What joiners use: `/cacerts` and the join endpoint.
pub fn join_router(joins: Arc<JoinHandler>, ca_pem: String) -> Router {
    Router::new()
        .route(
            CACERTS_PATH,
            get(move || async move {
                ([("content-type", "application/x-pem-file")], ca_pem).into_response()
            }),
        )
        .route(JOIN_PATH, post(join))
        .with_state(joins)
}

/// Health of a control-plane server: its store is the remote storage endpoints.
pub fn control_plane_router(store: Arc<dyn KvBackend>) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(control_plane_readyz))
        .route("/healthz", get(control_plane_readyz))
        .route("/hanode/v1/{*rest}", axum::routing::any(no_store_member))
        .with_state(store)
}

async fn no_store_member() -> ApiError {
    ApiError::not_found_message(
        "this is a --role control-plane server: it has no store member; run hanode status or member commands against a storage server (--server https://STORAGE:6443)",
    )
}

async fn control_plane_readyz(
    State(store): State<Arc<dyn KvBackend>>,
    Query(query): Query<ReadyQuery>,
) -> Response {
    // A linearizable read needs a quorum of the storage cluster.
    let quorum = match tokio::time::timeout(
        READY_TIMEOUT,
        store.range(hanode_kv::RangeRequest {
            key: b"/hanode/readyz".to_vec(),
            count_only: true,
            ..Default::default()
        }),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!(
            "the storage endpoints did not answer a linearizable read: {e}"
        )),
        Err(_) => Err(format!(
            "the storage endpoints did not answer a linearizable read within {READY_TIMEOUT:?}"
        )),
    };
    ready_response(
        &[("ping", Ok(())), ("store-quorum", quorum)],
        query.verbose.is_some(),
    )
}

#[derive(Deserialize)]
struct ReadyQuery {
    verbose: Option<String>,
}

/// The checks behind `/readyz`: a leader is known, and this member has applied what the
/// leader had committed when asked.
async fn ready_checks(node: &StoreNode) -> Vec<(&'static str, Result<(), String>)> {
    let leader = match node.leader() {
        Some(_) => Ok(()),
        None => Err("this member sees no leader".to_string()),
    };
    let store = match leader {
        Ok(()) => node
            .read_barrier(READY_TIMEOUT)
            .await
            .map_err(|e| e.to_string()),
        Err(_) => Err("skipped: no leader".to_string()),
    };
    vec![
        ("ping", Ok(())),
        ("store-leader", leader),
        ("store-quorum", store),
    ]
}

async fn readyz(State(state): State<Arc<ApiState>>, Query(query): Query<ReadyQuery>) -> Response {
    let checks = ready_checks(&state.node).await;
    ready_response(&checks, query.verbose.is_some())
}

fn ready_response(checks: &[(&'static str, Result<(), String>)], verbose: bool) -> Response {
    let failed = checks.iter().any(|(_, result)| result.is_err());
    if !failed && !verbose {
        return "ok".into_response();
    }
    let mut text = String::new();
    for (name, result) in checks {
        match result {
            Ok(()) => text.push_str(&format!("[+]{name} ok\n")),
            Err(reason) => text.push_str(&format!("[-]{name} failed: {reason}\n")),
        }
    }
    if failed {
        text.push_str("readyz check failed\n");
        (StatusCode::SERVICE_UNAVAILABLE, text).into_response()
    } else {
        text.push_str("readyz check passed\n");
        text.into_response()
    }
}

async fn join(
    State(joins): State<Arc<JoinHandler>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !joins.authorized(presented) {
        tracing::warn!("refused a join with a wrong token secret");
        return Err(ApiError::unauthorized(
            "the token secret is wrong: use the token in <data-dir>/token of an existing server",
        ));
    }
    let request: JoinRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("malformed join request: {e}")))?;
    Ok(Json(joins.join(request).await?).into_response())
}

fn role_of(node: &StoreNode) -> String {
    let metrics = node.metrics();
    match metrics.state {
        ServerState::Leader => "leader",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Follower => "follower",
        ServerState::Shutdown => "shutdown",
    }
    .to_string()
}

async fn local_status_of(state: &ApiState) -> LocalStatus {
    let metrics = state.node.metrics();
    let checks = ready_checks(&state.node).await;
    let error = checks
        .iter()
        .filter_map(|(name, r)| r.as_ref().err().map(|e| format!("{name}: {e}")))
        .collect::<Vec<_>>()
        .join("; ");
    LocalStatus {
        id: format_id(state.node.id()),
        name: state.node_name.clone(),
        role: role_of(&state.node),
        leader: metrics.current_leader.map(format_id).unwrap_or_default(),
        term: metrics.current_term,
        last_log_index: metrics.last_log_index.unwrap_or(0),
        applied_index: metrics.last_applied.map_or(0, |l| l.index),
        ready: error.is_empty(),
        error,
    }
}

async fn local_status(
    State(state): State<Arc<ApiState>>,
    Extension(identity): Extension<ClientCertificate>,
) -> Result<Json<LocalStatus>, ApiError> {
    require(&identity, &[MASTERS_ORG, PEER_ORG])?;
    Ok(Json(local_status_of(&state).await))
}

async fn member_views(state: &ApiState) -> Vec<MemberView> {
    let leader = state.node.leader();
    // The leader knows learner progress; without one, fall back to the local member list.
    let detailed = state.node.member_status().await.ok();
    let rows: Vec<(hanode_kv::MemberInfo, Option<LearnerState>)> = match detailed {
        Some(members) => members
            .into_iter()
            .map(|m| (m.info, m.learner_state))
            .collect(),
        None => state
            .node
            .local_members()
            .into_iter()
            .map(|m| (m, None))
            .collect(),
    };
    rows.into_iter()
        .map(|(info, learner_state)| {
            let note = match (info.is_learner, learner_state) {
                (false, _) => String::new(),
                (true, Some(LearnerState::CatchingUp)) => {
                    "learner: catching up with the leader".into()
                }
                (true, Some(LearnerState::WaitingForOddVoters)) => {
                    "learner: caught up, waits for another member so the voter count stays odd"
                        .into()
                }
                (true, Some(LearnerState::StaysLearner)) => {
                    "learner: added with --learner, promote it explicitly".into()
                }
                (true, None) => "learner".into(),
            };
            MemberView {
                id: format_id(info.id),
                name: info.member.name.clone(),
                role: if info.is_learner { "learner" } else { "voter" }.into(),
                note,
                peer_url: info.member.peer_url.clone(),
                client_urls: info.member.client_urls.clone(),
                api_url: info.member.api_url.clone(),
                is_leader: leader == Some(info.id),
                status: None,
                status_error: String::new(),
            }
        })
        .collect()
}

async fn members(
    State(state): State<Arc<ApiState>>,
    Extension(identity): Extension<ClientCertificate>,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    require(&identity, &[MASTERS_ORG])?;
    Ok(Json(member_views(&state).await))
}

async fn cluster_status(
    State(state): State<Arc<ApiState>>,
    Extension(identity): Extension<ClientCertificate>,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    require(&identity, &[MASTERS_ORG])?;
    let mut views = member_views(&state).await;
    let client = crate::client::trusting(&state.ca_pem, Some(&state.admin))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let self_id = format_id(state.node.id());
    let lookups = views.iter().map(|view| {
        let client = client.clone();
        let url = format!(
            "{}/hanode/v1/local-status",
            view.api_url.trim_end_matches('/')
        );
        let is_self = view.id == self_id;
        let state = state.clone();
        async move {
            if is_self {
                return Ok(local_status_of(&state).await);
            }
            if url.starts_with("/hanode") {
                return Err("the member has not started".to_string());
            }
            let response = client
                .get(&url)
                .timeout(Duration::from_secs(3))
                .send()
                .await
                .map_err(|e| crate::join::error_chain(&e))?;
            if !response.status().is_success() {
                return Err(format!("{url} answered {}", response.status()));
            }
            response
                .json::<LocalStatus>()
                .await
                .map_err(|e| e.to_string())
        }
    });
    let results = futures::future::join_all(lookups).await;
    for (view, result) in views.iter_mut().zip(results) {
        match result {
            Ok(status) => view.status = Some(status),
            Err(e) => view.status_error = e,
        }
    }
    Ok(Json(views))
}

fn member_id(text: &str) -> Result<u64, ApiError> {
    parse_id(text)
        .ok_or_else(|| ApiError::bad_request(format!("{text:?} is not a member id (hex)")))
}

/// `POST /hanode/v1/members/{id}/remove` and `.../promote`.
async fn change_member(
    State(state): State<Arc<ApiState>>,
    Extension(identity): Extension<ClientCertificate>,
    Path((id, action)): Path<(String, String)>,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    require(&identity, &[MASTERS_ORG])?;
    let id = member_id(&id)?;
    match action.as_str() {
        "remove" => state.node.member_remove(id).await?,
        "promote" => state.node.member_promote(id).await?,
        other => {
            return Err(ApiError::bad_request(format!(
                "no member action {other:?}; use remove or promote"
            )));
        }
    };
    Ok(Json(member_views(&state).await))
}
