//! The join flow over the API port.
//!
//! 1. The joiner fetches `/cacerts` without trusting anything and checks the CA's SHA-256
//!    against the token's fingerprint, before it sends any secret.
//! 2. Trusting only that CA, it posts `/hanode/v1/join` with the secret as a bearer token.
//! 3. The server checks the secret (nothing is written before that), opens the CA from the
//!    store with it, issues the joiner's certificates and adds it as a learner; the leader
//!    promotes it once it has caught up.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use hanode_kv::{KvBackend, MemberInfo, RangeRequest};
use hanode_pki::{ClusterCa, JoinToken};
use hanode_store::StoreNode;
use hanode_types::{ClusterId, Member, NodeId};

use crate::certs::{CA_KEY, CONTROL_PLANE_CA_KEY, issue_member_certs, open_ca};
use crate::state::MemberCerts;
use hanode_apiserver::status::ApiError;

/// Path of the join endpoint.
pub const JOIN_PATH: &str = "/hanode/v1/join";
/// Path of the CA endpoint.
pub const CACERTS_PATH: &str = "/cacerts";

/// What a joiner says about itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinRequest {
    /// Member name (unique in the cluster).
    pub node_name: String,
    /// Host name, for certificate SANs.
    pub hostname: String,
    /// Address the joiner advertises.
    pub advertise_address: IpAddr,
    /// Its API URL.
    pub api_url: String,
    /// Its etcd client URL.
    pub client_url: String,
    /// Its peer URL.
    pub peer_url: String,
    /// Extra SANs for its serving certificate.
    pub tls_sans: Vec<String>,
    /// What the joiner runs: store roles become store members, a control-plane server only
    /// gets certificates.
    #[serde(default)]
    pub role: crate::Role,
}

/// What the cluster answers an accepted joiner.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinResponse {
    /// The joiner's member id.
    pub node_id: NodeId,
    /// The cluster id.
    pub cluster_id: ClusterId,
    /// The joiner's certificates.
    pub certs: MemberCerts,
    /// Members after the join.
    pub members: Vec<MemberInfo>,
}

/// Why a join failed, phrased for the operator running the joiner.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The server could not be reached or answered nonsense.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The join URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The CA the server showed is not the one the token pins.
    #[error(
        "the cluster CA at {url} has SHA-256 fingerprint {shown}, but the token expects {expected}: \
         check --join and --token (no secret was sent)"
    )]
    CaMismatch {
        /// The join URL.
        url: String,
        /// Fingerprint of the CA shown.
        shown: String,
        /// Fingerprint in the token.
        expected: String,
    },
    /// The server refused the request; the text is the server's.
    #[error("the cluster refused to join this server ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
}

