//! Addresses: loopback, CIDRs (`ipnet`), the client address behind trusted proxies
//! (`X-Forwarded-For`, `Forwarded`), and the address ranges an outbound request to a
//! user-supplied URL must not reach (SSRF guard).

use ipnet::IpNet;
use std::net::IpAddr;

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address it carries.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Loopback, including IPv4-mapped `::ffff:127.x.y.z`.
pub fn is_loopback(ip: IpAddr) -> bool {
    canonical(ip).is_loopback()
}

/// An IP address or CIDR (`10.0.0.0/8`, `::1`, `fd00::/8`); a bare address is a /32 or /128.
pub fn parse_cidr(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// True when `ip` (IPv4-mapped addresses as IPv4) lies in `net`.
pub fn in_cidr(ip: IpAddr, net: &IpNet) -> bool {
    net.contains(&canonical(ip))
}

/// The address of a URL host that is an IP literal (`[::1]` included).
pub fn ip_literal(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// The `for=` addresses of a `Forwarded` header (RFC 7239), in order; `unknown` and
/// obfuscated identifiers are skipped, ports and IPv6 brackets dropped.
pub fn forwarded_for(forwarded: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for element in forwarded.split(',') {
        for pair in element.split(';') {
            let Some((k, v)) = pair.split_once('=') else {
                continue;
            };
            if !k.trim().eq_ignore_ascii_case("for") {
                continue;
            }
            let v = v.trim().trim_matches('"');
            let host = if let Some(rest) = v.strip_prefix('[') {
                rest.split(']').next().unwrap_or("")
            } else if v.matches(':').count() == 1 {
                v.split(':').next().unwrap_or("")
            } else {
                v
            };
            if let Ok(ip) = host.parse::<IpAddr>() {
                out.push(ip);
            }
        }
    }
    out
}

/// The client address from `X-Forwarded-For` or else `Forwarded: for=`, believed only
/// when the peer is one of `trusted` proxies (IPs or CIDRs): then the rightmost hop that is
/// not itself a trusted proxy. From anyone else the headers are ignored and the peer is the
/// client, so a caller cannot choose the address that rate limits and logs see.
pub fn client_address_from(
    peer: Option<IpAddr>,
    xff: Option<&str>,
    forwarded: Option<&str>,
    trusted: &[String],
) -> Option<IpAddr> {
    let peer = peer?;
    let nets: Vec<_> = trusted.iter().filter_map(|t| parse_cidr(t)).collect();
    let is_trusted = |ip: IpAddr| nets.iter().any(|n| in_cidr(ip, n));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let hops: Vec<IpAddr> = match (xff, forwarded) {
        (Some(xff), _) => xff
            .split(',')
            .filter_map(|h| h.trim().parse::<IpAddr>().ok())
            .collect(),
        (None, Some(f)) => forwarded_for(f),
        (None, None) => return Some(peer),
    };
    hops.iter()
        .rev()
        .find(|ip| !is_trusted(**ip))
        .or(hops.first())
        .copied()
        .or(Some(peer))
}

/// Addresses an egress request must not reach unless private targets are allowed: loopback,
/// private, link-local, CGNAT, unspecified, broadcast, multicast, unique-local.
pub fn forbidden_ip(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64/10 shared (CGNAT)
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
                || (s[0] & 0xffc0) == 0xfe80 // fe80::/10 link local
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs() {
        let net = parse_cidr("10.0.0.0/8").unwrap();
        assert!(in_cidr(ip("10.1.2.3"), &net));
        assert!(in_cidr(ip("::ffff:10.1.2.3"), &net));
        assert!(!in_cidr(ip("11.0.0.1"), &net));
        let one = parse_cidr(" 192.0.2.7 ").unwrap();
        assert!(in_cidr(ip("192.0.2.7"), &one) && !in_cidr(ip("192.0.2.8"), &one));
        assert!(in_cidr(ip("fd00::1"), &parse_cidr("fd00::/8").unwrap()));
        for bad in ["", "10.0.0.0/33", "nope", "::1/129"] {
            assert!(parse_cidr(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn loopback_and_forbidden() {
        assert!(is_loopback(ip("127.0.0.9")) && is_loopback(ip("::ffff:127.0.0.1")));
        assert!(is_loopback(ip("::1")) && !is_loopback(ip("192.0.2.1")));
        for bad in [
            "127.0.0.1",
            "10.0.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
        ] {
            assert!(forbidden_ip(ip(bad)), "{bad}");
        }
        for bad in ["fd12::1", "fe80::1", "::ffff:192.168.0.1", "ff02::1"] {
            assert!(forbidden_ip(ip(bad)), "{bad}");
        }
        for ok in ["93.184.216.34", "2606:4700::1111"] {
            assert!(!forbidden_ip(ip(ok)), "{ok}");
        }
        assert_eq!(ip_literal("[::1]"), Some(ip("::1")));
        assert_eq!(ip_literal("example.com"), None);
    }

    #[test]
    fn client_address_behind_trusted_proxies() {
        let t = vec!["10.0.0.0/8".to_string(), "127.0.0.1".to_string()];
        let xff =
            |peer: &str, xff: Option<&str>| client_address_from(Some(ip(peer)), xff, None, &t);
        assert_eq!(
            xff("127.0.0.1", Some("203.0.113.9, 10.1.2.3")),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(xff("192.0.2.7", Some("127.0.0.1")), Some(ip("192.0.2.7")));
        assert_eq!(xff("127.0.0.1", None), Some(ip("127.0.0.1")));
        assert_eq!(
            client_address_from(
                Some(ip("127.0.0.1")),
                None,
                Some("for=192.0.2.60;proto=http, for=\"[2001:db8::17]:4711\""),
                &t
            ),
            Some(ip("2001:db8::17"))
        );
        assert_eq!(
            client_address_from(Some(ip("192.0.2.7")), None, Some("for=10.9.9.9"), &t),
            Some(ip("192.0.2.7"))
        );
        assert_eq!(
            forwarded_for("For=\"198.51.100.17:80\";by=x, for=unknown"),
            vec![ip("198.51.100.17")]
        );
        assert_eq!(client_address_from(None, Some("192.0.2.1"), None, &t), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, failure_persistence: None, ..Default::default() })]

        /// Whatever a caller sends as headers or an operator writes as CIDRs, the parsers
        /// answer without panicking, and no peer means no client.
        #[test]
        fn address_parsers_are_total(
            cidr in proptest::prop_oneof![proptest::arbitrary::any::<String>(), "[0-9./:a-f]{0,45}"],
            xff in proptest::option::of(proptest::prop_oneof![proptest::arbitrary::any::<String>(), "([0-9.]{0,15}, ?){0,4}"]),
            forwarded in proptest::option::of("((for|by)=\"?[0-9a-f.:\\[\\]]{0,20}\"?[;,] ?){0,4}"),
            peer in proptest::option::of(proptest::arbitrary::any::<[u8; 4]>()),
            trusted in proptest::collection::vec("[0-9./]{0,18}", 0..3),
        ) {
            if let Some(net) = parse_cidr(&cidr) {
                proptest::prop_assert!(net.prefix_len() <= 128);
            }
            let peer = peer.map(IpAddr::from);
            let addr = client_address_from(peer, xff.as_deref(), forwarded.as_deref(), &trusted);
            proptest::prop_assert_eq!(addr.is_none(), peer.is_none());
            let _ = forwarded_for(&cidr);
        }
    }
}
