//! Certificates, join tokens and TLS settings of a hanode cluster.
//!
//! Owns: the cluster CA (rcgen), leaf certificates for serving, peer mTLS and clients, the join
//! token format (CA fingerprint + secret, checked before the secret is ever sent), sealing of the
//! CA key with a key derived from the secret, and rustls configurations. Pure functions, except
//! the [`fs`] module which reads and writes the `pki/` directory. It does not decide who may
//! join or what a user may do; the server does.

mod ca;
pub mod fs;
mod seal;
pub mod tls;
mod token;

pub use ca::{CertKey, ClusterCa, LeafKind, LeafRequest, PeerIdentity, peer_identity};
pub use seal::{open, seal};
pub use token::{JoinToken, constant_time_eq, fingerprint_pem, new_secret};

/// Errors of certificate, token and TLS handling.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Generating or signing a certificate failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM file or string could not be parsed; the text names which.
    #[error("invalid PEM in {what}: {reason}")]
    Pem {
        /// Which input was bad.
        what: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A join token was malformed; the text says what a token looks like.
    #[error("invalid join token: {0}")]
    Token(String),
    /// Sealed data could not be opened: wrong secret or corrupted data.
    #[error("cannot decrypt sealed data: wrong token secret or corrupted data")]
    Unseal,
    /// A rustls configuration could not be built.
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
    /// Reading or writing PKI files failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}
