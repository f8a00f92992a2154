//! The fake Kubernetes API server (issue 25) against kube-rs, the client the Kubernetes driver
//! uses: typed objects read back, server-side apply with field managers and conflicts, 409 on
//! a stale update, label selectors, the status subresource, watches with bookmarks and 410 on a
//! compacted version (kube-rs's watcher relists), and the controller's Deployment → Pods.
#![cfg(feature = "fakes")]

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use serde_json::json;
use vamp_core::testkit::eventually_within;
use vamp_drivers::fakes::kubernetes::{FakeKubernetes, FakeKubernetesConfig};

fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image, "ports": [{"containerPort": 8080}]}]},
            },
        },
    }))
    .expect("a deployment")
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_creates_owns_fields_and_conflicts_unless_forced() {
    let fake = FakeKubernetes::start().await.expect("fake");
    let client = fake.client().expect("client");
    let api: Api<Deployment> = Api::namespaced(client, "default");
    let applied = api
        .patch(
            "shop",
            &PatchParams::apply("vamp"),
            &Patch::Apply(deployment("shop", 0, "shop:1")),
        )
        .await
        .expect("apply creates");
    let meta = &applied.metadata;
    assert!(
        meta.uid.is_some() && meta.resource_version.is_some() && meta.creation_timestamp.is_some()
    );
    assert_eq!(meta.generation, Some(1));
    let managers: Vec<_> = meta
        .managed_fields
        .iter()
        .flatten()
        .map(|m| m.manager.clone().unwrap_or_default())
        .collect();
    assert_eq!(managers, ["vamp"]);
    // The same apply again changes nothing, not even the resourceVersion (the controller
    // changed the status since it was made: compare with what is stored now).
    let stored = api.get("shop").await.expect("get");
    let again = api
        .patch(
            "shop",
            &PatchParams::apply("vamp"),
            &Patch::Apply(deployment("shop", 0, "shop:1")),
        )
        .await
        .expect("apply");
    assert_eq!(
        again.metadata.resource_version,
        stored.metadata.resource_version
    );
    // Another manager setting vamp's field to another value conflicts, naming it…
    let other = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "shop"}, "spec": {"replicas": 5}});
    let err = api
        .patch(
            "shop",
            &PatchParams::apply("kubectl"),
            &Patch::Apply(&other),
        )
        .await
        .expect_err("a conflict");
    assert_eq!(api_code(&err), Some(409), "{err}");
    assert!(
        err.to_string().contains("spec.replicas") && err.to_string().contains("vamp"),
        "{err}"
    );
    // …unless forced, which takes the field over; the spec change raises the generation.
    let forced = api
        .patch(
            "shop",
            &PatchParams::apply("kubectl").force(),
            &Patch::Apply(&other),
        )
        .await
        .expect("forced");
    assert_eq!(forced.spec.as_ref().and_then(|s| s.replicas), Some(5));
    assert_eq!(forced.metadata.generation, Some(2));
    // A field vamp stops applying goes when nobody else owns it; kubectl's stays.
    let mut fewer = deployment("shop", 5, "shop:1");
    if let Some(labels) = fewer.metadata.labels.as_mut() {
        labels.clear();
    }
    let after = api
        .patch(
            "shop",
            &PatchParams::apply("vamp").force(),
            &Patch::Apply(&fewer),
        )
        .await
        .expect("apply");
    assert!(
        after
            .metadata
            .labels
            .as_ref()
            .is_none_or(|l| !l.contains_key("app")),
        "{:?}",
        after.metadata.labels
    );
    assert_eq!(after.spec.as_ref().and_then(|s| s.replicas), Some(5));
    // Without a field manager an apply is refused.
    let err = api
        .patch("shop", &PatchParams::default(), &Patch::Apply(&other))
        .await
        .expect_err("no manager");
    assert_eq!(api_code(&err), Some(400), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_update_gets_409_and_a_fresh_one_passes() {
    let fake = FakeKubernetes::start().await.expect("fake");
    let api: Api<ConfigMap> = Api::namespaced(fake.client().expect("client"), "default");
    let made: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "conf"}, "data": {"a": "1"}}))
            .expect("cm");
    let first = api
        .create(&PostParams::default(), &made)
        .await
        .expect("create");
    let err = api
        .create(&PostParams::default(), &made)
        .await
        .expect_err("exists");
    assert_eq!(api_code(&err), Some(409));
    assert!(err.to_string().contains("already exists"), "{err}");
    let mut newer = first.clone();
    newer.data = Some([("a".to_owned(), "2".to_owned())].into());
    let second = api
        .replace("conf", &PostParams::default(), &newer)
        .await
        .expect("replace");
    // `first` is stale now.
    let mut stale = first.clone();
    stale.data = Some([("a".to_owned(), "3".to_owned())].into());
    let err = api
        .replace("conf", &PostParams::default(), &stale)
        .await
        .expect_err("stale");
    assert_eq!(api_code(&err), Some(409));
    assert!(
        err.to_string().contains("the object has been modified"),
        "{err}"
    );
    // Retried with the fresh object, it passes.
    let mut fresh = api.get("conf").await.expect("get");
    assert_eq!(
        fresh.metadata.resource_version,
        second.metadata.resource_version
    );
    fresh.data = Some([("a".to_owned(), "3".to_owned())].into());
    api.replace("conf", &PostParams::default(), &fresh)
        .await
        .expect("fresh replace");
    api.delete("conf", &DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(
        api_code(&api.get("conf").await.expect_err("gone")),
        Some(404)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_become_ready_pods_and_a_failing_pod_says_why() {
    let fake = FakeKubernetes::start().await.expect("fake");
    let client = fake.client().expect("client");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    deployments
        .patch(
            "web",
            &PatchParams::apply("vamp"),
            &Patch::Apply(deployment("web", 3, "web:1")),
        )
        .await
        .expect("apply");
    eventually_within("3 ready replicas", Duration::from_secs(10), || async {
        let d = deployments.get("web").await.ok()?;
        let s = d.status?;
        (s.ready_replicas == Some(3) && s.observed_generation == Some(1)).then_some(())
    })
    .await;
    let listed = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 3);
    let mut ips: Vec<String> = listed
        .items
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 3, "each pod has an IP of its own");
    assert!(
        pods.list(&ListParams::default().labels("app=other"))
            .await
            .expect("list")
            .items
            .is_empty()
    );
    // Scaled down: pods go.
    deployments
        .patch(
            "web",
            &PatchParams::apply("vamp"),
            &Patch::Apply(deployment("web", 1, "web:1")),
        )
        .await
        .expect("apply");
    eventually_within("1 pod", Duration::from_secs(10), || async {
        (pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?
            .items
            .len()
            == 1)
            .then_some(())
    })
    .await;
    // Told to fail: the new template's pods never become ready, and say why.
    fake.fail_pods("app=web", "ImagePullBackOff")
        .expect("selector");
    deployments
        .patch(
            "web",
            &PatchParams::apply("vamp"),
            &Patch::Apply(deployment("web", 1, "web:2")),
        )
        .await
        .expect("apply");
    let reason = eventually_within("a waiting container", Duration::from_secs(10), || async {
        let list = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        let pod = list.items.into_iter().next()?;
        let waiting = pod
            .status?
            .container_statuses?
            .into_iter()
            .next()?
            .state?
            .waiting?;
        waiting.reason
    })
    .await;
    assert_eq!(reason, "ImagePullBackOff");
    let d = deployments.get("web").await.expect("get");
    assert_eq!(d.status.and_then(|s| s.ready_replicas), Some(0));
    // Deleted: its pods go with it.
    deployments
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete");
    assert!(
        pods.list(&ListParams::default().labels("app=web"))
            .await
            .expect("list")
            .items
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_subresource_is_apart_from_the_object() {
    let fake = FakeKubernetes::start().await.expect("fake");
    let api: Api<Deployment> = Api::namespaced(fake.client().expect("client"), "default");
    api.patch(
        "s",
        &PatchParams::apply("vamp"),
        &Patch::Apply(deployment("s", 0, "s:1")),
    )
    .await
    .expect("apply");
    // A status written through the object is ignored; through the subresource it lands.
    let with_status = json!({"status": {"replicas": 42}});
    let d = api
        .patch("s", &PatchParams::default(), &Patch::Merge(&with_status))
        .await
        .expect("merge");
    assert_ne!(d.status.and_then(|s| s.replicas), Some(42));
    let d = api
        .patch_status("s", &PatchParams::default(), &Patch::Merge(&with_status))
        .await
        .expect("status");
    assert_eq!(d.status.and_then(|s| s.replicas), Some(42));
    assert_eq!(
        d.metadata.generation,
        Some(1),
        "a status is not a spec change"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_replay_changes_send_bookmarks_and_410_after_compaction() {
    let fake = FakeKubernetes::start_with(FakeKubernetesConfig {
        bookmark_every: Duration::from_millis(100),
        ..FakeKubernetesConfig::default()
    })
    .await
    .expect("fake");
    let api: Api<ConfigMap> = Api::namespaced(fake.client().expect("client"), "default");
    let cm = |name: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": "w"}}}))
            .expect("cm")
    };
    let first = api
        .create(&PostParams::default(), &cm("one"))
        .await
        .expect("create");
    let from = first.metadata.resource_version.clone().expect("rv");
    api.create(&PostParams::default(), &cm("two"))
        .await
        .expect("create");
    api.delete("one", &DeleteParams::default())
        .await
        .expect("delete");
    // From `one`'s version: `two` added, `one` deleted, then bookmarks.
    let mut stream = api
        .watch(&WatchParams::default().labels("app=w"), &from)
        .await
        .expect("watch")
        .boxed();
    let mut seen = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .expect("an event in time")
        .expect("no error")
    {
        match event {
            WatchEvent::Added(o) => {
                seen.push(format!("added {}", o.metadata.name.unwrap_or_default()))
            }
            WatchEvent::Deleted(o) => {
                seen.push(format!("deleted {}", o.metadata.name.unwrap_or_default()))
            }
            WatchEvent::Modified(o) => {
                seen.push(format!("modified {}", o.metadata.name.unwrap_or_default()))
            }
            WatchEvent::Bookmark(b) => {
                assert!(!b.metadata.resource_version.is_empty());
                seen.push("bookmark".into());
                break;
            }
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert_eq!(seen, ["added two", "deleted one", "bookmark"]);
    // kube-rs's watcher lists, then watches.
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    let mut listed = Vec::new();
    loop {
        match next(&mut events).await.expect("no error") {
            watcher::Event::InitApply(o) => listed.push(o.metadata.name.unwrap_or_default()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(listed, ["two"]);
    // After a compaction, resuming from an old version is 410 Gone…
    fake.compact();
    let mut stream = api
        .watch(&WatchParams::default(), &from)
        .await
        .expect("watch")
        .boxed();
    match tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await {
        Ok(Ok(Some(WatchEvent::Error(e)))) => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"), "{e:?}");
        }
        other => panic!("expected 410 Gone, got {other:?}"),
    }
    // …so the watcher, whose watch the compaction ended, lists again: a new `Init`, and what
    // is there now.
    api.create(&PostParams::default(), &cm("three"))
        .await
        .expect("create");
    let (mut gone, mut relisted) = (false, None);
    loop {
        match next(&mut events).await {
            // kube-rs reports the 410, then lists again.
            Err(watcher::Error::WatchError(e)) if e.code == 410 => gone = true,
            Err(e) => panic!("watcher error {e}"),
            Ok(watcher::Event::Init) => relisted = Some(Vec::new()),
            Ok(watcher::Event::InitApply(o)) => {
                if let Some(names) = relisted.as_mut() {
                    names.push(o.metadata.name.unwrap_or_default());
                }
            }
            Ok(watcher::Event::InitDone) if relisted.is_some() => break,
            Ok(_) => {}
        }
    }
    assert!(gone, "the watch resumed from a compacted version got 410");
    let mut names = relisted.unwrap_or_default();
    names.sort();
    assert!(
        names == ["two"] || names == ["three", "two"],
        "the relist shows what exists: {names:?}"
    );
}

/// The watcher's next item, in time.
async fn next<S: futures::Stream + Unpin>(events: &mut S) -> S::Item {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event in time")
        .expect("the stream goes on")
}

/// With a kubelet, pods run as local processes on addresses of their own: ready when their
/// probe answers, answering on their pod IP with their environment; an unknown image waits
/// in ImagePullBackOff, a process that exits crash-loops with its code; a deleted pod's
/// process is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubelet_runs_pods_as_processes_on_addresses_of_their_own() {
    let fake = FakeKubernetes::start_with_kubelet(
        [
            ("demo:1".to_owned(), vec![demo_app_path()]),
            (
                "exits:1".to_owned(),
                vec![demo_app_path(), "--error-rate".to_owned(), "9".to_owned()],
            ),
        ],
        "VAMP_DEMO_HOST",
    )
    .await
    .expect("fake");
    let client = fake.client().expect("client");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let mut web = serde_json::to_value(deployment("web", 2, "demo:1")).expect("json");
    let container = &mut web["spec"]["template"]["spec"]["containers"][0];
    container["env"] = json!([{"name": "VAMP_DEMO_VERSION", "value": "7.0.0"}]);
    container["readinessProbe"] = json!({"httpGet": {"path": "/health", "port": 8080}});
    deployments
        .patch("web", &PatchParams::apply("vamp"), &Patch::Apply(&web))
        .await
        .expect("apply");
    eventually_within("2 ready replicas", Duration::from_secs(20), || async {
        let s = deployments.get("web").await.ok()?.status?;
        (s.ready_replicas == Some(2)).then_some(())
    })
    .await;
    let listed = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("list");
    let ips: Vec<String> = listed
        .items
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect();
    assert_eq!(ips.len(), 2);
    assert_ne!(ips[0], ips[1]);
    let http = reqwest::Client::new();
    for ip in &ips {
        let body = http
            .get(format!("http://{ip}:8080/"))
            .send()
            .await
            .expect("the pod answers on its IP")
            .text()
            .await
            .expect("body");
        assert!(body.starts_with("7.0.0"), "{body}");
    }
    // Unknown image, and a process that exits at once.
    for (name, image) in [("pull", "nowhere:1"), ("crash", "exits:1")] {
        deployments
            .patch(
                name,
                &PatchParams::apply("vamp"),
                &Patch::Apply(deployment(name, 1, image)),
            )
            .await
            .expect("apply");
    }
    let waiting = |name: &'static str| {
        let pods = pods.clone();
        async move {
            eventually_within(
                &format!("{name} to wait"),
                Duration::from_secs(20),
                || async {
                    let list = pods
                        .list(&ListParams::default().labels(&format!("app={name}")))
                        .await
                        .ok()?;
                    let status = list
                        .items
                        .into_iter()
                        .next()?
                        .status?
                        .container_statuses?
                        .into_iter()
                        .next()?;
                    let reason = status.state?.waiting?.reason?;
                    let code = status
                        .last_state
                        .and_then(|s| s.terminated)
                        .map(|t| t.exit_code);
                    Some((reason, code))
                },
            )
            .await
        }
    };
    assert_eq!(waiting("pull").await, ("ImagePullBackOff".to_owned(), None));
    let (reason, code) = waiting("crash").await;
    assert_eq!(reason, "CrashLoopBackOff");
    assert!(code.is_some_and(|c| c != 0), "{code:?}");
    // Deleted: the processes stop answering.
    deployments
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete");
    for ip in &ips {
        eventually_within("the process to stop", Duration::from_secs(10), || async {
            http.get(format!("http://{ip}:8080/"))
                .send()
                .await
                .is_err()
                .then_some(())
        })
        .await;
    }
}

fn demo_app_path() -> String {
    vamp_core::testkit::demo_app().display().to_string()
}
