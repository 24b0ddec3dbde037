//! End to end: authentication, authorization, the audit log, `/metrics` and `/readyz?verbose`
//! of the Kubernetes-style API on a real `hanode server` process.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context, Result};
use hanode_tests::proc::ProcServer;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

const TOKENS: &str = "# token,user,uid,\"groups\"
alice-token,alice,u-1,\"system:masters\"
node-token,system:node:worker-1,u-2,\"system:nodes\"
bob-token,bob,u-3
";

struct Api {
    base: String,
    anonymous: Client,
    admin: Client,
}

impl Api {
    fn new(server: &ProcServer) -> Result<Api> {
        let pki = server.data_dir.join("pki");
        let ca = std::fs::read_to_string(pki.join("ca.crt"))?;
        let admin = hanode_pki::CertKey {
            cert_pem: std::fs::read_to_string(pki.join("admin.crt"))?,
            key_pem: std::fs::read_to_string(pki.join("admin.key"))?,
        };
        Ok(Api {
            base: server.api_url(),
            anonymous: hanode_server::client::trusting(&ca, None)?,
            admin: hanode_server::client::trusting(&ca, Some(&admin))?,
        })
    }

    /// A request as `token`'s user (no client certificate), or anonymous.
    async fn call(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut request = self
            .anonymous
            .request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut request = self.admin.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }
}

/// A server that knows [`TOKENS`]: bearer tokens come from `<data-dir>/auth/tokens.csv`,
/// read at start, so the server is started, given the file and restarted.
async fn server_with_tokens(root: &std::path::Path) -> Result<ProcServer> {
    hanode_testkit::init();
    let mut server =
        ProcServer::spawn(root, "n1", Ipv4Addr::new(127, 0, 0, 1), &["--init".into()])?;
    server.wait_ready(Duration::from_secs(30)).await?;
    std::fs::create_dir_all(server.data_dir.join("auth"))?;
    std::fs::write(server.data_dir.join("auth/tokens.csv"), TOKENS)?;
    server.terminate().await?;
    server.start(&[])?;
    server.wait_ready(Duration::from_secs(30)).await?;
    Ok(server)
}

fn status_patch(phase: &str) -> Value {
    json!({"status": {"phase": phase}})
}

