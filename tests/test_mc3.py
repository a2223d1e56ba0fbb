"""MC3: towers, the consensus term, training, save/load, offline MiniLM."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from foley.models.mc3 import MC3Model, packaged_minilm_path
from foley.models.mc3_losses import (
    MC3Objective,
    consensus_loss,
    consensus_score,
    info_nce,
    pair_cosines,
)
from tests.tiny import MC3_TINY

TINY = MC3_TINY


def _unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


# ---- consensus term ----------------------------------------------------------------------
def test_consensus_leaves_an_agreeing_triple_alone() -> None:
    torch.manual_seed(0)
    # identical embeddings: every pairwise cosine is 1
    base = _unit(torch.randn(4, 8))
    a, v, t = (base.clone().requires_grad_(True) for _ in range(3))
    loss = consensus_loss(a, v, t)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-10)
    assert max(float(x.grad.abs().max()) for x in (a, v, t)) < 1e-6
    # equal but imperfect agreement (all three cosines 0.5): still no push
    basis = torch.eye(4)
    a2 = _unit(basis[0] + basis[3])[None].requires_grad_(True)
    v2 = _unit(basis[1] + basis[3])[None].requires_grad_(True)
    t2 = _unit(basis[2] + basis[3])[None].requires_grad_(True)
    assert torch.allclose(pair_cosines(a2, v2, t2), torch.full((1, 3), 0.5))
    consensus_loss(a2, v2, t2).backward()
    assert max(float(x.grad.abs().max()) for x in (a2, v2, t2)) < 1e-6


def test_consensus_separates_a_pair_the_third_modality_disagrees_with() -> None:
    """Audio and video agree, text points elsewhere: descending the term pulls a and v apart."""
    a = _unit(torch.tensor([[1.0, 0.1, 0.0]])).requires_grad_(True)
    v = _unit(torch.tensor([[1.0, -0.1, 0.0]])).requires_grad_(True)
    t = _unit(torch.tensor([[0.0, 0.0, 1.0]]))
    before = float((a * v).sum().detach())
    opt = torch.optim.SGD([a, v], lr=0.05)
    for _ in range(20):
        opt.zero_grad()
        consensus_loss(_unit(a), _unit(v), t).backward()
        opt.step()
    after = float((_unit(a) * _unit(v)).sum().detach())
    assert before > 0.9
    assert after < before - 0.3
    # the consensus score flags the clip: min of its three cosines is the a-t / v-t one
    assert float(consensus_score(a, v, t).detach()) < 0.1


def test_info_nce_prefers_matching_rows() -> None:
    torch.manual_seed(0)
    x = _unit(torch.randn(8, 16))
    matched = info_nce(x, x, 10.0)
    shuffled = info_nce(x, x[torch.randperm(8)], 10.0)
    assert matched < shuffled


def test_objective_warmup_and_plain_av() -> None:
    emb = {k: _unit(torch.randn(4, 8)) for k in ("audio", "video", "text")}
    mc3 = MC3Objective(warmup_epochs=2)
    _, logs0 = mc3(emb, 10.0, epoch=0)
    _, logs2 = mc3(emb, 10.0, epoch=2)
    assert "consensus" not in logs0 and "consensus" in logs2
    assert set(logs0) == {"nce_av", "nce_at", "nce_vt", "loss"}
    plain = MC3Objective.plain_av()
    assert plain.modalities == {"audio", "video"}
    _, logs = plain({k: emb[k] for k in ("audio", "video")}, 10.0, epoch=5)
    assert set(logs) == {"nce_av", "loss"}
    with pytest.raises(ValueError):
        MC3Objective(pairs=("ax",))


# ---- model -------------------------------------------------------------------------------
def _batch(n: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    wave = torch.rand(n, 8000, generator=g) * 2 - 1
    frames = torch.rand(n, 6, 3, 40, 40, generator=g)
    return wave, frames


def test_towers_give_unit_vectors_in_one_space() -> None:
    torch.manual_seed(0)
    model = MC3Model(**TINY).eval()
    wave, frames = _batch()
    with torch.no_grad():
        za = model.encode_audio(wave)
        zv = model.encode_video(frames)
        zt = model.encode_text(["cut the carrot", "knock on the table", "pour water", "hold"])
    for z in (za, zv, zt):
        assert z.shape == (4, 16)
        assert torch.allclose(z.norm(dim=-1), torch.ones(4), atol=1e-5)
    # the frozen MiniLM is not one of our parameters, nor in the state dict
    keys = list(model.state_dict())
    assert not any("encoder.layer" in k or "embeddings.word" in k for k in keys)
    assert sum(p.numel() for p in model.parameters()) < 200_000


def test_minilm_loads_offline_and_caches(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = packaged_minilm_path()
    assert (path / "model.safetensors").is_file()
    model = MC3Model(**TINY)
    feats = model.text_features(["cut the carrot", "slice the carrot", "pour water"])
    assert feats.shape == (3, 384)
    assert torch.allclose(feats.norm(dim=-1), torch.ones(3), atol=1e-5)
    # MiniLM is a real sentence encoder: paraphrases are closer than unrelated narrations
    assert float(feats[0] @ feats[1]) > float(feats[0] @ feats[2]) + 0.2
    assert "cut the carrot" in model._text.cache
    again = model.text_features(["cut the carrot"])
    assert torch.equal(again[0], feats[0])


def test_save_load_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    model = MC3Model(**TINY).eval()
    model.save_pretrained(tmp_path / "mc3")
    weights = (tmp_path / "mc3" / "diffusion_pytorch_model.safetensors").stat().st_size
    assert weights < 2_000_000  # our towers only, not MiniLM's 90 MB
    config = json.loads((tmp_path / "mc3" / "config.json").read_text())
    assert config["text_model_path"] is None  # found again from the installed package
    back = MC3Model.from_pretrained(tmp_path / "mc3").eval()
    wave, frames = _batch()
    text = ["cut the carrot", "knock on the table"]
    with torch.no_grad():
        assert torch.allclose(model.encode_audio(wave), back.encode_audio(wave), atol=1e-6)
        assert torch.allclose(model.encode_video(frames), back.encode_video(frames), atol=1e-6)
        assert torch.allclose(model.encode_text(text), back.encode_text(text), atol=1e-6)


def test_bad_inputs() -> None:
    model = MC3Model(**TINY)
    with pytest.raises(ValueError, match="batch, T, 3, H, W"):
        model.encode_video(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="batch, num_samples"):
        model.encode_audio(torch.rand(2, 1, 100))


def test_tiny_mc3_trains_and_its_loss_falls() -> None:
    """Eight clips, each with its own tone, colour pattern and verb: the MC3 loss falls."""
    torch.manual_seed(0)
    n = 8
    t = torch.arange(4000) / 16000
    freqs = 200.0 * 1.5 ** torch.arange(n)
    wave = 0.5 * torch.sin(2 * torch.pi * freqs[:, None] * t) + 0.02 * torch.randn(n, 4000)
    frames = torch.rand(n, 4, 3, 32, 32) * 0.2
    for i in range(n):
        frames[i, :, i % 3, : 4 * (i + 1)] += 0.7  # colour and extent per clip
    verbs = ["cut", "knock", "pour", "tear", "scrape", "drop", "type", "hammer"]
    model = MC3Model(**TINY)
    text_feats = model.text_features([f"{v} the object" for v in verbs])
    objective = MC3Objective(warmup_epochs=20)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses, parts = [], []
    for step in range(40):
        emb = model(wave, frames, text_feats)
        loss, logs = objective(emb, model.temperature_scale, epoch=step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        parts.append(logs)
    assert all(torch.isfinite(torch.tensor(losses)))
    first = sum(p["nce_av"] + p["nce_at"] + p["nce_vt"] for p in parts[:3]) / 3
    last = sum(p["nce_av"] + p["nce_at"] + p["nce_vt"] for p in parts[-3:]) / 3
    assert last < 0.6 * first
    assert "consensus" in parts[-1] and "consensus" not in parts[0]


# ---- trainer -----------------------------------------------------------------------------
def _train_args(data, out, *extra: str):
    import argparse

    from training import train_mc3

    parser = argparse.ArgumentParser()
    train_mc3.add_arguments(parser)
    base = ["--data", str(data), "--out", str(out), "--preset", "tiny", "--batch-size", "4"]
    return parser.parse_args(base + ["--warmup-epochs", "1", "--quiet", *extra])


def test_trainer_exports_and_resumes(tmp_path, capsys) -> None:
    from foley.data.foleyworld.generate import generate_dataset
    from foley.data.foleyworld.scene import FoleyWorldSettings
    from foley.errors import InputError
    from training import train_mc3
    from training.common import latest_checkpoint, read_metrics

    data = tmp_path / "data"
    generate_dataset(data, FoleyWorldSettings(videos=4, clips_per_video=3, seed=5), progress=False)
    out = tmp_path / "run"
    assert train_mc3.run(_train_args(data, out, "--epochs", "2", "--save-every", "2")) == 0
    model = MC3Model.from_pretrained(out / "model")
    assert model.config.video_frame_stride == 4  # the tiny preset, saved with the model
    first = read_metrics(out)
    step = int(latest_checkpoint(out).name.split("-")[1])
    assert step == first[-1]["step"] > 0
    assert any(p.name.startswith("train-") for p in (out / "cache").iterdir())

    # a longer run in the same folder resumes from the checkpoint (same batches, same cache)
    capsys.readouterr()
    assert train_mc3.run(_train_args(data, out, "--epochs", "4")) == 0
    assert f"at step {step}" in capsys.readouterr().out
    rows = read_metrics(out)
    assert rows[-1]["step"] == 2 * step and "consensus" in rows[-1]
    assert int(latest_checkpoint(out).name.split("-")[1]) == 2 * step

    # other settings in the same folder are refused, not silently mixed
    with pytest.raises(InputError, match="other settings"):
        train_mc3.run(_train_args(data, out, "--objective", "av"))

    # the plain audio-video ablation trains on the same cache, without text or consensus
    av_out = tmp_path / "av"
    args = _train_args(
        data, av_out, "--objective", "av", "--epochs", "1", "--cache", str(out / "cache")
    )
    assert train_mc3.run(args) == 0
    assert set(read_metrics(av_out)[-1]) >= {"nce_av", "loss"}
    assert "nce_at" not in read_metrics(av_out)[-1]


def test_mc3_eval_scores_saved_models_without_training(tmp_path, capsys) -> None:
    """``benchmarks.mc3_eval --score``: each saved model's row equals ``evaluate`` on the same
    test split (a pipeline folder stands for its MC3), and nothing is trained."""
    import json

    from benchmarks.mc3_eval import evaluate
    from benchmarks.mc3_eval import main as bench_main
    from foley.data.foleyworld.generate import generate_dataset
    from foley.data.foleyworld.scene import FoleyWorldSettings

    data = tmp_path / "fw"
    generate_dataset(data, FoleyWorldSettings(videos=4, clips_per_video=3, seed=7), progress=False)
    torch.manual_seed(0)
    MC3Model(**TINY).save_pretrained(tmp_path / "a")
    torch.manual_seed(1)
    MC3Model(**TINY).save_pretrained(tmp_path / "b")
    work = tmp_path / "work"
    argv = ["--work", str(work), "--data", str(data), "--quiet",
            "--score", f"A={tmp_path / 'a'}", f"B={tmp_path / 'b'}:av"]  # fmt: skip
    assert bench_main(argv) == 0
    rows = json.loads((work / "results.json").read_text())
    expected = evaluate(tmp_path / "a", data, work / "cache", "mc3")
    assert rows["A"] == pytest.approx(expected, nan_ok=True)  # (AUC: NaN without silent clips)
    assert "auc_consensus" not in rows["B"]  # a plain audio-video model: no text tower scored
    printed = capsys.readouterr().out
    assert "| chance |" in printed and "| A |" in printed and "| B |" in printed
    assert not (work / "train_mc3").exists() and not (work / "train_av").exists()
