"""MC3 training objectives: pairwise symmetric InfoNCE plus the SoundingActions consensus term.

Embeddings are ``(batch, dim)`` and L2-normalised; row ``i`` of every modality is the same clip.

Consensus (SoundingActions, "multimodal contrastive-consensus coding"): a clip's consensus is
the minimum of its three pairwise cosines (audio-video, audio-text, video-text).  Each pairwise
cosine is pushed toward that minimum (the minimum itself is a target, not pushed), so a pair stays
pulled together by the contrastive terms only when all three modalities agree; when one modality
disagrees (a visible, narrated action that makes no sound) the other pairs are drawn apart.  The
term is squared, so a triple that already agrees gets (near) zero gradient.  It is switched on
after ``warmup_epochs`` of contrastive-only training, as in the paper's two stages.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

PAIRS: dict[str, tuple[str, str]] = {
    "av": ("audio", "video"),
    "at": ("audio", "text"),
    "vt": ("video", "text"),
}


def info_nce(x: torch.Tensor, y: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """Symmetric InfoNCE between ``x`` and ``y`` ``(batch, dim)``: matching rows are positives."""
    logits = scale * x @ y.T  # (batch, batch)
    target = torch.arange(x.shape[0], device=x.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def pair_cosines(audio: torch.Tensor, video: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Per-clip cosines ``(batch, 3)``: columns audio-video, audio-text, video-text."""
    return torch.stack(
        [(audio * video).sum(-1), (audio * text).sum(-1), (video * text).sum(-1)], dim=-1
    )


def consensus_score(audio: torch.Tensor, video: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """A clip's consensus, ``(batch,)``: the minimum of its three pairwise cosines."""
    return pair_cosines(audio, video, text).amin(dim=-1)


def consensus_loss(audio: torch.Tensor, video: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Mean over clips of sum over pairs of ``(cos_pair - consensus)^2``, consensus detached."""
    sims = pair_cosines(audio, video, text)  # (batch, 3)
    target = sims.amin(dim=-1, keepdim=True).detach()
    return (sims - target).square().sum(-1).mean()


@dataclass(frozen=True)
class MC3Objective:
    """Which contrastive pairs, and the consensus weight and warm-up.

    ``MC3Objective()`` is MC3; ``MC3Objective.plain_av()`` is the audio-video-only contrastive
    model of the SoundingActions ablation (no text, no consensus).
    """

    pairs: tuple[str, ...] = ("av", "at", "vt")
    consensus_weight: float = 1.0
    warmup_epochs: int = 1

    def __post_init__(self) -> None:
        unknown = set(self.pairs) - set(PAIRS)
        if unknown or not self.pairs:
            raise ValueError(f"pairs must be a non-empty subset of {sorted(PAIRS)}")
        if self.consensus_weight < 0:
            raise ValueError("consensus_weight must be >= 0")

    @classmethod
    def plain_av(cls) -> MC3Objective:
        return cls(pairs=("av",), consensus_weight=0.0, warmup_epochs=0)

    @property
    def modalities(self) -> set[str]:
        needed = {m for p in self.pairs for m in PAIRS[p]}
        if self.consensus_weight > 0:
            needed |= {"audio", "video", "text"}
        return needed

    def uses_consensus(self, epoch: int) -> bool:
        return self.consensus_weight > 0 and epoch >= self.warmup_epochs

    def __call__(
        self, emb: dict[str, torch.Tensor], scale: torch.Tensor | float, epoch: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss and its parts (floats for logging) for one batch of embeddings."""
        logs: dict[str, float] = {}
        total = torch.zeros((), device=next(iter(emb.values())).device)
        for pair in self.pairs:
            a, b = PAIRS[pair]
            loss = info_nce(emb[a], emb[b], scale)
            logs[f"nce_{pair}"] = float(loss.detach())
            total = total + loss
        if self.uses_consensus(epoch):
            cons = consensus_loss(emb["audio"], emb["video"], emb["text"])
            logs["consensus"] = float(cons.detach())
            total = total + self.consensus_weight * cons
        logs["loss"] = float(total.detach())
        return total, logs
