"""``foley``: one console script, each subcommand a thin ``main`` over library calls.

Subcommands are found through the ``foley.commands`` entry-point group, so packages above the
library (``training``, ``app``) plug in without ``foley`` importing them.  Each entry point is a
``register(subparsers)`` function that adds one subparser and sets ``func`` on it; ``func``
takes the parsed namespace and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points

from foley.defaults import set_offline_env
from foley.errors import FoleyError

# The library's own subcommands, each a module with ``register(subparsers)``.  Packages above the
# library (``training``, ``app``) plug in through the ``foley.commands`` entry points instead.
BUILTIN_COMMANDS = (
    "foley.cli.generate",
    "foley.cli.make_dataset",
    "foley.cli.index",
    "foley.cli.eval",
    "foley.cli.sound_bank",
    "foley.cli.prepare",
    "foley.cli.separate",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="foley",
        description="Video-to-audio: synchronised action sounds for silent videos of hands.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    registers = [importlib.import_module(name).register for name in BUILTIN_COMMANDS]
    builtin = {f"{r.__module__}:register" for r in registers}
    for ep in sorted(entry_points(group="foley.commands"), key=lambda e: e.name):
        if ep.value not in builtin:
            registers.append(ep.load())
    for register in registers:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    set_offline_env()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except FoleyError as err:
        print(f"foley {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
