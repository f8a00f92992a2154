//! The change log that lets stores without history (ZooKeeper, Consul) keep the
//! `KeyValueStore` watch contract: every change appends an entry in the same transaction, and a
//! watch reads the entries after the revision it resumes from.
//!
//! An entry is named `e-<sequence>` (sequences grow with revisions); its bytes are the kind
//! (`P`/`D`), the key's length (u32, big-endian), the key and the value. A mark next to the
//! entries holds the revision of the newest pruned entry; it is raised before entries are
//! deleted, so a watch never misses an entry without learning of it.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use vamp_core::traits::{KvEvent, KvEventKind};
use vamp_core::{Error, Result};

/// The bytes of one entry.
pub(crate) fn entry(kind: KvEventKind, key: &str, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + key.len() + value.len());
    out.push(if kind == KvEventKind::Put { b'P' } else { b'D' });
    let len = u32::try_from(key.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(value);
    out
}

/// An entry's bytes back to the change; `None` when they are not an entry.
pub(crate) fn parse(data: &[u8], revision: u64) -> Option<KvEvent> {
    let (&kind, rest) = data.split_first()?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    let len = usize::try_from(len).ok()?;
    let key = std::str::from_utf8(rest.get(4..4 + len)?).ok()?.to_owned();
    let value = rest.get(4 + len..)?.to_vec();
    let kind = match kind {
        b'P' => KvEventKind::Put,
        b'D' => KvEventKind::Delete,
        _ => return None,
    };
    Some(KvEvent {
        kind,
        key,
        value: (kind == KvEventKind::Put).then_some(value),
        revision,
    })
}

/// The name of the entry with `sequence`.
pub(crate) fn name(sequence: u64) -> String {
    format!("e-{sequence:020}")
}

/// The sequence of an entry's name (`e-0000000042` → 42).
pub(crate) fn sequence(name: &str) -> Option<u64> {
    name.strip_prefix("e-")?.parse().ok()
}

/// A mark's bytes (a decimal revision; empty or unreadable = nothing pruned).
pub(crate) fn mark(data: &[u8]) -> u64 {
    std::str::from_utf8(data)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// A store's change log, as the follower reads it.
#[async_trait]
pub(crate) trait ChangeLog: Send {
    /// The entries' names, and a notification armed before they were read.
    async fn names(&mut self) -> Result<Vec<String>>;
    /// Waits until the entries changed since [`names`](Self::names) (or a while passed).
    async fn changed(&mut self);
    /// The revision of an entry; `None` when it was pruned.
    async fn revision(&self, name: &str) -> Result<Option<u64>>;
    /// An entry's bytes and revision; `None` when it was pruned.
    async fn read(&self, name: &str) -> Result<Option<(Vec<u8>, u64)>>;
    /// The revision of the newest pruned entry (0: none).
    async fn pruned(&self) -> Result<u64>;
}

/// Why a round stopped.
enum Stop {
    /// The receiver is gone, or the watch ended with an error already sent.
    Done,
    /// The store did not answer; try again after a pause.
    Retry(Error),
}

/// Delivers every change after `revision` whose key starts with `prefix`, in order, once,
/// until the receiver is dropped, the history was compacted, or an entry is unreadable.
/// Failed reads are retried with backoff (100 ms doubling to 5 s, with jitter).
pub(crate) async fn follow(
    mut log: impl ChangeLog,
    prefix: String,
    revision: u64,
    tx: mpsc::Sender<Result<KvEvent>>,
) {
    let mut cursor = Cursor {
        revision,
        located: false,
        sequence: None,
    };
    let policy = || vamp_core::retry::backoff(Duration::from_millis(100), Duration::from_secs(5));
    let mut backoff = policy();
    loop {
        match round(&mut log, &prefix, &mut cursor, &tx).await {
            Ok(()) => {
                backoff = policy();
                tokio::select! {
                    () = tx.closed() => return,
                    () = log.changed() => {}
                }
            }
            Err(Stop::Done) => return,
            Err(Stop::Retry(e)) => {
                tracing::debug!(error = %e, %prefix, "watch interrupted; resuming");
                tokio::select! {
                    () = tx.closed() => return,
                    () = tokio::time::sleep(backoff.delay()) => {}
                }
            }
        }
    }
}

/// Where a watch stands.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    /// The revision of the last change seen (delivered, or skipped by prefix).
    revision: u64,
    /// Whether `sequence` has been found.
    located: bool,
    /// The sequence of that change's entry (`None`: before every entry).
    sequence: Option<u64>,
}

