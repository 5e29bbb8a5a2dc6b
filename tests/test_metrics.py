"""Metrics against a 4x4 example worked by hand.

truth          scores (prediction = score >= 0.5)
1 1 0 0        .9 .8 .6 .1
1 0 0 0        .4 .7 .2 .1
0 0 1 1        .1 .3 .6 .4
0 0 0 0        .2 .1 .1 .3

TP = 3 (.9 .8 .6), FP = 2 (.6 .7), FN = 2 (.4 .4), TN = 9.
IoU vessel 3/7, background 9/13, MIoU 51/91; F1 6/10; accuracy 12/16; sensitivity 3/5; specificity 9/11.
AUC over 5 x 11 pairs: .9 and .8 beat all 11 negatives; .6 beats 9 and ties 1 (.6); each .4 beats
9 -> (11 + 11 + 9.5 + 9 + 9) / 55 = 0.9.
"""

from __future__ import annotations

import numpy as np
import pytest

from fundus_vessels.runtime.metrics import (
    ConfusionMatrix,
    SegmentationEvaluator,
    auc_roc,
    choose_threshold,
    threshold_sweep,
)

TRUTH = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]], dtype=bool)
SCORES = np.array(
    [[0.9, 0.8, 0.6, 0.1], [0.4, 0.7, 0.2, 0.1], [0.1, 0.3, 0.6, 0.4], [0.2, 0.1, 0.1, 0.3]], dtype=np.float32
)
EXPECTED = {
    "iou_vessel": 3 / 7,
    "iou_background": 9 / 13,
    "miou": 51 / 91,
    "f1": 0.6,
    "accuracy": 0.75,
    "sensitivity": 0.6,
    "specificity": 9 / 11,
}


def test_confusion_matrix_counts_and_scores() -> None:
    cm = ConfusionMatrix()
    cm.update(TRUTH, SCORES >= 0.5)
    assert cm.counts.tolist() == [[9, 2], [2, 3]]  # [truth][prediction]
    scores = cm.compute()
    for name, value in EXPECTED.items():
        assert scores[name] == pytest.approx(value, abs=1e-12), name


def test_auc_averages_ties() -> None:
    assert auc_roc(TRUTH, SCORES) == pytest.approx(0.9, abs=1e-12)


def test_fov_mask_excludes_pixels() -> None:
    fov = np.ones_like(TRUTH)
    fov[3] = False  # the last row holds 4 true negatives
    cm = ConfusionMatrix()
    cm.update(TRUTH, SCORES >= 0.5, fov)
    assert cm.counts.tolist() == [[5, 2], [2, 3]]


def test_evaluator_pools_over_images() -> None:
    evaluator = SegmentationEvaluator(threshold=0.5)
    evaluator.add("a", SCORES, TRUTH, None)
    evaluator.add("b", SCORES, TRUTH, None)
    summary = evaluator.summary()
    assert summary["confusion_matrix"]["tn_fp_fn_tp"] == [18, 4, 4, 6]
    assert summary["pooled"]["miou"] == pytest.approx(51 / 91)
    assert summary["pooled"]["auc"] == pytest.approx(0.9)


def test_threshold_sweep_matches_the_confusion_matrix_at_each_threshold() -> None:
    thresholds = np.array([0.35, 0.5, 0.65])
    rows = threshold_sweep(TRUTH, SCORES, thresholds)
    for row, threshold in zip(rows, thresholds, strict=True):
        cm = ConfusionMatrix()
        cm.update(TRUTH, threshold <= SCORES)
        assert row == pytest.approx(cm.compute() | {"threshold": threshold})
    # at 0.5: the hand-worked example above; at 0.35 the two .4 vessels join (TP 5, FP 2)
    assert rows[1]["miou"] == pytest.approx(EXPECTED["miou"])
    assert rows[0]["sensitivity"] == 1.0
    assert choose_threshold(rows)["threshold"] == 0.35
