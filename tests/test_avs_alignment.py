"""AVS training negatives and the no-ground-truth alignment score (b) on constructed clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from foley.config import DEFAULT_CONFIG
from foley.metrics.avs import alignment_score, mask_evidence, reference_audios
from foley.models.avs import AVSModel, avs_loss
from tests.tiny import AVS_TINY
from training.train_avs import NEGATIVE_KINDS, mismatch_audio, sample_batch

TINY = AVS_TINY


pytestmark = pytest.mark.usefixtures("one_thread")


def toy_arrays(n: int, seed: int, size: int = 32, tc: int = 12) -> dict[str, np.ndarray]:
    """Cached clips as ``extract_avs_clips`` returns them: 3 s, ``tc`` frames 0.25 s apart.

    A grey square lights up red during 3 consecutive frames, and a 1 kHz tone sounds during
    exactly those frames' quarter seconds (plus a faint noise bed): the square is the sounding
    object while it is lit.
    """
    rng = np.random.default_rng(seed)
    sr = DEFAULT_CONFIG.sample_rate
    n_samples = int(3 * sr)
    hop = n_samples // tc
    frames = np.full((n, tc, size, size, 3), 50, np.uint8)
    masks = np.zeros((n, tc, size, size), bool)
    action = np.zeros((n, n_samples), np.float32)
    tone = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(hop) / sr)
    for i in range(n):
        on = np.arange(3) + rng.integers(0, tc - 3)
        frames[i, :, 10:22, 10:22] = 90
        frames[i, on, 10:22, 10:22] = (250, 60, 60)
        masks[i, on, 10:22, 10:22] = True
        for k in on:
            action[i, k * hop : (k + 1) * hop] = tone
    audio = action + 0.01 * rng.standard_normal((n, n_samples)).astype(np.float32)
    return {
        "frames": frames,
        "audio": audio,
        "action": action,
        "masks": masks,
        "frame_index": np.arange(0, 4 * tc, 4),
    }


def test_mismatch_audio_kinds():
    arr = toy_arrays(3, 0)
    rng = np.random.default_rng(0)
    sounding = arr["masks"][0].any((-1, -2))
    wave, keep = mismatch_audio(arr, 0, "shifted", rng)
    shifts = [k for k in range(12) if np.array_equal(wave, np.roll(arr["audio"][0], k * 4000))]
    assert len(shifts) == 1 and 2 <= shifts[0] <= 10
    assert np.array_equal(keep, np.roll(sounding, shifts[0]))
    for kind in ("other", "ambience", "silence"):
        wave, keep = mismatch_audio(arr, 0, kind, rng)
        assert not keep.any() and wave.shape == arr["audio"][0].shape
    assert np.allclose(
        mismatch_audio(arr, 0, "ambience", rng)[0], arr["audio"][0] - arr["action"][0]
    )
    assert not np.array_equal(mismatch_audio(arr, 0, "other", rng)[0], arr["audio"][0])
    with pytest.raises(ValueError):
        mismatch_audio(arr, 0, "louder", rng)


def test_swap_negative_keeps_the_time_and_changes_the_sound(tmp_path):
    """ "swap": this clip's ambience plus another clip's action track, of another material,
    starting when this clip's first sound does; no mask."""
    from training.train_avs import first_sound, material_ids, swap_partner

    arr = toy_arrays(6, 0)
    arr["action"] *= np.arange(1, 7, dtype=np.float32)[:, None]  # every clip its own level
    arr["audio"] = arr["action"] + 0.01
    arr["material"] = np.array(["metal", "metal", "wood", "", "glass,metal", "wood"])
    rng = np.random.default_rng(0)
    partners = {swap_partner(arr, 0, rng) for _ in range(40)}
    assert partners == {2, 5}  # not itself, no metal, not the clip without a sound
    for clip in range(6):
        wave, keep = mismatch_audio(arr, clip, "swap", np.random.default_rng(clip))
        assert not keep.any() and wave.dtype == np.float32
        moved = wave - (arr["audio"][clip] - arr["action"][clip])
        assert first_sound(moved) == first_sound(arr["action"][clip])
        assert not np.allclose(moved, arr["action"][clip], atol=1e-3)
    assert first_sound(np.zeros(10)) == 0 and first_sound(np.array([0, 0, 0.5])) == 2
    ids = material_ids(arr, np.array([0, 1, 2, 3, 3]))
    assert ids[0] == ids[1] != ids[2] and ids[3] < 0 and ids[3] == ids[4]
    del arr["material"]
    assert len(set(material_ids(arr, np.arange(4)).tolist())) == 4  # unknown: no groups
    from training.train_avs import clip_materials, visible_materials

    assert clip_materials(tmp_path, "train", ["a", "b"]).tolist() == ["", ""]  # no dataset
    events = [
        {"material": "wood", "visible": True},
        {"material": "metal", "visible": False},
        {"material": "glass"},
    ]
    assert visible_materials(events) == "glass,wood" and visible_materials([]) == ""


