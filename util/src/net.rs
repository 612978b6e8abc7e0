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

/// The proxy headers a caller may send. Any of them on a request makes its caller non-local,
/// whoever the peer is (as OpenClaw's `direct_local`).
pub const PROXY_HEADERS: [&str; 6] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-real-ip",
];

/// Who is calling, decided once for every surface (lockouts, webhook key visibility and
/// the calls log, pairing auto-approval, security events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The client address: the socket peer, or — when the peer is a trusted proxy — the
    /// rightmost hop of its forwarding header that is not itself a trusted proxy.
    pub ip: Option<IpAddr>,
    /// The socket peer is loopback and the request carries no proxy header at all.
    pub local: bool,
}

/// Decides [`Client`] from the socket `peer`, the request's headers as `(name, value)` pairs
/// (names case-insensitive; a repeated header is several pairs, joined in order) and
/// `trusted` proxies (IPs or CIDRs; unparseable entries are ignored).
///
/// From a trusted peer the hops come from `X-Forwarded-For` when present, else from
/// `Forwarded: for=`, else from `X-Real-IP`; the walk goes right to left past trusted
/// proxies, and a hop that is not an address (`unknown`, an obfuscated identifier, garbage)
/// ends it: the client is then the nearest hop to its right (or the peer), never an
/// address the far side chose. All hops trusted: the leftmost. From any other peer the
/// headers are ignored and the peer is the client.
pub fn client<'a>(
    peer: Option<IpAddr>,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    trusted: &[String],
) -> Client {
    let (mut xff, mut fwd, mut real) = (Vec::new(), Vec::new(), Vec::new());
    let mut proxied = false;
    for (name, value) in headers {
        let Some(known) = PROXY_HEADERS.iter().find(|h| h.eq_ignore_ascii_case(name)) else {
            continue;
        };
        proxied = true;
        match *known {
            "x-forwarded-for" => xff.push(value),
            "forwarded" => fwd.push(value),
            "x-real-ip" => real.push(value),
            _ => {}
        }
    }
    let local = !proxied && peer.is_some_and(is_loopback);
    let Some(peer) = peer.map(canonical) else {
        return Client { ip: None, local };
    };
    let nets: Vec<_> = trusted.iter().filter_map(|t| parse_cidr(t)).collect();
    let is_trusted = |ip: IpAddr| nets.iter().any(|n| in_cidr(ip, n));
    if !is_trusted(peer) {
        return Client {
            ip: Some(peer),
            local,
        };
    }
    let hops: Vec<Option<IpAddr>> = if !xff.is_empty() {
        xff.join(",").split(',').map(parse_hop).collect()
    } else if !fwd.is_empty() {
        forwarded_hops(&fwd.join(","))
    } else {
        real.iter().map(|v| parse_hop(v)).collect()
    };
    let mut nearest = peer;
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) if is_trusted(*ip) => nearest = canonical(*ip),
            Some(ip) => {
                return Client {
                    ip: Some(canonical(*ip)),
                    local,
                };
            }
            None => break,
        }
    }
    Client {
        ip: Some(nearest),
        local,
    }
}

/// One hop of `X-Forwarded-For` (or a `Forwarded` `for=` value): `a.b.c.d`, `a.b.c.d:port`,
/// a bare IPv6 address, `[v6]` or `[v6]:port`, optionally quoted. Anything else is `None`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let h = hop.trim().trim_matches('"').trim();
    if let Some(rest) = h.strip_prefix('[') {
        let (addr, tail) = rest.split_once(']')?;
        let port_ok = tail.is_empty()
            || tail
                .strip_prefix(':')
                .is_some_and(|p| p.parse::<u16>().is_ok());
        if !port_ok {
            return None;
        }
        return addr.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Some(ip);
    }
    let (addr, port) = h.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    addr.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The `for=` hops of a `Forwarded` header (RFC 7239), in order; `None` for `unknown`,
/// obfuscated identifiers and garbage; an element without `for=` is no hop.
fn forwarded_hops(forwarded: &str) -> Vec<Option<IpAddr>> {
    let mut out = Vec::new();
    for element in forwarded.split(',') {
        for pair in element.split(';') {
            if let Some((k, v)) = pair.split_once('=')
                && k.trim().eq_ignore_ascii_case("for")
            {
                out.push(parse_hop(v));
            }
        }
    }
    out
}

