//! HTTPS clients: the joiner's (first trusting nothing but the token's fingerprint, then only
//! the cluster CA) and the one members and the CLI use with a client certificate.

use std::time::Duration;

use hanode_pki::CertKey;

/// A client that accepts any server certificate: only for fetching `/cacerts`, whose answer is
/// checked against the token's fingerprint before anything secret is sent.
pub fn fingerprint_only() -> reqwest::Client {
    let config = hanode_pki::tls::fingerprint_only_client_config(hanode_pki::tls::ALPN_HTTP);
    reqwest::Client::builder()
        .use_preconfigured_tls((*config).clone())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client from a rustls config always builds")
}

/// A client trusting only `ca_pem`, presenting `identity` if given.
pub fn trusting(
    ca_pem: &str,
    identity: Option<&CertKey>,
) -> Result<reqwest::Client, hanode_pki::PkiError> {
    let config = hanode_pki::tls::client_config(ca_pem, identity, hanode_pki::tls::ALPN_HTTP)?;
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls((*config).clone())
        .timeout(Duration::from_secs(15))
        .build()
        .expect("a client from a rustls config always builds"))
}

/// The `message` of a Kubernetes `Status` error body, or the body itself.
pub fn status_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.to_string())
}
