//! PATCH bodies as real kubectl sends them (clients.md §1.9), applied through
//! `hanode_apiserver::patch::apply` to realistic stored objects.

use hanode_apiserver::patch::{PatchError, PatchType, apply};
use serde_json::{Value, json};

/// A Deployment as the server stores it after `kubectl apply` of the "d1" manifest: two
/// containers, env E1 and E2, ports 80 and 443, volume v1, a RollingUpdate strategy and
/// labels a and b, plus fields the server and controllers filled in.
fn deployment_d1() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "d",
            "namespace": "default",
            "uid": "6f1c1c8e-0000-4000-8000-000000000001",
            "resourceVersion": "41",
            "generation": 1,
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "labels": {"a": "1", "b": "2"},
            "annotations": {
                "deployment.kubernetes.io/revision": "1",
                "kubectl.kubernetes.io/last-applied-configuration": "{\"d1\":true}\n"
            }
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "d"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}
            },
            "template": {
                "metadata": {"labels": {"app": "d"}},
                "spec": {
                    "containers": [
                        {
                            "name": "a",
                            "image": "nginx:1",
                            "args": ["y", "z"],
                            "env": [
                                {"name": "E1", "value": "1"},
                                {"name": "E2", "value": "2"}
                            ],
                            "ports": [
                                {"containerPort": 80, "protocol": "TCP"},
                                {"containerPort": 443, "protocol": "TCP"}
                            ],
                            "imagePullPolicy": "IfNotPresent",
                            "resources": {},
                            "terminationMessagePath": "/dev/termination-log"
                        },
                        {
                            "name": "b",
                            "image": "busybox",
                            "command": ["sleep", "3600"]
                        }
                    ],
                    "tolerations": [{"key": "k1", "operator": "Exists"}],
                    "volumes": [{"name": "v1", "emptyDir": {}}],
                    "restartPolicy": "Always",
                    "dnsPolicy": "ClusterFirst"
                }
            }
        },
        "status": {
            "observedGeneration": 1,
            "replicas": 2,
            "conditions": [{"type": "Available", "status": "True"}]
        }
    })
}

/// The d1 → d2 patch that `kubectl apply` sent (clients.md §1.9), byte for byte apart from
/// the last-applied annotation's value.
const APPLY_D1_TO_D2: &str = r#"{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"d2\":true}\n"},"labels":{"b":null}},
 "spec":{"strategy":{"$retainKeys":["type"],"rollingUpdate":null,"type":"Recreate"},
  "template":{"spec":{
    "$setElementOrder/containers":[{"name":"a"}],
    "$setElementOrder/volumes":[{"name":"v2"}],
    "containers":[{"$setElementOrder/env":[{"name":"E2"}],"$setElementOrder/ports":[{"containerPort":80}],
                   "args":["x"],"env":[{"name":"E2","value":"22"},{"$patch":"delete","name":"E1"}],
                   "image":"nginx:2","name":"a","ports":[{"$patch":"delete","containerPort":443}]},
                  {"$patch":"delete","name":"b"}],
    "tolerations":[{"key":"k2","operator":"Exists"}],
    "volumes":[{"configMap":{"name":"c"},"name":"v2"},{"$patch":"delete","name":"v1"}]}}}}"#;

