//! How JavaScript workflows run (issue 22): a [`ScriptRuntime`] runs a script in a sandbox
//! with a `vamp` object whose calls go to a [`ScriptHost`] — in a server, the `Vamp` facade
//! itself, in-process. The implementation (QuickJS) lives in `vamp-drivers` (feature
//! `javascript`); the workflow runtime hands it `application/javascript` breeds.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use super::{LineSink, RunOutcome};
use crate::Result;
use crate::model::Map;

/// One run of a script.
#[derive(Debug, Clone)]
pub struct ScriptRun {
    /// Whose run: the workflow's name (logs).
    pub name: String,
    /// The JavaScript source (the breed's deployable definition).
    pub source: String,
    /// `process.env` of the script.
    pub environment: Map<String>,
    /// Stopped (interrupted) when it runs longer, timers included.
    pub timeout: Duration,
    /// Stopped when its heap grows past this many bytes.
    pub memory_limit: usize,
    /// Set to stop the run now (the server shuts down); it ends as a failed run saying so.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl ScriptRun {
    /// True once [`cancel`](Self::cancel) is set.
    pub fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// What a script's `vamp` object calls: a method name and its arguments as JSON, answered
/// with JSON. Errors reject the script's promise with their message.
#[async_trait]
pub trait ScriptHost: Send + Sync {
    /// Calls `method` with `args`.
    ///
    /// # Errors
    /// An unknown method, bad arguments, or what the call itself fails with.
    async fn call(&self, method: &str, args: serde_json::Value) -> Result<serde_json::Value>;
}

/// Runs scripts in a sandbox: no file system, no processes, no network but the host.
///
/// Contract: a script that throws (or whose code does not parse) is a failed outcome with the
/// error; one that runs past [`ScriptRun::timeout`] is stopped and fails saying so, as is one
/// that grows past [`ScriptRun::memory_limit`] or is [cancelled](ScriptRun::cancel); `console.log` lines (and `console.error` ones,
/// flagged) go to the sink as they are written. Neither panics nor hangs the caller.
#[async_trait]
pub trait ScriptRuntime: Send + Sync + Debug {
    /// The engine's name, e.g. `quickjs`.
    fn backend(&self) -> &'static str;

    /// Runs `run` to its end, its `vamp` calls going to `host`.
    ///
    /// # Errors
    /// Only when the engine itself cannot start; everything the script does is an outcome.
    async fn run(
        &self,
        run: &ScriptRun,
        host: std::sync::Arc<dyn ScriptHost>,
        lines: LineSink<'_>,
    ) -> Result<RunOutcome>;
}
