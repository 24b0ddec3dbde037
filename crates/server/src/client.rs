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
