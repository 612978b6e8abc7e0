//! TLS for `https://` (and `wss://`) gateway URLs: rustls with the ring provider, trusting
//! the Mozilla root set (webpki-roots), a CA file, or exactly one pinned certificate.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tonic::codegen::http::Uri;

/// How to check the gateway's certificate on an `https://` URL. With neither field set the
/// Mozilla root set is trusted (a publicly issued certificate).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// A PEM file of CA certificates (or the gateway's self-signed certificate itself) to
    /// trust instead of the public roots (`--tls-ca` / `CLAWPLANE_TLS_CA`).
    pub ca_file: Option<PathBuf>,
    /// The SHA-256 fingerprint of the one certificate to accept (hex, with or without
    /// colons, optionally prefixed `sha256:`; `--tls-fingerprint` /
    /// `CLAWPLANE_TLS_FINGERPRINT`). Host names and expiry are not checked when pinning.
    pub fingerprint: Option<String>,
}

/// The SHA-256 fingerprint of a DER certificate: uppercase hex pairs joined by colons (the
/// format `GatewayService/Status` reports).
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses a fingerprint given by a person: 64 hex digits, colons/spaces optional, an
/// optional `sha256:` prefix. Returns the canonical form (see [`fingerprint`]).
pub fn parse_fingerprint(s: &str) -> Result<String, String> {
    let s = s.trim();
    let s = s
        .strip_prefix("sha256:")
        .or_else(|| s.strip_prefix("SHA256:"))
        .or_else(|| s.strip_prefix("sha256="))
        .unwrap_or(s);
    let hex: String = s
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '-'))
        .collect::<String>()
        .to_ascii_uppercase();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "{s:?} is not a SHA-256 fingerprint (64 hex digits, colons optional)"
        ));
    }
    Ok(hex
        .as_bytes()
        .chunks(2)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect::<Vec<_>>()
        .join(":"))
}

/// The fingerprint of the first certificate in a PEM file, if it has one.
pub fn pem_file_fingerprint(path: &std::path::Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let first = CertificateDer::pem_slice_iter(&bytes).next()?.ok()?;
    Some(fingerprint(first.as_ref()))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Where the pinning verifier records a fingerprint mismatch (for the error message).
pub(crate) type Mismatch = Arc<Mutex<Option<String>>>;

/// Accepts exactly the certificate whose SHA-256 matches; records a mismatch for the
/// error message.
#[derive(Debug)]
struct Pinned {
    expected: String,
    provider: Arc<CryptoProvider>,
    mismatch: Arc<Mutex<Option<String>>>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = fingerprint(end_entity.as_ref());
        if got == self.expected {
            return Ok(ServerCertVerified::assertion());
        }
        let msg = format!(
            "certificate fingerprint mismatch: expected {}, got {got}",
            self.expected
        );
        if let Ok(mut m) = self.mismatch.lock() {
            *m = Some(msg.clone());
        }
        Err(rustls::Error::General(msg))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A rustls client configuration for `opts` (ALPN `h2`), and where a pinning mismatch is
/// recorded.
pub(crate) fn client_config(
    opts: &TlsOptions,
    alpn: &[&[u8]],
) -> Result<(Arc<ClientConfig>, Mismatch), String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mismatch = Arc::new(Mutex::new(None));
    let mut cfg = if let Some(fp) = &opts.fingerprint {
        let expected = parse_fingerprint(fp)?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                expected,
                provider,
                mismatch: mismatch.clone(),
            }))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        match &opts.ca_file {
            Some(path) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
                for cert in CertificateDer::pem_slice_iter(&bytes) {
                    let cert = cert.map_err(|e| {
                        format!("{} is not a PEM certificate file: {e}", path.display())
                    })?;
                    roots.add(cert).map_err(|e| {
                        format!("{} holds an unusable certificate: {e}", path.display())
                    })?;
                }
                if roots.is_empty() {
                    return Err(format!("{} holds no PEM certificate", path.display()));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok((Arc::new(cfg), mismatch))
}

/// Dials TCP and performs the TLS handshake for tonic (`Endpoint::connect_with_connector`).
#[derive(Clone)]
pub(crate) struct Connector {
    pub(crate) config: Arc<ClientConfig>,
}

impl tower::Service<Uri> for Connector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let config = self.config.clone();
        Box::pin(async move {
            let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
            let host = uri
                .host()
                .ok_or_else(|| invalid("the URL has no host"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            let name = ServerName::try_from(host)
                .map_err(|_| invalid("the URL's host is not a valid TLS server name"))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(tls))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let hex = "ab".repeat(32);
        let canon = parse_fingerprint(&hex).unwrap();
        assert_eq!(canon.len(), 95);
        assert!(canon.starts_with("AB:AB:"));
        assert_eq!(parse_fingerprint(&canon).unwrap(), canon);
        assert_eq!(parse_fingerprint(&format!("sha256:{hex}")).unwrap(), canon);
        assert!(parse_fingerprint("abc").is_err());
        assert_eq!(fingerprint(b"x").len(), 95);
    }
}
