//! End to end: a client nobody here wrote — the `kube` crate with `k8s-openapi` types — lists,
//! watches, creates, patches and scales through three real servers.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use serde_json::json;

use hanode_tests::proc::{ProcCluster, ProcServer};

async fn client(server: &ProcServer) -> Result<kube::Client> {
    let kubeconfig = Kubeconfig::read_from(server.data_dir.join("admin.kubeconfig"))?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kube_rs_lists_watches_creates_and_patches() -> Result<()> {
    let cluster = ProcCluster::start().await?;
    let clients = [
        client(&cluster.servers[0]).await?,
        client(&cluster.servers[1]).await?,
        client(&cluster.servers[2]).await?,
    ];

    // List.
    let namespaces: Api<Namespace> = Api::all(clients[0].clone());
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    for expected in ["default", "kube-system", "kube-node-lease"] {
        assert!(names.iter().any(|n| n == expected), "{names:?}");
    }

    // A watch through n3 (kube's watcher: list, then watch with bookmarks).
    let watched: Api<ConfigMap> = Api::namespaced(clients[2].clone(), "default");
    let mut events = watcher(watched, watcher::Config::default().labels("suite=kube-rs")).boxed();
    // Wait for the initial list to finish so later events are live ones.
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(event) = events.try_next().await? {
            if matches!(event, watcher::Event::InitDone) {
                return Ok::<_, anyhow::Error>(());
            }
        }
        anyhow::bail!("the watch ended before its initial list")
    })
    .await
    .context("the watcher's initial list")??;

    // Create through n1.
    let config_maps: Api<ConfigMap> = Api::namespaced(clients[0].clone(), "default");
    let mut cm = config_map("from-kube-rs", &[("mode", "fast")]);
    cm.metadata.labels = Some(BTreeMap::from([(
        "suite".to_string(),
        "kube-rs".to_string(),
    )]));
    let created = config_maps.create(&PostParams::default(), &cm).await?;
    let first_rv = created
        .metadata
        .resource_version
        .clone()
        .context("resourceVersion")?;
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    let again = config_maps
        .create(&PostParams::default(), &cm)
        .await
        .expect_err("a second create must fail");
    assert!(
        matches!(&again, kube::Error::Api(status) if status.code == 409),
        "{again:?}"
    );

    let seen = next_apply(&mut events, "from-kube-rs").await?;
    assert_eq!(
        seen.data.and_then(|d| d.get("mode").cloned()).as_deref(),
        Some("fast")
    );

    // Patches of every type, through n2.
    let via_n2: Api<ConfigMap> = Api::namespaced(clients[1].clone(), "default");
    let merged = via_n2
        .patch(
            "from-kube-rs",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"merged": "yes"}})),
        )
        .await?;
    assert_eq!(
        merged
            .data
            .as_ref()
            .and_then(|d| d.get("merged"))
            .map(String::as_str),
        Some("yes")
    );
    let strategic = via_n2
        .patch(
            "from-kube-rs",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {"patched": "strategic"}}})),
        )
        .await?;
    assert_eq!(
        strategic
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("patched"))
            .map(String::as_str),
        Some("strategic")
    );
    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/mode", "value": "fast"},
        {"op": "replace", "path": "/data/mode", "value": "slow"}
    ]))?;
    let jsoned = via_n2
        .patch(
            "from-kube-rs",
            &PatchParams::default(),
            &Patch::<()>::Json(ops),
        )
        .await?;
    assert_eq!(
        jsoned
            .data
            .as_ref()
            .and_then(|d| d.get("mode"))
            .map(String::as_str),
        Some("slow")
    );
    assert_ne!(
        jsoned.metadata.resource_version.as_deref(),
        Some(first_rv.as_str())
    );

    // The watch on n3 sees the last patch.
    loop {
        let seen = next_apply(&mut events, "from-kube-rs").await?;
        if seen
            .data
            .as_ref()
            .and_then(|d| d.get("mode"))
            .map(String::as_str)
            == Some("slow")
        {
            break;
        }
    }

    // A stale resourceVersion is a 409 Conflict.
    let mut stale = created.clone();
    stale.data = Some(BTreeMap::from([("stale".to_string(), "write".to_string())]));
    let conflict = config_maps
        .replace("from-kube-rs", &PostParams::default(), &stale)
        .await
        .expect_err("stale replace must fail");
    assert!(
        matches!(&conflict, kube::Error::Api(status) if status.code == 409),
        "{conflict:?}"
    );

    // Paging.
    for i in 0..3 {
        config_maps
            .create(
                &PostParams::default(),
                &config_map(&format!("page-{i}"), &[]),
            )
            .await?;
    }
    let first_page = config_maps.list(&ListParams::default().limit(2)).await?;
    assert_eq!(first_page.items.len(), 2);
    let token = first_page
        .metadata
        .continue_
        .clone()
        .context("a continue token")?;
    let rest = config_maps
        .list(&ListParams::default().limit(10).continue_token(&token))
        .await?;
    let total = config_maps.list(&ListParams::default()).await?.items.len();
    assert_eq!(first_page.items.len() + rest.items.len(), total);

    // Deployments and the scale subresource.
    let deployments: Api<Deployment> = Api::namespaced(clients[2].clone(), "default");
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "kube-rs"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "k"}},
                 "template": {"metadata": {"labels": {"app": "k"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))?;
    deployments
        .create(&PostParams::default(), &deployment)
        .await?;
    let scaled = deployments
        .patch_scale(
            "kube-rs",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await?;
    assert_eq!(scaled.spec.and_then(|s| s.replicas), Some(4));
    let scale = Api::<Deployment>::namespaced(clients[0].clone(), "default")
        .get_scale("kube-rs")
        .await?;
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(4));

    // Delete, and the watch sees it.
    config_maps
        .delete("from-kube-rs", &DeleteParams::default())
        .await?;
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(event) = events.try_next().await? {
            if let watcher::Event::Delete(cm) = event
                && cm.metadata.name.as_deref() == Some("from-kube-rs")
            {
                return Ok::<_, anyhow::Error>(());
            }
        }
        anyhow::bail!("the watch ended")
    })
    .await
    .context("the delete event")??;
    Ok(())
}

async fn next_apply(
    events: &mut futures::stream::BoxStream<
        'static,
        Result<watcher::Event<ConfigMap>, watcher::Error>,
    >,
    name: &str,
) -> Result<ConfigMap> {
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(event) = events.try_next().await? {
            if let watcher::Event::Apply(cm) = event
                && cm.metadata.name.as_deref() == Some(name)
            {
                return Ok(cm);
            }
        }
        anyhow::bail!("the watch ended")
    })
    .await
    .with_context(|| format!("an event for {name}"))?
}
