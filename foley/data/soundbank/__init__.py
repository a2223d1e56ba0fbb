"""Sound bank: real recorded foley from Debian packages, labelled, with licences.

``foley sound-bank fetch`` (:func:`build_bank`) downloads the packages (``fetch``), labels
their effects from their paths (``labels``), cuts them into single events (``events``) and
writes a manifest with each recording's licence and attribution (``attribution``).
FoleyWorld (``foley.data.foleyworld.bank``) reads the result.
"""

from foley.data.soundbank.attribution import write_attribution
from foley.data.soundbank.build import build_bank, load_manifest
from foley.data.soundbank.labels import Label, label_for
from foley.data.soundbank.packages import DEFAULT_PACKAGES, PACKAGES, PackageSpec

__all__ = [
    "DEFAULT_PACKAGES",
    "PACKAGES",
    "Label",
    "PackageSpec",
    "build_bank",
    "label_for",
    "load_manifest",
    "write_attribution",
]
