"""Download and unpack the packages: ``apt-get download`` + ``dpkg-deb --fsys-tarfile``.

Needs ``apt-get`` with package lists (``apt-get update`` run once by an administrator) and
``dpkg-deb``; no root: ``apt-get download`` writes the .deb into the current folder and
``dpkg-deb`` only reads it.  Nothing is installed.  Cache layout (``CACHE``)::

    CACHE/debs/<name>_<version>_all.deb
    CACHE/tree/<name>/...            the audio, archives and copyright file, as in the package
    CACHE/tree/<name>/<zip>.d/...    audio members taken out of a zip archive in the package
    CACHE/tree/<name>/.unpacked      marker: the .deb it came from (rerun skips the package)
"""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from foley.data.soundbank.packages import AUDIO_SUFFIXES, PackageSpec
from foley.errors import InputError


@dataclass(frozen=True)
class Source:
    """One audio file of a package, unpacked into the cache."""

    package: str
    path: str  # original path: tree path, or "<zip path>:<member>"
    file: Path  # where it lies in the cache

    @property
    def key(self) -> str:
        return f"{self.package}/{self.path}"


def find_deb(debs: Path, name: str) -> Path | None:
    found = sorted(debs.glob(f"{name}_*.deb"))
    return found[-1] if found else None


def download(name: str, debs: Path) -> Path:
    """The package's .deb in ``debs`` (downloaded unless already there)."""
    debs.mkdir(parents=True, exist_ok=True)
    deb = find_deb(debs, name)
    if deb is not None:
        return deb
    if shutil.which("apt-get") is None:
        raise InputError("apt-get was not found: the sound bank is fetched from Debian packages")
    run = subprocess.run(
        ["apt-get", "download", name], cwd=debs, capture_output=True, text=True, check=False
    )
    deb = find_deb(debs, name)
    if run.returncode != 0 or deb is None:
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        raise InputError(f"apt-get download {name} failed: {last}")
    return deb


def _wanted(path: str, globs: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(path, g) for g in globs)


def unpack(spec: PackageSpec, deb: Path, tree: Path) -> Path:
    """Take the package's audio (and copyright file) out of ``deb`` into ``tree/<name>``."""
    root = tree / spec.name
    marker = root / ".unpacked"
    if marker.exists() and marker.read_text().strip() == deb.name:
        return root
    if shutil.which("dpkg-deb") is None:
        raise InputError("dpkg-deb was not found: it unpacks the Debian packages")
    globs = spec.unpack_globs()
    proc = subprocess.Popen(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if not member.isfile() or not _wanted(name, globs):
                continue
            dest = root / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, open(dest, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    err = proc.stderr.read().decode(errors="replace").strip()
    if proc.wait() != 0:
        raise InputError(f"{deb.name}: dpkg-deb could not read it ({err or 'no message'})")
    for zip_path, member_glob in spec.archives:
        archive = root / zip_path
        if not archive.exists():
            continue
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                if info.is_dir() or not fnmatch.fnmatch(info.filename, member_glob):
                    continue
                dest = root / f"{zip_path}.d" / info.filename
                dest.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        if spec.drop_archives:  # our own copy in the cache; the audio is out
            archive.unlink()
    marker.write_text(deb.name + "\n")
    return root


def sources(spec: PackageSpec, root: Path) -> list[Source]:
    """Every audio file of the package in the cache, sorted by original path."""
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in AUDIO_SUFFIXES:
            continue
        rel = path.relative_to(root).as_posix()
        for zip_path, _ in spec.archives:
            prefix = f"{zip_path}.d/"
            if rel.startswith(prefix):
                found.append(Source(spec.name, f"{zip_path}:{rel[len(prefix) :]}", path))
                break
        else:
            if _wanted(rel, spec.files):
                found.append(Source(spec.name, rel, path))
    return found


def package_version(deb: Path) -> str:
    """``<version>`` from ``<name>_<version>_<arch>.deb`` (``%3a`` is an epoch colon)."""
    parts = deb.name.split("_")
    return parts[1].replace("%3a", ":") if len(parts) >= 3 else "unknown"
