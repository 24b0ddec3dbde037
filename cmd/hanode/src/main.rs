//! `hanode`: the only product binary. A switchboard: parse the command line, set up logging and
//! TLS, turn flags into a `Config`, bind, build, run until SIGTERM, drain.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use hanode_server::{Bootstrap, Config, Listeners, Role, Server, StorageEndpoints};

mod cli;

/// mimalloc instead of glibc malloc: serving large lists allocates and frees many small JSON
/// values, and glibc's free-list upkeep was about 40% of the CPU time of a 10,000-pod list.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "hanode",
    version,
    about = "A highly available, Kubernetes-style control plane in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a server: store member, etcd v3 API and Kubernetes-style HTTPS API (see --role).
    Server(Box<ServerArgs>),
    /// List, remove or promote store members.
    Member {
        #[command(subcommand)]
        action: MemberAction,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Members, roles, leader, term, applied index and health of every member.
    Status {
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand)]
enum MemberAction {
    /// List members (learners say why they are still learners).
    List,
    /// Remove a member by id (hex, as `member list` prints it).
    Remove {
        /// Member id.
        id: String,
    },
    /// Promote a learner to voter.
    Promote {
        /// Member id.
        id: String,
    },
}

/// How CLI commands reach a server.
#[derive(Args)]
pub struct ClientArgs {
    /// API URL of any server; default: this data dir's server.
    #[arg(long, env = "HANODE_SERVER", global = true)]
    server: Option<String>,
    /// Data dir whose pki/admin.crt, admin.key and ca.crt are used.
    #[arg(long, env = "HANODE_DATA_DIR", default_value = hanode_server::DEFAULT_DATA_DIR, global = true)]
    data_dir: PathBuf,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table", global = true)]
    output: Output,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Output {
    Table,
    Json,
}

#[derive(Args)]
struct ServerArgs {
    /// Create a new cluster with this server as its first member.
    #[arg(long, env = "HANODE_INIT", conflicts_with = "join")]
    init: bool,
    /// Join the cluster of the server at this API URL (https://HOST:6443).
    #[arg(long, env = "HANODE_JOIN", requires = "token")]
    join: Option<String>,
    /// The cluster's server token (from <data-dir>/token of an existing server).
    #[arg(long, env = "HANODE_TOKEN")]
    token: Option<String>,
    /// Member name, unique in the cluster [default: the host name].
    #[arg(long, env = "HANODE_NODE_NAME")]
    node_name: Option<String>,
    /// Where the store, certificates and token are kept.
    #[arg(long, env = "HANODE_DATA_DIR", default_value = hanode_server::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Address other members and clients reach this server at [default: the default route's].
    #[arg(long, env = "HANODE_ADVERTISE_ADDRESS")]
    advertise_address: Option<IpAddr>,
    /// Address to listen on [default: the advertise address].
    #[arg(long, env = "HANODE_BIND_ADDRESS")]
    bind_address: Option<IpAddr>,
    /// HTTPS API port.
    #[arg(long, env = "HANODE_API_PORT", default_value_t = hanode_server::DEFAULT_API_PORT)]
    api_port: u16,
    /// etcd v3 API port.
    #[arg(long, env = "HANODE_ETCD_PORT", default_value_t = hanode_server::DEFAULT_ETCD_PORT)]
    etcd_port: u16,
    /// Raft peer port.
    #[arg(long, env = "HANODE_PEER_PORT", default_value_t = hanode_server::DEFAULT_PEER_PORT)]
    peer_port: u16,
    /// Extra DNS name or IP for the serving certificate (repeatable).
    #[arg(long = "tls-san", env = "HANODE_TLS_SAN", value_delimiter = ',')]
    tls_san: Vec<String>,
    /// Space quota of the store in bytes (etcd's --quota-backend-bytes).
    #[arg(long, env = "HANODE_QUOTA_BACKEND_BYTES", default_value_t = 2 << 30)]
    quota_backend_bytes: u64,
    /// Raft heartbeat interval.
    #[arg(long, env = "HANODE_HEARTBEAT_INTERVAL_MS", default_value_t = 100)]
    heartbeat_interval_ms: u64,
    /// Lower bound of the randomized election timeout.
    #[arg(long, env = "HANODE_ELECTION_TIMEOUT_MIN_MS", default_value_t = 400)]
    election_timeout_min_ms: u64,
    /// Upper bound of the randomized election timeout; also how long followers keep
    /// refusing to vote after they last heard from a leader.
    #[arg(long, env = "HANODE_ELECTION_TIMEOUT_MAX_MS", default_value_t = 800)]
    election_timeout_max_ms: u64,
    /// What this server runs: all (store member + Kubernetes API), storage (store member and
    /// etcd API only) or control-plane (Kubernetes API over --storage-endpoints, no local
    /// store) [default: all, or what the data dir already holds].
    #[arg(long, env = "HANODE_ROLE", value_enum)]
    role: Option<RoleArg>,
    /// etcd v3 endpoints a control-plane server keeps its data in: hanode storage servers or an
    /// etcd cluster (comma-separated https:// or http:// URLs).
    #[arg(long, env = "HANODE_STORAGE_ENDPOINTS", value_delimiter = ',')]
    storage_endpoints: Vec<String>,
    /// CA of the storage endpoints' serving certificates (PEM).
    #[arg(long, env = "HANODE_STORAGE_CAFILE")]
    storage_cafile: Option<PathBuf>,
    /// Client certificate for the storage endpoints (PEM; for hanode storage servers, their
    /// pki/admin.crt).
    #[arg(long, env = "HANODE_STORAGE_CERTFILE")]
    storage_certfile: Option<PathBuf>,
    /// Key of --storage-certfile (PEM).
    #[arg(long, env = "HANODE_STORAGE_KEYFILE")]
    storage_keyfile: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    All,
    Storage,
    ControlPlane,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::All => Role::All,
            RoleArg::Storage => Role::Storage,
            RoleArg::ControlPlane => Role::ControlPlane,
        }
    }
}

