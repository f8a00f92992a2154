//! `GET /metrics` in Prometheus text format: API answers, deployments, gateways, rollouts
//! and per-route traffic — through the `metrics` facade and `metrics-exporter-prometheus`.
//!
//! Each server has its own recorder ([`Metrics`]), not the process-wide one, so several servers
//! in one process (tests, embedders) keep their counts apart. What Vamp already counts (the
//! routers' totals, rollout verdicts) is set at each scrape as an absolute value.
//!
//! One family is written by hand: the per-route response-time histograms. The router hands
//! over bucket counts, and the exporter's histograms are built from single observations, so
//! they cannot carry them; `route_histograms` writes them in the same text format.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use metrics_util::MetricKindMask;

use super::*;

/// A server's own metrics recorder and its Prometheus handle.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        // Series not set again for 10 minutes (an undeployed gateway's routes, a deleted
        // rollout) leave the output.
        let recorder = PrometheusBuilder::new()
            .idle_timeout(
                MetricKindMask::COUNTER | MetricKindMask::GAUGE,
                Some(std::time::Duration::from_secs(600)),
            )
            .build_recorder();
        let handle = recorder.handle();
        let metrics = Metrics { recorder, handle };
        metrics.record(|| {
            metrics::describe_counter!("vamp_api_responses_total", "API answers by status class.");
            metrics::describe_gauge!("vamp_up", "Whether the store answered this scrape.");
            metrics::describe_gauge!("vamp_deployments", "Deployments stored.");
            metrics::describe_gauge!(
                "vamp_gateways",
                "Gateways, the deployments' and standalone ones."
            );
            metrics::describe_gauge!("vamp_uptime_seconds", "Time since the server started.");
            metrics::describe_gauge!(
                "vamp_leader",
                "Whether this server leads the servers sharing its stores (1) or follows (0)."
            );
            metrics::describe_gauge!(
                "vamp_leader_term",
                "The term of the leader this server knows of."
            );
            metrics::describe_counter!(
                "vamp_route_requests_total",
                "Requests (HTTP) or connections (TCP) a gateway route handled."
            );
            metrics::describe_counter!(
                "vamp_route_errors_total",
                "Failed ones (5xx or connection errors)."
            );
            metrics::describe_gauge!(
                "vamp_rollout_phase",
                "A rollout's phase: 0 progressing, 1 paused, 2 succeeded, 3 rolled back, 4 aborted."
            );
            metrics::describe_gauge!(
                "vamp_rollout_canary_weight",
                "The canary route's weight, per cent of the gateway."
            );
            metrics::describe_counter!(
                "vamp_workflow_runs_total",
                "Workflow runs since the server started, by result."
            );
            metrics::describe_counter!(
                "vamp_rollout_verdicts_total",
                "Analysis verdicts by outcome."
            );
        });
        metrics
    }
}

impl Metrics {
    /// Runs `f` with this server's recorder as the one the `metrics` macros record to.
    pub fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, f)
    }

    /// Everything recorded, in Prometheus text format.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

/// Counts every API answer by status class.
pub(super) async fn count(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let class = format!("{}xx", (response.status().as_u16() / 100).clamp(1, 5));
    state
        .metrics
        .record(|| metrics::counter!("vamp_api_responses_total", "code" => class).increment(1));
    response
}

