//! Kubernetes strategic merge patch (`application/strategic-merge-patch+json`).
//!
//! Client-side `kubectl apply`, `patch`, `set image`, `rollout restart` and `cordon` send
//! this. It is a JSON merge patch that knows, per kind, which lists merge element-wise and by
//! which key (the `patchMergeKey` struct tags of the Go API types), plus the directives
//! kubectl emits (clients.md §1.9):
//!
//! - maps merge recursively and `null` deletes a key;
//! - a list with a merge key merges element-wise by that key: matching elements merge
//!   recursively, new ones are appended, `{"$patch": "delete", <key>: ..}` removes one;
//! - a primitive merge list (`metadata.finalizers`) is unioned, and
//!   `$deleteFromPrimitiveList/<field>: [..]` removes values from it;
//! - `$setElementOrder/<field>: [..]` orders the final list: listed elements first in the
//!   given order, the others after them in their existing relative order;
//! - every other list is replaced whole;
//! - `$retainKeys: [..]` drops every key of the merged map that is not listed (union types
//!   such as Deployment `strategy` and volume sources);
//! - `$patch: replace` replaces a map (or, as a list element, the whole list) with the
//!   patch, `$patch: delete` deletes a map, `$patch: merge` is the default.
//!
//! Directive keys never reach the result. The merge-key schema is the data table
//! [`KINDS`] at the end of this file; a kind missing from it is refused rather than merged
//! with guessed list semantics. This module does not own the OpenAPI documents that tell
//! kubectl the same facts.

use serde_json::{Map, Value};

use super::PatchError;

/// The key of the `$patch` directive (`replace`, `delete` or `merge`).
const PATCH_DIRECTIVE: &str = "$patch";
/// The key of the `$retainKeys` directive.
const RETAIN_KEYS: &str = "$retainKeys";
/// Prefix of the `$setElementOrder/<field>` directive.
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
/// Prefix of the `$deleteFromPrimitiveList/<field>` directive.
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Applies the strategic merge `patch` to `original`, an object of `kind` (e.g. `"Pod"`), and
/// returns the result.
///
/// Fails with [`PatchError::Unsupported`] when `kind` has no merge-key schema (kubectl uses a
/// JSON merge patch for kinds it does not know), [`PatchError::Malformed`] when the patch or
/// a directive has the wrong shape (e.g. a merge-list element without its merge key) and
/// [`PatchError::Invalid`] for an unknown directive or a patch that deletes the whole object.
pub fn strategic_merge_patch(
    kind: &str,
    original: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    let schema = schema_for(kind).ok_or_else(|| {
        PatchError::Unsupported(format!(
            "strategic merge patch is not supported for kind {kind:?}; \
             use a JSON merge patch (application/merge-patch+json) or a JSON patch"
        ))
    })?;
    let Value::Object(patch) = patch else {
        return Err(PatchError::Malformed(
            "a strategic merge patch must be a JSON object".to_owned(),
        ));
    };
    let Value::Object(original) = original else {
        return Err(PatchError::Invalid(format!(
            "the stored {kind} is not a JSON object"
        )));
    };
    match (Merger { schema }).merge_map(original, patch, &[])? {
        Some(merged) => Ok(Value::Object(merged)),
        None => Err(PatchError::Invalid(
            "\"$patch\": \"delete\" cannot delete the whole object".to_owned(),
        )),
    }
}

/// How the elements of a list field merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListStrategy {
    /// Elements are objects identified by this field (`patchMergeKey`).
    MergeKey(&'static str),
    /// Elements are scalars and the list is a set: patches union into it.
    PrimitiveMerge,
}

