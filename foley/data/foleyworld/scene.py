"""Planning: what happens in each long video and each of its clips (no pixels, no samples).

Everything is drawn from ``numpy`` generators seeded by ``(seed, video_index[, clip_index])``,
so a clip depends only on those numbers: same seed, same dataset, whatever the worker count.
Geometry is in units of the frame side (0..1, y down); times in seconds or in video frames at
``cfg.fps``.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field

import numpy as np

from foley.config import AVConfig
from foley.data.foleyworld import vocab

NARRATION_SOURCE = "narration_pass_1"

# shape -> ((w_min, w_max), (h_min, h_max), horizontal extent factor for handles)
SHAPE_SIZES: dict[str, tuple[tuple[float, float], tuple[float, float], float]] = {
    "box": ((0.24, 0.34), (0.18, 0.28), 1.0),
    "jar": ((0.17, 0.22), (0.26, 0.34), 1.0),
    "pot": ((0.28, 0.36), (0.19, 0.25), 1.2),
    "bowl": ((0.28, 0.36), (0.13, 0.18), 1.0),
    "bottle": ((0.14, 0.18), (0.32, 0.4), 1.0),
    "mug": ((0.18, 0.22), (0.18, 0.23), 1.35),
    "slab": ((0.32, 0.4), (0.09, 0.13), 1.0),
    "plate": ((0.3, 0.38), (0.07, 0.1), 1.0),
    "sheet": ((0.32, 0.4), (0.12, 0.16), 1.0),
}


@dataclass(frozen=True)
class FoleyWorldSettings:
    """What ``foley make-dataset`` was asked for (written to ``foleyworld.json``)."""

    videos: int
    clips_per_video: int
    seed: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    shifted_test_videos: int = 0
    silent_probability: float = 0.15
    offscreen_probability: float = 0.2
    bank_probability: float = 1.0
    # vocabulary a sound bank adds (``vocab.EXTRA_VERBS`` / ``EXTRA_AMBIENTS`` it holds)
    extra_verbs: tuple[str, ...] = ()
    extra_ambients: tuple[str, ...] = ()
    bank_variety: bool = True  # random pitch, EQ and gain for each use of a recording
    speech: bool = False  # speak each narration over the clip (``speech.py``, espeak-ng)

    @property
    def sounding_verbs(self) -> tuple[str, ...]:
        return vocab.SOUNDING_VERBS + tuple(self.extra_verbs)

    @property
    def ambient_types(self) -> tuple[str, ...]:
        return vocab.AMBIENT_TYPES + tuple(self.extra_ambients)


@dataclass
class ObjectSpec:
    """One object on the table of a scene (units of the frame side)."""

    material: str
    noun: str
    shape: str
    cx: float  # centre x
    base_y: float  # y of the bottom edge (resting on the table)
    w: float
    h: float
    sound_seed: int  # modal parameters (same object, same sound, in every clip)
    style_seed: int  # colours and texture

    @property
    def top_y(self) -> float:
        return self.base_y - self.h


@dataclass
class VideoPlan:
    """A long video: one scene whose background and ambience persist across its clips."""

    index: int
    uid: str
    split: str
    ambient_type: str
    ambient_db: float
    ambient_seed: int
    background: dict
    objects: list[ObjectSpec]
    skin: tuple[float, float, float]
    sleeve: tuple[float, float, float]
    hand_x: float  # where the arm enters (bottom edge, units of the frame side)
    narration_times: list[float]
    video_dur: float
    materials: tuple[str, ...]


@dataclass
class EventPlan:
    """One sound event; ``offset`` is known once the sound is synthesised."""

    verb: str
    material: str
    visible: bool
    object: int | None  # index into ``VideoPlan.objects`` (None: off-screen)
    onset: float  # seconds from the clip start
    frame: int  # contact frame (round(onset * fps)); -1 for off-screen events
    strength: float  # 0..1
    gain_db: float  # peak level of a strength-1 sound, dBFS
    sound_seed: int
    duration: float | None = None  # continuous events: planned length in seconds
    offset: float | None = None
    params: dict = field(default_factory=dict)
    source: str = "synth"

    def to_json(self, fps: float) -> dict:
        k_on = self.frame if self.frame >= 0 else int(round(self.onset * fps))
        k_off = max(k_on + 1, int(np.ceil(self.offset * fps - 1e-9)))
        return {
            "onset": round(self.onset, 6),
            "offset": round(self.offset, 6),
            "frames": [k_on, k_off],
            "verb": self.verb,
            "material": self.material,
            "visible": self.visible,
            "object": self.object,
            "source": self.source,
        }


@dataclass
class ClipPlan:
    """One narrated 3-second clip of a long video."""

    video: VideoPlan
    clip_index: int
    verb: str
    target: int
    text: str
    contacts: list[int]  # frames where the hand/tool/object touches (impacts: one per event)
    span: tuple[int, int] | None  # continuous verbs: frames [on, off)
    events: list[EventPlan]
    motion: dict
    camera: np.ndarray  # (T, 2) integer pixel offsets (dx, dy) at frame size
    render_seed: int
    synth_seed: int
    ambient_source: str = "synth"  # "bank:<file>" when the bed is a recording
    offscreen: np.ndarray | None = None  # (N,) off-screen events' audio, set by action_track

    @property
    def sounding(self) -> bool:
        return self.verb not in vocab.SILENT_VERBS

    @property
    def hand_motion(self) -> str:
        """The base verb whose hand motion this clip's verb uses (``type`` -> ``tap``)."""
        return vocab.motion(self.verb)


