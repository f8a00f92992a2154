//! What rollouts call outside (issue 19), over HTTP(S):
//!
//! - [`PrometheusProvider`] (feature `prometheus`): an instant query
//!   (`GET <url>/api/v1/query`, the [HTTP API](https://prometheus.io/docs/prometheus/latest/querying/api/));
//!   the result must be one number: a scalar, or a vector of exactly one sample. An empty
//!   vector or NaN is "no data", never a failed canary. Its collection period is the longest
//!   `scrapeInterval` of the active targets (`GET <url>/api/v1/targets`). Tested against a
//!   real Prometheus.
//! - [`WebProvider`] (feature `web-metrics`): `GET <url>`, a JSON document, the number read at
//!   a JSON path (RFC 9535, `serde_json_path`); a number or a numeric string; `null` or no
//!   match is "no data", several matches an error.
//! - [`HttpWebhooks`] (feature `webhooks`): `POST <url>` with a JSON body.
//!
//! Why not reqwest, which the other HTTP backends use: its TLS (rustls) either brings
//! aws-lc (a C build; CRATES.md keeps one provider, ring) or needs a process-wide provider
//! installed before *any* reqwest client in the process is built — a panic otherwise, in every
//! binary and test that links it. So these calls go through hyper-util's client with
//! hyper-rustls, given the ring provider explicitly, and the system's root certificates. The
//! glue is small: one request, a timeout, a bounded body.

use std::time::Duration;

use async_trait::async_trait;
use vamp_core::model::ProviderKind;
use vamp_core::traits::{CallError, MetricProvider, Reading, WebhookSender};

mod prometheus;
pub use prometheus::PrometheusProvider;
mod web;
pub use web::WebProvider;
mod webhooks;
pub use webhooks::HttpWebhooks;

type Http = crate::http::Http<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
>;

/// A GET whose answer must be a success.
async fn get_ok(http: &Http, url: &str, timeout: Duration) -> Result<Vec<u8>, CallError> {
    let (status, body) = http.request(hyper::Method::GET, url, None, timeout).await?;
    if !status.is_success() {
        return Err(status_error(url, status, &body));
    }
    Ok(body)
}

fn status_error(url: &str, status: hyper::StatusCode, body: &[u8]) -> CallError {
    CallError::Status {
        url: url.to_owned(),
        status: status.as_u16(),
        body: String::from_utf8_lossy(body).chars().take(200).collect(),
    }
}

fn json(url: &str, bytes: &[u8]) -> Result<serde_json::Value, CallError> {
    serde_json::from_slice(bytes).map_err(|e| CallError::Answer {
        url: url.to_owned(),
        message: format!("the answer is not JSON: {e}"),
    })
}

/// `base` + `path` + the query, percent-encoded.
fn with_query(base: &str, path: &str, query: &[(&str, &str)]) -> String {
    let encode = |v: &str| {
        percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let pairs: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    format!("{}{path}?{}", base.trim_end_matches('/'), pairs.join("&"))
}

/// A number from a JSON value: a number, or a string that reads as one (Prometheus writes
/// sample values as strings).
fn number(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::prometheus::{duration, read_result};
    use super::web::read_path;
    use super::*;
    use serde_json::json;

    #[test]
    fn prometheus_results_are_one_number_or_no_data() {
        let read = |data: serde_json::Value| read_result("http://p", &data);
        assert_eq!(
            read(
                json!({"resultType": "vector", "result": [{"metric": {}, "value": [1.0, "0.25"]}]})
            ),
            Ok(Reading::Number(0.25))
        );
        assert_eq!(
            read(json!({"resultType": "scalar", "result": [1.0, "3"]})),
            Ok(Reading::Number(3.0))
        );
        assert!(matches!(
            read(json!({"resultType": "vector", "result": []})),
            Ok(Reading::NoData(_))
        ));
        assert!(matches!(
            read(json!({"resultType": "vector", "result": [{"value": [1.0, "NaN"]}]})),
            Ok(Reading::NoData(_))
        ));
        let many = read(
            json!({"resultType": "vector", "result": [{"value": [1, "1"]}, {"value": [1, "2"]}]}),
        );
        assert!(
            matches!(&many, Err(CallError::Answer { message, .. }) if message.contains("2 series") && message.contains("sum")),
            "{many:?}"
        );
        assert!(read(json!({"resultType": "matrix", "result": []})).is_err());
    }

    #[test]
    fn json_paths_read_one_number() {
        let doc = json!({"value": 0.5, "s": "7", "n": null, "list": [1, 2], "t": "x"});
        let read = |p: &str| read_path("http://w", &doc, p);
        assert_eq!(read("$.value"), Ok(Reading::Number(0.5)));
        assert_eq!(read("$.s"), Ok(Reading::Number(7.0)));
        assert!(matches!(read("$.n"), Ok(Reading::NoData(_))));
        assert!(matches!(read("$.missing"), Ok(Reading::NoData(_))));
        assert!(read("$.list[*]").is_err(), "several values");
        assert!(read("$.t").is_err(), "not a number");
        assert!(read("value").is_err(), "not a path");
    }

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            with_query(
                "http://p:9090/",
                "/api/v1/query",
                &[("query", "sum(x{a=\"b c\"})")]
            ),
            "http://p:9090/api/v1/query?query=sum%28x%7Ba%3D%22b%20c%22%7D%29"
        );
    }

    #[test]
    fn prometheus_durations() {
        assert_eq!(duration("15s"), Some(Duration::from_secs(15)));
        assert_eq!(duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(duration("1x"), None);
        assert_eq!(duration(""), None);
    }
}
