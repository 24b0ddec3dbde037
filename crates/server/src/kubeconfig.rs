//! `<data-dir>/admin.kubeconfig`: this server's URL, the cluster CA and the admin client
//! certificate, ready for `kubectl --kubeconfig`.

use base64::Engine;
use serde_json::json;

use hanode_pki::CertKey;

/// A kubeconfig for `server_url` with the admin identity (JSON is valid YAML).
pub fn admin_kubeconfig(server_url: &str, ca_pem: &str, admin: &CertKey) -> String {
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "hanode", "cluster": {"server": server_url, "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": "admin", "user": {
            "client-certificate-data": b64(&admin.cert_pem),
            "client-key-data": b64(&admin.key_pem)}}],
        "contexts": [{"name": "hanode", "context": {"cluster": "hanode", "user": "admin"}}],
        "current-context": "hanode",
        "preferences": {},
    });
    serde_json::to_string_pretty(&config).unwrap_or_default()
}
