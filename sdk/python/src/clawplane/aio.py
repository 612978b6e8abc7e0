"""The asyncio client (``grpc.aio``): :class:`AsyncClient`, :class:`AsyncRunHandle` and the
auto-resuming :class:`AsyncEventWatch`.

Retries follow AIP-194, like the Rust SDK: idempotent unary calls are retried on
``UNAVAILABLE`` only (three attempts, backoff from 100 ms); run submissions are made
idempotent by generating an idempotency key (a UUID) when none is given.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, cast, Awaitable, Callable, Iterable, Literal, Optional, TypeVar, Union

import grpc
import grpc.aio

from .errors import ClawplaneError, CursorExpiredError, from_rpc_error
from .tls import (
    TlsError,
    diagnose_handshake,
    fetch_pinned_certificate,
    parse_fingerprint,
    pinned_channel_options,
    read_ca_file,
    speaks_tls,
)
from .v1 import (
    agent_pb2,
    agent_pb2_grpc,
    channel_pb2_grpc,
    chat_pb2,
    chat_pb2_grpc,
    device_pb2,
    device_pb2_grpc,
    event_pb2,
    event_pb2_grpc,
    gateway_pb2,
    gateway_pb2_grpc,
    run_pb2,
    session_pb2,
    session_pb2_grpc,
    webhook_pb2_grpc,
)

__all__ = [
    "DEFAULT_URL",
    "DEFAULT_WAIT",
    "AsyncClient",
    "AsyncEventWatch",
    "AsyncRunHandle",
    "RunUpdate",
    "Stubs",
    "connect",
    "discover",
    "is_terminal",
]

#: The gateway URL used when neither ``url`` nor ``CLAWPLANE_URL`` is given.
DEFAULT_URL = "http://127.0.0.1:18789"

#: How long ``wait()`` / ``wait_run()`` wait by default, in seconds: 30, as in every clawplane
#: SDK, the CLI's ``runs wait`` and the gateway's own ``AgentService/Wait``.
DEFAULT_WAIT = 30.0

#: Largest message the client accepts (transcripts can be long).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: Attempts for idempotent unary calls that fail with UNAVAILABLE.
UNARY_ATTEMPTS = 3
#: Longest single ``AgentService/Wait`` call (the server treats 0 as 30 s).
WAIT_CHUNK_SECONDS = 30.0
#: Reconnect backoff of the event watch.
BACKOFF_MIN = 0.1
BACKOFF_MAX = 2.0

T = TypeVar("T")

RunState = run_pb2.RunState
EventKind = event_pb2.EventKind


def _non_empty(s: Optional[str]) -> Optional[str]:
    t = (s or "").strip()
    return t or None


def data_dir() -> Path:
    """The local gateway's data directory: ``$CLAWPLANE_DATA_DIR``, else ``~/.clawplane``."""
    return Path(_non_empty(os.environ.get("CLAWPLANE_DATA_DIR")) or Path.home() / ".clawplane")


def discover(url: Optional[str] = None, token: Optional[str] = None) -> tuple[str, Optional[str]]:
    """The gateway URL and token to use, found as by the other SDKs and the CLI.

    ``url`` defaults to ``$CLAWPLANE_URL``, then ``http://127.0.0.1:18789``. ``token``
    defaults to ``$CLAWPLANE_TOKEN``, then ``$CLAWPLANE_GATEWAY_TOKEN``, then
    ``$OPENCLAW_GATEWAY_TOKEN``, then — only for a
    loopback URL (``localhost``, ``*.localhost``, ``127.0.0.0/8``, ``::1``), so a local
    secret never goes to a remote gateway — the local gateway's token file
    ``<data dir>/gateway.token`` (:func:`data_dir`). Pass ``token=""`` to send no token.
    """
    resolved_url = _non_empty(url) or _non_empty(os.environ.get("CLAWPLANE_URL")) or DEFAULT_URL
    if token is not None:
        return resolved_url, _non_empty(token)
    found = (
        _non_empty(os.environ.get("CLAWPLANE_TOKEN"))
        or _non_empty(os.environ.get("CLAWPLANE_GATEWAY_TOKEN"))
        or _non_empty(os.environ.get("OPENCLAW_GATEWAY_TOKEN"))
    )
    if found is None and _is_loopback_url(resolved_url):
        try:
            found = _non_empty((data_dir() / "gateway.token").read_text())
        except (OSError, UnicodeDecodeError):
            found = None
    return resolved_url, found


