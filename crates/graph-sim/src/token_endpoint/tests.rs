//! Unit tests of the token endpoint: secrets, client assertions, signatures, access tokens.

use super::*;

fn tenant() -> Tenant {
    Tenant::from_json(
        r#"{"tenant_id": "contoso", "clients": [
        {"client_id": "app", "client_secret": "s3cret"},
        {"client_id": "cert", "certificate_thumbprint_sha256": "q83vEjRWeJA"}]}"#,
    )
    .unwrap()
}

fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn run(tenant_in_path: &str, f: &HashMap<String, String>) -> Result<String, OAuthError> {
    let req = TokenRequest {
        tenant_in_path,
        form: f,
        basic: None,
        token_url: "http://sim/contoso/oauth2/v2.0/token",
        now: Instant::now(),
    };
    authenticate(&tenant(), &req)
}

#[test]
fn base64_round_trips() {
    for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"\xff\xfe\x00"] {
        assert_eq!(b64_decode(&b64url_encode(data)).unwrap(), data);
    }
    assert_eq!(b64_decode("Zm9vYg==").unwrap(), b"foob");
}

#[test]
fn secrets_tenants_grants_and_scopes() {
    let ok = [
        ("grant_type", "client_credentials"),
        ("client_id", "app"),
        ("client_secret", "s3cret"),
        ("scope", "https://graph.microsoft.com/.default"),
    ];
    assert_eq!(run("contoso", &form(&ok)).unwrap(), "app");
    assert_eq!(run("fabrikam", &form(&ok)).unwrap_err().status, 400);
    let mut bad = form(&ok);
    bad.insert("client_secret".into(), "nope".into());
    let e = run("contoso", &bad).unwrap_err();
    assert_eq!(
        (e.status, e.body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let mut bad = form(&ok);
    bad.insert("scope".into(), "User.Read".into());
    assert_eq!(
        run("contoso", &bad).unwrap_err().body["error"],
        "invalid_scope"
    );
    let mut bad = form(&ok);
    bad.insert("grant_type".into(), "password".into());
    assert_eq!(
        run("contoso", &bad).unwrap_err().body["error"],
        "unsupported_grant_type"
    );
}

#[test]
fn client_assertions_are_checked() {
    let jwt = |header: Value, claims: Value| {
        format!(
            "{}.{}.c2ln",
            b64url_encode(header.to_string().as_bytes()),
            b64url_encode(claims.to_string().as_bytes())
        )
    };
    let exp = unix_now(Instant::now()) + 300;
    let good_claims = json!({"iss": "cert", "sub": "cert", "aud": "http://sim/contoso/oauth2/v2.0/token", "exp": exp, "jti": "j1"});
    let base = [
        ("grant_type", "client_credentials"),
        ("client_id", "cert"),
        ("scope", "x/.default"),
        ("client_assertion_type", ASSERTION_TYPE),
    ];
    let with = |a: String| {
        let mut f = form(&base);
        f.insert("client_assertion".into(), a);
        f
    };
    let good = jwt(
        json!({"alg": "PS256", "x5t#S256": "q83vEjRWeJA"}),
        good_claims.clone(),
    );
    assert_eq!(run("contoso", &with(good)).unwrap(), "cert");
    let wrong_thumb = jwt(
        json!({"alg": "RS256", "x5t": "q83vEjRWeJA"}),
        good_claims.clone(),
    );
    assert_eq!(run("contoso", &with(wrong_thumb)).unwrap_err().status, 401);
    let mut expired = good_claims.clone();
    expired["exp"] = json!(exp - 600);
    let e = run(
        "contoso",
        &with(jwt(json!({"x5t#S256": "q83vEjRWeJA"}), expired)),
    )
    .unwrap_err();
    assert!(
        e.body["error_description"]
            .as_str()
            .unwrap()
            .contains("700024")
    );
    assert_eq!(
        run("contoso", &with("garbage".into())).unwrap_err().status,
        400
    );
}

#[test]
fn signatures_are_verified_when_the_certificate_is_known() {
    // The service's own credential signs the assertions (entra-writeback is a dev-dependency).
    use entra_writeback::config::AssertionAlgorithm;
    use entra_writeback::graph::auth::CertificateCredential;
    let pem = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/graph/app-cert.pem"
    ));
    let cert_end = pem.find("-----END CERTIFICATE-----").unwrap() + 25;
    let tenant = Tenant::from_json(
        &json!({"tenant_id": "contoso", "clients": [
            {"client_id": "app", "certificate_pem": &pem[..cert_end]}]})
        .to_string(),
    )
    .unwrap();
    let url = "http://sim/contoso/oauth2/v2.0/token";
    let now = unix_now(Instant::now());
    for alg in [AssertionAlgorithm::RS256, AssertionAlgorithm::PS256] {
        let cred = CertificateCredential::from_pem(pem.as_bytes(), alg).unwrap();
        assert_eq!(
            tenant.clients[0].certificate_thumbprint_sha1.as_deref(),
            Some(cred.x5t.as_str())
        );
        let jwt = cred.assertion("app", url, now).unwrap();
        let mut f = form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "app"),
            ("scope", "x/.default"),
            ("client_assertion_type", ASSERTION_TYPE),
        ]);
        f.insert("client_assertion".into(), jwt.clone());
        let req = |f: &HashMap<String, String>| {
            authenticate(
                &tenant,
                &TokenRequest {
                    tenant_in_path: "contoso",
                    form: f,
                    basic: None,
                    token_url: url,
                    now: Instant::now(),
                },
            )
        };
        assert_eq!(req(&f).unwrap(), "app", "{alg:?}");
        // Same header and claims, another signature: refused.
        let (signed, _) = jwt.rsplit_once('.').unwrap();
        f.insert("client_assertion".into(), format!("{signed}.c2lnbmF0dXJl"));
        let e = req(&f).unwrap_err();
        assert_eq!(e.status, 401);
        assert!(
            e.body["error_description"]
                .as_str()
                .unwrap()
                .contains("700027")
        );
    }
}

#[test]
fn access_tokens_expire_and_can_be_revoked() {
    let mut t = AccessTokens::default();
    let now = Instant::now();
    let tok = t.issue(now, Duration::from_secs(10), "contoso", "app");
    assert_eq!(t.serial(), 1);
    let bearer = format!("Bearer {tok}");
    assert_eq!(t.check(Some(&bearer), now), (Some(1), Ok(())));
    assert_eq!(
        t.check(Some(&bearer), now + Duration::from_secs(10)),
        (Some(1), Err(TokenRefusal::Expired))
    );
    assert_eq!(
        t.check(Some("Bearer nope"), now),
        (None, Err(TokenRefusal::Unknown))
    );
    assert_eq!(t.check(None, now), (None, Err(TokenRefusal::Missing)));
    t.revoke_all();
    assert_eq!(
        t.check(Some(&bearer), now),
        (Some(1), Err(TokenRefusal::Revoked))
    );
    let fresh = format!(
        "Bearer {}",
        t.issue(now, Duration::from_secs(10), "c", "app")
    );
    assert_eq!(
        t.check(Some(&fresh), now),
        (Some(2), Ok(())),
        "new tokens work"
    );
}
