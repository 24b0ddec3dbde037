//! Server-side `Table` rendering for `kubectl get`'s human output.
//!
//! kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints the cells it gets
//! verbatim: the server decides the columns (READY, STATUS, HOLDER, ...) and formats every cell,
//! ages included. Columns with `priority: 1` are shown only with `-o wide`; the Name column has
//! `format: "name"` so multi-kind output gets its `pod/` prefix. Each row carries the object (by
//! default its metadata as a `PartialObjectMetadata`), which kubectl needs for `-A`'s NAMESPACE
//! column, `--show-labels` and `-L`.
//!
//! The columns and cell rules follow what a real API server prints for each kind, so scripts
//! and eyes used to Kubernetes read the same thing. This module only renders; choosing the
//! objects, the resource version and the response media type is the caller's job.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value, json};

/// What placeholder kubectl's own printers use for an absent value.
const NONE: &str = "<none>";

/// Whether an `Accept` header asks for a `meta.k8s.io` Table (`v1` or `v1beta1`) as JSON.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|media_range| {
        let mut parts = media_range.split(';').map(str::trim);
        let media_type = parts.next().unwrap_or_default();
        if !media_type.eq_ignore_ascii_case("application/json") {
            return false;
        }
        let (mut as_table, mut meta_group, mut known_version) = (false, false, false);
        for parameter in parts {
            let Some((key, value)) = parameter.split_once('=') else {
                continue;
            };
            match (key.trim(), value.trim().trim_matches('"')) {
                ("as", "Table") => as_table = true,
                ("g", "meta.k8s.io") => meta_group = true,
                ("v", "v1" | "v1beta1") => known_version = true,
                _ => {}
            }
        }
        as_table && meta_group && known_version
    })
}

/// How much of each object a Table row carries (the `includeObject` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No object: only cells.
    None,
    /// The object's metadata as a `PartialObjectMetadata`; the Kubernetes default.
    #[default]
    Metadata,
    /// The whole object (`kubectl get --sort-by` asks for this).
    Object,
}

impl IncludeObject {
    /// Parses `includeObject`; absent or unrecognised values mean the default, `Metadata`.
    pub fn from_query(value: Option<&str>) -> IncludeObject {
        match value {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// Renders `objects` of `kind` as a `meta.k8s.io/v1` Table.
///
/// `resource_version` becomes the Table's `metadata.resourceVersion`, which `kubectl get -w`
/// uses as its watch start. Ages are measured against `now`.
pub fn table(
    kind: &str,
    objects: &[Value],
    resource_version: &str,
    include: IncludeObject,
    now: SystemTime,
) -> Value {
    let builder = TableBuilder::new(kind, include, now);
    let rows = objects.iter().map(|o| builder.row(o.clone())).collect();
    builder.finish(rows, resource_version)
}

/// Builds a Table row by row, so a long list can turn each object into its row as it is read
/// and never hold all objects at once.
pub struct TableBuilder<'a> {
    kind: &'a str,
    printer: Printer,
    include: IncludeObject,
    now: SystemTime,
}

impl<'a> TableBuilder<'a> {
    /// A builder for objects of `kind`.
    pub fn new(kind: &'a str, include: IncludeObject, now: SystemTime) -> TableBuilder<'a> {
        TableBuilder {
            kind,
            printer: printer(kind),
            include,
            now,
        }
    }

    /// The row of `object`: its cells, and the object or its metadata as `include` says.
    pub fn row(&self, object: Value) -> Value {
        let cells = (self.printer.cells)(&object, self.now);
        debug_assert_eq!(
            cells.len(),
            self.printer.columns.len(),
            "cells of a {} row",
            self.kind
        );
        let mut row = Map::new();
        row.insert("cells".to_owned(), Value::Array(cells));
        if let Some(object) = row_object(self.kind, self.printer.api_version, object, self.include)
        {
            row.insert("object".to_owned(), object);
        }
        Value::Object(row)
    }

    /// The Table around `rows`, read at `resource_version`.
    pub fn finish(&self, rows: Vec<Value>, resource_version: &str) -> Value {
        let column_definitions: Vec<Value> = self
            .printer
            .columns
            .iter()
            .map(Column::definition)
            .collect();
        json!({
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": column_definitions,
            "rows": rows,
        })
    }
}

/// Formats an age the way Kubernetes' `HumanDuration` does: precise when recent, coarse when
/// old (`45s`, `2m3s`, `15m`, `3h20m`, `20h`, `3d2h`, `40d`, `2y10d`, `9y`).
pub fn format_age(age: Duration) -> String {
    let seconds = age.as_secs();
    if seconds < 2 * 60 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return with_remainder(minutes, "m", seconds % 60, "s");
    }
    if minutes < 3 * 60 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return with_remainder(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 8 * 24 {
        return with_remainder(days, "d", hours % 24, "h");
    }
    if hours < 2 * 365 * 24 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 8 * 365 * 24 {
        return with_remainder(years, "y", days % 365, "d");
    }
    format!("{years}y")
}

/// `"{major}{unit}"` followed by `"{minor}{minor_unit}"` unless the minor part is zero.
fn with_remainder(major: u64, unit: &str, minor: u64, minor_unit: &str) -> String {
    if minor == 0 {
        format!("{major}{unit}")
    } else {
        format!("{major}{unit}{minor}{minor_unit}")
    }
}

/// The age of an RFC 3339 timestamp at `now`, as kubectl prints it.
///
/// Like Kubernetes, a timestamp up to two seconds in the future (clock skew) reads `0s`, one
/// further ahead `<invalid>`, and a missing or unparsable one `<unknown>`.
fn age_since(timestamp: Option<&str>, now: SystemTime) -> String {
    let Some(then) = timestamp.and_then(|text| text.parse::<Timestamp>().ok()) else {
        return "<unknown>".to_owned();
    };
    let now_nanos = match now.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
        Err(before) => -i128::try_from(before.duration().as_nanos()).unwrap_or(i128::MAX),
    };
    let elapsed_nanos = now_nanos - then.as_nanosecond();
    if elapsed_nanos / 1_000_000_000 < -1 {
        return "<invalid>".to_owned();
    }
    if elapsed_nanos < 0 {
        return "0s".to_owned();
    }
    let seconds = u64::try_from(elapsed_nanos / 1_000_000_000).unwrap_or(u64::MAX);
    format_age(Duration::from_secs(seconds))
}

/// The object a row carries for `include`.
fn row_object(
    kind: &str,
    api_version: Option<&str>,
    mut object: Value,
    include: IncludeObject,
) -> Option<Value> {
    match include {
        IncludeObject::None => None,
        IncludeObject::Metadata => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": object.get_mut("metadata").map_or_else(|| json!({}), Value::take),
        })),
        IncludeObject::Object => {
            // List items may be stored without kind/apiVersion, but kubectl decodes row
            // objects on their own and needs both; fill them in, never overwrite.
            if let Value::Object(fields) = &mut object {
                fields
                    .entry("kind")
                    .or_insert_with(|| Value::String(kind.to_owned()));
                if let Some(api_version) = api_version {
                    fields
                        .entry("apiVersion")
                        .or_insert_with(|| Value::String(api_version.to_owned()));
                }
            }
            Some(object)
        }
    }
}

