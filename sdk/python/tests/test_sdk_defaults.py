"""What every SDK does alike, against a live gateway: the token from the local gateway's data
dir, the local TLS certificate, the default and per-call time limits, and cancellation."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Iterator

import grpc
import pytest

import clawplane
from clawplane import ClawplaneError, TlsError, run_pb2
from clawplane_harness import Gateway


@pytest.fixture(scope="module")
def local_gateway() -> Iterator[Gateway]:
    """A gateway with no configured token: it generates <data dir>/gateway.token."""
    gw = Gateway(generated_token=True)
    try:
        yield gw
    finally:
        gw.close()


@pytest.fixture()
def no_env_token(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in (
        "CLAWPLANE_TOKEN",
        "CLAWPLANE_GATEWAY_TOKEN",
        "OPENCLAW_GATEWAY_TOKEN",
        "CLAWPLANE_URL",
        "CLAWPLANE_TLS_CA",
        "CLAWPLANE_TLS_FINGERPRINT",
    ):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def _reason(fn: object) -> str:
    with pytest.raises(ClawplaneError) as info:
        fn()  # type: ignore[operator]
    return info.value.reason or info.value.code.name


def test_loopback_url_reads_the_token_file_after_env_tokens(
    local_gateway: Gateway, no_env_token: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = no_env_token
    env.setenv("CLAWPLANE_DATA_DIR", str(local_gateway.data_dir))
    assert local_gateway.token  # the gateway wrote it
    with clawplane.connect(local_gateway.url) as c:
        assert c.get_caller().credential == "gateway-token"
    # token="" sends none, even with the file there.
    with clawplane.connect(local_gateway.url, "") as c:
        assert _reason(c.status) == "TOKEN_MISSING"
    # CLAWPLANE_TOKEN comes before the file ...
    env.setenv("CLAWPLANE_TOKEN", "not-the-token")
    with clawplane.connect(local_gateway.url) as c:
        assert _reason(c.status) == "TOKEN_INVALID"
    env.delenv("CLAWPLANE_TOKEN")
    # ... and so does CLAWPLANE_GATEWAY_TOKEN; without either and without a file, nothing is sent.
    env.setenv("CLAWPLANE_DATA_DIR", str(tmp_path))
    with clawplane.connect(local_gateway.url) as c:
        assert _reason(c.status) == "TOKEN_MISSING"
    env.setenv("CLAWPLANE_GATEWAY_TOKEN", local_gateway.token)
    with clawplane.connect(local_gateway.url) as c:
        assert c.get_caller().credential == "gateway-token"
    env.delenv("CLAWPLANE_GATEWAY_TOKEN")
    # OpenClaw's variable stands in for ours (a migrating user's environment).
    env.setenv("OPENCLAW_GATEWAY_TOKEN", local_gateway.token)
    with clawplane.connect(local_gateway.url) as c:
        assert c.get_caller().credential == "gateway-token"
    # A remote URL never reads the file.
    env.delenv("OPENCLAW_GATEWAY_TOKEN")
    env.setenv("CLAWPLANE_DATA_DIR", str(local_gateway.data_dir))
    assert clawplane.discover("http://gw.example:1") == ("http://gw.example:1", None)
    assert clawplane.discover("http://gw.localhost:1") == ("http://gw.localhost:1", local_gateway.token)


def test_loopback_https_trusts_the_local_certificate(no_env_token: pytest.MonkeyPatch, tmp_path: Path) -> None:
    gw = Gateway({"gateway": {"tls": {"autoGenerate": True}}}, generated_token=True)
    try:
        env = no_env_token
        env.setenv("CLAWPLANE_DATA_DIR", str(gw.data_dir))
        fp = clawplane.pem_fingerprint((gw.data_dir / "tls" / "cert.pem").read_text())
        # Token and certificate both come from the data dir.
        with clawplane.connect(gw.url) as c:
            assert c.status().tls_fingerprint == fp
        # An explicit (here: env) pin comes first: a wrong one is refused.
        env.setenv("CLAWPLANE_TLS_FINGERPRINT", "ab" * 32)
        with pytest.raises(TlsError, match="fingerprint mismatch"):
            clawplane.connect(gw.url)
        env.delenv("CLAWPLANE_TLS_FINGERPRINT")
        # Without the local certificate the self-signed one is not trusted.
        env.setenv("CLAWPLANE_DATA_DIR", str(tmp_path))
        with pytest.raises(TlsError, match="self.signed"):
            clawplane.connect(gw.url, gw.token)
    finally:
        gw.close()


def test_wait_returns_the_run_as_it_stands_when_its_timeout_passes(local_gateway: Gateway) -> None:
    assert clawplane.DEFAULT_WAIT == 30.0

    async def body() -> None:
        async with await clawplane.connect_async(local_gateway.url, local_gateway.token) as ac:
            h = await ac.agent_run("/sleep 5000 slow", session_key=f"py-{uuid.uuid4().hex[:8]}")
            try:
                t0 = time.monotonic()
                run = await h.wait(0.3)
                took = time.monotonic() - t0
                assert not clawplane.is_terminal(run), run_pb2.RunState.Name(run.state)
                assert 0.25 <= took < 3, took
            finally:
                await h.cancel()

    asyncio.run(body())


def test_a_call_past_its_timeout_fails_with_deadline_exceeded_and_sends_nothing(local_gateway: Gateway) -> None:
    with clawplane.connect(local_gateway.url, local_gateway.token) as c:
        key = f"py-late-{uuid.uuid4().hex[:8]}"
        with pytest.raises(ClawplaneError) as info:
            c.chat_send(key, "hi", timeout=0)
        assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "timeout of 0s" in str(info.value)
        assert _reason(lambda: c.sessions_get(key)) == "SESSION_NOT_FOUND"
        # A generous limit changes nothing.
        assert c.chat_send(key, "hi", timeout=10).wait().state == run_pb2.RUN_STATE_SUCCEEDED
        assert c.sessions_get(key, timeout=10).session_key.endswith(key)


def test_cancelling_the_task_cancels_the_wait_not_the_run(local_gateway: Gateway) -> None:
    async def body() -> None:
        async with await clawplane.connect_async(local_gateway.url, local_gateway.token) as ac:
            h = await ac.agent_run("/sleep 5000 keep going", session_key=f"py-{uuid.uuid4().hex[:8]}")
            try:
                task = asyncio.create_task(h.wait(20))
                await asyncio.sleep(0.2)
                t0 = time.monotonic()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert time.monotonic() - t0 < 1
                assert (await h.get(timeout=5)).state == run_pb2.RUN_STATE_RUNNING
            finally:
                await h.cancel()

    asyncio.run(body())