/// The `for=` addresses of a `Forwarded` header (RFC 7239), in order; `unknown` and
/// obfuscated identifiers are skipped, ports and IPv6 brackets dropped.
pub fn forwarded_for(forwarded: &str) -> Vec<IpAddr> {
    forwarded_hops(forwarded).into_iter().flatten().collect()
}

/// Addresses an egress request must not reach unless private targets are allowed: loopback,
/// private, link-local, CGNAT, benchmarking (198.18/15), reserved (240/4, broadcast
/// included), unspecified, multicast, unique-local; and IPv6 forms that carry an IPv4
/// address (IPv4-mapped, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) when that address is
/// forbidden, the deprecated IPv4-compatible `::a.b.c.d` and local-use NAT64
/// `64:ff9b:1::/48` always.
pub fn forbidden_ip(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_multicast()
                || o[0] == 0
                || o[0] >= 240 // 240/4 reserved, 255.255.255.255 broadcast
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64/10 shared (CGNAT)
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18/15 benchmarking
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            let embedded = |hi: u16, lo: u16| {
                forbidden_ip(IpAddr::V4(std::net::Ipv4Addr::from(
                    (u32::from(hi) << 16) | u32::from(lo),
                )))
            };
            a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || s[..6] == [0; 6] // ::/96 IPv4-compatible (deprecated)
                || (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] && embedded(s[6], s[7])) // NAT64
                || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // 64:ff9b:1::/48 local NAT64
                || (s[0] == 0x2002 && embedded(s[1], s[2])) // 6to4
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
    fn reserved_and_embedded_ipv4_ranges_are_forbidden() {
        for bad in [
            "198.18.0.1",
            "198.19.255.255",
            "240.0.0.1",
            "255.255.255.255",
            "::7f00:1",           // IPv4-compatible ::127.0.0.1
            "::5db8:d822",        // IPv4-compatible, even of a public address
            "64:ff9b::7f00:1",    // NAT64 of 127.0.0.1
            "64:ff9b::a00:1",     // NAT64 of 10.0.0.1
            "64:ff9b::a9fe:a9fe", // NAT64 of 169.254.169.254
            "64:ff9b:1::5db8:d822",
            "2002:7f00:1::1", // 6to4 of 127.0.0.1
        ] {
            assert!(forbidden_ip(ip(bad)), "{bad}");
        }
        for ok in [
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.254",
            "64:ff9b::5db8:d822", // NAT64 of 93.184.216.34
            "2002:5db8:d822::1",
        ] {
            assert!(!forbidden_ip(ip(ok)), "{ok}");
        }
    }

    #[test]
    fn client_is_decided_once() {
        struct Case {
            name: &'static str,
            peer: &'static str,
            headers: &'static [(&'static str, &'static str)],
            ip: &'static str,
            local: bool,
        }
        let trusted = vec!["10.0.0.0/8".to_string(), "127.0.0.1".to_string()];
        let cases = [
            Case {
                name: "loopback peer, no headers: local",
                peer: "127.0.0.1",
                headers: &[],
                ip: "127.0.0.1",
                local: true,
            },
            Case {
                name: "IPv4-mapped loopback peer: local",
                peer: "::ffff:127.0.0.1",
                headers: &[],
                ip: "127.0.0.1",
                local: true,
            },
            Case {
                name: "trusted peer, XFF with a port on the untrusted hop",
                peer: "127.0.0.1",
                headers: &[("x-forwarded-for", "127.0.0.1, 203.0.113.5:443")],
                ip: "203.0.113.5",
                local: false,
            },
            Case {
                name: "two XFF lines are one list, in order",
                peer: "127.0.0.1",
                headers: &[
                    ("X-Forwarded-For", "198.51.100.1"),
                    ("x-forwarded-for", "203.0.113.9, 10.1.2.3"),
                ],
                ip: "203.0.113.9",
                local: false,
            },
            Case {
                name: "XFF wins over Forwarded",
                peer: "10.0.0.2",
                headers: &[
                    ("forwarded", "for=198.51.100.7"),
                    ("x-forwarded-for", "203.0.113.8"),
                ],
                ip: "203.0.113.8",
                local: false,
            },
            Case {
                name: "Forwarded alone, IPv6 in brackets with a port",
                peer: "10.0.0.2",
                headers: &[(
                    "forwarded",
                    "for=192.0.2.60;proto=http, for=\"[2001:db8::17]:4711\"",
                )],
                ip: "2001:db8::17",
                local: false,
            },
            Case {
                name: "XFF IPv6 in brackets with a port",
                peer: "127.0.0.1",
                headers: &[("x-forwarded-for", "[2001:db8::1]:443")],
                ip: "2001:db8::1",
                local: false,
            },
            Case {
                name: "bare IPv6 hop",
                peer: "127.0.0.1",
                headers: &[("x-forwarded-for", "2001:db8::2")],
                ip: "2001:db8::2",
                local: false,
            },
            Case {
                name: "a garbage hop ends the walk at the nearest trusted hop",
                peer: "127.0.0.1",
                headers: &[("x-forwarded-for", "203.0.113.1, not-an-ip, 10.9.9.9")],
                ip: "10.9.9.9",
                local: false,
            },
            Case {
                name: "garbage right at the peer: the peer",
                peer: "127.0.0.1",
                headers: &[("x-forwarded-for", "203.0.113.1, 1.2.3.4.5")],
                ip: "127.0.0.1",
                local: false,
            },
            Case {
                name: "Forwarded for=unknown ends the walk",
                peer: "10.0.0.2",
                headers: &[("forwarded", "for=203.0.113.1, for=unknown")],
                ip: "10.0.0.2",
                local: false,
            },
            Case {
                name: "all hops trusted: the leftmost",
                peer: "127.0.0.1",
                headers: &[("x-forwarded-for", "10.1.1.1, 10.2.2.2")],
                ip: "10.1.1.1",
                local: false,
            },
            Case {
                name: "X-Real-IP from a trusted peer when nothing else",
                peer: "10.0.0.2",
                headers: &[("x-real-ip", "203.0.113.77")],
                ip: "203.0.113.77",
                local: false,
            },
            Case {
                name: "untrusted peer with XFF: the peer, headers ignored",
                peer: "192.0.2.7",
                headers: &[("x-forwarded-for", "127.0.0.1")],
                ip: "192.0.2.7",
                local: false,
            },
            Case {
                name: "loopback untrusted peer with XFF: not local",
                peer: "127.0.0.2",
                headers: &[("x-forwarded-for", "203.0.113.1")],
                ip: "127.0.0.2",
                local: false,
            },
            Case {
                name: "loopback peer with only X-Forwarded-Proto: not local",
                peer: "::1",
                headers: &[("x-forwarded-proto", "https")],
                ip: "::1",
                local: false,
            },
            Case {
                name: "trusted loopback proxy forwarding a loopback hop: not local",
                peer: "127.0.0.1",
                headers: &[("x-forwarded-for", "127.0.0.5")],
                ip: "127.0.0.5",
                local: false,
            },
            Case {
                name: "other headers do not matter",
                peer: "::1",
                headers: &[("host", "localhost"), ("authorization", "Bearer x")],
                ip: "::1",
                local: true,
            },
        ];
        for c in cases {
            let got = client(Some(ip(c.peer)), c.headers.iter().copied(), &trusted);
            assert_eq!(
                got,
                Client {
                    ip: Some(ip(c.ip)),
                    local: c.local
                },
                "{}",
                c.name
            );
        }
        assert_eq!(
            client(None, [("x-forwarded-for", "192.0.2.1")], &trusted),
            Client {
                ip: None,
                local: false
            }
        );
        assert_eq!(
            forwarded_for("For=\"198.51.100.17:80\";by=x, for=unknown"),
            vec![ip("198.51.100.17")]
        );
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
            let headers = xff.as_deref().map(|v| ("x-forwarded-for", v)).into_iter()
                .chain(forwarded.as_deref().map(|v| ("forwarded", v)));
            let who = client(peer, headers, &trusted);
            proptest::prop_assert_eq!(who.ip.is_none(), peer.is_none());
            proptest::prop_assert!(!(who.local && (xff.is_some() || forwarded.is_some())));
            let _ = forwarded_for(&cidr);
        }
    }
}
