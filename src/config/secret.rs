//! [`Secret`], the wrapper that keeps passwords and tokens out of `Debug` output and wipes them
//! from memory, and the check that warns when a config file holding secrets is readable by its
//! group or others.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Deserializer};

/// A secret string: compared and used, never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for Secret {
    /// The value is wiped from memory when the last copy goes.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// The permission bits of a file (`None` where unknown: not Unix, or unreadable metadata).
pub(super) fn file_mode(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .ok()
            .map(|m| m.permissions().mode() & 0o777)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// The secret keys given in the file itself (not through the environment).
pub(super) fn secrets_set_in(text: &str) -> Vec<&'static str> {
    let Ok(doc) = text.parse::<toml::Table>() else {
        return Vec::new(); // `parse` has already accepted it; nothing to report otherwise
    };
    [
        ("graph", "client_secret", "graph.client_secret"),
        ("ad", "bind_password", "ad.bind_password"),
        ("http", "status_token", "http.status_token"),
    ]
    .into_iter()
    .filter(|(table, key, _)| doc.get(*table).and_then(|t| t.get(*key)).is_some())
    .map(|(_, _, name)| name)
    .collect()
}

/// The warning for a config file that holds secrets (`keys`, set in the file itself) and that
/// its group or others may read, or `None` when it is fine.
pub(super) fn exposed_secrets(path: &Path, mode: Option<u32>, keys: &[&str]) -> Option<String> {
    let mode = mode?;
    (mode & 0o077 != 0 && !keys.is_empty()).then(|| {
        format!(
            "config file {} holds {} and is readable by its group or others (mode {mode:03o}): \
             chmod 600 it, or pass the secrets through the environment",
            path.display(),
            keys.join(", ")
        )
    })
}

/// The environment variable systemd sets to the directory of a unit's credentials
/// (`LoadCredential=` / `SetCredential=`); anything else may set it too (a Kubernetes Secret
/// volume, say).
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// Each secret: its environment variable and its credential name (the file in
/// `$CREDENTIALS_DIRECTORY`), which is the key it overrides.
pub const SECRET_SOURCES: [(&str, &str); 3] = [
    (super::ENV_GRAPH_SECRET, "graph.client_secret"),
    (super::ENV_AD_PASSWORD, "ad.bind_password"),
    (super::ENV_STATUS_TOKEN, "http.status_token"),
];

/// Why a credential file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read credential {}: {source}", path.display())]
pub struct CredentialError {
    /// The credential file.
    pub path: std::path::PathBuf,
    /// The I/O error (never the content).
    #[source]
    pub source: std::io::Error,
}

/// The secrets found in the credentials directory `dir`, by environment variable name. A
/// missing file is no credential; an unreadable one is an error. One trailing newline (as
/// `echo` writes) is dropped; an empty file counts as unset.
pub(super) fn read_credentials(
    dir: Option<&Path>,
) -> Result<Vec<(&'static str, Secret)>, CredentialError> {
    let Some(dir) = dir else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for (env, name) in SECRET_SOURCES {
        let path = dir.join(name);
        let mut text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(CredentialError { path, source }),
        };
        let keep = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .map_or(text.len(), str::len);
        text.truncate(keep);
        if !text.is_empty() {
            found.push((env, Secret::new(text)));
        }
    }
    Ok(found)
}

/// The value of the secret whose environment variable is `name`: the variable when set and
/// not empty, else the credential read by [`read_credentials`].
pub(super) fn lookup_secret(
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
    creds: &[(&'static str, Secret)],
) -> Option<String> {
    env(name).filter(|v| !v.is_empty()).or_else(|| {
        let found = creds.iter().find(|(var, _)| *var == name);
        found.map(|(_, secret)| secret.expose().to_owned())
    })
}
