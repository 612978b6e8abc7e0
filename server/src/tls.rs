//! TLS for the one port: rustls (ring provider) with a certificate resolver that is swapped
//! when the certificate files change, the self-signed certificate of
//! `gateway.tls.autoGenerate`, and the accept loop that serves the router over TLS (HTTP/1.1
//! with upgrades and HTTP/2 via ALPN).

use rustls::{
    ServerConfig,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use sha2::{Digest, Sha256};
use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};
use tokio_util::sync::CancellationToken;

/// How often the certificate files are checked for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);
/// How long a client may take to finish the TLS handshake.
/// How long a client may take to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS setup problem.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} is not a PEM certificate chain: {message}")]
    BadCertificate { path: PathBuf, message: String },
    #[error("{path} holds no usable PEM private key: {message}")]
    BadKey { path: PathBuf, message: String },
    #[error("the key in {key} does not match the certificate in {cert}: {message}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    #[error("cannot build the TLS configuration: {0}")]
    Config(String),
}

/// The SHA-256 fingerprint of a DER certificate: uppercase hex pairs joined by colons.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The certificate and key files served (already resolved: flags, config, autoGenerate).
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The default location of the generated certificate: `<data-dir>/tls/cert.pem`, `key.pem`.
pub fn default_files(data_dir: &Path) -> CertFiles {
    let dir = data_dir.join("tls");
    CertFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    }
}

/// Writes a self-signed certificate (SANs localhost, 127.0.0.1, ::1 and `bind` when it is a
/// specific address) into `files` unless both files exist. Returns true when it generated.
pub fn ensure_self_signed(files: &CertFiles, bind: IpAddr) -> Result<bool, TlsError> {
    match (files.cert.exists(), files.key.exists()) {
        (true, true) => return Ok(false),
        (false, false) => {}
        (cert, _) => {
            // Never overwrite half of someone's pair.
            let (have, missing) = if cert {
                (&files.cert, &files.key)
            } else {
                (&files.key, &files.cert)
            };
            return Err(TlsError::Generate(format!(
                "{} exists but {} does not; supply both or remove it to generate a new pair",
                have.display(),
                missing.display()
            )));
        }
    }
    let mut sans = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !bind.is_unspecified() && !sans.contains(&bind.to_string()) {
        sans.push(bind.to_string());
    }
    let mut params =
        rcgen::CertificateParams::new(sans).map_err(|e| TlsError::Generate(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "clawplane self-signed");
    let key = rcgen::KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    for dir in [files.cert.parent(), files.key.parent()]
        .into_iter()
        .flatten()
    {
        create_private_dir(dir)?;
    }
    write_file(&files.key, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&files.cert, cert.pem().as_bytes(), 0o644)?;
    Ok(true)
}

fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    if dir.as_os_str().is_empty() || dir.exists() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(|source| TlsError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes atomically (temp file + rename) with `mode` on unix.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write as _;
    let err = |source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(&tmp).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// A loaded certificate with its fingerprint.
struct Loaded {
    key: Arc<CertifiedKey>,
    fingerprint: String,
    /// The file contents it was loaded from (to notice changes).
    source: (Vec<u8>, Vec<u8>),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses a PEM chain and key and checks that they belong together.
fn parse(files: &CertFiles, cert_pem: &[u8], key_pem: &[u8]) -> Result<Loaded, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: files.cert.clone(),
            message: e.to_string(),
        })?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    };
    let fingerprint = fingerprint(leaf.as_ref());
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::BadKey {
        path: files.key.clone(),
        message: e.to_string(),
    })?;
    let signer =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| TlsError::BadKey {
            path: files.key.clone(),
            message: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|e| TlsError::Mismatch {
        cert: files.cert.clone(),
        key: files.key.clone(),
        message: e.to_string(),
    })?;
    Ok(Loaded {
        key: Arc::new(certified),
        fingerprint,
        source: (cert_pem.to_vec(), key_pem.to_vec()),
    })
}

fn load(files: &CertFiles) -> Result<Loaded, TlsError> {
    let cert = read(&files.cert)?;
    let key = read(&files.key)?;
    parse(files, &cert, &key)
}

