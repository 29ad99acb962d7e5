//! TLS everywhere, with the real binary: an LDAPS server that speaks nothing newer than TLS 1.1
//! is refused with a clear error (while the same server at TLS 1.2 gets past the handshake),
//! and the monitoring listener with `[http] tls_cert` / `tls_key` serves HTTPS only.
//! (A DC certificate the configured CA does not sign: `tests/ad_access.rs`.)

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::samba::{self, SambaDc};
use common::service::{Options, Running, Service, free_port, output_within, tail};
use common::sim::{GraphSim, oid};

/// Runs `openssl` with `args`, asserting success.
fn openssl(args: &[&str]) {
    let out = output_within(Command::new("openssl").args(args), Duration::from_secs(60));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server certificate for `127.0.0.1` signed by the lab's CA: (cert, key) PEM files in `dir`.
fn loopback_cert(dc: &SambaDc, dir: &Path) -> (PathBuf, PathBuf) {
    let (key, csr, cert, ext) = (
        dir.join("key.pem"),
        dir.join("req.csr"),
        dir.join("cert.pem"),
        dir.join("ext.cnf"),
    );
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let p = |p: &Path| p.to_str().unwrap().to_owned();
    let ca_key = p(&dc.dir.join("tls/ca-key.pem"));
    let ca = p(&dc.ca_file);
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &p(&key),
        "-out",
        &p(&csr),
    ]);
    // -set_serial: the lab's serial file is not ours to advance.
    let serial = format!("{}", std::process::id());
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p(&csr),
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-set_serial",
        &serial,
        "-days",
        "1",
        "-sha256",
        "-extfile",
        &p(&ext),
        "-out",
        &p(&cert),
    ]);
    (cert, key)
}

/// `openssl s_server` on `127.0.0.1:port` speaking only `version` (`-tls1_1`, `-tls1_2`),
/// ciphers down to security level 0 so TLS 1.1 is really offered; killed on drop.
fn tls_server(cert: &Path, key: &Path, version: &str, port: u16) -> Running {
    let server = Running(
        Command::new("openssl")
            .args([
                "s_server",
                "-quiet",
                "-accept",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key)
            .args([version, "-cipher", "DEFAULT@SECLEVEL=0"])
            .stdin(Stdio::piped()) // held open: s_server stops serving at EOF on stdin
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "openssl s_server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// The protocol `openssl s_client` negotiated with `127.0.0.1:port` when offering only
/// `version`, verified against the lab CA (`None` if the handshake failed).
fn negotiated(dc: &SambaDc, port: u16, version: &str) -> Option<String> {
    let out = output_within(
        Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
                version,
            ])
            .args([
                "-cipher",
                "DEFAULT@SECLEVEL=0",
                "-verify_return_error",
                "-CAfile",
            ])
            .arg(&dc.ca_file),
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("Protocol"))?;
    Some(line.split(':').nth(1)?.trim().to_owned())
}

/// `check` against `ldaps://127.0.0.1:port` (trusting the lab CA): its exit code and output.
fn check_against(dc: &SambaDc, sim: &GraphSim, port: u16) -> (Option<i32>, String) {
    let svc = Service::with(
        dc,
        "OU=Nowhere,DC=example,DC=test",
        Options {
            ad_url: format!("ldaps://127.0.0.1:{port}"),
            ad_extra: "operation_timeout = \"3s\"".into(),
            ..Options::ldaps(dc, sim)
        },
    );
    let out = svc.run(&["check"]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn a_dc_that_speaks_only_tls_1_1_is_refused_with_a_clear_error() {
    let dc = samba::shared();
    let scratch = tempfile::tempdir().unwrap();
    let (cert, key) = loopback_cert(dc, scratch.path());
    let sim = GraphSim::start(vec![], vec![], &[]);

    let port = free_port();
    let _old = tls_server(&cert, &key, "-tls1_1", port);
    // The server really speaks TLS 1.1 with a certificate the lab CA signs for this address,
    // so the refusal below can only be about the protocol version.
    assert_eq!(negotiated(dc, port, "-tls1_1").as_deref(), Some("TLSv1.1"));
    let (code, text) = check_against(dc, &sim, port);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("does not speak TLS 1.2 or 1.3"),
        "no clear error: {}",
        tail(&text)
    );

    // The same server and certificate at TLS 1.2: the handshake and the certificate pass
    // (it fails later, as s_server speaks no LDAP), so the setup above was sound.
    let port = free_port();
    let _new = tls_server(&cert, &key, "-tls1_2", port);
    assert_eq!(negotiated(dc, port, "-tls1_2").as_deref(), Some("TLSv1.2"));
    let (code, text) = check_against(dc, &sim, port);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        !text.contains("TLS 1.2 or 1.3") && !text.to_lowercase().contains("certificate"),
        "TLS 1.2 was refused: {}",
        tail(&text)
    );
}

/// Waits (up to 60 s) for `https://127.0.0.1:port/metrics` through `client`.
async fn https_metrics(client: &reqwest::Client, port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let url = format!("https://127.0.0.1:{port}/metrics");
        match client.get(&url).send().await {
            Ok(r) if r.status() == 200 => return r.text().await.unwrap(),
            other => assert!(Instant::now() < deadline, "{url}: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_listener_with_tls_cert_and_key_serves_https_only() {
    let dc = samba::shared();
    let scratch = tempfile::tempdir().unwrap();
    let (cert, key) = loopback_cert(dc, scratch.path());
    let sim = GraphSim::start(
        vec![],
        vec![common::security_group(&oid(0x7150, 1), "Https", vec![])],
        &[],
    );
    let ou = dc.fresh_ou("https").await;
    let svc = Service::new(&sim, dc, &ou);
    let listen = format!("listen = \"127.0.0.1:{}\"", svc.http_port);
    let text = std::fs::read_to_string(&svc.config).unwrap().replace(
        &listen,
        &format!(
            "{listen}\ntls_cert = \"{}\"\ntls_key = \"{}\"",
            cert.display(),
            key.display()
        ),
    );
    std::fs::write(&svc.config, text).unwrap();
    let _run = svc.spawn();

    let lab_ca = reqwest::Certificate::from_pem(&std::fs::read(&dc.ca_file).unwrap()).unwrap();
    let trusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(lab_ca)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let body = https_metrics(&trusting, svc.http_port).await;
    assert!(body.contains("entra_writeback_"), "{body}");
    let healthz = trusting
        .get(format!("https://127.0.0.1:{}/healthz", svc.http_port))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), 200);

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let r = plain
        .get(format!("http://127.0.0.1:{}/metrics", svc.http_port))
        .send()
        .await;
    assert!(r.is_err(), "plain http answered: {r:?}");
    // A client that does not trust the lab CA is refused by its own verification.
    let untrusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let r = untrusting
        .get(format!("https://127.0.0.1:{}/metrics", svc.http_port))
        .send()
        .await;
    assert!(r.is_err(), "an unverified certificate was accepted: {r:?}");
    // And it still serves after those failed handshakes.
    assert!(
        https_metrics(&trusting, svc.http_port)
            .await
            .contains("entra_writeback_")
    );
    let log = std::fs::read_to_string(svc.dir.path().join("run.log")).unwrap();
    assert!(log.contains("\"scheme\":\"https\""), "{}", tail(&log));
}
