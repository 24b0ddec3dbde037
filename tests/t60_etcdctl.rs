//! End to end: three real `hanode server` processes on 127.0.0.1/2/3, driven by the real
//! etcdctl 3.4 (Debian `etcd-client`) and the `etcd-client` crate.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hanode_testkit::wait;
use hanode_tests::proc::{ProcCluster, ProcServer, hanode_bin};
use tokio::io::{AsyncBufReadExt, BufReader};

fn header_revision(json: &str) -> Result<i64> {
    let value: serde_json::Value = serde_json::from_str(json)?;
    value["header"]["revision"]
        .as_i64()
        .context("header.revision")
}

/// Every etcdctl command hanode promises, against all three servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcdctl_commands_work_against_three_servers() -> Result<()> {
    let c = ProcCluster::start().await?;

    // put / get and their options.
    assert_eq!(c.etcdctl(&["put", "foo", "bar"]).await?, "OK\n");
    let first_rev = header_revision(&c.etcdctl(&["get", "foo", "-w", "json"]).await?)?;
    c.etcdctl(&["put", "foo", "baz"]).await?;
    for (k, v) in [("a/1", "x"), ("a/2", "y"), ("b/1", "z")] {
        c.etcdctl(&["put", k, v]).await?;
    }
    assert_eq!(c.etcdctl(&["get", "foo"]).await?, "foo\nbaz\n");
    assert_eq!(
        c.etcdctl(&["get", "foo", &format!("--rev={first_rev}")])
            .await?,
        "foo\nbar\n"
    );
    assert_eq!(
        c.etcdctl(&["get", "a/", "--prefix"]).await?,
        "a/1\nx\na/2\ny\n"
    );
    assert_eq!(
        c.etcdctl(&["get", "a/2", "--from-key", "--keys-only"])
            .await?,
        "a/2\n\nb/1\n\nfoo\n\n"
    );
    let limited: serde_json::Value = serde_json::from_str(
        &c.etcdctl(&["get", "a/", "--prefix", "--limit", "1", "-w", "json"])
            .await?,
    )?;
    assert_eq!(limited["count"], 2);
    assert_eq!(limited["more"], true);
    assert_eq!(limited["kvs"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        c.etcdctl(&["get", "foo", "--consistency=s"]).await?,
        "foo\nbaz\n"
    );
    assert_eq!(c.etcdctl(&["del", "a/1"]).await?, "1\n");
    assert_eq!(
        c.etcdctl(&["get", "a/", "--prefix", "--keys-only"]).await?,
        "a/2\n\n"
    );

    // txn, interactive form on stdin.
    let txn = "mod(\"foo\") > \"0\"\n\nput txnkey yes\n\nput txnkey no\n\n";
    let out = c
        .etcdctl_raw(&c.endpoints(), &["txn", "-i"], Some(txn))
        .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Interactive mode prints its prompts first.
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.ends_with("SUCCESS\n\nOK\n"), "{printed}");
    assert_eq!(
        c.etcdctl(&["get", "txnkey", "--print-value-only"]).await?,
        "yes\n"
    );

    // watch --prefix --rev --prev-kv: history replayed, then live events.
    let before_watch = header_revision(&c.etcdctl(&["get", "foo", "-w", "json"]).await?)?;
    c.etcdctl(&["put", "w/1", "one"]).await?;
    let pki = c.servers[0].data_dir.join("pki");
    let mut watch = tokio::process::Command::new("etcdctl")
        .arg(format!("--endpoints={}", c.servers[1].etcd_url()))
        .arg(format!("--cacert={}", pki.join("ca.crt").display()))
        .arg(format!("--cert={}", pki.join("admin.crt").display()))
        .arg(format!("--key={}", pki.join("admin.key").display()))
        .args([
            "watch",
            "w/",
            "--prefix",
            "--prev-kv",
            &format!("--rev={}", before_watch + 1),
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(watch.stdout.take().context("watch stdout")?).lines();
    let mut seen = Vec::new();
    let expected = ["PUT", "w/1", "one", "PUT", "w/1", "one", "w/1", "two"];
    let mut wrote_second = false;
    tokio::time::timeout(Duration::from_secs(20), async {
        while seen.len() < expected.len() {
            if seen.len() == 3 && !wrote_second {
                c.etcdctl(&["put", "w/1", "two"]).await?;
                wrote_second = true;
            }
            match lines.next_line().await? {
                Some(line) => seen.push(line),
                None => break,
            }
        }
        anyhow::Ok(())
    })
    .await
    .context("watch output")??;
    assert_eq!(seen, expected);
    watch.kill().await?;

    // Leases.
    let granted = c.etcdctl(&["lease", "grant", "30"]).await?;
    let lease = granted
        .split_whitespace()
        .nth(1)
        .context("lease id")?
        .to_string();
    assert_eq!(granted, format!("lease {lease} granted with TTL(30s)\n"));
    assert_eq!(
        c.etcdctl(&["put", &format!("--lease={lease}"), "leased", "v"])
            .await?,
        "OK\n"
    );
    let ttl = c
        .etcdctl(&["lease", "timetolive", &lease, "--keys"])
        .await?;
    assert!(
        ttl.contains("granted with TTL(30s)") && ttl.contains("attached keys([leased])"),
        "{ttl}"
    );
    assert_eq!(
        c.etcdctl(&["lease", "keep-alive", "--once", &lease])
            .await?,
        format!("lease {lease} keepalived with TTL(30)\n")
    );
    assert!(c.etcdctl(&["lease", "list"]).await?.contains(&lease));
    assert_eq!(
        c.etcdctl(&["lease", "revoke", &lease]).await?,
        format!("lease {lease} revoked\n")
    );
    assert_eq!(c.etcdctl(&["get", "leased"]).await?, "");
    let missing = c
        .etcdctl_raw(&c.endpoints(), &["lease", "revoke", &lease], None)
        .await?;
    assert!(String::from_utf8_lossy(&missing.stderr).contains("requested lease not found"));

    // Membership.
    let members = c.etcdctl(&["member", "list"]).await?;
    assert_eq!(
        members
            .lines()
            .filter(|l| l.contains(", started, "))
            .count(),
        3,
        "{members}"
    );
    let added = c
        .etcdctl(&[
            "member",
            "add",
            "n4",
            "--peer-urls=https://127.0.0.4:2380",
            "--learner",
        ])
        .await?;
    let id = added
        .split_whitespace()
        .nth(1)
        .context("member id")?
        .to_string();
    assert!(added.contains("added to cluster"), "{added}");
    let listed = c.etcdctl(&["member", "list"]).await?;
    assert!(
        listed.contains(&format!(
            "{id}, unstarted, , https://127.0.0.4:2380, , true"
        )),
        "{listed}"
    );
    let promote = c
        .etcdctl_raw(&c.endpoints(), &["member", "promote", &id], None)
        .await?;
    assert!(
        String::from_utf8_lossy(&promote.stderr)
            .contains("can only promote a learner member which is in sync with leader"),
        "{}",
        String::from_utf8_lossy(&promote.stderr)
    );
    let removed = c.etcdctl(&["member", "remove", &id]).await?;
    // etcdctl pads ids to 16 columns with spaces.
    let removed = removed.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        removed.starts_with(&format!("Member {id} removed from cluster")),
        "{removed}"
    );

    // Endpoints.
    let status = c
        .etcdctl(&["endpoint", "status", "--cluster", "-w", "table"])
        .await?;
    assert_eq!(status.matches("| https://127.0.0.").count(), 3, "{status}");
    // etcdctl 3.4 prints health lines on stderr.
    let health = c
        .etcdctl_raw(&c.endpoints(), &["endpoint", "health", "--cluster"], None)
        .await?;
    let health_text = String::from_utf8_lossy(&health.stderr);
    assert!(health.status.success(), "{health_text}");
    assert_eq!(
        health_text.matches("is healthy").count(),
        3,
        "{health_text}"
    );

    // Compaction, snapshot, alarms, defrag.
    let current = header_revision(&c.etcdctl(&["get", "foo", "-w", "json"]).await?)?;
    assert_eq!(
        c.etcdctl(&["compaction", &current.to_string()]).await?,
        format!("compacted revision {current}\n")
    );
    let old = c
        .etcdctl_raw(
            &c.endpoints(),
            &["get", "foo", &format!("--rev={first_rev}")],
            None,
        )
        .await?;
    assert!(String::from_utf8_lossy(&old.stderr).contains("required revision has been compacted"));
    let snapshot = c.dir.path().join("snap.db");
    let saved = c
        .etcdctl_raw(
            &c.servers[0].etcd_url(),
            &["snapshot", "save", &snapshot.display().to_string()],
            None,
        )
        .await?;
    assert!(
        saved.status.success(),
        "{}",
        String::from_utf8_lossy(&saved.stderr)
    );
    assert!(std::fs::metadata(&snapshot)?.len() > 32);
    assert_eq!(c.etcdctl(&["alarm", "list"]).await?, "");
    assert_eq!(
        c.etcdctl(&["defrag"])
            .await?
            .matches("Finished defragmenting etcd member")
            .count(),
        3
    );

    // hanode's own CLI sees the same cluster.
    let cli = tokio::process::Command::new(hanode_bin())
        .args([
            "status",
            "--data-dir",
            &c.servers[1].data_dir.display().to_string(),
        ])
        .output()
        .await?;
    let text = String::from_utf8_lossy(&cli.stdout);
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert_eq!(text.matches("healthy").count(), 3, "{text}");
    assert_eq!(text.matches(" voter ").count(), 3, "{text}");
    Ok(())
}

