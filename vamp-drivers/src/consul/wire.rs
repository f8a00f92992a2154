//! Consul's JSON: KV entries and transactions.

use super::*;

/// A KV entry as Consul returns it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct KvJson {
    pub(super) key: String,
    #[serde(default)]
    pub(super) value: Option<String>,
    #[serde(default)]
    pub(super) modify_index: u64,
}

impl KvJson {
    pub(super) fn bytes(&self) -> Result<Vec<u8>> {
        match &self.value {
            None => Ok(Vec::new()),
            Some(v) => BASE64.decode(v).map_err(|e| Error::Corrupt {
                backend: BACKEND,
                message: format!("the value of '{}' is not base64: {e}", self.key),
            }),
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct TxnOp<'a> {
    #[serde(rename = "KV")]
    pub(super) kv: OpJson<'a>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct OpJson<'a> {
    pub(super) verb: &'static str,
    pub(super) key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) index: Option<u64>,
}

pub(super) fn op<'a>(
    verb: &'static str,
    key: &'a str,
    value: Option<&[u8]>,
    index: Option<u64>,
) -> TxnOp<'a> {
    TxnOp {
        kv: OpJson {
            verb,
            key,
            value: value.map(|v| BASE64.encode(v)),
            index,
        },
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TxnResponse {
    #[serde(default)]
    pub(super) results: Option<Vec<TxnResult>>,
    #[serde(default)]
    pub(super) errors: Option<Vec<TxnError>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct TxnResult {
    #[serde(rename = "KV")]
    pub(super) kv: Option<KvJson>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TxnError {
    pub(super) op_index: usize,
    pub(super) what: String,
}

/// A transaction's outcome: the results, or the failed operations' indexes and reasons.
pub(super) enum Txn {
    Applied(Vec<KvJson>),
    Rejected(Vec<(usize, String)>),
}

/// A Consul key in a URL path: `%` is the only character of encoded paths URLs need escaped.
pub(super) fn url_key(key: &str) -> String {
    key.replace('%', "%25")
}
