//! Decoding of the Kubernetes protobuf request bodies that kubectl >= 1.32 sends.
//!
//! client-go's typed clients write protobuf (`application/vnd.kubernetes.protobuf`) and kubectl
//! has no JSON fallback when the server refuses it, so `kubectl create namespace|configmap|
//! secret|serviceaccount|deployment|service` only work if the server can read these bodies. This
//! module turns such a body into the equivalent JSON object (with `apiVersion` and `kind`), so
//! the rest of the server handles it exactly like a JSON body. It never encodes protobuf:
//! kubectl's `Accept` also lists `application/json`.
//!
//! Wire format: the 4-byte magic `k8s\0`, then a `runtime.Unknown` envelope
//! `{1: typeMeta{1: apiVersion, 2: kind}, 2: raw, 3: contentEncoding, 4: contentType}` whose `raw`
//! bytes are the typed message from k8s.io/api's `generated.proto`.
//!
//! Conversion rules, chosen to match what Go's `encoding/json` prints for the same object:
//! - gogo-protobuf writes every non-pointer field, so an empty string, a zero number of an
//!   `omitempty` field, an empty map and an empty list mean "unset" and are left out.
//! - Pointer fields (`replicas`, `immutable`, `revisionHistoryLimit`, ...) are written only when
//!   set, so when present they are kept even when zero or false.
//! - An embedded message that is present is emitted as an object even when empty, as Go does for
//!   non-pointer structs: `kubectl create namespace x` becomes
//!   `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"x"},"spec":{},"status":{}}`.
//! - `bytes` values (Secret `data`, ConfigMap `binaryData`) become standard base64 strings.
//! - Server-owned metadata (`creationTimestamp`, `deletionTimestamp`, `selfLink`,
//!   `managedFields`) and object `status` contents are not decoded; the server sets them.
//!
//! Only what the kubectl create subcommands set is modelled. Fields they never set (volumes,
//! probes, affinity, tolerations, security contexts, ...) are skipped by the decoder, which is
//! why only the kinds in `SUPPORTED_KINDS` are accepted and every other kind is refused with
//! [`ProtobufError::UnsupportedKind`] rather than half-decoded. Clients that write richer objects
//! (`kubectl apply`, `create -f`, `replace`) send JSON.

use std::collections::BTreeMap;

use base64::Engine as _;
use prost::Message;
use serde_json::{Map, Value};

/// The media type client-go uses for protobuf bodies.
const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Every Kubernetes protobuf body starts with these four bytes.
const MAGIC: &[u8; 4] = b"k8s\0";

/// The `(apiVersion, kind)` pairs [`decode`] understands.
const SUPPORTED_KINDS: &[(&str, &str)] = &[
    ("v1", "Namespace"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "ServiceAccount"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"),
];

/// Why a protobuf request body could not be turned into JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    /// The body lacks the `k8s\0` magic or its envelope is not a `runtime.Unknown` with a kind.
    #[error("request body is not a kubernetes protobuf object: {0}")]
    NotKubernetes(String),
    /// The envelope names a kind this server cannot decode from protobuf.
    #[error(
        "protobuf request bodies of kind {kind} ({api_version}) are not supported; \
         supported kinds are {supported}; send this object as application/json instead",
        supported = supported_kinds()
    )]
    UnsupportedKind {
        /// The envelope's `apiVersion`, e.g. `v1`.
        api_version: String,
        /// The envelope's `kind`, e.g. `Pod`.
        kind: String,
    },
    /// The envelope is fine but its contents are not a valid message of the named kind.
    #[error("malformed protobuf request body: {0}")]
    Malformed(String),
}

/// Whether a `Content-Type` header value names Kubernetes protobuf, ignoring parameters.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

/// Decodes a Kubernetes protobuf request body into the equivalent JSON object.
///
/// The result carries `apiVersion` and `kind` from the envelope; see the module docs for how
/// unset and zero fields are treated.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let envelope = body.strip_prefix(MAGIC).ok_or_else(|| {
        ProtobufError::NotKubernetes("the body does not start with the k8s\\0 magic".to_owned())
    })?;
    let unknown = Unknown::decode(envelope).map_err(|error| {
        ProtobufError::NotKubernetes(format!("the envelope is not a runtime.Unknown: {error}"))
    })?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    if type_meta.kind.is_empty() {
        return Err(ProtobufError::NotKubernetes(
            "the runtime.Unknown envelope names no kind".to_owned(),
        ));
    }
    if !unknown.content_encoding.is_empty() {
        return Err(ProtobufError::Malformed(format!(
            "content encoding {:?} is not supported",
            unknown.content_encoding
        )));
    }
    if !unknown.content_type.is_empty() && !is_protobuf(&unknown.content_type) {
        return Err(ProtobufError::Malformed(format!(
            "embedded content type {:?} is not supported",
            unknown.content_type
        )));
    }

    let raw = unknown.raw.as_slice();
    let kind = type_meta.kind.as_str();
    let object = match (type_meta.api_version.as_str(), kind) {
        ("v1", "Namespace") => decode_as::<Namespace>(raw, kind)?,
        ("v1", "ConfigMap") => decode_as::<ConfigMap>(raw, kind)?,
        ("v1", "Secret") => decode_as::<Secret>(raw, kind)?,
        ("v1", "ServiceAccount") => decode_as::<ServiceAccount>(raw, kind)?,
        ("v1", "Service") => decode_as::<Service>(raw, kind)?,
        ("apps/v1", "Deployment") => decode_as::<Deployment>(raw, kind)?,
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => {
            decode_as::<SelfSubjectAccessReview>(raw, kind)?
        }
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => {
            decode_as::<SelfSubjectRulesReview>(raw, kind)?
        }
        _ => {
            return Err(ProtobufError::UnsupportedKind {
                api_version: type_meta.api_version,
                kind: type_meta.kind,
            });
        }
    };

    let mut json = Map::new();
    json.insert(
        "apiVersion".to_owned(),
        Value::String(type_meta.api_version.clone()),
    );
    json.insert("kind".to_owned(), Value::String(type_meta.kind.clone()));
    if let Value::Object(fields) = object {
        json.extend(fields);
    }
    Ok(Value::Object(json))
}

