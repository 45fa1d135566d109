"""Sparse and dense optimizers from `train_config`.

Embedding tables get sparse gradients (only the rows a batch touches) and the
sparse optimizer; every other parameter gets the dense optimizer.
"""

import torch
from torch import nn

from recship.config.protos import train_pb2
from recship.errors import ConfigError


def enable_sparse_gradients(model: nn.Module) -> list[nn.Parameter]:
    """Switch TorchRec's embedding modules to sparse gradients; return their weights."""
    params = []
    for module in model.modules():
        if isinstance(module, nn.Embedding | nn.EmbeddingBag):
            module.sparse = True
            params.append(module.weight)
    return params


def _build(
    params: list[nn.Parameter], config, field: str, sparse: bool
) -> torch.optim.Optimizer:
    kind = config.WhichOneof("optimizer")
    if kind is None:
        raise ConfigError(
            f"train_config.{field}: set one optimizer, e.g. adam_optimizer"
        )
    options = getattr(config, kind)
    if kind == "sgd_optimizer":
        return torch.optim.SGD(params, lr=options.lr)
    if kind == "adagrad_optimizer":
        return torch.optim.Adagrad(
            params,
            lr=options.lr,
            initial_accumulator_value=options.initial_accumulator_value,
        )
    if sparse:
        return torch.optim.SparseAdam(
            params, lr=options.lr, betas=(options.beta1, options.beta2)
        )
    return torch.optim.Adam(
        params,
        lr=options.lr,
        betas=(options.beta1, options.beta2),
        weight_decay=options.weight_decay,
    )


def build_optimizers(
    model: nn.Module, train_config: train_pb2.TrainConfig
) -> dict[str, torch.optim.Optimizer]:
    """`{"sparse": ..., "dense": ...}` optimizers over the model's parameters."""
    sparse_params = enable_sparse_gradients(model)
    sparse_ids = {id(p) for p in sparse_params}
    dense_params = [p for p in model.parameters() if id(p) not in sparse_ids]

    sparse_config = train_config.sparse_optimizer
    if not train_config.HasField("sparse_optimizer"):
        sparse_config = train_pb2.SparseOptimizer(
            adagrad_optimizer=train_pb2.AdagradOptimizer()
        )
    dense_config = train_config.dense_optimizer
    if not train_config.HasField("dense_optimizer"):
        dense_config = train_pb2.DenseOptimizer(
            adam_optimizer=train_pb2.AdamOptimizer()
        )

    optimizers = {}
    if sparse_params:
        optimizers["sparse"] = _build(
            sparse_params, sparse_config, "sparse_optimizer", True
        )
    if dense_params:
        optimizers["dense"] = _build(
            dense_params, dense_config, "dense_optimizer", False
        )
    return optimizers
