//! TLS on the one port (rustls): gRPC over h2 (ALPN), gRPC-Web over HTTP/1.1, HTTP hooks and
//! `wss://` with the auto-generated certificate; the CLI's fingerprint pinning; certificate
//! rotation without a restart; the refusal to leave loopback without TLS; and forwarding
//! headers that only trusted proxies may set.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt as _;
use sha2::Digest as _;
use tonic::Code;

use crate::harness::*;

const HOOK_TOKEN: &str = "tls-hook-secret";

/// The SHA-256 fingerprint of the first certificate of a PEM file (uppercase, colons).
fn pem_fingerprint(path: &Path) -> String {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    let pem = std::fs::read(path).expect("read certificate");
    let cert = CertificateDer::pem_slice_iter(&pem)
        .next()
        .expect("a certificate")
        .expect("PEM");
    der_fingerprint(cert.as_ref())
}

fn der_fingerprint(der: &[u8]) -> String {
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// An HTTPS client (HTTP/1.1 only) trusting exactly the gateway's certificate.
fn https1(gw: &Gateway) -> reqwest::Client {
    let pem = std::fs::read(gw.ca_path()).expect("read CA");
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("PEM"))
        .http1_only()
        .timeout(PATIENCE)
        .build()
        .expect("reqwest client")
}

/// Fingerprint of the certificate a fresh TLS handshake is served now (accepting any).
async fn served_fingerprint(gw: &Gateway) -> String {
    #[derive(Debug)]
    struct AcceptAny(std::sync::Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _: &rustls_pki_types::CertificateDer<'_>,
            _: &[rustls_pki_types::CertificateDer<'_>],
            _: &rustls_pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls_pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &rustls_pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &rustls_pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    let uri: tonic::codegen::http::Uri = gw.url.parse().unwrap();
    let io = tls_connect(uri, std::sync::Arc::new(cfg))
        .await
        .expect("TLS handshake");
    let (_, conn) = io.inner().get_ref();
    let der = conn.peer_certificates().expect("peer certificate")[0].clone();
    der_fingerprint(der.as_ref())
}

async fn start_tls(extra: &str) -> Gateway {
    Gateway::start_with(&format!(
        "{{ gateway: {{ tls: {{ autoGenerate: true }} }}{extra} }}"
    ))
    .await
}

#[tokio::test]
async fn every_surface_is_served_over_tls_with_the_generated_certificate() {
    let gw = start_tls(&format!(
        ", hooks: {{ enabled: true, token: '{HOOK_TOKEN}' }}"
    ))
    .await;
    assert!(gw.url.starts_with("https://127.0.0.1:"), "{}", gw.url);
    let cert = gw.data_dir.join("tls/cert.pem");
    let key = gw.data_dir.join("tls/key.pem");
    assert!(cert.exists() && key.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "key file mode");
    }
    let fp = pem_fingerprint(&cert);
    assert!(
        gw.stderr().contains(&fp),
        "the fingerprint is logged at start"
    );

    // gRPC over h2 (ALPN) with the certificate as CA; Status reports the fingerprint.
    let status = gw.status().await;
    assert_eq!(status.tls_fingerprint, fp);
    let run = gw.send("tls", "over tls").await.run_id;
    assert_eq!(
        gw.wait_run(&run).await.reply_text,
        "You said: over tls (turn 1)"
    );

    // gRPC-Web over HTTP/1.1 + TLS.
    let http = https1(&gw);
    let r = http
        .post(format!("{}/clawplane.v1.GatewayService/Status", gw.url))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("authorization", format!("Bearer {}", gw.token))
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .expect("gRPC-Web over TLS");
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/grpc-web"),
        "{:?}",
        r.headers()
    );
    let body = r.bytes().await.unwrap();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("grpc-status:0"), "trailer frame: {text:?}");
    assert!(
        text.contains(&fp),
        "the Status message carries the fingerprint"
    );

    // An HTTP hook.
    let r = http
        .post(format!("{}/hooks/wake", gw.url))
        .header("authorization", format!("Bearer {HOOK_TOKEN}"))
        .header("content-type", "application/json")
        .body(r#"{"text":"deploy finished","mode":"next-heartbeat"}"#)
        .send()
        .await
        .expect("hook over TLS");
    assert_eq!(r.status(), 200, "{:?}", r.text().await);

    // /healthz as plain HTTPS.
    let r = http
        .get(format!("{}/healthz", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The WebSocket handshake over wss:// (HTTP/1.1 upgrade inside TLS).
    let config = tls_client_config(&gw.ca_path(), &[b"http/1.1"]);
    let io = tls_connect(gw.url.parse().unwrap(), config)
        .await
        .expect("TLS for wss");
    let (mut ws, resp) = tokio_tungstenite::client_async(
        format!("wss://127.0.0.1:{}/", gw.addr.port()),
        io.into_inner(),
    )
    .await
    .expect("wss handshake");
    assert_eq!(resp.status(), 101);
    let first = tokio::time::timeout(PATIENCE, ws.next())
        .await
        .expect("a frame")
        .expect("open")
        .expect("frame");
    assert!(
        first.to_text().unwrap_or("").contains("connect.challenge"),
        "{first:?}"
    );

    // Plain text to the TLS port is not served.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/healthz", gw.addr))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(
        plain.map(|r| r.status() != 200).unwrap_or(true),
        "plain HTTP must not be answered on the TLS port"
    );

    // The certificate is made once and reused on the next start.
    let mut gw = gw;
    gw.restart().await;
    assert!(gw.url.starts_with("https://"));
    assert_eq!(pem_fingerprint(&cert), fp);
    assert_eq!(gw.status().await.tls_fingerprint, fp);
}

#[tokio::test]
async fn cli_pins_the_fingerprint_and_refuses_another_certificate() {
    let gw = start_tls("").await;
    let fp = pem_fingerprint(&gw.ca_path());

    // The right fingerprint (with colons, and without).
    for pin in [fp.clone(), fp.replace(':', "").to_lowercase()] {
        let out = gw
            .cli()
            .args(["status", "--tls-fingerprint", &pin])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(&fp),
            "status shows the fingerprint: {stdout}"
        );
    }
    // The env variable works too, and so does the CA file.
    let out = gw
        .cli()
        .env("CLAWPLANE_TLS_FINGERPRINT", &fp)
        .arg("status")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = gw
        .cli()
        .args(["status", "--tls-ca"])
        .arg(gw.ca_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // For the local gateway the generated certificate's fingerprint is found in the data dir.
    let out = gw
        .cli()
        .arg("--data-dir")
        .arg(&gw.data_dir)
        .arg("status")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A wrong fingerprint is refused with a clear error.
    let wrong = "AB:".repeat(31) + "AB";
    let out = gw
        .cli()
        .args(["status", "--tls-fingerprint", &wrong])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "certificate fingerprint mismatch: expected {wrong}, got {fp}"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");

    // Without a CA or a pin the self-signed certificate is not trusted.
    let out = gw.cli().arg("status").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("TLS connection"), "{stderr}");
}