/// One column definition of a Table.
struct Column {
    name: &'static str,
    /// OpenAPI type of the cells: `string` or `integer`.
    cell_type: &'static str,
    /// `name` for the column kubectl prefixes with the kind; empty otherwise.
    format: &'static str,
    description: &'static str,
    /// 0 = always shown, 1 = only with `-o wide`.
    priority: u8,
}

impl Column {
    fn definition(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.cell_type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// A string column shown always.
const fn text(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        cell_type: "string",
        format: "",
        description,
        priority: 0,
    }
}

/// An integer column shown always.
const fn count(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        cell_type: "integer",
        format: "",
        description,
        priority: 0,
    }
}

/// A string column shown only with `-o wide`.
const fn wide(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        cell_type: "string",
        format: "",
        description,
        priority: 1,
    }
}

const NAME: Column = Column {
    name: "Name",
    cell_type: "string",
    format: "name",
    description: "Name of the object, unique within its namespace.",
    priority: 0,
};

const AGE: Column = text("Age", "Time since the object was created.");

/// Renders one object's cells, one per column, with ages measured against the given time.
type CellsFn = fn(&Value, SystemTime) -> Vec<Value>;

/// How to print one kind.
struct Printer {
    columns: &'static [Column],
    cells: CellsFn,
    /// Filled into whole row objects that lack an `apiVersion`.
    api_version: Option<&'static str>,
}

fn printer(kind: &str) -> Printer {
    let (columns, cells, api_version): (&'static [Column], CellsFn, _) = match kind {
        "Pod" => (POD_COLUMNS, pod_cells, "v1"),
        "Node" => (NODE_COLUMNS, node_cells, "v1"),
        "Lease" => (LEASE_COLUMNS, lease_cells, "coordination.k8s.io/v1"),
        "Namespace" => (NAMESPACE_COLUMNS, namespace_cells, "v1"),
        "Deployment" => (DEPLOYMENT_COLUMNS, deployment_cells, "apps/v1"),
        "ReplicaSet" => (REPLICA_SET_COLUMNS, replica_set_cells, "apps/v1"),
        "Service" => (SERVICE_COLUMNS, service_cells, "v1"),
        "Endpoints" => (ENDPOINTS_COLUMNS, endpoints_cells, "v1"),
        "ConfigMap" => (CONFIG_MAP_COLUMNS, config_map_cells, "v1"),
        "Secret" => (SECRET_COLUMNS, secret_cells, "v1"),
        "ServiceAccount" => (SERVICE_ACCOUNT_COLUMNS, service_account_cells, "v1"),
        "Event" => (EVENT_COLUMNS, event_cells, "v1"),
        _ => {
            return Printer {
                columns: DEFAULT_COLUMNS,
                cells: default_cells,
                api_version: None,
            };
        }
    };
    Printer {
        columns,
        cells,
        api_version: Some(api_version),
    }
}

/// The string at a JSON pointer, or `""`.
fn str_at<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The integer at a JSON pointer, or `None`.
fn int_at(object: &Value, pointer: &str) -> Option<i64> {
    object.pointer(pointer).and_then(Value::as_i64)
}

/// The array at a JSON pointer, or an empty slice.
fn array_at<'a>(object: &'a Value, pointer: &str) -> &'a [Value] {
    object
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The object at a JSON pointer, if any.
fn map_at<'a>(object: &'a Value, pointer: &str) -> Option<&'a Map<String, Value>> {
    object.pointer(pointer).and_then(Value::as_object)
}

/// `value`, or `<none>` when empty.
fn or_none(value: &str) -> Value {
    Value::String(if value.is_empty() { NONE } else { value }.to_owned())
}

fn name_cell(object: &Value) -> Value {
    Value::String(str_at(object, "/metadata/name").to_owned())
}

fn age_cell(object: &Value, now: SystemTime) -> Value {
    Value::String(age_since(
        object
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str),
        now,
    ))
}

/// `k=v` pairs of a string map, sorted by key, comma-joined.
fn key_values(map: Option<&Map<String, Value>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",")
}

