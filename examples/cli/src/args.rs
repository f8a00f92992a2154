//! The command line: flags and subcommands (clap derive). What each does is in
//! [`crate::run`].

use clap::{Parser, Subcommand, ValueEnum};

use crate::offline::InputKind;
use crate::online::Show;

/// Vamp's command-line client.
#[derive(Parser)]
#[command(name = "vamp", version, about)]
pub struct Cli {
    /// The server (`vamp-server`).
    #[arg(
        long,
        global = true,
        env = "VAMP_HOST",
        default_value = "http://127.0.0.1:8080"
    )]
    pub host: String,
    /// The server's bearer token.
    #[arg(long, global = true, env = "VAMP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How online commands show artifacts.
#[derive(Clone, Copy, ValueEnum)]
pub enum ShowArg {
    /// A table (lists) or YAML (one artifact).
    Table,
    /// JSON.
    Json,
    /// YAML.
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

/// The commands.
#[derive(Subcommand)]
pub enum Command {
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
    Delete {
        /// The kind (singular or plural).
        kind: String,
        /// Its name.
        name: String,
    },
    /// List artifacts of a kind.
    List {
        /// The kind (singular or plural).
        kind: String,
        /// How to show them.
        #[arg(long, short, value_enum, default_value_t = ShowArg::Table)]
        output: ShowArg,
    },
    /// Show one artifact.
    Describe {
        /// The kind (singular or plural).
        kind: String,
        /// Its name.
        name: String,
        /// How to show it.
        #[arg(long, short, value_enum, default_value_t = ShowArg::Yaml)]
        output: ShowArg,
        /// Show a deployment as the blueprint that makes it (no runtime state).
        #[arg(long)]
        as_blueprint: bool,
    },
    /// Deploy a stored blueprint as a deployment (or merge it into one).
    Deploy {
        /// The stored blueprint.
        blueprint: String,
        /// The deployment's name.
        deployment: String,
        /// Wait until every service is deployed (showing progress), at most this many seconds.
        #[arg(long, num_args = 0..=1, default_missing_value = "300")]
        wait: Option<u64>,
    },
    /// Merge a stored blueprint into a deployment (new services join at 0%).
    Merge {
        /// The stored blueprint.
        blueprint: String,
        /// The deployment's name.
        deployment: String,
        /// Wait until every service is deployed, at most this many seconds.
        #[arg(long, num_args = 0..=1, default_missing_value = "300")]
        wait: Option<u64>,
    },
    /// Remove a deployment, or one service of it.
    Undeploy {
        /// The deployment's name.
        deployment: String,
        /// Only this service (a breed name).
        #[arg(long, short)]
        service: Option<String>,
        /// Wait until it is removed, at most this many seconds.
        #[arg(long, num_args = 0..=1, default_missing_value = "300")]
        wait: Option<u64>,
    },
    /// Set a gateway's route weights, e.g. `--weights app:1.0@70%,app:1.1@30%`.
    UpdateGateway {
        /// The gateway.
        name: String,
        /// `route@weight` pairs, comma-separated.
        #[arg(long, short)]
        weights: String,
    },
    /// Publish an event.
    Emit {
        /// The value (JSON, else text).
        value: String,
        /// Its tags, comma-separated.
        #[arg(long, short, value_delimiter = ',', required = true)]
        tags: Vec<String>,
        /// Its type (default `event`).
        #[arg(long = "type")]
        kind: Option<String>,
    },
    /// Print events as they happen (one JSON line each).
    Events {
        /// Only events with all these tags.
        #[arg(long = "tag", short)]
        tags: Vec<String>,
        /// Only events of this type.
        #[arg(long = "type")]
        kind: Option<String>,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<usize>,
    },
    /// Automated canary releases: watch, command or simulate a rollout.
    Rollout {
        /// What to do.
        #[command(subcommand)]
        command: RolloutCommand,
    },
    /// Workflows that run: status, suspend, restart, and the output of their runs.
    Workflow {
        /// What to do.
        #[command(subcommand)]
        command: WorkflowCommand,
    },
    /// Print a copy of a stored breed or blueprint under a new name, to edit and create.
    Generate {
        /// `breed` or `blueprint`.
        kind: String,
        /// The stored artifact to copy.
        #[arg(long, short)]
        source: String,
        /// The copy's name.
        #[arg(long, short)]
        target: String,
        /// A breed's new deployable.
        #[arg(long, short)]
        deployable: Option<String>,
    },
}

/// `vamp workflow …`.
#[derive(Subcommand)]
pub enum WorkflowCommand {
    /// The status, the schedule, the counts of runs and the last runs.
    Status {
        /// The workflow.
        name: String,
    },
    /// Stop scheduling it (a run in progress finishes); `restart` schedules it again.
    Suspend {
        /// The workflow.
        name: String,
    },
    /// Unschedule it and schedule it afresh (a suspended workflow starts again).
    Restart {
        /// The workflow.
        name: String,
    },
    /// The output of its last runs, oldest first (lines on standard error marked `!`).
    Logs {
        /// The workflow.
        name: String,
        /// Then print new lines and runs as they come, until interrupted.
        #[arg(long, short)]
        follow: bool,
    },
}

/// `vamp rollout …`.
#[derive(Subcommand)]
pub enum RolloutCommand {
    /// Phase, step, weights and the last verdict with its numbers; exit code: 0 succeeded,
    /// 20 progressing, 21 paused, 22 rolled back, 23 aborted.
    Status {
        /// The rollout.
        name: String,
        /// Follow it (redrawn on every change) until it succeeds, rolls back or is aborted.
        #[arg(long, short)]
        watch: bool,
    },
    /// Leave the current step (an analysis, a pause, a gate).
    Promote {
        /// The rollout.
        name: String,
        /// Skip every remaining step: the canary gets all of the traffic now.
        #[arg(long)]
        full: bool,
    },
    /// Stop; the stable route gets all of the traffic back.
    Abort {
        /// The rollout.
        name: String,
    },
    /// Hold where it is.
    Pause {
        /// The rollout.
        name: String,
    },
    /// Go on after a pause (from the weights as they are).
    Resume {
        /// The rollout.
        name: String,
    },
    /// Start again from the first step.
    Retry {
        /// The rollout.
        name: String,
    },
    /// Run a rollout file's planner on a virtual clock against simulated traffic and print
    /// the timeline (offline; the same seed prints the same timeline).
    Simulate {
        /// The rollout (YAML or JSON).
        file: String,
        /// Requests per second through the gateway.
        #[arg(long, default_value_t = 20.0)]
        rps: f64,
        /// The stable route's error rate (0.001 or 0.1%).
        #[arg(long, value_parser = crate::rollout::rate, default_value = "0.1%")]
        stable_error_rate: f64,
        /// The canary's error rate.
        #[arg(long, value_parser = crate::rollout::rate, default_value = "0.1%")]
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

/// `vamp validate`'s report format.
#[derive(Clone, Copy, ValueEnum)]
pub enum OutputArg {
    /// Lines for people.
    Text,
    /// JSON for tools.
    Json,
}

/// `vamp fmt`'s output format.
#[derive(Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}
