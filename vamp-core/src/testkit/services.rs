//! Real services for integration tests (ARCHITECTURE, "Tests that need real services").
//!
//! `scripts/test.sh` starts the services and exports `VAMP_TEST_SERVICES` (e.g.
//! `etcd zookeeper postgres docker haproxy`) plus one address variable per service,
//! `VAMP_TEST_<NAME>` (e.g. `VAMP_TEST_ETCD=http://127.0.0.1:23790`).
//!
//! One file: the real services tests start, one short function each, sharing the same
//! start-wait-stop helpers.

/// The address of a real service for this test, or `None` to skip.
///
/// - Listed in `VAMP_TEST_SERVICES` → its address from `VAMP_TEST_<NAME>`; the test then uses
///   it and **fails** if the service cannot be reached. Listed without an address → panic.
/// - Not listed, in CI (`CI=true`, which `scripts/test.sh` sets once it started the services)
///   → panic: a service CI is meant to have is missing, and that is a failure, not a skip.
/// - Not listed elsewhere → `SKIPPED: …` on the terminal (written past the test harness's
///   output capture, so it shows for a passing test too) and `None`, so a plain `cargo test`
///   works on a laptop without the services.
pub fn service(name: &str) -> Option<String> {
    let listed = std::env::var("VAMP_TEST_SERVICES").unwrap_or_default();
    if !listed
        .split([' ', ','])
        .any(|s| s.eq_ignore_ascii_case(name))
    {
        let why = format!(
            "service '{name}' is not in VAMP_TEST_SERVICES ('{listed}'); scripts/test.sh starts it"
        );
        if in_ci() {
            panic!("{why} — CI=true, so a missing service fails the test");
        }
        skipped(&why);
        return None;
    }
    let var = format!("VAMP_TEST_{}", name.to_ascii_uppercase().replace('-', "_"));
    match std::env::var(&var) {
        Ok(address) if !address.is_empty() => Some(address),
        _ => panic!("VAMP_TEST_SERVICES lists '{name}' but {var} is not set"),
    }
}

/// The binary of a service listed in `VAMP_TEST_SERVICES`, from `VAMP_TEST_<NAME>_BIN`: for
/// tests that start private instances (outages, authentication, TLS).
///
/// # Panics
/// When the variable is not set: `scripts/services.sh` sets it with the service.
pub fn service_binary(name: &str) -> std::path::PathBuf {
    let var = format!(
        "VAMP_TEST_{}_BIN",
        name.to_ascii_uppercase().replace('-', "_")
    );
    std::env::var(&var)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| panic!("{var} is set with the {name} service (scripts/services.sh)"))
}

/// Whether the tests run in CI: `CI` is `true` or `1` (as CI systems and `scripts/test.sh` set it).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Prints `SKIPPED: <why>` where it shows: straight to the process's stderr, which the test
/// harness does not capture (it captures only the `print!` family).
pub fn skipped(why: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {why}");
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
    tls: Option<EtcdTlsFiles>,
    child: Option<tokio::process::Child>,
}

/// Certificate files for a private etcd that serves clients over TLS and requires client
/// certificates signed by `ca`.
#[derive(Debug, Clone)]
pub struct EtcdTlsFiles {
    /// The server certificate (PEM).
    pub cert: std::path::PathBuf,
    /// Its private key (PEM).
    pub key: std::path::PathBuf,
    /// The CA that signs client certificates (PEM).
    pub ca: std::path::PathBuf,
}

/// What a client of [`PrivateEtcd::start_tls`] needs: the CA to trust, a client certificate
/// and its key (PEM files).
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// The CA that signed etcd's certificate.
    pub ca: std::path::PathBuf,
    /// The client certificate.
    pub cert: std::path::PathBuf,
    /// Its key.
    pub key: std::path::PathBuf,
}

/// Makes a CA, a server certificate for 127.0.0.1 and a client certificate with the openssl
/// command, in `dir`; returns (CA, server cert, server key, client cert, client key) paths.
///
/// # Panics
/// When `openssl` is missing or fails: a TLS test cannot go on then.
pub fn tls_certificates(dir: &std::path::Path) -> [std::path::PathBuf; 5] {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl command (scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .expect("write san.cnf");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=vamp-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    for name in ["server", "client"] {
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.cnf",
            "-out",
            &format!("{name}.pem"),
        ]);
    }
    [
        "ca.pem",
        "server.pem",
        "server.key",
        "client.pem",
        "client.key",
    ]
    .map(|f| dir.join(f))
}

