"""Embedding quantization with TorchRec's quantized embedding modules.

Pooled tables (EmbeddingBagCollection) and sequence tables
(EmbeddingCollection) are quantized separately, each to FP32 (unchanged),
FP16, INT8, INT4 or INT2.
"""

import torch
from torch import nn
from torchrec import EmbeddingBagCollection, EmbeddingCollection
from torchrec.inference.modules import quantize_embeddings
from torchrec.quant.embedding_modules import (
    EmbeddingCollection as QuantEmbeddingCollection,
)
from torchrec.quant.embedding_modules import quant_prep_customize_row_alignment

_DTYPES = {
    "FP16": torch.float16,
    "INT8": torch.qint8,
    "INT4": torch.quint4x2,
    "INT2": torch.quint2x4,
}

# NOTE: TorchRec pads quantized rows to 16 bytes by default, which makes a
# 16-wide INT8 row (16 bytes + 4 of scale and bias) as big as 32 and the table
# half its FP32 size. The CPU kernels accept 4-byte alignment: 20 bytes a row.
ROW_ALIGNMENT = 4

# Largest |prob difference| accepted between checkpoint and artifact, per mode.
PROB_TOLERANCE = {"FP32": 1e-5, "FP16": 5e-3, "INT8": 3e-2, "INT4": 1e-1, "INT2": 3e-1}


def quantize_model(model: nn.Module, pooled_mode: str, sequence_mode: str) -> nn.Module:
    """Quantize `model`'s embedding collections in place and return it."""
    quant_prep_customize_row_alignment(
        model, [EmbeddingBagCollection, EmbeddingCollection], ROW_ALIGNMENT
    )
    if pooled_mode != "FP32":
        quantize_embeddings(model, dtype=_DTYPES[pooled_mode], inplace=True)
    if sequence_mode != "FP32":
        _quantize_sequence_tables(model, _DTYPES[sequence_mode])
    return model


def _quantize_sequence_tables(model: nn.Module, dtype: torch.dtype) -> None:
    # NOTE: quantize_embeddings always converts EmbeddingBagCollections too;
    # run it on a holder of each EmbeddingCollection alone, so FP32 pooled
    # tables stay FP32 when only the sequence tables are quantized.
    targets = [
        (name, module)
        for name, module in model.named_modules()
        if type(module) is EmbeddingCollection
    ]
    for name, module in targets:
        holder = nn.Module()
        holder.tables = module
        quantize_embeddings(
            holder,
            dtype=dtype,
            inplace=True,
            additional_qconfig_spec_keys=[EmbeddingCollection],
            additional_mapping={EmbeddingCollection: QuantEmbeddingCollection},
        )
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, holder.tables)


def tolerance(pooled_mode: str, sequence_mode: str) -> float:
    """The looser tolerance of the two modes."""
    return max(PROB_TOLERANCE[pooled_mode], PROB_TOLERANCE[sequence_mode])