def _parse_url(url: str) -> tuple[str, bool, str]:
    """``(grpc target, tls, normalised url)`` for ``http://host:port`` (no scheme = http)."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError as e:
        raise ClawplaneError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid gateway URL {url!r}: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClawplaneError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"invalid gateway URL {url!r}: expected http://HOST:PORT or https://HOST:PORT",
        )
    tls = parts.scheme == "https"
    if port is None:
        port = 443 if tls else 80
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}", tls, f"{parts.scheme}://{shown}:{port}"


def _is_loopback(host_port: str) -> bool:
    host = host_port.rsplit(":", 1)[0].strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_loopback_url(url: str) -> bool:
    try:
        return _is_loopback(_parse_url(url)[0])
    except ClawplaneError:
        return False


class _Budget:
    """One call's time limit (``timeout=`` seconds; ``None``: none), shared by all the RPCs the
    call makes (retries, pages)."""

    def __init__(self, timeout: Optional[float]) -> None:
        self.timeout = timeout
        self._end = None if timeout is None else asyncio.get_running_loop().time() + timeout

    def left(self) -> Optional[float]:
        """Seconds left for the next RPC; raises ``DEADLINE_EXCEEDED`` once none are."""
        if self._end is None:
            return None
        left = self._end - asyncio.get_running_loop().time()
        if left <= 0:
            raise ClawplaneError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"the call did not finish within its timeout of {self.timeout:g}s",
            )
        return left

    def passed_in(self, seconds: float) -> bool:
        return self._end is not None and asyncio.get_running_loop().time() + seconds >= self._end


def _auth_metadata(token: Optional[str]) -> tuple[tuple[str, str], ...]:
    if token is None:
        return ()
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise ClawplaneError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "the token contains characters that cannot be sent in an HTTP header",
        )
    return (("authorization", f"Bearer {token}"),)


def channel_options(target: str) -> list[tuple[str, Any]]:
    """The channel options the SDK uses (also for the sync ``Client.stubs`` channel)."""
    opts: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        # Reconnect quickly after a gateway restart (gRPC's default starts at 1 s).
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2000),
        ("grpc.keepalive_time_ms", 20000),
        ("grpc.keepalive_timeout_ms", 20000),
    ]
    if _is_loopback(target):
        opts.append(("grpc.enable_http_proxy", 0))
    return opts


def is_terminal(run: run_pb2.Run) -> bool:
    """True when the run will not change any more: SUCCEEDED, FAILED, CANCELLED, TIMED_OUT,
    or INTERRUPTED on its second attempt (a first-attempt INTERRUPTED run is retried once)."""
    s = run.state
    if s in (
        run_pb2.RUN_STATE_SUCCEEDED,
        run_pb2.RUN_STATE_FAILED,
        run_pb2.RUN_STATE_CANCELLED,
        run_pb2.RUN_STATE_TIMED_OUT,
    ):
        return True
    if s == run_pb2.RUN_STATE_INTERRUPTED:
        return run.attempt >= 2
    return False


class Stubs:
    """The generated service stubs of one channel (``grpc.aio`` or sync)."""

    def __init__(self, channel: Any) -> None:
        # grpcio-tools emits no type hints for the stubs (the messages have .pyi stubs).
        self.chat = chat_pb2_grpc.ChatServiceStub(channel)  # type: ignore[no-untyped-call]
        self.sessions = session_pb2_grpc.SessionServiceStub(channel)  # type: ignore[no-untyped-call]
        self.agent = agent_pb2_grpc.AgentServiceStub(channel)  # type: ignore[no-untyped-call]
        self.events = event_pb2_grpc.EventServiceStub(channel)  # type: ignore[no-untyped-call]
        self.gateway = gateway_pb2_grpc.GatewayServiceStub(channel)  # type: ignore[no-untyped-call]
        self.devices = device_pb2_grpc.DeviceServiceStub(channel)  # type: ignore[no-untyped-call]
        self.channels = channel_pb2_grpc.ChannelServiceStub(channel)  # type: ignore[no-untyped-call]
        self.webhooks = webhook_pb2_grpc.WebhookServiceStub(channel)  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class RunUpdate:
    """One item of :meth:`AsyncRunHandle.stream`.

    ``kind`` is ``"delta"`` (``text`` holds more reply text; concatenated, the deltas give the
    reply), ``"state"`` (a non-terminal state change, ``run`` set) or ``"done"`` (the final
    run, always the last item).
    """

    kind: Literal["delta", "state", "done"]
    text: str = ""
    run: Optional[run_pb2.Run] = None


Frame = Union[event_pb2.Event, event_pb2.Progress]


def _resumable(err: ClawplaneError, closed: bool) -> bool:
    if closed:
        return False
    S = grpc.StatusCode
    if err.code == S.UNAVAILABLE:
        return True
    if err.code == S.ABORTED and err.reason == "SUBSCRIBER_LAGGED":
        return True
    # A transport failure detected locally (connection reset, GOAWAY): the gateway tags every
    # status it sends with an ErrorInfo, so these carry none.
    return err.code in (S.UNKNOWN, S.INTERNAL, S.CANCELLED) and err.reason is None


class AsyncEventWatch:
    """An ``EventService/Watch`` that resumes by itself (async iterator of ``Event``).

    It remembers the last seq seen (:attr:`last_seq`, from events and progress frames). When
    the stream breaks (a transport error, UNAVAILABLE such as a gateway restart, the server
    closing the stream, or ABORTED ``SUBSCRIBER_LAGGED``) it calls Watch again with
    ``afterSeq`` = that seq, backing off from 100 ms to 2 s, so nothing is skipped and no event
    is yielded twice (events at or below the cursor are dropped).

    OUT_OF_RANGE ``CURSOR_EXPIRED`` ends it with :class:`~clawplane.CursorExpiredError`; any
    other error ends it with that :class:`~clawplane.ClawplaneError`. With ``progress=True``
    idle heartbeats (``Progress``) are yielded too.
    """

    def __init__(
        self,
        client: "AsyncClient",
        after_seq: int,
        filter: event_pb2.EventFilter,
        progress: bool = False,
    ) -> None:
        self._client = client
        self._filter = filter
        self._progress = progress
        self._call: Any = None
        self._backoff = BACKOFF_MIN
        self._finished = False
        #: The last seq seen: the cursor a resume uses.
        self.last_seq = after_seq
        #: How many times the watch reconnected.
        self.reconnects = 0

    def __aiter__(self) -> "AsyncEventWatch":
        return self

    async def __anext__(self) -> Any:
        item = await self.next()
        if item is None:
            raise StopAsyncIteration
        return item

    async def _pause(self) -> None:
        self.reconnects += 1
        await asyncio.sleep(self._backoff)
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)

    async def next(self) -> Optional[Frame]:
        """The next event (or progress frame), or ``None`` once the watch was closed."""
        while True:
            if self._finished:
                return None
            if self._call is None:
                req = event_pb2.EventServiceWatchRequest(after_seq=self.last_seq, filter=self._filter)
                self._call = self._client.stubs.events.Watch(req, metadata=self._client.metadata)
            try:
                frame = await self._call.read()
            except grpc.RpcError as e:
                self._call = None
                err = from_rpc_error(e)
                if _resumable(err, self._client.closed or self._finished):
                    await self._pause()
                    continue
                self._finished = True
                if err.code == grpc.StatusCode.OUT_OF_RANGE and err.reason == "CURSOR_EXPIRED":
                    raise CursorExpiredError(err, self.last_seq) from None
                raise err from None
            if frame is grpc.aio.EOF:
                # The gateway closed the stream (e.g. shutting down): resume.
                self._call = None
                if self._client.closed:
                    self._finished = True
                    return None
                await self._pause()
                continue
            self._backoff = BACKOFF_MIN
            which = frame.WhichOneof("frame")
            if which == "event":
                event = frame.event
                if event.seq <= self.last_seq:
                    continue  # already delivered before a reconnect
                self.last_seq = event.seq
                return event  # type: ignore[no-any-return]
            if which == "progress":
                if frame.progress.seq > self.last_seq:
                    self.last_seq = frame.progress.seq
                if self._progress:
                    return frame.progress  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Stops the watch (cancels the open call)."""
        self._finished = True
        call, self._call = self._call, None
        if call is not None:
            call.cancel()

    async def __aenter__(self) -> "AsyncEventWatch":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncRunHandle:
    """A submitted run: wait for it, cancel it, or stream its reply.

    Attributes:
        run_id: the run id.
        session_key: the canonical session key the run belongs to.
        duplicate: True when the gateway returned an existing run for a repeated
            idempotency key.
        state: the state when the run was accepted (``RUN_STATE_QUEUED`` for a new run).
        final: the final run once :meth:`stream` / :meth:`deltas` / :meth:`wait` saw it.
    """

    def __init__(
        self,
        client: "AsyncClient",
        run_id: str,
        session_key: str,
        *,
        duplicate: bool = False,
        state: int = run_pb2.RUN_STATE_UNSPECIFIED,
        start_seq: Optional[int] = None,
    ) -> None:
        self.client = client
        self.run_id = run_id
        self.session_key = session_key
        self.duplicate = duplicate
        self.state = state
        self.final: Optional[run_pb2.Run] = None
        self._start_seq = start_seq

    def __repr__(self) -> str:
        return (
            f"AsyncRunHandle(run_id={self.run_id!r}, session_key={self.session_key!r}, "
            f"duplicate={self.duplicate})"
        )

    async def get(self, *, timeout: Optional[float] = None) -> run_pb2.Run:
        """Reads the run now (``AgentService/GetRun``)."""
        return await self.client.get_run(self.run_id, timeout=timeout)

    async def wait(self, timeout: Optional[float] = DEFAULT_WAIT) -> run_pb2.Run:
        """Waits up to ``timeout`` seconds (default :data:`DEFAULT_WAIT`, 30; ``None``:
        forever) for the run to finish and returns it; when the timeout passes first the run
        is returned in its current, non-terminal state (check :func:`is_terminal`). Cancelling
        the task cancels the wait, not the run."""
        run = await self.client.wait_run(self.run_id, timeout)
        if is_terminal(run):
            self.final = run
        return run

    async def cancel(self, *, timeout: Optional[float] = None) -> run_pb2.Run:
        """Cancels the run (``AgentService/CancelRun``); a finished run is returned unchanged."""
        return await self.client.cancel_run(self.run_id, timeout=timeout)

    async def stream(self) -> AsyncIterator[RunUpdate]:
        """Streams the run: reply deltas as the model produces them, non-terminal state
        changes, then a ``"done"`` update with the final run, after which it ends.

        Built on the auto-resuming event watch filtered by run id and kinds RUN + DELTA,
        starting at the event head seen just before the run was submitted (no delta is missed
        and the log is not replayed). For a duplicate or attached run the run is read first; if
        it already finished its reply is yielded as one delta. Either way the deltas of the
        final attempt concatenate to ``Run.reply_text``.
        """
        after = self._start_seq if not self.duplicate else None
        if after is None:
            run = await self.get()
            if is_terminal(run):
                self.final = run
                if run.reply_text:
                    yield RunUpdate("delta", run.reply_text)
                yield RunUpdate("done", run=run)
                return
            after = 0  # its events may predate our head: replay them (filtered)
        flt = event_pb2.EventFilter(
            run_id=self.run_id, kinds=[event_pb2.EVENT_KIND_RUN, event_pb2.EVENT_KIND_DELTA]
        )
        watch = self.client.watch_events(after, flt)
        text = ""
        attempt = 0
        try:
            async for event in watch:
                which = event.WhichOneof("payload")
                if which == "delta":
                    if event.delta.text:
                        text += event.delta.text
                        yield RunUpdate("delta", event.delta.text)
                elif which == "run":
                    run = event.run
                    if is_terminal(run):
                        self.final = run
                        if run.reply_text.startswith(text) and len(run.reply_text) > len(text):
                            # Reply text the deltas did not carry (e.g. a replay gap).
                            yield RunUpdate("delta", run.reply_text[len(text):])
                        yield RunUpdate("done", run=run)
                        return
                    if run.attempt > attempt:
                        if attempt != 0:
                            text = ""  # a new attempt regenerates the reply from scratch
                        attempt = run.attempt
                    yield RunUpdate("state", run=run)
        finally:
            await watch.aclose()
        raise ClawplaneError(grpc.StatusCode.INTERNAL, "the event watch ended before the run finished")

    async def deltas(self) -> AsyncIterator[str]:
        """The reply text as it streams (the ``"delta"`` items of :meth:`stream`); afterwards
        :attr:`final` holds the final run."""
        async for update in self.stream():
            if update.kind == "delta":
                yield update.text


