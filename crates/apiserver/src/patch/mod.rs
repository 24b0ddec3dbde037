//! PATCH bodies applied to a stored object.
//!
//! Owns the four patch media types kubectl sends (clients.md §1.9): JSON merge patch
//! (RFC 7386, [`merge`]), strategic merge patch ([`strategic`]), JSON patch (RFC 6902, through
//! the `json-patch` crate) and server-side apply, which is refused. It works on
//! `serde_json::Value` only: it does not read or write the store, check preconditions such as
//! `resourceVersion`, validate the patched object or turn a [`PatchError`] into a Kubernetes
//! `Status` (the HTTP layer owns that table; each variant documents its status code).

pub mod merge;
pub mod strategic;

use serde_json::Value;

pub use merge::merge_patch;
pub use strategic::strategic_merge_patch;

/// The kind of PATCH body, chosen by the request's `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchType {
    /// `application/merge-patch+json`: RFC 7386 JSON merge patch.
    Merge,
    /// `application/strategic-merge-patch+json`: Kubernetes strategic merge patch.
    StrategicMerge,
    /// `application/json-patch+json`: RFC 6902 JSON patch.
    Json,
    /// `application/apply-patch+yaml`: server-side apply (refused by hanode).
    Apply,
}

impl PatchType {
    /// Every patch type, in the order the API advertises them.
    pub const ALL: [PatchType; 4] = [
        PatchType::Json,
        PatchType::Merge,
        PatchType::StrategicMerge,
        PatchType::Apply,
    ];

    /// Picks the patch type of a `Content-Type` header value.
    ///
    /// Media type parameters (`;charset=utf-8`) and ASCII case are ignored, as HTTP says they
    /// must be. Returns `None` for any other media type (the caller answers 415).
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        PatchType::ALL
            .into_iter()
            .find(|patch_type| patch_type.content_type().eq_ignore_ascii_case(essence))
    }

    /// The media type that selects this patch type.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::Json => "application/json-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// Why a PATCH body could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The body is not valid JSON or does not have the shape its patch type requires
    /// (HTTP 400 Bad Request).
    #[error("malformed patch: {0}")]
    Malformed(String),
    /// The body is well formed but cannot be applied to this object, e.g. a failed JSON patch
    /// `test` operation or an unknown `$patch` directive (HTTP 422 Unprocessable Entity).
    #[error("invalid patch: {0}")]
    Invalid(String),
    /// The patch type is not supported for this object, e.g. strategic merge on a kind
    /// without a merge-key schema, or server-side apply (HTTP 415 Unsupported Media Type).
    #[error("unsupported patch: {0}")]
    Unsupported(String),
}

/// Applies a PATCH `body` of `patch_type` to `original`, an object of `kind` (e.g. `"Pod"`),
/// and returns the patched object.
///
/// `original` is never modified. The result is not validated: the caller still checks
/// identity fields (name, namespace, uid) and the object's own rules.
pub fn apply(
    patch_type: PatchType,
    kind: &str,
    original: &Value,
    body: &[u8],
) -> Result<Value, PatchError> {
    let parse = || {
        serde_json::from_slice::<Value>(body)
            .map_err(|error| PatchError::Malformed(format!("body is not valid JSON: {error}")))
    };
    match patch_type {
        // Refused before parsing: the body is YAML, and the answer is the same for any body.
        PatchType::Apply => Err(PatchError::Unsupported(
            "server-side apply (application/apply-patch+yaml) is not supported; \
             use client-side `kubectl apply` (without --server-side)"
                .to_owned(),
        )),
        PatchType::Merge => {
            let patch = parse()?;
            // RFC 7386 would let a non-object patch replace the whole object; for an API
            // object that can only produce garbage, so it is refused like Kubernetes does.
            if !patch.is_object() {
                return Err(PatchError::Malformed(
                    "a merge patch must be a JSON object".to_owned(),
                ));
            }
            Ok(merge_patch(original, &patch))
        }
        PatchType::StrategicMerge => strategic_merge_patch(kind, original, &parse()?),
        PatchType::Json => json_patch_apply(original, parse()?),
    }
}

