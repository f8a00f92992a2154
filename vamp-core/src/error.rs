//! The crate's error type, shared by the four backend traits.

use std::time::Duration;

use crate::dsl::DslError;

/// A boxed source error from a backend library.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of `vamp-core` and of every implementation of its traits.
///
/// "Not found" is not an error: lookups return `Option`. Every variant about a backend names
/// the backend (and its address where there is one), so a log line says where to look.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Invalid DSL input (YAML/JSON artifacts).
    #[error(transparent)]
    Dsl(#[from] DslError),

    /// The backend could not be reached or broke the connection.
    #[error("{backend} at {address} is unavailable: {message}")]
    Unavailable {
        /// Backend name, e.g. `etcd`.
        backend: &'static str,
        /// Where it was expected.
        address: String,
        /// What happened, the underlying error's words included.
        message: String,
        /// The underlying error, to inspect ([`Error::cause`]); not the error's `source()`, as
        /// `message` already says it.
        cause: Option<BoxError>,
    },

    /// The backend did not answer in time.
    #[error("{backend} at {address} did not answer {operation} within {timeout:?}")]
    Timeout {
        /// Backend name.
        backend: &'static str,
        /// Where it was expected.
        address: String,
        /// What was asked.
        operation: &'static str,
        /// How long we waited.
        timeout: Duration,
    },

    /// A write made as the leader was refused: the writer no longer leads in the term it
    /// wrote with (its lease ran out, another server leads now). Nothing was written.
    #[error("fenced: {node} no longer leads in term {term}; the write to {what} was refused")]
    Fenced {
        /// What was being written, e.g. `deployments/shop`.
        what: String,
        /// The writer.
        node: String,
        /// The term it wrote with.
        term: u64,
    },

    /// An optimistic-concurrency precondition failed: somebody else changed it first.
    #[error("conflict on {what}: expected {expected}, found {actual}")]
    Conflict {
        /// What was being changed, e.g. `breeds/sava:1.0.0`.
        what: String,
        /// The precondition.
        expected: String,
        /// The state found.
        actual: String,
    },

    /// The request does not fit the state of what it would change (a command for a rollout
    /// in another phase, a change to a progressing rollout); the API answers 409.
    #[error("{what}: {message}")]
    Refused {
        /// What was to change, e.g. `rollout 'shop'`.
        what: String,
        /// Why not now, and what would work.
        message: String,
    },

    /// The backend cannot do this at all (documented per backend; the conformance kits accept it).
    #[error("{backend} does not support {operation}")]
    Unsupported {
        /// Backend name.
        backend: &'static str,
        /// The operation.
        operation: &'static str,
    },

    /// A watch cannot resume from the requested revision because the backend compacted it.
    #[error("cannot resume from revision {requested}: history before {oldest} is compacted")]
    Compacted {
        /// The revision asked for.
        requested: u64,
        /// The oldest revision still available.
        oldest: u64,
    },

    /// A subscriber fell behind and missed events.
    #[error("subscriber fell behind and missed {missed} events")]
    Lagged {
        /// How many were missed.
        missed: u64,
    },

    /// An argument is not acceptable (an empty key, a page of size 0, …).
    #[error("invalid {what}: {message}")]
    Invalid {
        /// What was invalid.
        what: &'static str,
        /// Why.
        message: String,
    },

    /// Data read back from a backend could not be decoded.
    #[error("corrupt data in {backend}: {message}")]
    Corrupt {
        /// Backend name.
        backend: &'static str,
        /// What was wrong.
        message: String,
    },

    /// Any other backend failure.
    #[error("{backend}: {message}")]
    Backend {
        /// Backend name.
        backend: &'static str,
        /// What happened, the underlying error's words included.
        message: String,
        /// The underlying error, to inspect ([`Error::cause`]). Not reported as the error's
        /// `source()`: `message` already says it, and a report that walks the chain would
        /// print it twice.
        cause: Option<BoxError>,
    },
}

impl Error {
    /// A [`Error::Backend`] from any error.
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        let source = source.into();
        Error::Backend {
            backend,
            message: source.to_string(),
            cause: Some(source),
        }
    }

    /// The underlying error of an [`Error::Backend`] or [`Error::Unavailable`], to inspect or
    /// downcast.
    ///
    /// ```
    /// let e = vamp_core::Error::backend("json", std::io::Error::other("broken pipe"));
    /// assert_eq!(e.to_string(), "json: broken pipe");
    /// assert!(std::error::Error::source(&e).is_none(), "said once, in the message");
    /// assert!(e.cause().is_some_and(|c| c.downcast_ref::<std::io::Error>().is_some()));
    /// ```
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match self {
            Error::Backend { cause, .. } | Error::Unavailable { cause, .. } => cause.as_deref(),
            _ => None,
        }
    }

    /// True for [`Error::Unsupported`].
    pub fn is_unsupported(&self) -> bool {
        matches!(self, Error::Unsupported { .. })
    }
}

/// `Result<T, vamp_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
