"""Frames of a clip: the scene, a hand (with a knife or a jug) acting on the target object.

The egocentric camera looks across a table; the arm enters from the bottom edge.  At every
contact frame of the plan the contact element touches the target's top surface exactly (the
palm's lowest pixel row is next to the object's top row; for ``cut`` the blade tip, for ``drop``
the object's bottom reaching the table, for ``pour`` the stream starting), and it is clear of it
on the frames around: :class:`Rendered` ``gap`` gives that distance per frame, in pixels.

``labels`` says which thing each pixel shows (0 background, ``i + 1`` object ``i``, 100 hand,
101 knife, jug or water), from which :func:`sounding_masks` cuts the ground-truth masks.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from foley.config import AVConfig
from foley.data.foleyworld.scene import ClipPlan
from foley.data.foleyworld.sprites import Sprite, background, object_sprite

PALM_R, ARM_R, FOREARM = 0.085, 0.06, 0.3  # frame units
FINGER_LEN, FINGER_R, FINGER_DX = 0.1, 0.024, 0.045
FINGER_VERBS = ("knock", "tap", "scrape", "hold", "tear")
KNIFE_LEN, KNIFE_R = 0.12, 0.018
JUG_W, JUG_H, SPOUT_DROP = 0.11, 0.14, 0.2
HAND, TOOL = 100, 101
WATER = np.asarray([0.6, 0.8, 1.0], np.float32)
STEEL = np.asarray([0.78, 0.8, 0.84], np.float32)
JUG = np.asarray([0.88, 0.92, 0.96], np.float32)


@dataclass
class Rendered:
    frames: np.ndarray  # (T, S, S, 3) uint8
    labels: np.ndarray  # (T, S, S) int16
    regions: np.ndarray  # (T, S, S) int16: object labels before hand and tools are drawn
    gap: np.ndarray  # (T,) pixels between contact element and target surface (0: touching)


def _paste(img: np.ndarray, lab: np.ndarray, sp: Sprite, x0: int, y0: int, label: int) -> None:
    """Alpha-composite ``sp`` with its top-left at (x0, y0), clipped to the image."""
    h, w = sp.alpha.shape
    H, W = lab.shape
    ya, yb, xa, xb = max(0, y0), min(H, y0 + h), max(0, x0), min(W, x0 + w)
    if ya >= yb or xa >= xb:
        return
    sl = (slice(ya - y0, yb - y0), slice(xa - x0, xb - x0))
    a = sp.alpha[sl][..., None]
    img[ya:yb, xa:xb] = img[ya:yb, xa:xb] * (1 - a) + sp.rgb[sl] * a
    region = lab[ya:yb, xa:xb]
    region[sp.solid[sl]] = label


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return x * x * (3 - 2 * x)


@functools.lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return yy, xx


def _capsules(size: int, a: np.ndarray, b: np.ndarray):
    """Distance of every pixel to segments a->b: ``(k, S, S)`` distance and position along."""
    yy, xx = _grid(size)
    a = np.asarray(a, np.float32)
    d = np.asarray(b, np.float32) - a  # (k, 2) as (x, y)
    dx, dy = d[:, 0, None, None], d[:, 1, None, None]
    px = xx[None] - a[:, 0, None, None]
    py = yy[None] - a[:, 1, None, None]
    inv = 1.0 / np.maximum(dx * dx + dy * dy, 1e-6)
    s = np.clip((px * dx + py * dy) * inv, 0, 1)
    px -= s * dx
    py -= s * dy
    return np.sqrt(px * px + py * py), s


def _reach(verb: str) -> float:
    """Distance (frame units) from the palm centre to the lowest point of the contact element."""
    if verb in FINGER_VERBS:
        return FINGER_LEN + FINGER_R
    if verb == "cut":
        return PALM_R + KNIFE_LEN
    return PALM_R


def _trajectory(plan: ClipPlan, cfg: AVConfig, contact: np.ndarray, body: tuple[int, int]):
    """Palm centre per frame (T, 2) px, gap (T,), object lift (T,) px and knife flag."""
    S, T, fps = cfg.frame_size, cfg.frames_per_clip, cfg.fps
    m = plan.motion
    t = np.arange(T, dtype=np.float64)
    start = np.asarray(m["start"]) * S + plan.camera
    hover = m["hover"] * S
    below = _reach(plan.hand_motion) * S
    lift = np.zeros(T)
    bw, bh = body
    if plan.hand_motion == "look":
        return start.astype(np.float64), np.full(T, np.inf), lift
    contacts = np.asarray(plan.contacts, np.float64)
    k1 = contacts[0]
    if plan.hand_motion == "drop":
        release, lift_px, bounce = m["release"], m["lift"] * S, m["bounce"] * S
        fall = np.clip((t - release) / (k1 - release), 0, 1)
        lift = np.where(t < release, lift_px, lift_px * (1 - fall**2))
        if len(contacts) > 1:
            k2 = contacts[1]
            s = np.clip((t - k1) / (k2 - k1), 0, 1)
            lift = np.where((t > k1) & (t < k2), bounce * 4 * s * (1 - s), lift)
        lift[t >= contacts[-1]] = 0.0
        lift[t == k1] = 0.0
        held = contact - np.stack([np.zeros(T), lift + PALM_R * S], axis=1)
        rel = int(release)
        after = held[rel] + np.stack(
            [0.02 * S * np.sin((t - rel) / 3), -0.05 * S * _smoothstep((t - rel) / 4)], 1
        )
        palm = np.where((t <= release)[:, None], held, after)
        return palm, lift, lift
    if plan.span is not None:
        on, off = plan.span
        h = hover * np.clip(np.maximum(on - t, t - off + 1) / 2.0, 0, 1)
        w_frames = 2.0
    else:
        gaps = np.diff(contacts)
        w_frames = max(1.5, float(gaps.min()) / 2) if gaps.size else 2.0
        h = hover * np.clip(np.abs(t[:, None] - contacts[None, :]).min(axis=1) / w_frames, 0, 1)
        if plan.hand_motion == "hold":
            h[t >= k1] = 0.0
    palm = contact - np.stack([np.zeros(T), below + h], axis=1)
    if plan.hand_motion == "scrape":
        tau = t / fps - plan.events[0].onset
        dx = m["amp"] * bw * np.sin(2 * np.pi * tau / m["period"])
        palm[:, 0] += np.where((t >= on) & (t < off), dx, np.where(t >= off, dx[int(off) - 1], 0))
    elif plan.hand_motion == "tear":
        progress = np.clip((t - on + 1) / (off - on), 0, 1) * (t >= on)
        palm[:, 1] += progress * 0.6 * bh
    elif plan.hand_motion == "pour":
        side = m["jug_side"]
        spout = contact + np.asarray([-side * 0.01 * S, -SPOUT_DROP * S])
        palm = spout + np.asarray([side * (JUG_W * S + 0.5 * PALM_R * S), -0.5 * JUG_H * S])
        away = _smoothstep((t - off) / 3)[:, None] * np.asarray([side * 0.05 * S, -0.05 * S])
        palm = palm + away
        h = np.where((t >= on) & (t < off), 0.0, np.abs(spout[:, 1] - contact[:, 1]))
        t_h = max(1.0, on - 2)
    if plan.hand_motion != "pour":
        t_h = max(1.0, k1 - np.ceil(w_frames))
    s = _smoothstep(t / t_h)[:, None]
    approach = (1 - s) * start + s * palm[int(t_h)]
    palm = np.where((t < t_h)[:, None], approach, palm)
    gap = np.where(t < t_h, np.maximum(h, contact[:, 1] - below - palm[:, 1]), h)
    return palm, gap, lift


def _draw_hand(img, lab, palm, origin, skin, sleeve, size, visible, fingers: bool) -> None:
    """Arm (sleeve, then skin), palm and, if ``fingers``, three fingers pointing down."""
    idx = np.flatnonzero(visible)
    if idx.size == 0:
        return
    # the arm: only the rows it can reach, from the highest palm pixel to the bottom edge
    top = int(max(0, np.floor(palm[idx, 1].min() - PALM_R * size - 1)))
    if top < size:
        shift = np.asarray([0.0, top], np.float32)
        p, o = (palm[idx] - shift).astype(np.float32), (origin[idx] - shift).astype(np.float32)
        dist, s = _capsules(size, o, p)
        ra = ARM_R * size
        sel = np.nonzero(dist[:, : size - top] <= ra)
        length = np.hypot(*(p - o).T).astype(np.float32)[sel[0]]
        skin_part = s[sel] * length >= length - FOREARM * size
        shade = 1 - 0.35 * (dist[sel] / ra) ** 2
        colour = np.where(skin_part[:, None], np.asarray(skin), np.asarray(sleeve)) * shade[:, None]
        img[idx[sel[0]], sel[1] + top, sel[2]] = colour
        lab[idx[sel[0]], sel[1] + top, sel[2]] = HAND
    _draw_palm(img, lab, idx, palm[idx], skin, size, fingers)


def _draw_palm(img, lab, idx, palm, skin, size, fingers: bool) -> None:
    """Palm disc and fingers, computed in a small window around each palm."""
    rp, rf, fl = PALM_R * size, FINGER_R * size, FINGER_LEN * size
    half = int(np.ceil(max(rp, FINGER_DX * size + rf))) + 1
    up, down = int(np.ceil(rp)) + 1, int(np.ceil(fl + rf if fingers else rp)) + 1
    gx = np.floor(palm[:, 0]).astype(int)[:, None] + np.arange(-half, half + 1)  # (k, W)
    gy = np.floor(palm[:, 1]).astype(int)[:, None] + np.arange(-up, down + 1)  # (k, H)
    dx = (gx - palm[:, 0, None])[:, None, :]
    dy = (gy - palm[:, 1, None])[:, :, None]
    pd = np.sqrt(dx**2 + dy**2)
    mask = pd <= rp
    shade = 1 - 0.3 * (pd / rp) ** 2
    if fingers:
        fy = dy - np.clip(dy, 0, fl)
        for off in (-FINGER_DX * size, 0.0, FINGER_DX * size):
            fd = np.sqrt((dx - off) ** 2 + fy**2)
            finger = (fd <= rf) & ~mask
            shade = np.where(finger, 0.95 - 0.3 * (fd / rf) ** 2, shade)
            mask |= finger
    mask &= ((gx >= 0) & (gx < size))[:, None, :] & ((gy >= 0) & (gy < size))[:, :, None]
    sel = np.nonzero(mask)
    frames, ys, xs = idx[sel[0]], gy[sel[0], sel[1]], gx[sel[0], sel[2]]
    img[frames, ys, xs] = np.asarray(skin) * shade[sel][:, None]
    lab[frames, ys, xs] = HAND


def _draw_segments(img, lab, frames_idx, a, b, radius, colour, alpha, size) -> None:
    if len(frames_idx) == 0:
        return
    dist, _ = _capsules(size, a[frames_idx], b[frames_idx])
    mask = dist <= radius
    sub_img, sub_lab = img[frames_idx], lab[frames_idx]
    sub_img[mask] = sub_img[mask] * (1 - alpha) + colour * alpha
    sub_lab[mask] = TOOL
    img[frames_idx], lab[frames_idx] = sub_img, sub_lab


def render_clip(plan: ClipPlan, cfg: AVConfig) -> Rendered:
    """Draw the clip's frames ``(T, S, S, 3)`` uint8 at ``cfg.frame_size``."""
    S, T = cfg.frame_size, cfg.frames_per_clip
    video = plan.video
    margin = int(np.ceil(0.25 * S))
    cam = np.clip(plan.camera, -margin + 1, margin - 1)
    bg = background(video.background, S, margin)
    canvas, canvas_lab = bg.copy(), np.zeros(bg.shape[:2], np.int16)
    sprites = [object_sprite(o, S) for o in video.objects]
    placed = {}
    for i in sorted(range(len(sprites)), key=lambda i: video.objects[i].base_y):
        sp, obj = sprites[i], video.objects[i]
        placed[i] = (round(obj.cx * S - sp.width / 2), round(obj.base_y * S) - sp.body_h)
        if not (plan.hand_motion == "drop" and i == plan.target):
            _paste(canvas, canvas_lab, sp, margin + placed[i][0], margin + placed[i][1], i + 1)
    ys, xs = margin - cam[:, 1], margin - cam[:, 0]
    img = np.stack([canvas[y : y + S, x : x + S] for y, x in zip(ys, xs)])
    lab = np.stack([canvas_lab[y : y + S, x : x + S] for y, x in zip(ys, xs)])

    sp = sprites[plan.target]
    left, top = placed[plan.target]
    cols = np.flatnonzero(sp.solid[0])
    lo, hi = left + cols.min(), left + cols.max()
    cx = (lo + hi) / 2 + plan.motion["contact_dx"] * (hi - lo) / 2
    contact = np.asarray([cx, top - 0.5]) + cam  # (T, 2) as (x, y)
    palm, gap, lift = _trajectory(plan, cfg, contact, (sp.body_w, sp.body_h))

    if plan.hand_motion == "drop":
        for k in range(T):
            y0 = top + int(cam[k, 1]) - int(round(lift[k]))
            _paste(img[k], lab[k], sp, left + int(cam[k, 0]), y0, plan.target + 1)
    t = np.arange(T)
    regions = lab.copy()
    if plan.hand_motion == "tear":
        on, off = plan.span
        rng = np.random.default_rng(plan.motion["jag_seed"])
        yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)
        phase = rng.uniform(0, 6.3)
        bg_frames = np.stack([bg[y : y + S, x : x + S] for y, x in zip(ys, xs)])
        for k in t[t >= on]:
            progress = min(1.0, (k - on + 1) / (off - on))
            line = (lo + hi) / 2 + cam[k, 0] + 1.2 * np.sin(1.3 * yy + phase)
            depth = contact[k, 1] + progress * sp.body_h
            cut = (
                (np.abs(xx - line) <= 0.5 + progress) & (yy <= depth) & (lab[k] == plan.target + 1)
            )
            img[k][cut], lab[k][cut] = bg_frames[k][cut], 0
    if plan.hand_motion == "pour":
        on, off = plan.span
        side = plan.motion["jug_side"]
        spout = palm - np.asarray([side * (JUG_W * S + 0.5 * PALM_R * S), -0.5 * JUG_H * S])
        end = contact + np.asarray([0.0, 0.25 * sp.body_h])
        _draw_segments(img, lab, t[(t >= on) & (t < off)], spout, end, 0.011 * S, WATER, 0.8, S)
        centre = spout + np.asarray([side * 0.5 * JUG_W * S, -0.5 * JUG_H * S])
        a = centre - np.asarray([0.0, 0.5 * JUG_H * S - 0.5 * JUG_W * S])
        b = centre + np.asarray([0.0, 0.5 * JUG_H * S - 0.5 * JUG_W * S])
        _draw_segments(img, lab, t, a, b, 0.5 * JUG_W * S, JUG, 0.9, S)
    origin = np.asarray([video.hand_x * S, 1.25 * S]) + cam
    visible = palm[:, 1] - PALM_R * S < S + 1
    _draw_hand(
        img,
        lab,
        palm,
        origin,
        video.skin,
        video.sleeve,
        S,
        visible,
        plan.hand_motion in FINGER_VERBS,
    )
    if plan.hand_motion == "cut":  # the knife is held in front of the hand
        tip = palm + np.asarray([0.0, _reach("cut") * S])
        _draw_segments(img, lab, t, palm, tip, KNIFE_R * S, STEEL, 1.0, S)
    frames = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Rendered(frames=frames, labels=lab, regions=regions, gap=np.asarray(gap, np.float64))


def sounding_masks(plan: ClipPlan, rendered: Rendered, cfg: AVConfig) -> np.ndarray:
    """``(T, S, S)`` bool: the target's visible pixels on frames where a visible event sounds.

    A frame ``k`` is active for an event when ``frames[0] <= k < frames[1]`` of its ground-truth
    entry (onset frame to the frame where its sound has ended).  Should the hand ever hide the
    whole object, the object's unoccluded region is used, so an active frame is never empty.
    """
    labels = rendered.labels
    T = labels.shape[0]
    masks = np.zeros(labels.shape, bool)
    for event in plan.events:
        if not event.visible:
            continue
        k_on, k_off = event.to_json(cfg.fps)["frames"]
        for k in range(k_on, min(k_off, T)):
            obj = labels[k] == event.object + 1
            if not obj.any():
                obj = rendered.regions[k] == event.object + 1
            masks[k] |= obj
    return masks
