//! A `--role control-plane` server: the Kubernetes API over remote storage endpoints (hanode
//! storage servers or an etcd cluster), with no store member of its own.
//!
//! Its cluster is the set of control-plane servers: `--init` creates a CA and token and keeps the
//! CA, sealed with the token secret, on the storage endpoints; others `--join` any of them and
//! receive certificates, exactly as store members do, but nothing joins a Raft group.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use hanode_kv::{
    Compare, CompareResult, CompareTarget, KvBackend, PutRequest, RangeRequest, RequestOp,
    TxnRequest,
};
use hanode_pki::tls::{ALPN_HTTP, ClientAuth, server_config};
use hanode_pki::{ClusterCa, JoinToken};
use hanode_remote::{RemoteBackend, RemoteConfig, RemoteTls};

use crate::api::{control_plane_router, join_router};
use crate::certs::{CONTROL_PLANE_CA_KEY, new_cluster, seal_ca};
use crate::config::{Bootstrap, Config, Role, StorageEndpoints, default_node_name};
use crate::join::{JoinHandler, JoinRequest, request_join};
use crate::server::{
    Listeners, Server, ServerError, Urls, port, serve_https, start_kubernetes_api, url,
};
use crate::state::{DataDir, MemberCerts, NodeState};
use crate::tls;

/// How long connecting to the storage endpoints may take at start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Bootstraps (init, join or restart) a control-plane server and starts its API.
pub(crate) async fn build(config: Config, listeners: Listeners) -> Result<Server, ServerError> {
    let api_listener = listeners.api;
    let urls = Urls {
        api: url(config.advertise_address, port(&api_listener)?),
        etcd: String::new(),
        peer: String::new(),
    };
    let data_dir = DataDir::new(&config.data_dir);
    std::fs::create_dir_all(data_dir.root()).map_err(|e| {
        ServerError::Io(format!("cannot create {}: {e}", data_dir.root().display()))
    })?;
    let existing = data_dir.load_node()?;
    let storage = config
        .storage
        .clone()
        .or_else(|| existing.as_ref().and_then(|s| s.storage.clone()))
        .ok_or_else(|| {
            ServerError::Bootstrap(
                "a control-plane server needs --storage-endpoints https://HOST:2379,... (hanode storage servers or etcd)".into(),
            )
        })?;
    let store: Arc<dyn KvBackend> = Arc::new(connect(&storage).await?);

    let (state, certs, token, fresh) = match (existing, &config.bootstrap) {
        (Some(mut state), bootstrap) => {
            if *bootstrap != Bootstrap::Restart {
                tracing::info!(data_dir = %data_dir.root().display(), node = %state.node_name,
                    "ignoring --init/--join: the data dir already holds this server");
            }
            let fresh = state.storage.as_ref() != Some(&storage);
            state.storage = Some(storage.clone());
            (
                state,
                MemberCerts::load(&data_dir.pki())?,
                data_dir.load_token()?,
                fresh,
            )
        }
        (None, Bootstrap::Restart) => {
            return Err(ServerError::Bootstrap(format!(
                "{} holds no server: start with --init to create a control plane, or with \
                 --join https://HOST:6443 --token TOKEN to join one",
                data_dir.root().display()
            )));
        }
        (None, Bootstrap::Init) => {
            let (ca, token, certs) = new_cluster(&config)?;
            store_new_ca(&store, &ca, &token, &storage).await?;
            let state = NodeState {
                node_id: (rand::random::<u64>() >> 1).max(1),
                cluster_id: rand::random::<u64>().max(1),
                node_name: config.node_name.clone(),
                api_url: urls.api.clone(),
                role: Role::ControlPlane,
                storage: Some(storage.clone()),
            };
            (state, certs, token, true)
        }
        (None, Bootstrap::Join { url, token }) => {
            let token: JoinToken = token.parse()?;
            let request = JoinRequest {
                node_name: config.node_name.clone(),
                hostname: default_node_name(),
                advertise_address: config.advertise_address,
                api_url: urls.api.clone(),
                client_url: String::new(),
                peer_url: String::new(),
                tls_sans: config.tls_sans.clone(),
                role: Role::ControlPlane,
            };
            let response = request_join(url, &token, &request).await?;
            let state = NodeState {
                node_id: response.node_id,
                cluster_id: response.cluster_id,
                node_name: config.node_name.clone(),
                api_url: urls.api.clone(),
                role: Role::ControlPlane,
                storage: Some(storage.clone()),
            };
            (state, response.certs, token, true)
        }
    };
    if fresh {
        certs.save(&data_dir.pki())?;
        data_dir.save_token(&token)?;
        data_dir.save_node(&state)?;
    }

    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    let joins = Arc::new(JoinHandler::for_control_plane(
        store.clone(),
        token.secret.clone(),
        state.cluster_id,
    ));
    let (kube, kube_tasks) = start_kubernetes_api(
        store.clone(),
        &config,
        &data_dir,
        &certs,
        &urls,
        &state.node_name,
        None,
        &stop,
    )?;
    tasks.extend(kube_tasks);
    let app = control_plane_router(store)
        .merge(join_router(joins, certs.ca_pem.clone()))
        .merge(kube);
    let api_tls = server_config(
        &certs.server,
        ClientAuth::Optional(&certs.ca_pem),
        ALPN_HTTP,
    )?;
    let api_conns = tls::accept(api_listener, api_tls, None, stop.clone());
    tasks.push(tokio::spawn(serve_https(api_conns, app, stop.clone())));
    tracing::info!(node = %state.node_name, api = %urls.api, storage = %storage.endpoints.join(","),
        data_dir = %data_dir.root().display(), "hanode control-plane server started");
    Ok(Server::from_parts(state, urls, data_dir, stop, tasks))
}

