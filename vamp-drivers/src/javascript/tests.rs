//! The sandbox's promises: output, environment, the `vamp` calls, timers, and every way a
//! script can end — with the reason when it fails.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use vamp_core::traits::{RunOutcome, ScriptHost, ScriptRun, ScriptRuntime};

use super::QuickJs;

/// Answers `get` with its arguments, fails `fail`, records every call.
#[derive(Default)]
struct Host(Mutex<Vec<(String, Value)>>);

#[async_trait]
impl ScriptHost for Host {
    async fn call(&self, method: &str, args: Value) -> vamp_core::Result<Value> {
        self.0
            .lock()
            .unwrap()
            .push((method.to_owned(), args.clone()));
        match method {
            "fail" | "remove" => Err(vamp_core::Error::Invalid {
                what: "test",
                message: "refused by the host".into(),
            }),
            _ => Ok(json!({"method": method, "args": args})),
        }
    }
}

async fn run_with(
    source: &str,
    timeout: Duration,
    memory: usize,
) -> (RunOutcome, Vec<(bool, String)>, Arc<Host>) {
    let host = Arc::new(Host::default());
    let lines = Mutex::new(Vec::new());
    let run = ScriptRun {
        name: "test".into(),
        source: source.into(),
        environment: [("WHO".to_owned(), "world".to_owned())].into(),
        timeout,
        memory_limit: memory,
        cancel: None,
    };
    let outcome = QuickJs
        .run(&run, host.clone(), &|l| {
            lines.lock().unwrap().push((l.stderr, l.text))
        })
        .await
        .unwrap();
    (outcome, lines.into_inner().unwrap(), host)
}

async fn run(source: &str) -> (RunOutcome, Vec<(bool, String)>, Arc<Host>) {
    run_with(source, Duration::from_secs(10), 64 << 20).await
}

fn ok() -> RunOutcome {
    RunOutcome {
        status: Some(0),
        failure: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_lines_carry_their_stream_and_process_env_is_the_runs() {
    let (outcome, lines, _) =
        run("console.log('hi', process.env.WHO, {a: 1}, [2]); console.error('oops'); console.log(Object.keys(process.env).join())").await;
    assert_eq!(outcome, ok());
    assert_eq!(
        lines,
        [
            (false, "hi world {\"a\":1} [2]".to_owned()),
            (true, "oops".to_owned()),
            (false, "WHO".to_owned())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vamp_calls_are_promises_answered_by_the_host_and_rejected_with_its_error() {
    let (outcome, lines, host) = run(
        "vamp.get('breeds', 'web:1').then((b) => console.log(b.method, b.args.join('/')));\n\
         vamp.remove('breeds', 'x').catch((e) => console.log('rejected:', e.message));",
    )
    .await;
    assert_eq!(outcome, ok());
    assert_eq!(
        lines,
        [
            (false, "get breeds/web:1".to_owned()),
            (
                false,
                "rejected: invalid test: refused by the host".to_owned()
            )
        ]
    );
    let calls = host.0.lock().unwrap().clone();
    assert_eq!(calls[0], ("get".to_owned(), json!(["breeds", "web:1"])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_in_order_and_intervals_stop_when_cleared() {
    let (outcome, lines, _) = run(
        "setTimeout(() => console.log('b'), 30); setTimeout(() => console.log('a'), 10);\n\
         let n = 0; const i = setInterval(() => { console.log('tick', ++n); if (n === 3) clearInterval(i); }, 5);\n\
         const never = setTimeout(() => console.log('never'), 5); clearTimeout(never);",
    )
    .await;
    assert_eq!(outcome, ok());
    let texts: Vec<&str> = lines.iter().map(|(_, t)| t.as_str()).collect();
    assert!(
        texts.contains(&"tick 3") && !texts.contains(&"tick 4"),
        "{texts:?}"
    );
    let (a, b) = (
        texts.iter().position(|t| *t == "a"),
        texts.iter().position(|t| *t == "b"),
    );
    assert!(a < b, "{texts:?}");
    assert!(!texts.contains(&"never"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_that_loops_forever_is_stopped_at_its_timeout() {
    let (outcome, _, _) = run_with("for (;;) {}", Duration::from_millis(500), 64 << 20).await;
    assert_eq!(outcome.status, None);
    assert!(outcome.failure.unwrap().contains("timeout"));
    // A timer that would fire after the deadline does not hold the run either.
    let (outcome, _, _) = run_with(
        "setInterval(() => {}, 50)",
        Duration::from_millis(300),
        64 << 20,
    )
    .await;
    assert!(outcome.failure.unwrap().contains("timeout"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_that_allocates_without_end_hits_its_memory_limit() {
    let (outcome, _, _) = run_with(
        "const keep = []; for (;;) keep.push(new Array(100000).fill(7));",
        Duration::from_secs(30),
        16 << 20,
    )
    .await;
    assert_eq!(outcome.status, None, "{outcome:?}");
    let failure = outcome.failure.unwrap();
    assert!(
        failure.contains("out of memory") && failure.contains("16 MiB"),
        "{failure}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceptions_and_unhandled_rejections_fail_the_run_with_their_message() {
    let (outcome, _, _) = run("throw new Error('boom')").await;
    assert_eq!(outcome.status, Some(1));
    assert!(outcome.failure.unwrap().contains("boom"));
    let (outcome, _, _) = run("Promise.reject(new Error('nope'))").await;
    assert!(
        outcome
            .failure
            .unwrap()
            .contains("unhandled promise rejection: nope")
    );
    let (outcome, _, _) = run("this is not javascript").await;
    assert_eq!(outcome.status, Some(1));
    assert!(
        outcome
            .failure
            .is_some_and(|f| f.contains("uncaught exception"))
    );
}

/// No file system, no processes, no network but the `vamp` object: every door a script
/// might try is shut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_has_no_files_processes_or_network() {
    let (outcome, lines, _) = run(
        "console.log([typeof std, typeof os, typeof fetch, typeof XMLHttpRequest, typeof WebSocket, typeof Deno, typeof Bun, typeof process.exit, typeof process.binding, typeof __filename].join());\n\
         for (const m of ['fs', 'child_process', 'net', 'http', 'os']) {\n\
           try { require(m); console.log('loaded', m); } catch (e) { console.log('refused', m); }\n\
         }\n\
         import('fs').then(() => console.log('imported fs'), () => console.log('refused import'));",
    )
    .await;
    assert_eq!(outcome, ok(), "{lines:?}");
    let texts: Vec<&str> = lines.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts[0], ["undefined"; 10].join(","));
    for m in ["fs", "child_process", "net", "http", "os"] {
        assert!(
            texts.contains(&format!("refused {m}").as_str()),
            "{texts:?}"
        );
    }
    assert!(texts.contains(&"refused import"), "{texts:?}");
}

/// A server that shuts down stops its runs: a busy loop and one waiting on timers alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_stops_at_once_saying_why() {
    for source in ["for (;;) {}", "setInterval(() => {}, 10)"] {
        let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let run = ScriptRun {
            name: "cancelled".into(),
            source: source.into(),
            environment: Default::default(),
            timeout: Duration::from_secs(60),
            memory_limit: 64 << 20,
            cancel: Some(cancel.clone()),
        };
        let flag = cancel.clone();
        let setter = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        let outcome = QuickJs
            .run(&run, Arc::new(Host::default()), &|_| {})
            .await
            .unwrap();
        setter.await.unwrap();
        assert_eq!(
            outcome.failure.as_deref(),
            Some("stopped: the server shut down"),
            "{source}"
        );
    }
}
