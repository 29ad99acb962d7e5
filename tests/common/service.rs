//! The entra-writeback binary, configured through its contract (TOML + env) and run as a
//! child process, exactly as an operator would.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::samba::SambaDc;
use super::sim::{CLIENT_ID, GraphSim, TENANT};

/// A configured service instance with its own state directory.
pub struct Service {
    /// Scratch directory holding the config and the state.
    pub dir: tempfile::TempDir,
    /// The config file.
    pub config: PathBuf,
    /// `[http] listen` port.
    pub http_port: u16,
    /// The password of the account the config binds as (passed through the environment).
    pub bind_password: String,
}

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Config knobs the tests vary.
///
/// Build it with [`Options::new`] (StartTLS) or [`Options::ldaps`] and override fields with
/// `..Options::new(dc, sim)`, so new fields reach every test. The TLS keys of `[ad]`
/// (`starttls`, `ca_file`, `allow_insecure_ldap`) live in [`Options::ad_tls`], never in
/// [`Options::ad_extra`] (TOML refuses a key given twice).
#[derive(Clone)]
pub struct Options {
    /// `[ad] url`.
    pub ad_url: String,
    /// The TLS lines of `[ad]`: [`starttls_lines`] for `ldap://`, [`ldaps_lines`] for
    /// `ldaps://`; a test that deliberately binds in clear uses [`INSECURE_LDAP`] and says why.
    pub ad_tls: String,
    /// `[graph] graph_url` and `authority_url`.
    pub graph_url: String,
    /// Extra lines appended to `[graph]`.
    pub graph_extra: String,
    /// Extra lines appended to `[ad]`.
    pub ad_extra: String,
    /// Extra TOML appended at the end (e.g. a `[sync]` table).
    pub tail: String,
    /// `[ad] bind_dn`: the delegated service account [`SambaDc::svc_bind_dn`]. Only a test
    /// about an account's rights (or one that seeds AD as the administrator would) changes it.
    pub bind_dn: String,
    /// Its password, handed over in `ENTRA_WRITEBACK_AD_BIND_PASSWORD`.
    pub bind_password: String,
}

/// `[ad]` lines for `ldap://` + StartTLS, verified against the lab's CA.
pub fn starttls_lines(dc: &SambaDc) -> String {
    format!("starttls = true\nca_file = \"{}\"", dc.ca_file.display())
}

/// `[ad]` lines for `ldaps://`, verified against the lab's CA.
pub fn ldaps_lines(dc: &SambaDc) -> String {
    format!("ca_file = \"{}\"", dc.ca_file.display())
}

/// The `[sync]` section of [`Service::new`]: short retry delays, four attempts.
pub const FAST_RETRIES: &str =
    "[sync]\nmin_backoff = \"100ms\"\nmax_backoff = \"1s\"\nmax_attempts = 4\n";

/// `[ad]` line accepting a plain `ldap://` bind (the password crosses the wire in clear): only
/// for tests about that opt-in itself.
pub const INSECURE_LDAP: &str = "allow_insecure_ldap = true";

impl Options {
    /// This DC over `ldap://` + StartTLS (the lab's CA), this simulator, nothing extra.
    pub fn new(dc: &SambaDc, sim: &GraphSim) -> Options {
        Options::graph_at(dc, &sim.base)
    }

    /// Like [`Options::new`] with Graph (and the login endpoint) at `graph_url` instead of a
    /// simulator, e.g. a closed port.
    pub fn graph_at(dc: &SambaDc, graph_url: &str) -> Options {
        Options {
            ad_url: dc.url.clone(),
            ad_tls: starttls_lines(dc),
            graph_url: graph_url.to_owned(),
            graph_extra: String::new(),
            ad_extra: String::new(),
            tail: String::new(),
            bind_dn: dc.svc_bind_dn.clone(),
            bind_password: dc.svc_bind_password.clone(),
        }
    }

    /// This DC over `ldaps://` (the lab's CA), this simulator, nothing extra.
    pub fn ldaps(dc: &SambaDc, sim: &GraphSim) -> Options {
        Options {
            ad_url: dc.ldaps_url.clone(),
            ad_tls: ldaps_lines(dc),
            ..Options::new(dc, sim)
        }
    }
}

