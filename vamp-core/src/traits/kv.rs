//! The key-value store trait (spec §4.1; ARCHITECTURE "KV layout").

use std::fmt::Debug;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::Result;

/// A stored key with its value and the revision of its last change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    /// The key.
    pub key: String,
    /// The value, byte-exact.
    pub value: Vec<u8>,
    /// The store revision at which this key was last written.
    pub revision: u64,
}

/// A consistent listing: the entries and the store revision they were read at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KvList {
    /// Entries sorted by key (byte order).
    pub entries: Vec<KvEntry>,
    /// Watching from this revision sees every later change exactly once.
    pub revision: u64,
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KvEventKind {
    /// Created or updated.
    Put,
    /// Deleted.
    Delete,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEvent {
    /// Put or delete.
    pub kind: KvEventKind,
    /// The key.
    pub key: String,
    /// The new value (`None` for deletes).
    pub value: Option<Vec<u8>>,
    /// The store revision of this change.
    pub revision: u64,
}

/// A stream of changes, in revision order.
pub type WatchStream = BoxStream<'static, Result<KvEvent>>;

/// A key-value store: where rendered gateway configuration travels to gateway agents
/// (and, for the `kv` persistence, where artifacts live).
///
/// Contract:
/// - Keys are non-empty UTF-8 strings (any characters, `/` is just a character); values are
///   bytes of any length the backend allows (at least 1 MiB). Both round-trip exactly.
/// - Every change gets a store-wide revision, strictly increasing in the order changes happen.
/// - [`watch`](Self::watch) delivers every change under a prefix, in revision order, exactly
///   once. It survives reconnects by resuming from the last delivered revision; if it cannot
///   (history compacted), it yields [`Error::Compacted`](crate::Error::Compacted) and ends.
/// - Operations are bounded in time; an unreachable store is an error, never a hang.
#[async_trait]
pub trait KeyValueStore: Send + Sync + Debug {
    /// The backend's name, e.g. `memory`, `etcd`.
    fn backend(&self) -> &'static str;

    /// The value at `key`, or `None`.
    async fn get(&self, key: &str) -> Result<Option<KvEntry>>;

    /// Writes `value` at `key`; returns the revision of the change.
    async fn put(&self, key: &str, value: &[u8]) -> Result<u64>;

    /// Writes only if the key's current revision is `expected` (`None`: the key must not
    /// exist); else [`Error::Conflict`](crate::Error::Conflict). Returns the new revision.
    /// Backends without compare-and-set return [`Error::Unsupported`](crate::Error::Unsupported).
    async fn put_if(&self, key: &str, value: &[u8], expected: Option<u64>) -> Result<u64> {
        let _ = (key, value, expected);
        Err(crate::Error::Unsupported {
            backend: self.backend(),
            operation: "compare-and-set",
        })
    }

    /// Deletes `key`; `false` if it did not exist.
    async fn delete(&self, key: &str) -> Result<bool>;

    /// Every key that starts with `prefix` (empty = all), sorted, with the read revision.
    async fn list(&self, prefix: &str) -> Result<KvList>;

    /// Changes to keys starting with `prefix`: with `after = Some(r)` every change with a
    /// revision greater than `r` (use [`KvList::revision`] to continue a listing), with `None`
    /// the changes from now on.
    async fn watch(&self, prefix: &str, after: Option<u64>) -> Result<WatchStream>;
}

/// The check every store makes first: keys are not empty.
///
/// ```
/// assert!(vamp_core::traits::kv::check_key("").is_err());
/// assert!(vamp_core::traits::kv::check_key("/vamp").is_ok());
/// ```
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(crate::Error::Invalid {
            what: "key",
            message: "keys must not be empty".into(),
        });
    }
    Ok(())
}

/// Percent-encodes `name` for use as one segment of a key: letters, digits and `-_.~:` stay,
/// every other byte (`/` included) becomes `%XX`, so a name never adds a level to a key.
///
/// ```
/// use vamp_core::traits::kv::{decode_segment, encode_segment};
/// assert_eq!(encode_segment("shop/web port"), "shop%2Fweb%20port");
/// assert_eq!(decode_segment("shop%2Fweb%20port").as_deref(), Some("shop/web port"));
/// ```
pub fn encode_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reverses [`encode_segment`] — and decodes any percent-encoded text (`%XX` escapes);
/// `None` for a bad escape or bytes that are not UTF-8.
pub fn decode_segment(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            out.push(u8::from_str_radix(encoded.get(i + 1..i + 3)?, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
