//! The server on each backend its configuration can name: artifacts survive a restart on the
//! real PostgreSQL, etcd and ZooKeeper that scripts/test.sh starts, on the local fakes of
//! Consul and Elasticsearch (no real one runs here), gateways are published to etcd for
//! agents, the Docker driver reaches the test dockerd, a deployment on the test swarm answers
//! through the embedded gateway, and a deployment answers through a local HAProxy. Each test needs its cargo feature (test.sh builds them all).

// Built with only some backends, some helpers have no test to serve.
#![cfg_attr(
    not(all(
        feature = "postgres",
        feature = "etcd",
        feature = "etcd-tls",
        feature = "zookeeper",
        feature = "consul",
        feature = "elasticsearch",
        feature = "docker",
        feature = "swarm",
        feature = "haproxy"
    )),
    allow(dead_code, unused_imports)
)]

mod common;

use common::{Server, delete, get, parse, post, put, send};
use reqwest::Method;

use vamp_core::testkit::unique;

/// Stores a breed, restarts the server on the same configuration, reads it back and deletes
/// it; `/info` names the backends.
async fn artifacts_survive_a_restart(flags: &[(&str, &str)], persistence: &str) {
    let name = format!("{}:1.0", unique("keep"));
    let breed = format!("name: {name}\ndeployable: {{type: command, definition: /bin/true}}\n");
    let server = Server::start(flags).await;
    post(201, &format!("{}/breeds", server.url), &breed).await;
    let (_, _, info) = send(Method::GET, &format!("{}/info", server.url), None).await;
    assert_eq!(parse(&info)["persistence"]["type"], persistence, "{info}");
    server.stop().await;
    let server = Server::start(flags).await;
    let url = format!("{}/breeds/{name}", server.url);
    let body = get(200, &url).await;
    assert_eq!(parse(&body)["name"], name.as_str());
    delete(204, &url, None).await;
    server.stop().await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres() {
    let Some(url) = vamp_core::testkit::services::service("postgres") else {
        return;
    };
    artifacts_survive_a_restart(
        &[("persistence.kind", "postgres"), ("persistence.url", &url)],
        "postgres",
    )
    .await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_backend_is_named_when_the_server_starts() {
    let config = vamp_server::config::ServerConfig::load(
        None,
        [],
        [
            ("persistence.kind".to_owned(), "postgres".to_owned()),
            (
                "persistence.url".to_owned(),
                "postgres://vamp@127.0.0.1:1/vamp".to_owned(),
            ),
        ],
    )
    .expect("config");
    let err = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        vamp_server::App::build(config),
    )
    .await
    .expect("bounded")
    .expect_err("nothing listens on port 1")
    .to_string();
    assert!(
        err.contains("persistence (postgres)") && err.contains("127.0.0.1:1"),
        "{err}"
    );
}

#[cfg(all(feature = "etcd", feature = "haproxy"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_etcd_with_gateways_published_for_agents() {
    use vamp_core::traits::KeyValueStore;
    let Some(url) = vamp_core::testkit::services::service("etcd") else {
        return;
    };
    let root = format!("/vamp/{}", unique("server"));
    let flags = [
        ("key_value.kind", "etcd"),
        ("key_value.servers", url.as_str()),
        ("key_value.root", root.as_str()),
        ("persistence.kind", "key-value"),
        ("router.kind", "haproxy-kv"),
    ];
    artifacts_survive_a_restart(&flags, "key-value").await;
    // Dynamic settings are kept in the store too, so they outlive a restart.
    let server = Server::start(&flags).await;
    let config = format!("{}/config", server.url);
    put(202, &config, "server.body_limit: 65536\n").await;
    server.stop().await;
    let server = Server::start(&flags).await;
    let (_, _, body) = send(
        Method::GET,
        &format!("{}/config?type=dynamic", server.url),
        None,
    )
    .await;
    assert_eq!(parse(&body)["server.body_limit"], 65536, "{body}");
    server.stop().await;
    // The reconciler's first pass published the (empty) list of gateways for agents.
    let etcd = vamp_drivers::etcd::EtcdStore::connect(vamp_drivers::etcd::EtcdConfig::new(url))
        .await
        .expect("etcd");
    let list = etcd
        .get(&format!("{root}/gateways"))
        .await
        .expect("get")
        .expect("the gateway list is published");
    assert_eq!(list.value, b"[]");
    let stored = etcd.list(&format!("{root}/")).await.expect("list");
    assert!(
        stored
            .entries
            .iter()
            .any(|e| e.key.contains("/artifacts/breeds/") || e.key.contains("/history/breeds/")),
        "artifacts are kept under the root: {:?}",
        stored.entries.iter().map(|e| &e.key).collect::<Vec<_>>()
    );
}