def video_uid(seed: int, index: int) -> str:
    digest = hashlib.sha256(f"foleyworld/{seed}/{index}".encode()).digest()[:16]
    return str(uuid.UUID(bytes=digest, version=4))


def held_out_combinations(
    seed: int, ambient_types: tuple[str, ...] = vocab.AMBIENT_TYPES
) -> dict[str, tuple[str, ...]]:
    """Two materials per ambient type that never occur with it in train/val/test."""
    rng = np.random.default_rng([seed, 7919])
    perm = [vocab.MATERIALS[i] for i in rng.permutation(len(vocab.MATERIALS))]
    n = len(perm)
    return {
        ambient: (perm[(2 * i) % n], perm[(2 * i + 1) % n])
        for i, ambient in enumerate(ambient_types)
    }


def assign_splits(settings: FoleyWorldSettings) -> list[str]:
    """Split of every video index: regular videos train/val/test, then ``test_shifted``."""
    n = settings.videos
    n_val = n_test = 0
    if n >= 3:
        n_val = max(1, round(settings.val_fraction * n)) if settings.val_fraction > 0 else 0
        n_test = max(1, round(settings.test_fraction * n)) if settings.test_fraction > 0 else 0
        while n - n_val - n_test < 1:
            if n_val >= n_test:
                n_val -= 1
            else:
                n_test -= 1
    order = np.random.default_rng([settings.seed, 104729]).permutation(n)
    splits = ["train"] * n
    for rank, i in enumerate(order):
        if rank < n_test:
            splits[i] = "test"
        elif rank < n_test + n_val:
            splits[i] = "val"
    return splits + ["test_shifted"] * settings.shifted_test_videos


def _uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


