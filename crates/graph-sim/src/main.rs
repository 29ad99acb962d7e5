//! `graph-sim`: serves a simulated Microsoft Graph / Entra ID tenant for integration tests, demos
//! and benchmarks (see the `graph_sim` library, `src/lib.rs`, for what it guarantees and the admin
//! API).
//!
//! Prints exactly one line, `graph-sim listening on http://IP:PORT`, to stdout once bound; logs
//! go to stderr (`RUST_LOG` filter). Runs until SIGTERM or SIGINT.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use graph_sim::{SimConfig, Simulator, base_url, serve_with_shutdown};

/// Command line of the simulator.
#[derive(Parser, Debug)]
#[command(
    name = "graph-sim",
    version,
    about = "Microsoft Graph delta-query simulator"
)]
struct Args {
    /// Tenant file (JSON: tenant_id, clients, users, groups).
    #[arg(long)]
    tenant: PathBuf,
    /// Address to listen on (port 0 = any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Items per delta page (also the default page size of deletedItems lists).
    #[arg(long, default_value_t = 100)]
    page_size: usize,
    /// Members per group item before a group is split into several items.
    #[arg(long, default_value_t = 500)]
    member_slice: usize,
    /// Access-token lifetime (humantime, e.g. 3599s, 1h).
    #[arg(long, default_value = "3599s", value_parser = humantime::parse_duration)]
    token_lifetime: Duration,
    /// Insert an empty page with a nextLink between real pages.
    #[arg(long)]
    empty_pages: bool,
    /// Also write the base URL to this file (atomically, via a temporary file).
    #[arg(long)]
    addr_file: Option<PathBuf>,
}

fn write_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("cannot listen for SIGTERM: {e}");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("graph-sim shutting down");
}

async fn run(args: Args) -> Result<(), String> {
    let json = std::fs::read_to_string(&args.tenant)
        .map_err(|e| format!("cannot read {}: {e}", args.tenant.display()))?;
    let config = SimConfig {
        page_size: args.page_size.max(1),
        member_slice: args.member_slice.max(1),
        token_lifetime: args.token_lifetime,
        empty_pages: args.empty_pages,
        ..SimConfig::default()
    };
    let sim = Simulator::from_tenant_json(&json, config)
        .map_err(|e| format!("{}: {e}", args.tenant.display()))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let base = base_url(listener.local_addr().map_err(|e| e.to_string())?);
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "graph-sim listening on {base}")
            .and_then(|()| out.flush())
            .map_err(|e| e.to_string())?;
    }
    if let Some(path) = &args.addr_file {
        write_atomically(path, &base)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    serve_with_shutdown(listener, sim, shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("graph-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
