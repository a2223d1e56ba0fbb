"""AudioScope: MixIT against brute force, mixture consistency, save/load, training, separate."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from foley.cli.main import main as cli
from foley.config import DEFAULT_CONFIG
from foley.errors import InputError
from foley.io import load_audio, probe_video, write_video
from foley.models.audioscope import WEIGHTINGS, AudioScope, mixit_loss, snr_loss, source_weights
from foley.pipelines.separation import separate_track

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(
    channels=16,
    num_blocks=2,
    n_fft=128,
    hop_length=32,
    embed_dim=8,
    frame_size=16,
    video_channels=(4,),
)


def tiny_model(seed: int = 0, **kw) -> AudioScope:
    torch.manual_seed(seed)
    return AudioScope(**{**TINY, **kw}).eval()


def test_mixit_assignment_equals_brute_force():
    g = torch.Generator().manual_seed(0)
    mixtures = torch.randn(3, 2, 64, generator=g)
    sources = torch.randn(3, 4, 64, generator=g)
    loss, assignment = mixit_loss(mixtures, sources)
    for b in range(3):
        best = None
        for combo in itertools.product(range(2), repeat=4):
            c = torch.tensor(combo)
            remix = torch.stack([sources[b][c == k].sum(0) for k in range(2)])
            value = float(snr_loss(mixtures[b], remix).sum())
            if best is None or value < best[0]:
                best = (value, combo)
        assert float(loss[b]) == pytest.approx(best[0], abs=1e-4)
        assert tuple(assignment[b].tolist()) == best[1]


def test_snr_loss_threshold_caps_at_30_db():
    y = torch.randn(1, 100)
    assert float(snr_loss(y, y)) == pytest.approx(-30.0, abs=1e-3)
    assert float(snr_loss(y, torch.zeros_like(y))) == pytest.approx(10 * np.log10(1.001), abs=1e-4)


def test_sources_sum_to_mixture_and_on_off_split():
    model = tiny_model()
    mix = torch.randn(2, 4000) * 0.3
    frames = torch.rand(2, 6, 3, 16, 16)
    on, off, out = model.on_screen(mix, frames)
    assert out.sources.shape == (2, 4, 4000)
    torch.testing.assert_close(out.sources.sum(1), mix, atol=1e-5, rtol=0)
    torch.testing.assert_close(on + off, mix)
    # the video matters to the classifier; the audio-only mode uses the null context
    other = model.classify(out.sources, torch.rand(2, 6, 3, 16, 16))
    assert not torch.allclose(other, out.logits)
    assert model.classify(out.sources, None).shape == (2, 4)


def test_save_load_round_trip(tmp_path):
    model = tiny_model(seed=3)
    model.save_pretrained(tmp_path / "m")
    loaded = AudioScope.from_pretrained(tmp_path / "m").eval()
    mix, frames = torch.randn(1, 3000), torch.rand(1, 4, 3, 16, 16)
    a, b = model(mix, frames), loaded(mix, frames)
    torch.testing.assert_close(a.sources, b.sources)
    torch.testing.assert_close(a.logits, b.logits)


def test_relative_weighting_keeps_the_top_source_and_gates_the_clip():
    # soft probabilities that rank well: on-screen sources at p 0.40 / 0.38, off at 0.15 / 0.10
    p = torch.tensor([[0.40, 0.38, 0.15, 0.10], [0.08, 0.06, 0.05, 0.04]])
    logits = torch.logit(p)
    torch.testing.assert_close(source_weights(logits, "probability"), p)
    w = source_weights(logits, "relative", temperature=0.1, offset=3.0)
    # the clip's most on-screen source: its own probability times sigmoid(offset)
    assert float(w[0, 0]) == pytest.approx(0.40 * float(torch.sigmoid(torch.tensor(3.0))), rel=1e-5)
    # the runner-up (0.09 logits below the top) is kept nearly as much; the off-screen pair fades
    assert float(w[0, 1]) > 0.8 * float(w[0, 0])
    assert float(w[0, 2:].max()) < 1e-3
    # relative to the probabilities, the on-screen share of the estimate rises
    assert float(w[0, :2].sum() / w[0].sum()) > 0.99 > float(p[0, :2].sum() / p[0].sum())
    # a clip whose best source is unlikely on screen is turned down as a whole (the gate)
    assert float(w[1].max()) < 0.08 and float(w[1].sum()) < 0.5 * float(w[0].sum())
    with pytest.raises(ValueError, match="weighting"):
        source_weights(logits, "softmax")


def test_weighting_from_config_old_configs_and_override(tmp_path):
    old = tiny_model(seed=2)
    assert old.config.weighting == "probability"  # what models saved before it existed get
    old.save_pretrained(tmp_path / "old")
    cfg_path = tmp_path / "old/config.json"
    cfg = json.loads(cfg_path.read_text())
    for key in ("weighting", "weight_temperature", "weight_offset"):
        cfg.pop(key)
    cfg_path.write_text(json.dumps(cfg))
    loaded = AudioScope.from_pretrained(tmp_path / "old").eval()
    assert loaded.config.weighting == "probability"
    mix, frames = torch.randn(1, 3000) * 0.3, torch.rand(1, 4, 3, 16, 16)
    on, off, out = loaded.on_screen(mix, frames)
    torch.testing.assert_close(on, (torch.sigmoid(out.logits)[..., None] * out.sources).sum(1))
    rel, _, _ = loaded.on_screen(mix, frames, "relative")
    w = source_weights(out.logits, "relative", 0.1, 3.0)
    torch.testing.assert_close(rel, (w[..., None] * out.sources).sum(1))
    new = tiny_model(seed=2, weighting="relative", weight_temperature=0.2, weight_offset=1.0)
    new.save_pretrained(tmp_path / "new")
    reloaded = AudioScope.from_pretrained(tmp_path / "new").eval()
    on2, off2, out2 = reloaded.on_screen(mix, frames)
    w2 = source_weights(out2.logits, "relative", 0.2, 1.0)
    torch.testing.assert_close(on2, (w2[..., None] * out2.sources).sum(1))
    torch.testing.assert_close(on2 + off2, mix)
    with pytest.raises(ValueError, match="weighting"):
        tiny_model(weighting="hard")


def test_cli_weighting_choices_match_the_model():
    from foley.cli.separate import WEIGHTINGS as cli_weightings

    assert cli_weightings == WEIGHTINGS


def test_tiny_model_mixit_loss_falls():
    """Mixtures of a tone and a noise burst: MixIT training separates them better."""
    rng = np.random.default_rng(0)
    t = np.arange(4000) / 16000

    def batch():
        tones = [np.sin(2 * np.pi * rng.uniform(200, 2000) * t) * 0.3 for _ in range(8)]
        noise = [rng.normal(0, 0.1, 4000) * (t > rng.uniform(0, 0.15)) for _ in range(8)]
        return torch.tensor(np.stack([tones, noise], 1), dtype=torch.float32)  # (8, 2, N)

    model = tiny_model().train()
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        mixtures = batch()
        loss, _ = mixit_loss(mixtures, model.separate(mixtures.sum(1)))
        optim.zero_grad()
        loss.mean().backward()
        optim.step()
        losses.append(loss.mean().item())
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 3.0  # dB


def test_separate_track_any_length_sums_to_mixture():
    model = tiny_model()
    cfg = DEFAULT_CONFIG
    n = int(7.3 * cfg.sample_rate)
    wave = np.random.default_rng(1).normal(0, 0.1, n).astype(np.float32)
    frames = np.random.default_rng(2).integers(0, 255, (int(7.3 * cfg.fps), 32, 32, 3), np.uint8)
    result = separate_track(model, wave, frames, cfg)
    assert result.on_screen.shape == (n,) and len(result.probabilities) == 3
    np.testing.assert_allclose(result.on_screen + result.off_screen, wave, atol=1e-6)
    short = separate_track(model, wave[:8000], None, cfg)  # shorter than a clip, audio only
    assert short.on_screen.shape == (8000,)
    # the weighting is the model's unless given; another rule changes the split, not the sum
    rel = separate_track(model, wave, frames, cfg, weighting="relative")
    np.testing.assert_allclose(rel.on_screen + rel.off_screen, wave, atol=1e-6)
    assert not np.allclose(rel.on_screen, result.on_screen)


def test_cli_separate_file_and_errors(tmp_path, capsys):
    model = tiny_model(seed=1)
    model.save_pretrained(tmp_path / "model")
    cfg = DEFAULT_CONFIG
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.1, int(4.5 * cfg.sample_rate)).astype(np.float32)
    frames = rng.integers(0, 255, (int(4.5 * cfg.fps), 32, 32, 3), np.uint8)
    src = tmp_path / "in.mp4"
    write_video(src, frames, cfg.fps, audio, cfg.sample_rate)
    args = ["separate", str(src), "--model", str(tmp_path / "model")]
    assert cli([*args, "-o", str(tmp_path / "on.mp4"), "--wav", str(tmp_path / "on.wav")]) == 0
    assert (
        cli(
            [
                *args,
                "-o",
                str(tmp_path / "off.mp4"),
                "--wav",
                str(tmp_path / "off.wav"),
                "--keep",
                "off-screen",
            ]
        )
        == 0
    )
    rel_args = ["-o", str(tmp_path / "rel.mp4"), "--wav", str(tmp_path / "rel.wav")]
    assert cli([*args, *rel_args, "--weighting", "relative"]) == 0
    assert not np.allclose(load_audio(tmp_path / "rel.wav"), load_audio(tmp_path / "on.wav"))
    on, off = load_audio(tmp_path / "on.wav"), load_audio(tmp_path / "off.wav")
    mixture = load_audio(src)
    np.testing.assert_allclose(on + off, mixture[: on.size], atol=1e-3)
    assert abs(probe_video(tmp_path / "on.mp4").duration - 4.5) < 0.1
    # an existing output is refused before any work; a missing model is one line
    before = (tmp_path / "on.wav").read_bytes()
    assert cli([*args, "-o", str(tmp_path / "on.mp4")]) == 1
    assert cli(["separate", str(src), "-o", str(tmp_path / "x.mp4"), "--model", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "already exists" in err and "no AudioScope model" in err
    assert "Traceback" not in err and (tmp_path / "on.wav").read_bytes() == before


@pytest.mark.slow
def test_trainer_runs_and_resumes(tmp_path):
    from foley.data.foleyworld import FoleyWorldSettings, generate_dataset
    from foley.models.mc3 import MC3Model
    from tests.tiny import MC3_TINY
    from training.train_audioscope import main as train

    generate_dataset(
        tmp_path / "data", FoleyWorldSettings(videos=3, clips_per_video=2, seed=5), progress=False
    )
    MC3Model(**MC3_TINY).save_pretrained(tmp_path / "mc3")
    args = [
        str(tmp_path / "data"),
        "-o",
        str(tmp_path / "run"),
        "--mc3",
        str(tmp_path / "mc3"),
        "--channels",
        "16",
        "--num-blocks",
        "2",
        "--batch-size",
        "2",
        "--val-every",
        "2",
    ]
    assert train([*args, "--steps", "2"]) == 0
    assert train([*args, "--steps", "4"]) == 0  # resumes at step 2
    steps = [json.loads(line)["step"] for line in (tmp_path / "run/metrics.jsonl").open()]
    assert max(steps) == 4 and steps.count(2) <= 2
    AudioScope.from_pretrained(tmp_path / "run/model")
    # the "sync" classifier on the frozen separator, from cached pair features
    sync_args = [*args[:1], "-o", str(tmp_path / "sync"), *args[3:5], "--batch-size", "2"]
    sync_args += ["--init", str(tmp_path / "run/model"), "--context", "sync", "--freeze-separator"]
    sync_args += ["--label-threshold", "0.5"]  # hard noisy labels (s8)
    assert train([*sync_args, "--pairs-per-clip", "1", "--steps", "2", "--val-every", "2"]) == 0
    assert (tmp_path / "sync/cache/train_pairs.npz").is_file()
    sync_model = AudioScope.from_pretrained(tmp_path / "sync/model")
    separator = AudioScope.from_pretrained(tmp_path / "run/model")
    assert sync_model.config.context == "sync"
    assert sync_model.config.weighting == "relative"  # what the trainer exports now
    torch.testing.assert_close(sync_model.mask.weight, separator.mask.weight)  # kept frozen
    # the separator alone (MixIT only): the classifier keeps its weights, no labels computed
    sep_args = [*args[:1], "-o", str(tmp_path / "sep"), *args[3:5], "--batch-size", "2"]
    sep_args += ["--init", str(tmp_path / "sync/model"), "--context", "sync"]
    sep_args += ["--classifier-weight", "0", "--lr", "0.01", "--steps", "2", "--val-every", "2"]
    assert train(sep_args) == 0
    sep_model = AudioScope.from_pretrained(tmp_path / "sep/model")
    assert not torch.equal(sep_model.mask.weight, sync_model.mask.weight)
    for name, p in sync_model.named_parameters():
        if name.split(".")[0] in ("coincidence", "head", "null_curves"):
            torch.testing.assert_close(dict(sep_model.named_parameters())[name], p)
    logged = [json.loads(line) for line in (tmp_path / "sep/metrics.jsonl").open()]
    assert any("mixit" in m for m in logged) and not any("bce" in m for m in logged)
    with pytest.raises(InputError, match="trains nothing"):
        train([*sep_args, "--freeze-separator", "-o", str(tmp_path / "sep2")])
    assert not (tmp_path / "sep2").exists()  # refused before any cache is built


def test_app_separate_only_takes_uploads(tmp_path):
    from app.separate import separate_upload
    from app.service import FoleyService, Limits

    uploads, elsewhere = tmp_path / "uploads", tmp_path / "elsewhere"
    uploads.mkdir(), elsewhere.mkdir()
    cfg = DEFAULT_CONFIG
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.1, 3 * cfg.sample_rate).astype(np.float32)
    frames = rng.integers(0, 255, (3 * int(cfg.fps), 32, 32, 3), np.uint8)
    for folder in (uploads, elsewhere):
        write_video(folder / "v.mp4", frames, cfg.fps, audio, cfg.sample_rate)
    service = FoleyService(
        lambda: None,
        limits=Limits(max_video_seconds=5.0),
        input_roots=[uploads],
        work_dir=tmp_path / "work",
    )
    result = separate_upload(service, tiny_model(), uploads / "v.mp4")
    on, off = load_audio(result.on_screen_wav), load_audio(result.off_screen_wav)
    np.testing.assert_allclose(on + off, load_audio(uploads / "v.mp4")[: on.size], atol=1e-3)
    with pytest.raises(InputError, match="not uploaded through the app") as err:
        separate_upload(service, tiny_model(), elsewhere / "v.mp4")
    assert str(tmp_path) not in str(err.value)
    with pytest.raises(InputError, match="--audioscope"):
        separate_upload(service, None, uploads / "v.mp4")


def test_sync_labels_follow_the_contacts():
    """A source whose onsets are the video's contacts correlates; the same clicks moved do not."""
    from foley.models.sync import sync_targets
    from training.train_audioscope import curve_correlation

    sr = DEFAULT_CONFIG.sample_rate
    rng = np.random.default_rng(0)

    def clicks(times):
        wave = rng.normal(0, 1e-4, 3 * sr).astype(np.float32)
        for t in times:
            i = int(t * sr)
            wave[i : i + 800] += np.exp(-np.arange(800) / 100.0) * rng.normal(0, 0.5, 800)
        return wave

    seen = clicks([0.4, 1.3, 2.2])
    video_curves = torch.from_numpy(sync_targets(seen))[None]  # (1, L, 2)
    sources = torch.from_numpy(np.stack([seen, clicks([0.8, 1.7, 2.6])]))[None]
    corr = curve_correlation(sources, video_curves)[0]
    assert corr[0] > 0.9 and corr[1] < 0.3


