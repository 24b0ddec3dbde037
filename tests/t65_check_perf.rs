//! `etcdctl check perf` against three real servers. Its own test binary, so that no other test
//! competes for the CPU during its 60 s of paced load.

use anyhow::Result;
use hanode_tests::proc::ProcCluster;

/// `etcdctl check perf` (its smallest load, 60 s) passes against the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcdctl_check_perf_passes() -> Result<()> {
    let c = ProcCluster::start().await?;
    let out = c
        .etcdctl_raw(&c.endpoints(), &["check", "perf", "--load=s"], None)
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        out.status.success(),
        "check perf failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("PASS") && !text.contains("FAIL"), "{text}");
    Ok(())
}
