//! The composition root: bootstrap (init, join or restart), the store, and the three TLS
//! listeners (API, etcd, peer).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use hanode_apiserver::metrics::{StoreSnapshot, StoreStats};
use hanode_apiserver::{ApiConfig, ApiServer};
use hanode_kv::{KvBackend, PutRequest};
use hanode_pki::tls::{ALPN_H2, ALPN_HTTP, ClientAuth, server_config};
use hanode_pki::{ClusterCa, JoinToken};
use hanode_store::{LINK_ALPN, PeerTls, StoreConfig, StoreNode};
use hanode_types::Member;

use crate::api::{ApiState, join_router, router};
use crate::certs::{CA_KEY, CLUSTER_KEY, PEER_ORG, new_cluster, seal_ca};
use crate::config::{Bootstrap, Config, Role, default_node_name};
use crate::join::{JoinHandler, JoinRequest, request_join};
use crate::state::{DataDir, MemberCerts, NodeState};
use crate::tls;
use hanode_apiserver::ClientCertificate;

/// How long open requests may run after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Failures to start a server, each saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Joining failed.
    #[error(transparent)]
    Join(#[from] crate::join::JoinError),
    /// Certificates or files could not be read or written.
    #[error(transparent)]
    Pki(#[from] hanode_pki::PkiError),
    /// The store failed to start.
    #[error(transparent)]
    Store(#[from] hanode_store::StoreError),
    /// A listener or file operation failed.
    #[error("{0}")]
    Io(String),
    /// Bootstrap could not complete.
    #[error("{0}")]
    Bootstrap(String),
}

/// The bound listeners, handed in so tests can bind port 0. A control-plane server has no
/// store, so no etcd or peer listener.
pub struct Listeners {
    /// HTTPS API.
    pub api: TcpListener,
    /// etcd v3 gRPC (store roles).
    pub etcd: Option<TcpListener>,
    /// Raft peers (store roles).
    pub peer: Option<TcpListener>,
}

impl Listeners {
    /// Binds the configured address and the ports the server's role needs.
    pub async fn bind(config: &Config) -> Result<Listeners, ServerError> {
        let bind = |port: u16, what: &'static str| {
            let addr = SocketAddr::new(config.bind_address, port);
            async move {
                TcpListener::bind(addr).await.map_err(|e| {
                    ServerError::Io(format!(
                        "cannot listen on {addr} for the {what}: {e} (is another server using it?)"
                    ))
                })
            }
        };
        let role = resolve_role(config)?;
        Ok(Listeners {
            api: bind(config.api_port, "API port").await?,
            etcd: match role.has_store() {
                true => Some(bind(config.etcd_port, "etcd port").await?),
                false => None,
            },
            peer: match role.has_store() {
                true => Some(bind(config.peer_port, "peer port").await?),
                false => None,
            },
        })
    }
}

/// The role a server runs: the data dir's for an existing member (a different `--role` is an
/// error), else `--role`, else `all`.
pub fn resolve_role(config: &Config) -> Result<Role, ServerError> {
    let existing = DataDir::new(&config.data_dir).load_node()?;
    match (existing, config.role) {
        (Some(state), Some(role)) if state.role != role => Err(ServerError::Bootstrap(format!(
            "{} holds a --role {} server, not --role {role}: start it with --role {} (or use another --data-dir)",
            config.data_dir.display(),
            state.role,
            state.role
        ))),
        (Some(state), _) => Ok(state.role),
        (None, role) => Ok(role.unwrap_or_default()),
    }
}

/// Where a running server can be reached.
#[derive(Clone, Debug)]
pub struct Urls {
    /// `https://ADDR:API_PORT`.
    pub api: String,
    /// `https://ADDR:ETCD_PORT`.
    pub etcd: String,
    /// `https://ADDR:PEER_PORT`.
    pub peer: String,
}

pub(crate) fn url(address: IpAddr, port: u16) -> String {
    match address {
        IpAddr::V4(v4) => format!("https://{v4}:{port}"),
        IpAddr::V6(v6) => format!("https://[{v6}]:{port}"),
    }
}

/// A running server.
pub struct Server {
    node: Option<StoreNode>,
    state: NodeState,
    urls: Urls,
    data_dir: DataDir,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// Bootstraps (init, join or restart) and starts serving on `listeners`.
    pub async fn build(config: Config, listeners: Listeners) -> Result<Server, ServerError> {
        config.validate()?;
        let role = resolve_role(&config)?;
        if role == Role::ControlPlane {
            return crate::control_plane::build(config, listeners).await;
        }
        let Listeners {
            api: api_listener,
            etcd: Some(etcd_listener),
            peer: Some(peer_listener),
        } = listeners
        else {
            return Err(ServerError::Bootstrap(format!(
                "a --role {role} server needs etcd and peer listeners"
            )));
        };
        let urls = Urls {
            api: url(config.advertise_address, port(&api_listener)?),
            etcd: url(config.advertise_address, port(&etcd_listener)?),
            peer: url(config.advertise_address, port(&peer_listener)?),
        };
        let data_dir = DataDir::new(&config.data_dir);
        std::fs::create_dir_all(data_dir.root()).map_err(|e| {
            ServerError::Io(format!("cannot create {}: {e}", data_dir.root().display()))
        })?;
        let me = Member {
            name: config.node_name.clone(),
            peer_url: urls.peer.clone(),
            client_urls: vec![urls.etcd.clone()],
            api_url: urls.api.clone(),
            stay_learner: false,
        };
        let stop = CancellationToken::new();

        let existing = data_dir.load_node()?;
        let (state, certs, token, fresh) = match (existing, &config.bootstrap) {
            (Some(state), bootstrap) => {
                if *bootstrap != Bootstrap::Restart {
                    tracing::info!(
                        data_dir = %data_dir.root().display(),
                        node = %state.node_name,
                        "ignoring --init/--join: the data dir already holds this member"
                    );
                }
                let certs = MemberCerts::load(&data_dir.pki())?;
                let token = data_dir.load_token()?;
                (state, certs, token, Fresh::No)
            }
            (None, Bootstrap::Restart) => {
                return Err(ServerError::Bootstrap(format!(
                    "{} holds no member: start with --init to create a cluster, or with \
                     --join https://HOST:6443 --token TOKEN to join one",
                    data_dir.root().display()
                )));
            }
            (None, Bootstrap::Init) => {
                clear_incomplete(&data_dir)?;
                let (ca, token, certs) = new_cluster(&config)?;
                let state = NodeState {
                    node_id: (rand::random::<u64>() >> 1).max(1),
                    cluster_id: rand::random::<u64>().max(1),
                    node_name: config.node_name.clone(),
                    api_url: urls.api.clone(),
                    role,
                    storage: None,
                };
                (state, certs, token, Fresh::Init(Box::new(ca)))
            }
            (None, Bootstrap::Join { url, token }) => {
                clear_incomplete(&data_dir)?;
                let token: JoinToken = token.parse()?;
                let request = JoinRequest {
                    node_name: config.node_name.clone(),
                    hostname: default_node_name(),
                    advertise_address: config.advertise_address,
                    api_url: urls.api.clone(),
                    client_url: urls.etcd.clone(),
                    peer_url: urls.peer.clone(),
                    tls_sans: config.tls_sans.clone(),
                    role,
                };
                let response = request_join(url, &token, &request).await?;
                let state = NodeState {
                    node_id: response.node_id,
                    cluster_id: response.cluster_id,
                    node_name: config.node_name.clone(),
                    api_url: urls.api.clone(),
                    role,
                    storage: None,
                };
                (state, response.certs, token, Fresh::Join)
            }
        };

        let store_config = store_config(&config, &state);
        let peer_tls = PeerTls {
            ca_pem: certs.ca_pem.clone(),
            identity: certs.peer.clone(),
        };
        let node = StoreNode::open(store_config, Some(&peer_tls), config.faults.clone()).await?;
        let mut tasks = Vec::new();

        // Peers first: a leader that just added us replicates as soon as it can reach us.
        // The peer port serves gRPC (h2) and Raft links (their own ALPN protocol).
        let peer_tls_config = server_config(
            &certs.peer,
            ClientAuth::Required(&certs.ca_pem),
            &[ALPN_H2[0], LINK_ALPN],
        )?;
        let peers = tls::accept(peer_listener, peer_tls_config, Some(PEER_ORG), stop.clone());
        let (peers, mut links) = tls::split_by_alpn(peers, LINK_ALPN);
        let link_node = node.clone();
        let link_stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            // Connections end at `stop` (and the store waits for them when it shuts down).
            let mut connections = tokio::task::JoinSet::new();
            while let Some((stream, _)) = links.recv().await {
                connections
                    .spawn(link_node.serve_link(stream, link_stop.clone().cancelled_owned()));
                while connections.try_join_next().is_some() {}
            }
            while connections.join_next().await.is_some() {}
        }));
        let peer_service = node.peer_service();
        let peer_stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let result = tonic::transport::Server::builder()
                .add_service(peer_service)
                .serve_with_incoming_shutdown(tls::incoming(peers), peer_stop.cancelled())
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "peer server stopped");
            }
        }));

        if let Fresh::Init(ca) = &fresh {
            node.initialize(me.clone()).await?;
            wait_for_leader(&node, Duration::from_secs(10)).await?;
            let put = |key: &[u8], value: Vec<u8>| PutRequest {
                key: key.to_vec(),
                value,
                ..Default::default()
            };
            node.put(put(CA_KEY, seal_ca(ca, &token.secret)))
                .await
                .map_err(|e| ServerError::Bootstrap(format!("cannot store the cluster CA: {e}")))?;
            let record = serde_json::json!({ "cluster_id": format!("{:x}", state.cluster_id) });
            node.put(put(CLUSTER_KEY, record.to_string().into_bytes()))
                .await
                .map_err(|e| {
                    ServerError::Bootstrap(format!("cannot store the cluster record: {e}"))
                })?;
        }
        if !matches!(fresh, Fresh::No) {
            certs.save(&data_dir.pki())?;
            data_dir.save_token(&token)?;
            data_dir.save_node(&state)?;
            tracing::info!(node = %state.node_name, member_id = %format!("{:x}", state.node_id), "member created");
        }

        // etcd v3 API.
        let backend: Arc<dyn KvBackend> = Arc::new(node.clone());
        let backend_for_api = backend.clone();
        let etcd_tls = server_config(&certs.server, ClientAuth::Required(&certs.ca_pem), ALPN_H2)?;
        let etcd_conns = tls::accept(etcd_listener, etcd_tls, None, stop.clone());
        let etcd_config = hanode_etcd::EtcdConfig {
            max_request_bytes: config.max_request_bytes,
        };
        let routes = hanode_etcd::routes(backend, &etcd_config);
        let etcd_stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let result = tonic::transport::Server::builder()
                .http2_keepalive_interval(Some(Duration::from_secs(30)))
                .layer(tower::util::MapResponseLayer::new(
                    hanode_etcd::fix_decode_status::<tonic::body::Body>,
                ))
                .add_routes(routes)
                .serve_with_incoming_shutdown(tls::incoming(etcd_conns), etcd_stop.cancelled())
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "etcd server stopped");
            }
        }));

        // HTTPS API: health and joins; the Kubernetes API unless this is a storage server.
        let api_state = Arc::new(ApiState {
            node: node.clone(),
            ca_pem: certs.ca_pem.clone(),
            admin: certs.admin.clone(),
            node_name: state.node_name.clone(),
        });
        let joins = Arc::new(JoinHandler::new(
            node.clone(),
            token.secret.clone(),
            state.cluster_id,
        ));
        let mut app = router(api_state).merge(join_router(joins, certs.ca_pem.clone()));
        if role.serves_kubernetes() {
            let stats: Arc<dyn StoreStats> = Arc::new(NodeStats(node.clone()));
            let (kube, kube_tasks) = start_kubernetes_api(
                backend_for_api,
                &config,
                &data_dir,
                &certs,
                &urls,
                &state.node_name,
                Some(stats),
                &stop,
            )?;
            app = app.merge(kube);
            tasks.extend(kube_tasks);
        } else {
            app = app.fallback(storage_only);
        }
        let api_tls = server_config(
            &certs.server,
            ClientAuth::Optional(&certs.ca_pem),
            ALPN_HTTP,
        )?;
        let api_conns = tls::accept(api_listener, api_tls, None, stop.clone());
        tasks.push(tokio::spawn(serve_https(api_conns, app, stop.clone())));

        tracing::info!(
            node = %state.node_name,
            api = %urls.api,
            etcd = %urls.etcd,
            peer = %urls.peer,
            data_dir = %data_dir.root().display(),
            "hanode server started"
        );
        Ok(Server {
            node: Some(node),
            state,
            urls,
            data_dir,
            stop,
            tasks,
        })
    }

    /// The store member (none on a control-plane server).
    pub fn node(&self) -> Option<&StoreNode> {
        self.node.as_ref()
    }

    /// Identity of this member.
    pub fn state(&self) -> &NodeState {
        &self.state
    }

    /// Where this server is reached.
    pub fn urls(&self) -> &Urls {
        &self.urls
    }

    /// The data dir.
    pub fn data_dir(&self) -> &DataDir {
        &self.data_dir
    }

    /// Stops accepting, lets open requests finish briefly, stops the store.
    pub async fn shutdown(self) {
        self.stop.cancel();
        // Unary requests finish quickly; watch and keep-alive streams never end on their own,
        // so after a short grace period the listeners are closed regardless.
        let mut tasks = self.tasks;
        let drained = futures::future::join_all(tasks.iter_mut());
        if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
            tracing::debug!("open streams after the shutdown grace period; closing them");
            // Wait for the aborted tasks too: what they hold (the store) must be released
            // before shutdown returns, or a restart in this process finds the store locked.
            tasks.retain(|task| !task.is_finished());
            for task in &tasks {
                task.abort();
            }
            futures::future::join_all(tasks).await;
        }
        if let Some(node) = self.node {
            node.shutdown().await;
        }
    }

    /// Assembles a running server (the control-plane path builds its parts elsewhere).
    pub(crate) fn from_parts(
        state: NodeState,
        urls: Urls,
        data_dir: DataDir,
        stop: CancellationToken,
        tasks: Vec<JoinHandle<()>>,
    ) -> Server {
        Server {
            node: None,
            state,
            urls,
            data_dir,
            stop,
            tasks,
        }
    }
}

