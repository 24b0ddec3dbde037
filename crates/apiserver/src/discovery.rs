//! Discovery (aggregated and legacy), `/version`, and the minimal OpenAPI v3 documents that make
//! `kubectl apply` validate on the server (clients.md §1.4, §1.5, §1.3).

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::resources::{ALL_VERBS, RESOURCES, ResourceType, Subresource, group_versions};

/// The Kubernetes version reported: kubectl (through the gcloud dispatcher on PATH) picks its
/// binary by this minor, so 1.32 runs and 1.27–1.33 stay within their supported skew. The
/// kinds served here have the same schema in 1.32 and in the 1.33 types k8s-openapi checks with.
pub const KUBE_MINOR: &str = "32";

/// Media type of aggregated discovery.
const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const AGGREGATED_BETA: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// `GET /version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "gitVersion": format!("v1.{KUBE_MINOR}.0+hanode"),
        "gitCommit": "hanode",
        "gitTreeState": "clean",
        "buildDate": "2026-11-25T00:00:00Z",
        "goVersion": "n/a (hanode is written in Rust)",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
    })
}

/// Which aggregated discovery version the client accepts, if any.
fn aggregated_wanted(accept: &str) -> Option<&'static str> {
    let accept = accept.replace(' ', "");
    if accept.contains("as=APIGroupDiscoveryList") {
        if accept.contains("v=v2;") || accept.contains("v=v2,") || accept.ends_with("v=v2") {
            return Some(AGGREGATED);
        }
        return Some(AGGREGATED_BETA);
    }
    None
}

fn json_with_type(body: Value, content_type: &'static str) -> Response {
    ([(CONTENT_TYPE, content_type)], body.to_string()).into_response()
}

fn verbs(rt: &ResourceType) -> Vec<&'static str> {
    let _ = rt;
    ALL_VERBS.to_vec()
}

fn resource_discovery(rt: &ResourceType) -> Value {
    let subresources: Vec<Value> = rt
        .subresources
        .iter()
        .map(|sub| match sub {
            Subresource::Scale => json!({"subresource": "scale",
                "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
                "verbs": ["get", "patch", "update"]}),
            Subresource::Status => json!({"subresource": "status",
                "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
                "verbs": ["get", "patch", "update"]}),
            Subresource::Binding => json!({"subresource": "binding",
                "responseKind": {"group": "", "version": "v1", "kind": "Binding"},
                "verbs": ["create"]}),
        })
        .collect();
    let mut entry = json!({
        "resource": rt.plural,
        "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        "scope": if rt.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": rt.singular,
        "verbs": verbs(rt),
    });
    if !rt.short_names.is_empty() {
        entry["shortNames"] = json!(rt.short_names);
    }
    if !rt.categories.is_empty() {
        entry["categories"] = json!(rt.categories);
    }
    if !subresources.is_empty() {
        entry["subresources"] = json!(subresources);
    }
    entry
}