/// Lists [`SUPPORTED_KINDS`] for error messages, e.g. `Namespace (v1), Deployment (apps/v1)`.
fn supported_kinds() -> String {
    SUPPORTED_KINDS
        .iter()
        .map(|(api_version, kind)| format!("{kind} ({api_version})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Decodes `raw` as message `M` and converts it to JSON.
fn decode_as<M: Message + Default + ToJson>(
    raw: &[u8],
    kind: &str,
) -> Result<Value, ProtobufError> {
    M::decode(raw)
        .map(|message| message.to_json())
        .map_err(|error| ProtobufError::Malformed(format!("{kind}: {error}")))
}

/// Conversion of a decoded message into its Kubernetes JSON form.
trait ToJson {
    /// The JSON value Go's `encoding/json` would print for this message.
    fn to_json(&self) -> Value;
}

/// Builds a JSON object field by field, applying Kubernetes' `omitempty` rules.
#[derive(Default)]
struct Fields(Map<String, Value>);

impl Fields {
    /// A string field; empty means unset.
    fn text(mut self, key: &str, value: &str) -> Self {
        if !value.is_empty() {
            self.0
                .insert(key.to_owned(), Value::String(value.to_owned()));
        }
        self
    }

    /// A list of strings; empty means unset.
    fn texts(mut self, key: &str, values: &[String]) -> Self {
        if !values.is_empty() {
            self.0.insert(
                key.to_owned(),
                values.iter().cloned().map(Value::String).collect(),
            );
        }
        self
    }

    /// A `map<string, string>`; empty means unset.
    fn text_map(mut self, key: &str, values: &BTreeMap<String, String>) -> Self {
        if !values.is_empty() {
            let map = values
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())));
            self.0.insert(key.to_owned(), Value::Object(map.collect()));
        }
        self
    }

    /// A `map<string, bytes>`, base64-encoded as in Kubernetes JSON; empty means unset.
    fn bytes_map(mut self, key: &str, values: &BTreeMap<String, Vec<u8>>) -> Self {
        if !values.is_empty() {
            let engine = base64::engine::general_purpose::STANDARD;
            let map = values
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(engine.encode(v))));
            self.0.insert(key.to_owned(), Value::Object(map.collect()));
        }
        self
    }

    /// A map whose values are messages.
    fn message_map<M: ToJson>(mut self, key: &str, values: &BTreeMap<String, M>) -> Self {
        if !values.is_empty() {
            let map = values.iter().map(|(k, v)| (k.clone(), v.to_json()));
            self.0.insert(key.to_owned(), Value::Object(map.collect()));
        }
        self
    }

    /// A pointer field in Go: written only when set, so kept even when zero or false.
    fn set<T: Into<Value>>(mut self, key: &str, value: Option<T>) -> Self {
        if let Some(value) = value {
            self.0.insert(key.to_owned(), value.into());
        }
        self
    }

    /// A non-pointer `omitempty` number: zero means unset.
    fn nonzero<T: Into<i64>>(mut self, key: &str, value: Option<T>) -> Self {
        if let Some(value) = value.map(Into::into).filter(|value| *value != 0) {
            self.0.insert(key.to_owned(), Value::from(value));
        }
        self
    }

    /// A non-pointer `omitempty` bool: false means unset.
    fn flag(mut self, key: &str, value: Option<bool>) -> Self {
        if value == Some(true) {
            self.0.insert(key.to_owned(), Value::Bool(true));
        }
        self
    }

    /// An embedded message: emitted, possibly as `{}`, whenever it is on the wire.
    fn message<M: ToJson>(mut self, key: &str, value: Option<&M>) -> Self {
        if let Some(value) = value {
            self.0.insert(key.to_owned(), value.to_json());
        }
        self
    }

    /// A list of messages; empty means unset.
    fn messages<M: ToJson>(mut self, key: &str, values: &[M]) -> Self {
        if !values.is_empty() {
            self.0
                .insert(key.to_owned(), values.iter().map(ToJson::to_json).collect());
        }
        self
    }

    fn build(self) -> Value {
        Value::Object(self.0)
    }
}

/// `runtime.TypeMeta` inside the envelope.
#[derive(Clone, PartialEq, Message)]
struct TypeMeta {
    #[prost(string, tag = "1")]
    api_version: String,
    #[prost(string, tag = "2")]
    kind: String,
}

/// `runtime.Unknown`: the envelope after the magic.
#[derive(Clone, PartialEq, Message)]
struct Unknown {
    #[prost(message, optional, tag = "1")]
    type_meta: Option<TypeMeta>,
    #[prost(bytes = "vec", tag = "2")]
    raw: Vec<u8>,
    #[prost(string, tag = "3")]
    content_encoding: String,
    #[prost(string, tag = "4")]
    content_type: String,
}

/// `meta/v1.ObjectMeta`, without the server-owned timestamps, selfLink and managedFields.
#[derive(Clone, PartialEq, Message)]
struct ObjectMeta {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    generate_name: String,
    #[prost(string, tag = "3")]
    namespace: String,
    #[prost(string, tag = "5")]
    uid: String,
    #[prost(string, tag = "6")]
    resource_version: String,
    #[prost(int64, optional, tag = "7")]
    generation: Option<i64>,
    #[prost(btree_map = "string, string", tag = "11")]
    labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "12")]
    annotations: BTreeMap<String, String>,
    #[prost(message, repeated, tag = "13")]
    owner_references: Vec<OwnerReference>,
    #[prost(string, repeated, tag = "14")]
    finalizers: Vec<String>,
}

impl ToJson for ObjectMeta {
    fn to_json(&self) -> Value {
        Fields::default()
            .text("name", &self.name)
            .text("generateName", &self.generate_name)
            .text("namespace", &self.namespace)
            .text("uid", &self.uid)
            .text("resourceVersion", &self.resource_version)
            .nonzero("generation", self.generation)
            .text_map("labels", &self.labels)
            .text_map("annotations", &self.annotations)
            .messages("ownerReferences", &self.owner_references)
            .texts("finalizers", &self.finalizers)
            .build()
    }
}

/// `meta/v1.OwnerReference`.
#[derive(Clone, PartialEq, Message)]
struct OwnerReference {
    #[prost(string, tag = "1")]
    kind: String,
    #[prost(string, tag = "3")]
    name: String,
    #[prost(string, tag = "4")]
    uid: String,
    #[prost(string, tag = "5")]
    api_version: String,
    #[prost(bool, optional, tag = "6")]
    controller: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    block_owner_deletion: Option<bool>,
}

impl ToJson for OwnerReference {
    fn to_json(&self) -> Value {
        Fields::default()
            .text("apiVersion", &self.api_version)
            .text("kind", &self.kind)
            .text("name", &self.name)
            .text("uid", &self.uid)
            .set("controller", self.controller)
            .set("blockOwnerDeletion", self.block_owner_deletion)
            .build()
    }
}

