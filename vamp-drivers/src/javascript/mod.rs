//! [`QuickJs`]: JavaScript workflows in an embedded QuickJS (rquickjs), sandboxed — the
//! [`ScriptRuntime`] of issue 22.
//!
//! - The engine has the language and its standard objects only: no `require` of Node's
//!   modules, no file system, no processes, no sockets (QuickJS's own `std`/`os` modules are
//!   never loaded). The one way out is the global `vamp` object, whose methods return promises
//!   and are answered by the [`ScriptHost`] (in a server: the `Vamp` facade, in-process).
//! - `console.log`/`info` lines go to the run's output, `console.error`/`warn` flagged as
//!   standard error; `process.env` is the run's environment; `setTimeout`, `setInterval` and
//!   their `clear…` run on the engine's own timer queue.
//! - A run ends when the script, its promise jobs and its timers are done. It is stopped at
//!   its timeout (an interrupt checked while JavaScript runs, and before each timer) and when
//!   its heap passes its memory limit; both are failed runs with the reason, as is an
//!   uncaught exception or an unhandled promise rejection.
//! - Each run has its own engine on a blocking thread of the Tokio runtime, so a script that
//!   loops never holds up the server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use rquickjs::{CatchResultExt, Context, Ctx, Function, Runtime};
use vamp_core::traits::{LineSink, LogLine, RunOutcome, ScriptHost, ScriptRun, ScriptRuntime};
use vamp_core::{Error, Result};

const BACKEND: &str = "quickjs";

/// What every script sees before its own code: `console`, `process`, timers and `vamp`.
const PRELUDE: &str = r#"
(() => {
  const show = (v) => typeof v === 'string' ? v
    : (v instanceof Error ? `${v.name}: ${v.message}` : (() => { try { return JSON.stringify(v) } catch (e) { return String(v) } })());
  const line = (stderr) => (...args) => __log(stderr, args.map(show).join(' '));
  globalThis.console = { log: line(false), info: line(false), debug: line(false), warn: line(true), error: line(true) };
  globalThis.process = { env: JSON.parse(__env) };
  const timers = new Map();
  let nextTimer = 1;
  const add = (fn, ms, args, every) => {
    const id = nextTimer++;
    const wait = Math.max(0, Number(ms) || 0);
    timers.set(id, { at: Date.now() + wait, fn, args, every: every ? Math.max(1, wait) : 0, order: id });
    return id;
  };
  globalThis.setTimeout = (fn, ms, ...args) => add(fn, ms, args, false);
  globalThis.setInterval = (fn, ms, ...args) => add(fn, ms, args, true);
  globalThis.clearTimeout = globalThis.clearInterval = (id) => { timers.delete(id); };
  globalThis.__dueIn = () => {
    let next = null;
    for (const t of timers.values()) if (next === null || t.at < next) next = t.at;
    return next === null ? -1 : Math.max(0, next - Date.now());
  };
  globalThis.__fireDue = () => {
    const now = Date.now();
    const due = [...timers.entries()].filter(([, t]) => t.at <= now).sort((a, b) => a[1].at - b[1].at || a[1].order - b[1].order);
    for (const [id, t] of due) {
      if (!timers.has(id)) continue;
      if (t.every) t.at = now + t.every; else timers.delete(id);
      t.fn(...t.args);
    }
  };
  const call = (method) => (...args) => new Promise((resolve, reject) => {
    try { resolve(JSON.parse(__call(method, JSON.stringify(args)))); } catch (e) { reject(e); }
  });
  const methods = ['list', 'get', 'create', 'update', 'remove', 'deployments', 'gateways', 'setWeights', 'event', 'events', 'stats', 'traffic', 'count', 'average', 'percentile', 'health', 'metrics'];
  globalThis.vamp = Object.freeze(Object.fromEntries(methods.map((m) => [m, call(m)])));
  globalThis.require = (name) => { throw new Error(`no module '${name}': scripts have the global 'vamp' object and nothing else to load`); };
})();
"#;

