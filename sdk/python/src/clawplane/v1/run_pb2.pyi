import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATE_UNSPECIFIED: _ClassVar[RunState]
    RUN_STATE_QUEUED: _ClassVar[RunState]
    RUN_STATE_RUNNING: _ClassVar[RunState]
    RUN_STATE_SUCCEEDED: _ClassVar[RunState]
    RUN_STATE_FAILED: _ClassVar[RunState]
    RUN_STATE_CANCELLED: _ClassVar[RunState]
    RUN_STATE_TIMED_OUT: _ClassVar[RunState]
    RUN_STATE_INTERRUPTED: _ClassVar[RunState]

class RunOrigin(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_ORIGIN_UNSPECIFIED: _ClassVar[RunOrigin]
    RUN_ORIGIN_CHAT: _ClassVar[RunOrigin]
    RUN_ORIGIN_SESSION: _ClassVar[RunOrigin]
    RUN_ORIGIN_AGENT: _ClassVar[RunOrigin]
    RUN_ORIGIN_HEARTBEAT: _ClassVar[RunOrigin]
    RUN_ORIGIN_WEBHOOK: _ClassVar[RunOrigin]
    RUN_ORIGIN_CHANNEL: _ClassVar[RunOrigin]

class DeliveryStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_STATUS_UNSPECIFIED: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_NOT_REQUESTED: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_PENDING: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_DELIVERED: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_SKIPPED: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_NO_ROUTE: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_FAILED: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_SENDING: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_UNKNOWN: _ClassVar[DeliveryStatus]
RUN_STATE_UNSPECIFIED: RunState
RUN_STATE_QUEUED: RunState
RUN_STATE_RUNNING: RunState
RUN_STATE_SUCCEEDED: RunState
RUN_STATE_FAILED: RunState
RUN_STATE_CANCELLED: RunState
RUN_STATE_TIMED_OUT: RunState
RUN_STATE_INTERRUPTED: RunState
RUN_ORIGIN_UNSPECIFIED: RunOrigin
RUN_ORIGIN_CHAT: RunOrigin
RUN_ORIGIN_SESSION: RunOrigin
RUN_ORIGIN_AGENT: RunOrigin
RUN_ORIGIN_HEARTBEAT: RunOrigin
RUN_ORIGIN_WEBHOOK: RunOrigin
RUN_ORIGIN_CHANNEL: RunOrigin
DELIVERY_STATUS_UNSPECIFIED: DeliveryStatus
DELIVERY_STATUS_NOT_REQUESTED: DeliveryStatus
DELIVERY_STATUS_PENDING: DeliveryStatus
DELIVERY_STATUS_DELIVERED: DeliveryStatus
DELIVERY_STATUS_SKIPPED: DeliveryStatus
DELIVERY_STATUS_NO_ROUTE: DeliveryStatus
DELIVERY_STATUS_FAILED: DeliveryStatus
DELIVERY_STATUS_SENDING: DeliveryStatus
DELIVERY_STATUS_UNKNOWN: DeliveryStatus

class Usage(_message.Message):
    __slots__ = ("input_tokens", "output_tokens", "total_tokens")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    output_tokens: int
    total_tokens: int
    def __init__(self, input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ...) -> None: ...

class RunError(_message.Message):
    __slots__ = ("reason", "message")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    message: str
    def __init__(self, reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Delivery(_message.Message):
    __slots__ = ("status", "channel", "to", "message_id", "detail", "account_id", "thread_id", "message_ids", "receipt", "reason", "attempts", "inbound_message_id")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    INBOUND_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    status: DeliveryStatus
    channel: str
    to: str
    message_id: str
    detail: str
    account_id: str
    thread_id: str
    message_ids: _containers.RepeatedScalarFieldContainer[str]
    receipt: str
    reason: str
    attempts: int
    inbound_message_id: str
    def __init__(self, status: _Optional[_Union[DeliveryStatus, str]] = ..., channel: _Optional[str] = ..., to: _Optional[str] = ..., message_id: _Optional[str] = ..., detail: _Optional[str] = ..., account_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., message_ids: _Optional[_Iterable[str]] = ..., receipt: _Optional[str] = ..., reason: _Optional[str] = ..., attempts: _Optional[int] = ..., inbound_message_id: _Optional[str] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("name", "run_id", "session_key", "agent_id", "state", "origin", "message", "reply_text", "error", "usage", "model", "delivery", "timeout_seconds", "idempotency_key", "attempt", "create_time", "start_time", "end_time", "thinking", "summary_wake")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REPLY_TEXT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    THINKING_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_WAKE_FIELD_NUMBER: _ClassVar[int]
    name: str
    run_id: str
    session_key: str
    agent_id: str
    state: RunState
    origin: RunOrigin
    message: str
    reply_text: str
    error: RunError
    usage: Usage
    model: str
    delivery: Delivery
    timeout_seconds: int
    idempotency_key: str
    attempt: int
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    thinking: str
    summary_wake: SummaryWake
    def __init__(self, name: _Optional[str] = ..., run_id: _Optional[str] = ..., session_key: _Optional[str] = ..., agent_id: _Optional[str] = ..., state: _Optional[_Union[RunState, str]] = ..., origin: _Optional[_Union[RunOrigin, str]] = ..., message: _Optional[str] = ..., reply_text: _Optional[str] = ..., error: _Optional[_Union[RunError, _Mapping]] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., model: _Optional[str] = ..., delivery: _Optional[_Union[Delivery, _Mapping]] = ..., timeout_seconds: _Optional[int] = ..., idempotency_key: _Optional[str] = ..., attempt: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., thinking: _Optional[str] = ..., summary_wake: _Optional[_Union[SummaryWake, _Mapping]] = ...) -> None: ...

class SummaryWake(_message.Message):
    __slots__ = ("name", "now")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NOW_FIELD_NUMBER: _ClassVar[int]
    name: str
    now: bool
    def __init__(self, name: _Optional[str] = ..., now: bool = ...) -> None: ...