SYNC_TINY = dict(dim=8, channels=(4, 4), temporal_layers=1, input_size=16, head_dim=4)


def tiny_sync_model(seed: int = 0) -> AudioScope:
    return tiny_model(
        seed, context="sync", sync_config=SYNC_TINY, num_bands=4, coincidence_channels=8
    )


def test_sync_context_round_trip_and_frames(tmp_path):
    """The "sync" classifier reads the frames through its own (frozen) sync encoder: the same
    logits as from that encoder's curves; save/load keeps them; sources still sum back."""
    model = tiny_sync_model(seed=2)
    mix, frames = torch.randn(2, 4800) * 0.2, torch.rand(2, 5, 3, 16, 16)
    on, off, out = model.on_screen(mix, frames)
    torch.testing.assert_close(on + off, mix)
    curves = model.sync.encode(frames, 15)[1]  # 4800 samples / hop 320 = 15 latent frames
    torch.testing.assert_close(model.classify(out.sources, None, video_curves=curves), out.logits)
    assert not torch.allclose(model.classify(out.sources, None), out.logits)
    model.save_pretrained(tmp_path / "m")
    loaded = AudioScope.from_pretrained(tmp_path / "m").eval()
    torch.testing.assert_close(loaded(mix, frames).logits, out.logits)
    assert all(not p.requires_grad for p in model.sync.parameters())


