//! Explicit synchronisation for tests that drive a running service: wait for an observable
//! event (a `/status.json` field, a log line) with a generous deadline, instead of sleeping.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::service::{Service, tail};

/// Polls `f` every `every` until it holds; after `secs` seconds panics naming `what`, with the
/// tail of `svc`'s `run.log` (if given), which explains most timeouts.
pub async fn until<F: AsyncFnMut() -> bool>(
    what: &str,
    secs: u64,
    every: Duration,
    svc: Option<&Service>,
    mut f: F,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        if Instant::now() >= deadline {
            if let Some(svc) = svc {
                eprintln!("--- service log ---\n{}", tail(&run_log(svc)));
            }
            panic!("timed out after {secs}s waiting for {what}");
        }
        tokio::time::sleep(every).await;
    }
}

/// `GET http://127.0.0.1:{port}{path}`: (status, body), or `None` if nothing answers.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let r = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .ok()?;
    Some((r.status().as_u16(), r.text().await.ok()?))
}

/// The running service's `/status.json`, if it answers.
pub async fn status(svc: &Service) -> Option<Value> {
    let (code, body) = http_get(svc.http_port, "/status.json").await?;
    (code == 200).then(|| serde_json::from_str(&body).ok())?
}

/// Whether a delta round of `resource` is in flight with at least one page committed (its
/// cursor now points into the middle of the round).
pub fn round_in_flight(status: &Value, resource: &str) -> bool {
    status["in_flight"].as_array().is_some_and(|f| {
        f.iter()
            .any(|r| r["resource"] == resource && r["pages"].as_u64().unwrap_or(0) >= 1)
    })
}

/// Whether the process killed when the request log held `killed_at` records died mid-round:
/// the first groups delta request logged after that point asks for a `$skiptoken` page. That
/// request is either the dead process's last one (answered late) or the next process's first;
/// both ask for the link the dead process stored as its cursor.
pub fn killed_mid_round(requests: &[Value], killed_at: usize) -> bool {
    requests[killed_at..]
        .iter()
        .find(|r| r["path"] == "/v1.0/groups/delta")
        .is_some_and(|r| r["query"].as_str().unwrap().contains("skiptoken"))
}

/// The service's `run.log` (stderr of every [`Service::spawn`]) so far.
pub fn run_log(svc: &Service) -> String {
    std::fs::read_to_string(svc.dir.path().join("run.log")).unwrap_or_default()
}

/// Counts lines containing a needle in a growing log file, reading only what was appended
/// since the last call (cheap enough to poll every few milliseconds).
pub struct LogCounter {
    path: PathBuf,
    offset: usize,
    needle: String,
    partial: String,
    /// Matching lines seen so far.
    pub count: usize,
}

impl LogCounter {
    /// Counts `needle` in `svc`'s `run.log`, from its current end.
    pub fn new(svc: &Service, needle: &str) -> LogCounter {
        let path = svc.dir.path().join("run.log");
        let offset = std::fs::metadata(&path).map_or(0, |m| m.len() as usize);
        LogCounter {
            path,
            offset,
            needle: needle.to_string(),
            partial: String::new(),
            count: 0,
        }
    }

    /// Reads what was appended and returns the updated count.
    pub fn poll(&mut self) -> usize {
        let bytes = std::fs::read(&self.path).unwrap_or_default();
        if bytes.len() > self.offset {
            self.partial
                .push_str(&String::from_utf8_lossy(&bytes[self.offset..]));
            self.offset = bytes.len();
            let complete = self.partial.rfind('\n').map_or(0, |i| i + 1);
            let lines: String = self.partial.drain(..complete).collect();
            self.count += lines.lines().filter(|l| l.contains(&self.needle)).count();
        }
        self.count
    }
}
