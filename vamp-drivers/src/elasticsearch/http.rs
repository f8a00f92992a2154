//! Requests to Elasticsearch: sending, refusals, indices, documents, searches and pages.

use super::*;

impl ElasticsearchPersistence {
    pub(super) fn index(&self, what: &str) -> String {
        format!("{}-{what}", self.config.prefix)
    }

    pub(super) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(
                method,
                format!("{}{path}", self.config.url.trim_end_matches('/')),
            )
            .timeout(self.config.timeout);
        if let Some((user, password)) = &self.config.credentials {
            request = request.basic_auth(user, Some(password));
        }
        request
    }

    /// Sends a request; returns the status and the JSON body. Transport failures and 5xx are
    /// `Unavailable`, 401/403 name the credentials, other 4xx are returned for the caller.
    pub(super) async fn send(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, Value)> {
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                Error::Timeout {
                    backend: BACKEND,
                    address: self.config.url.clone(),
                    operation,
                    timeout: self.config.timeout,
                }
            } else {
                Error::Unavailable {
                    backend: BACKEND,
                    address: self.config.url.clone(),
                    message: format!("{operation}: {e}"),
                    cause: Some(Box::new(e)),
                }
            }
        })?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| Error::Unavailable {
            backend: BACKEND,
            address: self.config.url.clone(),
            message: format!("{operation}: {e}"),
            cause: Some(Box::new(e)),
        })?;
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let reason = || {
            value["error"]["reason"].as_str().map_or_else(
                || String::from_utf8_lossy(&body).into_owned(),
                str::to_owned,
            )
        };
        match status {
            401 | 403 => Err(Error::Backend {
                backend: BACKEND,
                message: format!(
                    "{operation}: not authorized ({}); set the credentials of a user that may write the {}-* and {}-* indices",
                    reason(),
                    self.config.prefix,
                    self.config.events
                ),
                cause: None,
            }),
            500..=599 => Err(Error::Unavailable {
                backend: BACKEND,
                address: self.config.url.clone(),
                message: format!("{operation}: {status}: {}", reason()),
                cause: None,
            }),
            _ => Ok((status, value)),
        }
    }

    pub(super) fn refused(&self, operation: &'static str, status: u16, body: &Value) -> Error {
        let kind = body["error"]["type"].as_str().unwrap_or("error");
        let reason = body["error"]["reason"]
            .as_str()
            .unwrap_or("no reason given");
        if kind == "illegal_argument_exception" && reason.contains("Result window is too large") {
            return Error::Invalid {
                what: "page",
                message: format!(
                    "Elasticsearch pages only through the first results ({reason}); set max_result_window to the indices' index.max_result_window ({}), ask for an earlier page or narrow the query",
                    self.config.max_result_window
                ),
            };
        }
        if kind.contains("index_name") {
            return Error::Invalid {
                what: "elasticsearch index",
                message: format!(
                    "{reason}: index names are lowercase without spaces or \\/*?\"<>|,#:"
                ),
            };
        }
        Error::Backend {
            backend: BACKEND,
            message: format!("{operation}: {status} {kind}: {reason}"),
            cause: None,
        }
    }

    pub(super) async fn create_index(&self, index: &str, body: &Value) -> Result<()> {
        let (status, answer) = self
            .send(
                "connect",
                self.request(reqwest::Method::PUT, &format!("/{}", url_part(index)))
                    .json(body),
            )
            .await?;
        let exists = answer["error"]["type"].as_str() == Some("resource_already_exists_exception");
        if (200..300).contains(&status) || exists {
            Ok(())
        } else {
            Err(self.refused("connect", status, &answer))
        }
    }

    pub(super) async fn get_doc<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        index: &str,
        id: &str,
    ) -> Result<Option<(T, u64, u64)>> {
        let path = format!("/{}/_doc/{}", url_part(index), url_part(id));
        let (status, body) = self
            .send(operation, self.request(reqwest::Method::GET, &path))
            .await?;
        if status == 404 {
            return Ok(None);
        }
        if status != 200 {
            return Err(self.refused(operation, status, &body));
        }
        let got: Got<T> = serde_json::from_value(body).map_err(|e| corrupt(id, e))?;
        match (got.found, got.source) {
            (true, Some(source)) => Ok(Some((source, got.seq_no, got.primary_term))),
            _ => Ok(None),
        }
    }

    /// Indexes a document; `expect`: `None` = only create, `Some((seq_no, term))` = only over
    /// that version; `create = false` with no expectation overwrites.
    pub(super) async fn put_doc(
        &self,
        operation: &'static str,
        index: &str,
        id: &str,
        doc: &impl serde::Serialize,
        create: bool,
        expect: Option<(u64, u64)>,
    ) -> Result<Written> {
        let path = format!("/{}/_doc/{}", url_part(index), url_part(id));
        let mut request = self.request(reqwest::Method::PUT, &path).json(doc);
        if create {
            request = request.query(&[("op_type", "create")]);
        }
        if let Some((seq_no, term)) = expect {
            request = request.query(&[("if_seq_no", seq_no), ("if_primary_term", term)]);
        }
        let (status, body) = self.send(operation, request).await?;
        self.dirty.store(true, Ordering::SeqCst);
        match status {
            200 | 201 => Ok(Written::Ok(body)),
            409 => Ok(Written::Conflict),
            _ => Err(self.refused(operation, status, &body)),
        }
    }

    /// Makes this handle's writes searchable before it searches.
    pub(super) async fn refresh(&self, pattern: &str) -> Result<()> {
        if !self.dirty.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        let path = format!("/{pattern}/_refresh");
        let (status, body) = self
            .send("refresh", self.request(reqwest::Method::POST, &path))
            .await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            self.dirty.store(true, Ordering::SeqCst);
            Err(self.refused("refresh", status, &body))
        }
    }

    pub(super) async fn search<T: serde::de::DeserializeOwned>(
        &self,
        pattern: &str,
        body: &Value,
    ) -> Result<(u64, Vec<T>)> {
        self.refresh(&format!(
            "{}-*,{}-*",
            self.config.prefix, self.config.events
        ))
        .await?;
        let path = format!("/{pattern}/_search");
        let (status, answer) = self
            .send(
                "search",
                self.request(reqwest::Method::POST, &path).json(body),
            )
            .await?;
        if status != 200 {
            return Err(self.refused("search", status, &answer));
        }
        let found: SearchResponse<T> =
            serde_json::from_value(answer).map_err(|e| corrupt("search", e))?;
        Ok((
            found.hits.total.value,
            found.hits.hits.into_iter().map(|h| h.source).collect(),
        ))
    }

    /// One page of a search (`body` without paging). A page past the end is empty; a page
    /// the result window would cut short is refused rather than returned short.
    pub(super) async fn paged<T: serde::de::DeserializeOwned>(
        &self,
        pattern: &str,
        mut body: Value,
        page: Page,
    ) -> Result<(u64, Vec<T>)> {
        let window = self.config.max_result_window;
        let from = page.offset();
        let deep = from >= window;
        body["from"] = json!(if deep { 0 } else { from });
        body["size"] = json!(if deep {
            0
        } else {
            page.per_page.min(window - from)
        });
        body["track_total_hits"] = json!(true);
        let (total, items): (u64, Vec<T>) = self.search(pattern, &body).await?;
        let expected = page.per_page.min(total.saturating_sub(from));
        if u64::try_from(items.len()).unwrap_or(u64::MAX) < expected {
            return Err(Error::Invalid {
                what: "page",
                message: format!(
                    "Elasticsearch pages only through the first {window} results (index.max_result_window); page {} of {} needs results {from}.. of {total}: ask for smaller pages or narrow the query",
                    page.page, page.per_page
                ),
            });
        }
        Ok((total, items))
    }
}
