//! `vamp-server`: the Vamp REST API over an embedded Vamp.
//!
//! Run with: `cargo run --release -p vamp-server -- --demo`

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use vamp_server::config::ServerConfig;
use vamp_server::{App, demo, shutdown_signal};

/// The Vamp server: REST API, reconciler and gateways, on embedded defaults unless configured.
#[derive(Parser)]
#[command(name = "vamp-server", version)]
struct Args {
    /// A TOML configuration file (docs/server.md lists the keys).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The API address (server.listen).
    #[arg(long)]
    listen: Option<String>,
    /// Where the database, process state and logs live (server.data_dir).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Print the effective configuration and exit.
    #[arg(long)]
    print_config: bool,
    /// Deploy a two-version demo service behind one gateway at 90/10.
    #[arg(long)]
    demo: bool,
    /// The demo gateway's port.
    #[arg(long, default_value_t = demo::DEFAULT_PORT)]
    demo_port: u16,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// The demo service (what `--demo` deploys).
    #[command(hide = true)]
    DemoApp {
        #[arg(long, default_value = "1.0.0")]
        app_version: String,
        #[arg(long, env = "VAMP_DEMO_HOST", default_value = "127.0.0.1")]
        host: IpAddr,
        #[arg(long, env = "PORT", default_value_t = 8080)]
        port: u16,
    },
}

fn main() {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vamp-server: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(run(args));
    std::process::exit(code);
}

async fn run(args: Args) -> i32 {
    if let Some(Command::DemoApp {
        app_version,
        host,
        port,
    }) = args.command
    {
        return demo_app(app_version, host, port).await;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut flags = Vec::new();
    if let Some(listen) = &args.listen {
        flags.push(("server.listen".to_owned(), listen.clone()));
    }
    if let Some(data) = &args.data {
        flags.push(("server.data_dir".to_owned(), data.display().to_string()));
    }
    let config = match ServerConfig::load(args.config.as_deref(), std::env::vars(), flags) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("vamp-server: {e}");
            return 2;
        }
    };
    if args.print_config {
        print!("{}", config.to_toml());
        return 0;
    }
    let app = match App::build(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("vamp-server: {e}");
            return 1;
        }
    };
    let listener = match app.bind().await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("vamp-server: {e}");
            return 1;
        }
    };
    let address = listener.local_addr().unwrap_or(app.config.server.listen);
    println!("vamp-server listening on http://{address}");
    if !args.demo {
        return match app.serve(listener, shutdown_signal()).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("vamp-server: {e}");
                1
            }
        };
    }
    // The demo: serve until a signal, then remove the demo before stopping.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = {
        let app = app.clone();
        tokio::spawn(async move {
            app.serve(listener, async {
                let _ = stopped.await;
            })
            .await
        })
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("vamp-server: cannot find its own executable for the demo: {e}");
            return 1;
        }
    };
    let ready = async {
        demo::deploy(&app, &exe, args.demo_port)
            .await
            .map_err(|e| e.to_string())?;
        demo::wait_until_served(args.demo_port, Duration::from_secs(60)).await
    };
    let code = tokio::select! {
        r = ready => match r {
            Ok(()) => {
                println!(
                    "vamp demo ready: gateway http://127.0.0.1:{}/ api http://{address}/api/v1",
                    args.demo_port
                );
                println!("  try: curl -s http://127.0.0.1:{}/   (about 9 in 10 answers say 1.0.0)", args.demo_port);
                println!("       curl -s http://{address}/api/v1/deployments/{}", demo::DEPLOYMENT);
                println!("       curl -sN http://{address}/api/v1/events/stream");
                println!("  Ctrl-C stops the server and the demo's processes.");
                shutdown_signal().await;
                0
            }
            Err(e) => {
                eprintln!("vamp-server: the demo did not start: {e}");
                1
            }
        },
        () = shutdown_signal() => 0,
    };
    println!("stopping the demo");
    demo::remove(&app, Duration::from_secs(20)).await;
    let _ = stop.send(());
    match server.await {
        Ok(Ok(())) => code,
        Ok(Err(e)) => {
            eprintln!("vamp-server: {e}");
            1
        }
        Err(e) => {
            eprintln!("vamp-server: {e}");
            1
        }
    }
}

async fn demo_app(version: String, host: IpAddr, port: u16) -> i32 {
    let config = vamp_demo_app::DemoConfig {
        version,
        ..vamp_demo_app::DemoConfig::default()
    };
    let listener = match tokio::net::TcpListener::bind((host, port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("vamp-server demo-app: cannot listen on {host}:{port}: {e}");
            return 1;
        }
    };
    match vamp_demo_app::serve(listener, config, shutdown_signal()).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("vamp-server demo-app: {e}");
            1
        }
    }
}
