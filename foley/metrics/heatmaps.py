"""Dense localisation scores of heatmaps against masks (DenseAV's protocol).

``pixel_ap``: average precision of the pixel scores against the mask pixels, pooled over frames;
``best_iou``: IoU of the thresholded heatmaps, pooled, at the best of ``thresholds``.
"""

from __future__ import annotations

import numpy as np

THRESHOLDS = np.linspace(0.0, 1.0, 21)


def pixel_ap(scores: np.ndarray, masks: np.ndarray) -> float:
    """AP of ``scores`` (any shape, higher = more likely) for the bool ``masks`` (same shape);
    nan without positives. Ties count as one block (as scikit-learn's)."""
    s, y = np.asarray(scores, np.float64).ravel(), np.asarray(masks, bool).ravel()
    if not y.any():
        return float("nan")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # end of each tie block
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall_gain = np.diff(np.r_[0, tp]) / y.sum()
    return float((precision * recall_gain).sum())


def best_iou(heatmaps: np.ndarray, masks: np.ndarray, thresholds=THRESHOLDS) -> float:
    """Max over ``thresholds`` of the pooled IoU of ``heatmaps >= t`` (values in [0, 1])."""
    h, y = np.asarray(heatmaps, np.float32), np.asarray(masks, bool)
    best = 0.0
    for t in thresholds:
        pred = h >= t
        union = np.logical_or(pred, y).sum()
        if union:
            best = max(best, float(np.logical_and(pred, y).sum() / union))
    return best
