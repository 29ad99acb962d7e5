//! Unit tests of the configuration: parsing, defaults, the keys named in errors, secrets from
//! the environment and the cross-key validation.

use super::*;

const GOOD: &str = r#"
[graph]
tenant_id = "contoso.onmicrosoft.com"
client_id = "c"
client_secret = "file-secret"
poll_interval = "5s"
[ad]
url = "ldap://127.0.0.2"
starttls = true
bind_dn = "CN=svc,DC=example,DC=test"
bind_password = "pw"
target_ou = "OU=Cloud Groups,DC=example,DC=test"
[state]
path = "/tmp/x"
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("t.toml"), |_| None)
}

#[test]
fn good_file_parses_with_defaults() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.graph.poll_interval, Duration::from_secs(5));
    assert_eq!(c.ad.delete_threshold, 100);
    assert_eq!(c.http.listen.port(), 9464);
    assert_eq!(c.graph.graph_url, "https://graph.microsoft.com");
}

#[test]
fn unknown_key_is_named() {
    let text = GOOD.replace("[state]", "[state]\nbogus = 1");
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.contains("state.bogus"), "{err}");
}

#[test]
fn missing_key_is_named() {
    let text = GOOD.replace("tenant_id = \"contoso.onmicrosoft.com\"\n", "");
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.contains("graph") && err.contains("tenant_id"), "{err}");
}

#[test]
fn bad_value_is_named() {
    let text = GOOD.replace("\"5s\"", "\"soon\"");
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.contains("graph.poll_interval"), "{err}");
    let text = GOOD.replace("ldap://127.0.0.2", "http://x");
    assert!(parse(&text).unwrap_err().to_string().contains("ad.url"));
}

#[test]
fn env_secret_wins_and_is_never_printed() {
    let c = Config::parse(GOOD, Path::new("t"), |k| {
        (k == ENV_AD_PASSWORD).then(|| "envpw".to_string())
    })
    .unwrap();
    assert_eq!(c.ad.bind_password.as_ref().unwrap().expose(), "envpw");
    let dbg = format!("{c:?}");
    assert!(
        !dbg.contains("envpw") && !dbg.contains("file-secret"),
        "{dbg}"
    );
}

