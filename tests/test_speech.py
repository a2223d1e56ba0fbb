"""``foley make-dataset --speech``: the narration is spoken where the ground truth says."""

from __future__ import annotations

import numpy as np
import pytest

from foley.cli.main import main as foley_main
from foley.config import DEFAULT_CONFIG as CFG
from foley.data.ego4d import load_ground_truth, read_metadata
from foley.data.foleyworld.speech import espeak_available
from foley.io import load_video

pytestmark = pytest.mark.skipif(
    not espeak_available(), reason="espeak-ng is not installed (apt-get install -y espeak-ng)"
)


def test_speech_written_where_ground_truth_says(tmp_path):
    out = tmp_path / "d"
    argv = ["make-dataset", "--videos", "2", "--clips-per-video", "2", "--out", str(out)]
    assert foley_main([*argv, "--speech", "--quiet"]) == 0
    records = [r for s in ("train", "val", "test") for r in read_metadata(out / f"{s}.tsv")]
    spans = set()
    for record in records:
        gt = load_ground_truth(record.gt_path(out))
        on, off = gt["speech_span"]
        spans.add((float(on), float(off)))
        assert 0.0 <= on < off <= CFG.clip_seconds and off - on > 0.5
        speech = gt["speech"]
        a, b = round(on * CFG.sample_rate), round(off * CFG.sample_rate)
        assert not speech[:a].any() and not speech[b:].any()
        rms_db = 10 * np.log10(np.mean(speech[a:b] ** 2))
        assert -30.0 < rms_db < -18.0  # a natural speaking level
        # the written soundtrack holds the speech: it explains the mixture beyond action+ambient
        audio = load_video(record.clip_path(out), CFG).audio[: CFG.samples_per_clip]
        residual = audio - (gt["action"] + gt["ambient"])[: audio.size]
        assert np.corrcoef(residual[a:b], speech[a:b])[0, 1] > 0.7
        # the spoken object's masks: only on frames while the words sound, never empty there
        spoken = gt["spoken_masks"]
        active = np.flatnonzero(spoken.any((1, 2)))
        assert active.size > 0
        assert active[0] >= int(np.floor(on * CFG.fps)) and active[-1] < np.ceil(off * CFG.fps)
        assert spoken.shape == gt["masks"].shape
    assert len(spans) == len(records)  # a random time per clip
    assert all(r.speech == 1.0 for r in records)


def test_without_speech_no_speech_fields(tmp_path):
    out = tmp_path / "d"
    argv = ["make-dataset", "--videos", "1", "--clips-per-video", "1", "--out", str(out)]
    assert foley_main([*argv, "--quiet"]) == 0
    record = read_metadata(out / "train.tsv")[0]
    assert "speech" not in load_ground_truth(record.gt_path(out))
