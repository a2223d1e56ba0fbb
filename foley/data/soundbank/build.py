"""``foley sound-bank fetch``: packages -> a labelled bank of 16 kHz mono events.

Bank layout (``BANK``)::

    BANK/sounds/<package>/<original path, flattened>.<k>.wav   16-bit PCM, 16 kHz mono
    BANK/manifest.jsonl     one line per bank file: file, package, version, source (original
                            path), kind, material, verb, ambient, licence, shippable,
                            attribution, duration (s), gain_db (loudness normalisation)
    BANK/sources.jsonl      one line per source file done: labelled / unlabelled / failed
    BANK/bank.json          summary: packages, counts, minutes per label and per licence
    BANK/ATTRIBUTION.md     every recording with its attribution line and licence

A source is written (its events, then its manifest lines, then its ``sources.jsonl`` line)
before the next one starts, so an interrupted build resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import defaultdict
from pathlib import Path

from tqdm.auto import tqdm

from foley.data.soundbank.attribution import attribution_line, write_attribution
from foley.data.soundbank.events import normalise, split_events
from foley.data.soundbank.fetch import Source, download, package_version, sources, unpack
from foley.data.soundbank.labels import label_for
from foley.data.soundbank.packages import DEFAULT_PACKAGES, PACKAGES
from foley.errors import FoleyError, InputError

SAMPLE_RATE = 16000


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by an interruption: redone on resume
            continue
    return rows


def load_manifest(bank: str | os.PathLike) -> list[dict]:
    """The bank's manifest rows, one per file (a row written twice by a resumed build once)."""
    rows = {r["file"]: r for r in read_jsonl(Path(bank) / "manifest.jsonl")}
    return [rows[k] for k in sorted(rows)]


def _append(path: Path, rows: list[dict]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _stem(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", path.replace(":", "/").replace("/", "__"))


def _process(src: Source, version: str, out: Path) -> tuple[list[dict], dict]:
    """Manifest rows of one source and its ``sources.jsonl`` status line."""
    import soundfile as sf

    from foley.io import load_audio

    spec = PACKAGES[src.package]
    label = label_for(src.package, src.path)
    if label is None:
        return [], {"source": src.key, "status": "unlabelled"}
    try:
        wave = load_audio(src.file, SAMPLE_RATE, max_seconds=600.0)
    except FoleyError as err:
        return [], {"source": src.key, "status": "failed", "error": str(err)}
    rows = []
    for k, piece in enumerate(split_events(wave, label.kind, SAMPLE_RATE)):
        piece, gain_db = normalise(piece)
        rel = f"sounds/{src.package}/{_stem(src.path)}.{k}.wav"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(out / rel), piece, SAMPLE_RATE, subtype="PCM_16")
        rows.append(
            {
                "file": rel,
                "package": src.package,
                "version": version,
                "source": src.path,
                "event": k,
                **label.as_dict(),
                "licence": spec.licence_of(src.path),
                "shippable": spec.shippable(src.path),
                "attribution": attribution_line(spec, version, src.path),
                "duration": round(piece.shape[0] / SAMPLE_RATE, 4),
                "gain_db": round(gain_db, 2),
            }
        )
    status = {"source": src.key, "status": "labelled" if rows else "silent", "events": len(rows)}
    return rows, status


def summarise(rows: list[dict], done: list[dict], packages: dict[str, str]) -> dict:
    """bank.json: counts and minutes per (material, verb), ambient type, licence, package."""
    minutes: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    files: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        label = r["ambient"] if r["kind"] == "ambient" else f"{r['material']}/{r['verb']}"
        for table, key in (("label", label), ("licence", r["licence"]), ("package", r["package"])):
            minutes[table][key] += r["duration"] / 60
            files[table][key] += 1
    status = defaultdict(int)
    for d in done:
        status[d["status"]] += 1
    return {
        "sample_rate": SAMPLE_RATE,
        "packages": packages,
        "files": len(rows),
        "minutes": round(sum(r["duration"] for r in rows) / 60, 2),
        "sources": dict(sorted(status.items())),
        "by": {
            t: {k: {"files": files[t][k], "minutes": round(v, 2)} for k, v in sorted(m.items())}
            for t, m in minutes.items()
        },
    }


def build_bank(
    out_dir: str | os.PathLike,
    cache_dir: str | os.PathLike,
    packages: tuple[str, ...] = DEFAULT_PACKAGES,
    *,
    progress: bool = True,
) -> dict:
    """Fetch, unpack and build (or resume); returns the summary written to ``bank.json``."""
    unknown = [p for p in packages if p not in PACKAGES]
    if unknown:
        raise InputError(f"unknown package {unknown[0]!r}; known: {' '.join(PACKAGES)}")
    out, cache = Path(out_dir), Path(cache_dir)
    if out.exists() and any(out.iterdir()) and not (out / "sources.jsonl").exists():
        raise InputError(
            f"{out}: the folder is not empty and is not a sound bank; choose a new --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    versions, todo = {}, []
    for name in tqdm(packages, desc="fetch packages", unit="pkg", disable=not progress):
        deb = download(name, cache / "debs")
        versions[name] = package_version(deb)
        root = unpack(PACKAGES[name], deb, cache / "tree")
        todo += [(s, versions[name]) for s in sources(PACKAGES[name], root)]
    fetch_s = time.perf_counter() - t0
    done_keys = {d["source"] for d in read_jsonl(out / "sources.jsonl")}
    todo = [(s, v) for s, v in todo if s.key not in done_keys]
    for src, version in tqdm(todo, desc="build sound bank", unit="file", disable=not progress):
        rows, status = _process(src, version, out)
        _append(out / "manifest.jsonl", rows)
        _append(out / "sources.jsonl", [status])
    wanted = {f"{name}/" for name in packages}
    rows = [r for r in load_manifest(out) if f"{r['package']}/" in wanted]
    done = [d for d in read_jsonl(out / "sources.jsonl") if d["source"].split("/")[0] in packages]
    summary = summarise(rows, done, versions)
    summary["seconds"] = {"fetch": round(fetch_s, 1), "total": round(time.perf_counter() - t0, 1)}
    (out / "bank.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    write_attribution(rows, out / "ATTRIBUTION.md", shipped=False)
    return summary