/// Runs the joiner's side: fingerprint check, then the authenticated join request.
pub async fn request_join(
    url: &str,
    token: &JoinToken,
    request: &JoinRequest,
) -> Result<JoinResponse, JoinError> {
    let base = url.trim_end_matches('/');
    let unreachable = |reason: String| JoinError::Unreachable {
        url: url.to_string(),
        reason,
    };
    let ca_pem = crate::client::fingerprint_only()
        .get(format!("{base}{CACERTS_PATH}"))
        .send()
        .await
        .map_err(|e| unreachable(error_chain(&e)))?
        .error_for_status()
        .map_err(|e| unreachable(e.to_string()))?
        .text()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let shown = hanode_pki::fingerprint_pem(&ca_pem)
        .map_err(|e| unreachable(format!("{CACERTS_PATH} did not return a certificate: {e}")))?;
    if !hanode_pki::constant_time_eq(&shown, &token.ca_fingerprint) {
        return Err(JoinError::CaMismatch {
            url: url.to_string(),
            shown: hex::encode(shown),
            expected: hex::encode(token.ca_fingerprint),
        });
    }
    let client = crate::client::trusting(&ca_pem, None).map_err(|e| unreachable(e.to_string()))?;
    let response = client
        .post(format!("{base}{JOIN_PATH}"))
        .bearer_auth(&token.secret)
        .json(request)
        .send()
        .await
        .map_err(|e| unreachable(error_chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        let message = crate::client::status_message(&body);
        return Err(JoinError::Refused {
            status: status.as_u16(),
            message,
        });
    }
    response
        .json()
        .await
        .map_err(|e| unreachable(format!("bad join response: {e}")))
}

/// The full cause chain of an error, for messages that must say what really failed.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The server's side of joins.
pub struct JoinHandler {
    /// The store member new store members join (none on a control-plane server).
    members: Option<StoreNode>,
    /// Where the sealed CA is read from.
    store: Arc<dyn KvBackend>,
    ca_key: &'static [u8],
    secret: String,
    cluster_id: ClusterId,
    ca: Mutex<Option<Arc<ClusterCa>>>,
}

impl JoinHandler {
    /// Accepts joins into `node`'s cluster for holders of `secret`: store roles become members,
    /// control-plane servers get certificates.
    pub fn new(node: StoreNode, secret: String, cluster_id: ClusterId) -> JoinHandler {
        JoinHandler {
            store: Arc::new(node.clone()),
            members: Some(node),
            ca_key: CA_KEY,
            secret,
            cluster_id,
            ca: Mutex::new(None),
        }
    }

    /// Accepts control-plane servers into a control plane that keeps its data (and its sealed
    /// CA) in `store`, remote storage endpoints.
    pub fn for_control_plane(
        store: Arc<dyn KvBackend>,
        secret: String,
        cluster_id: ClusterId,
    ) -> JoinHandler {
        JoinHandler {
            members: None,
            store,
            ca_key: CONTROL_PLANE_CA_KEY,
            secret,
            cluster_id,
            ca: Mutex::new(None),
        }
    }

    /// Whether `presented` is the cluster's secret (constant time).
    pub fn authorized(&self, presented: &str) -> bool {
        hanode_pki::constant_time_eq(presented.as_bytes(), self.secret.as_bytes())
    }

    async fn ca(&self) -> Result<Arc<ClusterCa>, ApiError> {
        let mut cached = self.ca.lock().await;
        if let Some(ca) = cached.as_ref() {
            return Ok(ca.clone());
        }
        let resp = self
            .store
            .range(RangeRequest {
                key: self.ca_key.to_vec(),
                ..Default::default()
            })
            .await
            .map_err(ApiError::from)?;
        let sealed = resp.kvs.first().ok_or_else(|| {
            ApiError::unavailable("the cluster CA is not in the store yet; retry in a moment")
        })?;
        let ca = Arc::new(open_ca(&sealed.value, &self.secret).map_err(|e| {
            ApiError::internal(format!(
                "cannot open the cluster CA with this server's token: {e}"
            ))
        })?);
        *cached = Some(ca.clone());
        Ok(ca)
    }

    /// Issues certificates for an authorized joiner and adds it as a learner.
    pub async fn join(&self, request: JoinRequest) -> Result<JoinResponse, ApiError> {
        hanode_types::validate_node_name(&request.node_name).map_err(ApiError::bad_request)?;
        if request.advertise_address.is_unspecified() {
            return Err(ApiError::bad_request(
                "the advertise address must not be 0.0.0.0",
            ));
        }
        let ca = self.ca().await?;
        let certs = issue_member_certs(
            &ca,
            &request.node_name,
            &request.hostname,
            request.advertise_address,
            &request.tls_sans,
            SystemTime::now(),
        )
        .map_err(|e| ApiError::bad_request(format!("cannot issue certificates: {e}")))?;
        if request.role == crate::Role::ControlPlane {
            tracing::info!(node = %request.node_name, "issued certificates to a control-plane server");
            return Ok(JoinResponse {
                node_id: (rand::random::<u64>() >> 1).max(1),
                cluster_id: self.cluster_id,
                certs,
                members: Vec::new(),
            });
        }
        let Some(node) = &self.members else {
            return Err(ApiError::bad_request(format!(
                "this cluster keeps its data on external storage endpoints, so a --role {} server cannot join it as a store member: \
                 join with --role control-plane --storage-endpoints ... instead",
                request.role
            )));
        };
        let member = Member {
            name: request.node_name.clone(),
            peer_url: request.peer_url.clone(),
            client_urls: vec![request.client_url.clone()],
            api_url: request.api_url.clone(),
            stay_learner: false,
        };
        let (node_id, members) = node.join_member(member).await.map_err(ApiError::from)?;
        tracing::info!(node = %request.node_name, member_id = %format!("{node_id:x}"), "member joined as a learner");
        Ok(JoinResponse {
            node_id,
            cluster_id: self.cluster_id,
            certs,
            members,
        })
    }
}