/// Joining with a wrong secret, or with a token pinning another CA, fails with a clear error
/// and a non-zero exit, and writes nothing to the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_token_join_is_refused_and_writes_nothing() -> Result<()> {
    let c = ProcCluster::start().await?;
    // The `kubernetes` Endpoints follow the API servers' heartbeats; wait until they list
    // all three, so the only writes left are the identity Leases' renewals.
    wait::for_true(
        Duration::from_secs(30),
        "endpoints listing three servers",
        || async {
            let out = c
                .etcdctl(&[
                    "get",
                    "/registry/endpoints/default/kubernetes",
                    "--print-value-only",
                ])
                .await
                .unwrap_or_default();
            ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
                .iter()
                .all(|ip| out.contains(&format!("\"{ip}\"")))
        },
    )
    .await?;
    // Every key with its mod revision, but the API servers' identity Leases, which renew on
    // their own every few seconds.
    let written = || async {
        use base64::Engine as _;
        let json = c.etcdctl(&["get", "", "--from-key", "-w", "json"]).await?;
        let value: serde_json::Value = serde_json::from_str(&json)?;
        let engine = base64::engine::general_purpose::STANDARD;
        let mut keys = Vec::new();
        for kv in value["kvs"].as_array().context("kvs")? {
            let key = engine.decode(kv["key"].as_str().context("key")?)?;
            let key = String::from_utf8_lossy(&key).into_owned();
            if !key.starts_with("/registry/coordination.k8s.io/leases/kube-system/apiserver-") {
                keys.push((key, kv["mod_revision"].as_i64().context("mod_revision")?));
            }
        }
        anyhow::Ok(keys)
    };
    let before = written().await?;
    let token = c.servers[0].token()?;
    let (fingerprint, _) = token.split_once("::server:").context("token form")?;
    let cases = [
        (
            format!("{fingerprint}::server:{}", "0".repeat(64)),
            "token secret is wrong",
        ),
        (
            format!("H10{}::server:{}", "ab".repeat(32), "1".repeat(64)),
            "but the token expects",
        ),
    ];
    for (i, (bad, expected)) in cases.iter().enumerate() {
        let args = vec![
            "--join".to_string(),
            c.servers[0].api_url(),
            "--token".into(),
            bad.clone(),
        ];
        let mut joiner = ProcServer::spawn(
            c.dir.path(),
            &format!("bad{i}"),
            std::net::Ipv4Addr::new(127, 0, 0, 4),
            &args,
        )?;
        let status = joiner.wait_exit(Duration::from_secs(30)).await?;
        assert!(!status.success(), "a bad join must exit non-zero");
        let log = joiner.log();
        assert!(log.contains(expected), "expected {expected:?} in:\n{log}");
        assert!(!joiner.data_dir.join("node.json").exists());
    }
    // Only the wrong-secret attempt reached the join endpoint: the CA mismatch sent nothing.
    assert_eq!(
        c.servers[0]
            .log()
            .matches("refused a join with a wrong token secret")
            .count(),
        1
    );
    let members = c.etcdctl(&["member", "list"]).await?;
    assert_eq!(members.lines().count(), 3, "{members}");
    assert_eq!(before, written().await?, "no write reached the store");
    Ok(())
}

