//! Fault injection armed through `POST /admin/faults`, so clients' retry, resync and parsing
//! paths can be exercised deterministically.
//!
//! Body (every field optional; fields not given leave that fault as it is):
//! ```json
//! {"throttle": {"count": 3, "status": 429, "retry_after": "1.5", "path": "/v1.0/directory/"},
//!  "expire_delta_tokens": {"status": 410, "code": "syncStateNotFound"},
//!  "malformed_pages": 3,
//!  "duplicate_changes": true,
//!  "reorder_changes": true,
//!  "token_errors": 2,
//!  "delay": {"ms": 500, "path": "/v1.0/groups/delta"},
//!  "revoke_tokens": true,
//!  "endless_next_links": "groups"}
//! ```
//! - `throttle`: the next `count` `/v1.0/*` requests fail with `status` (429, 503 or 504, default
//!   429) and, when `retry_after` (string or number) is given, a `Retry-After` header. With
//!   `path`, only requests whose path starts with it are throttled (and counted), e.g.
//!   `/v1.0/directory/deletedItems/` or `/v1.0/groups/delta`; others pass.
//! - `expire_delta_tokens`: every deltaLink issued before this call is rejected from now on:
//!   410 (default) with `Location` = the initial URL with an empty `$deltatoken=`, or 400; both
//!   with error `code` (default `syncStateNotFound`).
//! - `malformed_pages`: the next N delta pages return 200 with, in turn, invalid JSON, a `value`
//!   that is not an array, and a page with neither nextLink nor deltaLink. Re-GETting the same
//!   link afterwards returns the real page.
//! - `duplicate_changes`: rounds started while set list every item twice, the copies starting
//!   on a later page.
//! - `reorder_changes`: rounds started while set list their items (and each item's
//!   `members@delta`) in reverse order, so large-group slices and unrelated objects arrive in
//!   another order than usual (Graph promises no ordering).
//! - `token_errors`: the next N token requests fail with 500.
//! - `delay`: every `/v1.0/*` request (only those whose path starts with `path`, if given) is
//!   answered `ms` milliseconds late, until disarmed (`"ms": 0` disarms it): a slow Graph.
//! - `revoke_tokens`: every access token issued so far is refused from now on, although
//!   unexpired, with 401 `InvalidAuthenticationToken` and `WWW-Authenticate: Bearer
//!   error="invalid_token"` (as Graph does once Entra ID revokes a token); tokens issued later
//!   work. Applied once when armed (not a standing fault, so `DELETE` does not undo it).
//!
//! - `endless_next_links`: delta rounds (of every stream with `true`, of one with `"groups"` or
//!   `"users"`; `false` disarms) never reach their deltaLink: where the last page would carry
//!   it, it carries a nextLink instead, and so does every page after it, each nextLink distinct
//!   (a fresh `$endless=N` counter) with an empty `value`: a broken or hostile Graph whose
//!   chain goes on forever. Once disarmed, the next such page ends the round normally.
//!
//! `DELETE /admin/faults` disarms everything (expired deltaLinks become valid again).

use serde::Deserialize;
use serde_json::{Value, json};

use super::SimError;

/// Armed throttling.
#[derive(Clone, Debug, PartialEq)]
pub struct Throttle {
    /// Requests still to be throttled.
    pub remaining: u32,
    /// 429, 503 or 504.
    pub status: u16,
    /// `Retry-After` header value, if any.
    pub retry_after: Option<String>,
    /// Only paths starting with this are throttled; `None` = every `/v1.0/*` path.
    pub path: Option<String>,
}

/// Rejection of deltaLinks issued before an epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct Expiry {
    /// Tokens with an epoch below this are rejected.
    pub min_epoch: u64,
    /// 410 or 400.
    pub status: u16,
    /// Error code in the body.
    pub code: String,
}

