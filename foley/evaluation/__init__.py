"""``foley eval``'s library: the quality benchmark with every baseline in the same run.

:func:`evaluate` scores, on one split of a FoleyWorld folder, the ground-truth mix and
action-only track, retrieval-only, the model in each mode, silence and a random clip with the
shared metrics (``foley.metrics``), and returns an :class:`EvalReport` (markdown table, JSON,
per-clip results, spectrogram grid).
"""

from foley.evaluation.evaluate import DEFAULT_MODES, evaluate, random_partners
from foley.evaluation.report import EvalReport
from foley.evaluation.rows import LOUD_SCENE_DB, ROWS, audible_onsets, fit_masks

__all__ = [
    "DEFAULT_MODES",
    "LOUD_SCENE_DB",
    "ROWS",
    "EvalReport",
    "audible_onsets",
    "evaluate",
    "fit_masks",
    "random_partners",
]
