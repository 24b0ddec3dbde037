//! Join tokens: `H10<sha256 of the CA certificate, hex>::server:<secret>`.
//!
//! The fingerprint lets a joiner check the CA it is shown before it sends the secret (the idea
//! of k3s's "secure" tokens); the secret authenticates the joiner and derives the key that
//! seals the CA key in the store.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::PkiError;
use crate::ca::pem_to_der;

const PREFIX: &str = "H10";
const SEPARATOR: &str = "::server:";

/// A parsed join token.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// SHA-256 of the cluster CA certificate (DER).
    pub ca_fingerprint: [u8; 32],
    /// The shared secret.
    pub secret: String,
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("JoinToken")
            .field("ca_fingerprint", &hex::encode(self.ca_fingerprint))
            .finish()
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}{}{SEPARATOR}{}",
            hex::encode(self.ca_fingerprint),
            self.secret
        )
    }
}

impl FromStr for JoinToken {
    type Err = PkiError;

    fn from_str(text: &str) -> Result<Self, PkiError> {
        let text = text.trim();
        let usage = "expected H10<64 hex digits>::server:<secret>, as written to <data-dir>/token";
        let rest = text
            .strip_prefix(PREFIX)
            .ok_or_else(|| PkiError::Token(format!("missing {PREFIX} prefix; {usage}")))?;
        let (hash, secret) = rest
            .split_once(SEPARATOR)
            .ok_or_else(|| PkiError::Token(format!("missing {SEPARATOR} separator; {usage}")))?;
        let bytes = hex::decode(hash)
            .map_err(|_| PkiError::Token(format!("CA fingerprint is not hex; {usage}")))?;
        let ca_fingerprint: [u8; 32] = bytes
            .try_into()
            .map_err(|_| PkiError::Token(format!("CA fingerprint is not 32 bytes; {usage}")))?;
        if secret.len() < 16 {
            return Err(PkiError::Token(format!(
                "secret is shorter than 16 characters; {usage}"
            )));
        }
        Ok(JoinToken {
            ca_fingerprint,
            secret: secret.to_string(),
        })
    }
}

/// A new random secret (32 bytes, hex).
pub fn new_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// SHA-256 of the first certificate in `pem`.
pub fn fingerprint_pem(pem: &str) -> Result<[u8; 32], PkiError> {
    Ok(Sha256::digest(pem_to_der(pem, "CA certificate")?).into())
}

/// Compares secrets without leaking where they differ through timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips_and_hides_secret_in_debug() {
        let token = JoinToken {
            ca_fingerprint: [7; 32],
            secret: new_secret(),
        };
        let parsed: JoinToken = token.to_string().parse().unwrap();
        assert_eq!(parsed, token);
        assert!(!format!("{token:?}").contains(&token.secret));
    }

    #[test]
    fn malformed_tokens_say_what_is_wrong() {
        for (text, needle) in [
            ("K10abc::server:xyz", "prefix"),
            ("H10abcd", "separator"),
            ("H10zz::server:0123456789abcdef", "hex"),
            ("H10abcd::server:0123456789abcdef", "32 bytes"),
        ] {
            let err = text.parse::<JoinToken>().unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
    }
}
