//! The command line: parsing (clap), logging set-up, and one function per command.
//!
//! Commands print their results on stdout and their logs on stderr; failures print one clear
//! line and exit 1.

mod check;
mod cloud;
mod loops;
mod ops;
mod run;
mod usage;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat};
use crate::observe::{Observers, Progress};

/// Write Microsoft Entra ID groups back into on-premises Active Directory.
#[derive(Debug, Parser)]
#[command(name = "entra-writeback", version, about)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        env = "ENTRA_WRITEBACK_CONFIG",
        default_value = "./entra-writeback.toml"
    )]
    pub config: PathBuf,
    /// Refuse to start when the config file holds a secret and its group or others can read it
    /// (without it, that is a warning).
    #[arg(long, global = true, env = "ENTRA_WRITEBACK_STRICT_PERMISSIONS")]
    pub strict_permissions: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands of the contract.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Poll Graph, queue, apply to AD, forever (or one round with --once).
    Run {
        /// One full delta round, drain the queue, exit (1 if anything is left or dead-lettered).
        #[arg(long)]
        once: bool,
    },
    /// Print what a round would change in AD; writes nothing.
    Plan,
    /// Diagnose config, Graph (token, delta permissions) and AD (TLS, bind, schema, each owned
    /// OU and the rights there); reports every point, exit 1 if any failed.
    Check {
        /// A JSON array of {name, ok, detail, fix} instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Inspect the queue.
    Queue {
        /// Which view.
        #[command(subcommand)]
        view: QueueView,
    },
    /// Re-queue changes for re-application.
    Replay {
        /// Dead letters.
        #[arg(long)]
        dead: bool,
        /// Journal entries applied since this time (RFC 3339, or a duration ago such as `2h`).
        #[arg(long)]
        since: Option<String>,
        /// Journal entries from this sequence number on.
        #[arg(long)]
        from: Option<u64>,
        /// Only this group (cloud object id).
        #[arg(long)]
        group: Option<String>,
    },
    /// Forget the delta cursor: the next round is a full enumeration that reconciles AD.
    Resync,
    /// Release deletes held back by the delete threshold.
    ApproveDeletes {
        /// All held deletes.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// Group ids to release.
        ids: Vec<String>,
    },
    /// Resume writing groups frozen because another writer kept reverting them (stop that
    /// tool first); without arguments, list them.
    ApproveWrites {
        /// All frozen groups.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// Group ids to release.
        ids: Vec<String>,
    },
    /// List every group the service owns in AD; with --yes, delete them all.
    Decommission {
        /// Really delete.
        #[arg(long)]
        yes: bool,
    },
}

/// `queue` views.
#[derive(Debug, Subcommand)]
pub enum QueueView {
    /// Depth, oldest age, dead letters, cursor age.
    Status {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Queued (or dead-lettered) changes.
    List {
        /// Dead letters instead of pending changes.
        #[arg(long)]
        dead: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// One change by sequence number.
    Show {
        /// Sequence number.
        seq: u64,
    },
}

/// A command's failure: printed as one line, exit code 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CliError(pub String);

impl CliError {
    /// Wraps any error with context.
    pub fn ctx(context: &str, e: impl std::fmt::Display) -> CliError {
        CliError(format!("{context}: {e}"))
    }
}

fn init_logging(format: LogFormat, writer: crate::observe::progress::LogWriter) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("ENTRA_WRITEBACK_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,sled=warn,ldap3=warn"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Human => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    // Log lines go to stderr, above the initial-sync progress bars when those are shown.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(!json && std::io::stderr().is_terminal())
        .with_writer(writer);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// Runs the parsed command; the process exit code.
pub fn main(cli: Cli) -> ExitCode {
    let cfg = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            if let Command::Check { json } = cli.command {
                check::config_failed(&cli.config, &e.to_string(), json);
            }
            return ExitCode::from(1);
        }
    };
    let progress = Arc::new(Progress::new());
    if let Some(why) = &cfg.exposed_secrets {
        if cli.strict_permissions {
            eprintln!("error: {why} (--strict-permissions)");
            return ExitCode::from(1);
        }
        init_logging(cfg.log.format, progress.log_writer());
        tracing::warn!(problem = %why, "config file permissions");
    } else {
        init_logging(cfg.log.format, progress.log_writer());
    }
    let observers = Observers::new(progress.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let path = cli.config.clone();
    let result = rt.block_on(async move {
        match cli.command {
            Command::Run { once: false } => run::run(cfg, observers).await,
            Command::Run { once: true } => run::run_once(cfg, observers).await,
            Command::Plan => run::plan(cfg).await,
            Command::Check { json } => check::check(cfg, &path, json).await,
            Command::Queue { view } => ops::queue(cfg, view),
            Command::Replay {
                dead,
                since,
                from,
                group,
            } => ops::replay(cfg, dead, since, from, group),
            Command::Resync => ops::resync(cfg),
            Command::ApproveDeletes { all, ids } => ops::approve_deletes(cfg, all, ids),
            Command::ApproveWrites { all, ids } => ops::approve_writes(cfg, all, ids),
            Command::Decommission { yes } => run::decommission(cfg, yes).await,
        }
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    progress.finish();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
