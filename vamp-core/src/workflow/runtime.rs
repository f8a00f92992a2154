//! The workflow runtime (spec §5.6): [`Vamp::workflow_pass`] steps every stored workflow
//! through the [planner](super::plan), does what it answers — stores statuses, deletes a
//! stopped workflow, publishes `workflows:<name>` events — and starts the runs it asks for:
//! a breed of any deployable but JavaScript runs once through the driver's
//! [`run_once`](crate::traits::ContainerDriver::run_once). Each workflow keeps its last
//! [`KEPT`] executions and its last [`KEPT`] failed ones, with their output.
//!
//! Each workflow's schedule progress (runs made, the next due time, events waiting) is stored
//! beside it (`Kind::WorkflowState`) whenever it changes, so a restarted server goes on
//! where the last one stopped: a `repeat: 3` that ran twice runs once more, a daemon waits
//! for its next period. Executions and output live in this process only.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt as _;
use serde::Serialize;

use super::plan::{self, Action, Settings, State};
use crate::model::{Artifact, Breed, Event, Kind, Map, Ref, Schedule, Workflow};
use std::sync::Arc;

use super::WorkflowHost;
use crate::traits::{LogLine, Precondition, RunOutcome, RunSpec, ScriptRun};
use crate::vamp::{Vamp, lock};
use crate::{Error, Result};

/// How many executions, and how many failed executions, each workflow keeps (as Vamp's
/// workflow agent did).
pub const KEPT: usize = 16;

/// The deployable type of JavaScript workflows.
pub const JAVASCRIPT: &str = "application/javascript";

/// How many lines of output an execution keeps: the first ones; the rest are counted.
pub const MAX_LOG_LINES: usize = 1000;

/// How the workflow runtime runs (part of [`VampConfig`](crate::VampConfig)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowConfig {
    /// Time between workflow passes in [`Vamp::run`]; `None` runs no workflows.
    pub period: Option<Duration>,
    /// A run is killed after this long unless the workflow sets
    /// `VAMP_WORKFLOW_EXECUTION_TIMEOUT` (seconds).
    pub timeout: Duration,
    /// A `daemon` workflow runs this often unless it sets `VAMP_WORKFLOW_EXECUTION_PERIOD`
    /// (seconds).
    pub execution_period: Duration,
    /// `VAMP_URL` for runs: where the API answers.
    pub api_url: Option<String>,
    /// The heap a JavaScript run may grow to, in bytes.
    pub memory_limit: usize,
}

impl Default for WorkflowConfig {
    fn default() -> Self {
        WorkflowConfig {
            period: Some(Duration::from_secs(1)),
            timeout: Duration::from_secs(60),
            execution_period: Duration::from_secs(60),
            api_url: None,
            memory_limit: 64 << 20,
        }
    }
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionStatus {
    /// Still running.
    Running,
    /// Ended with status 0.
    Succeeded,
    /// Ended otherwise: a status, a timeout, could not start.
    Failed,
}

/// One run of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Execution {
    /// Counts up from 1 over every workflow of this server.
    pub id: u64,
    /// When it started.
    pub started: DateTime<Utc>,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished: Option<DateTime<Utc>>,
    /// Where it is.
    pub status: ExecutionStatus,
    /// The exit status, when it exited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// The triggering event (`event` schedules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// What it wrote: the first [`MAX_LOG_LINES`] lines.
    pub log: Vec<LogLine>,
    /// Lines written past [`MAX_LOG_LINES`].
    #[serde(skip_serializing_if = "is_zero")]
    pub log_dropped: u64,
}

/// One line of a workflow run's output as it is written ([`Vamp::workflow_logs`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkflowLog {
    /// The workflow.
    pub workflow: String,
    /// The run ([`Execution::id`]).
    pub execution: u64,
    /// The line.
    #[serde(flatten)]
    pub line: LogLine,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A workflow's executions and counts (`GET /api/v1/workflows/{name}/executions`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Executions {
    /// The last [`KEPT`] runs, newest first (one may be running).
    pub last: Vec<Execution>,
    /// The last [`KEPT`] failed runs, newest first.
    pub failed: Vec<Execution>,
    /// Runs that succeeded since this server started.
    pub succeeded_total: u64,
    /// Runs that failed since this server started.
    pub failed_total: u64,
    /// Events dropped because [`plan::QUEUE_LIMIT`] runs were waiting.
    pub dropped_events: u64,
    /// `daemon` periods skipped because the run before still went on.
    pub skipped: u64,
}

