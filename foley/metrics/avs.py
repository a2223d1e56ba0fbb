"""AVS metrics (AVSBench's J and F) and the audio-visual alignment score.

Definitions follow AVSBench (``avs_scripts/*/utils/utility.py``):

* **J** (``mask_iou``): per frame, IoU of ``prob > 0.5`` with the ground truth; a frame whose
  ground truth is empty is scored on the background (IoU of the two complements, i.e. the
  fraction of pixels predicted empty), as AVSBench does.  J is the mean over frames.
* **F** (``Eval_Fmeasure``): per frame with non-empty ground truth, precision and recall of
  ``prob >= th`` for 255 thresholds ``linspace(0, 1 - 1e-10, 255)``,
  ``F = (1 + b2) P R / (b2 P + R)`` with ``b2 = 0.3`` (NaN -> 0); the curves are averaged over
  frames and F is the maximum of the mean curve.  Frames with empty ground truth are left out.

Deliberate differences, both about batching: AVSBench averages J and F per test batch and then
over batches (so the last, smaller batch weighs as much as a full one, and F's max is taken per
batch); here J is the mean over all frames and F the max of the curve averaged over all frames,
so the figures do not depend on the batch size.  Predictions are probabilities (sigmoid
already applied) rather than logits.

Alignment score of a soundtrack for a video, with the AVS model as the judge:

* (a) with ground truth (:func:`alignment_with_ground_truth`): J of the masks the model draws
  from the soundtrack under test, beside J with the true audio (ceiling) and with the true audio
  shuffled in time (floor);
* (b) without ground truth, the app's case (:func:`alignment_score`): the rank of the given
  audio's mask evidence among mistimed copies of the same audio (circular shifts by default),
  so it scores timing; see its docstring and docs/BENCHMARKS.md for what it does and does not
  separate on FoleyWorld.
"""

from __future__ import annotations

import numpy as np
import torch

BETA2 = 0.3
NUM_THRESHOLDS = 255


def _as_tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def mask_iou(probs, gt, threshold: float = 0.5, eps: float = 1e-7) -> torch.Tensor:
    """Per-frame J: probs, gt (..., H, W) -> (...,); empty ground truth scored on background."""
    probs, gt = _as_tensor(probs).float(), _as_tensor(gt).bool()
    if probs.shape != gt.shape:
        raise ValueError(
            f"prediction {tuple(probs.shape)} and ground truth {tuple(gt.shape)} differ"
        )
    pred = probs > threshold
    inter = (pred & gt).sum((-1, -2)).float()
    union = (pred | gt).sum((-1, -2)).float()
    empty = gt.sum((-1, -2)) == 0
    bg_inter = (~pred & ~gt).sum((-1, -2)).float()
    num_pixels = gt.shape[-1] * gt.shape[-2]
    inter = torch.where(empty, bg_inter, inter)
    union = torch.where(empty, torch.full_like(union, num_pixels), union)
    return inter / (union + eps)


def f_curves(probs, gt, num_thresholds: int = NUM_THRESHOLDS) -> tuple[torch.Tensor, int]:
    """Sum over frames of the F-measure curve, and the number of frames counted.

    probs, gt (..., H, W); frames with empty ground truth are skipped.  Returns
    ``(sum_curve (num_thresholds,), count)`` so that batches can be accumulated.
    """
    probs, gt = _as_tensor(probs).float(), _as_tensor(gt).bool()
    probs = probs.reshape(-1, *probs.shape[-2:])
    gt = gt.reshape(-1, *gt.shape[-2:])
    keep = gt.flatten(1).any(1)
    probs, gt = probs[keep].flatten(1), gt[keep].flatten(1).float()  # (n, HW)
    th = torch.linspace(0, 1 - 1e-10, num_thresholds)
    total = torch.zeros(num_thresholds, dtype=torch.float64)
    for p, g in zip(probs, gt):
        pred = (p[None, :] >= th[:, None]).float()  # (num_thresholds, HW)
        tp = pred @ g
        prec = tp / (pred.sum(1) + 1e-20)
        rec = tp / (g.sum() + 1e-20)
        f = (1 + BETA2) * prec * rec / (BETA2 * prec + rec)
        total += torch.nan_to_num(f, nan=0.0).double()
    return total, int(keep.sum())


