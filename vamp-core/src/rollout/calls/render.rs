//! Rollout templates in URLs and bodies (`{{rollout}}`, `{{canary_weight}}`, …), the hosts a
//! rollout calls, and the body of a webhook call.

use serde_json::json;

use crate::model::{Rollout, WebhookKind, render_template};
use crate::rollout::RolloutStatus;

/// The value of a template variable of `rollout`.
fn variable(rollout: &Rollout, name: &str) -> String {
    match name {
        "canary" => rollout.canary.clone(),
        "stable" => rollout.stable.clone(),
        "gateway" => rollout.gateway.clone(),
        _ => format!("{}s", rollout.analysis.interval.get()),
    }
}

/// `text` with the rollout's template variables; percent-encoded for URLs.
pub(super) fn render(rollout: &Rollout, text: &str, url: bool) -> String {
    // The reader refused unknown variables; an unknown one left as written is harmless.
    render_template(text, |name| {
        let value = variable(rollout, name);
        if url {
            percent_encoding::utf8_percent_encode(&value, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        } else {
            value
        }
    })
    .unwrap_or_else(|_| text.to_owned())
}

/// The host of an http(s) URL as written (no port, no credentials; brackets kept for IPv6).
///
/// ```text
/// http://user@prom.test:9090/x → prom.test
/// ```
pub(crate) fn url_host(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = if host_port.starts_with('[') {
        host_port.split_inclusive(']').next()?
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then_some(host)
}

/// The URLs a rollout calls, with the field each is in, template variables filled in.
pub(crate) fn called_urls(rollout: &Rollout) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, check) in rollout.analysis.metrics.iter().enumerate() {
        if let crate::model::Check::Provider(p) = check {
            out.push((
                format!("analysis.metrics[{i}].url"),
                render(rollout, &p.url, true),
            ));
        }
    }
    for (i, hook) in rollout.webhooks.iter().enumerate() {
        out.push((
            format!("webhooks[{i}].url"),
            render(rollout, &hook.url, true),
        ));
    }
    out
}

/// What webhooks receive: the rollout, where it is, its last verdict and a line of text.
pub(crate) fn webhook_body(
    rollout: &Rollout,
    kind: WebhookKind,
    status: Option<&RolloutStatus>,
    text: Option<&str>,
) -> serde_json::Value {
    let last = status.and_then(|s| s.intervals.last());
    let text = text.map_or_else(
        || {
            format!(
                "rollout {}: {} webhook{}",
                rollout.name,
                kind.as_str(),
                status.map_or(String::new(), |s| format!(
                    " ({}, step {})",
                    s.phase.as_str(),
                    s.step + 1
                ))
            )
        },
        str::to_owned,
    );
    json!({
        "rollout": rollout.name,
        "type": kind.as_str(),
        "gateway": rollout.gateway,
        "stable": rollout.stable,
        "canary": rollout.canary,
        "phase": status.map(|s| s.phase.as_str()),
        "step": status.map(|s| s.step),
        "weights": status.map(|s| s.weights),
        "reason": status.and_then(|s| s.reason.clone()),
        "verdict": last.map(|i| json!({
            "verdict": i.verdict,
            "at": i.at,
            "checks": i.checks.iter().map(|c| c.reason.clone()).collect::<Vec<_>>(),
        })),
        "text": text,
    })
}

#[cfg(test)]
mod tests {
    use super::url_host;

    #[test]
    fn hosts_are_read_as_written() {
        assert_eq!(url_host("http://prom.test:9090/api"), Some("prom.test"));
        assert_eq!(
            url_host("https://u:p@hooks.example/x"),
            Some("hooks.example")
        );
        assert_eq!(url_host("http://[::1]:80/"), Some("[::1]"));
        assert_eq!(url_host("http://127.0.0.1"), Some("127.0.0.1"));
        assert_eq!(url_host("ftp://x"), None);
        assert_eq!(url_host("http:///x"), None);
    }
}
