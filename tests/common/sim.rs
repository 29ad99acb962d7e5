//! The `graph-sim` binary as a child process, and its admin API.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use super::service::Running;

/// Tenant id used by the tests.
pub const TENANT: &str = "contoso.onmicrosoft.com";
/// App registration used by the tests.
pub const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
/// Its secret.
pub const CLIENT_SECRET: &str = "sim-secret-value";

/// The `graph-sim` binary. It belongs to another package of the workspace (`crates/graph-sim`),
/// so cargo gives this one no `CARGO_BIN_EXE_graph-sim`; it is found instead: `$GRAPH_SIM_BIN`
/// if set, else the one of this test's profile (the test runs as `target/PROFILE/deps/NAME-HASH`,
/// the binary is `target/PROFILE/graph-sim`), else the debug one. `cargo test --all-targets` in
/// the repository root builds it before any test runs; `cargo test --test NAME` does not, so a
/// binary older than any of its sources (cargo's `graph-sim.d` beside it lists them) is refused
/// rather than tested against. Panics, saying how to build it, when there is none.
pub fn graph_sim_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("GRAPH_SIM_BIN") {
            return PathBuf::from(bin);
        }
        let exe = std::env::current_exe().expect("the test executable's path");
        let profile = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/PROFILE/deps/NAME");
        let name = format!("graph-sim{}", std::env::consts::EXE_SUFFIX);
        let mut candidates = vec![profile.join(&name)];
        if !profile.ends_with("debug") {
            candidates.push(profile.with_file_name("debug").join(&name));
        }
        let build = "build it with `cargo build -p graph-sim` (`--release` for `cargo bench`), or \
                     run `cargo test --all-targets` in the repository root, or set GRAPH_SIM_BIN";
        let Some(bin) = candidates.iter().find(|c| c.is_file()) else {
            panic!("no graph-sim binary at {candidates:?}: {build}");
        };
        let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let built = mtime(bin).unwrap_or(SystemTime::UNIX_EPOCH);
        // The dep-info file lists the binary's sources, but only when it was written with the
        // binary (`cargo test` re-links without rewriting it): an older one says nothing.
        let dep_info = bin.with_extension("d");
        let fresh_dep_info = mtime(&dep_info).is_some_and(|t| t >= built);
        if let Some(deps) = fresh_dep_info
            .then(|| std::fs::read_to_string(&dep_info).ok())
            .flatten()
        {
            // `TARGET: SOURCE SOURCE ...`, a space inside a path escaped as `\ `.
            let deps = deps
                .split_once(": ")
                .map_or("", |(_, s)| s)
                .replace("\\ ", "\0");
            let mut sources = deps
                .split_whitespace()
                .map(|s| PathBuf::from(s.replace('\0', " ")));
            if let Some(src) = sources.find(|s| mtime(s).is_none_or(|t| t > built)) {
                panic!(
                    "{} is older than its source {}: {build}",
                    bin.display(),
                    src.display()
                );
            }
        }
        if bin != &candidates[0] {
            eprintln!(
                "note: using {} (none at {})",
                bin.display(),
                candidates[0].display()
            );
        }
        bin.clone()
    })
    .clone()
}

/// A running graph-sim.
pub struct GraphSim {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    _child: Running,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

/// A user member reference.
pub fn user(id: &str) -> Value {
    json!({"@odata.type": "#microsoft.graph.user", "id": id})
}

/// A nested group member reference.
pub fn group(id: &str) -> Value {
    json!({"@odata.type": "#microsoft.graph.group", "id": id})
}

/// A GUID-shaped object id, unique per (test tag, n) and per test process: the last 12
/// characters (which the CN and sAMAccountName use) carry a per-process salt, so runs sharing
/// one DC never collide.
pub fn oid(tag: u32, n: u32) -> String {
    static SALT: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let salt = *SALT.get_or_init(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        (std::process::id() ^ t.subsec_nanos() ^ t.as_secs() as u32) & 0xff_ffff
    });
    format!("{tag:08x}-0000-4000-8000-{salt:06x}{n:06x}")
}

/// An app registration that authenticates with the test certificate
/// (`tests/fixtures/graph/app-cert.pem`, verified by graph-sim against its public key).
pub const CERT_CLIENT_ID: &str = "99999999-8888-7777-6666-555555555555";

/// The test app's certificate and private key (PEM), a throwaway made for the tests.
pub fn cert_pem_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/graph/app-cert.pem")
}

/// The certificate part of [`cert_pem_path`] (what an admin uploads to the app registration).
pub fn cert_only_pem() -> String {
    let pem = std::fs::read_to_string(cert_pem_path()).unwrap();
    let end = pem.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    pem[..end].to_string()
}

