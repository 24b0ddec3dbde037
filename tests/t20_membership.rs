//! Membership: learners first, an odd number of voters, queued joins, safe re-joins, removal
//! and promotion rules.

use std::time::Duration;

use hanode_kv::{KvBackend, KvError};
use hanode_store::LearnerState;
use hanode_testkit::{TestCluster, wait};
use hanode_types::Member;

fn voters(cluster: &TestCluster, index: usize) -> usize {
    cluster
        .node(index)
        .local_members()
        .iter()
        .filter(|m| !m.is_learner)
        .count()
}

/// A second member stays a learner (two voters would be even) and says why; a third joiner
/// gets both promoted together.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn second_member_waits_as_learner_until_a_third_joins() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(1).await?;
    let second = cluster.join().await?;
    let learner_id = cluster.node_id(second);
    wait::for_true(
        Duration::from_secs(10),
        "the learner to catch up",
        || async {
            cluster.node(0).member_status().await.is_ok_and(|members| {
                members.iter().any(|m| {
                    m.info.id == learner_id
                        && m.learner_state == Some(LearnerState::WaitingForOddVoters)
                })
            })
        },
    )
    .await?;
    assert_eq!(
        voters(&cluster, 0),
        1,
        "two voters would be even: the joiner stays a learner"
    );
    cluster.join().await?;
    cluster.wait_voters(3, Duration::from_secs(15)).await?;
    cluster.shutdown().await;
    Ok(())
}

/// Joins that arrive at the same time are queued, never failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_joins_are_queued_not_failed() -> anyhow::Result<()> {
    let cluster = TestCluster::start(1).await?;
    let node = cluster.node(0).clone();
    let joins = (0..4).map(|i| {
        let node = node.clone();
        async move {
            node.join_member(Member {
                name: format!("parallel-{i}"),
                peer_url: format!("https://127.0.0.{}:2380", 10 + i),
                ..Member::default()
            })
            .await
        }
    });
    let results = futures::future::join_all(joins).await;
    for result in &results {
        assert!(result.is_ok(), "a concurrent join failed: {result:?}");
    }
    assert_eq!(node.local_members().len(), 5);
    cluster.shutdown().await;
    Ok(())
}

/// Re-running a join for an existing member returns the same member; a different member
/// claiming a taken name is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rejoin_is_idempotent_and_name_theft_is_refused() -> anyhow::Result<()> {
    let cluster = TestCluster::start(1).await?;
    let member = Member {
        name: "again".into(),
        peer_url: "https://127.0.0.20:2380".into(),
        ..Member::default()
    };
    let (first, _) = cluster.node(0).join_member(member.clone()).await?;
    let (second, members) = cluster.node(0).join_member(member).await?;
    assert_eq!(first, second);
    assert_eq!(members.len(), 2);
    let thief = Member {
        name: "again".into(),
        peer_url: "https://127.0.0.21:2380".into(),
        ..Member::default()
    };
    let err = cluster.node(0).join_member(thief).await.unwrap_err();
    assert!(matches!(err, KvError::MembershipRefused(_)), "{err:?}");
    cluster.shutdown().await;
    Ok(())
}

/// Removing a voter from three leaves an even count, so one remaining voter becomes a learner;
/// promotion that would make the count even is refused with a reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removal_and_promotion_keep_voters_odd() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(3).await?;
    let leader = cluster.leader(Duration::from_secs(5)).await?;
    let victim = (leader + 1) % 3;
    let victim_id = cluster.node_id(victim);
    cluster.node(leader).member_remove(victim_id).await?;
    cluster.stop(victim).await;
    let rest: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    let leader = cluster.leader_among(&rest, Duration::from_secs(10)).await?;
    wait::for_true(
        Duration::from_secs(10),
        "one voter and one learner",
        || async {
            let members = cluster.node(leader).local_members();
            members.len() == 2 && members.iter().filter(|m| !m.is_learner).count() == 1
        },
    )
    .await?;
    let learner = cluster
        .node(leader)
        .local_members()
        .into_iter()
        .find(|m| m.is_learner)
        .map(|m| m.id);
    let err = cluster
        .node(leader)
        .member_promote(learner.unwrap_or_default())
        .await
        .unwrap_err();
    match err {
        KvError::MembershipRefused(text) => assert!(text.contains("odd"), "{text}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(matches!(
        cluster.node(leader).member_remove(12345).await.unwrap_err(),
        KvError::MemberNotFound { .. }
    ));
    cluster.shutdown().await;
    Ok(())
}

/// A five-member cluster grows from three by joins, with every new voter caught up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_grows_from_three_to_five_voters() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(3).await?;
    cluster.join().await?;
    assert_eq!(voters(&cluster, 0), 3, "a fourth member waits as a learner");
    cluster.join().await?;
    cluster.wait_voters(5, Duration::from_secs(15)).await?;
    cluster.shutdown().await;
    Ok(())
}
