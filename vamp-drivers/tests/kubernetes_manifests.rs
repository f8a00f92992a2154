//! `deploy/kubernetes/` (issue 25): every manifest reads into its k8s-openapi type with no
//! field left over, and the server's Role allows exactly the requests the driver makes — the
//! driver's verbs are recorded by the fake API server while it deploys, scales, publishes
//! gateways, runs a workflow and undeploys.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, Service, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde_json::Value;
use vamp_core::model::{Breed, Deployable};
use vamp_core::testkit::driver::{self, Fixtures};
use vamp_core::traits::{ContainerDriver, GatewayEndpoint, RunSpec};
use vamp_drivers::fakes::kubernetes::FakeKubernetes;
use vamp_drivers::kubernetes::{KubernetesConfig, KubernetesDriver};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

/// Every document of every `deploy/kubernetes/*.yaml`, with its file's name.
fn documents() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy_dir())
        .expect("deploy/kubernetes")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for doc in vamp_core::dsl::parse_documents(&text)
            .unwrap_or_else(|e| panic!("{name}: not YAML: {e}"))
        {
            out.push((name.clone(), doc.to_json()));
        }
    }
    out
}

/// The value read into `T` and written back.
fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value) -> Result<Value, String> {
    let object: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&object).map_err(|e| e.to_string())
}

#[test]
fn every_manifest_is_its_typed_object_with_no_unknown_field() {
    let mut kinds = BTreeSet::new();
    for (file, doc) in documents() {
        let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
        let name = doc["metadata"]["name"].as_str().unwrap_or_default();
        let back = match kind.as_str() {
            "Namespace" => typed::<Namespace>(&doc),
            "ServiceAccount" => typed::<ServiceAccount>(&doc),
            "Role" => typed::<Role>(&doc),
            "RoleBinding" => typed::<RoleBinding>(&doc),
            "ConfigMap" => typed::<ConfigMap>(&doc),
            "PersistentVolumeClaim" => typed::<PersistentVolumeClaim>(&doc),
            "Deployment" => typed::<Deployment>(&doc),
            "Service" => typed::<Service>(&doc),
            "DaemonSet" => typed::<DaemonSet>(&doc),
            "StatefulSet" => typed::<StatefulSet>(&doc),
            other => panic!("{file}: {other} {name}: a kind this test does not read"),
        }
        .unwrap_or_else(|e| panic!("{file}: {kind} {name}: {e}"));
        assert_eq!(
            back, doc,
            "{file}: {kind} {name} has a field k8s-openapi does not know (or of the wrong type)"
        );
        if kind != "Namespace" {
            assert_eq!(
                doc["metadata"]["namespace"], "vamp",
                "{file}: {kind} {name}"
            );
        }
        kinds.insert(kind);
    }
    for needed in [
        "ConfigMap",
        "DaemonSet",
        "Deployment",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ] {
        assert!(kinds.contains(needed), "no {needed} in deploy/kubernetes");
    }
}

/// The agents' pods carry the label the gateways' Services select, and the server runs
/// under the account the Role is bound to.
#[test]
fn the_manifests_fit_together() {
    let docs = documents();
    let find = |kind: &str, name: &str| {
        docs.iter()
            .map(|(_, d)| d)
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
            .clone()
    };
    let agent = find("DaemonSet", "vamp-gateway-agent");
    let id = KubernetesConfig::new("vamp").gateway_agent_id;
    assert_eq!(
        agent["spec"]["template"]["metadata"]["labels"]["io.vamp"],
        id
    );
    let server = find("Deployment", "vamp-server");
    let account = &server["spec"]["template"]["spec"]["serviceAccountName"];
    let binding = find("RoleBinding", "vamp-server");
    assert_eq!(&binding["subjects"][0]["name"], account);
    assert_eq!(binding["roleRef"]["name"], "vamp-server");
    let config = find("ConfigMap", "vamp-server");
    let toml = config["data"]["vamp.toml"].as_str().expect("vamp.toml");
    assert!(toml.contains("kind = \"kubernetes\""), "{toml}");
    assert!(
        toml.contains(&format!("gateway_agent_id = \"{id}\"")),
        "{toml}"
    );
}

/// The Role's rules as `(API group, resource, verb)`.
fn allowed() -> BTreeSet<(String, String, String)> {
    let role = documents()
        .into_iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"] == "Role" && d["metadata"]["name"] == "vamp-server")
        .expect("the server's Role");
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().expect("rules") {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    out.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    out
}

fn sh(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

/// Everything the driver does, once each: deploy, wait for the pod, scale, publish gateways
/// (new, changed, gone), run a workflow to completion, undeploy. The verbs the fake recorded
/// are exactly the Role's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_role_allows_exactly_the_requests_the_driver_makes() {
    let demo = vamp_core::testkit::demo_app().display().to_string();
    let fake = FakeKubernetes::start_with_kubelet(
        [
            ("vamp-test/demo-app:1".to_owned(), vec![demo]),
            ("vamp-test/run-prints:1".to_owned(), sh("echo done")),
        ],
        "VAMP_DEMO_HOST",
    )
    .await
    .expect("fake");
    let client = fake.client().expect("client");
    let driver = KubernetesDriver::with_client(client, KubernetesConfig::new("default"))
        .await
        .expect("driver");

    let fixtures = Fixtures {
        demo: Box::new(|_| Deployable {
            kind: "container/docker".into(),
            definition: "vamp-test/demo-app:1".into(),
        }),
        missing: Deployable::default(),
        exits: Deployable::default(),
    };
    let spec = driver::demo_spec(&fixtures, "rbac", "1.0.0", 1);
    driver.deploy(&spec).await.expect("deploy");
    driver::wait_for(&driver, &spec.key, "one pod ready", |s| {
        s.is_some_and(|s| s.instances.len() == 1 && s.instances.iter().all(|i| i.deployed))
    })
    .await;
    let scaled = driver::demo_spec(&fixtures, "rbac", "1.0.0", 2);
    driver.deploy(&scaled).await.expect("scale");

    let gateway = |name: &str, port: u16| GatewayEndpoint {
        name: name.into(),
        host: "127.0.0.1".into(),
        port,
    };
    driver
        .publish_gateways(&[gateway("rbac/web", 40000), gateway("other", 40001)])
        .await
        .expect("publish");
    driver
        .publish_gateways(&[gateway("rbac/web", 40002)])
        .await
        .expect("publish a changed one, remove the other");

    let run = RunSpec {
        name: "rbac".into(),
        breed: Breed {
            name: "rbac:1".into(),
            deployable: Deployable {
                kind: "container/docker".into(),
                definition: "vamp-test/run-prints:1".into(),
            },
            ..Breed::default()
        },
        environment: Default::default(),
        timeout: Duration::from_secs(60),
    };
    let lines = std::sync::Mutex::new(Vec::new());
    let sink = |l: vamp_core::traits::LogLine| lines.lock().expect("lines").push(l.text);
    let outcome = driver.run_once(&run, &sink).await.expect("run");
    assert_eq!(outcome.status, Some(0), "{outcome:?}");
    assert_eq!(*lines.lock().expect("lines"), ["done"]);

    driver.undeploy(&spec.key).await.expect("undeploy");
    assert_eq!(
        fake.verbs(),
        allowed(),
        "the Role in deploy/kubernetes/rbac.yaml must allow exactly what the driver asks for"
    );
}