#[derive(Debug, Default)]
struct History {
    last: VecDeque<Execution>,
    failed: VecDeque<Execution>,
    succeeded_total: u64,
    failed_total: u64,
}

/// What the runtime keeps between passes.
#[derive(Debug, Default)]
pub(crate) struct WorkflowRuntime {
    /// The workflows of the last pass, for events between passes.
    workflows: HashMap<String, Workflow>,
    states: HashMap<String, State>,
    history: HashMap<String, History>,
    last_id: u64,
    /// `VAMP_URL` when set after the start ([`Vamp::set_workflow_api_url`]).
    api_url: Option<String>,
    /// Each workflow's API token (`VAMP_API_TOKEN`), made when it first runs.
    tokens: HashMap<String, String>,
}

/// A fresh API token: 32 random bytes from the operating system, hex.
fn new_token() -> Option<String> {
    use rand::TryRng as _;
    let mut bytes = [0u8; 32];
    rand::rngs::SysRng.try_fill_bytes(&mut bytes).ok()?;
    Some(crate::model::lookup::hex(&bytes))
}

impl Vamp {
    /// One workflow pass at the current time: every stored workflow goes one step through the
    /// planner (spec §5.6), and what it answers is done. Runs start in the background.
    ///
    /// # Errors
    /// When the workflows cannot be listed. A workflow whose status cannot be stored or whose
    /// event cannot be published is logged and retried on the next pass.
    pub async fn workflow_pass(&self) -> Result<()> {
        let workflows = self.all_workflows().await?;
        self.load_workflow_states(&workflows).await;
        let mut periods = HashMap::new();
        for w in &workflows {
            // An inline breed is read where it is; a referenced one fresh from the store.
            let stored = match &w.breed {
                Ref::Reference(_) => self.workflow_breed(w).await.ok(),
                Ref::Inline(_) => None,
            };
            periods.insert(w.name.clone(), self.execution_period(w, stored.as_ref()));
        }
        let now = Utc::now();
        let mut todo = Vec::new();
        let mut save = Vec::new();
        {
            let mut rt = lock(&self.inner.workflows);
            rt.workflows = workflows
                .iter()
                .map(|w| (w.name.clone(), w.clone()))
                .collect();
            let rt = &mut *rt;
            rt.states
                .retain(|name, s| rt.workflows.contains_key(name) || s.running);
            for w in &workflows {
                let state = rt.states.get(&w.name).cloned().unwrap_or_default();
                let settings = Settings {
                    period: TimeDelta::from_std(periods.get(&w.name).copied().unwrap_or_default())
                        .unwrap_or(TimeDelta::seconds(60)),
                };
                let (next, actions) = plan::step(w, &state, settings, now);
                if !same_kept(&next, &state) {
                    save.push((w.name.clone(), kept(&next)));
                }
                rt.states.insert(w.name.clone(), next);
                if !actions.is_empty() {
                    todo.push((w.clone(), actions));
                }
            }
        }
        for (name, state) in save {
            if let Err(e) = self.save_workflow_state(&name, &state).await {
                tracing::warn!(workflow = %name, error = %e, "cannot store the workflow's state");
            }
        }
        for (w, actions) in todo {
            let mut actions = actions.into_iter();
            while let Some(action) = actions.next() {
                match self.apply_workflow_action(&w, action).await {
                    Ok(true) => {}
                    // Its status changed since this pass read it: the next pass plans anew,
                    // and a run planned with the rest was never started.
                    Ok(false) => {
                        let mut rt = lock(&self.inner.workflows);
                        if let Some(s) = rt.states.get_mut(&w.name) {
                            for action in actions {
                                if let Action::Run { data } = action {
                                    plan::not_started(s, data);
                                }
                            }
                        }
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(workflow = %w.name, error = %e, "workflow step failed");
                    }
                }
            }
        }
        Ok(())
    }

