//! End to end: split roles. Control-plane servers (`--role control-plane`, Kubernetes API, no
//! local store) keep their data on remote etcd v3 endpoints: three hanode `--role storage`
//! servers, or a real etcd 3.4 cluster. The real kubectl drives both control planes.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use hanode_testkit::wait;
use hanode_tests::etcd::EtcdCluster;
use hanode_tests::kubectl::Kubectl;
use hanode_tests::proc::{ProcCluster, ProcServer};

const READY: Duration = Duration::from_secs(30);
const WATCH: Duration = Duration::from_secs(20);
/// Long enough for the store to elect a new leader after one is lost, and for a request to a
/// frozen storage endpoint to time out (10 s) before the next one goes elsewhere.
const FAILOVER: Duration = Duration::from_secs(40);

const POD: &str = "apiVersion: v1
kind: Pod
metadata: {name: web, namespace: roles, labels: {app: web}}
spec:
  containers: [{name: nginx, image: nginx}]
";

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| a.to_string()).collect()
}

/// Flags that point a control-plane server at the hanode storage servers, authenticating with
/// the storage cluster's admin client certificate.
fn hanode_storage_flags(storage: &ProcCluster) -> Vec<String> {
    let pki = storage.servers[0].data_dir.join("pki");
    let file = |name: &str| pki.join(name).display().to_string();
    args(&[
        "--role",
        "control-plane",
        "--storage-endpoints",
        &storage.endpoints(),
        "--storage-cafile",
        &file("ca.crt"),
        "--storage-certfile",
        &file("admin.crt"),
        "--storage-keyfile",
        &file("admin.key"),
    ])
}

fn etcd_storage_flags(etcd: &EtcdCluster) -> Vec<String> {
    args(&[
        "--role",
        "control-plane",
        "--storage-endpoints",
        &etcd.endpoints(),
    ])
}

/// Two control-plane servers on 127.0.0.4 and 127.0.0.5: the first with `--init`, the second
/// joining it with its token.
async fn control_plane(root: &Path, flags: &[String]) -> Result<Vec<ProcServer>> {
    let mut init = args(&["--init"]);
    init.extend_from_slice(flags);
    let cp1 = ProcServer::spawn(root, "cp1", Ipv4Addr::new(127, 0, 0, 4), &init)?;
    cp1.wait_ready(READY).await?;
    let mut join = args(&["--join", &cp1.api_url(), "--token", &cp1.token()?]);
    join.extend_from_slice(flags);
    let cp2 = ProcServer::spawn(root, "cp2", Ipv4Addr::new(127, 0, 0, 5), &join)?;
    cp2.wait_ready(READY).await?;
    Ok(vec![cp1, cp2])
}

/// kubectl through one control-plane server sees what was written through the other, live.
async fn kubectl_across(first: &Kubectl, second: &Kubectl) -> Result<()> {
    first.ok(&["create", "namespace", "roles"]).await?;
    second.ok(&["get", "namespace", "roles"]).await?;
    let applied = second
        .ok_with_stdin(&["apply", "-f", "-"], Some(POD))
        .await?;
    assert!(applied.contains("pod/web created"), "{applied}");
    let name = first
        .ok(&[
            "get",
            "pod",
            "web",
            "-n",
            "roles",
            "-o",
            "jsonpath={.metadata.name}",
        ])
        .await?;
    assert_eq!(name.trim(), "web");

    let mut watch = second.spawn(&["get", "configmaps", "-n", "roles", "--watch", "-o", "name"])?;
    first
        .ok(&[
            "create",
            "configmap",
            "seen",
            "-n",
            "roles",
            "--from-literal=a=b",
        ])
        .await?;
    watch
        .line_containing(&["configmap/seen"], WATCH)
        .await
        .context("a watch on one control-plane server sees a write through the other")?;
    watch.stop().await?;
    Ok(())
}

/// The `default/kubernetes` Endpoints list both control-plane servers.
async fn endpoints_list_control_planes(kubectl: &Kubectl) -> Result<()> {
    wait::for_true(
        WATCH,
        "both control-plane servers in the endpoints",
        || async {
            kubectl
                .ok(&[
                    "get",
                    "endpoints",
                    "kubernetes",
                    "-o",
                    "jsonpath={.subsets[*].addresses[*].ip}",
                ])
                .await
                .is_ok_and(|ips| ips.contains("127.0.0.4") && ips.contains("127.0.0.5"))
        },
    )
    .await
}

/// A write through `kubectl` succeeds once the store has a leader again.
async fn write_succeeds(kubectl: &Kubectl, name: &str) -> Result<()> {
    wait::for_true(FAILOVER, &format!("creating configmap {name}"), || async {
        kubectl
            .ok(&[
                "create",
                "configmap",
                name,
                "-n",
                "roles",
                "--from-literal=a=b",
            ])
            .await
            .is_ok()
            || kubectl
                .ok(&["get", "configmap", name, "-n", "roles"])
                .await
                .is_ok()
    })
    .await
}

