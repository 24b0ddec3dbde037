//! RFC 7386 JSON merge patch (`application/merge-patch+json`).
//!
//! Used by `kubectl label`, `annotate`, `scale` and status updates. It knows nothing about
//! Kubernetes kinds: lists are always replaced whole (strategic merge patch, in
//! [`super::strategic`], is the kind-aware variant).

use serde_json::{Map, Value};

/// Applies the RFC 7386 merge `patch` to `target` and returns the result.
///
/// An object patch merges into an object target key by key: a `null` value deletes the key,
/// an object value merges recursively, anything else (arrays included) replaces the value.
/// A non-object patch replaces the target whole. Nulls inside newly added objects are
/// dropped, as the RFC requires.
#[must_use]
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    let Value::Object(patch_fields) = patch else {
        return patch.clone();
    };
    let mut merged = match target {
        Value::Object(fields) => fields.clone(),
        _ => Map::new(),
    };
    for (key, patch_value) in patch_fields {
        if patch_value.is_null() {
            merged.remove(key);
            continue;
        }
        let current = merged.get(key).unwrap_or(&Value::Null);
        let value = merge_patch(current, patch_value);
        merged.insert(key.clone(), value);
    }
    Value::Object(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every example of RFC 7386 appendix A gives the result the RFC lists.
    #[test]
    fn rfc7386_appendix_examples_hold() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (target, patch, expected) in cases {
            assert_eq!(
                merge_patch(&target, &patch),
                expected,
                "target {target}, patch {patch}"
            );
        }
    }

    /// The RFC 7386 section 3 example (a document with nested objects and an array) merges as
    /// the RFC shows.
    #[test]
    fn rfc7386_section3_example_holds() {
        let target = json!({
            "title": "Goodbye!",
            "author": {"givenName": "John", "familyName": "Doe"},
            "tags": ["example", "sample"],
            "content": "This will be unchanged"
        });
        let patch = json!({
            "title": "Hello!",
            "phoneNumber": "+01-123-456-7890",
            "author": {"familyName": null},
            "tags": ["example"]
        });
        assert_eq!(
            merge_patch(&target, &patch),
            json!({
                "title": "Hello!",
                "author": {"givenName": "John"},
                "tags": ["example"],
                "content": "This will be unchanged",
                "phoneNumber": "+01-123-456-7890"
            })
        );
    }

    /// Deleting a key that is absent is a no-op rather than an error.
    #[test]
    fn deleting_an_absent_key_is_a_no_op() {
        let target = json!({"metadata": {"labels": {"a": "1"}}});
        let patch = json!({"metadata": {"labels": {"zz": null}, "annotations": null}});
        assert_eq!(merge_patch(&target, &patch), target);
    }
}
