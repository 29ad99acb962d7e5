//! What `gen-docs` writes, shared with `tests/cli_docs.rs`: bash, zsh and fish completions
//! (`clap_complete`) and one man page per command (`clap_mangen`), all from
//! [`entra_writeback::cli::Cli`].

use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

/// Where the completions go, under `deploy/`.
pub const COMPLETIONS: &str = "completions";
/// Where the man pages go, under `deploy/`.
pub const MAN: &str = "man";
const BIN: &str = "entra-writeback";

/// Writes `completions/` and `man/` under `dir`, replacing what was there.
pub fn write_all(dir: &Path) -> std::io::Result<()> {
    for sub in [COMPLETIONS, MAN] {
        let path = dir.join(sub);
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::create_dir_all(&path)?;
    }
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(
            shell,
            &mut entra_writeback::cli::Cli::command(),
            BIN,
            dir.join(COMPLETIONS),
        )?;
    }
    let cmd = entra_writeback::cli::Cli::command();
    clap_mangen::generate_to(cmd.clone(), dir.join(MAN))?;
    // The main page, again, with what clap does not know: files, the references, the pages
    // of the commands.
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    page.extend_from_slice(EXTRA.as_bytes());
    let see_also: Vec<String> = cmd
        .get_subcommands()
        .filter(|c| c.get_name() != "help")
        .map(|c| format!("\\fB{BIN}-{}\\fR(1)", c.get_name()).replace('-', "\\-"))
        .collect();
    page.extend_from_slice(format!("{}\n", see_also.join(", ")).as_bytes());
    std::fs::write(dir.join(MAN).join(format!("{BIN}.1")), page)
}

/// The sections appended to `entra-writeback.1`, in roff.
const EXTRA: &str = r#".SH FILES
.TP
\fI/etc/entra\-writeback/entra\-writeback.toml\fR
The configuration (\fB\-\-config\fR). Every key, its default and its environment override:
docs/configuration.md; a commented example: deploy/entra\-writeback.example.toml.
.TP
\fI/var/lib/entra\-writeback\fR
The durable state (\fB[state] path\fR): the queue, the mirror of the cloud, the delta cursors.
One process at a time; losing it costs a full re\-enumeration.
.SH ENVIRONMENT
Secrets may come from \fBENTRA_WRITEBACK_GRAPH_CLIENT_SECRET\fR,
\fBENTRA_WRITEBACK_AD_BIND_PASSWORD\fR and \fBENTRA_WRITEBACK_HTTP_STATUS_TOKEN\fR, or from
files named after their key in \fB$CREDENTIALS_DIRECTORY\fR (systemd's LoadCredential=).
\fBENTRA_WRITEBACK_LOG\fR sets the log filter. The full list: docs/configuration.md.
.SH EXIT STATUS
0 on success (and on a clean stop of \fBrun\fR), 1 on failure, with one line on stderr saying why.
.SH SEE ALSO
"#;