fn group_discovery(group: &str) -> Value {
    let versions: Vec<Value> = group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(_, version)| {
            let resources: Vec<Value> = RESOURCES
                .iter()
                .filter(|r| r.group == group && r.version == version)
                .map(resource_discovery)
                .collect();
            json!({"version": version, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": group}, "versions": versions})
}

/// `GET /api`.
pub fn api(accept: &str, server_address: &str) -> Response {
    if let Some(media) = aggregated_wanted(accept) {
        let body = json!({"kind": "APIGroupDiscoveryList", "apiVersion": media_api_version(media), "metadata": {},
            "items": [group_discovery("")]});
        return json_with_type(body, media);
    }
    let body = json!({"kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]});
    json_with_type(body, "application/json")
}

fn media_api_version(media: &str) -> &'static str {
    if media == AGGREGATED {
        "apidiscovery.k8s.io/v2"
    } else {
        "apidiscovery.k8s.io/v2beta1"
    }
}

fn named_groups() -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = Vec::new();
    for (group, _) in group_versions() {
        if !group.is_empty() && !groups.contains(&group) {
            groups.push(group);
        }
    }
    groups
}

/// `GET /apis`.
pub fn apis(accept: &str) -> Response {
    if let Some(media) = aggregated_wanted(accept) {
        let items: Vec<Value> = named_groups().into_iter().map(group_discovery).collect();
        let body = json!({"kind": "APIGroupDiscoveryList", "apiVersion": media_api_version(media), "metadata": {}, "items": items});
        return json_with_type(body, media);
    }
    let groups: Vec<Value> = named_groups()
        .into_iter()
        .map(|group| {
            let versions: Vec<Value> = group_versions()
                .into_iter()
                .filter(|(g, _)| *g == group)
                .map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            let preferred = versions.first().cloned().unwrap_or(Value::Null);
            json!({"name": group, "versions": versions, "preferredVersion": preferred})
        })
        .collect();
    json_with_type(
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
        "application/json",
    )
}

/// `GET /api/v1` or `GET /apis/{group}/{version}`; `None` if nothing is served there.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let types: Vec<&ResourceType> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if types.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for rt in types {
        let mut entry = json!({"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
            "kind": rt.kind, "verbs": verbs(rt)});
        if !rt.short_names.is_empty() {
            entry["shortNames"] = json!(rt.short_names);
        }
        if !rt.categories.is_empty() {
            entry["categories"] = json!(rt.categories);
        }
        resources.push(entry);
        for sub in rt.subresources {
            let (group, version, kind, verbs) = match sub {
                Subresource::Scale => (
                    "autoscaling",
                    "v1",
                    "Scale",
                    json!(["get", "patch", "update"]),
                ),
                Subresource::Status => (
                    rt.group,
                    rt.version,
                    rt.kind,
                    json!(["get", "patch", "update"]),
                ),
                Subresource::Binding => ("", "v1", "Binding", json!(["create"])),
            };
            resources.push(json!({"name": format!("{}/{}", rt.plural, sub.name()), "singularName": "",
                "namespaced": rt.namespaced, "group": group, "version": version, "kind": kind, "verbs": verbs}));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

fn openapi_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `GET /openapi/v3`: one entry per group version.
pub fn openapi_index() -> Value {
    let mut paths = serde_json::Map::new();
    for (group, version) in group_versions() {
        let path = openapi_path(group, version);
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}")}),
        );
    }
    json!({"paths": paths})
}

/// `GET /openapi/v3/{path}`: PATCH operations that advertise server-side field validation, so
/// kubectl validates on the server instead of downloading the full schema.
pub fn openapi_group_version(path: &str) -> Option<Value> {
    let (group, version) = group_versions()
        .into_iter()
        .find(|(g, v)| openapi_path(g, v) == path)?;
    let mut paths = serde_json::Map::new();
    for rt in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let base = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let item = if rt.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", rt.plural)
        } else {
            format!("{base}/{}/{{name}}", rt.plural)
        };
        let op = json!({"patch": {
            "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
            "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                           {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                           {"name": "fieldManager", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "OK"}}}});
        paths.insert(item, op);
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": format!("v1.{KUBE_MINOR}.0")}, "paths": paths}),
    )
}

/// `GET /openapi/v2` for JSON clients: the same PATCH operations as the protobuf form
/// ([`crate::openapi_v2`]).
pub fn openapi_v2_json() -> Value {
    let mut paths = serde_json::Map::new();
    for (group, version) in group_versions() {
        if let Some(doc) = openapi_group_version(&openapi_path(group, version))
            && let Some(ops) = doc["paths"].as_object()
        {
            for (path, item) in ops {
                let mut item = item.clone();
                if let Some(params) = item["patch"]["parameters"].as_array_mut() {
                    for param in params {
                        param["type"] = json!("string");
                        if let Some(map) = param.as_object_mut() {
                            map.remove("schema");
                        }
                    }
                }
                paths.insert(path.clone(), item);
            }
        }
    }
    json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": format!("v1.{KUBE_MINOR}.0")}, "paths": paths})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_discovery_needs_the_exact_media_type() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated_wanted(kubectl), Some(AGGREGATED));
        assert_eq!(aggregated_wanted("application/json"), None);
    }

    #[test]
    fn legacy_lists_name_kinds_and_subresources() {
        let list = resource_list("apps", "v1").expect("apps/v1");
        let names: Vec<&str> = list["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert!(names.contains(&"deployments") && names.contains(&"deployments/scale"));
        assert!(resource_list("batch", "v1").is_none());
        assert!(openapi_group_version("apis/apps/v1").is_some());
        assert_eq!(version()["minor"], KUBE_MINOR);
    }
}
