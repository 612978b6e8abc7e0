"""TLS: a gateway with ``gateway.tls.autoGenerate`` reached over ``https://`` with its
generated certificate as the CA, with a pinned fingerprint, with a wrong pin (refused before
any request is sent) and with plain ``http://`` (a clear error)."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from pathlib import Path
from typing import Iterator

import grpc
import pytest

import clawplane
from clawplane import ClawplaneError, TlsError, run_pb2
from clawplane_harness import Gateway


def _fingerprint_of(pem_path: Path) -> str:
    """SHA-256 of the certificate's DER, uppercase hex pairs joined by ':' (computed here)."""
    der = ssl.PEM_cert_to_DER_cert(pem_path.read_text())
    h = hashlib.sha256(der).hexdigest().upper()
    return ":".join(h[i : i + 2] for i in range(0, 64, 2))


@pytest.fixture(scope="module")
def tls_gateway() -> Iterator[Gateway]:
    gw = Gateway({"gateway": {"tls": {"autoGenerate": True}}})
    try:
        yield gw
    finally:
        gw.close()


def _cert(gw: Gateway) -> Path:
    return Path(gw.data_dir) / "tls" / "cert.pem"


def test_listening_line_is_https(tls_gateway: Gateway) -> None:
    assert tls_gateway.url.startswith("https://127.0.0.1:"), tls_gateway.url
    assert clawplane.pem_fingerprint(_cert(tls_gateway).read_text()) == _fingerprint_of(_cert(tls_gateway))


def test_ca_file_chat_and_status_fingerprint(tls_gateway: Gateway) -> None:
    fp = _fingerprint_of(_cert(tls_gateway))
    with clawplane.connect(tls_gateway.url, tls_gateway.token, ca_file=str(_cert(tls_gateway))) as c:
        run = c.chat_send("py-tls", "over tls").wait(30)
        assert run.state == run_pb2.RUN_STATE_SUCCEEDED
        assert run.reply_text == "You said: over tls (turn 1)"
        assert c.status().tls_fingerprint == fp
        # The blocking raw stubs use the same trust.
        assert c.stubs.gateway.Status(
            clawplane.gateway_pb2.GatewayServiceStatusRequest(), metadata=c.metadata, timeout=10
        ).tls_fingerprint == fp
    # "localhost" is a name of the certificate too; the asyncio client takes the same options.
    url = tls_gateway.url.replace("127.0.0.1", "localhost")

    async def body() -> None:
        async with await clawplane.connect_async(url, tls_gateway.token, ca_file=str(_cert(tls_gateway))) as ac:
            assert (await ac.status()).tls_fingerprint == fp

    asyncio.run(body())


def test_pinned_fingerprint_in_every_spelling_and_from_env(
    tls_gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    fp = _fingerprint_of(_cert(tls_gateway))
    bare = fp.replace(":", "")
    for pin in (fp, bare.lower(), "sha256:" + bare):
        assert clawplane.parse_fingerprint(pin) == fp
        with clawplane.connect(tls_gateway.url, tls_gateway.token, tls_fingerprint=pin) as c:
            assert c.status().tls_fingerprint == fp
    monkeypatch.setenv("CLAWPLANE_TLS_FINGERPRINT", fp)
    with clawplane.connect(tls_gateway.url, tls_gateway.token) as c:
        assert c.agent_run("pinned").wait(30).reply_text.startswith("You said: pinned")
    monkeypatch.delenv("CLAWPLANE_TLS_FINGERPRINT")
    monkeypatch.setenv("CLAWPLANE_TLS_CA", str(_cert(tls_gateway)))
    with clawplane.connect(tls_gateway.url, tls_gateway.token) as c:
        assert c.status().tls_fingerprint == fp


def test_wrong_fingerprint_is_refused_before_any_request(tls_gateway: Gateway) -> None:
    fp = _fingerprint_of(_cert(tls_gateway))
    wrong = ":".join(["AB"] * 32)
    with clawplane.connect(tls_gateway.url, tls_gateway.token, ca_file=str(_cert(tls_gateway))) as good:
        before = good.status().last_event_seq
        started = time.monotonic()
        # Both the lazy constructor and connect() refuse the certificate.
        for make in (
            lambda: clawplane.Client(tls_gateway.url, tls_gateway.token, tls_fingerprint=wrong.replace(":", "")),
            lambda: clawplane.connect(tls_gateway.url, tls_gateway.token, tls_fingerprint=wrong),
        ):
            with pytest.raises(TlsError) as ei:
                make().chat_send("py-tls-wrong-pin", "must not arrive")
            e = ei.value
            assert isinstance(e, ClawplaneError)
            assert e.code == grpc.StatusCode.UNAVAILABLE
            assert not e.retryable
            assert e.detail == f"certificate fingerprint mismatch: expected {wrong}, got {fp}"
            assert f"certificate fingerprint mismatch: expected {wrong}, got {fp}" in str(e)
            assert "fingerprint" in (e.hint() or "")
        assert time.monotonic() - started < 5
        # Nothing reached the gateway: no session, no new events.
        with pytest.raises(ClawplaneError) as nf:
            good.sessions_get("py-tls-wrong-pin")
        assert nf.value.code == grpc.StatusCode.NOT_FOUND
        assert good.status().last_event_seq == before


def test_untrusted_certificate_is_refused_clearly(tls_gateway: Gateway) -> None:
    with pytest.raises(TlsError) as ei:
        clawplane.connect(tls_gateway.url, tls_gateway.token)
    assert "certificate" in ei.value.detail, ei.value.detail
    assert not ei.value.retryable


def test_plain_http_to_the_https_port_fails_clearly(tls_gateway: Gateway) -> None:
    plain = tls_gateway.url.replace("https://", "http://")
    started = time.monotonic()
    with pytest.raises(TlsError) as ei:
        clawplane.connect(plain, tls_gateway.token)
    assert f"serves TLS (https); use {tls_gateway.url}" in str(ei.value), str(ei.value)
    assert time.monotonic() - started < 5
    # TLS options need an https:// URL.
    with pytest.raises(ClawplaneError) as bad:
        clawplane.connect(plain, tls_gateway.token, tls_fingerprint=":".join(["AB"] * 32))
    assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT
