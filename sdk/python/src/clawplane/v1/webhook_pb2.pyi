import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WebhookEndpointSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WEBHOOK_ENDPOINT_SOURCE_UNSPECIFIED: _ClassVar[WebhookEndpointSource]
    WEBHOOK_ENDPOINT_SOURCE_CONFIG: _ClassVar[WebhookEndpointSource]
    WEBHOOK_ENDPOINT_SOURCE_API: _ClassVar[WebhookEndpointSource]

class WebhookMessageStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WEBHOOK_MESSAGE_STATUS_UNSPECIFIED: _ClassVar[WebhookMessageStatus]
    WEBHOOK_MESSAGE_STATUS_PENDING: _ClassVar[WebhookMessageStatus]
    WEBHOOK_MESSAGE_STATUS_DELIVERED: _ClassVar[WebhookMessageStatus]
    WEBHOOK_MESSAGE_STATUS_FAILED: _ClassVar[WebhookMessageStatus]
WEBHOOK_ENDPOINT_SOURCE_UNSPECIFIED: WebhookEndpointSource
WEBHOOK_ENDPOINT_SOURCE_CONFIG: WebhookEndpointSource
WEBHOOK_ENDPOINT_SOURCE_API: WebhookEndpointSource
WEBHOOK_MESSAGE_STATUS_UNSPECIFIED: WebhookMessageStatus
WEBHOOK_MESSAGE_STATUS_PENDING: WebhookMessageStatus
WEBHOOK_MESSAGE_STATUS_DELIVERED: WebhookMessageStatus
WEBHOOK_MESSAGE_STATUS_FAILED: WebhookMessageStatus

