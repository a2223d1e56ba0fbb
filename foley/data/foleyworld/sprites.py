"""Static pictures of a scene: the background and one sprite per object.

Materials are recognisable by colour and texture: metal is grey with a specular band, wood
brown with grain, glass pale and see-through with bright edges, ceramic white with a coloured
band, plastic flat and saturated, paper off-white with ruled lines.  All arrays are float32 RGB
in [0, 1]; sizes are in pixels at the frame size.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from foley.data.foleyworld.scene import SHAPE_SIZES, ObjectSpec


@dataclass
class Sprite:
    rgb: np.ndarray  # (h, w, 3)
    alpha: np.ndarray  # (h, w) opacity (glass < 1 inside)
    solid: np.ndarray  # (h, w) bool: pixels that belong to the object (for masks)
    body_x: int  # left of the body within the sprite (handles stick out)
    body_w: int
    body_h: int

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


def smooth_noise(h: int, w: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Bilinear value noise in [0, 1], ``(h, w)``, ``cells`` random values per side."""

    def weights(n: int) -> np.ndarray:
        pos = np.linspace(0, cells, n)
        i0 = np.clip(np.floor(pos).astype(int), 0, cells - 1)
        frac = pos - i0
        out = np.zeros((n, cells + 1), np.float32)
        out[np.arange(n), i0] = 1 - frac
        out[np.arange(n), i0 + 1] = frac
        return out

    grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
    return weights(h) @ grid @ weights(w).T


