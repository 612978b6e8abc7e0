//! Addresses: loopback, CIDRs (`ipnet`), and the address ranges an outbound request to a
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
}