/// The `[state] cache_capacity` line a benchmark asks for with `BENCH_CACHE=BYTES` (sled's
/// page cache; the figures of BENCHMARKS.md compare sizes), else nothing: the default.
fn bench_cache() -> String {
    std::env::var("BENCH_CACHE")
        .map(|bytes| format!("cache_capacity = {bytes}\n"))
        .unwrap_or_default()
}

impl Service {
    /// Writes a config for `sim` and `dc`, targeting `ou`, with short retry delays.
    pub fn new(sim: &GraphSim, dc: &SambaDc, ou: &str) -> Service {
        Self::with(
            dc,
            ou,
            Options {
                tail: FAST_RETRIES.into(),
                ..Options::new(dc, sim)
            },
        )
    }

    /// Writes a config from explicit options (they carry the DC's URL and the account to bind as).
    pub fn with(_dc: &SambaDc, ou: &str, o: Options) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let http_port = free_port();
        let config = dir.path().join("entra-writeback.toml");
        let text = format!(
            r#"[graph]
tenant_id = "{TENANT}"
client_id = "{CLIENT_ID}"
authority_url = "{g}"
graph_url = "{g}"
poll_interval = "1s"
{graph_extra}

[ad]
url = "{ad}"
{tls}
bind_dn = "{bind}"
target_ou = "{ou}"
{extra}

[state]
path = "{state}"
{cache}
[http]
listen = "127.0.0.1:{http_port}"

[log]
format = "json"

{tail}"#,
            g = o.graph_url,
            graph_extra = o.graph_extra,
            ad = o.ad_url,
            tls = o.ad_tls,
            bind = o.bind_dn,
            extra = o.ad_extra,
            state = dir.path().join("state").display(),
            cache = bench_cache(),
            tail = o.tail,
        );
        std::fs::write(&config, text).unwrap();
        Service {
            dir,
            config,
            http_port,
            bind_password: o.bind_password,
        }
    }

    /// The state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// A command for this instance (secrets through the environment, as documented).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_entra-writeback"));
        c.arg("--config").arg(&self.config).args(args);
        c.env(
            "ENTRA_WRITEBACK_GRAPH_CLIENT_SECRET",
            super::sim::CLIENT_SECRET,
        );
        c.env("ENTRA_WRITEBACK_AD_BIND_PASSWORD", &self.bind_password);
        c.env("ENTRA_WRITEBACK_LOG", "info,entra_writeback=debug");
        c
    }

    /// Runs a command to completion, within [`command_timeout`].
    pub fn run(&self, args: &[&str]) -> Output {
        output_within(&mut self.command(args), command_timeout())
    }

    /// `run --once`, asserting exit 0 and returning stderr (the logs).
    pub fn once_ok(&self) -> String {
        let out = self.run(&["run", "--once"]);
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "run --once failed ({:?}):\n{}",
            out.status,
            tail(&log)
        );
        log
    }

    /// Starts `run` in the background; the process is killed when the handle drops (so a
    /// failing test leaves no service behind).
    pub fn spawn(&self) -> Running {
        Running(
            self.command(&["run"])
                .stdout(Stdio::null())
                .stderr(Stdio::from(log_file(self.dir.path())))
                .spawn()
                .unwrap(),
        )
    }
}

/// A background `run`, killed on drop.
pub struct Running(pub Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// How long one foreground command of a test may run before it is killed and the test fails:
/// a hung `run --once` must fail its test, not hang CI. Generous, because the slowest command
/// (a large group's first `run --once` on a loaded 2-core machine) takes about a minute.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

/// [`COMMAND_TIMEOUT`], or `EW_TEST_COMMAND_TIMEOUT_SECS` when set: benchmarks of sizes whose
/// one `run --once` outlasts ten minutes (a 50,000-member group on Samba) raise it.
pub fn command_timeout() -> Duration {
    std::env::var("EW_TEST_COMMAND_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(COMMAND_TIMEOUT, Duration::from_secs)
}

/// `Command::output` with a deadline: the child is owned (killed on drop) from the moment it
/// exists, its output is drained while it runs, and past `limit` it is killed and the test
/// panics with the tail of what it wrote.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = Running(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}")),
    );
    fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    }
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let log = stderr.join().unwrap_or_default();
            panic!(
                "{cmd:?} still running after {limit:?}: killed. Its stderr ended with:\n{}",
                tail(&String::from_utf8_lossy(&log))
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

fn log_file(dir: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("run.log"))
        .unwrap()
}

/// The last 60 lines of a log, for assertion messages.
pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}