def _place_objects(
    rng: np.random.Generator, pool: tuple[str, ...], horizon: float, extra_verbs: tuple = ()
) -> list:
    n_obj = int(rng.integers(2, 4))
    materials = [str(m) for m in rng.permutation(pool)]
    while len(materials) < n_obj:
        materials.append(pool[int(rng.integers(len(pool)))])
    specs = []
    for material in materials[:n_obj]:
        nouns = vocab.NOUNS[material] + tuple(
            noun for v, (m, noun) in vocab.EXTRA_NOUNS.items() if v in extra_verbs and m == material
        )
        noun, shape = nouns[int(rng.integers(len(nouns)))]
        (w_rng, h_rng, ext) = SHAPE_SIZES[shape]
        specs.append([material, noun, shape, _uniform(rng, w_rng), _uniform(rng, h_rng), ext])
    while sum(s[3] * s[5] for s in specs) > 0.8 and len(specs) > 2:
        specs.pop()
    scale = min(1.0, 0.8 / sum(s[3] * s[5] for s in specs))
    free = 0.88 - sum(s[3] * s[5] * scale for s in specs)
    gaps = rng.dirichlet(np.ones(len(specs) + 1)) * free
    x = 0.06 + gaps[0]
    objects = []
    for (material, noun, shape, w, h, ext), gap in zip(specs, gaps[1:]):
        w, h = w * scale, h * scale
        span = w * ext
        base_y = _uniform(rng, (max(horizon + 0.25, 0.66), 0.92))
        objects.append(
            ObjectSpec(
                material=material,
                noun=noun,
                shape=shape,
                cx=float(x + span / 2),
                base_y=float(base_y),
                w=float(w),
                h=float(h),
                sound_seed=int(rng.integers(2**31)),
                style_seed=int(rng.integers(2**31)),
            )
        )
        x += span + gap
    return objects


SKINS = (
    (0.93, 0.76, 0.64),
    (0.85, 0.64, 0.49),
    (0.70, 0.50, 0.36),
    (0.52, 0.36, 0.25),
    (0.38, 0.26, 0.18),
    (0.96, 0.82, 0.72),
)


def plan_video(settings: FoleyWorldSettings, index: int, split: str) -> VideoPlan:
    """The scene of video ``index``: background, objects, ambience, narration times."""
    rng = np.random.default_rng([settings.seed, index])
    ambient_types = settings.ambient_types
    ambient_type = ambient_types[int(rng.integers(len(ambient_types)))]
    held = held_out_combinations(settings.seed, ambient_types)[ambient_type]
    if split == "test_shifted":
        pool = held
    else:
        pool = tuple(m for m in vocab.MATERIALS if m not in held)
    lo_hi = vocab.NEAR_SILENCE_DB if ambient_type == "near_silence" else vocab.AMBIENT_DB
    horizon = _uniform(rng, (0.28, 0.42))
    background = {
        "horizon": horizon,
        "wall": int(rng.integers(4)),
        "table": int(rng.integers(5)),
        "wall_rgb": tuple(float(c) for c in rng.uniform(0.45, 0.9, 3)),
        "table_rgb": tuple(float(c) for c in rng.uniform(0.2, 0.75, 3)),
        "light": _uniform(rng, (0.85, 1.1)),
        "seed": int(rng.integers(2**31)),
    }
    objects = _place_objects(rng, pool, horizon, settings.extra_verbs)
    times, t = [], _uniform(rng, (2.0, 8.0))
    for _ in range(settings.clips_per_video):
        times.append(round(t, 4))
        t += _uniform(rng, (3.5, 15.0))
    return VideoPlan(
        index=index,
        uid=video_uid(settings.seed, index),
        split=split,
        ambient_type=ambient_type,
        ambient_db=_uniform(rng, lo_hi),
        ambient_seed=int(rng.integers(2**31)),
        background=background,
        objects=objects,
        skin=SKINS[int(rng.integers(len(SKINS)))],
        sleeve=tuple(float(c) for c in rng.uniform(0.1, 0.8, 3)),
        hand_x=_uniform(rng, (0.55, 0.95)) if rng.random() < 0.8 else _uniform(rng, (0.05, 0.45)),
        narration_times=times,
        video_dur=round(times[-1] + _uniform(rng, (2.0, 10.0)), 4),
        materials=pool,
    )


def _frames(seconds: float, fps: float) -> int:
    return int(round(seconds * fps))


