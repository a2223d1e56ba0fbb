"""Pixel AP and best IoU of heatmaps."""

from __future__ import annotations

import numpy as np

from foley.metrics.heatmaps import best_iou, pixel_ap


def test_pixel_ap_and_best_iou():
    rng = np.random.default_rng(0)
    masks = np.zeros((3, 8, 8), bool)
    masks[:, 2:5, 3:6] = True
    assert pixel_ap(masks.astype(float), masks) == 1.0
    assert best_iou(masks.astype(float), masks) == 1.0
    noise = rng.random(masks.shape)
    chance = pixel_ap(noise, masks)
    assert abs(chance - masks.mean()) < 0.1  # random scores: AP near the positive rate
    assert pixel_ap(-masks.astype(float), masks) == masks.mean()  # all tied at best
    # hand-worked: scores 0.9 (pos), 0.8 (neg), 0.7 (pos) -> AP = (1/1 + 2/3) / 2
    assert np.isclose(pixel_ap(np.array([0.9, 0.8, 0.7]), np.array([1, 0, 1])), 5 / 6)
    assert np.isnan(pixel_ap(noise, np.zeros_like(masks)))
