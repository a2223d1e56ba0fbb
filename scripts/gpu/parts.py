"""Move big folders through the device tool's limits: split a tar into sha256-checked parts.

The device tool carries at most 64 MiB to the GPU machine (the repo's tree included) and brings
back at most 8 files of 16 MiB each from ``$OUT``. So:

    parts.py bundle WHEELS .gpu --chunk-mb 28   # here: wheels -> .gpu/c1, .gpu/c2, ... (one
                                                #   device call carries each; see prepare.sh)
    parts.py join .gpu DEST [--partial]         # device: check the carried chunks, untar them
    parts.py pack RUN OUT --split-mb 15         # device: RUN's pipeline + logs -> OUT parts
    parts.py fetch FILES_AT DEST [--data D]     # here: reassemble, verify, run `foley eval`

Every part and the whole tar carry a sha256 in ``manifest.json``; a missing or corrupt part is
one clear line, never a half-extracted folder. UNTRIED on a GPU (tested at a tiny size on CPU,
tests/test_gpu_scripts.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

MIB = 2**20
MANIFEST = "manifest.json"
RETURN_FILES = 8  # the device tool brings back at most 8 files ...
RETURN_MIB = 64  # ... 64 MiB together
# what `pack` keeps of a recipe folder besides the pipeline: small, and what the card cites
RUN_EXTRAS = ("recipe.json", "eval", "codec/metrics.jsonl", "mc3/metrics.jsonl",
              "avs/metrics.jsonl", "sync/metrics.jsonl", "denoiser/metrics.jsonl")  # fmt: skip


class PartsError(Exception):
    """A user-facing failure: printed as one line."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def make_tar(members: list[tuple[Path, str]], tar_path: Path) -> None:
    """An uncompressed tar of (source, name in the archive); its payload (weights, ogg) is
    already compressed."""
    with tarfile.open(tar_path, "w") as tar:
        for src, name in members:
            tar.add(src, arcname=name)


def split(tar_path: Path, part_bytes: int, dest_for) -> dict:
    """Cut ``tar_path`` into parts of at most ``part_bytes``; ``dest_for(i)`` -> part path.
    Returns the manifest (file names, sizes, sha256 of each part and of the whole)."""
    parts = []
    with open(tar_path, "rb") as f:
        i = 0
        while block := f.read(part_bytes):
            i += 1
            dest = dest_for(i)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(block)
            parts.append({"file": dest.name, "folder": dest.parent.name, "size": len(block),
                          "sha256": hashlib.sha256(block).hexdigest()})  # fmt: skip
    return {"size": tar_path.stat().st_size, "sha256": sha256(tar_path), "parts": parts}


def join(manifest: dict, locate, tar_path: Path) -> None:
    """Concatenate the manifest's parts (``locate(part)`` -> path) into ``tar_path``, checking
    every part's and the whole's sha256."""
    missing = [p["file"] for p in manifest["parts"] if not locate(p).is_file()]
    if missing:
        raise PartsError(f"missing parts: {', '.join(missing)}")
    with open(tar_path, "wb") as out:
        for part in manifest["parts"]:
            path = locate(part)
            if path.stat().st_size != part["size"] or sha256(path) != part["sha256"]:
                raise PartsError(f"{path} is corrupt (size or sha256 differs from the manifest)")
            with open(path, "rb") as f:
                shutil.copyfileobj(f, out)
    if sha256(tar_path) != manifest["sha256"]:
        raise PartsError("the reassembled archive's sha256 differs from the manifest")


def extract(tar_path: Path, dest: Path) -> None:
    """Untar into ``dest``, which must be new or empty (nothing is overwritten)."""
    if dest.exists() and any(dest.iterdir()):
        raise PartsError(f"{dest} exists and is not empty: give a new folder")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path) as tar:
        tar.extractall(dest, filter="data")  # no absolute paths, links out or devices


def read_manifest(path: Path) -> dict:
    if not path.is_file():
        raise PartsError(f"no {path.name} in {path.parent}")
    return json.loads(path.read_text())


# ---- subcommands ---------------------------------------------------------------------------
def cmd_bundle(args: argparse.Namespace) -> None:
    """Wheels (any folder) -> ``DEST/c1..cN``, one chunk folder per device call."""
    src, dest = Path(args.src), Path(args.dest)
    files = sorted(p for p in src.iterdir() if p.is_file())
    if not files:
        raise PartsError(f"{src} has no files to bundle")
    for old in dest.glob("c[0-9]*"):
        shutil.rmtree(old)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        tar_path = Path(tmp) / "bundle.tar"
        make_tar([(f, f.name) for f in files], tar_path)
        manifest = split(tar_path, int(args.chunk_mb * MIB),
                         lambda i: dest / f"c{i}" / f"bundle.part{i:02d}")  # fmt: skip
    for part in manifest["parts"]:  # every chunk carries the manifest: any one can check
        (dest / part["folder"] / MANIFEST).write_text(json.dumps(manifest, indent=2))
    print(f"{len(files)} files, {manifest['size'] / MIB:.1f} MiB -> "
          f"{len(manifest['parts'])} chunks of <= {args.chunk_mb:g} MiB in {dest}")  # fmt: skip


