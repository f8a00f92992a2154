//! `vamp-demo-app`: an HTTP service that names its version.
//!
//! Run with: `cargo run -p vamp-demo-app -- --app-version 1.1.0 --port 8080 --error-rate 0.1`

use std::net::IpAddr;
use std::time::Duration;

use clap::Parser;
use vamp_demo_app::{DemoConfig, serve, shutdown_signal};

/// An HTTP service that answers with its version (first body line and `x-version` header).
#[derive(Parser)]
#[command(name = "vamp-demo-app", version)]
struct Args {
    /// The version to name.
    #[arg(long, env = "VAMP_DEMO_VERSION", default_value = "1.0.0")]
    app_version: String,
    /// Address to listen on.
    #[arg(long, env = "VAMP_DEMO_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on (0 = any free port); Vamp's process driver sets PORT.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    port: u16,
    /// Milliseconds to wait before every answer.
    #[arg(long, env = "VAMP_DEMO_LATENCY_MS", default_value_t = 0)]
    latency_ms: u64,
    /// Share of requests answered with 500, from 0 to 1.
    #[arg(long, env = "VAMP_DEMO_ERROR_RATE", default_value_t = 0.0)]
    error_rate: f64,
}

fn main() {
    // One line on failure: process drivers report a service's last output line as the reason.
    if let Err(e) = run() {
        eprintln!("vamp-demo-app: {e:#}");
        std::process::exit(1);
    }
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = DemoConfig {
        version: args.app_version,
        latency: Duration::from_millis(args.latency_ms),
        error_rate: args.error_rate,
    };
    config.validate()?;
    let listener = tokio::net::TcpListener::bind((args.host, args.port)).await?;
    println!(
        "vamp-demo-app {} listening on http://{}",
        config.version,
        listener.local_addr()?
    );
    serve(listener, config, shutdown_signal()).await?;
    Ok(())
}
