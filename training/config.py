"""Typed trainer configs: one dataclass per trainer, its command line derived from the fields.

A field is declared with :func:`opt` (default, help, and the command-line details:
``choices``, ``positional``, ``required``, ``short``); ``add_config_arguments`` turns the
dataclass into argparse options (``--field-name``), ``config_from_args`` turns the parsed
options back into the dataclass. Presets are instances
(``CodecConfig(preset="small", steps=3000)``), so a misspelt setting fails when the preset is
built, not when its stage runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def opt(
    default: Any = dataclasses.MISSING,
    help: str | None = None,  # noqa: A002 (argparse's name)
    *,
    choices: tuple | None = None,
    positional: bool = False,
    required: bool = False,
    short: str | None = None,
) -> Any:
    """A config field: its default and how it appears on the command line.

    ``required`` options have an empty default in the dataclass (a preset leaves them unset and
    the caller fills them in) but must be given on the command line.
    """
    meta = {
        "help": help,
        "choices": choices,
        "positional": positional,
        "required": required,
        "short": short,
    }
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple for sequence defaults")
    return dataclasses.field(default=default, metadata=meta)


def _base_type(annotation: Any) -> tuple[type, bool, bool]:
    """(element type, is a sequence, may be None) of a field annotation."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in args if a is not type(None)]
        base, seq, _ = _base_type(inner[0])
        return base, seq, True
    if origin in (tuple, list):
        return args[0], True, False
    return annotation, False, False


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One argparse option (or positional) per field of the config dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta = f.metadata
        base, seq, _ = _base_type(hints[f.name])
        kwargs: dict[str, Any] = {"help": meta.get("help")}
        if meta.get("choices"):
            kwargs["choices"] = meta["choices"]
        if base is bool and not seq:
            if f.default is not False:
                raise TypeError(f"{cls.__name__}.{f.name}: boolean flags default to False")
            parser.add_argument(f"--{f.name.replace('_', '-')}", action="store_true", **kwargs)
            continue
        kwargs["type"] = base
        if seq:
            kwargs["nargs"] = "+"
        if meta.get("positional"):
            parser.add_argument(f.name, **kwargs)
            continue
        if meta.get("required"):
            kwargs["required"] = True
        else:
            kwargs["default"] = f.default
        flags = [meta["short"]] if meta.get("short") else []
        parser.add_argument(*flags, f"--{f.name.replace('_', '-')}", dest=f.name, **kwargs)


def config_from_args(cls: type[T], args: argparse.Namespace | T) -> T:
    """The config of parsed options (a config passes through unchanged)."""
    if isinstance(args, cls):
        return args
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        if _base_type(hints[f.name])[1] and value is not None:
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


def trainer_main(cls: type, run, doc: str | None, argv: list[str] | None = None) -> int:
    """``python -m training.train_x ARGS``: parse ``argv`` into the config ``cls`` and ``run``
    it (the module docstring's first line describes the command)."""
    parser = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0])
    add_config_arguments(parser, cls)
    return run(parser.parse_args(argv))
