//! What the API server keeps in the store on its own: the default namespaces, Service cluster
//! IPs, and the `default/kubernetes` Service and Endpoints listing every live API server (from
//! per-server heartbeats), which clients use to learn the server list.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use hanode_kv::{
    Compare, CompareResult, CompareTarget, KvBackend, PutRequest, RangeRequest, RequestOp,
    TxnRequest, prefix_end,
};

use crate::resources;
use crate::status::{ApiError, ApiResult};
use crate::store::ObjectStore;

/// Namespaces every cluster has.
pub const DEFAULT_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// The Service range (k3s's default): 10.43.0.0/16.
const SERVICE_NETWORK: Ipv4Addr = Ipv4Addr::new(10, 43, 0, 0);
const SERVICE_NETWORK_SIZE: u32 = 1 << 16;

/// The `kubernetes` Service's cluster IP (first of the range).
pub const KUBERNETES_SERVICE_IP: &str = "10.43.0.1";

const NEXT_IP_KEY: &[u8] = b"/hanode/services/next-ip";
const HEARTBEAT_PREFIX: &str = "/hanode/apiservers/";

/// How long a server counts as live after its last heartbeat.
const HEARTBEAT_TTL_SECS: i64 = 15;
/// How often heartbeats are renewed and the endpoints reconciled.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);

/// Hands out the next free cluster IP (a compare-and-swap counter in the store).
pub async fn allocate_cluster_ip(kv: &Arc<dyn KvBackend>) -> ApiResult<String> {
    for _ in 0..16 {
        let current = kv
            .range(RangeRequest {
                key: NEXT_IP_KEY.to_vec(),
                ..Default::default()
            })
            .await?;
        let (offset, revision) = match current.kvs.first() {
            Some(kv) => (
                String::from_utf8_lossy(&kv.value)
                    .parse::<u32>()
                    .unwrap_or(10),
                kv.mod_revision,
            ),
            None => (10, 0),
        };
        if offset >= SERVICE_NETWORK_SIZE - 1 {
            return Err(ApiError::internal(
                "the service IP range 10.43.0.0/16 is exhausted",
            ));
        }
        let txn = TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Equal,
                target: CompareTarget::Mod(revision),
                key: NEXT_IP_KEY.to_vec(),
                range_end: Vec::new(),
            }],
            success: vec![RequestOp::Put(PutRequest {
                key: NEXT_IP_KEY.to_vec(),
                value: (offset + 1).to_string().into_bytes(),
                ..Default::default()
            })],
            failure: Vec::new(),
        };
        if kv.txn(txn).await?.succeeded {
            return Ok(Ipv4Addr::from(u32::from(SERVICE_NETWORK) + offset).to_string());
        }
    }
    Err(ApiError::unavailable(
        "could not allocate a service IP: too many concurrent allocations, retry",
    ))
}

