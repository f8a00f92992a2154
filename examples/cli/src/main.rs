//! `vamp`: the command-line client.
//!
//! Run with: `cargo run -p vamp-cli -- validate path/to/blueprint.yml`

use clap::{Parser, Subcommand, ValueEnum};
use vamp_cli::offline::{self, Format, Input, InputKind, Output};

/// Vamp's command-line client.
#[derive(Parser)]
#[command(name = "vamp", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check artifact files (YAML or JSON); exit 0 when all are valid, 1 when any is not.
    Validate {
        /// The kind of every document (singular or plural, or docker-compose); default: each
        /// document's `kind:` field.
        #[arg(long, value_parser = InputKind::parse)]
        kind: Option<InputKind>,
        /// Report format.
        #[arg(long, short, value_enum, default_value_t = OutputArg::Text)]
        output: OutputArg,
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
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputArg {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Yaml,
    Json,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    let code = match cli.command {
        Command::Validate {
            kind,
            output,
            files,
        } => {
            let inputs: Vec<Input> = files.iter().map(|f| Input::read(f)).collect();
            let output = match output {
                OutputArg::Text => Output::Text,
                OutputArg::Json => Output::Json,
            };
            offline::validate(&inputs, kind, output, &mut out, &mut err)?
        }
        Command::Fmt {
            kind,
            output,
            files,
        } => {
            let inputs: Vec<Input> = files.iter().map(|f| Input::read(f)).collect();
            let format = match output {
                FormatArg::Yaml => Format::Yaml,
                FormatArg::Json => Format::Json,
            };
            offline::fmt(&inputs, kind, format, &mut out, &mut err)?
        }
    };
    std::process::exit(code)
}
