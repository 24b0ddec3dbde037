//! End to end: the real kubectl (the gcloud dispatcher on PATH, and every versioned binary from
//! 1.27 to 1.33 beside it) against three real `hanode server` processes on 127.0.0.1/2/3.

use std::time::Duration;

use anyhow::{Context, Result};
use hanode_testkit::wait;
use hanode_tests::kubectl::Kubectl;
use hanode_tests::proc::ProcCluster;

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: nginx
    image: nginx:1.27
";

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, image: nginx}]
";

const NODE: &str = "apiVersion: v1
kind: Node
metadata:
  name: worker-1
  labels: {kubernetes.io/hostname: worker-1}
";

fn kubectls(cluster: &ProcCluster) -> Result<Vec<Kubectl>> {
    cluster
        .servers
        .iter()
        .map(|s| Kubectl::new(&s.data_dir))
        .collect()
}

/// Every command the issue lists, through each of the three servers in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_commands_work_against_every_server() -> Result<()> {
    let cluster = ProcCluster::start().await?;
    let kubectls = kubectls(&cluster)?;
    kubectls[0]
        .ok_with_stdin(&["apply", "-f", "-"], Some(NODE))
        .await?;

    for (i, k) in kubectls.iter().enumerate() {
        let ns = format!("team-{i}");
        let version = k.ok(&["version"]).await?;
        assert!(
            version.contains("Server Version: v1.32.0+hanode"),
            "{version}"
        );

        let resources = k.ok(&["api-resources"]).await?;
        for expected in [
            "pods ",
            "deployments ",
            "leases ",
            "coordination.k8s.io/v1",
            "apps/v1",
        ] {
            assert!(
                resources.contains(expected),
                "api-resources lacks {expected:?}:\n{resources}"
            );
        }

        let nodes = k.ok(&["get", "nodes"]).await?;
        assert!(nodes.contains("worker-1"), "{nodes}");

        assert_eq!(
            k.ok(&["create", "namespace", &ns]).await?,
            format!("namespace/{ns} created\n")
        );
        let again = k.fails(&["create", "namespace", &ns], None).await?;
        assert!(
            again.contains("AlreadyExists") && again.contains(&ns),
            "{again}"
        );

        assert_eq!(
            k.ok_with_stdin(&["apply", "-n", &ns, "-f", "-"], Some(POD))
                .await?,
            "pod/web created\n"
        );
        assert_eq!(
            k.ok_with_stdin(&["apply", "-n", &ns, "-f", "-"], Some(POD))
                .await?,
            "pod/web unchanged\n"
        );
        let changed = POD.replace("nginx:1.27", "nginx:1.28");
        assert_eq!(
            k.ok_with_stdin(&["apply", "-n", &ns, "-f", "-"], Some(&changed))
                .await?,
            "pod/web configured\n"
        );

        k.ok(&["label", "pod", "web", "-n", &ns, &format!("tier=front-{i}")])
            .await?;
        let selected = k
            .ok(&[
                "get",
                "pods",
                "-A",
                "-l",
                &format!("tier=front-{i}"),
                "-o",
                "name",
            ])
            .await?;
        assert_eq!(selected, "pod/web\n");
        let none = k
            .ok(&["get", "pods", "-A", "-l", "tier=nobody", "-o", "name"])
            .await?;
        assert_eq!(none, "");

        let all = k.ok(&["get", "pods", "-A"]).await?;
        let header = all.lines().next().unwrap_or_default();
        assert!(
            header.starts_with("NAMESPACE")
                && header.contains("READY")
                && header.contains("STATUS"),
            "{all}"
        );
        assert!(
            all.lines()
                .any(|l| l.starts_with(&ns) && l.contains("web") && l.contains("Pending")),
            "{all}"
        );

        let described = k.ok(&["describe", "pod", "web", "-n", &ns]).await?;
        assert!(
            described.contains("Name:") && described.contains("nginx:1.28"),
            "{described}"
        );
        assert!(
            described.contains(&format!("tier=front-{i}")),
            "{described}"
        );

        let yaml = k
            .ok(&["get", "pod", "web", "-n", &ns, "-o", "yaml"])
            .await?;
        for field in [
            "resourceVersion:",
            "uid:",
            "creationTimestamp:",
            "image: nginx:1.28",
        ] {
            assert!(yaml.contains(field), "-o yaml lacks {field}:\n{yaml}");
        }

        // What one server wrote, the next one reads.
        let next = &kubectls[(i + 1) % kubectls.len()];
        assert_eq!(
            next.ok(&["get", "pod", "web", "-n", &ns, "-o", "name"])
                .await?,
            "pod/web\n"
        );

        assert_eq!(
            k.ok_with_stdin(&["apply", "-n", &ns, "-f", "-"], Some(DEPLOYMENT))
                .await?,
            "deployment.apps/web created\n"
        );
        assert_eq!(
            k.ok(&["scale", "deployment", "web", "-n", &ns, "--replicas=5"])
                .await?,
            "deployment.apps/web scaled\n"
        );
        let replicas = k
            .ok(&[
                "get",
                "deployment",
                "web",
                "-n",
                &ns,
                "-o",
                "jsonpath={.spec.replicas}",
            ])
            .await?;
        assert_eq!(replicas, "5");
        let table = k
            .ok(&["get", "deployments", "-n", &ns, "-o", "wide"])
            .await?;
        assert!(
            table.contains("READY") && table.contains("0/5") && table.contains("app=web"),
            "{table}"
        );

        // Typed create commands (protobuf bodies from kubectl >= 1.32).
        k.ok(&[
            "create",
            "configmap",
            "settings",
            "-n",
            &ns,
            "--from-literal=mode=fast",
        ])
        .await?;
        k.ok(&[
            "create",
            "secret",
            "generic",
            "password",
            "-n",
            &ns,
            "--from-literal=p=s3cret",
        ])
        .await?;
        k.ok(&["create", "serviceaccount", "robot", "-n", &ns])
            .await?;
        k.ok(&["create", "deployment", "api", "-n", &ns, "--image=busybox"])
            .await?;
        let secret = k
            .ok(&[
                "get",
                "secret",
                "password",
                "-n",
                &ns,
                "-o",
                "jsonpath={.data.p}",
            ])
            .await?;
        assert_eq!(secret, "czNjcmV0", "base64 of s3cret");

        let leases = k.ok(&["get", "leases", "-A"]).await?;
        for server in ["apiserver-n1", "apiserver-n2", "apiserver-n3"] {
            assert!(leases.contains(server), "{leases}");
        }

        assert_eq!(
            k.ok(&["delete", "pod", "web", "-n", &ns, "--wait"]).await?,
            "pod \"web\" deleted\n"
        );
        let gone = k.fails(&["get", "pod", "web", "-n", &ns], None).await?;
        assert!(gone.contains("NotFound"), "{gone}");
    }

    // The kubernetes Service lists every server.
    let endpoints = kubectls[2]
        .ok(&[
            "get",
            "endpoints",
            "kubernetes",
            "-o",
            "jsonpath={.subsets[*].addresses[*].ip}",
        ])
        .await?;
    let mut ips: Vec<&str> = endpoints.split_whitespace().collect();
    ips.sort_unstable();
    assert_eq!(ips, ["127.0.0.1", "127.0.0.2", "127.0.0.3"]);

    // Deleting a namespace takes everything in it along.
    kubectls[1]
        .ok(&["delete", "namespace", "team-0", "--wait"])
        .await?;
    let left = kubectls[2]
        .ok(&[
            "get",
            "all,configmaps,secrets",
            "-n",
            "team-0",
            "-o",
            "name",
        ])
        .await?;
    assert_eq!(left, "", "objects left in a deleted namespace");
    Ok(())
}

