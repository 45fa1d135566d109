"""Evaluation metrics: AUC and grouped AUC (GAUC)."""

import numpy as np
import torch
from torchmetrics.functional.classification import binary_auroc

from recship.config.protos import model_pb2


def compute_auc(probs: np.ndarray, labels: np.ndarray) -> float:
    """Exact ROC AUC of `probs` [N] against 0/1 `labels` [N]."""
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(binary_auroc(torch.from_numpy(probs), torch.from_numpy(labels).long()))


def compute_grouped_auc(
    probs: np.ndarray, labels: np.ndarray, groups: np.ndarray
) -> float:
    """AUC per group, averaged with each group's row count as weight.

    Groups whose labels are all equal have no AUC and are left out.
    """
    order = np.argsort(groups, kind="stable")
    groups, probs, labels = groups[order], probs[order], labels[order]
    boundaries = np.flatnonzero(groups[1:] != groups[:-1]) + 1
    total, weight = 0.0, 0
    for start, end in zip(
        np.concatenate([[0], boundaries]),
        np.concatenate([boundaries, [len(groups)]]),
        strict=True,
    ):
        group_labels = labels[start:end]
        if group_labels.min() == group_labels.max():
            continue
        total += compute_auc(probs[start:end], group_labels) * (end - start)
        weight += end - start
    return total / weight if weight else float("nan")


def compute_metrics(
    metric_configs: list[model_pb2.MetricConfig],
    probs: np.ndarray,
    labels: np.ndarray,
    columns: dict[str, np.ndarray],
) -> dict[str, float]:
    """Every configured metric, named as in TorchEasyRec (auc, grouped_auc)."""
    results: dict[str, float] = {}
    for config in metric_configs or [model_pb2.MetricConfig(auc=model_pb2.AUC())]:
        kind = config.WhichOneof("metric")
        if kind == "auc":
            results["auc"] = compute_auc(probs, labels)
        elif kind == "grouped_auc":
            key = config.grouped_auc.grouping_key
            results["grouped_auc"] = compute_grouped_auc(probs, labels, columns[key])
    return results
