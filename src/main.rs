//! `entra-writeback`: parses the command line and hands over to [`entra_writeback::cli`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = entra_writeback::cli::Cli::parse();
    entra_writeback::cli::main(args)
}