#[cfg(feature = "zookeeper")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_zookeeper() {
    let Some(servers) = vamp_core::testkit::services::service("zookeeper") else {
        return;
    };
    let root = format!("/vamp/{}", unique("server"));
    artifacts_survive_a_restart(
        &[
            ("key_value.kind", "zookeeper"),
            ("key_value.servers", servers.as_str()),
            ("key_value.root", root.as_str()),
            ("persistence.kind", "key-value"),
        ],
        "key-value",
    )
    .await;
}

#[cfg(feature = "consul")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_consul_as_faked() {
    let mut consul = vamp_drivers::fakes::consul::FakeConsul::start()
        .await
        .expect("fake consul");
    let url = consul.url();
    artifacts_survive_a_restart(
        &[
            ("key_value.kind", "consul"),
            ("key_value.servers", url.as_str()),
            ("persistence.kind", "key-value"),
        ],
        "key-value",
    )
    .await;
    consul.stop().await;
}

#[cfg(feature = "elasticsearch")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_elasticsearch_as_faked_with_basic_auth() {
    use vamp_drivers::fakes::elasticsearch::{FakeElasticsearch, FakeElasticsearchConfig};
    let mut es = FakeElasticsearch::start_with(FakeElasticsearchConfig {
        credentials: Some(("vamp".into(), "s3cret".into())),
        ..FakeElasticsearchConfig::default()
    })
    .await
    .expect("fake elasticsearch");
    let url = es.url();
    artifacts_survive_a_restart(
        &[
            ("persistence.kind", "elasticsearch"),
            ("persistence.url", url.as_str()),
            ("persistence.credentials", "vamp:s3cret"),
        ],
        "elasticsearch",
    )
    .await;
    es.stop().await;
}

#[cfg(feature = "etcd-tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_etcd_over_tls_with_a_client_certificate() {
    use vamp_core::testkit::services::PrivateEtcd;
    let Some(_) = vamp_core::testkit::services::service("etcd") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut etcd, client) = PrivateEtcd::start_tls(dir.path()).await;
    let (ca, client_cert, client_key) = (client.ca, client.cert, client.key);
    let url = etcd.url();
    let (ca, client_cert, client_key) = (
        ca.display().to_string(),
        client_cert.display().to_string(),
        client_key.display().to_string(),
    );
    artifacts_survive_a_restart(
        &[
            ("key_value.kind", "etcd"),
            ("key_value.servers", url.as_str()),
            ("key_value.ca", ca.as_str()),
            ("key_value.cert", client_cert.as_str()),
            ("key_value.key", client_key.as_str()),
            ("persistence.kind", "key-value"),
        ],
        "key-value",
    )
    .await;
    etcd.stop().await;
}

#[cfg(feature = "docker")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docker_driver_reaches_the_daemon() {
    let Some(host) = vamp_core::testkit::services::service("docker") else {
        return;
    };
    let server = Server::start(&[("driver.kind", "docker"), ("driver.docker_host", &host)]).await;
    let info = get(200, &format!("{}/info", server.url)).await;
    assert_eq!(parse(&info)["container_driver"]["type"], "docker");
    server.stop().await;
}

/// GETs `url` until it answers 2xx (a bounded poll: 60 s); the body.
/// The demo service's breed `app:<version>` as an image: the one scripts/images.sh builds
/// (Swarm), or the one the fake Kubernetes kubelet runs; its version comes from the
/// environment.
fn demo_image_breed(version: &str) -> String {
    format!(
        "name: app:{version}\ndeployable: vamp-test/demo-app:1\n\
         ports: {{web: 8080/http}}\nenvironment_variables: {{VAMP_DEMO_VERSION: {version}}}\n"
    )
}

async fn first_answer(url: &str) -> String {
    let client = reqwest::Client::new();
    let what = format!("an answer from {url}");
    vamp_core::testkit::eventually_within(&what, std::time::Duration::from_secs(60), || async {
        let r = client.get(url).send().await.ok()?;
        if r.status().is_success() {
            r.text().await.ok()
        } else {
            None
        }
    })
    .await
}