/// What a storage server answers on Kubernetes API paths.
async fn storage_only(uri: axum::http::Uri) -> hanode_apiserver::status::ApiError {
    hanode_apiserver::status::ApiError::not_found_message(format!(
        "{} is not served here: this is a --role storage server (store member and etcd API only); \
         use a server with --role all or control-plane for the Kubernetes API",
        uri.path()
    ))
}

/// Starts the Kubernetes API over `kv`: returns its router (to merge into the API port's) and
/// the background tasks every API server runs: default namespaces, its heartbeat, the
/// `default/kubernetes` Service and Endpoints. Writes `<data-dir>/admin.kubeconfig`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn start_kubernetes_api(
    kv: Arc<dyn KvBackend>,
    config: &Config,
    data_dir: &DataDir,
    certs: &MemberCerts,
    urls: &Urls,
    node_name: &str,
    stats: Option<Arc<dyn StoreStats>>,
    stop: &CancellationToken,
) -> Result<(axum::Router, Vec<JoinHandle<()>>), ServerError> {
    let api_address = hanode_types::strip_scheme(&urls.api).to_string();
    let kube_config = ApiConfig {
        server_address: api_address.clone(),
        audit_log: Some(data_dir.root().join("logs").join("audit.log")),
        token_file: Some(data_dir.root().join("auth").join("tokens.csv")),
        ..ApiConfig::default()
    };
    let kube = ApiServer::new(kv, kube_config, stats).map_err(ServerError::Bootstrap)?;
    let port = api_address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(config.api_port);
    let me = hanode_apiserver::services::Endpoint {
        name: node_name.to_string(),
        ip: config.advertise_address.to_string(),
        port,
    };
    let store = kube.store().clone();
    let stop = stop.clone();
    let task = tokio::spawn(async move {
        while let Err(e) = hanode_apiserver::services::ensure_default_namespaces(&store).await {
            tracing::debug!(error = %e.message, "default namespaces not created yet");
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        hanode_apiserver::services::run(store, me, stop).await;
    });
    hanode_pki::fs::write_file(
        &data_dir.root().join("admin.kubeconfig"),
        crate::kubeconfig::admin_kubeconfig(&urls.api, &certs.ca_pem, &certs.admin).as_bytes(),
        0o600,
    )?;
    Ok((kube.router(), vec![task]))
}

/// The port a listener is bound to.
pub(crate) fn port(listener: &TcpListener) -> Result<u16, ServerError> {
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| ServerError::Io(e.to_string()))
}

