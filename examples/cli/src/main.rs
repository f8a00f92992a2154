//! `vamp`: the command-line client.
//!
//! Run with: `cargo run -p vamp-cli -- validate path/to/blueprint.yml`

use std::io::Read;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use vamp_cli::offline::{self, Format, Input, InputKind, Output};
use vamp_cli::online::{self, Client, Failure, Show};

/// Vamp's command-line client.
#[derive(Parser)]
#[command(name = "vamp", version, about)]
struct Cli {
    /// The server (`vamp-server`).
    #[arg(
        long,
        global = true,
        env = "VAMP_HOST",
        default_value = "http://127.0.0.1:8080"
    )]
    host: String,
    /// The server's bearer token.
    #[arg(long, global = true, env = "VAMP_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum ShowArg {
    Table,
    Json,
    Yaml,
}

impl From<ShowArg> for Show {
    fn from(s: ShowArg) -> Show {
        match s {
            ShowArg::Table => Show::Table,
            ShowArg::Json => Show::Json,
            ShowArg::Yaml => Show::Yaml,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Check artifact files (YAML or JSON); exit 0 when all are valid, 1 when any is not.
    Validate {
        /// The kind of every document (singular or plural, or docker-compose); default: each
        /// document's `kind:` field.
        #[arg(long, value_parser = InputKind::parse)]
        kind: Option<InputKind>,
        /// Report format.
        #[arg(long, short, value_enum, default_value_t = OutputArg::Text)]
        output: OutputArg,
        /// Treat an `import` of a template that is not among the files as an error (by default
        /// a warning: the template may be stored on the server).
        #[arg(long)]
        strict: bool,
        /// Files to check; `-` reads standard input.
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Print artifact files in normalized form.
    Fmt {
        /// The kind of every document, as for `validate`.
        #[arg(long, value_parser = InputKind::parse)]
        kind: Option<InputKind>,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = FormatArg::Yaml)]
        output: FormatArg,
        /// Files to format; `-` reads standard input.
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Store artifacts (any kinds) from a YAML or JSON file, or standard input.
    Create {
        /// The file (default: standard input).
        #[arg(long, short)]
        file: Option<String>,
    },
    /// Delete an artifact.
    Delete { kind: String, name: String },
    /// List artifacts of a kind.
    List {
        kind: String,
        #[arg(long, short, value_enum, default_value_t = ShowArg::Table)]
        output: ShowArg,
    },
    /// Show one artifact.
    Describe {
        kind: String,
        name: String,
        #[arg(long, short, value_enum, default_value_t = ShowArg::Yaml)]
        output: ShowArg,
        /// Show a deployment as the blueprint that makes it (no runtime state).
        #[arg(long)]
        as_blueprint: bool,
    },
    /// Deploy a stored blueprint as a deployment (or merge it into one).
    Deploy {
        blueprint: String,
        deployment: String,
        /// Wait until every service is deployed (showing progress), at most this many seconds.
        #[arg(long, num_args = 0..=1, default_missing_value = "300")]
        wait: Option<u64>,
    },
    /// Merge a stored blueprint into a deployment (new services join at 0%).
    Merge {
        blueprint: String,
        deployment: String,
        #[arg(long, num_args = 0..=1, default_missing_value = "300")]
        wait: Option<u64>,
    },
    /// Remove a deployment, or one service of it.
    Undeploy {
        deployment: String,
        /// Only this service (a breed name).
        #[arg(long, short)]
        service: Option<String>,
        #[arg(long, num_args = 0..=1, default_missing_value = "300")]
        wait: Option<u64>,
    },
    /// Set a gateway's route weights, e.g. `--weights app:1.0@70%,app:1.1@30%`.
    UpdateGateway {
        name: String,
        #[arg(long, short)]
        weights: String,
    },
    /// Publish an event.
    Emit {
        /// The value (JSON, else text).
        value: String,
        #[arg(long, short, value_delimiter = ',', required = true)]
        tags: Vec<String>,
        #[arg(long = "type")]
        kind: Option<String>,
    },
    /// Print events as they happen (one JSON line each).
    Events {
        /// Only events with all these tags.
        #[arg(long = "tag", short)]
        tags: Vec<String>,
        #[arg(long = "type")]
        kind: Option<String>,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<usize>,
    },
    /// Automated canary releases: watch, command or simulate a rollout.
    Rollout {
        #[command(subcommand)]
        command: RolloutCommand,
    },
    /// Print a copy of a stored breed or blueprint under a new name, to edit and create.
    Generate {
        kind: String,
        #[arg(long, short)]
        source: String,
        #[arg(long, short)]
        target: String,
        /// A breed's new deployable.
        #[arg(long, short)]
        deployable: Option<String>,
    },
}

#[derive(Subcommand)]
enum RolloutCommand {
    /// Phase, step, weights and the last verdict with its numbers; exit code: 0 succeeded,
    /// 20 progressing, 21 paused, 22 rolled back, 23 aborted.
    Status {
        name: String,
        /// Follow it (redrawn on every change) until it succeeds, rolls back or is aborted.
        #[arg(long, short)]
        watch: bool,
    },
    /// Leave the current step (an analysis, a pause, a gate).
    Promote {
        name: String,
        /// Skip every remaining step: the canary gets all of the traffic now.
        #[arg(long)]
        full: bool,
    },
    /// Stop; the stable route gets all of the traffic back.
    Abort { name: String },
    /// Hold where it is.
    Pause { name: String },
    /// Go on after a pause (from the weights as they are).
    Resume { name: String },
    /// Start again from the first step.
    Retry { name: String },
    /// Run a rollout file's planner on a virtual clock against simulated traffic and print
    /// the timeline (offline; the same seed prints the same timeline).
    Simulate {
        /// The rollout (YAML or JSON).
        file: String,
        /// Requests per second through the gateway.
        #[arg(long, default_value_t = 20.0)]
        rps: f64,
        /// The stable route's error rate (0.001 or 0.1%).
        #[arg(long, value_parser = vamp_cli::rollout::rate, default_value = "0.1%")]
        stable_error_rate: f64,
        /// The canary's error rate.
        #[arg(long, value_parser = vamp_cli::rollout::rate, default_value = "0.1%")]
        canary_error_rate: f64,
        /// The stable route's median response time, ms.
        #[arg(long, default_value_t = 20.0)]
        stable_latency_ms: f64,
        /// The canary's median response time, ms.
        #[arg(long, default_value_t = 20.0)]
        canary_latency_ms: f64,
        /// The random seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Simulated seconds at most.
        #[arg(long, default_value_t = 3_600)]
        duration: i64,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputArg {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Yaml,
    Json,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
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
            Ok(text) => match vamp_cli::rollout::simulate(text, model, *seed, *duration) {
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
        std::process::exit(code);
    }
    if !matches!(cli.command, Command::Validate { .. } | Command::Fmt { .. }) {
        std::process::exit(online_main(cli));
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
            offline::validate(&inputs, kind, strict, output, &mut out, &mut err)?
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
            offline::fmt(&inputs, kind, format, &mut out, &mut err)?
        }
        _ => 2,
    };
    std::process::exit(code)
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
            vamp_cli::rollout::status(&client, name, *watch, terminal, &mut out).await
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
            vamp_cli::rollout::command(&client, &name, verb, full).await
        }
        Command::Validate { .. } | Command::Fmt { .. } => Ok(String::new()),
    }
}
