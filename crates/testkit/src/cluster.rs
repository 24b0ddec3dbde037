//! An in-process cluster of real hanode servers.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;

use hanode_kv::KvBackend;
use hanode_server::{Bootstrap, Config, Listeners, Server};
use hanode_store::{Faults, ServerState, StoreNode};
use hanode_types::NodeId;

use crate::wait;

/// Knobs of a test cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Log entries between snapshots (small values exercise snapshot install).
    pub snapshot_logs_since_last: u64,
    /// Log entries kept after a snapshot.
    pub logs_to_keep_after_snapshot: u64,
    /// Space quota.
    pub quota_bytes: u64,
    /// Request timeout.
    pub request_timeout: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            snapshot_logs_since_last: 10_000,
            logs_to_keep_after_snapshot: 1_000,
            quota_bytes: 2 << 30,
            request_timeout: Duration::from_secs(3),
        }
    }
}

struct Slot {
    name: String,
    data_dir: PathBuf,
    ports: [u16; 3],
    server: Option<Server>,
    node_id: NodeId,
}

/// Real servers in one process, each with its own temp data dir and loopback ports, sharing
/// one fault-injecting peer network. Servers are addressed by index (0 = the initial one).
pub struct TestCluster {
    dir: tempfile::TempDir,
    faults: Arc<Faults>,
    options: ClusterOptions,
    slots: Vec<Slot>,
}

async fn bind_listeners(ports: [u16; 3]) -> Result<Listeners> {
    let ip = IpAddr::from([127, 0, 0, 1]);
    let bind = |port: u16| async move {
        TcpListener::bind(SocketAddr::new(ip, port))
            .await
            .with_context(|| format!("binding 127.0.0.1:{port}"))
    };
    Ok(Listeners {
        api: bind(ports[0]).await?,
        etcd: Some(bind(ports[1]).await?),
        peer: Some(bind(ports[2]).await?),
    })
}

fn ports_of(listeners: &Listeners) -> Result<[u16; 3]> {
    Ok([
        listeners.api.local_addr()?.port(),
        listeners
            .etcd
            .as_ref()
            .context("an etcd listener")?
            .local_addr()?
            .port(),
        listeners
            .peer
            .as_ref()
            .context("a peer listener")?
            .local_addr()?
            .port(),
    ])
}

impl TestCluster {
    /// Starts `n` servers: the first with `--init`, the others joining one by one, and waits
    /// until all are voters (for odd `n`) and agree on a leader.
    pub async fn start(n: usize) -> Result<TestCluster> {
        Self::start_with(n, ClusterOptions::default()).await
    }

    /// Like [`TestCluster::start`] with options.
    pub async fn start_with(n: usize, options: ClusterOptions) -> Result<TestCluster> {
        crate::init();
        let mut cluster = TestCluster {
            dir: tempfile::tempdir()?,
            faults: Arc::new(Faults::new()),
            options,
            slots: Vec::new(),
        };
        cluster.add_server(Bootstrap::Init).await?;
        for _ in 1..n {
            cluster.join().await?;
        }
        let voters = if n % 2 == 1 { n } else { n - 1 };
        cluster.wait_voters(voters, Duration::from_secs(20)).await?;
        cluster.leader(Duration::from_secs(10)).await?;
        Ok(cluster)
    }

    fn config(&self, name: &str, data_dir: PathBuf, bootstrap: Bootstrap) -> Config {
        Config {
            bootstrap,
            node_name: name.to_string(),
            data_dir,
            advertise_address: IpAddr::from([127, 0, 0, 1]),
            bind_address: IpAddr::from([127, 0, 0, 1]),
            quota_bytes: self.options.quota_bytes,
            snapshot_logs_since_last: self.options.snapshot_logs_since_last,
            logs_to_keep_after_snapshot: self.options.logs_to_keep_after_snapshot,
            request_timeout: self.options.request_timeout,
            faults: self.faults.clone(),
            ..Config::default()
        }
    }

    async fn add_server(&mut self, bootstrap: Bootstrap) -> Result<usize> {
        let index = self.slots.len();
        let name = format!("n{}", index + 1);
        let data_dir = self.dir.path().join(&name);
        let listeners = bind_listeners([0, 0, 0]).await?;
        let ports = ports_of(&listeners)?;
        let config = self.config(&name, data_dir.clone(), bootstrap);
        let server = Server::build(config, listeners)
            .await
            .with_context(|| format!("starting {name}"))?;
        let node_id = server
            .node()
            .context("test clusters run store members")?
            .id();
        self.slots.push(Slot {
            name,
            data_dir,
            ports,
            server: Some(server),
            node_id,
        });
        Ok(index)
    }

    /// Joins one more server through server 0 (or the first live one); returns its index.
    pub async fn join(&mut self) -> Result<usize> {
        let (url, token) = self.join_args()?;
        self.add_server(Bootstrap::Join { url, token }).await
    }

    /// The `--join` URL and token of the first live server.
    pub fn join_args(&self) -> Result<(String, String)> {
        let slot = self
            .slots
            .iter()
            .find(|s| s.server.is_some())
            .context("no live server to join")?;
        let server = slot.server.as_ref().context("no live server")?;
        let token = std::fs::read_to_string(slot.data_dir.join("token"))?
            .trim()
            .to_string();
        Ok((server.urls().api.clone(), token))
    }

