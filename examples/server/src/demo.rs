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

/// The demo rollout's name (`--demo-rollout`).
pub const ROLLOUT: &str = "vamp-demo-release";

/// Requests per second the demo sends through its gateway while its rollout works.
/// At 10% the canary gets 5 a second, so each 5 s analysis interval has its 20 requests
/// (at 20 a second it had 10, and a rollout often paused for lack of evidence:
/// `docs/performance.md`, "Rollouts").
pub const DEMO_RPS: u64 = 50;

/// What `--demo-rollout` adds: the canary starts at 0% and a rollout moves the traffic to it,
/// judging it on the way; the canary fails `canary_error_rate` of its requests.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DemoRollout {
    /// The canary's share of `500` answers, 0 to 1.
    pub canary_error_rate: f64,
}

/// The demo's artifacts: two breeds that run `exe demo-app`, the blueprint, and with
/// `rollout` the rollout.
///
/// ```
/// use std::path::Path;
/// use vamp_server::demo::{DemoRollout, artifacts};
/// let text = artifacts(Path::new("/usr/bin/vamp-server"), 9050, None);
/// assert_eq!(vamp_core::dsl::read(&text, None).unwrap().len(), 3);
/// let text = artifacts(Path::new("/usr/bin/vamp-server"), 9050, Some(DemoRollout { canary_error_rate: 0.2 }));
/// assert_eq!(vamp_core::dsl::read(&text, None).unwrap().len(), 4);
/// assert!(text.contains("--error-rate 0.2"));
/// ```
pub fn artifacts(exe: &Path, port: u16, rollout: Option<DemoRollout>) -> String {
    // Single-quoted for the process driver's word splitting ('\'' as in a shell).
    let exe = exe.display().to_string().replace('\'', r"'\''");
    let breed = |version: &str, error_rate: f64| {
        let errors = if error_rate > 0.0 {
            format!(" --error-rate {error_rate}")
        } else {
            String::new()
        };
        format!(
            "kind: breeds\nname: demo:{version}\ndeployable:\n  type: command\n  definition: \"'{exe}' demo-app --app-version {version}{errors}\"\nports:\n  web: 8080/http\n"
        )
    };
    let (stable, canary) = if rollout.is_some() {
        (100, 0)
    } else {
        (90, 10)
    };
    let mut text = format!(
        "{}---\n{}---\nkind: blueprints\nname: {DEPLOYMENT}\ngateways:\n  {port}: demo/web\nclusters:\n  demo:\n    gateways:\n      web:\n        routes:\n          demo:1.0.0: {{weight: {stable}%}}\n          demo:1.1.0: {{weight: {canary}%}}\n    services:\n      - breed: demo:1.0.0\n      - breed: demo:1.1.0\n",
        breed("1.0.0", 0.0),
        breed("1.1.0", rollout.map_or(0.0, |r| r.canary_error_rate))
    );
    if rollout.is_some() {
        // p90 rather than p99, and ten inconclusive intervals before a pause: a demo runs on
        // a laptop busy with other things, where one slow request among the canary's first
        // twenty leaves a p99 bound unsettled for ~170 requests — a pause, not a verdict.
        text.push_str(&format!(
            "---\nkind: rollouts\nname: {ROLLOUT}\ngateway: {DEPLOYMENT}/demo/web\nstable: {DEPLOYMENT}/demo/demo:1.0.0/web\ncanary: {DEPLOYMENT}/demo/demo:1.1.0/web\nsteps:\n  - weight: 10%\n  - analysis: {{}}\n  - weight: 50%\n  - analysis: {{}}\nanalysis:\n  interval: 5s\n  min_requests: 20\n  inconclusive_limit: 10\n  metrics:\n    - {{metric: success-rate, min: 99%, critical: true}}\n    - {{metric: latency-p90, max_ratio: 3}}\n"
        ));
    }
    text
}

