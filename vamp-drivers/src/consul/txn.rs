//! Requests to Consul, and writes as transactions (the change, its log entry, the sequence),
//! with the pruning of the log.

use super::*;

impl ConsulStore {
    /// Sends a request; 2xx, 404 and 409 are answers, other statuses errors.
    pub(super) async fn send(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let response = request
            .send()
            .await
            .map_err(|e| self.unavailable(operation, e))?;
        let status = response.status();
        if status.is_success() || status.as_u16() == 404 || status.as_u16() == 409 {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        Err(match status.as_u16() {
            413 => Error::Invalid {
                what: "value",
                message: format!(
                    "Consul refused the request as too large ({}); raise Consul's limits.kv_max_value_size and limits.txn_max_req_len, or store smaller values",
                    text.trim()
                ),
            },
            403 => Error::Backend {
                backend: BACKEND,
                message: format!(
                    "{operation}: permission denied ({}); set a token with key read/write on the root",
                    text.trim()
                ),
                cause: None,
            },
            500..=599 => Error::Unavailable {
                backend: BACKEND,
                address: self.config.address.clone(),
                message: format!("{operation}: {status}: {}", text.trim()),
                cause: None,
            },
            _ => Error::Backend {
                backend: BACKEND,
                message: format!("{operation}: {status}: {}", text.trim()),
                cause: None,
            },
        })
    }

    pub(super) async fn json<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        response: reqwest::Response,
    ) -> Result<T> {
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.unavailable(operation, e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            backend: BACKEND,
            message: format!("{operation}: unexpected answer: {e}"),
        })
    }

    /// One Consul key: its bytes and modify index, or `None`.
    pub(super) async fn read(
        &self,
        operation: &'static str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, u64)>> {
        let response = self
            .send(
                operation,
                self.request(reqwest::Method::GET, &format!("/v1/kv/{}", url_key(key))),
            )
            .await?;
        if response.status().as_u16() == 404 {
            return Ok(None);
        }
        let entries: Vec<KvJson> = self.json(operation, response).await?;
        match entries.into_iter().next() {
            Some(e) => Ok(Some((e.bytes()?, e.modify_index))),
            None => Ok(None),
        }
    }

    pub(super) async fn txn(&self, operation: &'static str, ops: &[TxnOp<'_>]) -> Result<Txn> {
        let response = self
            .send(
                operation,
                self.request(reqwest::Method::PUT, "/v1/txn").json(ops),
            )
            .await?;
        let conflict = response.status().as_u16() == 409;
        let answer: TxnResponse = self.json(operation, response).await?;
        if conflict {
            let errors = answer.errors.unwrap_or_default();
            return Ok(Txn::Rejected(
                errors.into_iter().map(|e| (e.op_index, e.what)).collect(),
            ));
        }
        Ok(Txn::Applied(
            answer
                .results
                .unwrap_or_default()
                .into_iter()
                .filter_map(|r| r.kv)
                .collect(),
        ))
    }

    /// Applies the key's own operation (`verb` on the key, with `index` for checks) with its
    /// log entry, moving `%seq`; returns the transaction's index, or why the key's operation
    /// failed (`Ok(Err(what))`).
    pub(super) async fn commit(
        &self,
        key: &str,
        kind: KvEventKind,
        value: &[u8],
        verb: &'static str,
        index: Option<u64>,
    ) -> Result<std::result::Result<u64, String>> {
        let consul_key = self.key_of(key);
        let stored = (kind == KvEventKind::Put).then_some(value);
        let _queue = self.writes.lock().await;
        let seq_key = self.own(SEQ);
        let entry = changelog::entry(kind, key, value);
        for _ in 0..WRITE_ATTEMPTS {
            let (seq, seq_index) = match self.read("put", &seq_key).await? {
                Some((bytes, index)) => (changelog::mark(&bytes), index),
                None => (0, 0),
            };
            let next = seq + 1;
            let log_key = format!("{}{}", self.own(LOG), changelog::name(next));
            let ops = [
                op(
                    "cas",
                    &seq_key,
                    Some(next.to_string().as_bytes()),
                    Some(seq_index),
                ),
                op(verb, &consul_key, stored, index),
                op("set", &log_key, Some(&entry), None),
            ];
            match self.txn("put", &ops).await? {
                Txn::Applied(results) => {
                    let index = results.iter().map(|r| r.modify_index).max().unwrap_or(0);
                    if next % 64 == 0 {
                        self.prune(next).await;
                    }
                    return Ok(Ok(index));
                }
                Txn::Rejected(errors) => {
                    if let Some((_, what)) = errors.iter().find(|(i, _)| *i == 1) {
                        return Ok(Err(what.clone()));
                    }
                    // Another process moved `%seq` first: try again.
                }
            }
        }
        Err(Error::Conflict {
            what: key.to_owned(),
            expected: "a quiet moment to write".into(),
            actual: format!("{WRITE_ATTEMPTS} writes from other processes in a row"),
        })
    }

    /// Drops the log entries more than `history` sequences before `newest`. The mark is
    /// raised first, with check-and-set so that it never goes back.
    pub(super) async fn prune(&self, newest: u64) {
        let history = u64::try_from(self.config.history).unwrap_or(u64::MAX);
        let Some(last) = newest.checked_sub(history) else {
            return;
        };
        let log = self.own(LOG);
        let Ok(Some((_, revision))) = self
            .read("prune", &format!("{log}{}", changelog::name(last)))
            .await
        else {
            return;
        };
        let mark_key = self.own(MARK);
        let (marked, mark_index) = match self.read("prune", &mark_key).await {
            Ok(Some((bytes, index))) => (changelog::mark(&bytes), index),
            Ok(None) => (0, 0),
            Err(_) => return,
        };
        if revision > marked {
            let raise = [op(
                "cas",
                &mark_key,
                Some(revision.to_string().as_bytes()),
                Some(mark_index),
            )];
            if !matches!(self.txn("prune", &raise).await, Ok(Txn::Applied(_))) {
                return; // another process is pruning
            }
        }
        let mut log_view = Log {
            store: self.clone(),
            index: 0,
        };
        let Ok(names) = changelog::ChangeLog::names(&mut log_view).await else {
            return;
        };
        let doomed: Vec<String> = names
            .iter()
            .filter(|n| changelog::sequence(n).is_some_and(|s| s <= last))
            .map(|n| format!("{log}{n}"))
            .collect();
        for chunk in doomed.chunks(TXN_OPS) {
            let ops: Vec<TxnOp<'_>> = chunk.iter().map(|k| op("delete", k, None, None)).collect();
            if let Err(e) = self.txn("prune", &ops).await {
                tracing::debug!(error = %e, "consul log prune skipped");
                return;
            }
        }
    }

    pub(super) async fn write(
        &self,
        key: &str,
        value: &[u8],
        expected: Option<Option<u64>>,
    ) -> Result<u64> {
        check_key(key)?;
        if value.len() > self.config.max_value {
            return Err(Error::Invalid {
                what: "value",
                message: format!(
                    "{} bytes at '{key}' exceed the Consul store's limit of {} bytes (max_value; raise it together with Consul's limits)",
                    value.len(),
                    self.config.max_value
                ),
            });
        }
        let (verb, index) = match expected {
            None => ("set", None),
            Some(expected) => ("cas", Some(expected.unwrap_or(0))),
        };
        match self
            .commit(key, KvEventKind::Put, value, verb, index)
            .await?
        {
            Ok(revision) => Ok(revision),
            Err(_) => {
                let actual = self.get(key).await?.map(|e| e.revision);
                let show =
                    |r: Option<u64>| r.map_or("absent".to_owned(), |r| format!("revision {r}"));
                Err(Error::Conflict {
                    what: key.to_owned(),
                    expected: show(expected.flatten()),
                    actual: show(actual),
                })
            }
        }
    }
}