class AVSScores:
    """Accumulates J and F over batches: ``update(probs, gt)`` then ``compute()``."""

    def __init__(self, num_thresholds: int = NUM_THRESHOLDS) -> None:
        self.num_thresholds = num_thresholds
        self.iou_sum, self.frames = 0.0, 0
        self.obj_iou_sum, self.obj_frames = 0.0, 0
        self.f_sum = torch.zeros(num_thresholds, dtype=torch.float64)
        self.f_frames = 0

    def update(self, probs, gt) -> None:
        iou = mask_iou(probs, gt)
        self.iou_sum += float(iou.sum())
        self.frames += iou.numel()
        has_obj = _as_tensor(gt).bool().flatten(-2).any(-1)
        self.obj_iou_sum += float(iou[has_obj].sum())
        self.obj_frames += int(has_obj.sum())
        curve, n = f_curves(probs, gt, self.num_thresholds)
        self.f_sum += curve
        self.f_frames += n

    def compute(self) -> dict[str, float]:
        """``{"J", "F", "frames", "J_object", "J_empty", "object_frames"}``.

        J is the mean IoU over all frames (AVSBench); ``J_object`` and ``J_empty`` split it into
        frames with and without a sounding object; F is nan when no frame has an object.
        """
        nan = float("nan")
        j = self.iou_sum / self.frames if self.frames else nan
        f = float((self.f_sum / self.f_frames).max()) if self.f_frames else nan
        n_empty = self.frames - self.obj_frames
        return {
            "J": j,
            "F": f,
            "frames": self.frames,
            "J_object": self.obj_iou_sum / self.obj_frames if self.obj_frames else nan,
            "J_empty": (self.iou_sum - self.obj_iou_sum) / n_empty if n_empty else nan,
            "object_frames": self.obj_frames,
        }


def j_and_f(probs, gt) -> dict[str, float]:
    """J and F of one set of predictions, probs and gt (..., H, W)."""
    scores = AVSScores()
    scores.update(probs, gt)
    return scores.compute()


# ---- alignment score ---------------------------------------------------------------------
def shuffle_in_time(
    wave: torch.Tensor, block_samples: int, generator: torch.Generator
) -> torch.Tensor:
    """(batch, N) -> the same audio with blocks of ``block_samples`` permuted in time.

    The permutation is a random derangement-free shuffle drawn per call; a tail shorter than a
    block stays in place.  Keeps the sounds, breaks their timing.
    """
    n = wave.shape[-1]
    nb = n // block_samples
    if nb < 2:
        return wave.flip(-1)
    perm = torch.randperm(nb, generator=generator)
    while nb > 1 and bool((perm == torch.arange(nb)).all()):
        perm = torch.randperm(nb, generator=generator)
    body = wave[..., : nb * block_samples].reshape(*wave.shape[:-1], nb, block_samples)
    return torch.cat([body[..., perm, :].flatten(-2), wave[..., nb * block_samples :]], -1)


@torch.no_grad()
def predict_probs(
    model, frames: torch.Tensor, wave: torch.Tensor, prev_frames: torch.Tensor | None = None
) -> torch.Tensor:
    """Sigmoid of the AVS logits: frames (B, T, 3, H, W), wave (B, N) -> (B, T, H, W).

    prev_frames (B, T, 3, H, W): each frame's predecessor, for a ``frame_diff`` model given
    frames that are not consecutive (None: ``frames`` are consecutive at the video rate).
    """
    if prev_frames is None:
        return torch.sigmoid(model(frames, wave))
    return torch.sigmoid(model(frames, wave, prev_frames=prev_frames))


@torch.no_grad()
def alignment_with_ground_truth(
    model,
    frames: torch.Tensor,
    wave: torch.Tensor,
    true_wave: torch.Tensor,
    gt_masks: torch.Tensor,
    block_seconds: float = 0.5,
    seed: int = 0,
) -> dict[str, float]:
    """Score (a): J of AVS(frames, wave) vs the true masks, with ceiling and floor.

    frames (B, T, 3, H, W); wave, true_wave (B, N); gt_masks (B, T, H, W).  Returns
    ``{"J": ..., "J_true_audio": ceiling, "J_shuffled_audio": floor}``; the floor shuffles the
    true audio in blocks of ``block_seconds``.
    """
    gen = torch.Generator().manual_seed(seed)
    block = int(round(block_seconds * model.av.sample_rate))
    shuffled = shuffle_in_time(true_wave, block, gen)
    return {
        "J": float(mask_iou(predict_probs(model, frames, wave), gt_masks).mean()),
        "J_true_audio": float(mask_iou(predict_probs(model, frames, true_wave), gt_masks).mean()),
        "J_shuffled_audio": float(
            mask_iou(predict_probs(model, frames, shuffled), gt_masks).mean()
        ),
    }


