//! Who is calling (client certificates and bearer tokens) and what they may do.
//!
//! Authentication: a client certificate signed by the cluster CA (CN = user, O = groups), or a
//! bearer token from the token file (`token,user,uid,"group1,group2"`, as kube-apiserver's
//! `--token-auth-file`). Anonymous requests get 401.
//!
//! Authorization: `system:masters` may do everything; `system:nodes` may read what a node agent
//! needs and write only its own Node, its own Lease in `kube-node-lease`, status of pods bound to
//! it, and events; everyone authenticated may read discovery, version and health. Anything else
//! is 403.

use std::collections::HashMap;
use std::path::Path;

use hanode_pki::PeerIdentity;
use serde_json::Value;

use crate::status::ApiError;

/// The superuser group.
pub const MASTERS: &str = "system:masters";
/// The group of node agents.
pub const NODES: &str = "system:nodes";
/// Prefix of node agents' user names.
pub const NODE_USER_PREFIX: &str = "system:node:";

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// User name.
    pub user: String,
    /// Groups (always including `system:authenticated`).
    pub groups: Vec<String>,
}

impl Identity {
    /// Whether the caller is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The node name of a node agent.
    pub fn node_name(&self) -> Option<&str> {
        if !self.in_group(NODES) {
            return None;
        }
        self.user.strip_prefix(NODE_USER_PREFIX)
    }
}

/// Bearer tokens known to the server.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    by_token: HashMap<String, Identity>,
}

impl Tokens {
    /// Reads a token file; a missing file means no tokens.
    pub fn load(path: &Path) -> Result<Tokens, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => Tokens::parse(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Tokens::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Parses `token,user,uid[,"group1,group2"]` lines (`#` comments and blank lines ignored).
    pub fn parse(text: &str) -> Result<Tokens, String> {
        let mut by_token = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (fields, groups) = match line.split_once('"') {
                Some((head, rest)) => (head.trim_end_matches(','), rest.trim_end_matches('"')),
                None => (line, ""),
            };
            let parts: Vec<&str> = fields.split(',').map(str::trim).collect();
            if parts.len() < 3 || parts[0].is_empty() || parts[1].is_empty() {
                return Err(format!(
                    "line {}: expected token,user,uid[,\"groups\"]",
                    number + 1
                ));
            }
            let mut all: Vec<String> = groups
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(str::to_string)
                .collect();
            all.push("system:authenticated".into());
            by_token.insert(
                parts[0].to_string(),
                Identity {
                    user: parts[1].to_string(),
                    groups: all,
                },
            );
        }
        Ok(Tokens { by_token })
    }

    /// Adds one token.
    pub fn insert(&mut self, token: String, identity: Identity) {
        self.by_token.insert(token, identity);
    }

    fn find(&self, presented: &str) -> Option<&Identity> {
        // Compare every known token in constant time rather than hashing the guess.
        self.by_token
            .iter()
            .find(|(token, _)| hanode_pki::constant_time_eq(token.as_bytes(), presented.as_bytes()))
            .map(|(_, identity)| identity)
    }
}

/// Authenticates a request from its client certificate or `Authorization` header.
pub fn authenticate(
    certificate: Option<&PeerIdentity>,
    authorization: Option<&str>,
    tokens: &Tokens,
) -> Result<Identity, ApiError> {
    if let Some(header) = authorization {
        let token = header.strip_prefix("Bearer ").ok_or_else(|| {
            ApiError::unauthorized("only bearer tokens are accepted in the Authorization header")
        })?;
        return tokens
            .find(token.trim())
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("Unauthorized: the bearer token is not valid"));
    }
    if let Some(cert) = certificate {
        let mut groups = cert.organizations.clone();
        groups.push("system:authenticated".into());
        return Ok(Identity {
            user: cert.common_name.clone(),
            groups,
        });
    }
    Err(ApiError::unauthorized(
        "Unauthorized: present a client certificate signed by the cluster CA (see <data-dir>/admin.kubeconfig) or a bearer token",
    ))
}

/// What a request wants to do.
#[derive(Clone, Debug)]
pub struct Attributes<'a> {
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: &'a str,
    /// API group.
    pub group: &'a str,
    /// Resource (plural).
    pub resource: &'a str,
    /// Subresource, if any.
    pub subresource: Option<&'a str>,
    /// Namespace, if any.
    pub namespace: Option<&'a str>,
    /// Object name, if any.
    pub name: Option<&'a str>,
}

