"""FoleyCodec, its losses, balancer, quality metrics and trainer, with tiny real models."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from foley.config import DEFAULT_CONFIG
from foley.errors import InputError, ModelMismatchError
from foley.metrics.audio_quality import (
    log_spectral_distance,
    mel_distance,
    mu_law,
    reconstruction_metrics,
    si_sdr,
)
from foley.models.codec import FoleyCodec
from foley.models.codec_losses import LossBalancer, multiscale_mel_loss

SR = DEFAULT_CONFIG.sample_rate


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_codec(**kwargs) -> FoleyCodec:
    torch.manual_seed(0)
    return FoleyCodec(**{"n_filters": 4, "latent_dim": 8, "lstm_layers": 1, **kwargs}).eval()


def plucks(batch: int, seconds: float, seed: int = 0) -> torch.Tensor:
    """Decaying tones with onsets over quiet noise, ``(batch, N)``."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    out = 0.01 * rng.standard_normal((batch, n))
    for b in range(batch):
        for _ in range(3):
            i = int(rng.uniform(0, 0.8) * n)
            f, decay = rng.uniform(300, 2500), rng.uniform(15, 50)
            out[b, i:] += 0.3 * np.sin(2 * np.pi * f * t[: n - i]) * np.exp(-decay * t[: n - i])
    return torch.from_numpy(out.astype(np.float32))


# ---- model -----------------------------------------------------------------------------------
def test_latent_shape_and_rate_follow_the_config():
    codec = tiny_codec()
    assert codec.hop_length == DEFAULT_CONFIG.hop_length
    assert codec.latent_rate == DEFAULT_CONFIG.latent_rate == 50
    wave = plucks(2, DEFAULT_CONFIG.clip_seconds)
    with torch.no_grad():
        z = codec.encode(wave)
    assert z.shape == (2, DEFAULT_CONFIG.latents_per_clip, 8)  # (batch, 150, latent_dim)


@pytest.mark.parametrize("num_samples", [1, 319, 320, 321, 4799])
def test_any_length_round_trips_to_the_same_length(num_samples):
    codec = tiny_codec()
    wave = plucks(3, 0.3)[:, :num_samples]
    with torch.no_grad():
        z = codec.encode(wave)
        assert z.shape == (3, DEFAULT_CONFIG.num_latents(num_samples), 8)
        assert codec.decode(z, num_samples).shape == (3, num_samples)
        assert codec.decode(z).shape == (3, z.shape[1] * codec.hop_length)


def test_items_of_a_batch_are_independent():
    codec = tiny_codec()
    wave = plucks(2, 0.5)
    with torch.no_grad():
        both = codec.decode(codec.encode(wave), wave.shape[-1])
        first = codec.decode(codec.encode(wave[:1]), wave.shape[-1])
    torch.testing.assert_close(both[:1], first, atol=1e-5, rtol=1e-4)


def test_bad_inputs_are_one_line_errors():
    codec = tiny_codec()
    with pytest.raises(InputError, match="batch, num_samples"):
        codec.encode(torch.zeros(100))
    with pytest.raises(InputError, match="no samples"):
        codec.encode(torch.zeros(1, 0))
    with pytest.raises(ModelMismatchError, match="latents must be"):
        codec.decode(torch.zeros(1, 5, 3))
    with pytest.raises(InputError, match="num_samples"):
        codec.decode(torch.zeros(1, 5, 8), num_samples=5 * 320 + 1)
    with pytest.raises(ModelMismatchError):
        codec.set_latent_stats([0.0] * 3, [1.0] * 3)


def test_latent_stats_make_latents_unit_scale():
    codec = tiny_codec()
    waves = [plucks(4, 1.0, seed=s) for s in range(3)]
    mean, std = codec.measure_latent_stats(waves)
    before = torch.cat([codec.encode_raw(w).detach() for w in waves]).reshape(-1, 8)
    assert not torch.allclose(before.std(0), torch.ones(8), atol=1e-2)  # not unit already
    codec.set_latent_stats(mean, std)
    with torch.no_grad():
        z = torch.cat([codec.encode(w) for w in waves]).reshape(-1, 8)
    torch.testing.assert_close(z.mean(0), torch.zeros(8), atol=1e-3, rtol=0)
    torch.testing.assert_close(z.std(0), torch.ones(8), atol=1e-2, rtol=0)
    assert codec.config.latent_mean == pytest.approx(mean)


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    codec = tiny_codec(lstm_layers=2)
    codec.set_latent_stats([0.1 * i for i in range(8)], [1.0 + 0.5 * i for i in range(8)])
    codec.save_pretrained(tmp_path / "codec")
    loaded = FoleyCodec.from_pretrained(tmp_path / "codec").eval()
    assert loaded.config.latent_std == codec.config.latent_std
    wave = plucks(2, 0.7)
    with torch.no_grad():
        z1, z2 = codec.encode(wave), loaded.encode(wave)
        assert torch.equal(z1, z2)
        assert torch.equal(codec.decode(z1, 11_111), loaded.decode(z2, 11_111))
    raw = codec.encode_raw(wave).detach()
    torch.testing.assert_close(z1, (raw - torch.arange(8) * 0.1) / (1.0 + 0.5 * torch.arange(8)))