async fn merge_patch(api: &Api, token: &str, path: &str, body: Value) -> Result<StatusCode> {
    let response = api
        .anonymous
        .patch(format!("{}{path}", api.base))
        .bearer_auth(token)
        .header("content-type", "application/merge-patch+json")
        .body(body.to_string())
        .send()
        .await?;
    Ok(response.status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn users_nodes_and_anonymous_get_what_their_identity_allows() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = server_with_tokens(dir.path()).await?;
    let api = Api::new(&server)?;

    // Anonymous: 401 with a Status, except the public health and version endpoints.
    let (code, status) = api
        .call(None, Method::GET, "/api/v1/namespaces", None)
        .await?;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(
        (status["kind"].as_str(), status["reason"].as_str()),
        (Some("Status"), Some("Unauthorized")),
        "{status}"
    );
    assert_eq!(
        api.call(None, Method::GET, "/version", None).await?.0,
        StatusCode::OK
    );
    assert_eq!(
        api.call(None, Method::GET, "/livez", None).await?.0,
        StatusCode::OK
    );
    let (code, _) = api
        .call(Some("not-a-token"), Method::GET, "/api/v1/namespaces", None)
        .await?;
    assert_eq!(code, StatusCode::UNAUTHORIZED);

    // A user without groups: authenticated, but forbidden, with Kubernetes' wording.
    let (code, status) = api
        .call(
            Some("bob-token"),
            Method::GET,
            "/api/v1/namespaces/default/pods",
            None,
        )
        .await?;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("User \"bob\" cannot list resource \"pods\""),
        "{message}"
    );

    // system:masters by token.
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "by-alice"}});
    assert_eq!(
        api.call(
            Some("alice-token"),
            Method::POST,
            "/api/v1/namespaces",
            Some(ns)
        )
        .await?
        .0,
        StatusCode::CREATED
    );

    // system:nodes: only its own Node, its own node Lease, and status of pods bound to it.
    let node = |name: &str| json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
    let node_token = Some("node-token");
    assert_eq!(
        api.call(
            node_token,
            Method::POST,
            "/api/v1/nodes",
            Some(node("worker-1"))
        )
        .await?
        .0,
        StatusCode::CREATED
    );
    assert_eq!(
        api.call(
            node_token,
            Method::POST,
            "/api/v1/nodes",
            Some(node("worker-2"))
        )
        .await?
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.admin(Method::POST, "/api/v1/nodes", Some(node("worker-2")))
            .await?
            .0,
        StatusCode::CREATED
    );
    let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    assert_eq!(
        merge_patch(
            &api,
            "node-token",
            "/api/v1/nodes/worker-1/status",
            ready.clone()
        )
        .await?,
        StatusCode::OK
    );
    assert_eq!(
        merge_patch(&api, "node-token", "/api/v1/nodes/worker-2/status", ready).await?,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.call(node_token, Method::GET, "/api/v1/nodes", None)
            .await?
            .0,
        StatusCode::OK
    );

    let lease = |name: &str| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name},
               "spec": {"holderIdentity": name, "leaseDurationSeconds": 40}})
    };
    let leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";
    assert_eq!(
        api.call(node_token, Method::POST, leases, Some(lease("worker-1")))
            .await?
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        api.call(node_token, Method::POST, leases, Some(lease("worker-2")))
            .await?
            .0,
        StatusCode::FORBIDDEN
    );
    let elsewhere = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases";
    assert_eq!(
        api.call(node_token, Method::POST, elsewhere, Some(lease("worker-1")))
            .await?
            .0,
        StatusCode::FORBIDDEN
    );

    let pod = |name: &str, node: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
               "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}})
    };
    let pods = "/api/v1/namespaces/default/pods";
    assert_eq!(
        api.admin(Method::POST, pods, Some(pod("mine", "worker-1")))
            .await?
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        api.admin(Method::POST, pods, Some(pod("theirs", "worker-2")))
            .await?
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        merge_patch(
            &api,
            "node-token",
            &format!("{pods}/mine/status"),
            status_patch("Running")
        )
        .await?,
        StatusCode::OK
    );
    assert_eq!(
        merge_patch(
            &api,
            "node-token",
            &format!("{pods}/theirs/status"),
            status_patch("Running")
        )
        .await?,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        merge_patch(
            &api,
            "node-token",
            &format!("{pods}/mine"),
            json!({"metadata": {"labels": {"a": "b"}}})
        )
        .await?,
        StatusCode::FORBIDDEN
    );
    let (_, theirs) = api
        .admin(Method::GET, &format!("{pods}/theirs"), None)
        .await?;
    assert_eq!(
        theirs["status"]["phase"], "Pending",
        "a forbidden status write changed the pod: {theirs}"
    );
    let (_, mine) = api
        .admin(Method::GET, &format!("{pods}/mine"), None)
        .await?;
    assert_eq!(mine["status"]["phase"], "Running");
    assert_eq!(
        api.call(
            node_token,
            Method::GET,
            "/api/v1/namespaces/default/secrets",
            None
        )
        .await?
        .0,
        StatusCode::FORBIDDEN
    );

    // /metrics: masters only, Prometheus text with requests, latency, watches and Raft state.
    assert_eq!(
        api.call(Some("bob-token"), Method::GET, "/metrics", None)
            .await?
            .0,
        StatusCode::FORBIDDEN
    );
    let (code, metrics) = api.admin(Method::GET, "/metrics", None).await?;
    assert_eq!(code, StatusCode::OK);
    let metrics = metrics.as_str().context("metrics are text")?.to_string();
    for expected in [
        "apiserver_request_total{verb=\"create\",resource=\"nodes\",code=\"201\"} 2",
        "apiserver_request_total{verb=\"create\",resource=\"nodes\",code=\"403\"} 1",
        "apiserver_request_duration_seconds_bucket",
        "apiserver_longrunning_watches",
        "hanode_raft_term",
        "hanode_raft_is_leader 1",
        "hanode_raft_applied_index",
        "hanode_peer_append_entries_total{transport=\"link\"}",
    ] {
        assert!(
            metrics.contains(expected),
            "/metrics lacks {expected:?}:\n{metrics}"
        );
    }

    // /readyz?verbose names every check, the store quorum among them.
    let (code, ready) = api.call(None, Method::GET, "/readyz?verbose", None).await?;
    assert_eq!(code, StatusCode::OK);
    let ready = ready.as_str().unwrap_or_default().to_string();
    assert!(
        ready.contains("[+]store-quorum ok") && ready.contains("readyz check passed"),
        "{ready}"
    );

    // The audit log has one JSON line per request: user, verb, resource, name, code, latency.
    let audit = std::fs::read_to_string(server.data_dir.join("logs/audit.log"))?;
    let entries: Vec<Value> = audit
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let find = |user: &str, verb: &str, resource: &str, code: u64| {
        entries.iter().find(|e| {
            e["user"] == user && e["verb"] == verb && e["resource"] == resource && e["code"] == code
        })
    };
    let denied =
        find("bob", "list", "pods", 403).context("no audit entry for bob's denied list")?;
    assert!(denied["latency_ms"].as_f64().is_some(), "{denied}");
    let created = find("system:node:worker-1", "create", "nodes", 201)
        .context("no audit entry for the node's create")?;
    assert_eq!(
        created["name"],
        Value::Null,
        "collection create has no name in the URL: {created}"
    );
    let refused = find("system:node:worker-1", "patch", "pods", 403)
        .context("no audit entry for a refused pod patch")?;
    assert_eq!(
        (
            refused["namespace"].as_str(),
            refused["subresource"].as_str()
        ),
        (Some("default"), Some("status")),
        "{refused}"
    );
    assert_eq!(refused["name"], "theirs", "{refused}");
    assert!(
        entries.iter().any(|e| e["code"] == 401 && e["user"] == ""),
        "no anonymous 401 audited"
    );
    Ok(())
}

