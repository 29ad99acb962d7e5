//! `entra-writeback`: parses the command line and hands over to [`entra_writeback::cli`].

use clap::Parser;

/// jemalloc rather than the system allocator: the store (sled) copies a tree node on every
/// write and frees the old one, and jemalloc serves that pattern 2 to 4 times faster than
/// glibc's malloc (BENCHMARKS.md, "Queue throughput").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let args = entra_writeback::cli::Cli::parse();
    entra_writeback::cli::main(args)
}