def erode(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[1:] &= mask[:-1]
    out[:-1] &= mask[1:]
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    return out


def background(bg: dict, size: int, margin: int) -> np.ndarray:
    """The scene's wall and table on a canvas ``(size + 2 margin)`` square, ``(n, n, 3)``.

    Cached per scene (the clips of a video share it): treat the result as read-only.
    """
    return _background(tuple(sorted(bg.items())), size, margin)


@functools.lru_cache(maxsize=8)
def _background(items: tuple, size: int, margin: int) -> np.ndarray:
    bg = dict(items)
    rng = np.random.default_rng([bg["seed"], 1])
    n = size + 2 * margin
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    y = (yy - margin) / size  # frame units
    x = (xx - margin) / size
    wall = np.asarray(bg["wall_rgb"], np.float32)
    kind = bg["wall"]
    shade = 0.9 + 0.1 * (1 - np.clip(y, 0, 1))
    if kind == 1:  # tiles
        step = rng.uniform(0.08, 0.12)
        lines = ((x % step) < 0.012) | ((y % step) < 0.012)
        shade = shade * np.where(lines, 0.8, 1.0)
    elif kind == 2:  # striped wallpaper
        shade = shade * np.where((x % 0.12) < 0.06, 0.9, 1.0)
    elif kind == 3:  # brick
        row = np.floor(y / 0.06)
        mortar = ((y % 0.06) < 0.01) | (((x + 0.07 * (row % 2)) % 0.14) < 0.01)
        shade = shade * np.where(mortar, 1.25, 0.95 + 0.1 * smooth_noise(n, n, 12, rng))
    img = wall[None, None, :] * shade[..., None]
    table = np.asarray(bg["table_rgb"], np.float32)
    kind = bg["table"]
    noise = smooth_noise(n, n, 10, rng)
    if kind == 0:  # light wood
        base = 0.5 * table + 0.5 * np.asarray([0.82, 0.66, 0.46], np.float32)
        grain = 0.9 + 0.1 * np.sin(2 * np.pi * (y * 18 + 0.6 * noise))
        top = base[None, None, :] * grain[..., None]
    elif kind == 1:  # marble
        veins = np.abs(np.sin(2 * np.pi * (x * 2 + 3 * noise))) ** 8
        top = (0.78 + 0.12 * noise - 0.2 * veins)[..., None] * np.ones(3, np.float32)
    elif kind == 2:  # checked cloth
        check = ((np.floor(x / 0.1) + np.floor(y / 0.1)) % 2)[..., None]
        top = table * (1 - check) + (0.5 + 0.5 * table) * check
    elif kind == 3:  # laminate
        top = table[None, None, :] * (0.92 + 0.08 * noise)[..., None]
    else:  # dark desk
        top = (0.35 * table)[None, None, :] * (0.9 + 0.1 * noise)[..., None]
    horizon = bg["horizon"]
    depth = np.clip((y - horizon) / (1 - horizon), 0, 1)
    top = top * (0.82 + 0.18 * depth)[..., None]
    img = np.where((y >= horizon)[..., None], top, img)
    edge = np.abs(y - horizon) < 0.012
    img[edge] = np.clip(img[edge] * 1.3 + 0.05, 0, 1)
    return np.clip(img * bg["light"], 0, 1).astype(np.float32)


def _roundrect(x: np.ndarray, y: np.ndarray, w: float, h: float, r: float) -> np.ndarray:
    qx = np.maximum(np.abs(x - w / 2) - (w / 2 - r), 0)
    qy = np.maximum(np.abs(y - h / 2) - (h / 2 - r), 0)
    return (qx**2 + qy**2 <= r**2) & (x >= 0) & (x <= w) & (y >= 0) & (y <= h)


def _shape(shape: str, x: np.ndarray, y: np.ndarray, bw: int, bh: int) -> np.ndarray:
    """Solid mask of a shape; ``x``, ``y`` pixel centres relative to the body's top-left."""
    u, v = x / bw, y / bh
    body = (u >= 0) & (u <= 1)
    if shape == "box":
        return body
    if shape == "jar":
        return _roundrect(x, y, bw, bh, 0.2 * min(bw, bh))
    if shape == "pot":
        handles = ((u < 0) | (u > 1)) & (v > 0.12) & (v < 0.32)
        return _roundrect(x, y, bw, bh, 0.15 * bh) | handles
    if shape == "bowl":
        return body & (((u - 0.5) / 0.5) ** 2 + v**2 <= 1.0)
    if shape == "bottle":
        half = np.where(v < 0.3, 0.17, np.where(v < 0.45, 0.17 + (v - 0.3) / 0.15 * 0.33, 0.5))
        return (np.abs(u - 0.5) <= half) & ((v < 0.93) | (np.abs(u - 0.5) < 0.42))
    if shape == "mug":
        ro = 0.3 * bh
        ring = np.hypot(x - bw, y - 0.5 * bh)
        return _roundrect(x, y, bw, bh, 0.1 * bw) | ((ring <= ro) & (ring >= 0.55 * ro) & (x > bw))
    if shape == "plate":
        return ((u - 0.5) / 0.5) ** 2 + ((v - 0.5) / 0.5) ** 2 <= 1.0
    if shape == "sheet":
        inset = 0.08 * (1 - v)
        return (u >= inset) & (u <= 1 - inset)
    return _roundrect(x, y, bw, bh, 1.0)  # slab


PLASTIC = (
    (0.85, 0.15, 0.15),
    (0.2, 0.7, 0.25),
    (0.15, 0.35, 0.85),
    (0.95, 0.8, 0.1),
    (0.95, 0.5, 0.1),
    (0.55, 0.25, 0.7),
)
WOOD = ((0.55, 0.35, 0.18), (0.65, 0.42, 0.22), (0.45, 0.28, 0.14), (0.7, 0.48, 0.28))
GLAZE = ((0.2, 0.3, 0.7), (0.7, 0.2, 0.2), (0.2, 0.55, 0.35), (0.85, 0.6, 0.1))


def _texture(material: str, seed: int, u: np.ndarray, v: np.ndarray, y: np.ndarray):
    """(rgb (h, w, 3), alpha (h, w)) of a material on the body coordinates ``u``, ``v``."""
    rng = np.random.default_rng([seed, 5])
    cyl = 1 - np.clip(2 * u - 1, -1, 1) ** 2  # cylinder shading, 1 in the middle
    alpha = np.ones_like(u)
    if material == "metal":
        base = rng.uniform(0.55, 0.72) + rng.uniform(-0.03, 0.03, 3)
        su = rng.uniform(0.22, 0.38)
        spec = 0.55 * np.exp(-(((u - su) / 0.05) ** 2)) + 0.25 * np.exp(
            -(((u - su - 0.35) / 0.04) ** 2)
        )
        brushed = 1 + 0.04 * rng.standard_normal(u.shape[1])[None, :]
        rgb = base * (0.6 + 0.4 * cyl)[..., None] * brushed[..., None] + spec[..., None]
        rgb = np.where((v < 0.08)[..., None], rgb * 0.7, rgb)
    elif material == "wood":
        base = np.asarray(WOOD[int(rng.integers(len(WOOD)))]) + rng.uniform(-0.04, 0.04, 3)
        k1, k2, phase = rng.uniform(2.5, 5.0), rng.uniform(0.5, 1.5), rng.uniform(0, 6.3)
        grain = np.sin(2 * np.pi * (v * k1 + 0.25 * np.sin(2 * np.pi * u * k2 + phase)))
        rgb = base * (0.82 + 0.18 * grain)[..., None] * (0.9 + 0.1 * cyl)[..., None]
    elif material == "glass":
        rgb = np.ones(u.shape + (3,)) * (
            np.asarray([0.78, 0.93, 0.96]) + rng.uniform(-0.04, 0.04, 3)
        )
        stripe = np.abs(u - rng.uniform(0.18, 0.3)) < 0.05
        rgb[stripe] = 1.0
        alpha = np.where(stripe, 0.85, rng.uniform(0.35, 0.5))
    elif material == "ceramic":
        rgb = np.asarray([0.95, 0.94, 0.9]) * (0.85 + 0.15 * cyl)[..., None]
        glaze = np.asarray(GLAZE[int(rng.integers(len(GLAZE)))])
        b0 = rng.uniform(0.1, 0.3)
        band = (v > b0) & (v < b0 + 0.14)
        rgb = np.where(band[..., None], glaze * (0.85 + 0.15 * cyl)[..., None], rgb)
    elif material == "plastic":
        base = np.asarray(PLASTIC[int(rng.integers(len(PLASTIC)))])
        gloss = 0.3 * np.exp(-(((u - 0.3) / 0.08) ** 2) - (((v - 0.3) / 0.25) ** 2))
        rgb = base * (0.85 + 0.15 * cyl)[..., None] + gloss[..., None]
    else:  # paper
        rgb = np.ones(u.shape + (3,)) * np.asarray([0.97, 0.96, 0.91])
        rules = (np.floor(y) % 3) == 1
        rgb[rules] = (0.68, 0.8, 0.96)
        rgb[np.abs(u - 0.15) < 0.015] = (0.9, 0.45, 0.45)
    return np.clip(rgb, 0, 1).astype(np.float32), alpha.astype(np.float32)


def object_sprite(obj: ObjectSpec, size: int) -> Sprite:
    """The object's picture at frame size ``size``: body plus handles, textured and outlined.

    Cached per object (the clips of a video share it): treat the arrays as read-only.
    """
    return _sprite(obj.material, obj.shape, obj.w, obj.h, obj.style_seed, size)


@functools.lru_cache(maxsize=32)
def _sprite(material: str, shape: str, w_frac: float, h_frac: float, seed: int, size: int):
    obj = ObjectSpec(material, "", shape, 0.0, 0.0, w_frac, h_frac, 0, seed)
    bw, bh = max(4, round(obj.w * size)), max(3, round(obj.h * size))
    w = max(bw, round(bw * SHAPE_SIZES[obj.shape][2]))
    bx = (w - bw) // 2 if obj.shape == "pot" else 0
    yy, xx = np.mgrid[0:bh, 0:w].astype(np.float32) + 0.5
    x = xx - bx
    solid = _shape(obj.shape, x, yy, bw, bh)
    u, v = x / bw, yy / bh
    rgb, alpha = _texture(obj.material, obj.style_seed, u, v, yy)
    if obj.shape in ("slab", "sheet"):
        rgb = np.where((v < 0.35)[..., None], np.clip(rgb * 1.1 + 0.03, 0, 1), rgb)
    if obj.shape == "box" and obj.material == "plastic":
        rgb = np.where((np.abs(v - 0.18) < 0.04)[..., None], rgb * 0.7, rgb)
    if obj.shape == "jar" and obj.material == "glass":  # metal lid
        lid = v < 0.12
        rgb[lid], alpha[lid] = (0.6, 0.6, 0.62), 1.0
    edge = solid & ~erode(solid)
    if obj.material == "glass":
        rgb[edge], alpha[edge] = 0.98, 0.95
    else:
        rgb[edge] *= 0.55
    alpha = np.where(solid, alpha, 0).astype(np.float32)
    return Sprite(rgb.astype(np.float32), alpha, solid, bx, bw, bh)
