//! Why an LDAP operation failed: [`DirectoryError`], the LDAP result codes the service reasons
//! about ([`ResultCode`]) and unusable TLS material ([`TlsError`]).
//!
//! # Guarantees
//! - Every error says whether a retry may help ([`DirectoryError::is_transient`]) and carries a
//!   bounded class for metrics and dead letters ([`DirectoryError::class`]).
//! - No error carries a secret: bind passwords never reach a message.
//!
//! Imports nothing of the crate.

use std::fmt;
use std::path::PathBuf;

/// An LDAP result code (RFC 4511; AD uses them the same way). Displays as its number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResultCode(pub u32);

impl ResultCode {
    /// `success`.
    pub const SUCCESS: ResultCode = ResultCode(0);
    /// `protocolError` (also used for a malformed response control).
    pub const PROTOCOL_ERROR: ResultCode = ResultCode(2);
    /// `timeLimitExceeded`, server side.
    pub const TIME_LIMIT: ResultCode = ResultCode(3);
    /// `referral`.
    pub const REFERRAL: ResultCode = ResultCode(10);
    /// `adminLimitExceeded`.
    pub const ADMIN_LIMIT: ResultCode = ResultCode(11);
    /// `noSuchAttribute` (Windows, removing a value that is not there).
    pub const NO_SUCH_ATTRIBUTE: ResultCode = ResultCode(16);
    /// `attributeOrValueExists`.
    pub const VALUE_EXISTS: ResultCode = ResultCode(20);
    /// `noSuchObject`.
    pub const NO_SUCH_OBJECT: ResultCode = ResultCode(32);
    /// `invalidDNSyntax`.
    pub const INVALID_DN_SYNTAX: ResultCode = ResultCode(34);
    /// `invalidCredentials`.
    pub const INVALID_CREDENTIALS: ResultCode = ResultCode(49);
    /// `insufficientAccessRights`.
    pub const INSUFFICIENT_ACCESS: ResultCode = ResultCode(50);
    /// `busy`.
    pub const BUSY: ResultCode = ResultCode(51);
    /// `unavailable`.
    pub const UNAVAILABLE: ResultCode = ResultCode(52);
    /// `unwillingToPerform` (Samba: removing a non-member).
    pub const UNWILLING: ResultCode = ResultCode(53);
    /// `notAllowedOnNonLeaf`.
    pub const NOT_ALLOWED_ON_NON_LEAF: ResultCode = ResultCode(66);
    /// `notAllowedOnRDN`.
    pub const NOT_ALLOWED_ON_RDN: ResultCode = ResultCode(67);
    /// `entryAlreadyExists` (Windows also answers it for "already a member").
    pub const ALREADY_EXISTS: ResultCode = ResultCode(68);
    /// `other` (AD sometimes uses it for transient trouble).
    pub const OTHER: ResultCode = ResultCode(80);

    /// Whether an operation refused with this code may succeed if retried: the server was
    /// busy, unavailable, over a time or admin limit, or said `other`.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ResultCode::BUSY
                | ResultCode::UNAVAILABLE
                | ResultCode::OTHER
                | ResultCode::TIME_LIMIT
                | ResultCode::ADMIN_LIMIT
        )
    }
}

impl fmt::Display for ResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for ResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why the TLS material (`ad.ca_file`) cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read or is not PEM.
    #[error("cannot read ad.ca_file {}: {detail}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The file holds no certificate.
    #[error("ad.ca_file {} holds no certificate", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A certificate in it is not a usable trust anchor.
    #[error("ad.ca_file {}: {detail}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        detail: String,
    },
    /// The crypto provider refused the protocol versions.
    #[error("{0}")]
    Provider(String),
}

