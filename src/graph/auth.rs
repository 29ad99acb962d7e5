//! OAuth2 client-credentials tokens for Graph, cached and renewed before they expire.
//!
//! Two credentials: a client secret, or a certificate. With a certificate every token request
//! carries a fresh client-assertion JWT (RFC 7523) signed with the app's private key:
//! `aud` = the token URL, `iss` = `sub` = client id, a unique `jti`, `nbf` = `iat` = now,
//! `exp` = now + 10 min; the header names the certificate by both thumbprints, `x5t`
//! (base64url SHA-1, what Entra ID has always read) and `x5t#S256` (base64url SHA-256, what its
//! current documentation shows), and the algorithm is RS256 or PS256
//! (`graph.client_assertion_algorithm`). Signing uses `ring`, already in the tree via rustls.
//!
//! National clouds: the token URL follows `authority_url` and the scope is
//! `{graph_url}/.default`, so a US Government or China tenant works by setting both.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use tokio::sync::Mutex;

pub use super::certificate::{
    ASSERTION_LIFETIME, ASSERTION_TYPE, CertificateCredential, CertificateError,
};
use super::client::GraphError;
use crate::config::{GraphConfig, Secret};
use crate::model::Events;

/// How the app proves its identity to the token endpoint.
#[derive(Clone)]
pub enum Credential {
    /// A client secret.
    Secret(Secret),
    /// A certificate and its private key: signs a client assertion per token request.
    Certificate(std::sync::Arc<CertificateCredential>),
}

/// A cached bearer token.
struct Cached {
    token: Secret,
    renew_at: Instant,
}

/// Issues bearer tokens for Graph: one request per token lifetime, renewed early.
pub struct TokenSource {
    token_url: String,
    client_id: String,
    scope: String,
    credential: Credential,
    cache: Mutex<Option<Cached>>,
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: String,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct TokenErrorReply {
    error: Option<String>,
    error_description: Option<String>,
}

/// What to check, for an OAuth error from the token endpoint (matched on the `AADSTS` code
/// first, then on the OAuth `error`).
pub fn auth_hint(error: &str, description: &str) -> &'static str {
    let code = |c: &str| description.contains(&format!("AADSTS{c}:"));
    if code("90002") || code("900023") || code("90072") || error == "invalid_tenant" {
        " (check graph.tenant_id, and that graph.authority_url is the login endpoint of the \
         tenant's cloud)"
    } else if code("700016") {
        " (check graph.client_id: no such application in this tenant)"
    } else if code("7000215") || code("7000222") {
        " (check graph.client_secret: use the secret's value, not its id, and that it has not \
         expired)"
    } else if code("700027") || code("700023") || code("700024") || code("50027") {
        " (check graph.client_certificate: upload this certificate to the app registration, and \
         check the system clock)"
    } else if error == "invalid_scope" {
        " (check graph.graph_url: the scope requested is <graph_url>/.default)"
    } else if error == "invalid_client" || error == "unauthorized_client" {
        " (check graph.client_id and its credential)"
    } else {
        ""
    }
}

impl TokenSource {
    /// Builds the source from `[graph]`; the scope follows `graph_url` (national clouds).
    /// A configured certificate is preferred over a secret.
    pub fn new(cfg: &GraphConfig) -> Result<TokenSource, GraphError> {
        let credential = match (&cfg.client_certificate, &cfg.client_secret) {
            (Some(path), secret) => {
                if secret.is_some() {
                    tracing::info!(
                        "graph.client_certificate is set: using it; the client secret is ignored"
                    );
                }
                Credential::Certificate(std::sync::Arc::new(CertificateCredential::from_pem_file(
                    path,
                    cfg.client_assertion_algorithm,
                )?))
            }
            (None, Some(s)) => Credential::Secret(s.clone()),
            (None, None) => {
                return Err(GraphError::Auth {
                    error: "missing_credential".into(),
                    description: "no client secret and no client certificate".into(),
                    hint: "",
                });
            }
        };
        Ok(TokenSource {
            token_url: format!(
                "{}/{}/oauth2/v2.0/token",
                cfg.authority_url.trim_end_matches('/'),
                urlencode_path(&cfg.tenant_id)
            ),
            client_id: cfg.client_id.clone(),
            scope: format!("{}/.default", cfg.graph_url.trim_end_matches('/')),
            credential,
            cache: Mutex::new(None),
        })
    }

    /// The token endpoint (for messages).
    pub fn token_url(&self) -> &str {
        &self.token_url
    }