def test_contrastive_term_learns_which_object_sounds_which_way():
    """Each toy clip's square has one of four colours and its tone one of four pitches, tied
    together; trained on the contrastive term alone, a tiny model learns to pair each object
    with its own clip's sound (the loss falls from chance, log 4)."""
    from foley.models.avs import audio_visual_contrastive_loss

    torch.manual_seed(0)
    sr = DEFAULT_CONFIG.sample_rate
    arr = toy_arrays(4, 0)
    colours = np.array([(250, 60, 60), (60, 250, 60), (60, 60, 250), (250, 250, 60)], np.uint8)
    pitches = (300.0, 800.0, 2000.0, 4500.0)
    t = np.arange(arr["audio"].shape[1]) / sr
    for i in range(4):
        lit = arr["masks"][i]
        arr["frames"][i][lit] = colours[i]
        arr["action"][i] = np.where(
            arr["action"][i] != 0, 0.5 * np.sin(2 * np.pi * pitches[i] * t), 0
        )
        arr["audio"][i] = arr["action"][i]
    model = AVSModel(**TINY)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    tc = arr["frames"].shape[1]
    times = torch.from_numpy((arr["frame_index"] + 0.5) / DEFAULT_CONFIG.fps).float().expand(4, -1)
    frames = torch.from_numpy(arr["frames"]).permute(0, 1, 4, 2, 3).float() / 255.0
    wave, masks = torch.from_numpy(arr["audio"]), torch.from_numpy(arr["masks"])
    losses = []
    for _ in range(40):
        out = model(frames, wave, times, return_features=True)
        loss = audio_visual_contrastive_loss(model, out, masks)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert tc == 12 and losses[0] > 1.0
    assert np.mean(losses[-5:]) < 0.3
    # a group of alike clips: their pairs are left out, so the loss only sees the others
    out = model(frames, wave, times, return_features=True)
    grouped = audio_visual_contrastive_loss(model, out, masks, groups=torch.tensor([0, 0, 1, 2]))
    assert float(grouped) <= float(audio_visual_contrastive_loss(model, out, masks)) + 1e-6
    # the true audio can be given apart from what the network was fed
    fed = model(frames, torch.zeros_like(wave), times, return_features=True)
    given = audio_visual_contrastive_loss(model, fed, masks, wave=wave, frame_times=times)
    assert float(given) < 0.5
    # fewer than two clips with a visible sounding object: nothing to contrast
    one = masks.clone()
    one[1:] = False
    assert float(audio_visual_contrastive_loss(model, out, one)) == 0.0


def test_sample_batch_negatives():
    arr = toy_arrays(6, 0)
    plain = sample_batch(arr, np.random.default_rng(1), 16, 4)
    assert (plain["negative"] == 0).all()
    batch = sample_batch(arr, np.random.default_rng(1), 16, 4, negatives=1.0)
    again = sample_batch(arr, np.random.default_rng(1), 16, 4, negatives=1.0)
    assert torch.equal(batch["wave"], again["wave"]) and torch.equal(batch["masks"], again["masks"])
    kinds = batch["negative"]
    assert (kinds > 0).all() and int(kinds.max()) <= len(NEGATIVE_KINDS)
    for i in range(16):
        name = NEGATIVE_KINDS[int(kinds[i]) - 1]
        if name != "shifted":
            assert not batch["masks"][i].any()
        # same clips and frames as the plain batch; a negative only ever removes mask pixels
        assert torch.equal(batch["frames"][i], plain["frames"][i])
        assert not (batch["masks"][i] & ~plain["masks"][i]).any()


