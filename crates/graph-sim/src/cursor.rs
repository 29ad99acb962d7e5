//! Cursor formats: skiptokens (a page of a stored round) and deltatokens (a tenant version plus
//! the `$select`, bound to one simulator process and stamped with the fault epoch).

use super::SimError;
use super::delta_rounds::Selection;
use super::tenant::{Kind, Tenant};

/// Skiptoken for page `page` of round `round`.
pub fn skiptoken(nonce: u32, round: u64, page: usize) -> String {
    format!("{nonce:08x}R{round}P{page}")
}

/// Parses a skiptoken of this instance into (round, page).
pub fn parse_skiptoken(nonce: u32, token: &str) -> Option<(u64, usize)> {
    let rest = token.strip_prefix(&format!("{nonce:08x}R"))?;
    let (r, p) = rest.split_once('P')?;
    Some((r.parse().ok()?, p.parse().ok()?))
}

/// What a deltatoken carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeltaToken {
    /// Simulator instance that issued it.
    pub nonce: u32,
    /// Collection it is for.
    pub kind: Kind,
    /// Tenant version the next round starts from.
    pub version: u64,
    /// Fault epoch at issue time (see `expire_delta_tokens`).
    pub epoch: u64,
    /// `$select` of the sync.
    pub sel: Selection,
}

impl DeltaToken {
    /// Encodes as `<nonce>.<g|u>.<version>.<epoch>.<hex($select) or ->`.
    pub fn encode(&self) -> String {
        let sel = match self.sel.joined() {
            Some(s) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            None => "-".to_string(),
        };
        let k = if self.kind == Kind::Group { 'g' } else { 'u' };
        format!(
            "{:08x}.{k}.{}.{}.{sel}",
            self.nonce, self.version, self.epoch
        )
    }

    /// Decodes a token; `None` if malformed.
    pub fn decode(s: &str) -> Option<DeltaToken> {
        let parts: Vec<&str> = s.split('.').collect();
        let [nonce, kind, version, epoch, sel] = parts[..] else {
            return None;
        };
        let kind = match kind {
            "g" => Kind::Group,
            "u" => Kind::User,
            _ => return None,
        };
        let sel = if sel == "-" {
            Selection(None)
        } else {
            if sel.len() % 2 != 0 || sel.is_empty() {
                return None;
            }
            let bytes: Option<Vec<u8>> = (0..sel.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(sel.get(i..i + 2)?, 16).ok())
                .collect();
            Selection::parse(Some(&String::from_utf8(bytes?).ok()?))
        };
        Some(DeltaToken {
            nonce: u32::from_str_radix(nonce, 16).ok()?,
            kind,
            version: version.parse().ok()?,
            epoch: epoch.parse().ok()?,
            sel,
        })
    }
}

/// Checks a decoded deltatoken against this instance and tenant.
pub fn check_token(
    tok: &DeltaToken,
    nonce: u32,
    kind: Kind,
    tenant: &Tenant,
) -> Result<(), SimError> {
    if tok.kind != kind || tok.version > tenant.version || tok.nonce != nonce {
        return Err(SimError::NotFound(
            "delta token not issued by this simulator for this collection".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let tok = DeltaToken {
            nonce: 7,
            kind: Kind::User,
            version: 42,
            epoch: 1,
            sel: Selection::parse(Some("displayName,mail")),
        };
        assert_eq!(DeltaToken::decode(&tok.encode()), Some(tok));
        for bad in [
            "",
            "abc",
            "00000007.x.1.0.-",
            "00000007.g.1.0.zz",
            "00000007.g.-1.0.-",
        ] {
            assert_eq!(DeltaToken::decode(bad), None, "{bad}");
        }
        assert_eq!(parse_skiptoken(9, &skiptoken(9, 3, 4)), Some((3, 4)));
        assert_eq!(parse_skiptoken(8, &skiptoken(9, 3, 4)), None);
    }
}
