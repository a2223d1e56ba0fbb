"""``foley eval``: metrics on known cases, the report's rows, end to end on tiny FoleyWorld."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from foley.config import AVConfig
from foley.errors import InputError
from foley.evaluation import ROWS, audible_onsets, fit_masks, random_partners
from foley.evaluation.report import EvalReport, targets
from foley.evaluation.rows import RETRIEVAL_MODES
from foley.evaluation.targets import shaping_comparison, shaping_lines
from foley.metrics.audio import ambient_level_db
from tests.tiny import AVS_TINY, MC3_TINY, tiny_pipeline

SR = 16_000
# a small contract keeps the run fast: 2 s clips, 8 fps, 32 x 32 frames, 16 mel bands (a
# 64-d FD-mel embedding)
CFG = AVConfig(clip_seconds=2.0, fps=8.0, frame_size=32, n_mels=16)


# ---- metrics on known cases -------------------------------------------------------------------
def test_quiet_window_gives_its_known_dbfs():
    """A loud clip with one 0.6 s stretch of a -40 dBFS sine reads -40 dBFS; silence reads -100."""
    t = np.arange(3 * SR) / SR
    wave = 0.5 * np.sin(2 * np.pi * 440 * t)
    amp = 10 ** (-40 / 20) * np.sqrt(2)  # RMS of a sine is amp / sqrt(2)
    wave[SR : SR + int(0.6 * SR)] = amp * np.sin(2 * np.pi * 440 * t[: int(0.6 * SR)])
    assert ambient_level_db(wave.astype(np.float32), SR) == pytest.approx(-40.0, abs=0.1)
    # a stretch shorter than the window mixes with the loud part: higher than -40
    short = 0.5 * np.sin(2 * np.pi * 440 * t)
    short[SR : SR + int(0.3 * SR)] = amp * np.sin(2 * np.pi * 440 * t[: int(0.3 * SR)])
    assert ambient_level_db(short, SR) > -20.0
    assert ambient_level_db(np.zeros(SR), SR) == -100.0


def test_audible_onsets_and_mask_fitting():
    events = [
        {"onset": 1.2, "verb": "knock", "visible": True},
        {"onset": 0.4, "verb": "drop", "visible": False},  # off-screen: still audible
        {"onset": 0.9, "verb": "hold", "visible": True},  # a silent verb never sounds
    ]
    np.testing.assert_allclose(audible_onsets(events), [0.4, 1.2])
    masks = np.zeros((4, 8, 8), bool)
    masks[1, :4, :4] = True
    fitted = fit_masks(masks, 8, 16)  # twice the frames and twice the size, nearest
    assert fitted.shape == (8, 16, 16) and fitted.dtype == torch.bool
    assert fitted[2:4, :8, :8].all() and not fitted[2:4, 8:].any() and not fitted[0].any()
    assert int(fitted.sum()) == 2 * 64


def test_random_partners_pick_another_video():
    uids = ["a", "a", "b", "c", "c"]
    partners = random_partners(uids, seed=0)
    assert all(uids[j] != uids[i] for i, j in enumerate(partners))
    assert random_partners(uids, seed=0) == partners
    assert all(j != i for i, j in enumerate(random_partners(["a", "a", "a"], 1)))


def _report(per_clip_rows: list[dict[str, dict]], loud: list[bool]) -> EvalReport:
    from foley.evaluation.report import summarise

    names = list(per_clip_rows[0])
    per_clip = [{"loud_scene": lo, "rows": rows} for rows, lo in zip(per_clip_rows, loud)]
    rng = np.random.default_rng(0)
    emb = {r: {"mel": list(rng.normal(size=(len(loud), 4)) + i)} for i, r in enumerate(names)}
    settings = {
        "split": "test",
        "clips": len(loud),
        "num_inference_steps": 2,
        "guidance_scale": 3.0,
        "seed": 0,
    }
    return summarise(names, per_clip, emb, settings, [])


def test_targets_are_measured_and_judged():
    def row(f1, amb, between=-60.0, gap=0.0, fd=1.0):
        nan = math.nan
        scores = dict(onset_f1=f1, onset_precision=f1, onset_recall=f1, ambient_db=amb)
        levels = dict(between_events_db=between, action_gap_db=gap, fd_aisfx=fd)
        return dict(scores, **levels, ambient_gap_db=nan, av_sim=nan, at_sim=nan, avs_j=nan)

    clips = [
        {
            "gt_mix": row(1.0, -30),
            "gt_action": row(1.0, -100),
            "model_ambient_joint": row(0.95, -30, between=-28),
            "model_action_focused": row(0.8, -50, between=-52, gap=2.0),
        },
        {
            "gt_mix": row(0.8, -60),
            "gt_action": row(1.0, -100),
            "model_ambient_joint": row(0.75, -60, between=-58),
            "model_action_focused": row(0.8, -64, between=-60, gap=-5.0),
        },
    ]
    report = _report(clips, loud=[True, False])
    got = {(t["row"], t["target"].split()[0]): t for t in report.targets}
    f1 = got[("model_ambient_joint", "onset")]
    assert f1["measured"] == pytest.approx(0.85 / 0.9) and f1["met"] is True
    af = got[("model_action_focused", "onset")]  # against the action-only track: 0.8 / 1.0
    assert af["measured"] == pytest.approx(0.8) and af["met"] is False
    level = got[("model_action_focused", "action")]  # mean |gap| over clips: (2 + 5) / 2
    assert level["measured"] == pytest.approx(3.5) and level["met"] is False
    assert (level["clips_met"], level["clips"]) == (1, 2)
    drop = got[("model_action_focused", "between")]  # loud clips only: -28 - (-52)
    assert drop["measured"] == pytest.approx(24.0) and drop["met"] is True
    assert (drop["clips_met"], drop["clips"]) == (1, 1)
    avs = got[("model_ambient_joint", "AVS")]
    assert avs["met"] is None  # no AVS model: measured as n/a, not dropped
    assert report.rows["model_action_focused"]["ambient_db_loud"] == pytest.approx(-50.0)
    assert report.rows["model_action_focused"]["between_events_db_loud"] == pytest.approx(-52.0)
    md = report.to_markdown()
    assert "n/a" in md and "24 (1/1 clips)" in md and "between events" in md
    assert not any("ambient level within" in t["target"] for t in report.targets)  # replaced
    assert targets(report.rows, report.per_clip) == report.targets
    assert report.shaping is None  # no unshaped rows


def test_shaping_comparison_says_whether_shaping_improves_both():
    def rows(f1_on, fd_on):
        on = {"onset_f1": f1_on, "fd_aisfx": fd_on}
        off = {"onset_f1": 0.3, "fd_aisfx": 200.0}
        return {
            "gt_mix": on,
            "model_ambient_joint": on,
            "model_ambient_joint_unshaped": off,
            "model_action_focused": {"onset_f1": 0.6, "fd_aisfx": 150.0},
            "model_action_focused_unshaped": off,
        }

    better = shaping_comparison(rows(0.6, 180.0), 1.0)
    assert better["improves_both"] is True and better["judged_modes"] == list(RETRIEVAL_MODES)
    assert better["modes"]["ambient_joint"]["onset_f1"] == {"on": 0.6, "off": 0.3}
    worse_fd = shaping_comparison(rows(0.6, 250.0), 1.0)  # in sync, but further from real audio
    assert worse_fd["improves_both"] is False
    assert worse_fd["modes"]["action_focused"]["improves_both"] is True
    unknown = shaping_comparison(rows(0.6, math.nan), 1.0)  # no pretrained networks
    assert unknown["improves_both"] is None
    assert "improves both" in "\n".join(shaping_lines(better))
    assert shaping_comparison({"gt_mix": {}, "model_ambient_joint": {}}, 1.0) is None


def test_avs_target_needs_a_judge_that_hears():
    """An AVS model whose masks are as good with silence as with the true audio judges nothing."""
    base = {k: 0.0 for k in ("onset_f1", "fd_mel", "ambient_gap_db", "ambient_db")}

    def avs_target(silence_j: float) -> dict:
        rows = {
            "gt_mix": {**base, "avs_j": 0.5},
            "silence": {**base, "avs_j": silence_j},
            "model_ambient_joint": {**base, "avs_j": 0.48},
        }
        return next(t for t in targets(rows, []) if "AVS" in t["target"])

    deaf = avs_target(0.5)
    assert deaf["measured"] == pytest.approx(0.96) and deaf["met"] is None
    assert avs_target(0.1)["met"] is True


# ---- end to end -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    """A FoleyWorld set, a tiny MC3 + index, a tiny pipeline and AVS, all saved to tmp."""
    from foley.data.foleyworld import FoleyWorldSettings, generate_dataset
    from foley.models.avs import AVSModel
    from foley.models.mc3 import MC3Model
    from foley.models.mc3_embed import model_id
    from foley.retrieval import ClipRetriever
    from retrieval_index import ClipIndex

    root = tmp_path_factory.mktemp("eval")
    data = root / "fw"
    settings = FoleyWorldSettings(videos=4, clips_per_video=2, seed=0, shifted_test_videos=1)
    generate_dataset(data, settings, CFG, progress=False)

    torch.manual_seed(0)
    mc3 = MC3Model(**MC3_TINY, n_mels=CFG.n_mels).eval()
    mc3.save_pretrained(root / "mc3")
    ClipRetriever.build(
        mc3, model_id(root / "mc3"), data, "train", root / "idx", cfg=CFG, progress=False
    )

    pipe = tiny_pipeline(
        cfg=CFG,
        codec_stats="measured",
        mc3=MC3Model.from_pretrained(root / "mc3"),
        index=ClipIndex.open(root / "idx"),
    )
    pipe.save_pretrained(root / "model")
    AVSModel(**AVS_TINY, av_config=CFG.to_dict()).save_pretrained(root / "avs")
    return root


def test_foley_eval_end_to_end(tiny_setup, capsys):
    from foley.cli.main import main

    root = tiny_setup
    out = root / "out"
    argv = [
        "eval",
        "--data",
        str(root / "fw"),
        "--split",
        "test",
        "--model",
        str(root / "model"),
        "--avs",
        str(root / "avs"),
        "--n",
        "2",
        "--steps",
        "2",
        "--out",
        str(out),
        "--quiet",
        "--device",
        "cpu",
        "--examples",
        "1",
    ]
    assert main(argv) == 0
    table = (out / "report.md").read_text()
    assert table in capsys.readouterr().out
    first_cells = [line.split("|")[1].strip() for line in table.splitlines() if line[:2] == "| "]
    assert [c for c in first_cells if c in ROWS] == list(ROWS)  # every row, in order
    report = json.loads((out / "report.json").read_text())
    assert list(report["rows"]) == list(ROWS)
    rows = report["rows"]
    assert rows["gt_mix"]["fd_mel"] == pytest.approx(0.0, abs=1e-6)  # the reference set itself
    assert rows["gt_mix"]["onset_f1"] >= rows["silence"]["onset_f1"]
    assert rows["silence"]["ambient_db"] == -100.0
    assert rows["gt_action"]["ambient_gap_db"] == 0.0
    for name in ROWS:  # every metric measured: MC3 (from the pipeline) and AVS were given
        for key in ("fd_mel", "fd_mc3", "onset_f1", "ambient_db", "av_sim", "at_sim", "avs_j"):
            assert rows[name][key] is not None, (name, key)
        for key in ("fd_aisfx", "kl_soundnet", "av_agree"):  # the pretrained networks
            assert rows[name][key] is not None, (name, key)
        assert 0 < rows[name]["av_agree"] < 1
    assert rows["gt_mix"]["fd_aisfx"] == pytest.approx(0.0, abs=1e-6)
    assert rows["gt_mix"]["kl_soundnet"] == pytest.approx(0.0, abs=1e-9)
    assert rows["silence"]["kl_soundnet"] > 0 and rows["silence"]["fd_aisfx"] > 0
    assert "FD aisfx" in table and "KL SoundNet" in table and "AV-agree" in table
    assert {t["row"] for t in report["targets"]} == {"model_ambient_joint", "model_action_focused"}
    clips = [json.loads(line) for line in (out / "per_clip.jsonl").read_text().splitlines()]
    assert len(clips) == 2 and set(clips[0]["rows"]) == set(ROWS)
    assert set(clips[0]["retrieved"]) == {"ambient_joint", "action_focused"}
    assert (out / "examples.png").stat().st_size > 1000


def _alternating(n: int, db: float) -> np.ndarray:
    """``(n,)`` +-a at ``db`` dBFS: its RMS is exactly ``db`` over any set of samples."""
    return (10 ** (db / 20) * np.where(np.arange(n) % 2, 1.0, -1.0)).astype(np.float32)


def test_action_focused_levels_on_hand_made_audio(tiny_setup):
    """Generated FoleyWorld events, hand-made soundtracks with known levels between and at the
    events: the suppression and action-level targets report those gaps to 0.1 dB."""
    from dataclasses import replace

    from foley.data.ego4d import ClipDataset
    from foley.evaluation.evaluate import _truth
    from foley.evaluation.report import summarise
    from foley.evaluation.rows import Scorers

    data = ClipDataset(tiny_setup / "fw", "train", CFG)
    truths = [t for t in (_truth(data, i) for i in range(len(data))) if len(t.onsets)][:3]
    assert len(truths) == 3 and all(t.spans.shape == (len(t.onsets), 2) for t in truths)
    n = CFG.samples_per_clip

    def window(start: float, end: float) -> slice:
        return slice(max(0, round(start * SR)), max(0, round(end * SR)))

    between_af = [-52.0, -45.0, -80.0]  # action-focused between events; ambient-joint: -30
    ambient = [-30.0, -25.0, -60.0]  # the third scene is quiet: no suppression asked there
    per_clip, emb = [], {}
    for truth, af_db, amb in zip(truths, between_af, ambient):
        around, at = np.zeros(n, bool), np.zeros(n, bool)
        for onset, offset in truth.spans:  # 50 ms before the onset to 150 ms after the offset
            around[window(onset - 0.05, offset + 0.15)] = True
            at[window(onset, onset + 0.1)] = True  # the contact: 100 ms after the onset
        action = np.where(at, _alternating(n, -10.0), 0.0).astype(np.float32)
        truth = replace(truth, action=action, ambient_db=amb)
        waves = {
            "gt_mix": truth.mix,
            "gt_action": action,
            "model_ambient_joint": _alternating(n, -30.0),
            "model_action_focused": np.where(
                around, _alternating(n, -12.0), _alternating(n, af_db)
            ),
        }
        rows, clip_emb = Scorers(CFG).score(waves, truth, {})
        per_clip.append({"loud_scene": truth.loud, "rows": rows})
        for name, e in clip_emb.items():
            emb.setdefault(name, {}).setdefault("mel", []).append(e["mel"])
        assert rows["model_action_focused"]["between_events_db"] == pytest.approx(af_db, abs=0.1)
        assert rows["model_action_focused"]["at_events_db"] == pytest.approx(-12.0, abs=0.1)
        assert rows["model_action_focused"]["action_gap_db"] == pytest.approx(-2.0, abs=0.1)
        assert rows["gt_action"]["action_gap_db"] == 0.0
    settings = {"split": "train", "clips": 3, "num_inference_steps": 1}
    report = summarise(list(waves), per_clip, emb, settings | {"guidance_scale": 1, "seed": 0}, [])
    got = {t["target"].split()[0]: t for t in report.targets if t["row"] == "model_action_focused"}
    drop = got["between"]  # loud clips: 22 and 15 dB, the quiet one left out
    assert drop["measured"] == pytest.approx(18.5, abs=0.1) and drop["met"] is False
    assert (drop["clips_met"], drop["clips"]) == (1, 2)
    level = got["action"]
    assert level["measured"] == pytest.approx(2.0, abs=0.1) and level["met"] is True
    assert (level["clips_met"], level["clips"]) == (3, 3)
    md = report.to_markdown()
    assert "| between events >= 20 dB below" in md
    target_lines = [ln for ln in md.splitlines() if ln.startswith(("| action", "| between"))]
    assert len(target_lines) == 2 and all(ln.count("|") == 5 for ln in target_lines)


def _same(a: dict, b: dict) -> None:
    """The same metrics, to float32 batching (MC3 sees each clip's rows as one batch)."""
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_eval_reports_shaping_on_and_off_from_one_denoising(tiny_setup):
    """With a sync model, each model row has an unshaped twin that equals a run with
    sync_shaping=0, and the report compares the two."""
    import foley.models.mc3  # noqa: F401  (model_index.json names its module)
    from foley.evaluation import evaluate
    from foley.models.sync import SyncModel
    from foley.pipelines.foley_pipeline import FoleyPipeline

    pipe = FoleyPipeline.from_pretrained(tiny_setup / "model")
    pipe.set_progress_bar_config(disable=True)
    torch.manual_seed(1)
    pipe.set_sync(
        SyncModel(dim=12, channels=(4, 8), input_size=32, latents_per_frame=CFG.latents_per_frame)
    )
    kw = dict(n=2, modes=("ambient_joint", "action_focused"), num_inference_steps=2)
    shaped = evaluate(tiny_setup / "fw", "test", pipe, **kw, num_examples=2, progress=False)
    alone = evaluate(
        tiny_setup / "fw", "test", pipe, **kw, num_examples=2, progress=False, sync_shaping=0
    )
    models = ["model_ambient_joint", "model_action_focused"]
    assert [r for r in shaped.rows if r.startswith("model_")] == [
        "model_ambient_joint",
        "model_ambient_joint_unshaped",
        "model_action_focused",
        "model_action_focused_unshaped",
    ]
    assert [r for r in alone.rows if r.startswith("model_")] == models
    for row in models:
        for mine, ref in zip(shaped.examples, alone.examples):  # the same audio, bit for bit
            np.testing.assert_array_equal(mine["waves"][row + "_unshaped"], ref["waves"][row])
        for mine, ref in zip(shaped.per_clip, alone.per_clip):
            _same(mine["rows"][row + "_unshaped"], ref["rows"][row])
        _same(shaped.rows[row + "_unshaped"], alone.rows[row])
        assert shaped.rows[row]["ambient_db"] != alone.rows[row]["ambient_db"]  # it did shape
    assert shaped.settings["sync_shaping"] == 1.0 and alone.settings["sync_shaping"] == 0.0
    assert alone.shaping is None and "Sync shaping on" not in alone.to_markdown()
    cmp = shaped.shaping
    assert cmp["factor"] == 1.0 and set(cmp["modes"]) == {"ambient_joint", "action_focused"}
    f1 = cmp["modes"]["ambient_joint"]["onset_f1"]
    assert f1 == {
        "on": shaped.rows[models[0]]["onset_f1"],
        "off": alone.rows[models[0]]["onset_f1"],
    }
    assert cmp["improves_both"] is None  # no pretrained networks: no FD aisfx to judge by
    assert "Sync shaping on (factor 1)" in shaped.to_markdown()
    saved = json.loads(json.dumps(shaped.to_dict(), allow_nan=False))  # standard JSON
    assert saved["shaping"]["modes"]["action_focused"]["fd_aisfx"] == {"on": None, "off": None}
    assert "sync shaping off" in saved["legend"]["model_action_focused_unshaped"]
    unshaped_targets = {t["row"] for t in shaped.targets if t["row"].endswith("_unshaped")}
    assert unshaped_targets == {r + "_unshaped" for r in models}
    assert "model_action_focused_unshaped" in shaped.examples[0]["waves"]


def test_eval_errors(tiny_setup):
    from foley.cli.main import main

    root = tiny_setup
    base = [
        "eval",
        "--data",
        str(root / "fw"),
        "--model",
        str(root / "model"),
        "--quiet",
        "--out",
        str(root / "bad"),
    ]
    assert main([*base, "--n", "1"]) == 1
    assert main([*base, "--split", "nope"]) == 1
    assert main([*base[:4], str(root / "avs"), "--quiet"]) == 1  # not a pipeline folder


def test_eval_without_mc3_scores_the_unconditioned_model(tiny_setup):
    """No MC3 and no index: only the no-condition model row, MC3 metrics n/a, a clear error
    for the retrieval modes."""
    import foley.models.mc3  # noqa: F401  (model_index.json names its module)
    from foley.errors import InputError
    from foley.evaluation import evaluate
    from foley.pipelines.foley_pipeline import FoleyPipeline

    pipe = FoleyPipeline.from_pretrained(tiny_setup / "model")
    pipe.set_retrieval(None)
    with pytest.raises(InputError, match="retrieve"):
        evaluate(tiny_setup / "fw", "test", pipe, n=2, progress=False)
    report = evaluate(
        tiny_setup / "fw",
        "test",
        pipe,
        n=2,
        modes=("no_condition",),
        num_inference_steps=1,
        num_examples=0,
        progress=False,
    )
    skipped = ("retrieval", "model_ambient_joint", "model_action_focused")
    assert list(report.rows) == [r for r in ROWS if r not in skipped]
    assert math.isnan(report.rows["model_no_condition"]["av_sim"])
    assert math.isfinite(report.rows["model_no_condition"]["fd_mel"])
    assert report.targets == [] and "n/a" in report.to_markdown()


def test_eval_without_ground_truth_on_any_videos(tiny_setup, tmp_path):
    """--no-ground-truth: a folder of videos, one without a soundtrack and of another size."""
    import shutil

    from foley.cli.main import main
    from foley.io import write_video

    videos = tmp_path / "videos"
    videos.mkdir()
    for clip in sorted((tiny_setup / "fw").rglob("*.mp4"))[:2]:
        shutil.copy(clip, videos / clip.name)
    frames = np.random.default_rng(0).integers(0, 255, (30, 48, 64, 3), dtype=np.uint8)
    write_video(videos / "silent.mp4", frames, fps=15)  # no audio track
    out = tmp_path / "out"
    argv = ["eval", "--no-ground-truth", "--data", str(videos), "--model"]
    argv += [str(tiny_setup / "model"), "--avs", str(tiny_setup / "avs"), "--steps", "1"]
    assert main([*argv, "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    report = json.loads((out / "report.json").read_text())
    rows = report["rows"]
    assert list(rows) == ["own_audio", "model_ambient_joint", "silence", "random_clip"]
    assert rows["own_audio"]["videos"] == 2 and rows["model_ambient_joint"]["videos"] == 3
    for name, row in rows.items():
        assert 0 < row["av_agree"] < 1, name
        assert 0 <= row["alignment"] <= 1, name
        assert row["sync_f1"] is None  # the tiny pipeline has no sync model
    assert rows["silence"]["alignment"] == pytest.approx(0.5)  # no evidence at any lag
    assert len(report["per_video"]) == 3 and "own_audio" not in report["per_video"][2]["rows"]
    assert main([*argv, "--out", str(out), "--no-pretrained"]) == 1
    assert main(["eval", "--no-ground-truth", "--data", str(tmp_path / "out")]) == 1  # no videos


def test_eval_missing_network_is_one_line(tiny_setup, monkeypatch, capsys):
    from foley.cli.main import main
    from foley.metrics import networks

    monkeypatch.setitem(networks.WEIGHTS, "aisfx", ("models/gone.pth", "aisfx==0.1.2"))
    argv = ["eval", "--data", str(tiny_setup / "fw"), "--model", str(tiny_setup / "model")]
    assert main([*argv, "--quiet", "--out", str(tiny_setup / "never")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("foley eval: error: evaluation network missing") and "\n" not in err
    assert not (tiny_setup / "never").exists()


def test_eval_skips_a_clip_that_cannot_be_decoded(tiny_setup, tmp_path, capsys):
    """A truncated clip: one line naming it, the others evaluated, the report counts it."""
    import shutil

    from foley.cli.main import main
    from foley.data.ego4d import read_metadata

    data = tmp_path / "fw"
    shutil.copytree(tiny_setup / "fw", data)
    records = read_metadata(data / "train.tsv")
    bad = records[1].clip_path(data)
    bad.write_bytes(bad.read_bytes()[:300])
    out = tmp_path / "out"
    argv = ["eval", "--data", str(data), "--split", "train", "--model", str(tiny_setup / "model")]
    argv += ["--n", "3", "--steps", "1", "--modes", "no_condition", "--no-pretrained"]
    assert main([*argv, "--out", str(out), "--quiet", "--device", "cpu", "--examples", "1"]) == 0
    err = capsys.readouterr().err
    assert [ln for ln in err.splitlines() if f"skipped {bad.name}:" in ln]
    assert "Traceback" not in err and str(tmp_path) not in err
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["clips"] == 2 and report["settings"]["skipped"] == [bad.name]
    clips = [json.loads(line) for line in (out / "per_clip.jsonl").read_text().splitlines()]
    assert [c["clip_id"] for c in clips] == [records[0].clip_id, records[2].clip_id]
    assert f"skipped 1 that could not be decoded: {bad.name}" in (out / "report.md").read_text()
    # too few clips left for FD: one line, no traceback
    first = records[0].clip_path(data)
    first.write_bytes(first.read_bytes()[:300])
    assert main([*argv, "--out", str(tmp_path / "out2"), "--quiet", "--device", "cpu"]) == 1
    assert "only 1 of 3 clips could be decoded" in capsys.readouterr().err


def test_unseen_videos_pool_draws_real_clips_of_other_videos(tiny_setup):
    """The unseen_videos floor: real clips of videos that are not evaluated, from the other
    splits (or another data folder), drawn the same way on every run."""
    from foley.data.ego4d import ClipDataset
    from foley.evaluation.evaluate import FLOOR_SPLITS, UnseenPool

    data = tiny_setup / "fw"
    evaluated = {r.video_uid for r in ClipDataset(data, "test", CFG).records}
    pool = UnseenPool(data, data, "test", evaluated, CFG, seed=0)
    assert len(pool) > 0
    assert all(ds.records[j].video_uid not in evaluated for ds, j in pool.items)
    assert {ds.metadata_path.stem for ds, _ in pool.items} <= {"train", "val", "test_shifted"}
    again = UnseenPool(data, data, "test", evaluated, CFG, seed=0)
    for i in range(3):  # deterministic, and the clip's own audio
        ds, j = pool.items[int(pool.order[i % len(pool)])]
        np.testing.assert_array_equal(pool.audio(i), again.audio(i))
        np.testing.assert_array_equal(pool.audio(i), ds.load_clip(j, with_frames=False)[1])
    # another folder as the floor: all its splits, the evaluated split's name included
    other = UnseenPool(data, tiny_setup / "elsewhere", "test", set(), CFG, seed=0)
    assert "test" in {ds.metadata_path.stem for ds, _ in other.items}
    splits = [s for s in FLOOR_SPLITS if (data / f"{s}.tsv").is_file()]
    assert len(other) == sum(len(ClipDataset(data, s, CFG)) for s in splits)


def test_eval_leaves_out_the_unseen_row_without_enough_clips(tiny_setup, tmp_path):
    from foley.evaluation import evaluate
    from foley.pipelines.foley_pipeline import FoleyPipeline

    data = tmp_path / "fw"
    shutil.copytree(tiny_setup / "fw", data)
    for name in ("train", "val", "test_shifted"):  # no other split: no pool
        (data / f"{name}.tsv").unlink(missing_ok=True)
    pipe = FoleyPipeline.from_pretrained(tiny_setup / "model")
    kwargs = dict(n=2, modes=("no_condition",), num_inference_steps=1, progress=False)
    report = evaluate(data, "test", pipe, num_examples=0, **kwargs)
    assert "unseen_videos" not in report.rows and report.settings["unseen_pool"] == 0
    # the original folder as --floor-data: its train/val clips are of other videos
    report = evaluate(data, "test", pipe, floor_data=tiny_setup / "fw", num_examples=0, **kwargs)
    assert "unseen_videos" in report.rows
    assert report.rows["unseen_videos"]["onset_f1"] is not None
    with pytest.raises(InputError, match="--floor-data"):
        evaluate(data, "test", pipe, floor_data=tmp_path / "nowhere", **kwargs)


def test_fd_aisfx_targets_against_both_floors_and_retrieval():
    nan = math.nan
    base = dict(onset_f1=0.5, avs_j=nan, fd_mel=1.0)
    rows = {
        "gt_mix": dict(base, fd_aisfx=0.0),
        "retrieval": dict(base, fd_aisfx=150.0),
        "random_clip": dict(base, fd_aisfx=20.0),
        "unseen_videos": dict(base, fd_aisfx=180.0),
        "model_ambient_joint": dict(base, fd_aisfx=200.0),
    }
    got = {t["target"]: t for t in targets(rows, []) if t["row"] == "model_ambient_joint"}
    assert got["FD aisfx <= 1.5x random_clip's (ratio)"]["measured"] == pytest.approx(10.0)
    assert got["FD aisfx <= 1.5x random_clip's (ratio)"]["met"] is False
    unseen = got["FD aisfx <= 1.5x unseen_videos's (ratio)"]
    assert unseen["measured"] == pytest.approx(200 / 180) and unseen["met"] is True
    retrieval = got["FD aisfx < retrieval-only's (ratio)"]
    assert retrieval["measured"] == pytest.approx(200 / 150) and retrieval["met"] is False
    del rows["unseen_videos"]  # no pool: no such target
    assert not any("unseen" in t["target"] for t in targets(rows, []))


def test_eval_without_ground_truth_takes_the_first_clip_and_skips_bad_files(
    tiny_setup, tmp_path, capsys
):
    """A video longer than a clip is scored on its first clip (it used to be refused), and a
    file that does not decode is skipped with one line: the others are still scored."""
    from foley.cli.main import main
    from foley.io import write_video
    from tests.media import make_bad_files

    videos = tmp_path / "videos"
    videos.mkdir()
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(16_000 * 5)).astype(np.float32)
    frames = rng.integers(0, 255, (5 * 15, 48, 64, 3), dtype=np.uint8)
    write_video(videos / "long.mp4", frames, fps=15, audio=wave, sample_rate=16_000)
    write_video(videos / "short.mp4", frames[:20], fps=15, audio=wave[:21_000], sample_rate=16_000)
    bad = make_bad_files(tmp_path / "bad")
    shutil.copy(bad["text_as_mp4"], videos / "corrupt.mp4")
    out = tmp_path / "out"
    argv = ["eval", "--no-ground-truth", "--data", str(videos), "--model",
            str(tiny_setup / "model"), "--steps", "1", "--out", str(out), "--quiet",
            "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    assert "skipped corrupt.mp4" in capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["skipped"] == ["corrupt.mp4"]
    assert [Path(v["file"]).name for v in report["per_video"]] == ["long.mp4", "short.mp4"]
    assert report["rows"]["own_audio"]["videos"] == 2
