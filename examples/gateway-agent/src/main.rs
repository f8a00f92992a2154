//! `vamp-gateway-agent`: parse the flags, run the agent (`vamp_gateway_agent::run`).

use clap::Parser as _;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = vamp_gateway_agent::Args::parse();
    if let Err(e) = vamp_gateway_agent::run(args).await {
        eprintln!("vamp-gateway-agent: {e:#}");
        std::process::exit(1);
    }
}
