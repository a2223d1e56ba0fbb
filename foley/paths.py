"""Path safety shared by the CLI and the app: resolve, confine, never overwrite an input.

Every check works on fully resolved paths (``~``, ``..`` and symlinks followed), and compares
existing files by identity (``os.path.samefile``), so a hard link or a symlink to an input is
still that input.  Errors are :class:`foley.errors.InputError` with one line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from foley.errors import InputError

PathLike = str | os.PathLike


def resolved(path: PathLike) -> Path:
    """``path`` absolute, with ``~``, ``..`` and every symlink that exists followed."""
    return Path(path).expanduser().resolve(strict=False)


def is_within(path: PathLike, root: PathLike) -> bool:
    """Whether ``path`` (resolved) is ``root`` (resolved) or lies under it."""
    p, r = resolved(path), resolved(root)
    return p == r or r in p.parents


def confined(path: PathLike, root: PathLike, what: str = "path") -> Path:
    """``path`` resolved (relative paths are taken under ``root``), refused if it escapes.

    The message names neither the path nor whether it exists, so it is no file-existence
    oracle for a remote client.
    """
    p = Path(path).expanduser()
    full = resolved(p if p.is_absolute() else Path(root) / p)
    if not is_within(full, root):
        raise InputError(f"the {what} must lie inside the allowed folder")
    return full


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether ``a`` and ``b`` name the same file (after symlinks; hard links included)."""
    ra, rb = resolved(a), resolved(b)
    if ra == rb:
        return True
    try:
        return os.path.samefile(ra, rb)
    except OSError:  # one of them does not exist
        return False


def check_outputs(
    inputs: Iterable[PathLike],
    outputs: Iterable[tuple[str, PathLike]],
    *,
    overwrite: bool = False,
) -> None:
    """Refuse, before any work, outputs that would replace an input or each other.

    ``outputs``: (option name, path) pairs, e.g. ``("-o", "out.mp4")``.  An output that is an
    input (after symlinks and ``..``), lies inside an input file's place, or is named twice is
    an error; an existing output is an error unless ``overwrite``.  An existing folder is never
    an acceptable output file.
    """
    ins = [Path(p) for p in inputs]
    seen: dict[Path, str] = {}
    for option, out in outputs:
        out = Path(out)
        for src in ins:
            if same_file(out, src):
                raise InputError(
                    f"{option} {out}: is an input ({src.name}); refusing to overwrite it"
                )
        key = resolved(out)
        if key in seen:
            raise InputError(f"{option} {out}: also given as {seen[key]}; give different outputs")
        seen[key] = option
        if out.is_dir():
            raise InputError(f"{option} {out}: is a folder; give a file name")
        if out.exists() and not overwrite:
            raise InputError(f"{option} {out}: already exists; pass --overwrite to replace it")
