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

class MessageRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MESSAGE_ROLE_UNSPECIFIED: _ClassVar[MessageRole]
    MESSAGE_ROLE_USER: _ClassVar[MessageRole]
    MESSAGE_ROLE_ASSISTANT: _ClassVar[MessageRole]
    MESSAGE_ROLE_SYSTEM: _ClassVar[MessageRole]
MESSAGE_ROLE_UNSPECIFIED: MessageRole
MESSAGE_ROLE_USER: MessageRole
MESSAGE_ROLE_ASSISTANT: MessageRole
MESSAGE_ROLE_SYSTEM: MessageRole

class Session(_message.Message):
    __slots__ = ("name", "session_key", "session_id", "agent_id", "turn_count", "message_count", "last_channel", "last_to", "active_run_ids", "create_time", "update_time", "usage", "last_account_id", "last_thread_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TURN_COUNT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    LAST_TO_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    LAST_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    session_key: str
    session_id: str
    agent_id: str
    turn_count: int
    message_count: int
    last_channel: str
    last_to: str
    active_run_ids: _containers.RepeatedScalarFieldContainer[str]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    usage: _run_pb2.Usage
    last_account_id: str
    last_thread_id: str
    def __init__(self, name: _Optional[str] = ..., session_key: _Optional[str] = ..., session_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., turn_count: _Optional[int] = ..., message_count: _Optional[int] = ..., last_channel: _Optional[str] = ..., last_to: _Optional[str] = ..., active_run_ids: _Optional[_Iterable[str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., usage: _Optional[_Union[_run_pb2.Usage, _Mapping]] = ..., last_account_id: _Optional[str] = ..., last_thread_id: _Optional[str] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("index", "role", "text", "run_id", "create_time")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    index: int
    role: MessageRole
    text: str
    run_id: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, index: _Optional[int] = ..., role: _Optional[_Union[MessageRole, str]] = ..., text: _Optional[str] = ..., run_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SessionServiceSendRequest(_message.Message):
    __slots__ = ("session_key", "message", "idempotency_key", "agent_id", "thinking", "timeout_seconds", "deliver", "model", "best_effort_deliver")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    THINKING_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DELIVER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    BEST_EFFORT_DELIVER_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    message: str
    idempotency_key: str
    agent_id: str
    thinking: str
    timeout_seconds: int
    deliver: bool
    model: str
    best_effort_deliver: bool
    def __init__(self, session_key: _Optional[str] = ..., message: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., agent_id: _Optional[str] = ..., thinking: _Optional[str] = ..., timeout_seconds: _Optional[int] = ..., deliver: bool = ..., model: _Optional[str] = ..., best_effort_deliver: bool = ...) -> None: ...

class SessionServiceSendResponse(_message.Message):
    __slots__ = ("run_id", "session_key", "state", "duplicate")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    session_key: str
    state: _run_pb2.RunState
    duplicate: bool
    def __init__(self, run_id: _Optional[str] = ..., session_key: _Optional[str] = ..., state: _Optional[_Union[_run_pb2.RunState, str]] = ..., duplicate: bool = ...) -> None: ...

class SessionServiceListRequest(_message.Message):
    __slots__ = ("agent_id", "page_size", "page_token")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    page_size: int
    page_token: str
    def __init__(self, agent_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class SessionServiceListResponse(_message.Message):
    __slots__ = ("sessions", "next_page_token")
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[Session]
    next_page_token: str
    def __init__(self, sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SessionServiceGetRequest(_message.Message):
    __slots__ = ("session_key", "agent_id")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    agent_id: str
    def __init__(self, session_key: _Optional[str] = ..., agent_id: _Optional[str] = ...) -> None: ...

class SessionServiceResolveRequest(_message.Message):
    __slots__ = ("session_key", "agent_id", "channel", "to", "account_id")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    agent_id: str
    channel: str
    to: str
    account_id: str
    def __init__(self, session_key: _Optional[str] = ..., agent_id: _Optional[str] = ..., channel: _Optional[str] = ..., to: _Optional[str] = ..., account_id: _Optional[str] = ...) -> None: ...

class SessionServiceResolveResponse(_message.Message):
    __slots__ = ("session_key", "agent_id", "exists", "explanation")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    agent_id: str
    exists: bool
    explanation: str
    def __init__(self, session_key: _Optional[str] = ..., agent_id: _Optional[str] = ..., exists: bool = ..., explanation: _Optional[str] = ...) -> None: ...

class SessionServiceResetRequest(_message.Message):
    __slots__ = ("session_key", "agent_id")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    agent_id: str
    def __init__(self, session_key: _Optional[str] = ..., agent_id: _Optional[str] = ...) -> None: ...

class SessionServiceDeleteRequest(_message.Message):
    __slots__ = ("session_key", "agent_id")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    agent_id: str
    def __init__(self, session_key: _Optional[str] = ..., agent_id: _Optional[str] = ...) -> None: ...

class SessionServiceDeleteResponse(_message.Message):
    __slots__ = ("session_key",)
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    def __init__(self, session_key: _Optional[str] = ...) -> None: ...

class SessionServiceGetResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: Session
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ...) -> None: ...

class SessionServiceResetResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: Session
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ...) -> None: ...
