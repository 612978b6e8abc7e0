"""Scopes and devices: the hooks token is refused with MISSING_SCOPE outside the hook
operations; an Ed25519 device creates a pairing request that devices_list shows and
devices_approve approves; the device token then carries exactly its scopes."""

from __future__ import annotations

from typing import Optional

import asyncio
import base64
import hashlib
import uuid

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import clawplane
from clawplane import ClawplaneError, device_pb2, run_pb2
from clawplane.errors import from_rpc_error
from clawplane_harness import HOOKS_TOKEN, Gateway


def test_hooks_token_is_refused_with_missing_scope(gateway: Gateway) -> None:
    with clawplane.connect(gateway.url, HOOKS_TOKEN) as hooks:
        caller = hooks.get_caller()
        assert caller.credential == "hooks-token"
        with pytest.raises(ClawplaneError) as ei:
            hooks.chat_send("main", "not allowed for hooks")
        e = ei.value
        assert e.code == grpc.StatusCode.PERMISSION_DENIED
        assert e.reason == "MISSING_SCOPE"
        assert e.domain == clawplane.ERROR_DOMAIN
        assert e.metadata.get("missingScope") == "operator.write"
        assert "operator.write" in e.metadata.get("requiredScopes", "").split(",")
        assert "scope" in (e.hint() or "")
        # AgentService/Run and Wait are hook operations: allowed (no head seq: Status needs
        # operator.read, so the handle falls back to reading the run).
        run = hooks.agent_run("hook run").wait(30)
        assert run.state == run_pb2.RUN_STATE_SUCCEEDED
        assert run.session_key.startswith("agent:main:hook:"), run.session_key
        # The core holds the hooks token to hooks.*: no request session keys by default.
        with pytest.raises(ClawplaneError) as ei:
            hooks.agent_run("inject", session_key="agent:main:main")
        assert ei.value.code == grpc.StatusCode.PERMISSION_DENIED
        assert ei.value.reason == "HOOK_SESSION_KEY_NOT_ALLOWED"
        assert ei.value.metadata.get("configKey") == "hooks.allowRequestSessionKey"

    async def body() -> None:
        async with await clawplane.connect_async(gateway.url, HOOKS_TOKEN) as ah:
            with pytest.raises(ClawplaneError) as ei:
                await ah.devices_list()
            assert ei.value.code == grpc.StatusCode.PERMISSION_DENIED
            assert ei.value.reason == "MISSING_SCOPE"
            assert ei.value.metadata.get("missingScope") == "operator.pairing"

    asyncio.run(body())


def _b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class Device:
    """An Ed25519 device identity (OpenClaw / proto/src/device_auth.rs)."""

    def __init__(self) -> None:
        self.sk = Ed25519PrivateKey.generate()
        raw = self.sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.public_key = _b64url(raw)
        self.device_id = hashlib.sha256(raw).hexdigest()

    def connect(
        self, client: clawplane.Client, scopes: list[str], token: Optional[str] = None
    ) -> device_pb2.ConnectDeviceResponse:
        """Challenge -> ConnectDevice, presenting `token` (filing a pairing request needs the
        gateway token; a paired device connects with its proof alone)."""
        stubs = client.stubs
        ch = stubs.devices.Challenge(device_pb2.ChallengeRequest(), timeout=10)
        signed_at = ch.ts
        payload = "|".join(
            ["v3", self.device_id, "cli", "cli", "operator", ",".join(scopes), str(signed_at), "", ch.nonce, "linux", ""]
        )
        sig = self.sk.sign(payload.encode())
        req = device_pb2.ConnectDeviceRequest(
            device=device_pb2.DeviceProof(
                id=self.device_id, public_key=self.public_key, signature=_b64url(sig),
                signed_at=signed_at, nonce=ch.nonce,
            ),
            client_id="cli", client_mode="cli", role="operator", scopes=scopes,
            platform="linux", display_name="python sdk test",
        )
        try:
            md = [("authorization", f"Bearer {token}")] if token else None
            return stubs.devices.ConnectDevice(req, timeout=10, metadata=md)  # type: ignore[no-any-return]
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None


def test_devices_list_and_approve_a_pairing_request() -> None:
    # No silent local approval here, so the gateway token files a request to approve.
    gateway = Gateway({"gateway": {"nodes": {"pairing": {"autoApproveLocal": False}}}})
    client = clawplane.connect(gateway.url, gateway.token)
    try:
        _pair_and_approve(client, gateway)
    finally:
        client.close()
        gateway.close()


def _pair_and_approve(client: clawplane.Client, gateway: Gateway) -> None:
    dev = Device()
    with pytest.raises(ClawplaneError) as ei:
        dev.connect(client, ["operator.read"], gateway.token)
    e = ei.value
    assert e.code == grpc.StatusCode.FAILED_PRECONDITION
    assert e.reason == "PAIRING_REQUIRED"
    request_id = e.metadata["requestId"]

    listed = client.devices_list()
    pending = {p.request_id: p for p in listed.pending}
    assert request_id in pending
    assert pending[request_id].device_id == dev.device_id
    assert list(pending[request_id].scopes) == ["operator.read"]
    assert dev.device_id not in {d.device_id for d in listed.paired}

    approved = client.devices_approve(request_id)
    assert approved.request_id == request_id
    assert approved.device.device_id == dev.device_id

    listed = client.devices_list()
    assert request_id not in {p.request_id for p in listed.pending}
    assert dev.device_id in {d.device_id for d in listed.paired}

    # Now the device gets a token with exactly the approved scope.
    ok = dev.connect(client, ["operator.read"])
    assert ok.device_id == dev.device_id
    assert list(ok.scopes) == ["operator.read"]
    with clawplane.connect(gateway.url, ok.device_token) as device_client:
        assert device_client.status().version
        with pytest.raises(ClawplaneError) as ei:
            device_client.chat_send("main", "read-only device")
        assert ei.value.code == grpc.StatusCode.PERMISSION_DENIED
        assert ei.value.reason == "MISSING_SCOPE"


def test_devices_async_and_unknown_request(gateway: Gateway) -> None:
    async def body() -> None:
        async with await clawplane.connect_async(gateway.url, gateway.token) as ac:
            listed = await ac.devices_list()
            assert isinstance(listed, device_pb2.ListDevicesResponse)
            unknown = str(uuid.uuid4())
            with pytest.raises(ClawplaneError) as ei:
                await ac.devices_approve(unknown)
            assert ei.value.code == grpc.StatusCode.NOT_FOUND
            assert ei.value.reason == "PAIRING_REQUEST_NOT_FOUND"
            assert ei.value.metadata == {"requestId": unknown}
            assert ei.value.domain == clawplane.ERROR_DOMAIN

    asyncio.run(body())