def _coincidence_toy(rng: np.random.Generator, n: int) -> tuple[torch.Tensor, ...]:
    """``n`` pairs of click-train sources (1 s, same statistics); the video's (onset, level)
    curves follow one of the two at random, which is on screen. -> sources (n, 2, N),
    curves (n, 50, 2), labels (n, 2)."""
    sr, hop = 16000, 320
    centres = (np.arange(sr // hop) + 0.5) * hop / sr
    sources, curves, labels = [], [], []
    for _ in range(n):
        pair, times = [], []
        for _ in range(2):
            t = np.sort(rng.choice(np.arange(0.05, 0.9, 0.1), 3, replace=False))
            t = t + rng.uniform(0, 0.05, 3)
            wave = rng.normal(0, 1e-4, sr)
            for s in t:
                i = int(s * sr)
                wave[i : i + 800] += np.exp(-np.arange(800) / 100.0) * rng.normal(0, 0.3, 800)
            pair.append(wave)
            times.append(t)
        k = int(rng.integers(2))
        d = centres[:, None] - times[k][None]
        onset = np.exp(-0.5 * (d / 0.02) ** 2).max(1)
        level = np.where(d >= 0, np.exp(-np.abs(d) / 0.03), 0).max(1)
        sources.append(pair)
        curves.append(np.stack([onset, level], 1))
        labels.append([k == 0, k == 1])
    as_t = lambda x: torch.tensor(np.array(x), dtype=torch.float32)  # noqa: E731
    return as_t(sources), as_t(curves), as_t(labels)


def test_sync_context_learns_coincidence_audio_only_cannot():
    """Sources whose envelope follows the video's contacts are on screen: the sync classifier
    learns it; the same classifier without video (audio only) stays at chance."""
    from foley.metrics.retrieval import roc_auc

    rng = np.random.default_rng(0)
    train, test = _coincidence_toy(rng, 128), _coincidence_toy(rng, 48)
    aucs = {}
    for video in (True, False):
        model = tiny_sync_model(seed=0).train()
        feats = model.source_features(train[0])
        optim = torch.optim.Adam(model.parameters(), lr=1e-2)
        for step in range(60):
            idx = torch.from_numpy(np.random.default_rng(step).choice(128, 16))
            logits = model.classify_features(feats[idx], train[1][idx] if video else None)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, train[2][idx])
            optim.zero_grad()
            loss.backward()
            optim.step()
        with torch.no_grad():
            logits = model.eval().classify(test[0], None, test[1] if video else None)
        aucs[video] = roc_auc(logits.flatten().numpy(), test[2].flatten().numpy())
    assert aucs[True] > 0.9 and aucs[False] < 0.7, aucs
