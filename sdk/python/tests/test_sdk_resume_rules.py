"""The SDK's retry and resume rules against an in-process fake gateway (grpc.aio server on
127.0.0.1), for the paths the real gateway cannot be made to take on demand:
ABORTED ``SUBSCRIBER_LAGGED`` and replayed duplicates in the watch, UNAVAILABLE retries of
unary calls and of an auto-keyed run submission."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import grpc
import grpc.aio
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

import clawplane
from clawplane import ClawplaneError, CursorExpiredError, event_pb2
from clawplane.v1 import agent_pb2, agent_pb2_grpc, event_pb2_grpc, gateway_pb2, gateway_pb2_grpc, run_pb2


def _status(code: int, message: str, reason: str, **metadata: str) -> grpc.Status:
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="clawplane.dev", metadata=metadata))
    return rpc_status.to_status(status_pb2.Status(code=code, message=message, details=[info]))


def _event(seq: int) -> event_pb2.EventServiceWatchResponse:
    return event_pb2.EventServiceWatchResponse(
        event=event_pb2.Event(seq=seq, kind=event_pb2.EVENT_KIND_SYSTEM_EVENT, session_key="agent:main:main")
    )


class FakeEvents(event_pb2_grpc.EventServiceServicer):
    def __init__(self) -> None:
        self.cursors: list[int] = []

    async def Watch(self, request: Any, context: Any) -> AsyncIterator[Any]:  # noqa: N802
        self.cursors.append(request.after_seq)
        n = len(self.cursors)
        if n == 1:
            for seq in (1, 2, 3):
                yield _event(seq)
            yield event_pb2.EventServiceWatchResponse(progress=event_pb2.Progress(seq=3))
            await context.abort_with_status(_status(code_pb2.ABORTED, "too slow", "SUBSCRIBER_LAGGED", lastSeq="3"))
        elif n == 2:
            for seq in (2, 3, 4, 5):  # a replay that overlaps what was delivered
                yield _event(seq)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "shutting down")
        elif n == 3:
            yield _event(6)
            # The server ends the stream cleanly: the watch resumes.
        else:
            await context.abort_with_status(
                _status(code_pb2.OUT_OF_RANGE, "cursor expired", "CURSOR_EXPIRED", oldestSeq="100")
            )


class FakeGateway(gateway_pb2_grpc.GatewayServiceServicer):
    def __init__(self) -> None:
        self.calls = 0

    async def Status(self, request: Any, context: Any) -> Any:  # noqa: N802
        self.calls += 1
        if self.calls % 2 == 1:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
        return gateway_pb2.GatewayServiceStatusResponse(version="fake", last_event_seq=41)


class FakeAgent(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self) -> None:
        self.keys: list[str] = []

    async def Run(self, request: Any, context: Any) -> Any:  # noqa: N802
        self.keys.append(request.idempotency_key)
        first = self.keys.count(request.idempotency_key) == 1
        if request.message == "flaky" and first:
            # Accepted, but the answer is lost: the client sees UNAVAILABLE and retries.
            await context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset")
        return agent_pb2.AgentServiceRunResponse(
            run_id=request.idempotency_key,
            session_key="agent:main:main",
            state=run_pb2.RUN_STATE_QUEUED,
            duplicate=not first,
        )

    async def GetRun(self, request: Any, context: Any) -> Any:  # noqa: N802
        await context.abort_with_status(
            _status(code_pb2.UNAVAILABLE, "always down", "SHUTTING_DOWN")
        )


async def _serve() -> tuple[grpc.aio.Server, str, FakeEvents, FakeGateway, FakeAgent]:
    server = grpc.aio.server()
    events, gateway, agent = FakeEvents(), FakeGateway(), FakeAgent()
    event_pb2_grpc.add_EventServiceServicer_to_server(events, server)
    gateway_pb2_grpc.add_GatewayServiceServicer_to_server(gateway, server)
    agent_pb2_grpc.add_AgentServiceServicer_to_server(agent, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"http://127.0.0.1:{port}", events, gateway, agent


def test_watch_resumes_after_lag_unavailable_and_eof_without_duplicates() -> None:
    async def body() -> None:
        server, url, events, _, _ = await _serve()
        try:
            async with await clawplane.connect_async(url, "t") as ac:
                watch = ac.watch_events(0)
                seqs: list[int] = []
                with pytest.raises(CursorExpiredError) as ei:
                    async for e in watch:
                        seqs.append(e.seq)
                assert seqs == [1, 2, 3, 4, 5, 6]
                assert events.cursors == [0, 3, 5, 6]
                assert watch.reconnects == 3
                assert ei.value.after_seq == 6
                assert ei.value.oldest_seq == 100
                assert ei.value.code == grpc.StatusCode.OUT_OF_RANGE
                assert "after_seq=99" in (ei.value.hint() or "")
        finally:
            await server.stop(None)

    asyncio.run(asyncio.wait_for(body(), 30))


def test_unary_calls_retry_unavailable_and_auto_keyed_runs_are_not_duplicates() -> None:
    async def body() -> None:
        server, url, _, gateway, agent = await _serve()
        try:
            async with await clawplane.connect_async(url, "t") as ac:
                st = await ac.status()  # first attempt UNAVAILABLE, second succeeds
                assert st.version == "fake"
                assert gateway.calls == 2

                h = await ac.agent_run("flaky")
                assert len(agent.keys) == 2 and agent.keys[0] == agent.keys[1]  # same generated key
                assert h.run_id == agent.keys[0]
                assert not h.duplicate  # our own retry found our own run
                assert h._start_seq == 41

                # With a caller-chosen key the SDK cannot tell its own retry from an earlier
                # call of the caller's: it reports what the gateway said (as the Rust SDK does).
                h2 = await ac.agent_run("flaky", idempotency_key="mine")
                assert agent.keys[-2:] == ["mine", "mine"]
                assert h2.duplicate

                with pytest.raises(ClawplaneError) as ei:
                    await ac.get_run("x")  # UNAVAILABLE three times
                assert ei.value.code == grpc.StatusCode.UNAVAILABLE
                assert ei.value.reason == "SHUTTING_DOWN"
                assert ei.value.retryable and not ei.value.unreachable
        finally:
            await server.stop(None)

    asyncio.run(asyncio.wait_for(body(), 30))
