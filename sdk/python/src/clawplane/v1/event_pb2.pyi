import datetime

from clawplane.v1 import channel_pb2 as _channel_pb2
from clawplane.v1 import device_pb2 as _device_pb2
from clawplane.v1 import run_pb2 as _run_pb2
from clawplane.v1 import session_pb2 as _session_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_KIND_UNSPECIFIED: _ClassVar[EventKind]
    EVENT_KIND_RUN: _ClassVar[EventKind]
    EVENT_KIND_DELTA: _ClassVar[EventKind]
    EVENT_KIND_SESSION: _ClassVar[EventKind]
    EVENT_KIND_SYSTEM_EVENT: _ClassVar[EventKind]
    EVENT_KIND_DEVICE: _ClassVar[EventKind]
    EVENT_KIND_CHANNEL: _ClassVar[EventKind]
    EVENT_KIND_SECURITY: _ClassVar[EventKind]
    EVENT_KIND_WEBHOOK: _ClassVar[EventKind]
    EVENT_KIND_SENDER_PAIRING: _ClassVar[EventKind]

class SessionChangeType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SESSION_CHANGE_TYPE_UNSPECIFIED: _ClassVar[SessionChangeType]
    SESSION_CHANGE_TYPE_CREATED: _ClassVar[SessionChangeType]
    SESSION_CHANGE_TYPE_UPDATED: _ClassVar[SessionChangeType]
    SESSION_CHANGE_TYPE_RESET: _ClassVar[SessionChangeType]
    SESSION_CHANGE_TYPE_DELETED: _ClassVar[SessionChangeType]

class WakeMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WAKE_MODE_UNSPECIFIED: _ClassVar[WakeMode]
    WAKE_MODE_NOW: _ClassVar[WakeMode]
    WAKE_MODE_NEXT_HEARTBEAT: _ClassVar[WakeMode]

class WakeOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WAKE_OUTCOME_UNSPECIFIED: _ClassVar[WakeOutcome]
    WAKE_OUTCOME_QUEUED: _ClassVar[WakeOutcome]
    WAKE_OUTCOME_COALESCED: _ClassVar[WakeOutcome]
EVENT_KIND_UNSPECIFIED: EventKind
EVENT_KIND_RUN: EventKind
EVENT_KIND_DELTA: EventKind
EVENT_KIND_SESSION: EventKind
EVENT_KIND_SYSTEM_EVENT: EventKind
EVENT_KIND_DEVICE: EventKind
EVENT_KIND_CHANNEL: EventKind
EVENT_KIND_SECURITY: EventKind
EVENT_KIND_WEBHOOK: EventKind
EVENT_KIND_SENDER_PAIRING: EventKind
SESSION_CHANGE_TYPE_UNSPECIFIED: SessionChangeType
SESSION_CHANGE_TYPE_CREATED: SessionChangeType
SESSION_CHANGE_TYPE_UPDATED: SessionChangeType
SESSION_CHANGE_TYPE_RESET: SessionChangeType
SESSION_CHANGE_TYPE_DELETED: SessionChangeType
WAKE_MODE_UNSPECIFIED: WakeMode
WAKE_MODE_NOW: WakeMode
WAKE_MODE_NEXT_HEARTBEAT: WakeMode
WAKE_OUTCOME_UNSPECIFIED: WakeOutcome
WAKE_OUTCOME_QUEUED: WakeOutcome
WAKE_OUTCOME_COALESCED: WakeOutcome

class EventFilter(_message.Message):
    __slots__ = ("session_key", "run_id", "kinds")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    run_id: str
    kinds: _containers.RepeatedScalarFieldContainer[EventKind]
    def __init__(self, session_key: _Optional[str] = ..., run_id: _Optional[str] = ..., kinds: _Optional[_Iterable[_Union[EventKind, str]]] = ...) -> None: ...

class EventServiceWatchRequest(_message.Message):
    __slots__ = ("after_seq", "filter", "follow_only")
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_ONLY_FIELD_NUMBER: _ClassVar[int]
    after_seq: int
    filter: EventFilter
    follow_only: bool
    def __init__(self, after_seq: _Optional[int] = ..., filter: _Optional[_Union[EventFilter, _Mapping]] = ..., follow_only: bool = ...) -> None: ...

