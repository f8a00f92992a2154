//! [`HttpWebhooks`]: `POST` with a JSON body.

use super::*;

/// Posts webhooks' JSON.
#[derive(Debug, Clone)]
pub struct HttpWebhooks {
    http: Http,
}

impl HttpWebhooks {
    /// A sender with its own HTTP client.
    ///
    /// # Errors
    /// When TLS cannot be set up.
    pub fn new() -> Result<Self, CallError> {
        Ok(HttpWebhooks { http: Http::tls()? })
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
        let bytes = serde_json::to_vec(body).map_err(|e| CallError::Answer {
            url: url.to_owned(),
            message: format!("the body cannot be written: {e}"),
        })?;
        let (status, _) = self
            .http
            .request(hyper::Method::POST, url, Some(bytes), timeout)
            .await?;
        Ok(status.as_u16())
    }
}
