"""The evaluation report: per-row summary, the issue's targets (:mod:`foley.evaluation.targets`),
sync shaping on against off, markdown / JSON / pictures."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from foley.evaluation.rows import legend
from foley.evaluation.targets import (
    EVENT_WINDOWS,
    _mean,
    shaping_comparison,
    shaping_lines,
    targets,
)
from foley.metrics.fd import frechet_distance

# (key, column title, format) of the markdown table
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("fd_mel", "FD mel", "{:.3g}"),
    ("fd_mc3", "FD MC3", "{:.3g}"),
    ("fd_aisfx", "FD aisfx", "{:.3g}"),
    ("kl_soundnet", "KL SoundNet", "{:.3f}"),
    ("onset_f1", "onset F1", "{:.3f}"),
    ("ambient_db", "ambient dBFS", "{:.1f}"),
    ("ambient_db_loud", "ambient dBFS (loud scenes)", "{:.1f}"),
    ("between_events_db_loud", "between events dBFS (loud scenes)", "{:.1f}"),
    ("action_gap_db", "at events vs action GT dB", "{:+.1f}"),
    ("av_sim", "AV-sim", "{:.3f}"),
    ("at_sim", "AT-sim", "{:.3f}"),
    ("avs_j", "AVS J", "{:.3f}"),
    ("av_agree", "AV-agree", "{:.3f}"),
)
_MEANS = (
    "onset_f1",
    "onset_precision",
    "onset_recall",
    "ambient_db",
    "ambient_gap_db",
    "between_events_db",
    "at_events_db",
    "action_gap_db",
    "av_sim",
    "at_sim",
    "avs_j",
    "kl_soundnet",
    "av_agree",
)


def guidance_setting(pipeline, guidance_scale: float | None, modes) -> float | dict:
    """What a report records as its guidance: the scale given, or per mode the pipeline's own
    (``FoleyPipeline.default_guidance_scale``) when none was."""
    if guidance_scale is not None:
        return float(guidance_scale)
    return {m: pipeline.default_guidance_scale(m) for m in modes}


def format_guidance(value) -> str:
    """``3`` or ``ambient_joint 3, action_focused 5`` (a per-mode setting)."""
    if isinstance(value, dict):
        return ", ".join(f"{m} {v:g}" for m, v in value.items())
    return f"{float(value):g}"


def table_lines(rows: dict[str, dict], columns: tuple[tuple[str, str, str], ...]) -> list[str]:
    """Markdown header, rule and one line per row; a missing or non-finite value reads n/a."""
    lines = [
        "| row | " + " | ".join(title for _, title, _ in columns) + " |",
        "| --- |" + " ---: |" * len(columns),
    ]
    for name, summary in rows.items():
        cells = []
        for key, _, fmt in columns:
            v = summary.get(key, math.nan)
            cells.append(fmt.format(v) if v is not None and math.isfinite(v) else "n/a")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _clean(obj):
    """NaN/inf -> None and numpy scalars -> Python, so the JSON is standard."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