/// JavaScript workflows in QuickJS.
///
/// ```
/// # async fn demo() -> vamp_core::Result<()> {
/// use std::sync::Arc;
/// use vamp_core::traits::{ScriptHost, ScriptRun, ScriptRuntime};
/// use vamp_drivers::javascript::QuickJs;
///
/// struct NoHost;
/// #[async_trait::async_trait]
/// impl ScriptHost for NoHost {
///     async fn call(&self, _: &str, _: serde_json::Value) -> vamp_core::Result<serde_json::Value> {
///         Ok(serde_json::Value::Null)
///     }
/// }
///
/// let run = ScriptRun {
///     name: "hello".into(),
///     source: "console.log('hello', process.env.WHO)".into(),
///     environment: [("WHO".to_owned(), "world".to_owned())].into(),
///     timeout: std::time::Duration::from_secs(5),
///     memory_limit: 64 << 20,
///     cancel: None,
/// };
/// let lines = std::sync::Mutex::new(Vec::new());
/// let outcome = QuickJs.run(&run, Arc::new(NoHost), &|l| lines.lock().unwrap().push(l.text)).await?;
/// assert_eq!(outcome.status, Some(0));
/// assert_eq!(lines.lock().unwrap()[0], "hello world");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct QuickJs;

#[async_trait]
impl ScriptRuntime for QuickJs {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn run(
        &self,
        run: &ScriptRun,
        host: Arc<dyn ScriptHost>,
        lines: LineSink<'_>,
    ) -> Result<RunOutcome> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<LogLine>();
        let handle = tokio::runtime::Handle::current();
        let run = run.clone();
        let task = tokio::task::spawn_blocking(move || run_blocking(&run, &host, &handle, &tx));
        while let Some(line) = rx.recv().await {
            lines(line);
        }
        task.await.map_err(|e| Error::backend(BACKEND, e))
    }
}

/// Longest sleep between two looks at the cancel flag while waiting for a timer.
const NAP: Duration = Duration::from_millis(100);

fn failed(message: String) -> RunOutcome {
    RunOutcome {
        status: None,
        failure: Some(message),
    }
}

fn run_blocking(
    run: &ScriptRun,
    host: &Arc<dyn ScriptHost>,
    handle: &tokio::runtime::Handle,
    tx: &tokio::sync::mpsc::UnboundedSender<LogLine>,
) -> RunOutcome {
    let deadline = Instant::now() + run.timeout;
    let timeout_failure = || failed(format!("killed after its timeout of {:?}", run.timeout));
    let Ok(rt) = Runtime::new() else {
        return failed("the JavaScript engine could not start".into());
    };
    rt.set_memory_limit(run.memory_limit);
    rt.set_max_stack_size(1 << 20);
    // Set when the interrupt stopped the script at its deadline (a cancel shows on the run).
    let timed_out = Arc::new(AtomicBool::new(false));
    let flag = timed_out.clone();
    let cancel = run.cancel.clone();
    rt.set_interrupt_handler(Some(Box::new(move || {
        if cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
            return true;
        }
        let over = Instant::now() >= deadline;
        if over {
            flag.store(true, Ordering::Relaxed);
        }
        over
    })));
    let cancelled_failure = || failed("stopped: the server shut down".into());
    let rejected: Arc<Mutex<Option<String>>> = Arc::default();
    let unhandled = rejected.clone();
    rt.set_host_promise_rejection_tracker(Some(Box::new(
        move |_ctx, _promise, reason, handled| {
            let mut slot = unhandled
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if handled {
                *slot = None;
            } else if slot.is_none() {
                *slot = Some(describe(&reason));
            }
        },
    )));
    let Ok(context) = Context::full(&rt) else {
        return failed("the JavaScript engine could not start".into());
    };
    let classify = |message: String| -> RunOutcome {
        if run.cancelled() {
            cancelled_failure()
        } else if timed_out.load(Ordering::Relaxed) {
            timeout_failure()
        } else if message.contains("out of memory") {
            failed(format!(
                "out of memory: the script's heap passed its limit of {} MiB",
                run.memory_limit >> 20
            ))
        } else {
            RunOutcome {
                status: Some(1),
                failure: Some(format!("uncaught exception: {message}")),
            }
        }
    };
    let started = context.with(|ctx| -> std::result::Result<(), String> {
        install(&ctx, run, host, handle, tx, deadline).map_err(|e| e.to_string())?;
        ctx.eval::<(), _>(PRELUDE)
            .catch(&ctx)
            .map_err(|e| e.to_string())?;
        ctx.eval::<(), _>(run.source.as_str())
            .catch(&ctx)
            .map_err(|e| e.to_string())
    });
    if let Err(message) = started {
        return classify(message);
    }
    loop {
        // Promise jobs first, as an event loop does.
        while rt.is_job_pending() {
            if rt.execute_pending_job().is_err() {
                let message = context.with(|ctx| describe(&ctx.catch()));
                return classify(message);
            }
        }
        if let Some(reason) = rejected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            return RunOutcome {
                status: Some(1),
                failure: Some(format!("unhandled promise rejection: {reason}")),
            };
        }
        let due_in = context.with(|ctx| ctx.eval::<f64, _>("__dueIn()").unwrap_or(-1.0));
        if due_in < 0.0 {
            return RunOutcome {
                status: Some(0),
                failure: None,
            };
        }
        let due = Instant::now() + Duration::from_secs_f64(due_in / 1000.0);
        loop {
            if run.cancelled() {
                return cancelled_failure();
            }
            let now = Instant::now();
            if now >= deadline {
                return timeout_failure();
            }
            if now >= due {
                break;
            }
            std::thread::sleep(due.min(deadline).saturating_duration_since(now).min(NAP));
        }
        let fired = context.with(|ctx| {
            ctx.eval::<(), _>("__fireDue()")
                .catch(&ctx)
                .map_err(|e| e.to_string())
        });
        if let Err(message) = fired {
            return classify(message);
        }
    }
}

