from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SgdOptimizer(_message.Message):
    __slots__ = ("lr",)
    LR_FIELD_NUMBER: _ClassVar[int]
    lr: float
    def __init__(self, lr: _Optional[float] = ...) -> None: ...

class AdagradOptimizer(_message.Message):
    __slots__ = ("lr", "initial_accumulator_value")
    LR_FIELD_NUMBER: _ClassVar[int]
    INITIAL_ACCUMULATOR_VALUE_FIELD_NUMBER: _ClassVar[int]
    lr: float
    initial_accumulator_value: float
    def __init__(self, lr: _Optional[float] = ..., initial_accumulator_value: _Optional[float] = ...) -> None: ...

class AdamOptimizer(_message.Message):
    __slots__ = ("lr", "beta1", "beta2", "weight_decay")
    LR_FIELD_NUMBER: _ClassVar[int]
    BETA1_FIELD_NUMBER: _ClassVar[int]
    BETA2_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_DECAY_FIELD_NUMBER: _ClassVar[int]
    lr: float
    beta1: float
    beta2: float
    weight_decay: float
    def __init__(self, lr: _Optional[float] = ..., beta1: _Optional[float] = ..., beta2: _Optional[float] = ..., weight_decay: _Optional[float] = ...) -> None: ...

class ConstantLR(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SparseOptimizer(_message.Message):
    __slots__ = ("sgd_optimizer", "adagrad_optimizer", "adam_optimizer", "constant_learning_rate")
    SGD_OPTIMIZER_FIELD_NUMBER: _ClassVar[int]
    ADAGRAD_OPTIMIZER_FIELD_NUMBER: _ClassVar[int]
    ADAM_OPTIMIZER_FIELD_NUMBER: _ClassVar[int]
    CONSTANT_LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    sgd_optimizer: SgdOptimizer
    adagrad_optimizer: AdagradOptimizer
    adam_optimizer: AdamOptimizer
    constant_learning_rate: ConstantLR
    def __init__(self, sgd_optimizer: _Optional[_Union[SgdOptimizer, _Mapping]] = ..., adagrad_optimizer: _Optional[_Union[AdagradOptimizer, _Mapping]] = ..., adam_optimizer: _Optional[_Union[AdamOptimizer, _Mapping]] = ..., constant_learning_rate: _Optional[_Union[ConstantLR, _Mapping]] = ...) -> None: ...

class DenseOptimizer(_message.Message):
    __slots__ = ("sgd_optimizer", "adagrad_optimizer", "adam_optimizer", "constant_learning_rate")
    SGD_OPTIMIZER_FIELD_NUMBER: _ClassVar[int]
    ADAGRAD_OPTIMIZER_FIELD_NUMBER: _ClassVar[int]
    ADAM_OPTIMIZER_FIELD_NUMBER: _ClassVar[int]
    CONSTANT_LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    sgd_optimizer: SgdOptimizer
    adagrad_optimizer: AdagradOptimizer
    adam_optimizer: AdamOptimizer
    constant_learning_rate: ConstantLR
    def __init__(self, sgd_optimizer: _Optional[_Union[SgdOptimizer, _Mapping]] = ..., adagrad_optimizer: _Optional[_Union[AdagradOptimizer, _Mapping]] = ..., adam_optimizer: _Optional[_Union[AdamOptimizer, _Mapping]] = ..., constant_learning_rate: _Optional[_Union[ConstantLR, _Mapping]] = ...) -> None: ...

class TrainConfig(_message.Message):
    __slots__ = ("sparse_optimizer", "dense_optimizer", "num_steps", "num_epochs", "save_checkpoints_steps", "save_checkpoints_epochs", "log_step_count_steps", "keep_checkpoint_max")
    SPARSE_OPTIMIZER_FIELD_NUMBER: _ClassVar[int]
    DENSE_OPTIMIZER_FIELD_NUMBER: _ClassVar[int]
    NUM_STEPS_FIELD_NUMBER: _ClassVar[int]
    NUM_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    SAVE_CHECKPOINTS_STEPS_FIELD_NUMBER: _ClassVar[int]
    SAVE_CHECKPOINTS_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    LOG_STEP_COUNT_STEPS_FIELD_NUMBER: _ClassVar[int]
    KEEP_CHECKPOINT_MAX_FIELD_NUMBER: _ClassVar[int]
    sparse_optimizer: SparseOptimizer
    dense_optimizer: DenseOptimizer
    num_steps: int
    num_epochs: int
    save_checkpoints_steps: int
    save_checkpoints_epochs: int
    log_step_count_steps: int
    keep_checkpoint_max: int
    def __init__(self, sparse_optimizer: _Optional[_Union[SparseOptimizer, _Mapping]] = ..., dense_optimizer: _Optional[_Union[DenseOptimizer, _Mapping]] = ..., num_steps: _Optional[int] = ..., num_epochs: _Optional[int] = ..., save_checkpoints_steps: _Optional[int] = ..., save_checkpoints_epochs: _Optional[int] = ..., log_step_count_steps: _Optional[int] = ..., keep_checkpoint_max: _Optional[int] = ...) -> None: ...

class EvalConfig(_message.Message):
    __slots__ = ("num_steps",)
    NUM_STEPS_FIELD_NUMBER: _ClassVar[int]
    num_steps: int
    def __init__(self, num_steps: _Optional[int] = ...) -> None: ...

class ExportConfig(_message.Message):
    __slots__ = ("exporter_type", "best_exporter_metric", "metric_larger_is_better")
    EXPORTER_TYPE_FIELD_NUMBER: _ClassVar[int]
    BEST_EXPORTER_METRIC_FIELD_NUMBER: _ClassVar[int]
    METRIC_LARGER_IS_BETTER_FIELD_NUMBER: _ClassVar[int]
    exporter_type: str
    best_exporter_metric: str
    metric_larger_is_better: bool
    def __init__(self, exporter_type: _Optional[str] = ..., best_exporter_metric: _Optional[str] = ..., metric_larger_is_better: _Optional[bool] = ...) -> None: ...