/// A watch on one server sees a change made through another, and after a server is killed the
/// other two keep serving reads and writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_sees_other_servers_and_two_servers_keep_serving() -> Result<()> {
    let mut cluster = ProcCluster::start().await?;
    let kubectls = kubectls(&cluster)?;

    let mut watch = kubectls[2].spawn(&[
        "get",
        "configmaps",
        "-n",
        "default",
        "--watch",
        "--output-watch-events",
    ])?;
    // The watch is open once a change shows up; keep writing until one does.
    let first = &kubectls[0];
    wait::for_true(Duration::from_secs(30), "the probe write", || async move {
        first
            .ok(&["create", "configmap", "probe", "-n", "default"])
            .await
            .is_ok()
    })
    .await?;
    watch
        .line_containing(&["ADDED", "probe"], Duration::from_secs(20))
        .await?;
    kubectls[1]
        .ok(&[
            "create",
            "configmap",
            "seen-by-n3",
            "-n",
            "default",
            "--from-literal=a=1",
        ])
        .await?;
    watch
        .line_containing(&["ADDED", "seen-by-n3"], Duration::from_secs(20))
        .await?;
    kubectls[0]
        .ok(&["label", "configmap", "seen-by-n3", "-n", "default", "x=y"])
        .await?;
    watch
        .line_containing(&["MODIFIED", "seen-by-n3"], Duration::from_secs(20))
        .await?;
    kubectls[1]
        .ok(&["delete", "configmap", "seen-by-n3", "-n", "default"])
        .await?;
    watch
        .line_containing(&["DELETED", "seen-by-n3"], Duration::from_secs(20))
        .await?;
    watch.stop().await?;

    // Kill the leader's process: the worst case for the survivors.
    let leader = cluster.leader(Duration::from_secs(10)).await?;
    cluster.servers[leader].kill().await?;
    let survivors: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    for (round, &i) in survivors.iter().enumerate() {
        let k = &kubectls[i];
        let name = format!("after-kill-{round}");
        let name_ref = &name;
        wait::for_true(
            Duration::from_secs(30),
            "a write through a survivor",
            || async move {
                k.ok(&["create", "configmap", name_ref, "-n", "default"])
                    .await
                    .is_ok()
            },
        )
        .await?;
        for &j in &survivors {
            let listed = kubectls[j]
                .ok(&["get", "configmaps", "-n", "default", "-o", "name"])
                .await?;
            assert!(listed.contains(&format!("configmap/{name}")), "{listed}");
            assert!(
                listed.contains("configmap/probe"),
                "a write from before the kill was lost: {listed}"
            );
        }
    }
    // The kubernetes Endpoints drop the dead server once its heartbeat lapses.
    let dead_ip = cluster.servers[leader].ip.to_string();
    let dead_ip = &dead_ip;
    let k = &kubectls[survivors[0]];
    wait::for_true(
        Duration::from_secs(45),
        "default/kubernetes without the dead server",
        || async move {
            match k
                .ok(&[
                    "get",
                    "endpoints",
                    "kubernetes",
                    "-o",
                    "jsonpath={.subsets[*].addresses[*].ip}",
                ])
                .await
            {
                Ok(ips) => ips.split_whitespace().count() == 2 && !ips.contains(dead_ip.as_str()),
                Err(_) => false,
            }
        },
    )
    .await?;
    Ok(())
}