/// Creates the default namespaces if missing.
pub async fn ensure_default_namespaces(store: &ObjectStore) -> ApiResult<()> {
    let rt = resources::find("", "v1", "namespaces")
        .ok_or_else(|| ApiError::internal("namespaces are not served"))?;
    for name in DEFAULT_NAMESPACES {
        let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        crate::admission::default("Namespace", &mut ns);
        match store.create(rt, None, ns, false).await {
            Ok(_) => tracing::info!(namespace = name, "created default namespace"),
            Err(e) if e.reason == "AlreadyExists" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Where this API server listens.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Server name.
    pub name: String,
    /// Advertised IPv4 address.
    pub ip: String,
    /// API port.
    pub port: u16,
}

/// Keeps this server's heartbeat alive and the `kubernetes` Service and Endpoints current,
/// until `stop`.
pub async fn run(store: ObjectStore, me: Endpoint, stop: CancellationToken) {
    let mut lease = 0;
    loop {
        if let Err(e) = heartbeat(&store, &me, &mut lease).await {
            tracing::debug!(error = %e.message, "API server heartbeat");
        }
        if let Err(e) = reconcile(&store).await {
            tracing::debug!(error = %e.message, "reconciling the kubernetes endpoints");
        }
        tokio::select! {
            _ = stop.cancelled() => {
                if lease != 0 {
                    let _ = store.kv().lease_revoke(lease).await;
                }
                return;
            }
            _ = tokio::time::sleep(HEARTBEAT_INTERVAL) => {}
        }
    }
}

async fn heartbeat(store: &ObjectStore, me: &Endpoint, lease: &mut i64) -> ApiResult<()> {
    renew_identity_lease(store, me).await?;
    let kv = store.kv();
    if *lease != 0 && kv.lease_keep_alive(*lease).await?.ttl > 0 {
        return Ok(());
    }
    *lease = kv.lease_grant(0, HEARTBEAT_TTL_SECS).await?.id;
    let record = json!({"name": me.name, "ip": me.ip, "port": me.port});
    kv.put(PutRequest {
        key: format!("{HEARTBEAT_PREFIX}{}", me.name).into_bytes(),
        value: record.to_string().into_bytes(),
        lease: *lease,
        ..Default::default()
    })
    .await?;
    Ok(())
}

/// Keeps `kube-system/apiserver-<name>` (coordination.k8s.io Lease) renewed, as kube-apiserver
/// does for its identity, so `kubectl get leases -A` shows which servers are alive.
async fn renew_identity_lease(store: &ObjectStore, me: &Endpoint) -> ApiResult<()> {
    let leases = resources::find("coordination.k8s.io", "v1", "leases")
        .ok_or_else(|| ApiError::internal("leases are not served"))?;
    let name = format!("apiserver-{}", me.name);
    let now = micro_time(store.clock().now());
    let spec = json!({"holderIdentity": me.name, "leaseDurationSeconds": HEARTBEAT_TTL_SECS, "renewTime": now});
    if store
        .get_opt(leases, Some("kube-system"), &name)
        .await?
        .is_none()
    {
        let mut spec = spec.clone();
        spec["acquireTime"] = json!(now);
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "labels": {"apiserver.kubernetes.io/identity": "kube-apiserver",
                                                  "kubernetes.io/hostname": me.name}},
            "spec": spec});
        match store
            .create(leases, Some("kube-system"), lease, false)
            .await
        {
            Ok(_)
            | Err(ApiError {
                reason: "AlreadyExists",
                ..
            }) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    store
        .update_with(leases, Some("kube-system"), &name, false, |mut lease| {
            lease["spec"]["holderIdentity"] = spec["holderIdentity"].clone();
            lease["spec"]["leaseDurationSeconds"] = spec["leaseDurationSeconds"].clone();
            lease["spec"]["renewTime"] = spec["renewTime"].clone();
            Ok(lease)
        })
        .await
        .map(|_| ())
}

/// RFC 3339 with microseconds (`MicroTime`).
fn micro_time(time: std::time::SystemTime) -> String {
    let micros = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    jiff::Timestamp::from_microsecond(micros).map_or_else(
        |_| "1970-01-01T00:00:00.000000Z".into(),
        |t| t.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string(),
    )
}

/// Makes `default/kubernetes` list exactly the servers with a live heartbeat.
pub async fn reconcile(store: &ObjectStore) -> ApiResult<()> {
    let live = store
        .kv()
        .range(RangeRequest {
            key: HEARTBEAT_PREFIX.as_bytes().to_vec(),
            range_end: prefix_end(HEARTBEAT_PREFIX.as_bytes()),
            ..Default::default()
        })
        .await?;
    let mut by_port: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for kv in &live.kvs {
        let Ok(record) = serde_json::from_slice::<Value>(&kv.value) else {
            continue;
        };
        let (Some(ip), Some(port)) = (record["ip"].as_str(), record["port"].as_u64()) else {
            continue;
        };
        by_port.entry(port as u16).or_default().push(ip.to_string());
    }
    if by_port.is_empty() {
        return Ok(());
    }
    let first_port = *by_port.keys().next().unwrap_or(&6443);
    let services = resources::find("", "v1", "services")
        .ok_or_else(|| ApiError::internal("services are not served"))?;
    if store
        .get_opt(services, Some("default"), "kubernetes")
        .await?
        .is_none()
    {
        let service = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": KUBERNETES_SERVICE_IP, "clusterIPs": [KUBERNETES_SERVICE_IP],
                     "sessionAffinity": "None",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": first_port}]}});
        match store
            .create(services, Some("default"), service, false)
            .await
        {
            Ok(_)
            | Err(ApiError {
                reason: "AlreadyExists",
                ..
            }) => {}
            Err(e) => return Err(e),
        }
    }
    let subsets: Vec<Value> = by_port
        .iter()
        .map(|(port, ips)| {
            let mut ips = ips.clone();
            ips.sort();
            ips.dedup();
            json!({"addresses": ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>(),
                   "ports": [{"name": "https", "port": port, "protocol": "TCP"}]})
        })
        .collect();
    let endpoints = resources::find("", "v1", "endpoints")
        .ok_or_else(|| ApiError::internal("endpoints are not served"))?;
    match store
        .get_opt(endpoints, Some("default"), "kubernetes")
        .await?
    {
        None => {
            let object = json!({"apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                "subsets": subsets});
            match store
                .create(endpoints, Some("default"), object, false)
                .await
            {
                Ok(_)
                | Err(ApiError {
                    reason: "AlreadyExists",
                    ..
                }) => Ok(()),
                Err(e) => Err(e),
            }
        }
        Some(current) if current.get("subsets") != Some(&json!(subsets)) => store
            .update_with(
                endpoints,
                Some("default"),
                "kubernetes",
                false,
                |mut object| {
                    object["subsets"] = json!(subsets);
                    Ok(object)
                },
            )
            .await
            .map(|_| ()),
        Some(_) => Ok(()),
    }
}
