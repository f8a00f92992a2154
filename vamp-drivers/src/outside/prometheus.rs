//! [`PrometheusProvider`]: instant queries and the collection period of the targets.

use super::*;

/// Prometheus instant queries.
#[derive(Debug, Clone)]
pub struct PrometheusProvider {
    http: Http,
}

impl PrometheusProvider {
    /// A provider with its own HTTP client.
    ///
    /// # Errors
    /// When TLS cannot be set up.
    pub fn new() -> Result<Self, CallError> {
        Ok(PrometheusProvider { http: Http::tls()? })
    }

    async fn get(
        &self,
        url: &str,
        path: &str,
        query: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<serde_json::Value, CallError> {
        let full = with_query(url, path, query);
        // Prometheus explains a refused query in JSON, with a 400 or 422.
        let (status, bytes) = self
            .http
            .request(hyper::Method::GET, &full, None, timeout)
            .await
            .map_err(|e| match e {
                CallError::Unreachable { message, .. } => CallError::Unreachable {
                    url: url.to_owned(),
                    message,
                },
                CallError::Timeout { timeout, .. } => CallError::Timeout {
                    url: url.to_owned(),
                    timeout,
                },
                other => other,
            })?;
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
pub(super) fn read_result(url: &str, data: &serde_json::Value) -> Result<Reading, CallError> {
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
pub(super) fn duration(text: &str) -> Option<Duration> {
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
