//! `haproxy-local`: a [`Router`] that drives one local HAProxy directly (no KV store, no
//! agent): render, then weight-only changes through the runtime API and structural ones
//! through a checked seamless reload.

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
    /// The gateways the running config serves.
    applied: Vec<ResolvedGateway>,
    /// Reloads done (structural changes), for callers that count them.
    reloads: u32,
    /// Times HAProxy was found dead and started again.
    restarts: u32,
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
        let text = render(&state.applied, &self.options).config.to_string();
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
        source: Some(Box::new(e)),
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

    async fn apply(&self, gateways: &[ResolvedGateway]) -> vamp_core::Result<ApplyReport> {
        let mut state = self.state.lock().await;
        self.revive(&mut state).await.map_err(internal)?;
        let mut report = ApplyReport::default();
        // HAProxy refuses a whole config when one port cannot be bound; find those first.
        let mut candidates = Vec::new();
        for g in gateways {
            let ours = state.applied.iter().any(|a| a.port == g.port);
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
        let text = rendered.config.to_string();
        let structural = skeleton(&candidates) != skeleton(&state.applied);
        let weights: Vec<(String, String, u16)> =
            candidates.iter().flat_map(runtime_weights).collect();
        let weights: Vec<(&str, &str, u16)> = weights
            .iter()
            .map(|(b, s, w)| (b.as_str(), s.as_str(), *w))
            .collect();
        let changed = candidates != state.applied;
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
    /// or connections for TCP), errors (5xx answers, connection and response errors). HAProxy
    /// keeps no latency histogram, so `latency` is empty (and its sum 0). Counters restart with
    /// a reload.
    async fn stats(&self) -> vamp_core::Result<Vec<RouteStats>> {
        let state = self.state.lock().await;
        let Some(h) = &state.haproxy else {
            return Ok(Vec::new());
        };
        let rows = h.runtime().stats().await.map_err(|e| internal(e.into()))?;
        let mut out = Vec::new();
        for g in &state.applied {
            for r in &g.routes {
                let Some(row) = rows
                    .iter()
                    .find(|x| x.proxy == r.lookup_name && x.server == "BACKEND")
                else {
                    continue;
                };
                out.push(RouteStats {
                    gateway: g.name.clone(),
                    route: r.path.clone(),
                    requests: row.requests_total.unwrap_or(row.sessions_total),
                    errors: row.http_5xx + row.connect_errors + row.response_errors,
                    latency: vamp_core::traits::LatencyHistogram::default(),
                });
            }
        }
        Ok(out)
    }
}
