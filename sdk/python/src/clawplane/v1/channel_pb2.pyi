import datetime

from clawplane.v1 import run_pb2 as _run_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChannelHealth(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_HEALTH_UNSPECIFIED: _ClassVar[ChannelHealth]
    CHANNEL_HEALTH_UNKNOWN: _ClassVar[ChannelHealth]
    CHANNEL_HEALTH_OK: _ClassVar[ChannelHealth]
    CHANNEL_HEALTH_FAILING: _ClassVar[ChannelHealth]
CHANNEL_HEALTH_UNSPECIFIED: ChannelHealth
CHANNEL_HEALTH_UNKNOWN: ChannelHealth
CHANNEL_HEALTH_OK: ChannelHealth
CHANNEL_HEALTH_FAILING: ChannelHealth

class IngestChannelWebhookRequest(_message.Message):
    __slots__ = ("channel", "method", "query", "headers", "body")
    class QueryEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    channel: str
    method: str
    query: _containers.ScalarMap[str, str]
    headers: _containers.ScalarMap[str, str]
    body: bytes
    def __init__(self, channel: _Optional[str] = ..., method: _Optional[str] = ..., query: _Optional[_Mapping[str, str]] = ..., headers: _Optional[_Mapping[str, str]] = ..., body: _Optional[bytes] = ...) -> None: ...

class IngestChannelWebhookResponse(_message.Message):
    __slots__ = ("challenge", "run_ids", "duplicates", "receipts", "ignored")
    CHALLENGE_FIELD_NUMBER: _ClassVar[int]
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    IGNORED_FIELD_NUMBER: _ClassVar[int]
    challenge: str
    run_ids: _containers.RepeatedScalarFieldContainer[str]
    duplicates: int
    receipts: int
    ignored: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, challenge: _Optional[str] = ..., run_ids: _Optional[_Iterable[str]] = ..., duplicates: _Optional[int] = ..., receipts: _Optional[int] = ..., ignored: _Optional[_Iterable[str]] = ...) -> None: ...

class Channel(_message.Message):
    __slots__ = ("name", "channel_id", "enabled", "healthy", "last_error", "base_url", "health", "last_check_time", "sent_last_hour")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    LAST_CHECK_TIME_FIELD_NUMBER: _ClassVar[int]
    SENT_LAST_HOUR_FIELD_NUMBER: _ClassVar[int]
    name: str
    channel_id: str
    enabled: bool
    healthy: bool
    last_error: str
    base_url: str
    health: ChannelHealth
    last_check_time: _timestamp_pb2.Timestamp
    sent_last_hour: int
    def __init__(self, name: _Optional[str] = ..., channel_id: _Optional[str] = ..., enabled: bool = ..., healthy: bool = ..., last_error: _Optional[str] = ..., base_url: _Optional[str] = ..., health: _Optional[_Union[ChannelHealth, str]] = ..., last_check_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sent_last_hour: _Optional[int] = ...) -> None: ...

class ListChannelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListChannelsResponse(_message.Message):
    __slots__ = ("channels",)
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    channels: _containers.RepeatedCompositeFieldContainer[Channel]
    def __init__(self, channels: _Optional[_Iterable[_Union[Channel, _Mapping]]] = ...) -> None: ...

class GetChannelRequest(_message.Message):
    __slots__ = ("channel_id", "probe")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    PROBE_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    probe: bool
    def __init__(self, channel_id: _Optional[str] = ..., probe: bool = ...) -> None: ...

class SendMessageRequest(_message.Message):
    __slots__ = ("channel", "to", "message", "media_url", "account_id", "thread_id", "session_key", "idempotency_key", "reply_to")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MEDIA_URL_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_FIELD_NUMBER: _ClassVar[int]
    channel: str
    to: str
    message: str
    media_url: str
    account_id: str
    thread_id: str
    session_key: str
    idempotency_key: str
    reply_to: str
    def __init__(self, channel: _Optional[str] = ..., to: _Optional[str] = ..., message: _Optional[str] = ..., media_url: _Optional[str] = ..., account_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., session_key: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., reply_to: _Optional[str] = ...) -> None: ...

class SendMessageResponse(_message.Message):
    __slots__ = ("delivery", "duplicate")
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    delivery: _run_pb2.Delivery
    duplicate: bool
    def __init__(self, delivery: _Optional[_Union[_run_pb2.Delivery, _Mapping]] = ..., duplicate: bool = ...) -> None: ...

class GetChannelResponse(_message.Message):
    __slots__ = ("channel",)
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    channel: Channel
    def __init__(self, channel: _Optional[_Union[Channel, _Mapping]] = ...) -> None: ...
