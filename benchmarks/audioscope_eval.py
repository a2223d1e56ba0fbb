"""AudioScope on fresh FoleyWorld clips: on-screen SI-SNR improvement, off-screen suppression,
per-source on-screen ROC-AUC, beside the mixture, an oracle assignment of the separated sources
(the separation's ceiling) and the audio-only classifier (no video attention), in one run.

    PYTHONPATH=. python benchmarks/audioscope_eval.py --model RUN/model --data FW [--pictures DIR]
    # several models in one run (rows per model; pictures of the last one):
    PYTHONPATH=. python benchmarks/audioscope_eval.py --model A/model --model B/model --data FW

Ground truth (FoleyWorld's ``.gt.npz``, which needs its ``offscreen`` track): on screen = action
- offscreen (the visible action events); off screen = offscreen + ambient. The mixture is the
clip's mp4 audio.
- SI-SNRi (dB): SI-SNR(estimate, on-screen) - SI-SNR(mixture, on-screen), mean over clips whose
  on-screen track is above -60 dBFS.
- Suppression (dB): 10 log10(P(mixture) / P(on-screen estimate)) on clips whose sounds are all
  off screen (on-screen track below -60 dBFS), capped at 60 dB.
- Weightings of the same sources (``foley.models.audioscope.source_weights``): ``probability``
  (each source weighted by its on-screen probability, the rule up to s6), ``relative`` (the
  clip's most on-screen source kept, the others by their logit's distance to it, all scaled by
  the top probability; the model's ``weight_temperature`` / ``weight_offset``) and ``p > 0.5``
  (sources kept whole or dropped, hard threshold).
- Silent estimates: clips with on-screen sound whose on-screen estimate is more than 40 dB
  below the mixture (SI-SNR scores an all-but-empty estimate near 0 dB, which is an
  "improvement" whenever the mixture's own SI-SNR is negative, so this count is shown beside
  SI-SNRi: a rule that empties clips can look good on SI-SNRi alone).
- AUC: ROC-AUC of each source's on-screen probability against its oracle label (the MixIT
  assignment of the sources to the (on, off) references).
``--cost`` also times one training step of the STFT-mask separator against the codec round trip
a latent-space separator would need per source (encode the mixture, decode M sources).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

SILENT_DBFS = -60.0
MUTED_DB = 40.0  # an on-screen estimate this far below the mixture counts as silent


def _dbfs(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-12))


def load_items(data: Path, split: str, limit: int) -> list[dict]:
    from foley.config import DEFAULT_CONFIG
    from foley.data.ego4d import ClipDataset, load_ground_truth
    from foley.errors import InputError

    ds = ClipDataset(data, split, DEFAULT_CONFIG)
    items = []
    for i in range(min(len(ds), limit or len(ds))):
        frames, wave = ds.load_clip(i)
        gt = load_ground_truth(ds.records[i].gt_path(data))
        if gt["offscreen"] is None:
            raise InputError(f"{data}: no off-screen track in the ground truth; regenerate it")
        n = wave.size
        on = gt["action"][:n] - gt["offscreen"][:n]
        items.append({"frames": frames, "mixture": wave, "on": on, "off": wave - on})
    return items


@torch.no_grad()
def label_auc(mc3, sync, items: list[dict], model) -> dict:
    """ROC-AUC, against the oracle labels, of the coincidence scores noisy labels can come
    from: MC3 (cos(source, own video) - mean cos(source, other clips' videos)) and the sync
    model (``training.train_audioscope.sync_coincidence``)."""
    from foley.metrics.retrieval import roc_auc
    from foley.models.audioscope import mixit_loss
    from training.train_audioscope import sync_coincidence

    def video(it):
        return torch.from_numpy(it["frames"]).permute(0, 3, 1, 2)[None].float() / 255

    videos = torch.cat([mc3.encode_video(video(it)) for it in items])  # (n, 256)
    scores, labels = {"MC3": [], "sync": []}, []
    for i, it in enumerate(items):
        sources = model.separate(torch.from_numpy(it["mixture"])[None])
        refs = torch.from_numpy(np.stack([it["on"], it["off"]]))[None].float()
        labels += (mixit_loss(refs, sources)[1][0] == 0).tolist()
        sims = mc3.encode_audio(sources[0]) @ videos.T  # (M, n)
        others = torch.cat([sims[:, :i], sims[:, i + 1 :]], 1).mean(1)
        scores["MC3"] += (sims[:, i] - others).tolist()
        scores["sync"] += sync_coincidence(sync, video(it), sources)[0].tolist()
    y = np.array(labels, dtype=float)
    return {f"{k} coincidence AUC": roc_auc(np.array(v), y) for k, v in scores.items()}


@torch.no_grad()
def evaluate(model, items: list[dict], mc3: tuple | None = None) -> tuple[dict, list[dict]]:
    from foley.config import DEFAULT_CONFIG
    from foley.metrics.audio_quality import si_sdr
    from foley.metrics.retrieval import roc_auc
    from foley.models.audioscope import mixit_loss, video_input

    cfg, c = DEFAULT_CONFIG, model.config
    names = (
        "mixture",
        "AudioScope, probability weights",
        "AudioScope, relative weights",
        "AudioScope, p > 0.5",
        "audio-only, probability weights",
        "audio-only, relative weights",
        "oracle assignment",
    )
    rows = {k: {"sisnri": [], "suppression": [], "scores": [], "silent": 0} for k in names}
    own = f"AudioScope, {c.weighting} weights"  # the model's own rule, for the pictures
    labels, examples = [], []
    for it in items:
        mix = torch.from_numpy(it["mixture"])[None]
        frames = video_input(it["frames"], cfg.fps, c.video_fps, c.frame_size)[None]
        out = model(mix, frames)
        audio_logits = model.classify(out.sources, None)
        probs = {}
        for rule in ("probability", "relative"):
            probs[f"AudioScope, {rule} weights"] = model.weights(out.logits, rule)[0]
            probs[f"audio-only, {rule} weights"] = model.weights(audio_logits, rule)[0]
        p_video = torch.sigmoid(out.logits)[0]
        probs["AudioScope, p > 0.5"] = (p_video > 0.5).float()  # hard assignment
        refs = torch.from_numpy(np.stack([it["on"], it["off"]]))[None].float()
        _, assign = mixit_loss(refs, out.sources)
        oracle = (assign[0] == 0).float()
        labels += oracle.tolist()
        est = {"mixture": mix[0], "oracle assignment": (oracle[:, None] * out.sources[0]).sum(0)}
        for name, p in probs.items():
            est[name] = (p[:, None] * out.sources[0]).sum(0)
            rows[name]["scores"] += p.tolist()
        on_db = _dbfs(it["on"])
        base = float(si_sdr(it["on"][None], it["mixture"][None])[0])
        for name, e in est.items():
            e = e.numpy()
            if on_db > SILENT_DBFS:
                rows[name]["sisnri"].append(float(si_sdr(it["on"][None], e[None])[0]) - base)
                muted = _dbfs(it["mixture"]) - _dbfs(e) > MUTED_DB
                rows[name]["silent"] += int(muted)
            else:
                p_mix, p_est = np.mean(it["mixture"] ** 2), np.mean(e.astype(np.float64) ** 2)
                rows[name]["suppression"].append(10 * np.log10(p_mix / (p_est + 1e-6 * p_mix)))
        if len(examples) < 4 and on_db > SILENT_DBFS and len(items) > 0:
            examples.append(
                {
                    "mixture": it["mixture"],
                    "on (truth)": it["on"],
                    "on (AudioScope)": est[own].numpy(),
                    "off (AudioScope)": it["mixture"] - est[own].numpy(),
                }
            )
    table = {}
    for name, r in rows.items():
        table[name] = {
            "on-screen SI-SNRi dB": float(np.mean(r["sisnri"])) if r["sisnri"] else None,
            "off-screen suppression dB": float(np.mean(r["suppression"]))
            if r["suppression"]
            else None,
            "source AUC": roc_auc(np.array(r["scores"]), np.array(labels)) if r["scores"] else None,
            "silent on-screen estimates": r["silent"],
        }
    if mc3 is not None:
        table["noisy-label scores"] = label_auc(*mc3, items, model)
    table["_counts"] = {
        "clips": len(items),
        "with on-screen sound": len(rows["mixture"]["sisnri"]),
        "all off screen": len(rows["mixture"]["suppression"]),
        "sources": len(labels),
        "on-screen sources (oracle)": int(sum(labels)),
    }
    return table, examples


def cost(model, batch: int = 8) -> dict:
    """Seconds per training step of the STFT-mask separator vs a codec round trip per source."""
    from foley.defaults import DEFAULT_MODEL_DIR
    from foley.models.codec import FoleyCodec

    x = torch.randn(batch, 2, 48000) * 0.1
    t = time.perf_counter()
    from foley.models.audioscope import mixit_loss

    loss, _ = mixit_loss(x, model.separate(x.sum(1)))
    loss.mean().backward()
    stft_s = time.perf_counter() - t
    codec = FoleyCodec.from_pretrained(DEFAULT_MODEL_DIR / "codec").eval()
    t = time.perf_counter()
    with torch.no_grad():
        lat = codec.encode(x.sum(1))
        codec.decode(lat.repeat_interleave(model.config.num_sources, 0), 48000)
    return {"stft_mask_step_s": stft_s, "codec_round_trip_s (no grad)": time.perf_counter() - t}


def main(argv: list[str] | None = None) -> int:
    from foley.models.audioscope import AudioScope
    from foley.viz.spectrogram import spectrogram_grid

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, action="append", help="repeat to compare")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--pictures", help="folder for spectrogram pictures of a few separations")
    p.add_argument("--cost", action="store_true")
    p.add_argument("--label-auc", action="store_true", help="also score the MC3 noisy labels")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    items = load_items(Path(args.data), args.split, args.limit)
    mc3 = None
    if args.label_auc:
        from foley.defaults import DEFAULT_MODEL_DIR, mc3_dir_or_default
        from foley.models.mc3 import MC3Model
        from foley.models.sync import SyncModel

        mc3 = (
            MC3Model.from_pretrained(mc3_dir_or_default(None)).eval(),
            SyncModel.from_pretrained(DEFAULT_MODEL_DIR / "video_encoder").eval(),
        )
    table, examples = {}, []
    for path in args.model:
        model = AudioScope.from_pretrained(path).eval()
        name = Path(path).resolve().parent.name if Path(path).name == "model" else Path(path).name
        rows, examples = evaluate(model, items, mc3)
        mc3 = None  # the noisy-label scores once (they use the first model's sources)
        table.update(
            {
                k if k[0] == "_" else f"{name} ({model.config.context}): {k}": v
                for k, v in rows.items()
            }
        )
    if args.cost:
        table["_cost"] = cost(model.train())
    print(json.dumps(table, indent=2))
    if args.pictures and examples:
        cols = list(examples[0])
        spectrogram_grid(
            [[e[k] for k in cols] for e in examples],
            [f"clip {i}" for i in range(len(examples))],
            cols,
            16000,
            Path(args.pictures) / "audioscope_separations.png",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
