"""The SDK's error type: a gRPC status with its ``google.rpc`` details, typed.

Every error the gateway sends carries a ``google.rpc.ErrorInfo`` (domain ``clawplane.dev``)
with a stable UPPER_SNAKE ``reason`` and string ``metadata``; invalid arguments add a
``google.rpc.BadRequest`` with field violations, rate limits a ``google.rpc.RetryInfo``.
:class:`ClawplaneError` exposes all of them as plain attributes.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

__all__ = [
    "ERROR_DOMAIN",
    "ClawplaneError",
    "CursorExpiredError",
    "FieldViolation",
    "from_rpc_error",
]

#: The ``google.rpc.ErrorInfo`` domain clawplane uses.
ERROR_DOMAIN = "clawplane.dev"

_DETAILS_KEY = "grpc-status-details-bin"

_TOKEN_HINT = (
    "pass a token (connect(token=...)) or set CLAWPLANE_TOKEN; for a loopback URL the SDK "
    "reads the local gateway's token from $CLAWPLANE_DATA_DIR/gateway.token or "
    "~/.clawplane/gateway.token"
)
_UNREACHABLE_HINT = (
    "start it with `clawplane serve`, or point connect(url=...) / CLAWPLANE_URL at the running "
    "gateway"
)


class FieldViolation(NamedTuple):
    """One ``google.rpc.BadRequest.FieldViolation``; ``field`` is the JSON name (``sessionKey``)."""

    field: str
    description: str


class ClawplaneError(Exception):
    """A failed call: the gRPC status plus the clawplane error details.

    Attributes:
        code: the gRPC status code (``grpc.StatusCode.NOT_FOUND``, ...). Local failures use
            ``UNAVAILABLE`` (gateway unreachable), ``INVALID_ARGUMENT`` (bad URL/token) and
            ``INTERNAL`` (an answer the SDK did not expect).
        message: the status message.
        reason: the ``ErrorInfo`` reason, e.g. ``RUN_NOT_FOUND``, ``MISSING_SCOPE``
            (``None`` when the status carried no ``ErrorInfo``).
        domain: the ``ErrorInfo`` domain (``clawplane.dev``), or ``None``.
        metadata: the ``ErrorInfo`` metadata, e.g. ``{"runId": "r1"}`` (empty when none).
        field_violations: the ``BadRequest`` violations, in order (empty when none).
        retry_delay: seconds the gateway asks the caller to wait (``RetryInfo``), or ``None``.
        status: the decoded ``google.rpc.Status`` (``None`` when the server sent no details).
    """

    code: grpc.StatusCode
    message: str
    reason: Optional[str]
    domain: Optional[str]
    metadata: dict[str, str]
    field_violations: list[FieldViolation]
    retry_delay: Optional[float]
    status: Optional[status_pb2.Status]

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: Optional[str] = None,
        domain: Optional[str] = None,
        metadata: Optional[dict[str, str]] = None,
        field_violations: Optional[list[FieldViolation]] = None,
        retry_delay: Optional[float] = None,
        status: Optional[status_pb2.Status] = None,
    ) -> None:
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata = dict(metadata or {})
        self.field_violations = list(field_violations or [])
        self.retry_delay = retry_delay
        self.status = status
        super().__init__(self._describe())

    def _describe(self) -> str:
        name = self.code.name if isinstance(self.code, grpc.StatusCode) else str(self.code)
        text = f"{name}: {self.message or name}"
        if self.reason:
            text += f" [{self.reason}]"
        return text

    @property
    def retryable(self) -> bool:
        """True when the failed call may be retried as-is (AIP-194: only ``UNAVAILABLE``)."""
        return bool(self.code == grpc.StatusCode.UNAVAILABLE)

    @property
    def unreachable(self) -> bool:
        """True when the gateway could not be reached (UNAVAILABLE without an ``ErrorInfo``:
        the gateway tags every error it sends, so this one came from the local transport)."""
        return self.code == grpc.StatusCode.UNAVAILABLE and self.reason is None

    def hint(self) -> Optional[str]:
        """A sentence saying how to fix the error, or ``None`` when there is nothing to add."""
        c, r = self.code, self.reason or ""
        S = grpc.StatusCode
        if c == S.UNAUTHENTICATED:
            if r == "TOKEN_MISSING":
                return f"no token was sent: {_TOKEN_HINT}"
            if r == "TOKEN_INVALID":
                return f"the gateway rejected the token: {_TOKEN_HINT}"
            return _TOKEN_HINT
        if c == S.RESOURCE_EXHAUSTED and r == "AUTH_RATE_LIMITED":
            wait = f"wait {max(1, int(self.retry_delay))}s" if self.retry_delay else "wait a minute"
            return f"too many failed logins from this address; {wait}, then retry with the right token"
        if c == S.PERMISSION_DENIED:
            need = self.metadata.get("requiredScopes") or self.metadata.get("missingScope")
            extra = f" (needs {need})" if need else ""
            return (
                f"this token lacks the scope the call needs{extra}; use the gateway token (full "
                "operator scopes) or approve a device with more scopes"
            )
        if c == S.INVALID_ARGUMENT and self.field_violations:
            return "fix the request: " + "; ".join(
                f"{v.field}: {v.description}" for v in self.field_violations
            )
        if c == S.ALREADY_EXISTS and r == "IDEMPOTENCY_KEY_CONFLICT":
            return (
                "this idempotency key was used for a different request; use a new key, or "
                "resend exactly the original request to get its run"
            )
        if c == S.NOT_FOUND and r == "RUN_NOT_FOUND":
            return "list recent runs with `clawplane runs list`"
        if c == S.NOT_FOUND and r == "SESSION_NOT_FOUND":
            return "create the session first, e.g. with chat_send(session_key, message)"
        if c == S.OUT_OF_RANGE and r == "CURSOR_EXPIRED":
            oldest = _int(self.metadata.get("oldestSeq"), 1)
            return f"start again from a retained seq, e.g. after_seq={max(0, oldest - 1)}"
        if c == S.ABORTED and r == "SUBSCRIBER_LAGGED":
            return "the watch fell behind the live feed; resume it from its last seq"
        if c == S.UNAVAILABLE:
            if r == "SHUTTING_DOWN":
                return "the gateway is shutting down; retry once it is running again"
            return _UNREACHABLE_HINT if self.unreachable else "the gateway is temporarily unavailable; retry"
        if c in (S.INTERNAL, S.UNKNOWN, S.DATA_LOSS):
            return (
                "this is a gateway bug or an unexpected transport failure; check the gateway log "
                "(stderr of `clawplane serve`)"
            )
        return None


class CursorExpiredError(ClawplaneError):
    """An event watch asked for events older than the gateway retains (OUT_OF_RANGE,
    reason ``CURSOR_EXPIRED``).

    Attributes:
        after_seq: the cursor that was refused.
        oldest_seq: the oldest event seq the gateway still has (0 when it did not say).
    """

    after_seq: int
    oldest_seq: int

    def __init__(self, base: ClawplaneError, after_seq: int) -> None:
        self.after_seq = after_seq
        self.oldest_seq = _int(base.metadata.get("oldestSeq"), 0)
        super().__init__(
            base.code,
            base.message,
            reason=base.reason,
            domain=base.domain,
            metadata=base.metadata,
            field_violations=base.field_violations,
            retry_delay=base.retry_delay,
            status=base.status,
        )


def _int(value: Optional[str], default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _rich_status(err: grpc.RpcError) -> Optional[status_pb2.Status]:
    """The ``google.rpc.Status`` in the trailers (``grpc-status-details-bin``), if any."""
    try:
        st = rpc_status.from_call(err)
        if st is not None:
            return st
    except (ValueError, TypeError, AttributeError):
        # from_call insists that code and message match the status proto exactly; the details
        # are still worth reading when they do not.
        pass
    trailers: Any = None
    try:
        trailers = err.trailing_metadata()
    except Exception:  # noqa: BLE001 - some error objects have no trailers
        return None
    for key, value in trailers or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except Exception:  # noqa: BLE001 - undecodable details are ignored
                return None
    return None


def from_rpc_error(err: grpc.RpcError) -> ClawplaneError:
    """Converts a ``grpc.RpcError`` (sync or ``grpc.aio.AioRpcError``) into a typed error."""
    code_fn = getattr(err, "code", None)
    details_fn = getattr(err, "details", None)
    code = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    message = (details_fn() if callable(details_fn) else None) or ""
    status = _rich_status(err)
    reason: Optional[str] = None
    domain: Optional[str] = None
    metadata: dict[str, str] = {}
    violations: list[FieldViolation] = []
    retry_delay: Optional[float] = None
    if status is not None:
        for any_msg in status.details:
            if any_msg.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                any_msg.Unpack(info)
                if reason is None:
                    reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
            elif any_msg.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                br = error_details_pb2.BadRequest()
                any_msg.Unpack(br)
                violations.extend(
                    FieldViolation(v.field, v.description) for v in br.field_violations
                )
            elif any_msg.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                ri = error_details_pb2.RetryInfo()
                any_msg.Unpack(ri)
                retry_delay = ri.retry_delay.seconds + ri.retry_delay.nanos / 1e9
    return ClawplaneError(
        code,
        message,
        reason=reason,
        domain=domain,
        metadata=metadata,
        field_violations=violations,
        retry_delay=retry_delay,
        status=status,
    )
