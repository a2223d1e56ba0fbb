"""The reviewed labelling table: what each source file holds, from its path.

Each rule is ``(package, regex, label)``; the first rule whose package matches and whose regex
matches (``re.search``) the lower-cased original path wins.  A regex group ``(?P<material>...)``
names the material where the path does (``default_wood_footstep``); ``SURFACES`` maps such path
words to bank materials (``rock`` -> stone, ``tile`` -> ceramic, ``linoleum`` -> plastic).
A file no rule matches is left out of the bank and counted (music, voices, animals, weapons,
interface beeps...).  Kinds: ``event`` files are split into single events at their onsets;
``texture`` files (a continuous action: pouring, sawing) and ``ambient`` beds are kept whole.

The rules were written from a review of every effect's path in Debian 12's packages (names and
folders, not listening); where a name is ambiguous about material or action (``wp_hammer_hit``,
``sfx_hit_strong``, ``default_place_node``, ufoai's sci-fi doors) the file is left out rather
than guessed.  ``tests/test_soundbank.py`` pins examples from each package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Label:
    kind: str  # "event" | "texture" | "ambient"
    material: str | None = None  # what is struck / walked on / opened (None for ambient)
    verb: str | None = None
    ambient: str | None = None  # ambient bed type

    def as_dict(self) -> dict:
        return {"kind": self.kind, "material": self.material, "verb": self.verb,
                "ambient": self.ambient}  # fmt: skip


def ev(material: str | None, verb: str) -> Label:
    return Label("event", material, verb)


def tex(material: str | None, verb: str) -> Label:
    return Label("texture", material, verb)


def amb(kind: str) -> Label:
    return Label("ambient", ambient=kind)


SURFACES: dict[str, str] = {
    "wood": "wood", "metal": "metal", "steel": "metal", "glass": "glass", "stone": "stone",
    "rock": "stone", "hard": "stone", "tile": "ceramic", "linoleum": "plastic",
    "carpet": "fabric", "dirt": "dirt", "grass": "grass", "gravel": "gravel", "sand": "sand",
    "snow": "snow", "ice": "ice", "water": "water", "splash": "water",
}  # fmt: skip
_SURF = "|".join(sorted(SURFACES, key=len, reverse=True))
M = "minetest-data"
S = "scratch"
T = "teeworlds-data"
A = "0ad-data"
U = "ufoai-sound"
W = "widelands-data"
B = "bucklespring-data"

RULES: tuple[tuple[str, str, Label], ...] = (
    # minetest-data (mods/<mod>/sounds/<mod>_<name>[.n].ogg)
    (M, r"default_dug_metal", ev("metal", "knock")),
    (M, r"default_place_node_metal", ev("metal", "drop")),
    (M, r"default_dig_metal", ev("metal", "hit")),
    (M, r"default_place_node_hard", ev("stone", "drop")),
    (M, rf"default_(?P<material>{_SURF})_footstep", ev(None, "step")),
    (M, r"default_break_glass", ev("glass", "break")),
    (M, r"default_dig_choppy", ev("wood", "chop")),
    (M, r"default_dig_cracky", ev("stone", "dig")),
    (M, r"default_dig_crumbly", ev("dirt", "dig")),
    (M, r"default_gravel_(dig|dug)", ev("gravel", "dig")),
    (M, r"default_ice_(dig|dug)", ev("ice", "dig")),
    (M, r"default_chest_open", ev("wood", "open")),
    (M, r"default_chest_close", ev("wood", "close")),
    (M, r"doors_(?P<material>steel|glass)_door_(?P<verb>open|close)", ev(None, "")),
    (M, r"doors_(door|fencegate)_(?P<verb>open|close)", ev("wood", "")),
    (M, r"xpanes_steel_bar_door_(?P<verb>open|close)", ev("metal", "")),
    (M, r"fire_flint_and_steel", ev("metal", "scrape")),
    (M, r"env_sounds_water", amb("water")),
    (M, r"fire_(fire|small|large)", amb("fire")),
    # scratch (Media/Sounds/<category>/<Name>.wav|mp3)
    (S, r"effects/typing", ev("plastic", "type")),
    (S, r"effects/doorclose", ev("wood", "close")),
    (S, r"effects/doorcreak", tex("wood", "creak")),
    (S, r"effects/waterrunning", tex("water", "pour")),
    (S, r"effects/waterdrop", ev("water", "drip")),
    (S, r"effects/plunge", ev("water", "splash")),
    (S, r"human/footsteps", ev("floor", "step")),
    (S, r"human/fingersnap", ev("skin", "snap")),
    (S, r"percussion/handclap", ev("skin", "clap")),
    (S, r"human/partynoise", amb("babble")),
    (S, r"effects/(car|motorcycle)passing", amb("traffic")),
    (S, r"animal/crickets?\.", amb("crickets")),
    # teeworlds-data (data/audio/*.wv)
    (T, r"foley_foot_(left|right)", ev("ground", "step")),
    (T, r"foley_land", ev("ground", "land")),
    # 0ad-data (public.zip:audio/...)
    (A, rf"singlesteps/fs_(?P<material>{_SURF})", ev(None, "step")),
    (A, rf"footsteps/foo?rstep_(?P<material>{_SURF})_(walking|running)", ev(None, "step")),
    (A, rf"impact/(arrow|sling|shield)_(?P<material>{_SURF})", ev(None, "hit")),
    (A, rf"mining/mine_(?P<material>{_SURF})", ev(None, "hit")),
    (A, r"lumbering/lumber_tree\d", ev("wood", "chop")),
    (A, r"construction/con_saw", tex("wood", "saw")),
    (A, r"construction/con_wood", ev("wood", "hammer")),
    (A, r"construction/con_stone", ev("stone", "hammer")),
    (A, r"ambient/water/(river|waterfall)", amb("water")),
    (A, r"ambient/water/wave", amb("waves")),
    (A, r"ambient/weather/rain", amb("rain")),
    (A, r"ambient/weather/(wind|snowstorm)", amb("wind")),
    (A, r"ambient/weather/thunder", amb("thunder")),
    (A, r"ambient/dayscape/day_", amb("birds")),
    # ufoai-sound (0snd.pk3:sound/...)
    (U, rf"footsteps/(?P<material>{_SURF})\d*\.", ev(None, "step")),
    (U, r"misc/break(?P<material>glass|metal|wood)", ev(None, "break")),
    (U, r"ambience/(fire|firesoft|smallfire)\.", amb("fire")),
    (U, r"ambience/(water|waterfontain)\.", amb("water")),
    (U, r"ambience/arcticwind", amb("wind")),
    (U, r"ambience/hum\.", amb("hum")),
    (U, r"ambience/cricket_loop", amb("crickets")),
    (U, r"ambience/thunder", amb("thunder")),
    # widelands-data (data/sound/<topic>/<name>_nn.ogg)
    (W, r"woodcutting/(fast_)?woodcutting", ev("wood", "chop")),
    (W, r"saw/(sawing|benchsaw)", tex("wood", "saw")),
    (W, r"smiths/(smith|toolsmith)_", ev("metal", "hammer")),
    (W, r"hammering/geologist_hammer", ev("stone", "hammer")),
    (W, r"(stonecutting|cutting)/stone(cutter|mason)", tex("stone", "saw")),
    (W, r"metal/ironping", ev("metal", "hit")),
    (W, r"smiths/sharpening", tex("metal", "scrape")),
    (W, r"animals/crickets", amb("crickets")),
    # bucklespring-data: one key of a mechanical keyboard down (-0) or up (-1) per file
    (B, r"wav/[0-9a-f]+-[01]\.wav", ev("plastic", "type")),
)
_COMPILED = [(pkg, re.compile(rx), lab) for pkg, rx, lab in RULES]


def label_for(package: str, path: str) -> Label | None:
    """The label of ``path`` (the file's original path in ``package``), or None: left out."""
    low = path.lower()
    for pkg, rx, lab in _COMPILED:
        if pkg != package:
            continue
        m = rx.search(low)
        if m is None:
            continue
        groups = m.groupdict()
        material = lab.material
        if groups.get("material"):
            material = SURFACES.get(groups["material"], groups["material"])
        verb = groups.get("verb") or lab.verb
        return Label(lab.kind, material, verb, lab.ambient)
    return None
