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

class SenderPairing(_message.Message):
    __slots__ = ("name", "request_id", "channel", "account_id", "sender_id", "sender_name", "code", "create_time", "expire_time", "reply_to")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_NAME_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_FIELD_NUMBER: _ClassVar[int]
    name: str
    request_id: str
    channel: str
    account_id: str
    sender_id: str
    sender_name: str
    code: str
    create_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    reply_to: str
    def __init__(self, name: _Optional[str] = ..., request_id: _Optional[str] = ..., channel: _Optional[str] = ..., account_id: _Optional[str] = ..., sender_id: _Optional[str] = ..., sender_name: _Optional[str] = ..., code: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reply_to: _Optional[str] = ...) -> None: ...

class ApprovedSender(_message.Message):
    __slots__ = ("channel", "account_id", "sender_id", "sender_name", "approve_time", "code")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_NAME_FIELD_NUMBER: _ClassVar[int]
    APPROVE_TIME_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    channel: str
    account_id: str
    sender_id: str
    sender_name: str
    approve_time: _timestamp_pb2.Timestamp
    code: str
    def __init__(self, channel: _Optional[str] = ..., account_id: _Optional[str] = ..., sender_id: _Optional[str] = ..., sender_name: _Optional[str] = ..., approve_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., code: _Optional[str] = ...) -> None: ...

class ListSenderPairingsRequest(_message.Message):
    __slots__ = ("channel",)
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    channel: str
    def __init__(self, channel: _Optional[str] = ...) -> None: ...

class ListSenderPairingsResponse(_message.Message):
    __slots__ = ("requests", "approved", "pending_per_channel", "ttl_seconds")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    APPROVED_FIELD_NUMBER: _ClassVar[int]
    PENDING_PER_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[SenderPairing]
    approved: _containers.RepeatedCompositeFieldContainer[ApprovedSender]
    pending_per_channel: int
    ttl_seconds: int
    def __init__(self, requests: _Optional[_Iterable[_Union[SenderPairing, _Mapping]]] = ..., approved: _Optional[_Iterable[_Union[ApprovedSender, _Mapping]]] = ..., pending_per_channel: _Optional[int] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...

class ApproveSenderPairingRequest(_message.Message):
    __slots__ = ("channel", "code", "request_id", "notify")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NOTIFY_FIELD_NUMBER: _ClassVar[int]
    channel: str
    code: str
    request_id: str
    notify: bool
    def __init__(self, channel: _Optional[str] = ..., code: _Optional[str] = ..., request_id: _Optional[str] = ..., notify: bool = ...) -> None: ...

class ApproveSenderPairingResponse(_message.Message):
    __slots__ = ("request", "sender", "notification")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    request: SenderPairing
    sender: ApprovedSender
    notification: _run_pb2.Delivery
    def __init__(self, request: _Optional[_Union[SenderPairing, _Mapping]] = ..., sender: _Optional[_Union[ApprovedSender, _Mapping]] = ..., notification: _Optional[_Union[_run_pb2.Delivery, _Mapping]] = ...) -> None: ...

class RejectSenderPairingRequest(_message.Message):
    __slots__ = ("channel", "code", "request_id")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    channel: str
    code: str
    request_id: str
    def __init__(self, channel: _Optional[str] = ..., code: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RejectSenderPairingResponse(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: SenderPairing
    def __init__(self, request: _Optional[_Union[SenderPairing, _Mapping]] = ...) -> None: ...

class RevokeApprovedSenderRequest(_message.Message):
    __slots__ = ("channel", "sender_id")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    SENDER_ID_FIELD_NUMBER: _ClassVar[int]
    channel: str
    sender_id: str
    def __init__(self, channel: _Optional[str] = ..., sender_id: _Optional[str] = ...) -> None: ...

class RevokeApprovedSenderResponse(_message.Message):
    __slots__ = ("sender",)
    SENDER_FIELD_NUMBER: _ClassVar[int]
    sender: ApprovedSender
    def __init__(self, sender: _Optional[_Union[ApprovedSender, _Mapping]] = ...) -> None: ...

class SenderPairingChange(_message.Message):
    __slots__ = ("type", "request")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    type: str
    request: SenderPairing
    def __init__(self, type: _Optional[str] = ..., request: _Optional[_Union[SenderPairing, _Mapping]] = ...) -> None: ...

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