/// The full strategic merge patch of a client-side `kubectl apply` (every directive kubectl
/// emits) turns the stored d1 Deployment into exactly d2: container b, env E1, port 443,
/// label b, volume v1 and `rollingUpdate` are gone, E2 is 22, the image is nginx:2, args and
/// tolerations are replaced, v2 is added, and fields the patch does not mention survive.
#[test]
fn kubectl_apply_deployment_patch_produces_the_new_deployment() {
    let patched = apply(
        PatchType::StrategicMerge,
        "Deployment",
        &deployment_d1(),
        APPLY_D1_TO_D2.as_bytes(),
    )
    .unwrap();

    let mut expected = deployment_d1();
    expected["metadata"]["labels"] = json!({"a": "1"});
    expected["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
        json!("{\"d2\":true}\n");
    expected["spec"]["strategy"] = json!({"type": "Recreate"});
    expected["spec"]["template"]["spec"]["containers"] = json!([{
        "name": "a",
        "image": "nginx:2",
        "args": ["x"],
        "env": [{"name": "E2", "value": "22"}],
        "ports": [{"containerPort": 80, "protocol": "TCP"}],
        "imagePullPolicy": "IfNotPresent",
        "resources": {},
        "terminationMessagePath": "/dev/termination-log"
    }]);
    expected["spec"]["template"]["spec"]["tolerations"] =
        json!([{"key": "k2", "operator": "Exists"}]);
    expected["spec"]["template"]["spec"]["volumes"] =
        json!([{"name": "v2", "configMap": {"name": "c"}}]);
    assert_eq!(patched, expected);
}

/// Applying the same apply patch twice gives the same object: every directive is
/// idempotent, so kubectl's retry after a 409 Conflict is safe.
#[test]
fn kubectl_apply_deployment_patch_is_idempotent() {
    let once = apply(
        PatchType::StrategicMerge,
        "Deployment",
        &deployment_d1(),
        APPLY_D1_TO_D2.as_bytes(),
    )
    .unwrap();
    let twice = apply(
        PatchType::StrategicMerge,
        "Deployment",
        &once,
        APPLY_D1_TO_D2.as_bytes(),
    )
    .unwrap();
    assert_eq!(once, twice);
}

/// `$setElementOrder` on a Deployment's containers and env orders the merged lists as the
/// new manifest does, with a new container placed where the manifest puts it.
#[test]
fn kubectl_apply_reorders_containers_and_env() {
    let patch = br#"{"spec":{"template":{"spec":{
        "$setElementOrder/containers":[{"name":"c"},{"name":"b"},{"name":"a"}],
        "containers":[{"name":"c","image":"redis"},
                      {"name":"a","$setElementOrder/env":[{"name":"E2"},{"name":"E1"}]}]}}}}"#;
    let patched = apply(
        PatchType::StrategicMerge,
        "Deployment",
        &deployment_d1(),
        patch,
    )
    .unwrap();
    let containers = &patched["spec"]["template"]["spec"]["containers"];
    let names: Vec<&str> = containers
        .as_array()
        .unwrap()
        .iter()
        .map(|container| container["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["c", "b", "a"]);
    assert_eq!(
        containers[2]["env"],
        json!([{"name": "E2", "value": "2"}, {"name": "E1", "value": "1"}])
    );
}

/// The one-line strategic patches of `kubectl set image`, `rollout restart` and `cordon`
/// change only what they name.
#[test]
fn kubectl_set_image_restart_and_cordon_patches_apply() {
    let set_image =
        br#"{"spec":{"template":{"spec":{"containers":[{"image":"nginx:3","name":"a"}]}}}}"#;
    let patched = apply(
        PatchType::StrategicMerge,
        "Deployment",
        &deployment_d1(),
        set_image,
    )
    .unwrap();
    let mut expected = deployment_d1();
    expected["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:3");
    assert_eq!(patched, expected);

    let restart = br#"{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2025-01-02T03:04:05Z"}}}}}"#;
    let patched = apply(
        PatchType::StrategicMerge,
        "Deployment",
        &deployment_d1(),
        restart,
    )
    .unwrap();
    assert_eq!(
        patched["spec"]["template"]["metadata"],
        json!({"labels": {"app": "d"}, "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-02T03:04:05Z"}})
    );

    let node =
        json!({"kind": "Node", "metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.0.0/24"}});
    let patched = apply(
        PatchType::StrategicMerge,
        "Node",
        &node,
        br#"{"spec":{"unschedulable":true}}"#,
    )
    .unwrap();
    assert_eq!(
        patched["spec"],
        json!({"podCIDR": "10.244.0.0/24", "unschedulable": true})
    );
}

