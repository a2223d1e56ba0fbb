"""The frame-rate ("stft") codec: exact framing, the FoleyCodec API, learning, the trainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from foley.cli.main import main
from foley.errors import ModelMismatchError
from foley.io import save_audio
from foley.models.codec import FoleyCodec
from foley.models.codec_losses import multiscale_mel_loss
from foley.models.stft_codec import istft_same, stft_same
from training.common import read_metrics

TINY = dict(architecture="stft", latent_dim=8, stft_dim=16, stft_layers=1, stft_mult=2)


def test_same_padded_stft_inverts_exactly():
    wave = torch.randn(3, 320 * 17, dtype=torch.float64)
    spec = stft_same(wave, 1280, 320)
    assert spec.shape == (3, 641, 17)  # one frame per hop: the latent rate
    torch.testing.assert_close(istft_same(spec, 1280, 320), wave, atol=1e-9, rtol=0)


def test_frame_t_describes_its_own_hop():
    """An impulse in hop t shows up most in frame t (frames line up with latent frames)."""
    wave = torch.zeros(1, 320 * 10)
    wave[0, 320 * 6 + 160] = 1.0
    energy = stft_same(wave, 1280, 320).abs().square().sum(1)[0]
    assert int(energy.argmax()) == 6


def test_stft_codec_keeps_the_codec_api(tmp_path):
    torch.manual_seed(0)
    codec = FoleyCodec(**TINY).eval()
    wave = torch.randn(2, 16_000 + 7) * 0.1
    z = codec.encode(wave)
    assert z.shape == (2, 51, 8)  # ceil(N / 320)
    assert codec.decode(z, wave.shape[-1]).shape == wave.shape
    assert codec.decode(z).shape == (2, 51 * 320)
    codec.save_pretrained(tmp_path / "codec")
    loaded = FoleyCodec.from_pretrained(tmp_path / "codec").eval()
    assert loaded.config.architecture == "stft"
    with torch.no_grad():
        torch.testing.assert_close(loaded.decode(loaded.encode(wave)), codec.decode(z))


def test_unknown_architecture_is_one_clear_error():
    with pytest.raises(ModelMismatchError, match="unknown codec architecture 'wavenet'"):
        FoleyCodec(architecture="wavenet")


def test_stft_codec_learns_a_clip():
    torch.manual_seed(0)
    t = torch.arange(8000) / 16000
    wave = (0.3 * torch.sin(2 * torch.pi * 440 * t) * torch.exp(-6 * t)).unsqueeze(0)
    codec = FoleyCodec(**{**TINY, "stft_dim": 32})
    opt = torch.optim.Adam(codec.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        recon, _ = codec(wave)
        loss = multiscale_mel_loss(wave, recon, 16_000)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_trainer_trains_and_exports_the_stft_codec(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "audio"
    for i in range(3):
        save_audio(data / f"c{i}.wav", (0.2 * rng.standard_normal(8000)).astype(np.float32))
    out = tmp_path / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        argv = ["train", "codec", "--data", str(data), "--out", str(out), "--preset", "stft",
                "--stft-dim", "16", "--stft-layers", "1", "--latent-dim", "8",
                "--disc-filters", "2", "--batch-size", "2", "--crop-seconds", "0.25",
                "--steps", "4", "--adv-start", "2", "--save-every", "4", "--log-every", "1",
                "--stats-clips", "2", "--cpu"]  # fmt: skip
        assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    codec = FoleyCodec.from_pretrained(out / "model")
    assert codec.config.architecture == "stft" and codec.config.stft_dim == 16
    rows = read_metrics(out)
    assert any("disc" in r for r in rows)  # the discriminator ran from --adv-start on


def test_complex_loss_sees_the_phase_that_magnitude_losses_miss():
    from foley.models.codec_losses import complex_stft_loss

    t = torch.arange(16_000) / 16_000
    a = torch.sin(2 * torch.pi * 500 * t).unsqueeze(0)
    b = torch.cos(2 * torch.pi * 500 * t).unsqueeze(0)  # same magnitude, phase shifted
    quiet = 1e-4 * torch.randn(1, 16_000, generator=torch.Generator().manual_seed(0))
    assert float(complex_stft_loss(a, a)) == 0.0

    def share(loss) -> float:  # the phase shift's loss as a share of losing the whole sound
        return float(loss(a, b)) / float(loss(a, quiet))

    mel = share(lambda x, y: multiscale_mel_loss(x, y, 16_000))
    assert share(complex_stft_loss) > 0.6 > 4 * mel


def test_complex_loss_below_max_hz_ignores_high_band_differences():
    """A difference above max_hz (a 5 kHz tone added) costs next to nothing with max_hz=1500
    (window side lobes only, lifted by the compression) and something without; one below (a
    500 Hz tone) costs in both (more per bin with the limit: the mean is over fewer bins)."""
    from foley.models.codec_losses import complex_stft_loss

    t = torch.arange(16_000) / 16_000
    ref = 0.1 * torch.randn(1, 16_000, generator=torch.Generator().manual_seed(0))
    low = ref + 0.05 * torch.sin(2 * torch.pi * 500 * t)
    high = ref + 0.05 * torch.sin(2 * torch.pi * 5000 * t)
    assert complex_stft_loss(ref, high, max_hz=1500.0) < 0.1 * complex_stft_loss(ref, high)
    assert complex_stft_loss(ref, low, max_hz=1500.0) > complex_stft_loss(ref, low)