/// `meta/v1.LabelSelector`.
#[derive(Clone, PartialEq, Message)]
struct LabelSelector {
    #[prost(btree_map = "string, string", tag = "1")]
    match_labels: BTreeMap<String, String>,
    #[prost(message, repeated, tag = "2")]
    match_expressions: Vec<LabelSelectorRequirement>,
}

impl ToJson for LabelSelector {
    fn to_json(&self) -> Value {
        Fields::default()
            .text_map("matchLabels", &self.match_labels)
            .messages("matchExpressions", &self.match_expressions)
            .build()
    }
}

/// `meta/v1.LabelSelectorRequirement`.
#[derive(Clone, PartialEq, Message)]
struct LabelSelectorRequirement {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(string, tag = "2")]
    operator: String,
    #[prost(string, repeated, tag = "3")]
    values: Vec<String>,
}

impl ToJson for LabelSelectorRequirement {
    fn to_json(&self) -> Value {
        Fields::default()
            .text("key", &self.key)
            .text("operator", &self.operator)
            .texts("values", &self.values)
            .build()
    }
}

/// `util/intstr.IntOrString`: JSON is a bare number or a bare string.
#[derive(Clone, PartialEq, Message)]
struct IntOrString {
    /// 0 = int, 1 = string.
    #[prost(int64, optional, tag = "1")]
    kind: Option<i64>,
    #[prost(int32, optional, tag = "2")]
    int_val: Option<i32>,
    #[prost(string, tag = "3")]
    str_val: String,
}

impl IntOrString {
    /// The zero value (int 0) is what gogo writes for an unset non-pointer field.
    fn is_zero(&self) -> bool {
        self.kind.unwrap_or(0) == 0 && self.int_val.unwrap_or(0) == 0
    }
}

impl ToJson for IntOrString {
    fn to_json(&self) -> Value {
        if self.kind == Some(1) {
            Value::String(self.str_val.clone())
        } else {
            Value::from(self.int_val.unwrap_or(0))
        }
    }
}

/// `api/resource.Quantity`: its canonical string.
#[derive(Clone, PartialEq, Message)]
struct Quantity {
    #[prost(string, tag = "1")]
    string: String,
}

impl ToJson for Quantity {
    fn to_json(&self) -> Value {
        Value::String(self.string.clone())
    }
}

/// A `status` whose contents are server-owned and therefore not decoded.
#[derive(Clone, PartialEq, Message)]
struct ServerOwnedStatus {}

impl ToJson for ServerOwnedStatus {
    fn to_json(&self) -> Value {
        Value::Object(Map::new())
    }
}

/// `core/v1.Namespace`.
#[derive(Clone, PartialEq, Message)]
struct Namespace {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<NamespaceSpec>,
    #[prost(message, optional, tag = "3")]
    status: Option<NamespaceStatus>,
}

impl ToJson for Namespace {
    fn to_json(&self) -> Value {
        Fields::default()
            .message("metadata", self.metadata.as_ref())
            .message("spec", self.spec.as_ref())
            .message("status", self.status.as_ref())
            .build()
    }
}

/// `core/v1.NamespaceSpec`.
#[derive(Clone, PartialEq, Message)]
struct NamespaceSpec {
    #[prost(string, repeated, tag = "1")]
    finalizers: Vec<String>,
}

impl ToJson for NamespaceSpec {
    fn to_json(&self) -> Value {
        Fields::default()
            .texts("finalizers", &self.finalizers)
            .build()
    }
}

/// `core/v1.NamespaceStatus`, without conditions.
#[derive(Clone, PartialEq, Message)]
struct NamespaceStatus {
    #[prost(string, tag = "1")]
    phase: String,
}

impl ToJson for NamespaceStatus {
    fn to_json(&self) -> Value {
        Fields::default().text("phase", &self.phase).build()
    }
}

/// `authorization/v1.SelfSubjectAccessReview` (`kubectl auth can-i`); its status is the
/// server's to fill.
#[derive(Clone, PartialEq, Message)]
struct SelfSubjectAccessReview {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<SelfSubjectAccessReviewSpec>,
}

impl ToJson for SelfSubjectAccessReview {
    fn to_json(&self) -> Value {
        Fields::default()
            .message("metadata", self.metadata.as_ref())
            .message("spec", self.spec.as_ref())
            .build()
    }
}

/// `authorization/v1.SelfSubjectRulesReview` (`kubectl auth can-i --list`).
#[derive(Clone, PartialEq, Message)]
struct SelfSubjectRulesReview {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<SelfSubjectRulesReviewSpec>,
}

impl ToJson for SelfSubjectRulesReview {
    fn to_json(&self) -> Value {
        Fields::default()
            .message("metadata", self.metadata.as_ref())
            .message("spec", self.spec.as_ref())
            .build()
    }
}

/// `authorization/v1.SelfSubjectRulesReviewSpec`.
#[derive(Clone, PartialEq, Message)]
struct SelfSubjectRulesReviewSpec {
    #[prost(string, tag = "1")]
    namespace: String,
}

impl ToJson for SelfSubjectRulesReviewSpec {
    fn to_json(&self) -> Value {
        Fields::default().text("namespace", &self.namespace).build()
    }
}

/// `authorization/v1.SelfSubjectAccessReviewSpec`.
#[derive(Clone, PartialEq, Message)]
struct SelfSubjectAccessReviewSpec {
    #[prost(message, optional, tag = "1")]
    resource_attributes: Option<ResourceAttributes>,
    #[prost(message, optional, tag = "2")]
    non_resource_attributes: Option<NonResourceAttributes>,
}

impl ToJson for SelfSubjectAccessReviewSpec {
    fn to_json(&self) -> Value {
        Fields::default()
            .message("resourceAttributes", self.resource_attributes.as_ref())
            .message(
                "nonResourceAttributes",
                self.non_resource_attributes.as_ref(),
            )
            .build()
    }
}

/// `authorization/v1.ResourceAttributes` (its field and label selectors are not modelled).
#[derive(Clone, PartialEq, Message)]
struct ResourceAttributes {
    #[prost(string, tag = "1")]
    namespace: String,
    #[prost(string, tag = "2")]
    verb: String,
    #[prost(string, tag = "3")]
    group: String,
    #[prost(string, tag = "4")]
    version: String,
    #[prost(string, tag = "5")]
    resource: String,
    #[prost(string, tag = "6")]
    subresource: String,
    #[prost(string, tag = "7")]
    name: String,
}

