//! Real services for integration tests (ARCHITECTURE, "Tests that need real services").
//!
//! `scripts/test.sh` starts the services and exports `VAMP_TEST_SERVICES` (e.g.
//! `etcd zookeeper postgres docker haproxy`) plus one address variable per service,
//! `VAMP_TEST_<NAME>` (e.g. `VAMP_TEST_ETCD=http://127.0.0.1:23790`).

/// The address of a real service for this test, or `None` to skip.
///
/// - Listed in `VAMP_TEST_SERVICES` → its address from `VAMP_TEST_<NAME>`; the test then uses
///   it and **fails** if the service cannot be reached. Listed without an address → panic.
/// - Not listed → prints why the test is skipped and returns `None`, so a plain `cargo test`
///   works on a laptop without the services.
pub fn service(name: &str) -> Option<String> {
    let listed = std::env::var("VAMP_TEST_SERVICES").unwrap_or_default();
    if !listed
        .split([' ', ','])
        .any(|s| s.eq_ignore_ascii_case(name))
    {
        eprintln!(
            "skipped: service '{name}' is not in VAMP_TEST_SERVICES ('{listed}'); scripts/test.sh starts it"
        );
        return None;
    }
    let var = format!("VAMP_TEST_{}", name.to_ascii_uppercase().replace('-', "_"));
    match std::env::var(&var) {
        Ok(address) if !address.is_empty() => Some(address),
        _ => panic!("VAMP_TEST_SERVICES lists '{name}' but {var} is not set"),
    }
}

/// A private etcd on free loopback ports, for outage tests: started from `binary` with its
/// data under `dir`, stopped (SIGTERM, then SIGKILL after 10 s) by the PID of the child it
/// started, and startable again on the same ports and data.
#[derive(Debug)]
pub struct PrivateEtcd {
    binary: std::path::PathBuf,
    dir: std::path::PathBuf,
    client: u16,
    peer: u16,
    child: Option<tokio::process::Child>,
}

impl PrivateEtcd {
    /// Starts it and waits (at most 20 s) until its client port accepts connections.
    pub async fn start(binary: impl Into<std::path::PathBuf>, dir: &std::path::Path) -> Self {
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port")
        };
        let mut etcd = PrivateEtcd {
            binary: binary.into(),
            dir: dir.to_owned(),
            client: free(),
            peer: free(),
            child: None,
        };
        etcd.resume().await;
        etcd
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }

    /// Starts it again (same ports, same data) after [`stop`](Self::stop).
    pub async fn resume(&mut self) {
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let log = std::fs::File::create(self.dir.join("etcd.log")).expect("etcd log file");
        let child = tokio::process::Command::new(&self.binary)
            .args(["--name", "private", "--logger=zap", "--log-outputs=stderr"])
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args([
                "--listen-client-urls",
                &self.url(),
                "--advertise-client-urls",
                &self.url(),
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args([
                "--initial-cluster",
                &format!("private={peer}"),
                "--initial-cluster-state",
                "new",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn etcd");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.client))
            .await
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "private etcd did not listen within 20 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Stops it: SIGTERM to the child's PID, SIGKILL after 10 s.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                // SIGTERM to our own child's PID, through the `kill` utility (vamp-core links
                // no signals crate); SIGKILL below if it does not exit.
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
            if tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
}
