import datetime

from clawplane.v1 import run_pb2 as _run_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentServiceRunRequest(_message.Message):
    __slots__ = ("message", "idempotency_key", "agent_id", "session_key", "channel", "to", "account_id", "thread_id", "deliver", "model", "thinking", "timeout_seconds", "extra_system_prompt", "label", "best_effort_deliver", "session_id", "reply_channel", "reply_to", "reply_account_id", "summary_wake")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    THINKING_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    BEST_EFFORT_DELIVER_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REPLY_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_FIELD_NUMBER: _ClassVar[int]
    REPLY_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_WAKE_FIELD_NUMBER: _ClassVar[int]
    message: str
    idempotency_key: str
    agent_id: str
    session_key: str
    channel: str
    to: str
    account_id: str
    thread_id: str
    deliver: bool
    model: str
    thinking: str
    timeout_seconds: int
    extra_system_prompt: str
    label: str
    best_effort_deliver: bool
    session_id: str
    reply_channel: str
    reply_to: str
    reply_account_id: str
    summary_wake: _run_pb2.SummaryWake
    def __init__(self, message: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., agent_id: _Optional[str] = ..., session_key: _Optional[str] = ..., channel: _Optional[str] = ..., to: _Optional[str] = ..., account_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., deliver: bool = ..., model: _Optional[str] = ..., thinking: _Optional[str] = ..., timeout_seconds: _Optional[int] = ..., extra_system_prompt: _Optional[str] = ..., label: _Optional[str] = ..., best_effort_deliver: bool = ..., session_id: _Optional[str] = ..., reply_channel: _Optional[str] = ..., reply_to: _Optional[str] = ..., reply_account_id: _Optional[str] = ..., summary_wake: _Optional[_Union[_run_pb2.SummaryWake, _Mapping]] = ...) -> None: ...

class AgentServiceRunResponse(_message.Message):
    __slots__ = ("run_id", "session_key", "agent_id", "state", "duplicate", "accept_time", "delivery")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_TIME_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    session_key: str
    agent_id: str
    state: _run_pb2.RunState
    duplicate: bool
    accept_time: _timestamp_pb2.Timestamp
    delivery: _run_pb2.Delivery
    def __init__(self, run_id: _Optional[str] = ..., session_key: _Optional[str] = ..., agent_id: _Optional[str] = ..., state: _Optional[_Union[_run_pb2.RunState, str]] = ..., duplicate: bool = ..., accept_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delivery: _Optional[_Union[_run_pb2.Delivery, _Mapping]] = ...) -> None: ...

class AgentServiceWaitRequest(_message.Message):
    __slots__ = ("run_id", "timeout_ms", "idempotency_key")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    timeout_ms: int
    idempotency_key: str
    def __init__(self, run_id: _Optional[str] = ..., timeout_ms: _Optional[int] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class AgentServiceWaitResponse(_message.Message):
    __slots__ = ("run", "done")
    RUN_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    run: _run_pb2.Run
    done: bool
    def __init__(self, run: _Optional[_Union[_run_pb2.Run, _Mapping]] = ..., done: bool = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id", "idempotency_key")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    idempotency_key: str
    def __init__(self, run_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class CancelRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("session_key", "states", "page_size", "page_token", "agent_id")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    states: _containers.RepeatedScalarFieldContainer[_run_pb2.RunState]
    page_size: int
    page_token: str
    agent_id: str
    def __init__(self, session_key: _Optional[str] = ..., states: _Optional[_Iterable[_Union[_run_pb2.RunState, str]]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., agent_id: _Optional[str] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[_run_pb2.Run]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[_run_pb2.Run, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _run_pb2.Run
    def __init__(self, run: _Optional[_Union[_run_pb2.Run, _Mapping]] = ...) -> None: ...

class CancelRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _run_pb2.Run
    def __init__(self, run: _Optional[_Union[_run_pb2.Run, _Mapping]] = ...) -> None: ...
