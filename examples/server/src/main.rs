//! `vamp-server` placeholder.
//!
//! Run with: `cargo run -p vamp-server`

fn main() {
    eprintln!("{}", vamp_server::NOT_YET);
    std::process::exit(2);
}