impl PrivateEtcd {
    /// Starts it and waits (at most 20 s) until its client port accepts connections.
    pub async fn start(binary: impl Into<std::path::PathBuf>, dir: &std::path::Path) -> Self {
        Self::start_with(binary, dir, None).await
    }

    /// A private etcd over TLS with client-certificate authentication: certificates made in
    /// `dir` ([`tls_certificates`]), the binary from `VAMP_TEST_ETCD_BIN`
    /// ([`service_binary`]). Returns it and what a client needs to reach it.
    pub async fn start_tls(dir: &std::path::Path) -> (Self, ClientTls) {
        let [ca, cert, key, client_cert, client_key] = tls_certificates(dir);
        let files = EtcdTlsFiles {
            cert,
            key,
            ca: ca.clone(),
        };
        let etcd = Self::start_with(service_binary("etcd"), dir, Some(files)).await;
        let client = ClientTls {
            ca,
            cert: client_cert,
            key: client_key,
        };
        (etcd, client)
    }

    /// Like [`start`](Self::start), serving clients over TLS when `tls` is given.
    pub async fn start_with(
        binary: impl Into<std::path::PathBuf>,
        dir: &std::path::Path,
        tls: Option<EtcdTlsFiles>,
    ) -> Self {
        let free = super::free_port;
        let mut etcd = PrivateEtcd {
            binary: binary.into(),
            dir: dir.to_owned(),
            client: free(),
            peer: free(),
            tls,
            child: None,
        };
        etcd.resume().await;
        etcd
    }

    /// The client URL (`https://` with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client)
    }

    /// Starts it again (same ports, same data) after [`stop`](Self::stop).
    pub async fn resume(&mut self) {
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let log = std::fs::File::create(self.dir.join("etcd.log")).expect("etcd log file");
        let mut command = tokio::process::Command::new(&self.binary);
        if let Some(tls) = &self.tls {
            command
                .arg("--cert-file")
                .arg(&tls.cert)
                .arg("--key-file")
                .arg(&tls.key)
                .arg("--trusted-ca-file")
                .arg(&tls.ca)
                .arg("--client-cert-auth");
        }
        let child = command
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
        wait_for_port(self.client, "private etcd").await;
    }

    /// Stops it: SIGTERM to the child's PID, SIGKILL after 10 s.
    pub async fn stop(&mut self) {
        stop_child(self.child.take()).await;
    }
}