def _choose_action(
    settings: FoleyWorldSettings, video: VideoPlan, rng: np.random.Generator
) -> tuple[str, int]:
    objects = video.objects
    if rng.random() < settings.silent_probability:
        verb = vocab.SILENT_VERBS[int(rng.integers(len(vocab.SILENT_VERBS)))]
        return verb, int(rng.integers(len(objects)))
    options: dict[str, list[int]] = {}
    for verb in settings.sounding_verbs:
        for i, obj in enumerate(objects):
            if obj.material not in vocab.verb_materials(verb):
                continue
            if verb in vocab.VERB_NOUNS and obj.noun not in vocab.VERB_NOUNS[verb]:
                continue
            if verb == "pour" and obj.shape not in vocab.POUR_SHAPES:
                continue
            options.setdefault(verb, []).append(i)
    verbs = sorted(options)
    verb = verbs[int(rng.integers(len(verbs)))]
    return verb, options[verb][int(rng.integers(len(options[verb])))]


def _narration(verb: str, obj: ObjectSpec, rng: np.random.Generator) -> str:
    templates = vocab.narrations(verb)
    template = templates[int(rng.integers(len(templates)))]
    name = obj.noun
    if rng.random() < 0.85 and not (
        obj.material == "paper" and verb == "tear" and rng.random() < 0.5
    ):
        name = f"{vocab.ADJECTIVES[obj.material]} {obj.noun}"
    article = "the" if rng.random() < 0.7 else ("an" if name[0] in "aeiou" else "a")
    return template.format(the=article, obj=name)


_IMPACT_COUNTS = {"knock": (2, 4), "tap": (3, 6), "cut": (2, 5)}
_IMPACT_INTERVALS = {"knock": (0.22, 0.45), "tap": (0.12, 0.25), "cut": (0.25, 0.45)}
_HOVER = {"knock": (0.10, 0.16), "tap": (0.05, 0.08), "cut": (0.10, 0.14), "hold": (0.08, 0.12)}
_STRENGTH = {"knock": (0.6, 1.0), "tap": (0.25, 0.45), "cut": (0.45, 0.75)}
_DURATIONS = {"scrape": (0.8, 1.6), "pour": (0.9, 1.7), "tear": (0.5, 1.1)}


def _camera(rng: np.random.Generator, cfg: AVConfig, pan: tuple[float, float]) -> np.ndarray:
    """(T, 2) integer pixel offsets: a fixed head pose, slow jitter and an optional pan."""
    n, scale = cfg.frames_per_clip, cfg.frame_size / 112.0
    base = rng.uniform(-3, 3, 2) * scale
    walk = np.cumsum(rng.normal(0, 0.35, (n, 2)), axis=0) * scale
    walk -= walk.mean(axis=0)
    progress = np.clip(np.linspace(-0.3, 1.0, n), 0, 1)[:, None]
    offsets = base + np.clip(walk, -2 * scale, 2 * scale) + progress * np.asarray(pan) * scale
    return np.round(offsets).astype(np.int32)


