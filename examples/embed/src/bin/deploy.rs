//! Embeds Vamp with the process driver and SQLite: stores the artifacts of the given files,
//! deploys their blueprints and reconciles until stopped (SIGINT/SIGTERM). The services keep
//! running after it stops; started again on the same data directory it adopts them.
//!
//! Run with: `cargo run -p vamp-embed-examples --bin embed-deploy -- --data ./data shop.yml`

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use futures::StreamExt;
use vamp_core::model::{Artifact, Intention, PhaseName};
use vamp_core::{Vamp, VampConfig, dsl};
use vamp_drivers::process::{ProcessConfig, ProcessDriver};
use vamp_drivers::sqlite::SqlitePersistence;

/// Deploy blueprints with an embedded Vamp.
#[derive(Parser)]
struct Args {
    /// Where the database, process state and logs live.
    #[arg(long)]
    data: PathBuf,
    /// Artifact files (breeds, blueprints, …); blueprints are deployed under their names.
    files: Vec<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let vamp = Vamp::builder()
        .persistence(Arc::new(
            SqlitePersistence::open(args.data.join("vamp.db")).await?,
        ))
        .driver(Arc::new(ProcessDriver::new(ProcessConfig::new(
            args.data.join("process"),
        ))?))
        .config(VampConfig::default())
        .build()?;
    for file in &args.files {
        let text = std::fs::read_to_string(file)?;
        for artifact in dsl::read(&text, None)
            .map_err(|e| anyhow::anyhow!(e.display_with_file(&file.display().to_string())))?
        {
            match artifact {
                Artifact::Blueprint(bp) => {
                    vamp.deploy(&bp.name, &bp).await?;
                    println!("deploying {}", bp.name);
                }
                other => {
                    vamp.put(other).await?;
                }
            }
        }
    }
    // Say when everything has converged, and show what happens on the way.
    let watcher = vamp.clone();
    let mut events = vamp.subscribe().await?;
    tokio::spawn(async move {
        while let Some(Ok(e)) = events.next().await {
            if e.event.kind == "synchronization" {
                match &e.event.value {
                    serde_json::Value::Null => println!("event {}", e.event.tags.join(" ")),
                    value => println!("event {} {value}", e.event.tags.join(" ")),
                }
                let done = watcher.deployments().await.is_ok_and(|ds| {
                    ds.iter()
                        .flat_map(|d| d.clusters.values())
                        .flat_map(|c| &c.services)
                        .all(|s| {
                            s.status.intention == Intention::Deployment
                                && s.status.phase.name == PhaseName::Done
                        })
                });
                if done {
                    println!("converged");
                }
            }
        }
    });
    vamp.run(vamp_core::signal::shutdown()).await;
    println!("stopped");
    Ok(())
}
