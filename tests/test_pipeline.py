"""FoleyPipeline end to end with tiny real components, on clips generated in tmp_path."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from foley.config import AVConfig
from foley.errors import InputError
from foley.io import load_video, save_audio, write_video
from foley.pipelines.foley_pipeline import FoleyPipeline
from foley.pipelines.windows import plan_windows, stitch
from tests.tiny import tiny_pipeline

# a small contract keeps the tests fast: 1 s clips, 8 fps, 32 x 32 frames
CFG = AVConfig(clip_seconds=1.0, fps=8.0, frame_size=32)


def make_pipeline(seed: int = 0) -> FoleyPipeline:
    # unit-scale latents from a codec whose signal is not shrunk at every layer
    return tiny_pipeline(seed, cfg=CFG, codec_stats="measured", codec_gain=1.6)


@pytest.fixture(scope="module")
def pipe() -> FoleyPipeline:
    return make_pipeline()


def moving_square(num_frames: int, size: int = 48, seed: int = 0) -> np.ndarray:
    """uint8 (T, size, size, 3): a bright square moving over a noisy background."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 60, (num_frames, size, size, 3), dtype=np.uint8)
    for t in range(num_frames):
        x = (t * 3) % (size - 8)
        frames[t, 10:18, x : x + 8] = 230
    return frames


def gen(pipe, video, seed=0, **kw):
    kw.setdefault("num_inference_steps", 2)
    return pipe(video, generator=torch.Generator().manual_seed(seed), **kw)


def test_both_modes_from_a_file_match_the_video_length(pipe, tmp_path):
    video_path = write_video(tmp_path / "in.mp4", moving_square(23), fps=10.0)  # 2.3 s at 10 fps
    cond_path = save_audio(tmp_path / "cond.wav", 0.1 * np.sin(np.arange(7000) / 5.0))
    expected = CFG.num_samples(load_video(video_path, CFG, with_audio=False).duration)
    assert abs(expected - 2.3 * CFG.sample_rate) <= CFG.sample_rate / 10  # within a source frame
    for mode in ("ambient_joint", "action_focused"):
        out = gen(pipe, video_path, mode=mode, condition_audio=cond_path)
        audio = out.audios[0]
        assert audio.shape == (expected,) and audio.dtype == np.float32
        assert np.isfinite(audio).all() and np.abs(audio).max() > 0
        assert out.mode == mode and out.condition_ids == ["user"]
        assert out.condition_audios[0].shape == (CFG.samples_per_clip,)  # tiled to one clip


def test_same_seed_same_audio_and_condition_matters(pipe):
    frames = moving_square(20, size=32)
    cond = np.random.default_rng(0).normal(0, 0.1, CFG.samples_per_clip).astype(np.float32)
    a = gen(pipe, frames, seed=3, condition_audio=cond).audios[0]
    b = gen(pipe, frames, seed=3, condition_audio=cond).audios[0]
    c = gen(pipe, frames, seed=4, condition_audio=cond).audios[0]
    d = gen(pipe, frames, seed=3, condition_audio=cond[::-1].copy()).audios[0]
    e = gen(pipe, frames, seed=3, mode="no_condition").audios[0]
    np.testing.assert_array_equal(a, b)
    assert a.shape == (20 * 2000,)
    lat = gen(pipe, frames, seed=3, condition_audio=cond, output_type="latent")
    windows = len(plan_windows(20, CFG.frames_per_clip, 1, CFG.samples_per_frame, a.size).seams) + 1
    assert lat.audios is None and lat.latents[0].shape == (windows, CFG.latents_per_clip, 8)
    for other in (c, d, e):
        assert np.abs(a - other).max() > 1e-6


def test_batch_of_videos_of_different_lengths(pipe):
    videos = [moving_square(5, size=32), moving_square(30, size=32, seed=1), moving_square(8, 32)]
    out = gen(pipe, videos, mode="no_condition", max_batch_windows=2)
    assert [a.shape[0] for a in out.audios] == [5 * 2000, 30 * 2000, 8 * 2000]
    assert out.condition_ids == [None, None, None]
    # float frames (T, 3, S, S) give the same audio as the uint8 frames they come from
    as_tensor = torch.from_numpy(videos[2]).permute(0, 3, 1, 2).float() / 255.0
    one = gen(pipe, videos[2], mode="no_condition").audios[0]
    np.testing.assert_allclose(gen(pipe, as_tensor, mode="no_condition").audios[0], one, atol=1e-6)


def test_save_load_round_trip(pipe, tmp_path):
    frames = moving_square(12, size=32)
    cond = np.random.default_rng(1).normal(0, 0.1, 9000).astype(np.float32)
    before = gen(pipe, frames, condition_audio=cond).audios[0]
    pipe.save_pretrained(tmp_path / "p")
    loaded = FoleyPipeline.from_pretrained(tmp_path / "p")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.av_config == CFG and loaded.mc3 is None and loaded.index is None
    np.testing.assert_allclose(
        gen(loaded, frames, condition_audio=cond).audios[0], before, atol=1e-6
    )


