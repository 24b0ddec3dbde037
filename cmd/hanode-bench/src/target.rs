//! Endpoint sets: where a workload runs, with TLS, and who leads.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

/// The endpoints to measure (`--endpoints` etc.).
#[derive(Args, Clone, Debug)]
pub struct TargetArgs {
    /// Comma-separated etcd endpoints (https://host:port).
    #[arg(long, value_delimiter = ',', required = true)]
    pub endpoints: Vec<String>,
    /// CA certificate that signed the servers' certificates.
    #[arg(long)]
    pub cacert: Option<PathBuf>,
    /// Client certificate.
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// Client key.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Name of this endpoint set in reports.
    #[arg(long, default_value = "A")]
    pub label: String,
}

/// The second endpoint set of a side-by-side run (`--vs` etc.).
#[derive(Args, Clone, Debug)]
pub struct VsArgs {
    /// Endpoints of a second system: runs alternate A B A B and ratios are printed.
    #[arg(long = "vs", value_delimiter = ',')]
    pub vs_endpoints: Vec<String>,
    /// CA for the second set.
    #[arg(long)]
    pub vs_cacert: Option<PathBuf>,
    /// Client certificate for the second set.
    #[arg(long)]
    pub vs_cert: Option<PathBuf>,
    /// Client key for the second set.
    #[arg(long)]
    pub vs_key: Option<PathBuf>,
    /// Name of the second set in reports.
    #[arg(long, default_value = "B")]
    pub vs_label: String,
}

impl VsArgs {
    /// The second set, if one was given.
    pub fn target(&self) -> Option<TargetArgs> {
        (!self.vs_endpoints.is_empty()).then(|| TargetArgs {
            endpoints: self.vs_endpoints.clone(),
            cacert: self.vs_cacert.clone(),
            cert: self.vs_cert.clone(),
            key: self.vs_key.clone(),
            label: self.vs_label.clone(),
        })
    }
}

/// A connectable endpoint set.
#[derive(Clone)]
pub struct EndpointSet {
    /// Report name.
    pub label: String,
    /// Endpoints.
    pub endpoints: Vec<String>,
    options: ConnectOptions,
}

impl EndpointSet {
    /// Reads certificates and prepares connection options.
    pub fn new(args: &TargetArgs) -> Result<EndpointSet> {
        let mut options = ConnectOptions::new()
            .with_timeout(Duration::from_secs(5))
            .with_connect_timeout(Duration::from_secs(2))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        if let Some(ca) = &args.cacert {
            let ca =
                std::fs::read_to_string(ca).with_context(|| format!("reading {}", ca.display()))?;
            let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(ca));
            if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
                let cert = std::fs::read_to_string(cert)
                    .with_context(|| format!("reading {}", cert.display()))?;
                let key = std::fs::read_to_string(key)
                    .with_context(|| format!("reading {}", key.display()))?;
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            options = options.with_tls(tls);
        }
        Ok(EndpointSet {
            label: args.label.clone(),
            endpoints: args.endpoints.clone(),
            options,
        })
    }

    /// The same set restricted to `endpoints`.
    pub fn subset(&self, endpoints: Vec<String>) -> EndpointSet {
        EndpointSet {
            endpoints,
            ..self.clone()
        }
    }

    /// A client (one HTTP/2 connection) to one endpoint.
    pub async fn connect(&self, endpoint: &str) -> Result<Client> {
        Client::connect([endpoint], Some(self.options.clone()))
            .await
            .with_context(|| format!("connecting to {endpoint}"))
    }

    /// Per endpoint: (member id, leader id) from `Maintenance/Status`, None if unreachable.
    pub async fn statuses(&self) -> Vec<Option<(u64, u64)>> {
        let mut out = Vec::new();
        for endpoint in &self.endpoints {
            let status = async {
                let mut client = self.connect(endpoint).await.ok()?;
                let status = tokio::time::timeout(Duration::from_millis(500), client.status())
                    .await
                    .ok()?
                    .ok()?;
                Some((status.header()?.member_id(), status.leader()))
            };
            out.push(status.await);
        }
        out
    }

    /// The endpoint of the current leader.
    pub async fn leader(&self) -> Result<String> {
        for _ in 0..50 {
            for (endpoint, status) in self.endpoints.iter().zip(self.statuses().await) {
                if let Some((member, leader)) = status
                    && member == leader
                {
                    return Ok(endpoint.clone());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("no leader found among {:?}", self.endpoints)
    }
}
