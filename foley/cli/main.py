"""``foley``: one console script, each subcommand a thin ``main`` over library calls.

Subcommands are found through the ``foley.commands`` entry-point group, so packages above the
library (``training``, ``app``) plug in without ``foley`` importing them.  Each entry point is a
``register(subparsers)`` function that adds one subparser and sets ``func`` on it; ``func``
takes the parsed namespace and returns an exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import entry_points

from foley.errors import FoleyError


def _set_offline_env() -> None:
    # Nothing is ever downloaded at run time (no hub, no telemetry).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="foley",
        description="Video-to-audio: synchronised action sounds for silent videos of hands.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for ep in sorted(entry_points(group="foley.commands"), key=lambda e: e.name):
        ep.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    _set_offline_env()
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