def test_long_video_seams_have_no_click(pipe):
    """The sample-to-sample change around each seam is no larger than inside the windows."""
    frames = moving_square(64, size=32)  # 8 s: several 1 s windows
    audio = gen(pipe, frames, mode="no_condition", overlap_seconds=0.25).audios[0]
    plan = plan_windows(64, CFG.frames_per_clip, 2, CFG.samples_per_frame, audio.size)
    assert len(plan.start_frames) > 5
    # local discontinuity: mean |x[n+1] - x[n]| over 2 ms, at every crossfade edge and centre
    local = np.convolve(np.abs(np.diff(audio)), np.ones(32) / 32, mode="same")
    half = plan.crossfade_samples // 2
    seam_points = [p for s in plan.seams for p in (s - half, s, s + half)]
    at_seams = local[seam_points].max()
    mask = np.ones(local.size, bool)
    for s in plan.seams:
        mask[s - half - 64 : s + half + 64] = False
    inside = local[mask]
    assert at_seams <= np.percentile(inside, 99.5), (at_seams, np.percentile(inside, 99.5))
    assert np.median(inside) > 0  # a real signal, not silence


def test_stitch_crossfades_keep_the_level():
    rng = np.random.default_rng(0)
    plan = plan_windows(30, 8, 2, 100.0, 3000)
    n = len(plan.start_frames)
    # every frame is covered; consecutive windows overlap by at least the asked overlap
    starts = plan.start_frames
    assert starts[0] == 0 and starts[-1] + 8 == 30
    assert all(b - a <= 6 for a, b in zip(starts, starts[1:]))
    # a different DC offset per window: a hard cut would step by 1.0
    waves = rng.normal(0, 0.1, (n, plan.window_samples)) + np.arange(n)[:, None]
    for kind in ("adaptive", "equal_power", "linear"):
        assert np.abs(np.diff(stitch(waves.astype(np.float32), plan, kind))).max() < 0.9
    # windows cut from one signal (fully correlated): adaptive and linear give it back exactly
    signal = rng.normal(0, 0.3, 3000)
    same = np.stack([signal[s : s + plan.window_samples] for s in plan.start_samples])
    for kind in ("adaptive", "linear"):
        np.testing.assert_allclose(stitch(same, plan, kind), signal, atol=1e-6)
    # independent noise per window: adaptive keeps the power across seams, linear dips 3 dB
    noise = rng.normal(0, 1.0, (n, plan.window_samples))
    centres = np.concatenate([np.arange(s - 30, s + 30) for s in plan.seams])
    for kind, low, high in (("adaptive", 0.8, 1.25), ("linear", 0.35, 0.7)):
        power = np.mean(stitch(noise, plan, kind)[centres] ** 2)
        assert low < power < high, (kind, power)