/// The armed faults of one simulator.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// See the module docs.
    pub throttle: Option<Throttle>,
    /// See the module docs.
    pub expiry: Option<Expiry>,
    /// Epoch stamped into newly issued deltaLinks; bumped by each `expire_delta_tokens`.
    pub epoch: u64,
    /// Malformed delta pages still to serve.
    pub malformed_remaining: u32,
    /// Which malformation comes next (rotates 0, 1, 2).
    pub malformed_next: u32,
    /// Emit every item of new rounds twice.
    pub duplicate_changes: bool,
    /// Emit the items (and members) of new rounds in reverse order.
    pub reorder_changes: bool,
    /// Token requests still to fail with 500.
    pub token_errors: u32,
    /// Latency added to matching requests: (milliseconds, path prefix).
    pub delay: Option<(u64, Option<String>)>,
    /// Endless nextLink chains: `Some(None)` for every delta stream, `Some(Some(collection))`
    /// for one (`groups` / `users`).
    pub endless: Option<Option<String>>,
    /// The counter that makes each endless nextLink distinct.
    pub endless_counter: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThrottleSpec {
    count: u32,
    #[serde(default = "default_throttle_status")]
    status: u16,
    #[serde(default)]
    retry_after: Option<Value>,
    #[serde(default)]
    path: Option<String>,
}

fn default_throttle_status() -> u16 {
    429
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DelaySpec {
    ms: u64,
    #[serde(default)]
    path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpireSpec {
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    code: Option<String>,
}

/// The body of `POST /admin/faults`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    #[serde(default)]
    throttle: Option<ThrottleSpec>,
    #[serde(default)]
    expire_delta_tokens: Option<ExpireSpec>,
    #[serde(default)]
    malformed_pages: Option<u32>,
    #[serde(default)]
    duplicate_changes: Option<bool>,
    #[serde(default)]
    reorder_changes: Option<bool>,
    #[serde(default)]
    token_errors: Option<u32>,
    #[serde(default)]
    delay: Option<DelaySpec>,
    #[serde(default)]
    revoke_tokens: Option<bool>,
    #[serde(default)]
    endless_next_links: Option<Value>,
}

impl FaultSpec {
    /// Whether the spec asks to revoke the access tokens issued so far (the caller holds
    /// them: [`super::token_endpoint::AccessTokens::revoke_all`]).
    pub fn revoke_tokens(&self) -> bool {
        self.revoke_tokens == Some(true)
    }
}

/// A malformed 200 delta body the client must reject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// The body is not valid JSON.
    InvalidJson,
    /// `value` is not an array.
    ValueNotArray,
    /// Neither `@odata.nextLink` nor `@odata.deltaLink`.
    NoLink,
}