/// One row of a merge-key schema. Paths are field names joined by `.`, relative to the
/// schema's root; list elements are transparent (`containers.env` is the `env` list of every
/// element of `containers`).
enum Rule {
    /// The list at this path merges with this strategy.
    List(&'static str, ListStrategy),
    /// The sub-schema applies below this path.
    Nested(&'static str, &'static [Rule]),
}

/// A list at `path` whose elements merge by the `key` field.
const fn by_key(path: &'static str, key: &'static str) -> Rule {
    Rule::List(path, ListStrategy::MergeKey(key))
}

/// A list of scalars at `path` that patches union into.
const fn primitive_set(path: &'static str) -> Rule {
    Rule::List(path, ListStrategy::PrimitiveMerge)
}

/// The `schema` applies below `path`.
const fn nested(path: &'static str, schema: &'static [Rule]) -> Rule {
    Rule::Nested(path, schema)
}

/// The strategy of the list at `path` (field names from the object's root), or `None` when
/// the list is replaced whole.
fn lookup(schema: &[Rule], path: &[&str]) -> Option<ListStrategy> {
    schema.iter().find_map(|rule| match rule {
        Rule::List(rule_path, strategy) => match strip_path_prefix(rule_path, path) {
            Some([]) => Some(*strategy),
            _ => None,
        },
        Rule::Nested(rule_path, sub_schema) => match strip_path_prefix(rule_path, path) {
            Some(rest) if !rest.is_empty() => lookup(sub_schema, rest),
            _ => None,
        },
    })
}

/// What is left of `path` after the dotted `prefix`, or `None` if `path` does not start with
/// it.
fn strip_path_prefix<'p, 's>(prefix: &str, path: &'p [&'s str]) -> Option<&'p [&'s str]> {
    let mut rest = path;
    for segment in prefix.split('.') {
        let (first, tail) = rest.split_first()?;
        if *first != segment {
            return None;
        }
        rest = tail;
    }
    Some(rest)
}

/// The merge-key schema of `kind`, if hanode knows it.
fn schema_for(kind: &str) -> Option<&'static [Rule]> {
    KINDS
        .iter()
        .find(|(name, _)| *name == kind)
        .map(|(_, schema)| *schema)
}

/// The field path for error messages.
fn describe(path: &[&str]) -> String {
    if path.is_empty() {
        "the object".to_owned()
    } else {
        path.join(".")
    }
}

/// The `$patch` directive of a patch map, if any, validated.
fn patch_directive<'a>(
    fields: &'a Map<String, Value>,
    path: &[&str],
) -> Result<Option<&'a str>, PatchError> {
    match fields.get(PATCH_DIRECTIVE) {
        None => Ok(None),
        Some(Value::String(directive))
            if matches!(directive.as_str(), "replace" | "delete" | "merge") =>
        {
            Ok(Some(directive.as_str()))
        }
        Some(other) => Err(PatchError::Invalid(format!(
            "unknown \"$patch\" directive {other} at {} (expected \"replace\", \"delete\" or \"merge\")",
            describe(path)
        ))),
    }
}

/// Whether a list element is the `{"$patch": "replace"}` marker that replaces its list.
fn is_replace_marker(element: &Value) -> bool {
    element.get(PATCH_DIRECTIVE).and_then(Value::as_str) == Some("replace")
}

/// A directive's list argument, which must be a JSON array.
fn directive_list<'a>(
    directive: &str,
    value: &'a Value,
    path: &[&str],
) -> Result<&'a [Value], PatchError> {
    value.as_array().map(Vec::as_slice).ok_or_else(|| {
        PatchError::Malformed(format!(
            "{directive} at {} must be a list, got {value}",
            describe(path)
        ))
    })
}

/// Applies a patch with one kind's schema.
struct Merger {
    /// Merge keys of the kind being patched.
    schema: &'static [Rule],
}

impl Merger {
    /// Merges patch map `patch` into `original` at `path`, honouring its `$patch` directive.
    /// Returns `None` when the patch deletes the map.
    fn merge_map<'a>(
        &self,
        original: &Map<String, Value>,
        patch: &'a Map<String, Value>,
        path: &[&'a str],
    ) -> Result<Option<Map<String, Value>>, PatchError> {
        match patch_directive(patch, path)? {
            Some("delete") => Ok(None),
            Some("replace") => self.merge_fields(&Map::new(), patch, path).map(Some),
            _ => self.merge_fields(original, patch, path).map(Some),
        }
    }

