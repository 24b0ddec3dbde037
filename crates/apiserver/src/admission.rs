//! What happens to an object on its way in: it must be the kind the URL says, parse as the typed
//! Kubernetes object (k8s-openapi), carry no unknown fields when the client asked for strict
//! validation, have a valid name and the required fields; then defaults are filled in.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::resources::ResourceType;
use crate::status::{ApiError, ApiResult, Cause};
use crate::store::meta_str;

/// How unknown fields are treated (`fieldValidation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Reject the request (what kubectl asks for).
    Strict,
    /// Accept, with a `Warning` header.
    #[default]
    Warn,
    /// Accept silently.
    Ignore,
}

impl FieldValidation {
    /// From the query parameter.
    pub fn parse(value: Option<&str>) -> FieldValidation {
        match value {
            Some("Strict") => FieldValidation::Strict,
            Some("Ignore") => FieldValidation::Ignore,
            _ => FieldValidation::Warn,
        }
    }
}

/// Re-serializes `object` through its typed form, or says why it does not parse.
fn typed_round_trip(kind: &str, object: &Value) -> Result<Value, String> {
    use k8s_openapi::api::{apps, coordination, core};
    fn through<T: serde::de::DeserializeOwned + serde::Serialize>(
        object: &Value,
    ) -> Result<Value, String> {
        let typed: T = serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
        serde_json::to_value(typed).map_err(|e| e.to_string())
    }
    match kind {
        "Namespace" => through::<core::v1::Namespace>(object),
        "Node" => through::<core::v1::Node>(object),
        "Pod" => through::<core::v1::Pod>(object),
        "Service" => through::<core::v1::Service>(object),
        "Endpoints" => through::<core::v1::Endpoints>(object),
        "ConfigMap" => through::<core::v1::ConfigMap>(object),
        "Secret" => through::<core::v1::Secret>(object),
        "Event" => through::<core::v1::Event>(object),
        "ServiceAccount" => through::<core::v1::ServiceAccount>(object),
        "Binding" => through::<core::v1::Binding>(object),
        "Lease" => through::<coordination::v1::Lease>(object),
        "Deployment" => through::<apps::v1::Deployment>(object),
        "ReplicaSet" => through::<apps::v1::ReplicaSet>(object),
        "Scale" => through::<k8s_openapi::api::autoscaling::v1::Scale>(object),
        _ => Ok(object.clone()),
    }
}

/// Paths of fields in `input` that the typed form dropped: unknown fields.
fn unknown_fields(input: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(given), Value::Object(kept)) => {
            for (key, value) in given {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match kept.get(key) {
                    Some(kept_value) => unknown_fields(value, kept_value, &child, out),
                    None if value.is_null() => {}
                    None => out.push(child),
                }
            }
        }
        (Value::Array(given), Value::Array(kept)) => {
            for (i, (value, kept_value)) in given.iter().zip(kept).enumerate() {
                unknown_fields(value, kept_value, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// DNS-1123 subdomain (most names).
pub fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// DNS-1123 label (namespaces, services).
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn name_rule(kind: &str) -> (fn(&str) -> bool, &'static str) {
    match kind {
        "Namespace" | "Service" => (
            is_dns_label,
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
        ),
        _ => (
            is_dns_subdomain,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        ),
    }
}

/// Checks an incoming object for `rt`; returns warnings for unknown fields under `Warn`.
pub fn validate(
    rt: &ResourceType,
    url_namespace: Option<&str>,
    object: &Value,
    validation: FieldValidation,
) -> ApiResult<Vec<String>> {
    let Some(map) = object.as_object() else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON or YAML object",
        ));
    };
    if let Some(kind) = map.get("kind").and_then(Value::as_str)
        && kind != rt.kind
    {
        return Err(ApiError::bad_request(format!(
            "the body is a {kind}, but this endpoint takes {} objects",
            rt.kind
        )));
    }
    if let Some(api_version) = map.get("apiVersion").and_then(Value::as_str)
        && api_version != rt.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the body has apiVersion {api_version}, but this endpoint takes {}",
            rt.api_version()
        )));
    }
    if let (Some(body_ns), Some(url_ns)) = (meta_str(object, "namespace"), url_namespace)
        && !body_ns.is_empty()
        && body_ns != url_ns
    {
        return Err(ApiError::bad_request(format!(
            "the namespace of the provided object ({body_ns}) does not match the namespace sent on the request ({url_ns})"
        )));
    }
    let typed = typed_round_trip(rt.kind, object).map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {e}",
            rt.kind, rt.version, rt.kind
        ))
    })?;
    let mut unknown = Vec::new();
    unknown_fields(object, &typed, "", &mut unknown);
    let mut warnings = Vec::new();
    if !unknown.is_empty() {
        let text = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect::<Vec<_>>()
            .join(", ");
        match validation {
            FieldValidation::Strict => {
                return Err(ApiError::bad_request(format!(
                    "strict decoding error: {text}"
                )));
            }
            FieldValidation::Warn => {
                warnings.extend(unknown.iter().map(|f| format!("unknown field \"{f}\"")))
            }
            FieldValidation::Ignore => {}
        }
    }
    let name = meta_str(object, "name").unwrap_or_default();
    let mut causes = Vec::new();
    let (rule, rule_text) = name_rule(rt.kind);
    if name.is_empty() {
        causes.push(Cause {
            reason: "FieldValueRequired",
            message: "Required value: name or generateName is required".into(),
            field: "metadata.name".into(),
        });
    } else if !rule(name) {
        causes.push(Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: \"{name}\": {rule_text}"),
            field: "metadata.name".into(),
        });
    }
    required_fields(rt.kind, object, &mut causes);
    if !causes.is_empty() {
        return Err(ApiError::invalid(rt.kind, rt.group, name, causes));
    }
    Ok(warnings)
}

