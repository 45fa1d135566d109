from recship.serving.protos import pytorch_predict_pb2 as _pytorch_predict_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LongStringMap(_message.Message):
    __slots__ = ("map_field",)
    class MapFieldEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: str
        def __init__(self, key: _Optional[int] = ..., value: _Optional[str] = ...) -> None: ...
    MAP_FIELD_FIELD_NUMBER: _ClassVar[int]
    map_field: _containers.ScalarMap[int, str]
    def __init__(self, map_field: _Optional[_Mapping[int, str]] = ...) -> None: ...

class LongIntMap(_message.Message):
    __slots__ = ("map_field",)
    class MapFieldEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    MAP_FIELD_FIELD_NUMBER: _ClassVar[int]
    map_field: _containers.ScalarMap[int, int]
    def __init__(self, map_field: _Optional[_Mapping[int, int]] = ...) -> None: ...

class LongLongMap(_message.Message):
    __slots__ = ("map_field",)
    class MapFieldEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    MAP_FIELD_FIELD_NUMBER: _ClassVar[int]
    map_field: _containers.ScalarMap[int, int]
    def __init__(self, map_field: _Optional[_Mapping[int, int]] = ...) -> None: ...

class LongFloatMap(_message.Message):
    __slots__ = ("map_field",)
    class MapFieldEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: float
        def __init__(self, key: _Optional[int] = ..., value: _Optional[float] = ...) -> None: ...
    MAP_FIELD_FIELD_NUMBER: _ClassVar[int]
    map_field: _containers.ScalarMap[int, float]
    def __init__(self, map_field: _Optional[_Mapping[int, float]] = ...) -> None: ...

class LongDoubleMap(_message.Message):
    __slots__ = ("map_field",)
    class MapFieldEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: float
        def __init__(self, key: _Optional[int] = ..., value: _Optional[float] = ...) -> None: ...
    MAP_FIELD_FIELD_NUMBER: _ClassVar[int]
    map_field: _containers.ScalarMap[int, float]
    def __init__(self, map_field: _Optional[_Mapping[int, float]] = ...) -> None: ...

class StringStringMap(_message.Message):
    __slots__ = ("map_field",)
    class MapFieldEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MAP_FIELD_FIELD_NUMBER: _ClassVar[int]
    map_field: _containers.ScalarMap[str, str]
    def __init__(self, map_field: _Optional[_Mapping[str, str]] = ...) -> None: ...

class StringIntMap(_message.Message):
    __slots__ = ("map_field",)
    class MapFieldEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    MAP_FIELD_FIELD_NUMBER: _ClassVar[int]
    map_field: _containers.ScalarMap[str, int]
    def __init__(self, map_field: _Optional[_Mapping[str, int]] = ...) -> None: ...

class StringLongMap(_message.Message):
    __slots__ = ("map_field",)
    class MapFieldEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    MAP_FIELD_FIELD_NUMBER: _ClassVar[int]
    map_field: _containers.ScalarMap[str, int]
    def __init__(self, map_field: _Optional[_Mapping[str, int]] = ...) -> None: ...

class StringFloatMap(_message.Message):
    __slots__ = ("map_field",)
    class MapFieldEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MAP_FIELD_FIELD_NUMBER: _ClassVar[int]
    map_field: _containers.ScalarMap[str, float]
    def __init__(self, map_field: _Optional[_Mapping[str, float]] = ...) -> None: ...

class StringDoubleMap(_message.Message):
    __slots__ = ("map_field",)
    class MapFieldEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MAP_FIELD_FIELD_NUMBER: _ClassVar[int]
    map_field: _containers.ScalarMap[str, float]
    def __init__(self, map_field: _Optional[_Mapping[str, float]] = ...) -> None: ...

class IntStringMap(_message.Message):
    __slots__ = ("map_field",)
    class MapFieldEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: str
        def __init__(self, key: _Optional[int] = ..., value: _Optional[str] = ...) -> None: ...
    MAP_FIELD_FIELD_NUMBER: _ClassVar[int]
    map_field: _containers.ScalarMap[int, str]
    def __init__(self, map_field: _Optional[_Mapping[int, str]] = ...) -> None: ...

class IntIntMap(_message.Message):
    __slots__ = ("map_field",)
    class MapFieldEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    MAP_FIELD_FIELD_NUMBER: _ClassVar[int]
    map_field: _containers.ScalarMap[int, int]
    def __init__(self, map_field: _Optional[_Mapping[int, int]] = ...) -> None: ...

