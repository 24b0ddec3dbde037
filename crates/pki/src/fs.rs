//! The `pki/` directory of a data dir: file names and owner-only writes.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{CertKey, PkiError};

/// Files of `<data-dir>/pki`.
#[derive(Clone, Debug)]
pub struct PkiDir {
    dir: PathBuf,
}

impl PkiDir {
    /// The `pki` directory under `data_dir`.
    pub fn new(data_dir: &Path) -> PkiDir {
        PkiDir {
            dir: data_dir.join("pki"),
        }
    }

    /// The directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `ca.crt`: the cluster CA certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// `admin.crt` / `admin.key`: a cluster-admin client certificate (CN admin, O system:masters).
    pub fn admin(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("admin.crt"), self.dir.join("admin.key"))
    }

    /// `server.crt` / `server.key`: this node's serving certificate (API and etcd ports).
    pub fn server(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("server.crt"), self.dir.join("server.key"))
    }

    /// `peer.crt` / `peer.key`: this node's peer mTLS certificate.
    pub fn peer(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("peer.crt"), self.dir.join("peer.key"))
    }

    /// Writes a certificate (0644) and its key (0600).
    pub fn write_pair(&self, paths: (PathBuf, PathBuf), pair: &CertKey) -> Result<(), PkiError> {
        write_file(&paths.0, pair.cert_pem.as_bytes(), 0o644)?;
        write_file(&paths.1, pair.key_pem.as_bytes(), 0o600)
    }

    /// Reads a certificate and its key.
    pub fn read_pair(&self, paths: (PathBuf, PathBuf)) -> Result<CertKey, PkiError> {
        Ok(CertKey {
            cert_pem: read_file(&paths.0)?,
            key_pem: read_file(&paths.1)?,
        })
    }
}

/// Reads a whole text file, naming it in the error.
pub fn read_file(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Writes a file atomically (temp file + rename) with the given mode, creating parent dirs.
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| PkiError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    // A leftover temp file would keep its old mode.
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}