/// A check the handler must still make once it has the object (a node may only write status of
/// pods bound to it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Allowed outright.
    None,
    /// Allowed if the pod's `spec.nodeName` is this node.
    PodOnNode(String),
    /// A create, allowed if the new object's name is this (a node creating its own Node or
    /// node Lease).
    NamedAs(String),
}

fn forbidden(identity: &Identity, attrs: &Attributes<'_>) -> ApiError {
    let resource = match attrs.subresource {
        Some(sub) => format!("{}/{sub}", attrs.resource),
        None => attrs.resource.to_string(),
    };
    let scope = match attrs.namespace {
        Some(ns) => format!(" in the namespace \"{ns}\""),
        None => " at the cluster scope".to_string(),
    };
    let mut error = ApiError::forbidden(format!(
        "{} is forbidden: User \"{}\" cannot {} resource \"{}\" in API group \"{}\"{scope}",
        resource, identity.user, attrs.verb, resource, attrs.group
    ));
    error.details = Some(
        serde_json::json!({"name": attrs.name.unwrap_or_default(), "group": attrs.group, "kind": attrs.resource}),
    );
    error
}

/// Decides a resource request.
pub fn authorize(identity: &Identity, attrs: &Attributes<'_>) -> Result<Condition, ApiError> {
    if identity.in_group(MASTERS) {
        return Ok(Condition::None);
    }
    let Some(node) = identity.node_name() else {
        return Err(forbidden(identity, attrs));
    };
    let read = matches!(attrs.verb, "get" | "list" | "watch");
    let create = attrs.verb == "create" && attrs.name.is_none();
    let allowed = match (attrs.group, attrs.resource, attrs.subresource) {
        ("", "nodes", None) if create => return Ok(Condition::NamedAs(node.to_string())),
        ("", "nodes", _) => read || attrs.name == Some(node),
        ("coordination.k8s.io", "leases", None) if attrs.namespace == Some("kube-node-lease") => {
            if create {
                return Ok(Condition::NamedAs(node.to_string()));
            }
            read || attrs.name == Some(node)
        }
        ("", "pods", None) => read,
        ("", "pods", Some("status")) => {
            if matches!(attrs.verb, "update" | "patch") {
                return Ok(Condition::PodOnNode(node.to_string()));
            }
            read
        }
        ("", "events", None) => matches!(attrs.verb, "create" | "update" | "patch") || read,
        ("", "services" | "endpoints" | "namespaces", None) => read,
        _ => false,
    };
    if allowed {
        Ok(Condition::None)
    } else {
        Err(forbidden(identity, attrs))
    }
}

