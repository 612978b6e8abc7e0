//! Local defaults: where the gateway is and which token to present.

use std::path::{Path, PathBuf};

/// The gateway URL used when nothing else is given.
pub const DEFAULT_URL: &str = "http://127.0.0.1:18789";

/// Name of the token file the gateway writes into its data directory on first start.
pub const TOKEN_FILE: &str = "gateway.token";

/// Where a discovered token came from (useful in error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// Passed explicitly (e.g. `--token`).
    Argument,
    /// Environment variable (`CLAWPLANE_TOKEN` or `CLAWPLANE_GATEWAY_TOKEN`).
    Env(&'static str),
    /// Read from a local gateway's token file.
    File(PathBuf),
    /// No token found.
    None,
}

impl std::fmt::Display for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Argument => f.write_str("--token"),
            TokenSource::Env(var) => write!(f, "${var}"),
            TokenSource::File(path) => write!(f, "{}", path.display()),
            TokenSource::None => f.write_str("no token"),
        }
    }
}

/// The result of [`discover_detailed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// The gateway URL.
    pub url: String,
    /// The token, if any was found.
    pub token: Option<String>,
    /// Where the token came from.
    pub token_source: TokenSource,
    /// For an `https://` loopback URL: the SHA-256 fingerprint of the local gateway's
    /// auto-generated certificate (`<data dir>/tls/cert.pem`), to pin when no CA or
    /// fingerprint is given.
    pub tls_fingerprint: Option<String>,
}

/// Where `gateway.tls.autoGenerate` writes the certificate, relative to the data dir.
pub const TLS_CERT_FILE: &str = "tls/cert.pem";

/// Fills in local defaults for the gateway URL and token.
///
/// - url: `url`, else env `CLAWPLANE_URL`, else [`DEFAULT_URL`].
/// - token: `token`, else env `CLAWPLANE_TOKEN`, else env `CLAWPLANE_GATEWAY_TOKEN`, else env
///   `OPENCLAW_GATEWAY_TOKEN`, else the
///   file `<data dir>/gateway.token` where the data dir is env `CLAWPLANE_DATA_DIR` or
///   `~/.clawplane` — the file is only read when the URL's host is a loopback address, so a
///   local secret is never sent to a remote gateway.
///
/// Empty strings count as absent.
pub fn discover(url: Option<String>, token: Option<String>) -> (String, Option<String>) {
    let d = discover_detailed(url, token, None);
    (d.url, d.token)
}

