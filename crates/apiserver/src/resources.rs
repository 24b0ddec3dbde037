//! The resource types the API serves: names, scope, verbs, subresources and where their objects
//! live in the store.

/// Verbs of a full read-write resource, as discovery lists them.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// A subresource of a resource type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subresource {
    /// `/status`: the object, but only `status` is written.
    Status,
    /// `/scale`: an `autoscaling/v1 Scale` view of `spec.replicas`.
    Scale,
    /// `/binding` (pods): assigns `spec.nodeName`.
    Binding,
}

impl Subresource {
    /// The path segment.
    pub fn name(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale => "scale",
            Subresource::Binding => "binding",
        }
    }

    /// Parses a path segment.
    pub fn parse(segment: &str) -> Option<Subresource> {
        match segment {
            "status" => Some(Subresource::Status),
            "scale" => Some(Subresource::Scale),
            "binding" => Some(Subresource::Binding),
            _ => None,
        }
    }
}

/// One resource type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// API group, empty for the core group.
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Kind of its objects.
    pub kind: &'static str,
    /// Plural name (the URL segment).
    pub plural: &'static str,
    /// Singular name.
    pub singular: &'static str,
    /// Short names kubectl accepts (`po`, `deploy`).
    pub short_names: &'static [&'static str],
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Subresources served.
    pub subresources: &'static [Subresource],
    /// Categories (`all`).
    pub categories: &'static [&'static str],
}

impl ResourceType {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The kind of its lists.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Store prefix of all its objects: `/registry/pods/` or `/registry/apps/deployments/`.
    pub fn prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/registry/{}/", self.plural)
        } else {
            format!("/registry/{}/{}/", self.group, self.plural)
        }
    }

    /// Store prefix of its objects in one namespace (namespaced types only).
    pub fn namespace_prefix(&self, namespace: &str) -> String {
        format!("{}{namespace}/", self.prefix())
    }

    /// Store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("{}{ns}/{name}", self.prefix()),
            _ => format!("{}{name}", self.prefix()),
        }
    }

    /// Whether it serves `subresource`.
    pub fn has(&self, subresource: Subresource) -> bool {
        self.subresources.contains(&subresource)
    }
}

const CORE: &str = "";
const APPS: &str = "apps";
const COORDINATION: &str = "coordination.k8s.io";

/// Every resource type served, in discovery order.
pub const RESOURCES: &[ResourceType] = &[
    ResourceType {
        group: CORE,
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        short_names: &["ns"],
        namespaced: false,
        subresources: &[Subresource::Status],
        categories: &[],
    },
    ResourceType {
        group: CORE,
        version: "v1",
        kind: "Node",
        plural: "nodes",
        singular: "node",
        short_names: &["no"],
        namespaced: false,
        subresources: &[Subresource::Status],
        categories: &[],
    },
    ResourceType {
        group: CORE,
        version: "v1",
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        short_names: &["po"],
        namespaced: true,
        subresources: &[Subresource::Status, Subresource::Binding],
        categories: &["all"],
    },
    ResourceType {
        group: CORE,
        version: "v1",
        kind: "Service",
        plural: "services",
        singular: "service",
        short_names: &["svc"],
        namespaced: true,
        subresources: &[Subresource::Status],
        categories: &["all"],
    },
    ResourceType {
        group: CORE,
        version: "v1",
        kind: "Endpoints",
        plural: "endpoints",
        singular: "endpoints",
        short_names: &["ep"],
        namespaced: true,
        subresources: &[],
        categories: &[],
    },
    ResourceType {
        group: CORE,
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        singular: "configmap",
        short_names: &["cm"],
        namespaced: true,
        subresources: &[],
        categories: &[],
    },
    ResourceType {
        group: CORE,
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        singular: "secret",
        short_names: &[],
        namespaced: true,
        subresources: &[],
        categories: &[],
    },
    ResourceType {
        group: CORE,
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        short_names: &["ev"],
        namespaced: true,
        subresources: &[],
        categories: &[],
    },
    ResourceType {
        group: CORE,
        version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        short_names: &["sa"],
        namespaced: true,
        subresources: &[],
        categories: &[],
    },
    ResourceType {
        group: COORDINATION,
        version: "v1",
        kind: "Lease",
        plural: "leases",
        singular: "lease",
        short_names: &[],
        namespaced: true,
        subresources: &[],
        categories: &[],
    },
    ResourceType {
        group: APPS,
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        singular: "deployment",
        short_names: &["deploy"],
        namespaced: true,
        subresources: &[Subresource::Status, Subresource::Scale],
        categories: &["all"],
    },
    ResourceType {
        group: APPS,
        version: "v1",
        kind: "ReplicaSet",
        plural: "replicasets",
        singular: "replicaset",
        short_names: &["rs"],
        namespaced: true,
        subresources: &[Subresource::Status, Subresource::Scale],
        categories: &["all"],
    },
];

/// The resource type served at `group/version/plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource type of a kind (within a group).
pub fn by_kind(group: &str, kind: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.kind == kind)
}

/// Groups and versions served, preferred version first: `("", "v1")`, `("apps", "v1")`, ...
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_registry_layout() {
        let pods = find("", "v1", "pods").expect("pods");
        assert_eq!(pods.key(Some("default"), "p"), "/registry/pods/default/p");
        let deploy = find("apps", "v1", "deployments").expect("deployments");
        assert_eq!(
            deploy.key(Some("ns"), "web"),
            "/registry/apps/deployments/ns/web"
        );
        let nodes = find("", "v1", "nodes").expect("nodes");
        assert_eq!(nodes.key(None, "n1"), "/registry/nodes/n1");
        assert_eq!(deploy.api_version(), "apps/v1");
        assert_eq!(
            group_versions(),
            vec![("", "v1"), ("coordination.k8s.io", "v1"), ("apps", "v1")]
        );
    }
}