async fn round(
    log: &mut impl ChangeLog,
    prefix: &str,
    cursor: &mut Cursor,
    tx: &mpsc::Sender<Result<KvEvent>>,
) -> std::result::Result<(), Stop> {
    let mut entries: Vec<(u64, String)> = log
        .names()
        .await
        .map_err(Stop::Retry)?
        .into_iter()
        .filter_map(|n| Some((sequence(&n)?, n)))
        .collect();
    entries.sort_unstable();
    if !cursor.located {
        // First round: the first entry after the cursor's revision (sequences grow with
        // revisions, so a binary search over the entries' revisions).
        let (mut lo, mut hi) = (0, entries.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match log.revision(&entries[mid].1).await.map_err(Stop::Retry)? {
                Some(r) if r > cursor.revision => hi = mid,
                // At or before the cursor, or pruned: the compaction check below decides.
                _ => lo = mid + 1,
            }
        }
        cursor.sequence = lo.checked_sub(1).map(|i| entries[i].0);
        cursor.located = true;
    }
    check_compaction(log, cursor.revision, tx).await?;
    let after = cursor.sequence;
    for (seq, name) in entries.iter().filter(|(s, _)| after.is_none_or(|a| *s > a)) {
        let Some((data, revision)) = log.read(name).await.map_err(Stop::Retry)? else {
            check_compaction(log, cursor.revision, tx).await?;
            return Err(Stop::Retry(Error::Backend {
                backend: "change log",
                message: format!("entry {name} vanished"),
                cause: None,
            }));
        };
        let Some(event) = parse(&data, revision) else {
            let _ = tx
                .send(Err(Error::Corrupt {
                    backend: "change log",
                    message: format!("unreadable entry {name}"),
                }))
                .await;
            return Err(Stop::Done);
        };
        *cursor = Cursor {
            revision,
            located: true,
            sequence: Some(*seq),
        };
        if event.key.starts_with(prefix) && tx.send(Ok(event)).await.is_err() {
            return Err(Stop::Done);
        }
    }
    Ok(())
}

/// Ends the watch with `Error::Compacted` when entries after `revision` were pruned.
async fn check_compaction(
    log: &impl ChangeLog,
    revision: u64,
    tx: &mpsc::Sender<Result<KvEvent>>,
) -> std::result::Result<(), Stop> {
    let pruned = log.pruned().await.map_err(Stop::Retry)?;
    if revision < pruned {
        let _ = tx
            .send(Err(Error::Compacted {
                requested: revision,
                oldest: pruned + 1,
            }))
            .await;
        return Err(Stop::Done);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let bytes = entry(KvEventKind::Put, "/a/ключ", b"\0\xffvalue");
        let event = parse(&bytes, 7).expect("parses");
        assert_eq!(event.key, "/a/ключ");
        assert_eq!(event.value.as_deref(), Some(&b"\0\xffvalue"[..]));
        assert_eq!((event.kind, event.revision), (KvEventKind::Put, 7));
        let delete = parse(&entry(KvEventKind::Delete, "k", &[]), 8).expect("parses");
        assert_eq!((delete.kind, delete.value), (KvEventKind::Delete, None));
        assert!(parse(b"P\0\0\0\x09ab", 1).is_none(), "short key");
        assert!(parse(b"X\0\0\0\0", 1).is_none(), "unknown kind");
        assert!(parse(b"", 1).is_none());
    }

    #[test]
    fn names_and_marks() {
        assert_eq!(sequence(&name(42)), Some(42));
        assert_eq!(sequence("e-0000000042"), Some(42));
        assert_eq!(sequence("x-1"), None);
        assert_eq!(mark(b"17"), 17);
        assert_eq!(mark(b""), 0);
    }
}