/// Why an LDAP operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// No connection could be made (refused, unreachable, TLS handshake, timeout).
    #[error("cannot connect to AD at {url}: {detail}")]
    Connect {
        /// Server URL (no credentials in it).
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The bind was refused.
    #[error("AD bind as {bind_dn} failed: result {rc}: {message}")]
    Bind {
        /// The account.
        bind_dn: String,
        /// LDAP result code.
        rc: ResultCode,
        /// Server text.
        message: String,
    },
    /// The TLS configuration is unusable (unreadable CA file, say).
    #[error("TLS configuration: {0}")]
    Tls(#[from] TlsError),
    /// An operation failed with a result code.
    #[error("LDAP {op} on `{dn}` failed: result {rc}: {message}")]
    Operation {
        /// Operation name.
        op: &'static str,
        /// Target DN or base.
        dn: String,
        /// LDAP result code.
        rc: ResultCode,
        /// Server text.
        message: String,
    },
    /// The connection broke during an operation, or it timed out.
    #[error("LDAP {op} on `{dn}` did not complete: {detail}")]
    Transport {
        /// Operation name.
        op: &'static str,
        /// Target DN or base.
        dn: String,
        /// What happened.
        detail: String,
    },
    /// The target OU does not exist (transient: an operator may be restoring it).
    #[error("target OU `{ou}` does not exist (or is not visible to the service account)")]
    TargetOuMissing {
        /// The OU.
        ou: String,
    },
    /// An object we would create or rename to is held by something we do not own, or our anchor
    /// is on more than one object.
    #[error("conflict ({kind}): {detail}")]
    Conflict {
        /// Bounded kind: `name`, `sam_account_name`, `anchor_mismatch`, `duplicate_anchor`.
        kind: &'static str,
        /// Human detail.
        detail: String,
    },
}

impl DirectoryError {
    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            DirectoryError::Connect { .. }
            | DirectoryError::Transport { .. }
            | DirectoryError::TargetOuMissing { .. } => true,
            DirectoryError::Operation { rc, .. } => rc.is_transient(),
            DirectoryError::Bind { rc, .. } => *rc != ResultCode::INVALID_CREDENTIALS,
            DirectoryError::Tls(_) | DirectoryError::Conflict { .. } => false,
        }
    }

    /// Whether it concerns every object rather than the one being written: AD unreachable,
    /// the bind refused, TLS unusable, the target OU gone.
    pub fn is_systemic(&self) -> bool {
        matches!(
            self,
            DirectoryError::Connect { .. }
                | DirectoryError::Bind { .. }
                | DirectoryError::Tls(_)
                | DirectoryError::TargetOuMissing { .. }
        )
    }

    /// Bounded label for metrics and dead letters.
    pub fn class(&self) -> &'static str {
        match self {
            DirectoryError::Connect { .. } => "connect",
            DirectoryError::Bind { .. } => "bind",
            DirectoryError::Tls(_) => "tls",
            DirectoryError::Operation { .. } => "ldap_result",
            DirectoryError::Transport { .. } => "transport",
            DirectoryError::Conflict { .. } => "conflict",
            DirectoryError::TargetOuMissing { .. } => "target_ou_missing",
        }
    }

    /// The LDAP result code, if the server gave one.
    pub fn result_code(&self) -> Option<ResultCode> {
        match self {
            DirectoryError::Operation { rc, .. } => Some(*rc),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_codes_display_as_numbers_and_classify() {
        let e = DirectoryError::Operation {
            op: "modify",
            dn: "CN=x".into(),
            rc: ResultCode::BUSY,
            message: "busy".into(),
        };
        assert_eq!(
            e.to_string(),
            "LDAP modify on `CN=x` failed: result 51: busy"
        );
        assert!(e.is_transient());
        assert!(!e.is_systemic());
        assert_eq!(format!("{:?}", ResultCode::NO_SUCH_OBJECT), "32");
        for transient in [3, 11, 51, 52, 80] {
            assert!(ResultCode(transient).is_transient(), "{transient}");
        }
        for permanent in [0, 2, 16, 20, 32, 49, 50, 53, 68] {
            assert!(!ResultCode(permanent).is_transient(), "{permanent}");
        }
        let bind = |rc| DirectoryError::Bind {
            bind_dn: "CN=svc".into(),
            rc,
            message: String::new(),
        };
        assert!(!bind(ResultCode::INVALID_CREDENTIALS).is_transient());
        assert!(bind(ResultCode::BUSY).is_transient());
        assert!(bind(ResultCode::BUSY).is_systemic());
    }

    #[test]
    fn tls_errors_keep_their_texts() {
        let e = DirectoryError::from(TlsError::Empty {
            path: "/etc/ca.pem".into(),
        });
        assert_eq!(
            e.to_string(),
            "TLS configuration: ad.ca_file /etc/ca.pem holds no certificate"
        );
        let e = TlsError::Unreadable {
            path: "/x".into(),
            detail: "nope".into(),
        };
        assert_eq!(e.to_string(), "cannot read ad.ca_file /x: nope");
    }
}