class WebhookKey(_message.Message):
    __slots__ = ("name", "key_id", "label", "private", "create_time", "last_four", "rotate_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_FOUR_FIELD_NUMBER: _ClassVar[int]
    ROTATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    key_id: str
    label: str
    private: bool
    create_time: _timestamp_pb2.Timestamp
    last_four: str
    rotate_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., key_id: _Optional[str] = ..., label: _Optional[str] = ..., private: bool = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_four: _Optional[str] = ..., rotate_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateWebhookKeyRequest(_message.Message):
    __slots__ = ("label", "private")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_FIELD_NUMBER: _ClassVar[int]
    label: str
    private: bool
    def __init__(self, label: _Optional[str] = ..., private: bool = ...) -> None: ...

class CreateWebhookKeyResponse(_message.Message):
    __slots__ = ("key", "secret")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    key: WebhookKey
    secret: str
    def __init__(self, key: _Optional[_Union[WebhookKey, _Mapping]] = ..., secret: _Optional[str] = ...) -> None: ...

class ListWebhookKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListWebhookKeysResponse(_message.Message):
    __slots__ = ("keys", "instance_id")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[WebhookKey]
    instance_id: str
    def __init__(self, keys: _Optional[_Iterable[_Union[WebhookKey, _Mapping]]] = ..., instance_id: _Optional[str] = ...) -> None: ...

class RevokeWebhookKeyRequest(_message.Message):
    __slots__ = ("key_id",)
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    def __init__(self, key_id: _Optional[str] = ...) -> None: ...

class RevokeWebhookKeyResponse(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: WebhookKey
    def __init__(self, key: _Optional[_Union[WebhookKey, _Mapping]] = ...) -> None: ...

class RotateWebhookKeyRequest(_message.Message):
    __slots__ = ("key_id",)
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    def __init__(self, key_id: _Optional[str] = ...) -> None: ...

class RotateWebhookKeyResponse(_message.Message):
    __slots__ = ("key", "secret")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    key: WebhookKey
    secret: str
    def __init__(self, key: _Optional[_Union[WebhookKey, _Mapping]] = ..., secret: _Optional[str] = ...) -> None: ...

class WebhookCall(_message.Message):
    __slots__ = ("call_time", "visibility", "source_ip", "session_name", "status", "duration_ms", "bytes_in", "bytes_out", "key_last_four", "error", "run_id")
    CALL_TIME_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_IP_FIELD_NUMBER: _ClassVar[int]
    SESSION_NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    BYTES_IN_FIELD_NUMBER: _ClassVar[int]
    BYTES_OUT_FIELD_NUMBER: _ClassVar[int]
    KEY_LAST_FOUR_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    call_time: _timestamp_pb2.Timestamp
    visibility: str
    source_ip: str
    session_name: str
    status: int
    duration_ms: int
    bytes_in: int
    bytes_out: int
    key_last_four: str
    error: str
    run_id: str
    def __init__(self, call_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., visibility: _Optional[str] = ..., source_ip: _Optional[str] = ..., session_name: _Optional[str] = ..., status: _Optional[int] = ..., duration_ms: _Optional[int] = ..., bytes_in: _Optional[int] = ..., bytes_out: _Optional[int] = ..., key_last_four: _Optional[str] = ..., error: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class ListWebhookCallsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListWebhookCallsResponse(_message.Message):
    __slots__ = ("calls", "instance_id")
    CALLS_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    calls: _containers.RepeatedCompositeFieldContainer[WebhookCall]
    instance_id: str
    def __init__(self, calls: _Optional[_Iterable[_Union[WebhookCall, _Mapping]]] = ..., instance_id: _Optional[str] = ...) -> None: ...

class CallWebhookRequest(_message.Message):
    __slots__ = ("instance_id", "session_name", "message")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_NAME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    session_name: str
    message: str
    def __init__(self, instance_id: _Optional[str] = ..., session_name: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class CallWebhookResponse(_message.Message):
    __slots__ = ("reply", "run_id", "session_key")
    REPLY_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    reply: str
    run_id: str
    session_key: str
    def __init__(self, reply: _Optional[str] = ..., run_id: _Optional[str] = ..., session_key: _Optional[str] = ...) -> None: ...

class WebhookHeader(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class IngestWebhookRequest(_message.Message):
    __slots__ = ("path", "headers", "body")
    PATH_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    path: str
    headers: _containers.RepeatedCompositeFieldContainer[WebhookHeader]
    body: bytes
    def __init__(self, path: _Optional[str] = ..., headers: _Optional[_Iterable[_Union[WebhookHeader, _Mapping]]] = ..., body: _Optional[bytes] = ...) -> None: ...

class IngestWebhookResponse(_message.Message):
    __slots__ = ("run_id", "session_key", "duplicate")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    session_key: str
    duplicate: bool
    def __init__(self, run_id: _Optional[str] = ..., session_key: _Optional[str] = ..., duplicate: bool = ...) -> None: ...

class WebhookEndpoint(_message.Message):
    __slots__ = ("name", "endpoint_id", "url", "events", "secret", "delivered_seq", "create_time", "header_names", "filter", "transform", "source", "signed", "disabled", "disabled_reason", "disable_time", "consecutive_failures", "failing_since", "last_error", "pending_messages")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_SEQ_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    HEADER_NAMES_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    TRANSFORM_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SIGNED_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    DISABLED_REASON_FIELD_NUMBER: _ClassVar[int]
    DISABLE_TIME_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    FAILING_SINCE_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    PENDING_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    name: str
    endpoint_id: str
    url: str
    events: _containers.RepeatedScalarFieldContainer[str]
    secret: str
    delivered_seq: int
    create_time: _timestamp_pb2.Timestamp
    header_names: _containers.RepeatedScalarFieldContainer[str]
    filter: WebhookEndpointFilter
    transform: str
    source: WebhookEndpointSource
    signed: bool
    disabled: bool
    disabled_reason: str
    disable_time: _timestamp_pb2.Timestamp
    consecutive_failures: int
    failing_since: _timestamp_pb2.Timestamp
    last_error: str
    pending_messages: int
    def __init__(self, name: _Optional[str] = ..., endpoint_id: _Optional[str] = ..., url: _Optional[str] = ..., events: _Optional[_Iterable[str]] = ..., secret: _Optional[str] = ..., delivered_seq: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., header_names: _Optional[_Iterable[str]] = ..., filter: _Optional[_Union[WebhookEndpointFilter, _Mapping]] = ..., transform: _Optional[str] = ..., source: _Optional[_Union[WebhookEndpointSource, str]] = ..., signed: bool = ..., disabled: bool = ..., disabled_reason: _Optional[str] = ..., disable_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., consecutive_failures: _Optional[int] = ..., failing_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[str] = ..., pending_messages: _Optional[int] = ...) -> None: ...

class WebhookEndpointFilter(_message.Message):
    __slots__ = ("session_key", "agent_id", "channel", "expression", "sender")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    agent_id: str
    channel: str
    expression: str
    sender: str
    def __init__(self, session_key: _Optional[str] = ..., agent_id: _Optional[str] = ..., channel: _Optional[str] = ..., expression: _Optional[str] = ..., sender: _Optional[str] = ...) -> None: ...

class CreateWebhookEndpointRequest(_message.Message):
    __slots__ = ("url", "events", "headers", "filter", "transform", "secret")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    URL_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    TRANSFORM_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    url: str
    events: _containers.RepeatedScalarFieldContainer[str]
    headers: _containers.ScalarMap[str, str]
    filter: WebhookEndpointFilter
    transform: str
    secret: str
    def __init__(self, url: _Optional[str] = ..., events: _Optional[_Iterable[str]] = ..., headers: _Optional[_Mapping[str, str]] = ..., filter: _Optional[_Union[WebhookEndpointFilter, _Mapping]] = ..., transform: _Optional[str] = ..., secret: _Optional[str] = ...) -> None: ...

class CreateWebhookEndpointResponse(_message.Message):
    __slots__ = ("endpoint",)
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    endpoint: WebhookEndpoint
    def __init__(self, endpoint: _Optional[_Union[WebhookEndpoint, _Mapping]] = ...) -> None: ...

class ListWebhookEndpointsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListWebhookEndpointsResponse(_message.Message):
    __slots__ = ("endpoints",)
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    endpoints: _containers.RepeatedCompositeFieldContainer[WebhookEndpoint]
    def __init__(self, endpoints: _Optional[_Iterable[_Union[WebhookEndpoint, _Mapping]]] = ...) -> None: ...

class DeleteWebhookEndpointRequest(_message.Message):
    __slots__ = ("endpoint_id",)
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    def __init__(self, endpoint_id: _Optional[str] = ...) -> None: ...

class DeleteWebhookEndpointResponse(_message.Message):
    __slots__ = ("endpoint_id",)
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    def __init__(self, endpoint_id: _Optional[str] = ...) -> None: ...

class EnableWebhookEndpointRequest(_message.Message):
    __slots__ = ("endpoint_id",)
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    def __init__(self, endpoint_id: _Optional[str] = ...) -> None: ...

class EnableWebhookEndpointResponse(_message.Message):
    __slots__ = ("endpoint",)
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    endpoint: WebhookEndpoint
    def __init__(self, endpoint: _Optional[_Union[WebhookEndpoint, _Mapping]] = ...) -> None: ...

class WebhookDeliveryAttempt(_message.Message):
    __slots__ = ("attempt", "attempt_time", "status_code", "error", "latency_ms", "success", "response_body")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_BODY_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    attempt_time: _timestamp_pb2.Timestamp
    status_code: int
    error: str
    latency_ms: int
    success: bool
    response_body: str
    def __init__(self, attempt: _Optional[int] = ..., attempt_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status_code: _Optional[int] = ..., error: _Optional[str] = ..., latency_ms: _Optional[int] = ..., success: bool = ..., response_body: _Optional[str] = ...) -> None: ...

class WebhookMessage(_message.Message):
    __slots__ = ("message_id", "endpoint_id", "event_type", "event_seq", "status", "create_time", "next_attempt_time", "attempts", "body")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    EVENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    endpoint_id: str
    event_type: str
    event_seq: int
    status: WebhookMessageStatus
    create_time: _timestamp_pb2.Timestamp
    next_attempt_time: _timestamp_pb2.Timestamp
    attempts: _containers.RepeatedCompositeFieldContainer[WebhookDeliveryAttempt]
    body: str
    def __init__(self, message_id: _Optional[str] = ..., endpoint_id: _Optional[str] = ..., event_type: _Optional[str] = ..., event_seq: _Optional[int] = ..., status: _Optional[_Union[WebhookMessageStatus, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_attempt_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempts: _Optional[_Iterable[_Union[WebhookDeliveryAttempt, _Mapping]]] = ..., body: _Optional[str] = ...) -> None: ...

class ListWebhookDeliveriesRequest(_message.Message):
    __slots__ = ("endpoint_id", "message_id", "status", "page_size")
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    message_id: str
    status: WebhookMessageStatus
    page_size: int
    def __init__(self, endpoint_id: _Optional[str] = ..., message_id: _Optional[str] = ..., status: _Optional[_Union[WebhookMessageStatus, str]] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListWebhookDeliveriesResponse(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[WebhookMessage]
    def __init__(self, messages: _Optional[_Iterable[_Union[WebhookMessage, _Mapping]]] = ...) -> None: ...

class RedeliverWebhookRequest(_message.Message):
    __slots__ = ("message_id", "endpoint_id")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    endpoint_id: str
    def __init__(self, message_id: _Optional[str] = ..., endpoint_id: _Optional[str] = ...) -> None: ...

class RedeliverWebhookResponse(_message.Message):
    __slots__ = ("message_ids",)
    MESSAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    message_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, message_ids: _Optional[_Iterable[str]] = ...) -> None: ...
