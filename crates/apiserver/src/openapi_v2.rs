//! `GET /openapi/v2` as the gnostic protobuf document kubectl 1.27 and 1.28 download before
//! `apply` and `create -f`.
//!
//! Those kubectl versions decide between server-side and client-side validation from the v2
//! document alone: a PATCH operation tagged with the object's group, version and kind that
//! lists the `fieldValidation` query parameter means "validate on the server". Without the
//! document they fail outright (`failed to download openapi`), so this serves exactly that: one
//! PATCH operation per served kind, no schemas. Having no definitions, kubectl falls back to its
//! compiled-in types for strategic merge metadata, as it does when the document is missing.
//!
//! Only the messages and fields written here are modelled; field numbers are those of
//! `openapi.v2` in gnostic's `OpenAPIv2.proto` (the wire format kubectl decodes).

use prost::Message;

use crate::discovery::KUBE_MINOR;
use crate::resources::RESOURCES;

/// The response media type. kubectl asks for `...spec.v2@v1.0+protobuf`, but Go's MIME parser
/// rejects the `@` in a response `Content-Type`, so the answer uses `.` as kube-apiserver does.
pub const MEDIA_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

#[derive(Clone, PartialEq, Message)]
struct Document {
    #[prost(string, tag = "1")]
    swagger: String,
    #[prost(message, optional, tag = "2")]
    info: Option<Info>,
    #[prost(message, optional, tag = "8")]
    paths: Option<Paths>,
}

#[derive(Clone, PartialEq, Message)]
struct Info {
    #[prost(string, tag = "1")]
    title: String,
    #[prost(string, tag = "2")]
    version: String,
}

#[derive(Clone, PartialEq, Message)]
struct Paths {
    #[prost(message, repeated, tag = "2")]
    path: Vec<NamedPathItem>,
}

#[derive(Clone, PartialEq, Message)]
struct NamedPathItem {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<PathItem>,
}

#[derive(Clone, PartialEq, Message)]
struct PathItem {
    #[prost(message, optional, tag = "8")]
    patch: Option<Operation>,
}

#[derive(Clone, PartialEq, Message)]
struct Operation {
    #[prost(string, tag = "5")]
    operation_id: String,
    #[prost(message, repeated, tag = "8")]
    parameters: Vec<ParametersItem>,
    #[prost(message, repeated, tag = "13")]
    vendor_extension: Vec<NamedAny>,
}

/// `ParametersItem { oneof { Parameter parameter = 1; ... } }`.
#[derive(Clone, PartialEq, Message)]
struct ParametersItem {
    #[prost(message, optional, tag = "1")]
    parameter: Option<Parameter>,
}

/// `Parameter { oneof { BodyParameter = 1; NonBodyParameter non_body_parameter = 2; } }`.
#[derive(Clone, PartialEq, Message)]
struct Parameter {
    #[prost(message, optional, tag = "2")]
    non_body_parameter: Option<NonBodyParameter>,
}

/// `NonBodyParameter { oneof { ...; QueryParameterSubSchema query_parameter_sub_schema = 3; } }`.
#[derive(Clone, PartialEq, Message)]
struct NonBodyParameter {
    #[prost(message, optional, tag = "3")]
    query_parameter_sub_schema: Option<QueryParameter>,
}

#[derive(Clone, PartialEq, Message)]
struct QueryParameter {
    #[prost(string, tag = "2")]
    r#in: String,
    #[prost(string, tag = "4")]
    name: String,
    #[prost(string, tag = "6")]
    r#type: String,
}

#[derive(Clone, PartialEq, Message)]
struct NamedAny {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Any>,
}

/// gnostic's `Any`: the extension's value as YAML text (field 2).
#[derive(Clone, PartialEq, Message)]
struct Any {
    #[prost(string, tag = "2")]
    yaml: String,
}

fn query_parameter(name: &str) -> ParametersItem {
    ParametersItem {
        parameter: Some(Parameter {
            non_body_parameter: Some(NonBodyParameter {
                query_parameter_sub_schema: Some(QueryParameter {
                    r#in: "query".into(),
                    name: name.into(),
                    r#type: "string".into(),
                }),
            }),
        }),
    }
}

/// The encoded document.
pub fn document() -> Vec<u8> {
    let path = RESOURCES
        .iter()
        .map(|rt| {
            let base = if rt.group.is_empty() {
                format!("/api/{}", rt.version)
            } else {
                format!("/apis/{}/{}", rt.group, rt.version)
            };
            let name = if rt.namespaced {
                format!("{base}/namespaces/{{namespace}}/{}/{{name}}", rt.plural)
            } else {
                format!("{base}/{}/{{name}}", rt.plural)
            };
            let gvk = format!(
                "group: \"{}\"\nkind: {}\nversion: {}\n",
                rt.group, rt.kind, rt.version
            );
            NamedPathItem {
                name,
                value: Some(PathItem {
                    patch: Some(Operation {
                        operation_id: format!("patch{}", rt.kind),
                        parameters: ["fieldValidation", "dryRun", "fieldManager"]
                            .into_iter()
                            .map(query_parameter)
                            .collect(),
                        vendor_extension: vec![NamedAny {
                            name: "x-kubernetes-group-version-kind".into(),
                            value: Some(Any { yaml: gvk }),
                        }],
                    }),
                }),
            }
        })
        .collect();
    Document {
        swagger: "2.0".into(),
        info: Some(Info {
            title: "Kubernetes".into(),
            version: format!("v1.{KUBE_MINOR}.0"),
        }),
        paths: Some(Paths { path }),
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_patch_operation_with_field_validation() {
        let doc = Document::decode(document().as_slice()).expect("decodes");
        let paths = doc.paths.expect("paths").path;
        assert_eq!(paths.len(), RESOURCES.len());
        let deployment = paths
            .iter()
            .find(|p| p.name == "/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
            .and_then(|p| p.value.clone())
            .and_then(|v| v.patch)
            .expect("deployment patch");
        assert_eq!(
            deployment.vendor_extension[0]
                .value
                .as_ref()
                .map(|a| a.yaml.as_str()),
            Some("group: \"apps\"\nkind: Deployment\nversion: v1\n")
        );
        let names: Vec<String> = deployment
            .parameters
            .iter()
            .filter_map(|p| {
                p.parameter
                    .clone()?
                    .non_body_parameter?
                    .query_parameter_sub_schema
                    .map(|q| q.name)
            })
            .collect();
        assert!(names.contains(&"fieldValidation".to_string()));
    }
}
