"""Segmentation metrics from one binary confusion matrix, plus AUC-ROC (numpy only).

Protocol: threshold the vessel probability, count pixels inside the FOV mask, and derive every
score from the confusion matrix. ``pooled`` sums the matrices of all images before deriving the
scores (micro); ``per_image_mean`` derives scores per image and averages them (macro-imagewise).
"""

from __future__ import annotations

import numpy as np

SCORE_NAMES = ("miou", "iou_vessel", "iou_background", "f1", "accuracy", "sensitivity", "specificity")


def _safe_div(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")


def scores_from_counts(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """MIoU (mean of vessel and background IoU), F1, accuracy, sensitivity, specificity."""
    iou_v = _safe_div(tp, tp + fp + fn)
    iou_b = _safe_div(tn, tn + fn + fp)
    return {
        "miou": (iou_v + iou_b) / 2.0,
        "iou_vessel": iou_v,
        "iou_background": iou_b,
        "f1": _safe_div(2 * tp, 2 * tp + fp + fn),
        "accuracy": _safe_div(tp + tn, tp + fp + fn + tn),
        "sensitivity": _safe_div(tp, tp + fn),
        "specificity": _safe_div(tn, tn + fp),
    }


class ConfusionMatrix:
    """Binary confusion matrix (background=0, vessel=1) accumulated over images."""

    def __init__(self) -> None:
        self.counts = np.zeros((2, 2), dtype=np.int64)  # [truth, prediction]

    def update(self, truth: np.ndarray, prediction: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Add boolean ``truth`` and ``prediction`` maps, counted only where ``mask`` is true."""
        t = np.asarray(truth, dtype=bool)
        p = np.asarray(prediction, dtype=bool)
        if t.shape != p.shape:
            raise ValueError(f"truth {t.shape} and prediction {p.shape} differ in shape")
        if mask is not None:
            m = np.asarray(mask, dtype=bool)
            if m.shape != t.shape:
                raise ValueError(f"mask {m.shape} and truth {t.shape} differ in shape")
            t, p = t[m], p[m]
        idx = t.astype(np.int64).ravel() * 2 + p.astype(np.int64).ravel()
        self.counts += np.bincount(idx, minlength=4).reshape(2, 2)

    @property
    def tp(self) -> int:
        return int(self.counts[1, 1])

    def compute(self) -> dict[str, float]:
        """All scores of :func:`scores_from_counts` for the accumulated counts."""
        (tn, fp), (fn, tp) = self.counts.tolist()
        return scores_from_counts(tp, fp, fn, tn)


def auc_roc(truth: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (exact, ties averaged) from boolean truth and float scores."""
    t = np.asarray(truth, dtype=bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    n_pos = int(t.sum())
    n_neg = t.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    sorted_scores = s[order]
    ranks = np.empty(s.size, dtype=np.float64)
    # average ranks over ties (1-based)
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[t].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def threshold_sweep(truth: np.ndarray, score: np.ndarray, thresholds: np.ndarray) -> list[dict[str, float]]:
    """Pooled scores of ``score >= t`` against ``truth`` for each threshold ``t`` (one sort, exact counts)."""
    t = np.asarray(truth, dtype=bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    vessel, background = np.sort(s[t]), np.sort(s[~t])
    rows = []
    for threshold in np.asarray(thresholds, dtype=np.float64):
        tp = vessel.size - int(np.searchsorted(vessel, threshold, side="left"))
        fp = background.size - int(np.searchsorted(background, threshold, side="left"))
        rows.append(
            {"threshold": float(threshold), **scores_from_counts(tp, fp, vessel.size - tp, background.size - fp)}
        )
    return rows


def choose_threshold(sweep: list[dict[str, float]], score: str = "miou") -> dict[str, float]:
    """The row of a :func:`threshold_sweep` with the highest ``score`` (the lowest threshold on ties)."""
    return max(sweep, key=lambda row: (row[score], -row["threshold"]))


class SegmentationEvaluator:
    """Scores a split: pooled confusion matrix, per-image scores, pooled AUC (FOV or whole image)."""

    def __init__(self, threshold: float = 0.5, use_fov: bool = True) -> None:
        self.threshold = threshold
        self.use_fov = use_fov
        self.pooled = ConfusionMatrix()
        self.per_image: dict[str, dict[str, float]] = {}
        self._truths: list[np.ndarray] = []
        self._scores: list[np.ndarray] = []

    def add(self, name: str, probability: np.ndarray, truth: np.ndarray, fov: np.ndarray | None) -> dict[str, float]:
        """Score one image and add it to the pooled totals; returns the image's scores."""
        mask = fov if (self.use_fov and fov is not None) else np.ones(truth.shape, dtype=bool)
        cm = ConfusionMatrix()
        cm.update(truth, probability >= self.threshold, mask)
        self.pooled.counts += cm.counts
        truth_in, prob_in = np.asarray(truth, bool)[mask], probability[mask].astype(np.float32)
        scores = cm.compute() | {"auc": auc_roc(truth_in, prob_in)}
        self.per_image[name] = scores
        self._truths.append(truth_in)
        self._scores.append(prob_in)
        return scores

    def sweep(self, thresholds: np.ndarray) -> list[dict[str, float]]:
        """Pooled scores of every added image at each of ``thresholds`` (see :func:`threshold_sweep`)."""
        return threshold_sweep(np.concatenate(self._truths), np.concatenate(self._scores), thresholds)

    def summary(self) -> dict:
        """``{"pooled": ..., "per_image_mean": ..., "per_image": ...}``."""
        pooled = self.pooled.compute()
        if self._truths:
            pooled["auc"] = auc_roc(np.concatenate(self._truths), np.concatenate(self._scores))
        keys = [*list(SCORE_NAMES), "auc"]
        mean = {k: float(np.nanmean([s[k] for s in self.per_image.values()])) for k in keys} if self.per_image else {}
        return {
            "region": "fov" if self.use_fov else "whole_image",
            "threshold": self.threshold,
            "pooled": pooled,
            "per_image_mean": mean,
            "per_image": self.per_image,
            "confusion_matrix": {"tn_fp_fn_tp": self.pooled.counts.ravel().tolist()},
        }
