//! `haproxy-local`: a [`Router`] that drives one local HAProxy directly (no KV store, no
//! agent): render, then weight-only changes through the runtime API and structural ones
//! through a checked seamless reload.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;

use async_trait::async_trait;
use vamp_core::traits::{ApplyReport, ResolvedGateway, RouteStats, Router};

use super::process::{Haproxy, Paths};
use super::render::{RenderOptions, render, runtime_weights};

/// Drives a local HAProxy it starts itself, with its files under one directory.
#[derive(Debug)]
pub struct LocalRouter {
    binary: PathBuf,
    paths: Paths,
    options: RenderOptions,
    state: tokio::sync::Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    haproxy: Option<Haproxy>,
    /// Per route backend (lookup name): what earlier HAProxy processes counted, added to what
    /// the running one reports, so counters survive reloads and restarts.
    carried: HashMap<String, Counted>,
    /// Per route backend: the running process's counts at the last look, to add response
    /// times for the requests since.
    seen: HashMap<String, Counted>,
    /// The gateways the running config serves.
    applied: Vec<ResolvedGateway>,
    /// Reloads done (structural changes), for callers that count them.
    reloads: u32,
    /// Times HAProxy was found dead and started again.
    restarts: u32,
}

/// A route backend's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Counted {
    requests: u64,
    errors: u64,
    /// Response times added up, ms: HAProxy's average of its last 1 024 requests, times the
    /// requests since the last look — HAProxy keeps no sum of its own.
    sum_ms: f64,
}

impl Counted {
    fn add(&mut self, other: Counted) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.sum_ms += other.sum_ms;
    }
}

/// The gateways with weights and strengths left out: equal skeletons differ by weights only.
pub fn skeleton(gateways: &[ResolvedGateway]) -> Vec<ResolvedGateway> {
    let mut out = gateways.to_vec();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    for g in &mut out {
        for r in &mut g.routes {
            r.weight = vamp_core::model::Percentage::ZERO;
            r.condition_strength = vamp_core::model::Percentage::ZERO;
        }
    }
    out
}

impl LocalRouter {
    /// A router that will run `binary` with its files in `dir` (short: socket paths hold 107
    /// bytes). `options` gives the bind host, timeouts, health checks; its socket, admin and
    /// state paths are replaced by those under `dir`. HAProxy starts on the first apply.
    pub fn new(
        binary: impl Into<PathBuf>,
        dir: impl Into<PathBuf>,
        options: RenderOptions,
    ) -> Self {
        let paths = Paths::new(dir);
        let options = RenderOptions {
            socket_dir: paths.socket_dir.clone(),
            admin_socket: Some(paths.admin_socket.clone()),
            server_state_file: Some(paths.state_file.clone()),
            ..options
        };
        LocalRouter {
            binary: binary.into(),
            paths,
            options,
            state: tokio::sync::Mutex::default(),
        }
    }

    /// Structural reloads done so far (weight-only changes do not count).
    pub async fn reloads(&self) -> u32 {
        self.state.lock().await.reloads
    }

    /// Times HAProxy was found dead and started again.
    pub async fn restarts(&self) -> u32 {
        self.state.lock().await.restarts
    }

    /// The PID of HAProxy's master, while it runs.
    pub async fn haproxy_pid(&self) -> Option<u32> {
        self.state
            .lock()
            .await
            .haproxy
            .as_ref()
            .and_then(Haproxy::pid)
    }

    /// Starts HAProxy again with the gateways last applied if it has died (a watchdog: the
    /// agent calls it every second, and every `apply` does first). `Ok(true)` when it did.
    ///
    /// # Errors
    /// As [`Haproxy::start`].
    pub async fn ensure_running(&self) -> Result<bool, super::process::ProcessError> {
        let mut state = self.state.lock().await;
        self.revive(&mut state).await
    }