    /// Does one planned step; false when the workflow's status is no longer the one the
    /// pass planned from (its other steps are then left to the next pass).
    async fn apply_workflow_action(&self, w: &Workflow, action: Action) -> Result<bool> {
        match action {
            Action::SetStatus(status) => {
                let now = self
                    .change_workflow_status(&w.name, Some(w.status), status)
                    .await?;
                if now.is_none_or(|now| now.status != status) {
                    return Ok(false);
                }
            }
            Action::Delete => {
                self.delete(Kind::Workflow, &w.name).await?;
                let mut rt = lock(&self.inner.workflows);
                rt.states.remove(&w.name);
                rt.workflows.remove(&w.name);
                rt.history.remove(&w.name);
                rt.tokens.remove(&w.name);
            }
            Action::Event(tags) => {
                self.publish(&Event::new(tags, serde_json::json!({"workflow": w.name})))
                    .await?;
            }
            Action::Run { data } => self.start_run(w.clone(), data).await,
        }
        Ok(true)
    }

    /// Reads the stored state of the workflows this runtime has not seen yet (a restarted
    /// server): their schedules go on where they were. A run in progress then ended with
    /// the server that ran it.
    async fn load_workflow_states(&self, workflows: &[Workflow]) {
        let unseen: Vec<String> = {
            let rt = lock(&self.inner.workflows);
            workflows
                .iter()
                .filter(|w| !rt.states.contains_key(&w.name))
                .map(|w| w.name.clone())
                .collect()
        };
        for name in unseen {
            let stored = match self.db().get(Kind::WorkflowState, &name).await {
                Ok(Some(stored)) => stored,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(workflow = %name, error = %e, "cannot read the workflow's state");
                    continue;
                }
            };
            match serde_json::from_value::<State>(stored.value) {
                Ok(state) => {
                    lock(&self.inner.workflows)
                        .states
                        .entry(name)
                        .or_insert(state);
                }
                Err(e) => {
                    tracing::warn!(workflow = %name, error = %e, "the workflow's stored state does not read back; starting it afresh")
                }
            }
        }
    }

    async fn save_workflow_state(&self, name: &str, state: &State) -> Result<()> {
        let value = serde_json::to_value(state).map_err(|e| Error::backend("json", e))?;
        self.put_stored(Kind::WorkflowState, name, &value, Precondition::Any)
            .await?;
        Ok(())
    }

    /// Every stored workflow.
    async fn all_workflows(&self) -> Result<Vec<Workflow>> {
        let all = self.list(Kind::Workflow, crate::traits::Page::ALL).await?;
        Ok(all
            .items
            .into_iter()
            .filter_map(|a| match a {
                Artifact::Workflow(w) => Some(w),
                _ => None,
            })
            .collect())
    }

    /// A workflow's executions and counts; empty for a workflow that never ran here.
    pub fn workflow_executions(&self, name: &str) -> Executions {
        let rt = lock(&self.inner.workflows);
        let state = rt.states.get(name);
        let mut e = Executions {
            dropped_events: state.map_or(0, |s| s.dropped),
            skipped: state.map_or(0, |s| s.skipped),
            ..Executions::default()
        };
        if let Some(h) = rt.history.get(name) {
            e.last = h.last.iter().cloned().collect();
            e.failed = h.failed.iter().cloned().collect();
            e.succeeded_total = h.succeeded_total;
            e.failed_total = h.failed_total;
        }
        e
    }

    /// The API token of each workflow that ran here, `(workflow, token)`: an embedding server
    /// accepts them as it accepts its own (the runs get theirs as `VAMP_API_TOKEN`). A
    /// workflow's token goes with it when it is deleted.
    pub fn workflow_tokens(&self) -> Vec<(String, String)> {
        lock(&self.inner.workflows)
            .tokens
            .iter()
            .map(|(w, t)| (w.clone(), t.clone()))
            .collect()
    }

    /// The workflow's token, made on first use.
    fn workflow_token(&self, workflow: &str) -> Option<String> {
        let mut rt = lock(&self.inner.workflows);
        if let Some(t) = rt.tokens.get(workflow) {
            return Some(t.clone());
        }
        let token = new_token()?;
        rt.tokens.insert(workflow.to_owned(), token.clone());
        Some(token)
    }

    /// Sets `VAMP_URL` for the runs from now on (a server learns where it listens once it
    /// has bound its port); overrides [`WorkflowConfig::api_url`].
    pub fn set_workflow_api_url(&self, url: String) {
        lock(&self.inner.workflows).api_url = Some(url);
    }

    /// Per workflow that ran here: (name, runs succeeded, runs failed) since this server
    /// started — `vamp_workflow_runs_total`.
    pub fn workflow_run_counts(&self) -> Vec<(String, u64, u64)> {
        let rt = lock(&self.inner.workflows);
        let mut out: Vec<_> = rt
            .history
            .iter()
            .map(|(name, h)| (name.clone(), h.succeeded_total, h.failed_total))
            .collect();
        out.sort();
        out
    }

    /// Queues a run for each scheduled `event` workflow whose tags `event` carries; true when
    /// any was queued.
    pub(crate) fn workflow_event(&self, event: &crate::traits::StoredEvent) -> bool {
        let tags = event.event.expanded_tags();
        let data = event.to_json();
        let mut rt = lock(&self.inner.workflows);
        let rt = &mut *rt;
        let mut queued = false;
        for (name, w) in &rt.workflows {
            if !matches!(w.schedule, Schedule::Event(_)) {
                continue;
            }
            if let Some(s) = rt.states.get_mut(name) {
                queued |= plan::on_event(w, s, &tags, data.clone());
            }
        }
        queued
    }

    /// `VAMP_WORKFLOW_EXECUTION_PERIOD` of the workflow or its breed, or the configured
    /// default.
    fn execution_period(&self, w: &Workflow, breed: Option<&Breed>) -> Duration {
        seconds_variable(w, breed, "VAMP_WORKFLOW_EXECUTION_PERIOD")
            .filter(|d| !d.is_zero())
            .unwrap_or(self.inner.config.workflows.execution_period)
    }

    /// `VAMP_WORKFLOW_EXECUTION_TIMEOUT` of the workflow or its breed, or the configured
    /// default.
    fn execution_timeout(&self, w: &Workflow, breed: Option<&Breed>) -> Duration {
        seconds_variable(w, breed, "VAMP_WORKFLOW_EXECUTION_TIMEOUT")
            .filter(|d| !d.is_zero())
            .unwrap_or(self.inner.config.workflows.timeout)
    }

    /// Records the run as started and runs it in the background.
    async fn start_run(&self, w: Workflow, data: Option<serde_json::Value>) {
        let id = {
            let mut rt = lock(&self.inner.workflows);
            rt.last_id += 1;
            let id = rt.last_id;
            let h = rt.history.entry(w.name.clone()).or_default();
            h.last.push_front(Execution {
                id,
                started: Utc::now(),
                finished: None,
                status: ExecutionStatus::Running,
                exit_status: None,
                failure: None,
                data: data.clone(),
                log: Vec::new(),
                log_dropped: 0,
            });
            h.last.truncate(KEPT);
            id
        };
        let vamp = self.clone();
        tokio::spawn(async move {
            let sink = |line: LogLine| vamp.log_line(&w.name, id, line);
            let outcome = match vamp.run_spec(&w, data.as_ref()).await {
                Ok(spec) if spec.breed.deployable.kind == JAVASCRIPT => {
                    match vamp.inner.scripts.clone() {
                        Some(scripts) => {
                            let run = ScriptRun {
                                name: spec.name,
                                source: spec.breed.deployable.definition,
                                environment: spec.environment,
                                timeout: spec.timeout,
                                memory_limit: vamp.inner.config.workflows.memory_limit,
                                cancel: Some(vamp.inner.workflow_cancel.clone()),
                            };
                            let host = Arc::new(WorkflowHost::new(vamp.clone(), &w.name));
                            scripts.run(&run, host, &sink).await
                        }
                        None => Err(Error::Unsupported {
                            backend: "workflows",
                            operation: "JavaScript workflows (no script runtime: build with the `javascript` feature)",
                        }),
                    }
                }
                Ok(spec) => vamp.inner.driver.run_once(&spec, &sink).await,
                Err(e) => Err(e),
            };
            let outcome = outcome.unwrap_or_else(|e| RunOutcome {
                status: None,
                failure: Some(e.to_string()),
            });
            vamp.run_ended(&w.name, id, outcome);
        });
    }

    /// The workflow's breed: inline, or the stored one it references (read fresh).
    async fn workflow_breed(&self, w: &Workflow) -> Result<Breed> {
        match &w.breed {
            Ref::Inline(b) => Ok(b.clone()),
            Ref::Reference(name) => match self.get(Kind::Breed, name).await? {
                Some(Artifact::Breed(b)) => Ok(b),
                _ => Err(Error::Invalid {
                    what: "workflow breed",
                    message: format!("breed '{name}' is not stored"),
                }),
            },
        }
    }

    /// What runs: the breed (fetched fresh when referenced) with the Vamp environment.
    async fn run_spec(&self, w: &Workflow, data: Option<&serde_json::Value>) -> Result<RunSpec> {
        let breed = self.workflow_breed(w).await?;
        let environment = self.run_environment(w, &breed, data);
        Ok(RunSpec {
            name: w.name.clone(),
            timeout: self.execution_timeout(w, Some(&breed)),
            breed,
            environment,
        })
    }

    /// The environment of a run (spec §5.6): the breed's variables, the workflow's over them,
    /// then Vamp's: `VAMP_URL`, `VAMP_API_TOKEN` (the workflow's own token), `VAMP_WORKFLOW_EXECUTION_PERIOD` (0 for what is not a daemon),
    /// `VAMP_WORKFLOW_EXECUTION_TIMEOUT` and, for event runs, `VAMP_WORKFLOW_DATA` (the event
    /// as Base64 JSON).
    fn run_environment(
        &self,
        w: &Workflow,
        breed: &Breed,
        data: Option<&serde_json::Value>,
    ) -> Map<String> {
        let mut env = Map::new();
        for (name, var) in &breed.environment_variables {
            if let Some(value) = &var.value {
                env.insert(
                    var.alias.clone().unwrap_or_else(|| name.clone()),
                    value.clone(),
                );
            }
        }
        for (name, value) in &w.environment_variables {
            if let Some(value) = value {
                env.insert(name.clone(), value.clone());
            }
        }
        let url = lock(&self.inner.workflows).api_url.clone();
        if let Some(url) = url.or_else(|| self.inner.config.workflows.api_url.clone()) {
            env.insert("VAMP_URL".into(), url);
        }
        if let Some(token) = self.workflow_token(&w.name) {
            env.insert("VAMP_API_TOKEN".into(), token);
        }
        let period = match w.schedule {
            Schedule::Daemon => self.execution_period(w, Some(breed)).as_secs(),
            _ => 0,
        };
        env.insert("VAMP_WORKFLOW_EXECUTION_PERIOD".into(), period.to_string());
        env.insert(
            "VAMP_WORKFLOW_EXECUTION_TIMEOUT".into(),
            self.execution_timeout(w, Some(breed)).as_secs().to_string(),
        );
        if let Some(data) = data {
            env.insert(
                "VAMP_WORKFLOW_DATA".into(),
                base64::engine::general_purpose::STANDARD.encode(data.to_string()),
            );
        }
        env
    }

    /// Every line the workflow runs write from now on, as they write them (lines past
    /// [`MAX_LOG_LINES`] of a run too). A reader more than 1024 lines behind misses the
    /// oldest ones and is told how many (`RecvError::Lagged`).
    #[must_use]
    pub fn workflow_logs(&self) -> tokio::sync::broadcast::Receiver<WorkflowLog> {
        self.inner.workflow_logs.subscribe()
    }

    fn log_line(&self, workflow: &str, id: u64, line: LogLine) {
        if self.inner.workflow_logs.receiver_count() > 0 {
            // No reader is no error: the line is kept in the execution below.
            let _ = self.inner.workflow_logs.send(WorkflowLog {
                workflow: workflow.to_owned(),
                execution: id,
                line: line.clone(),
            });
        }
        let mut rt = lock(&self.inner.workflows);
        if let Some(e) = rt
            .history
            .get_mut(workflow)
            .and_then(|h| h.last.iter_mut().find(|e| e.id == id))
        {
            if e.log.len() < MAX_LOG_LINES {
                e.log.push(line);
            } else {
                e.log_dropped += 1;
            }
        }
    }

    fn run_ended(&self, workflow: &str, id: u64, outcome: RunOutcome) {
        let succeeded = outcome.status == Some(0) && outcome.failure.is_none();
        let mut rt = lock(&self.inner.workflows);
        if let Some(s) = rt.states.get_mut(workflow) {
            plan::finished(s);
        }
        let h = rt.history.entry(workflow.to_owned()).or_default();
        let Some(e) = h.last.iter_mut().find(|e| e.id == id) else {
            return;
        };
        e.finished = Some(Utc::now());
        e.exit_status = outcome.status;
        e.failure = outcome.failure;
        if succeeded {
            e.status = ExecutionStatus::Succeeded;
            h.succeeded_total += 1;
        } else {
            e.status = ExecutionStatus::Failed;
            tracing::info!(workflow, id, failure = ?e.failure, "workflow run failed");
            let failed = e.clone();
            h.failed.push_front(failed);
            h.failed.truncate(KEPT);
            h.failed_total += 1;
        }
        drop(rt);
        self.inner.workflow_wake.notify_one();
    }

    /// Runs workflow passes until `stopped`: every [`WorkflowConfig::period`], at once when a
    /// run ends or an event queues one.
    pub(crate) async fn workflow_loop(&self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        let Some(period) = self.inner.config.workflows.period else {
            return;
        };
        let mut events = match self.subscribe().await {
            Ok(events) => Some(events),
            Err(e) => {
                tracing::warn!(error = %e, "event workflows cannot listen for events");
                None
            }
        };
        let mut every = tokio::time::interval(period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stopped.wait_for(|s| *s) => break,
                _ = every.tick() => {}
                () = self.inner.workflow_wake.notified() => {}
                Some(event) = next_event(&mut events) => {
                    if !self.leads() {
                        continue;
                    }
                    if let Ok(event) = event
                        && !self.workflow_event(&event)
                    {
                        continue;
                    }
                }
            }
            if !self.leads() {
                continue;
            }
            if let Err(e) = self.as_leader(self.workflow_pass()).await {
                tracing::warn!(error = %e, "workflow pass failed");
            }
        }
        self.stop_runs().await;
    }
}