@dataclass
class EvalReport:
    """Result of :func:`foley.evaluation.evaluate`.

    rows: row name -> summary (FD over the split, means over clips); targets: the issue's targets
    with the measured figure and whether it is met (None when it cannot be measured);
    per_clip: one dict per clip with every row's metrics; examples: soundtracks of the first
    clips, for the spectrogram grid (not written to JSON); shaping: sync shaping on against
    off (:func:`shaping_comparison`), None when the run had no unshaped rows.
    """

    settings: dict
    rows: dict[str, dict[str, float]]
    targets: list[dict]
    per_clip: list[dict]
    examples: list[dict] = field(default_factory=list, repr=False)
    shaping: dict | None = None

    def to_dict(self) -> dict:
        return _clean(
            {
                "settings": self.settings,
                "rows": self.rows,
                "legend": {r: legend(r) for r in self.rows},
                "targets": self.targets,
                **({"shaping": self.shaping} if self.shaping else {}),
            }
        )

    def to_markdown(self) -> str:
        s = self.settings
        lines = [
            f"FoleyWorld `{s['split']}`, {s['clips']} clips{_skipped(s)}, "
            f"{s['num_inference_steps']} steps, "
            f"guidance {format_guidance(s['guidance_scale'])}, seed {s['seed']}",
            "",
        ]
        lines += table_lines(self.rows, COLUMNS)
        if self.targets:
            lines += ["", "| target | row | measured | met |", "| --- | --- | ---: | --- |"]
            for t in self.targets:
                m = t["measured"]
                measured = f"{m:.3g}" if m is not None and math.isfinite(m) else "n/a"
                if "clips" in t:
                    measured += f" ({t['clips_met']}/{t['clips']} clips)"
                met = {True: "yes", False: "**no**", None: "n/a"}[t["met"]]
                lines.append(f"| {t['target']} | {t['row']} | {measured} | {met} |")
            lines += ["", EVENT_WINDOWS]
        if self.shaping:
            lines += ["", *shaping_lines(self.shaping)]
        return "\n".join(lines) + "\n"

    def save(self, out_dir: str | os.PathLike, sample_rate: int = 16_000) -> dict[str, Path]:
        """Write report.md, report.json, per_clip.jsonl and examples.png; returns their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "markdown": out / "report.md",
            "json": out / "report.json",
            "per_clip": out / "per_clip.jsonl",
        }
        paths["markdown"].write_text(self.to_markdown(), encoding="utf-8")
        with open(paths["json"], "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, allow_nan=False)
            f.write("\n")
        with open(paths["per_clip"], "w", encoding="utf-8") as f:
            for clip in self.per_clip:
                f.write(json.dumps(_clean(clip), allow_nan=False) + "\n")
        if self.examples:
            paths["examples"] = self.save_examples(out / "examples.png", sample_rate)
        return paths

    def save_examples(self, path: str | os.PathLike, sample_rate: int = 16_000) -> Path:
        """Spectrogram grid: one line per example clip, one column per row (silence left out)."""
        from foley.config import AVConfig
        from foley.viz.spectrogram import spectrogram_grid

        cfg = AVConfig(**self.settings["av_config"])
        cols = list(self.examples[0]["waves"])
        return spectrogram_grid(
            [[ex["waves"][c] for c in cols] for ex in self.examples],
            [f"{ex['video_uid'][:8]} #{ex['clip_id'].rsplit('_', 1)[-1]}" for ex in self.examples],
            cols,
            sample_rate,
            path,
            onsets=[[ex["onsets"][c] for c in cols] for ex in self.examples],
            cfg=cfg,
        )


def summarise(
    row_names: list[str],
    per_clip: list[dict],
    embeddings: dict[str, dict[str, list[np.ndarray]]],
    settings: dict,
    examples: list[dict],
) -> EvalReport:
    """Per-row means over clips and FD against the split's ground-truth mixes."""
    rows: dict[str, dict[str, float]] = {}
    loud = [c["loud_scene"] for c in per_clip]
    for name in row_names:
        summary: dict[str, float] = {}
        for key in ("mel", "mc3", "aisfx"):
            ref = embeddings["gt_mix"].get(key)
            mine = embeddings[name].get(key)
            summary[f"fd_{key}"] = (
                frechet_distance(np.stack(mine), np.stack(ref)) if mine and ref else math.nan
            )
        for key in _MEANS:
            summary[key] = _mean(c["rows"][name].get(key) for c in per_clip)
        for key in ("ambient_db", "between_events_db"):
            summary[f"{key}_loud"] = _mean(
                c["rows"][name].get(key) for c, is_loud in zip(per_clip, loud) if is_loud
            )
        rows[name] = summary
    settings = {**settings, "loud_clips": int(sum(loud))}
    shaping = shaping_comparison(rows, settings.get("sync_shaping", math.nan))
    return EvalReport(settings, rows, targets(rows, per_clip), per_clip, examples, shaping)


def _skipped(settings: dict) -> str:
    """`` (skipped 2 that could not be decoded: a.mp4, b.mp4)`` or nothing."""
    names = settings.get("skipped") or []
    return f" (skipped {len(names)} that could not be decoded: {', '.join(names)})" if names else ""