impl ServerArgs {
    fn into_config(self) -> Result<Config> {
        let bootstrap = match (self.init, self.join, self.token) {
            (true, _, _) => Bootstrap::Init,
            (false, Some(url), Some(token)) => Bootstrap::Join { url, token },
            (false, Some(_), None) => {
                anyhow::bail!("--join needs --token (from <data-dir>/token of an existing server)")
            }
            (false, None, _) => Bootstrap::Restart,
        };
        let advertise_address = self
            .advertise_address
            .unwrap_or_else(hanode_server::default_advertise_address);
        let storage = if self.storage_endpoints.is_empty() {
            anyhow::ensure!(
                self.storage_cafile.is_none()
                    && self.storage_certfile.is_none()
                    && self.storage_keyfile.is_none(),
                "--storage-cafile/--storage-certfile/--storage-keyfile need --storage-endpoints"
            );
            None
        } else {
            Some(StorageEndpoints {
                endpoints: self.storage_endpoints,
                ca_file: self.storage_cafile,
                cert_file: self.storage_certfile,
                key_file: self.storage_keyfile,
            })
        };
        Ok(Config {
            bootstrap,
            role: self.role.map(Role::from),
            storage,
            node_name: self
                .node_name
                .unwrap_or_else(hanode_server::default_node_name),
            data_dir: self.data_dir,
            advertise_address,
            bind_address: self.bind_address.unwrap_or(advertise_address),
            api_port: self.api_port,
            etcd_port: self.etcd_port,
            peer_port: self.peer_port,
            tls_sans: self.tls_san,
            quota_bytes: self.quota_backend_bytes,
            heartbeat_interval_ms: self.heartbeat_interval_ms,
            election_timeout_ms_min: self.election_timeout_min_ms,
            election_timeout_ms_max: self.election_timeout_max_ms,
            ..Config::default()
        })
    }
}

async fn run_server(args: ServerArgs) -> Result<()> {
    let config = args.into_config()?;
    config.validate()?;
    let data_dir = config.data_dir.clone();
    let listeners = Listeners::bind(&config).await?;
    let server = Server::build(config, listeners).await?;
    let state = server.state();
    let dir = data_dir.display();
    let mut banner = format!(
        "hanode server {name} is running (--role {role})\n  API:         {api}\n  join token:  {dir}/token\n  admin certs: {dir}/pki/ca.crt {dir}/pki/admin.crt {dir}/pki/admin.key\n",
        name = state.node_name,
        role = state.role,
        api = server.urls().api,
    );
    if state.role.serves_kubernetes() {
        banner.push_str(&format!(
            "  kubectl:     KUBECONFIG={dir}/admin.kubeconfig kubectl get namespaces\n"
        ));
    }
    if state.role.has_store() {
        banner.push_str(&format!(
            "  etcd:        {etcd}\n  etcdctl:     etcdctl --endpoints {etcd} --cacert {dir}/pki/ca.crt --cert {dir}/pki/admin.crt --key {dir}/pki/admin.key member list\n",
            etcd = server.urls().etcd,
        ));
    } else if let Some(storage) = &state.storage {
        banner.push_str(&format!("  storage:     {}\n", storage.endpoints.join(",")));
    }
    print!("{banner}");
    wait_for_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("HANODE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        eprintln!("error: a rustls crypto provider was already installed");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Runtime::new().context("starting the tokio runtime") {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Server(args) => run_server(*args).await,
            Command::Member { action, client } => match action {
                MemberAction::List => cli::member_list(&client).await,
                MemberAction::Remove { id } => cli::member_change(&client, &id, "remove").await,
                MemberAction::Promote { id } => cli::member_change(&client, &id, "promote").await,
            },
            Command::Status { client } => cli::status(&client).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
