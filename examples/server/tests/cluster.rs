//! Servers sharing stores elect one leader (issue 24): `/info`'s `cluster`, `/metrics`'
//! `vamp_leader`, the `[election]` settings and their refusals, and a failover between two
//! servers on PostgreSQL.

mod common;

use common::{Server, get, parse};
use vamp_server::config::ServerConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_always_leads_and_says_so() {
    let server = Server::start(&[]).await;
    let info = parse(&get(200, &format!("{}/info", server.url)).await);
    let cluster = &info["cluster"];
    assert_eq!(cluster["leader"], true, "{info}");
    assert_eq!(cluster["term"], 1);
    assert_eq!(cluster["election"], "none");
    assert_eq!(cluster["leader_node"], cluster["node"]);
    let metrics = get(200, &server.url.replace("/api/v1", "/metrics")).await;
    assert!(metrics.contains("vamp_leader 1"), "{metrics}");
    server.stop().await;
}

#[test]
fn election_settings_that_cannot_work_are_refused_naming_the_fix() {
    let refused = |env: &[(&str, &str)]| {
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        ServerConfig::load(None, env, [])
            .expect_err("refused")
            .to_string()
    };
    let e = refused(&[("VAMP_ELECTION__KIND", "raft")]);
    assert!(
        e.contains("election.kind = 'raft'") && e.contains("postgres, etcd, zookeeper"),
        "{e}"
    );
    let e = refused(&[("VAMP_ELECTION__KIND", "postgres")]);
    assert!(e.contains("persistence.kind = 'postgres'"), "{e}");
    let e = refused(&[("VAMP_ELECTION__KIND", "etcd")]);
    assert!(e.contains("key_value.kind = 'etcd'"), "{e}");
    let e = refused(&[
        ("VAMP_ELECTION__KIND", "etcd"),
        ("VAMP_KEY_VALUE__KIND", "etcd"),
        ("VAMP_KEY_VALUE__SERVERS", "http://127.0.0.1:2379"),
        ("VAMP_DRIVER__KIND", "process"),
    ]);
    assert!(
        e.contains("driver.kind = 'process'") && e.contains("docker"),
        "{e}"
    );
    let e = refused(&[
        ("VAMP_ELECTION__KIND", "etcd"),
        ("VAMP_KEY_VALUE__KIND", "etcd"),
        ("VAMP_KEY_VALUE__SERVERS", "http://127.0.0.1:2379"),
        ("VAMP_DRIVER__KIND", "docker"),
    ]);
    assert!(e.contains("persistence.kind = 'sqlite'"), "{e}");
    let e = refused(&[
        ("VAMP_ELECTION__KIND", "etcd"),
        ("VAMP_KEY_VALUE__KIND", "etcd"),
        ("VAMP_KEY_VALUE__SERVERS", "http://127.0.0.1:2379"),
        ("VAMP_PERSISTENCE__KIND", "key-value"),
        ("VAMP_DRIVER__KIND", "docker"),
    ]);
    assert!(
        e.contains("persistence.kind = 'key-value' cannot fence")
            && e.contains("persistence.kind = 'postgres'"),
        "{e}"
    );
    let e = refused(&[
        ("VAMP_ELECTION__KIND", "etcd"),
        ("VAMP_KEY_VALUE__KIND", "etcd"),
        ("VAMP_KEY_VALUE__SERVERS", "http://127.0.0.1:2379"),
        ("VAMP_PERSISTENCE__KIND", "postgres"),
        (
            "VAMP_PERSISTENCE__URL",
            "postgres://vamp@127.0.0.1:5432/vamp",
        ),
        ("VAMP_DRIVER__KIND", "docker"),
        ("VAMP_ELECTION__TTL", "1"),
    ]);
    assert!(e.contains("election.ttl = 1"), "{e}");
}

/// The test PostgreSQL and dockerd, when both run (else SKIPPED, or a failure in CI).
#[cfg(all(feature = "postgres", feature = "docker"))]
fn ha_services() -> Option<(String, String)> {
    let postgres = vamp_core::testkit::services::service("postgres");
    let docker = vamp_core::testkit::services::service("docker");
    postgres.zip(docker)
}

/// A server of a cluster on the test PostgreSQL (persistence and election, scope `root`) and
/// dockerd, named `node`, with `extra` settings.
#[cfg(all(feature = "postgres", feature = "docker"))]
async fn ha_server(
    (postgres, docker): &(String, String),
    root: &str,
    node: &str,
    extra: &[(&str, &str)],
) -> Server {
    let mut settings = vec![
        ("driver.kind", "docker"),
        ("driver.docker_host", docker.as_str()),
        ("persistence.kind", "postgres"),
        ("persistence.url", postgres.as_str()),
        ("key_value.root", root),
        ("election.kind", "postgres"),
        ("election.ttl", "2"),
        ("election.node", node),
    ];
    settings.extend_from_slice(extra);
    Server::start_unset_driver(&settings).await
}