def cmd_join(args: argparse.Namespace) -> None:
    """On the device: the carried chunks ``SRC/c*`` -> the bundle's files in DEST."""
    src = Path(args.src)
    manifests = sorted(src.glob(f"c[0-9]*/{MANIFEST}"))
    if not manifests:
        raise PartsError(f"no carried chunk (c*/{MANIFEST}) under {src}")
    manifest = read_manifest(manifests[0])

    def locate(part: dict) -> Path:
        return src / part["folder"] / part["file"]

    have = [p["folder"] for p in manifest["parts"] if locate(p).is_file()]
    print(f"chunks here: {', '.join(have)} of {len(manifest['parts'])}")
    if args.partial:
        return
    with tempfile.TemporaryDirectory() as tmp:
        tar_path = Path(tmp) / "bundle.tar"
        join(manifest, locate, tar_path)
        extract(tar_path, Path(args.dest))


def cmd_pack(args: argparse.Namespace) -> None:
    """On the device: RUN/pipeline (+ recipe.json, eval reports, logs) -> OUT parts."""
    run, out = Path(args.run), Path(args.out)
    if not (run / "pipeline" / "model_index.json").is_file():
        raise PartsError(f"{run}/pipeline is not a finished pipeline (no model_index.json)")
    members = [(run / "pipeline", "pipeline")]
    members += [(run / x, x) for x in RUN_EXTRAS if (run / x).exists()]
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tar_path = Path(tmp) / "run.tar"
        make_tar(members, tar_path)
        size = tar_path.stat().st_size
        slots = RETURN_FILES - 1 - len(args.keep_slots)  # the manifest and other files
        if size > RETURN_MIB * MIB - MIB or -(-size // int(args.split_mb * MIB)) > slots:
            raise PartsError(f"{size / MIB:.1f} MiB does not come back in {slots} parts of "
                             f"{args.split_mb:g} MiB ({RETURN_MIB} MiB in all)")  # fmt: skip
        manifest = split(tar_path, int(args.split_mb * MIB), lambda i: out / f"run.part{i:02d}")
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    print(f"packed {size / MIB:.1f} MiB into {len(manifest['parts'])} parts in {out}")


def cmd_fetch(args: argparse.Namespace) -> None:
    """Here: the device tool's files_at -> DEST (verified), then `foley eval` on it."""
    files_at, dest = Path(args.files_at), Path(args.dest)
    manifest = read_manifest(files_at / MANIFEST)
    with tempfile.TemporaryDirectory() as tmp:
        tar_path = Path(tmp) / "run.tar"
        join(manifest, lambda p: files_at / p["file"], tar_path)
        extract(tar_path, dest)
    print(f"verified {len(manifest['parts'])} parts (sha256) -> {dest / 'pipeline'}")
    if args.no_eval:
        return
    from foley.cli.main import main as foley_main

    pipeline = dest / "pipeline"
    code = foley_main(
        ["eval", "--data", args.data, "--split", args.split, "--model", str(pipeline),
         "--avs", str(pipeline / "avs"), "--n", str(args.n), "--steps", str(args.steps),
         "--out", str(dest / "eval-here" / args.split)]
    )  # fmt: skip
    if code:
        raise PartsError(f"foley eval failed (exit code {code})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parts.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("bundle", help="wheels folder -> chunk folders c1..cN")
    p.add_argument("src")
    p.add_argument("dest")
    p.add_argument("--chunk-mb", type=float, required=True)
    p.set_defaults(func=cmd_bundle)
    p = sub.add_parser("join", help="carried chunk folders -> the bundle's files")
    p.add_argument("src")
    p.add_argument("dest", nargs="?", default="")
    p.add_argument("--partial", action="store_true", help="only say which chunks are here")
    p.set_defaults(func=cmd_join)
    p = sub.add_parser("pack", help="a recipe folder's pipeline -> parts in OUT")
    p.add_argument("run")
    p.add_argument("out")
    p.add_argument("--split-mb", type=float, default=15.0)
    p.add_argument("--keep-slots", nargs="*", default=["log.txt"], help="other files in OUT")
    p.set_defaults(func=cmd_pack)
    p = sub.add_parser("fetch", help="files_at -> verified pipeline folder, then foley eval")
    p.add_argument("files_at")
    p.add_argument("dest")
    p.add_argument("--data", default="/work/data/fw-real-eval", help="FoleyWorld to eval on")
    p.add_argument("--split", default="test")
    p.add_argument("--n", type=int, default=48)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--no-eval", action="store_true")
    p.set_defaults(func=cmd_fetch)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except PartsError as err:
        print(f"parts.py {args.cmd}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