#[cfg(feature = "swarm")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_on_swarm_answers_through_the_gateway() {
    let Some(host) = vamp_core::testkit::services::service("swarm") else {
        return;
    };
    let gateway = vamp_core::testkit::free_port();
    let server = Server::start(&[
        ("driver.kind", "swarm"),
        ("driver.docker_host", &host),
        // Apart from the process driver of the tests running beside this one, and below the
        // kernel's ephemeral range (32768+), where other tests take free ports from.
        ("driver.ports", "28500-28999"),
    ])
    .await;
    let u = &server.url;
    let info = get(200, &format!("{u}/info")).await;
    assert_eq!(parse(&info)["container_driver"]["type"], "swarm");
    post(201, &format!("{u}/breeds"), &demo_image_breed("2.0.0")).await;
    let name = unique("swarm");
    let blueprint =
        format!("name: {name}\ngateways:\n  {gateway}: c/web\nclusters:\n  c: app:2.0.0\n");
    common::deploy(u, &name, &blueprint).await;
    let answer = first_answer(&format!("http://127.0.0.1:{gateway}/")).await;
    assert_eq!(answer.lines().next(), Some("2.0.0"), "{answer}");
    common::undeploy(u, &name, "name: x\nclusters:\n  c: app:2.0.0\n").await;
    server.stop().await;
}

#[cfg(feature = "haproxy")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_answers_through_a_local_haproxy() {
    let Some(haproxy) = vamp_core::testkit::services::service("haproxy") else {
        return;
    };
    let gateway = vamp_core::testkit::free_port();
    let server = Server::start(&[
        ("router.kind", "haproxy-local"),
        ("router.haproxy", haproxy.as_str()),
    ])
    .await;
    let u = &server.url;
    common::store_demo_breed(u).await;
    let blueprint = format!("name: s\ngateways:\n  {gateway}: c/web\nclusters:\n  c: app:1.0.0\n");
    common::deploy(u, "s", &blueprint).await;
    // Bounded poll: the instance starts, the reconciler resolves it, HAProxy reloads.
    let answer = first_answer(&format!("http://127.0.0.1:{gateway}/")).await;
    assert!(answer.contains("1.0.0"), "{answer}");
    common::undeploy(u, "s", "name: s\nclusters:\n  c: app:1.0.0\n").await;
    server.stop().await;
}

/// The fake API server whose kubelet runs the demo service as local processes, and a
/// kubeconfig file (in `dir`) that points at it.
#[cfg(feature = "kubernetes")]
async fn kubernetes_fake(
    dir: &std::path::Path,
) -> (
    vamp_drivers::fakes::kubernetes::FakeKubernetes,
    std::path::PathBuf,
) {
    let fake = vamp_drivers::fakes::kubernetes::FakeKubernetes::start_with_kubelet(
        [(
            "vamp-test/demo-app:1".to_owned(),
            vec![vamp_core::testkit::demo_app().display().to_string()],
        )],
        "VAMP_DEMO_HOST",
    )
    .await
    .expect("fake");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"{}\"}}\nusers:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: fake}}\ncurrent-context: fake\n",
            fake.url()
        ),
    )
    .expect("kubeconfig");
    (fake, kubeconfig)
}

/// `driver.kind = 'kubernetes'` against the fake API server, whose kubelet runs the demo
/// service as local processes: a blueprint deployed through the API becomes a Deployment that
/// answers through the gateway; scaled, the Deployment follows; undeployed, it goes.
#[cfg(feature = "kubernetes")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_on_kubernetes_answers_through_the_gateway() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (fake, kubeconfig) = kubernetes_fake(dir.path()).await;
    let gateway = vamp_core::testkit::free_port();
    let server = Server::start(&[
        ("driver.kind", "kubernetes"),
        ("driver.kubeconfig", &kubeconfig.display().to_string()),
        ("driver.namespace", "default"),
    ])
    .await;
    let u = &server.url;
    let info = get(200, &format!("{u}/info")).await;
    assert_eq!(parse(&info)["container_driver"]["type"], "kubernetes");
    post(201, &format!("{u}/breeds"), &demo_image_breed("3.0.0")).await;
    let name = unique("kube");
    let blueprint =
        format!("name: {name}\ngateways:\n  {gateway}: c/web\nclusters:\n  c: app:3.0.0\n");
    common::deploy(u, &name, &blueprint).await;
    let answer = first_answer(&format!("http://127.0.0.1:{gateway}/")).await;
    assert_eq!(answer.lines().next(), Some("3.0.0"), "{answer}");
    let deployments = || fake.objects("apps/v1", "Deployment", "default");
    assert_eq!(deployments().len(), 1, "one Deployment for the one service");
    assert_eq!(
        deployments()[0]["metadata"]["annotations"]["io.vamp/deployment"],
        name.as_str()
    );
    // Scaled through the API: the Deployment's replicas follow.
    common::put(
        202,
        &format!("{u}/deployments/{name}/clusters/c/services/app:3.0.0/scale"),
        "instances: 2\ncpu: 0.1\nmemory: 64MB\n",
    )
    .await;
    vamp_core::testkit::eventually_within(
        "2 instances on the fake",
        std::time::Duration::from_secs(60),
        || async {
            let d = parse(&get(200, &format!("{u}/deployments/{name}")).await);
            let instances = d["clusters"]["c"]["services"][0]["instances"]
                .as_array()?
                .len();
            let replicas = deployments().first()?["spec"]["replicas"].as_u64()?;
            (instances == 2 && replicas == 2).then_some(())
        },
    )
    .await;
    common::undeploy(u, &name, "name: x\nclusters:\n  c: app:3.0.0\n").await;
    vamp_core::testkit::eventually_within(
        "the Deployment to go",
        std::time::Duration::from_secs(60),
        || async { deployments().is_empty().then_some(()) },
    )
    .await;
    server.stop().await;
}

