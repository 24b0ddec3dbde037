//! The cluster CA and the leaf certificates it issues.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::PkiError;

/// How long the cluster CA is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// How long leaf certificates are valid (never beyond the CA).
pub const LEAF_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A certificate and its private key, both PEM.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CertKey {
    /// Certificate, PEM.
    pub cert_pem: String,
    /// PKCS#8 private key, PEM.
    pub key_pem: String,
}

/// What a leaf certificate is for, which sets its extended key usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafKind {
    /// Serves HTTPS/gRPC to clients (and may act as a client of other servers).
    Server,
    /// Raft peer traffic: both ends of the mTLS connection.
    Peer,
    /// A client only (admin, nodes).
    Client,
}

/// What to put in a leaf certificate.
#[derive(Clone, Debug)]
pub struct LeafRequest {
    /// Subject common name: the user for client certs (`admin`), the node name otherwise.
    pub common_name: String,
    /// Subject organizations: the groups for client certs (`system:masters`).
    pub organizations: Vec<String>,
    /// DNS names and IP addresses the certificate is valid for.
    pub sans: Vec<String>,
    /// Purpose.
    pub kind: LeafKind,
}

/// The CN and organizations of a presented client certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Subject common name.
    pub common_name: String,
    /// Subject organizations.
    pub organizations: Vec<String>,
}

/// The cluster certificate authority, with its private key.
pub struct ClusterCa {
    cert: CertKey,
    der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa")
            .field("fingerprint", &hex::encode(self.fingerprint()))
            .finish()
    }
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // a positive INTEGER
    SerialNumber::from_slice(&bytes)
}

impl ClusterCa {
    /// A new CA valid for [`CA_VALIDITY`] from `now`.
    pub fn generate(now: SystemTime) -> Result<ClusterCa, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        let stamp = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        name.push(DnType::CommonName, format!("hanode-ca@{stamp}"));
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = OffsetDateTime::from(now - Duration::from_secs(3600));
        params.not_after = OffsetDateTime::from(now + CA_VALIDITY);
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key)?;
        let cert_key = CertKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        let der = cert.der().to_vec();
        Ok(ClusterCa {
            cert: cert_key,
            der,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA from its certificate and key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<ClusterCa, PkiError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| PkiError::Pem {
            what: "CA key".into(),
            reason: e.to_string(),
        })?;
        let der = pem_to_der(cert_pem, "CA certificate")?;
        let issuer =
            Issuer::from_ca_cert_der(&CertificateDer::from(der.clone()), key).map_err(|e| {
                PkiError::Pem {
                    what: "CA certificate".into(),
                    reason: e.to_string(),
                }
            })?;
        Ok(ClusterCa {
            cert: CertKey {
                cert_pem: cert_pem.to_string(),
                key_pem: key_pem.to_string(),
            },
            der,
            issuer,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert.cert_pem
    }

    /// Certificate and key, PEM (for sealing into the store).
    pub fn cert_key(&self) -> &CertKey {
        &self.cert
    }

    /// SHA-256 of the CA certificate's DER: what join tokens pin.
    pub fn fingerprint(&self) -> [u8; 32] {
        Sha256::digest(&self.der).into()
    }

    /// Issues a leaf certificate valid for [`LEAF_VALIDITY`] from `now`.
    pub fn issue(&self, req: &LeafRequest, now: SystemTime) -> Result<CertKey, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        for org in &req.organizations {
            name.push(DnType::OrganizationName, org.clone());
        }
        name.push(DnType::CommonName, req.common_name.clone());
        params.distinguished_name = name;
        let mut sans: Vec<String> = Vec::new();
        for san in &req.sans {
            if !san.is_empty() && !sans.contains(san) {
                sans.push(san.clone());
            }
        }
        params.subject_alt_names = sans
            .into_iter()
            .map(|san| match san.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => san.try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()?;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = match req.kind {
            LeafKind::Server | LeafKind::Peer => {
                vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ]
            }
            LeafKind::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        params.not_before = OffsetDateTime::from(now - Duration::from_secs(3600));
        params.not_after = OffsetDateTime::from(now + LEAF_VALIDITY);
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Decodes the first certificate of a PEM string.
pub(crate) fn pem_to_der(pem: &str, what: &str) -> Result<Vec<u8>, PkiError> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|der| der.to_vec())
        .map_err(|e| PkiError::Pem {
            what: what.into(),
            reason: e.to_string(),
        })
}

/// Reads the subject CN and organizations of a certificate presented by a client.
pub fn peer_identity(der: &[u8]) -> Option<PeerIdentity> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let common_name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let organizations = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some(PeerIdentity {
        common_name,
        organizations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_leaf_carries_identity_and_sans() {
        let now = SystemTime::now();
        let ca = ClusterCa::generate(now).unwrap();
        let leaf = ca
            .issue(
                &LeafRequest {
                    common_name: "admin".into(),
                    organizations: vec!["system:masters".into()],
                    sans: vec!["127.0.0.1".into(), "localhost".into(), "localhost".into()],
                    kind: LeafKind::Client,
                },
                now,
            )
            .unwrap();
        let der = pem_to_der(&leaf.cert_pem, "leaf").unwrap();
        let id = peer_identity(&der).unwrap();
        assert_eq!(id.common_name, "admin");
        assert_eq!(id.organizations, vec!["system:masters".to_string()]);
        let reloaded = ClusterCa::from_pem(ca.cert_pem(), &ca.cert_key().key_pem).unwrap();
        assert_eq!(reloaded.fingerprint(), ca.fingerprint());
        reloaded
            .issue(
                &LeafRequest {
                    common_name: "n2".into(),
                    organizations: vec![],
                    sans: vec!["10.0.0.2".into()],
                    kind: LeafKind::Server,
                },
                now,
            )
            .unwrap();
    }
}
