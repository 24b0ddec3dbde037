//! What a data dir holds about its member: `node.json` (identity, the commit point of
//! init/join), `token` (the cluster's server token, 0600) and `pki/`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use hanode_pki::fs::{PkiDir, read_file, write_file};
use hanode_pki::{CertKey, JoinToken, PkiError};
use hanode_types::{ClusterId, NodeId};

/// Identity of the member in a data dir.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// Member id.
    pub node_id: NodeId,
    /// Cluster id.
    pub cluster_id: ClusterId,
    /// Member name.
    pub node_name: String,
    /// This member's API URL (what `hanode status` talks to by default).
    pub api_url: String,
    /// What this server runs (data dirs from before roles existed are `all`).
    #[serde(default)]
    pub role: crate::Role,
    /// A control-plane server's storage endpoints, reused on restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<crate::StorageEndpoints>,
}

/// Paths in a data dir.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The data dir at `root`.
    pub fn new(root: &Path) -> DataDir {
        DataDir {
            root: root.to_path_buf(),
        }
    }

    /// The root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `node.json`.
    pub fn node_file(&self) -> PathBuf {
        self.root.join("node.json")
    }

    /// `token`.
    pub fn token_file(&self) -> PathBuf {
        self.root.join("token")
    }

    /// `pki/`.
    pub fn pki(&self) -> PkiDir {
        PkiDir::new(&self.root)
    }

    /// The member written here by a completed init or join, if any.
    pub fn load_node(&self) -> Result<Option<NodeState>, PkiError> {
        let path = self.node_file();
        if !path.exists() {
            return Ok(None);
        }
        let text = read_file(&path)?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| PkiError::Io {
                path: path.display().to_string(),
                source: std::io::Error::other(format!("not a valid node.json: {e}")),
            })
    }

    /// Records the member; written last, so its presence means init/join completed.
    pub fn save_node(&self, node: &NodeState) -> Result<(), PkiError> {
        let json = serde_json::to_vec_pretty(node).expect("node state serializes");
        write_file(&self.node_file(), &json, 0o600)
    }

    /// The server token.
    pub fn load_token(&self) -> Result<JoinToken, PkiError> {
        read_file(&self.token_file())?.parse()
    }

    /// Writes the server token (0600).
    pub fn save_token(&self, token: &JoinToken) -> Result<(), PkiError> {
        write_file(&self.token_file(), format!("{token}\n").as_bytes(), 0o600)
    }

    /// Removes store state left by an init or join that did not complete.
    pub fn clear_incomplete(&self) -> std::io::Result<()> {
        for dir in ["db", "snapshots"] {
            let path = self.root.join(dir);
            if path.exists() {
                std::fs::remove_dir_all(&path)?;
            }
        }
        Ok(())
    }
}

/// The certificates a member runs with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberCerts {
    /// Cluster CA certificate, PEM.
    pub ca_pem: String,
    /// Serving certificate (API and etcd ports).
    pub server: CertKey,
    /// Peer mTLS certificate.
    pub peer: CertKey,
    /// Cluster-admin client certificate.
    pub admin: CertKey,
}

impl MemberCerts {
    /// Writes `pki/`.
    pub fn save(&self, dir: &PkiDir) -> Result<(), PkiError> {
        write_file(&dir.ca_cert(), self.ca_pem.as_bytes(), 0o644)?;
        dir.write_pair(dir.server(), &self.server)?;
        dir.write_pair(dir.peer(), &self.peer)?;
        dir.write_pair(dir.admin(), &self.admin)
    }

    /// Reads `pki/`.
    pub fn load(dir: &PkiDir) -> Result<MemberCerts, PkiError> {
        Ok(MemberCerts {
            ca_pem: read_file(&dir.ca_cert())?,
            server: dir.read_pair(dir.server())?,
            peer: dir.read_pair(dir.peer())?,
            admin: dir.read_pair(dir.admin())?,
        })
    }
}
