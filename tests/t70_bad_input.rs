//! Bad input and bad conditions get etcd's errors and lose nothing: oversized and malformed
//! requests, missing client certificates, no leader, an exhausted space quota.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context, Result};
use hanode_testkit::wait;
use hanode_tests::proc::{ProcCluster, ProcServer};

/// A single server with extra flags, and an etcdctl runner for it.
struct Single {
    _dir: tempfile::TempDir,
    server: ProcServer,
}

impl Single {
    async fn start(extra: &[&str]) -> Result<Single> {
        hanode_testkit::init();
        let dir = tempfile::tempdir()?;
        let mut args = vec!["--init".to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let server = ProcServer::spawn(dir.path(), "solo", Ipv4Addr::new(127, 0, 0, 1), &args)?;
        server.wait_ready(Duration::from_secs(30)).await?;
        Ok(Single { _dir: dir, server })
    }

    async fn etcdctl(
        &self,
        args: &[&str],
        stdin: Option<&[u8]>,
        with_cert: bool,
    ) -> Result<std::process::Output> {
        let pki = self.server.data_dir.join("pki");
        let mut command = tokio::process::Command::new("etcdctl");
        command
            .arg(format!("--endpoints={}", self.server.etcd_url()))
            .arg(format!("--cacert={}", pki.join("ca.crt").display()))
            .arg("--command-timeout=5s")
            .arg("--dial-timeout=3s");
        if with_cert {
            command
                .arg(format!("--cert={}", pki.join("admin.crt").display()))
                .arg(format!("--key={}", pki.join("admin.key").display()));
        }
        command
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn()?;
        let mut pipe = child.stdin.take().context("stdin")?;
        if let Some(input) = stdin {
            use tokio::io::AsyncWriteExt;
            pipe.write_all(input).await?;
        }
        drop(pipe);
        Ok(tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await??)
    }
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A put over 1.5 MiB gets etcd's "request is too large" and stores nothing; one just under
/// the limit is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_request_is_refused_and_nothing_is_stored() -> Result<()> {
    let s = Single::start(&[]).await?;
    let big = vec![b'x'; 1_600_000];
    let out = s.etcdctl(&["put", "big"], Some(&big), true).await?;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("etcdserver: request is too large"),
        "{}",
        text(&out)
    );
    let got = s
        .etcdctl(&["get", "big", "--keys-only"], None, true)
        .await?;
    assert_eq!(String::from_utf8_lossy(&got.stdout), "");
    let fits = vec![b'y'; 1_400_000];
    let out = s.etcdctl(&["put", "fits"], Some(&fits), true).await?;
    assert!(out.status.success(), "{}", text(&out));
    Ok(())
}

/// Bytes that are not a valid protobuf message get InvalidArgument, and the server keeps
/// serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_protobuf_is_invalid_argument() -> Result<()> {
    let s = Single::start(&[]).await?;
    let pki = s.server.data_dir.join("pki");
    // Field 1 (key) claims 100 bytes but only 3 follow.
    let message = [0x0a, 100, b'a', b'b', b'c'];
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let body = s.server.data_dir.join("bad.bin");
    std::fs::write(&body, &frame)?;
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--http2", "-o", "/dev/null", "-D", "-"])
        .arg("--cacert")
        .arg(pki.join("ca.crt"))
        .arg("--cert")
        .arg(pki.join("admin.crt"))
        .arg("--key")
        .arg(pki.join("admin.key"))
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg(format!("{}/etcdserverpb.KV/Put", s.server.etcd_url()))
        .output()
        .await
        .context("running curl")?;
    let headers = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(
        headers.contains("grpc-status: 3"),
        "{headers}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        headers.contains("failed%20to%20decode%20protobuf%20message"),
        "{headers}"
    );
    let ok = s.etcdctl(&["put", "still", "serving"], None, true).await?;
    assert!(ok.status.success(), "{}", text(&ok));
    Ok(())
}