    /// The shared fault injector.
    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }

    /// Number of servers ever started.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when no server was started.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The running server at `index`.
    pub fn server(&self, index: usize) -> &Server {
        self.slots[index]
            .server
            .as_ref()
            .expect("server is running")
    }

    /// The store member at `index`.
    pub fn node(&self, index: usize) -> &StoreNode {
        self.server(index)
            .node()
            .expect("test clusters run store members")
    }

    /// The store at `index` as front-ends see it.
    pub fn backend(&self, index: usize) -> Arc<dyn KvBackend> {
        Arc::new(self.node(index).clone())
    }

    /// Member id of the server at `index`.
    pub fn node_id(&self, index: usize) -> NodeId {
        self.slots[index].node_id
    }

    /// Data dir of the server at `index`.
    pub fn data_dir(&self, index: usize) -> &std::path::Path {
        &self.slots[index].data_dir
    }

    /// Indexes of running servers.
    pub fn live(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|i| self.slots[*i].server.is_some())
            .collect()
    }

    fn all_ids(&self) -> Vec<NodeId> {
        self.slots.iter().map(|s| s.node_id).collect()
    }

    /// Waits until every live server in `among` reports the same leader, which is live and
    /// leads; returns its index.
    pub async fn leader_among(&self, among: &[usize], timeout: Duration) -> Result<usize> {
        wait::until(timeout, "the servers to agree on a live leader", || async {
            let leaders: Vec<Option<NodeId>> =
                among.iter().map(|i| self.node(*i).leader()).collect();
            let first = leaders.first().copied().flatten()?;
            if leaders.iter().any(|l| *l != Some(first)) {
                return None;
            }
            let index = among
                .iter()
                .copied()
                .find(|i| self.slots[*i].node_id == first)?;
            (self.node(index).metrics().state == ServerState::Leader).then_some(index)
        })
        .await
    }

    /// [`TestCluster::leader_among`] all live servers.
    pub async fn leader(&self, timeout: Duration) -> Result<usize> {
        self.leader_among(&self.live(), timeout).await
    }

    /// Waits until the leader's membership has exactly `voters` voters and no change is in
    /// flight (a joint configuration still needs the old voters for a quorum).
    pub async fn wait_voters(&self, voters: usize, timeout: Duration) -> Result<()> {
        wait::for_true(
            timeout,
            &format!("{voters} voters, no change in flight"),
            || async {
                let Ok(leader) = self.leader(Duration::from_millis(1)).await else {
                    return false;
                };
                let metrics = self.node(leader).metrics();
                let membership = metrics.membership_config.membership();
                membership.get_joint_config().len() == 1 && membership.voter_ids().count() == voters
            },
        )
        .await
    }

    /// Waits until the server at `index` has applied at least `index_at_least`.
    pub async fn wait_applied(
        &self,
        index: usize,
        log_index: u64,
        timeout: Duration,
    ) -> Result<()> {
        wait::for_true(
            timeout,
            &format!("server {index} to apply log index {log_index}"),
            || async {
                self.node(index)
                    .metrics()
                    .last_applied
                    .is_some_and(|l| l.index >= log_index)
            },
        )
        .await
    }

    /// Cuts the server at `index` off from every other server.
    pub fn isolate(&self, index: usize) {
        self.faults
            .isolate(self.slots[index].node_id, &self.all_ids());
    }

    /// Splits servers (by index) into groups that only reach their own group.
    pub fn partition(&self, groups: &[&[usize]]) {
        let ids: Vec<Vec<NodeId>> = groups
            .iter()
            .map(|g| g.iter().map(|i| self.slots[*i].node_id).collect())
            .collect();
        let refs: Vec<&[NodeId]> = ids.iter().map(|g| g.as_slice()).collect();
        self.faults.partition(&refs);
    }

    /// Pauses the server at `index` as SIGSTOP would (its peers' calls hang).
    pub fn pause(&self, index: usize) {
        self.faults.pause(self.slots[index].node_id);
    }

    /// Delays traffic from one server to another.
    pub fn delay(&self, from: usize, to: usize, delay: Duration) {
        self.faults
            .delay(self.slots[from].node_id, self.slots[to].node_id, delay);
    }

    /// Removes every injected fault.
    pub fn heal(&self) {
        self.faults.heal();
    }

    /// Stops the server at `index` (its data dir stays).
    pub async fn stop(&mut self, index: usize) {
        if let Some(server) = self.slots[index].server.take() {
            server.shutdown().await;
        }
    }

    /// Starts the stopped server at `index` again from its data dir, on the same ports.
    pub async fn restart(&mut self, index: usize) -> Result<()> {
        anyhow::ensure!(
            self.slots[index].server.is_none(),
            "server {index} is running"
        );
        let slot = &self.slots[index];
        let config = self.config(&slot.name, slot.data_dir.clone(), Bootstrap::Restart);
        let listeners = bind_listeners(slot.ports).await?;
        let server = Server::build(config, listeners).await?;
        self.slots[index].server = Some(server);
        Ok(())
    }

    /// An etcd v3 client (the `etcd-client` crate) for the servers at `indexes`, with the
    /// cluster's admin certificate.
    pub async fn etcd_client(&self, indexes: &[usize]) -> Result<etcd_client::Client> {
        let options = crate::etcd_options(&self.slots[0].data_dir)?;
        let endpoints: Vec<String> = indexes
            .iter()
            .map(|i| self.server(*i).urls().etcd.clone())
            .collect();
        Ok(etcd_client::Client::connect(endpoints, Some(options)).await?)
    }

    /// Stops every server.
    pub async fn shutdown(mut self) {
        for index in 0..self.slots.len() {
            self.stop(index).await;
        }
    }
}
