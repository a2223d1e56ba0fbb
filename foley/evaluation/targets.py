"""The issue's targets on the model rows, and sync shaping on against off.

Each target is measured on the shaped model rows and, when the run has them, on their
``_unshaped`` twins (the denoiser alone): ``{"target", "row", "measured", "met"}``, ``met`` None
when it cannot be judged; the per-clip ones add ``clips`` and ``clips_met``.
"""

from __future__ import annotations

import math

import numpy as np

from foley.evaluation.events import (
    ACTION_LEVEL_TARGET_DB,
    AFTER_EVENT_S,
    AT_EVENT_S,
    BEFORE_EVENT_S,
    SUPPRESSION_TARGET_DB,
)
from foley.evaluation.rows import LOUD_SCENE_DB, RETRIEVAL_MODES, UNSHAPED_SUFFIX

EVENT_WINDOWS = (
    f"Action-focused levels: *between events* is every sample outside [onset - "
    f"{BEFORE_EVENT_S * 1000:.0f} ms, offset + {AFTER_EVENT_S * 1000:.0f} ms] of every audible "
    f"ground-truth event; *at events* the first {AT_EVENT_S * 1000:.0f} ms after each onset "
    f"(RMS dBFS). Loud scenes: ground-truth ambient track at least {LOUD_SCENE_DB:g} dBFS."
)


