//! Which certificates a member gets, and how the CA travels in the store.

use std::net::IpAddr;
use std::time::SystemTime;

use hanode_pki::{CertKey, ClusterCa, JoinToken, LeafKind, LeafRequest, PkiError, new_secret};

use crate::config::{Config, default_node_name};
use crate::state::MemberCerts;

/// Organization of peer certificates; the peer port accepts only these.
pub const PEER_ORG: &str = "hanode:peers";
/// Organization of cluster admins (Kubernetes' superuser group).
pub const MASTERS_ORG: &str = "system:masters";
/// Store key of the sealed CA certificate and key.
pub const CA_KEY: &[u8] = b"/hanode/pki/ca";
/// Store key of a control plane's sealed CA on its storage endpoints (apart from `CA_KEY`, which
/// a hanode storage cluster uses for its own CA).
pub const CONTROL_PLANE_CA_KEY: &[u8] = b"/hanode/control-plane/pki/ca";
/// Store key of the cluster record.
pub const CLUSTER_KEY: &[u8] = b"/hanode/cluster";

/// What `--init` creates, for a stacked or a control-plane cluster alike: the cluster CA, the
/// join token pinning it, and the first server's certificates.
pub fn new_cluster(config: &Config) -> Result<(ClusterCa, JoinToken, MemberCerts), PkiError> {
    let now = SystemTime::now();
    let ca = ClusterCa::generate(now)?;
    let token = JoinToken {
        ca_fingerprint: ca.fingerprint(),
        secret: new_secret(),
    };
    let certs = issue_member_certs(
        &ca,
        &config.node_name,
        &default_node_name(),
        config.advertise_address,
        &config.tls_sans,
        now,
    )?;
    Ok((ca, token, certs))
}

/// Issues the serving, peer and admin certificates of a member. Serving and peer
/// certificates cover the advertise address, the host name, 127.0.0.1, localhost and every
/// extra SAN.
pub fn issue_member_certs(
    ca: &ClusterCa,
    node_name: &str,
    hostname: &str,
    advertise: IpAddr,
    extra_sans: &[String],
    now: SystemTime,
) -> Result<MemberCerts, PkiError> {
    let mut sans = vec![
        advertise.to_string(),
        hostname.to_string(),
        "127.0.0.1".into(),
        "localhost".into(),
    ];
    sans.extend(extra_sans.iter().cloned());
    sans.retain(|s| !s.is_empty());
    let server = ca.issue(
        &LeafRequest {
            common_name: node_name.into(),
            organizations: vec![],
            sans: sans.clone(),
            kind: LeafKind::Server,
        },
        now,
    )?;
    let peer = ca.issue(
        &LeafRequest {
            common_name: format!("hanode-peer:{node_name}"),
            organizations: vec![PEER_ORG.into()],
            sans,
            kind: LeafKind::Peer,
        },
        now,
    )?;
    let admin = ca.issue(
        &LeafRequest {
            common_name: "admin".into(),
            organizations: vec![MASTERS_ORG.into()],
            sans: vec![],
            kind: LeafKind::Client,
        },
        now,
    )?;
    Ok(MemberCerts {
        ca_pem: ca.cert_pem().to_string(),
        server,
        peer,
        admin,
    })
}

/// The CA as stored: its certificate and key sealed with the token secret.
pub fn seal_ca(ca: &ClusterCa, secret: &str) -> Vec<u8> {
    let json = serde_json::to_vec(ca.cert_key()).expect("cert and key serialize");
    hanode_pki::seal(secret, &json)
}

/// Opens the stored CA with the token secret.
pub fn open_ca(sealed: &[u8], secret: &str) -> Result<ClusterCa, PkiError> {
    let json = hanode_pki::open(secret, sealed)?;
    let pair: CertKey = serde_json::from_slice(&json).map_err(|e| PkiError::Pem {
        what: "stored CA".into(),
        reason: e.to_string(),
    })?;
    ClusterCa::from_pem(&pair.cert_pem, &pair.key_pem)
}