    async fn revive(&self, state: &mut State) -> Result<bool, super::process::ProcessError> {
        let dead = state.haproxy.as_mut().is_some_and(|h| !h.is_running());
        if !dead {
            return Ok(false);
        }
        tracing::warn!("HAProxy is gone; starting it again with the gateways last applied");
        state.haproxy = None;
        // What the dead process counted up to the last look is kept.
        carry_seen(state);
        let text = render(&state.applied, &self.options).config.text();
        state.haproxy = Some(Haproxy::start(&self.binary, self.paths.clone(), &text).await?);
        state.restarts += 1;
        Ok(true)
    }

    /// HAProxy's own reload counter (`show proc`), if it runs.
    ///
    /// # Errors
    /// The master socket's errors.
    pub async fn haproxy_reloads(&self) -> Result<Option<u32>, super::process::ProcessError> {
        let state = self.state.lock().await;
        match &state.haproxy {
            Some(h) => Ok(Some(h.state().await?.reloads)),
            None => Ok(None),
        }
    }

    /// Stops HAProxy.
    ///
    /// # Errors
    /// As [`Haproxy::stop`].
    pub async fn stop(&self) -> Result<(), super::process::ProcessError> {
        let mut state = self.state.lock().await;
        state.applied.clear();
        match state.haproxy.take() {
            Some(h) => h.stop().await,
            None => Ok(()),
        }
    }
}

fn internal(e: super::process::ProcessError) -> vamp_core::Error {
    vamp_core::Error::Backend {
        backend: "haproxy-local",
        message: e.to_string(),
        cause: Some(Box::new(e)),
    }
}

#[async_trait]
impl Router for LocalRouter {
    /// A bind probe on the host HAProxy binds gateways to.
    fn can_listen(&self, port: u16) -> bool {
        std::net::TcpListener::bind((self.options.bind_host, port)).is_ok()
    }

    fn backend(&self) -> &'static str {
        "haproxy-local"
    }

    fn shared_listener(&self) -> Option<std::net::SocketAddr> {
        self.options.virtual_hosts
    }

    /// The text of the gateways last applied, as HAProxy runs it.
    async fn rendered_config(&self) -> vamp_core::Result<Option<String>> {
        let state = self.state.lock().await;
        Ok(Some(render(&state.applied, &self.options).config.text()))
    }

    async fn apply(&self, gateways: &[ResolvedGateway]) -> vamp_core::Result<ApplyReport> {
        let mut state = self.state.lock().await;
        self.revive(&mut state).await.map_err(internal)?;
        let mut report = ApplyReport::default();
        // HAProxy refuses a whole config when one port cannot be bound; find those first.
        let mut candidates = Vec::new();
        for g in gateways {
            let ours = g.port == 0 || state.applied.iter().any(|a| a.port == g.port);
            if !ours && let Err(e) = TcpListener::bind((self.options.bind_host, g.port)) {
                report.failed.push((
                    g.name.clone(),
                    format!(
                        "cannot listen on {}:{}: {e}",
                        self.options.bind_host, g.port
                    ),
                ));
                continue;
            }
            candidates.push(g.clone());
        }
        let rendered = render(&candidates, &self.options);
        for e in &rendered.failed {
            report.failed.push((e.gateway.clone(), e.to_string()));
            candidates.retain(|g| g.name != e.gateway);
        }
        let text = rendered.config.text();
        let structural = skeleton(&candidates) != skeleton(&state.applied);
        let weights: Vec<(String, String, u16)> =
            candidates.iter().flat_map(runtime_weights).collect();
        let weights: Vec<(&str, &str, u16)> = weights
            .iter()
            .map(|(b, s, w)| (b.as_str(), s.as_str(), *w))
            .collect();
        let changed = candidates != state.applied;
        // A reload starts a process that counts from zero: keep what the old one counted.
        if structural && let Some(h) = state.haproxy.as_ref() {
            match h.runtime().stats().await {
                Ok(rows) => carry(&mut state, &rows),
                // Unreadable now: what it counted up to the last look is kept.
                Err(_) => carry_seen(&mut state),
            }
        }
        match state.haproxy.as_mut() {
            None => {
                let h = Haproxy::start(&self.binary, self.paths.clone(), &text)
                    .await
                    .map_err(internal)?;
                state.haproxy = Some(h);
            }
            Some(h) if structural => {
                h.reload(&text).await.map_err(internal)?;
                // Server states saved before the reload may carry older runtime weights.
                h.runtime()
                    .set_weights(&weights)
                    .await
                    .map_err(|e| internal(e.into()))?;
                state.reloads += 1;
            }
            Some(h) => {
                if changed {
                    h.runtime()
                        .set_weights(&weights)
                        .await
                        .map_err(|e| internal(e.into()))?;
                }
            }
        }
        report.applied = candidates.iter().map(|g| g.name.clone()).collect();
        state.applied = candidates;
        Ok(report)
    }

    /// Per-route counters from `show stat` on each route's backend: requests (HTTP requests,
    /// or connections for TCP), errors (5xx answers, connection and response errors), and the
    /// response times added up from HAProxy's running average (`rtime`). HAProxy keeps no
    /// latency histogram, so there are no buckets ([`Router::measures_percentiles`] is
    /// false). Counters survive reloads and restarts: what earlier processes counted is added.
    async fn stats(&self) -> vamp_core::Result<Vec<RouteStats>> {
        let mut state = self.state.lock().await;
        let rows = match &state.haproxy {
            Some(h) => h.runtime().stats().await.map_err(|e| internal(e.into()))?,
            None => Vec::new(),
        };
        let mut out = Vec::new();
        let applied = state.applied.clone();
        for g in &applied {
            for r in &g.routes {
                let now = rows
                    .iter()
                    .find(|x| x.proxy == r.lookup_name && x.server == "BACKEND")
                    .map(|row| observe(&mut state, &r.lookup_name, row))
                    .unwrap_or_default();
                let mut total = state
                    .carried
                    .get(&r.lookup_name)
                    .copied()
                    .unwrap_or_default();
                total.add(now);
                out.push(RouteStats {
                    gateway: g.name.clone(),
                    route: r.path.clone(),
                    requests: total.requests,
                    errors: total.errors,
                    latency: vamp_core::traits::LatencyHistogram {
                        buckets: Vec::new(),
                        sum_ms: total.sum_ms,
                    },
                });
            }
        }
        Ok(out)
    }
}

