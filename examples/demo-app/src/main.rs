//! `vamp-demo-app`: an HTTP service that names its version.
//!
//! Run with: `cargo run -p vamp-demo-app -- --app-version 1.1.0 --port 8080 --error-rate 0.1`

use clap::Parser;
use vamp_demo_app::{DemoArgs, serve, shutdown_signal};

/// An HTTP service that answers with its version (first body line and `x-version` header).
#[derive(Parser)]
#[command(name = "vamp-demo-app", version)]
struct Args {
    #[command(flatten)]
    demo: DemoArgs,
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
    let args = Args::parse().demo;
    let config = args.config();
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