/// SIGKILL of the leader during a stream of writes: every acknowledged write is read back,
/// writes resume (the window is printed), and the killed server restarts and catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_sigkill_loses_no_acknowledged_write() -> Result<()> {
    let mut c = ProcCluster::start().await?;
    let leader = c.leader(Duration::from_secs(10)).await?;
    let mut clients = Vec::new();
    for index in 0..3 {
        clients.push(c.client(index).await?);
    }
    let acked = Arc::new(AtomicUsize::new(0));
    let writes_total = 600usize;
    let writer_acked = acked.clone();
    let writer = tokio::spawn(async move {
        let mut acks: BTreeMap<usize, Instant> = BTreeMap::new();
        let mut target = (leader + 1) % 3;
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut i = 0;
        while i < writes_total && Instant::now() < deadline {
            let key = format!("ack/{i:05}");
            let put = tokio::time::timeout(
                Duration::from_secs(3),
                clients[target].put(key, i.to_string(), None),
            )
            .await;
            match put {
                Ok(Ok(_)) => {
                    acks.insert(i, Instant::now());
                    writer_acked.store(acks.len(), Ordering::SeqCst);
                    i += 1;
                }
                _ => {
                    // Unacknowledged: retry the same key on another server.
                    target = (target + 1) % 3;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            // Spread writes over the kill: roughly 100 writes a second.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        acks
    });
    wait::for_true(
        Duration::from_secs(30),
        "100 acknowledged writes",
        || async { acked.load(Ordering::SeqCst) >= 100 },
    )
    .await?;
    let killed_at = Instant::now();
    c.servers[leader].kill().await?;
    let acks = writer.await?;
    assert_eq!(acks.len(), writes_total, "the writer finished its stream");
    let last_before = acks
        .values()
        .filter(|t| **t <= killed_at)
        .max()
        .copied()
        .context("acks before the kill")?;
    let first_after = acks
        .values()
        .filter(|t| **t > killed_at)
        .min()
        .copied()
        .context("acks after the kill")?;
    let window = first_after.duration_since(last_before);
    println!("failover window (last ack before SIGKILL to first ack after): {window:?}");
    assert!(
        window < Duration::from_secs(10),
        "writes resumed only after {window:?}"
    );

    let survivor = (leader + 1) % 3;
    let mut client = c.client(survivor).await?;
    let resp = client
        .get("ack/", Some(etcd_client::GetOptions::new().with_prefix()))
        .await?;
    let stored: BTreeMap<String, String> = resp
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().unwrap_or_default().to_string(),
                kv.value_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for i in acks.keys() {
        assert_eq!(
            stored.get(&format!("ack/{i:05}")),
            Some(&i.to_string()),
            "acknowledged write {i} lost"
        );
    }

    // Restarting with --init again is harmless: the data dir already holds the member.
    c.servers[leader].start(&["--init".into()])?;
    c.servers[leader]
        .wait_ready(Duration::from_secs(30))
        .await?;
    assert!(c.servers[leader].log().contains("ignoring --init/--join"));
    let rejoined = c.client(leader).await?;
    wait::for_true(
        Duration::from_secs(20),
        "the restarted server to hold every write",
        || {
            let mut rejoined = rejoined.clone();
            async move {
                let options = etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_count_only()
                    .with_serializable();
                rejoined
                    .get("ack/", Some(options))
                    .await
                    .is_ok_and(|r| r.count() as usize == writes_total)
            }
        },
    )
    .await?;
    Ok(())
}