class IntLongMap(_message.Message):
    __slots__ = ("map_field",)
    class MapFieldEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    MAP_FIELD_FIELD_NUMBER: _ClassVar[int]
    map_field: _containers.ScalarMap[int, int]
    def __init__(self, map_field: _Optional[_Mapping[int, int]] = ...) -> None: ...

class IntFloatMap(_message.Message):
    __slots__ = ("map_field",)
    class MapFieldEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: float
        def __init__(self, key: _Optional[int] = ..., value: _Optional[float] = ...) -> None: ...
    MAP_FIELD_FIELD_NUMBER: _ClassVar[int]
    map_field: _containers.ScalarMap[int, float]
    def __init__(self, map_field: _Optional[_Mapping[int, float]] = ...) -> None: ...

class IntDoubleMap(_message.Message):
    __slots__ = ("map_field",)
    class MapFieldEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: float
        def __init__(self, key: _Optional[int] = ..., value: _Optional[float] = ...) -> None: ...
    MAP_FIELD_FIELD_NUMBER: _ClassVar[int]
    map_field: _containers.ScalarMap[int, float]
    def __init__(self, map_field: _Optional[_Mapping[int, float]] = ...) -> None: ...

class IntList(_message.Message):
    __slots__ = ("features",)
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    features: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, features: _Optional[_Iterable[int]] = ...) -> None: ...

class LongList(_message.Message):
    __slots__ = ("features",)
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    features: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, features: _Optional[_Iterable[int]] = ...) -> None: ...

class FloatList(_message.Message):
    __slots__ = ("features",)
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    features: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, features: _Optional[_Iterable[float]] = ...) -> None: ...

class DoubleList(_message.Message):
    __slots__ = ("features",)
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    features: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, features: _Optional[_Iterable[float]] = ...) -> None: ...

class StringList(_message.Message):
    __slots__ = ("features",)
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    features: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, features: _Optional[_Iterable[str]] = ...) -> None: ...

class IntLists(_message.Message):
    __slots__ = ("lists",)
    LISTS_FIELD_NUMBER: _ClassVar[int]
    lists: _containers.RepeatedCompositeFieldContainer[IntList]
    def __init__(self, lists: _Optional[_Iterable[_Union[IntList, _Mapping]]] = ...) -> None: ...

class LongLists(_message.Message):
    __slots__ = ("lists",)
    LISTS_FIELD_NUMBER: _ClassVar[int]
    lists: _containers.RepeatedCompositeFieldContainer[LongList]
    def __init__(self, lists: _Optional[_Iterable[_Union[LongList, _Mapping]]] = ...) -> None: ...

class FloatLists(_message.Message):
    __slots__ = ("lists",)
    LISTS_FIELD_NUMBER: _ClassVar[int]
    lists: _containers.RepeatedCompositeFieldContainer[FloatList]
    def __init__(self, lists: _Optional[_Iterable[_Union[FloatList, _Mapping]]] = ...) -> None: ...

class DoubleLists(_message.Message):
    __slots__ = ("lists",)
    LISTS_FIELD_NUMBER: _ClassVar[int]
    lists: _containers.RepeatedCompositeFieldContainer[DoubleList]
    def __init__(self, lists: _Optional[_Iterable[_Union[DoubleList, _Mapping]]] = ...) -> None: ...

class StringLists(_message.Message):
    __slots__ = ("lists",)
    LISTS_FIELD_NUMBER: _ClassVar[int]
    lists: _containers.RepeatedCompositeFieldContainer[StringList]
    def __init__(self, lists: _Optional[_Iterable[_Union[StringList, _Mapping]]] = ...) -> None: ...

