//! `entra-writeback`: parses the command line and hands over to [`entra_writeback::cli`].

use clap::Parser;

/// jemalloc rather than the system allocator: the store (sled) copies a tree node on every
/// write and frees the old one, and jemalloc serves that pattern 2 to 4 times faster than
/// glibc's malloc (BENCHMARKS.md, "Queue throughput").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main`: one arena (the service has a handful of threads on
/// a few cores, and every extra arena keeps its own freed pages), and a background thread that
/// returns freed pages to the system within a second rather than whenever the arena next
/// allocates. Writing a 250,000-member group peaked at 140 MiB with jemalloc's defaults and at
/// 102 MiB with these (BENCHMARKS.md, "The allocator's options"). `_RJEM_MALLOC_CONF` in the
/// environment still overrides them.
#[cfg(all(not(target_env = "msvc"), target_os = "linux"))]
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &[u8; JEMALLOC_OPTIONS.len()] = match JEMALLOC_OPTIONS.first_chunk() {
    Some(options) => options,
    None => unreachable!(),
};

/// The options as jemalloc reads them: a C string, hence the closing NUL.
#[cfg(all(not(target_env = "msvc"), target_os = "linux"))]
const JEMALLOC_OPTIONS: &[u8] =
    b"narenas:1,background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

fn main() -> std::process::ExitCode {
    let args = entra_writeback::cli::Cli::parse();
    entra_writeback::cli::main(args)
}
