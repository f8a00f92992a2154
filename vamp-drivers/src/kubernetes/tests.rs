//! The driver against the fake API server (with its kubelet running the demo service as
//! local processes): the conformance kit, the manifests it applies, adoption after a restart,
//! and a pod that never becomes ready.

use std::sync::Arc;
use std::time::Duration;

use vamp_core::model::Deployable;
use vamp_core::testkit::driver::{self, Fixtures};
use vamp_core::traits::ContainerDriver;

use super::{KubernetesConfig, KubernetesDriver};
use crate::fakes::kubernetes::FakeKubernetes;

/// A fake whose kubelet knows the kit's images: the demo service, and one that exits at once.
async fn fake() -> FakeKubernetes {
    FakeKubernetes::start_with_kubelet(
        [
            ("vamp-test/demo-app:1".to_owned(), vec![demo_app_path()]),
            (
                "vamp-test/exits:1".to_owned(),
                vec![demo_app_path(), "--error-rate".to_owned(), "9".to_owned()],
            ),
            (
                "vamp-test/run-prints:1".to_owned(),
                sh("echo \"$VAMP_KIT\"; echo to-stderr >&2"),
            ),
            ("vamp-test/run-fails:1".to_owned(), sh("exit 3")),
            ("vamp-test/run-sleeps:1".to_owned(), sh("sleep 60")),
        ],
        "VAMP_DEMO_HOST",
    )
    .await
    .expect("fake")
}

