//! What each command does: offline ones at once, online ones on a current-thread runtime
//! against the server.

use std::io::Read;
use std::time::Duration;

use crate::args::{Cli, Command, FormatArg, OutputArg, RolloutCommand, WorkflowCommand};
use crate::offline::{self, Format, Input, Output};
use crate::online::{self, Client, Failure};

/// Runs the command `cli` names; the process's exit code (see the README's table).
pub fn run(cli: Cli) -> i32 {
    if let Command::Rollout {
        command:
            RolloutCommand::Simulate {
                file,
                rps,
                stable_error_rate,
                canary_error_rate,
                stable_latency_ms,
                canary_latency_ms,
                seed,
                duration,
            },
    } = &cli.command
    {
        let input = Input::read(file);
        let model = vamp_core::rollout::sim::TrafficModel {
            rps: *rps,
            stable_error_rate: *stable_error_rate,
            canary_error_rate: *canary_error_rate,
            stable_ms: *stable_latency_ms,
            canary_ms: *canary_latency_ms,
        };
        let code = match &input.text {
            Ok(text) => match crate::rollout::simulate(text, model, *seed, *duration) {
                Ok((timeline, code)) => {
                    print!("{timeline}");
                    code
                }
                Err(f) => {
                    eprintln!("vamp: {file}: {}", f.message);
                    f.code
                }
            },
            Err(message) => {
                eprintln!("vamp: {file}: {message}");
                2
            }
        };
        return code;
    }
    if !matches!(cli.command, Command::Validate { .. } | Command::Fmt { .. }) {
        return online_main(cli);
    }
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    let code = match cli.command {
        Command::Validate {
            kind,
            output,
            strict,
            files,
        } => {
            let inputs: Vec<Input> = files.iter().map(|f| Input::read(f)).collect();
            let output = match output {
                OutputArg::Text => Output::Text,
                OutputArg::Json => Output::Json,
            };
            offline::validate(&inputs, kind, strict, output, &mut out, &mut err)
        }
        Command::Fmt {
            kind,
            output,
            files,
        } => {
            let inputs: Vec<Input> = files.iter().map(|f| Input::read(f)).collect();
            let format = match output {
                FormatArg::Yaml => Format::Yaml,
                FormatArg::Json => Format::Json,
            };
            offline::fmt(&inputs, kind, format, &mut out, &mut err)
        }
        _ => Ok(2),
    };
    code.unwrap_or_else(|e| {
        eprintln!("vamp: {e}");
        1
    })
}

/// Runs an online command; returns the exit code.
fn online_main(cli: Cli) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vamp: cannot start: {e}");
            return online::UNREACHABLE;
        }
    };
    if let Command::Rollout {
        command: RolloutCommand::Status { name, watch },
    } = &cli.command
    {
        use std::io::IsTerminal as _;
        let run = async {
            let client = Client::new(&cli.host, cli.token.clone())?;
            let mut out = std::io::stdout();
            let terminal = out.is_terminal();
            crate::rollout::status(&client, name, *watch, terminal, &mut out).await
        };
        return match runtime.block_on(run) {
            Ok(code) => code,
            Err(f) => {
                eprintln!("vamp: {}", f.message);
                f.code
            }
        };
    }
    match runtime.block_on(online(cli)) {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(f) => {
            eprintln!("vamp: {}", f.message);
            f.code
        }
    }
}

async fn online(cli: Cli) -> Result<String, Failure> {
    let client = Client::new(&cli.host, cli.token)?;
    let mut progress = std::io::stderr();
    let wait = |w: Option<u64>| w.map(Duration::from_secs);
    match cli.command {
        Command::Create { file } => {
            let text = match file.as_deref() {
                None | Some("-") => {
                    let mut text = String::new();
                    std::io::stdin()
                        .read_to_string(&mut text)
                        .map_err(|e| Failure {
                            code: 2,
                            message: format!("cannot read standard input: {e}"),
                        })?;
                    text
                }
                Some(path) => std::fs::read_to_string(path).map_err(|e| Failure {
                    code: 2,
                    message: format!("cannot read {path}: {e}"),
                })?,
            };
            online::create(&client, &text).await
        }
        Command::Delete { kind, name } => online::delete(&client, &kind, &name).await,
        Command::List { kind, output } => online::list(&client, &kind, output.into()).await,
        Command::Describe {
            kind,
            name,
            output,
            as_blueprint,
        } => online::describe(&client, &kind, &name, as_blueprint, output.into()).await,
        Command::Deploy {
            blueprint,
            deployment,
            wait: w,
        }
        | Command::Merge {
            blueprint,
            deployment,
            wait: w,
        } => online::deploy(&client, &blueprint, &deployment, wait(w), &mut progress).await,
        Command::Undeploy {
            deployment,
            service,
            wait: w,
        } => {
            online::undeploy(
                &client,
                &deployment,
                service.as_deref(),
                wait(w),
                &mut progress,
            )
            .await
        }
        Command::UpdateGateway { name, weights } => {
            online::update_gateway(&client, &name, &weights).await
        }
        Command::Emit { value, tags, kind } => {
            online::emit(&client, &value, &tags, kind.as_deref()).await
        }
        Command::Events { tags, kind, count } => {
            let mut out = std::io::stdout();
            online::events(&client, &tags, kind.as_deref(), count, &mut out)
                .await
                .map(|()| String::new())
        }
        Command::Generate {
            kind,
            source,
            target,
            deployable,
        } => online::generate(&client, &kind, &source, &target, deployable.as_deref()).await,
        Command::Rollout { command } => {
            let (name, verb, full) = match command {
                RolloutCommand::Promote { name, full } => (name, "promote", full),
                RolloutCommand::Abort { name } => (name, "abort", false),
                RolloutCommand::Pause { name } => (name, "pause", false),
                RolloutCommand::Resume { name } => (name, "resume", false),
                RolloutCommand::Retry { name } => (name, "retry", false),
                // Handled before: they print as they go, or need no server.
                RolloutCommand::Status { .. } | RolloutCommand::Simulate { .. } => {
                    return Ok(String::new());
                }
            };
            crate::rollout::command(&client, &name, verb, full).await
        }
        Command::Workflow { command } => match command {
            WorkflowCommand::Status { name } => crate::workflow::status(&client, &name).await,
            WorkflowCommand::Suspend { name } => {
                crate::workflow::set_status(&client, &name, "suspending").await
            }
            WorkflowCommand::Restart { name } => {
                crate::workflow::set_status(&client, &name, "restarting").await
            }
            WorkflowCommand::Logs { name, follow } => {
                let mut out = std::io::stdout();
                crate::workflow::logs(&client, &name, follow, &mut out)
                    .await
                    .map(|()| String::new())
            }
        },
        Command::Validate { .. } | Command::Fmt { .. } => Ok(String::new()),
    }
}