fn required(causes: &mut Vec<Cause>, field: String) {
    causes.push(Cause {
        reason: "FieldValueRequired",
        message: "Required value".into(),
        field,
    });
}

fn containers(spec: &Value, prefix: &str, causes: &mut Vec<Cause>) {
    let list = spec.get("containers").and_then(Value::as_array);
    match list {
        None => required(causes, format!("{prefix}.containers")),
        Some(list) if list.is_empty() => required(causes, format!("{prefix}.containers")),
        Some(list) => {
            let mut names = BTreeSet::new();
            for (i, container) in list.iter().enumerate() {
                match container.get("name").and_then(Value::as_str) {
                    None | Some("") => required(causes, format!("{prefix}.containers[{i}].name")),
                    Some(name) => {
                        if !names.insert(name.to_string()) {
                            causes.push(Cause {
                                reason: "FieldValueDuplicate",
                                message: format!("Duplicate value: \"{name}\""),
                                field: format!("{prefix}.containers[{i}].name"),
                            });
                        }
                    }
                }
                if container
                    .get("image")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    required(causes, format!("{prefix}.containers[{i}].image"));
                }
            }
        }
    }
}

fn required_fields(kind: &str, object: &Value, causes: &mut Vec<Cause>) {
    let empty = json!({});
    let spec = object.get("spec").unwrap_or(&empty);
    match kind {
        "Pod" => containers(spec, "spec", causes),
        "Deployment" | "ReplicaSet" => {
            if spec.get("selector").is_none() {
                required(causes, "spec.selector".into());
            }
            let template_spec = spec
                .get("template")
                .and_then(|t| t.get("spec"))
                .unwrap_or(&empty);
            containers(template_spec, "spec.template.spec", causes);
        }
        _ => {}
    }
}

fn set_default(object: &mut Value, path: &[&str], value: Value) {
    let mut cursor = object;
    for (i, key) in path.iter().enumerate() {
        if !cursor.is_object() {
            return;
        }
        if i == path.len() - 1 {
            if cursor.get(*key).is_none_or(Value::is_null) {
                cursor[*key] = value;
            }
            return;
        }
        if cursor.get(*key).is_none_or(Value::is_null) {
            cursor[*key] = json!({});
        }
        cursor = &mut cursor[*key];
    }
}

fn container_defaults(spec: &mut Value) {
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(containers)) = spec.get_mut(list) {
            for container in containers {
                let image = container
                    .get("image")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let tag = image.rsplit('/').next().unwrap_or_default();
                let latest = !tag.contains(':') || tag.ends_with(":latest");
                let policy = if latest { "Always" } else { "IfNotPresent" };
                set_default(container, &["imagePullPolicy"], json!(policy));
                set_default(
                    container,
                    &["terminationMessagePath"],
                    json!("/dev/termination-log"),
                );
                set_default(container, &["terminationMessagePolicy"], json!("File"));
                if let Some(Value::Array(ports)) = container.get_mut("ports") {
                    for port in ports {
                        set_default(port, &["protocol"], json!("TCP"));
                    }
                }
            }
        }
    }
    set_default(spec, &["restartPolicy"], json!("Always"));
    set_default(spec, &["dnsPolicy"], json!("ClusterFirst"));
    set_default(spec, &["schedulerName"], json!("default-scheduler"));
    set_default(spec, &["terminationGracePeriodSeconds"], json!(30));
}