/// What the running process reports for a route backend now, with the response times of the
/// requests since the last look added to its sum; remembered for the next look.
fn observe(state: &mut State, backend: &str, row: &super::runtime::StatRow) -> Counted {
    let requests = row.requests_total.unwrap_or(row.sessions_total);
    let errors = row.http_5xx + row.connect_errors + row.response_errors;
    let mut before = state.seen.get(backend).copied().unwrap_or_default();
    if requests < before.requests {
        // Another process counts from zero (one that replaced it unseen): keep the old one's.
        state
            .carried
            .entry(backend.to_owned())
            .or_default()
            .add(before);
        before = Counted::default();
    }
    let new = requests - before.requests;
    #[expect(clippy::cast_precision_loss, reason = "request counts far below 2^52")]
    let added = row.response_time_ms.unwrap_or(0) as f64 * new as f64;
    let now = Counted {
        requests,
        errors,
        sum_ms: before.sum_ms + added,
    };
    state.seen.insert(backend.to_owned(), now);
    now
}

/// Before a reload: what the running process counted goes to `carried`, and the next process
/// is looked at from zero.
fn carry(state: &mut State, rows: &[super::runtime::StatRow]) {
    let backends: Vec<String> = state
        .applied
        .iter()
        .flat_map(|g| g.routes.iter().map(|r| r.lookup_name.clone()))
        .collect();
    for backend in backends {
        if let Some(row) = rows
            .iter()
            .find(|x| x.proxy == backend && x.server == "BACKEND")
        {
            let last = observe(state, &backend, row);
            state.carried.entry(backend).or_default().add(last);
        }
    }
    state.seen.clear();
}

/// When the running process cannot be asked (gone, or its socket does not answer): what it
/// counted up to the last look goes to `carried`.
fn carry_seen(state: &mut State) {
    for (backend, counted) in std::mem::take(&mut state.seen) {
        state.carried.entry(backend).or_default().add(counted);
    }
}
