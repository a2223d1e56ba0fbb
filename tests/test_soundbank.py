"""Sound bank: fetch/build from a fake Debian package (no network), labels, attribution, and
FoleyWorld made of bank recordings (correlation with the source, onsets on the frames)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from foley.cli.main import main as foley_main
from foley.config import DEFAULT_CONFIG as CFG
from foley.data.foleyworld import FoleyWorldSettings, generate_dataset, make_clip, plan_video
from foley.data.foleyworld.bank import BANK_VERBS, SoundBank
from foley.data.foleyworld.scene import assign_splits, plan_clip
from foley.data.soundbank import build_bank, label_for, load_manifest, write_attribution
from foley.data.soundbank.events import TARGET_DB, envelope_db, onsets
from foley.data.soundbank.labels import RULES
from foley.data.soundbank.packages import PACKAGES
from foley.errors import InputError

SR = 16000
MT = "usr/share/games/minetest/games/minetest_game/mods"
SOUNDS = f"{MT}/default/sounds"
SCR = "usr/share/scratch/Media/Sounds"
TW = "usr/share/games/teeworlds/data/audio"
WL = "usr/share/games/widelands/data/sound"
needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")


def _hit(freq: float, seconds: float = 0.25, seed: int = 0) -> np.ndarray:
    """A decaying tone with a noisy attack: one 'event' (N,) float32."""
    t = np.arange(int(seconds * SR)) / SR
    noise = np.random.default_rng(seed).standard_normal(t.shape[0]) * np.exp(-t / 0.004)
    return ((np.sin(2 * np.pi * freq * t) + 0.5 * noise) * np.exp(-t / 0.04)).astype(np.float32)


def _place(events: list[tuple[float, np.ndarray]], seconds: float) -> np.ndarray:
    wave = np.zeros(int(seconds * SR), np.float32)
    for start, hit in events:
        i = int(start * SR)
        wave[i : i + hit.shape[0]] += hit[: wave.shape[0] - i]
    return wave


# the fake package's files: (path, wave); written as ogg (wav for bucklespring-like names)
def _fake_files() -> dict[str, np.ndarray]:
    knocks = _place(
        [(0.1, _hit(900, seed=1)), (0.6, _hit(900, seed=2)), (1.1, _hit(900, seed=3))], 1.6
    )
    steps = _place([(0.05, _hit(300, seed=4)), (0.5, _hit(320, seed=5))], 0.9)
    t = np.arange(3 * SR) / SR
    water = (0.1 * np.random.default_rng(6).standard_normal(t.shape[0])).astype(np.float32)
    return {
        f"{MT}/default/sounds/default_dug_metal.1.ogg": 0.3 * knocks,
        f"{MT}/default/sounds/default_wood_footstep.1.ogg": 0.6 * steps,
        f"{MT}/doors/sounds/doors_door_close.ogg": 0.5 * _place([(0.2, _hit(200, 0.4, 7))], 0.8),
        f"{MT}/env_sounds/sounds/env_sounds_water.1.ogg": water,
        f"{MT}/tnt/sounds/tnt_explode.ogg": 0.5 * _hit(80, 0.5, 8),  # no rule: left out
    }  # fmt: skip


def _fake_deb(tmp_path: Path, version: str = "1.0") -> Path:
    """A real .deb (dpkg-deb --build) named minetest-data holding the fake sounds."""
    root = tmp_path / "pkg"
    for rel, wave in _fake_files().items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(root / rel), wave, SR, format="OGG", subtype="VORBIS")
    doc = root / "usr/share/doc/minetest-data"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("Files: *.ogg\nLicense: CC-BY-SA-3.0\n")
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN/control").write_text(
        f"Package: minetest-data\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: Test <t@example.org>\nDescription: fake sounds\n"
    )
    debs = tmp_path / "cache" / "debs"
    debs.mkdir(parents=True)
    deb = debs / f"minetest-data_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--build", "-Zgzip", str(root), str(deb)], check=True,
                   capture_output=True)  # fmt: skip
    return deb


@needs_dpkg
def test_build_from_fake_package_splits_labels_and_resumes(tmp_path):
    _fake_deb(tmp_path)
    bank = tmp_path / "bank"
    summary = build_bank(bank, tmp_path / "cache", ("minetest-data",), progress=False)
    rows = load_manifest(bank)
    by_source: dict[str, list[dict]] = {}
    for r in rows:
        by_source.setdefault(r["source"].rsplit("/", 1)[1], []).append(r)
    assert sorted(by_source) == [
        "default_dug_metal.1.ogg",
        "default_wood_footstep.1.ogg",
        "doors_door_close.ogg",
        "env_sounds_water.1.ogg",
    ]
    assert summary["sources"] == {"labelled": 4, "unlabelled": 1}
    assert len(by_source["default_dug_metal.1.ogg"]) == 3  # three knocks, three events
    assert len(by_source["default_wood_footstep.1.ogg"]) == 2
    assert len(by_source["env_sounds_water.1.ogg"]) == 1  # a bed is kept whole
    knock = by_source["default_dug_metal.1.ogg"][0]
    assert (knock["material"], knock["verb"], knock["kind"]) == ("metal", "knock", "event")
    assert knock["licence"] == "CC-BY-SA-3.0" and knock["shippable"]
    assert by_source["doors_door_close.ogg"][0]["licence"] == "CC-BY-3.0"
    assert "minetest-data 1.0" in knock["attribution"] and "CC-BY-SA-3.0" in knock["attribution"]
    for r in rows:
        wave, sr = sf.read(str(bank / r["file"]), dtype="float32")
        assert sr == SR and wave.ndim == 1
        assert abs(r["duration"] - wave.shape[0] / SR) < 1e-3
        db = envelope_db(wave)
        frames = wave[: db.shape[0] * 160].reshape(-1, 160)[db > -30]
        loud = 20 * np.log10(np.sqrt(np.mean(frames.astype(np.float64) ** 2)))
        assert abs(loud - TARGET_DB) < 1.0 or np.max(np.abs(wave)) > 0.9  # peak-limited
    for r in by_source["default_dug_metal.1.ogg"]:  # each event starts at its attack
        wave, _ = sf.read(str(bank / r["file"]), dtype="float32")
        assert 0.17 < r["duration"] < 0.5
        assert np.argmax(np.abs(wave)) < 0.02 * SR
    assert "default_dug_metal" in (bank / "ATTRIBUTION.md").read_text()
    # rerun: nothing redone; an interrupted build (last source line lost) resumes, no duplicates
    mtimes = {r["file"]: (bank / r["file"]).stat().st_mtime_ns for r in rows}
    lines = (bank / "sources.jsonl").read_text().splitlines()
    (bank / "sources.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    build_bank(bank, tmp_path / "cache", ("minetest-data",), progress=False)
    again = load_manifest(bank)
    assert [r["file"] for r in again] == [r["file"] for r in rows]
    assert len((bank / "sources.jsonl").read_text().splitlines()) == 5
    redone = [f for f, t in mtimes.items() if (bank / f).stat().st_mtime_ns != t]
    assert len({f.rsplit(".", 2)[0] for f in redone}) <= 1  # only the source whose line was lost


def test_build_refuses_a_folder_that_is_not_a_bank_and_unknown_packages(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a sound bank"):
        build_bank(tmp_path, tmp_path / "cache", ("minetest-data",), progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    with pytest.raises(InputError, match="unknown package"):
        build_bank(tmp_path / "b", tmp_path / "cache", ("no-such-package",), progress=False)


def test_onsets_find_each_event():
    wave = _place(
        [(0.1, _hit(700, seed=1)), (0.45, _hit(500, seed=2)), (1.0, _hit(900, seed=3))], 1.5
    )
    found = np.asarray(onsets(wave)) / SR
    assert found.shape == (3,)
    assert np.all(np.abs(found - [0.1, 0.45, 1.0]) < 0.011)


# (package, original path) -> (kind, material, verb or ambient); None: left out
LABEL_EXAMPLES = {
    ("minetest-data", f"{SOUNDS}/default_glass_footstep.ogg"): ("event", "glass", "step"),
    ("minetest-data", f"{SOUNDS}/default_hard_footstep.2.ogg"): ("event", "stone", "step"),
    ("minetest-data", f"{MT}/doors/sounds/doors_steel_door_open.ogg"): ("event", "metal", "open"),
    ("minetest-data", f"{MT}/fire/sounds/fire_large.ogg"): ("ambient", None, "fire"),
    ("minetest-data", f"{MT}/tnt/sounds/tnt_explode.ogg"): None,
    ("scratch", f"{SCR}/Effects/Typing.mp3"): ("event", "plastic", "type"),
    ("scratch", f"{SCR}/Effects/WaterRunning.mp3"): ("texture", "water", "pour"),
    ("scratch", f"{SCR}/Vocals/Singer1.wav"): None,
    ("teeworlds-data", f"{TW}/foley_foot_left-01.wv"): ("event", "ground", "step"),
    ("teeworlds-data", f"{TW}/wp_gun_fire-01.wv"): None,
    ("0ad-data", "p.zip:audio/attack/impact/arrow_metal_3.ogg"): ("event", "metal", "hit"),
    ("0ad-data", "p.zip:audio/resource/construction/con_saw_2.ogg"): ("texture", "wood", "saw"),
    ("0ad-data", "p.zip:audio/ambient/water/river_fast.ogg"): ("ambient", None, "water"),
    ("0ad-data", "p.zip:audio/music/peace/Harvest_Festival.ogg"): None,
    ("ufoai-sound", "b.pk3:sound/footsteps/tile2.ogg"): ("event", "ceramic", "step"),
    ("ufoai-sound", "b.pk3:sound/misc/breakglass03.ogg"): ("event", "glass", "break"),
    ("widelands-data", f"{WL}/smiths/smith_00.ogg"): ("event", "metal", "hammer"),
    ("bucklespring-data", "usr/share/buckle/wav/1e-0.wav"): ("event", "plastic", "type"),
}  # fmt: skip


def test_labelling_table_examples_and_coverage():
    for (package, path), expected in LABEL_EXAMPLES.items():
        label = label_for(package, path)
        got = None if label is None else (label.kind, label.material, label.verb or label.ambient)
        assert got == expected, path
    # every rule names a known package and yields a complete label
    assert {pkg for pkg, _, _ in RULES} == set(PACKAGES)
    for _, _, lab in RULES:
        assert (lab.ambient is not None) == (lab.kind == "ambient")
    # every FoleyWorld verb but tearing is reachable from some rule
    rule_verbs = {lab.verb for _, _, lab in RULES} | {"open", "close"}
    for verb, accepted in BANK_VERBS.items():
        assert verb == "tear" or set(accepted) & rule_verbs, verb


def test_attribution_refuses_gpl_for_shipped_audio(tmp_path):
    row = {"package": "p", "source": "a.ogg", "licence": "CC-BY-SA-3.0", "attribution": "A by B"}
    gpl = {**row, "source": "b.ogg", "licence": "GPL-2+", "attribution": "B by C"}
    text = write_attribution([row, row], tmp_path / "A.md", shipped=True).read_text()
    assert "- A by B" in text and text.count("A by B") == 1 and "same licence" in text
    with pytest.raises(InputError, match="GPL-2\\+ may not be shipped"):
        write_attribution([row, gpl], tmp_path / "B.md", shipped=True)
    assert (
        "training only"
        in write_attribution([row, gpl], tmp_path / "C.md", shipped=False).read_text()
    )


def _write_bank(root: Path) -> dict[str, np.ndarray]:
    """A built bank (manifest + wavs) with one distinct recording per label; returns them."""
    bed = 0.1 * np.random.default_rng(5).standard_normal(4 * SR)
    specs = {
        "wood_step": ("event", "wood", "step", None, _hit(350, 0.3, 1)),
        "metal_hit": ("event", "metal", "hit", None, _hit(1200, 0.3, 2)),
        "plastic_type": ("event", "plastic", "type", None, _hit(2500, 0.1, 3)),
        "glass_step": ("event", "glass", "step", None, _hit(3100, 0.2, 4)),
        "water_bed": ("ambient", None, None, "water", bed),
    }  # fmt: skip
    licences = {name: "GPL-2+" if name == "glass_step" else "CC-BY-SA-3.0" for name in specs}
    rows = write_built_bank(root, {n: (*spec, licences[n]) for n, spec in specs.items()})
    return {r["file"]: spec[4].astype(np.float32) for r, spec in zip(rows, specs.values())}


def write_built_bank(root: Path, specs: dict[str, tuple]) -> list[dict]:
    """Write a built bank: ``specs`` name -> (kind, material, verb, ambient, wave, licence);
    returns its manifest rows (also in ``root/manifest.jsonl``)."""
    rows = []
    for name, (kind, material, verb, ambient, wave, licence) in specs.items():
        rel = f"sounds/test/{name}.0.wav"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(root / rel), wave.astype(np.float32), SR, subtype="FLOAT")
        rows.append({"file": rel, "package": "test", "source": f"{name}.ogg", "kind": kind,
                     "material": material, "verb": verb, "ambient": ambient, "licence": licence,
                     "shippable": licence != "GPL-2+", "attribution": f"{name} by T",
                     "duration": wave.shape[0] / SR})  # fmt: skip
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def _bank_clips(bank: SoundBank, settings: FoleyWorldSettings):
    verbs, ambients = bank.extra_vocabulary()
    settings = FoleyWorldSettings(
        **{**settings.__dict__, "extra_verbs": verbs, "extra_ambients": ambients}
    )
    for v, split in enumerate(assign_splits(settings)):
        video = plan_video(settings, v, split)
        for c in range(settings.clips_per_video):
            yield make_clip(settings, video, c, CFG, bank)


def test_foleyworld_action_track_is_made_of_bank_recordings(tmp_path):
    waves = _write_bank(tmp_path / "bank")
    bank = SoundBank.scan(tmp_path / "bank")
    assert bank.extra_vocabulary() == (("type",), ("water",))
    assert bank.has("wood", "tap") and bank.has("metal", "knock") and not bank.has("wood", "drop")
    settings = FoleyWorldSettings(videos=6, clips_per_video=4, seed=3, bank_variety=False,
                                  offscreen_probability=0.0)  # fmt: skip
    checked, verbs, beds = 0, set(), 0
    for clip in _bank_clips(bank, settings):
        bank_events = [e for e in clip.events if e["source"].startswith("bank:")]
        for e in clip.events:
            if e["source"] == "synth":  # procedural only where the bank has no recording
                assert not bank.has(e["material"], e["verb"])
        if clip.plan.ambient_source.startswith("bank:"):
            beds += 1
            assert clip.ambient_type == "water"
        for i, e in enumerate(bank_events):
            src = waves[e["source"].removeprefix("bank:")]
            start = round(e["onset"] * SR)
            stop = min(round(e["offset"] * SR), start + src.shape[0])
            if i + 1 < len(bank_events):  # the next event may overlap the tail
                stop = min(stop, round(bank_events[i + 1]["onset"] * SR))
            seg = clip.action[start:stop]
            r = np.corrcoef(seg, src[: seg.shape[0]])[0, 1]
            assert r > 0.99, (e, r)
            assert abs(e["onset"] * CFG.fps - e["frames"][0]) <= 1.0
            verbs.add(e["verb"])
            checked += 1
    assert checked > 10 and beds > 0 and "knock" in verbs
    # the bank's extra verb: typing, on a keyboard only, planned where the scene has one
    typed = 0
    wide = FoleyWorldSettings(videos=40, clips_per_video=4, seed=3, extra_verbs=("type",))
    for v, split in enumerate(assign_splits(wide)):
        video = plan_video(wide, v, split)
        for c in range(4):
            plan = plan_clip(wide, video, c, CFG)
            if plan.verb == "type":
                assert video.objects[plan.target].noun == "keyboard" and plan.hand_motion == "tap"
                assert len(plan.events) >= 3 and plan.text.startswith("#C C types on")
                typed += 1
    assert typed > 0


def test_foleyworld_bank_variety_keeps_onsets_and_lists_recordings(tmp_path):
    waves = _write_bank(tmp_path / "bank")
    out = tmp_path / "d"
    settings = FoleyWorldSettings(videos=4, clips_per_video=3, seed=5, offscreen_probability=0.0)
    summary = generate_dataset(out, settings, sound_bank=tmp_path / "bank", progress=False)
    assert list(summary["settings"]["extra_verbs"]) == ["type"]
    used = summary["sound_bank"]["used"]
    assert used and {u["file"] for u in used} <= set(waves)
    assert all(u["licence"] and u["attribution"] and u["uses"] > 0 for u in used)
    assert json.loads((out / "foleyworld.json").read_text())["sound_bank"]["used"] == used
    # variety: the same recording differs between uses, its onset still on the contact frame
    bank = SoundBank.scan(tmp_path / "bank")
    starts: dict[str, list[np.ndarray]] = {}
    for clip in _bank_clips(bank, FoleyWorldSettings(videos=4, clips_per_video=3, seed=5)):
        for e in clip.events:
            if e["source"].startswith("bank:") and e["visible"]:
                start = round(e["onset"] * SR)
                env = np.abs(clip.action[start : start + 400])
                assert np.argmax(env) < 0.02 * SR  # the attack is at the onset
                assert abs(e["onset"] * CFG.fps - e["frames"][0]) <= 1.0
                starts.setdefault(e["source"], []).append(
                    clip.action[start : start + 1600] / np.max(env)
                )
    firsts = max(starts.values(), key=len)
    assert len(firsts) >= 2 and not np.allclose(firsts[0], firsts[1], atol=1e-3)
    # shippable only: no GPL recording is used
    out2 = tmp_path / "d2"
    s2 = generate_dataset(out2, settings, sound_bank=tmp_path / "bank", progress=False,
                          shippable_only=True)  # fmt: skip
    assert all(u["shippable"] for u in s2["sound_bank"]["used"])


def test_cli_sound_bank_info_errors_in_one_line(tmp_path, capsys):
    assert foley_main(["sound-bank", "info", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "not a sound bank" in err and len(err.splitlines()) == 1


def test_cli_attribution_for_shipped_data(tmp_path, capsys):
    _write_bank(tmp_path / "bank")
    settings = FoleyWorldSettings(videos=4, clips_per_video=3, seed=5)
    summary = generate_dataset(tmp_path / "cc", settings, sound_bank=tmp_path / "bank",
                               progress=False, shippable_only=True)  # fmt: skip
    assert summary["sound_bank"]["used"]
    out = tmp_path / "ATTRIBUTION.md"
    assert foley_main(["sound-bank", "attribution", str(tmp_path / "cc"), "--out", str(out)]) == 0
    text = out.read_text()
    assert "CC-BY-SA-3.0" in text and "by T" in text and "GPL" not in text
    assert foley_main(["sound-bank", "attribution", str(tmp_path), "--out", str(out)]) == 1
    assert "not a FoleyWorld dataset" in capsys.readouterr().err