#[test]
fn secrets_in_a_file_others_can_read_are_reported() {
    let p = Path::new("/etc/ew.toml");
    let keys = ["ad.bind_password"];
    let w = exposed_secrets(p, Some(0o644), &keys).expect("world-readable");
    assert!(w.contains("/etc/ew.toml") && w.contains("ad.bind_password") && w.contains("644"));
    assert!(
        exposed_secrets(p, Some(0o640), &keys).is_some(),
        "group-readable"
    );
    assert!(exposed_secrets(p, Some(0o600), &keys).is_none());
    assert!(exposed_secrets(p, Some(0o400), &keys).is_none());
    assert!(
        exposed_secrets(p, Some(0o644), &[]).is_none(),
        "no secret in the file"
    );
    assert!(exposed_secrets(p, None, &keys).is_none());
    assert_eq!(
        secrets_set_in(GOOD),
        ["graph.client_secret", "ad.bind_password"]
    );
    let no_secrets = GOOD
        .lines()
        .filter(|l| !l.starts_with("client_secret") && !l.starts_with("bind_password"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(secrets_set_in(&no_secrets).is_empty());
}

#[test]
fn status_token_comes_from_the_file_or_the_env_and_is_checked() {
    assert!(parse(GOOD).unwrap().http.status_token.is_none());
    let text = format!("{GOOD}\n[http]\nstatus_token = \"from-file\"\n");
    let c = parse(&text).unwrap();
    assert_eq!(c.http.status_token.as_ref().unwrap().expose(), "from-file");
    let c = Config::parse(&text, Path::new("t"), |k| {
        (k == ENV_STATUS_TOKEN).then(|| "from-env".to_string())
    })
    .unwrap();
    assert_eq!(c.http.status_token.as_ref().unwrap().expose(), "from-env");
    assert!(!format!("{c:?}").contains("from-env"));
    let bad = format!("{GOOD}\n[http]\nstatus_token = \"two words\"\n");
    let err = parse(&bad).unwrap_err().to_string();
    assert!(err.contains("http.status_token"), "{err}");
}

#[test]
fn graph_fidelity_keys_parse_and_are_validated() {
    let c = parse(GOOD).unwrap();
    assert_eq!(
        c.graph.client_assertion_algorithm,
        AssertionAlgorithm::RS256
    );
    assert_eq!(c.graph.max_requests_per_second, 100.0);
    assert!(!c.graph.prefer_return_minimal);
    assert_eq!(c.graph.scope.group_types.len(), 2);
    let text = GOOD.replace(
        "poll_interval = \"5s\"",
        "poll_interval = \"5s\"\nclient_assertion_algorithm = \"PS256\"\nmax_requests_per_second = 2.5\nprefer_return_minimal = true\n[graph.scope]\ngroup_types = [\"security\"]\ndynamic_groups = false\ngroup_ids = [\"a\"]\ndisplay_name_pattern = \"^SG-\"",
    );
    let c = parse(&text).unwrap();
    assert_eq!(
        c.graph.client_assertion_algorithm,
        AssertionAlgorithm::PS256
    );
    assert_eq!(c.graph.max_requests_per_second, 2.5);
    assert!(c.graph.prefer_return_minimal && !c.graph.scope.dynamic_groups);
    assert_eq!(c.graph.scope.group_types, [GroupTypeFilter::Security]);
    let bad = text.replace("\"^SG-\"", "\"(unclosed\"");
    let err = parse(&bad).unwrap_err().to_string();
    assert!(err.contains("graph.scope.display_name_pattern"), "{err}");
    let bad = text.replace("\"security\"]", "\"distribution\"]");
    let err = parse(&bad).unwrap_err().to_string();
    assert!(err.contains("graph.scope.group_types"), "{err}");
    let bad = text.replace("= 2.5", "= 0");
    let err = parse(&bad).unwrap_err().to_string();
    assert!(err.contains("graph.max_requests_per_second"), "{err}");
    let bad = text
        .replace("\"RS256\"", "x")
        .replace("\"PS256\"", "\"HS256\"");
    let err = parse(&bad).unwrap_err().to_string();
    assert!(err.contains("graph.client_assertion_algorithm"), "{err}");
}

/// The error text of `text`, which must be refused.
fn refused(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// `GOOD` with its `[ad]` URL line replaced by `lines`.
fn with_ad_url(lines: &str) -> String {
    GOOD.replace("url = \"ldap://127.0.0.2\"\nstarttls = true", lines)
}

#[test]
fn plain_ldap_without_starttls_is_refused_naming_the_keys() {
    let err = refused(&with_ad_url("url = \"ldap://dc1.corp.example.com\""));
    for key in ["ad.url", "ad.starttls", "ad.allow_insecure_ldap"] {
        assert!(err.contains(key), "{key} not named: {err}");
    }
    let err = refused(&with_ad_url(
        "url = \"ldap://dc1.corp.example.com\"\nstarttls = false\nallow_insecure_ldap = false",
    ));
    assert!(err.contains("key `ad.url`"), "{err}");
}

#[test]
fn tls_ldap_urls_and_explicit_insecure_opt_in_are_accepted() {
    let c = parse(GOOD).unwrap();
    assert!(c.ad.starttls && !c.ad.allow_insecure_ldap);
    let c = parse(&with_ad_url("url = \"ldaps://dc1.corp.example.com\"")).unwrap();
    assert!(!c.ad.starttls);
    parse(&with_ad_url(
        "url = \"ldaps://dc1.corp.example.com:636\"\nca_file = \"/etc/ca.pem\"",
    ))
    .unwrap();
    let c = parse(&with_ad_url(
        "url = \"ldap://127.0.0.2\"\nallow_insecure_ldap = true",
    ))
    .unwrap();
    assert!(c.ad.allow_insecure_ldap && !c.ad.starttls);
}

#[test]
fn starttls_on_ldaps_is_refused() {
    let err = refused(&with_ad_url(
        "url = \"ldaps://dc1.corp.example.com\"\nstarttls = true",
    ));
    assert!(err.contains("key `ad.starttls`"), "{err}");
}

#[test]
fn plain_http_graph_urls_are_accepted_only_on_loopback() {
    for key in ["graph_url", "authority_url"] {
        for url in [
            "http://graph.example.com",
            "http://10.0.0.1:8080",
            "http://[2001:db8::1]/",
            "http://localhost.example.com",
            "http://128.0.0.1",
        ] {
            let text = GOOD.replace(
                "poll_interval = \"5s\"",
                &format!("poll_interval = \"5s\"\n{key} = \"{url}\""),
            );
            let err = refused(&text);
            assert!(err.contains(&format!("key `graph.{key}`")), "{url}: {err}");
            assert!(err.contains("https://"), "{err}");
        }
        for url in [
            "http://127.0.0.1:8080",
            "http://127.3.4.5",
            "http://[::1]:9000/",
            "http://localhost:1234",
            "http://LOCALHOST",
            "https://graph.microsoft.us",
            "https://10.0.0.1",
        ] {
            let text = GOOD.replace(
                "poll_interval = \"5s\"",
                &format!("poll_interval = \"5s\"\n{key} = \"{url}\""),
            );
            parse(&text).unwrap_or_else(|e| panic!("{url} refused: {e}"));
        }
    }
}

#[test]
fn owned_ous_must_not_be_the_naming_context() {
    for root in [
        "DC=example,DC=test",
        "dc=example, dc=test",
        " DC = corp , DC = example , DC = com ",
        "0.9.2342.19200300.100.1.25=example,DC=test",
    ] {
        let text = GOOD.replace("OU=Cloud Groups,DC=example,DC=test", root);
        let err = refused(&text);
        assert!(
            err.contains("key `ad.target_ou`") && err.contains("naming context"),
            "{root}: {err}"
        );
    }
    for (key, line) in [
        (
            "ad.target_ou_m365",
            "target_ou_m365 = \"DC=example,DC=test\"",
        ),
        (
            "ad.soft_delete_ou",
            "soft_delete = \"move\"\nsoft_delete_ou = \"dc=Example,dc=Test\"",
        ),
        (
            "ad.previous_ous",
            "previous_ous = [\"OU=Old,DC=example,DC=test\", \"DC=example,DC=test\"]",
        ),
    ] {
        let err = refused(&with_ad_line(line));
        assert!(err.contains(&format!("key `{key}`")), "{key}: {err}");
    }
    let text = with_ad_line("previous_ous = [\"not a dn\"]");
    assert!(refused(&text).contains("key `ad.previous_ous`"));
    // An OU (or container) below the root is fine, even one whose value spells "DC".
    for ou in ["OU=DC,DC=example,DC=test", "CN=Groups,DC=example,DC=test"] {
        parse(&GOOD.replace("OU=Cloud Groups,DC=example,DC=test", ou)).unwrap();
    }
    let text = with_ad_line(
        "previous_ous = [\"OU=Old,DC=example,DC=test\"]\ntarget_ou_m365 = \"OU=M365,DC=example,DC=test\"",
    );
    parse(&text).unwrap();
}

/// [`GOOD`] with `line` added to its `[ad]` section.
fn with_ad_line(line: &str) -> String {
    GOOD.replace(
        "bind_password = \"pw\"",
        &format!("bind_password = \"pw\"\n{line}"),
    )
}

#[test]
fn search_page_size_defaults_to_1000_and_is_bounded() {
    assert_eq!(parse(GOOD).unwrap().ad.search_page_size, 1000);
    let set = |n: &str| with_ad_line(&format!("search_page_size = {n}"));
    assert_eq!(parse(&set("1")).unwrap().ad.search_page_size, 1);
    assert_eq!(parse(&set("1000")).unwrap().ad.search_page_size, 1000);
    for bad in ["0", "1001", "-1", "\"500\""] {
        let err = refused(&set(bad));
        assert!(err.contains("ad.search_page_size"), "{bad}: {err}");
    }
}

#[test]
fn connections_default_to_one_and_are_bounded() {
    assert_eq!(parse(GOOD).unwrap().ad.connections, 1);
    let set = |n: &str| with_ad_line(&format!("connections = {n}"));
    assert_eq!(parse(&set("16")).unwrap().ad.connections, 16);
    for bad in ["0", "17", "-1"] {
        let err = refused(&set(bad));
        assert!(err.contains("ad.connections"), "{bad}: {err}");
    }
}

#[test]
fn missing_secret_names_env_var() {
    let text = GOOD.replace("bind_password = \"pw\"\n", "");
    let err = parse(&text).unwrap_err().to_string();
    assert!(
        err.contains("ad.bind_password") && err.contains(ENV_AD_PASSWORD),
        "{err}"
    );
}

#[test]
fn hostile_upstream_limits_default_and_are_range_checked_by_key() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.graph.max_members_per_group, 250_000);
    assert_eq!(c.graph.max_page_items, 10_000);
    assert_eq!(c.graph.max_response_bytes, 64 * 1024 * 1024);
    assert_eq!(c.graph.max_pages_per_round, 200_000);
    let with = |line: &str| {
        GOOD.replace(
            "poll_interval = \"5s\"",
            &format!("poll_interval = \"5s\"\n{line}"),
        )
    };
    let c = parse(&with(
        "max_members_per_group = 300\nmax_pages_per_round = 5",
    ))
    .unwrap();
    assert_eq!(
        (c.graph.max_members_per_group, c.graph.max_pages_per_round),
        (300, 5)
    );
    for (line, key) in [
        ("max_members_per_group = 0", "graph.max_members_per_group"),
        ("max_page_items = 0", "graph.max_page_items"),
        ("max_response_bytes = 100", "graph.max_response_bytes"),
        ("max_pages_per_round = 0", "graph.max_pages_per_round"),
        ("max_page_items = -1", "graph.max_page_items"),
    ] {
        let err = parse(&with(line)).unwrap_err().to_string();
        assert!(err.contains(key), "{line}: {err}");
    }
}

#[test]
fn credentials_are_read_by_key_name_and_the_environment_wins() {
    use secret::{lookup_secret, read_credentials};
    assert!(read_credentials(None).unwrap().is_empty());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ad.bind_password"), "cred-pw\n").unwrap();
    std::fs::write(dir.path().join("http.status_token"), "").unwrap();
    std::fs::write(dir.path().join("unrelated"), "x").unwrap();
    let creds = read_credentials(Some(dir.path())).unwrap();
    let names: Vec<_> = creds.iter().map(|(env, _)| *env).collect();
    assert_eq!(names, [ENV_AD_PASSWORD], "an empty file counts as unset");
    let no_env = |_: &str| None;
    let pw = lookup_secret(ENV_AD_PASSWORD, &no_env, &creds);
    assert_eq!(
        pw.as_deref(),
        Some("cred-pw"),
        "one trailing newline dropped"
    );
    assert_eq!(lookup_secret(ENV_GRAPH_SECRET, &no_env, &creds), None);
    let env = |k: &str| (k == ENV_AD_PASSWORD).then(|| "env-pw".to_string());
    let pw = lookup_secret(ENV_AD_PASSWORD, &env, &creds);
    assert_eq!(pw.as_deref(), Some("env-pw"));
    let empty_env = |_: &str| Some(String::new());
    let pw = lookup_secret(ENV_AD_PASSWORD, &empty_env, &creds);
    assert_eq!(pw.as_deref(), Some("cred-pw"), "an empty variable is unset");
    let text = GOOD.replace("bind_password = \"pw\"\n", "");
    let lookup = |k: &str| lookup_secret(k, &no_env, &creds);
    let c = Config::parse(&text, Path::new("t"), lookup).unwrap();
    assert_eq!(c.ad.bind_password.unwrap().expose(), "cred-pw");
    std::fs::write(dir.path().join("graph.client_secret"), "a\r\nb\r\n").unwrap();
    let creds = read_credentials(Some(dir.path())).unwrap();
    let s = lookup_secret(ENV_GRAPH_SECRET, &no_env, &creds);
    assert_eq!(s.as_deref(), Some("a\r\nb"), "only the last line end goes");
}

#[test]
fn an_unreadable_credential_is_an_error_naming_the_file_not_its_content() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be: exists, cannot be read as text, as root too.
    std::fs::create_dir(dir.path().join("graph.client_secret")).unwrap();
    let err = secret::read_credentials(Some(dir.path())).unwrap_err();
    let err = ConfigError::from(err).to_string();
    assert!(err.contains("graph.client_secret"), "{err}");
    std::fs::write(dir.path().join("ad.bind_password"), [0xff, 0xfe]).unwrap();
    std::fs::remove_dir(dir.path().join("graph.client_secret")).unwrap();
    let err = secret::read_credentials(Some(dir.path())).unwrap_err();
    assert!(err.to_string().contains("ad.bind_password"), "{err}");
}

#[test]
fn state_cache_capacity_defaults_and_is_range_checked() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.state.cache_capacity, super::DEFAULT_CACHE_CAPACITY);
    let set = |v: &str| GOOD.replace("[state]", &format!("[state]\ncache_capacity = {v}"));
    assert_eq!(
        parse(&set("67108864")).unwrap().state.cache_capacity,
        64 << 20
    );
    assert_eq!(
        parse(&set("1048576")).unwrap().state.cache_capacity,
        super::CACHE_CAPACITY_RANGE.0
    );
    for bad in ["0", "1048575", "68719476737", "-1", "\"64MiB\""] {
        let err = parse(&set(bad)).unwrap_err().to_string();
        assert!(err.contains("state.cache_capacity"), "{bad}: {err}");
    }
}