/// `/metrics`: Prometheus text format (no token: scrapers read it).
#[utoipa::path(get, path = "/metrics", tag = "system", responses((status = 200, description = "Prometheus text format (no token)", content_type = "text/plain", body = String)))]
pub(super) async fn prometheus(State(state): State<AppState>) -> Response {
    let deployments = state.vamp.deployments().await.map(|d| d.len());
    let gateways = state.vamp.gateways().await.map(|g| g.len());
    // Routers that cannot count (`none`, `haproxy-kv`: the agents' HAProxies count) add
    // nothing.
    let routes = state.vamp.router_stats().await.unwrap_or_default();
    let rollouts = rollout_rows(&state).await;
    state.metrics.record(|| {
        metrics::gauge!("vamp_up")
            .set(f64::from(u8::from(deployments.is_ok() && gateways.is_ok())));
        if let (Ok(d), Ok(g)) = (deployments, gateways) {
            metrics::gauge!("vamp_deployments").set(d as f64);
            metrics::gauge!("vamp_gateways").set(g as f64);
        }
        metrics::gauge!("vamp_uptime_seconds").set(state.started.elapsed().as_secs_f64().floor());
        let cluster = state.vamp.cluster();
        metrics::gauge!("vamp_leader").set(f64::from(u8::from(cluster.leader)));
        metrics::gauge!("vamp_leader_term").set(cluster.term as f64);
        for r in &routes {
            let labels = [("gateway", r.gateway.clone()), ("route", r.route.clone())];
            metrics::counter!("vamp_route_requests_total", &labels).absolute(r.requests);
            metrics::counter!("vamp_route_errors_total", &labels).absolute(r.errors);
        }
        for (name, s) in &rollouts {
            let rollout = [("rollout", name.clone())];
            metrics::gauge!("vamp_rollout_phase", &rollout).set(f64::from(s.phase.number()));
            metrics::gauge!("vamp_rollout_canary_weight", &rollout)
                .set(f64::from(s.weights.canary));
            for (verdict, n) in [
                ("pass", s.verdicts.pass),
                ("fail", s.verdicts.fail),
                ("inconclusive", s.verdicts.inconclusive),
                ("error", s.verdicts.error),
            ] {
                metrics::counter!(
                    "vamp_rollout_verdicts_total",
                    "rollout" => name.clone(),
                    "verdict" => verdict
                )
                .absolute(n);
            }
        }
        for (name, succeeded, failed) in state.vamp.workflow_run_counts() {
            for (result, n) in [("succeeded", succeeded), ("failed", failed)] {
                metrics::counter!(
                    "vamp_workflow_runs_total",
                    "workflow" => name.clone(),
                    "result" => result
                )
                .absolute(n);
            }
        }
    });
    let mut out = state.metrics.render();
    route_histograms(&mut out, &routes);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// Every rollout that has a status.
async fn rollout_rows(state: &AppState) -> Vec<(String, vamp_core::rollout::RolloutStatus)> {
    let mut rows = Vec::new();
    for r in state.vamp.rollouts().await.unwrap_or_default() {
        if let Ok(Some(s)) = state.vamp.rollout_status(&r.name).await {
            rows.push((r.name, s));
        }
    }
    rows
}

/// A Prometheus label value: `\`, `"` and line feeds escaped.
pub(super) fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Per-route response-time histograms (bucket counts from the router), in Prometheus text
/// format; nothing when no route measures response times.
pub(super) fn route_histograms(out: &mut String, routes: &[vamp_core::traits::RouteStats]) {
    use std::fmt::Write;
    let measured: Vec<_> = routes
        .iter()
        .filter(|r| !r.latency.buckets.is_empty())
        .collect();
    if measured.is_empty() {
        return;
    }
    let labels = |r: &vamp_core::traits::RouteStats| {
        format!(
            "gateway=\"{}\",route=\"{}\"",
            label(&r.gateway),
            label(&r.route)
        )
    };
    out.push_str("# HELP vamp_route_response_time_ms Response times of a route, milliseconds.\n# TYPE vamp_route_response_time_ms histogram\n");
    for r in measured {
        let mut count = 0;
        for (bound, n) in &r.latency.buckets {
            let le = if bound.is_infinite() {
                "+Inf".to_owned()
            } else {
                bound.to_string()
            };
            count = count.max(*n);
            let _ = writeln!(
                out,
                "vamp_route_response_time_ms_bucket{{{},le=\"{le}\"}} {n}",
                labels(r)
            );
        }
        if !r.latency.buckets.iter().any(|(b, _)| b.is_infinite()) {
            let _ = writeln!(
                out,
                "vamp_route_response_time_ms_bucket{{{},le=\"+Inf\"}} {count}",
                labels(r)
            );
        }
        let _ = writeln!(
            out,
            "vamp_route_response_time_ms_sum{{{}}} {}",
            labels(r),
            r.latency.sum_ms
        );
        let _ = writeln!(
            out,
            "vamp_route_response_time_ms_count{{{}}} {count}",
            labels(r)
        );
    }
}

#[cfg(test)]
mod tests {
    use vamp_core::traits::{LatencyHistogram, RouteStats};

    #[test]
    fn route_histograms_escape_labels_and_close_histograms() {
        let mut out = String::new();
        super::route_histograms(
            &mut out,
            &[RouteStats {
                gateway: "shop/web".into(),
                route: "a\"b\\c".into(),
                requests: 7,
                errors: 1,
                latency: LatencyHistogram {
                    buckets: vec![(5.0, 3), (50.0, 7)],
                    sum_ms: 120.5,
                },
            }],
        );
        let labels = r#"gateway="shop/web",route="a\"b\\c""#;
        for line in [
            format!("vamp_route_response_time_ms_bucket{{{labels},le=\"5\"}} 3"),
            format!("vamp_route_response_time_ms_bucket{{{labels},le=\"+Inf\"}} 7"),
            format!("vamp_route_response_time_ms_sum{{{labels}}} 120.5"),
            format!("vamp_route_response_time_ms_count{{{labels}}} 7"),
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line} in:\n{out}");
        }
    }
}
