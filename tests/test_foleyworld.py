"""FoleyWorld: the CLI end to end, determinism, ground-truth consistency, vocabulary, splits."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import av
import numpy as np
import pytest

from foley.cli.main import main as foley_main
from foley.config import DEFAULT_CONFIG as CFG
from foley.data.ego4d import load_ground_truth, read_metadata
from foley.data.foleyworld import FoleyWorldSettings, generate_dataset, make_clip, plan_video, vocab
from foley.data.foleyworld.bank import SoundBank, classify
from foley.data.foleyworld.scene import assign_splits, held_out_combinations, plan_clip
from foley.errors import InputError
from foley.io import save_audio


def _hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _clips(settings: FoleyWorldSettings, bank: SoundBank | None = None):
    splits = assign_splits(settings)
    for v, split in enumerate(splits):
        video = plan_video(settings, v, split)
        for c in range(settings.clips_per_video):
            yield make_clip(settings, video, c, CFG, bank)


def test_cli_make_dataset_end_to_end(tmp_path, capsys):
    out = tmp_path / "d"
    argv = ["make-dataset", "--videos", "4", "--clips-per-video", "5", "--out", str(out), "--quiet"]
    assert foley_main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    records = {s: read_metadata(out / f"{s}.tsv") for s in ("train", "val", "test")}
    assert sum(len(r) for r in records.values()) == 20
    uids = {s: {r.video_uid for r in rs} for s, rs in records.items()}
    assert len(set.union(*uids.values())) == 4
    assert not (uids["train"] & uids["val"]) and not (uids["train"] & uids["test"])
    assert not (out / "test_shifted.tsv").exists()
    for record in [r for rs in records.values() for r in rs]:
        path = record.clip_path(out)
        assert path.parent.name == record.video_uid
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            assert stream.codec_context.sample_rate == 16000
            assert stream.codec_context.channels == 1
            samples = sum(f.samples for f in container.decode(stream))
        assert abs(samples - CFG.samples_per_clip) <= 1024
        gt = load_ground_truth(record.gt_path(out))
        assert gt["action"].shape == gt["ambient"].shape == (CFG.samples_per_clip,)
        assert gt["masks"].shape == (CFG.frames_per_clip, CFG.frame_size, CFG.frame_size)
        assert gt["masks"].dtype == bool
        assert gt["ambient_type"] in vocab.AMBIENT_TYPES
        assert record.clip_text.startswith("#C C ")
        assert record.positive == float(record.tag_verb in vocab.SOUNDING_VERBS)
    meta = json.loads((out / "foleyworld.json").read_text())
    assert meta["seed"] == 0 and meta["settings"]["videos"] == 4
    assert meta["sound_bank"] is None


def test_cli_refuses_bad_arguments(tmp_path, capsys):
    assert (
        foley_main(
            [
                "make-dataset",
                "--videos",
                "0",
                "--clips-per-video",
                "2",
                "--out",
                str(tmp_path / "a"),
                "--quiet",
            ]
        )
        == 1
    )
    assert "at least 1" in capsys.readouterr().err
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        generate_dataset(used, FoleyWorldSettings(videos=1, clips_per_video=1), progress=False)
    with pytest.raises(InputError, match="sound bank"):
        generate_dataset(
            tmp_path / "b",
            FoleyWorldSettings(videos=1, clips_per_video=1),
            sound_bank=used / "notes.txt",
            progress=False,
        )


def test_same_seed_same_bytes_any_workers(tmp_path):
    settings = FoleyWorldSettings(videos=2, clips_per_video=2, seed=7, shifted_test_videos=1)
    generate_dataset(tmp_path / "a", settings, progress=False)
    generate_dataset(tmp_path / "b", settings, workers=2, progress=False)
    a, b = _hashes(tmp_path / "a"), _hashes(tmp_path / "b")
    assert a.keys() == b.keys() and sum(name.endswith(".mp4") for name in a) == 6
    other = FoleyWorldSettings(videos=2, clips_per_video=2, seed=8, shifted_test_videos=1)
    generate_dataset(tmp_path / "c", other, progress=False)
    c = _hashes(tmp_path / "c")
    mp4 = lambda h: sorted(v for k, v in h.items() if k.endswith(".mp4"))  # noqa: E731
    assert not set(mp4(a)) & set(mp4(c))
    # the generator's own output (pictures, tracks, masks, metadata) is bit-exact...
    first = [(c.frames.tobytes(), c.mixture.tobytes()) for c in _clips(settings)]
    assert first == [(c.frames.tobytes(), c.mixture.tobytes()) for c in _clips(settings)]
    for name in a:
        if not name.endswith(".mp4"):
            assert a[name] == b[name], name
    # ...and so are the mp4s as long as the H.264 encoder is (see foley.io.write_video)
    differing = [name for name in a if a[name] != b[name]]
    if differing:
        pytest.xfail(f"identical frames and audio encoded to different mp4 bytes: {differing[0]}")
    # --overwrite replaces the previous dataset in place
    generate_dataset(tmp_path / "c", settings, workers=1, overwrite=True, progress=False)
    assert _hashes(tmp_path / "c").keys() == a.keys()


@pytest.fixture(scope="module")
def clips():
    settings = FoleyWorldSettings(videos=4, clips_per_video=6, seed=11, offscreen_probability=0.4)
    return list(_clips(settings))


def _active_frames(events: list[dict], num_frames: int) -> np.ndarray:
    active = np.zeros(num_frames, bool)
    for e in events:
        if e["visible"]:
            active[e["frames"][0] : e["frames"][1]] = True
    return active


def test_masks_non_empty_exactly_when_a_visible_event_sounds(clips):
    offscreen_only = 0
    for clip in clips:
        has_mask = clip.masks.reshape(clip.masks.shape[0], -1).any(axis=1)
        np.testing.assert_array_equal(has_mask, _active_frames(clip.events, CFG.frames_per_clip))
        if clip.record.tag_verb in vocab.SILENT_VERBS:
            assert not has_mask.any()
            assert all(not e["visible"] for e in clip.events)
            offscreen_only += bool(clip.events)
        for e in clip.events:
            assert e["visible"] == (e["object"] is not None)
            if e["visible"]:
                target = clip.plan.target + 1
                k = e["frames"][0]
                assert abs(k - e["onset"] * CFG.fps) <= 0.5 + 1e-6
                assert e["frames"][1] >= e["offset"] * CFG.fps - 1e-6
                assert e["material"] == clip.plan.video.objects[target - 1].material
    assert offscreen_only >= 1  # a silent action with an off-screen sound: audible, no mask


def test_action_track_onsets_and_silence_between_events(clips):
    sr = CFG.sample_rate
    checked = 0
    for clip in clips:
        np.testing.assert_allclose(clip.mixture, clip.action + clip.ambient, atol=1e-6)
        covered = np.zeros(clip.action.shape[0], bool)
        for e in clip.events:
            covered[round(e["onset"] * sr) : round(e["offset"] * sr)] = True
        assert not np.any(clip.action[~covered]), "sound outside every event"
        if not clip.events:
            assert not np.any(clip.action)
        starts = sorted(round(e["onset"] * sr) for e in clip.events)
        for i, start in enumerate(starts):
            after = clip.action[start : start + int(0.02 * sr)]
            assert np.sqrt(np.mean(after**2)) > 1e-3, "no energy at an onset"
            if i == 0:
                assert not np.any(clip.action[:start])
            elif start - starts[i - 1] > 0.1 * sr:
                before = clip.action[start - int(0.02 * sr) : start]
                if np.sqrt(np.mean(before**2)) < 0.1 * np.sqrt(np.mean(after**2)):
                    checked += 1
    assert checked >= 5


def test_contact_in_video_at_the_audio_onset(clips):
    seen = set()
    for clip in clips:
        plan = clip.plan
        if plan.verb not in vocab.SOUNDING_VERBS:
            continue
        seen.add(plan.verb)
        visible = [e for e in clip.events if e["visible"]]
        for e in visible:
            k = e["frames"][0]
            assert abs(e["onset"] * CFG.fps - k) <= 1.0  # audio onset within one frame
            assert clip.gap[k] <= 0.5, f"{plan.verb}: no contact at frame {k}"
        first = visible[0]["frames"][0]
        assert clip.gap[first - 1] > 1.0, f"{plan.verb}: already touching before the onset"
    assert len(seen) >= 5


def test_ambience_persists_across_a_video(clips):
    by_video: dict[str, list] = {}
    for clip in clips:
        by_video.setdefault(clip.record.video_uid, []).append(clip)
    for video_clips in by_video.values():
        assert len({c.ambient_type for c in video_clips}) == 1
        levels = [c.ambient_db for c in video_clips]
        assert max(levels) - min(levels) < 0.5
        assert abs(levels[0] - video_clips[0].plan.video.ambient_db) < 0.5
        flags = {
            (
                c.record.speech,
                c.record.background_music,
                c.record.traffic_noise,
                c.record.wind_noise,
            )
            for c in video_clips
        }
        assert len(flags) == 1


def test_vocabulary_and_shifted_split_plans():
    settings = FoleyWorldSettings(videos=40, clips_per_video=6, seed=3, shifted_test_videos=4)
    splits = assign_splits(settings)
    assert splits.count("test_shifted") == 4 and "val" in splits and "test" in splits
    held = held_out_combinations(settings.seed)
    verbs, materials, ambients, offscreen, texts = set(), set(), set(), 0, set()
    train_pairs, shifted_pairs = set(), set()
    for v, split in enumerate(splits):
        video = plan_video(settings, v, split)
        ambients.add(video.ambient_type)
        for c in range(settings.clips_per_video):
            plan = plan_clip(settings, video, c, CFG)
            verbs.add(plan.verb)
            texts.add(plan.text)
            for e in plan.events:
                materials.add(e.material)
                offscreen += not e.visible
                pair = (e.material, video.ambient_type)
                (shifted_pairs if split == "test_shifted" else train_pairs).add(pair)
        for obj in video.objects:
            in_held = obj.material in held[video.ambient_type]
            assert in_held == (split == "test_shifted")
    assert verbs >= set(vocab.SOUNDING_VERBS) | set(vocab.SILENT_VERBS)
    assert len(materials) >= 6 and len(ambients) >= 6 and "near_silence" in vocab.AMBIENT_TYPES
    assert offscreen > 0
    assert shifted_pairs and not shifted_pairs & train_pairs
    assert all(t.startswith("#C C ") for t in texts) and len(texts) > 50


def test_sound_bank_naming_licence_and_onset(tmp_path):
    assert classify(Path("metal/knock_01.wav")) == ("metal", "knock")
    assert classify(Path("glass_tap-2.flac")) == ("glass", "tap")
    assert classify(Path("x/wood-drops.ogg")) == ("wood", "drop")
    assert classify(Path("metal/notes.wav")) is None
    bank_dir = tmp_path / "bank"
    t = np.arange(int(0.5 * CFG.sample_rate)) / CFG.sample_rate
    ring = (np.sin(2 * np.pi * 700 * t) * np.exp(-t / 0.05)).astype(np.float32)
    lead = np.zeros(int(0.2 * CFG.sample_rate), np.float32)  # leading silence is trimmed
    for material in vocab.MATERIALS:
        for verb in ("tap", "drop"):
            save_audio(bank_dir / material / f"{verb}_01.wav", np.concatenate([lead, 0.5 * ring]))
    (bank_dir / "LICENSE").write_text("CC0 test recordings\n")
    bank = SoundBank.scan(bank_dir)
    settings = FoleyWorldSettings(videos=3, clips_per_video=4, seed=2, bank_probability=1.0)
    used = 0
    for clip in _clips(settings, bank):
        for e in clip.events:
            if e["verb"] in ("tap", "drop"):
                assert e["source"] == f"bank:{e['material']}/{e['verb']}_01.wav"
                start = round(e["onset"] * CFG.sample_rate)
                assert np.max(np.abs(clip.action[start : start + 80])) > 0.1 * np.max(
                    np.abs(clip.action[start : round(e["offset"] * CFG.sample_rate)])
                )
                used += 1
            else:
                assert e["source"] == "synth"
    assert used > 0
    out = tmp_path / "d"
    generate_dataset(
        out, FoleyWorldSettings(videos=1, clips_per_video=1), sound_bank=bank_dir, progress=False
    )
    meta = json.loads((out / "foleyworld.json").read_text())["sound_bank"]
    assert meta["licence"] == "LICENSE" and "CC0" in meta["licence_files"][0]["text"]
    assert len(meta["files"]) == 12


def test_materials_sound_different():
    from foley.data.foleyworld.synth import impact, object_modes

    rng = np.random.default_rng(0)
    length, centroid = {}, {}
    for material in vocab.MATERIALS:
        waves = [
            impact(object_modes(material, 0.35, s), 0.8, rng, CFG.sample_rate) for s in range(4)
        ]
        energy = [np.cumsum(w.astype(np.float64) ** 2) for w in waves]
        length[material] = np.mean([np.searchsorted(e, 0.95 * e[-1]) for e in energy])
        spectra = [np.abs(np.fft.rfft(w)) ** 2 for w in waves]
        freqs = [np.fft.rfftfreq(w.shape[0], 1 / CFG.sample_rate) for w in waves]
        centroid[material] = np.mean([(p * f).sum() / p.sum() for p, f in zip(spectra, freqs)])
    # metal rings longest, then glass, ceramic; wood and plastic thud; paper is a short rustle
    assert length["metal"] > length["glass"] > length["ceramic"] > length["wood"] > length["paper"]
    assert length["ceramic"] > length["plastic"] > length["paper"]
    assert centroid["glass"] > centroid["metal"] > centroid["wood"]


def test_offscreen_track_holds_exactly_the_offscreen_events(clips, tmp_path):
    from foley.data.ego4d import load_ground_truth
    from foley.data.foleyworld.generate import write_clip

    sr = CFG.sample_rate
    seen = 0
    for clip in clips:
        off = clip.offscreen
        hidden = [e for e in clip.events if not e["visible"]]
        spans = np.zeros(off.size, bool)
        for e in hidden:
            spans[int(round(e["onset"] * sr)) : int(round(e["offset"] * sr))] = True
        assert not np.any(off[~spans])  # nothing outside the off-screen events
        assert np.any(off) == bool(hidden)
        seen += bool(hidden)
        visible = np.zeros(off.size, bool)
        for e in clip.events:
            if e["visible"]:
                visible[int(round(e["onset"] * sr)) : int(round(e["offset"] * sr))] = True
        assert not np.any((clip.action - off)[~visible])  # the rest is the visible events
    assert seen >= 2
    write_clip(tmp_path, clips[0], CFG)
    gt = load_ground_truth(clips[0].record.gt_path(tmp_path))
    np.testing.assert_array_equal(gt["offscreen"], clips[0].offscreen)