# ---- losses and balancer ---------------------------------------------------------------------
def test_balancer_gives_each_loss_its_weighted_share_of_the_gradient():
    y0 = torch.randn(2, 50, requires_grad=True)
    y = y0 * 1.0
    target = torch.randn(2, 50)
    losses = {"big": 1000 * (y - target).square().sum(), "small": 1e-3 * y.sum()}
    balancer = LossBalancer({"big": 1.0, "small": 3.0}, total_norm=2.0)
    norms = balancer.backward(losses, y)
    g_big = 1000 * 2 * (y0.detach() - target)
    g_small = torch.full_like(target, 1e-3)
    expected = 2.0 * (
        0.25 * g_big / g_big.norm(dim=1).mean() + 0.75 * g_small / g_small.norm(dim=1).mean()
    )
    torch.testing.assert_close(y0.grad, expected)
    assert norms["big"] == pytest.approx(float(g_big.norm(dim=1).mean()), rel=1e-5)
    state = balancer.state_dict()
    restored = LossBalancer({"big": 1.0, "small": 3.0})
    restored.load_state_dict(state)
    assert restored.state_dict() == state


def test_tiny_codec_trains_and_its_loss_falls():
    from training.train_codec import generator_losses

    codec = tiny_codec().train()
    wave = plucks(4, 0.5)
    opt = torch.optim.Adam(codec.parameters(), lr=3e-3, betas=(0.5, 0.9))
    balancer = LossBalancer({"l1": 0.1, "mel": 1.0, "stft": 1.0})
    history = []
    for _ in range(25):
        recon, losses = generator_losses(codec, None, wave, use_adv=False, sample_rate=SR)
        opt.zero_grad()
        balancer.backward(losses, recon)
        opt.step()
        history.append(float(losses["mel"].detach()))
    assert np.isfinite(history).all()
    assert np.mean(history[-3:]) < 0.7 * np.mean(history[:3]), history
    # and it reconstructs its input, not an average sound: each item is nearer its own input
    codec.eval()
    with torch.no_grad():
        recon = codec.decode(codec.encode(wave), wave.shape[-1])
    own = mel_distance(wave, recon)
    other = mel_distance(wave, recon.roll(1, dims=0))
    assert (own < other).all(), (own, other)


# ---- metrics ---------------------------------------------------------------------------------
def test_si_sdr_measures_known_noise_and_ignores_scale():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((2, SR)).astype(np.float32)
    noise = rng.standard_normal((2, SR)).astype(np.float32)
    noise *= np.linalg.norm(ref, axis=1, keepdims=True) / np.linalg.norm(noise, axis=1)[:, None]
    est = ref + 0.1 * noise  # 20 dB
    np.testing.assert_allclose(si_sdr(ref, est), 20.0, atol=0.2)
    np.testing.assert_allclose(si_sdr(ref, 0.3 * est), si_sdr(ref, est), atol=1e-6)
    assert si_sdr(ref, ref).min() > 60


def test_distances_are_zero_for_identity_and_grow_with_degradation():
    ref = plucks(2, 1.0).numpy()
    for fn in (mel_distance, log_spectral_distance):
        assert np.allclose(fn(ref, ref), 0.0)
    coarse, fine = mu_law(ref, bits=4), mu_law(ref, bits=8)
    for fn in (mel_distance, log_spectral_distance):
        assert (fn(ref, coarse) > fn(ref, fine)).all()
        assert (fn(ref, fine) > 0).all()
    assert (si_sdr(ref, fine) > si_sdr(ref, coarse)).all()
    assert np.abs(mu_law(ref, bits=16) - ref).max() < 1e-3
    metrics = reconstruction_metrics(ref, fine)
    assert set(metrics) == {"si_sdr", "mel_distance", "lsd"}
    mel = float(multiscale_mel_loss(torch.from_numpy(ref), torch.from_numpy(coarse), SR))
    assert mel > 0