    /// The scope requested (`{graph_url}/.default`).
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// A valid token: the cached one, or a fresh one when it is near expiry.
    pub async fn token(
        &self,
        http: &reqwest::Client,
        events: &Events,
    ) -> Result<Secret, GraphError> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref().filter(|c| Instant::now() < c.renew_at) {
            return Ok(c.token.clone());
        }
        let fresh = self.request(http, events).await?;
        let token = fresh.0.clone();
        *cache = Some(Cached {
            token: fresh.0,
            renew_at: fresh.1,
        });
        Ok(token)
    }

    /// Drops the cached token (after a 401 from Graph).
    pub async fn invalidate(&self) {
        *self.cache.lock().await = None;
    }

    /// The form of a token request (the assertion, if any, is fresh).
    fn form(&self) -> Result<Vec<(&'static str, String)>, GraphError> {
        let mut form = vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", self.client_id.clone()),
            ("scope", self.scope.clone()),
        ];
        match &self.credential {
            Credential::Secret(s) => form.push(("client_secret", s.expose().to_string())),
            Credential::Certificate(c) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let jwt = c
                    .assertion(&self.client_id, &self.token_url, now)
                    .map_err(|e| GraphError::Auth {
                        error: "assertion".into(),
                        description: e.to_string(),
                        hint: "",
                    })?;
                form.push(("client_assertion_type", ASSERTION_TYPE.to_string()));
                form.push(("client_assertion", jwt));
            }
        }
        Ok(form)
    }

    async fn request(
        &self,
        http: &reqwest::Client,
        events: &Events,
    ) -> Result<(Secret, Instant), GraphError> {
        let started = Instant::now();
        let form = self.form()?;
        let resp = http.post(&self.token_url).form(&form).send().await;
        let (status, retry_after, body) =
            super::client::read_response("token", resp, events).await?;
        if (200..300).contains(&status) {
            let reply: TokenReply =
                serde_json::from_slice(&body).map_err(|e| GraphError::Auth {
                    error: "bad_token_reply".into(),
                    description: format!("token endpoint reply is not a token: {e}"),
                    hint: "",
                })?;
            let lifetime = Duration::from_secs(reply.expires_in.unwrap_or(3599));
            return Ok((
                Secret::new(reply.access_token),
                started + renew_after(lifetime),
            ));
        }
        if status >= 500 || status == 429 {
            return Err(GraphError::Server {
                status,
                retry_after,
            });
        }
        let parsed: Option<TokenErrorReply> = serde_json::from_slice(&body).ok();
        let (error, description) = parsed
            .map(|p| {
                (
                    p.error.unwrap_or_default(),
                    p.error_description.unwrap_or_default(),
                )
            })
            .unwrap_or_else(|| (format!("http_{status}"), String::new()));
        // Keep the first line of the AADSTS description: it carries the reason, not secrets.
        let description = description.lines().next().unwrap_or("").to_string();
        let hint = auth_hint(&error, &description);
        Err(GraphError::Auth {
            error,
            description,
            hint,
        })
    }
}

/// When a token of `lifetime` is renewed, counted from when it was requested: at 90 % of the
/// lifetime, and at least a minute early where possible, but never before half of it.
pub fn renew_after(lifetime: Duration) -> Duration {
    let early = (lifetime / 10)
        .max(Duration::from_secs(60))
        .min(lifetime / 2);
    lifetime - early
}

