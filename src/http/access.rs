//! Who may read the status page (`/`, `/status.json`), which names groups and DNs.
//!
//! Pure: the rule is decided once at start-up from `[http]` ([`StatusAccess::from_config`]) and
//! applied per request ([`StatusAccess::check`]). `/metrics`, `/healthz` and `/readyz` are not
//! covered: they stay open, as Prometheus and probes expect, and name no group.
//! Imports only `config`.

use std::net::SocketAddr;

use crate::config::Secret;

/// The access rule for the status page.
#[derive(Debug, Clone)]
pub enum StatusAccess {
    /// Loopback listener, no token configured: served to anyone who can reach it.
    Open,
    /// A token is configured: served only with `Authorization: Bearer <token>`.
    Token(Secret),
    /// Non-loopback listener without a token: not served at all.
    Off,
}

/// Why a status request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No or wrong bearer token (401).
    Unauthorized,
    /// The page is switched off on this listener (404).
    Off,
}

impl StatusAccess {
    /// The rule for a listener on `listen` with an optional `[http] status_token`.
    pub fn from_config(listen: SocketAddr, token: Option<&Secret>) -> StatusAccess {
        match token {
            Some(t) => StatusAccess::Token(t.clone()),
            None if listen.ip().is_loopback() => StatusAccess::Open,
            None => StatusAccess::Off,
        }
    }

    /// Whether a request with this `Authorization` header value may read the page.
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<(), Refusal> {
        match self {
            StatusAccess::Open => Ok(()),
            StatusAccess::Off => Err(Refusal::Off),
            StatusAccess::Token(want) => {
                let given = authorization.and_then(bearer).unwrap_or_default();
                if constant_time_eq(given, want.expose().as_bytes()) {
                    Ok(())
                } else {
                    Err(Refusal::Unauthorized)
                }
            }
        }
    }

    /// One line for the start-up log (never the token).
    pub fn describe(&self) -> &'static str {
        match self {
            StatusAccess::Open => "open (loopback listener)",
            StatusAccess::Token(_) => "bearer token required (http.status_token)",
            StatusAccess::Off => {
                "not served: the listener is not loopback and http.status_token is not set"
            }
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
}

/// Byte equality whose time does not depend on where the inputs first differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_without_a_token_is_open_and_elsewhere_off() {
        let open = StatusAccess::from_config(addr("127.0.0.1:9464"), None);
        assert_eq!(open.check(None), Ok(()));
        let v6 = StatusAccess::from_config(addr("[::1]:9464"), None);
        assert_eq!(v6.check(None), Ok(()));
        for listen in ["0.0.0.0:9464", "10.1.2.3:9464", "[::]:9464"] {
            let off = StatusAccess::from_config(addr(listen), None);
            assert_eq!(off.check(None), Err(Refusal::Off), "{listen}");
            assert_eq!(off.check(Some(b"Bearer x")), Err(Refusal::Off), "{listen}");
        }
    }

    #[test]
    fn a_token_is_required_wherever_one_is_set() {
        let token = Secret::new("s3cret-token");
        for listen in ["127.0.0.1:9464", "0.0.0.0:9464"] {
            let a = StatusAccess::from_config(addr(listen), Some(&token));
            assert_eq!(a.check(Some(b"Bearer s3cret-token")), Ok(()));
            assert_eq!(a.check(Some(b"bearer  s3cret-token ")), Ok(()));
            for wrong in [
                &b""[..],
                b"Bearer",
                b"Bearer ",
                b"Bearer s3cret-toke",
                b"Bearer s3cret-tokenX",
                b"Basic s3cret-token",
                b"s3cret-token",
            ] {
                assert_eq!(
                    a.check(Some(wrong)),
                    Err(Refusal::Unauthorized),
                    "{wrong:?}"
                );
            }
            assert_eq!(a.check(None), Err(Refusal::Unauthorized));
        }
    }

    #[test]
    fn the_description_never_shows_the_token() {
        let a = StatusAccess::from_config(addr("0.0.0.0:1"), Some(&Secret::new("abc123")));
        assert!(!a.describe().contains("abc123"));
        assert!(!format!("{a:?}").contains("abc123"));
    }
}
