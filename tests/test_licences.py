"""What ships: the recipe's index packs only clips whose recordings may ship (CC0/CC-BY/CC-BY-SA,
or procedural), credits exactly those recordings in ATTRIBUTION.md, and ``ship`` refuses the rest.

A tiny built bank in tmp with a CC-BY and a GPL recording per kind (events, water beds) and a
tiny FoleyWorld made from it; the truth of which recordings a clip holds is the generator's own
(``plan.ambient_source`` and each event's ``source``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from foley.cli.main import main as foley_main
from foley.config import DEFAULT_CONFIG as CFG
from foley.data.ego4d import read_metadata, split_path
from foley.data.foleyworld import FoleyWorldSettings, generate_dataset, plan_video
from foley.data.foleyworld.bank import SoundBank
from foley.data.foleyworld.generate import clip_record
from foley.data.foleyworld.scene import assign_splits, plan_clip
from foley.data.foleyworld.tracks import clip_audio
from foley.data.soundbank import provenance
from foley.errors import InputError
from tests.test_soundbank import _hit, write_built_bank
from tests.tiny import MC3_TINY
from training import recipe

SR = 16000
# seed 5, 12 videos: train videos with each water bed, events from both licences
SETTINGS = FoleyWorldSettings(videos=12, clips_per_video=2, seed=5, offscreen_probability=0.0)


def _write_bank(root: Path) -> list[dict]:
    """A built bank: a CC-BY and a GPL event recording, a CC-BY and a GPL water bed."""
    noise = np.random.default_rng(5).standard_normal
    return write_built_bank(root, {
        "wood_step": ("event", "wood", "step", None, _hit(350, 0.3, 1), "CC-BY-3.0"),
        "glass_step": ("event", "glass", "step", None, _hit(3100, 0.2, 4), "GPL-2+"),
        "water_cc": ("ambient", None, None, "water", 0.1 * noise(4 * SR), "CC-BY-3.0"),
        "waves_gpl": ("ambient", None, None, "waves", 0.1 * noise(5 * SR), "GPL-2+"),
    })  # fmt: skip


def _truth(bank_dir: Path, summary: dict) -> dict[str, list[str]]:
    """clip_id -> the recordings the generator put in each train clip (its own record)."""
    bank = SoundBank.scan(bank_dir)
    extra = {k: tuple(summary["settings"][k]) for k in ("extra_verbs", "extra_ambients")}
    settings = FoleyWorldSettings(**{**SETTINGS.__dict__, **extra})
    truth = {}
    for v, split in enumerate(assign_splits(settings)):
        if split != "train":
            continue
        video = plan_video(settings, v, split)
        for c in range(settings.clips_per_video):
            plan = plan_clip(settings, video, c, CFG)
            clip_audio(plan, settings, CFG, bank)  # sets each source and plan.ambient_source
            sources = [e.source for e in plan.events] + [plan.ambient_source]
            truth[clip_record(video, plan, CFG).clip_id] = sorted(
                {s.removeprefix("bank:") for s in sources if s.startswith("bank:")}
            )
    return truth


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("licences")
    rows = _write_bank(root / "bank")
    summary = generate_dataset(root / "data", SETTINGS, sound_bank=root / "bank", progress=False)
    mc3 = root / "mc3"
    from foley.models.mc3 import MC3Model

    MC3Model(**MC3_TINY).eval().save_pretrained(mc3)
    return root, {r["file"]: r for r in rows}, summary


def test_clip_recordings_match_the_generator_including_ambient_beds(world):
    root, rows, summary = world
    records = read_metadata(split_path(root / "data", "train"))
    found, used = provenance.clip_recordings(root / "data", records, root / "bank")
    truth = _truth(root / "bank", summary)
    assert {r.clip_id: f for r, f in zip(records, found)} == truth
    beds = {f for files in found for f in files if rows[f]["kind"] == "ambient"}
    assert beds == {"sounds/test/water_cc.0.wav", "sounds/test/waves_gpl.0.wav"}  # told apart
    # without the bank the two water beds cannot be told apart: those clips are unknown
    blind, _ = provenance.clip_recordings(root / "data", records, root / "no-bank")
    assert all((b is None) == bool(set(f) & beds) for b, f in zip(blind, found))


def test_pack_index_keeps_shippable_clips_and_credits_exactly_their_recordings(world, tmp_path):
    root, rows, summary = world
    records = read_metadata(split_path(root / "data", "train"))
    truth = _truth(root / "bank", summary)
    ok = {c for c, files in truth.items() if all(rows[f]["shippable"] for f in files)}
    assert 0 < len(ok) < len(truth) and any(not truth[c] for c in ok)  # GPL out, synth in
    pipeline = tmp_path / "pipeline"
    retriever = recipe.pack_index(
        root / "data", root / "mc3", pipeline / "retriever", max_clips=100, bank=root / "bank"
    )
    files = sorted((pipeline / "retriever" / "clips").iterdir())
    packed = {p.stem for p in files if not p.name.endswith(".action.ogg")}
    # each shipped clip's action-only track (action-focused retrieval) ships beside it
    assert {
        p.name.removesuffix(".action.ogg") for p in files if p.name.endswith(".action.ogg")
    } == packed
    assert packed == ok and len(retriever.index) == len(ok) < len(records)
    credited = {f for c in ok for f in truth[c]}
    assert credited and all(rows[f]["shippable"] for f in credited)
    text = (pipeline / "ATTRIBUTION.md").read_text()
    for f, row in rows.items():
        assert (row["attribution"] in text) == (f in credited), f
    assert "GPL" not in text and "same licence" in text
    assert provenance.check_shippable(pipeline).startswith(f"{len(credited)} recordings")

    # the model card's licence section: minutes per licence, GPL for training only
    card = "\n".join(provenance.licence_section(root / "data", pipeline, root / "bank"))
    gpl = [f for f, r in rows.items() if r["licence"] == "GPL-2+" and f in _used(summary)]
    minutes = sum(rows[f]["duration"] for f in gpl) / 60
    assert f"| GPL-2+ | {len(gpl)} | {minutes:.1f} |" in card
    assert "training only, never shipped" in card and "credited in ATTRIBUTION.md" in card

    # a lost attribution file, a GPL recording slipped into the clips: refused in one line
    (pipeline / "ATTRIBUTION.md").rename(tmp_path / "kept.md")
    with pytest.raises(InputError, match="no ATTRIBUTION.md"):
        provenance.check_attribution(pipeline)
    (tmp_path / "kept.md").rename(pipeline / "ATTRIBUTION.md")
    record_path = pipeline / "retriever" / provenance.RECORD_NAME
    record = json.loads(record_path.read_text())
    gpl_file = "sounds/test/glass_step.0.wav"
    record["clips"][next(iter(record["clips"]))].append(gpl_file)
    record["recordings"][gpl_file] = summary_row(summary, gpl_file)
    record_path.write_text(json.dumps(record))
    shipped = recipe.SHIPPED_DIR / "model_index.json"
    before = shipped.stat().st_mtime_ns if shipped.exists() else None
    with pytest.raises(InputError, match="GPL-2\\+ recordings, which may not ship"):
        recipe.ship(pipeline)
    assert (shipped.stat().st_mtime_ns if shipped.exists() else None) == before


def _used(summary: dict) -> set[str]:
    return {u["file"] for u in summary["sound_bank"]["used"]}


def summary_row(summary: dict, file: str) -> dict:
    return next(u for u in summary["sound_bank"]["used"] if u["file"] == file)


def test_ship_refuses_clips_of_unknown_origin(world, tmp_path, capsys):
    root, _, _ = world
    # a dataset that is not FoleyWorld: packed whole, but its clips' licences are unknown
    other = tmp_path / "ego4d"
    other.mkdir()
    for name in ("train.tsv",):
        (other / name).write_text((root / "data" / name).read_text())
    for uid in {r.video_uid for r in read_metadata(other / "train.tsv")}:
        (other / uid).symlink_to(root / "data" / uid)
    pipeline = tmp_path / "pipeline"
    recipe.pack_index(other, root / "mc3", pipeline / "retriever", max_clips=4)
    assert not (pipeline / "ATTRIBUTION.md").exists()
    with pytest.raises(InputError, match="4 clips of unknown origin"):
        provenance.check_shippable(pipeline)
    # the recipe refuses --ship with such --data at once, in one line, before any stage
    capsys.readouterr()
    code = foley_main(["train", "all", "--preset", "tiny", "--out", str(tmp_path / "run"),
                       "--data", str(other), "--ship"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 1 and "--index-data" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run" / "codec").exists()


def test_default_sound_bank(world, tmp_path, monkeypatch):
    from foley import defaults

    root, _, _ = world
    monkeypatch.setenv(defaults.SOUND_BANK_ENV, str(root / "bank"))
    assert recipe.sound_bank(None) == root / "bank" and recipe.sound_bank("none") is None
    monkeypatch.setenv(defaults.SOUND_BANK_ENV, str(tmp_path))
    with pytest.raises(InputError, match="not a built sound bank"):
        recipe.sound_bank(None)
    monkeypatch.delenv(defaults.SOUND_BANK_ENV)
    monkeypatch.setattr(defaults, "USER_SOUND_BANK", tmp_path / "absent")
    assert recipe.sound_bank(None) is None
    monkeypatch.setattr(defaults, "USER_SOUND_BANK", root / "bank")
    assert recipe.sound_bank(None) == root / "bank"