def test_reference_audios():
    wave = torch.arange(16000.0)[None]  # 1 s at 16 kHz
    refs = reference_audios(wave, 3, 16000, "shift", min_shift_seconds=0.25)
    # rolled later by 4000, 8000 and 12000 samples: sample 0 now holds what was at N - lag
    assert [int(r[0, 0]) for r in refs] == [12000, 8000, 4000]
    shuffled = reference_audios(wave, 2, 16000, "shuffle", block_seconds=0.25, seed=3)
    assert all(torch.equal(r.sort().values, wave) for r in shuffled)
    with pytest.raises(ValueError):
        reference_audios(wave, 2, 16000, "reverse")
    probs = torch.zeros(1, 2, 4, 4)
    probs[0, 0, 0, 0] = 0.8
    assert float(mask_evidence(probs, "mean")) == pytest.approx(0.8 / 32)
    assert float(mask_evidence(probs, "peak")) == pytest.approx(0.4)


def test_alignment_score_of_a_tiny_trained_model():
    """Trained with mistimed negatives, the model draws the lit square only when the tone sounds
    at the same time; score (b) then ranks the true audio above the same audio 1 s late and
    above another clip's audio, and a model that never fires scores 0.5 (no evidence)."""
    torch.manual_seed(0)
    arr = toy_arrays(16, 0)
    model = AVSModel(**TINY)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(100):
        b = sample_batch(arr, np.random.default_rng([0, step]), 4, 6, negatives=0.5)
        out = model(b["frames"], b["wave"], b["frame_times"], return_features=True)
        loss, _ = avs_loss(out, b["masks"], frame_weight=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    test = toy_arrays(8, 1)
    frames = torch.from_numpy(test["frames"]).permute(0, 1, 4, 2, 3).float() / 255.0
    wave = torch.from_numpy(test["audio"])
    true = alignment_score(model, frames, wave, num_shuffles=6)
    late = alignment_score(model, frames, wave.roll(16000, 1), num_shuffles=6)
    other = alignment_score(model, frames, wave.roll(1, 0), num_shuffles=6)
    assert true.shape == (8,) and ((true >= 0) & (true <= 1)).all()
    assert float(true.mean()) > 0.9
    assert float(late.mean()) < 0.5
    assert float(true.mean()) > float(other.mean()) + 0.2
    one = alignment_score(model, frames[0], wave[0], num_shuffles=6)
    assert isinstance(one, float) and one == pytest.approx(float(true[0]))
    silent = alignment_score(model, frames, torch.zeros_like(wave), num_shuffles=4)
    assert torch.allclose(silent, torch.full_like(silent, 0.5))


def test_frame_term_and_negative_mix():
    from foley.errors import InputError
    from training.train_avs import parse_mix

    torch.manual_seed(0)
    arr = toy_arrays(2, 0)
    b = sample_batch(arr, np.random.default_rng(0), 2, 4)
    out = AVSModel(**TINY)(b["frames"], b["wave"], b["frame_times"], return_features=True)
    plain, parts = avs_loss(out, b["masks"])
    with_frame, parts_f = avs_loss(out, b["masks"], frame_weight=2.0)
    assert "frame" not in parts and parts_f["frame"] > 0
    assert float(with_frame) == pytest.approx(float(plain) + 2.0 * parts_f["frame"], rel=1e-5)
    assert np.allclose(parse_mix("shifted=1,silence=3"), [0.25, 0.0, 0.0, 0.75, 0.0])
    with pytest.raises(InputError):
        parse_mix("louder=1")
