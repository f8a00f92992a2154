//! Inputs shared by the benches.

/// A blueprint with `services` clusters, one inline breed each: ports, environment variables
/// with references to the previous cluster (a dependency), a scale, and a cluster gateway with
/// two weighted routes on every tenth cluster — the shape of a large real deployment.
pub fn blueprint(services: usize) -> String {
    let mut s = String::from("kind: blueprints\nname: big\ngateways:\n  9050: c0/web\nclusters:\n");
    for i in 0..services {
        s.push_str(&format!(
            "  c{i}:\n    services:\n      - breed:\n          name: svc-{i}:1.0.0\n          \
             deployable: registry.example/svc-{i}:1.0.0\n          ports:\n            web: 8080/http\n            \
             admin: 9000/tcp\n          environment_variables:\n            LOG_LEVEL: info\n            \
             WORKERS: \"4\"\n"
        ));
        if i > 0 {
            let p = i - 1;
            s.push_str(&format!(
                "            UPSTREAM: http://$up.host:$up.ports.web/api\n          dependencies:\n            \
                 up: svc-{p}:1.0.0\n"
            ));
        }
        s.push_str(
            "        scale:\n          cpu: 0.5\n          memory: 256MB\n          instances: 2\n",
        );
        if i % 10 == 0 {
            s.push_str(&format!(
                "      - breed:\n          name: svc-{i}:1.1.0\n          deployable: registry.example/svc-{i}:1.1.0\n          \
                 ports:\n            web: 8080/http\n            admin: 9000/tcp\n          environment_variables:\n            \
                 LOG_LEVEL: debug\n            WORKERS: \"4\"\n    gateways:\n      web:\n        routes:\n          \
                 svc-{i}:1.0.0:\n            weight: 90%\n          svc-{i}:1.1.0:\n            weight: 10%\n            \
                 condition: user-agent == Firefox\n"
            ));
        }
    }
    s
}

/// The runtime every bench drives its async parts on: two workers, as this machine has.
///
/// # Panics
/// When the runtime cannot start.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A server configuration on a free loopback port with its data in `dir`, and `flags`
/// (`section.key`, value) over that.
///
/// # Panics
/// When the flags do not make a configuration.
pub fn server_config(
    dir: &std::path::Path,
    flags: &[(&str, &str)],
) -> vamp_server::config::ServerConfig {
    let mut all = vec![
        ("server.listen".to_owned(), "127.0.0.1:0".to_owned()),
        ("server.data_dir".to_owned(), dir.display().to_string()),
    ];
    all.extend(
        flags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    vamp_server::config::ServerConfig::load(None, [], all).expect("config")
}

/// What the clients of a bounded load run (`length` long) measured, each task a client's
/// (latencies of answered requests, failures): (requests/s, p50, p99, failures).
///
/// # Panics
/// When a client task panicked.
pub async fn gather(
    clients: Vec<tokio::task::JoinHandle<(Vec<std::time::Duration>, u64)>>,
    length: std::time::Duration,
) -> (f64, std::time::Duration, std::time::Duration, u64) {
    let (mut all, mut failures) = (Vec::new(), 0);
    for t in clients {
        let (l, f) = t.await.expect("client task");
        all.extend(l);
        failures += f;
    }
    all.sort();
    let pct = |p: f64| {
        let i = ((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1));
        all.get(i).copied().unwrap_or_default()
    };
    (
        all.len() as f64 / length.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        failures,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bench_input_is_valid() {
        let text = super::blueprint(100);
        let artifacts = vamp_core::dsl::load(&text, None, None)
            .unwrap_or_else(|e| panic!("{}", e[0].display_with_file("bench")));
        let vamp_core::model::Artifact::Blueprint(bp) = &artifacts[0] else {
            panic!("not a blueprint")
        };
        assert_eq!(bp.clusters.len(), 100);
    }
}
