"""The blocking facade: :class:`Client`, :class:`RunHandle` and :class:`EventWatch`.

Each :class:`Client` owns one background thread running an asyncio loop with an
:class:`~clawplane.aio.AsyncClient`; every call is that client's coroutine run to completion
on the loop, so the sync and async APIs behave identically (same retries, same resume rules).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, AsyncIterator, Coroutine, Generic, Iterable, Iterator, Optional, TypeVar

import grpc

from .aio import DEFAULT_WAIT, AsyncClient, AsyncEventWatch, AsyncRunHandle, RunUpdate, Stubs
from .v1 import agent_pb2, device_pb2, event_pb2, gateway_pb2, run_pb2, session_pb2

__all__ = ["Client", "EventWatch", "RunHandle", "connect"]

T = TypeVar("T")


class _LoopThread:
    """An asyncio loop on a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="clawplane-sdk", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            raise RuntimeError("a clawplane.Client must not be used from its own loop thread")
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result()
        except BaseException:
            # KeyboardInterrupt and friends: do not leave the call running in the background.
            if not fut.done():
                fut.cancel()
                try:
                    fut.result(timeout=5)
                except (concurrent.futures.CancelledError, Exception):
                    pass
            raise

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()


class _SyncIterator(Generic[T]):
    """Drives an async iterator on the loop thread, one item per ``next()``."""

    def __init__(self, loop: _LoopThread, agen: AsyncIterator[T]) -> None:
        self._loop = loop
        self._agen = agen
        self._done = False

    def __iter__(self) -> "_SyncIterator[T]":
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        try:
            return self._loop.run(self._agen.__anext__())  # type: ignore[arg-type]
        except StopAsyncIteration:
            self._done = True
            raise StopIteration from None

    def close(self) -> None:
        """Stops the iteration and releases its stream."""
        if self._done:
            return
        self._done = True
        aclose = getattr(self._agen, "aclose", None)
        if aclose is not None:
            self._loop.run(aclose())

    def __enter__(self) -> "_SyncIterator[T]":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventWatch(_SyncIterator[Any]):
    """The blocking :class:`~clawplane.aio.AsyncEventWatch`: iterate it for ``Event``
    messages (and ``Progress`` with ``progress=True``); :attr:`last_seq` is its cursor."""

    def __init__(self, loop: _LoopThread, watch: AsyncEventWatch) -> None:
        super().__init__(loop, watch)
        self._watch = watch

    @property
    def last_seq(self) -> int:
        """The last seq seen (the cursor a resume uses)."""
        return self._watch.last_seq

    @property
    def reconnects(self) -> int:
        """How many times the watch reconnected."""
        return self._watch.reconnects


class RunHandle:
    """A submitted run (blocking twin of :class:`~clawplane.aio.AsyncRunHandle`)."""

    def __init__(self, loop: _LoopThread, handle: AsyncRunHandle) -> None:
        self._loop = loop
        self._handle = handle

    def __repr__(self) -> str:
        return f"RunHandle(run_id={self.run_id!r}, session_key={self.session_key!r}, duplicate={self.duplicate})"

    @property
    def run_id(self) -> str:
        return self._handle.run_id

    @property
    def session_key(self) -> str:
        return self._handle.session_key

    @property
    def duplicate(self) -> bool:
        return self._handle.duplicate

    @property
    def state(self) -> int:
        return self._handle.state

    @property
    def final(self) -> Optional[run_pb2.Run]:
        """The final run once :meth:`stream` / :meth:`deltas` / :meth:`wait` saw it."""
        return self._handle.final

    def get(self, *, timeout: Optional[float] = None) -> run_pb2.Run:
        """Reads the run now."""
        return self._loop.run(self._handle.get(timeout=timeout))

    def wait(self, timeout: Optional[float] = DEFAULT_WAIT) -> run_pb2.Run:
        """Waits up to ``timeout`` s (default 30) for the run to finish; see
        :meth:`AsyncRunHandle.wait`."""
        return self._loop.run(self._handle.wait(timeout))

    def cancel(self, *, timeout: Optional[float] = None) -> run_pb2.Run:
        """Cancels the run (a finished run is returned unchanged)."""
        return self._loop.run(self._handle.cancel(timeout=timeout))

    def stream(self) -> _SyncIterator[RunUpdate]:
        """Deltas, state changes, then the final run; see :meth:`AsyncRunHandle.stream`."""
        return _SyncIterator(self._loop, self._handle.stream())

    def deltas(self) -> _SyncIterator[str]:
        """The reply text as it streams; afterwards :attr:`final` holds the final run."""
        return _SyncIterator(self._loop, self._handle.deltas())


