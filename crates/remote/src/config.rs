//! Settings of a [`crate::RemoteBackend`] and their checks, done before any connection is tried
//! so a mistake in the flags is reported as such and not as "unreachable".

use std::time::Duration;

use crate::error::RemoteError;

/// How long [`crate::RemoteBackend::connect`] waits for an endpoint to answer, by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one request may take, by default. Longer than etcd's own request timeout (5 s plus
/// an election) so the remote's precise error wins over a bare deadline.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS material for `https://` endpoints, as PEM text.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteTls {
    /// The CA that signed the endpoints' serving certificates (the only CA trusted).
    pub ca_pem: String,
    /// Client certificate to present; needed when the store requires client certificates
    /// (hanode storage nodes always do).
    pub cert_pem: Option<String>,
    /// Private key of `cert_pem`.
    pub key_pem: Option<String>,
}

impl std::fmt::Debug for RemoteTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("RemoteTls")
            .field("ca_pem", &format_args!("{} bytes", self.ca_pem.len()))
            .field("cert_pem", &self.cert_pem.as_ref().map(|c| c.len()))
            .field("key_pem", &self.key_pem.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Where the store is and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteConfig {
    /// etcd v3 client URLs, all `http://` or all `https://` (`--storage-endpoints`).
    pub endpoints: Vec<String>,
    /// TLS material; required for `https://` endpoints, refused for `http://` ones.
    pub tls: Option<RemoteTls>,
    /// Longest wait for the first answer in [`crate::RemoteBackend::connect`].
    pub connect_timeout: Duration,
    /// Longest wait for any one request (watch streams: for their creation only).
    pub request_timeout: Duration,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            endpoints: Vec::new(),
            tls: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// The one scheme every endpoint uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// Plain HTTP/2.
    Http,
    /// HTTP/2 over TLS.
    Https,
}

impl RemoteConfig {
    /// The endpoints as one string for messages.
    pub(crate) fn endpoint_list(&self) -> String {
        self.endpoints.join(",")
    }

    /// Checks the settings; returns the scheme all endpoints share.
    pub(crate) fn validate(&self) -> Result<Scheme, RemoteError> {
        if self.endpoints.is_empty() {
            return Err(RemoteError::NoEndpoints);
        }
        let mut schemes = Vec::with_capacity(self.endpoints.len());
        for endpoint in &self.endpoints {
            schemes.push(scheme_of(endpoint)?);
        }
        let scheme = schemes[0];
        if schemes.iter().any(|s| *s != scheme) {
            return Err(RemoteError::MixedSchemes {
                endpoints: self.endpoint_list(),
            });
        }
        match (scheme, &self.tls) {
            (Scheme::Https, None) => {
                return Err(RemoteError::TlsMissing {
                    endpoints: self.endpoint_list(),
                });
            }
            (Scheme::Http, Some(_)) => {
                return Err(RemoteError::TlsWithoutHttps {
                    endpoints: self.endpoint_list(),
                });
            }
            (Scheme::Https, Some(tls)) if tls.cert_pem.is_some() != tls.key_pem.is_some() => {
                return Err(RemoteError::IncompleteClientIdentity);
            }
            _ => {}
        }
        for (what, timeout) in [
            ("connect timeout", self.connect_timeout),
            ("request timeout", self.request_timeout),
        ] {
            if timeout.is_zero() {
                return Err(RemoteError::ZeroTimeout { what });
            }
        }
        Ok(scheme)
    }
}

fn scheme_of(endpoint: &str) -> Result<Scheme, RemoteError> {
    let bad = |reason: &str| RemoteError::BadEndpoint {
        endpoint: endpoint.to_string(),
        reason: reason.to_string(),
    };
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::Http,
        Some("https") => Scheme::Https,
        Some(_) | None => return Err(bad("the scheme must be http:// or https://")),
    };
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("it names no host"));
    }
    if !matches!(uri.path(), "" | "/") {
        return Err(bad("etcd endpoints have no path"));
    }
    Ok(scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(endpoints: &[&str], tls: Option<RemoteTls>) -> RemoteConfig {
        RemoteConfig {
            endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
            tls,
            ..RemoteConfig::default()
        }
    }

    fn tls(cert: bool, key: bool) -> RemoteTls {
        RemoteTls {
            ca_pem: "ca".into(),
            cert_pem: cert.then(|| "cert".into()),
            key_pem: key.then(|| "key".into()),
        }
    }

    #[test]
    fn plain_and_tls_endpoints_are_accepted() {
        let plain = config(&["http://127.0.0.1:2379", "http://10.0.0.2:2379/"], None);
        assert_eq!(plain.validate().ok(), Some(Scheme::Http));
        let secure = config(&["https://a:2379", "https://b:2379"], Some(tls(true, true)));
        assert_eq!(secure.validate().ok(), Some(Scheme::Https));
        let server_auth_only = config(&["https://a:2379"], Some(tls(false, false)));
        assert_eq!(server_auth_only.validate().ok(), Some(Scheme::Https));
    }

    #[test]
    fn mixed_schemes_are_refused_naming_the_endpoints() {
        let mixed = config(&["http://a:2379", "https://b:2379"], Some(tls(true, true)));
        let err = mixed.validate().unwrap_err();
        assert!(matches!(err, RemoteError::MixedSchemes { .. }), "{err}");
        assert!(
            err.to_string().contains("http://a:2379,https://b:2379"),
            "{err}"
        );
    }

    #[test]
    fn https_without_tls_files_is_refused() {
        let err = config(&["https://a:2379"], None).validate().unwrap_err();
        assert!(matches!(err, RemoteError::TlsMissing { .. }), "{err}");
        assert!(err.to_string().contains("https://a:2379"), "{err}");
    }

    #[test]
    fn tls_files_with_http_endpoints_are_refused() {
        let err = config(&["http://a:2379"], Some(tls(true, true)))
            .validate()
            .unwrap_err();
        assert!(matches!(err, RemoteError::TlsWithoutHttps { .. }), "{err}");
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        for (cert, key) in [(true, false), (false, true)] {
            let err = config(&["https://a:2379"], Some(tls(cert, key)))
                .validate()
                .unwrap_err();
            assert!(
                matches!(err, RemoteError::IncompleteClientIdentity),
                "{err}"
            );
        }
    }

    #[test]
    fn malformed_endpoints_are_refused() {
        assert!(matches!(
            config(&[], None).validate(),
            Err(RemoteError::NoEndpoints)
        ));
        for bad in [
            "127.0.0.1:2379",
            "unix:///tmp/etcd",
            "http://",
            "http://a:2379/v3",
        ] {
            let err = config(&[bad], None).validate().unwrap_err();
            assert!(
                matches!(err, RemoteError::BadEndpoint { ref endpoint, .. } if endpoint == bad),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn zero_timeouts_are_refused() {
        let mut zero = config(&["http://a:2379"], None);
        zero.request_timeout = Duration::ZERO;
        assert!(matches!(
            zero.validate(),
            Err(RemoteError::ZeroTimeout { .. })
        ));
    }

    #[test]
    fn debug_output_hides_the_private_key() {
        let shown = format!("{:?}", tls(true, true));
        assert!(!shown.contains("key\""), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }
}
