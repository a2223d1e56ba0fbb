"""Attribution lines and ``ATTRIBUTION.md`` for recordings from the sound bank.

CC-BY and CC-BY-SA require credit, the licence's name and link, and a note of changes; CC-BY-SA
adds that adapted material is shared under the same licence.  GPL-2+ recordings are for
training only: an attribution file for shipped audio refuses them.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from foley.data.soundbank.packages import SHIPPABLE_LICENCES, PackageSpec
from foley.errors import InputError

LICENCE_URLS: dict[str, str] = {
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "CC-BY-3.0": "https://creativecommons.org/licenses/by/3.0/",
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "CC-BY-SA-3.0": "https://creativecommons.org/licenses/by-sa/3.0/",
    "GPL-2+": "https://www.gnu.org/licenses/old-licenses/gpl-2.0.html",
}
CHANGES = "cut into single events, trimmed, resampled to 16 kHz mono and loudness-normalised"


def attribution_line(spec: PackageSpec, version: str, path: str) -> str:
    licence = spec.licence_of(path)
    return (
        f'"{path}" from Debian package {spec.name} {version} ({spec.upstream}), '
        f"(c) {spec.holder}, {licence} ({LICENCE_URLS.get(licence, 'see debian/copyright')}); "
        f"{CHANGES}"
    )


def write_attribution(rows: list[dict], path: str | Path, *, shipped: bool) -> Path:
    """Write ``ATTRIBUTION.md`` for the recordings in ``rows`` (manifest rows, any order).

    ``shipped``: the file accompanies audio distributed with the package; a recording whose
    licence is not CC0/CC-BY/CC-BY-SA is then an error (GPL recordings are training-only).
    """
    if shipped:
        bad = sorted({r["licence"] for r in rows if r["licence"] not in SHIPPABLE_LICENCES})
        if bad:
            raise InputError(
                f"recordings under {', '.join(bad)} may not be shipped (training only); "
                "use a bank or dataset built from CC0/CC-BY/CC-BY-SA packages"
            )
    sources: dict[str, dict] = {}
    for r in rows:
        sources.setdefault(f"{r['package']}/{r['source']}", r)
    by_licence: dict[str, list[dict]] = defaultdict(list)
    for r in sources.values():
        by_licence[r["licence"]].append(r)
    lines = ["# Attribution", ""]
    if shipped:
        lines += [
            "The audio shipped here contains recordings from the Debian packages below. "
            f"Changes: {CHANGES}, mixed with other sounds. Audio adapted from CC-BY-SA "
            "recordings is itself shared under CC-BY-SA 3.0 "
            "(https://creativecommons.org/licenses/by-sa/3.0/): you may share and adapt it, "
            "giving credit as below, and must distribute your adaptations under the same "
            "licence.",
            "",
        ]
    else:
        lines += [
            "Recordings in this sound bank, by licence. CC0/CC-BY/CC-BY-SA recordings may be "
            "shipped with credit (CC-BY-SA: adaptations share alike); GPL-2+ recordings are "
            "for training data only and are never shipped.",
            "",
        ]
    for licence in sorted(by_licence):
        use = "" if licence in SHIPPABLE_LICENCES else " (training only, never shipped)"
        lines += [f"## {licence}{use}", ""]
        for r in sorted(by_licence[licence], key=lambda r: (r["package"], r["source"])):
            lines.append(f"- {r['attribution']}")
        lines.append("")
    path = Path(path)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
