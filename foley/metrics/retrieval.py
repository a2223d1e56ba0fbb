"""Cross-modal retrieval and sounding-action discovery (SoundingActions' evaluation).

Embeddings are ``(n, D)`` L2-normalised arrays whose row ``i`` is clip ``i`` in every modality.

- R@k, video->audio: for each clip's video, is its own audio among the ``k`` most similar audio
  embeddings of the set? (audio->video symmetric.)  Ties count against the query.
- Sounding-action discovery: a per-clip score (audio-video cosine, or MC3's consensus, the
  minimum of the three pairwise cosines) should rank clips whose action makes a sound above
  silent ones; ROC-AUC against the metadata's ``positive`` column.
"""

from __future__ import annotations

import numpy as np

KS = (1, 5, 10)


def _as2d(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be (n, dim), got shape {x.shape}")
    return x


def recall_at_k(queries, gallery, ks: tuple[int, ...] = KS) -> dict[int, float]:
    """Fraction of queries whose own row of ``gallery`` ranks within the top ``k`` by cosine.

    ``queries``, ``gallery``: ``(n, D)``, row ``i`` of each is the same clip.
    """
    q, g = _as2d(queries), _as2d(gallery)
    if q.shape != g.shape:
        raise ValueError(f"queries {q.shape} and gallery {g.shape} must be the same shape")
    sims = q @ g.T  # (n, n)
    own = np.diag(sims)[:, None]
    # rank = number of gallery items strictly better, plus ties other than itself
    better = (sims > own).sum(1) + ((sims == own).sum(1) - 1)
    return {k: float(np.mean(better < k)) for k in ks}


def cross_modal_recall(video, audio, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """``{"v2a_R@1": ..., "a2v_R@1": ...}`` for video->audio and audio->video retrieval."""
    v2a = recall_at_k(video, audio, ks)
    a2v = recall_at_k(audio, video, ks)
    out = {f"v2a_R@{k}": v2a[k] for k in ks}
    out.update({f"a2v_R@{k}": a2v[k] for k in ks})
    return out


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half); NaN without both classes."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel() > 0.5
    if s.shape != y.shape:
        raise ValueError("scores and labels must have the same length")
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty_like(s)
    sorted_s = s[order]
    # average ranks over ties (1-based)
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    u = ranks[y].sum() - pos * (pos + 1) / 2.0
    return float(u / (pos * neg))


def sounding_action_auc(audio, video, positive, text=None) -> dict[str, float]:
    """ROC-AUC of sounding-action discovery.

    ``"auc_av"`` scores a clip by its audio-video cosine; with ``text``, ``"auc_consensus"``
    scores it by the minimum of its three pairwise cosines (MC3's consensus).
    """
    a, v = _as2d(audio), _as2d(video)
    av = (a * v).sum(1)
    out = {"auc_av": roc_auc(av, positive)}
    if text is not None:
        t = _as2d(text)
        consensus = np.minimum(av, np.minimum((a * t).sum(1), (v * t).sum(1)))
        out["auc_consensus"] = roc_auc(consensus, positive)
    return out
