"""watch_events: resumes across a gateway restart (SIGTERM, start again on the same port and
data dir) without gap or duplicate, sync and async; CURSOR_EXPIRED is raised typed."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import grpc
import pytest

import clawplane
from clawplane import CursorExpiredError, event_pb2, run_pb2
from clawplane_harness import Gateway


@pytest.fixture()
def own_gateway() -> Any:
    gw = Gateway()
    try:
        yield gw
    finally:
        gw.close()


def _replay(client: clawplane.Client, upto: int) -> list[event_pb2.Event]:
    """All retained events with seq <= upto, from a fresh watch (the ground truth)."""
    out: list[event_pb2.Event] = []
    with client.watch_events(0, progress=True) as w:
        for item in w:
            if isinstance(item, event_pb2.Event):
                out.append(item)
            if w.last_seq >= upto:
                break
    return [e for e in out if e.seq <= upto]


def _terminal_run(e: event_pb2.Event, run_id: str) -> bool:
    return e.WhichOneof("payload") == "run" and e.run.run_id == run_id and clawplane.is_terminal(e.run)


def _check_against_replay(seen: list[event_pb2.Event], truth: list[event_pb2.Event]) -> None:
    seqs = [e.seq for e in seen]
    assert all(a < b for a, b in zip(seqs, seqs[1:])), f"seqs not strictly increasing: {seqs}"
    assert len(set(seqs)) == len(seqs), "duplicate seqs"
    truth_seqs = [e.seq for e in truth]
    # Everything the log holds up to the last seen seq was seen exactly once, in order.
    assert seqs == [s for s in truth_seqs if s <= seqs[-1]]
    assert [e.SerializeToString() for e in seen] == [e.SerializeToString() for e in truth[: len(seen)]]


def test_watch_resumes_across_restart_sync(own_gateway: Gateway) -> None:
    gw = own_gateway
    with clawplane.connect(gw.url, gw.token) as c:
        before = c.chat_send("watch-sync", "before the restart")
        assert before.wait(30).state == run_pb2.RUN_STATE_SUCCEEDED
        seen: list[event_pb2.Event] = []
        watch = c.watch_events(after_seq=0)
        for e in watch:
            seen.append(e)
            if _terminal_run(e, before.run_id):
                break
        # The watch's stream is open; restart the gateway under it.
        gw.restart()
        after = c.chat_send("watch-sync", "after the restart")
        for e in watch:
            seen.append(e)
            if _terminal_run(e, after.run_id):
                break
        watch.close()
        assert watch.reconnects >= 1
        final_after = c.get_run(after.run_id)
        assert final_after.reply_text == "You said: after the restart (turn 2)"
        runs_seen = {e.run_id for e in seen if e.WhichOneof("payload") == "run"}
        assert {before.run_id, after.run_id} <= runs_seen
        deltas_after = "".join(e.delta.text for e in seen if e.run_id == after.run_id and e.WhichOneof("payload") == "delta")
        assert deltas_after == final_after.reply_text
        _check_against_replay(seen, _replay(c, seen[-1].seq))


def test_watch_resumes_across_restart_async_mid_read(own_gateway: Gateway) -> None:
    gw = own_gateway

    async def body() -> list[event_pb2.Event]:
        async with await clawplane.connect_async(gw.url, gw.token) as ac:
            first = await ac.chat_send("watch-async", "first")
            seen: list[event_pb2.Event] = []
            first_done = asyncio.Event()
            target: dict[str, str] = {}
            watch = ac.watch_events(0)

            async def consume() -> None:
                async for e in watch:
                    seen.append(e)
                    if _terminal_run(e, first.run_id):
                        first_done.set()
                    if "second" in target and _terminal_run(e, target["second"]):
                        return

            task = asyncio.create_task(consume())
            await asyncio.wait_for(first_done.wait(), 30)
            # The consumer is blocked reading the open stream while the gateway restarts.
            await asyncio.to_thread(gw.restart)
            second = await ac.chat_send("watch-async", "/sleep 200 second")
            target["second"] = second.run_id
            await asyncio.wait_for(task, 30)
            await watch.aclose()
            assert watch.reconnects >= 1
            run = await ac.get_run(second.run_id)
            assert run.reply_text == "You said: /sleep 200 second (turn 2)"
            return seen

    seen = asyncio.run(body())
    with clawplane.connect(gw.url, gw.token) as c:
        _check_against_replay(seen, _replay(c, seen[-1].seq))


def test_watch_with_filter_and_progress(own_gateway: Gateway) -> None:
    gw = own_gateway
    with clawplane.connect(gw.url, gw.token) as c:
        h = c.chat_send("filtered", "filter me")
        h.wait(30)
        kinds = set()
        with c.watch_events(0, kinds=[event_pb2.EVENT_KIND_RUN], run_id=h.run_id, progress=True) as w:
            states = []
            for item in w:
                if isinstance(item, event_pb2.Progress):
                    break  # idle: everything matching was delivered
                kinds.add(item.kind)
                states.append(item.run.state)
        assert kinds == {event_pb2.EVENT_KIND_RUN}
        assert states[-1] == run_pb2.RUN_STATE_SUCCEEDED
        assert run_pb2.RUN_STATE_RUNNING in states


def test_cursor_expired_is_typed() -> None:
    gw = Gateway({"events": {"retention": 5}})
    try:
        with clawplane.connect(gw.url, gw.token) as c:
            for i in range(2):
                c.chat_send(f"s{i}", f"fill the log {uuid.uuid4().hex[:4]}").wait(30)
            st = c.status()
            assert st.oldest_event_seq > 2
            with pytest.raises(CursorExpiredError) as ei:
                for _ in c.watch_events(after_seq=1):
                    pass
            e = ei.value
            assert e.code == grpc.StatusCode.OUT_OF_RANGE
            assert e.reason == "CURSOR_EXPIRED"
            assert e.after_seq == 1
            assert e.oldest_seq == int(e.metadata["oldestSeq"]) >= st.oldest_event_seq - 0

            async def body() -> None:
                async with await clawplane.connect_async(gw.url, gw.token) as ac:
                    with pytest.raises(CursorExpiredError):
                        async for _ in ac.watch_events(after_seq=1):
                            pass

            asyncio.run(body())
    finally:
        gw.close()


def test_watch_from_another_thread_can_be_closed(own_gateway: Gateway) -> None:
    """A blocking watch on an idle log wakes up for a run submitted from another thread."""
    gw = own_gateway
    with clawplane.connect(gw.url, gw.token) as c:
        head = c.status().last_event_seq
        got: list[event_pb2.Event] = []

        def reader() -> None:
            with c.watch_events(head, kinds=[event_pb2.EVENT_KIND_RUN]) as w:
                for e in w:
                    got.append(e)
                    if clawplane.is_terminal(e.run):
                        return

        t = threading.Thread(target=reader)
        t.start()
        c.chat_send("threads", "from a thread").wait(30)
        t.join(30)
        assert not t.is_alive()
        assert got[-1].run.state == run_pb2.RUN_STATE_SUCCEEDED