/// Fills in the defaults a Kubernetes API server would.
pub fn default(kind: &str, object: &mut Value) {
    match kind {
        "Namespace" => {
            set_default(object, &["spec", "finalizers"], json!(["kubernetes"]));
            set_default(object, &["status", "phase"], json!("Active"));
        }
        "Pod" => {
            if let Some(spec) = object.get_mut("spec") {
                container_defaults(spec);
            }
            set_default(object, &["status", "phase"], json!("Pending"));
            set_default(object, &["status", "qosClass"], json!("BestEffort"));
        }
        "Deployment" => {
            set_default(object, &["spec", "replicas"], json!(1));
            set_default(object, &["spec", "revisionHistoryLimit"], json!(10));
            set_default(object, &["spec", "progressDeadlineSeconds"], json!(600));
            let has_strategy_type = object.pointer("/spec/strategy/type").is_some();
            if !has_strategy_type {
                set_default(
                    object,
                    &["spec", "strategy", "type"],
                    json!("RollingUpdate"),
                );
            }
            if object
                .pointer("/spec/strategy/type")
                .and_then(Value::as_str)
                == Some("RollingUpdate")
            {
                set_default(
                    object,
                    &["spec", "strategy", "rollingUpdate", "maxUnavailable"],
                    json!("25%"),
                );
                set_default(
                    object,
                    &["spec", "strategy", "rollingUpdate", "maxSurge"],
                    json!("25%"),
                );
            }
            if let Some(spec) = object.pointer_mut("/spec/template/spec") {
                container_defaults(spec);
            }
        }
        "ReplicaSet" => {
            set_default(object, &["spec", "replicas"], json!(1));
            if let Some(spec) = object.pointer_mut("/spec/template/spec") {
                container_defaults(spec);
            }
        }
        "Service" => {
            set_default(object, &["spec", "type"], json!("ClusterIP"));
            set_default(object, &["spec", "sessionAffinity"], json!("None"));
            if let Some(Value::Array(ports)) = object.pointer_mut("/spec/ports") {
                for port in ports {
                    set_default(port, &["protocol"], json!("TCP"));
                    if let Some(number) = port.get("port").cloned() {
                        set_default(port, &["targetPort"], number);
                    }
                }
            }
        }
        "Secret" => {
            set_default(object, &["type"], json!("Opaque"));
            // stringData is write-only: fold it into data.
            if let Some(Value::Object(strings)) =
                object.as_object_mut().and_then(|m| m.remove("stringData"))
            {
                use base64::Engine;
                for (key, value) in strings {
                    let text = value.as_str().unwrap_or_default();
                    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
                    set_default(object, &["data"], json!({}));
                    object["data"][key] = json!(encoded);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    fn pods() -> &'static ResourceType {
        find("", "v1", "pods").expect("pods")
    }

    #[test]
    fn strict_validation_names_unknown_fields() {
        let pod = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},
            "spec":{"containers":[{"name":"c","image":"nginx","bogus":1}],"alsoBogus":true}});
        let err = validate(pods(), Some("default"), &pod, FieldValidation::Strict).unwrap_err();
        assert_eq!(err.code.as_u16(), 400);
        assert!(
            err.message.contains("unknown field \"spec.alsoBogus\""),
            "{}",
            err.message
        );
        assert!(
            err.message
                .contains("unknown field \"spec.containers[0].bogus\""),
            "{}",
            err.message
        );
        let warnings = validate(pods(), Some("default"), &pod, FieldValidation::Warn).unwrap();
        assert_eq!(warnings.len(), 2);
    }

    #[test]
    fn missing_image_and_bad_name_are_invalid_with_causes() {
        let pod = json!({"metadata":{"name":"Bad_Name"},"spec":{"containers":[{"name":"c"}]}});
        let err = validate(pods(), None, &pod, FieldValidation::Strict).unwrap_err();
        assert_eq!(err.code.as_u16(), 422);
        let causes = err.details.expect("details")["causes"]
            .as_array()
            .expect("causes")
            .len();
        assert_eq!(causes, 2);
        assert!(
            err.message
                .contains("spec.containers[0].image: Required value")
        );
    }

    #[test]
    fn wrong_kind_or_namespace_is_a_bad_request() {
        let cm = json!({"kind":"ConfigMap","metadata":{"name":"x"}});
        assert_eq!(
            validate(pods(), None, &cm, FieldValidation::Strict)
                .unwrap_err()
                .code
                .as_u16(),
            400
        );
        let pod = json!({"metadata":{"name":"p","namespace":"a"},"spec":{"containers":[{"name":"c","image":"i"}]}});
        assert_eq!(
            validate(pods(), Some("b"), &pod, FieldValidation::Strict)
                .unwrap_err()
                .code
                .as_u16(),
            400
        );
    }

    #[test]
    fn defaults_fill_what_clients_leave_out() {
        let mut deploy = json!({"spec":{"selector":{},"template":{"spec":{"containers":[{"name":"a","image":"nginx:1.25"}]}}}});
        default("Deployment", &mut deploy);
        assert_eq!(deploy["spec"]["replicas"], 1);
        assert_eq!(
            deploy["spec"]["strategy"]["rollingUpdate"]["maxSurge"],
            "25%"
        );
        assert_eq!(
            deploy["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        let mut secret = json!({"stringData":{"k":"v"}});
        default("Secret", &mut secret);
        assert_eq!(secret["data"]["k"], "dg==");
        assert!(secret.get("stringData").is_none());
    }
}
