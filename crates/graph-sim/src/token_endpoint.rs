//! The Entra ID token endpoint (client-credentials grant) and access-token checks.
//!
//! Client secrets are accepted as form fields or HTTP Basic. JWT client assertions are checked
//! for shape, thumbprint (`x5t` against `certificate_thumbprint_sha1`, `x5t#S256` against
//! `certificate_thumbprint_sha256`), `iss` = `sub` = client id, `aud` = the token URL, a `jti`,
//! an unexpired `exp` and a lifetime of at most 10 minutes. When the client's tenant entry
//! carries its `certificate_pem`, the signature is verified too (RS256 or PS256); otherwise
//! it is not (the simulator holds only thumbprints).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::tenant::{Client, Tenant};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Issued access tokens: serial number, expiry on the simulator clock, revocation.
#[derive(Debug, Default)]
pub struct AccessTokens {
    map: HashMap<String, Issued>,
    issued: u64,
}

/// One issued access token.
#[derive(Debug)]
struct Issued {
    /// 1-based issue order (what the request log shows, never the token itself).
    serial: u64,
    /// Expiry on the simulator clock.
    expires: Instant,
    /// Refused although unexpired (see [`AccessTokens::revoke_all`]).
    revoked: bool,
}

/// Why a bearer token was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenRefusal {
    /// No `Authorization: Bearer` header.
    Missing,
    /// Not a token this simulator issued.
    Unknown,
    /// Issued but past its lifetime.
    Expired,
    /// Unexpired but revoked (as Entra ID does when an app's credentials or sessions are
    /// revoked, or under continuous access evaluation): Graph answers 401.
    Revoked,
}

impl AccessTokens {
    /// Issues a new token valid for `lifetime` from `now` (JWT-shaped, unsigned); its serial is
    /// [`AccessTokens::serial`].
    pub fn issue(
        &mut self,
        now: Instant,
        lifetime: Duration,
        tenant: &str,
        client: &str,
    ) -> String {
        self.map.retain(|_, t| t.expires > now);
        self.issued += 1;
        let unix = unix_now(now);
        let header = b64url_encode(br#"{"typ":"JWT","alg":"none"}"#);
        let claims = json!({"aud": "https://graph.microsoft.com", "iss": format!("graph-sim/{tenant}"),
            "appid": client, "tid": tenant, "iat": unix, "exp": unix + lifetime.as_secs(),
            "jti": format!("{:016x}{:08x}", super::random_u64(), self.issued)});
        let token = format!(
            "{header}.{}.sim",
            b64url_encode(claims.to_string().as_bytes())
        );
        self.map.insert(
            token.clone(),
            Issued {
                serial: self.issued,
                expires: now + lifetime,
                revoked: false,
            },
        );
        token
    }

    /// The serial of the most recently issued token (0 before the first).
    pub fn serial(&self) -> u64 {
        self.issued
    }

    /// Revokes every token issued so far: each is refused from now on, expired or not.
    pub fn revoke_all(&mut self) {
        for t in self.map.values_mut() {
            t.revoked = true;
        }
    }

    /// Checks an `Authorization` header value: the serial of the token presented, if this
    /// simulator issued it (refused or not), and why it is refused, if it is.
    pub fn check(
        &self,
        authorization: Option<&str>,
        now: Instant,
    ) -> (Option<u64>, Result<(), TokenRefusal>) {
        let Some(token) = authorization
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty())
        else {
            return (None, Err(TokenRefusal::Missing));
        };
        match self.map.get(token) {
            None => (None, Err(TokenRefusal::Unknown)),
            Some(t) if t.expires <= now => (Some(t.serial), Err(TokenRefusal::Expired)),
            Some(t) if t.revoked => (Some(t.serial), Err(TokenRefusal::Revoked)),
            Some(t) => (Some(t.serial), Ok(())),
        }
    }
}

/// The simulator clock as Unix seconds.
pub fn unix_now(now: Instant) -> u64 {
    let ahead = now.saturating_duration_since(Instant::now());
    (SystemTime::now() + ahead)
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An OAuth error response: (status, body).
#[derive(Debug)]
pub struct OAuthError {
    /// HTTP status.
    pub status: u16,
    /// `{"error", "error_description", "error_codes"}`.
    pub body: Value,
}

fn oauth_err(status: u16, error: &str, code: u32, text: &str) -> OAuthError {
    OAuthError {
        status,
        body: json!({"error": error, "error_description": format!("AADSTS{code}: {text}"),
                     "error_codes": [code], "trace_id": "00000000-0000-0000-0000-000000000000"}),
    }
}

/// What the token handler needs besides the tenant.
pub struct TokenRequest<'a> {
    /// Tenant segment of the URL.
    pub tenant_in_path: &'a str,
    /// Decoded form fields.
    pub form: &'a HashMap<String, String>,
    /// (client_id, client_secret) from HTTP Basic, if sent.
    pub basic: Option<(String, String)>,
    /// Absolute token URL (`aud` of client assertions).
    pub token_url: &'a str,
    /// Simulator clock.
    pub now: Instant,
}