impl ToJson for ResourceAttributes {
    fn to_json(&self) -> Value {
        Fields::default()
            .text("namespace", &self.namespace)
            .text("verb", &self.verb)
            .text("group", &self.group)
            .text("version", &self.version)
            .text("resource", &self.resource)
            .text("subresource", &self.subresource)
            .text("name", &self.name)
            .build()
    }
}

/// `authorization/v1.NonResourceAttributes`.
#[derive(Clone, PartialEq, Message)]
struct NonResourceAttributes {
    #[prost(string, tag = "1")]
    path: String,
    #[prost(string, tag = "2")]
    verb: String,
}

impl ToJson for NonResourceAttributes {
    fn to_json(&self) -> Value {
        Fields::default()
            .text("path", &self.path)
            .text("verb", &self.verb)
            .build()
    }
}

/// `core/v1.ConfigMap`.
#[derive(Clone, PartialEq, Message)]
struct ConfigMap {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(btree_map = "string, string", tag = "2")]
    data: BTreeMap<String, String>,
    #[prost(btree_map = "string, bytes", tag = "3")]
    binary_data: BTreeMap<String, Vec<u8>>,
    #[prost(bool, optional, tag = "4")]
    immutable: Option<bool>,
}

impl ToJson for ConfigMap {
    fn to_json(&self) -> Value {
        Fields::default()
            .message("metadata", self.metadata.as_ref())
            .text_map("data", &self.data)
            .bytes_map("binaryData", &self.binary_data)
            .set("immutable", self.immutable)
            .build()
    }
}

/// `core/v1.Secret`.
#[derive(Clone, PartialEq, Message)]
struct Secret {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(btree_map = "string, bytes", tag = "2")]
    data: BTreeMap<String, Vec<u8>>,
    #[prost(string, tag = "3")]
    r#type: String,
    #[prost(btree_map = "string, string", tag = "4")]
    string_data: BTreeMap<String, String>,
    #[prost(bool, optional, tag = "5")]
    immutable: Option<bool>,
}

impl ToJson for Secret {
    fn to_json(&self) -> Value {
        Fields::default()
            .message("metadata", self.metadata.as_ref())
            .bytes_map("data", &self.data)
            .text("type", &self.r#type)
            .text_map("stringData", &self.string_data)
            .set("immutable", self.immutable)
            .build()
    }
}

/// `core/v1.ServiceAccount`.
#[derive(Clone, PartialEq, Message)]
struct ServiceAccount {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, repeated, tag = "2")]
    secrets: Vec<ObjectReference>,
    #[prost(message, repeated, tag = "3")]
    image_pull_secrets: Vec<LocalObjectReference>,
    #[prost(bool, optional, tag = "4")]
    automount_service_account_token: Option<bool>,
}

impl ToJson for ServiceAccount {
    fn to_json(&self) -> Value {
        Fields::default()
            .message("metadata", self.metadata.as_ref())
            .messages("secrets", &self.secrets)
            .messages("imagePullSecrets", &self.image_pull_secrets)
            .set(
                "automountServiceAccountToken",
                self.automount_service_account_token,
            )
            .build()
    }
}

/// `core/v1.ObjectReference`.
#[derive(Clone, PartialEq, Message)]
struct ObjectReference {
    #[prost(string, tag = "1")]
    kind: String,
    #[prost(string, tag = "2")]
    namespace: String,
    #[prost(string, tag = "3")]
    name: String,
    #[prost(string, tag = "4")]
    uid: String,
    #[prost(string, tag = "5")]
    api_version: String,
    #[prost(string, tag = "6")]
    resource_version: String,
    #[prost(string, tag = "7")]
    field_path: String,
}

impl ToJson for ObjectReference {
    fn to_json(&self) -> Value {
        Fields::default()
            .text("kind", &self.kind)
            .text("namespace", &self.namespace)
            .text("name", &self.name)
            .text("uid", &self.uid)
            .text("apiVersion", &self.api_version)
            .text("resourceVersion", &self.resource_version)
            .text("fieldPath", &self.field_path)
            .build()
    }
}

/// `core/v1.LocalObjectReference`.
#[derive(Clone, PartialEq, Message)]
struct LocalObjectReference {
    #[prost(string, tag = "1")]
    name: String,
}

impl ToJson for LocalObjectReference {
    fn to_json(&self) -> Value {
        Fields::default().text("name", &self.name).build()
    }
}

/// `core/v1.Service`.
#[derive(Clone, PartialEq, Message)]
struct Service {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<ServiceSpec>,
    #[prost(message, optional, tag = "3")]
    status: Option<ServiceStatus>,
}

impl ToJson for Service {
    fn to_json(&self) -> Value {
        Fields::default()
            .message("metadata", self.metadata.as_ref())
            .message("spec", self.spec.as_ref())
            .message("status", self.status.as_ref())
            .build()
    }
}

/// `core/v1.ServiceSpec`, without `sessionAffinityConfig`.
#[derive(Clone, PartialEq, Message)]
struct ServiceSpec {
    #[prost(message, repeated, tag = "1")]
    ports: Vec<ServicePort>,
    #[prost(btree_map = "string, string", tag = "2")]
    selector: BTreeMap<String, String>,
    #[prost(string, tag = "3")]
    cluster_ip: String,
    #[prost(string, tag = "4")]
    r#type: String,
    #[prost(string, repeated, tag = "5")]
    external_ips: Vec<String>,
    #[prost(string, tag = "7")]
    session_affinity: String,
    #[prost(string, tag = "8")]
    load_balancer_ip: String,
    #[prost(string, repeated, tag = "9")]
    load_balancer_source_ranges: Vec<String>,
    #[prost(string, tag = "10")]
    external_name: String,
    #[prost(string, tag = "11")]
    external_traffic_policy: String,
    #[prost(int32, optional, tag = "12")]
    health_check_node_port: Option<i32>,
    #[prost(bool, optional, tag = "13")]
    publish_not_ready_addresses: Option<bool>,
    #[prost(string, tag = "17")]
    ip_family_policy: String,
    #[prost(string, repeated, tag = "18")]
    cluster_ips: Vec<String>,
    #[prost(string, repeated, tag = "19")]
    ip_families: Vec<String>,
    #[prost(bool, optional, tag = "20")]
    allocate_load_balancer_node_ports: Option<bool>,
    #[prost(string, tag = "21")]
    load_balancer_class: String,
    #[prost(string, tag = "22")]
    internal_traffic_policy: String,
    #[prost(string, tag = "23")]
    traffic_distribution: String,
}

