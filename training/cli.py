"""``foley train <component>``: one subcommand per trainer.

Each trainer module exposes ``add_arguments(parser)`` and ``run(args) -> int``. A component is
listed here once its trainer works.
"""

from __future__ import annotations

import argparse
import importlib

TRAINERS: dict[str, str] = {
    "mc3": "training.train_mc3",
    "avs": "training.train_avs",
    "denoiser": "training.train_denoiser",
    "distill": "training.distill",
    "codec": "training.train_codec",
    "sync": "training.train_sync",
    "audioscope": "training.train_audioscope",
    "denseav": "training.train_denseav",
    "all": "training.recipe",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a component (accelerate)")
    comp = parser.add_subparsers(dest="component", metavar="COMPONENT", required=True)
    for name, module_path in TRAINERS.items():
        module = importlib.import_module(module_path)
        doc = (module.__doc__ or name).strip().splitlines()[0]
        sub = comp.add_parser(name, help=doc, description=doc)
        module.add_arguments(sub)
        sub.set_defaults(func=module.run)
