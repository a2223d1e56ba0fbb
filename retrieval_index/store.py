"""Versioned on-disk layout: manifests with checksums, the writer lock and the atomic switch.

Layout of an index directory::

    INDEX/
      CURRENT               one line, the serving version's name ("v0003"), replaced with os.replace
      .lock                 fcntl lock held by the one writer (create, add, rebuild)
      versions/
        v0002/              the previous version, kept so readers that opened it keep working
        v0003/              index.faiss, meta.sqlite, manifest.json (the manifest is written last)
        v0004.partial/      a write in progress, or one that was killed: readers never look here,
                            the next writer deletes it

A version directory is immutable once renamed from ``.partial``. Readers only follow ``CURRENT``,
which points at a complete, fsynced directory before and after the ``os.replace``; so a writer
killed at any point (SIGKILL included) leaves the previous version serving. The lock is an
``fcntl.flock`` on ``.lock``: the kernel releases it when its holder dies, so no stale locks.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import IndexCorruptError, IndexNotFoundError

FORMAT = "foley-retrieval-index"
FORMAT_VERSION = 1
CURRENT = "CURRENT"
VERSIONS = "versions"
MANIFEST = "manifest.json"
INDEX_FILE = "index.faiss"
META_FILE = "meta.sqlite"
KEEP_VERSIONS = 2
_VERSION_RE = re.compile(r"^v(\d{4,})$")
_ANY_VERSION_RE = re.compile(r"^v(\d{4,})(\..*)?$")
_REQUIRED = {
    "format": str,
    "format_version": int,
    "version": str,
    "model_id": str,
    "dim": int,
    "metric": str,
    "count": int,
    "kind": str,
    "params": dict,
    "created": str,
    "faiss_version": str,
    "files": dict,
}

# Test hook: called with a stage name at each step of a commit ("files_written",
# "manifest_written", "renamed", "switched", "collected"). The kill tests set it, in a
# subprocess, to a function that SIGKILLs its own process. None in normal use.
STAGE_HOOK: Callable[[str], None] | None = None


def _stage(name: str) -> None:
    if STAGE_HOOK is not None:
        STAGE_HOOK(name)


def sha256_file(path: Path, chunk_bytes: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def _manifest_checksum(fields: dict[str, Any]) -> str:
    body = {k: v for k, v in fields.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def is_index_dir(root: Path) -> bool:
    """True when ``root`` holds a ``CURRENT`` pointer (a committed index)."""
    return (Path(root) / CURRENT).is_file()


def read_current(root: Path) -> str:
    """Name of the serving version ("v0003"), from ``root/CURRENT``."""
    root = Path(root)
    pointer = root / CURRENT
    if not pointer.is_file():
        raise IndexNotFoundError(
            f"no retrieval index at {root} (no {CURRENT} file); build one first"
        )
    name = pointer.read_text(errors="replace").strip()
    if not _VERSION_RE.match(name):
        raise IndexCorruptError(
            f"{pointer} is corrupt ({name[:40]!r} is not a version name); rebuild the index"
        )
    return name


def version_dir(root: Path, name: str) -> Path:
    return Path(root) / VERSIONS / name


def read_manifest(vdir: Path) -> dict[str, Any]:
    """Parse and validate ``vdir/manifest.json`` (types, format, self-checksum)."""
    path = vdir / MANIFEST
    if not vdir.is_dir():
        raise IndexNotFoundError(f"index version directory {vdir} is missing; rebuild the index")
    try:
        fields = json.loads(path.read_text())
    except FileNotFoundError:
        raise IndexCorruptError(f"{path} is missing; rebuild the index") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise IndexCorruptError(f"{path} is corrupt (not JSON: {err}); rebuild the index") from None
    if not isinstance(fields, dict):
        raise IndexCorruptError(f"{path} is corrupt (not a JSON object); rebuild the index")
    for key, kind in _REQUIRED.items():
        if not isinstance(fields.get(key), kind):
            raise IndexCorruptError(
                f"{path} is corrupt (field {key!r} missing or not {kind.__name__}); "
                "rebuild the index"
            )
    if fields["format"] != FORMAT or fields["format_version"] > FORMAT_VERSION:
        raise IndexCorruptError(
            f"{path} is format {fields['format']!r} v{fields['format_version']}, this code "
            f"reads {FORMAT!r} up to v{FORMAT_VERSION}"
        )
    if fields.get("checksum") != _manifest_checksum(fields):
        raise IndexCorruptError(
            f"{path} is corrupt (its checksum does not match); rebuild the index"
        )
    return fields


def verify_files(vdir: Path, manifest: dict[str, Any], *, checksums: bool = True) -> None:
    """Check each file listed in the manifest: present, same size and (optionally) same sha256."""
    for name, entry in manifest["files"].items():
        path = vdir / name
        if not path.is_file():
            raise IndexCorruptError(f"{path} is missing; rebuild the index")
        size = path.stat().st_size
        if size != entry.get("bytes"):
            raise IndexCorruptError(
                f"{path} is truncated or altered ({size} bytes, manifest says "
                f"{entry.get('bytes')}); rebuild the index"
            )
        if checksums and sha256_file(path) != entry.get("sha256"):
            raise IndexCorruptError(
                f"{path} is corrupt (sha256 differs from the manifest); rebuild the index"
            )


def _version_numbers(root: Path) -> list[tuple[int, str]]:
    vroot = Path(root) / VERSIONS
    if not vroot.is_dir():
        return []
    out = []
    for entry in vroot.iterdir():
        m = _ANY_VERSION_RE.match(entry.name)
        if m:
            out.append((int(m.group(1)), entry.name))
    return sorted(out)


def list_versions(root: Path) -> list[str]:
    """Complete (renamed) version directories, oldest first."""
    return [name for _, name in _version_numbers(root) if _VERSION_RE.match(name)]


class VersionWriter:
    """Holds the writer lock and one ``vNNNN.partial`` directory until :meth:`commit`.

    Use as a context manager: on an exception (or without a commit) the partial directory is
    removed and the lock released; the serving version is untouched.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock_fd: int | None = None
        self.partial: Path | None = None
        self.name = ""

    def __enter__(self) -> VersionWriter:
        (self.root / VERSIONS).mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # blocks while another writer runs
        self._remove_partials()
        numbers = [n for n, _ in _version_numbers(self.root)]
        self.name = f"v{(max(numbers) + 1) if numbers else 1:04d}"
        self.partial = self.root / VERSIONS / f"{self.name}.partial"
        self.partial.mkdir()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self.partial is not None and self.partial.exists():
                shutil.rmtree(self.partial, ignore_errors=True)
        finally:
            if self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
                self._lock_fd = None

    def _remove_partials(self) -> None:
        """Delete leftovers of killed writers: .partial/.trash dirs, and complete versions newer
        than CURRENT (renamed, but killed before the switch: never served, so never opened)."""
        try:
            current = int(read_current(self.root)[1:])
        except (IndexNotFoundError, IndexCorruptError):
            current = None
        for number, name in _version_numbers(self.root):
            orphan = current is not None and number > current
            if orphan or not _VERSION_RE.match(name):
                shutil.rmtree(self.root / VERSIONS / name, ignore_errors=True)

    def commit(self, fields: dict[str, Any]) -> Path:
        """Checksum the files in the partial directory, write the manifest, switch ``CURRENT``.

        ``fields`` are the manifest fields other than format, version, files and checksum.
        Returns the committed version directory.
        """
        assert self.partial is not None, "commit outside the context manager"
        files = {}
        for name in (INDEX_FILE, META_FILE):
            path = self.partial / name
            _fsync_file(path)
            files[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        _stage("files_written")
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "version": self.name,
            **fields,
            "files": files,
        }
        manifest["checksum"] = _manifest_checksum(manifest)
        mpath = self.partial / MANIFEST
        mpath.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        _fsync_file(mpath)
        _fsync_dir(self.partial)
        _stage("manifest_written")
        final = self.root / VERSIONS / self.name
        os.rename(self.partial, final)
        self.partial = None
        _fsync_dir(self.root / VERSIONS)
        _stage("renamed")
        tmp = self.root / f"{CURRENT}.tmp"
        with open(tmp, "w") as f:
            f.write(self.name + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.root / CURRENT)
        _fsync_dir(self.root)
        _stage("switched")
        self._collect()
        _stage("collected")
        return final

    def _collect(self) -> None:
        """Delete versions older than the last ``KEEP_VERSIONS`` (renamed to .trash first)."""
        complete = list_versions(self.root)
        for name in complete[:-KEEP_VERSIONS]:
            trash = self.root / VERSIONS / f"{name}.trash"
            os.rename(self.root / VERSIONS / name, trash)
            shutil.rmtree(trash, ignore_errors=True)
