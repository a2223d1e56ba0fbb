"""``foley sound-bank``: build a bank of real recorded foley from Debian packages; inspect it."""

from __future__ import annotations

import argparse

FETCH_HELP = """\
Download Debian packages with game and education sound effects (apt-get download: needs apt
package lists, no root; nothing is installed), unpack their audio with dpkg-deb into --cache,
and build a sound bank in --out: every effect labelled by a reviewed table from its path
(material and verb, or ambient type), cut into single events at its onsets, trimmed, 16 kHz
mono, loudness-normalised, with a manifest giving each file's package, original path, licence,
attribution line and duration.  Unlabelled files are counted and left out.  Rerunning resumes.
CC-BY/CC-BY-SA packages may be shipped with attribution; GPL-2+ ones are for training only.
Use the bank with: foley make-dataset --sound-bank BANK ..."""


def register(subparsers: argparse._SubParsersAction) -> None:
    from foley.data.soundbank.packages import DEFAULT_PACKAGES, PACKAGES

    p = subparsers.add_parser("sound-bank", help="build a bank of real recordings (Debian)")
    sub = p.add_subparsers(dest="bank_command", metavar="ACTION")
    f = sub.add_parser(
        "fetch",
        help="download packages and build the bank",
        description=FETCH_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    f.add_argument("--out", required=True, metavar="BANK", help="bank folder (new, or resumed)")
    f.add_argument(
        "--cache", default=None, help="where .debs and unpacked trees go (default BANK/../cache)"
    )
    f.add_argument(
        "--packages",
        nargs="+",
        default=list(DEFAULT_PACKAGES),
        choices=sorted(PACKAGES),
        metavar="NAME",
        help=f"Debian packages (default: all of {' '.join(DEFAULT_PACKAGES)})",
    )
    f.add_argument("--quiet", action="store_true", help="no progress bars")
    f.set_defaults(func=fetch_main)
    i = sub.add_parser("info", help="what a bank holds: minutes per label and licence")
    i.add_argument("bank", metavar="BANK")
    i.set_defaults(func=info_main)
    a = sub.add_parser(
        "attribution",
        help="ATTRIBUTION.md for audio made from bank recordings (refuses GPL ones)",
        description="Write the attribution file that must accompany shipped audio made from "
        "FoleyWorld datasets (their foleyworld.json lists the recordings used).  Fails if any "
        "recording is not CC0/CC-BY/CC-BY-SA: generate such data with --shippable-only.",
    )
    a.add_argument("data", nargs="+", metavar="DATA", help="FoleyWorld dataset folders")
    a.add_argument("--out", required=True, help="the file to write (e.g. .../ATTRIBUTION.md)")
    a.set_defaults(func=attribution_main)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def fetch_main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from foley.data.soundbank import build_bank

    out = Path(args.out)
    cache = Path(args.cache) if args.cache else out.resolve().parent / f"{out.name}-cache"
    summary = build_bank(out, cache, tuple(args.packages), progress=not args.quiet)
    print(_describe(summary))
    return 0


def info_main(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from foley.errors import InputError

    path = Path(args.bank) / "bank.json"
    if not path.is_file():
        raise InputError(f"{args.bank}: not a sound bank (no bank.json); build one with fetch")
    print(_describe(json.loads(path.read_text())))
    return 0


def attribution_main(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from foley.data.soundbank import write_attribution
    from foley.errors import InputError

    rows = []
    for data in args.data:
        meta = Path(data) / "foleyworld.json"
        if not meta.is_file():
            raise InputError(f"{data}: not a FoleyWorld dataset (no foleyworld.json)")
        bank = json.loads(meta.read_text()).get("sound_bank") or {}
        rows += bank.get("used", [])
    out = Path(args.out)
    if out.exists() and out.is_dir():
        raise InputError(f"{out}: is a folder; give the file to write")
    write_attribution(rows, out, shipped=True)
    print(f"wrote {out}: {len({(r['package'], r['source']) for r in rows})} recordings")
    return 0


def _describe(summary: dict) -> str:
    lines = [
        f"{summary['files']} recordings, {summary['minutes']:.1f} min; sources: "
        + ", ".join(f"{k} {v}" for k, v in summary["sources"].items())
    ]
    for table in ("package", "licence", "label"):
        rows = summary["by"].get(table, {})
        lines.append(f"by {table}:")
        lines += [
            f"  {k:28s} {v['files']:5d} files {v['minutes']:7.2f} min" for k, v in rows.items()
        ]
    return "\n".join(lines)