def test_check_inputs_errors(pipe):
    frames = moving_square(8, size=32)
    cases = [
        (dict(mode="loud"), "mode must be"),
        (dict(num_inference_steps=0), "num_inference_steps"),
        (dict(guidance_scale=-1.0), "guidance_scale"),
        (dict(overlap_seconds=0.9), "overlap_seconds"),
        (dict(), "pass condition_audio"),  # retrieval without an index
        (dict(condition_audio=[np.ones(10)] * 2), "one condition_audio"),
        (dict(condition_audio=np.zeros(0)), "condition_audio is empty"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InputError, match=message):
            gen(pipe, frames, **kwargs)
    with pytest.raises(InputError, match="32x32"):
        gen(pipe, moving_square(8, size=48), mode="no_condition")
    with pytest.raises(InputError, match="uint8"):
        gen(pipe, frames.astype(np.float32), mode="no_condition")


def test_retrieval_modes_pick_the_nearest_clip_and_survive_save_load(tmp_path):
    from foley.models.mc3 import MC3Model
    from retrieval_index import ClipIndex

    torch.manual_seed(0)
    mc3 = MC3Model(
        embed_dim=16,
        audio_channels=(4, 8),
        video_dim=8,
        video_channels=(4, 8),
        video_frame_size=32,
        text_dim=384,
    ).eval()
    rng = np.random.default_rng(0)
    t = np.arange(CFG.samples_per_clip) / CFG.sample_rate
    waves, rows = [], []
    for i, level in enumerate([-20.0, -30.0, -60.0, -70.0]):
        wave = 0.3 * np.sin(2 * np.pi * (200 + 300 * i) * t) + rng.normal(0, 0.05, t.size)
        path = save_audio(tmp_path / "clips" / f"c{i}.wav", wave.astype(np.float32))
        waves.append(wave.astype(np.float32))
        rows.append(
            {
                "clip_path": str(path),
                "video_uid": f"v{i}",
                "narration": "knock",
                "ambient_db": level,
                "split": "train",
            }
        )
    with torch.no_grad():
        audio_emb = mc3.encode_audio(torch.from_numpy(np.stack(waves))).numpy()
    index = ClipIndex.create(tmp_path / "index", model_id="mc3-test", dim=16)
    index.add([f"clip{i}" for i in range(4)], audio_emb, rows)

    pipe = make_pipeline()
    pipe.set_retrieval(mc3, index)
    frames = moving_square(CFG.frames_per_clip, size=32)  # exactly one window
    with torch.no_grad():
        query = mc3.encode_video(torch.from_numpy(frames).permute(0, 3, 1, 2)[None] / 255.0)
    sims = (audio_emb @ query[0].numpy()).tolist()
    expect_joint = int(np.argmax(sims))
    expect_focused = 2 + int(np.argmax(sims[2:]))  # only clips at or below -50 dBFS
    joint = gen(pipe, frames, mode="ambient_joint")
    focused = gen(pipe, frames, mode="action_focused", ambient_db_max=-50.0)
    assert joint.condition_ids == [f"clip{expect_joint}"]
    assert focused.condition_ids == [f"clip{expect_focused}"]
    assert focused.condition_scores[0] == pytest.approx(sims[expect_focused], abs=1e-4)
    np.testing.assert_allclose(focused.condition_audios[0], waves[expect_focused], atol=1e-4)
    with pytest.raises(InputError, match="ambient_db_max"):
        gen(pipe, frames, mode="action_focused", ambient_db_max=-90.0)
    # an explicit condition overrides retrieval
    assert gen(pipe, frames, condition_audio=waves[0]).condition_ids == ["user"]

    # one directory holds everything: the retriever (mc3/ and index/) comes back with the
    # pipeline, listed in model_index.json as one component
    pipe.save_pretrained(tmp_path / "p")
    loaded = FoleyPipeline.from_pretrained(tmp_path / "p")
    loaded.set_progress_bar_config(disable=True)
    listed = json.loads((tmp_path / "p" / "model_index.json").read_text())
    assert listed["retriever"] == ["foley.retrieval", "ClipRetriever"] and "mc3" not in listed
    assert (tmp_path / "p" / "retriever" / "index").is_dir() and loaded.index is not None
    assert not (tmp_path / "p" / "mc3").exists() and not (tmp_path / "p" / "index").exists()
    again = gen(loaded, frames, mode="action_focused", ambient_db_max=-50.0)
    assert again.condition_ids == focused.condition_ids
    np.testing.assert_allclose(again.audios[0], focused.audios[0], atol=1e-5)


def test_action_focused_conditions_on_the_nearest_clips_action_track(tmp_path):
    """A clip with an action-only track (a FoleyWorld .gt.npz, packed to an .ogg) competes in
    action-focused retrieval whatever its own ambience, and its track is the condition."""
    from foley.models.mc3 import MC3Model
    from foley.retrieval import ACTION_KEY, ClipRetriever, _pack
    from retrieval_index import ClipIndex

    torch.manual_seed(0)
    mc3 = MC3Model(
        embed_dim=16, audio_channels=(4, 8), video_dim=8, video_channels=(4, 8),
        video_frame_size=32, text_dim=384,
    ).eval()  # fmt: skip
    rng = np.random.default_rng(1)
    t = np.arange(CFG.samples_per_clip) / CFG.sample_rate
    waves, actions, rows = [], [], []
    for i, level in enumerate([-20.0, -25.0, -60.0]):
        wave = 0.3 * np.sin(2 * np.pi * (200 + 300 * i) * t) + rng.normal(0, 0.05, t.size)
        action = np.zeros_like(wave)
        action[4000:4800] = 0.5 * np.sign(np.sin(np.arange(800)))
        wave, action = wave.astype(np.float32), action.astype(np.float32)
        waves.append(wave)
        actions.append(action)
        row = {
            "clip_path": str(save_audio(tmp_path / "src" / f"c{i}.wav", wave)),
            "video_uid": f"v{i}",
            "narration": "knock",
            "ambient_db": level,
            "split": "train",
        }
        if i < 2:  # clips 0 and 1 are FoleyWorld clips: their ground truth holds the track
            np.savez(tmp_path / "src" / f"c{i}.gt.npz", action=action)
            row[ACTION_KEY] = str(tmp_path / "src" / f"c{i}.gt.npz")
        rows.append(row)
    ids = [f"clip{i}" for i in range(3)]
    rows = _pack(ids, rows, tmp_path / "r", CFG)  # what a shipped index holds
    assert [r.get(ACTION_KEY) for r in rows] == [
        "clips/clip0.action.ogg", "clips/clip1.action.ogg", None
    ]  # fmt: skip
    with torch.no_grad():
        audio_emb = mc3.encode_audio(torch.from_numpy(np.stack(waves))).numpy()
    index = ClipIndex.create(tmp_path / "r" / "index", model_id="mc3-test", dim=16)
    index.add(ids, audio_emb, rows)
    retriever = ClipRetriever(mc3, index, root=tmp_path / "r")
    assert retriever.has_quiet_clip(-90.0)  # no clip that quiet, but two action tracks

    frames = moving_square(CFG.frames_per_clip, size=32)
    with torch.no_grad():
        query = mc3.encode_video(torch.from_numpy(frames).permute(0, 3, 1, 2)[None] / 255.0)
    sims = audio_emb @ query[0].numpy()
    video = torch.from_numpy(frames).permute(0, 3, 1, 2) / 255.0
    for threshold in (-50.0, -90.0):
        allowed = [0, 1] + ([2] if threshold >= -60.0 else [])
        best = max(allowed, key=lambda i: sims[i])
        hit = retriever.retrieve([video], "action_focused", ambient_db_max=threshold, cfg=CFG)[0]
        assert hit.id == f"clip{best}" and hit.score == pytest.approx(sims[best], abs=1e-4)
        if best < 2:
            assert hit.track == "action"
            assert np.corrcoef(hit.audio, actions[best])[0, 1] > 0.95  # (an ogg of it)
        else:
            assert hit.track == "mix"
    # each kind of hit, whatever the similarities: a track's clip, a quiet clip's own mix
    (own,) = retriever.retrieve([video], "action_focused", where={"video_uid": "v1"}, cfg=CFG)
    assert own.track == "action" and own.id == "clip1"
    assert np.corrcoef(own.audio, actions[1])[0, 1] > 0.95
    (quiet,) = retriever.retrieve(
        [video], "action_focused", ambient_db_max=-50.0, where={"video_uid": "v2"}, cfg=CFG
    )
    assert quiet.track == "mix" and quiet.id == "clip2"
    joint = retriever.retrieve([video], "ambient_joint", cfg=CFG)[0]
    assert joint.id == f"clip{int(np.argmax(sims))}" and joint.track == "mix"
    assert np.corrcoef(joint.audio, waves[int(np.argmax(sims))])[0, 1] > 0.95
    # with only the mix-only clip left, a threshold it misses is a one-line error
    with pytest.raises(InputError, match="action-only track or an ambient level at most -90"):
        retriever.retrieve(
            [video], "action_focused", ambient_db_max=-90.0, where={"video_uid": "v2"}, cfg=CFG
        )


def test_cli_generate_file_and_folder(pipe, tmp_path, capsys, monkeypatch):
    from foley.cli.main import main
    from foley.io import load_audio, probe_video

    model = tmp_path / "model"
    pipe.save_pretrained(model)
    src = tmp_path / "in"
    # one video with an audio track (to be replaced) at 12 fps, one silent at 30 fps
    write_video(src / "a.mp4", moving_square(30), fps=12.0, audio=np.full(40000, 0.5, np.float32))
    write_video(src / "b.mp4", moving_square(15), fps=30.0)
    cond = save_audio(tmp_path / "cond.wav", 0.1 * np.sin(np.arange(16000) / 3.0))
    common = ["--model", str(model), "--condition-audio", str(cond), "--steps", "2", "--quiet"]

    out = tmp_path / "a_out.mp4"
    argv = ["generate", str(src / "a.mp4"), "-o", str(out), "--wav", str(tmp_path / "a.wav")]
    assert main(argv + common) == 0
    info, duration = probe_video(out), load_video(src / "a.mp4", CFG, with_audio=False).duration
    assert info.has_audio and info.num_frames == probe_video(src / "a.mp4").num_frames
    wav = load_audio(tmp_path / "a.wav")
    assert wav.size == CFG.num_samples(duration)
    muxed = load_audio(out)
    assert abs(muxed.size - wav.size) < 2048  # AAC priming/padding at most a frame or two
    assert abs(float(np.median(muxed)) - 0.5) > 0.2  # the constant 0.5 track is gone

    assert main(["generate", str(src), "-o", str(tmp_path / "outdir")] + common) == 0
    assert sorted(p.name for p in (tmp_path / "outdir").iterdir()) == ["a.mp4", "b.mp4"]

    # no --model and no shipped default (pointed at an empty folder): one line, exit code 1
    import foley.pipelines.loading as loading

    monkeypatch.setattr(loading, "DEFAULT_MODEL_DIR", tmp_path / "no-default")
    capsys.readouterr()
    assert main(["generate", str(src / "a.mp4"), "-o", str(tmp_path / "x.mp4")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--model" in err[0]
