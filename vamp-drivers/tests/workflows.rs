//! The workflow runtime end to end on the process driver: command workflows on their
//! schedules, with the Vamp environment, their output in the executions, timeouts, status
//! changes and their events. Waits are bounded polls on what the runtime reports.

use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt as _;
use vamp_core::model::{Event, Kind, WorkflowStatus};
use vamp_core::testkit::eventually_within;
use vamp_core::traits::{ContainerDriver, EventFilter, Page};
use vamp_core::workflow::{ExecutionStatus, Executions, WorkflowConfig};
use vamp_core::{Vamp, VampConfig};
use vamp_drivers::process::{ProcessConfig, ProcessDriver};
use vamp_drivers::sqlite::SqlitePersistence;

const WAIT: Duration = Duration::from_secs(30);

/// A running Vamp on the process driver and SQLite, workflows passing every 100 ms.
struct Running {
    vamp: Vamp,
    loops: vamp_core::Background,
    dir: std::sync::Arc<tempfile::TempDir>,
}

impl Running {
    async fn start() -> Running {
        Self::start_in(std::sync::Arc::new(tempfile::tempdir().unwrap())).await
    }

    /// A Vamp over the state in `dir` (a restart, when another ran there before).
    async fn start_in(dir: std::sync::Arc<tempfile::TempDir>) -> Running {
        let driver = ProcessDriver::new(ProcessConfig::new(dir.path().join("process"))).unwrap();
        Self::start_on(dir, std::sync::Arc::new(driver)).await
    }

    /// A Vamp on `driver` over the state in `dir`.
    async fn start_on(
        dir: std::sync::Arc<tempfile::TempDir>,
        driver: std::sync::Arc<dyn ContainerDriver>,
    ) -> Running {
        let db = SqlitePersistence::open(dir.path().join("vamp.db"))
            .await
            .unwrap();
        let vamp = Vamp::builder()
            .driver(driver)
            .persistence(std::sync::Arc::new(db))
            .config(VampConfig {
                workflows: WorkflowConfig {
                    period: Some(Duration::from_millis(100)),
                    api_url: Some("http://127.0.0.1:1/api/v1".into()),
                    ..WorkflowConfig::default()
                },
                ..VampConfig::default()
            })
            .build()
            .unwrap();
        Running {
            loops: vamp.start(),
            vamp,
            dir,
        }
    }

    async fn put(&self, yaml: &str) {
        let artifacts = self.vamp.read(yaml, Some(Kind::Workflow)).await.unwrap();
        for a in artifacts {
            self.vamp.put(a).await.unwrap();
        }
    }

    /// Waits until `name`'s executions satisfy `f`.
    async fn until(&self, name: &str, what: &str, f: impl Fn(&Executions) -> bool) -> Executions {
        let vamp = self.vamp.clone();
        eventually_within(what, WAIT, || {
            let e = vamp.workflow_executions(name);
            let ok = f(&e);
            async move { ok }
        })
        .await;
        self.vamp.workflow_executions(name)
    }

    async fn status(&self, name: &str) -> Option<WorkflowStatus> {
        self.vamp.workflow(name).await.unwrap().map(|w| w.status)
    }

    async fn stop(self) {
        self.loops.stop().await;
    }
}