def shift_in_time(wave: torch.Tensor, shift_samples: int) -> torch.Tensor:
    """(..., N) -> the same audio rotated by ``shift_samples`` (circularly, later in time).

    Keeps every sound and its shape, moves all of them by the same lag.
    """
    return torch.roll(wave, int(shift_samples), -1)


def reference_audios(
    wave: torch.Tensor,
    num: int,
    sample_rate: int,
    kind: str = "shift",
    min_shift_seconds: float = 0.5,
    block_seconds: float = 0.5,
    seed: int = 0,
) -> list[torch.Tensor]:
    """``num`` mistimed versions of ``wave`` (batch, N): the references of score (b).

    ``"shift"``: circular shifts by lags evenly spread over ``[min_shift, N - min_shift]``
    (every sound kept, all moved by one lag; what the AVS trainer's "shifted" negatives are);
    ``"shuffle"``: blocks of ``block_seconds`` permuted (:func:`shuffle_in_time`).
    """
    n = wave.shape[-1]
    if kind == "shuffle":
        gen = torch.Generator().manual_seed(seed)
        block = int(round(block_seconds * sample_rate))
        return [shuffle_in_time(wave, block, gen) for _ in range(num)]
    if kind != "shift":
        raise ValueError(f"reference kind must be 'shift' or 'shuffle', not {kind!r}")
    lo = min(int(round(min_shift_seconds * sample_rate)), n // 2)
    lags = np.linspace(lo, n - lo, num) if num > 1 else np.array([n / 2])
    return [shift_in_time(wave, int(round(lag))) for lag in lags]


def mask_evidence(probs: torch.Tensor, kind: str = "mean") -> torch.Tensor:
    """How strongly the model finds a sounding object: (B, T, H, W) probs -> (B,).

    ``"mean"``: the mean probability mass over frames and pixels; ``"peak"``: the mean over
    frames of each frame's largest probability (a per-frame "something sounds here" detector,
    blind to the object's size).
    """
    if kind == "mean":
        return probs.flatten(1).mean(1)
    if kind == "peak":
        return probs.flatten(2).amax(2).mean(1)
    raise ValueError(f"mask evidence must be 'mean' or 'peak', not {kind!r}")


@torch.no_grad()
def alignment_score(
    model,
    frames: torch.Tensor,
    wave: torch.Tensor,
    num_shuffles: int = 8,
    block_seconds: float = 0.5,
    seed: int = 0,
    tie: float = 1e-4,
    references: str = "shift",
    evidence: str = "mean",
    prev_frames: torch.Tensor | None = None,
) -> float | torch.Tensor:
    """Score (b), no ground truth: how much better the given audio's timing fits the pixels
    than the same audio mistimed, in [0, 1].

    frames (T, 3, H, W) or (B, T, 3, H, W); wave (N,) or (B, N).  The AVS model draws masks
    from the given audio and from ``num_shuffles`` mistimed references of it
    (:func:`reference_audios`: ``"shift"``, circular shifts by 0.5 s to N - 0.5 s, or
    ``"shuffle"``, blocks of ``block_seconds`` permuted); both keep the audio's sounds and
    break only their timing.  The score is the fraction of references whose mask evidence
    (:func:`mask_evidence`; ``"mean"`` probability mass by default, chosen on FoleyWorld val
    over ``"peak"``, docs/BENCHMARKS.md) the given audio beats (within ``tie``: half).
    0.5: the timing explains the pixels no better than a random lag (or the model finds
    nothing either way); 1: better than every reference.  Returns a float for one clip,
    ``(B,)`` for a batch.
    ``prev_frames`` (shaped as ``frames``): each frame's predecessor (:func:`predict_probs`).
    """
    single = frames.ndim == 4
    if single:
        frames, wave = frames[None], wave[None]
        prev_frames = None if prev_frames is None else prev_frames[None]
    given = mask_evidence(predict_probs(model, frames, wave, prev_frames), evidence)
    refs = reference_audios(
        wave,
        num_shuffles,
        model.av.sample_rate,
        references,
        block_seconds=block_seconds,
        seed=seed,
    )
    wins = torch.zeros_like(given)
    for ref in refs:
        e = mask_evidence(predict_probs(model, frames, ref, prev_frames), evidence)
        wins += (given > e + tie).float() + 0.5 * ((given - e).abs() <= tie).float()
    score = wins / len(refs)
    return float(score[0]) if single else score
