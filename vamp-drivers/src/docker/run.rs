//! Runs to completion (workflows, spec §5.6): one container of the image with the run's
//! environment, on the host's network (so `VAMP_URL` on loopback answers), its output read
//! line by line as it comes, killed at the timeout, and removed afterwards whatever happened.
//! The container carries `io.vamp.workflow=<name>` and none of the labels of services, so
//! `services()` never lists it.

use std::collections::HashMap;

use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, KillContainerOptions, LogsOptions, WaitContainerOptions,
};
use chrono::Utc;
use futures::StreamExt;
use vamp_core::traits::{LineSink, LogLine, RunOutcome, RunSpec};
use vamp_core::{Error, Result};

use super::common::{self, Daemon, LABEL};
use crate::lines::Splitter;

/// Runs `spec` as one container on `daemon` to its end (or timeout), and removes it.
pub(crate) async fn run_container(
    daemon: &Daemon,
    spec: &RunSpec,
    lines: LineSink<'_>,
) -> Result<RunOutcome> {
    let deployable = &spec.breed.deployable;
    if !common::supports(&deployable.kind) {
        return Err(Error::Invalid {
            what: "deployable",
            message: format!(
                "the Docker driver runs 'container/docker' deployables, not '{}'",
                deployable.kind
            ),
        });
    }
    let env: Vec<String> = spec
        .environment
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let body = ContainerCreateBody {
        image: Some(deployable.definition.clone()),
        env: Some(env),
        labels: Some(HashMap::from([(
            format!("{LABEL}.workflow"),
            spec.name.clone(),
        )])),
        host_config: Some(HostConfig {
            network_mode: Some("host".into()),
            init: Some(true),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    };
    let docker = &daemon.docker;
    let created = match daemon
        .call(
            "create container",
            docker.create_container(None::<CreateContainerOptions>, body),
        )
        .await
    {
        Ok(created) => created,
        Err(e) => {
            return Ok(RunOutcome {
                status: None,
                failure: Some(format!(
                    "cannot create a container of '{}': {e}",
                    deployable.definition
                )),
            });
        }
    };
    let id = created.id;
    let outcome = run_created(daemon, &id, spec, lines).await;
    daemon.remove_container(&id).await;
    Ok(outcome)
}

/// Starts the created container and follows it to its end or its timeout.
async fn run_created(daemon: &Daemon, id: &str, spec: &RunSpec, lines: LineSink<'_>) -> RunOutcome {
    let docker = &daemon.docker;
    if let Err(e) = daemon
        .call("start container", docker.start_container(id, None))
        .await
    {
        return RunOutcome {
            status: None,
            failure: Some(format!("cannot start the container: {e}")),
        };
    }
    let follow = async {
        let options = LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            ..LogsOptions::default()
        };
        let mut logs = docker.logs(id, Some(options));
        let (mut out, mut err) = (Splitter::default(), Splitter::default());
        let emit = |stderr: bool, text: String| {
            lines(LogLine {
                at: Utc::now(),
                stderr,
                text,
            });
        };
        while let Some(Ok(chunk)) = logs.next().await {
            match chunk {
                LogOutput::StdErr { message } => {
                    for l in err.push(&message) {
                        emit(true, l);
                    }
                }
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    for l in out.push(&message) {
                        emit(false, l);
                    }
                }
                LogOutput::StdIn { .. } => {}
            }
        }
        if let Some(l) = out.finish() {
            emit(false, l);
        }
        if let Some(l) = err.finish() {
            emit(true, l);
        }
        // The output ends with the container: its exit status.
        let mut wait = docker.wait_container(id, None::<WaitContainerOptions>);
        match wait.next().await {
            Some(Ok(w)) => Ok(w.status_code),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(e.to_string()),
            None => Err("the daemon did not say how the container ended".to_owned()),
        }
    };
    match tokio::time::timeout(spec.timeout, follow).await {
        Ok(Ok(0)) => RunOutcome {
            status: Some(0),
            failure: None,
        },
        Ok(Ok(code)) => {
            let status = i32::try_from(code).unwrap_or(i32::MAX);
            RunOutcome {
                status: Some(status),
                failure: Some(format!("exited with status {status}")),
            }
        }
        Ok(Err(e)) => RunOutcome {
            status: None,
            failure: Some(format!("lost the container: {e}")),
        },
        Err(_) => {
            let _ = daemon
                .call(
                    "kill container",
                    docker.kill_container(id, None::<KillContainerOptions>),
                )
                .await;
            RunOutcome {
                status: None,
                failure: Some(format!("killed after its timeout of {:?}", spec.timeout)),
            }
        }
    }
}