/// Everything but RFC 3986's unreserved characters is percent-encoded in a path segment.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `s` as one URL path segment (a tenant id or domain).
fn urlencode_path(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, PATH_SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AssertionAlgorithm;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use std::path::Path;

    /// A throwaway test certificate and key (see `tests/fixtures/graph/README.md`).
    const PEM: &[u8] = include_bytes!("../../tests/fixtures/graph/app-cert.pem");

    fn decode(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    fn cfg(authority: &str, graph: &str) -> GraphConfig {
        let text = format!(
            "[graph]\ntenant_id = \"contoso.onmicrosoft.us\"\nclient_id = \"app\"\nclient_secret = \"s\"\nauthority_url = \"{authority}\"\ngraph_url = \"{graph}\"\n\
             [ad]\nurl = \"ldaps://x\"\nbind_dn = \"CN=a\"\nbind_password = \"p\"\ntarget_ou = \"OU=x,DC=y\"\n[state]\npath = \"/tmp/x\"\n"
        );
        crate::config::Config::parse(&text, Path::new("t"), |_| None)
            .unwrap()
            .graph
    }

    #[test]
    fn national_cloud_token_url_scope_and_audience() {
        for (login, graph) in [
            (
                "https://login.microsoftonline.us",
                "https://graph.microsoft.us",
            ),
            (
                "https://login.microsoftonline.us/",
                "https://dod-graph.microsoft.us/",
            ),
            (
                "https://login.chinacloudapi.cn",
                "https://microsoftgraph.chinacloudapi.cn",
            ),
        ] {
            let ts = TokenSource::new(&cfg(login, graph)).unwrap();
            let login = login.trim_end_matches('/');
            assert_eq!(
                ts.token_url(),
                format!("{login}/contoso.onmicrosoft.us/oauth2/v2.0/token")
            );
            assert_eq!(
                ts.scope(),
                format!("{}/.default", graph.trim_end_matches('/'))
            );
            let c = CertificateCredential::from_pem(PEM, AssertionAlgorithm::RS256).unwrap();
            let jwt = c.assertion("app", ts.token_url(), 1_700_000_000).unwrap();
            let claims = decode(jwt.split('.').nth(1).unwrap());
            assert_eq!(
                claims["aud"],
                ts.token_url(),
                "aud is the national login host"
            );
        }
    }

    #[test]
    fn assertions_carry_both_thumbprints_and_verify() {
        for (alg, name, verify) in [
            (
                AssertionAlgorithm::RS256,
                "RS256",
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            ),
            (
                AssertionAlgorithm::PS256,
                "PS256",
                &ring::signature::RSA_PSS_2048_8192_SHA256,
            ),
        ] {
            let c = CertificateCredential::from_pem(PEM, alg).unwrap();
            let a = c
                .assertion("app", "https://login/t/oauth2/v2.0/token", 1000)
                .unwrap();
            let b = c
                .assertion("app", "https://login/t/oauth2/v2.0/token", 1000)
                .unwrap();
            let parts: Vec<&str> = a.split('.').collect();
            assert_eq!(parts.len(), 3);
            let header = decode(parts[0]);
            assert_eq!(header["alg"], name);
            assert_eq!(header["typ"], "JWT");
            assert_eq!(
                URL_SAFE_NO_PAD
                    .decode(header["x5t"].as_str().unwrap())
                    .unwrap()
                    .len(),
                20
            );
            assert_eq!(
                URL_SAFE_NO_PAD
                    .decode(header["x5t#S256"].as_str().unwrap())
                    .unwrap()
                    .len(),
                32
            );
            let claims = decode(parts[1]);
            assert_eq!(claims["iss"], "app");
            assert_eq!(claims["sub"], "app");
            assert_eq!(claims["aud"], "https://login/t/oauth2/v2.0/token");
            assert_eq!(
                (claims["nbf"].as_u64(), claims["iat"].as_u64()),
                (Some(1000), Some(1000))
            );
            assert_eq!(claims["exp"].as_u64(), Some(1600), "exp ≤ 10 minutes");
            assert_ne!(
                claims["jti"],
                decode(b.split('.').nth(1).unwrap())["jti"],
                "jti unique"
            );
            let public =
                ring::signature::UnparsedPublicKey::new(verify, c.key.public().as_ref().to_vec());
            let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
            public
                .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
                .expect("signature verifies with the certificate's public key");
        }
    }

    #[test]
    fn bad_certificate_files_are_named_clearly() {
        let no_key = b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
        let e = CertificateCredential::from_pem(no_key, AssertionAlgorithm::RS256).err();
        assert_eq!(
            e.map(|e| e.to_string()).as_deref(),
            Some("no PRIVATE KEY block")
        );
        let e = CertificateCredential::from_pem(b"", AssertionAlgorithm::RS256).err();
        assert_eq!(
            e.map(|e| e.to_string()).as_deref(),
            Some("no CERTIFICATE block")
        );
        let e = CertificateCredential::from_pem_file(
            Path::new("/nonexistent.pem"),
            AssertionAlgorithm::RS256,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("graph.client_certificate /nonexistent.pem"),
            "{e}"
        );
    }

    #[test]
    fn tokens_are_renewed_at_90_percent_a_minute_early_or_at_half_life() {
        let after = |secs: f64| renew_after(Duration::from_secs_f64(secs)).as_secs_f64();
        assert_eq!(after(3599.0), 3599.0 * 0.9, "an hour: 90 %");
        assert_eq!(after(86_400.0), 77_760.0, "a day: 90 %");
        assert_eq!(after(300.0), 240.0, "5 minutes: a minute early");
        assert_eq!(after(600.0), 540.0, "10 minutes: both rules agree");
        assert_eq!(after(100.0), 50.0, "under 2 minutes: half the lifetime");
        assert_eq!(after(4.0), 2.0);
        assert_eq!(after(0.0), 0.0, "no lifetime: renew at once");
    }

    #[test]
    fn hints_name_the_key_to_check() {
        assert!(
            auth_hint("invalid_request", "AADSTS90002: Tenant 'x' not found.")
                .contains("graph.tenant_id")
        );
        assert!(
            auth_hint("invalid_client", "AADSTS7000215: Invalid client secret")
                .contains("graph.client_secret")
        );
        assert!(
            auth_hint("invalid_client", "AADSTS700027: cert").contains("graph.client_certificate")
        );
        assert!(auth_hint("unauthorized_client", "AADSTS700016: app").contains("graph.client_id"));
        assert_eq!(auth_hint("weird", ""), "");
    }
}
