"""A classifier's metrics against hand-computed values, the balanced class weights, and the
losses chosen by name (focal with gamma 0 is cross-entropy, weighted as torch weights)."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pretrain.errors import DataError
from pretrain.finetune.metrics import (
    LOSSES,
    WEIGHTED_LOSSES,
    class_weights,
    classification_metrics,
    focal_loss,
)

# true:  a a a b b c
# pred:  a a b b c c
Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
Y_PRED = np.array([0, 0, 1, 1, 2, 2])


def test_metrics_equal_hand_computed_values():
    m = classification_metrics(Y_TRUE, Y_PRED, ["a", "b", "c"])
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["accuracy"] == 0.6667  # 4 of 6
    assert m["per_class"] == {
        "a": {"precision": 1.0, "recall": 0.6667, "f1": 0.8, "support": 3},
        "b": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2},
        "c": {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "support": 1},
    }
    assert m["precision_macro"] == 0.6667  # (1 + 0.5 + 0.5) / 3
    assert m["recall_macro"] == 0.7222  # (2/3 + 1/2 + 1) / 3
    assert m["f1_macro"] == 0.6556  # (0.8 + 0.5 + 2/3) / 3
    assert json.loads(json.dumps(m)) == m


def test_a_class_never_seen_scores_zero_and_counts_in_the_macro_average():
    m = classification_metrics(Y_TRUE, Y_PRED, ["a", "b", "c", "d"])
    assert m["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["precision_macro"] == 0.5  # (1 + 0.5 + 0.5 + 0) / 4
    assert m["confusion_matrix"][3] == [0, 0, 0, 0] and len(m["confusion_matrix"][0]) == 4


def test_metrics_reject_bad_arrays():
    with pytest.raises(ValueError, match=r"expected two \(N,\) arrays"):
        classification_metrics(Y_TRUE, Y_PRED[:3], ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"y_pred must hold class indices in \[0, 2\)"):
        classification_metrics(Y_TRUE.clip(0, 1), Y_PRED, ["a", "b"])


def test_class_weights_are_the_balanced_formula():
    labels = np.array([0, 0, 0, 1, 2, 2])
    weights = class_weights(labels, 3)
    assert weights.dtype == torch.float32
    assert weights.tolist() == pytest.approx([6 / (3 * 3), 6 / (3 * 1), 6 / (3 * 2)])
    from sklearn.utils.class_weight import compute_class_weight

    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    assert weights.numpy() == pytest.approx(expected)
    assert float((weights[torch.from_numpy(labels)]).sum()) == pytest.approx(len(labels))


def test_class_weights_refuse_an_absent_class():
    with pytest.raises(DataError, match="class 1 has no training example"):
        class_weights(np.array([0, 0, 2]), 3)


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 4, generator=generator)
    target = torch.randint(0, 4, (16,), generator=generator)
    weight = torch.tensor([0.5, 1.0, 2.0, 4.0])
    return logits, target, weight


def test_focal_with_gamma_zero_is_cross_entropy(batch):
    logits, target, weight = batch
    assert focal_loss(logits, target, 0.0) == pytest.approx(float(F.cross_entropy(logits, target)))
    weighted = F.cross_entropy(logits, target, weight=weight)
    focal = focal_loss(logits, target, 0.0, weight)
    assert float(focal) == pytest.approx(float(weighted), rel=1e-6)


def test_focal_equals_the_paper_formula_on_one_example():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # p = (1/4, 3/4)
    loss = focal_loss(logits, torch.tensor([0]), 2.0)
    assert float(loss) == pytest.approx((3 / 4) ** 2 * math.log(4))
    alpha = torch.tensor([0.25, 1.0])
    two = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])
    mixed = focal_loss(two, torch.tensor([0, 1]), 2.0, alpha)
    per = [(3 / 4) ** 2 * math.log(4), (1 / 4) ** 2 * math.log(4 / 3)]
    assert float(mixed) == pytest.approx((0.25 * per[0] + 1.0 * per[1]) / 1.25)


def test_focal_down_weights_easy_examples_and_backpropagates(batch):
    logits, target, _ = batch
    logits = logits.clone().requires_grad_()
    loss = focal_loss(logits, target, 2.0)
    assert loss.item() < F.cross_entropy(logits.detach(), target).item()
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        focal_loss(logits, target, -1.0)


def test_losses_by_name(batch):
    logits, target, weight = batch
    assert set(LOSSES) == {"cross_entropy", "weighted_cross_entropy", "focal"}
    assert WEIGHTED_LOSSES <= set(LOSSES)
    ce = LOSSES["cross_entropy"](logits, target, None, 2.0)
    assert float(ce) == pytest.approx(float(F.cross_entropy(logits, target)))
    wce = LOSSES["weighted_cross_entropy"](logits, target, weight, 2.0)
    assert float(wce) == pytest.approx(float(F.cross_entropy(logits, target, weight=weight)))
    focal = LOSSES["focal"](logits, target, weight, 2.0)
    assert float(focal) == pytest.approx(float(focal_loss(logits, target, 2.0, weight)))
    with pytest.raises(ValueError, match="takes no class weights"):
        LOSSES["cross_entropy"](logits, target, weight, 0.0)
    with pytest.raises(ValueError, match="needs class weights"):
        LOSSES["weighted_cross_entropy"](logits, target, None, 0.0)


def test_losses_keep_the_logits_dtype():
    logits = torch.randn(4, 3, dtype=torch.bfloat16)
    target = torch.tensor([0, 1, 2, 0])
    for name in LOSSES:
        weight = torch.ones(3) if name in WEIGHTED_LOSSES else None
        assert LOSSES[name](logits, target, weight, 2.0).dtype == torch.bfloat16
