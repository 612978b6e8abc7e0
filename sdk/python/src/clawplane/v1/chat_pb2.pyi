from clawplane.v1 import run_pb2 as _run_pb2
from clawplane.v1 import session_pb2 as _session_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChatServiceSendRequest(_message.Message):
    __slots__ = ("session_key", "message", "idempotency_key", "agent_id", "deliver", "channel", "to", "model", "thinking", "timeout_seconds", "best_effort_deliver")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVER_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    THINKING_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BEST_EFFORT_DELIVER_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    message: str
    idempotency_key: str
    agent_id: str
    deliver: bool
    channel: str
    to: str
    model: str
    thinking: str
    timeout_seconds: int
    best_effort_deliver: bool
    def __init__(self, session_key: _Optional[str] = ..., message: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., agent_id: _Optional[str] = ..., deliver: bool = ..., channel: _Optional[str] = ..., to: _Optional[str] = ..., model: _Optional[str] = ..., thinking: _Optional[str] = ..., timeout_seconds: _Optional[int] = ..., best_effort_deliver: bool = ...) -> None: ...

class ChatServiceSendResponse(_message.Message):
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

class ChatServiceHistoryRequest(_message.Message):
    __slots__ = ("session_key", "agent_id", "page_size", "page_token")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    agent_id: str
    page_size: int
    page_token: str
    def __init__(self, session_key: _Optional[str] = ..., agent_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ChatServiceHistoryResponse(_message.Message):
    __slots__ = ("session", "messages", "next_page_token")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    session: _session_pb2.Session
    messages: _containers.RepeatedCompositeFieldContainer[_session_pb2.Message]
    next_page_token: str
    def __init__(self, session: _Optional[_Union[_session_pb2.Session, _Mapping]] = ..., messages: _Optional[_Iterable[_Union[_session_pb2.Message, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ChatServiceAbortRequest(_message.Message):
    __slots__ = ("session_key", "agent_id", "run_id")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    agent_id: str
    run_id: str
    def __init__(self, session_key: _Optional[str] = ..., agent_id: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class ChatServiceAbortResponse(_message.Message):
    __slots__ = ("aborted", "run_ids")
    ABORTED_FIELD_NUMBER: _ClassVar[int]
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    aborted: bool
    run_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, aborted: bool = ..., run_ids: _Optional[_Iterable[str]] = ...) -> None: ...