def plan_clip(
    settings: FoleyWorldSettings, video: VideoPlan, clip_index: int, cfg: AVConfig
) -> ClipPlan:
    """The narrated action of one clip: verb, target, contact frames and sound events."""
    rng = np.random.default_rng([settings.seed, video.index, 1 + clip_index])
    fps, n_frames = cfg.fps, cfg.frames_per_clip
    verb, target = _choose_action(settings, video, rng)
    mv = vocab.motion(verb)  # the hand moves as for this base verb
    obj = video.objects[target]
    text = _narration(verb, obj, rng)
    k1 = int(rng.integers(_frames(0.55, fps), _frames(1.35, fps) + 1))
    last = n_frames - max(2, _frames(0.15, fps))
    contacts: list[int] = []
    span = None
    motion: dict = {"contact_dx": float(rng.uniform(-0.2, 0.2))}
    if mv in _IMPACT_COUNTS:
        lo, hi = _IMPACT_COUNTS[mv]
        k = k1
        for _ in range(int(rng.integers(lo, hi + 1))):
            if k > last:
                break
            contacts.append(k)
            k += max(2, _frames(_uniform(rng, _IMPACT_INTERVALS[mv]), fps))
    elif mv == "drop":
        fall = max(3, _frames(_uniform(rng, (0.2, 0.3)), fps))
        contacts = [k1]
        bounce = k1 + max(2, _frames(_uniform(rng, (0.1, 0.18)), fps))
        if rng.random() < 0.7 and bounce <= last:
            contacts.append(bounce)
        motion.update(
            release=k1 - fall,
            lift=max(0.06, min(_uniform(rng, (0.12, 0.2)), obj.top_y - 0.04)),
            bounce=_uniform(rng, (0.02, 0.04)),
        )
    elif mv in _DURATIONS:
        k_off = min(n_frames - 1, k1 + max(4, _frames(_uniform(rng, _DURATIONS[mv]), fps)))
        contacts, span = [k1], (k1, k_off)
        motion.update(
            amp=_uniform(rng, (0.2, 0.35)),
            period=_uniform(rng, (0.35, 0.6)),
            jug_side=1 if video.hand_x >= obj.cx else -1,
            jag_seed=int(rng.integers(2**31)),
        )
    elif verb == "hold":
        contacts = [k1]
    if verb == "tear":  # grip the sheet beside the tear line, on the arm's side
        motion["contact_dx"] = 0.55 if video.hand_x >= obj.cx else -0.55
    motion["hover"] = _uniform(rng, _HOVER.get(mv, (0.1, 0.14)))
    motion["start"] = (float(rng.uniform(0.0, 1.0)), float(rng.uniform(1.05, 1.2)))

    gain_db = _uniform(rng, (-16.0, -6.0))
    events: list[EventPlan] = []
    on_target = dict(
        verb=verb,
        material=obj.material,
        visible=True,
        object=target,
        gain_db=gain_db,
        sound_seed=obj.sound_seed,
    )
    if vocab.is_impact(verb):
        for j, k in enumerate(contacts):
            if mv == "drop":
                strength = 1.0 if j == 0 else 0.35 * _uniform(rng, (0.8, 1.2))
            else:
                strength = _uniform(rng, _STRENGTH[mv])
            onset = max(0.0, (k + rng.uniform(-0.3, 0.3)) / fps)
            events.append(
                EventPlan(**on_target, onset=onset, frame=k, strength=strength, params={"hit": j})
            )
    elif span is not None:
        onset = (span[0] + rng.uniform(-0.3, 0.3)) / fps
        params = {"amp": motion["amp"], "period": motion["period"]}
        events.append(
            EventPlan(
                **on_target,
                onset=onset,
                frame=span[0],
                strength=1.0,
                duration=span[1] / fps - onset,
                params=params,
            )
        )
    if rng.random() < settings.offscreen_probability:
        for _ in range(int(rng.integers(1, 3))):
            material = video.materials[int(rng.integers(len(video.materials)))]
            off_verb = vocab.OFFSCREEN_VERBS[int(rng.integers(len(vocab.OFFSCREEN_VERBS)))]
            onset = _uniform(rng, (0.1, cfg.clip_seconds - 0.4))
            strength = _uniform(rng, (0.4, 0.9))
            quieter = _uniform(rng, (4.0, 12.0))
            events.append(
                EventPlan(
                    verb=off_verb,
                    material=material,
                    visible=False,
                    object=None,
                    onset=onset,
                    frame=-1,
                    strength=strength,
                    gain_db=gain_db - quieter,
                    sound_seed=int(rng.integers(2**31)),
                )
            )
    pan = (0.0, 0.0)
    if verb == "look":
        pan = ((0.5 - obj.cx) * 30.0, (0.55 - obj.top_y) * 12.0)
    return ClipPlan(
        video=video,
        clip_index=clip_index,
        verb=verb,
        target=target,
        text=text,
        contacts=contacts,
        span=span,
        events=events,
        motion=motion,
        camera=_camera(rng, cfg, pan),
        render_seed=int(rng.integers(2**31)),
        synth_seed=int(rng.integers(2**31)),
    )
