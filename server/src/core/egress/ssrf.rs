//! The SSRF guard: webhook targets are refused when they name or resolve to a loopback,
//! private, link-local, unique-local, shared or unspecified address (the classes are
//! `clawplane_util::net::forbidden_ip`), unless `webhooks.egress.allowPrivateTargets`.
//! Delivery connects to exactly the addresses checked, so DNS cannot rebind in between.

use clawplane_util::net::{forbidden_ip, ip_literal};
use std::net::SocketAddr;

/// True when the URL's host itself (an IP literal, `localhost`) is a forbidden target;
/// checked without DNS, at config load and on create.
pub(super) fn names_private_host(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    ip_literal(&host).is_some_and(forbidden_ip)
        || host == "localhost"
        || host.ends_with(".localhost")
}

/// Resolves the URL's host; refuses forbidden addresses unless allowed.
pub(super) async fn resolve_target(
    url: &reqwest::Url,
    allow_private: bool,
) -> std::result::Result<Vec<SocketAddr>, String> {
    let host = url.host_str().ok_or("the URL has no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    if !allow_private && let Some(bad) = addrs.iter().find(|a| forbidden_ip(a.ip())) {
        return Err(format!(
            "{host} resolves to {} (loopback or private); refused unless webhooks.egress.allowPrivateTargets is true",
            bad.ip()
        ));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_targets() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
            "100.64.0.1",
            "198.18.0.1",
            "240.0.0.1",
            "::a00:1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(forbidden_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "2606:4700::1111", "172.32.0.1"] {
            assert!(!forbidden_ip(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn private_host_names() {
        for url in [
            "http://localhost:9/",
            "http://a.localhost/",
            "http://[::1]/",
            "http://10.0.0.1/",
        ] {
            assert!(names_private_host(&url.parse().unwrap()), "{url}");
        }
        assert!(!names_private_host(
            &"https://example.com/".parse().unwrap()
        ));
    }
}