/// issue 25: a server killed with `kill -9` while its deployment runs on Kubernetes, started
/// again on the same data, adopts the Deployment it made: after the restarted server deployed
/// a second service beside it (so its reconciler has looked at the first), the first one's
/// Deployment has the same `uid` and `resourceVersion`, and its pod is the same pod.
#[cfg(feature = "kubernetes")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_on_kubernetes_adopts_its_deployments_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (fake, kubeconfig) = kubernetes_fake(dir.path()).await;
    let (data, api) = (dir.path().join("data"), vamp_core::testkit::free_port());
    let ports = vamp_core::testkit::gateway_port_slice();
    let start = || {
        let running = vamp_core::testkit::child::Running::spawn(
            std::process::Command::new(env!("CARGO_BIN_EXE_vamp-server"))
                .arg("--data")
                .arg(&data)
                .args(["--listen", &format!("127.0.0.1:{api}")])
                .env("VAMP_GATEWAYS__PORTS", &ports)
                .env("VAMP_DRIVER__KIND", "kubernetes")
                .env("VAMP_DRIVER__KUBECONFIG", &kubeconfig)
                .env("VAMP_DRIVER__NAMESPACE", "default")
                .env("VAMP_SYNCHRONIZATION__PERIOD", "1")
                .env("VAMP_WORKFLOWS__STOCK", "false")
                .env("RUST_LOG", "warn"),
        );
        running.wait_for_line("vamp-server listening", std::time::Duration::from_secs(30));
        running
    };
    let u = format!("http://127.0.0.1:{api}/api/v1");
    let mut server = start();
    for version in ["1.0.0", "2.0.0"] {
        post(201, &format!("{u}/breeds"), &demo_image_breed(version)).await;
    }
    let name = unique("adopt");
    common::deploy(
        &u,
        &name,
        &format!("name: {name}\nclusters:\n  c: app:1.0.0\n"),
    )
    .await;
    let ready = |count: usize| {
        let u = u.clone();
        let name = name.clone();
        move || {
            let (u, name) = (u.clone(), name.clone());
            async move {
                let d = parse(&get(200, &format!("{u}/deployments/{name}")).await);
                let services = d["clusters"]["c"]["services"].as_array()?.clone();
                let done = services.len() == count
                    && services.iter().all(|s| {
                        s["status"]["phase"]["name"] == "Done"
                            && s["instances"].as_array().is_some_and(|i| !i.is_empty())
                    });
                done.then_some(())
            }
        }
    };
    vamp_core::testkit::eventually_within(
        "1.0.0 deployed",
        std::time::Duration::from_secs(60),
        ready(1),
    )
    .await;
    let deployments = || fake.objects("apps/v1", "Deployment", "default");
    let pods = || {
        let mut names: Vec<String> = fake
            .objects("v1", "Pod", "default")
            .iter()
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        names
    };
    let first = deployments().pop().expect("the Deployment of 1.0.0");
    let pods_before = pods();
    assert_eq!(pods_before.len(), 1, "{pods_before:?}");

    // kill -9: no shutdown of any kind; then the same server again.
    server.child.kill().expect("SIGKILL");
    let _ = server.child.wait();
    let _server = start();
    common::deploy(
        &u,
        &name,
        &format!("name: {name}\nclusters:\n  c: app:2.0.0\n"),
    )
    .await;
    vamp_core::testkit::eventually_within(
        "2.0.0 deployed beside 1.0.0 by the restarted server",
        std::time::Duration::from_secs(60),
        ready(2),
    )
    .await;
    let now = deployments()
        .into_iter()
        .find(|d| d["metadata"]["name"] == first["metadata"]["name"])
        .expect("1.0.0's Deployment is still there");
    for field in ["uid", "resourceVersion"] {
        assert_eq!(
            now["metadata"][field], first["metadata"][field],
            "1.0.0's Deployment {field} changed: it was re-created or re-applied"
        );
    }
    assert_eq!(deployments().len(), 2);
    assert!(
        pods().contains(&pods_before[0]),
        "1.0.0's pod {} was replaced: {:?}",
        pods_before[0],
        pods()
    );
}
