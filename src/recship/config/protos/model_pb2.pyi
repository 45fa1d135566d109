from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FeatureGroupType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEEP: _ClassVar[FeatureGroupType]
    WIDE: _ClassVar[FeatureGroupType]
    SEQUENCE: _ClassVar[FeatureGroupType]
DEEP: FeatureGroupType
WIDE: FeatureGroupType
SEQUENCE: FeatureGroupType

class FeatureGroupConfig(_message.Message):
    __slots__ = ("group_name", "feature_names", "group_type")
    GROUP_NAME_FIELD_NUMBER: _ClassVar[int]
    FEATURE_NAMES_FIELD_NUMBER: _ClassVar[int]
    GROUP_TYPE_FIELD_NUMBER: _ClassVar[int]
    group_name: str
    feature_names: _containers.RepeatedScalarFieldContainer[str]
    group_type: FeatureGroupType
    def __init__(self, group_name: _Optional[str] = ..., feature_names: _Optional[_Iterable[str]] = ..., group_type: _Optional[_Union[FeatureGroupType, str]] = ...) -> None: ...

class MLP(_message.Message):
    __slots__ = ("hidden_units", "dropout_ratio", "activation", "use_bn", "bias")
    HIDDEN_UNITS_FIELD_NUMBER: _ClassVar[int]
    DROPOUT_RATIO_FIELD_NUMBER: _ClassVar[int]
    ACTIVATION_FIELD_NUMBER: _ClassVar[int]
    USE_BN_FIELD_NUMBER: _ClassVar[int]
    BIAS_FIELD_NUMBER: _ClassVar[int]
    hidden_units: _containers.RepeatedScalarFieldContainer[int]
    dropout_ratio: _containers.RepeatedScalarFieldContainer[float]
    activation: str
    use_bn: bool
    bias: bool
    def __init__(self, hidden_units: _Optional[_Iterable[int]] = ..., dropout_ratio: _Optional[_Iterable[float]] = ..., activation: _Optional[str] = ..., use_bn: _Optional[bool] = ..., bias: _Optional[bool] = ...) -> None: ...

class Tower(_message.Message):
    __slots__ = ("input", "mlp")
    INPUT_FIELD_NUMBER: _ClassVar[int]
    MLP_FIELD_NUMBER: _ClassVar[int]
    input: str
    mlp: MLP
    def __init__(self, input: _Optional[str] = ..., mlp: _Optional[_Union[MLP, _Mapping]] = ...) -> None: ...

class DINTower(_message.Message):
    __slots__ = ("input", "attn_mlp")
    INPUT_FIELD_NUMBER: _ClassVar[int]
    ATTN_MLP_FIELD_NUMBER: _ClassVar[int]
    input: str
    attn_mlp: MLP
    def __init__(self, input: _Optional[str] = ..., attn_mlp: _Optional[_Union[MLP, _Mapping]] = ...) -> None: ...

class MultiTower(_message.Message):
    __slots__ = ("towers", "final")
    TOWERS_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    towers: _containers.RepeatedCompositeFieldContainer[Tower]
    final: MLP
    def __init__(self, towers: _Optional[_Iterable[_Union[Tower, _Mapping]]] = ..., final: _Optional[_Union[MLP, _Mapping]] = ...) -> None: ...

class MultiTowerDIN(_message.Message):
    __slots__ = ("towers", "din_towers", "final")
    TOWERS_FIELD_NUMBER: _ClassVar[int]
    DIN_TOWERS_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    towers: _containers.RepeatedCompositeFieldContainer[Tower]
    din_towers: _containers.RepeatedCompositeFieldContainer[DINTower]
    final: MLP
    def __init__(self, towers: _Optional[_Iterable[_Union[Tower, _Mapping]]] = ..., din_towers: _Optional[_Iterable[_Union[DINTower, _Mapping]]] = ..., final: _Optional[_Union[MLP, _Mapping]] = ...) -> None: ...

class BinaryCrossEntropy(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LossConfig(_message.Message):
    __slots__ = ("binary_cross_entropy",)
    BINARY_CROSS_ENTROPY_FIELD_NUMBER: _ClassVar[int]
    binary_cross_entropy: BinaryCrossEntropy
    def __init__(self, binary_cross_entropy: _Optional[_Union[BinaryCrossEntropy, _Mapping]] = ...) -> None: ...

class AUC(_message.Message):
    __slots__ = ("thresholds",)
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    thresholds: int
    def __init__(self, thresholds: _Optional[int] = ...) -> None: ...

class GroupedAUC(_message.Message):
    __slots__ = ("grouping_key",)
    GROUPING_KEY_FIELD_NUMBER: _ClassVar[int]
    grouping_key: str
    def __init__(self, grouping_key: _Optional[str] = ...) -> None: ...

class MetricConfig(_message.Message):
    __slots__ = ("auc", "grouped_auc")
    AUC_FIELD_NUMBER: _ClassVar[int]
    GROUPED_AUC_FIELD_NUMBER: _ClassVar[int]
    auc: AUC
    grouped_auc: GroupedAUC
    def __init__(self, auc: _Optional[_Union[AUC, _Mapping]] = ..., grouped_auc: _Optional[_Union[GroupedAUC, _Mapping]] = ...) -> None: ...

class ModelConfig(_message.Message):
    __slots__ = ("feature_groups", "multi_tower", "multi_tower_din", "num_class", "losses", "metrics")
    FEATURE_GROUPS_FIELD_NUMBER: _ClassVar[int]
    MULTI_TOWER_FIELD_NUMBER: _ClassVar[int]
    MULTI_TOWER_DIN_FIELD_NUMBER: _ClassVar[int]
    NUM_CLASS_FIELD_NUMBER: _ClassVar[int]
    LOSSES_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    feature_groups: _containers.RepeatedCompositeFieldContainer[FeatureGroupConfig]
    multi_tower: MultiTower
    multi_tower_din: MultiTowerDIN
    num_class: int
    losses: _containers.RepeatedCompositeFieldContainer[LossConfig]
    metrics: _containers.RepeatedCompositeFieldContainer[MetricConfig]
    def __init__(self, feature_groups: _Optional[_Iterable[_Union[FeatureGroupConfig, _Mapping]]] = ..., multi_tower: _Optional[_Union[MultiTower, _Mapping]] = ..., multi_tower_din: _Optional[_Union[MultiTowerDIN, _Mapping]] = ..., num_class: _Optional[int] = ..., losses: _Optional[_Iterable[_Union[LossConfig, _Mapping]]] = ..., metrics: _Optional[_Iterable[_Union[MetricConfig, _Mapping]]] = ...) -> None: ...