/// The answer to a SelfSubjectAccessReview's `spec` (`kubectl auth can-i`): whether `identity`
/// may do what it describes, by the rules [`authorize`] applies to real requests, and why not.
pub fn review(identity: &Identity, spec: &Value) -> Result<(bool, String), ApiError> {
    if let Some(attributes) = spec.get("resourceAttributes") {
        let text = |key: &str| {
            attributes
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let (Some(verb), Some(resource)) = (text("verb"), text("resource")) else {
            return Err(ApiError::bad_request(
                "spec.resourceAttributes needs a verb and a resource",
            ));
        };
        let attrs = Attributes {
            verb,
            group: text("group").unwrap_or(""),
            resource,
            subresource: text("subresource"),
            namespace: text("namespace"),
            name: text("name"),
        };
        return Ok(match authorize(identity, &attrs) {
            Ok(Condition::None) => (true, String::new()),
            Ok(Condition::NamedAs(own)) if attrs.name == Some(own.as_str()) => {
                (true, String::new())
            }
            Ok(Condition::NamedAs(own)) => (false, format!("only the one named \"{own}\"")),
            Ok(Condition::PodOnNode(node)) => (
                false,
                format!("only for pods bound to node \"{node}\", which this review cannot tell"),
            ),
            Err(denied) => (false, denied.message),
        });
    }
    if let Some(attributes) = spec.get("nonResourceAttributes") {
        let path = attributes.get("path").and_then(Value::as_str).unwrap_or("");
        return Ok(if is_open(path) || identity.in_group(MASTERS) {
            (true, String::new())
        } else {
            (false, format!("only {MASTERS} may use {path}"))
        });
    }
    Err(ApiError::bad_request(
        "spec needs resourceAttributes or nonResourceAttributes",
    ))
}

/// Paths every authenticated user may read.
const OPEN_PATHS: &[&str] = &[
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/openapi/*",
    "/readyz",
    "/version",
];

/// Whether `path` is in [`OPEN_PATHS`] (health, version, discovery and OpenAPI).
fn is_open(path: &str) -> bool {
    OPEN_PATHS.iter().any(|open| match open.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => path == *open,
    })
}

/// The rules of a SelfSubjectRulesReview (`kubectl auth can-i --list`) for `identity` in
/// `namespace`: `(resourceRules, nonResourceRules, incomplete)`. Found by asking [`authorize`]
/// about every served resource and verb, so the list cannot disagree with what requests meet;
/// permissions that depend on the object (a node's own pods) are left out and make the list
/// incomplete.
pub fn rules(identity: &Identity, namespace: &str) -> (Vec<Value>, Vec<Value>, bool) {
    use serde_json::json;
    if identity.in_group(MASTERS) {
        return (
            vec![json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})],
            vec![json!({"verbs": ["*"], "nonResourceURLs": ["*"]})],
            false,
        );
    }
    let mut resource_rules = Vec::new();
    let mut incomplete = false;
    let own = identity.node_name();
    for rt in crate::resources::RESOURCES {
        let subresources = std::iter::once(None).chain(rt.subresources.iter().copied().map(Some));
        for subresource in subresources {
            let (mut any, mut named) = (Vec::new(), Vec::new());
            for verb in crate::resources::ALL_VERBS {
                let attrs = Attributes {
                    verb,
                    group: rt.group,
                    resource: rt.plural,
                    subresource: subresource.map(crate::resources::Subresource::name),
                    namespace: rt.namespaced.then_some(namespace),
                    name: None,
                };
                match authorize(identity, &attrs) {
                    Ok(Condition::None) => any.push(*verb),
                    Ok(_) => incomplete = true,
                    Err(_) => {
                        let by_name = Attributes { name: own, ..attrs };
                        if own.is_some()
                            && matches!(authorize(identity, &by_name), Ok(Condition::None))
                        {
                            named.push(*verb);
                        }
                    }
                }
            }
            let resource = match subresource {
                Some(sub) => format!("{}/{}", rt.plural, sub.name()),
                None => rt.plural.to_string(),
            };
            if !any.is_empty() {
                resource_rules
                    .push(json!({"verbs": any, "apiGroups": [rt.group], "resources": [resource]}));
            }
            if let (false, Some(own)) = (named.is_empty(), own) {
                resource_rules.push(json!({"verbs": named, "apiGroups": [rt.group],
                    "resources": [resource], "resourceNames": [own]}));
            }
        }
    }
    let open = vec![json!({"verbs": ["get"], "nonResourceURLs": OPEN_PATHS})];
    (resource_rules, open, incomplete)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> Identity {
        Identity {
            user: format!("system:node:{name}"),
            groups: vec![NODES.into(), "system:authenticated".into()],
        }
    }

    fn attrs<'a>(
        verb: &'a str,
        resource: &'a str,
        ns: Option<&'a str>,
        name: Option<&'a str>,
    ) -> Attributes<'a> {
        let group = if resource == "leases" {
            "coordination.k8s.io"
        } else {
            ""
        };
        Attributes {
            verb,
            group,
            resource,
            subresource: None,
            namespace: ns,
            name,
        }
    }

    #[test]
    fn nodes_write_only_their_own_node_and_lease() {
        let n1 = node("n1");
        assert!(authorize(&n1, &attrs("update", "nodes", None, Some("n1"))).is_ok());
        assert!(authorize(&n1, &attrs("update", "nodes", None, Some("n2"))).is_err());
        assert!(
            authorize(
                &n1,
                &attrs("update", "leases", Some("kube-node-lease"), Some("n1"))
            )
            .is_ok()
        );
        assert!(
            authorize(
                &n1,
                &attrs("update", "leases", Some("kube-system"), Some("n1"))
            )
            .is_err()
        );
        assert!(authorize(&n1, &attrs("list", "secrets", Some("default"), None)).is_err());
        assert_eq!(
            authorize(&n1, &attrs("create", "nodes", None, None)).expect("conditional"),
            Condition::NamedAs("n1".into())
        );
        assert_eq!(
            authorize(
                &n1,
                &attrs("create", "leases", Some("kube-node-lease"), None)
            )
            .expect("conditional"),
            Condition::NamedAs("n1".into())
        );
        assert!(authorize(&n1, &attrs("create", "leases", Some("kube-system"), None)).is_err());
        let status = Attributes {
            subresource: Some("status"),
            ..attrs("patch", "pods", Some("default"), Some("p"))
        };
        assert_eq!(
            authorize(&n1, &status).expect("conditional"),
            Condition::PodOnNode("n1".into())
        );
    }

    #[test]
    fn others_are_forbidden_with_kubernetes_wording() {
        let bob = Identity {
            user: "bob".into(),
            groups: vec!["system:authenticated".into()],
        };
        let err = authorize(&bob, &attrs("list", "pods", Some("default"), None)).unwrap_err();
        assert_eq!(err.code.as_u16(), 403);
        assert_eq!(
            err.message,
            "pods is forbidden: User \"bob\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        );
    }

    #[test]
    fn tokens_and_certificates_authenticate() {
        let tokens = Tokens::parse("# comment\nsecret-1,alice,uid1,\"system:masters,dev\"\n")
            .expect("parse");
        let alice = authenticate(None, Some("Bearer secret-1"), &tokens).expect("alice");
        assert!(alice.in_group(MASTERS));
        assert!(authenticate(None, Some("Bearer nope"), &tokens).is_err());
        assert!(authenticate(None, None, &tokens).is_err());
        let cert = PeerIdentity {
            common_name: "admin".into(),
            organizations: vec![MASTERS.into()],
        };
        assert_eq!(
            authenticate(Some(&cert), None, &tokens).expect("cert").user,
            "admin"
        );
    }

    /// `kubectl auth can-i` gets the answers real requests get.
    #[test]
    fn access_reviews_follow_the_request_rules() {
        let review_as = |user: &str, groups: &[&str], spec: Value| {
            let identity = Identity {
                user: user.into(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
            };
            review(&identity, &spec)
        };
        let pods = serde_json::json!({"resourceAttributes": {"verb": "create", "resource": "pods", "namespace": "default"}});
        assert!(
            review_as("admin", &[MASTERS], pods.clone())
                .expect("review")
                .0
        );
        let (allowed, reason) = review_as("bob", &[], pods).expect("review");
        assert!(!allowed);
        assert!(reason.contains("bob"), "{reason}");

        let own_node = serde_json::json!({"resourceAttributes": {"verb": "create", "resource": "nodes", "name": "n1"}});
        let other_node = serde_json::json!({"resourceAttributes": {"verb": "create", "resource": "nodes", "name": "n2"}});
        let node = ("system:node:n1", ["system:nodes"]);
        assert!(review_as(node.0, &node.1, own_node).expect("review").0);
        assert!(!review_as(node.0, &node.1, other_node).expect("review").0);

        let metrics =
            serde_json::json!({"nonResourceAttributes": {"verb": "get", "path": "/metrics"}});
        assert!(!review_as("bob", &[], metrics.clone()).expect("review").0);
        assert!(review_as("admin", &[MASTERS], metrics).expect("review").0);

        assert!(review_as("bob", &[], serde_json::json!({})).is_err());
        assert!(
            review_as(
                "bob",
                &[],
                serde_json::json!({"resourceAttributes": {"verb": "get"}})
            )
            .is_err()
        );
    }

    /// `kubectl auth can-i --list` lists what the authorizer allows, and only that.
    #[test]
    fn rules_reviews_list_what_authorize_allows() {
        let admin = Identity {
            user: "admin".into(),
            groups: vec![MASTERS.into()],
        };
        let (resources, _, incomplete) = rules(&admin, "default");
        assert_eq!(resources[0]["resources"][0], "*");
        assert!(!incomplete);

        let bob = Identity {
            user: "bob".into(),
            groups: vec![],
        };
        let (resources, open, _) = rules(&bob, "default");
        assert!(resources.is_empty(), "{resources:?}");
        assert!(open[0]["nonResourceURLs"].to_string().contains("/version"));

        let node = Identity {
            user: "system:node:n1".into(),
            groups: vec!["system:nodes".into()],
        };
        let (resources, _, incomplete) = rules(&node, "kube-node-lease");
        let find = |resource: &str, named: bool| {
            resources.iter().find(|r| {
                r["resources"][0] == resource && r.get("resourceNames").is_some() == named
            })
        };
        let pods = find("pods", false).expect("pods rule");
        assert_eq!(pods["verbs"], serde_json::json!(["get", "list", "watch"]));
        let own_lease = find("leases", true).expect("own lease rule");
        assert_eq!(own_lease["resourceNames"], serde_json::json!(["n1"]));
        assert!(find("secrets", false).is_none());
        // Pod status writes depend on the pod's node: left out, and the list says so.
        assert!(incomplete);
    }
}
