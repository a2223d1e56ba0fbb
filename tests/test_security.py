"""Security: the attacks of issue 17 against the app (gradio 6.31, launched on 127.0.0.1) and the
library's entry points, each asserting that it fails and that nothing was read, replaced or
deleted.  The CLI's path and input faults are in tests/test_security_cli.py.

Tiny real models with random weights (tests/app_fixtures.py); every file made in tmp_path.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")

from app.service import FoleyService, Limits, load_models  # noqa: E402
from app.ui import build_ui, launch  # noqa: E402
from foley.cli.main import main  # noqa: E402
from foley.data.ego4d import read_metadata, split_path, write_metadata  # noqa: E402
from foley.errors import InputError  # noqa: E402
from foley.io import save_audio  # noqa: E402
from tests.app_fixtures import make_world, write_clip  # noqa: E402

LIMITS = Limits(max_video_seconds=3.0, max_upload_mb=2.0, avs_shuffles=2, max_candidates=2)
SETTINGS = ["ambient_joint", 2, 2.0, 0, 1]  # mode, steps, guidance, seed, candidates


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` by relative path -> sha256 (what "nothing changed" means)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    w = make_world(tmp_path_factory.mktemp("sec"))
    secrets = w["root"].parent / f"{w['root'].name}-private"  # outside every allowed folder
    secrets.mkdir()
    rng = np.random.default_rng(7)
    w["secret_wav"] = save_audio(secrets / "secret.wav", 0.3 * rng.standard_normal(16000))
    w["secret_mp4"] = write_clip(secrets / "secret.mp4", seconds=1.0)
    w["secret_txt"] = secrets / "credentials.txt"
    w["secret_txt"].write_text("root-only secret 4f9a\n")
    return w


@pytest.fixture(scope="module")
def served(world):
    """The app as ``foley app`` serves it by default: no --allow-rebuild, loopback."""
    demo = build_ui(lambda: load_models(world["model"]), limits=LIMITS, examples=[])
    url = launch(demo, port=free_port(), block=False, quiet=True)
    yield {"url": url.rstrip("/"), "service": demo.foley_service}
    demo.close()


def call_api(url: str, name: str, data: list) -> str:
    """POST a raw payload to ``/gradio_api/call/<name>`` (as an attacker would, not through
    gradio_client's upload) and return the event stream's text."""
    req = urllib.request.Request(
        f"{url}/gradio_api/call/{name}",
        data=json.dumps({"data": data}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        event = json.loads(r.read())["event_id"]
    with urllib.request.urlopen(f"{url}/gradio_api/call/{name}/{event}", timeout=120) as r:
        return r.read().decode(errors="replace")


def file_ref(path: Path) -> dict:
    return {"path": str(path), "meta": {"_type": "gradio.FileData"}}


def served_copies(secret: Path) -> list[Path]:
    """Files in gradio's upload/cache folder with the secret's bytes."""
    from gradio.utils import get_upload_folder

    data = secret.read_bytes()
    root = Path(get_upload_folder())
    return [p for p in root.rglob("*") if p.is_file() and p.read_bytes() == data]


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


# ---- 1. arbitrary file read through a file reference ------------------------------------------
def test_the_attacks_run_against_the_locked_gradio():
    """The file-reference attacks below are only evidence for the gradio the lock installs."""
    import re

    import gradio

    lock = (Path(__file__).resolve().parents[1] / "requirements.lock").read_text()
    pinned = re.search(r"^gradio==([\w.]+)", lock, re.M).group(1)
    assert gradio.__version__ == pinned


def test_file_reference_to_a_server_path_is_refused(served, world):
    url = served["url"]
    for secret in (world["secret_mp4"], world["secret_txt"]):
        for endpoint, data in (
            ("generate", [file_ref(secret), *SETTINGS, None, -45.0, 1.0]),
            ("check_video", [file_ref(secret)]),
        ):
            text = call_api(url, endpoint, data)
            assert "event: error" in text, text[-500:]
            assert str(secret.parent) not in text  # no server path in the message
            assert "4f9a" not in text
        assert served_copies(secret) == []  # gradio did not copy it into its cache
        status, body = fetch(f"{url}/gradio_api/file={secret}")
        assert status >= 400 and secret.read_bytes() not in body


def test_server_wav_as_condition_audio_is_refused(served, world):
    """A real upload for the video, a server path for the ambient clip."""
    import httpx

    with world["clip"].open("rb") as f:  # a genuine upload, as the browser makes it
        r = httpx.post(f"{served['url']}/gradio_api/upload", files={"files": f}, timeout=60)
    uploaded = r.json()[0]
    text = call_api(
        served["url"],
        "generate",
        [file_ref(Path(uploaded)), *SETTINGS, file_ref(world["secret_wav"]), -45.0, 1.0],
    )
    assert "event: error" in text and str(world["secret_wav"].parent) not in text
    assert served_copies(world["secret_wav"]) == []


def test_service_accepts_files_only_from_its_input_roots(world, tmp_path):
    """Defence in depth below gradio: the service itself refuses a path outside the upload
    folder, with the same message whether the file exists or not (no existence oracle)."""
    service = FoleyService(
        lambda: load_models(world["model"]), limits=LIMITS, input_roots=[tmp_path]
    )
    messages = set()
    for path in (world["secret_mp4"], world["secret_mp4"].with_name("missing.mp4")):
        with pytest.raises(InputError) as err:
            service.check_video(path)
        messages.add(str(err.value))
    assert messages == {"the video was not uploaded through the app: upload it"}
    inside = write_clip(tmp_path / "up.mp4", seconds=1.0)
    assert service.check_video(inside).duration == pytest.approx(1.0, abs=0.15)
    escaping = tmp_path / ".." / world["secret_mp4"].parent.name / "secret.mp4"
    with pytest.raises(InputError, match="not uploaded"):
        service.check_video(escaping)
    link = tmp_path / "link.mp4"
    link.symlink_to(world["secret_mp4"])
    with pytest.raises(InputError, match="not uploaded"):
        service.check_video(link)


# ---- 2. index rebuilds: opt-in, confined, never into the package -------------------------------
def test_rebuild_is_off_without_allow_rebuild(served, world):
    before = digest(world["model"] / "retriever" / "index")
    text = call_api(served["url"], "rebuild_index", [str(world["data"]), "train"])
    assert "event: error" in text and "rebuilds are off" in text
    assert str(world["data"]) not in text
    assert digest(world["model"] / "retriever" / "index") == before


def poison(data: Path, target: Path, name: str) -> Path:
    """A copy of ``data``'s train.tsv whose first clip names ``target`` (absolute)."""
    records = read_metadata(split_path(data, "train"))
    first = records[0].__class__(**{**vars(records[0]), "clip_file": str(target)})
    return write_metadata(data / f"{name}.tsv", [first, *records[1:]])


def test_rebuild_is_confined_to_the_data_root(world, tmp_path):
    import shutil

    shutil.copytree(world["model"], tmp_path / "model")
    index = tmp_path / "model" / "retriever" / "index"
    root = tmp_path / "root"
    shutil.copytree(world["data"], root / "data")
    service = FoleyService(
        lambda: load_models(tmp_path / "model"), limits=LIMITS, rebuild_root=root
    )
    before, count = digest(index), len(service.index)
    poison(root / "data", world["secret_wav"], "poisoned")
    (root / "data" / "uid").mkdir()
    up = world["secret_wav"].relative_to(world["root"].parent)
    poison(root / "data", Path("..") / ".." / ".." / ".." / up, "dotdot")

    def refused(data_dir: str, split: str = "train") -> str:
        try:
            job = service.start_rebuild(data_dir, split)
        except InputError as err:
            return str(err)
        assert job.wait(60)
        assert job.state == "failed", f"{data_dir} {split}: rebuilt"
        return job.error

    msgs = [refused(str(world["secret_mp4"].parent)), refused(str(tmp_path / "nowhere"))]
    assert msgs[0] == msgs[1]  # existing and missing paths answer alike: no oracle
    assert "inside the allowed folder" in msgs[0]
    assert "inside the allowed folder" in refused("../model")
    assert "outside the data root" in refused("data", "poisoned")
    assert "outside the data root" in refused("data", "dotdot")
    assert "a name" in refused("data", str(split_path(world["data"], "train")))
    assert digest(index) == before and len(service.index) == count
    # inside the root it works
    job = service.start_rebuild("data", "train")
    assert job.wait(120) and job.state == "done", job.error


def test_rebuild_of_the_shipped_index_writes_a_user_copy(world, tmp_path):
    """An index inside the installed package is served but never written: the rebuild goes to
    the user copy and the shipped versions stay byte for byte."""
    import foley

    model = Path(foley.__file__).resolve().parent / "assets" / "default"
    if not (model / "model_index.json").is_file():
        pytest.skip("no shipped model in this install")
    shipped = model / "retriever" / "index"  # the retriever component's index
    assert shipped.is_dir()
    before = digest(shipped)
    service = FoleyService(
        lambda: load_models(world["model"]),
        shipped,
        limits=LIMITS,
        rebuild_root=world["root"],
        user_index_dir=tmp_path / "user-index",
    )
    job = service.start_rebuild("data", "train")
    assert job.wait(120) and job.state == "done", job.error
    assert digest(shipped) == before
    assert len(service.index) == len(read_metadata(split_path(world["data"], "train")))
    assert Path(service.index.path).resolve() == (tmp_path / "user-index").resolve()
    assert service.index_info()["folder"] == "user-index"


# ---- serving: login off loopback, busy port ----------------------------------------------------
def test_non_loopback_host_needs_auth(world, capsys):
    for extra in (["--host", "0.0.0.0"], ["--share"], ["--auth", "nopassword"]):
        assert main(["app", "--model", str(world["model"]), *extra]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and ("--auth" in err), err


def test_busy_port_is_one_line(world, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        rc = main(["app", "--model", str(world["model"]), "--port", str(port)])
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the loading bar
    assert rc == 1 and err.startswith("foley app: error: cannot serve on 127.0.0.1"), err


def test_messages_carry_no_server_paths(served, world):
    from app.ui import scrub_paths

    text = scrub_paths(f"[Errno 13] Permission denied: '{world['model']}/index/CURRENT'")
    assert str(world["model"]) not in text and "CURRENT" in text
    assert served["service"].index_info()["folder"] == "index"
    assert scrub_paths("embedding 3/10 clips") == "embedding 3/10 clips"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits")
def test_read_only_index_folder_is_one_line(world, tmp_path, capsys):
    import shutil

    index = tmp_path / "index"
    shutil.copytree(world["model"] / "retriever" / "index", index)
    for p in [index, *index.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)
    try:
        rc = main(["index", "build", "--data", str(world["data"]), "--out", str(index),
                   "--model", str(world["model"]), "--quiet"])  # fmt: skip
        err = capsys.readouterr().err.strip()
        assert rc == 1 and len(err.splitlines()) == 1 and "read-only" in err, err
    finally:
        for p in [index, *index.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)
