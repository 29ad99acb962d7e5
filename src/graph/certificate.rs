//! The app certificate (`graph.client_certificate`): loading the PEM, and signing the client
//! assertion (a JWT, RS256 or PS256, with the `x5t` / `x5t#S256` thumbprints) that proves the
//! app's identity to the token endpoint.
//!
//! Compared with `jsonwebtoken` (which would take the same key and headers): signing one
//! fixed-shape JWT with ring is a few lines and needs no second crypto stack, so it stays.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::RsaKeyPair;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::client::GraphError;
use crate::config::AssertionAlgorithm;

/// `client_assertion_type` of a JWT bearer assertion.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Lifetime of a client assertion (Entra ID accepts at most 10 minutes).
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(600);

/// An app certificate with its RSA private key, loaded once.
pub struct CertificateCredential {
    pub(super) key: RsaKeyPair,
    /// base64url SHA-1 of the certificate (DER): the `x5t` header.
    pub x5t: String,
    /// base64url SHA-256 of the certificate (DER): the `x5t#S256` header.
    pub x5t_s256: String,
    alg: AssertionAlgorithm,
    rng: SystemRandom,
}

/// Why a certificate file cannot be used, or an assertion cannot be signed.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The file cannot be read.
    #[error("{0}")]
    Read(#[source] std::io::Error),
    /// No `CERTIFICATE` block.
    #[error("no CERTIFICATE block")]
    NoCertificate,
    /// A `CERTIFICATE` block that does not decode.
    #[error("unreadable CERTIFICATE block: {0}")]
    BadCertificate(#[source] rustls_pki_types::pem::Error),
    /// No private key block.
    #[error("no PRIVATE KEY block")]
    NoKey,
    /// A private key block that does not decode.
    #[error("unreadable private key: {0}")]
    BadKey(#[source] rustls_pki_types::pem::Error),
    /// A key of another type than RSA.
    #[error("the private key is not an RSA key (PKCS#8 or PKCS#1)")]
    NotRsa,
    /// An RSA key ring refuses (too short, malformed).
    #[error("the private key is not a usable RSA key: {0}")]
    UnusableRsa(ring::error::KeyRejected),
    /// The system's random source failed.
    #[error("no randomness for the assertion id")]
    NoRandomness,
    /// Signing failed.
    #[error("signing the client assertion failed")]
    Signing,
}

impl CertificateCredential {
    /// Loads a PEM file holding the certificate (the first `CERTIFICATE` block is the app's)
    /// and its RSA private key (`PRIVATE KEY` PKCS#8, or `RSA PRIVATE KEY` PKCS#1).
    pub fn from_pem_file(path: &Path, alg: AssertionAlgorithm) -> Result<Self, GraphError> {
        // The file holds the private key: its bytes are wiped once the key is parsed.
        let pem = zeroize::Zeroizing::new(
            std::fs::read(path).map_err(|e| bad_cert(path, &CertificateError::Read(e)))?,
        );
        Self::from_pem(&pem, alg).map_err(|e| bad_cert(path, &e))
    }

    /// [`Self::from_pem_file`] on bytes; the error says what is missing or wrong.
    pub fn from_pem(pem: &[u8], alg: AssertionAlgorithm) -> Result<Self, CertificateError> {
        let cert = CertificateDer::pem_slice_iter(pem)
            .next()
            .ok_or(CertificateError::NoCertificate)?
            .map_err(CertificateError::BadCertificate)?;
        let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => CertificateError::NoKey,
            e => CertificateError::BadKey(e),
        })?;
        let key = match &key {
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => return Err(CertificateError::NotRsa),
        }
        .map_err(CertificateError::UnusableRsa)?;
        let digest = |alg| URL_SAFE_NO_PAD.encode(ring::digest::digest(alg, cert.as_ref()));
        Ok(CertificateCredential {
            key,
            x5t: digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY),
            x5t_s256: digest(&ring::digest::SHA256),
            alg,
            rng: SystemRandom::new(),
        })
    }

    /// A signed client assertion for `audience` (the token URL), valid from `now_unix`.
    pub fn assertion(
        &self,
        client_id: &str,
        audience: &str,
        now_unix: u64,
    ) -> Result<String, CertificateError> {
        let alg = match self.alg {
            AssertionAlgorithm::RS256 => "RS256",
            AssertionAlgorithm::PS256 => "PS256",
        };
        let header = serde_json::json!({
            "alg": alg, "typ": "JWT", "x5t": self.x5t, "x5t#S256": self.x5t_s256,
        });
        let claims = serde_json::json!({
            "aud": audience, "iss": client_id, "sub": client_id, "jti": self.jti()?,
            "nbf": now_unix, "iat": now_unix, "exp": now_unix + ASSERTION_LIFETIME.as_secs(),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let padding: &'static dyn ring::signature::RsaEncoding = match self.alg {
            AssertionAlgorithm::RS256 => &ring::signature::RSA_PKCS1_SHA256,
            AssertionAlgorithm::PS256 => &ring::signature::RSA_PSS_SHA256,
        };
        let mut sig = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(padding, &self.rng, signing_input.as_bytes(), &mut sig)
            .map_err(|_| CertificateError::Signing)?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }

    /// A random (version 4) UUID.
    fn jti(&self) -> Result<String, CertificateError> {
        let mut b = [0u8; 16];
        self.rng
            .fill(&mut b)
            .map_err(|_| CertificateError::NoRandomness)?;
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        Ok(format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        ))
    }
}

fn bad_cert(path: &Path, why: &CertificateError) -> GraphError {
    GraphError::Auth {
        error: "bad_certificate".into(),
        description: format!("graph.client_certificate {}: {why}", path.display()),
        hint: "",
    }
}
