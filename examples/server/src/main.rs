//! `vamp-server`: the Vamp REST API over an embedded Vamp — parse the flags, run
//! (`vamp_server::cli::run`), exit with its code.
//!
//! Run with: `cargo run --release -p vamp-server -- --demo`

use clap::Parser as _;

/// The data path allocates per request; mimalloc serves that faster than the system
/// allocator (docs/performance.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = vamp_server::cli::Args::parse();
    let code = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(vamp_server::cli::run(args)),
        Err(e) => {
            eprintln!("vamp-server: cannot start the runtime: {e}");
            1
        }
    };
    std::process::exit(code);
}