/// Applies an RFC 6902 JSON patch (already parsed as JSON) to a copy of `original`.
fn json_patch_apply(original: &Value, patch: Value) -> Result<Value, PatchError> {
    let operations: json_patch::Patch = serde_json::from_value(patch).map_err(|error| {
        PatchError::Malformed(format!("not a JSON patch (array of operations): {error}"))
    })?;
    let mut patched = original.clone();
    // `json_patch::patch` is atomic: on error the document is rolled back, and it is a copy
    // anyway, so a failed patch never leaks a half-applied object.
    json_patch::patch(&mut patched, &operations)
        .map_err(|error| PatchError::Invalid(error.to_string()))?;
    Ok(patched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Content types are recognised by their essence: parameters and case do not matter, and
    /// unknown media types are rejected.
    #[test]
    fn content_type_ignores_parameters_and_case() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json"),
            Some(PatchType::Merge)
        );
        assert_eq!(
            PatchType::from_content_type("application/strategic-merge-patch+json; charset=utf-8"),
            Some(PatchType::StrategicMerge)
        );
        assert_eq!(
            PatchType::from_content_type("Application/JSON-Patch+JSON"),
            Some(PatchType::Json)
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            Some(PatchType::Apply)
        );
        assert_eq!(PatchType::from_content_type("application/json"), None);
        assert_eq!(PatchType::from_content_type(""), None);
    }

    /// Every patch type's advertised media type parses back to the same patch type.
    #[test]
    fn content_type_round_trips() {
        for patch_type in PatchType::ALL {
            assert_eq!(
                PatchType::from_content_type(patch_type.content_type()),
                Some(patch_type)
            );
        }
    }

    /// Server-side apply is refused as unsupported (415) whatever the body, and the message
    /// points the user at client-side apply.
    #[test]
    fn server_side_apply_is_unsupported() {
        let error = apply(PatchType::Apply, "Pod", &json!({}), b"kind: Pod\n").unwrap_err();
        let PatchError::Unsupported(message) = error else {
            panic!("expected Unsupported, got {error:?}");
        };
        assert!(message.contains("server-side apply"), "{message}");
        assert!(message.contains("kubectl apply"), "{message}");
    }

    /// A body that is not JSON is malformed (400) for every JSON patch type.
    #[test]
    fn malformed_body_is_rejected() {
        for patch_type in [PatchType::Merge, PatchType::StrategicMerge, PatchType::Json] {
            let error = apply(patch_type, "Pod", &json!({}), b"{not json").unwrap_err();
            assert!(
                matches!(error, PatchError::Malformed(_)),
                "{patch_type:?}: {error:?}"
            );
        }
    }

    /// A body that is JSON but of the wrong shape is malformed: a merge or strategic patch
    /// must be an object, a JSON patch an array of operations.
    #[test]
    fn wrongly_shaped_body_is_malformed() {
        let original = json!({"metadata": {"name": "p"}});
        for (patch_type, body) in [
            (PatchType::Merge, &b"[1]"[..]),
            (PatchType::StrategicMerge, b"\"x\""),
            (PatchType::Json, b"{\"op\":\"add\"}"),
            (
                PatchType::Json,
                b"[{\"op\":\"frobnicate\",\"path\":\"/a\"}]",
            ),
        ] {
            let error = apply(patch_type, "Pod", &original, body).unwrap_err();
            assert!(
                matches!(error, PatchError::Malformed(_)),
                "{patch_type:?}: {error:?}"
            );
        }
    }

    /// A merge patch from `kubectl label` adds and removes labels and leaves the rest alone.
    #[test]
    fn merge_patch_adds_and_removes_labels() {
        let original = json!({
            "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}
        });
        let added = apply(
            PatchType::Merge,
            "Pod",
            &original,
            br#"{"metadata":{"labels":{"k":"v"}}}"#,
        )
        .unwrap();
        assert_eq!(
            added["metadata"]["labels"],
            json!({"a": "1", "b": "2", "k": "v"})
        );
        let removed = apply(
            PatchType::Merge,
            "Pod",
            &added,
            br#"{"metadata":{"labels":{"a":null}}}"#,
        )
        .unwrap();
        assert_eq!(removed["metadata"]["labels"], json!({"b": "2", "k": "v"}));
        assert_eq!(removed["spec"], original["spec"]);
    }

    /// RFC 6902 add, remove and replace operations apply in order to a copy of the object.
    #[test]
    fn json_patch_adds_removes_and_replaces() {
        let original =
            json!({"metadata": {"name": "p", "labels": {"a": "1"}}, "spec": {"replicas": 1}});
        let body = br#"[
            {"op": "add", "path": "/metadata/labels/b", "value": "2"},
            {"op": "remove", "path": "/metadata/labels/a"},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/spec/list", "value": [1]},
            {"op": "add", "path": "/spec/list/-", "value": 2}
        ]"#;
        let patched = apply(PatchType::Json, "Deployment", &original, body).unwrap();
        assert_eq!(
            patched,
            json!({"metadata": {"name": "p", "labels": {"b": "2"}}, "spec": {"replicas": 3, "list": [1, 2]}})
        );
    }

    /// A failed RFC 6902 `test` operation makes the whole patch invalid (422), and a passing
    /// one lets the following operations run.
    #[test]
    fn json_patch_test_failure_is_invalid() {
        let original = json!({"spec": {"replicas": 1}});
        let failing = br#"[{"op":"test","path":"/spec/replicas","value":2},
                           {"op":"replace","path":"/spec/replicas","value":5}]"#;
        let error = apply(PatchType::Json, "Deployment", &original, failing).unwrap_err();
        assert!(matches!(error, PatchError::Invalid(_)), "{error:?}");

        let passing = br#"[{"op":"test","path":"/spec/replicas","value":1},
                           {"op":"replace","path":"/spec/replicas","value":5}]"#;
        let patched = apply(PatchType::Json, "Deployment", &original, passing).unwrap();
        assert_eq!(patched, json!({"spec": {"replicas": 5}}));
    }

    /// Removing a path that does not exist is invalid (422), not a silent no-op.
    #[test]
    fn json_patch_missing_path_is_invalid() {
        let error = apply(
            PatchType::Json,
            "Pod",
            &json!({"metadata": {}}),
            br#"[{"op":"remove","path":"/metadata/labels/x"}]"#,
        )
        .unwrap_err();
        assert!(matches!(error, PatchError::Invalid(_)), "{error:?}");
    }

    /// Strategic merge on a kind without a merge-key schema is unsupported (415), since
    /// guessing list semantics could silently corrupt lists.
    #[test]
    fn strategic_merge_on_unknown_kind_is_unsupported() {
        let error = apply(
            PatchType::StrategicMerge,
            "Widget",
            &json!({"spec": {}}),
            br#"{"spec":{"size":1}}"#,
        )
        .unwrap_err();
        assert!(matches!(error, PatchError::Unsupported(_)), "{error:?}");
    }
}