/// Refused requests say why, and store nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_is_refused_and_nothing_is_stored() -> Result<()> {
    let cluster = ProcCluster::start().await?;
    let k = Kubectl::new(&cluster.servers[1].data_dir)?;
    k.ok(&["create", "namespace", "bad"]).await?;

    let big = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big}}\ndata:\n  blob: {}\n",
        "x".repeat(3 * 1024 * 1024 + 1)
    );
    let too_large = k
        .fails(&["apply", "-n", "bad", "-f", "-"], Some(&big))
        .await?;
    assert!(
        too_large.contains("RequestEntityTooLarge") || too_large.contains("413"),
        "{too_large}"
    );

    let invalid = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Not_Valid}\n";
    let refused = k
        .fails(&["apply", "-n", "bad", "-f", "-"], Some(invalid))
        .await?;
    assert!(
        refused.contains("is invalid") && refused.contains("metadata.name"),
        "{refused}"
    );

    let unknown = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: strict}\nbogus: 1\n";
    let refused = k
        .fails(&["create", "-n", "bad", "-f", "-"], Some(unknown))
        .await?;
    assert!(
        refused.contains("BadRequest") && refused.contains("unknown field \"bogus\""),
        "{refused}"
    );
    // The same object is accepted with a warning when asked to only warn.
    let warned = k
        .run(
            &["create", "-n", "bad", "--validate=warn", "-f", "-"],
            Some(unknown),
        )
        .await?;
    assert!(
        warned.status.success(),
        "{}",
        String::from_utf8_lossy(&warned.stderr)
    );
    assert!(
        String::from_utf8_lossy(&warned.stderr).contains("unknown field"),
        "no warning"
    );
    k.ok(&["delete", "configmap", "strict", "-n", "bad"])
        .await?;

    let dry = k
        .ok(&[
            "create",
            "configmap",
            "dry",
            "-n",
            "bad",
            "--dry-run=server",
            "-o",
            "name",
        ])
        .await?;
    assert_eq!(dry, "configmap/dry\n");

    // Raw requests kubectl cannot send.
    let server = &cluster.servers[1];
    let client = admin_client(server)?;
    let url = format!("{}/api/v1/namespaces/bad/configmaps", server.api_url());
    let malformed = client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"kind\": ")
        .send()
        .await?;
    assert_eq!(malformed.status().as_u16(), 400);
    let status: serde_json::Value = malformed.json().await?;
    assert_eq!(status["kind"], "Status");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not valid JSON"),
        "{status}"
    );

    let yaml = client
        .post(&url)
        .header("content-type", "application/yaml")
        .body("metadata: [unclosed")
        .send()
        .await?;
    assert_eq!(yaml.status().as_u16(), 400);

    k.ok(&["create", "configmap", "target", "-n", "bad"])
        .await?;
    let patch = client
        .patch(format!("{url}/target"))
        .header("content-type", "text/plain")
        .body("data: {a: b}")
        .send()
        .await?;
    assert_eq!(patch.status().as_u16(), 415);
    let status: serde_json::Value = patch.json().await?;
    assert_eq!(status["reason"], "UnsupportedMediaType", "{status}");

    let huge = client
        .post(&url)
        .header("content-type", "application/json")
        .body(format!(
            "{{\"metadata\":{{\"name\":\"huge\"}},\"data\":{{\"a\":\"{}\"}}}}",
            "y".repeat(4 << 20)
        ))
        .send()
        .await?;
    assert_eq!(huge.status().as_u16(), 413);

    let stored = k
        .ok(&["get", "configmaps", "-n", "bad", "-o", "name"])
        .await?;
    assert_eq!(
        stored, "configmap/target\n",
        "a refused request stored something"
    );
    Ok(())
}