impl ToJson for ServiceSpec {
    fn to_json(&self) -> Value {
        Fields::default()
            .messages("ports", &self.ports)
            .text_map("selector", &self.selector)
            .text("clusterIP", &self.cluster_ip)
            .texts("clusterIPs", &self.cluster_ips)
            .text("type", &self.r#type)
            .texts("externalIPs", &self.external_ips)
            .text("sessionAffinity", &self.session_affinity)
            .text("loadBalancerIP", &self.load_balancer_ip)
            .texts(
                "loadBalancerSourceRanges",
                &self.load_balancer_source_ranges,
            )
            .text("externalName", &self.external_name)
            .text("externalTrafficPolicy", &self.external_traffic_policy)
            .nonzero("healthCheckNodePort", self.health_check_node_port)
            .flag("publishNotReadyAddresses", self.publish_not_ready_addresses)
            .texts("ipFamilies", &self.ip_families)
            .text("ipFamilyPolicy", &self.ip_family_policy)
            .set(
                "allocateLoadBalancerNodePorts",
                self.allocate_load_balancer_node_ports,
            )
            .text("loadBalancerClass", &self.load_balancer_class)
            .text("internalTrafficPolicy", &self.internal_traffic_policy)
            .text("trafficDistribution", &self.traffic_distribution)
            .build()
    }
}

/// `core/v1.ServicePort`.
#[derive(Clone, PartialEq, Message)]
struct ServicePort {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    protocol: String,
    #[prost(int32, optional, tag = "3")]
    port: Option<i32>,
    #[prost(message, optional, tag = "4")]
    target_port: Option<IntOrString>,
    #[prost(int32, optional, tag = "5")]
    node_port: Option<i32>,
    #[prost(string, tag = "6")]
    app_protocol: String,
}

impl ToJson for ServicePort {
    fn to_json(&self) -> Value {
        // An int-0 targetPort is gogo's zero value; leaving it out lets the server default it
        // to `port` as Kubernetes does.
        let target_port = self.target_port.as_ref().filter(|target| !target.is_zero());
        Fields::default()
            .text("name", &self.name)
            .text("protocol", &self.protocol)
            .text("appProtocol", &self.app_protocol)
            .set("port", self.port)
            .message("targetPort", target_port)
            .nonzero("nodePort", self.node_port)
            .build()
    }
}

/// `core/v1.ServiceStatus`, without conditions.
#[derive(Clone, PartialEq, Message)]
struct ServiceStatus {
    #[prost(message, optional, tag = "1")]
    load_balancer: Option<LoadBalancerStatus>,
}

impl ToJson for ServiceStatus {
    fn to_json(&self) -> Value {
        Fields::default()
            .message("loadBalancer", self.load_balancer.as_ref())
            .build()
    }
}

/// `core/v1.LoadBalancerStatus`.
#[derive(Clone, PartialEq, Message)]
struct LoadBalancerStatus {
    #[prost(message, repeated, tag = "1")]
    ingress: Vec<LoadBalancerIngress>,
}

impl ToJson for LoadBalancerStatus {
    fn to_json(&self) -> Value {
        Fields::default().messages("ingress", &self.ingress).build()
    }
}

/// `core/v1.LoadBalancerIngress`, without per-port status.
#[derive(Clone, PartialEq, Message)]
struct LoadBalancerIngress {
    #[prost(string, tag = "1")]
    ip: String,
    #[prost(string, tag = "2")]
    hostname: String,
    #[prost(string, tag = "3")]
    ip_mode: String,
}

impl ToJson for LoadBalancerIngress {
    fn to_json(&self) -> Value {
        Fields::default()
            .text("ip", &self.ip)
            .text("hostname", &self.hostname)
            .text("ipMode", &self.ip_mode)
            .build()
    }
}

/// `apps/v1.Deployment`; its status is server-owned.
#[derive(Clone, PartialEq, Message)]
struct Deployment {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<DeploymentSpec>,
    #[prost(message, optional, tag = "3")]
    status: Option<ServerOwnedStatus>,
}

impl ToJson for Deployment {
    fn to_json(&self) -> Value {
        Fields::default()
            .message("metadata", self.metadata.as_ref())
            .message("spec", self.spec.as_ref())
            .message("status", self.status.as_ref())
            .build()
    }
}

/// `apps/v1.DeploymentSpec`.
#[derive(Clone, PartialEq, Message)]
struct DeploymentSpec {
    #[prost(int32, optional, tag = "1")]
    replicas: Option<i32>,
    #[prost(message, optional, tag = "2")]
    selector: Option<LabelSelector>,
    #[prost(message, optional, tag = "3")]
    template: Option<PodTemplateSpec>,
    #[prost(message, optional, tag = "4")]
    strategy: Option<DeploymentStrategy>,
    #[prost(int32, optional, tag = "5")]
    min_ready_seconds: Option<i32>,
    #[prost(int32, optional, tag = "6")]
    revision_history_limit: Option<i32>,
    #[prost(bool, optional, tag = "7")]
    paused: Option<bool>,
    #[prost(int32, optional, tag = "9")]
    progress_deadline_seconds: Option<i32>,
}

impl ToJson for DeploymentSpec {
    fn to_json(&self) -> Value {
        Fields::default()
            .set("replicas", self.replicas)
            .message("selector", self.selector.as_ref())
            .message("template", self.template.as_ref())
            .message("strategy", self.strategy.as_ref())
            .nonzero("minReadySeconds", self.min_ready_seconds)
            .set("revisionHistoryLimit", self.revision_history_limit)
            .flag("paused", self.paused)
            .set("progressDeadlineSeconds", self.progress_deadline_seconds)
            .build()
    }
}

/// `apps/v1.DeploymentStrategy`.
#[derive(Clone, PartialEq, Message)]
struct DeploymentStrategy {
    #[prost(string, tag = "1")]
    r#type: String,
    #[prost(message, optional, tag = "2")]
    rolling_update: Option<RollingUpdateDeployment>,
}

impl ToJson for DeploymentStrategy {
    fn to_json(&self) -> Value {
        Fields::default()
            .text("type", &self.r#type)
            .message("rollingUpdate", self.rolling_update.as_ref())
            .build()
    }
}

/// `apps/v1.RollingUpdateDeployment`.
#[derive(Clone, PartialEq, Message)]
struct RollingUpdateDeployment {
    #[prost(message, optional, tag = "1")]
    max_unavailable: Option<IntOrString>,
    #[prost(message, optional, tag = "2")]
    max_surge: Option<IntOrString>,
}

impl ToJson for RollingUpdateDeployment {
    fn to_json(&self) -> Value {
        Fields::default()
            .message("maxUnavailable", self.max_unavailable.as_ref())
            .message("maxSurge", self.max_surge.as_ref())
            .build()
    }
}

/// `core/v1.PodTemplateSpec`.
#[derive(Clone, PartialEq, Message)]
struct PodTemplateSpec {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<PodSpec>,
}

impl ToJson for PodTemplateSpec {
    fn to_json(&self) -> Value {
        Fields::default()
            .message("metadata", self.metadata.as_ref())
            .message("spec", self.spec.as_ref())
            .build()
    }
}

/// `core/v1.PodSpec`: the scalar fields and containers; volumes, affinity, tolerations and
/// security contexts are not modelled (no kubectl create subcommand sets them).
#[derive(Clone, PartialEq, Message)]
struct PodSpec {
    #[prost(message, repeated, tag = "2")]
    containers: Vec<Container>,
    #[prost(string, tag = "3")]
    restart_policy: String,
    #[prost(int64, optional, tag = "4")]
    termination_grace_period_seconds: Option<i64>,
    #[prost(int64, optional, tag = "5")]
    active_deadline_seconds: Option<i64>,
    #[prost(string, tag = "6")]
    dns_policy: String,
    #[prost(btree_map = "string, string", tag = "7")]
    node_selector: BTreeMap<String, String>,
    #[prost(string, tag = "8")]
    service_account_name: String,
    #[prost(string, tag = "9")]
    service_account: String,
    #[prost(string, tag = "10")]
    node_name: String,
    #[prost(bool, optional, tag = "11")]
    host_network: Option<bool>,
    #[prost(bool, optional, tag = "12")]
    host_pid: Option<bool>,
    #[prost(bool, optional, tag = "13")]
    host_ipc: Option<bool>,
    #[prost(message, repeated, tag = "15")]
    image_pull_secrets: Vec<LocalObjectReference>,
    #[prost(string, tag = "16")]
    hostname: String,
    #[prost(string, tag = "17")]
    subdomain: String,
    #[prost(string, tag = "19")]
    scheduler_name: String,
    #[prost(message, repeated, tag = "20")]
    init_containers: Vec<Container>,
    #[prost(bool, optional, tag = "21")]
    automount_service_account_token: Option<bool>,
    #[prost(string, tag = "24")]
    priority_class_name: String,
    #[prost(int32, optional, tag = "25")]
    priority: Option<i32>,
    #[prost(bool, optional, tag = "27")]
    share_process_namespace: Option<bool>,
    #[prost(string, tag = "29")]
    runtime_class_name: String,
    #[prost(bool, optional, tag = "30")]
    enable_service_links: Option<bool>,
    #[prost(string, tag = "31")]
    preemption_policy: String,
    #[prost(bool, optional, tag = "35")]
    set_hostname_as_fqdn: Option<bool>,
    #[prost(bool, optional, tag = "37")]
    host_users: Option<bool>,
}

impl ToJson for PodSpec {
    fn to_json(&self) -> Value {
        Fields::default()
            .messages("initContainers", &self.init_containers)
            .messages("containers", &self.containers)
            .text("restartPolicy", &self.restart_policy)
            .set(
                "terminationGracePeriodSeconds",
                self.termination_grace_period_seconds,
            )
            .set("activeDeadlineSeconds", self.active_deadline_seconds)
            .text("dnsPolicy", &self.dns_policy)
            .text_map("nodeSelector", &self.node_selector)
            .text("serviceAccountName", &self.service_account_name)
            .text("serviceAccount", &self.service_account)
            .set(
                "automountServiceAccountToken",
                self.automount_service_account_token,
            )
            .text("nodeName", &self.node_name)
            .flag("hostNetwork", self.host_network)
            .flag("hostPID", self.host_pid)
            .flag("hostIPC", self.host_ipc)
            .set("shareProcessNamespace", self.share_process_namespace)
            .messages("imagePullSecrets", &self.image_pull_secrets)
            .text("hostname", &self.hostname)
            .text("subdomain", &self.subdomain)
            .text("schedulerName", &self.scheduler_name)
            .text("priorityClassName", &self.priority_class_name)
            .set("priority", self.priority)
            .text("runtimeClassName", &self.runtime_class_name)
            .set("enableServiceLinks", self.enable_service_links)
            .text("preemptionPolicy", &self.preemption_policy)
            .set("setHostnameAsFQDN", self.set_hostname_as_fqdn)
            .set("hostUsers", self.host_users)
            .build()
    }
}

/// `core/v1.Container`: what kubectl create and run set; probes, mounts and security contexts
/// are not modelled.
#[derive(Clone, PartialEq, Message)]
struct Container {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    image: String,
    #[prost(string, repeated, tag = "3")]
    command: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    args: Vec<String>,
    #[prost(string, tag = "5")]
    working_dir: String,
    #[prost(message, repeated, tag = "6")]
    ports: Vec<ContainerPort>,
    #[prost(message, repeated, tag = "7")]
    env: Vec<EnvVar>,
    #[prost(message, optional, tag = "8")]
    resources: Option<ResourceRequirements>,
    #[prost(string, tag = "13")]
    termination_message_path: String,
    #[prost(string, tag = "14")]
    image_pull_policy: String,
    #[prost(bool, optional, tag = "16")]
    stdin: Option<bool>,
    #[prost(bool, optional, tag = "17")]
    stdin_once: Option<bool>,
    #[prost(bool, optional, tag = "18")]
    tty: Option<bool>,
    #[prost(string, tag = "20")]
    termination_message_policy: String,
    #[prost(string, tag = "24")]
    restart_policy: String,
}

impl ToJson for Container {
    fn to_json(&self) -> Value {
        Fields::default()
            .text("name", &self.name)
            .text("image", &self.image)
            .texts("command", &self.command)
            .texts("args", &self.args)
            .text("workingDir", &self.working_dir)
            .messages("ports", &self.ports)
            .messages("env", &self.env)
            .message("resources", self.resources.as_ref())
            .text("restartPolicy", &self.restart_policy)
            .text("terminationMessagePath", &self.termination_message_path)
            .text("terminationMessagePolicy", &self.termination_message_policy)
            .text("imagePullPolicy", &self.image_pull_policy)
            .flag("stdin", self.stdin)
            .flag("stdinOnce", self.stdin_once)
            .flag("tty", self.tty)
            .build()
    }
}

/// `core/v1.ContainerPort`.
#[derive(Clone, PartialEq, Message)]
struct ContainerPort {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(int32, optional, tag = "2")]
    host_port: Option<i32>,
    #[prost(int32, optional, tag = "3")]
    container_port: Option<i32>,
    #[prost(string, tag = "4")]
    protocol: String,
    #[prost(string, tag = "5")]
    host_ip: String,
}

impl ToJson for ContainerPort {
    fn to_json(&self) -> Value {
        Fields::default()
            .text("name", &self.name)
            .nonzero("hostPort", self.host_port)
            // Not omitempty in Go: always printed.
            .set("containerPort", Some(self.container_port.unwrap_or(0)))
            .text("protocol", &self.protocol)
            .text("hostIP", &self.host_ip)
            .build()
    }
}

/// `core/v1.EnvVar`, without `valueFrom`.
#[derive(Clone, PartialEq, Message)]
struct EnvVar {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    value: String,
}

impl ToJson for EnvVar {
    fn to_json(&self) -> Value {
        Fields::default()
            .text("name", &self.name)
            .text("value", &self.value)
            .build()
    }
}

/// `core/v1.ResourceRequirements`, without claims.
#[derive(Clone, PartialEq, Message)]
struct ResourceRequirements {
    #[prost(btree_map = "string, message", tag = "1")]
    limits: BTreeMap<String, Quantity>,
    #[prost(btree_map = "string, message", tag = "2")]
    requests: BTreeMap<String, Quantity>,
}

impl ToJson for ResourceRequirements {
    fn to_json(&self) -> Value {
        Fields::default()
            .message_map("limits", &self.limits)
            .message_map("requests", &self.requests)
            .build()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Wraps a typed message the way client-go does: magic, then `runtime.Unknown`.
    fn envelope(api_version: &str, kind: &str, message: &impl Message) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
            }),
            raw: message.encode_to_vec(),
            content_encoding: String::new(),
            content_type: String::new(),
        };
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        body
    }

    fn from_hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: name.to_owned(),
            ..Default::default()
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// The exact body kubectl 1.32 sends for `kubectl create namespace x` decodes to the
    /// Namespace, with gogo's empty strings dropped and the present spec/status kept as `{}`.
    #[test]
    fn kubectl_create_namespace_body_decodes_to_namespace_json() {
        let body = from_hex(
            "6b387300 0a0f 0a02 7631 1209 4e616d657370616365 1219 0a11 0a01 78 1200 1a00 2200 \
             2a00 3200 3800 4200 1200 1a02 0a00 1a00 2200",
        );
        let object = decode(&body).unwrap();
        assert_eq!(
            object,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"},
                   "spec": {}, "status": {}})
        );
    }

    /// A ConfigMap's text data, binary data (as base64), labels and namespace survive the trip.
    #[test]
    fn configmap_round_trips_data_and_binary_data() {
        let config_map = ConfigMap {
            metadata: Some(ObjectMeta {
                namespace: "default".to_owned(),
                labels: labels(&[("app", "web")]),
                ..meta("settings")
            }),
            data: labels(&[("mode", "fast"), ("level", "3")]),
            binary_data: [("blob".to_owned(), vec![0u8, 159, 146, 150])]
                .into_iter()
                .collect(),
            immutable: None,
        };
        let object = decode(&envelope("v1", "ConfigMap", &config_map)).unwrap();
        assert_eq!(
            object,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "settings", "namespace": "default",
                                "labels": {"app": "web"}},
                   "data": {"mode": "fast", "level": "3"},
                   "binaryData": {"blob": "AJ+Slg=="}})
        );
    }

    /// Secret data is bytes on the wire and base64 in JSON; type and an explicit
    /// `immutable: false` (a pointer field) are kept.
    #[test]
    fn secret_binary_data_becomes_base64() {
        let secret = Secret {
            metadata: Some(meta("creds")),
            data: [
                ("password".to_owned(), b"s3cr3t".to_vec()),
                ("key".to_owned(), vec![0xff, 0x00, 0x10]),
            ]
            .into_iter()
            .collect(),
            r#type: "Opaque".to_owned(),
            string_data: BTreeMap::new(),
            immutable: Some(false),
        };
        let object = decode(&envelope("v1", "Secret", &secret)).unwrap();
        assert_eq!(
            object,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
                   "data": {"password": "czNjcjN0", "key": "/wAQ"},
                   "type": "Opaque", "immutable": false})
        );
    }

    /// A ServiceAccount keeps its secret references and the automount pointer field.
    #[test]
    fn service_account_keeps_references_and_automount() {
        let account = ServiceAccount {
            metadata: Some(meta("builder")),
            secrets: vec![ObjectReference {
                name: "builder-token".to_owned(),
                ..Default::default()
            }],
            image_pull_secrets: vec![LocalObjectReference {
                name: "registry".to_owned(),
            }],
            automount_service_account_token: Some(false),
        };
        let object = decode(&envelope("v1", "ServiceAccount", &account)).unwrap();
        assert_eq!(
            object,
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder"},
                   "secrets": [{"name": "builder-token"}],
                   "imagePullSecrets": [{"name": "registry"}],
                   "automountServiceAccountToken": false})
        );
    }

    /// `kubectl create deployment web --image=nginx --replicas=2 --port=80`, with the zero
    /// fields gogo writes (minReadySeconds 0, paused false, empty strategy and resources),
    /// becomes the JSON kubectl itself would print.
    #[test]
    fn kubectl_create_deployment_decodes_like_its_json() {
        let app = labels(&[("app", "web")]);
        let deployment = Deployment {
            metadata: Some(ObjectMeta {
                labels: app.clone(),
                ..meta("web")
            }),
            spec: Some(DeploymentSpec {
                replicas: Some(2),
                selector: Some(LabelSelector {
                    match_labels: app.clone(),
                    match_expressions: vec![],
                }),
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: app.clone(),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "nginx".to_owned(),
                            image: "nginx".to_owned(),
                            ports: vec![ContainerPort {
                                container_port: Some(80),
                                host_port: Some(0),
                                ..Default::default()
                            }],
                            resources: Some(ResourceRequirements::default()),
                            stdin: Some(false),
                            ..Default::default()
                        }],
                        host_network: Some(false),
                        ..Default::default()
                    }),
                }),
                strategy: Some(DeploymentStrategy::default()),
                min_ready_seconds: Some(0),
                revision_history_limit: None,
                paused: Some(false),
                progress_deadline_seconds: None,
            }),
            status: Some(ServerOwnedStatus {}),
        };
        let object = decode(&envelope("apps/v1", "Deployment", &deployment)).unwrap();
        assert_eq!(
            object,
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "web", "labels": {"app": "web"}},
                   "spec": {"replicas": 2,
                            "selector": {"matchLabels": {"app": "web"}},
                            "template": {"metadata": {"labels": {"app": "web"}},
                                         "spec": {"containers": [{"name": "nginx", "image": "nginx",
                                                                  "ports": [{"containerPort": 80}],
                                                                  "resources": {}}]}},
                            "strategy": {}},
                   "status": {}})
        );
    }

    /// Pointer fields set to zero (`replicas: 0`) are kept; a rolling update's IntOrString
    /// values become a bare number and a bare string; resource quantities become strings.
    #[test]
    fn deployment_keeps_explicit_zero_and_int_or_string_forms() {
        let deployment = Deployment {
            metadata: Some(meta("idle")),
            spec: Some(DeploymentSpec {
                replicas: Some(0),
                strategy: Some(DeploymentStrategy {
                    r#type: "RollingUpdate".to_owned(),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_unavailable: Some(IntOrString {
                            kind: Some(0),
                            int_val: Some(1),
                            str_val: String::new(),
                        }),
                        max_surge: Some(IntOrString {
                            kind: Some(1),
                            int_val: Some(0),
                            str_val: "25%".to_owned(),
                        }),
                    }),
                }),
                template: Some(PodTemplateSpec {
                    metadata: None,
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "app".to_owned(),
                            image: "busybox".to_owned(),
                            command: vec!["sleep".to_owned(), "3600".to_owned()],
                            env: vec![EnvVar {
                                name: "MODE".to_owned(),
                                value: "x".to_owned(),
                            }],
                            resources: Some(ResourceRequirements {
                                limits: [(
                                    "cpu".to_owned(),
                                    Quantity {
                                        string: "500m".to_owned(),
                                    },
                                )]
                                .into_iter()
                                .collect(),
                                requests: BTreeMap::new(),
                            }),
                            ..Default::default()
                        }],
                        restart_policy: "Always".to_owned(),
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
            status: None,
        };
        let object = decode(&envelope("apps/v1", "Deployment", &deployment)).unwrap();
        assert_eq!(object["spec"]["replicas"], json!(0));
        assert_eq!(
            object["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}})
        );
        assert_eq!(
            object["spec"]["template"]["spec"],
            json!({"containers": [{"name": "app", "image": "busybox", "command": ["sleep", "3600"],
                                   "env": [{"name": "MODE", "value": "x"}],
                                   "resources": {"limits": {"cpu": "500m"}}}],
                   "restartPolicy": "Always"})
        );
        assert!(object.get("status").is_none());
    }

    /// `kubectl create service clusterip db --tcp=5432:5432` decodes, with the selector, the
    /// port and its int target port.
    #[test]
    fn cluster_ip_service_decodes() {
        let service = Service {
            metadata: Some(ObjectMeta {
                labels: labels(&[("app", "db")]),
                ..meta("db")
            }),
            spec: Some(ServiceSpec {
                ports: vec![ServicePort {
                    name: "5432-5432".to_owned(),
                    protocol: "TCP".to_owned(),
                    port: Some(5432),
                    target_port: Some(IntOrString {
                        kind: Some(0),
                        int_val: Some(5432),
                        str_val: String::new(),
                    }),
                    node_port: Some(0),
                    app_protocol: String::new(),
                }],
                selector: labels(&[("app", "db")]),
                r#type: "ClusterIP".to_owned(),
                ..Default::default()
            }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus::default()),
            }),
        };
        let object = decode(&envelope("v1", "Service", &service)).unwrap();
        assert_eq!(
            object,
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "db", "labels": {"app": "db"}},
                   "spec": {"ports": [{"name": "5432-5432", "protocol": "TCP", "port": 5432,
                                       "targetPort": 5432}],
                            "selector": {"app": "db"}, "type": "ClusterIP"},
                   "status": {"loadBalancer": {}}})
        );
    }

    /// JSON, empty bodies and bytes after the magic that name no kind are not Kubernetes
    /// protobuf.
    #[test]
    fn bodies_without_magic_or_envelope_are_not_kubernetes() {
        for body in [
            &b"{\"kind\":\"Namespace\"}"[..],
            b"",
            b"k8s",
            b"k8s\0\xff\xff\xff",
            b"k8s\0",
        ] {
            let error = decode(body).unwrap_err();
            assert!(
                matches!(error, ProtobufError::NotKubernetes(_)),
                "{body:?}: {error}"
            );
        }
    }

    /// A kind without a decoder is refused with its name, the supported kinds and a hint to
    /// send JSON, rather than half-decoded.
    #[test]
    fn unknown_kind_is_unsupported_and_says_to_send_json() {
        let body = envelope("v1", "Pod", &meta("p"));
        let error = decode(&body).unwrap_err();
        assert_eq!(
            error,
            ProtobufError::UnsupportedKind {
                api_version: "v1".to_owned(),
                kind: "Pod".to_owned()
            }
        );
        let message = error.to_string();
        assert!(message.contains("Pod (v1)"), "{message}");
        assert!(message.contains("Deployment (apps/v1)"), "{message}");
        assert!(message.contains("application/json"), "{message}");

        // The group matters: a Deployment in another group version is not ours to decode.
        let body = envelope("extensions/v1beta1", "Deployment", &meta("d"));
        assert!(matches!(
            decode(&body),
            Err(ProtobufError::UnsupportedKind { .. })
        ));
    }

    /// A supported kind whose raw bytes are not a valid message, or a compressed payload, is
    /// malformed rather than silently empty.
    #[test]
    fn invalid_payload_of_supported_kind_is_malformed() {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: "v1".to_owned(),
                kind: "Namespace".to_owned(),
            }),
            raw: vec![0x0a, 0x05, 0x0a],
            content_encoding: String::new(),
            content_type: String::new(),
        };
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        assert!(matches!(decode(&body), Err(ProtobufError::Malformed(_))));

        let gzip = Unknown {
            content_encoding: "gzip".to_owned(),
            raw: vec![],
            ..unknown
        };
        let mut body = MAGIC.to_vec();
        body.extend(gzip.encode_to_vec());
        assert!(matches!(decode(&body), Err(ProtobufError::Malformed(_))));
    }

    /// The protobuf media type is recognised with or without parameters and in any case;
    /// JSON and an empty header are not protobuf.
    #[test]
    fn is_protobuf_ignores_parameters() {
        assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
        assert!(is_protobuf(
            "application/vnd.kubernetes.protobuf; charset=utf-8"
        ));
        assert!(is_protobuf(" Application/VND.Kubernetes.Protobuf;as=Table"));
        assert!(!is_protobuf("application/json"));
        assert!(!is_protobuf(""));
    }
}
