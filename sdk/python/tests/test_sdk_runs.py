"""Every run verb against the live gateway, sync and async: chat_send, sessions_send,
agent_run with streamed deltas, /fail, cancel, idempotency, attaching to a run by id."""

from __future__ import annotations

import asyncio
import re
import uuid

import grpc
import pytest

import clawplane
from clawplane import ClawplaneError, run_pb2
from clawplane_harness import Gateway


def _session() -> str:
    return f"py-{uuid.uuid4().hex[:12]}"


def test_status_sync_and_async(client: clawplane.Client, gateway: Gateway) -> None:
    st = client.status()
    assert st.version
    assert st.default_model == "builtin/echo"
    assert st.main_session_key == "agent:main:main"
    assert "operator.admin" in st.caller_scopes

    async def body() -> None:
        async with await clawplane.connect_async(gateway.url, gateway.token) as ac:
            ast = await ac.status()
            assert ast.instance_id == st.instance_id
            assert ast.last_event_seq >= st.last_event_seq

    asyncio.run(body())


def test_connect_uses_env_defaults(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAWPLANE_URL", gateway.url)
    monkeypatch.setenv("CLAWPLANE_TOKEN", gateway.token)
    with clawplane.connect() as c:
        assert c.url == gateway.url
        assert c.metadata == (("authorization", f"Bearer {gateway.token}"),)
        assert c.status().default_agent_id == "main"
    # No scheme means http://.
    with clawplane.connect(gateway.url.removeprefix("http://"), gateway.token) as c:
        assert c.status().version


def test_wrong_token_and_unreachable_gateway_are_typed(gateway: Gateway) -> None:
    with clawplane.connect(gateway.url, "not-the-token") as c:
        with pytest.raises(ClawplaneError) as ei:
            c.status()
    e = ei.value
    assert e.code == grpc.StatusCode.UNAUTHENTICATED
    assert e.reason == "TOKEN_INVALID"
    assert e.domain == clawplane.ERROR_DOMAIN
    assert "CLAWPLANE_TOKEN" in (e.hint() or "")

    with clawplane.connect(gateway.url, "") as c:  # token="" sends none
        with pytest.raises(ClawplaneError) as ei:
            c.status()
    assert ei.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert ei.value.reason == "TOKEN_MISSING"

    with pytest.raises(ClawplaneError) as ei:
        clawplane.connect("http://127.0.0.1:1", "x", timeout=1.0)
    assert ei.value.code == grpc.StatusCode.UNAVAILABLE
    assert ei.value.unreachable

    with pytest.raises(ClawplaneError) as ei:
        clawplane.connect("ftp://example", "x")
    assert ei.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_chat_send_and_wait_sync(client: clawplane.Client) -> None:
    key = _session()
    h = client.chat_send(key, "hello sync")
    assert h.session_key == f"agent:main:{key}"
    assert not h.duplicate
    assert h.state == run_pb2.RUN_STATE_QUEUED
    # The server names the run (a UUID v7); the SDK generated the idempotency key (v4).
    assert uuid.UUID(h.run_id).version == 7
    run = h.wait(30)
    assert run.state == run_pb2.RUN_STATE_SUCCEEDED
    assert run.reply_text == "You said: hello sync (turn 1)"
    assert run.origin == run_pb2.RUN_ORIGIN_CHAT
    assert uuid.UUID(run.idempotency_key).version == 4
    assert run.idempotency_key != h.run_id
    assert h.final is not None and h.final.run_id == h.run_id
    run2 = client.chat_send(key, "again").wait(30)
    assert run2.reply_text == "You said: again (turn 2)"
    session, messages = client.sessions_history(key)
    assert session.turn_count == 2
    assert [m.text for m in messages][-1] == "You said: again (turn 2)"
    assert any(s.session_key == f"agent:main:{key}" for s in client.sessions_list())


def test_chat_send_and_wait_async(gateway: Gateway) -> None:
    async def body() -> None:
        async with await clawplane.connect_async(gateway.url, gateway.token) as ac:
            key = _session()
            h = await ac.chat_send(key, "hello async")
            run = await h.wait(30)
            assert run.state == run_pb2.RUN_STATE_SUCCEEDED
            assert run.reply_text == "You said: hello async (turn 1)"
            # Concurrent submissions on one client.
            handles = await asyncio.gather(*(ac.chat_send(_session(), f"m{i}") for i in range(3)))
            runs = await asyncio.gather(*(x.wait(30) for x in handles))
            assert [r.reply_text for r in runs] == [f"You said: m{i} (turn 1)" for i in range(3)]

    asyncio.run(body())


def test_sessions_send_sync_and_async(client: clawplane.Client, gateway: Gateway) -> None:
    missing = _session()
    with pytest.raises(ClawplaneError) as ei:
        client.sessions_send(missing, "nobody home")
    assert ei.value.code == grpc.StatusCode.NOT_FOUND
    assert ei.value.reason == "SESSION_NOT_FOUND"

    key = _session()
    client.chat_send(key, "first").wait(30)
    h = client.sessions_send(key, "second")
    run = h.wait(30)
    assert run.reply_text == "You said: second (turn 2)"
    assert run.origin == run_pb2.RUN_ORIGIN_SESSION

    async def body() -> None:
        async with await clawplane.connect_async(gateway.url, gateway.token) as ac:
            with pytest.raises(ClawplaneError) as ei:
                await ac.sessions_send(_session(), "nobody home")
            assert ei.value.reason == "SESSION_NOT_FOUND"
            run = await (await ac.sessions_send(key, "third")).wait(30)
            assert run.reply_text == "You said: third (turn 3)"

    asyncio.run(body())


def _check_deltas(deltas: list[str], reply: str) -> None:
    assert "".join(deltas) == reply
    # One word per delta: every delta but the last is "word ".
    assert deltas == re.findall(r"\S+ |\S+$", reply)


def test_agent_run_streams_deltas_sync(client: clawplane.Client) -> None:
    msg = "/sleep 300 stream this reply word by word"
    h = client.agent_run(msg, session_key=_session())
    updates = list(h.stream())
    assert updates[-1].kind == "done"
    final = updates[-1].run
    assert final is not None and final.state == run_pb2.RUN_STATE_SUCCEEDED
    assert final.origin == run_pb2.RUN_ORIGIN_AGENT
    reply = f"You said: {msg} (turn 1)"
    assert final.reply_text == reply
    deltas = [u.text for u in updates if u.kind == "delta"]
    _check_deltas(deltas, reply)
    states = [u.run.state for u in updates if u.kind == "state" and u.run is not None]
    assert run_pb2.RUN_STATE_RUNNING in states
    # deltas() on a finished run (read first, then one delta with the whole reply).
    again = client.run_handle(h.run_id)
    assert list(again.deltas()) == [reply]
    assert again.final is not None and again.final.reply_text == reply


def test_agent_run_streams_deltas_async(gateway: Gateway) -> None:
    async def body() -> None:
        async with await clawplane.connect_async(gateway.url, gateway.token) as ac:
            msg = "/sleep 300 async deltas arrive one at a time"
            h = await ac.agent_run(msg, session_key=_session())
            deltas = [d async for d in h.deltas()]
            reply = f"You said: {msg} (turn 1)"
            assert h.final is not None
            assert h.final.state == run_pb2.RUN_STATE_SUCCEEDED
            assert h.final.reply_text == reply
            _check_deltas(deltas, reply)

    asyncio.run(body())


def test_failed_run_is_reported(client: clawplane.Client, gateway: Gateway) -> None:
    run = client.agent_run("please /fail now", session_key=_session()).wait(30)
    assert run.state == run_pb2.RUN_STATE_FAILED
    assert run.error.reason == "MODEL_FAILED"
    assert clawplane.is_terminal(run)

    async def body() -> None:
        async with await clawplane.connect_async(gateway.url, gateway.token) as ac:
            h = await ac.agent_run("async /fail", session_key=_session())
            updates = [u async for u in h.stream()]
            assert updates[-1].kind == "done"
            assert updates[-1].run is not None
            assert updates[-1].run.state == run_pb2.RUN_STATE_FAILED
            assert updates[-1].run.error.reason == "MODEL_FAILED"

    asyncio.run(body())


def test_cancel_sync_and_async(client: clawplane.Client, gateway: Gateway) -> None:
    h = client.agent_run("/sleep 20000 cancel me", session_key=_session())
    cancelled = h.cancel()
    assert cancelled.run_id == h.run_id
    run = h.wait(15)
    assert run.state == run_pb2.RUN_STATE_CANCELLED
    assert run.error.reason
    # Cancelling a finished run returns it unchanged.
    assert h.cancel().state == run_pb2.RUN_STATE_CANCELLED

    async def body() -> None:
        async with await clawplane.connect_async(gateway.url, gateway.token) as ac:
            h = await ac.agent_run("/sleep 20000 cancel me too", session_key=_session())
            # Cancel while a stream is following the run: it ends with the CANCELLED run.
            updates: list[clawplane.RunUpdate] = []

            async def follow() -> None:
                async for u in h.stream():
                    updates.append(u)

            task = asyncio.create_task(follow())
            await asyncio.sleep(0.3)
            await h.cancel()
            await asyncio.wait_for(task, 15)
            assert updates[-1].kind == "done"
            assert updates[-1].run is not None
            assert updates[-1].run.state == run_pb2.RUN_STATE_CANCELLED

    asyncio.run(body())


def test_wait_timeout_returns_the_current_run(client: clawplane.Client) -> None:
    h = client.agent_run("/sleep 20000 slow", session_key=_session())
    try:
        run = h.wait(0.5)
        assert not clawplane.is_terminal(run)
        assert run.state in (run_pb2.RUN_STATE_QUEUED, run_pb2.RUN_STATE_RUNNING)
    finally:
        h.cancel()


def test_idempotency_key_duplicate_and_conflict(client: clawplane.Client, gateway: Gateway) -> None:
    key = f"py-idem-{uuid.uuid4().hex}"
    session = _session()
    first = client.agent_run("same message", session_key=session, idempotency_key=key)
    assert first.run_id != key, "the run id is the server's"
    assert not first.duplicate
    again = client.agent_run("same message", session_key=session, idempotency_key=key)
    assert again.run_id == first.run_id
    assert again.duplicate
    assert again.wait(30).state == run_pb2.RUN_STATE_SUCCEEDED
    # A duplicate handle streams the finished run's reply.
    assert "".join(again.deltas()) == "You said: same message (turn 1)"

    with pytest.raises(ClawplaneError) as ei:
        client.agent_run("a different message", session_key=session, idempotency_key=key)
    e = ei.value
    assert e.code == grpc.StatusCode.ALREADY_EXISTS
    assert e.reason == "IDEMPOTENCY_KEY_CONFLICT"
    assert e.domain == "clawplane.dev"
    assert e.metadata.get("runId") == first.run_id
    assert e.metadata.get("idempotencyKey") == key
    assert e.status is not None and e.status.code == grpc.StatusCode.ALREADY_EXISTS.value[0]
    assert "idempotency key" in (e.hint() or "")

    async def body() -> None:
        async with await clawplane.connect_async(gateway.url, gateway.token) as ac:
            with pytest.raises(ClawplaneError) as ei:
                await ac.chat_send(session, "conflicting chat", idempotency_key=key)
            assert ei.value.code == grpc.StatusCode.ALREADY_EXISTS
            assert ei.value.reason == "IDEMPOTENCY_KEY_CONFLICT"

    asyncio.run(body())


def test_invalid_argument_carries_field_violations(client: clawplane.Client) -> None:
    with pytest.raises(ClawplaneError) as ei:
        client.agent_run("", session_key=_session())
    e = ei.value
    assert e.code == grpc.StatusCode.INVALID_ARGUMENT
    assert e.reason == "INVALID_FIELD"
    assert clawplane.FieldViolation("message", "must not be empty") in e.field_violations
    assert "message" in (e.hint() or "")


def test_unknown_run_is_not_found(client: clawplane.Client) -> None:
    with pytest.raises(ClawplaneError) as ei:
        client.wait_run("no-such-run", 1)
    assert ei.value.code == grpc.StatusCode.NOT_FOUND
    assert ei.value.reason == "RUN_NOT_FOUND"