/// Every kubectl minor the dispatcher can pick, run directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_1_27_to_1_33_work() -> Result<()> {
    let cluster = ProcCluster::start().await?;
    for minor in 27..=33u32 {
        let binary = Kubectl::versioned(minor);
        anyhow::ensure!(
            binary.exists(),
            "{} is missing (the gcloud SDK's kubectl bundle)",
            binary.display()
        );
        let server = &cluster.servers[minor as usize % 3];
        let k = Kubectl::with_binary(&binary, &server.data_dir)?;
        let ns = format!("v1-{minor}");
        let context = || format!("kubectl 1.{minor} against {}", server.name);
        k.ok(&["create", "namespace", &ns])
            .await
            .with_context(context)?;
        k.ok(&["create", "configmap", "c", "-n", &ns, "--from-literal=k=v"])
            .await
            .with_context(context)?;
        k.ok(&["create", "deployment", "d", "-n", &ns, "--image=busybox"])
            .await
            .with_context(context)?;
        let created = k
            .ok_with_stdin(&["apply", "-n", &ns, "-f", "-"], Some(DEPLOYMENT))
            .await
            .with_context(context)?;
        assert_eq!(created, "deployment.apps/web created\n", "{}", context());
        let configured = DEPLOYMENT.replace("replicas: 2", "replicas: 3");
        let out = k
            .ok_with_stdin(&["apply", "-n", &ns, "-f", "-"], Some(&configured))
            .await
            .with_context(context)?;
        assert_eq!(out, "deployment.apps/web configured\n", "{}", context());
        k.ok(&[
            "patch",
            "deployment",
            "web",
            "-n",
            &ns,
            "-p",
            r#"{"metadata":{"labels":{"patched":"yes"}}}"#,
        ])
        .await
        .with_context(context)?;
        let got = k
            .ok(&[
                "get",
                "deployment",
                "web",
                "-n",
                &ns,
                "-o",
                "jsonpath={.spec.replicas}/{.metadata.labels.patched}",
            ])
            .await?;
        assert_eq!(got, "3/yes", "{}", context());
        let table = k
            .ok(&["get", "deployments", "-n", &ns])
            .await
            .with_context(context)?;
        assert!(
            table.contains("READY")
                && table.contains("web")
                && table.lines().any(|l| l.starts_with("d ")),
            "{table}"
        );
        k.ok(&["delete", "namespace", &ns, "--wait"])
            .await
            .with_context(context)?;
    }
    Ok(())
}

fn admin_client(server: &hanode_tests::proc::ProcServer) -> Result<reqwest::Client> {
    let pki = server.data_dir.join("pki");
    let ca = std::fs::read_to_string(pki.join("ca.crt"))?;
    let admin = hanode_pki::CertKey {
        cert_pem: std::fs::read_to_string(pki.join("admin.crt"))?,
        key_pem: std::fs::read_to_string(pki.join("admin.key"))?,
    };
    Ok(hanode_server::client::trusting(&ca, Some(&admin))?)
}
