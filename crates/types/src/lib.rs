//! Shared vocabulary of hanode: identifiers and the description of a cluster member.
//!
//! Owns only plain data that more than one crate needs to name. It has no behaviour, no I/O and
//! no protocol knowledge; errors live with the domain that raises them.

use serde::{Deserialize, Serialize};

/// Identifies a store member (a Raft node). Never 0; printed as hex like etcd's member ids.
pub type NodeId = u64;

/// Identifies a cluster; chosen at `--init` and shared by every member.
pub type ClusterId = u64;

/// A store revision: +1 for every write transaction; an empty store is at revision 1.
pub type Revision = i64;

/// A lease id as etcd uses it (signed 64-bit, never 0 once granted).
pub type LeaseId = i64;

/// What the cluster knows about one member: its name and where to reach it.
///
/// A member added by `etcdctl member add` that has not started yet has an empty `name` and no
/// client URLs, as in etcd.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Member {
    /// Node name (`--node-name`), empty until the member has started.
    pub name: String,
    /// Peer URL (`https://ADDR:PEER_PORT`), where other members send Raft traffic.
    pub peer_url: String,
    /// etcd v3 client URLs (`https://ADDR:ETCD_PORT`).
    pub client_urls: Vec<String>,
    /// HTTPS API URL (`https://ADDR:API_PORT`), empty for members that never served one.
    pub api_url: String,
    /// Keep this member a learner until it is promoted explicitly (etcdctl `member add
    /// --learner`); joiners are promoted automatically once caught up.
    #[serde(default)]
    pub stay_learner: bool,
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = if self.name.is_empty() {
            "(unstarted)"
        } else {
            &self.name
        };
        write!(f, "{name} {}", self.peer_url)
    }
}

impl Member {
    /// Host and port of the peer URL, which is what the peer transport dials.
    pub fn peer_addr(&self) -> &str {
        strip_scheme(&self.peer_url)
    }

    /// True once the member has started and announced its name (etcd's "started").
    pub fn is_started(&self) -> bool {
        !self.name.is_empty()
    }
}

/// Checks a member name: 1 to 63 characters of letters, digits, '-', '.' and '_'. The error
/// says what is wrong.
pub fn validate_node_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err(format!("node name {name:?} must be 1 to 63 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
    {
        return Err(format!(
            "node name {name:?} may only contain letters, digits, '-', '.' and '_'"
        ));
    }
    Ok(())
}

/// Removes an `http://` or `https://` prefix; URLs without one are returned unchanged.
pub fn strip_scheme(url: &str) -> &str {
    url.strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url)
        .trim_end_matches('/')
}

/// Formats a node id as etcd prints member ids: lowercase hex without leading zeros.
pub fn format_id(id: u64) -> String {
    format!("{id:x}")
}

/// Parses a member id the way etcdctl and `hanode member` accept it: hex, optionally `0x`-prefixed.
pub fn parse_id(text: &str) -> Option<u64> {
    let hex = text.trim().trim_start_matches("0x");
    u64::from_str_radix(hex, 16).ok().filter(|id| *id != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addr_strips_scheme_and_slash() {
        let m = Member {
            peer_url: "https://127.0.0.2:2380/".into(),
            ..Member::default()
        };
        assert_eq!(m.peer_addr(), "127.0.0.2:2380");
    }

    #[test]
    fn ids_round_trip_as_hex() {
        assert_eq!(parse_id(&format_id(0xdead_beef)), Some(0xdead_beef));
        assert_eq!(parse_id("0x10"), Some(16));
        assert_eq!(parse_id("0"), None);
        assert_eq!(parse_id("zz"), None);
    }
}