#[tokio::test]
async fn certificate_rotation_keeps_open_streams_and_serves_the_new_certificate() {
    // Each process reads its own certificate files.
    let mut gw = Gateway::builder()
        .config("{ gateway: { tls: { autoGenerate: true } } }")
        .one_process()
        .start()
        .await;
    let old = pem_fingerprint(&gw.ca_path());
    let mut feed = gw.watch_after(gw.status().await.last_event_seq, None).await;

    // Replace the files with a new certificate (another key pair).
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let new = der_fingerprint(cert.der());
    assert_ne!(new, old);
    let new_ca = dir.path().join("new.pem");
    std::fs::write(&new_ca, cert.pem()).unwrap();
    let tls = gw.data_dir.join("tls");
    std::fs::write(tls.join("key.pem.new"), key.serialize_pem()).unwrap();
    std::fs::write(tls.join("cert.pem.new"), cert.pem()).unwrap();
    std::fs::rename(tls.join("key.pem.new"), tls.join("key.pem")).unwrap();
    std::fs::rename(tls.join("cert.pem.new"), tls.join("cert.pem")).unwrap();

    // New connections get the new certificate within a few seconds.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while served_fingerprint(&gw).await != new {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate was not picked up\n{}",
            gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    gw.tls_ca = Some(new_ca);
    assert_eq!(gw.status().await.tls_fingerprint, new);
    assert!(gw.stderr().contains("TLS certificate reloaded"));

    // The stream opened on the old certificate keeps receiving events.
    let run = gw.send("rot", "after rotation").await.run_id;
    let events = feed
        .collect_until(|e| is_run_event(e, &run, clawplane_proto::v1::RunState::Succeeded))
        .await;
    assert!(delta_text(&events, &run).contains("after rotation"));

    // A bad new file keeps the current certificate and logs an error.
    std::fs::write(tls.join("cert.pem"), "not a certificate").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !gw.stderr().contains("keeping the current certificate") {
        assert!(tokio::time::Instant::now() < deadline, "{}", gw.stderr());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(served_fingerprint(&gw).await, new);
    assert_eq!(gw.status().await.tls_fingerprint, new);
}

#[tokio::test]
async fn leaving_loopback_without_tls_is_refused_unless_allowed() {
    let stderr = Gateway::builder()
        .config("{ gateway: { auth: { token: 'x' } } }")
        .bind("0.0.0.0")
        .refuses_to_start()
        .await;
    for needle in [
        "refusing to listen on 0.0.0.0 without TLS",
        "gateway.tls.autoGenerate",
        "gateway.tls.certPath",
        "gateway.allowInsecureRemote",
    ] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }

    // Allowed explicitly: it starts (tests connect to loopback only).
    let gw = Gateway::builder()
        .config("{ gateway: { allowInsecureRemote: true } }")
        .bind("0.0.0.0")
        .start()
        .await;
    assert!(gw.url.starts_with("http://127.0.0.1:"));
    gw.status().await;
    assert!(gw.stderr().contains("WITHOUT TLS"));

    // With TLS it starts without the opt-in.
    let gw = Gateway::builder()
        .config("{ gateway: { tls: { autoGenerate: true } } }")
        .bind("0.0.0.0")
        .start()
        .await;
    assert!(gw.url.starts_with("https://127.0.0.1:"));
    assert!(!gw.status().await.tls_fingerprint.is_empty());
}