/// A `LabelSelector` in kubectl's string form (`app=web,tier in (a,b),!legacy`), or `<none>`.
fn selector_cell(selector: Option<&Value>) -> Value {
    let Some(selector) = selector else {
        return or_none("");
    };
    let mut requirements: Vec<(String, String)> = map_at(selector, "/matchLabels")
        .into_iter()
        .flatten()
        .map(|(key, value)| {
            (
                key.clone(),
                format!("{key}={}", value.as_str().unwrap_or_default()),
            )
        })
        .collect();
    for expression in array_at(selector, "/matchExpressions") {
        let key = str_at(expression, "/key");
        let values: BTreeSet<&str> = array_at(expression, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let values = values.into_iter().collect::<Vec<_>>().join(",");
        let text = match str_at(expression, "/operator") {
            "In" => format!("{key} in ({values})"),
            "NotIn" => format!("{key} notin ({values})"),
            "Exists" => key.to_owned(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other} ({values})"),
        };
        requirements.push((key.to_owned(), text));
    }
    requirements.sort();
    let joined: Vec<String> = requirements.into_iter().map(|(_, text)| text).collect();
    or_none(&joined.join(","))
}

/// Comma-joined `field` of every container in a pod template.
fn containers_field(object: &Value, field: &str) -> Value {
    let values: Vec<&str> = array_at(object, "/spec/template/spec/containers")
        .iter()
        .map(|container| str_at(container, field))
        .collect();
    Value::String(values.join(","))
}

const POD_COLUMNS: &[Column] = &[
    NAME,
    text("Ready", "Ready containers out of all containers."),
    text(
        "Status",
        "Phase of the pod or the reason it is not running.",
    ),
    text(
        "Restarts",
        "Container restarts, and how long ago the last one was.",
    ),
    AGE,
    wide("IP", "IP address of the pod."),
    wide("Node", "Node the pod is scheduled to."),
    wide(
        "Nominated Node",
        "Node the scheduler nominated for preemption.",
    ),
    wide(
        "Readiness Gates",
        "Readiness gates that are true out of all gates.",
    ),
];

fn pod_cells(pod: &Value, now: SystemTime) -> Vec<Value> {
    let statuses = array_at(pod, "/status/containerStatuses");
    let total = array_at(pod, "/spec/containers").len();
    let ready = statuses
        .iter()
        .filter(|status| status["ready"] == Value::Bool(true))
        .count();
    let (reason, restarts, last_restart) = pod_status(pod);
    let restarts = match last_restart {
        Some(finished_at) if restarts > 0 => {
            format!("{restarts} ({} ago)", age_since(Some(finished_at), now))
        }
        _ => restarts.to_string(),
    };
    vec![
        name_cell(pod),
        Value::String(format!("{ready}/{total}")),
        Value::String(reason),
        Value::String(restarts),
        age_cell(pod, now),
        or_none(str_at(pod, "/status/podIP")),
        or_none(str_at(pod, "/spec/nodeName")),
        or_none(str_at(pod, "/status/nominatedNodeName")),
        readiness_gates_cell(pod),
    ]
}

/// The STATUS text, the restart count and the newest restart time of a pod.
///
/// The phase (or `status.reason`) unless a container says more: the first unfinished init
/// container (`Init:CrashLoopBackOff`, `Init:0/2`), else the reason a container is waiting or
/// terminated (`ContainerCreating`, `CrashLoopBackOff`, `Completed`, `ExitCode:1`). A pod being
/// deleted reads `Terminating`.
fn pod_status(pod: &Value) -> (String, i64, Option<&str>) {
    let mut reason = match str_at(pod, "/status/reason") {
        "" => str_at(pod, "/status/phase").to_owned(),
        explicit => explicit.to_owned(),
    };
    let init_specs = array_at(pod, "/spec/initContainers");
    let init_statuses = array_at(pod, "/status/initContainerStatuses");
    let is_sidecar = |index: usize| {
        init_specs
            .get(index)
            .is_some_and(|spec| str_at(spec, "/restartPolicy") == "Always")
    };

    let mut init_restarts = Restarts::default();
    let mut initializing = false;
    for (index, status) in init_statuses.iter().enumerate() {
        init_restarts.add(status);
        let terminated = status.pointer("/state/terminated");
        if terminated.is_some_and(|state| int_at(state, "/exitCode") == Some(0)) {
            continue;
        }
        if is_sidecar(index) && status["started"] == Value::Bool(true) {
            continue;
        }
        let waiting_reason = str_at(status, "/state/waiting/reason");
        reason = if let Some(state) = terminated {
            match str_at(state, "/reason") {
                "" => format!("Init:{}", exit_text(state)),
                why => format!("Init:{why}"),
            }
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{index}/{}", init_specs.len().max(init_statuses.len()))
        };
        initializing = true;
        break;
    }

    let mut restarts = init_restarts;
    if !initializing {
        // Restarts of finished init containers no longer matter; sidecars' still do.
        restarts = Restarts::default();
        for (index, status) in init_statuses.iter().enumerate() {
            if is_sidecar(index) {
                restarts.add(status);
            }
        }
        let mut has_running = false;
        // Like kubectl, the first container (from the last) with something to say wins.
        for status in array_at(pod, "/status/containerStatuses").iter().rev() {
            restarts.add(status);
            let waiting_reason = str_at(status, "/state/waiting/reason");
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_owned();
            } else if let Some(state) = status.pointer("/state/terminated") {
                reason = match str_at(state, "/reason") {
                    "" => exit_text(state),
                    why => why.to_owned(),
                };
            } else if status["ready"] == Value::Bool(true)
                && status.pointer("/state/running").is_some()
            {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            let ready = array_at(pod, "/status/conditions").iter().any(|condition| {
                str_at(condition, "/type") == "Ready" && str_at(condition, "/status") == "True"
            });
            reason = if ready { "Running" } else { "NotReady" }.to_owned();
        }
    }

    if pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|time| !time.is_null())
    {
        let phase = str_at(pod, "/status/phase");
        if str_at(pod, "/status/reason") == "NodeLost" {
            reason = "Unknown".to_owned();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".to_owned();
        }
    }
    (reason, restarts.count, restarts.last)
}

/// Restarts summed over container statuses, with the newest restart time.
#[derive(Default)]
struct Restarts<'a> {
    count: i64,
    last: Option<&'a str>,
}

impl<'a> Restarts<'a> {
    fn add(&mut self, status: &'a Value) {
        self.count += int_at(status, "/restartCount").unwrap_or(0);
        let finished = status
            .pointer("/lastState/terminated/finishedAt")
            .and_then(Value::as_str);
        // RFC 3339 UTC strings of one format order like the times they name.
        if finished > self.last {
            self.last = finished;
        }
    }
}

/// `Signal:N` or `ExitCode:N` for a terminated container state without a reason.
fn exit_text(terminated: &Value) -> String {
    match int_at(terminated, "/signal").unwrap_or(0) {
        0 => format!("ExitCode:{}", int_at(terminated, "/exitCode").unwrap_or(0)),
        signal => format!("Signal:{signal}"),
    }
}

/// `true/total` readiness gates, or `<none>` without gates.
fn readiness_gates_cell(pod: &Value) -> Value {
    let gates = array_at(pod, "/spec/readinessGates");
    if gates.is_empty() {
        return or_none("");
    }
    let conditions = array_at(pod, "/status/conditions");
    let passing = gates
        .iter()
        .filter(|gate| {
            let wanted = str_at(gate, "/conditionType");
            conditions.iter().any(|condition| {
                str_at(condition, "/type") == wanted && str_at(condition, "/status") == "True"
            })
        })
        .count();
    Value::String(format!("{passing}/{}", gates.len()))
}

const NODE_COLUMNS: &[Column] = &[
    NAME,
    text(
        "Status",
        "Readiness of the node, and whether it accepts new pods.",
    ),
    text("Roles", "Roles from node-role.kubernetes.io/<role> labels."),
    AGE,
    text("Version", "Kubelet version."),
    wide("Internal-IP", "Internal IP address of the node."),
    wide("External-IP", "External IP address of the node."),
    wide("OS-Image", "Operating system image."),
    wide("Kernel-Version", "Kernel version."),
    wide("Container-Runtime", "Container runtime and its version."),
];