/// Two servers on the test PostgreSQL (persistence and election) and the test dockerd: one
/// leads; when it stops, the other takes over in a larger term.
#[cfg(all(feature = "postgres", feature = "docker"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_takes_over_when_the_leader_stops() {
    use vamp_core::testkit::eventually;
    let Some(services) = ha_services() else {
        return;
    };
    let root = format!("/{}", vamp_core::testkit::unique("ha"));
    let start = |node: &'static str| {
        let (services, root) = (services.clone(), root.clone());
        async move {
            let url = format!("http://{node}.test/api/v1");
            ha_server(&services, &root, node, &[("election.url", url.as_str())]).await
        }
    };
    let cluster = |server: &Server| {
        let u = server.url.clone();
        async move { parse(&get(200, &format!("{u}/info")).await)["cluster"].clone() }
    };
    let a = start("node-a").await;
    eventually("node-a to lead", || async {
        cluster(&a).await["leader"] == true
    })
    .await;
    let b = start("node-b").await;
    let seen = eventually("node-b to follow node-a", || async {
        let c = cluster(&b).await;
        (c["leader_node"] == "node-a").then_some(c)
    })
    .await;
    assert_eq!(seen["leader"], false);
    assert_eq!(seen["leader_url"], "http://node-a.test/api/v1");
    let term = seen["term"].as_u64().expect("term");
    let metrics = get(200, &b.url.replace("/api/v1", "/metrics")).await;
    assert!(metrics.contains("vamp_leader 0"), "{metrics}");
    // The leader stops (and resigns): the follower leads in a larger term, and says so.
    a.stop().await;
    let taken = eventually("node-b to lead", || async {
        let c = cluster(&b).await;
        (c["leader"] == true).then_some(c)
    })
    .await;
    assert!(taken["term"].as_u64() > Some(term), "{taken}");
    let events = parse(&get(200, &format!("{}/events?tag=cluster:leader", b.url)).await);
    assert_eq!(events[0]["value"]["node"], "node-b", "{events}");
    b.stop().await;
}

/// Every server routes (issue 24): a gateway stored through the follower and a weight changed
/// through the leader reach both servers' embedded routers, each on its own address, at
/// once — the resync is set to a minute, so only the change feed can carry them.
#[cfg(all(feature = "postgres", feature = "docker"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weight_changed_through_any_server_reaches_every_servers_router() {
    use vamp_core::testkit::eventually;
    let Some(services) = ha_services() else {
        return;
    };
    let root = format!("/{}", vamp_core::testkit::unique("ha-route"));
    let ports = vamp_core::testkit::gateway_port_slice();
    let start = |node: &'static str, host: &'static str| {
        let (services, root, ports) = (services.clone(), root.clone(), ports.clone());
        async move {
            let extra = [
                ("gateways.host", host),
                ("gateways.ports", ports.as_str()),
                ("synchronization.period", "60"),
            ];
            ha_server(&services, &root, node, &extra).await
        }
    };
    let a = start("node-a", "127.0.0.1").await;
    eventually("node-a to lead", || async {
        parse(&get(200, &format!("{}/info", a.url)).await)["cluster"]["leader"] == true
    })
    .await;
    let b = start("node-b", "127.0.0.2").await;
    let (one, two) = (
        vamp_gateway::testkit::backend("one").await,
        vamp_gateway::testkit::backend("two").await,
    );
    let name = vamp_core::testkit::unique("shared");
    let gateway = |port: u16, w1: u8, w2: u8| {
        format!(
            "name: {name}\nport: {port}/http\nroutes:\n  '[127.0.0.1:{one}]': {{weight: {w1}%}}\n  '[127.0.0.1:{two}]': {{weight: {w2}%}}\n"
        )
    };
    // Stored through the follower.
    common::post(202, &format!("{}/gateways", b.url), &gateway(0, 100, 0)).await;
    let port = common::gateway_port(&b.url, &name).await;
    let client = reqwest::Client::new();
    let answers = |host: &'static str| {
        let client = client.clone();
        async move {
            let mut seen = Vec::new();
            for _ in 0..10 {
                let body = match client.get(format!("http://{host}:{port}/")).send().await {
                    Ok(r) => r.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                // The backend's name, or (for a failure's message) what answered instead.
                let first = body.split(' ').next().unwrap_or_default();
                seen.push(if ["one", "two"].contains(&first) {
                    first.to_owned()
                } else {
                    body.chars().take(80).collect()
                });
            }
            seen
        }
    };
    for host in ["127.0.0.1", "127.0.0.2"] {
        eventually(
            &format!("{host} to serve the gateway from 'one'"),
            || async {
                let seen = answers(host).await;
                if seen.iter().all(|b| b == "one") {
                    Ok(())
                } else {
                    Err(seen)
                }
            },
        )
        .await;
    }
    // Flipped through the leader: both routers follow.
    common::put(
        202,
        &format!("{}/gateways/{name}", a.url),
        &gateway(port, 0, 100),
    )
    .await;
    for host in ["127.0.0.1", "127.0.0.2"] {
        eventually(
            &format!("{host} to serve the gateway from 'two'"),
            || async { answers(host).await.iter().all(|b| b == "two") },
        )
        .await;
    }
    a.stop().await;
    b.stop().await;
}