/// Three `--role storage` servers hold the data; two control-plane servers serve kubectl from
/// it. Storage servers refuse the Kubernetes API with a message; losing the storage server the
/// control plane talks to loses nothing; a control-plane server restarts without flags.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn control_plane_on_hanode_storage_servers() -> Result<()> {
    let storage = ProcCluster::start_with(&["--role", "storage"]).await?;
    let root = tempfile::tempdir()?;
    let mut cps = control_plane(root.path(), &hanode_storage_flags(&storage)).await?;
    let kubectls = [
        Kubectl::new(&cps[0].data_dir)?,
        Kubectl::new(&cps[1].data_dir)?,
    ];
    kubectl_across(&kubectls[0], &kubectls[1]).await?;
    endpoints_list_control_planes(&kubectls[0]).await?;

    // A storage server answers health checks but not the Kubernetes API.
    let n1 = &storage.servers[0];
    let ca = std::fs::read_to_string(n1.data_dir.join("pki/ca.crt"))?;
    let client = hanode_server::client::trusting(&ca, None)?;
    let response = client
        .get(format!("{}/api/v1/pods", n1.api_url()))
        .send()
        .await?;
    assert_eq!(response.status(), 404);
    let body = response.text().await?;
    assert!(body.contains("--role storage"), "{body}");
    let ready = client
        .get(format!("{}/readyz", n1.api_url()))
        .send()
        .await?;
    assert!(ready.status().is_success());
    assert!(!n1.data_dir.join("admin.kubeconfig").exists());

    // The first storage endpoint, the one the control plane uses, dies: both control-plane
    // servers go on to the others.
    let mut storage = storage;
    storage.servers[0].kill().await?;
    write_succeeds(&kubectls[0], "after-kill").await?;
    kubectls[1]
        .ok(&["get", "configmap", "after-kill", "-n", "roles"])
        .await?;
    kubectls[1]
        .ok(&[
            "create",
            "configmap",
            "after-kill-2",
            "-n",
            "roles",
            "--from-literal=a=b",
        ])
        .await?;
    kubectls[0]
        .ok(&["get", "configmap", "after-kill-2", "-n", "roles"])
        .await?;

    // Restart without --init or any storage flag: the data dir remembers role and endpoints.
    cps[0].terminate().await?;
    cps[0].start(&[])?;
    cps[0].wait_ready(READY).await?;
    let pods = kubectls[0]
        .ok(&["get", "pods", "-n", "roles", "-o", "name"])
        .await?;
    assert!(pods.contains("pod/web"), "{pods}");
    Ok(())
}

/// The same control plane on a real etcd 3.4 cluster. A second `--init` on the same storage is
/// refused (one control plane per store), and a stacked server cannot join a control plane
/// that keeps its data elsewhere; both say what to do instead. A frozen etcd member costs one
/// timed-out request, not the control plane.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn control_plane_on_real_etcd() -> Result<()> {
    let mut etcd = EtcdCluster::start(3).await?;
    let root = tempfile::tempdir()?;
    let flags = etcd_storage_flags(&etcd);
    let cps = control_plane(root.path(), &flags).await?;
    let kubectls = [
        Kubectl::new(&cps[0].data_dir)?,
        Kubectl::new(&cps[1].data_dir)?,
    ];
    kubectl_across(&kubectls[0], &kubectls[1]).await?;
    endpoints_list_control_planes(&kubectls[1]).await?;

    let mut init = args(&["--init"]);
    init.extend_from_slice(&flags);
    let mut second = ProcServer::spawn(root.path(), "other", Ipv4Addr::new(127, 0, 0, 6), &init)?;
    let status = second.wait_exit(READY).await?;
    assert!(
        !status.success(),
        "a second --init on the same storage must fail"
    );
    let log = second.log();
    assert!(log.contains("already hold a hanode control plane"), "{log}");
    assert!(log.contains("--join"), "{log}");

    let join = args(&["--join", &cps[0].api_url(), "--token", &cps[0].token()?]);
    let mut stacked =
        ProcServer::spawn(root.path(), "stacked", Ipv4Addr::new(127, 0, 0, 7), &join)?;
    let status = stacked.wait_exit(READY).await?;
    assert!(
        !status.success(),
        "a stacked server must not join a control plane"
    );
    let log = stacked.log();
    assert!(log.contains("--role control-plane"), "{log}");

    // The first etcd member, the one both control-plane servers use, freezes (a paused VM: it
    // takes connections and never answers). Requests to it time out once; the next ones go to
    // the other two members.
    etcd.signal(0, libc::SIGSTOP)?;
    write_succeeds(&kubectls[1], "after-freeze").await?;
    wait::for_true(FAILOVER, "reading through the other server", || async {
        kubectls[0]
            .ok(&["get", "configmap", "after-freeze", "-n", "roles"])
            .await
            .is_ok()
    })
    .await?;
    kubectls[0]
        .ok(&[
            "create",
            "configmap",
            "after-freeze-2",
            "-n",
            "roles",
            "--from-literal=a=b",
        ])
        .await?;
    kubectls[1]
        .ok(&["get", "configmap", "after-freeze-2", "-n", "roles"])
        .await?;
    etcd.kill(0).await?;
    Ok(())
}