fn node_cells(node: &Value, now: SystemTime) -> Vec<Value> {
    let ready = array_at(node, "/status/conditions")
        .iter()
        .find(|condition| str_at(condition, "/type") == "Ready");
    let mut status = match ready.map(|condition| str_at(condition, "/status")) {
        Some("True") => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }
    .to_owned();
    if node.pointer("/spec/unschedulable") == Some(&Value::Bool(true)) {
        status.push_str(",SchedulingDisabled");
    }

    let mut roles = BTreeSet::new();
    for (key, value) in map_at(node, "/metadata/labels").into_iter().flatten() {
        let role = match key.strip_prefix("node-role.kubernetes.io/") {
            Some(role) => role,
            None if key == "kubernetes.io/role" => value.as_str().unwrap_or_default(),
            None => continue,
        };
        if !role.is_empty() {
            roles.insert(role.to_owned());
        }
    }
    let roles = roles.into_iter().collect::<Vec<_>>().join(",");

    let address = |kind: &str| {
        let found = array_at(node, "/status/addresses")
            .iter()
            .find(|address| str_at(address, "/type") == kind)
            .map(|address| str_at(address, "/address"))
            .unwrap_or_default();
        or_none(found)
    };
    let unknown_if_empty = |pointer: &str| {
        let value = str_at(node, pointer);
        Value::String(if value.is_empty() { "<unknown>" } else { value }.to_owned())
    };
    vec![
        name_cell(node),
        Value::String(status),
        or_none(&roles),
        age_cell(node, now),
        Value::String(str_at(node, "/status/nodeInfo/kubeletVersion").to_owned()),
        address("InternalIP"),
        address("ExternalIP"),
        unknown_if_empty("/status/nodeInfo/osImage"),
        unknown_if_empty("/status/nodeInfo/kernelVersion"),
        unknown_if_empty("/status/nodeInfo/containerRuntimeVersion"),
    ]
}

const LEASE_COLUMNS: &[Column] = &[NAME, text("Holder", "Current holder of the lease."), AGE];

fn lease_cells(lease: &Value, now: SystemTime) -> Vec<Value> {
    vec![
        name_cell(lease),
        Value::String(str_at(lease, "/spec/holderIdentity").to_owned()),
        age_cell(lease, now),
    ]
}

const NAMESPACE_COLUMNS: &[Column] = &[NAME, text("Status", "Phase of the namespace."), AGE];

fn namespace_cells(namespace: &Value, now: SystemTime) -> Vec<Value> {
    let phase = match str_at(namespace, "/status/phase") {
        "" => "Active",
        phase => phase,
    };
    vec![
        name_cell(namespace),
        Value::String(phase.to_owned()),
        age_cell(namespace, now),
    ]
}

/// Desired replicas: `spec.replicas`, which the API defaults to 1 when unset.
fn desired_replicas(object: &Value) -> i64 {
    int_at(object, "/spec/replicas").unwrap_or(1)
}

const DEPLOYMENT_COLUMNS: &[Column] = &[
    NAME,
    text("Ready", "Ready replicas out of desired replicas."),
    count("Up-to-date", "Replicas running the current pod template."),
    count("Available", "Replicas available to serve."),
    AGE,
    wide("Containers", "Names of the pod template's containers."),
    wide("Images", "Images of the pod template's containers."),
    wide("Selector", "Label selector of the pods."),
];

fn deployment_cells(deployment: &Value, now: SystemTime) -> Vec<Value> {
    let ready = int_at(deployment, "/status/readyReplicas").unwrap_or(0);
    vec![
        name_cell(deployment),
        Value::String(format!("{ready}/{}", desired_replicas(deployment))),
        Value::from(int_at(deployment, "/status/updatedReplicas").unwrap_or(0)),
        Value::from(int_at(deployment, "/status/availableReplicas").unwrap_or(0)),
        age_cell(deployment, now),
        containers_field(deployment, "/name"),
        containers_field(deployment, "/image"),
        selector_cell(deployment.pointer("/spec/selector")),
    ]
}

const REPLICA_SET_COLUMNS: &[Column] = &[
    NAME,
    count("Desired", "Desired replicas."),
    count("Current", "Replicas created."),
    count("Ready", "Ready replicas."),
    AGE,
    wide("Containers", "Names of the pod template's containers."),
    wide("Images", "Images of the pod template's containers."),
    wide("Selector", "Label selector of the pods."),
];

fn replica_set_cells(replica_set: &Value, now: SystemTime) -> Vec<Value> {
    vec![
        name_cell(replica_set),
        Value::from(desired_replicas(replica_set)),
        Value::from(int_at(replica_set, "/status/replicas").unwrap_or(0)),
        Value::from(int_at(replica_set, "/status/readyReplicas").unwrap_or(0)),
        age_cell(replica_set, now),
        containers_field(replica_set, "/name"),
        containers_field(replica_set, "/image"),
        selector_cell(replica_set.pointer("/spec/selector")),
    ]
}

const SERVICE_COLUMNS: &[Column] = &[
    NAME,
    text("Type", "Type of the service."),
    text("Cluster-IP", "Cluster IP address of the service."),
    text("External-IP", "External addresses of the service."),
    text("Port(s)", "Ports of the service, with node ports."),
    AGE,
    wide("Selector", "Labels of the pods the service routes to."),
];

