"""Issue 16: what a fresh install relies on -- the lock, the install check, and defaults that make
every model-using subcommand work without ``--model``."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from foley.cli import check_install
from foley.cli.main import main
from foley.defaults import DEFAULT_MODEL_DIR, mc3_dir_or_default
from foley.models.mc3_embed import model_id
from retrieval_index import ClipIndex

REPO = Path(__file__).resolve().parents[1]


def _locked() -> dict[str, str]:
    """name -> version of every line of requirements.lock (markers dropped; last one wins)."""
    text = (REPO / "requirements.lock").read_text()
    return {
        m.group(1).lower(): m.group(2)
        for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", text, re.M)
    }


def test_every_direct_dependency_is_pinned_exactly_and_locked():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    locked = _locked()
    deps = project["dependencies"] + project["optional-dependencies"]["test"]
    for dep in deps:
        name, _, version = dep.partition("==")
        assert version, f"{dep}: not pinned exactly"
        key = name.strip().lower().replace("_", "-")
        assert key in locked, f"{name} is not in requirements.lock (run scripts/lock.sh)"
    # torch and torchaudio are one release: a torchaudio for another torch does not load
    assert locked["torch"] == locked["torchaudio"] == "2.11.0"
    assert project["name"] != "foley"  # taken on PyPI by an unrelated package


def test_lock_lines_carry_hashes():
    text = (REPO / "requirements.lock").read_text()
    pins = re.findall(r"^[A-Za-z0-9_.\-]+==", text, re.M)
    assert len(pins) > 50
    assert text.count("--hash=sha256:") >= len(pins)
    weights = (REPO / "requirements-weights.lock").read_text()
    assert (
        len(re.findall(r"^[a-z0-9\-]+==\S+ \\\n\s+--hash=sha256:[0-9a-f]{64}", weights, re.M)) == 4
    )


def test_check_install_reports_a_missing_network_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr(
        check_install, "WEIGHT_FILES", (("aisfx", "models/checkpoint.pth"), ("no_such_net", None))
    )
    monkeypatch.setattr(check_install, "CHECKS", (("evaluation networks", check_install._weights),))
    assert check_install.main() == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "no_such_net is not installed" in err


def test_check_install_passes_on_this_install(monkeypatch, capsys):
    # the cheap checks (the pipeline one runs in scripts/install.sh and CI)
    checks = tuple(c for c in check_install.CHECKS if c[0] != "shipped pipeline")
    monkeypatch.setattr(check_install, "CHECKS", checks)
    assert check_install.main() == 0
    out = capsys.readouterr().out
    assert "torchaudio 2.11.0" in out and "generate" in out and "eval" in out


def test_model_options_default_to_the_shipped_model(tmp_path):
    shipped = DEFAULT_MODEL_DIR / "retriever" / "mc3"  # the retriever component's MC3
    assert (shipped / "config.json").is_file()
    assert mc3_dir_or_default(None) == shipped
    assert mc3_dir_or_default(DEFAULT_MODEL_DIR) == shipped
    assert mc3_dir_or_default(tmp_path) == tmp_path  # an MC3 folder given as such


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "--data", "D"],
        ["index", "build", "--data", "D", "--out", "I"],
        ["index", "add", "--index", "I", "--data", "D", "--split", "val"],
        ["index", "query", "--index", "I", "--video", "v.mp4"],
    ],
)
def test_model_is_optional_on_every_subcommand_that_loads_one(argv):
    from foley.cli.main import build_parser

    args = build_parser().parse_args(argv)  # no "--model is required" exit
    assert args.model is None


def test_index_build_without_model_uses_the_shipped_mc3(tmp_path, capsys):
    from foley.data.foleyworld.generate import generate_dataset
    from foley.data.foleyworld.scene import FoleyWorldSettings

    data = tmp_path / "data"
    generate_dataset(data, FoleyWorldSettings(videos=2, clips_per_video=2, seed=5), progress=False)
    out = tmp_path / "idx"
    rc = main(["index", "build", "--data", str(data), "--out", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    index = ClipIndex.open(out)
    assert index.model_id == model_id(DEFAULT_MODEL_DIR / "retriever" / "mc3")
    assert len(index) > 0