/// The certificate the server presents; swapped when the files change, so new handshakes
/// get the new certificate while open connections keep theirs.
pub struct CertResolver {
    files: CertFiles,
    current: RwLock<Arc<Loaded>>,
}

impl std::fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertResolver")
            .field("files", &self.files)
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().key.clone())
    }
}

impl CertResolver {
    /// Loads the files (an error stops the start).
    pub fn load(files: CertFiles) -> Result<Arc<Self>, TlsError> {
        let loaded = load(&files)?;
        Ok(Arc::new(CertResolver {
            files,
            current: RwLock::new(Arc::new(loaded)),
        }))
    }

    fn current(&self) -> Arc<Loaded> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The fingerprint of the certificate served now.
    pub fn fingerprint(&self) -> String {
        self.current().fingerprint.clone()
    }

    /// The files served.
    pub fn files(&self) -> &CertFiles {
        &self.files
    }

    /// Re-reads the files; swaps in a changed, valid certificate. `Ok(Some(fp))` after a
    /// swap, `Ok(None)` when nothing changed, `Err` (old certificate kept) for a bad change.
    pub fn reload(&self) -> Result<Option<String>, TlsError> {
        let cert = read(&self.files.cert)?;
        let key = read(&self.files.key)?;
        let cur = self.current();
        if cur.source.0 == cert && cur.source.1 == key {
            return Ok(None);
        }
        let loaded = parse(&self.files, &cert, &key)?;
        let fp = loaded.fingerprint.clone();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
        Ok(Some(fp))
    }

    /// Polls the files every [`RELOAD_INTERVAL`] until `stop`; logs swaps and errors (a bad
    /// file is reported once per distinct error until it changes).
    pub fn spawn_watcher(self: &Arc<Self>, stop: CancellationToken) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut last_error: Option<String> = None;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(RELOAD_INTERVAL) => {}
                }
                let r = tokio::task::spawn_blocking({
                    let me = me.clone();
                    move || me.reload()
                })
                .await;
                match r {
                    Ok(Ok(Some(fp))) => {
                        last_error = None;
                        tracing::info!(
                            cert = %me.files.cert.display(),
                            fingerprint = %fp,
                            "TLS certificate reloaded; new connections get it"
                        );
                    }
                    Ok(Ok(None)) => last_error = None,
                    Ok(Err(e)) => {
                        let msg = e.to_string();
                        if last_error.as_deref() != Some(msg.as_str()) {
                            tracing::error!(
                                error = %msg,
                                fingerprint = %me.fingerprint(),
                                "TLS certificate files changed but cannot be used; keeping the current certificate"
                            );
                            last_error = Some(msg);
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "TLS reload task failed"),
                }
            }
        });
    }

    /// The rustls server configuration: ring provider, TLS 1.2/1.3, ALPN h2 + http/1.1.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

pub use clawplane_util::net::is_loopback;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_and_reloads_on_change() {
        let dir = std::env::temp_dir().join(format!("cp-tls-{}", uuid::Uuid::new_v4()));
        let files = default_files(&dir);
        assert!(ensure_self_signed(&files, IpAddr::from([127, 0, 0, 1])).unwrap());
        assert!(!ensure_self_signed(&files, IpAddr::from([127, 0, 0, 1])).unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&files.key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let r = CertResolver::load(files.clone()).unwrap();
        let fp = r.fingerprint();
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert_eq!(r.reload().unwrap(), None);
        // A bad new file keeps the old certificate.
        std::fs::write(&files.cert, "garbage").unwrap();
        assert!(r.reload().is_err());
        assert_eq!(r.fingerprint(), fp);
        // A new certificate is swapped in.
        std::fs::remove_file(&files.cert).unwrap();
        std::fs::remove_file(&files.key).unwrap();
        ensure_self_signed(&files, IpAddr::from([127, 0, 0, 1])).unwrap();
        let new = r.reload().unwrap().expect("swapped");
        assert_ne!(new, fp);
        assert_eq!(r.fingerprint(), new);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