/// Waits (at most 30 s) until `port` on loopback accepts connections.
async fn wait_for_port(port: u16, what: &str) {
    super::eventually_within(
        &format!("{what} to listen on port {port}"),
        std::time::Duration::from_secs(30),
        || tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await;
}

/// SIGTERM to our own child's PID, SIGKILL after 10 s.
async fn stop_child(child: Option<tokio::process::Child>) {
    let Some(mut child) = child else { return };
    if let Some(pid) = child.id() {
        // Through the `kill` utility: vamp-core links no signals crate.
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

/// A private ZooKeeper (standalone, `java` with `classpath`) on a free loopback port, for
/// outage tests; its data under `dir`, stopped by the PID of the JVM it started, startable
/// again on the same port and data. Runs with `jute.maxbuffer` at 8 MiB, as
/// `scripts/services.sh` runs the shared one.
#[derive(Debug)]
pub struct PrivateZookeeper {
    classpath: String,
    dir: std::path::PathBuf,
    port: u16,
    child: Option<tokio::process::Child>,
}

impl PrivateZookeeper {
    /// Writes its config, starts it and waits until its port accepts connections.
    pub async fn start(classpath: impl Into<String>, dir: &std::path::Path) -> Self {
        let port = super::free_port();
        let config = format!(
            "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={port}\n\
             clientPortAddress=127.0.0.1\nadmin.enableServer=false\n\
             4lw.commands.whitelist=ruok,srvr\nmaxSessionTimeout=60000\n",
            dir.join("data").display()
        );
        std::fs::write(dir.join("zoo.cfg"), config).expect("write zoo.cfg");
        let mut zookeeper = PrivateZookeeper {
            classpath: classpath.into(),
            dir: dir.to_owned(),
            port,
            child: None,
        };
        zookeeper.resume().await;
        zookeeper
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts it again (same port, same data) after [`stop`](Self::stop).
    pub async fn resume(&mut self) {
        let log = std::fs::File::create(self.dir.join("zookeeper.log")).expect("zookeeper log");
        let child = tokio::process::Command::new("java")
            .args([
                "-Xmx256m",
                "-Djute.maxbuffer=8388608",
                "-cp",
                &self.classpath,
            ])
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(self.dir.join("zoo.cfg"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn java for ZooKeeper");
        self.child = Some(child);
        // The port opens (and `ruok` answers `imok`) before the server serves sessions; `srvr`
        // reports a mode only once it does.
        let what = format!(
            "the private ZooKeeper to serve (see {})",
            self.dir.join("zookeeper.log").display()
        );
        super::eventually_within(&what, std::time::Duration::from_secs(60), || self.is_ok()).await;
    }

    async fn is_ok(&self) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let ask = async {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
            stream.write_all(b"srvr").await?;
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await?;
            std::io::Result::Ok(String::from_utf8_lossy(&answer).contains("Mode: "))
        };
        matches!(
            tokio::time::timeout(std::time::Duration::from_secs(2), ask).await,
            Ok(Ok(true))
        )
    }

    /// Stops it: SIGTERM to the JVM's PID, SIGKILL after 10 s.
    pub async fn stop(&mut self) {
        stop_child(self.child.take()).await;
    }
}

#[async_trait::async_trait]
impl super::kv::Restartable for PrivateEtcd {
    async fn stop(&mut self) {
        PrivateEtcd::stop(self).await;
    }
    async fn resume(&mut self) {
        PrivateEtcd::resume(self).await;
    }
}

#[async_trait::async_trait]
impl super::kv::Restartable for PrivateZookeeper {
    async fn stop(&mut self) {
        PrivateZookeeper::stop(self).await;
    }
    async fn resume(&mut self) {
        PrivateZookeeper::resume(self).await;
    }
}

/// A private Prometheus on a free loopback port scraping `targets` (`host:port`, path
/// `/metrics`) every `scrape`: for rollout provider tests. Its data under `dir`; stopped by
/// the PID of the child it started, startable again on the same port and data.
#[derive(Debug)]
pub struct PrivatePrometheus {
    binary: std::path::PathBuf,
    dir: std::path::PathBuf,
    port: u16,
    child: Option<tokio::process::Child>,
}

impl PrivatePrometheus {
    /// Writes its config, starts it and waits until it answers `/-/ready`.
    pub async fn start(
        binary: impl Into<std::path::PathBuf>,
        dir: &std::path::Path,
        targets: &[String],
        scrape: std::time::Duration,
    ) -> Self {
        let port = super::free_port();
        let interval = format!("{}ms", scrape.as_millis());
        let jobs: String = targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                format!(
                    "  - job_name: target{i}\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['{t}']\n"
                )
            })
            .collect();
        let config = format!(
            "global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\nscrape_configs:\n{jobs}"
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("write prometheus.yml");
        let mut prometheus = PrivatePrometheus {
            binary: binary.into(),
            dir: dir.to_owned(),
            port,
            child: None,
        };
        prometheus.resume().await;
        prometheus
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts it again (same port, same data) after [`stop`](Self::stop).
    pub async fn resume(&mut self) {
        let log = std::fs::File::create(self.dir.join("prometheus.log")).expect("log file");
        let child = tokio::process::Command::new(&self.binary)
            .arg(format!(
                "--config.file={}",
                self.dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                self.dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn prometheus");
        self.child = Some(child);
        wait_for_port(self.port, "private Prometheus").await;
        let what = format!(
            "the private Prometheus to be ready (see {})",
            self.dir.join("prometheus.log").display()
        );
        super::eventually_within(&what, std::time::Duration::from_secs(30), || self.ready()).await;
    }

    async fn ready(&self) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let ask = async {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
            stream
                .write_all(b"GET /-/ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                .await?;
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await?;
            std::io::Result::Ok(
                answer.starts_with(b"HTTP/1.0 200") || answer.starts_with(b"HTTP/1.1 200"),
            )
        };
        matches!(
            tokio::time::timeout(std::time::Duration::from_secs(2), ask).await,
            Ok(Ok(true))
        )
    }

    /// Stops it: SIGTERM to the child's PID, SIGKILL after 10 s.
    pub async fn stop(&mut self) {
        stop_child(self.child.take()).await;
    }
}
