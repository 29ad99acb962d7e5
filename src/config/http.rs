//! `[http]`: the monitoring listener's address, the bearer token guarding the status page and
//! the optional TLS certificate and key it is served with.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Secret;

/// `[http]`: metrics and health endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address of `/metrics`, `/healthz`, `/readyz`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Bearer token for `/` and `/status.json` (they name groups and DNs). Required for them
    /// on a non-loopback `listen` (without it they are not served); when set, required on
    /// loopback too. Env `ENTRA_WRITEBACK_HTTP_STATUS_TOKEN` wins over the file.
    #[serde(default)]
    pub status_token: Option<Secret>,
    /// PEM certificate chain: with [`Self::tls_key`], the listener speaks HTTPS only.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of [`Self::tls_cert`] (both or neither).
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_listen(),
            status_token: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}

impl HttpConfig {
    /// The certificate and key paths when the listener is to speak TLS.
    pub fn tls(&self) -> Option<(&Path, &Path)> {
        Some((self.tls_cert.as_deref()?, self.tls_key.as_deref()?))
    }

    /// `tls_cert` and `tls_key` come together, and each is a readable PEM file holding a
    /// certificate (a private key); the refusal names the key. Never quotes the key file.
    pub(super) fn check_tls(&self) -> Result<(), (&'static str, String)> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let (cert, key) = match (&self.tls_cert, &self.tls_key) {
            (None, None) => return Ok(()),
            (Some(c), Some(k)) => (c, k),
            (Some(_), None) => return Err(("http.tls_key", "required with http.tls_cert".into())),
            (None, Some(_)) => return Err(("http.tls_cert", "required with http.tls_key".into())),
        };
        let certs = CertificateDer::pem_file_iter(cert)
            .map(|it| it.filter_map(Result::ok).count())
            .map_err(|e| {
                (
                    "http.tls_cert",
                    format!("cannot read {}: {e}", cert.display()),
                )
            })?;
        if certs == 0 {
            return Err((
                "http.tls_cert",
                format!("{} holds no PEM certificate", cert.display()),
            ));
        }
        if PrivateKeyDer::from_pem_file(key).is_err() {
            return Err((
                "http.tls_key",
                format!("{} is not a readable PEM private key", key.display()),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(cert: Option<&Path>, key: Option<&Path>) -> Result<(), (&'static str, String)> {
        HttpConfig {
            tls_cert: cert.map(Path::to_path_buf),
            tls_key: key.map(Path::to_path_buf),
            ..HttpConfig::default()
        }
        .check_tls()
    }

    #[test]
    fn tls_cert_and_key_come_together_and_are_checked_by_name() {
        let pem = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/graph/app-cert.pem");
        assert_eq!(with(None, None), Ok(()));
        assert_eq!(with(Some(&pem), Some(&pem)), Ok(()));
        assert_eq!(with(Some(&pem), None).unwrap_err().0, "http.tls_key");
        assert_eq!(with(None, Some(&pem)).unwrap_err().0, "http.tls_cert");
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let (key, why) = with(Some(&missing), Some(&pem)).unwrap_err();
        assert_eq!(key, "http.tls_cert", "{why}");
        assert!(why.contains("missing.pem"), "{why}");
        let cert_only = dir.path().join("cert.pem");
        let text = std::fs::read_to_string(&pem).unwrap();
        let end = text.find("-----END CERTIFICATE-----").unwrap() + 25;
        std::fs::write(&cert_only, &text[..end]).unwrap();
        assert_eq!(
            with(Some(&pem), Some(&cert_only)).unwrap_err().0,
            "http.tls_key"
        );
        assert_eq!(
            with(Some(&missing), Some(&missing)).unwrap_err().0,
            "http.tls_cert"
        );
    }
}
