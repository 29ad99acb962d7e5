//! TLS material for the LDAP connection: the trust anchors read from `ad.ca_file`, verified
//! by rustls (ring provider). Without a CA file, ldap3 uses the system roots.
//!
//! # Guarantees
//! - The DC's certificate is always verified; there is no "accept any certificate" path.
//! - Errors name the file, never its contents.
//!
//! Imports: [`super::error`] only.

use std::path::Path;
use std::sync::Arc;

use super::error::TlsError;

/// A rustls client configuration trusting exactly the certificates in `ca_file` (PEM).
pub fn client_config(ca_file: &Path) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca_file)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Unreadable {
            path: ca_file.to_path_buf(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            path: ca_file.to_path_buf(),
        });
    }
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        roots.add(c).map_err(|e| TlsError::BadCertificate {
            path: ca_file.to_path_buf(),
            detail: e.to_string(),
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Provider(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_or_missing_ca_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = client_config(&empty).unwrap_err();
        assert!(matches!(e, TlsError::Empty { .. }), "{e}");
        assert!(e.to_string().contains("empty.pem"), "{e}");
        let missing = dir.path().join("missing.pem");
        let e = client_config(&missing).unwrap_err();
        assert!(e.to_string().starts_with("cannot read ad.ca_file"), "{e}");
    }
}
