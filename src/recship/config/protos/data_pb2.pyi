from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DatasetType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OdpsDataset: _ClassVar[DatasetType]
    ParquetDataset: _ClassVar[DatasetType]
    CsvDataset: _ClassVar[DatasetType]

class FgMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FG_NONE: _ClassVar[FgMode]
    FG_NORMAL: _ClassVar[FgMode]
    FG_DAG: _ClassVar[FgMode]
    FG_BYPASS: _ClassVar[FgMode]
OdpsDataset: DatasetType
ParquetDataset: DatasetType
CsvDataset: DatasetType
FG_NONE: FgMode
FG_NORMAL: FgMode
FG_DAG: FgMode
FG_BYPASS: FgMode

class DataConfig(_message.Message):
    __slots__ = ("batch_size", "dataset_type", "fg_encoded", "label_fields", "num_workers", "fg_mode", "eval_batch_size", "drop_remainder", "shuffle")
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    DATASET_TYPE_FIELD_NUMBER: _ClassVar[int]
    FG_ENCODED_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELDS_FIELD_NUMBER: _ClassVar[int]
    NUM_WORKERS_FIELD_NUMBER: _ClassVar[int]
    FG_MODE_FIELD_NUMBER: _ClassVar[int]
    EVAL_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    DROP_REMAINDER_FIELD_NUMBER: _ClassVar[int]
    SHUFFLE_FIELD_NUMBER: _ClassVar[int]
    batch_size: int
    dataset_type: DatasetType
    fg_encoded: bool
    label_fields: _containers.RepeatedScalarFieldContainer[str]
    num_workers: int
    fg_mode: FgMode
    eval_batch_size: int
    drop_remainder: bool
    shuffle: bool
    def __init__(self, batch_size: _Optional[int] = ..., dataset_type: _Optional[_Union[DatasetType, str]] = ..., fg_encoded: _Optional[bool] = ..., label_fields: _Optional[_Iterable[str]] = ..., num_workers: _Optional[int] = ..., fg_mode: _Optional[_Union[FgMode, str]] = ..., eval_batch_size: _Optional[int] = ..., drop_remainder: _Optional[bool] = ..., shuffle: _Optional[bool] = ...) -> None: ...
