"""TLS for ``https://`` gateway URLs: trust a CA file (or the gateway's self-signed
``<data-dir>/tls/cert.pem`` itself), or pin exactly one certificate by the SHA-256
fingerprint of its DER, as ``GatewayService/Status.tls_fingerprint`` and ``clawplane
status`` show it (uppercase hex pairs joined by ``:``).

grpcio has no certificate-verification callback, so pinning works like this: before the
channel is created, one TLS handshake fetches the server's certificate (nothing else is
sent), its fingerprint is compared with the pin (a mismatch raises :class:`TlsError`
``certificate fingerprint mismatch: expected X, got Y``), and that exact certificate becomes
the channel's only trusted root. Later reconnects therefore accept only that certificate
too. This suits self-signed certificates (the gateway's generated one); for a CA-issued
certificate use ``ca_file`` with the CA.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import socket
import ssl
import tempfile
from typing import Any, Optional

import grpc

from .errors import ClawplaneError

__all__ = [
    "TlsError",
    "fingerprint",
    "parse_fingerprint",
    "pem_fingerprint",
]


class TlsError(ClawplaneError):
    """The TLS connection to an ``https://`` gateway failed: its certificate was refused
    (``certificate fingerprint mismatch: expected X, got Y``, untrusted, another host), or an
    ``http://`` URL points at a port that serves TLS. No request was sent.

    ``code`` is ``UNAVAILABLE`` (as gRPC reports handshake failures), but :attr:`retryable`
    is false: retrying cannot help. ``detail`` is what was wrong.
    """

    detail: str

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(grpc.StatusCode.UNAVAILABLE, f"TLS connection failed: {detail}")

    @property
    def retryable(self) -> bool:
        return False

    @property
    def unreachable(self) -> bool:
        return False

    def hint(self) -> Optional[str]:
        if "fingerprint mismatch" in self.detail:
            return (
                "the gateway presented another certificate than the pinned one; check the "
                "fingerprint with `clawplane status` on the gateway host"
            )
        if "serves TLS" in self.detail:
            return "use the https:// URL"
        return (
            "trust the gateway's certificate: connect(..., ca_file=<data-dir>/tls/cert.pem) or "
            "pin it with tls_fingerprint=... (CLAWPLANE_TLS_CA / CLAWPLANE_TLS_FINGERPRINT)"
        )


def fingerprint(der: bytes) -> str:
    """The SHA-256 fingerprint of a DER certificate: uppercase hex pairs joined by ``:``."""
    h = hashlib.sha256(der).hexdigest().upper()
    return ":".join(h[i : i + 2] for i in range(0, len(h), 2))


def parse_fingerprint(text: str) -> str:
    """Parses a fingerprint given by a person (64 hex digits; ``:``, spaces or ``-``
    optional; case-insensitive; an optional ``sha256:`` prefix) into the canonical form (see
    :func:`fingerprint`). Raises :class:`ClawplaneError` ``INVALID_ARGUMENT`` otherwise."""
    t = re.sub(r"^sha256[:=]", "", text.strip(), flags=re.IGNORECASE)
    h = re.sub(r"[: -]", "", t).upper()
    if not re.fullmatch(r"[0-9A-F]{64}", h):
        raise ClawplaneError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{text!r} is not a SHA-256 fingerprint (64 hex digits, colons optional)",
        )
    return ":".join(h[i : i + 2] for i in range(0, 64, 2))


def pem_fingerprint(pem: str | bytes) -> str:
    """The fingerprint of the first certificate in a PEM text."""
    text = pem.decode("ascii", "replace") if isinstance(pem, bytes) else pem
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)
    if not m:
        raise ClawplaneError(grpc.StatusCode.INVALID_ARGUMENT, "no PEM certificate found")
    return fingerprint(ssl.PEM_cert_to_DER_cert(m.group(0)))


def read_ca_file(path: str) -> bytes:
    """The PEM bytes of a CA file; INVALID_ARGUMENT when unreadable or without a certificate."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ClawplaneError(grpc.StatusCode.INVALID_ARGUMENT, f"cannot read the CA file {path}: {e}") from None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ClawplaneError(grpc.StatusCode.INVALID_ARGUMENT, f"{path} holds no PEM certificate")
    return data


def _split(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    return host.strip("[]"), int(port)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def fetch_pinned_certificate(target: str, expected: str, timeout: float = 5.0) -> str:
    """Makes one TLS handshake with ``target`` (``host:port``) accepting any certificate,
    and returns the server certificate as PEM if its fingerprint is ``expected``; raises
    :class:`TlsError` on a mismatch and :class:`ClawplaneError` ``UNAVAILABLE`` when the
    gateway cannot be reached. No request is sent."""
    host, port = _split(target)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            with ctx.wrap_socket(sock, server_hostname=None if _is_ip(host) else host) as tls:
                der = tls.getpeercert(binary_form=True)
    except ssl.SSLError as e:
        raise TlsError(f"TLS handshake with {target} failed: {e}") from None
    except OSError as e:
        raise ClawplaneError(
            grpc.StatusCode.UNAVAILABLE, f"the gateway at https://{target} is not reachable: {e}"
        ) from None
    if not der:
        raise TlsError(f"certificate fingerprint mismatch: expected {expected}, got no certificate")
    got = fingerprint(der)
    if got != expected:
        raise TlsError(f"certificate fingerprint mismatch: expected {expected}, got {got}")
    return ssl.DER_cert_to_PEM_cert(der)


def cert_names(pem: str) -> list[str]:
    """The DNS and IP subjectAltNames of a PEM certificate ([] when they cannot be read)."""
    decode: Any = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)
    if decode is None:
        return []
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(pem)
        info = decode(path)
    except Exception:
        return []
    finally:
        os.unlink(path)
    names: list[str] = []
    for kind, value in info.get("subjectAltName", ()):
        if kind in ("DNS", "IP Address"):
            names.append(str(value).strip())
    return names


def pinned_channel_options(target: str, pem: str) -> list[tuple[str, Any]]:
    """``grpc.ssl_target_name_override`` to a name of the pinned certificate when the URL's
    host is not one of them (pinning does not check host names)."""
    host, _ = _split(target)
    names = cert_names(pem)
    if not names or host in names or host.lower() in (n.lower() for n in names):
        return []
    dns = [n for n in names if not _is_ip(n)]
    return [("grpc.ssl_target_name_override", (dns or names)[0])]


def speaks_tls(target: str, timeout: float = 1.0) -> bool:
    """True when ``host:port`` answers an HTTP/2 connection preface with a TLS alert record
    (it expects a TLS handshake). Used only to explain a failed ``http://`` connection."""
    host, port = _split(target)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            data = sock.recv(2)
    except OSError:
        return False
    return len(data) == 2 and data[0] == 0x15 and data[1] == 0x03


def diagnose_handshake(target: str, ca: Optional[bytes], timeout: float = 2.0) -> Optional[str]:
    """Why a TLS handshake with ``target`` trusting ``ca`` (or the system roots) fails, or
    ``None`` when it succeeds or the gateway cannot be reached. Used only to explain a
    channel that did not become ready."""
    host, port = _split(target)
    try:
        ctx = ssl.create_default_context(cadata=ca.decode("ascii", "replace") if ca else None)
    except ssl.SSLError as e:
        return f"the CA is unusable: {e}"
    ctx.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            with ctx.wrap_socket(sock, server_hostname=host):
                return None
    except ssl.SSLCertVerificationError as e:
        return str(e.verify_message or e)
    except ssl.SSLError as e:
        return str(e)
    except OSError:
        return None