def _mean(values) -> float:
    x = np.asarray([v for v in values if v is not None], np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


def _ratio(a: float, b: float) -> float:
    return a / b if math.isfinite(a) and math.isfinite(b) and b != 0 else math.nan


def _target(text: str, row: str, measured: float, ok, judged: bool = True) -> dict:
    met = bool(ok(measured)) if math.isfinite(measured) and judged else None
    return {"target": text, "row": row, "measured": measured, "met": met}


def _per_clip_target(text: str, row: str, values: list[float], ok) -> dict:
    """A target judged on the mean of per-clip ``values`` (non-finite ones left out), with the
    count of clips that meet it by themselves."""
    x = [float(v) for v in values if v is not None and math.isfinite(v)]
    t = _target(text, row, _mean(x), ok)
    return {**t, "clips": len(x), "clips_met": sum(bool(ok(v)) for v in x)}


def targets(rows: dict[str, dict[str, float]], per_clip: list[dict]) -> list[dict]:
    """The issue's targets on the model rows (shaped, then unshaped), with measured figures."""
    return [t for suffix in ("", UNSHAPED_SUFFIX) for t in _targets(rows, per_clip, suffix)]


def _targets(rows: dict[str, dict[str, float]], per_clip: list[dict], suffix: str) -> list[dict]:
    out = []
    gt = rows["gt_mix"]
    # an AVS judge that draws the same masks for the true audio as for silence cannot tell
    # soundtracks apart: its ratio is reported, not judged
    avs_judges = "silence" not in rows or gt["avs_j"] > rows["silence"]["avs_j"] + 1e-6
    # each mode's own ground truth: the mix for ambient-joint, the action-only track for
    # action-focused (onsets are harder to detect under a loud ambience)
    onset_refs = {"model_ambient_joint": "gt_mix", "model_action_focused": "gt_action"}
    for row, ref in onset_refs.items():
        row += suffix
        if row not in rows:
            continue
        r = rows[row]
        ref_f1 = rows[ref]["onset_f1"] if ref in rows else math.nan
        out.append(
            _target(
                f"onset F1 >= 0.9x {ref}'s (ratio)",
                row,
                _ratio(r["onset_f1"], ref_f1),
                lambda x: x >= 0.9,
            )
        )
        # issue 22: FD aisfx at most 1.5x a random real clip's, and below retrieval-only's; the
        # in-split random clip shares the reference's videos, unseen_videos does not
        for floor in ("random_clip", "unseen_videos"):
            if floor in rows:
                out.append(
                    _target(
                        f"FD aisfx <= 1.5x {floor}'s (ratio)",
                        row,
                        _ratio(r.get("fd_aisfx", math.nan), rows[floor].get("fd_aisfx", math.nan)),
                        lambda x: x <= 1.5,
                    )
                )
        if "retrieval" in rows:
            out.append(
                _target(
                    "FD aisfx < retrieval-only's (ratio)",
                    row,
                    _ratio(
                        r.get("fd_aisfx", math.nan), rows["retrieval"].get("fd_aisfx", math.nan)
                    ),
                    lambda x: x < 1.0,
                )
            )
            out.append(
                _target(
                    "FD mel <= 0.3x retrieval-only's (ratio)",
                    row,
                    _ratio(r["fd_mel"], rows["retrieval"]["fd_mel"]),
                    lambda x: x <= 0.3,
                )
            )
        out.append(
            _target(
                "AVS alignment J >= 0.9x ground-truth audio's (ratio)",
                row,
                _ratio(r["avs_j"], gt["avs_j"]),
                lambda x: x >= 0.9,
                judged=avs_judges,
            )
        )
    af, aj = "model_action_focused" + suffix, "model_ambient_joint" + suffix
    if af in rows:
        out.append(
            _per_clip_target(
                f"action level at events within {ACTION_LEVEL_TARGET_DB:g} dB of the action-only "
                "GT's (mean absolute gap, dB)",
                af,
                [abs(c["rows"][af].get("action_gap_db", math.nan)) for c in per_clip],
                lambda x: x <= ACTION_LEVEL_TARGET_DB,
            )
        )
    if af in rows and aj in rows:
        out.append(
            _per_clip_target(
                f"between events >= {SUPPRESSION_TARGET_DB:g} dB below ambient-joint in loud "
                "scenes (mean drop, dB)",
                af,
                [
                    c["rows"][aj].get("between_events_db", math.nan)
                    - c["rows"][af].get("between_events_db", math.nan)
                    for c in per_clip
                    if c["loud_scene"]
                ],
                lambda x: x >= SUPPRESSION_TARGET_DB,
            )
        )
    return out


def shaping_comparison(rows: dict[str, dict[str, float]], factor: float) -> dict | None:
    """Onset F1 and FD aisfx of each model row with sync shaping (``factor``) and without (its
    ``_unshaped`` twin), and whether shaping improves both: higher onset F1 and lower FD aisfx
    in every user mode (ambient-joint and action-focused; the criterion for shaping being on
    by default). None without unshaped rows; ``improves_both`` None when a figure is missing."""
    pairs = [r for r in rows if r.startswith("model_") and r + UNSHAPED_SUFFIX in rows]
    if not pairs:
        return None
    modes: dict[str, dict] = {}
    for row in pairs:
        on, off = rows[row], rows[row + UNSHAPED_SUFFIX]
        f1, fd = (on["onset_f1"], off["onset_f1"]), (on["fd_aisfx"], off["fd_aisfx"])
        known = all(math.isfinite(v) for v in (*f1, *fd))
        modes[row.removeprefix("model_")] = {
            "onset_f1": {"on": f1[0], "off": f1[1]},
            "fd_aisfx": {"on": fd[0], "off": fd[1]},
            "improves_both": bool(f1[0] > f1[1] and fd[0] < fd[1]) if known else None,
        }
    judged = [m for m in RETRIEVAL_MODES if m in modes] or list(modes)
    verdicts = [modes[m]["improves_both"] for m in judged]
    overall = None if None in verdicts else all(verdicts)
    return {"factor": factor, "judged_modes": judged, "modes": modes, "improves_both": overall}


def shaping_lines(shaping: dict) -> list[str]:
    """The markdown section of :func:`shaping_comparison`."""

    def fmt(v: float, spec: str) -> str:
        return format(v, spec) if v is not None and math.isfinite(v) else "n/a"

    lines = [
        f"Sync shaping on (factor {shaping['factor']:g}) against off (the same denoising, "
        "`_unshaped` rows):",
        "",
        "| mode | onset F1 on | onset F1 off | FD aisfx on | FD aisfx off | improves both |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    verdict = {True: "yes", False: "**no**", None: "n/a"}
    for mode, m in shaping["modes"].items():
        f1, fd = m["onset_f1"], m["fd_aisfx"]
        lines.append(
            f"| {mode} | {fmt(f1['on'], '.3f')} | {fmt(f1['off'], '.3f')} | "
            f"{fmt(fd['on'], '.3g')} | {fmt(fd['off'], '.3g')} | {verdict[m['improves_both']]} |"
        )
    lines += [
        "",
        f"Shaping improves onset F1 and FD aisfx in {', '.join(shaping['judged_modes'])} "
        f"(the criterion for it being on by default): {verdict[shaping['improves_both']]}.",
    ]
    return lines