/// Connects to the storage endpoints, reading the TLS files.
async fn connect(storage: &StorageEndpoints) -> Result<RemoteBackend, ServerError> {
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read_to_string(path)
            .map_err(|e| ServerError::Io(format!("cannot read the {what} {}: {e}", path.display())))
    };
    let tls = match &storage.ca_file {
        Some(ca) => Some(RemoteTls {
            ca_pem: read(ca, "storage CA (--storage-cafile)")?,
            cert_pem: storage
                .cert_file
                .as_deref()
                .map(|p| read(p, "storage client certificate (--storage-certfile)"))
                .transpose()?,
            key_pem: storage
                .key_file
                .as_deref()
                .map(|p| read(p, "storage client key (--storage-keyfile)"))
                .transpose()?,
        }),
        None if storage.endpoints.iter().any(|e| e.starts_with("https://")) => {
            return Err(ServerError::Bootstrap(
                "https storage endpoints need --storage-cafile (the CA of their serving certificates), and usually \
                 --storage-certfile/--storage-keyfile (for hanode storage servers: their pki/ca.crt, admin.crt, admin.key)"
                    .into(),
            ));
        }
        None => None,
    };
    RemoteBackend::connect(RemoteConfig {
        endpoints: storage.endpoints.clone(),
        tls,
        connect_timeout: CONNECT_TIMEOUT,
        request_timeout: hanode_remote::DEFAULT_REQUEST_TIMEOUT,
    })
    .await
    .map_err(|e| ServerError::Bootstrap(e.to_string()))
}

/// Keeps the new control plane's CA, sealed, on the storage endpoints, unless another control
/// plane already lives there.
async fn store_new_ca(
    store: &Arc<dyn KvBackend>,
    ca: &ClusterCa,
    token: &JoinToken,
    storage: &StorageEndpoints,
) -> Result<(), ServerError> {
    let taken = || {
        ServerError::Bootstrap(format!(
            "the storage endpoints {} already hold a hanode control plane: join it with \
             --join https://ONE_OF_ITS_SERVERS:6443 --token TOKEN (its <data-dir>/token) instead of --init",
            storage.endpoints.join(",")
        ))
    };
    let existing = store
        .range(RangeRequest {
            key: CONTROL_PLANE_CA_KEY.to_vec(),
            count_only: true,
            ..Default::default()
        })
        .await
        .map_err(|e| ServerError::Bootstrap(format!("cannot read the storage endpoints: {e}")))?;
    if existing.count > 0 {
        return Err(taken());
    }
    let txn = TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal,
            target: CompareTarget::Create(0),
            key: CONTROL_PLANE_CA_KEY.to_vec(),
            range_end: Vec::new(),
        }],
        success: vec![RequestOp::Put(PutRequest {
            key: CONTROL_PLANE_CA_KEY.to_vec(),
            value: seal_ca(ca, &token.secret),
            ..Default::default()
        })],
        failure: Vec::new(),
    };
    let response = store.txn(txn).await.map_err(|e| {
        ServerError::Bootstrap(format!(
            "cannot store the cluster CA on the storage endpoints: {e}"
        ))
    })?;
    if !response.succeeded {
        return Err(taken());
    }
    Ok(())
}