# ---- trainer ---------------------------------------------------------------------------------
def _train_args(data, out, steps):
    from training import train_codec

    parser = argparse.ArgumentParser()
    train_codec.add_arguments(parser)
    return parser.parse_args(
        ["--data", str(data), "--out", str(out), "--preset", "small", "--steps", str(steps),
         "--n-filters", "2", "--disc-filters", "2", "--latent-dim", "4", "--batch-size", "2",
         "--crop-seconds", "0.25", "--adv-start", "1", "--save-every", "2", "--log-every", "1",
         "--stats-clips", "4", "--cpu"]
    )  # fmt: skip


def test_trainer_exports_and_resumes(tmp_path):
    from foley.io import save_audio
    from training import train_codec
    from training.common import read_metrics

    data = tmp_path / "wavs"
    for i, wave in enumerate(plucks(3, 0.6, seed=1).numpy()):
        save_audio(data / f"clip{i}.wav", wave)
    (data / "broken.wav").write_bytes(b"not audio")
    out = tmp_path / "run"
    assert train_codec.run(_train_args(data, out, 2)) == 0
    codec = FoleyCodec.from_pretrained(out / "model")
    assert codec.config.n_filters == 2 and len(codec.config.latent_std) == 4
    assert train_codec.run(_train_args(data, out, 3)) == 0  # resumes at step 2
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert "adv" in rows[-1] and "disc" in rows[-1] and "adv" not in rows[0]
    state = json.loads((out / "ckpt" / "step-0000003" / "trainer_state.json").read_text())
    assert state["step"] == 3 and state["n_filters"] == 2


def test_discriminator_warms_up_alone_on_part_of_each_crop(tmp_path):
    """--disc-warmup 1: at the first adversarial step only the discriminator trains (a "disc"
    loss, no "adv" for the generator); from the next one both. --disc-seconds judges a window."""
    from foley.io import save_audio
    from training import train_codec
    from training.common import read_metrics
    from training.train_codec import disc_view

    data = tmp_path / "wavs"
    for i, wave in enumerate(plucks(3, 0.6, seed=1).numpy()):
        save_audio(data / f"clip{i}.wav", wave)
    args = _train_args(data, tmp_path / "run", 3)
    args.disc_warmup, args.disc_seconds = 1, 0.15  # its largest STFT: 2048
    assert train_codec.run(args) == 0
    rows = read_metrics(tmp_path / "run")
    assert "disc" not in rows[0] and "adv" not in rows[0]
    assert "disc" in rows[1] and "adv" not in rows[1]
    assert "disc" in rows[2] and "adv" in rows[2]

    x = torch.arange(20.0).repeat(2, 1)
    view = disc_view(np.random.default_rng(0), 20, 5)
    assert view(x).shape == (2, 5) and torch.equal(view(x)[0], view(x)[1])
    assert torch.equal(view(x), view(x + 0))  # the same window for real and generated audio
    assert disc_view(np.random.default_rng(0), 20, 0)(x) is x


def test_trainer_refuses_a_folder_without_audio(tmp_path):
    from training import train_codec

    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no train.tsv and no audio"):
        train_codec.run(_train_args(tmp_path / "empty", tmp_path / "run", 1))


def _wavs(folder):
    from foley.io import save_audio

    for i, wave in enumerate(plucks(3, 0.6, seed=1).numpy()):
        save_audio(folder / f"clip{i}.wav", wave)
    return folder


def _init_codec(path):
    torch.manual_seed(3)
    codec = FoleyCodec(latent_dim=4, n_filters=2, lstm_layers=0)
    codec.save_pretrained(path)
    return codec


def test_init_from_starts_from_the_given_codec_and_its_config_wins(tmp_path):
    from training import train_codec

    data, init = _wavs(tmp_path / "wavs"), _init_codec(tmp_path / "init")
    out = tmp_path / "run"
    args = _train_args(data, out, 1)
    args.n_filters = args.latent_dim = None  # the preset says 8 filters, 64 latents
    args.init_from, args.lr, args.adv_start = str(tmp_path / "init"), 0.0, 10
    assert train_codec.run(args) == 0
    tuned = FoleyCodec.from_pretrained(out / "model")
    assert tuned.config.n_filters == 2 and tuned.config.latent_dim == 4
    ref = init.state_dict()
    for name, value in tuned.state_dict().items():
        if "latent" not in name:  # the latent stats are measured again on export
            assert torch.equal(value, ref[name]), name
    with pytest.raises(InputError, match="no FoleyCodec there"):
        bad = _train_args(data, tmp_path / "run2", 1)
        bad.init_from = str(data)
        train_codec.run(bad)