class EventServiceWatchResponse(_message.Message):
    __slots__ = ("event", "progress")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    event: Event
    progress: Progress
    def __init__(self, event: _Optional[_Union[Event, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("seq",)
    SEQ_FIELD_NUMBER: _ClassVar[int]
    seq: int
    def __init__(self, seq: _Optional[int] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("seq", "time", "session_key", "run_id", "kind", "run", "delta", "session", "system_event", "device", "channel", "security", "webhook", "sender_pairing")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_EVENT_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    SECURITY_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    SENDER_PAIRING_FIELD_NUMBER: _ClassVar[int]
    seq: int
    time: _timestamp_pb2.Timestamp
    session_key: str
    run_id: str
    kind: EventKind
    run: _run_pb2.Run
    delta: ModelDelta
    session: SessionChange
    system_event: SystemEvent
    device: DeviceChange
    channel: ChannelEvent
    security: SecurityAlert
    webhook: WebhookEndpointChange
    sender_pairing: _channel_pb2.SenderPairingChange
    def __init__(self, seq: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., session_key: _Optional[str] = ..., run_id: _Optional[str] = ..., kind: _Optional[_Union[EventKind, str]] = ..., run: _Optional[_Union[_run_pb2.Run, _Mapping]] = ..., delta: _Optional[_Union[ModelDelta, _Mapping]] = ..., session: _Optional[_Union[SessionChange, _Mapping]] = ..., system_event: _Optional[_Union[SystemEvent, _Mapping]] = ..., device: _Optional[_Union[DeviceChange, _Mapping]] = ..., channel: _Optional[_Union[ChannelEvent, _Mapping]] = ..., security: _Optional[_Union[SecurityAlert, _Mapping]] = ..., webhook: _Optional[_Union[WebhookEndpointChange, _Mapping]] = ..., sender_pairing: _Optional[_Union[_channel_pb2.SenderPairingChange, _Mapping]] = ...) -> None: ...

class ChannelEvent(_message.Message):
    __slots__ = ("type", "channel", "account_id", "sender_name", "text", "message_id", "thread_id", "detail", "sender_id", "chat_type")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    SENDER_NAME_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    SENDER_ID_FIELD_NUMBER: _ClassVar[int]
    CHAT_TYPE_FIELD_NUMBER: _ClassVar[int]
    type: str
    channel: str
    account_id: str
    sender_name: str
    text: str
    message_id: str
    thread_id: str
    detail: str
    sender_id: str
    chat_type: str
    def __init__(self, type: _Optional[str] = ..., channel: _Optional[str] = ..., account_id: _Optional[str] = ..., sender_name: _Optional[str] = ..., text: _Optional[str] = ..., message_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., detail: _Optional[str] = ..., sender_id: _Optional[str] = ..., chat_type: _Optional[str] = ..., **kwargs) -> None: ...

class SecurityAlert(_message.Message):
    __slots__ = ("reason", "detail", "remote_addr", "surface")
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    REMOTE_ADDR_FIELD_NUMBER: _ClassVar[int]
    SURFACE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    detail: str
    remote_addr: str
    surface: str
    def __init__(self, reason: _Optional[str] = ..., detail: _Optional[str] = ..., remote_addr: _Optional[str] = ..., surface: _Optional[str] = ...) -> None: ...

class WebhookEndpointChange(_message.Message):
    __slots__ = ("type", "endpoint_id", "url", "detail")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    type: str
    endpoint_id: str
    url: str
    detail: str
    def __init__(self, type: _Optional[str] = ..., endpoint_id: _Optional[str] = ..., url: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class ModelDelta(_message.Message):
    __slots__ = ("text", "index")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    text: str
    index: int
    def __init__(self, text: _Optional[str] = ..., index: _Optional[int] = ...) -> None: ...

class SessionChange(_message.Message):
    __slots__ = ("type", "session")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    type: SessionChangeType
    session: _session_pb2.Session
    def __init__(self, type: _Optional[_Union[SessionChangeType, str]] = ..., session: _Optional[_Union[_session_pb2.Session, _Mapping]] = ...) -> None: ...

class SystemEvent(_message.Message):
    __slots__ = ("text", "outcome", "mode")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    text: str
    outcome: WakeOutcome
    mode: WakeMode
    def __init__(self, text: _Optional[str] = ..., outcome: _Optional[_Union[WakeOutcome, str]] = ..., mode: _Optional[_Union[WakeMode, str]] = ...) -> None: ...

class DeviceChange(_message.Message):
    __slots__ = ("type", "device_id", "request_id", "request", "role", "detail")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    type: str
    device_id: str
    request_id: str
    request: _device_pb2.PairingRequest
    role: str
    detail: str
    def __init__(self, type: _Optional[str] = ..., device_id: _Optional[str] = ..., request_id: _Optional[str] = ..., request: _Optional[_Union[_device_pb2.PairingRequest, _Mapping]] = ..., role: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...
