from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IdFeature(_message.Message):
    __slots__ = ("feature_name", "expression", "embedding_name", "embedding_dim", "hash_bucket_size", "num_buckets", "default_value", "separator", "pooling", "vocab_list")
    FEATURE_NAME_FIELD_NUMBER: _ClassVar[int]
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_NAME_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIM_FIELD_NUMBER: _ClassVar[int]
    HASH_BUCKET_SIZE_FIELD_NUMBER: _ClassVar[int]
    NUM_BUCKETS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    SEPARATOR_FIELD_NUMBER: _ClassVar[int]
    POOLING_FIELD_NUMBER: _ClassVar[int]
    VOCAB_LIST_FIELD_NUMBER: _ClassVar[int]
    feature_name: str
    expression: str
    embedding_name: str
    embedding_dim: int
    hash_bucket_size: int
    num_buckets: int
    default_value: str
    separator: str
    pooling: str
    vocab_list: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, feature_name: _Optional[str] = ..., expression: _Optional[str] = ..., embedding_name: _Optional[str] = ..., embedding_dim: _Optional[int] = ..., hash_bucket_size: _Optional[int] = ..., num_buckets: _Optional[int] = ..., default_value: _Optional[str] = ..., separator: _Optional[str] = ..., pooling: _Optional[str] = ..., vocab_list: _Optional[_Iterable[str]] = ...) -> None: ...

class RawFeature(_message.Message):
    __slots__ = ("feature_name", "expression", "embedding_name", "embedding_dim", "boundaries", "value_dim", "default_value", "separator")
    FEATURE_NAME_FIELD_NUMBER: _ClassVar[int]
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_NAME_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIM_FIELD_NUMBER: _ClassVar[int]
    BOUNDARIES_FIELD_NUMBER: _ClassVar[int]
    VALUE_DIM_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    SEPARATOR_FIELD_NUMBER: _ClassVar[int]
    feature_name: str
    expression: str
    embedding_name: str
    embedding_dim: int
    boundaries: _containers.RepeatedScalarFieldContainer[float]
    value_dim: int
    default_value: str
    separator: str
    def __init__(self, feature_name: _Optional[str] = ..., expression: _Optional[str] = ..., embedding_name: _Optional[str] = ..., embedding_dim: _Optional[int] = ..., boundaries: _Optional[_Iterable[float]] = ..., value_dim: _Optional[int] = ..., default_value: _Optional[str] = ..., separator: _Optional[str] = ...) -> None: ...

class SeqFeatureConfig(_message.Message):
    __slots__ = ("id_feature", "raw_feature")
    ID_FEATURE_FIELD_NUMBER: _ClassVar[int]
    RAW_FEATURE_FIELD_NUMBER: _ClassVar[int]
    id_feature: IdFeature
    raw_feature: RawFeature
    def __init__(self, id_feature: _Optional[_Union[IdFeature, _Mapping]] = ..., raw_feature: _Optional[_Union[RawFeature, _Mapping]] = ...) -> None: ...

class SequenceFeature(_message.Message):
    __slots__ = ("sequence_name", "sequence_length", "sequence_delim", "sequence_pk", "features")
    SEQUENCE_NAME_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_DELIM_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_PK_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    sequence_name: str
    sequence_length: int
    sequence_delim: str
    sequence_pk: str
    features: _containers.RepeatedCompositeFieldContainer[SeqFeatureConfig]
    def __init__(self, sequence_name: _Optional[str] = ..., sequence_length: _Optional[int] = ..., sequence_delim: _Optional[str] = ..., sequence_pk: _Optional[str] = ..., features: _Optional[_Iterable[_Union[SeqFeatureConfig, _Mapping]]] = ...) -> None: ...

class FeatureConfig(_message.Message):
    __slots__ = ("id_feature", "raw_feature", "sequence_feature")
    ID_FEATURE_FIELD_NUMBER: _ClassVar[int]
    RAW_FEATURE_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FEATURE_FIELD_NUMBER: _ClassVar[int]
    id_feature: IdFeature
    raw_feature: RawFeature
    sequence_feature: SequenceFeature
    def __init__(self, id_feature: _Optional[_Union[IdFeature, _Mapping]] = ..., raw_feature: _Optional[_Union[RawFeature, _Mapping]] = ..., sequence_feature: _Optional[_Union[SequenceFeature, _Mapping]] = ...) -> None: ...