/// Stores the demo's breeds and deploys its blueprint (merging into a running demo); with
/// `rollout`, the canary starts at 0% and the rollout is stored afresh once the gateway serves.
///
/// # Errors
/// When the artifacts cannot be stored or deployed.
pub async fn deploy(
    app: &App,
    exe: &Path,
    port: u16,
    rollout: Option<DemoRollout>,
) -> vamp_core::Result<Option<Artifact>> {
    // A rollout of an earlier run starts again from its first step.
    if app.vamp.rollout(ROLLOUT).await?.is_some() {
        app.vamp
            .delete(vamp_core::model::Kind::Rollout, ROLLOUT)
            .await?;
    }
    let mut later = None;
    for artifact in dsl::read(&artifacts(exe, port, rollout), None)? {
        match artifact {
            Artifact::Blueprint(blueprint) => {
                app.vamp.deploy(DEPLOYMENT, &blueprint).await?;
            }
            Artifact::Rollout(r) => later = Some(Artifact::Rollout(r)),
            other => {
                app.vamp.put(other).await?;
            }
        }
    }
    if later.is_some() {
        // A merge keeps the weights a running demo has: the canary starts at 0% again.
        let route = |v: &str| format!("{DEPLOYMENT}/demo/demo:{v}/web");
        app.vamp
            .set_route_weights(
                &format!("{DEPLOYMENT}/demo/web"),
                &[
                    (route("1.0.0"), vamp_core::model::Percentage::FULL),
                    (route("1.1.0"), vamp_core::model::Percentage::ZERO),
                ],
            )
            .await?;
    }
    Ok(later)
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

/// Undeploys the demo (and its rollout) and waits (at most `limit`) until its processes are
/// gone.
pub async fn remove(app: &App, limit: Duration) {
    if matches!(app.vamp.rollout(ROLLOUT).await, Ok(Some(_)))
        && let Err(e) = app
            .vamp
            .delete(vamp_core::model::Kind::Rollout, ROLLOUT)
            .await
    {
        tracing::warn!(error = %e, "could not delete the demo rollout");
    }
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
    rollout: Option<DemoRollout>,
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
        let later = deploy(app, &exe, port, rollout).await?;
        wait_until_served(port, Duration::from_secs(60))
            .await
            .map_err(DemoError::NotServed)?;
        Ok::<_, DemoError>(later)
    };
    tokio::pin!(shutdown);
    let outcome = tokio::select! {
        r = ready => match r {
            Ok(later) => {
                let _ = writeln!(out, "vamp demo ready: gateway http://127.0.0.1:{port}/ api http://{api}/api/v1");
                if later.is_none() {
                    let _ = writeln!(out, "  try: curl -s http://127.0.0.1:{port}/   (about 9 in 10 answers say 1.0.0)");
                }
                let _ = writeln!(out, "  web UI: http://{api}/ui/   (move the split with a slider, watch each route live)");
                let _ = writeln!(out, "       curl -s http://{api}/api/v1/deployments/{DEPLOYMENT}");
                let _ = writeln!(out, "       curl -sN http://{api}/api/v1/events/stream");
                let _ = writeln!(out, "  Ctrl-C stops the server and the demo's processes.");
                let _ = out.flush();
                match later {
                    Some(artifact) => follow_rollout(app, artifact, port, api, &mut shutdown, out).await,
                    None => {
                        (&mut shutdown).await;
                        Ok(())
                    }
                }
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

/// `--demo-rollout`: stores the rollout, sends [`DEMO_RPS`] requests per second through the
/// gateway while it works, and prints every step, verdict and phase change until it ends;
/// then waits for `shutdown`.
async fn follow_rollout(
    app: &App,
    rollout: Artifact,
    port: u16,
    api: std::net::SocketAddr,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
    out: &mut (dyn std::io::Write + Send),
) -> Result<(), DemoError> {
    use futures::StreamExt as _;
    let mut events = app.vamp.subscribe().await?;
    app.vamp.put(rollout).await?;
    let _ = writeln!(
        out,
        "  rollout {ROLLOUT}: the canary 1.1.0 takes the traffic step by step, judged as it goes;\n  watch it: vamp rollout status {ROLLOUT} --watch --host http://{api}\n  (the demo sends {DEMO_RPS} requests/s through the gateway meanwhile)"
    );
    let _ = out.flush();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let traffic = tokio::spawn(send_traffic(port, stopped));
    let tag = format!("rollouts:{ROLLOUT}");
    // The events tell the story; the stored status says when it ended, so a missed event (a
    // subscriber that fell behind, or an event that could not be stored) cannot leave the demo
    // waiting for ever.
    let mut check = tokio::time::interval(Duration::from_secs(1));
    let (mut streaming, mut final_before) = (true, false);
    let ended = loop {
        tokio::select! {
            () = &mut *shutdown => break None,
            next = events.next(), if streaming => {
                let Some(next) = next else {
                    streaming = false;
                    continue;
                };
                let Ok(stored) = next else { continue };
                let e = &stored.event;
                if !e.tags.contains(&tag) {
                    continue;
                }
                if let Some(text) = e.value["text"].as_str() {
                    let _ = writeln!(out, "  {text}");
                    let _ = out.flush();
                }
                let phase = e.value["phase"].as_str().unwrap_or_default();
                if e.tags.iter().any(|t| t == "phase")
                    && matches!(phase, "Succeeded" | "RolledBack" | "Aborted")
                {
                    break Some(phase.to_owned());
                }
            }
            _ = check.tick() => {
                // The status is stored just before its events: final at two checks in a
                // row means the phase event is not coming.
                let last = app.vamp.rollout_status(ROLLOUT).await;
                let phase = last.ok().flatten().map(|s| s.phase).filter(|p| p.is_final());
                if let Some(phase) = phase.filter(|_| final_before) {
                    break Some(phase.as_str().to_owned());
                }
                final_before = phase.is_some();
            }
        }
    };
    if let Some(phase) = ended {
        let _ = stop.send(true);
        let _ = writeln!(out, "rollout {ROLLOUT} ended: {phase}");
        let _ = out.flush();
        (&mut *shutdown).await;
    }
    let _ = stop.send(true);
    let _ = traffic.await;
    Ok(())
}

/// GETs through the gateway at [`DEMO_RPS`] until told to stop (at most ten minutes).
async fn send_traffic(port: u16, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_millis(1_000 / DEMO_RPS));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    while tokio::time::Instant::now() < deadline {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = every.tick() => {}
        }
        let _ = get_status(port).await;
    }
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
