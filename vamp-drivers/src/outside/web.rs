//! [`WebProvider`]: a number read from a JSON document at a JSON path.

use super::*;

/// Numbers read from JSON documents.
#[derive(Debug, Clone)]
pub struct WebProvider {
    http: Http,
}

impl WebProvider {
    /// A provider with its own HTTP client.
    ///
    /// # Errors
    /// When TLS cannot be set up.
    pub fn new() -> Result<Self, CallError> {
        Ok(WebProvider { http: Http::tls()? })
    }
}

/// The number at `path` in `doc`.
///
/// # Errors
/// The path does not parse, or matches several values, or something that is not a number.
pub(super) fn read_path(
    url: &str,
    doc: &serde_json::Value,
    path: &str,
) -> Result<Reading, CallError> {
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
        let bytes = get_ok(&self.http, url, timeout).await?;
        read_path(url, &json(url, &bytes)?, query)
    }
}
