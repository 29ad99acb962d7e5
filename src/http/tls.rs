//! Optional TLS for the monitoring listener (`[http] tls_cert` / `tls_key`): the rustls server
//! configuration (ring provider, TLS 1.2 and 1.3 only) and [`TlsListener`], an
//! [`axum::serve::Listener`] that hands axum only connections whose handshake completed.
//!
//! # Guarantees
//! - Handshakes run concurrently, each bounded by [`HANDSHAKE_TIMEOUT`], at most
//!   [`MAX_HANDSHAKES`] at a time: a client that stalls cannot hold the listener up.
//! - A client that speaks plain HTTP to the TLS port gets no answer (its handshake fails).
//! - Errors name the key (`http.tls_cert`, `http.tls_key`) and the file, never key material.
//!
//! Imports nothing of the crate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How many handshakes may be in flight at once.
pub const MAX_HANDSHAKES: usize = 64;

/// Why the listener's TLS material cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ListenerTlsError {
    /// A file cannot be read, or holds nothing of the expected kind.
    #[error("{key} {}: {detail}", path.display())]
    Material {
        /// `http.tls_cert` or `http.tls_key`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// rustls refused the pair (say, the key does not match the certificate).
    #[error("http.tls_cert / http.tls_key: {0}")]
    Refused(String),
}

/// A rustls server configuration from a PEM certificate chain and a PEM private key.
pub fn server_config(
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::ServerConfig>, ListenerTlsError> {
    let material =
        |key_name: &'static str, path: &Path, detail: String| ListenerTlsError::Material {
            key: key_name,
            path: path.to_path_buf(),
            detail,
        };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| material("http.tls_cert", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(material(
            "http.tls_cert",
            cert,
            "holds no certificate".into(),
        ));
    }
    // Only the kind of failure is reported: the parser's text could quote the file.
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        let detail = match e {
            rustls_pki_types::pem::Error::Io(io) => io.to_string(),
            rustls_pki_types::pem::Error::NoItemsFound => "holds no private key".into(),
            _ => "not a PEM private key".into(),
        };
        material("http.tls_key", key, detail)
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ListenerTlsError::Refused(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| ListenerTlsError::Refused(e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A TCP listener whose connections are TLS-terminated before axum sees them.
pub struct TlsListener {
    incoming: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `listener` (the accept loop ends when this value drops).
    pub fn new(listener: TcpListener, cfg: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, incoming) = mpsc::channel(MAX_HANDSHAKES);
        let accepting = tokio::spawn(accept_loop(listener, TlsAcceptor::from(cfg), tx));
        Ok(TlsListener {
            incoming,
            local,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// Accepts TCP connections and completes their handshakes concurrently; finished ones go to
/// `tx`. Ends when the receiving [`TlsListener`] is gone.
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors, say: wait a little rather than spin.
                tracing::warn!(error = %e, "accept on the monitoring listener failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (acceptor, sender) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    let _ = sender.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
        if tx.is_closed() {
            return;
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(c) => c,
            // The accept loop only ends once this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_files_are_refused_by_key_name() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = server_config(&missing, &empty).unwrap_err().to_string();
        assert!(
            e.starts_with("http.tls_cert ") && e.contains("missing.pem"),
            "{e}"
        );
        let e = server_config(&empty, &empty).unwrap_err().to_string();
        assert!(
            e.starts_with("http.tls_cert ") && e.contains("no certificate"),
            "{e}"
        );
    }

    #[test]
    fn a_certificate_with_its_key_makes_a_tls_1_2_and_1_3_server() {
        // The Graph test app's throwaway certificate and key (one PEM file holds both).
        let pem = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/graph/app-cert.pem");
        let cfg = server_config(&pem, &pem).unwrap();
        assert_eq!(cfg.alpn_protocols, [b"http/1.1".to_vec()]);
        let dir = tempfile::tempdir().unwrap();
        let cert_only = dir.path().join("cert.pem");
        let text = std::fs::read_to_string(&pem).unwrap();
        let end = text.find("-----END CERTIFICATE-----").unwrap() + 25;
        std::fs::write(&cert_only, &text[..end]).unwrap();
        let e = server_config(&cert_only, &cert_only)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("http.tls_key ") && e.contains("no private key"),
            "{e}"
        );
        assert!(!e.contains("BEGIN"), "{e}");
    }
}