impl Faults {
    /// Arms the faults in `spec` (validated first: nothing is armed on error).
    pub fn arm(&mut self, spec: FaultSpec) -> Result<(), SimError> {
        let bad = |m: String| Err(SimError::BadRequest(m));
        if let Some(t) = &spec.throttle
            && ![429, 503, 504].contains(&t.status)
        {
            return bad(format!(
                "throttle status {} is not 429, 503 or 504",
                t.status
            ));
        }
        let retry_after = match spec.throttle.as_ref().and_then(|t| t.retry_after.as_ref()) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(other) => return bad(format!("retry_after {other} is not a string or number")),
        };
        if let Some(e) = &spec.expire_delta_tokens
            && !matches!(e.status, None | Some(400) | Some(410))
        {
            return bad("expire_delta_tokens status must be 410 or 400".into());
        }
        let endless = match &spec.endless_next_links {
            None => None,
            Some(Value::Bool(true)) => Some(Some(None)),
            Some(Value::Bool(false)) => Some(None),
            Some(Value::String(c)) if c == "groups" || c == "users" => Some(Some(Some(c.clone()))),
            Some(other) => {
                return bad(format!(
                    "endless_next_links {other} is not true, false, \"groups\" or \"users\""
                ));
            }
        };
        if let Some(e) = endless {
            self.endless = e;
        }
        if let Some(t) = spec.throttle {
            self.throttle = Some(Throttle {
                remaining: t.count,
                status: t.status,
                retry_after,
                path: t.path,
            });
        }
        if let Some(e) = spec.expire_delta_tokens {
            self.epoch += 1;
            self.expiry = Some(Expiry {
                min_epoch: self.epoch,
                status: e.status.unwrap_or(410),
                code: e.code.unwrap_or_else(|| "syncStateNotFound".into()),
            });
        }
        if let Some(n) = spec.malformed_pages {
            self.malformed_remaining = n;
        }
        if let Some(d) = spec.duplicate_changes {
            self.duplicate_changes = d;
        }
        if let Some(r) = spec.reorder_changes {
            self.reorder_changes = r;
        }
        if let Some(n) = spec.token_errors {
            self.token_errors = n;
        }
        if let Some(d) = spec.delay {
            self.delay = (d.ms > 0).then_some((d.ms, d.path));
        }
        Ok(())
    }

    /// Disarms everything; the epoch keeps counting so tokens stay distinguishable.
    pub fn clear(&mut self) {
        *self = Faults {
            epoch: self.epoch,
            ..Faults::default()
        };
    }

    /// Consumes one throttled request for `path`, if armed (and the path matches): (status,
    /// Retry-After).
    pub fn take_throttle(&mut self, path: &str) -> Option<(u16, Option<String>)> {
        let t = self.throttle.as_mut()?;
        if t.path
            .as_ref()
            .is_some_and(|p| !path.starts_with(p.as_str()))
        {
            return None;
        }
        t.remaining = t.remaining.checked_sub(1)?;
        let out = (t.status, t.retry_after.clone());
        if t.remaining == 0 {
            self.throttle = None;
        }
        Some(out)
    }

    /// The latency to add to a request for `path`, if armed and matching.
    pub fn delay_for(&self, path: &str) -> Option<std::time::Duration> {
        let (ms, prefix) = self.delay.as_ref()?;
        if prefix
            .as_ref()
            .is_some_and(|p| !path.starts_with(p.as_str()))
        {
            return None;
        }
        Some(std::time::Duration::from_millis(*ms))
    }

    /// Consumes one malformed page, if armed.
    pub fn take_malformed(&mut self) -> Option<Malformed> {
        self.malformed_remaining = self.malformed_remaining.checked_sub(1)?;
        let kind = match self.malformed_next % 3 {
            0 => Malformed::InvalidJson,
            1 => Malformed::ValueNotArray,
            _ => Malformed::NoLink,
        };
        self.malformed_next += 1;
        Some(kind)
    }

    /// The next endless nextLink counter, if endless chains are armed for `collection`.
    pub fn take_endless(&mut self, collection: &str) -> Option<u64> {
        match &self.endless {
            Some(None) => {}
            Some(Some(c)) if c == collection => {}
            _ => return None,
        }
        self.endless_counter += 1;
        Some(self.endless_counter)
    }

    /// Consumes one token-endpoint failure, if armed.
    pub fn take_token_error(&mut self) -> bool {
        match self.token_errors.checked_sub(1) {
            Some(n) => {
                self.token_errors = n;
                true
            }
            None => false,
        }
    }

    /// The rejection for a deltaLink issued at `epoch`, if it is expired.
    pub fn expired(&self, epoch: u64) -> Option<&Expiry> {
        self.expiry.as_ref().filter(|e| epoch < e.min_epoch)
    }

    /// Current state, for `GET /admin/faults`.
    pub fn to_json(&self) -> Value {
        json!({
            "throttle": self.throttle.as_ref().map(|t| json!({
                "remaining": t.remaining, "status": t.status, "retry_after": t.retry_after,
                "path": t.path})),
            "expire_delta_tokens": self.expiry.as_ref().map(|e| json!({
                "status": e.status, "code": e.code, "min_epoch": e.min_epoch})),
            "epoch": self.epoch,
            "malformed_pages": self.malformed_remaining,
            "duplicate_changes": self.duplicate_changes,
            "reorder_changes": self.reorder_changes,
            "token_errors": self.token_errors,
            "delay": self.delay.as_ref().map(|(ms, path)| json!({"ms": ms, "path": path})),
            "endless_next_links": match &self.endless {
                None => json!(false),
                Some(None) => json!(true),
                Some(Some(c)) => json!(c),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: Value) -> FaultSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn throttle_counts_down_and_validates() {
        let mut f = Faults::default();
        f.arm(spec(json!({"throttle": {"count": 2, "retry_after": 1.5}})))
            .unwrap();
        assert_eq!(f.take_throttle("/v1.0/x"), Some((429, Some("1.5".into()))));
        assert_eq!(f.take_throttle("/v1.0/x"), Some((429, Some("1.5".into()))));
        assert_eq!(f.take_throttle("/v1.0/x"), None);
        f.arm(spec(
            json!({"throttle": {"count": 1, "status": 503, "path": "/v1.0/directory/"}}),
        ))
        .unwrap();
        assert_eq!(f.take_throttle("/v1.0/groups/g1"), None, "other paths pass");
        assert_eq!(
            f.take_throttle("/v1.0/directory/deletedItems/g1"),
            Some((503, None))
        );
        assert_eq!(f.take_throttle("/v1.0/directory/deletedItems/g1"), None);
        assert!(
            f.arm(spec(json!({"throttle": {"count": 1, "status": 500}})))
                .is_err()
        );
        assert!(serde_json::from_value::<FaultSpec>(json!({"nope": 1})).is_err());
    }

    #[test]
    fn malformed_rotates_and_expiry_uses_epochs() {
        let mut f = Faults::default();
        f.arm(spec(json!({"malformed_pages": 4}))).unwrap();
        let kinds: Vec<_> = std::iter::from_fn(|| f.take_malformed()).collect();
        assert_eq!(
            kinds,
            [
                Malformed::InvalidJson,
                Malformed::ValueNotArray,
                Malformed::NoLink,
                Malformed::InvalidJson
            ]
        );
        f.arm(spec(json!({"expire_delta_tokens": {}}))).unwrap();
        assert_eq!(f.expired(0).map(|e| e.status), Some(410));
        assert!(f.expired(f.epoch).is_none());
        f.clear();
        assert!(f.expired(0).is_none());
        assert_eq!(f.epoch, 1);
    }

    #[test]
    fn delay_matches_its_path_until_disarmed() {
        let mut f = Faults::default();
        assert_eq!(f.delay_for("/v1.0/groups/delta"), None);
        f.arm(spec(
            json!({"delay": {"ms": 250, "path": "/v1.0/groups/delta"}}),
        ))
        .unwrap();
        let d = Some(std::time::Duration::from_millis(250));
        assert_eq!(f.delay_for("/v1.0/groups/delta"), d);
        assert_eq!(f.delay_for("/v1.0/groups/delta"), d, "not consumed");
        assert_eq!(f.delay_for("/v1.0/users/delta"), None);
        f.arm(spec(json!({"delay": {"ms": 0}}))).unwrap();
        assert_eq!(f.delay_for("/v1.0/groups/delta"), None);
    }

    #[test]
    fn endless_next_links_count_per_stream_until_disarmed() {
        let mut f = Faults::default();
        assert_eq!(f.take_endless("groups"), None);
        f.arm(spec(json!({"endless_next_links": "groups"})))
            .unwrap();
        assert_eq!(f.take_endless("users"), None);
        assert_eq!(f.take_endless("groups"), Some(1));
        assert_eq!(f.take_endless("groups"), Some(2));
        f.arm(spec(json!({"endless_next_links": true}))).unwrap();
        assert_eq!(f.take_endless("users"), Some(3));
        assert_eq!(f.to_json()["endless_next_links"], json!(true));
        f.arm(spec(json!({"endless_next_links": false}))).unwrap();
        assert_eq!(f.take_endless("groups"), None);
        assert!(
            f.arm(spec(json!({"endless_next_links": "devices"})))
                .is_err()
        );
    }
}