/// Validates a token request; on success returns the client id to issue a token to.
pub fn authenticate(tenant: &Tenant, req: &TokenRequest<'_>) -> Result<String, OAuthError> {
    if !req.tenant_in_path.eq_ignore_ascii_case(&tenant.tenant_id) {
        let text = format!(
            "Tenant '{}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.",
            req.tenant_in_path
        );
        return Err(oauth_err(400, "invalid_request", 90002, &text));
    }
    let field = |k: &str| req.form.get(k).map(String::as_str);
    match field("grant_type") {
        Some("client_credentials") => {}
        None => {
            return Err(oauth_err(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            ));
        }
        Some(g) => {
            return Err(oauth_err(
                400,
                "unsupported_grant_type",
                70003,
                &format!("The app requested an unsupported grant type '{g}'."),
            ));
        }
    }
    let scope = field("scope").unwrap_or("");
    if !scope.ends_with("/.default") || scope.contains(' ') {
        return Err(oauth_err(
            400,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope '{scope}' is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    }
    let client_id = field("client_id")
        .map(str::to_string)
        .or_else(|| req.basic.as_ref().map(|b| b.0.clone()));
    let bad_secret = || {
        oauth_err(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
        )
    };
    let client: &Client = match client_id.as_deref() {
        None => return Err(bad_secret()),
        Some(id) => tenant
            .clients
            .iter()
            .find(|c| c.client_id.eq_ignore_ascii_case(id))
            .ok_or_else(|| {
                oauth_err(
                    400,
                    "unauthorized_client",
                    700016,
                    &format!(
                        "Application with identifier '{id}' was not found in the directory '{}'.",
                        tenant.tenant_id
                    ),
                )
            })?,
    };
    if let Some(assertion) = field("client_assertion") {
        if field("client_assertion_type") != Some(ASSERTION_TYPE) {
            return Err(oauth_err(
                400,
                "invalid_request",
                50027,
                "Invalid client_assertion_type.",
            ));
        }
        check_assertion(client, assertion, req)?;
        return Ok(client.client_id.clone());
    }
    let secret = field("client_secret")
        .map(str::to_string)
        .or_else(|| req.basic.as_ref().map(|b| b.1.clone()));
    match (&client.client_secret, secret) {
        (Some(want), Some(got)) if *want == got => Ok(client.client_id.clone()),
        (_, None) => Err(oauth_err(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )),
        _ => Err(bad_secret()),
    }
}

fn check_assertion(client: &Client, jwt: &str, req: &TokenRequest<'_>) -> Result<(), OAuthError> {
    let malformed = || {
        oauth_err(
            400,
            "invalid_request",
            50027,
            "JWT token is invalid or malformed.",
        )
    };
    let mut parts = jwt.split('.');
    let (Some(h), Some(c), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let decode = |s: &str| -> Option<Value> { serde_json::from_slice(&b64_decode(s)?).ok() };
    let (header, claims) = decode(h).zip(decode(c)).ok_or_else(malformed)?;
    let norm = |s: &str| s.trim_end_matches('=').replace('+', "-").replace('/', "_");
    let matches = |claim: &str, want: &Option<String>| match (
        header.get(claim).and_then(Value::as_str),
        want,
    ) {
        (Some(got), Some(want)) => norm(got) == norm(want),
        _ => false,
    };
    if !matches("x5t", &client.certificate_thumbprint_sha1)
        && !matches("x5t#S256", &client.certificate_thumbprint_sha256)
    {
        return Err(oauth_err(
            401,
            "invalid_client",
            700027,
            "The certificate with identifier used to sign the client assertion is not registered on application.",
        ));
    }
    let claim = |k: &str| claims.get(k).and_then(Value::as_str);
    if claim("iss") != Some(&client.client_id) || claim("sub") != Some(&client.client_id) {
        return Err(oauth_err(
            401,
            "invalid_client",
            700023,
            "Client assertion contains an invalid issuer or subject; both must be the client id.",
        ));
    }
    let url = req.token_url.trim_end_matches('/');
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a.trim_end_matches('/').eq_ignore_ascii_case(url),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(url)),
        _ => false,
    };
    if !aud_ok {
        return Err(oauth_err(
            401,
            "invalid_client",
            700212,
            &format!(
                "No matching federated identity record found for presented assertion audience; expected '{url}'."
            ),
        ));
    }
    let now = unix_now(req.now) as f64;
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .ok_or_else(malformed)?;
    let nbf = claims.get("nbf").and_then(Value::as_f64).unwrap_or(0.0);
    if exp <= now || nbf > now + 300.0 || exp - nbf.max(now - 300.0) > 600.0 + 300.0 {
        return Err(oauth_err(
            401,
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        ));
    }
    if claim("jti").is_none_or(str::is_empty) {
        return Err(oauth_err(
            400,
            "invalid_request",
            50027,
            "JWT token is invalid or malformed: no jti.",
        ));
    }
    if let Some(der) = client.certificate_der().map_err(|_| malformed())? {
        let alg: &dyn rustls_pki_types::SignatureVerificationAlgorithm =
            match header.get("alg").and_then(Value::as_str) {
                Some("RS256") => webpki::ring::RSA_PKCS1_2048_8192_SHA256,
                Some("PS256") => webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
                _ => {
                    return Err(oauth_err(
                        400,
                        "invalid_request",
                        5002738,
                        "The client assertion uses an unsupported signing algorithm.",
                    ));
                }
            };
        let cert = rustls_pki_types::CertificateDer::from(der);
        let verified = webpki::EndEntityCert::try_from(&cert).is_ok_and(|ee| {
            b64_decode(sig).is_some_and(|s| {
                ee.verify_signature(alg, format!("{h}.{c}").as_bytes(), &s)
                    .is_ok()
            })
        });
        if !verified {
            return Err(oauth_err(
                401,
                "invalid_client",
                700027,
                "Client assertion failed signature validation.",
            ));
        }
    }
    Ok(())
}

/// Encodes base64url without padding.
pub fn b64url_encode(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Decodes base64 or base64url, padded or not.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (bits < 6).then_some(out)
}

#[cfg(test)]
mod tests;