class Client:
    """A blocking connection to one clawplane gateway.

    ::

        with clawplane.connect() as client:   # CLAWPLANE_URL / CLAWPLANE_TOKEN
            run = client.agent_run("hi").wait()
            print(run.reply_text)

    Same verbs as :class:`~clawplane.aio.AsyncClient`. :attr:`stubs` holds blocking
    generated stubs on a second (lazily created) channel for calls without a typed verb;
    pass :attr:`metadata` with them.
    """

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        connect_timeout: Optional[float] = None,
        ca_file: Optional[str] = None,
        tls_fingerprint: Optional[str] = None,
    ) -> None:
        self._loop = _LoopThread()
        try:
            if connect_timeout is None:
                self._aio = self._loop.run(_make(url, token, ca_file, tls_fingerprint))
            else:
                self._aio = self._loop.run(
                    AsyncClient.connect(
                        url, token, timeout=connect_timeout, ca_file=ca_file, tls_fingerprint=tls_fingerprint
                    )
                )
        except BaseException:
            self._loop.stop()
            raise
        self._sync_channel: Optional[grpc.Channel] = None
        self._stubs: Optional[Stubs] = None

    @classmethod
    def connect(
        cls,
        url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        timeout: float = 5.0,
        ca_file: Optional[str] = None,
        tls_fingerprint: Optional[str] = None,
    ) -> "Client":
        """Connects (waiting up to ``timeout`` s); an unreachable gateway raises
        :class:`~clawplane.ClawplaneError` with code ``UNAVAILABLE``, a refused certificate
        :class:`~clawplane.TlsError`."""
        return cls(url, token, connect_timeout=timeout, ca_file=ca_file, tls_fingerprint=tls_fingerprint)

    def __repr__(self) -> str:
        return f"Client(url={self.url!r})"

    @property
    def url(self) -> str:
        """The normalised gateway URL."""
        return self._aio.url

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The auth metadata to send with raw stub calls."""
        return self._aio.metadata

    @property
    def stubs(self) -> Stubs:
        """Blocking generated stubs (``client.stubs.devices.Challenge(req, metadata=...)``)."""
        if self._stubs is None:
            target = self._aio.target
            creds = self._aio.channel_credentials
            if creds is not None:
                self._sync_channel = grpc.secure_channel(target, creds, options=self._aio.channel_options)
            else:
                self._sync_channel = grpc.insecure_channel(target, options=self._aio.channel_options)
            self._stubs = Stubs(self._sync_channel)
        return self._stubs

    def close(self) -> None:
        """Closes the connection and stops the background loop."""
        if self._loop.loop.is_closed():
            return
        try:
            self._loop.run(self._aio.close())
        finally:
            if self._sync_channel is not None:
                self._sync_channel.close()
            self._loop.stop()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _handle(self, h: AsyncRunHandle) -> RunHandle:
        return RunHandle(self._loop, h)

    # gateway
    def status(self, *, timeout: Optional[float] = None) -> gateway_pb2.GatewayServiceStatusResponse:
        """``GatewayService/Status``."""
        return self._loop.run(self._aio.status(timeout=timeout))

    def get_caller(self, *, timeout: Optional[float] = None) -> gateway_pb2.GetCallerResponse:
        """``GatewayService/GetCaller``."""
        return self._loop.run(self._aio.get_caller(timeout=timeout))

    def wake(self, text: str, **kw: Any) -> gateway_pb2.GatewayServiceWakeResponse:
        """``GatewayService/Wake`` (``mode``, ``session_key``, ``agent_id``, ``timeout``)."""
        return self._loop.run(self._aio.wake(text, **kw))

    # runs
    def agent_run(
        self,
        message: str,
        *,
        session_key: str = "",
        idempotency_key: Optional[str] = None,
        timeout: Optional[float] = None,
        **fields: Any,
    ) -> RunHandle:
        """``AgentService/Run``; see :meth:`AsyncClient.agent_run`."""
        return self._handle(
            self._loop.run(
                self._aio.agent_run(
                    message, session_key=session_key, idempotency_key=idempotency_key, timeout=timeout, **fields
                )
            )
        )

    def chat_send(
        self,
        session_key: str,
        message: str,
        *,
        idempotency_key: Optional[str] = None,
        timeout: Optional[float] = None,
        **fields: Any,
    ) -> RunHandle:
        """``ChatService/Send``; see :meth:`AsyncClient.chat_send`."""
        return self._handle(
            self._loop.run(
                self._aio.chat_send(session_key, message, idempotency_key=idempotency_key, timeout=timeout, **fields)
            )
        )

    def sessions_send(
        self,
        session_key: str,
        message: str,
        *,
        idempotency_key: Optional[str] = None,
        timeout: Optional[float] = None,
        **fields: Any,
    ) -> RunHandle:
        """``SessionService/Send``; see :meth:`AsyncClient.sessions_send`."""
        return self._handle(
            self._loop.run(
                self._aio.sessions_send(session_key, message, idempotency_key=idempotency_key, timeout=timeout, **fields)
            )
        )

    def get_run(self, run_id: str, *, timeout: Optional[float] = None) -> run_pb2.Run:
        """``AgentService/GetRun``."""
        return self._loop.run(self._aio.get_run(run_id, timeout=timeout))

    def run_handle(self, run_id: str, *, timeout: Optional[float] = None) -> RunHandle:
        """A handle for an existing run."""
        return self._handle(self._loop.run(self._aio.run_handle(run_id, timeout=timeout)))

    def wait_run(self, run_id: str, timeout: Optional[float] = DEFAULT_WAIT) -> run_pb2.Run:
        """Waits for a run (default 30 s); see :meth:`AsyncClient.wait_run`."""
        return self._loop.run(self._aio.wait_run(run_id, timeout))

    def cancel_run(self, run_id: str, *, timeout: Optional[float] = None) -> run_pb2.Run:
        """``AgentService/CancelRun``."""
        return self._loop.run(self._aio.cancel_run(run_id, timeout=timeout))

    def list_runs(self, **kw: Any) -> agent_pb2.ListRunsResponse:
        """``AgentService/ListRuns`` (``session_key``, ``states``, ``page_size``, ``page_token``,
        ``timeout``)."""
        return self._loop.run(self._aio.list_runs(**kw))

    # sessions
    def sessions_list(self, agent_id: str = "", *, timeout: Optional[float] = None) -> list[session_pb2.Session]:
        """``SessionService/List``, every page."""
        return self._loop.run(self._aio.sessions_list(agent_id, timeout=timeout))

    def sessions_get(self, session_key: str, *, timeout: Optional[float] = None) -> session_pb2.Session:
        """``SessionService/Get``."""
        return self._loop.run(self._aio.sessions_get(session_key, timeout=timeout))

    def sessions_history(
        self, session_key: str, *, timeout: Optional[float] = None
    ) -> tuple[session_pb2.Session, list[session_pb2.Message]]:
        """``ChatService/History``, every page."""
        return self._loop.run(self._aio.sessions_history(session_key, timeout=timeout))

    # events
    def watch_events(
        self,
        after_seq: int = 0,
        filter: Optional[event_pb2.EventFilter] = None,
        *,
        kinds: Iterable[int] = (),
        run_id: str = "",
        session_key: str = "",
        progress: bool = False,
    ) -> EventWatch:
        """An auto-resuming ``EventService/Watch`` iterator; see :meth:`AsyncClient.watch_events`."""
        watch = self._aio.watch_events(
            after_seq, filter, kinds=kinds, run_id=run_id, session_key=session_key, progress=progress
        )
        return EventWatch(self._loop, watch)

    # devices
    def devices_list(self, *, timeout: Optional[float] = None) -> device_pb2.ListDevicesResponse:
        """``DeviceService/ListDevices``."""
        return self._loop.run(self._aio.devices_list(timeout=timeout))

    def devices_approve(self, request_id: str, *, timeout: Optional[float] = None) -> device_pb2.ApprovePairingResponse:
        """``DeviceService/ApprovePairing``."""
        return self._loop.run(self._aio.devices_approve(request_id, timeout=timeout))

    def devices_reject(self, request_id: str, *, timeout: Optional[float] = None) -> device_pb2.RejectPairingResponse:
        """``DeviceService/RejectPairing``."""
        return self._loop.run(self._aio.devices_reject(request_id, timeout=timeout))


async def _make(
    url: Optional[str], token: Optional[str], ca_file: Optional[str], tls_fingerprint: Optional[str]
) -> AsyncClient:
    return AsyncClient(url, token, ca_file=ca_file, tls_fingerprint=tls_fingerprint)


def connect(
    url: Optional[str] = None,
    token: Optional[str] = None,
    *,
    timeout: float = 5.0,
    ca_file: Optional[str] = None,
    tls_fingerprint: Optional[str] = None,
) -> Client:
    """Connects to the gateway and returns a blocking :class:`Client`.

    ``url`` defaults to ``$CLAWPLANE_URL``, then ``http://127.0.0.1:18789``; ``token`` to
    ``$CLAWPLANE_TOKEN``, ``$CLAWPLANE_GATEWAY_TOKEN``, ``$OPENCLAW_GATEWAY_TOKEN``, then for a
    loopback URL the local
    gateway's ``gateway.token`` (see :func:`~clawplane.discover`; ``token=""`` sends none). Raises
    :class:`~clawplane.ClawplaneError` (``UNAVAILABLE``) when nothing answers within
    ``timeout`` seconds. For an ``https://`` URL, ``ca_file`` (default ``$CLAWPLANE_TLS_CA``)
    is a PEM file of CAs to trust (e.g. the gateway's ``<data-dir>/tls/cert.pem``), or
    ``tls_fingerprint`` (default ``$CLAWPLANE_TLS_FINGERPRINT``) the SHA-256 fingerprint of
    the one certificate to accept; with neither, a loopback URL trusts the local gateway's
    ``<data-dir>/tls/cert.pem`` when it exists; a refused certificate raises :class:`~clawplane.TlsError`
    (``certificate fingerprint mismatch: expected X, got Y``).
    """
    return Client.connect(url, token, timeout=timeout, ca_file=ca_file, tls_fingerprint=tls_fingerprint)