/// The local store member's Raft state, for `/metrics`.
struct NodeStats(StoreNode);

impl StoreStats for NodeStats {
    fn snapshot(&self) -> Option<StoreSnapshot> {
        let metrics = self.0.metrics();
        let traffic = self.0.peer_traffic();
        Some(StoreSnapshot {
            term: metrics.current_term,
            leader: metrics.current_leader.unwrap_or(0),
            is_leader: metrics.current_leader == Some(self.0.id()),
            last_log_index: metrics.last_log_index.unwrap_or(0),
            applied_index: metrics.last_applied.map_or(0, |l| l.index),
            append_entries_link: traffic.append_entries_link,
            append_entries_grpc: traffic.append_entries_grpc,
        })
    }
}

pub(crate) enum Fresh {
    No,
    Init(Box<ClusterCa>),
    Join,
}

pub(crate) fn clear_incomplete(data_dir: &DataDir) -> Result<(), ServerError> {
    data_dir.clear_incomplete().map_err(|e| {
        ServerError::Io(format!(
            "cannot clear an incomplete member in {}: {e}",
            data_dir.root().display()
        ))
    })
}

fn store_config(config: &Config, state: &NodeState) -> StoreConfig {
    let mut store = StoreConfig::new(state.node_id, state.cluster_id, &config.data_dir);
    store.heartbeat_interval_ms = config.heartbeat_interval_ms;
    store.election_timeout_ms_min = config.election_timeout_ms_min;
    store.election_timeout_ms_max = config.election_timeout_ms_max;
    store.snapshot_logs_since_last = config.snapshot_logs_since_last;
    store.logs_to_keep_after_snapshot = config.logs_to_keep_after_snapshot;
    store.request_timeout = config.request_timeout;
    store.quota_bytes = config.quota_bytes;
    store
}

async fn wait_for_leader(node: &StoreNode, timeout: Duration) -> Result<(), ServerError> {
    let mut metrics = node.metrics_watch();
    let wait = async {
        loop {
            if metrics.borrow().current_leader == Some(node.id()) {
                return;
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .map_err(|_| ServerError::Bootstrap("the new cluster elected no leader in time".into()))
}

/// Serves HTTP/1.1 and HTTP/2 on accepted TLS connections until `stop`, then drains.
pub(crate) async fn serve_https(
    mut connections: tokio::sync::mpsc::Receiver<tls::Accepted>,
    router: axum::Router,
    stop: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, identity) = tokio::select! {
            _ = stop.cancelled() => break,
            next = connections.recv() => match next {
                Some(accepted) => accepted,
                None => break,
            },
        };
        let service = router.clone().layer(Extension(ClientCertificate(identity)));
        let service = TowerToHyperService::new(
            service.map_request(|req: hyper::Request<hyper::body::Incoming>| req),
        );
        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "API connection ended");
            }
        });
    }
    if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("API connections still open after 5 s; closing them");
    }
}
