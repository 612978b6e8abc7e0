"""Typed Python client for clawplane, the gRPC control plane for OpenClaw-style gateways.

- :func:`connect` / :class:`Client`: blocking client. :func:`connect_async` /
  :class:`AsyncClient` (``clawplane.aio``): the asyncio client it is built on.
- Verbs: ``status``, ``chat_send``, ``sessions_send``, ``agent_run`` (each returning a run
  handle with ``wait()``, ``cancel()``, ``stream()`` / ``deltas()``), ``watch_events``
  (resumes by itself), ``devices_list``, ``devices_approve`` and more. Every call takes
  ``timeout=`` seconds (``DEADLINE_EXCEEDED`` past it); ``wait(timeout=DEFAULT_WAIT)`` (30 s)
  returns the run as it stands when its timeout passes.
- TLS: ``connect(url, token, ca_file=...)`` or ``tls_fingerprint=...`` for ``https://``
  gateways (:mod:`clawplane.tls`); a refused certificate raises :class:`TlsError`.
- :class:`ClawplaneError`: the gRPC status with its typed ``google.rpc`` details
  (``code``, ``reason``, ``domain``, ``metadata``, ``field_violations``).
- ``clawplane.v1``: the generated protobuf messages and gRPC stubs (``sdk/python/gen.sh``).
"""

from . import v1
from .aio import (
    DEFAULT_URL,
    DEFAULT_WAIT,
    AsyncClient,
    AsyncEventWatch,
    AsyncRunHandle,
    RunUpdate,
    Stubs,
    discover,
    is_terminal,
)
from .aio import connect as connect_async
from .errors import ERROR_DOMAIN, ClawplaneError, CursorExpiredError, FieldViolation
from .sync import Client, EventWatch, RunHandle, connect
from .tls import TlsError, fingerprint, parse_fingerprint, pem_fingerprint
from .v1 import (
    agent_pb2,
    chat_pb2,
    device_pb2,
    event_pb2,
    gateway_pb2,
    run_pb2,
    session_pb2,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_URL",
    "DEFAULT_WAIT",
    "ERROR_DOMAIN",
    "AsyncClient",
    "AsyncEventWatch",
    "AsyncRunHandle",
    "ClawplaneError",
    "Client",
    "CursorExpiredError",
    "EventWatch",
    "FieldViolation",
    "RunHandle",
    "RunUpdate",
    "Stubs",
    "TlsError",
    "agent_pb2",
    "chat_pb2",
    "connect",
    "connect_async",
    "device_pb2",
    "discover",
    "event_pb2",
    "fingerprint",
    "gateway_pb2",
    "is_terminal",
    "parse_fingerprint",
    "pem_fingerprint",
    "run_pb2",
    "session_pb2",
    "v1",
]