/// The usual clients: the secret app ([`CLIENT_ID`]) and the certificate app
/// ([`CERT_CLIENT_ID`]).
pub fn default_clients() -> Value {
    json!([{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
           {"client_id": CERT_CLIENT_ID, "certificate_pem": cert_only_pem()}])
}

impl GraphSim {
    /// Starts graph-sim with this tenant (`users`, `groups` as in the tenant file).
    pub fn start(users: Vec<Value>, groups: Vec<Value>, extra_args: &[&str]) -> GraphSim {
        let tenant = json!({"tenant_id": TENANT, "clients": default_clients(),
            "users": users, "groups": groups});
        Self::start_tenant(tenant, extra_args)
    }

    /// Starts graph-sim with a whole tenant file.
    pub fn start_tenant(tenant: Value, extra_args: &[&str]) -> GraphSim {
        let dir = tempfile::tempdir().unwrap();
        let tenant_path = dir.path().join("tenant.json");
        std::fs::write(&tenant_path, tenant.to_string()).unwrap();
        let addr_file: PathBuf = dir.path().join("addr");
        // Owned (killed on drop) from the moment it exists, so a panic below leaks nothing.
        let bin = graph_sim_binary();
        let child = Running(
            Command::new(&bin)
                .arg("--tenant")
                .arg(&tenant_path)
                .args(["--listen", "127.0.0.1:0", "--addr-file"])
                .arg(&addr_file)
                .args(extra_args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", bin.display())),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        let base = loop {
            if let Ok(s) = std::fs::read_to_string(&addr_file) {
                break s.trim().to_string();
            }
            assert!(Instant::now() < deadline, "graph-sim did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        GraphSim {
            base,
            _child: child,
            _dir: dir,
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Creates or updates a group (properties merged; `members` replaces the list).
    pub async fn put_group(&self, id: &str, props: Value) {
        self.send(
            reqwest::Method::PUT,
            &format!("/admin/groups/{id}"),
            Some(props),
        )
        .await;
    }

    /// Adds and removes members.
    pub async fn members(&self, id: &str, add: Vec<Value>, remove: Vec<Value>) {
        self.send(
            reqwest::Method::POST,
            &format!("/admin/groups/{id}/members"),
            Some(json!({"add": add, "remove": remove})),
        )
        .await;
    }

    /// Soft (`hard = false`) or hard delete of a group.
    pub async fn delete_group(&self, id: &str, hard: bool) {
        self.send(
            reqwest::Method::DELETE,
            &format!("/admin/groups/{id}?hard={hard}"),
            None,
        )
        .await;
    }

    /// Converts a group synced from AD to cloud-managed (`true`), or rolls it back (`false`).
    pub async fn source_of_authority(&self, id: &str, cloud_managed: bool) {
        self.send(
            reqwest::Method::POST,
            &format!("/admin/groups/{id}/source-of-authority"),
            Some(json!({"isCloudManaged": cloud_managed})),
        )
        .await;
    }

    /// Restores a soft-deleted group.
    pub async fn restore_group(&self, id: &str) {
        self.send(
            reqwest::Method::POST,
            &format!("/admin/groups/{id}/restore"),
            None,
        )
        .await;
    }

    /// Creates or updates a user.
    pub async fn put_user(&self, id: &str, props: Value) {
        self.send(
            reqwest::Method::PUT,
            &format!("/admin/users/{id}"),
            Some(props),
        )
        .await;
    }

    /// Applies many operations at once (see graph-sim's `/admin/bulk`).
    pub async fn bulk(&self, ops: Vec<Value>) {
        self.send(
            reqwest::Method::POST,
            "/admin/bulk",
            Some(Value::Array(ops)),
        )
        .await;
    }

    /// Soft (`hard = false`) or hard delete of a user.
    pub async fn delete_user(&self, id: &str, hard: bool) {
        self.send(
            reqwest::Method::DELETE,
            &format!("/admin/users/{id}?hard={hard}"),
            None,
        )
        .await;
    }

    /// Moves the simulator clock forward (access-token expiry), e.g. `"2h"`.
    pub async fn advance_clock(&self, by: &str) {
        self.send(
            reqwest::Method::POST,
            "/admin/clock",
            Some(json!({"advance": by})),
        )
        .await;
    }

    /// Forgets the request log.
    pub async fn clear_requests(&self) {
        self.send(reqwest::Method::DELETE, "/admin/requests", None)
            .await;
    }

    /// Disarms every fault.
    pub async fn clear_faults(&self) {
        self.send(reqwest::Method::DELETE, "/admin/faults", None)
            .await;
    }

    /// The tenant as graph-sim holds it now (`/admin/state`).
    pub async fn state(&self) -> Value {
        self.send(reqwest::Method::GET, "/admin/state", None).await
    }

    /// Arms faults (see graph-sim's `/admin/faults`).
    pub async fn faults(&self, faults: Value) {
        self.send(reqwest::Method::POST, "/admin/faults", Some(faults))
            .await;
    }

    /// Every Graph request served so far.
    pub async fn requests(&self) -> Vec<Value> {
        match self
            .send(reqwest::Method::GET, "/admin/requests", None)
            .await
        {
            Value::Array(v) => v,
            other => panic!("unexpected /admin/requests reply {other}"),
        }
    }
}
