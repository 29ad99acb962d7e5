//! The checks serde cannot make: values that must agree with other keys (a credential of some
//! kind, TLS on the LDAP URL, an OU for `soft_delete = "move"`), URLs and DNs that must parse,
//! and numeric ranges. Each check names the key it refuses; they run in a fixed order, and the
//! first failure is the one reported.

use super::{
    AdConfig, Config, ENV_AD_PASSWORD, ENV_GRAPH_SECRET, GraphConfig, HttpConfig, ScopeConfig,
    SoftDeleteAction, valid_cn_template,
};

/// A refused key and why.
type Refusal = (&'static str, String);

impl Config {
    /// Every cross-key check, in order; the first refusal wins.
    pub(super) fn validate(&self) -> Result<(), Refusal> {
        check_graph_credential(&self.graph)?;
        check_graph_urls(&self.graph)?;
        check_ad_url(&self.ad)?;
        check_status_token(&self.http)?;
        self.http.check_tls()?;
        if self.ad.bind_password.is_none() {
            return Err((
                "ad.bind_password",
                format!("missing: set it or env {ENV_AD_PASSWORD}"),
            ));
        }
        check_owned_ous(&self.ad)?;
        check_ad_shape(&self.ad)?;
        let rps = self.graph.max_requests_per_second;
        if !(rps.is_finite() && (0.1..=10_000.0).contains(&rps)) {
            return Err((
                "graph.max_requests_per_second",
                "must be between 0.1 and 10000".into(),
            ));
        }
        check_scope(&self.graph.scope)?;
        check_graph_limits(&self.graph)?;
        if self.graph.poll_interval.is_zero() {
            return Err(("graph.poll_interval", "must be more than zero".into()));
        }
        self.state.check()
    }
}

/// The limits against a hostile upstream are positive and not absurdly large.
fn check_graph_limits(graph: &GraphConfig) -> Result<(), Refusal> {
    let ranges: [(&'static str, u64, u64, u64); 4] = [
        (
            "graph.max_members_per_group",
            graph.max_members_per_group as u64,
            1,
            100_000_000,
        ),
        (
            "graph.max_page_items",
            graph.max_page_items as u64,
            1,
            10_000_000,
        ),
        (
            "graph.max_response_bytes",
            graph.max_response_bytes,
            4096,
            4 << 30,
        ),
        (
            "graph.max_pages_per_round",
            graph.max_pages_per_round as u64,
            1,
            100_000_000,
        ),
    ];
    for (key, value, min, max) in ranges {
        if !(min..=max).contains(&value) {
            return Err((
                key,
                format!("{value} is out of range: must be {min} to {max}"),
            ));
        }
    }
    Ok(())
}

/// A client secret or a certificate must be configured.
fn check_graph_credential(graph: &GraphConfig) -> Result<(), Refusal> {
    if graph.client_secret.is_none() && graph.client_certificate.is_none() {
        return Err((
            "graph.client_secret",
            format!("missing: set it, or graph.client_certificate, or env {ENV_GRAPH_SECRET}"),
        ));
    }
    Ok(())
}

/// The login and Graph endpoints are https://, or plain http:// to a loopback host only.
fn check_graph_urls(graph: &GraphConfig) -> Result<(), Refusal> {
    for (key, value) in [
        ("graph.authority_url", &graph.authority_url),
        ("graph.graph_url", &graph.graph_url),
    ] {
        match url::Url::parse(value) {
            Ok(u) if u.scheme() == "https" => {}
            Ok(u) if u.scheme() == "http" => {
                if !is_loopback_host(&u) {
                    return Err((
                        key,
                        format!(
                            "`{value}` is plain http:// to a host that is not loopback: tokens \
                             and client credentials would cross the network in clear; use \
                             https:// (http:// is accepted only for 127.0.0.0/8, ::1 and \
                             localhost, e.g. graph-sim)"
                        ),
                    ));
                }
            }
            _ => return Err((key, format!("`{value}` is not an http(s) URL"))),
        }
    }
    Ok(())
}

/// `ad.url` is ldap:// or ldaps:// with a host, and the bind is encrypted unless explicitly
/// allowed not to be.
fn check_ad_url(ad: &AdConfig) -> Result<(), Refusal> {
    match url::Url::parse(&ad.url) {
        Ok(u) if matches!(u.scheme(), "ldap" | "ldaps") && u.host_str().is_some() => {
            if ad.starttls && u.scheme() == "ldaps" {
                return Err((
                    "ad.starttls",
                    "StartTLS applies to ldap:// URLs only (ldaps:// is TLS already)".into(),
                ));
            }
            if u.scheme() == "ldap" && !ad.starttls && !ad.allow_insecure_ldap {
                return Err((
                    "ad.url",
                    "an ldap:// URL without StartTLS sends the bind password and every \
                     change in clear: use ldaps://, or set ad.starttls = true, or (lab only) \
                     ad.allow_insecure_ldap = true"
                        .into(),
                ));
            }
            Ok(())
        }
        _ => Err((
            "ad.url",
            format!("`{}` is not an ldap:// or ldaps:// URL", ad.url),
        )),
    }
}

/// A status token, when set, can travel in an `Authorization` header.
fn check_status_token(http: &HttpConfig) -> Result<(), Refusal> {
    if let Some(t) = &http.status_token
        && (t.expose().is_empty()
            || t.expose()
                .chars()
                .any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err((
            "http.status_token",
            "must be non-empty, without spaces or control characters (it is sent as \
             `Authorization: Bearer <token>`)"
                .into(),
        ));
    }
    Ok(())
}

/// Every OU the service owns is a DN, and none is the naming context itself.
fn check_owned_ous(ad: &AdConfig) -> Result<(), Refusal> {
    let mut ous = vec![("ad.target_ou", Some(&ad.target_ou))];
    ous.push(("ad.target_ou_m365", ad.target_ou_m365.as_ref()));
    ous.push(("ad.soft_delete_ou", ad.soft_delete_ou.as_ref()));
    ous.extend(
        ad.previous_ous
            .iter()
            .map(|ou| ("ad.previous_ous", Some(ou))),
    );
    ous.extend(ad.adopt_ous.iter().map(|ou| ("ad.adopt_ous", Some(ou))));
    for (key, ou) in ous {
        let Some(ou) = ou else { continue };
        match crate::model::dn::parse_dn(ou) {
            None => return Err((key, format!("`{ou}` is not a distinguished name"))),
            Some(rdns) if is_naming_context(&rdns) => {
                return Err((
                    key,
                    format!(
                        "`{ou}` is the naming context (the domain root) itself: the service \
                         owns what it writes below this DN, so name a dedicated OU, e.g. \
                         `OU=Cloud Groups,{ou}`"
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The soft-delete OU, the CN template and the batch and page sizes.
fn check_ad_shape(ad: &AdConfig) -> Result<(), Refusal> {
    if ad.soft_delete == SoftDeleteAction::Move && ad.soft_delete_ou.is_none() {
        return Err((
            "ad.soft_delete_ou",
            "required when ad.soft_delete = \"move\"".into(),
        ));
    }
    if !valid_cn_template(&ad.cn_template) {
        return Err((
            "ad.cn_template",
            "must contain {id} or {idSuffix} so names stay unique".into(),
        ));
    }
    if ad.member_batch_size == 0 || ad.member_batch_size > 5000 {
        return Err(("ad.member_batch_size", "must be between 1 and 5000".into()));
    }
    if !(1..=1000).contains(&ad.search_page_size) {
        return Err((
            "ad.search_page_size",
            "must be between 1 and 1000 (Windows' default MaxPageSize is 1000)".into(),
        ));
    }
    if !(1..=16).contains(&ad.connections) {
        return Err(("ad.connections", "must be between 1 and 16".into()));
    }
    Ok(())
}

/// `[graph.scope]`: at least one group type, no empty id, patterns that compile.
fn check_scope(scope: &ScopeConfig) -> Result<(), Refusal> {
    if scope.group_types.is_empty() {
        return Err((
            "graph.scope.group_types",
            "must name at least one of \"security\", \"microsoft365\"".into(),
        ));
    }
    if scope.group_ids.iter().any(|id| id.trim().is_empty()) {
        return Err(("graph.scope.group_ids", "contains an empty id".into()));
    }
    for (key, pattern) in [
        (
            "graph.scope.display_name_pattern",
            &scope.display_name_pattern,
        ),
        (
            "graph.scope.display_name_exclude",
            &scope.display_name_exclude,
        ),
    ] {
        if let Some(p) = pattern
            && let Err(e) = regex::Regex::new(p)
        {
            return Err((key, format!("not a valid regular expression: {e}")));
        }
    }
    Ok(())
}

/// Whether an http(s) URL's host is a loopback address: 127.0.0.0/8, `::1` (also as
/// `::ffff:127.x.y.z`) or the name `localhost`.
fn is_loopback_host(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        None => false,
    }
}

/// Whether a parsed DN is made only of `DC=` components (a naming context, e.g. the domain
/// root `DC=corp,DC=example,DC=com`); `domainComponent`'s OID form counts too.
fn is_naming_context(rdns: &[(String, String)]) -> bool {
    !rdns.is_empty()
        && rdns.iter().all(|(attr, _)| {
            attr.eq_ignore_ascii_case("dc")
                || attr.eq_ignore_ascii_case("domainComponent")
                || attr == "0.9.2342.19200300.100.1.25"
        })
}