impl Vamp {
    /// Stops the JavaScript runs in progress and waits (at most 5 s) until every run has
    /// ended and been recorded: nothing runs on while the server shuts down.
    async fn stop_runs(&self) {
        self.inner
            .workflow_cancel
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let running = || {
            lock(&self.inner.workflows)
                .states
                .values()
                .any(|s| s.running)
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while running() {
                let ended = self.inner.workflow_wake.notified();
                if !running() {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(100), ended).await;
            }
        })
        .await;
    }
}

async fn next_event(
    events: &mut Option<crate::traits::EventStream>,
) -> Option<Result<crate::traits::StoredEvent>> {
    match events {
        Some(events) => events.next().await,
        None => std::future::pending().await,
    }
}

/// The part of a state worth keeping across a restart: all but the run in progress.
fn kept(state: &State) -> State {
    State {
        running: false,
        ..state.clone()
    }
}

/// Whether two states keep the same across a restart — compared in place: the pass runs for
/// every workflow, and a state may hold 100 queued events.
fn same_kept(a: &State, b: &State) -> bool {
    let State {
        scheduled,
        running: _,
        runs,
        due,
        anchor,
        queue,
        dropped,
        skipped,
    } = a;
    *scheduled == b.scheduled
        && *runs == b.runs
        && *due == b.due
        && *anchor == b.anchor
        && *dropped == b.dropped
        && *skipped == b.skipped
        && *queue == b.queue
}

/// A variable of the workflow, else of its breed (`breed`, else the inline one), holding a
/// number of seconds.
fn seconds_variable(w: &Workflow, breed: Option<&Breed>, name: &str) -> Option<Duration> {
    let breed = breed.or(match &w.breed {
        Ref::Inline(b) => Some(b),
        Ref::Reference(_) => None,
    });
    let from_breed = breed.and_then(|b| {
        b.environment_variables
            .get(name)
            .and_then(|v| v.value.clone())
    });
    let text = w
        .environment_variables
        .get(name)
        .cloned()
        .flatten()
        .or(from_breed)?;
    let seconds: f64 = text.trim().parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}
