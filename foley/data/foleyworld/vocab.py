"""FoleyWorld's vocabulary: materials, objects, verbs, ambient beds and narration templates."""

from __future__ import annotations

MATERIALS: tuple[str, ...] = ("metal", "wood", "glass", "ceramic", "plastic", "paper")

# material -> (noun, drawn shape); shapes are drawn by ``render.py``.
NOUNS: dict[str, tuple[tuple[str, str], ...]] = {
    "metal": (("pot", "pot"), ("pan", "slab"), ("can", "jar"), ("tray", "slab")),
    "wood": (("board", "slab"), ("block", "box"), ("box", "box"), ("bowl", "bowl")),
    "glass": (("jar", "jar"), ("tumbler", "jar"), ("bottle", "bottle"), ("bowl", "bowl")),
    "ceramic": (("plate", "plate"), ("mug", "mug"), ("bowl", "bowl"), ("cup", "mug")),
    "plastic": (("container", "box"), ("bottle", "bottle"), ("box", "box"), ("tub", "pot")),
    "paper": (("sheet", "sheet"), ("notebook", "slab"), ("envelope", "sheet"), ("bag", "box")),
}

# adjective used in narrations ("#C C knocks the wooden block")
ADJECTIVES: dict[str, str] = {
    "metal": "metal",
    "wood": "wooden",
    "glass": "glass",
    "ceramic": "ceramic",
    "plastic": "plastic",
    "paper": "paper",
}

SOUNDING_VERBS: tuple[str, ...] = ("knock", "tap", "drop", "scrape", "pour", "tear", "cut")
SILENT_VERBS: tuple[str, ...] = ("hold", "look")
VERBS: tuple[str, ...] = SOUNDING_VERBS + SILENT_VERBS

# which materials each verb applies to (the narrated object's material)
VERB_MATERIALS: dict[str, tuple[str, ...]] = {
    "knock": ("metal", "wood", "glass", "ceramic", "plastic"),
    "tap": MATERIALS,
    "drop": MATERIALS,
    "scrape": ("metal", "wood", "glass", "ceramic", "plastic"),
    "pour": ("metal", "glass", "ceramic", "plastic"),
    "tear": ("paper",),
    "cut": ("wood", "paper", "plastic"),
    "hold": MATERIALS,
    "look": MATERIALS,
}
# shapes that can receive a pour (containers)
POUR_SHAPES: tuple[str, ...] = ("pot", "jar", "bowl", "mug", "box")

# impact-like verbs make one event per contact; the others one continuous event
IMPACT_VERBS: tuple[str, ...] = ("knock", "tap", "drop", "cut")
CONTINUOUS_VERBS: tuple[str, ...] = ("scrape", "pour", "tear")
# verbs an off-screen (audible, not visible) event can have
OFFSCREEN_VERBS: tuple[str, ...] = ("knock", "drop", "tap")

NARRATIONS: dict[str, tuple[str, ...]] = {
    "knock": ("#C C knocks {the} {obj}", "#C C knocks on {the} {obj}"),
    "tap": ("#C C taps {the} {obj}", "#C C taps {the} {obj} with a finger"),
    "drop": ("#C C drops {the} {obj}", "#C C drops {the} {obj} on the table"),
    "scrape": ("#C C scrapes {the} {obj}", "#C C rubs {the} {obj}"),
    "pour": ("#C C pours water into {the} {obj}", "#C C pours water in {the} {obj}"),
    "tear": ("#C C tears {the} {obj}", "#C C rips {the} {obj}"),
    "cut": ("#C C cuts {the} {obj} with a knife", "#C C cuts {the} {obj}"),
    "hold": ("#C C holds {the} {obj}", "#C C touches {the} {obj}"),
    "look": ("#C C looks at {the} {obj}", "#C C looks at {the} {obj} on the table"),
}

# ambient beds; the four Ego4D-Sounds tag columns are set from the bed type
AMBIENT_TYPES: tuple[str, ...] = (
    "kitchen_hum",
    "traffic",
    "wind",
    "rain",
    "babble",
    "music",
    "near_silence",
)
AMBIENT_TAGS: dict[str, str] = {
    "babble": "speech",
    "music": "background_music",
    "traffic": "traffic_noise",
    "wind": "wind_noise",
}
NEAR_SILENCE_DB: tuple[float, float] = (-72.0, -62.0)
AMBIENT_DB: tuple[float, float] = (-40.0, -20.0)

# Vocabulary a sound bank adds (``FoleyWorldSettings.extra_verbs`` / ``extra_ambients``, set by
# ``generate_dataset`` to what the bank holds): datasets without a bank are unchanged.
EXTRA_VERBS: tuple[str, ...] = ("type", "saw")
EXTRA_VERB_MATERIALS: dict[str, tuple[str, ...]] = {"type": ("plastic",), "saw": ("wood",)}
# the objects each extra verb applies to, and the noun a scene gains when the verb is on
VERB_NOUNS: dict[str, tuple[str, ...]] = {"type": ("keyboard",), "saw": ("board", "block")}
EXTRA_NOUNS: dict[str, tuple[str, tuple[str, str]]] = {"type": ("plastic", ("keyboard", "slab"))}
EXTRA_NARRATIONS: dict[str, tuple[str, ...]] = {
    "type": ("#C C types on {the} {obj}", "#C C types on {the} {obj} with both hands"),
    "saw": ("#C C saws {the} {obj}", "#C C saws {the} {obj} with a hand saw"),
}
# how the hand moves for a verb (the planner and renderer know the base verbs' motions)
MOTION: dict[str, str] = {"type": "tap", "saw": "scrape"}
EXTRA_AMBIENTS: tuple[str, ...] = ("water", "fire")


def motion(verb: str) -> str:
    return MOTION.get(verb, verb)


def is_impact(verb: str) -> bool:
    return motion(verb) in IMPACT_VERBS


def is_continuous(verb: str) -> bool:
    return motion(verb) in CONTINUOUS_VERBS


def verb_materials(verb: str) -> tuple[str, ...]:
    return EXTRA_VERB_MATERIALS.get(verb) or VERB_MATERIALS[verb]


def narrations(verb: str) -> tuple[str, ...]:
    return EXTRA_NARRATIONS.get(verb) or NARRATIONS[verb]