class PBFeature(_message.Message):
    __slots__ = ("int_feature", "long_feature", "string_feature", "float_feature", "double_feature", "long_string_map", "long_int_map", "long_long_map", "long_float_map", "long_double_map", "string_string_map", "string_int_map", "string_long_map", "string_float_map", "string_double_map", "int_string_map", "int_int_map", "int_long_map", "int_float_map", "int_double_map", "int_list", "long_list", "string_list", "float_list", "double_list", "int_lists", "long_lists", "string_lists", "float_lists", "double_lists")
    INT_FEATURE_FIELD_NUMBER: _ClassVar[int]
    LONG_FEATURE_FIELD_NUMBER: _ClassVar[int]
    STRING_FEATURE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_FEATURE_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_FEATURE_FIELD_NUMBER: _ClassVar[int]
    LONG_STRING_MAP_FIELD_NUMBER: _ClassVar[int]
    LONG_INT_MAP_FIELD_NUMBER: _ClassVar[int]
    LONG_LONG_MAP_FIELD_NUMBER: _ClassVar[int]
    LONG_FLOAT_MAP_FIELD_NUMBER: _ClassVar[int]
    LONG_DOUBLE_MAP_FIELD_NUMBER: _ClassVar[int]
    STRING_STRING_MAP_FIELD_NUMBER: _ClassVar[int]
    STRING_INT_MAP_FIELD_NUMBER: _ClassVar[int]
    STRING_LONG_MAP_FIELD_NUMBER: _ClassVar[int]
    STRING_FLOAT_MAP_FIELD_NUMBER: _ClassVar[int]
    STRING_DOUBLE_MAP_FIELD_NUMBER: _ClassVar[int]
    INT_STRING_MAP_FIELD_NUMBER: _ClassVar[int]
    INT_INT_MAP_FIELD_NUMBER: _ClassVar[int]
    INT_LONG_MAP_FIELD_NUMBER: _ClassVar[int]
    INT_FLOAT_MAP_FIELD_NUMBER: _ClassVar[int]
    INT_DOUBLE_MAP_FIELD_NUMBER: _ClassVar[int]
    INT_LIST_FIELD_NUMBER: _ClassVar[int]
    LONG_LIST_FIELD_NUMBER: _ClassVar[int]
    STRING_LIST_FIELD_NUMBER: _ClassVar[int]
    FLOAT_LIST_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_LIST_FIELD_NUMBER: _ClassVar[int]
    INT_LISTS_FIELD_NUMBER: _ClassVar[int]
    LONG_LISTS_FIELD_NUMBER: _ClassVar[int]
    STRING_LISTS_FIELD_NUMBER: _ClassVar[int]
    FLOAT_LISTS_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_LISTS_FIELD_NUMBER: _ClassVar[int]
    int_feature: int
    long_feature: int
    string_feature: str
    float_feature: float
    double_feature: float
    long_string_map: LongStringMap
    long_int_map: LongIntMap
    long_long_map: LongLongMap
    long_float_map: LongFloatMap
    long_double_map: LongDoubleMap
    string_string_map: StringStringMap
    string_int_map: StringIntMap
    string_long_map: StringLongMap
    string_float_map: StringFloatMap
    string_double_map: StringDoubleMap
    int_string_map: IntStringMap
    int_int_map: IntIntMap
    int_long_map: IntLongMap
    int_float_map: IntFloatMap
    int_double_map: IntDoubleMap
    int_list: IntList
    long_list: LongList
    string_list: StringList
    float_list: FloatList
    double_list: DoubleList
    int_lists: IntLists
    long_lists: LongLists
    string_lists: StringLists
    float_lists: FloatLists
    double_lists: DoubleLists
    def __init__(self, int_feature: _Optional[int] = ..., long_feature: _Optional[int] = ..., string_feature: _Optional[str] = ..., float_feature: _Optional[float] = ..., double_feature: _Optional[float] = ..., long_string_map: _Optional[_Union[LongStringMap, _Mapping]] = ..., long_int_map: _Optional[_Union[LongIntMap, _Mapping]] = ..., long_long_map: _Optional[_Union[LongLongMap, _Mapping]] = ..., long_float_map: _Optional[_Union[LongFloatMap, _Mapping]] = ..., long_double_map: _Optional[_Union[LongDoubleMap, _Mapping]] = ..., string_string_map: _Optional[_Union[StringStringMap, _Mapping]] = ..., string_int_map: _Optional[_Union[StringIntMap, _Mapping]] = ..., string_long_map: _Optional[_Union[StringLongMap, _Mapping]] = ..., string_float_map: _Optional[_Union[StringFloatMap, _Mapping]] = ..., string_double_map: _Optional[_Union[StringDoubleMap, _Mapping]] = ..., int_string_map: _Optional[_Union[IntStringMap, _Mapping]] = ..., int_int_map: _Optional[_Union[IntIntMap, _Mapping]] = ..., int_long_map: _Optional[_Union[IntLongMap, _Mapping]] = ..., int_float_map: _Optional[_Union[IntFloatMap, _Mapping]] = ..., int_double_map: _Optional[_Union[IntDoubleMap, _Mapping]] = ..., int_list: _Optional[_Union[IntList, _Mapping]] = ..., long_list: _Optional[_Union[LongList, _Mapping]] = ..., string_list: _Optional[_Union[StringList, _Mapping]] = ..., float_list: _Optional[_Union[FloatList, _Mapping]] = ..., double_list: _Optional[_Union[DoubleList, _Mapping]] = ..., int_lists: _Optional[_Union[IntLists, _Mapping]] = ..., long_lists: _Optional[_Union[LongLists, _Mapping]] = ..., string_lists: _Optional[_Union[StringLists, _Mapping]] = ..., float_lists: _Optional[_Union[FloatLists, _Mapping]] = ..., double_lists: _Optional[_Union[DoubleLists, _Mapping]] = ...) -> None: ...