/// `kubectl auth can-i` (a SelfSubjectAccessReview: protobuf from kubectl >= 1.32, JSON from
/// older ones) answers with the rules real requests meet, for the admin and for a token user.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_auth_can_i_answers_per_user() -> Result<()> {
    use hanode_tests::kubectl::Kubectl;
    let dir = tempfile::tempdir()?;
    let server = server_with_tokens(dir.path()).await?;

    let bob = dir.path().join("bob.kubeconfig");
    std::fs::write(
        &bob,
        format!(
            "apiVersion: v1\nkind: Config\n\
             clusters: [{{name: hanode, cluster: {{server: \"{}\", certificate-authority: \"{}\"}}}}]\n\
             users: [{{name: bob, user: {{token: bob-token}}}}]\n\
             contexts: [{{name: bob, context: {{cluster: hanode, user: bob}}}}]\n\
             current-context: bob\n",
            server.api_url(),
            server.data_dir.join("pki/ca.crt").display()
        ),
    )?;
    let bob = bob.display().to_string();
    for kubectl in [
        Kubectl::new(&server.data_dir)?,
        Kubectl::with_binary(&Kubectl::versioned(28), &server.data_dir)?,
    ] {
        let yes = kubectl.ok(&["auth", "can-i", "create", "pods"]).await?;
        assert_eq!(yes.trim(), "yes");
        let yes = kubectl.ok(&["auth", "can-i", "get", "/metrics"]).await?;
        assert_eq!(yes.trim(), "yes");

        let no = kubectl
            .run(
                &["--kubeconfig", &bob, "auth", "can-i", "create", "pods"],
                None,
            )
            .await?;
        assert!(!no.status.success(), "bob may not create pods");
        let answer = String::from_utf8_lossy(&no.stdout);
        // kubectl prints the reason after "no - ".
        assert!(answer.starts_with("no - "), "{answer}");
        assert!(answer.contains("User \"bob\" cannot create"), "{answer}");
        let no = kubectl
            .run(
                &["--kubeconfig", &bob, "auth", "can-i", "get", "/metrics"],
                None,
            )
            .await?;
        assert!(!no.status.success(), "bob may not read /metrics");
        let answer = String::from_utf8_lossy(&no.stdout);
        assert!(answer.starts_with("no - only system:masters"), "{answer}");
        let discovery = kubectl
            .ok(&["--kubeconfig", &bob, "auth", "can-i", "get", "/api"])
            .await?;
        assert_eq!(discovery.trim(), "yes");

        let everything = kubectl.ok(&["auth", "can-i", "--list"]).await?;
        assert!(everything.contains("*.*"), "{everything}");
        let bobs = kubectl
            .ok(&["--kubeconfig", &bob, "auth", "can-i", "--list"])
            .await?;
        assert!(bobs.contains("[/version]"), "{bobs}");
        assert!(!bobs.contains("pods"), "{bobs}");
    }
    Ok(())
}