/// A strategic merge patch adds and removes labels like a merge patch does.
#[test]
fn strategic_patch_adds_and_removes_labels() {
    let pod = json!({"kind": "Pod", "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}}});
    let patched = apply(
        PatchType::StrategicMerge,
        "Pod",
        &pod,
        br#"{"metadata":{"labels":{"a":null,"c":"3"}}}"#,
    )
    .unwrap();
    assert_eq!(
        patched,
        json!({"kind": "Pod", "metadata": {"name": "p", "labels": {"b": "2", "c": "3"}}})
    );
}

/// A Pod status patch (as the kubelet sends it) merges `status.conditions` by `type`:
/// existing conditions are updated in place, new ones inserted where `$setElementOrder`
/// says, untouched ones kept.
#[test]
fn pod_status_conditions_merge_by_type() {
    let pod = json!({
        "kind": "Pod",
        "metadata": {"name": "p"},
        "status": {
            "phase": "Pending",
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
                {"type": "PodScheduled", "status": "True"}
            ]
        }
    });
    let patch = br#"{"status":{
        "$setElementOrder/conditions":[{"type":"Initialized"},{"type":"Ready"},{"type":"ContainersReady"},{"type":"PodScheduled"}],
        "conditions":[{"type":"Ready","status":"True","reason":null},{"type":"ContainersReady","status":"True"}],
        "phase":"Running"}}"#;
    let patched = apply(PatchType::StrategicMerge, "Pod", &pod, patch).unwrap();
    assert_eq!(
        patched["status"],
        json!({
            "phase": "Running",
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": "True"},
                {"type": "ContainersReady", "status": "True"},
                {"type": "PodScheduled", "status": "True"}
            ]
        })
    );
}

/// A merge patch, unlike a strategic one, replaces `status.conditions` whole.
#[test]
fn merge_patch_replaces_conditions_whole() {
    let pod = json!({"status": {"conditions": [{"type": "A"}, {"type": "B"}]}});
    let patched = apply(
        PatchType::Merge,
        "Pod",
        &pod,
        br#"{"status":{"conditions":[{"type":"C"}]}}"#,
    )
    .unwrap();
    assert_eq!(patched, json!({"status": {"conditions": [{"type": "C"}]}}));
}

/// Finalizers are a set under strategic merge: a patch unions into them, and
/// `$deleteFromPrimitiveList/finalizers` removes some.
#[test]
fn finalizers_union_and_delete() {
    let namespace = json!({"kind": "Namespace", "metadata": {"name": "x", "finalizers": ["f1"]}});
    let unioned = apply(
        PatchType::StrategicMerge,
        "Namespace",
        &namespace,
        br#"{"metadata":{"finalizers":["f2","f1"]}}"#,
    )
    .unwrap();
    assert_eq!(unioned["metadata"]["finalizers"], json!(["f1", "f2"]));
    let deleted = apply(
        PatchType::StrategicMerge,
        "Namespace",
        &unioned,
        br#"{"metadata":{"$deleteFromPrimitiveList/finalizers":["f1"]}}"#,
    )
    .unwrap();
    assert_eq!(deleted["metadata"]["finalizers"], json!(["f2"]));
}

/// `$patch: replace` replaces a ConfigMap's data map instead of merging into it.
#[test]
fn patch_replace_replaces_configmap_data() {
    let config_map =
        json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
    let patched = apply(
        PatchType::StrategicMerge,
        "ConfigMap",
        &config_map,
        br#"{"data":{"$patch":"replace","c":"3"}}"#,
    )
    .unwrap();
    assert_eq!(
        patched,
        json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"c": "3"}})
    );
}

/// Strategic merge on a kind hanode has no merge-key schema for (a custom resource) is
/// refused as unsupported media type, the answer a real server gives for custom resources.
#[test]
fn strategic_patch_on_unknown_kind_is_unsupported() {
    let error = apply(
        PatchType::StrategicMerge,
        "Widget",
        &json!({"kind": "Widget", "spec": {"size": 1}}),
        br#"{"spec":{"size":2}}"#,
    )
    .unwrap_err();
    assert!(matches!(error, PatchError::Unsupported(_)), "{error:?}");
}

/// A body that is not JSON is malformed (400), never applied partially.
#[test]
fn malformed_strategic_patch_body_is_rejected() {
    let error = apply(
        PatchType::StrategicMerge,
        "Deployment",
        &deployment_d1(),
        br#"{"spec":{"replicas":"#,
    )
    .unwrap_err();
    assert!(matches!(error, PatchError::Malformed(_)), "{error:?}");
}