/// Like [`discover`], with an explicit data directory (e.g. `--data-dir`) taking precedence
/// over `CLAWPLANE_DATA_DIR`, and reporting where the token came from.
pub fn discover_detailed(
    url: Option<String>,
    token: Option<String>,
    data_dir: Option<&Path>,
) -> Discovered {
    discover_with_env(url, token, data_dir, &|k| std::env::var(k).ok())
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

pub(crate) fn discover_with_env(
    url: Option<String>,
    token: Option<String>,
    data_dir: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Discovered {
    let url = non_empty(url)
        .or_else(|| non_empty(env("CLAWPLANE_URL")))
        .unwrap_or_else(|| DEFAULT_URL.to_string());
    let url = normalize_url(&url);

    let local_dir = || {
        data_dir
            .map(Path::to_path_buf)
            .or_else(|| non_empty(env("CLAWPLANE_DATA_DIR")).map(PathBuf::from))
            .or_else(|| home_dir(env).map(|h| h.join(".clawplane")))
    };
    let tls_fingerprint = if url.starts_with("https://") && is_loopback_url(&url) {
        local_dir().and_then(|d| crate::tls::pem_file_fingerprint(&d.join(TLS_CERT_FILE)))
    } else {
        None
    };
    let found = if let Some(t) = non_empty(token) {
        Some((t, TokenSource::Argument))
    } else if let Some(t) = non_empty(env("CLAWPLANE_TOKEN")) {
        Some((t, TokenSource::Env("CLAWPLANE_TOKEN")))
    } else if let Some(t) = non_empty(env("CLAWPLANE_GATEWAY_TOKEN")) {
        Some((t, TokenSource::Env("CLAWPLANE_GATEWAY_TOKEN")))
    } else if let Some(t) = non_empty(env("OPENCLAW_GATEWAY_TOKEN")) {
        // OpenClaw's name, so a migrating user's environment keeps working.
        Some((t, TokenSource::Env("OPENCLAW_GATEWAY_TOKEN")))
    } else if is_loopback_url(&url) {
        local_dir().and_then(|dir| {
            let path = dir.join(TOKEN_FILE);
            let text = std::fs::read_to_string(&path).ok()?;
            non_empty(Some(text)).map(|t| (t, TokenSource::File(path)))
        })
    } else {
        None
    };
    let (token, token_source) = match found {
        Some((t, s)) => (Some(t), s),
        None => (None, TokenSource::None),
    };
    Discovered {
        url,
        token,
        token_source,
        tls_fingerprint,
    }
}

fn home_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    non_empty(env("HOME"))
        .or_else(|| non_empty(env("USERPROFILE")))
        .map(PathBuf::from)
}

/// Adds `http://` when the URL has no scheme (`127.0.0.1:18789` -> `http://127.0.0.1:18789`),
/// maps `ws://`/`wss://` to `http://`/`https://` (one port serves both), and drops a
/// trailing `/`.
pub fn normalize_url(url: &str) -> String {
    let url = url.trim();
    let url = if let Some(rest) = url.strip_prefix("wss://") {
        format!("https://{rest}")
    } else if let Some(rest) = url.strip_prefix("ws://") {
        format!("http://{rest}")
    } else if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    url.trim_end_matches('/').to_string()
}

/// The host part of a URL (without brackets for IPv6), if it has one.
fn url_host(url: &str) -> Option<String> {
    let uri: tonic::codegen::http::Uri = url.parse().ok()?;
    let host = uri.host()?;
    Some(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    )
}

/// True when the URL points at this machine (`localhost`, `127.0.0.0/8`, `::1`).
pub fn is_loopback_url(url: &str) -> bool {
    let Some(host) = url_host(url) else {
        return false;
    };
    if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults() {
        let d = discover_with_env(None, None, None, &env_of(&[]));
        assert_eq!(d.url, DEFAULT_URL);
        assert_eq!(d.token, None);
        assert_eq!(d.token_source, TokenSource::None);
    }

    #[test]
    fn precedence() {
        let env = env_of(&[
            ("CLAWPLANE_URL", "http://10.0.0.1:1"),
            ("CLAWPLANE_TOKEN", "envtok"),
            ("CLAWPLANE_GATEWAY_TOKEN", "gwtok"),
        ]);
        let d = discover_with_env(Some("localhost:5".into()), Some("arg".into()), None, &env);
        assert_eq!(d.url, "http://localhost:5");
        assert_eq!(d.token.as_deref(), Some("arg"));
        let d = discover_with_env(None, None, None, &env);
        assert_eq!(d.url, "http://10.0.0.1:1");
        assert_eq!(d.token.as_deref(), Some("envtok"));
        let env = env_of(&[("CLAWPLANE_GATEWAY_TOKEN", "gwtok")]);
        let d = discover_with_env(None, Some(String::new()), None, &env);
        assert_eq!(d.token.as_deref(), Some("gwtok"));
        assert_eq!(d.token_source, TokenSource::Env("CLAWPLANE_GATEWAY_TOKEN"));
        // OpenClaw's variable only when ours are absent.
        let env = env_of(&[("OPENCLAW_GATEWAY_TOKEN", "theirs")]);
        let d = discover_with_env(None, None, None, &env);
        assert_eq!(d.token.as_deref(), Some("theirs"));
        assert_eq!(d.token_source, TokenSource::Env("OPENCLAW_GATEWAY_TOKEN"));
        let env = env_of(&[
            ("OPENCLAW_GATEWAY_TOKEN", "theirs"),
            ("CLAWPLANE_GATEWAY_TOKEN", "gwtok"),
        ]);
        let d = discover_with_env(None, None, None, &env);
        assert_eq!(d.token.as_deref(), Some("gwtok"));
    }

    #[test]
    fn token_file_only_for_loopback() {
        let dir = std::env::temp_dir().join(format!("clawplane-sdk-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(TOKEN_FILE), "filetok\n").expect("write");
        let ds = dir.to_string_lossy().to_string();
        let env = env_of(&[("CLAWPLANE_DATA_DIR", ds.as_str())]);
        let d = discover_with_env(Some("http://127.0.0.1:9".into()), None, None, &env);
        assert_eq!(d.token.as_deref(), Some("filetok"));
        assert_eq!(d.token_source, TokenSource::File(dir.join(TOKEN_FILE)));
        let d = discover_with_env(Some("http://[::1]:9".into()), None, None, &env);
        assert_eq!(d.token.as_deref(), Some("filetok"));
        let d = discover_with_env(Some("http://example.com:9".into()), None, None, &env);
        assert_eq!(d.token, None);
        // An explicit data dir wins over the env var.
        let d = discover_with_env(
            Some("http://localhost:9".into()),
            None,
            Some(Path::new("/nonexistent-clawplane")),
            &env,
        );
        assert_eq!(d.token, None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback_url("http://127.0.0.1:18789"));
        assert!(is_loopback_url("http://127.1.2.3"));
        assert!(is_loopback_url("http://localhost:1"));
        assert!(is_loopback_url("http://[::1]:1"));
        assert!(!is_loopback_url("http://192.168.1.1:1"));
        assert!(!is_loopback_url("http://gateway.example:1"));
    }
}