def test_early_stopping_stops_a_harmful_codec_fine_tune(tmp_path):
    from training import train_codec

    data, init = _wavs(tmp_path / "wavs"), _init_codec(tmp_path / "init")
    out = tmp_path / "run"
    args = _train_args(data, out, 8)
    args.init_from, args.lr, args.adv_start = str(tmp_path / "init"), 1.0, 100  # wrecks it
    args.patience, args.save_every, args.eval_split, args.eval_clips = 2, 1, "train", 3
    assert train_codec.run(args) == 0
    ckpts = sorted((out / "ckpt").iterdir())
    state = json.loads((ckpts[-1] / "trainer_state.json").read_text())
    assert state["stopped_early"] == 2 and state["best_step"] == 0
    tuned = FoleyCodec.from_pretrained(out / "model")  # the starting point, never replaced
    ref = init.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in tuned.state_dict().items() if "latent" not in k)
    assert train_codec.run(args) == 0  # a rerun of a stopped run does not train further
    assert sorted((out / "ckpt").iterdir())[-1] == ckpts[-1]


def test_freeze_encoder_trains_the_decoder_only_and_keeps_the_latents(tmp_path):
    """--freeze-encoder: the encoder's weights and the latent statistics stay bit-identical (so
    a denoiser trained on those latents stays valid); the decoder changes; the mel share is
    recorded."""
    from training import train_codec

    data, init = _wavs(tmp_path / "wavs"), _init_codec(tmp_path / "init")
    init.set_latent_stats(torch.full((4,), 0.25), torch.full((4,), 2.0))
    init.save_pretrained(tmp_path / "init")
    out = tmp_path / "run"
    args = _train_args(data, out, 3)
    args.init_from, args.lr, args.adv_start = str(tmp_path / "init"), 1e-2, 100
    args.freeze_encoder, args.mel_weight = True, 3.0
    assert train_codec.run(args) == 0
    tuned = FoleyCodec.from_pretrained(out / "model")
    ref = init.state_dict()
    state = tuned.state_dict()
    encoder = [k for k in state if k.startswith("encoder.")]
    decoder = [k for k in state if k.startswith("decoder.")]
    assert encoder and decoder
    assert all(torch.equal(state[k], ref[k]) for k in encoder)
    assert any(not torch.equal(state[k], ref[k]) for k in decoder)
    assert tuned.config.latent_mean == [0.25] * 4 and tuned.config.latent_std == [2.0] * 4
    wave = plucks(1, 0.6, seed=2)
    assert torch.equal(tuned.encode(wave), init.encode(wave))  # the same latents
    ckpt = sorted((out / "ckpt").iterdir())[-1]
    saved = json.loads((ckpt / "trainer_state.json").read_text())
    assert saved["freeze_encoder"] is True and saved["loss_weights"]["mel"] == 3.0

    with pytest.raises(InputError, match="--freeze-encoder needs --init-from"):
        bad = _train_args(data, tmp_path / "run2", 1)
        bad.freeze_encoder = True
        train_codec.run(bad)


def test_disc_gain_scales_what_the_discriminator_sees_and_disc_lr_is_its_own(tmp_path, monkeypatch):
    from encodec import msstftd

    from training import train_codec

    data = _wavs(tmp_path / "wavs")
    seen: list[float] = []
    forward = msstftd.MultiScaleSTFTDiscriminator.forward

    def recording(self, x):
        seen.append(float(x.detach().abs().max()))
        return forward(self, x)

    monkeypatch.setattr(msstftd.MultiScaleSTFTDiscriminator, "forward", recording)
    peaks = {}
    for gain in (1.0, 10.0):
        seen.clear()
        args = _train_args(data, tmp_path / f"run{gain}", 2)
        args.adv_start, args.disc_gain, args.disc_lr = 0, gain, 3e-3
        assert train_codec.run(args) == 0
        peaks[gain] = seen[1]  # step 0: generator's view of the fake, then the real crop
        ckpt = sorted((tmp_path / f"run{gain}" / "ckpt").iterdir())[-1]
        state = json.loads((ckpt / "trainer_state.json").read_text())
        assert state["disc_gain"] == gain and state["disc_lr"] == 3e-3
        opt_d = torch.load(ckpt / "optimizer_1.bin", weights_only=False)
        assert opt_d["param_groups"][0]["lr"] == 3e-3
    assert peaks[10.0] == pytest.approx(10 * peaks[1.0], rel=1e-5)
