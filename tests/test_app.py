"""The Gradio app end to end: launched on 127.0.0.1, driven with gradio_client.

Tiny real models with random weights (tests/app_fixtures.py); FoleyWorld clips indexed with the
saved MC3.  Checks both modes, candidates, an uploaded ambient clip, bad uploads answered with a
one-line message while the app keeps serving, and an index rebuild while queries are served.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")

from app.service import FoleyService, Limits, Models, load_models  # noqa: E402
from app.ui import build_ui, launch  # noqa: E402
from foley.data.ego4d import read_metadata  # noqa: E402
from foley.errors import InputError  # noqa: E402
from foley.io import load_audio, probe_video, save_audio  # noqa: E402
from tests.app_fixtures import CFG, make_world, write_clip, write_data  # noqa: E402

LIMITS = Limits(max_video_seconds=3.0, max_upload_mb=2.0, avs_shuffles=2, max_candidates=3)
FAST = dict(steps=2, guidance=2.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    return make_world(tmp_path_factory.mktemp("app"))


@pytest.fixture(scope="module")
def served(world):
    from gradio_client import Client

    service = FoleyService(
        lambda: load_models(world["model"]), limits=LIMITS, rebuild_root=world["root"]
    )
    from tests.test_audioscope import tiny_model

    demo = build_ui(service, examples=[str(world["clip"])], audioscope=tiny_model())
    url = launch(demo, port=free_port(), block=False, quiet=True)
    assert url.startswith("http://127.0.0.1:")
    client = Client(url, verbose=False, download_files=str(world["root"] / "downloads"))
    yield {"demo": demo, "client": client, "service": demo.foley_service, "url": url}
    demo.close()


def generate(client, video, mode, *, candidates=1, condition=None, ambient_max=-45.0, seed=0):
    from gradio_client import handle_file

    return client.predict(
        handle_file(str(video)),
        mode,
        FAST["steps"],
        FAST["guidance"],
        seed,
        candidates,
        handle_file(str(condition)) if condition else None,
        ambient_max,
        1.0,
        api_name="/generate",
    )


def check_outputs(result, clip: Path) -> dict:
    video, audio, spectrogram, details = result[:4]
    duration = probe_video(clip).duration
    info = probe_video(video)
    assert info.has_audio and abs(info.duration - duration) < 0.2
    wave = load_audio(audio)
    assert abs(wave.size / CFG.sample_rate - duration) < 0.05
    assert np.isfinite(wave).all() and np.abs(wave).max() > 0
    assert Path(spectrogram).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert details["seconds"] == pytest.approx(duration, abs=0.05)
    overlay_png, overlay_mp4 = result[7], result[8]
    assert Path(overlay_png).stat().st_size > 0 and probe_video(overlay_mp4).has_audio
    assert 0.0 <= details["alignment_score"] <= 1.0
    return details


def test_named_api(served):
    names = served["client"].view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/generate", "/check_video", "/index_info", "/rebuild_index"} <= set(names)
    assert "/separate" in names


def test_separate_tab_splits_an_uploaded_video(served, world, tmp_path):
    from gradio_client import handle_file

    from foley.io import write_video

    rng = np.random.default_rng(0)
    clip = tmp_path / "with_sound.mp4"
    frames = rng.integers(0, 255, (int(2.5 * CFG.fps), 32, 32, 3), np.uint8)  # 2.5 s
    audio = rng.normal(0, 0.1, int(2.5 * CFG.sample_rate)).astype(np.float32)
    write_video(clip, frames, CFG.fps, audio, CFG.sample_rate)
    video, on_wav, off_wav, note = served["client"].predict(
        handle_file(str(clip)), api_name="/separate"
    )
    on, off, mixture = load_audio(on_wav), load_audio(off_wav), load_audio(clip)
    np.testing.assert_allclose(on + off, mixture[: on.size], atol=1e-3)
    assert probe_video(video).has_audio and "window" in note and str(tmp_path) not in note


def test_both_modes_retrieve_from_the_index(served, world):
    client, index = served["client"], served["service"].index
    levels = sorted(h.metadata["ambient_db"] for h in index.search(np.ones((1, 16)), 100)[0])
    threshold = float(np.mean(levels[:2]))  # only the quietest clip(s) pass
    focused = check_outputs(
        generate(client, world["clip"], "action_focused", ambient_max=threshold), world["clip"]
    )
    assert focused["mode"] == "action_focused"
    cond = focused["condition"]
    assert cond["id"] in index and cond["ambient_db"] <= threshold
    assert cond["narration"] == index.get(cond["id"])["narration"]
    # a clip with an action-only track conditions on that track, and the app says so
    from foley.retrieval import ACTION_KEY

    with_track = index.get(cond["id"]).get(ACTION_KEY) is not None
    assert cond["track"] == ("action" if with_track else "mix")

    result = generate(client, world["clip"], "ambient_joint", candidates=2)
    joint = check_outputs(result, world["clip"])
    assert joint["mode"] == "ambient_joint" and joint["condition"]["id"] in index
    assert [c["seed"] for c in joint["candidates"]] == [0, 1]
    # candidates side by side: two players and spectrograms shown, the third slot hidden
    players = result[10:13]
    assert [p["visible"] for p in players] == [True, True, False]
    a, b = (load_audio(p["value"]) for p in players[:2])
    assert a.shape == b.shape and np.abs(a - b).max() > 1e-4


def test_uploaded_ambient_clip_replaces_retrieval(served, world, tmp_path):
    rng = np.random.default_rng(0)
    ambience = save_audio(tmp_path / "kitchen.wav", 0.05 * rng.standard_normal(24000))
    details = generate(served["client"], world["clip"], "ambient_joint", condition=ambience)[3]
    assert details["condition"]["id"] == "uploaded"
    assert details["condition"]["narration"] == "kitchen.wav"
    assert -35 < details["condition"]["ambient_db"] < -20  # 0.05 RMS noise is -26 dBFS
    assert details["warnings"] == []
    # the same clip cut in half (1.5 s declared, 0.75 s there): used, and the panel says so
    whole = ambience.read_bytes()
    (tmp_path / "cut.wav").write_bytes(whole[: len(whole) // 2])
    cut = generate(served["client"], world["clip"], "ambient_joint", condition=tmp_path / "cut.wav")
    warnings = cut[3]["warnings"]
    assert cut[3]["condition"]["id"] == "uploaded" and len(warnings) == 1, warnings
    assert "cut.wav: decoded 0.7 s of 1.5 s" in warnings[0], warnings


def test_bad_uploads_give_a_message_and_the_app_keeps_serving(served, world, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    client = served["client"]
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    long_clip = write_clip(tmp_path / "long.mp4", seconds=4.0)
    cases = [(text, "not a readable video"), (long_clip, "takes videos up to 3 s")]
    for path, message in cases:
        for call in (
            lambda p=path: generate(client, p, "ambient_joint"),
            lambda p=path: client.predict(handle_file(str(p)), api_name="/check_video"),
        ):
            with pytest.raises(AppError) as err:
                call()
            text_shown = str(err.value)
            assert message in text_shown and "Traceback" not in text_shown
            assert len(text_shown.splitlines()) == 1
    # the app still serves
    note = client.predict(handle_file(str(world["clip"])), api_name="/check_video")
    assert note.startswith("hands.mp4: 2.0 s")
    with pytest.raises(AppError, match="less than minimum value 1"):  # the slider's bounds
        client.predict(
            handle_file(str(world["clip"])), "ambient_joint", 0, 2.0, 0, 1, None, -45.0, 1.0,
            api_name="/generate",
        )  # fmt: skip


def test_rebuild_while_querying(served, world, tmp_path):
    client = served["client"]
    before = client.predict(api_name="/index_info")[1]
    new_data = write_data(world["root"] / "more", videos=5, clips_per_video=2, seed=11)
    expected = len(read_metadata(new_data / "train.tsv"))
    assert expected != before["count"]

    job = client.submit("more", "train", api_name="/rebuild_index")  # under --allow-rebuild
    served_during, versions_seen = [], set()
    while not job.done() or not served_during:
        details = generate(client, world["clip"], "ambient_joint")[3]
        served_during.append(details["condition"]["id"])
        versions_seen.add(details["index_version"])
    status, _, info = job.result(timeout=120)
    assert status.startswith("rebuilt") and f"{expected} clips" in status
    assert info["count"] == expected and info["version"] != before["version"]
    assert versions_seen <= {before["version"], info["version"]}
    after = client.predict(api_name="/index_info")[1]
    assert after["version"] == info["version"] and after["count"] == expected
    assert generate(client, world["clip"], "ambient_joint")[3]["index_version"] == info["version"]

    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="no such data folder"):
        client.predict("missing", "train", api_name="/rebuild_index")


def test_queries_are_served_by_the_previous_version_until_the_switch(world, tmp_path):
    """Deterministic: a request made while the new version is being built uses the old one."""
    import shutil

    shutil.copytree(world["model"], tmp_path / "model")
    service = FoleyService(
        lambda: load_models(tmp_path / "model"), limits=LIMITS, rebuild_root=world["root"]
    )
    old = service.index.version
    seen = {}

    def during(done: int, total: int) -> None:
        if 0 < done < total and "version" not in seen:
            seen["version"] = service.index.version
            seen["generated"] = service.generate(world["clip"], "ambient_joint", **FAST)
            try:
                service.start_rebuild(world["data"], "train")
            except InputError as err:
                seen["second"] = str(err)

    job = service.start_rebuild(world["data"], "train", batch_size=2, on_progress=during)
    assert job.wait(120) and job.state == "done", job.error
    assert seen["version"] == old and seen["generated"].index_version == old
    assert "already running" in seen["second"]
    assert service.index.version == job.index.version != old


def test_without_avs_the_panel_says_so(world):
    loaded = load_models(world["model"])
    service = FoleyService(Models(pipeline=loaded.pipeline, avs=None), limits=LIMITS)
    steps = []
    result = service.generate(
        world["clip"], "ambient_joint", candidates=2, progress=lambda f, d: steps.append((f, d)),
        **FAST,
    )  # fmt: skip
    assert result.avs is None and "No AVS model" in result.avs_note
    # progress is reported: increasing fractions, one message per candidate, ending at 1
    fractions = [f for f, _ in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("candidate 2 of 2" in d for _, d in steps)
    assert result.details()["alignment_score"] is None


@pytest.mark.slow  # a fresh interpreter imports torch and gradio: ~40 s on a loaded CPU
def test_cli_serves_on_localhost(world, tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "foley.cli.main", "app", "--model", str(world["model"]),
         "--port", str(port), "--max-seconds", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2) as r:
                    config = json.loads(r.read())
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.5)
        else:
            pytest.fail("foley app did not start")
        assert Limits(max_video_seconds=3.0).describe() in json.dumps(config)
        with socket.socket() as s:  # bound to loopback only
            s.settimeout(1)
            other = socket.gethostbyname(socket.gethostname())
            if other != "127.0.0.1":
                assert s.connect_ex((other, port)) != 0
    finally:
        proc.terminate()
        proc.wait(30)


def test_cli_bad_model_is_one_line(tmp_path, capsys):
    from foley.cli.main import main

    assert main(["app", "--model", str(tmp_path / "nothing")]) == 1
    err = capsys.readouterr().err.strip()
    assert "not a saved Foley pipeline" in err and len(err.splitlines()) == 1


def test_importing_the_app_loads_nothing():
    code = (
        "import sys, app.ui, app.cli, app.service; "
        "print(sorted(m for m in ('gradio', 'torch', 'diffusers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_text_search_plays_the_hits(served, world):
    client, service = served["client"], served["service"]
    text = "knock on the wooden table"
    md, *players = client.predict(text, api_name="/search_text")
    rows = service.search_text(text)
    n = min(5, len(service.index))
    assert len(rows) == n and len(players) == 5
    assert [p["visible"] for p in players] == [True] * n + [False] * (5 - n)
    with torch.no_grad():
        q = service.models.pipeline.mc3.encode_text([text]).numpy()[0]
    scores = [float(service.index.vector(r["id"]) @ q) for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert np.allclose(scores, [r["score"] for r in rows], atol=1e-3)
    for row, player in zip(rows, players):
        assert row["id"] in md
        clip = load_audio(service.index.get(row["id"])["clip_path"])
        assert np.allclose(load_audio(player["value"]), clip, atol=2e-4)  # the clip, as wav
    assert str(world["root"]) not in md and "clip_path" not in md
    with pytest.raises(Exception, match="type what to search for"):
        client.predict("   ", api_name="/search_text")


def test_app_serves_the_shipped_audioscope_without_a_flag(monkeypatch):
    """`foley app` with the default model: the Separate tab gets the model's audioscope/."""
    import app.ui as ui
    from foley.cli.main import main
    from foley.defaults import DEFAULT_MODEL_DIR
    from foley.models.audioscope import AudioScope

    if not (DEFAULT_MODEL_DIR / "audioscope" / "config.json").is_file():
        pytest.skip("the default model with audioscope/ is not installed")
    seen = {}
    monkeypatch.setattr(ui, "build_ui", lambda service, **kw: seen.update(kw) or "demo")
    monkeypatch.setattr(ui, "launch", lambda demo, **kw: seen.update(launched=demo))
    assert main(["app", "--device", "cpu"]) == 0
    assert seen["launched"] == "demo" and isinstance(seen["audioscope"], AudioScope)


def test_the_service_removes_only_its_own_scratch_folder(world, tmp_path):
    """A service's own temp folder goes when the service does (no foley-app-* left in /tmp per
    run); a work folder it was given is the user's and stays."""
    import gc

    loaded = load_models(world["model"])
    own = FoleyService(Models(pipeline=loaded.pipeline, avs=None), limits=LIMITS)
    scratch = own.work_dir
    (scratch / "result.wav").write_bytes(b"x")
    given = FoleyService(
        Models(pipeline=loaded.pipeline, avs=None), limits=LIMITS, work_dir=tmp_path / "mine"
    )
    assert scratch.is_dir() and given.work_dir.is_dir()
    del own, given
    gc.collect()
    assert not scratch.exists()
    assert (tmp_path / "mine").is_dir()