fn done(e: &Executions) -> usize {
    e.last
        .iter()
        .filter(|x| x.status != ExecutionStatus::Running)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_runs_every_period_with_the_vamp_environment_until_suspended() {
    let vamp = Running::start().await;
    vamp.put(
        "name: tick\nbreed: {name: tick:1, deployable: {type: command, definition: \"/bin/sh -c 'echo run $VAMP_URL $VAMP_WORKFLOW_EXECUTION_PERIOD $FROM_WORKFLOW'\"}, environment_variables: {VAMP_WORKFLOW_EXECUTION_PERIOD: \"1\", FROM_WORKFLOW: breed}}\nschedule: daemon\nenvironment_variables: {FROM_WORKFLOW: here}\n",
    )
    .await;
    let e = vamp
        .until("tick", "two runs of the daemon", |e| e.succeeded_total >= 2)
        .await;
    let line = &e.last[e.last.len() - 1].log[0];
    assert_eq!(line.text, "run http://127.0.0.1:1/api/v1 1 here");
    assert!(!line.stderr);
    assert_eq!(vamp.status("tick").await, Some(WorkflowStatus::Running));
    // Runs at most one a second: the first two started a period apart (less the jitter of
    // the state write each start waits for: the state is stored before a run starts, so a
    // crash never runs it twice).
    let (first, second) = (&e.last[e.last.len() - 1], &e.last[e.last.len() - 2]);
    assert!(second.started - first.started >= chrono::TimeDelta::milliseconds(900));

    vamp.vamp
        .set_workflow_status("tick", WorkflowStatus::Suspending)
        .await
        .unwrap();
    let vamp_ref = &vamp;
    eventually_within("suspended", WAIT, || async move {
        vamp_ref.status("tick").await == Some(WorkflowStatus::Suspended)
    })
    .await;
    let after = vamp.vamp.workflow_executions("tick").succeeded_total;
    // Two more periods pass: a suspended daemon does not run.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let later = vamp.vamp.workflow_executions("tick");
    assert!(
        later.succeeded_total <= after + 1,
        "at most the run in progress at the suspension ends: {after} → {}",
        later.succeeded_total
    );
    vamp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_with_repeat_three_runs_three_times() {
    let vamp = Running::start().await;
    vamp.put(
        "name: thrice\nbreed: {name: thrice:1, deployable: {type: command, definition: /bin/true}}\nschedule: {time: {period: PT0.3S, repeat: 3}}\n",
    )
    .await;
    vamp.until("thrice", "three runs", |e| done(e) >= 3).await;
    // Four more periods: no fourth run.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let e = vamp.vamp.workflow_executions("thrice");
    assert_eq!((e.succeeded_total, e.failed_total), (3, 0), "{e:?}");
    vamp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_workflow_runs_once_per_matching_event_with_the_event_as_data() {
    let vamp = Running::start().await;
    vamp.put(
        "name: on-deploy\nbreed: {name: on-deploy:1, deployable: {type: command, definition: \"/bin/sh -c 'echo $VAMP_WORKFLOW_DATA'\"}}\nschedule: {event: [deploy, shop]}\n",
    )
    .await;
    let vamp_ref = &vamp;
    eventually_within("scheduled", WAIT, || async move {
        vamp_ref.status("on-deploy").await == Some(WorkflowStatus::Running)
    })
    .await;
    vamp.vamp
        .publish(&Event::new(["deploy", "other"], serde_json::json!(0)))
        .await
        .unwrap();
    for n in 1..=2 {
        vamp.vamp
            .publish(&Event::new(["deploy", "shop", "x"], serde_json::json!(n)))
            .await
            .unwrap();
    }
    let e = vamp
        .until("on-deploy", "two runs", |e| e.succeeded_total >= 2)
        .await;
    let mut values = Vec::new();
    for x in e.last.iter().rev() {
        let data = base64::engine::general_purpose::STANDARD
            .decode(x.log[0].text.trim())
            .unwrap();
        let event: serde_json::Value = serde_json::from_slice(&data).unwrap();
        assert_eq!(x.data.as_ref(), Some(&event));
        values.push(event["value"].clone());
    }
    assert_eq!(values, [serde_json::json!(1), serde_json::json!(2)]);
    assert_eq!(
        e.succeeded_total, 2,
        "the event without `shop` starts nothing"
    );
    vamp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_past_its_timeout_is_a_failed_execution_with_the_reason() {
    let vamp = Running::start().await;
    vamp.put(
        "name: slow\nbreed: {name: slow:1, deployable: {type: command, definition: \"/bin/sh -c 'echo started; sleep 60'\"}, environment_variables: {VAMP_WORKFLOW_EXECUTION_TIMEOUT: \"1\"}}\nschedule: {time: {period: PT1H, repeat: 1}}\n",
    )
    .await;
    let e = vamp
        .until("slow", "a failed run", |e| e.failed_total == 1)
        .await;
    let failed = &e.failed[0];
    assert_eq!(failed.status, ExecutionStatus::Failed);
    assert!(
        failed.failure.as_deref().unwrap_or("").contains("timeout"),
        "{failed:?}"
    );
    assert_eq!(failed.log[0].text, "started");
    vamp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_deletes_the_workflow_with_an_unscheduled_event() {
    let vamp = Running::start().await;
    let mut events = vamp.vamp.subscribe().await.unwrap();
    vamp.put(
        "name: brief\nbreed: {name: brief:1, deployable: {type: command, definition: /bin/true}}\nschedule: daemon\n",
    )
    .await;
    vamp.until("brief", "a run", |e| e.succeeded_total >= 1)
        .await;
    vamp.vamp
        .set_workflow_status("brief", WorkflowStatus::Stopping)
        .await
        .unwrap();
    let vamp_ref = &vamp;
    eventually_within("deleted", WAIT, || async move {
        vamp_ref
            .vamp
            .get(Kind::Workflow, "brief")
            .await
            .unwrap()
            .is_none()
    })
    .await;
    let mut seen = Vec::new();
    while let Ok(Some(Ok(e))) = tokio::time::timeout(Duration::from_secs(5), events.next()).await {
        if e.event.tags.contains(&"workflows:brief".to_owned()) {
            seen.push(e.event.tags.clone());
        }
        if seen.iter().any(|t| t.contains(&"unscheduled".to_owned())) {
            break;
        }
    }
    assert!(
        seen.iter().any(|t| t.contains(&"scheduled".to_owned())),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|t| t.contains(&"unscheduled".to_owned())),
        "{seen:?}"
    );
    let stored = vamp
        .vamp
        .events(
            &EventFilter {
                tags: vec!["workflows:brief".into()],
                ..EventFilter::default()
            },
            Page::new(1, 30),
        )
        .await
        .unwrap();
    assert!(stored.total >= 2, "the events are stored too");
    vamp.stop().await;
}

/// A server that stops (or dies) and starts again goes on where it was: a `repeat: 3` that ran
/// once runs twice more, not three times, and the workflow is not scheduled twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_vamp_goes_on_without_running_anything_twice() {
    let first = Running::start().await;
    let dir = first.dir.clone();
    let marks = dir.path().join("runs.txt");
    first
        .put(&format!(
            "name: thrice\nbreed: {{name: thrice:1, deployable: {{type: command, definition: \"/bin/sh -c 'echo run >> {}'\"}}}}\nschedule: {{time: {{period: PT1S, repeat: 3}}}}\n",
            marks.display()
        ))
        .await;
    let lines =
        |path: &std::path::Path| std::fs::read_to_string(path).map_or(0, |t| t.lines().count());
    let marks_ref = &marks;
    eventually_within(
        "the first run",
        WAIT,
        || async move { lines(marks_ref) >= 1 },
    )
    .await;
    first.stop().await;
    let before = lines(&marks);
    assert!(before < 3, "{before}");
    let second = Running::start_in(dir.clone()).await;
    eventually_within("three runs in all", WAIT, || async move {
        lines(marks_ref) >= 3
    })
    .await;
    // Two more periods: no fourth run.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(lines(&marks), 3);
    let scheduled = second
        .vamp
        .events(
            &EventFilter {
                tags: vec!["workflows:thrice".into(), "scheduled".into()],
                ..EventFilter::default()
            },
            Page::new(1, 30),
        )
        .await
        .unwrap();
    assert_eq!(scheduled.total, 1, "scheduled once, across the restart");
    second.stop().await;
}

/// A container workflow on Docker: the Vamp environment reaches it, its output shows in the
/// executions, and its container is gone afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_workflow_on_docker_gets_the_vamp_environment() {
    let Some(host) = vamp_core::testkit::services::service("docker") else {
        return;
    };
    let driver = vamp_drivers::docker::DockerDriver::connect(vamp_drivers::docker::DockerConfig {
        namespace: "workflows".into(),
        ..vamp_drivers::docker::DockerConfig::new(&host)
    })
    .await
    .unwrap();
    let driver = std::sync::Arc::new(driver);
    let vamp = Running::start_on(
        std::sync::Arc::new(tempfile::tempdir().unwrap()),
        driver.clone(),
    )
    .await;
    vamp.put(
        "name: env\nbreed: {name: env:1, deployable: {type: container/docker, definition: \"vamp-test/run-env:1\"}, environment_variables: {FROM_BREED: yes}}\nschedule: {time: {period: PT1H, repeat: 1}}\n",
    )
    .await;
    let e = vamp.until("env", "the run", |e| done(e) == 1).await;
    let run = &e.last[0];
    assert_eq!(run.status, ExecutionStatus::Succeeded, "{run:?}");
    let lines: Vec<&str> = run.log.iter().map(|l| l.text.as_str()).collect();
    for wanted in [
        "VAMP_URL=http://127.0.0.1:1/api/v1",
        "VAMP_WORKFLOW_EXECUTION_PERIOD=0",
        "VAMP_WORKFLOW_EXECUTION_TIMEOUT=60",
        "FROM_BREED=yes",
    ] {
        assert!(lines.contains(&wanted), "{wanted} in {lines:?}");
    }
    assert!(driver.services().await.unwrap().is_empty());
    vamp.stop().await;
}

/// A workflow whose breed is a stored one (a reference): the breed's
/// `VAMP_WORKFLOW_EXECUTION_PERIOD` sets the schedule's period too (1 s, not the default 60 s)
/// and its `VAMP_WORKFLOW_EXECUTION_TIMEOUT` the runs' timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referenced_breeds_period_and_timeout_are_the_workflows() {
    let vamp = Running::start().await;
    let breed = vamp
        .vamp
        .read(
            "name: ticker:1\ndeployable: {type: command, definition: \"/bin/sh -c 'echo $VAMP_WORKFLOW_EXECUTION_PERIOD $VAMP_WORKFLOW_EXECUTION_TIMEOUT'\"}\nenvironment_variables: {VAMP_WORKFLOW_EXECUTION_PERIOD: \"1\", VAMP_WORKFLOW_EXECUTION_TIMEOUT: \"7\"}\n",
            Some(Kind::Breed),
        )
        .await
        .unwrap();
    for a in breed {
        vamp.vamp.put(a).await.unwrap();
    }
    vamp.put("name: ticker\nbreed: ticker:1\nschedule: daemon\n")
        .await;
    let e = vamp
        .until("ticker", "two runs a period apart", |e| {
            e.succeeded_total >= 2
        })
        .await;
    assert_eq!(e.last[0].log[0].text, "1 7");
    vamp.stop().await;
}