/// Bad-token calls with a spoofed `X-Forwarded-For` / `Forwarded` from an untrusted peer
/// all count against the real peer; from a trusted proxy they count per client.
#[tokio::test]
async fn forwarding_headers_are_believed_only_from_trusted_proxies() {
    async fn bad_call(gw: &Gateway, header: &'static str, value: &str) -> tonic::Status {
        let mut req = tonic::Request::new(clawplane_proto::v1::GatewayServiceStatusRequest {});
        req.metadata_mut()
            .insert("authorization", "Bearer wrong".parse().unwrap());
        req.metadata_mut().insert(header, value.parse().unwrap());
        gw.gateway_as(Token::none())
            .await
            .status(req)
            .await
            .expect_err("bad token")
    }
    let limits = "rateLimit: { maxAttempts: 2, windowMs: 60000, lockoutMs: 60000 }";

    // Untrusted peer (no trustedProxies): the headers are ignored, 127.0.0.1 is locked out.
    let gw = Gateway::start_with(&format!("{{ gateway: {{ auth: {{ {limits} }} }} }}")).await;
    for (i, h) in ["x-forwarded-for", "forwarded", "x-forwarded-for"]
        .into_iter()
        .enumerate()
    {
        let v = if h == "forwarded" {
            format!("for=198.51.100.{i}")
        } else {
            format!("198.51.100.{i}")
        };
        let s = bad_call(&gw, h, &v).await;
        if i < 2 {
            assert_error(&s, Code::Unauthenticated, "TOKEN_INVALID");
        } else {
            let md = assert_error(&s, Code::ResourceExhausted, "AUTH_RATE_LIMITED");
            assert_eq!(md["clientAddress"], "127.0.0.1", "the real peer");
        }
    }

    // Trusted proxy: each forwarded client has its own counter.
    let gw = Gateway::start_with(&format!(
        "{{ gateway: {{ trustedProxies: ['127.0.0.1'], auth: {{ {limits} }} }} }}"
    ))
    .await;
    for i in 0..4 {
        let s = bad_call(&gw, "x-forwarded-for", &format!("198.51.100.{i}")).await;
        assert_error(&s, Code::Unauthenticated, "TOKEN_INVALID");
    }
    for i in 0..3 {
        let s = bad_call(&gw, "forwarded", "for=\"[2001:db8::7]:4711\"").await;
        if i < 2 {
            assert_error(&s, Code::Unauthenticated, "TOKEN_INVALID");
        } else {
            let md = assert_error(&s, Code::ResourceExhausted, "AUTH_RATE_LIMITED");
            assert_eq!(md["clientAddress"], "2001:db8::7");
        }
    }
    // The proxy itself is not locked out by its clients' failures.
    gw.status().await;
}

/// A certificate and key (PEM) for `localhost`/`127.0.0.1` written into `dir`.
fn own_pair(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (c, k) = (dir.join("own-cert.pem"), dir.join("own-key.pem"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k, der_fingerprint(cert.der()))
}

#[tokio::test]
async fn own_certificate_files_from_config_or_serve_flags() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, fp) = own_pair(dir.path());

    // gateway.tls.certPath + keyPath.
    let mut gw = Gateway::start_with(&format!(
        "{{ gateway: {{ tls: {{ certPath: {:?}, keyPath: {:?} }} }} }}",
        cert.display().to_string(),
        key.display().to_string()
    ))
    .await;
    gw.tls_ca = Some(cert.clone());
    assert!(gw.is_tls(), "{}", gw.url);
    assert_eq!(gw.status().await.tls_fingerprint, fp);
    assert!(
        !gw.data_dir.join("tls").exists(),
        "nothing is generated when files are given"
    );
    drop(gw);

    // serve --tls-cert/--tls-key.
    let data = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["serve", "--port", "0", "--data-dir"])
        .arg(data.path())
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env("HOME", data.path())
        .env("CLAWPLANE_GATEWAY_TOKEN", "flag-token")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn");
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let line = tokio::time::timeout(START_TIMEOUT, lines.next_line())
        .await
        .expect("listening line")
        .unwrap()
        .unwrap();
    assert!(
        line.starts_with("clawplane listening on https://127.0.0.1:"),
        "{line}"
    );
    let _ = child.start_kill();
    let _ = child.wait().await;

    // Only one of the pair is a usage error.
    let err = Gateway::builder()
        .arg("--tls-cert")
        .arg(cert.to_str().unwrap())
        .refuses_to_start()
        .await;
    assert!(err.contains("--tls-key"), "{err}");
}
