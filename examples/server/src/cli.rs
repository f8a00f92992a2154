//! The `vamp-server` command line: flags, and what they run ([`run`]).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::ServerConfig;
use crate::{App, demo, shutdown_signal};

/// The Vamp server: REST API, reconciler and gateways, on embedded defaults unless configured.
#[derive(Parser)]
#[command(name = "vamp-server", version)]
pub struct Args {
    /// A TOML configuration file (docs/server.md lists the keys).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The API address (server.listen).
    #[arg(long)]
    pub listen: Option<String>,
    /// Where the database, process state and logs live (server.data_dir).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Print the effective configuration, each value set by the file, a variable or a flag
    /// followed by where it came from, and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Deploy a two-version demo service behind one gateway at 90/10.
    #[arg(long)]
    pub demo: bool,
    /// The demo gateway's port.
    #[arg(long, default_value_t = demo::DEFAULT_PORT)]
    pub demo_port: u16,
    /// With --demo: start the canary at 0% and let a rollout move the traffic to it, judging
    /// it on the way (the demo sends traffic meanwhile).
    #[arg(long, requires = "demo")]
    pub demo_rollout: bool,
    /// With --demo-rollout: the canary's share of failing answers (0 to 1), e.g. 0.2 to watch
    /// it rolled back.
    #[arg(long, requires = "demo_rollout", default_value_t = 0.0, value_parser = error_rate)]
    pub demo_canary_error_rate: f64,
    /// A subcommand (the demo service).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// The demo service (what `--demo` deploys).
    #[command(hide = true)]
    DemoApp(vamp_demo_app::DemoArgs),
}

/// A share between 0 and 1.
fn error_rate(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| (0.0..=1.0).contains(v))
        .ok_or_else(|| format!("'{text}' is not a share between 0 and 1, e.g. 0.2"))
}

/// Prints `message` and returns `code`, the exit code (docs/server.md: 2 = configuration).
fn fail(code: i32, message: impl std::fmt::Display) -> i32 {
    eprintln!("vamp-server: {message}");
    code
}

/// Runs what the flags ask for; the process's exit code (docs/server.md: 2 = configuration).
pub async fn run(args: Args) -> i32 {
    if let Some(Command::DemoApp(demo)) = args.command {
        return match demo::app(demo.config(), demo.host, demo.port, shutdown_signal()).await {
            Ok(()) => 0,
            Err(e) => fail(1, format!("demo-app: {e}")),
        };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let flags = [
        args.listen.map(|l| ("server.listen".to_owned(), l)),
        args.data
            .map(|d| ("server.data_dir".to_owned(), d.display().to_string())),
        // The demo's services are commands run by the process driver.
        args.demo
            .then(|| ("driver.kind".to_owned(), "process".to_owned())),
    ];
    let (config, origins) = match ServerConfig::load_with_origins(
        args.config.as_deref(),
        std::env::vars(),
        flags.into_iter().flatten(),
    ) {
        Ok(loaded) => loaded,
        Err(e) => return fail(2, e),
    };
    if args.print_config {
        print!("{}", config.to_toml_with_origins(&origins));
        return 0;
    }
    let app = match App::build(config).await {
        Ok(app) => app,
        Err(e) => return fail(1, e),
    };
    let listener = match app.bind().await {
        Ok(l) => l,
        Err(e) => return fail(1, e),
    };
    let address = listener.local_addr().unwrap_or(app.config.server.listen);
    println!("vamp-server listening on http://{address}");
    let served = if args.demo {
        let out = &mut std::io::stdout();
        let rollout = args.demo_rollout.then_some(demo::DemoRollout {
            canary_error_rate: args.demo_canary_error_rate,
        });
        demo::run(
            &app,
            listener,
            args.demo_port,
            rollout,
            shutdown_signal(),
            out,
        )
        .await
        .map_err(|e| e.to_string())
    } else {
        app.serve(listener, shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    };
    served.map_or_else(|e| fail(1, e), |()| 0)
}
