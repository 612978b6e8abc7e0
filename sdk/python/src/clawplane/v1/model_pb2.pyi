from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListModelsRequest(_message.Message):
    __slots__ = ("probe",)
    PROBE_FIELD_NUMBER: _ClassVar[int]
    probe: bool
    def __init__(self, probe: bool = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("providers", "default_model", "default_fallbacks", "agents")
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_FALLBACKS_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    providers: _containers.RepeatedCompositeFieldContainer[ModelProvider]
    default_model: str
    default_fallbacks: _containers.RepeatedScalarFieldContainer[str]
    agents: _containers.RepeatedCompositeFieldContainer[AgentModels]
    def __init__(self, providers: _Optional[_Iterable[_Union[ModelProvider, _Mapping]]] = ..., default_model: _Optional[str] = ..., default_fallbacks: _Optional[_Iterable[str]] = ..., agents: _Optional[_Iterable[_Union[AgentModels, _Mapping]]] = ...) -> None: ...

class ModelProvider(_message.Message):
    __slots__ = ("id", "api", "base_url", "api_key_set", "api_key_source", "models", "timeout_seconds", "max_retries", "config_error", "probed", "reachable", "probe_error", "remote_models")
    ID_FIELD_NUMBER: _ClassVar[int]
    API_FIELD_NUMBER: _ClassVar[int]
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    API_KEY_SET_FIELD_NUMBER: _ClassVar[int]
    API_KEY_SOURCE_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ERROR_FIELD_NUMBER: _ClassVar[int]
    PROBED_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    PROBE_ERROR_FIELD_NUMBER: _ClassVar[int]
    REMOTE_MODELS_FIELD_NUMBER: _ClassVar[int]
    id: str
    api: str
    base_url: str
    api_key_set: bool
    api_key_source: str
    models: _containers.RepeatedScalarFieldContainer[str]
    timeout_seconds: int
    max_retries: int
    config_error: str
    probed: bool
    reachable: bool
    probe_error: str
    remote_models: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., api: _Optional[str] = ..., base_url: _Optional[str] = ..., api_key_set: bool = ..., api_key_source: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ..., timeout_seconds: _Optional[int] = ..., max_retries: _Optional[int] = ..., config_error: _Optional[str] = ..., probed: bool = ..., reachable: bool = ..., probe_error: _Optional[str] = ..., remote_models: _Optional[_Iterable[str]] = ...) -> None: ...

class AgentModels(_message.Message):
    __slots__ = ("agent_id", "primary", "fallbacks")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    FALLBACKS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    primary: str
    fallbacks: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, agent_id: _Optional[str] = ..., primary: _Optional[str] = ..., fallbacks: _Optional[_Iterable[str]] = ...) -> None: ...