fn sh(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

fn config() -> KubernetesConfig {
    KubernetesConfig {
        ready_timeout: Duration::from_secs(2),
        ..KubernetesConfig::new("default")
    }
}

async fn driver(url: &str) -> KubernetesDriver {
    let client = FakeKubernetes::client_for(url).expect("client");
    KubernetesDriver::with_client(client, config())
        .await
        .expect("driver")
}

fn fixtures() -> Fixtures {
    let image = |name: &str| Deployable {
        kind: "container/docker".into(),
        definition: format!("vamp-test/{name}:1"),
    };
    Fixtures {
        demo: Box::new(move |_version| image("demo-app")),
        missing: image("no-such-image"),
        exits: image("exits"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_to_the_driver_kit_on_the_fake() {
    let fake = fake().await;
    let url = fake.url();
    let first = driver(&url).await;
    let reopen = move || {
        let url = url.clone();
        Box::pin(async move { Arc::new(driver(&url).await) as Arc<dyn ContainerDriver> }) as _
    };
    driver::run_all(&first, &fixtures(), &reopen).await;
}

/// Workflow runs are Jobs (spec §5.6): the kit's runs — output, exit status, timeout, an
/// image that does not exist — and no Job or pod is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_to_completion_as_jobs_per_the_driver_kit() {
    let fake = fake().await;
    let driver = driver(&fake.url()).await;
    let image = |name: &str| Deployable {
        kind: "container/docker".into(),
        definition: format!("vamp-test/{name}:1"),
    };
    let fixtures = driver::RunFixtures {
        prints: image("run-prints"),
        fails: image("run-fails"),
        sleeps: image("run-sleeps"),
        missing: image("no-such-image"),
        streams_apart: false,
    };
    driver::runs_to_completion(&driver, &fixtures).await;
    vamp_core::testkit::eventually("the runs' jobs and pods to go", || async {
        let jobs = fake.objects("batch/v1", "Job", "default");
        let pods = fake.objects("v1", "Pod", "default");
        (jobs.is_empty() && pods.is_empty())
            .then_some(())
            .ok_or((jobs.len(), pods.len()))
    })
    .await;
}

/// A run's Job as applied: named as spec §5.6 says, one pod never restarted, the run's
/// environment; read by k8s-openapi with nothing left over.
#[test]
fn a_runs_job_is_a_typed_job() {
    let spec = vamp_core::traits::RunSpec {
        name: "health".into(),
        breed: vamp_core::model::Breed {
            name: "health:1".into(),
            deployable: Deployable {
                kind: "container/docker".into(),
                definition: "magneticio/vamp-health:1".into(),
            },
            ..vamp_core::model::Breed::default()
        },
        environment: [("VAMP_URL".to_owned(), "http://vamp:8080".to_owned())].into(),
        timeout: Duration::from_secs(30),
    };
    let name = super::manifest::job_name(&spec.name, 1_765_000_000_000);
    assert_eq!(name, "workflow-health-1765000000000");
    let manifest = super::manifest::job(&spec, "vamp", &name, None);
    let typed: k8s_openapi::api::batch::v1::Job =
        serde_json::from_value(manifest.clone()).expect("a Job");
    assert_eq!(serde_json::to_value(&typed).expect("json"), manifest);
    insta::assert_json_snapshot!(manifest);
}

/// What the driver applies for the kit's demo service: a snapshot, which k8s-openapi reads
/// into its `Deployment` with nothing left over.
#[test]
fn the_applied_deployment_is_a_typed_deployment() {
    let spec = driver::demo_spec(&fixtures(), "shop", "1.0.0", 2);
    let manifest = super::manifest::deployment(&spec, "vamp", Some("IfNotPresent"));
    let typed: k8s_openapi::api::apps::v1::Deployment =
        serde_json::from_value(manifest.clone()).expect("a Deployment");
    assert_eq!(
        serde_json::to_value(&typed).expect("json"),
        manifest,
        "every field is one k8s-openapi knows"
    );
    insta::assert_json_snapshot!(manifest);
}

/// A restarted server (a new driver) finds the Deployment it made and applying the same spec
/// again re-creates nothing: the object's `resourceVersion` does not move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_driver_adopts_its_deployments_without_touching_them() {
    let fake = fake().await;
    let spec = driver::demo_spec(
        &fixtures(),
        &vamp_core::testkit::unique("adopt"),
        "1.0.0",
        1,
    );
    let name = super::manifest::name(&spec.key);
    let first = driver(&fake.url()).await;
    first.deploy(&spec).await.expect("deploy");
    let rv = |fake: &FakeKubernetes| {
        fake.object("apps/v1", "Deployment", "default", &name)
            .and_then(|d| d["metadata"]["uid"].as_str().map(str::to_owned))
            .zip(
                fake.object("apps/v1", "Deployment", "default", &name)
                    .and_then(|d| d["metadata"]["resourceVersion"].as_str().map(str::to_owned)),
            )
    };
    driver::wait_for(&first, &spec.key, "up", |s| {
        s.is_some_and(|s| s.instances.len() == 1 && s.instances[0].deployed)
    })
    .await;
    let before = rv(&fake).expect("the deployment");
    drop(first);
    let again = driver(&fake.url()).await;
    let found = driver::state(&again, &spec.key).await.expect("found again");
    assert_eq!(
        found.fingerprint.as_deref(),
        Some(spec.fingerprint().as_str())
    );
    again.deploy(&spec).await.expect("deploy again");
    assert_eq!(rv(&fake), Some(before), "same uid, same resourceVersion");
}

/// Each gateway gets a Service selecting the gateway agents on its port, reachable at its
/// cluster IP; an update that meets a concurrent writer gets 409 and is retried with the fresh
/// object (both changes stay); the Service of a gateway that went is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_get_services_and_a_stale_update_is_retried_with_the_fresh_object() {
    use vamp_core::traits::GatewayEndpoint;
    let fake = fake().await;
    let d = driver(&fake.url()).await;
    let gateway = |port: u16| GatewayEndpoint {
        name: "shop/web".into(),
        host: "vamp-gateway-agent".into(),
        port,
    };
    let published = d
        .publish_gateways(&[gateway(40001)])
        .await
        .expect("publish");
    let name = super::manifest::gateway_service_name("shop/web");
    let stored = fake
        .object("v1", "Service", "default", &name)
        .expect("a Service");
    assert_eq!(
        published[0].host,
        stored["spec"]["clusterIP"].as_str().expect("a cluster IP")
    );
    assert_eq!(published[0].port, 40001);
    assert_eq!(stored["spec"]["selector"]["io.vamp"], "vamp-gateway-agent");
    assert_eq!(stored["spec"]["type"], "NodePort");
    // Publishing the same again writes nothing.
    let rv = stored["metadata"]["resourceVersion"].clone();
    d.publish_gateways(&[gateway(40001)])
        .await
        .expect("publish");
    assert_eq!(
        fake.object("v1", "Service", "default", &name).expect("svc")["metadata"]["resourceVersion"],
        rv
    );
    // A new port, while another client changes the Service in between.
    fake.interfere_with_next_replace("example.com/touched");
    d.publish_gateways(&[gateway(40002)])
        .await
        .expect("publish despite the conflict");
    assert_eq!(fake.conflicts(), 1, "the first replace was stale");
    let stored = fake.object("v1", "Service", "default", &name).expect("svc");
    assert_eq!(stored["spec"]["ports"][0]["port"], 40002);
    assert_eq!(
        stored["metadata"]["annotations"]["example.com/touched"], "touched",
        "the other client's change is kept"
    );
    // Gone with its gateway.
    d.publish_gateways(&[]).await.expect("publish none");
    assert!(fake.object("v1", "Service", "default", &name).is_none());
}

fn demo_app_path() -> String {
    vamp_core::testkit::demo_app().display().to_string()
}

/// A watch resumed after the API server compacted its history gets 410 Gone, and the driver
/// lists again: a Deployment deleted and one made while its watches were down are seen as
/// they are — a resumed watch alone could not know of the deletion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_that_gets_410_lists_again() {
    let fake = fake().await;
    let url = fake.url();
    let watching = driver(&url).await;
    let other = driver(&url).await;
    let first = driver::demo_spec(&fixtures(), &vamp_core::testkit::unique("gone"), "1.0.0", 1);
    let second = driver::demo_spec(&fixtures(), &vamp_core::testkit::unique("new"), "1.0.0", 1);
    watching.deploy(&first).await.expect("deploy");
    driver::wait_for(&watching, &first.key, "ready", |s| {
        s.is_some_and(|s| s.instances.iter().any(|i| i.deployed))
    })
    .await;
    // The history goes and the watches end; meanwhile another client changes things.
    fake.compact();
    other.undeploy(&first.key).await.expect("undeploy");
    other.deploy(&second).await.expect("deploy");
    fake.compact();
    driver::wait_for(&watching, &first.key, "gone", |s| s.is_none()).await;
    driver::wait_for(&watching, &second.key, "ready", |s| {
        s.is_some_and(|s| s.instances.iter().any(|i| i.deployed))
    })
    .await;
    assert!(fake.expired() > 0, "no watch was answered 410 Gone");
}