class ContextFeatures(_message.Message):
    __slots__ = ("features",)
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    features: _containers.RepeatedCompositeFieldContainer[PBFeature]
    def __init__(self, features: _Optional[_Iterable[_Union[PBFeature, _Mapping]]] = ...) -> None: ...

class PBRequest(_message.Message):
    __slots__ = ("debug_level", "user_features", "item_ids", "context_features", "faiss_neigh_num", "item_features", "meta_data")
    class UserFeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: PBFeature
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[PBFeature, _Mapping]] = ...) -> None: ...
    class ContextFeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ContextFeatures
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ContextFeatures, _Mapping]] = ...) -> None: ...
    class ItemFeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ContextFeatures
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ContextFeatures, _Mapping]] = ...) -> None: ...
    class MetaDataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DEBUG_LEVEL_FIELD_NUMBER: _ClassVar[int]
    USER_FEATURES_FIELD_NUMBER: _ClassVar[int]
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FEATURES_FIELD_NUMBER: _ClassVar[int]
    FAISS_NEIGH_NUM_FIELD_NUMBER: _ClassVar[int]
    ITEM_FEATURES_FIELD_NUMBER: _ClassVar[int]
    META_DATA_FIELD_NUMBER: _ClassVar[int]
    debug_level: int
    user_features: _containers.MessageMap[str, PBFeature]
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    context_features: _containers.MessageMap[str, ContextFeatures]
    faiss_neigh_num: int
    item_features: _containers.MessageMap[str, ContextFeatures]
    meta_data: _containers.ScalarMap[str, str]
    def __init__(self, debug_level: _Optional[int] = ..., user_features: _Optional[_Mapping[str, PBFeature]] = ..., item_ids: _Optional[_Iterable[str]] = ..., context_features: _Optional[_Mapping[str, ContextFeatures]] = ..., faiss_neigh_num: _Optional[int] = ..., item_features: _Optional[_Mapping[str, ContextFeatures]] = ..., meta_data: _Optional[_Mapping[str, str]] = ...) -> None: ...

class PBResponse(_message.Message):
    __slots__ = ("map_outputs", "generate_features", "raw_features", "item_ids", "pass_through_data")
    class MapOutputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _pytorch_predict_pb2.ArrayProto
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_pytorch_predict_pb2.ArrayProto, _Mapping]] = ...) -> None: ...
    class GenerateFeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class RawFeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class PassThroughDataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MAP_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    GENERATE_FEATURES_FIELD_NUMBER: _ClassVar[int]
    RAW_FEATURES_FIELD_NUMBER: _ClassVar[int]
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    PASS_THROUGH_DATA_FIELD_NUMBER: _ClassVar[int]
    map_outputs: _containers.MessageMap[str, _pytorch_predict_pb2.ArrayProto]
    generate_features: _containers.ScalarMap[str, str]
    raw_features: _containers.ScalarMap[str, str]
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    pass_through_data: _containers.ScalarMap[str, str]
    def __init__(self, map_outputs: _Optional[_Mapping[str, _pytorch_predict_pb2.ArrayProto]] = ..., generate_features: _Optional[_Mapping[str, str]] = ..., raw_features: _Optional[_Mapping[str, str]] = ..., item_ids: _Optional[_Iterable[str]] = ..., pass_through_data: _Optional[_Mapping[str, str]] = ...) -> None: ...

class PBLogData(_message.Message):
    __slots__ = ("request", "raw_features", "generate_features")
    class RawFeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class GenerateFeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    RAW_FEATURES_FIELD_NUMBER: _ClassVar[int]
    GENERATE_FEATURES_FIELD_NUMBER: _ClassVar[int]
    request: PBRequest
    raw_features: _containers.ScalarMap[str, str]
    generate_features: _containers.ScalarMap[str, str]
    def __init__(self, request: _Optional[_Union[PBRequest, _Mapping]] = ..., raw_features: _Optional[_Mapping[str, str]] = ..., generate_features: _Optional[_Mapping[str, str]] = ...) -> None: ...
