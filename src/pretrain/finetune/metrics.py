"""A classifier's scores and losses: metrics through scikit-learn, losses chosen by name.

Metrics: accuracy, macro-averaged precision, recall and F1 (every class counts the same,
however rare: the figure an imbalanced set needs), each class's own, and the confusion matrix
(scikit-learn's ``precision_recall_fscore_support`` and ``confusion_matrix``; a class never
predicted, or never present, scores 0 rather than raising: ``zero_division=0``).

Losses (``LOSSES``), each ``(logits, target, weight, gamma) -> scalar``:

- ``cross_entropy``: plain cross-entropy, every example alike;
- ``weighted_cross_entropy``: cross-entropy with per-class weights (``class_weights``, the
  "balanced" weights of scikit-learn's ``compute_class_weight``), so that a rare class costs as
  much in all as a common one;
- ``focal``: the focal loss of Lin et al. 2017 ("Focal Loss for Dense Object Detection",
  eq. 5: FL(p_t) = -alpha_t (1 - p_t)^gamma log p_t), which down-weights examples the model
  already gets right; alpha_t is the class weight of the target (None: 1). The paper's
  gamma = 2 worked best for it (Table 1a); gamma = 0 is (weighted) cross-entropy.

Weighted means are torch's: sum(w_t * loss_t) / sum(w_t) over the batch
(``torch.nn.functional.cross_entropy`` with ``weight`` and ``reduction="mean"``), so a batch's
loss does not grow with how many rare examples it holds. The paper normalises by the number of
positive anchors instead, which has no meaning for one label per text.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from pretrain.errors import DataError

__all__ = ["classification_metrics", "class_weights", "focal_loss", "LOSSES", "WEIGHTED_LOSSES"]

DIGITS = 4
"""Decimal places of every reported score."""


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, names: list[str]) -> dict:
    """Scores of predictions against the truth, as JSON values.

    ``y_true``, ``y_pred``: (N,) integer class indices into ``names`` (N >= 1). Returns
    ``accuracy``, ``precision_macro``, ``recall_macro``, ``f1_macro``, ``per_class`` (label name
    -> ``precision``, ``recall``, ``f1``, ``support``) and ``confusion_matrix`` (rows: true
    class, columns: predicted class, both in the order of ``names``), floats rounded to 4
    places. Raises ValueError for arrays of other shapes, or indices outside ``names``.
    """
    y_true, y_pred = _check_indices(y_true, y_pred, len(names))
    labels = list(range(len(names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0)
    macro = precision_recall_fscore_support(y_true, y_pred, labels=labels, average="macro",
                                            zero_division=0)
    per_class = {name: {"precision": _round(precision[i]), "recall": _round(recall[i]),
                        "f1": _round(f1[i]), "support": int(support[i])}
                 for i, name in enumerate(names)}
    return {"accuracy": _round(accuracy_score(y_true, y_pred)),
            "precision_macro": _round(macro[0]), "recall_macro": _round(macro[1]),
            "f1_macro": _round(macro[2]), "per_class": per_class,
            "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist()}


def _check_indices(y_true: np.ndarray, y_pred: np.ndarray,
                   n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim != 1 or y_true.shape != y_pred.shape or not y_true.size:
        raise ValueError(f"classification_metrics: expected two (N,) arrays, N >= 1, got "
                         f"{y_true.shape} and {y_pred.shape}")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= n_classes:
            raise ValueError(f"classification_metrics: {name} must hold class indices in "
                             f"[0, {n_classes}), got {y.dtype} from {y.min()} to {y.max()}")
    return y_true, y_pred


def _round(value: float) -> float:
    return round(float(value), DIGITS)


def class_weights(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """(n_classes,) float32 weights, inverse to each class's frequency in ``labels`` ((N,)
    class indices, the training split): n / (k * count_c), scikit-learn's "balanced" formula
    (``sklearn.utils.class_weight.compute_class_weight``, after King & Zeng 2001), so that the
    weighted examples of every class add up to the same total, n / k.

    Raises DataError for a class with no example (its weight would be infinite: a class absent
    from training cannot be learnt, and pretrain.finetune.labels.stratified_split keeps one of
    each in train), ValueError for labels outside [0, n_classes).
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not labels.size or labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"class_weights: expected (N,) class indices in [0, {n_classes}), "
                         f"N >= 1, got shape {labels.shape}")
    counts = np.bincount(labels, minlength=n_classes)
    absent = np.flatnonzero(counts == 0)
    if absent.size:
        raise DataError(f"finetune: class {int(absent[0])} has no training example; its weight "
                        f"n / (k * 0) is undefined")
    return torch.tensor(labels.size / (n_classes * counts), dtype=torch.float32)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float,
               weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean focal loss (module docstring) of ``logits`` (B, C) float for ``target`` (B,) int64
    class indices; ``weight`` (C,) per-class alpha, or None. A scalar tensor of the logits'
    dtype, computed in float32 at least (log-softmax of bf16 logits loses the small p_t).
    gamma = 0 equals ``F.cross_entropy(logits, target, weight=weight)``. Raises ValueError for
    gamma < 0."""
    if gamma < 0:
        raise ValueError(f"focal_loss: gamma must be >= 0, got {gamma}")
    log_p = F.log_softmax(logits.float(), dim=-1).gather(1, target.unsqueeze(1)).squeeze(1)
    loss = -((1 - log_p.exp()) ** gamma) * log_p  # (B,); 0 ** 0 == 1 in torch, as in maths
    if weight is None:
        return loss.mean().to(logits.dtype)
    w = weight.to(loss.device, torch.float32)[target]
    return ((w * loss).sum() / w.sum()).to(logits.dtype)


def _cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None,
                   gamma: float) -> torch.Tensor:
    """Unweighted cross-entropy; ``weight`` must be None (a weight would be silently unused)."""
    if weight is not None:
        raise ValueError("cross_entropy takes no class weights: use weighted_cross_entropy")
    return F.cross_entropy(logits.float(), target).to(logits.dtype)


def _weighted_cross_entropy(logits: torch.Tensor, target: torch.Tensor,
                            weight: torch.Tensor | None, gamma: float) -> torch.Tensor:
    if weight is None:
        raise ValueError("weighted_cross_entropy needs class weights (class_weights)")
    return F.cross_entropy(logits.float(), target, weight=weight.float()).to(logits.dtype)


def _focal(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None,
           gamma: float) -> torch.Tensor:
    return focal_loss(logits, target, gamma, weight)


Loss = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None", float], torch.Tensor]
LOSSES: dict[str, Loss] = {
    "cross_entropy": _cross_entropy,
    "weighted_cross_entropy": _weighted_cross_entropy,
    "focal": _focal,
}
"""Loss by name: ``(logits (B, C), target (B,) int64, weight (C,) or None, gamma) -> scalar``."""
WEIGHTED_LOSSES = frozenset({"weighted_cross_entropy", "focal"})
"""The losses that take ``class_weights`` (pass None to the others)."""
