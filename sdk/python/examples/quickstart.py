"""Quickstart: status, a chat turn streamed word by word, a typed error, and an event watch.

    CLAWPLANE_URL=http://127.0.0.1:18789 CLAWPLANE_TOKEN=... python examples/quickstart.py

(The blocking client is shown first; ``main_async`` does the same with ``grpc.aio``.)
"""

import asyncio
import sys

import clawplane
from clawplane import ClawplaneError, event_pb2, run_pb2


def main() -> None:
    # URL and token default to $CLAWPLANE_URL (else http://127.0.0.1:18789) / $CLAWPLANE_TOKEN.
    with clawplane.connect() as client:
        st = client.status()
        print(f"gateway {st.version}, default model {st.default_model}, event head {st.last_event_seq}")

        # Send a message and stream the reply as it is produced.
        run = client.chat_send("quickstart", "hello from Python")
        for text in run.deltas():
            print(text, end="", flush=True)
        print()
        final = run.final
        assert final is not None
        print("state:", run_pb2.RunState.Name(final.state))

        # Or just wait for the result.
        print(client.agent_run("what's up?", session_key="quickstart").wait(timeout=60).reply_text)

        # Errors are typed: code, reason, metadata, field violations, and a hint.
        try:
            client.sessions_send("no-such-session", "hi")
        except ClawplaneError as e:
            print(f"expected error: {e.code.name} {e.reason} -> {e.hint()}")

        # Replay the run events of the quickstart session; the watch resumes by itself after a
        # disconnect or gateway restart, without gaps or duplicates.
        with client.watch_events(0, kinds=[event_pb2.EVENT_KIND_RUN], session_key=run.session_key,
                                 progress=True) as watch:
            for item in watch:
                if isinstance(item, event_pb2.Progress):
                    break  # idle: caught up
                print(f"  #{item.seq} {item.run_id[:8]} {run_pb2.RunState.Name(item.run.state)}")

        print("devices pending approval:", len(client.devices_list().pending))


async def main_async() -> None:
    async with await clawplane.connect_async() as client:
        handle = await client.agent_run("hello from asyncio", session_key="quickstart")
        async for update in handle.stream():
            if update.kind == "delta":
                print(update.text, end="", flush=True)
        print()


if __name__ == "__main__":
    try:
        main()
        asyncio.run(main_async())
    except ClawplaneError as e:
        print(f"error: {e}" + (f"\nhint: {e.hint()}" if e.hint() else ""), file=sys.stderr)
        sys.exit(1)