fn service_cells(service: &Value, now: SystemTime) -> Vec<Value> {
    let service_type = match str_at(service, "/spec/type") {
        "" => "ClusterIP",
        service_type => service_type,
    };
    let external_ips: Vec<&str> = array_at(service, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external = match service_type {
        "LoadBalancer" => {
            let mut addresses: Vec<&str> = array_at(service, "/status/loadBalancer/ingress")
                .iter()
                .map(|ingress| match str_at(ingress, "/ip") {
                    "" => str_at(ingress, "/hostname"),
                    ip => ip,
                })
                .filter(|address| !address.is_empty())
                .collect();
            addresses.extend(&external_ips);
            if addresses.is_empty() {
                "<pending>".to_owned()
            } else {
                addresses.join(",")
            }
        }
        "ExternalName" => str_at(service, "/spec/externalName").to_owned(),
        _ => external_ips.join(","),
    };
    let ports: Vec<String> = array_at(service, "/spec/ports")
        .iter()
        .map(|port| {
            let number = int_at(port, "/port").unwrap_or(0);
            let protocol = match str_at(port, "/protocol") {
                "" => "TCP",
                protocol => protocol,
            };
            match int_at(port, "/nodePort").filter(|node_port| *node_port != 0) {
                Some(node_port) => format!("{number}:{node_port}/{protocol}"),
                None => format!("{number}/{protocol}"),
            }
        })
        .collect();
    vec![
        name_cell(service),
        Value::String(service_type.to_owned()),
        or_none(str_at(service, "/spec/clusterIP")),
        or_none(&external),
        or_none(&ports.join(",")),
        age_cell(service, now),
        or_none(&key_values(map_at(service, "/spec/selector"))),
    ]
}

const ENDPOINTS_COLUMNS: &[Column] = &[
    NAME,
    text("Endpoints", "Addresses and ports of the endpoints."),
    AGE,
];

/// How many `ip:port` pairs the Endpoints column lists before `+ N more...`.
const ENDPOINTS_SHOWN: usize = 3;

fn endpoints_cells(endpoints: &Value, now: SystemTime) -> Vec<Value> {
    let mut pairs = Vec::new();
    for subset in array_at(endpoints, "/subsets") {
        let ports = array_at(subset, "/ports");
        for address in array_at(subset, "/addresses") {
            let ip = str_at(address, "/ip");
            if ports.is_empty() {
                pairs.push(ip.to_owned());
            }
            for port in ports {
                pairs.push(format!("{ip}:{}", int_at(port, "/port").unwrap_or(0)));
            }
        }
    }
    let mut cell = pairs
        .iter()
        .take(ENDPOINTS_SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(",");
    if pairs.len() > ENDPOINTS_SHOWN {
        cell.push_str(&format!(" + {} more...", pairs.len() - ENDPOINTS_SHOWN));
    }
    vec![
        name_cell(endpoints),
        or_none(&cell),
        age_cell(endpoints, now),
    ]
}

/// Number of keys of the map at `pointer`.
fn key_count(object: &Value, pointer: &str) -> usize {
    map_at(object, pointer).map_or(0, Map::len)
}

const CONFIG_MAP_COLUMNS: &[Column] = &[NAME, count("Data", "Number of data entries."), AGE];

fn config_map_cells(config_map: &Value, now: SystemTime) -> Vec<Value> {
    let entries = key_count(config_map, "/data") + key_count(config_map, "/binaryData");
    vec![
        name_cell(config_map),
        Value::from(entries),
        age_cell(config_map, now),
    ]
}

const SECRET_COLUMNS: &[Column] = &[
    NAME,
    text("Type", "Type of the secret."),
    count("Data", "Number of data entries."),
    AGE,
];

fn secret_cells(secret: &Value, now: SystemTime) -> Vec<Value> {
    vec![
        name_cell(secret),
        Value::String(str_at(secret, "/type").to_owned()),
        Value::from(key_count(secret, "/data")),
        age_cell(secret, now),
    ]
}

const SERVICE_ACCOUNT_COLUMNS: &[Column] = &[
    NAME,
    count("Secrets", "Number of secrets listed in the account."),
    AGE,
];

fn service_account_cells(account: &Value, now: SystemTime) -> Vec<Value> {
    let secrets = array_at(account, "/secrets").len();
    vec![
        name_cell(account),
        Value::from(secrets),
        age_cell(account, now),
    ]
}

const EVENT_COLUMNS: &[Column] = &[
    text("Last Seen", "Time since the event was last observed."),
    text("Type", "Type of the event: Normal or Warning."),
    text("Reason", "Short machine-readable reason."),
    text("Object", "Object the event is about."),
    wide("Subobject", "Part of the object the event is about."),
    wide("Source", "Component that reported the event."),
    text("Message", "Human-readable description."),
    wide("First Seen", "Time since the event was first observed."),
    Column {
        name: "Count",
        cell_type: "integer",
        format: "",
        description: "How often it happened.",
        priority: 1,
    },
    Column {
        priority: 1,
        ..NAME
    },
];

fn event_cells(event: &Value, now: SystemTime) -> Vec<Value> {
    let time = |pointer: &str| {
        event
            .pointer(pointer)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
    };
    let first_seen = time("/firstTimestamp").or_else(|| time("/eventTime"));
    let last_seen = time("/series/lastObservedTime")
        .or_else(|| time("/lastTimestamp"))
        .or(first_seen);
    let count = int_at(event, "/series/count")
        .or_else(|| int_at(event, "/count"))
        .filter(|count| *count > 0)
        .unwrap_or(1);

    let kind = str_at(event, "/involvedObject/kind").to_lowercase();
    let object = match str_at(event, "/involvedObject/name") {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    let source = match (
        str_at(event, "/source/component"),
        str_at(event, "/source/host"),
    ) {
        ("", _) => str_at(event, "/reportingComponent").to_owned(),
        (component, "") => component.to_owned(),
        (component, host) => format!("{component}, {host}"),
    };
    vec![
        Value::String(age_since(last_seen, now)),
        Value::String(str_at(event, "/type").to_owned()),
        Value::String(str_at(event, "/reason").to_owned()),
        Value::String(object),
        Value::String(str_at(event, "/involvedObject/fieldPath").to_owned()),
        Value::String(source),
        Value::String(str_at(event, "/message").to_owned()),
        Value::String(age_since(first_seen, now)),
        Value::from(count),
        name_cell(event),
    ]
}

const DEFAULT_COLUMNS: &[Column] = &[NAME, AGE];

fn default_cells(object: &Value, now: SystemTime) -> Vec<Value> {
    vec![name_cell(object), age_cell(object, now)]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed wall clock: 2025-01-01T00:00:00Z.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_735_689_600)
    }

    /// The RFC 3339 time `seconds` before [`now`].
    fn ago(seconds: u64) -> String {
        let then = now() - Duration::from_secs(seconds);
        let epoch = then.duration_since(UNIX_EPOCH).unwrap().as_secs();
        Timestamp::from_second(i64::try_from(epoch).unwrap())
            .unwrap()
            .to_string()
    }

    fn cells(kind: &str, object: Value) -> Vec<Value> {
        let table = table(kind, &[object], "7", IncludeObject::None, now());
        table["rows"][0]["cells"].as_array().unwrap().clone()
    }

    fn column_names(kind: &str) -> Vec<(String, u64)> {
        let table = table(kind, &[], "1", IncludeObject::None, now());
        table["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|column| {
                (
                    column["name"].as_str().unwrap().to_owned(),
                    column["priority"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    fn s(text: &str) -> Value {
        Value::String(text.to_owned())
    }

    /// HumanDuration's thresholds: seconds below 2m, m+s below 10m, minutes below 3h, h+m
    /// below 8h, hours below 2d, d+h below 8d, days below 2y, y+d below 8y, then years; zero
    /// remainders are dropped.
    #[test]
    fn format_age_switches_units_at_kubernetes_boundaries() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (59, "59s"),
            (119, "119s"),
            (120, "2m"),
            (123, "2m3s"),
            (599, "9m59s"),
            (600, "10m"),
            (659, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60 * 20, "3h20m"),
            (8 * 3600 - 1, "7h59m"),
            (8 * 3600, "8h"),
            (48 * 3600 - 1, "47h"),
            (48 * 3600, "2d"),
            (50 * 3600, "2d2h"),
            (8 * 86400 - 1, "7d23h"),
            (8 * 86400, "8d"),
            (2 * 365 * 86400 - 1, "729d"),
            (2 * 365 * 86400, "2y"),
            (2 * 365 * 86400 + 10 * 86400, "2y10d"),
            (8 * 365 * 86400 - 1, "7y364d"),
            (8 * 365 * 86400, "8y"),
            (100 * 365 * 86400, "100y"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(
                format_age(Duration::from_secs(*seconds)),
                *expected,
                "{seconds}s"
            );
        }
        assert_eq!(format_age(Duration::from_millis(1999)), "1s");
    }

    /// Ages tolerate up to two seconds of clock skew, flag timestamps further in the future as
    /// `<invalid>`, and missing or garbled ones as `<unknown>`; fractional seconds parse.
    #[test]
    fn age_handles_skew_future_and_missing_timestamps() {
        let future = |seconds: u64| {
            let then = now() + Duration::from_secs(seconds);
            let epoch = then.duration_since(UNIX_EPOCH).unwrap().as_secs();
            Timestamp::from_second(i64::try_from(epoch).unwrap())
                .unwrap()
                .to_string()
        };
        assert_eq!(age_since(Some(&future(1)), now()), "0s");
        assert_eq!(age_since(Some(&future(2)), now()), "<invalid>");
        assert_eq!(age_since(None, now()), "<unknown>");
        assert_eq!(age_since(Some("yesterday"), now()), "<unknown>");
        assert_eq!(
            age_since(Some("2024-12-31T23:55:00.123456Z"), now()),
            "4m59s"
        );
        assert_eq!(age_since(Some(&ago(300)), now()), "5m");
    }

    /// The exact Accept header `kubectl get` sends asks for a Table; `-o yaml`'s plain JSON,
    /// protobuf and Tables of other groups or versions do not.
    #[test]
    fn wants_table_matches_kubectl_get_accept_header() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(wants_table(
            "application/json; as=Table; v=v1beta1; g=meta.k8s.io"
        ));
        assert!(!wants_table("application/json"));
        assert!(!wants_table("application/json, */*"));
        assert!(!wants_table(
            "application/vnd.kubernetes.protobuf,application/json"
        ));
        assert!(!wants_table(
            "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io"
        ));
        assert!(!wants_table("application/json;as=Table;v=v2;g=meta.k8s.io"));
        assert!(!wants_table("application/json;as=Table;v=v1;g=example.com"));
        assert!(!wants_table(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        ));
    }

    /// `includeObject` defaults to metadata; only the exact values `None` and `Object` change it.
    #[test]
    fn include_object_defaults_to_metadata() {
        assert_eq!(IncludeObject::from_query(None), IncludeObject::Metadata);
        assert_eq!(
            IncludeObject::from_query(Some("Metadata")),
            IncludeObject::Metadata
        );
        assert_eq!(IncludeObject::from_query(Some("None")), IncludeObject::None);
        assert_eq!(
            IncludeObject::from_query(Some("Object")),
            IncludeObject::Object
        );
        assert_eq!(
            IncludeObject::from_query(Some("bogus")),
            IncludeObject::Metadata
        );
        assert_eq!(IncludeObject::default(), IncludeObject::Metadata);
    }

    /// The Table envelope carries kind, apiVersion and the list's resource version, and the
    /// Name column is formatted as a name so kubectl can prefix it with the kind.
    #[test]
    fn table_envelope_carries_resource_version_and_name_format() {
        let table = table("Pod", &[], "108", IncludeObject::Metadata, now());
        assert_eq!(table["kind"], "Table");
        assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(table["metadata"]["resourceVersion"], "108");
        assert_eq!(table["rows"], json!([]));
        let name = &table["columnDefinitions"][0];
        assert_eq!(
            name,
            &json!({"name": "Name", "type": "string", "format": "name",
                    "description": NAME.description, "priority": 0})
        );
    }

    /// Rows carry a PartialObjectMetadata by default, the whole object (with kind and
    /// apiVersion filled in when missing) for `Object`, and nothing for `None`.
    #[test]
    fn row_object_follows_include_mode() {
        let pod = json!({"metadata": {"name": "p", "namespace": "kube-system", "labels": {"a": "b"},
                                      "resourceVersion": "5"},
                         "spec": {"nodeName": "n1"}});
        let render = |include| table("Pod", std::slice::from_ref(&pod), "9", include, now());

        let metadata = render(IncludeObject::Metadata);
        assert_eq!(
            metadata["rows"][0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": pod["metadata"]})
        );

        let whole = render(IncludeObject::Object);
        let object = &whole["rows"][0]["object"];
        assert_eq!(object["kind"], "Pod");
        assert_eq!(object["apiVersion"], "v1");
        assert_eq!(object["spec"], pod["spec"]);

        let none = render(IncludeObject::None);
        assert!(none["rows"][0].get("object").is_none());
        assert!(none["rows"][0]["cells"].is_array());

        // A stored kind/apiVersion is kept as is.
        let lease = json!({"kind": "Lease", "apiVersion": "coordination.k8s.io/v1beta1",
                           "metadata": {"name": "l"}});
        let table = table("Lease", &[lease], "1", IncludeObject::Object, now());
        assert_eq!(
            table["rows"][0]["object"]["apiVersion"],
            "coordination.k8s.io/v1beta1"
        );
    }

    /// Every kind renders as many cells as it has columns, even for an object with no fields.
    #[test]
    fn every_kind_renders_one_cell_per_column() {
        let kinds = [
            "Pod",
            "Node",
            "Lease",
            "Namespace",
            "Deployment",
            "ReplicaSet",
            "Service",
            "Endpoints",
            "ConfigMap",
            "Secret",
            "ServiceAccount",
            "Event",
            "Widget",
        ];
        for kind in kinds {
            let table = table(kind, &[json!({})], "1", IncludeObject::Metadata, now());
            let columns = table["columnDefinitions"].as_array().unwrap().len();
            let cells = table["rows"][0]["cells"].as_array().unwrap().len();
            assert_eq!(cells, columns, "{kind}");
            assert_eq!(table["rows"][0]["object"]["metadata"], json!({}), "{kind}");
        }
    }

    /// A running pod shows ready/total containers, its phase, restarts with the time since the
    /// last one, its age, and in wide mode its IP, node and `<none>` placeholders.
    #[test]
    fn pod_cells_show_readiness_status_restarts_and_wide_placement() {
        let pod = json!({
            "metadata": {"name": "etcd-node1", "creationTimestamp": ago(300)},
            "spec": {"nodeName": "node1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.5", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(120)}}},
                {"name": "b", "ready": false, "restartCount": 1, "state": {"running": {}}}
            ]}
        });
        assert_eq!(
            cells("Pod", pod),
            vec![
                s("etcd-node1"),
                s("1/2"),
                s("Running"),
                s("3 (2m ago)"),
                s("5m"),
                s("10.0.0.5"),
                s("node1"),
                s("<none>"),
                s("<none>")
            ]
        );
        assert_eq!(
            column_names("Pod"),
            [
                ("Name", 0),
                ("Ready", 0),
                ("Status", 0),
                ("Restarts", 0),
                ("Age", 0),
                ("IP", 1),
                ("Node", 1),
                ("Nominated Node", 1),
                ("Readiness Gates", 1)
            ]
            .map(|(name, priority)| (name.to_owned(), priority))
        );
    }

    /// A pod's STATUS is the most telling reason: a waiting container's reason, a terminated
    /// one's exit code, the first unfinished init container, or Terminating when deleted.
    #[test]
    fn pod_status_prefers_container_reasons_and_terminating() {
        let status = |pod: Value| cells("Pod", pod)[2].clone();
        let pending = json!({"spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 0,
                 "state": {"waiting": {"reason": "ContainerCreating"}}}]}});
        assert_eq!(status(pending.clone()), "ContainerCreating");

        let crashed = json!({"spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "restartCount": 4, "state": {"terminated": {"exitCode": 137}}}]}});
        assert_eq!(status(crashed.clone()), "ExitCode:137");
        assert_eq!(cells("Pod", crashed)[3], "4");

        let initializing = json!({"spec": {"initContainers": [{"name": "i"}, {"name": "j"}],
                                           "containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "i", "restartCount": 0, "state": {"terminated": {"exitCode": 0}}},
                {"name": "j", "restartCount": 0, "state": {"running": {}}}]}});
        assert_eq!(status(initializing), "Init:1/2");

        let init_crash = json!({"spec": {"initContainers": [{"name": "i"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "i", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        assert_eq!(status(init_crash), "Init:CrashLoopBackOff");

        let mut deleting = pending;
        deleting["metadata"] = json!({"name": "p", "deletionTimestamp": ago(1)});
        assert_eq!(status(deleting), "Terminating");

        let finished = json!({"metadata": {"deletionTimestamp": ago(1)},
                              "status": {"phase": "Succeeded"}});
        assert_eq!(status(finished), "Succeeded");

        let gated = json!({"spec": {"readinessGates": [{"conditionType": "x"}, {"conditionType": "y"}]},
                           "status": {"conditions": [{"type": "x", "status": "True"}]}});
        assert_eq!(cells("Pod", gated)[8], "1/2");
    }

    /// A node shows Ready plus SchedulingDisabled when cordoned, its roles from labels, its
    /// kubelet version, and addresses and node info in wide mode.
    #[test]
    fn node_cells_show_status_roles_version_and_wide_info() {
        let node = json!({
            "metadata": {"name": "node1", "creationTimestamp": ago(3 * 86400 + 2 * 3600),
                         "labels": {"node-role.kubernetes.io/control-plane": "",
                                    "node-role.kubernetes.io/etcd": "true", "zone": "a"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                      {"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "Hostname", "address": "node1"},
                                     {"type": "InternalIP", "address": "192.168.1.10"}],
                       "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian 12",
                                    "kernelVersion": "6.1.0", "containerRuntimeVersion": "containerd://1.7"}}
        });
        assert_eq!(
            cells("Node", node),
            vec![
                s("node1"),
                s("Ready,SchedulingDisabled"),
                s("control-plane,etcd"),
                s("3d2h"),
                s("v1.32.0"),
                s("192.168.1.10"),
                s("<none>"),
                s("Debian 12"),
                s("6.1.0"),
                s("containerd://1.7")
            ]
        );
        let not_ready = json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        assert_eq!(cells("Node", not_ready)[1], "NotReady");
        let silent = json!({"metadata": {"name": "n"}});
        let silent = cells("Node", silent);
        assert_eq!(
            (silent[1].clone(), silent[2].clone()),
            (s("Unknown"), s("<none>"))
        );
        assert_eq!(silent[7], "<unknown>");
        let priorities: Vec<u64> = column_names("Node").into_iter().map(|(_, p)| p).collect();
        assert_eq!(priorities, [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
    }

    /// A lease shows its holder; a namespace its phase, Active when the status is empty.
    #[test]
    fn lease_and_namespace_cells() {
        let lease = json!({"metadata": {"name": "kube-scheduler", "creationTimestamp": ago(45)},
                           "spec": {"holderIdentity": "node1_abc"}});
        assert_eq!(
            cells("Lease", lease),
            vec![s("kube-scheduler"), s("node1_abc"), s("45s")]
        );
        let namespace = json!({"metadata": {"name": "x", "creationTimestamp": ago(10)}});
        assert_eq!(
            cells("Namespace", namespace),
            vec![s("x"), s("Active"), s("10s")]
        );
        let terminating = json!({"metadata": {"name": "y"}, "status": {"phase": "Terminating"}});
        assert_eq!(cells("Namespace", terminating)[1], "Terminating");
    }

    /// A deployment shows ready/desired, up-to-date and available counts, and in wide mode its
    /// containers, images and selector; missing status counts read 0.
    #[test]
    fn deployment_cells_show_replica_counts_and_wide_template() {
        let deployment = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(7200)},
            "spec": {"replicas": 3,
                     "selector": {"matchLabels": {"app": "web"},
                                  "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]},
                                                       {"key": "legacy", "operator": "DoesNotExist"}]},
                     "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"},
                                                          {"name": "sidecar", "image": "busybox"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
        });
        assert_eq!(
            cells("Deployment", deployment),
            vec![
                s("web"),
                s("2/3"),
                json!(3),
                json!(2),
                s("120m"),
                s("nginx,sidecar"),
                s("nginx:1.27,busybox"),
                s("app=web,!legacy,tier in (a,b)")
            ]
        );
        let fresh = json!({"metadata": {"name": "new"}, "spec": {"replicas": 2}});
        let fresh = cells("Deployment", fresh);
        assert_eq!(fresh[1..4], [s("0/2"), json!(0), json!(0)]);
        assert_eq!(fresh[7], "<none>");
        let priorities: Vec<u64> = column_names("Deployment")
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        assert_eq!(priorities, [0, 0, 0, 0, 0, 1, 1, 1]);
    }

    /// A replica set shows desired (spec), current and ready (status) counts.
    #[test]
    fn replica_set_cells_show_desired_current_ready() {
        let replica_set = json!({
            "metadata": {"name": "web-5d8f", "creationTimestamp": ago(90)},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d8f"}},
                     "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}},
            "status": {"replicas": 2, "readyReplicas": 1}
        });
        assert_eq!(
            cells("ReplicaSet", replica_set),
            vec![
                s("web-5d8f"),
                json!(2),
                json!(2),
                json!(1),
                s("90s"),
                s("nginx"),
                s("nginx"),
                s("app=web,pod-template-hash=5d8f")
            ]
        );
    }

    /// Services show type, cluster IP, external addresses (`<pending>` for an unassigned load
    /// balancer) and ports with node ports, and their selector in wide mode.
    #[test]
    fn service_cells_show_type_addresses_and_ports() {
        let kubernetes = json!({"metadata": {"name": "kubernetes", "creationTimestamp": ago(60)},
                                "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1",
                                         "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}});
        assert_eq!(
            cells("Service", kubernetes),
            vec![
                s("kubernetes"),
                s("ClusterIP"),
                s("10.96.0.1"),
                s("<none>"),
                s("443/TCP"),
                s("60s"),
                s("<none>")
            ]
        );
        let node_port = json!({"metadata": {"name": "web"},
                               "spec": {"type": "NodePort", "clusterIP": "10.96.0.7", "selector": {"app": "web"},
                                        "ports": [{"port": 80, "nodePort": 30080},
                                                  {"port": 53, "protocol": "UDP"}]}});
        let node_port = cells("Service", node_port);
        assert_eq!(node_port[4], "80:30080/TCP,53/UDP");
        assert_eq!(node_port[6], "app=web");
        let balancer = json!({"spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.8"}});
        assert_eq!(cells("Service", balancer)[3], "<pending>");
        let assigned = json!({"spec": {"type": "LoadBalancer"},
                              "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.4"}]}}});
        assert_eq!(cells("Service", assigned)[3], "203.0.113.4");
        let headless = json!({"spec": {"clusterIP": "None"}});
        assert_eq!(
            cells("Service", headless)[1..3],
            [s("ClusterIP"), s("None")]
        );
    }

    /// Endpoints list `ip:port` pairs, at most three before `+ N more...`, or `<none>`.
    #[test]
    fn endpoints_cells_list_pairs_and_truncate() {
        let endpoints = json!({"metadata": {"name": "web"}, "subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]}
        ]});
        assert_eq!(
            cells("Endpoints", endpoints)[1],
            "10.0.0.1:80,10.0.0.1:443,10.0.0.2:80 + 1 more..."
        );
        let one =
            json!({"subsets": [{"addresses": [{"ip": "10.0.0.9"}], "ports": [{"port": 2379}]}]});
        assert_eq!(cells("Endpoints", one)[1], "10.0.0.9:2379");
        assert_eq!(
            cells("Endpoints", json!({"metadata": {"name": "e"}}))[1],
            "<none>"
        );
    }

    /// ConfigMaps count data and binaryData entries, secrets show type and data entries,
    /// service accounts count their secrets; counts are integer cells.
    #[test]
    fn config_map_secret_and_service_account_cells_count_entries() {
        let config_map = json!({"metadata": {"name": "c", "creationTimestamp": ago(30)},
                                "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        assert_eq!(
            cells("ConfigMap", config_map),
            vec![s("c"), json!(3), s("30s")]
        );
        let secret = json!({"metadata": {"name": "s", "creationTimestamp": ago(30)},
                            "type": "Opaque", "data": {"k": "dg=="}});
        assert_eq!(
            cells("Secret", secret),
            vec![s("s"), s("Opaque"), json!(1), s("30s")]
        );
        let account = json!({"metadata": {"name": "default", "creationTimestamp": ago(30)}});
        assert_eq!(
            cells("ServiceAccount", account),
            vec![s("default"), json!(0), s("30s")]
        );
        let table = table("Secret", &[], "1", IncludeObject::None, now());
        assert_eq!(table["columnDefinitions"][2]["type"], "integer");
    }

    /// Events show when they were last seen, type, reason, the `kind/name` they concern and
    /// the message; source, first seen, count and name only in wide mode.
    #[test]
    fn event_cells_show_last_seen_object_and_message() {
        let event = json!({
            "metadata": {"name": "web.17a", "creationTimestamp": ago(600)},
            "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{nginx}"},
            "reason": "Pulled", "type": "Normal", "message": "Container image pulled",
            "source": {"component": "kubelet", "host": "node1"},
            "firstTimestamp": ago(600), "lastTimestamp": ago(65), "count": 3
        });
        assert_eq!(
            cells("Event", event),
            vec![
                s("65s"),
                s("Normal"),
                s("Pulled"),
                s("pod/web-1"),
                s("spec.containers{nginx}"),
                s("kubelet, node1"),
                s("Container image pulled"),
                s("10m"),
                json!(3),
                s("web.17a")
            ]
        );
        let columns = column_names("Event");
        let shown: Vec<&str> = columns
            .iter()
            .filter(|(_, p)| *p == 0)
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(shown, ["Last Seen", "Type", "Reason", "Object", "Message"]);
        let table = table("Event", &[], "1", IncludeObject::None, now());
        assert_eq!(table["columnDefinitions"][9]["format"], "name");

        let modern = json!({"eventTime": "2024-12-31T23:59:00.000000Z", "reportingComponent": "sched",
                            "involvedObject": {"kind": "Node"}});
        let modern = cells("Event", modern);
        assert_eq!(
            (modern[0].clone(), modern[3].clone(), modern[5].clone()),
            (s("60s"), s("node"), s("sched"))
        );
        assert_eq!(modern[8], json!(1));
    }

    /// Kinds without a dedicated printer get kubectl's fallback NAME and AGE columns.
    #[test]
    fn other_kinds_fall_back_to_name_and_age() {
        let widget = json!({"metadata": {"name": "w", "creationTimestamp": ago(3 * 86400)}});
        assert_eq!(cells("Widget", widget), vec![s("w"), s("3d")]);
        assert_eq!(
            column_names("Widget"),
            [("Name".to_owned(), 0), ("Age".to_owned(), 0)]
        );
    }
}
