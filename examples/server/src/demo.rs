//! `vamp-server --demo`: on the embedded defaults, two versions of the demo service (run by
//! this very executable's hidden `demo-app` subcommand) behind one gateway at 90/10.
//! Idempotent: a second run merges the same blueprint and adopts running processes. On
//! shutdown it undeploys the demo, so its processes stop.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vamp_core::dsl;
use vamp_core::model::Artifact;

use crate::App;

/// The demo deployment's name.
pub const DEPLOYMENT: &str = "vamp-demo";
/// The gateway port the demo asks for by default.
pub const DEFAULT_PORT: u16 = 9050;

/// The demo's artifacts: two breeds that run `exe demo-app`, and the blueprint.
///
/// ```
/// let text = vamp_server::demo::artifacts(std::path::Path::new("/usr/bin/vamp-server"), 9050);
/// let read = vamp_core::dsl::read(&text, None).unwrap();
/// assert_eq!(read.len(), 3);
/// ```
pub fn artifacts(exe: &Path, port: u16) -> String {
    // Single-quoted for the process driver's word splitting ('\'' as in a shell).
    let exe = exe.display().to_string().replace('\'', r"'\''");
    let breed = |version: &str| {
        format!(
            "kind: breeds\nname: demo:{version}\ndeployable:\n  type: command\n  definition: \"'{exe}' demo-app --app-version {version}\"\nports:\n  web: 8080/http\n"
        )
    };
    format!(
        "{}---\n{}---\nkind: blueprints\nname: {DEPLOYMENT}\ngateways:\n  {port}: demo/web\nclusters:\n  demo:\n    gateways:\n      web:\n        routes:\n          demo:1.0.0: {{weight: 90%}}\n          demo:1.1.0: {{weight: 10%}}\n    services:\n      - breed: demo:1.0.0\n      - breed: demo:1.1.0\n",
        breed("1.0.0"),
        breed("1.1.0")
    )
}

/// Stores the demo's breeds and deploys its blueprint (merging into a running demo).
///
/// # Errors
/// When the artifacts cannot be stored or deployed.
pub async fn deploy(app: &App, exe: &Path, port: u16) -> vamp_core::Result<()> {
    for artifact in dsl::read(&artifacts(exe, port), None)? {
        match artifact {
            Artifact::Blueprint(blueprint) => {
                app.vamp.deploy(DEPLOYMENT, &blueprint).await?;
            }
            other => {
                app.vamp.put(other).await?;
            }
        }
    }
    Ok(())
}

/// Waits (at most `limit`) until `http://127.0.0.1:<port>/` answers 200.
///
/// # Errors
/// A message saying what was last seen.
pub async fn wait_until_served(port: u16, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        match get_status(port).await {
            Ok(200) => return Ok(()),
            Ok(status) => last = format!("HTTP {status}"),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "the demo gateway on port {port} did not serve within {}s ({last})",
        limit.as_secs()
    ))
}

async fn get_status(port: u16) -> std::io::Result<u16> {
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        let head = String::from_utf8_lossy(&answer);
        head.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other("not an HTTP answer"))
    };
    tokio::time::timeout(Duration::from_secs(2), ask)
        .await
        .map_err(|_| std::io::Error::other("timed out"))?
}

/// Undeploys the demo and waits (at most `limit`) until its processes are gone.
pub async fn remove(app: &App, limit: Duration) {
    if let Err(e) = app.vamp.undeploy(DEPLOYMENT).await {
        tracing::warn!(error = %e, "could not undeploy the demo");
        return;
    }
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if matches!(app.vamp.deployment(DEPLOYMENT).await, Ok(None)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracing::warn!("the demo was not removed within {}s", limit.as_secs());
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The demo gateway's port is taken by another program.
    #[error(
        "the demo gateway port {port} is taken ({source}): stop what uses it, or choose another with --demo-port"
    )]
    PortTaken {
        /// The port.
        port: u16,
        /// Why it could not be bound.
        source: std::io::Error,
    },
    /// The server's own executable (which runs the demo service) cannot be found.
    #[error("cannot find the server's own executable for the demo service: {0}")]
    Executable(std::io::Error),
    /// The demo's artifacts could not be stored or deployed.
    #[error("the demo could not be deployed: {0}")]
    Deploy(#[from] vamp_core::Error),
    /// The gateway did not answer in time.
    #[error("{0}")]
    NotServed(String),
    /// Serving the API failed.
    #[error("serving the API failed: {0}")]
    Serve(std::io::Error),
}

/// Runs `vamp-server --demo`: serves the API on `listener`, deploys the demo with its gateway
/// on `port`, writes the ready line and what to try to `out`, and when `shutdown` resolves
/// removes the demo (its processes stop) and stops the server. The port is checked before
/// anything starts, so a taken one is reported at once.
///
/// # Errors
/// A [`DemoError`] saying what failed and how to fix it; the server is stopped then.
pub async fn run(
    app: &App,
    listener: tokio::net::TcpListener,
    port: u16,
    shutdown: impl Future<Output = ()> + Send + 'static,
    out: &mut (dyn std::io::Write + Send),
) -> Result<(), DemoError> {
    // Before the reconciler runs (it would bind the port itself for a stored demo).
    drop(
        std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port))
            .map_err(|source| DemoError::PortTaken { port, source })?,
    );
    let exe = std::env::current_exe().map_err(DemoError::Executable)?;
    let api = listener.local_addr().unwrap_or(app.config.server.listen);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = {
        let app = app.clone();
        tokio::spawn(async move {
            app.serve(listener, async {
                let _ = stopped.await;
            })
            .await
        })
    };
    let ready = async {
        deploy(app, &exe, port).await?;
        wait_until_served(port, Duration::from_secs(60))
            .await
            .map_err(DemoError::NotServed)
    };
    tokio::pin!(shutdown);
    let outcome = tokio::select! {
        r = ready => match r {
            Ok(()) => {
                let _ = writeln!(out, "vamp demo ready: gateway http://127.0.0.1:{port}/ api http://{api}/api/v1");
                let _ = writeln!(out, "  try: curl -s http://127.0.0.1:{port}/   (about 9 in 10 answers say 1.0.0)");
                let _ = writeln!(out, "       curl -s http://{api}/api/v1/deployments/{DEPLOYMENT}");
                let _ = writeln!(out, "       curl -sN http://{api}/api/v1/events/stream");
                let _ = writeln!(out, "  Ctrl-C stops the server and the demo's processes.");
                let _ = out.flush();
                (&mut shutdown).await;
                Ok(())
            }
            Err(e) => Err(e),
        },
        () = &mut shutdown => Ok(()),
    };
    let _ = writeln!(out, "stopping the demo");
    remove(app, Duration::from_secs(20)).await;
    let _ = stop.send(());
    let served = match server.await {
        Ok(served) => served.map_err(DemoError::Serve),
        Err(e) => Err(DemoError::Serve(std::io::Error::other(e))),
    };
    outcome.and(served)
}

/// Runs the demo service itself (the hidden `vamp-server demo-app` subcommand) on
/// `host:port`, answering as `config` says (its version, latency, error rate), until
/// `shutdown` resolves.
///
/// # Errors
/// When the address cannot be bound or serving fails.
pub async fn app(
    config: vamp_demo_app::DemoConfig,
    host: std::net::IpAddr,
    port: u16,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind((host, port))
        .await
        .map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {host}:{port}: {e}"))
        })?;
    vamp_demo_app::serve(listener, config, shutdown).await
}