/// Without a client certificate the TLS handshake is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_without_certificate_is_refused() -> Result<()> {
    let s = Single::start(&[]).await?;
    let out = s.etcdctl(&["put", "k", "v"], None, false).await?;
    assert!(
        !out.status.success(),
        "a client without a certificate got in: {}",
        text(&out)
    );
    let got = s.etcdctl(&["get", "k"], None, true).await?;
    assert_eq!(
        String::from_utf8_lossy(&got.stdout),
        "",
        "nothing was written"
    );
    Ok(())
}

/// Past the space quota, writes fail with NOSPACE and the alarm is raised; reads and deletes
/// still work, and after freeing space and disarming, writes work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn space_quota_raises_nospace_but_serves_reads_and_deletes() -> Result<()> {
    let s = Single::start(&["--quota-backend-bytes", "1048576"]).await?;
    let value = vec![b'q'; 200_000];
    let mut refused = None;
    for i in 0..40 {
        let out = s
            .etcdctl(&["put", &format!("q/{i}")], Some(&value), true)
            .await?;
        if !out.status.success() {
            refused = Some(text(&out));
            break;
        }
    }
    let refused = refused.context("the quota never refused a write")?;
    assert!(
        refused.contains("etcdserver: mvcc: database space exceeded"),
        "{refused}"
    );
    let alarms = s.etcdctl(&["alarm", "list"], None, true).await?;
    assert!(text(&alarms).contains("alarm:NOSPACE"), "{}", text(&alarms));
    let read = s
        .etcdctl(&["get", "q/0", "--keys-only"], None, true)
        .await?;
    assert_eq!(String::from_utf8_lossy(&read.stdout), "q/0\n\n");
    let del = s.etcdctl(&["del", "q/", "--prefix"], None, true).await?;
    assert!(del.status.success(), "{}", text(&del));
    let status = s
        .etcdctl(&["endpoint", "status", "-w", "json"], None, true)
        .await?;
    let json: serde_json::Value = serde_json::from_slice(&status.stdout)?;
    let revision = json[0]["Status"]["header"]["revision"]
        .as_i64()
        .context("revision")?;
    s.etcdctl(
        &["compaction", "--physical", &revision.to_string()],
        None,
        true,
    )
    .await?;
    s.etcdctl(&["defrag"], None, true).await?;
    let disarm = s.etcdctl(&["alarm", "disarm"], None, true).await?;
    assert!(disarm.status.success(), "{}", text(&disarm));
    let after = s.etcdctl(&["put", "small", "ok"], None, true).await?;
    assert!(
        after.status.success(),
        "writes work again after disarm: {}",
        text(&after)
    );
    Ok(())
}

/// A member that sees no leader answers Unavailable "etcdserver: no leader" instead of serving
/// a possibly stale linearizable read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn member_without_leader_answers_no_leader() -> Result<()> {
    let c = ProcCluster::start().await?;
    c.etcdctl(&["put", "k", "v"]).await?;
    let leader = c.leader(Duration::from_secs(10)).await?;
    let lonely = (leader + 1) % 3;
    let stopped: Vec<usize> = (0..3).filter(|i| *i != lonely).collect();
    for index in &stopped {
        c.servers[*index].signal(libc::SIGSTOP)?;
    }
    let endpoint = c.servers[lonely].etcd_url();
    let result = wait::until(Duration::from_secs(30), "a no-leader answer", || async {
        let out = c
            .etcdctl_raw(&endpoint, &["get", "k", "--command-timeout=4s"], None)
            .await
            .ok()?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (!out.status.success() && stderr.contains("etcdserver: no leader")).then_some(stderr)
    })
    .await;
    // Serializable reads are still served locally.
    let local = c
        .etcdctl_raw(&endpoint, &["get", "k", "--consistency=s"], None)
        .await?;
    for index in &stopped {
        c.servers[*index].signal(libc::SIGCONT)?;
    }
    result?;
    assert_eq!(String::from_utf8_lossy(&local.stdout), "k\nv\n");
    Ok(())
}
