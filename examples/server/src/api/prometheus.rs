//! `GET /metrics` in Prometheus text format: API answers, deployments, gateways, per-route traffic.

use super::*;

/// Counts every API answer by status class.
pub(super) async fn count(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let class = usize::from(response.status().as_u16() / 100).clamp(1, 5) - 1;
    if let Some(counter) = state.answers.get(class) {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    response
}

/// `/metrics`: Prometheus text format (no token: scrapers read it).
pub(super) async fn prometheus(State(state): State<AppState>) -> Response {
    use std::sync::atomic::Ordering;
    let mut out = String::new();
    out.push_str("# HELP vamp_api_responses_total API answers by status class.\n");
    out.push_str("# TYPE vamp_api_responses_total counter\n");
    for (i, counter) in state.answers.iter().enumerate() {
        out.push_str(&format!(
            "vamp_api_responses_total{{code=\"{}xx\"}} {}\n",
            i + 1,
            counter.load(Ordering::Relaxed)
        ));
    }
    let deployments = state.vamp.deployments().await.map(|d| d.len());
    let gateways = state.vamp.gateways().await.map(|g| g.len());
    out.push_str("# HELP vamp_up Whether the store answered this scrape.\n# TYPE vamp_up gauge\n");
    out.push_str(&format!(
        "vamp_up {}\n",
        u8::from(deployments.is_ok() && gateways.is_ok())
    ));
    if let (Ok(d), Ok(g)) = (deployments, gateways) {
        out.push_str(
            "# HELP vamp_deployments Deployments stored.\n# TYPE vamp_deployments gauge\n",
        );
        out.push_str(&format!("vamp_deployments {d}\n"));
        out.push_str("# HELP vamp_gateways Gateways, the deployments' and standalone ones.\n# TYPE vamp_gateways gauge\n");
        out.push_str(&format!("vamp_gateways {g}\n"));
    }
    // Routers that cannot count (`none`, `haproxy-kv`: the agents' HAProxies count) add
    // nothing.
    if let Ok(routes) = state.vamp.route_stats().await {
        route_metrics(&mut out, &routes);
    }
    rollout_metrics(&mut out, &state).await;
    out.push_str("# HELP vamp_uptime_seconds Time since the server started.\n# TYPE vamp_uptime_seconds gauge\n");
    out.push_str(&format!(
        "vamp_uptime_seconds {}\n",
        state.started.elapsed().as_secs()
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// A Prometheus label value: `\`, `"` and line feeds escaped.
pub(super) fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Per-route requests, errors and response times in Prometheus text format.
pub(super) fn route_metrics(out: &mut String, routes: &[vamp_core::traits::RouteStats]) {
    use std::fmt::Write;
    let labels = |r: &vamp_core::traits::RouteStats| {
        format!(
            "gateway=\"{}\",route=\"{}\"",
            label(&r.gateway),
            label(&r.route)
        )
    };
    out.push_str("# HELP vamp_route_requests_total Requests (HTTP) or connections (TCP) a gateway route handled.\n# TYPE vamp_route_requests_total counter\n");
    for r in routes {
        let _ = writeln!(
            out,
            "vamp_route_requests_total{{{}}} {}",
            labels(r),
            r.requests
        );
    }
    out.push_str("# HELP vamp_route_errors_total Failed ones (5xx or connection errors).\n# TYPE vamp_route_errors_total counter\n");
    for r in routes {
        let _ = writeln!(out, "vamp_route_errors_total{{{}}} {}", labels(r), r.errors);
    }
    out.push_str("# HELP vamp_route_response_time_ms Response times of a route, milliseconds.\n# TYPE vamp_route_response_time_ms histogram\n");
    for r in routes {
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

/// Every rollout's phase, canary weight and verdicts (issue 18).
async fn rollout_metrics(out: &mut String, state: &AppState) {
    use std::fmt::Write;
    let Ok(rollouts) = state.vamp.rollouts().await else {
        return;
    };
    let mut rows = Vec::new();
    for r in rollouts {
        if let Ok(Some(s)) = state.vamp.rollout_status(&r.name).await {
            rows.push((r.name, s));
        }
    }
    if rows.is_empty() {
        return;
    }
    out.push_str("# HELP vamp_rollout_phase A rollout's phase: 0 progressing, 1 paused, 2 succeeded, 3 rolled back, 4 aborted.\n# TYPE vamp_rollout_phase gauge\n");
    for (name, s) in &rows {
        let _ = writeln!(
            out,
            "vamp_rollout_phase{{rollout=\"{}\"}} {}",
            label(name),
            s.phase.number()
        );
    }
    out.push_str("# HELP vamp_rollout_canary_weight The canary route's weight, per cent of the gateway.\n# TYPE vamp_rollout_canary_weight gauge\n");
    for (name, s) in &rows {
        let _ = writeln!(
            out,
            "vamp_rollout_canary_weight{{rollout=\"{}\"}} {}",
            label(name),
            s.weights.canary
        );
    }
    out.push_str("# HELP vamp_rollout_verdicts_total Analysis verdicts by outcome.\n# TYPE vamp_rollout_verdicts_total counter\n");
    for (name, s) in &rows {
        for (verdict, n) in [
            ("pass", s.verdicts.pass),
            ("fail", s.verdicts.fail),
            ("inconclusive", s.verdicts.inconclusive),
            ("error", s.verdicts.error),
        ] {
            let _ = writeln!(
                out,
                "vamp_rollout_verdicts_total{{rollout=\"{}\",verdict=\"{verdict}\"}} {n}",
                label(name)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use vamp_core::traits::{LatencyHistogram, RouteStats};

    #[test]
    fn route_metrics_escape_labels_and_close_histograms() {
        let mut out = String::new();
        super::route_metrics(
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
            format!("vamp_route_requests_total{{{labels}}} 7"),
            format!("vamp_route_errors_total{{{labels}}} 1"),
            format!("vamp_route_response_time_ms_bucket{{{labels},le=\"5\"}} 3"),
            format!("vamp_route_response_time_ms_bucket{{{labels},le=\"+Inf\"}} 7"),
            format!("vamp_route_response_time_ms_sum{{{labels}}} 120.5"),
            format!("vamp_route_response_time_ms_count{{{labels}}} 7"),
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line} in:\n{out}");
        }
    }
}
