//! What rollouts call outside (issue 19), over HTTP(S) with reqwest:
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
//! TLS is rustls with the ring provider (one provider in the whole build, see CRATES.md); the
//! first client built installs ring as the process default if none is.

use std::time::Duration;

use async_trait::async_trait;
use vamp_core::model::ProviderKind;
use vamp_core::traits::{CallError, MetricProvider, Reading, WebhookSender};

/// The most of an answer body read: numbers and small documents, not downloads.
const MAX_BODY: usize = 1 << 20;

/// The shared client: connect timeout 5 s, no redirects to other schemes, rustls + ring.
fn client() -> Result<reqwest::Client, CallError> {
    // Ignored when a provider is installed already (the binary's own, or an earlier client).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::limited(3))
        .user_agent(concat!("vamp/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| CallError::Unreachable {
            url: String::new(),
            message: format!("cannot build an HTTP client: {e}"),
        })
}

/// A reqwest error as a [`CallError`] for `url`.
fn failed(url: &str, timeout: Duration, e: &reqwest::Error) -> CallError {
    if e.is_timeout() {
        CallError::Timeout {
            url: url.to_owned(),
            timeout,
        }
    } else {
        // The innermost cause says most ("connection refused").
        let mut message = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            message = s.to_string();
            source = s.source();
        }
        CallError::Unreachable {
            url: url.to_owned(),
            message,
        }
    }
}

/// The body of a successful answer (at most [`MAX_BODY`] bytes), or the status as an error.
async fn body(url: &str, timeout: Duration, r: reqwest::Response) -> Result<Vec<u8>, CallError> {
    let (status, out) = any_body(url, timeout, r).await?;
    if !status.is_success() {
        return Err(status_error(url, status, &out));
    }
    Ok(out)
}

fn status_error(url: &str, status: reqwest::StatusCode, body: &[u8]) -> CallError {
    CallError::Status {
        url: url.to_owned(),
        status: status.as_u16(),
        body: String::from_utf8_lossy(body).chars().take(200).collect(),
    }
}

/// The status and body of any answer (at most [`MAX_BODY`] bytes).
async fn any_body(
    url: &str,
    timeout: Duration,
    mut r: reqwest::Response,
) -> Result<(reqwest::StatusCode, Vec<u8>), CallError> {
    let status = r.status();
    let mut out = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(|e| failed(url, timeout, &e))? {
        if out.len() + chunk.len() > MAX_BODY {
            return Err(CallError::Answer {
                url: url.to_owned(),
                message: format!("the answer is larger than {MAX_BODY} bytes"),
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok((status, out))
}

fn json(url: &str, bytes: &[u8]) -> Result<serde_json::Value, CallError> {
    serde_json::from_slice(bytes).map_err(|e| CallError::Answer {
        url: url.to_owned(),
        message: format!("the answer is not JSON: {e}"),
    })
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

/// Prometheus instant queries.
#[derive(Debug, Clone)]
pub struct PrometheusProvider {
    http: reqwest::Client,
}

impl PrometheusProvider {
    /// A provider with its own HTTP client.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (TLS set-up).
    pub fn new() -> Result<Self, CallError> {
        Ok(PrometheusProvider { http: client()? })
    }

    async fn get(
        &self,
        url: &str,
        path: &str,
        query: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<serde_json::Value, CallError> {
        let full = format!("{}{path}", url.trim_end_matches('/'));
        let r = self
            .http
            .get(&full)
            .query(query)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| failed(url, timeout, &e))?;
        // Prometheus explains a refused query in JSON, with a 400 or 422.
        let (status, bytes) = any_body(url, timeout, r).await?;
        let v = match json(url, &bytes) {
            Ok(v) => v,
            Err(e) if status.is_success() => return Err(e),
            Err(_) => return Err(status_error(url, status, &bytes)),
        };
        if v["status"] != "success" {
            return Err(CallError::Answer {
                url: url.to_owned(),
                message: format!(
                    "Prometheus says {}: {}",
                    v["errorType"].as_str().unwrap_or("error"),
                    v["error"].as_str().unwrap_or("no reason given")
                ),
            });
        }
        Ok(v)
    }
}

/// The one number of a Prometheus query result (`data` of `/api/v1/query`).
///
/// # Errors
/// The result is a matrix, a string, or a vector of several series.
fn read_result(url: &str, data: &serde_json::Value) -> Result<Reading, CallError> {
    let answer = |message: String| CallError::Answer {
        url: url.to_owned(),
        message,
    };
    let sample = match data["resultType"].as_str() {
        Some("scalar") => &data["result"],
        Some("vector") => {
            let series = data["result"].as_array().map_or(&[][..], Vec::as_slice);
            match series {
                [] => return Ok(Reading::NoData("the query returned no series".into())),
                [one] => &one["value"],
                many => {
                    return Err(answer(format!(
                        "the query returned {} series; aggregate them to one, e.g. sum(…)",
                        many.len()
                    )));
                }
            }
        }
        other => {
            return Err(answer(format!(
                "the query returned a {}; write one that returns a number (an instant vector of one series or a scalar)",
                other.unwrap_or("nothing")
            )));
        }
    };
    let v =
        number(&sample[1]).ok_or_else(|| answer(format!("no number in the sample {sample}")))?;
    if v.is_nan() {
        return Ok(Reading::NoData("the query returned NaN".into()));
    }
    Ok(Reading::Number(v))
}

/// A Prometheus duration (`15s`, `1m`, `1m30s`, `500ms`).
fn duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        total += match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3_600),
            "d" => Duration::from_secs(n * 86_400),
            _ => return None,
        };
    }
    Some(total)
}

#[async_trait]
impl MetricProvider for PrometheusProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Prometheus
    }

    async fn measure(
        &self,
        url: &str,
        query: &str,
        timeout: Duration,
    ) -> Result<Reading, CallError> {
        let v = self
            .get(url, "/api/v1/query", &[("query", query)], timeout)
            .await?;
        read_result(url, &v["data"])
    }

    async fn collection_period(&self, url: &str, timeout: Duration) -> Option<Duration> {
        let v = self
            .get(url, "/api/v1/targets", &[("state", "active")], timeout)
            .await
            .ok()?;
        v["data"]["activeTargets"]
            .as_array()?
            .iter()
            .filter_map(|t| duration(t["scrapeInterval"].as_str()?))
            .max()
    }
}