    /// Merges the fields and field directives of `patch` into a copy of `base`.
    fn merge_fields<'a>(
        &self,
        base: &Map<String, Value>,
        patch: &'a Map<String, Value>,
        path: &[&'a str],
    ) -> Result<Map<String, Value>, PatchError> {
        let mut merged = base.clone();
        let mut retain_keys = None;
        let mut element_orders = Vec::new();
        // Directives first, whatever the key order of the patch: deletions from primitive
        // lists must happen before values are unioned back in.
        for (key, value) in patch {
            if key == PATCH_DIRECTIVE {
                // Already honoured by `merge_map`.
            } else if key == RETAIN_KEYS {
                retain_keys = Some(directive_list(RETAIN_KEYS, value, path)?);
            } else if let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) {
                element_orders.push((field, directive_list(key, value, path)?));
            } else if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
                let doomed = directive_list(key, value, path)?;
                if let Some(Value::Array(list)) = merged.get_mut(field) {
                    list.retain(|element| !doomed.contains(element));
                }
            } else if key.starts_with('$') {
                // No built-in kind has a field starting with `$`; anything like this is a
                // directive we do not know, and keeping it would store it in the object.
                return Err(PatchError::Invalid(format!(
                    "unknown strategic merge patch directive {key:?} at {}",
                    describe(path)
                )));
            }
        }
        for (key, patch_value) in patch {
            if key.starts_with('$') {
                continue;
            }
            if patch_value.is_null() {
                merged.remove(key);
                continue;
            }
            let child: Vec<&str> = path.iter().copied().chain([key.as_str()]).collect();
            let value = match (merged.get(key), patch_value) {
                (Some(Value::Object(current)), Value::Object(fields)) => {
                    self.merge_map(current, fields, &child)?.map(Value::Object)
                }
                (Some(Value::Array(current)), Value::Array(elements)) => {
                    Some(Value::Array(self.merge_list(current, elements, &child)?))
                }
                _ => self.fresh(patch_value, &child)?,
            };
            match value {
                Some(value) => merged.insert(key.clone(), value),
                None => merged.remove(key),
            };
        }
        for (field, order) in element_orders {
            let child: Vec<&str> = path.iter().copied().chain([field]).collect();
            if let Some(Value::Array(list)) = merged.get_mut(field) {
                self.set_element_order(list, order, &child)?;
            }
        }
        if let Some(keep) = retain_keys {
            merged.retain(|key, _| keep.iter().any(|kept| kept.as_str() == Some(key.as_str())));
        }
        Ok(merged)
    }

    /// A patch value that has nothing to merge into, with its nulls and directives applied
    /// (as if merged into an empty value). `None` if it deletes itself.
    fn fresh<'a>(&self, value: &'a Value, path: &[&'a str]) -> Result<Option<Value>, PatchError> {
        match value {
            Value::Object(fields) => Ok(self
                .merge_map(&Map::new(), fields, path)?
                .map(Value::Object)),
            Value::Array(elements) => {
                Ok(Some(Value::Array(self.merge_list(&[], elements, path)?)))
            }
            scalar => Ok(Some(scalar.clone())),
        }
    }

    /// Merges patch list `patch` into `original`, the list at `path`.
    fn merge_list<'a>(
        &self,
        original: &[Value],
        patch: &'a [Value],
        path: &[&'a str],
    ) -> Result<Vec<Value>, PatchError> {
        if patch.iter().any(is_replace_marker) {
            return self.replace_list(patch, path);
        }
        match lookup(self.schema, path) {
            None => self.replace_list(patch, path),
            Some(ListStrategy::PrimitiveMerge) => {
                let mut merged = original.to_vec();
                for element in patch {
                    if !merged.contains(element) {
                        merged.push(element.clone());
                    }
                }
                Ok(merged)
            }
            Some(ListStrategy::MergeKey(merge_key)) => {
                self.merge_keyed_list(original, patch, merge_key, path)
            }
        }
    }

    /// The list `patch` stands for when it replaces the stored list: its elements without the
    /// replace marker, each with its own directives applied.
    fn replace_list<'a>(
        &self,
        patch: &'a [Value],
        path: &[&'a str],
    ) -> Result<Vec<Value>, PatchError> {
        let mut replaced = Vec::with_capacity(patch.len());
        for element in patch.iter().filter(|element| !is_replace_marker(element)) {
            if let Some(value) = self.fresh(element, path)? {
                replaced.push(value);
            }
        }
        Ok(replaced)
    }

    /// Merges a list whose elements are identified by `merge_key`: deletions first (as
    /// Kubernetes does), then each remaining patch element merges into the stored element
    /// with the same key or is appended.
    fn merge_keyed_list<'a>(
        &self,
        original: &[Value],
        patch: &'a [Value],
        merge_key: &str,
        path: &[&'a str],
    ) -> Result<Vec<Value>, PatchError> {
        let mut keyed = Vec::with_capacity(patch.len());
        for element in patch {
            let Value::Object(fields) = element else {
                return Err(PatchError::Malformed(format!(
                    "{} merges by {merge_key:?} but the patch has a non-object element {element}",
                    describe(path)
                )));
            };
            let Some(id) = fields.get(merge_key) else {
                return Err(PatchError::Malformed(format!(
                    "an element of {} in the patch has no merge key {merge_key:?}: {element}",
                    describe(path)
                )));
            };
            keyed.push((id, fields));
        }
        let mut merged = original.to_vec();
        for (id, fields) in &keyed {
            if patch_directive(fields, path)? == Some("delete") {
                merged.retain(|element| element.get(merge_key) != Some(*id));
            }
        }
        for (id, fields) in keyed {
            if patch_directive(fields, path)? == Some("delete") {
                continue;
            }
            let position = merged
                .iter()
                .position(|element| element.get(merge_key) == Some(id));
            match position {
                Some(index) => {
                    let value = match &merged[index] {
                        Value::Object(current) => {
                            self.merge_map(current, fields, path)?.map(Value::Object)
                        }
                        _ => self
                            .merge_map(&Map::new(), fields, path)?
                            .map(Value::Object),
                    };
                    match value {
                        Some(value) => merged[index] = value,
                        None => {
                            merged.remove(index);
                        }
                    }
                }
                None => {
                    if let Some(value) = self.merge_map(&Map::new(), fields, path)? {
                        merged.push(Value::Object(value));
                    }
                }
            }
        }
        Ok(merged)
    }

    /// Reorders `list` (at `path`) by a `$setElementOrder` directive: elements named in
    /// `order` come first in that order, the rest follow in their current relative order.
    fn set_element_order(
        &self,
        list: &mut [Value],
        order: &[Value],
        path: &[&str],
    ) -> Result<(), PatchError> {
        let merge_key = match lookup(self.schema, path) {
            Some(ListStrategy::MergeKey(merge_key)) => Some(merge_key),
            // Scalars, and lists replaced whole, are ordered by their values.
            Some(ListStrategy::PrimitiveMerge) | None => None,
        };
        let mut ids = Vec::with_capacity(order.len());
        for entry in order {
            let id = match merge_key {
                Some(merge_key) => entry.get(merge_key).ok_or_else(|| {
                    PatchError::Malformed(format!(
                        "$setElementOrder of {} has an entry without merge key {merge_key:?}: {entry}",
                        describe(path)
                    ))
                })?,
                None => entry,
            };
            ids.push(id);
        }
        let identity = |element: &Value| match merge_key {
            Some(merge_key) => element.get(merge_key).cloned(),
            None => Some(element.clone()),
        };
        // A stable sort keeps unlisted elements (all ranked last) in their relative order.
        list.sort_by_cached_key(|element| {
            identity(element)
                .and_then(|id| ids.iter().position(|listed| **listed == id))
                .unwrap_or(ids.len())
        });
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Merge-key schema: the `patchStrategy`/`patchMergeKey` tags of the built-in API types.
// A list that is not named here (args, command, tolerations, envFrom, Endpoints `subsets`,
// Namespace `spec.finalizers`, ...) is replaced whole, as it is in Kubernetes.
// ---------------------------------------------------------------------------------------

/// ObjectMeta, under `metadata` of every kind and of pod templates.
const OBJECT_META: &[Rule] = &[
    by_key("ownerReferences", "uid"),
    primitive_set("finalizers"),
];

/// Container and EphemeralContainer.
const CONTAINER: &[Rule] = &[
    by_key("env", "name"),
    by_key("ports", "containerPort"),
    by_key("volumeMounts", "mountPath"),
    by_key("volumeDevices", "devicePath"),
];

/// PodSpec.
const POD_SPEC: &[Rule] = &[
    by_key("containers", "name"),
    nested("containers", CONTAINER),
    by_key("initContainers", "name"),
    nested("initContainers", CONTAINER),
    by_key("ephemeralContainers", "name"),
    nested("ephemeralContainers", CONTAINER),
    by_key("volumes", "name"),
    by_key("imagePullSecrets", "name"),
    by_key("resourceClaims", "name"),
    by_key("schedulingGates", "name"),
    by_key("hostAliases", "ip"),
    by_key("topologySpreadConstraints", "topologyKey"),
];

/// PodStatus.
const POD_STATUS: &[Rule] = &[
    by_key("conditions", "type"),
    by_key("podIPs", "ip"),
    by_key("hostIPs", "ip"),
    by_key("resourceClaimStatuses", "name"),
];

/// PodTemplateSpec, under `spec.template` of workloads.
const POD_TEMPLATE_SPEC: &[Rule] = &[nested("metadata", OBJECT_META), nested("spec", POD_SPEC)];

/// Pod.
const POD: &[Rule] = &[
    nested("metadata", OBJECT_META),
    nested("spec", POD_SPEC),
    nested("status", POD_STATUS),
];

/// Deployment, ReplicaSet, StatefulSet, DaemonSet and ReplicationController: a pod template
/// and status conditions keyed by type.
const WORKLOAD: &[Rule] = &[
    nested("metadata", OBJECT_META),
    nested("spec.template", POD_TEMPLATE_SPEC),
    by_key("status.conditions", "type"),
];

/// CronJob: a pod template inside a job template.
const CRON_JOB: &[Rule] = &[
    nested("metadata", OBJECT_META),
    nested("spec.jobTemplate.metadata", OBJECT_META),
    nested("spec.jobTemplate.spec.template", POD_TEMPLATE_SPEC),
];

/// PodTemplate.
const POD_TEMPLATE: &[Rule] = &[
    nested("metadata", OBJECT_META),
    nested("template", POD_TEMPLATE_SPEC),
];

/// Service.
const SERVICE: &[Rule] = &[
    nested("metadata", OBJECT_META),
    by_key("spec.ports", "port"),
    by_key("status.conditions", "type"),
];

/// Node.
const NODE: &[Rule] = &[
    nested("metadata", OBJECT_META),
    primitive_set("spec.podCIDRs"),
    by_key("status.conditions", "type"),
    by_key("status.addresses", "type"),
];

/// Namespace (`spec.finalizers` has no patch strategy: it is replaced).
const NAMESPACE: &[Rule] = &[
    nested("metadata", OBJECT_META),
    by_key("status.conditions", "type"),
];

/// ServiceAccount.
const SERVICE_ACCOUNT: &[Rule] = &[nested("metadata", OBJECT_META), by_key("secrets", "name")];

/// Kinds whose only merge lists are in their metadata: ConfigMap, Secret, Event, Lease, and
/// Endpoints (whose `subsets` are replaced whole).
const METADATA_ONLY: &[Rule] = &[nested("metadata", OBJECT_META)];

/// Every kind that accepts strategic merge patches, with its merge-key schema.
const KINDS: &[(&str, &[Rule])] = &[
    ("Pod", POD),
    ("Deployment", WORKLOAD),
    ("ReplicaSet", WORKLOAD),
    ("StatefulSet", WORKLOAD),
    ("DaemonSet", WORKLOAD),
    ("ReplicationController", WORKLOAD),
    ("Job", WORKLOAD),
    ("CronJob", CRON_JOB),
    ("PodTemplate", POD_TEMPLATE),
    ("Service", SERVICE),
    ("Node", NODE),
    ("Namespace", NAMESPACE),
    ("ServiceAccount", SERVICE_ACCOUNT),
    ("ConfigMap", METADATA_ONLY),
    ("Secret", METADATA_ONLY),
    ("Endpoints", METADATA_ONLY),
    ("Event", METADATA_ONLY),
    ("Lease", METADATA_ONLY),
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(kind: &str, original: Value, patch: Value) -> Result<Value, PatchError> {
        strategic_merge_patch(kind, &original, &patch)
    }

    /// Recursively collects every object key that starts with `$`.
    fn directive_keys(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(fields) => {
                for (key, child) in fields {
                    if key.starts_with('$') {
                        found.push(key.clone());
                    }
                    directive_keys(child, found);
                }
            }
            Value::Array(elements) => elements.iter().for_each(|e| directive_keys(e, found)),
            _ => {}
        }
    }

    /// The schema table covers every kind hanode serves strategic merge patch for, and
    /// resolves merge keys through nested sub-schemas with list elements transparent.
    #[test]
    fn schema_table_resolves_nested_merge_keys() {
        for kind in [
            "Pod",
            "Deployment",
            "ReplicaSet",
            "Service",
            "Node",
            "Namespace",
            "ConfigMap",
            "Secret",
            "ServiceAccount",
            "Endpoints",
            "Event",
            "Lease",
        ] {
            let schema = schema_for(kind).expect(kind);
            assert_eq!(
                lookup(schema, &["metadata", "finalizers"]),
                Some(ListStrategy::PrimitiveMerge),
                "{kind}"
            );
            assert_eq!(
                lookup(schema, &["metadata", "ownerReferences"]),
                Some(ListStrategy::MergeKey("uid")),
                "{kind}"
            );
        }
        let deployment = schema_for("Deployment").expect("Deployment");
        let template = ["spec", "template", "spec"];
        let at = |tail: &[&'static str]| -> Vec<&'static str> {
            template
                .iter()
                .copied()
                .chain(tail.iter().copied())
                .collect()
        };
        assert_eq!(
            lookup(deployment, &at(&["containers"])),
            Some(ListStrategy::MergeKey("name"))
        );
        assert_eq!(
            lookup(deployment, &at(&["initContainers", "ports"])),
            Some(ListStrategy::MergeKey("containerPort"))
        );
        assert_eq!(
            lookup(deployment, &at(&["topologySpreadConstraints"])),
            Some(ListStrategy::MergeKey("topologyKey"))
        );
        assert_eq!(
            lookup(deployment, &["spec", "template", "metadata", "finalizers"]),
            Some(ListStrategy::PrimitiveMerge)
        );
        assert_eq!(lookup(deployment, &at(&["containers", "args"])), None);
        assert_eq!(lookup(deployment, &at(&["tolerations"])), None);
        assert_eq!(
            lookup(schema_for("Endpoints").expect("Endpoints"), &["subsets"]),
            None
        );
        assert_eq!(
            lookup(schema_for("Node").expect("Node"), &["status", "addresses"]),
            Some(ListStrategy::MergeKey("type"))
        );
        assert_eq!(
            lookup(schema_for("Service").expect("Service"), &["spec", "ports"]),
            Some(ListStrategy::MergeKey("port"))
        );
        assert_eq!(
            lookup(schema_for("Pod").expect("Pod"), &["spec", "hostAliases"]),
            Some(ListStrategy::MergeKey("ip"))
        );
    }

    /// Maps merge recursively and a `null` value deletes its key.
    #[test]
    fn maps_merge_and_null_deletes() {
        let merged = smp(
            "ConfigMap",
            json!({"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"x": "1"}}),
            json!({"metadata": {"labels": {"b": null, "c": "3"}}, "data": {"y": "2"}}),
        )
        .unwrap();
        assert_eq!(
            merged,
            json!({"metadata": {"name": "c", "labels": {"a": "1", "c": "3"}}, "data": {"x": "1", "y": "2"}})
        );
    }

    /// A list with a merge key merges element-wise: the matching element is merged
    /// recursively, an unknown one is appended, the others are untouched.
    #[test]
    fn keyed_list_merges_matching_elements_and_appends_new_ones() {
        let merged = smp(
            "Pod",
            json!({"spec": {"containers": [
                {"name": "a", "image": "nginx:1", "env": [{"name": "E1", "value": "1"}]},
                {"name": "b", "image": "busybox"}
            ]}}),
            json!({"spec": {"containers": [
                {"name": "a", "env": [{"name": "E2", "value": "2"}]},
                {"name": "c", "image": "redis"}
            ]}}),
        )
        .unwrap();
        assert_eq!(
            merged,
            json!({"spec": {"containers": [
                {"name": "a", "image": "nginx:1",
                 "env": [{"name": "E1", "value": "1"}, {"name": "E2", "value": "2"}]},
                {"name": "b", "image": "busybox"},
                {"name": "c", "image": "redis"}
            ]}})
        );
    }

    /// `{"$patch": "delete", <key>: ..}` removes the element with that key, and deleting an
    /// element that is not there is a no-op.
    #[test]
    fn delete_directive_removes_keyed_element() {
        let merged = smp(
            "Service",
            json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}}),
            json!({"spec": {"ports": [{"$patch": "delete", "port": 80}, {"$patch": "delete", "port": 8080}]}}),
        )
        .unwrap();
        assert_eq!(
            merged,
            json!({"spec": {"ports": [{"port": 443, "name": "https"}]}})
        );
    }

    /// `$setElementOrder` puts the listed elements first in the given order, and unlisted
    /// elements keep their relative order after them.
    #[test]
    fn set_element_order_orders_listed_first_and_keeps_the_rest() {
        let merged = smp(
            "Pod",
            json!({"spec": {"volumes": [
                {"name": "v1"}, {"name": "v2"}, {"name": "v3"}, {"name": "v4"}
            ]}}),
            json!({"spec": {"$setElementOrder/volumes": [{"name": "v3"}, {"name": "v1"}]}}),
        )
        .unwrap();
        assert_eq!(
            merged,
            json!({"spec": {"volumes": [
                {"name": "v3"}, {"name": "v1"}, {"name": "v2"}, {"name": "v4"}
            ]}})
        );
    }

    /// Lists without a merge key (args, tolerations, Endpoints subsets) are replaced whole.
    #[test]
    fn lists_without_merge_key_are_replaced() {
        let merged = smp(
            "Pod",
            json!({"spec": {
                "containers": [{"name": "a", "args": ["1", "2"]}],
                "tolerations": [{"key": "k1", "operator": "Exists"}]
            }}),
            json!({"spec": {
                "containers": [{"name": "a", "args": ["3"]}],
                "tolerations": [{"key": "k2", "operator": "Exists"}]
            }}),
        )
        .unwrap();
        assert_eq!(
            merged,
            json!({"spec": {
                "containers": [{"name": "a", "args": ["3"]}],
                "tolerations": [{"key": "k2", "operator": "Exists"}]
            }})
        );
        let endpoints = smp(
            "Endpoints",
            json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]}),
            json!({"subsets": [{"addresses": [{"ip": "10.0.0.2"}]}]}),
        )
        .unwrap();
        assert_eq!(
            endpoints,
            json!({"subsets": [{"addresses": [{"ip": "10.0.0.2"}]}]})
        );
    }

    /// `$retainKeys` drops every key of the merged map that it does not list, which switches
    /// a union type (a volume source) from one member to another.
    #[test]
    fn retain_keys_drops_unlisted_keys() {
        let merged = smp(
            "Pod",
            json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}),
            json!({"spec": {"volumes": [
                {"$retainKeys": ["configMap", "name"], "name": "v", "configMap": {"name": "c"}}
            ]}}),
        )
        .unwrap();
        assert_eq!(
            merged,
            json!({"spec": {"volumes": [{"name": "v", "configMap": {"name": "c"}}]}})
        );
    }

    /// A primitive merge list (`metadata.finalizers`) is a set: patch values are unioned in
    /// without duplicates, and `$deleteFromPrimitiveList` removes values.
    #[test]
    fn finalizers_union_and_delete_from_primitive_list() {
        let original = json!({"metadata": {"finalizers": ["a", "b"]}});
        let unioned = smp(
            "Namespace",
            original.clone(),
            json!({"metadata": {"finalizers": ["b", "c"]}}),
        )
        .unwrap();
        assert_eq!(
            unioned,
            json!({"metadata": {"finalizers": ["a", "b", "c"]}})
        );

        let deleted = smp(
            "Namespace",
            unioned,
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "c", "zz"]}}),
        )
        .unwrap();
        assert_eq!(deleted, json!({"metadata": {"finalizers": ["b"]}}));

        let ordered = smp(
            "Namespace",
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {
                "$setElementOrder/finalizers": ["c", "b"],
                "$deleteFromPrimitiveList/finalizers": ["a"],
                "finalizers": ["c"]
            }}),
        )
        .unwrap();
        assert_eq!(ordered, json!({"metadata": {"finalizers": ["c", "b"]}}));
    }

    /// `$patch: replace` on a map replaces the stored map with the patch minus the directive.
    #[test]
    fn patch_replace_replaces_a_map() {
        let merged = smp(
            "Pod",
            json!({"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}}}),
            json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
        )
        .unwrap();
        assert_eq!(
            merged,
            json!({"metadata": {"name": "p", "labels": {"c": "3"}}})
        );
    }

    /// A `{"$patch": "replace"}` element replaces a merge list with the other elements.
    #[test]
    fn patch_replace_element_replaces_a_keyed_list() {
        let merged = smp(
            "Pod",
            json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b"}]}}),
            json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "c", "image": "y"}]}}),
        )
        .unwrap();
        assert_eq!(
            merged,
            json!({"spec": {"containers": [{"name": "c", "image": "y"}]}})
        );
    }

    /// `$patch: delete` on a map deletes the map; on the whole object it is invalid.
    #[test]
    fn patch_delete_removes_a_map() {
        let merged = smp(
            "Pod",
            json!({"metadata": {"name": "p", "annotations": {"a": "1"}}}),
            json!({"metadata": {"annotations": {"$patch": "delete"}}}),
        )
        .unwrap();
        assert_eq!(merged, json!({"metadata": {"name": "p"}}));

        let error = smp("Pod", json!({}), json!({"$patch": "delete"})).unwrap_err();
        assert!(matches!(error, PatchError::Invalid(_)), "{error:?}");
    }

    /// `$patch: merge` is the default and behaves like no directive.
    #[test]
    fn patch_merge_is_the_default() {
        let original = json!({"metadata": {"labels": {"a": "1"}}});
        let with = smp(
            "Pod",
            original.clone(),
            json!({"metadata": {"labels": {"$patch": "merge", "b": "2"}}}),
        )
        .unwrap();
        let without = smp("Pod", original, json!({"metadata": {"labels": {"b": "2"}}})).unwrap();
        assert_eq!(with, without);
    }

    /// An unknown `$patch` value or an unknown `$` directive key is invalid (422).
    #[test]
    fn unknown_directives_are_invalid() {
        for patch in [
            json!({"metadata": {"labels": {"$patch": "shred"}}}),
            json!({"spec": {"containers": [{"name": "a", "$patch": 1}]}}),
            json!({"spec": {"$frobnicate/containers": []}}),
        ] {
            let error = smp(
                "Pod",
                json!({"spec": {"containers": [{"name": "a"}]}}),
                patch.clone(),
            )
            .unwrap_err();
            assert!(
                matches!(error, PatchError::Invalid(_)),
                "{patch}: {error:?}"
            );
        }
    }

    /// A merge-list element without its merge key, or a directive whose argument is not a
    /// list, is malformed (400).
    #[test]
    fn badly_shaped_directives_are_malformed() {
        for patch in [
            json!({"spec": {"containers": [{"image": "x"}]}}),
            json!({"spec": {"containers": ["a"]}}),
            json!({"spec": {"$setElementOrder/containers": [{"image": "x"}]}}),
            json!({"spec": {"$retainKeys": "name"}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
        ] {
            let error = smp(
                "Pod",
                json!({"metadata": {}, "spec": {"containers": [{"name": "a"}]}}),
                patch.clone(),
            )
            .unwrap_err();
            assert!(
                matches!(error, PatchError::Malformed(_)),
                "{patch}: {error:?}"
            );
        }
    }

    /// Directives inside parts of the patch that have nothing to merge into (a new container,
    /// a new map) are applied, never stored.
    #[test]
    fn directives_never_leak_into_new_subtrees() {
        let merged = smp(
            "Deployment",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}]}}}}),
            json!({"spec": {
                "strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null},
                "template": {"spec": {"containers": [{
                    "name": "b",
                    "$setElementOrder/env": [{"name": "E2"}, {"name": "E1"}],
                    "env": [{"name": "E1", "value": "1"}, {"name": "E2", "value": "2"},
                            {"$patch": "delete", "name": "E3"}],
                    "resources": {"limits": {"cpu": "1", "memory": null}}
                }]}}
            }}),
        )
        .unwrap();
        let mut found = Vec::new();
        directive_keys(&merged, &mut found);
        assert!(found.is_empty(), "directives leaked: {found:?}");
        assert_eq!(
            merged,
            json!({"spec": {
                "strategy": {"type": "Recreate"},
                "template": {"spec": {"containers": [
                    {"name": "a"},
                    {"name": "b",
                     "env": [{"name": "E2", "value": "2"}, {"name": "E1", "value": "1"}],
                     "resources": {"limits": {"cpu": "1"}}}
                ]}}
            }})
        );
    }

    /// Owner references merge by uid, and node addresses by type.
    #[test]
    fn owner_references_and_node_addresses_merge_by_key() {
        let merged = smp(
            "Node",
            json!({
                "metadata": {"ownerReferences": [{"uid": "u1", "name": "x"}]},
                "status": {"addresses": [
                    {"type": "InternalIP", "address": "10.0.0.1"},
                    {"type": "Hostname", "address": "n1"}
                ]}
            }),
            json!({
                "metadata": {"ownerReferences": [{"uid": "u2", "name": "y"}]},
                "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.9"}]}
            }),
        )
        .unwrap();
        assert_eq!(
            merged,
            json!({
                "metadata": {"ownerReferences": [{"uid": "u1", "name": "x"}, {"uid": "u2", "name": "y"}]},
                "status": {"addresses": [
                    {"type": "InternalIP", "address": "10.0.0.9"},
                    {"type": "Hostname", "address": "n1"}
                ]}
            })
        );
    }

    /// A value whose type changes (a list replaced by a scalar, or the reverse) is replaced.
    #[test]
    fn type_changes_replace_the_value() {
        let merged = smp(
            "ConfigMap",
            json!({"data": {"a": "x"}, "metadata": {"labels": {"a": "1"}}}),
            json!({"data": "oops", "metadata": {"labels": ["l"]}}),
        )
        .unwrap();
        assert_eq!(
            merged,
            json!({"data": "oops", "metadata": {"labels": ["l"]}})
        );
    }

    /// Strategic merge on a kind without a schema is unsupported rather than guessed.
    #[test]
    fn unknown_kind_is_unsupported() {
        let error = smp("Widget", json!({}), json!({})).unwrap_err();
        assert!(matches!(error, PatchError::Unsupported(_)), "{error:?}");
    }
}