class AsyncClient:
    """A connection to one clawplane gateway over ``grpc.aio``.

    Create it inside a running event loop, with :func:`connect` (dials and checks the
    gateway is reachable) or the constructor (dials lazily on the first call)::

        client = await clawplane.aio.connect()          # CLAWPLANE_URL / CLAWPLANE_TOKEN
        run = await (await client.agent_run("hi")).wait()
        print(run.reply_text)

    Typed calls cover the common verbs; every generated stub is at :attr:`stubs` (send
    :attr:`metadata` with raw calls to authenticate).
    """

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        options: Optional[Iterable[tuple[str, Any]]] = None,
        credentials: Optional[grpc.ChannelCredentials] = None,
        ca_file: Optional[str] = None,
        tls_fingerprint: Optional[str] = None,
    ) -> None:
        raw_url, tok = discover(url, token)
        target, tls, self.url = _parse_url(raw_url)
        self.target = target
        #: ``(("authorization", "Bearer <token>"),)`` or ``()`` without a token.
        self.metadata = _auth_metadata(tok)
        ca_file = (ca_file or "").strip() or None
        tls_fingerprint = (tls_fingerprint or "").strip() or None
        if credentials is not None and (ca_file or tls_fingerprint):
            raise ClawplaneError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "pass either credentials or ca_file / tls_fingerprint, not both",
            )
        if not tls and (ca_file or tls_fingerprint):
            raise ClawplaneError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"ca_file / tls_fingerprint need an https:// URL, got {self.url}",
            )
        #: The PEM the channel trusts (the CA file, or the pinned certificate), if any.
        self.root_certificates: Optional[bytes] = None
        self._pinned = False
        tls_opts: list[tuple[str, Any]] = []
        if tls and credentials is None:
            if not ca_file and not tls_fingerprint:
                tls_fingerprint = _non_empty(os.environ.get("CLAWPLANE_TLS_FINGERPRINT"))
                if not tls_fingerprint:
                    ca_file = _non_empty(os.environ.get("CLAWPLANE_TLS_CA"))
                if not tls_fingerprint and not ca_file and _is_loopback(target):
                    # A loopback https:// URL trusts the local gateway's generated certificate.
                    local = data_dir() / "tls" / "cert.pem"
                    if local.is_file():
                        ca_file = str(local)
            if tls_fingerprint:
                expected = parse_fingerprint(tls_fingerprint)
                pem = fetch_pinned_certificate(target, expected)
                self.root_certificates = pem.encode("ascii")
                self._pinned = True
                tls_opts = pinned_channel_options(target, pem)
            elif ca_file:
                self.root_certificates = read_ca_file(ca_file)
            credentials = grpc.ssl_channel_credentials(root_certificates=self.root_certificates)
        #: The channel options (for another channel to the same gateway, e.g. ``Client.stubs``).
        self.channel_options = channel_options(target) + tls_opts + list(options or [])
        #: The channel credentials (``None`` for a plain-text ``http://`` channel).
        self.channel_credentials: Optional[grpc.ChannelCredentials] = credentials
        if credentials is not None:
            self.channel = grpc.aio.secure_channel(target, credentials, options=self.channel_options)
        else:
            self.channel = grpc.aio.insecure_channel(target, options=self.channel_options)
        #: The generated ``grpc.aio`` stubs on this client's channel.
        self.stubs = Stubs(self.channel)
        self.closed = False

    @classmethod
    async def connect(
        cls,
        url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        timeout: float = 5.0,
        ca_file: Optional[str] = None,
        tls_fingerprint: Optional[str] = None,
    ) -> "AsyncClient":
        """Like the constructor, then waits up to ``timeout`` s for the connection; an
        unreachable gateway raises :class:`ClawplaneError` (``UNAVAILABLE``), a refused
        certificate (or an ``http://`` URL pointing at a TLS port) :class:`TlsError`."""
        client = cls(url, token, ca_file=ca_file, tls_fingerprint=tls_fingerprint)
        try:
            await client._wait_ready(timeout)
        except asyncio.TimeoutError:
            await client.close()
            raise ClawplaneError(
                grpc.StatusCode.UNAVAILABLE,
                f"the gateway at {client.url} is not reachable (no connection within {timeout:g}s)",
            ) from None
        except BaseException:
            await client.close()
            raise
        return client

    async def _wait_ready(self, timeout: float) -> None:
        """Waits for the channel to be ready; on its first connection failure, checks
        whether TLS is the reason (and raises :class:`TlsError` saying so)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        explained = False
        state = self.channel.get_state(try_to_connect=True)
        while state != grpc.ChannelConnectivity.READY:
            if state == grpc.ChannelConnectivity.TRANSIENT_FAILURE and not explained:
                explained = True
                detail = await asyncio.get_running_loop().run_in_executor(None, self._tls_failure)
                if detail is not None:
                    raise TlsError(detail)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise asyncio.TimeoutError()
            await asyncio.wait_for(self.channel.wait_for_state_change(state), remaining)
            state = self.channel.get_state(try_to_connect=True)

    def _tls_failure(self) -> Optional[str]:
        """What TLS has to do with a failed connection, if anything (blocking probes)."""
        if not self.url.startswith("https://"):
            if speaks_tls(self.target):
                https = "https://" + self.url[len("http://") :]
                return (
                    f"the gateway at {self.url} serves TLS (https); use {https} (with ca_file or "
                    "tls_fingerprint for a self-signed certificate)"
                )
            return None
        if self._pinned:
            return None
        return diagnose_handshake(self.target, self.root_certificates)

    def __repr__(self) -> str:
        return f"AsyncClient(url={self.url!r})"

    async def close(self) -> None:
        """Closes the channel (open watches end)."""
        self.closed = True
        await self.channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ plumbing

    async def _call(
        self,
        method: Callable[..., Awaitable[T]],
        request: Any,
        *,
        retry: bool = True,
        budget: Optional[_Budget] = None,
    ) -> tuple[T, int]:
        """Runs a unary call within ``budget``, retrying UNAVAILABLE (when ``retry``) with
        backoff. Returns the response and the number of attempts made."""
        delay = 0.1
        attempt = 1
        while True:
            try:
                left = None if budget is None else budget.left()
                resp = await method(request, metadata=self.metadata, timeout=left)
                return resp, attempt
            except grpc.RpcError as e:
                if (
                    retry
                    and not self.closed
                    and e.code() == grpc.StatusCode.UNAVAILABLE
                    and attempt < UNARY_ATTEMPTS
                    and not (budget is not None and budget.passed_in(delay))
                ):
                    await asyncio.sleep(delay)
                    delay *= 2
                    attempt += 1
                    continue
                raise from_rpc_error(e) from None

    async def _head_seq(self, budget: _Budget) -> Optional[int]:
        """The event-log head, or None when the caller may not read status."""
        try:
            resp, _ = await self._call(self.stubs.gateway.Status, gateway_pb2.GatewayServiceStatusRequest(), budget=budget)
            return int(resp.last_event_seq)
        except ClawplaneError as e:
            if e.code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
            return None

    async def _submit(self, method: Callable[..., Awaitable[Any]], req: Any, timeout: Optional[float]) -> AsyncRunHandle:
        auto_key = not req.idempotency_key
        if auto_key:
            req.idempotency_key = str(uuid.uuid4())
        budget = _Budget(timeout)
        head = await self._head_seq(budget)
        resp, attempts = await self._call(method, req, budget=budget)
        return AsyncRunHandle(
            self,
            resp.run_id,
            resp.session_key,
            # A retry of our own auto-keyed submission finds the first attempt's run.
            duplicate=bool(resp.duplicate) and not (auto_key and attempts > 1),
            state=resp.state,
            start_seq=head,
        )

    # ------------------------------------------------------------------ gateway

    async def status(self, *, timeout: Optional[float] = None) -> gateway_pb2.GatewayServiceStatusResponse:
        """``GatewayService/Status``: version, defaults, queue depths and the event-log head."""
        resp, _ = await self._call(
            self.stubs.gateway.Status, gateway_pb2.GatewayServiceStatusRequest(), budget=_Budget(timeout)
        )
        return cast("gateway_pb2.GatewayServiceStatusResponse", resp)

    async def get_caller(self, *, timeout: Optional[float] = None) -> gateway_pb2.GetCallerResponse:
        """``GatewayService/GetCaller``: the kind of credential and its scopes."""
        resp, _ = await self._call(self.stubs.gateway.GetCaller, gateway_pb2.GetCallerRequest(), budget=_Budget(timeout))
        return cast("gateway_pb2.GetCallerResponse", resp)

    async def wake(
        self,
        text: str,
        *,
        mode: int = event_pb2.WAKE_MODE_NOW,
        session_key: str = "",
        agent_id: str = "",
        timeout: Optional[float] = None,
    ) -> gateway_pb2.GatewayServiceWakeResponse:
        """``GatewayService/Wake``. Not retried: a repeat could start a second heartbeat."""
        req = gateway_pb2.GatewayServiceWakeRequest(
            text=text, mode=mode, session_key=session_key, agent_id=agent_id  # type: ignore[arg-type]
        )
        resp, _ = await self._call(self.stubs.gateway.Wake, req, retry=False, budget=_Budget(timeout))
        return cast("gateway_pb2.GatewayServiceWakeResponse", resp)

    # ------------------------------------------------------------------ runs

    async def agent_run(
        self,
        message: str,
        *,
        session_key: str = "",
        idempotency_key: Optional[str] = None,
        timeout: Optional[float] = None,
        **fields: Any,
    ) -> AsyncRunHandle:
        """``AgentService/Run``: starts an agent turn and returns its handle.

        ``fields`` are further ``AgentServiceRunRequest`` fields (``agent_id``, ``channel``,
        ``to``, ``deliver``, ``model``, ``timeout_seconds``, ...). Without an
        ``idempotency_key`` a UUID is generated (the run id is the server's), so the submission
        is retried safely on UNAVAILABLE.
        """
        req = agent_pb2.AgentServiceRunRequest(
            message=message, session_key=session_key, idempotency_key=idempotency_key or "", **fields
        )
        return await self._submit(self.stubs.agent.Run, req, timeout)

    async def chat_send(
        self,
        session_key: str,
        message: str,
        *,
        idempotency_key: Optional[str] = None,
        timeout: Optional[float] = None,
        **fields: Any,
    ) -> AsyncRunHandle:
        """``ChatService/Send``: sends a user message into a session (created on first use)
        and returns the run's handle. ``fields``: ``agent_id``, ``deliver``, ``channel``,
        ``to``, ``model``, ``thinking``, ``timeout_seconds``, ``best_effort_deliver``."""
        req = chat_pb2.ChatServiceSendRequest(
            session_key=session_key, message=message, idempotency_key=idempotency_key or "", **fields
        )
        return await self._submit(self.stubs.chat.Send, req, timeout)

    async def sessions_send(
        self,
        session_key: str,
        message: str,
        *,
        idempotency_key: Optional[str] = None,
        timeout: Optional[float] = None,
        **fields: Any,
    ) -> AsyncRunHandle:
        """``SessionService/Send``: sends into an existing session (NOT_FOUND
        ``SESSION_NOT_FOUND`` otherwise) and returns the run's handle."""
        req = session_pb2.SessionServiceSendRequest(
            session_key=session_key, message=message, idempotency_key=idempotency_key or "", **fields
        )
        return await self._submit(self.stubs.sessions.Send, req, timeout)

    async def get_run(self, run_id: str, *, timeout: Optional[float] = None) -> run_pb2.Run:
        """``AgentService/GetRun``."""
        resp, _ = await self._call(
            self.stubs.agent.GetRun, agent_pb2.GetRunRequest(run_id=run_id), budget=_Budget(timeout)
        )
        return cast("run_pb2.Run", resp.run)

    async def run_handle(self, run_id: str, *, timeout: Optional[float] = None) -> AsyncRunHandle:
        """A handle for an existing run (reads it once to learn its session)."""
        run = await self.get_run(run_id, timeout=timeout)
        return AsyncRunHandle(self, run.run_id, run.session_key, state=run.state)

    async def wait_run(self, run_id: str, timeout: Optional[float] = DEFAULT_WAIT) -> run_pb2.Run:
        """Waits up to ``timeout`` s (default :data:`DEFAULT_WAIT`, 30; ``None``: forever) for
        the run to reach a terminal state, calling ``AgentService/Wait`` in chunks of at most
        30 s and re-calling on UNAVAILABLE. Returns the run as it stands when the wait ends; a
        zero timeout just reads it. Cancelling the task cancels the wait, not the run."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        backoff = 0.1
        while True:
            remaining = WAIT_CHUNK_SECONDS if deadline is None else deadline - loop.time()
            if remaining <= 0:
                return await self.get_run(run_id)
            chunk = min(remaining, WAIT_CHUNK_SECONDS)
            req = agent_pb2.AgentServiceWaitRequest(run_id=run_id, timeout_ms=max(1, int(chunk * 1000)))
            try:
                # Leave the server room to answer done=false before the deadline.
                resp = await self.stubs.agent.Wait(req, metadata=self.metadata, timeout=chunk + 10)
            except grpc.RpcError as e:
                if (
                    e.code() == grpc.StatusCode.UNAVAILABLE
                    and not self.closed
                    and (deadline is None or loop.time() + backoff < deadline)
                ):
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                raise from_rpc_error(e) from None
            backoff = 0.1
            if resp.done or (deadline is not None and loop.time() >= deadline):
                return cast("run_pb2.Run", resp.run)

    async def cancel_run(self, run_id: str, *, timeout: Optional[float] = None) -> run_pb2.Run:
        """``AgentService/CancelRun``: a terminal run is returned unchanged (safe to retry)."""
        resp, _ = await self._call(
            self.stubs.agent.CancelRun, agent_pb2.CancelRunRequest(run_id=run_id), budget=_Budget(timeout)
        )
        return cast("run_pb2.Run", resp.run)

    async def list_runs(
        self,
        *,
        session_key: str = "",
        states: Iterable[int] = (),
        page_size: int = 0,
        page_token: str = "",
        timeout: Optional[float] = None,
    ) -> agent_pb2.ListRunsResponse:
        """``AgentService/ListRuns``: one page of runs, newest first."""
        req = agent_pb2.ListRunsRequest(
            session_key=session_key, states=list(states), page_size=page_size, page_token=page_token  # type: ignore[arg-type]
        )
        resp, _ = await self._call(self.stubs.agent.ListRuns, req, budget=_Budget(timeout))
        return cast("agent_pb2.ListRunsResponse", resp)

    # ------------------------------------------------------------------ sessions

    async def sessions_list(self, agent_id: str = "", *, timeout: Optional[float] = None) -> list[session_pb2.Session]:
        """``SessionService/List``, every page: most recently updated first."""
        budget = _Budget(timeout)
        out: list[session_pb2.Session] = []
        token = ""
        while True:
            req = session_pb2.SessionServiceListRequest(agent_id=agent_id, page_size=1000, page_token=token)
            resp, _ = await self._call(self.stubs.sessions.List, req, budget=budget)
            out.extend(resp.sessions)
            if not resp.next_page_token or resp.next_page_token == token:
                return out
            token = resp.next_page_token

    async def sessions_get(self, session_key: str, *, timeout: Optional[float] = None) -> session_pb2.Session:
        """``SessionService/Get`` for a bare or full session key."""
        req = session_pb2.SessionServiceGetRequest(session_key=session_key)
        resp, _ = await self._call(self.stubs.sessions.Get, req, budget=_Budget(timeout))
        return cast("session_pb2.Session", resp.session)

    async def sessions_history(
        self, session_key: str, *, timeout: Optional[float] = None
    ) -> tuple[session_pb2.Session, list[session_pb2.Message]]:
        """``ChatService/History``, every page: the session and its transcript, oldest first."""
        budget = _Budget(timeout)
        session: Optional[session_pb2.Session] = None
        messages: list[session_pb2.Message] = []
        token = ""
        while True:
            req = chat_pb2.ChatServiceHistoryRequest(session_key=session_key, page_size=1000, page_token=token)
            resp, _ = await self._call(self.stubs.chat.History, req, budget=budget)
            if session is None:
                session = resp.session
            messages.extend(resp.messages)
            if not resp.next_page_token or resp.next_page_token == token:
                break
            token = resp.next_page_token
        assert session is not None
        return session, messages

    # ------------------------------------------------------------------ events

    def watch_events(
        self,
        after_seq: int = 0,
        filter: Optional[event_pb2.EventFilter] = None,
        *,
        kinds: Iterable[int] = (),
        run_id: str = "",
        session_key: str = "",
        progress: bool = False,
    ) -> AsyncEventWatch:
        """An auto-resuming ``EventService/Watch``: events with seq > ``after_seq`` matching
        ``filter`` (or the ``kinds`` / ``run_id`` / ``session_key`` shorthands), then live
        ones. See :class:`AsyncEventWatch` for the resume rules."""
        if filter is None:
            filter = event_pb2.EventFilter(
                kinds=list(kinds), run_id=run_id, session_key=session_key  # type: ignore[arg-type]
            )
        return AsyncEventWatch(self, after_seq, filter, progress)

    async def watch_live(self, filter: Optional[event_pb2.EventFilter] = None, **kw: Any) -> AsyncEventWatch:
        """Like :meth:`watch_events` but starts at the current head (only new events)."""
        head = (await self.status()).last_event_seq
        return self.watch_events(head, filter, **kw)

    # ------------------------------------------------------------------ devices

    async def devices_list(self, *, timeout: Optional[float] = None) -> device_pb2.ListDevicesResponse:
        """``DeviceService/ListDevices``: ``pending`` pairing requests and ``paired`` devices."""
        resp, _ = await self._call(
            self.stubs.devices.ListDevices, device_pb2.ListDevicesRequest(), budget=_Budget(timeout)
        )
        return cast("device_pb2.ListDevicesResponse", resp)

    async def devices_approve(
        self, request_id: str, *, timeout: Optional[float] = None
    ) -> device_pb2.ApprovePairingResponse:
        """``DeviceService/ApprovePairing``: the device receives its token on its next
        ConnectDevice."""
        req = device_pb2.ApprovePairingRequest(request_id=request_id)
        resp, _ = await self._call(self.stubs.devices.ApprovePairing, req, budget=_Budget(timeout))
        return cast("device_pb2.ApprovePairingResponse", resp)

    async def devices_reject(self, request_id: str, *, timeout: Optional[float] = None) -> device_pb2.RejectPairingResponse:
        """``DeviceService/RejectPairing``."""
        req = device_pb2.RejectPairingRequest(request_id=request_id)
        resp, _ = await self._call(self.stubs.devices.RejectPairing, req, budget=_Budget(timeout))
        return cast("device_pb2.RejectPairingResponse", resp)


async def connect(
    url: Optional[str] = None,
    token: Optional[str] = None,
    *,
    timeout: float = 5.0,
    ca_file: Optional[str] = None,
    tls_fingerprint: Optional[str] = None,
) -> AsyncClient:
    """Connects to the gateway (``url`` and ``token`` found by :func:`discover`; ``token=""``
    sends none) and returns an :class:`AsyncClient`. For an ``https://`` URL, ``ca_file``
    (default ``$CLAWPLANE_TLS_CA``) is a PEM file of CAs to trust, or ``tls_fingerprint``
    (default ``$CLAWPLANE_TLS_FINGERPRINT``) the SHA-256 fingerprint of the one certificate
    to accept (see :mod:`clawplane.tls`); with neither, a loopback URL trusts the local
    gateway's ``<data dir>/tls/cert.pem`` when it exists."""
    return await AsyncClient.connect(
        url, token, timeout=timeout, ca_file=ca_file, tls_fingerprint=tls_fingerprint
    )
