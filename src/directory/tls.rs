//! TLS material for the LDAP connection: the trust anchors read from `ad.ca_file` (or, without
//! one, the system's roots), verified by rustls (ring provider), TLS 1.2 and 1.3 only.
//!
//! # Guarantees
//! - The DC's certificate is always verified; there is no "accept any certificate" path.
//! - Only TLS 1.2 and TLS 1.3 are offered ([`PROTOCOL_VERSIONS`]): a DC that speaks nothing
//!   newer than TLS 1.1 is refused with an error that says so ([`explain`]).
//! - A certificate the trust anchors do not sign is refused with an error naming `ad.ca_file`.
//! - Errors name the file, never its contents.
//!
//! Imports: [`super::error`] only.

use std::path::Path;
use std::sync::Arc;

use super::error::TlsError;

/// The protocol versions the LDAP client offers: TLS 1.2 at least, never SSL or TLS 1.0/1.1.
pub const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A rustls client configuration trusting exactly the certificates in `ca_file` (PEM), or the
/// system's roots when `ca_file` is `None`; TLS 1.2 and 1.3 only.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let roots = match ca_file {
        Some(path) => file_roots(path)?,
        None => system_roots(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(|e| TlsError::Provider(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// The trust anchors in a PEM file; an unreadable, empty or unusable file is an error.
fn file_roots(ca_file: &Path) -> Result<rustls::RootCertStore, TlsError> {
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
    Ok(roots)
}

/// The system's trust anchors; unusable ones are skipped (with none, every DC certificate is
/// refused, and the error says to set `ad.ca_file`).
fn system_roots() -> rustls::RootCertStore {
    let loaded = rustls_native_certs::load_native_certs();
    for e in &loaded.errors {
        tracing::debug!(error = %e, "skipping an unreadable system CA certificate");
    }
    let mut roots = rustls::RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
    tracing::debug!(added, ignored, "system CA certificates for LDAP");
    roots
}

/// A connection error's text with what it means for the configuration: a certificate the
/// trust anchors do not sign names `ad.ca_file` (the file, or that none is set), and a server
/// without TLS 1.2 or 1.3 says that TLS 1.2 is the minimum.
pub fn explain(detail: &str, ca_file: Option<&Path>) -> String {
    let lower = detail.to_ascii_lowercase();
    let hint = if lower.contains("certificate") {
        match ca_file {
            Some(p) => format!(
                "the DC's certificate is not valid for this host or not signed by a CA in \
                 ad.ca_file ({})",
                p.display()
            ),
            None => "the DC's certificate is not valid for this host or not signed by a \
                     system-trusted CA: set ad.ca_file to the PEM of the CA that signs it"
                .into(),
        }
    } else if lower.contains("protocolversion") || lower.contains("tlsversion") {
        "the DC does not speak TLS 1.2 or 1.3, and entra-writeback refuses TLS 1.0 and 1.1".into()
    } else {
        return detail.to_owned();
    };
    format!("{detail}; {hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_or_missing_ca_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = client_config(Some(&empty)).unwrap_err();
        assert!(matches!(e, TlsError::Empty { .. }), "{e}");
        assert!(e.to_string().contains("empty.pem"), "{e}");
        let missing = dir.path().join("missing.pem");
        let e = client_config(Some(&missing)).unwrap_err();
        assert!(e.to_string().starts_with("cannot read ad.ca_file"), "{e}");
    }

    #[test]
    fn only_tls_1_2_and_1_3_are_offered() {
        let versions: Vec<_> = PROTOCOL_VERSIONS.iter().map(|v| v.version).collect();
        assert_eq!(
            versions,
            [
                rustls::ProtocolVersion::TLSv1_3,
                rustls::ProtocolVersion::TLSv1_2
            ]
        );
        assert!(client_config(None).is_ok());
    }

    #[test]
    fn certificate_and_version_failures_say_what_to_fix() {
        let ca = Path::new("/etc/ew/ad-ca.pem");
        let bad = "I/O error: invalid peer certificate: UnknownIssuer";
        let e = explain(bad, Some(ca));
        assert!(
            e.starts_with(bad) && e.contains("ad.ca_file (/etc/ew/ad-ca.pem)"),
            "{e}"
        );
        assert!(explain(bad, None).contains("set ad.ca_file"));
        let old = "I/O error: received fatal alert: ProtocolVersion";
        assert!(explain(old, Some(ca)).contains("TLS 1.2 or 1.3"));
        assert_eq!(
            explain("connection refused", Some(ca)),
            "connection refused"
        );
    }
}
