//! Workflow runs as Jobs (spec §5.6, issue 25 part 3): [`KubernetesDriver::run`] creates the
//! run's Job, follows its pod through a watch, streams the pod's log as it is written, and
//! answers how the container ended; the Job (and its pod) is deleted afterwards, whatever the
//! outcome. The Kubernetes log API gives both output streams as one, so every line is
//! reported as standard output.

use std::time::Duration;

use futures::{AsyncBufReadExt as _, StreamExt as _};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use vamp_core::traits::{ContainerDriver as _, LineSink, LogLine, RunOutcome, RunSpec};
use vamp_core::{Error, Result};

use super::{KubernetesDriver, STUCK, failed, manifest};

/// How long the log may go on after the container ended (the kubelet's last lines).
const LOG_GRACE: Duration = Duration::from_secs(10);

/// Where a run's container is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// Not started yet.
    Waiting,
    /// Waiting for a reason that does not pass by itself (a missing image, …).
    Stuck(String),
    /// Started: its log can be read.
    Started,
    /// Ended with this exit status.
    Ended(i32),
    /// The pod failed before its container ran (evicted, past its deadline).
    Failed(String),
}

fn seen(pod: &Pod) -> Seen {
    let Some(status) = pod.status.as_ref() else {
        return Seen::Waiting;
    };
    let container = status
        .container_statuses
        .as_ref()
        .and_then(|c| c.iter().find(|c| c.name == manifest::RUN_CONTAINER));
    let state = container.and_then(|c| c.state.as_ref());
    if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
        return Seen::Ended(t.exit_code);
    }
    if state.is_some_and(|s| s.running.is_some()) {
        return Seen::Started;
    }
    if let Some(w) = state.and_then(|s| s.waiting.as_ref())
        && let Some(reason) = w.reason.as_deref().filter(|r| STUCK.contains(r))
    {
        let message = w
            .message
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        return Seen::Stuck(format!("{reason}{message}"));
    }
    match status.phase.as_deref() {
        Some("Failed") => Seen::Failed(
            status
                .reason
                .clone()
                .unwrap_or_else(|| "the pod failed".into()),
        ),
        _ => Seen::Waiting,
    }
}

impl KubernetesDriver {
    /// Runs `spec` as a Job to completion (see the module docs).
    pub(super) async fn run(&self, spec: &RunSpec, lines: LineSink<'_>) -> Result<RunOutcome> {
        let kind = &spec.breed.deployable.kind;
        if !self.supports(kind) {
            return Ok(RunOutcome {
                status: None,
                failure: Some(format!(
                    "the kubernetes driver runs 'container/docker' deployables, not '{kind}'"
                )),
            });
        }
        let name = manifest::job_name(&spec.name, chrono::Utc::now().timestamp_millis());
        let manifest = manifest::job(
            spec,
            &self.config.namespace,
            &name,
            self.config.image_pull_policy.as_deref(),
        );
        let job: Job = serde_json::from_value(manifest).map_err(|e| Error::Invalid {
            what: "workflow job",
            message: e.to_string(),
        })?;
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &self.config.namespace);
        jobs.create(&PostParams::default(), &job)
            .await
            .map_err(|e| failed("workflow job", e))?;
        let outcome = tokio::time::timeout(spec.timeout, self.follow(&name, lines)).await;
        match jobs.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                tracing::warn!(job = %name, error = %e, "could not delete a workflow run's job")
            }
        }
        match outcome {
            Ok(outcome) => outcome,
            Err(_) => Ok(RunOutcome {
                status: None,
                failure: Some(format!(
                    "killed at its timeout of {} s",
                    spec.timeout.as_secs_f64()
                )),
            }),
        }
    }

    /// Follows the Job `name`'s pod until its container ended and its log was read.
    async fn follow(&self, name: &str, lines: LineSink<'_>) -> Result<RunOutcome> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.config.namespace);
        let selector = format!("{}={name}", manifest::RUN);
        let mut events = watcher(pods.clone(), watcher::Config::default().labels(&selector))
            .default_backoff()
            .applied_objects()
            .boxed();
        let mut log: Option<futures::stream::BoxStream<'_, std::io::Result<String>>> = None;
        let mut log_done = false;
        let mut ended: Option<(i32, tokio::time::Instant)> = None;
        // Since when, and why, the container waits for a reason that does not pass by itself.
        let mut stuck: Option<(tokio::time::Instant, String)> = None;
        loop {
            if let Some((code, _)) = ended
                && log_done
            {
                return Ok(outcome(code));
            }
            let grace = ended.map(|(_, at)| at + LOG_GRACE);
            tokio::select! {
                event = events.next(), if ended.is_none() => {
                    let pod = match event {
                        Some(Ok(pod)) => pod,
                        Some(Err(e)) => {
                            tracing::debug!(job = %name, error = %e, "watching a run's pod (retried)");
                            continue;
                        }
                        None => return Err(super::unavailable("the watch of a run's pod ended")),
                    };
                    let now = seen(&pod);
                    if matches!(now, Seen::Started | Seen::Ended(_)) && log.is_none() && !log_done {
                        let pod_name = pod.metadata.name.clone().unwrap_or_default();
                        let params = LogParams {
                            follow: true,
                            container: Some(manifest::RUN_CONTAINER.into()),
                            ..LogParams::default()
                        };
                        match pods.log_stream(&pod_name, &params).await {
                            Ok(reader) => log = Some(reader.lines().boxed()),
                            Err(e) => {
                                tracing::warn!(pod = %pod_name, error = %e, "a run's log cannot be read");
                                log_done = true;
                            }
                        }
                    }
                    match now {
                        Seen::Ended(code) => {
                            ended = Some((code, tokio::time::Instant::now()));
                        }
                        // Given the ready timeout to pass, as a service's pod is.
                        Seen::Stuck(why) => {
                            let until = stuck.take().map_or_else(
                                || tokio::time::Instant::now() + self.config.ready_timeout,
                                |(until, _)| until,
                            );
                            stuck = Some((until, why));
                        }
                        Seen::Failed(why) => return Ok(cannot_start(&why)),
                        Seen::Waiting | Seen::Started => stuck = None,
                    }
                }
                line = next_line(&mut log), if log.is_some() => match line {
                    Some(Ok(text)) => lines(LogLine {
                        at: chrono::Utc::now(),
                        stderr: false,
                        text,
                    }),
                    Some(Err(e)) => {
                        tracing::debug!(job = %name, error = %e, "a run's log ended early");
                        (log, log_done) = (None, true);
                    }
                    None => (log, log_done) = (None, true),
                },
                () = sleep_until(stuck.as_ref().map(|(until, _)| *until)), if stuck.is_some() && ended.is_none() => {
                    let why = stuck.map(|(_, why)| why).unwrap_or_default();
                    return Ok(cannot_start(&why));
                }
                () = sleep_until(grace), if grace.is_some() => {
                    // The container ended long ago and the log still has not: answer.
                    log_done = true;
                }
            }
        }
    }
}

async fn next_line(
    log: &mut Option<futures::stream::BoxStream<'_, std::io::Result<String>>>,
) -> Option<std::io::Result<String>> {
    match log {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn outcome(code: i32) -> RunOutcome {
    RunOutcome {
        status: Some(code),
        failure: (code != 0).then(|| format!("exited with status {code}")),
    }
}

fn cannot_start(why: &str) -> RunOutcome {
    RunOutcome {
        status: None,
        failure: Some(format!("the run's container did not start: {why}")),
    }
}