/// Numbers read from JSON documents.
#[derive(Debug, Clone)]
pub struct WebProvider {
    http: reqwest::Client,
}

impl WebProvider {
    /// A provider with its own HTTP client.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (TLS set-up).
    pub fn new() -> Result<Self, CallError> {
        Ok(WebProvider { http: client()? })
    }
}

/// The number at `path` in `doc`.
///
/// # Errors
/// The path does not parse, or matches several values, or something that is not a number.
fn read_path(url: &str, doc: &serde_json::Value, path: &str) -> Result<Reading, CallError> {
    let answer = |message: String| CallError::Answer {
        url: url.to_owned(),
        message,
    };
    let parsed = serde_json_path::JsonPath::parse(path)
        .map_err(|e| answer(format!("'{path}' is not a JSON path: {e}")))?;
    let found = parsed.query(doc).all();
    match found.as_slice() {
        [] => Ok(Reading::NoData(format!("nothing at {path}"))),
        [serde_json::Value::Null] => Ok(Reading::NoData(format!("null at {path}"))),
        [one] => match number(one) {
            Some(v) if v.is_nan() => Ok(Reading::NoData(format!("NaN at {path}"))),
            Some(v) => Ok(Reading::Number(v)),
            None => Err(answer(format!("{path} is {one}, not a number"))),
        },
        many => Err(answer(format!(
            "{path} matches {} values; point it at one",
            many.len()
        ))),
    }
}

#[async_trait]
impl MetricProvider for WebProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Web
    }

    async fn measure(
        &self,
        url: &str,
        query: &str,
        timeout: Duration,
    ) -> Result<Reading, CallError> {
        let r = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| failed(url, timeout, &e))?;
        let bytes = body(url, timeout, r).await?;
        read_path(url, &json(url, &bytes)?, query)
    }
}

/// Posts webhooks' JSON.
#[derive(Debug, Clone)]
pub struct HttpWebhooks {
    http: reqwest::Client,
}

impl HttpWebhooks {
    /// A sender with its own HTTP client.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (TLS set-up).
    pub fn new() -> Result<Self, CallError> {
        Ok(HttpWebhooks { http: client()? })
    }
}

#[async_trait]
impl WebhookSender for HttpWebhooks {
    async fn post(
        &self,
        url: &str,
        body: &serde_json::Value,
        timeout: Duration,
    ) -> Result<u16, CallError> {
        let r = self
            .http
            .post(url)
            .json(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| failed(url, timeout, &e))?;
        Ok(r.status().as_u16())
    }
}

#[cfg(test)]
mod tests {
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
    fn prometheus_durations() {
        assert_eq!(duration("15s"), Some(Duration::from_secs(15)));
        assert_eq!(duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(duration("1x"), None);
        assert_eq!(duration(""), None);
    }
}
