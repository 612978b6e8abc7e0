import datetime

from clawplane.v1 import event_pb2 as _event_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetCallerRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetCallerResponse(_message.Message):
    __slots__ = ("credential", "scopes", "device_id", "role")
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    credential: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    device_id: str
    role: str
    def __init__(self, credential: _Optional[str] = ..., scopes: _Optional[_Iterable[str]] = ..., device_id: _Optional[str] = ..., role: _Optional[str] = ...) -> None: ...

class GatewayServiceStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GatewayServiceStatusResponse(_message.Message):
    __slots__ = ("version", "start_time", "uptime_ms", "default_agent_id", "main_session_key", "default_model", "session_count", "queued_runs", "running_runs", "last_event_seq", "oldest_event_seq", "heartbeat_interval_seconds", "dm_scope", "data_dir", "caller_scopes", "instance_id", "tls_fingerprint")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    UPTIME_MS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    MAIN_SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    SESSION_COUNT_FIELD_NUMBER: _ClassVar[int]
    QUEUED_RUNS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_RUNS_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    OLDEST_EVENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DM_SCOPE_FIELD_NUMBER: _ClassVar[int]
    DATA_DIR_FIELD_NUMBER: _ClassVar[int]
    CALLER_SCOPES_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    TLS_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    version: str
    start_time: _timestamp_pb2.Timestamp
    uptime_ms: int
    default_agent_id: str
    main_session_key: str
    default_model: str
    session_count: int
    queued_runs: int
    running_runs: int
    last_event_seq: int
    oldest_event_seq: int
    heartbeat_interval_seconds: int
    dm_scope: str
    data_dir: str
    caller_scopes: _containers.RepeatedScalarFieldContainer[str]
    instance_id: str
    tls_fingerprint: str
    def __init__(self, version: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., uptime_ms: _Optional[int] = ..., default_agent_id: _Optional[str] = ..., main_session_key: _Optional[str] = ..., default_model: _Optional[str] = ..., session_count: _Optional[int] = ..., queued_runs: _Optional[int] = ..., running_runs: _Optional[int] = ..., last_event_seq: _Optional[int] = ..., oldest_event_seq: _Optional[int] = ..., heartbeat_interval_seconds: _Optional[int] = ..., dm_scope: _Optional[str] = ..., data_dir: _Optional[str] = ..., caller_scopes: _Optional[_Iterable[str]] = ..., instance_id: _Optional[str] = ..., tls_fingerprint: _Optional[str] = ...) -> None: ...

class GatewayServiceWakeRequest(_message.Message):
    __slots__ = ("text", "mode", "session_key", "agent_id")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    text: str
    mode: _event_pb2.WakeMode
    session_key: str
    agent_id: str
    def __init__(self, text: _Optional[str] = ..., mode: _Optional[_Union[_event_pb2.WakeMode, str]] = ..., session_key: _Optional[str] = ..., agent_id: _Optional[str] = ...) -> None: ...

class GatewayServiceWakeResponse(_message.Message):
    __slots__ = ("outcome", "session_key", "mode", "run_id")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    outcome: _event_pb2.WakeOutcome
    session_key: str
    mode: _event_pb2.WakeMode
    run_id: str
    def __init__(self, outcome: _Optional[_Union[_event_pb2.WakeOutcome, str]] = ..., session_key: _Optional[str] = ..., mode: _Optional[_Union[_event_pb2.WakeMode, str]] = ..., run_id: _Optional[str] = ...) -> None: ...