/// A thrown value as text: an error's name and message, anything else as JSON or a string.
fn describe(value: &rquickjs::Value<'_>) -> String {
    if let Some(e) = value.as_exception() {
        return e.message().unwrap_or_else(|| "an exception".to_owned());
    }
    if let Some(s) = value.as_string().and_then(|s| s.to_string().ok()) {
        return s;
    }
    let ctx = value.ctx().clone();
    ctx.json_stringify(value.clone())
        .ok()
        .flatten()
        .and_then(|s| s.to_string().ok())
        .unwrap_or_else(|| format!("{value:?}"))
}

/// The native functions the prelude builds on: `__log`, `__call` and `__env`.
fn install<'js>(
    ctx: &Ctx<'js>,
    run: &ScriptRun,
    host: &Arc<dyn ScriptHost>,
    handle: &tokio::runtime::Handle,
    tx: &tokio::sync::mpsc::UnboundedSender<LogLine>,
    deadline: Instant,
) -> rquickjs::Result<()> {
    let globals = ctx.globals();
    let env = serde_json::to_string(&run.environment).unwrap_or_else(|_| "{}".into());
    globals.set("__env", env)?;
    let out = tx.clone();
    globals.set(
        "__log",
        Function::new(ctx.clone(), move |stderr: bool, text: String| {
            let _ = out.send(LogLine {
                at: Utc::now(),
                stderr,
                text,
            });
        })?,
    )?;
    let host = host.clone();
    let handle = handle.clone();
    let cancel = run.cancel.clone();
    globals.set(
        "__call",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, method: String, args: String| -> rquickjs::Result<String> {
                if cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
                    return Err(rquickjs::Exception::throw_message(
                        &ctx,
                        "stopped: the server shut down",
                    ));
                }
                let args: serde_json::Value = serde_json::from_str(&args)
                    .map_err(|e| rquickjs::Exception::throw_message(&ctx, &e.to_string()))?;
                let left = deadline.saturating_duration_since(Instant::now());
                let answer = handle
                    .block_on(async { tokio::time::timeout(left, host.call(&method, args)).await });
                match answer {
                    Ok(Ok(value)) => Ok(value.to_string()),
                    Ok(Err(e)) => Err(rquickjs::Exception::throw_message(&ctx, &e.to_string())),
                    Err(_) => Err(rquickjs::Exception::throw_message(
                        &ctx,
                        &format!("vamp.{method}: no answer before the run's timeout"),
                    )),
                }
            },
        )?,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;
