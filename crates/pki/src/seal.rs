//! Sealing small secrets (the CA key) with a key derived from the cluster token secret, so the
//! material can be replicated in the store yet be useless without the token.
//!
//! Format: 16-byte salt, 12-byte nonce, ChaCha20-Poly1305 ciphertext. The key is
//! HKDF-SHA256(secret, salt, "hanode seal v1").

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::PkiError;

const INFO: &[u8] = b"hanode seal v1";

fn cipher(secret: &str, salt: &[u8]) -> ChaCha20Poly1305 {
    let mut key = [0u8; 32];
    Hkdf::<Sha256>::new(Some(salt), secret.as_bytes())
        .expand(INFO, &mut key)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    ChaCha20Poly1305::new(Key::from_slice(&key))
}

/// Encrypts `plaintext` under `secret`.
pub fn seal(secret: &str, plaintext: &[u8]) -> Vec<u8> {
    let salt: [u8; 16] = rand::random();
    let nonce: [u8; 12] = rand::random();
    let ciphertext = cipher(secret, &salt)
        .encrypt(Nonce::from_slice(&nonce), plaintext)
        .expect("ChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
    [salt.as_slice(), nonce.as_slice(), ciphertext.as_slice()].concat()
}

/// Decrypts what [`seal`] produced; fails on a wrong secret or tampered data.
pub fn open(secret: &str, sealed: &[u8]) -> Result<Vec<u8>, PkiError> {
    if sealed.len() < 28 + 16 {
        return Err(PkiError::Unseal);
    }
    let (salt, rest) = sealed.split_at(16);
    let (nonce, ciphertext) = rest.split_at(12);
    cipher(secret, salt)
        .decrypt(Nonce::from_slice(nonce), ciphertext)
        .map_err(|_| PkiError::Unseal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_the_secret() {
        let sealed = seal("right secret", b"ca key");
        assert_eq!(open("right secret", &sealed).unwrap(), b"ca key");
        assert!(open("wrong secret", &sealed).is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(open("right secret", &tampered).is_err());
    }
}
