//! `vamp`: the command-line client — parse, run, exit. The commands live in the library
//! (`vamp_cli::run`), so each is testable without spawning a process.
//!
//! Run with: `cargo run -p vamp-cli -- validate path/to/blueprint.yml`

use clap::Parser as _;

fn main() {
    let cli = vamp_cli::args::Cli::parse();
    std::process::exit(vamp_cli::run::run(cli));
}
