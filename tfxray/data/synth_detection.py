"""Detection phantoms: frontal pelvis with femoral-neck fractures, and a multi-site skeleton set.

Bones are drawn from signed distance fields (pixels, negative inside) of circles, ellipses
and capsules joined by a smooth union, so one outline carries one cortex. A bone's brightness
is its projected thickness: the path through a cortical shell and a trabecular core, so
tubular bones have bright edges and a dimmer, textured middle; overlapping bones add up.

A fracture is a thin, irregular lucent line across a bone's axis, with a grade of difficulty:
``displaced`` (the moving fragment is rotated and shifted, leaving a step, a gap or an
overlap), ``undisplaced`` (a clear line, no shift) and ``subtle`` (a faint thin line, often
incomplete). Its box encloses the line's pixels inside the bone (both fragments' edges when
displaced) with a small margin. As in ``synth.py``, the fracture changes few pixels, so
global image statistics carry no signal (a test holds a logistic regression on them near chance).

The finding (sides or sites, positions, grades) is drawn per study, so all views of a study
show the same fracture; anatomy, pose and exposure vary per image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import ndimage

from .synth import Finding, Phantom, _smooth_noise

DIFFICULTIES = ("displaced", "undisplaced", "subtle")
DIFFICULTY_WEIGHTS = (0.35, 0.35, 0.30)
SKELETON_SITES = ("wrist", "ankle", "knee", "hand", "shoulder")


# --------------------------------------------------------------------------- signed distances


def _circle(x, y, c, r):
    return np.hypot(x - c[0], y - c[1]) - r


def _capsule(x, y, a, b, ra, rb=None):
    """A segment a-b thickened to radius ra at a and rb at b."""
    rb = ra if rb is None else rb
    dx, dy = b[0] - a[0], b[1] - a[1]
    px, py = x - a[0], y - a[1]
    h = np.clip((px * dx + py * dy) / (dx * dx + dy * dy), 0, 1)
    return np.hypot(px - dx * h, py - dy * h) - (ra + (rb - ra) * h)


def _ellipse(x, y, c, rx, ry, angle=0.0):
    """First-order distance to an ellipse: exact on the outline, smooth elsewhere."""
    dx, dy = x - c[0], y - c[1]
    ca, sa = np.cos(angle), np.sin(angle)
    u, v = dx * ca + dy * sa, -dx * sa + dy * ca
    k = np.hypot(u / rx, v / ry)
    gradient = np.hypot(u / rx**2, v / ry**2)
    ratio = np.where(gradient > 1e-9, k / np.maximum(gradient, 1e-9), min(rx, ry))
    return (k - 1) * ratio


def _smooth_min(a, b, k):
    """Smooth union of two distance fields, blending over ``k`` pixels."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0, 1)
    return b + (a - b) * h - k * h * (1 - h)


def _union(parts, k):
    d = parts[0]
    for part in parts[1:]:
        d = _smooth_min(d, part, k)
    return d


# --------------------------------------------------------------------------- bones and fractures


@dataclass(frozen=True)
class _Axis:
    """Where a bone may break: across the segment a -> b, at a fraction in ``t_range`` of its length."""

    a: tuple[float, float]
    b: tuple[float, float]
    half_width: float  # px
    t_range: tuple[float, float]
    move_far: bool = True  # the fragment beyond the line (towards b) moves when displaced, else the one towards a
    reach: float = 3.0  # the moving fragment extends this many half-widths either side of the axis
    pivot_at_a: bool = False  # the moving fragment turns about a (a femoral head in its socket), else about the break


@dataclass(frozen=True)
class _Bone:
    sdf: Callable[[np.ndarray, np.ndarray], np.ndarray]
    radius: float  # projected-thickness scale, px
    weight: float = 1.0  # relative density
    axes: tuple[_Axis, ...] = ()


@dataclass(frozen=True)
class _Fracture:
    difficulty: str
    t: float  # where along the axis, fraction of its length
    tilt: float  # radians from square across the axis
    thickness: float  # px at 256
    depth: float  # share of the bone signal lost in the line
    extent: tuple[float, float]  # across the axis, in half-widths (incomplete lines cover part)
    wiggle: tuple[tuple[float, float, float], ...]  # (amplitude in thicknesses, frequency per half-width, phase)
    angle: float = 0.0  # radians, rotation of the moving fragment about the fracture's centre
    shift_along: float = 0.0  # half-widths; negative: impaction (the fragments overlap)
    shift_across: float = 0.0  # half-widths


def _draw_fracture(
    rng: np.random.Generator, difficulty: str, max_tilt: float, angle_range: tuple[float, float]
) -> _Fracture:
    """Random fracture parameters of one grade; the same number of draws whatever the grade."""
    t = rng.random()
    tilt = np.deg2rad(rng.uniform(-max_tilt, max_tilt))
    wiggle = tuple((rng.uniform(0.2, 0.8), rng.uniform(1.0, 3.0), rng.uniform(0, 2 * np.pi)) for _ in range(3))
    u = rng.random(6)
    sign = rng.choice([-1.0, 1.0], size=2)
    if difficulty == "displaced":
        return _Fracture(
            difficulty, t, tilt, thickness=2.5 + 1.5 * u[0], depth=0.6 + 0.25 * u[1], extent=(-1.8, 1.8), wiggle=wiggle,
            angle=sign[0] * np.deg2rad(angle_range[0] + (angle_range[1] - angle_range[0]) * u[2]),
            shift_along=-0.4 + 0.5 * u[3], shift_across=sign[1] * (0.35 + 0.45 * u[4]),
        )
    if difficulty == "undisplaced":
        return _Fracture(difficulty, t, tilt, thickness=2.0 + 1.5 * u[0], depth=0.55 + 0.25 * u[1], extent=(-1.8, 1.8),
                         wiggle=wiggle)
    # subtle: thin and faint; half of them incomplete, from one cortex over 55-90% of the width
    if u[2] < 0.5:
        covered = 2 * (0.55 + 0.35 * u[3])
        extent = (-1.8, -1.0 + covered) if sign[0] > 0 else (1.0 - covered, 1.8)
    else:
        extent = (-1.8, 1.8)
    return _Fracture(difficulty, t, tilt, thickness=1.6 + 0.8 * u[0], depth=0.45 + 0.15 * u[1], extent=extent,
                     wiggle=wiggle)


def _draw_difficulty(rng: np.random.Generator, forced: str | None = None) -> str:
    drawn = str(rng.choice(DIFFICULTIES, p=DIFFICULTY_WEIGHTS))
    return forced or drawn


def _density(d: np.ndarray, radius: float, cortex: float, trabecular: float, texture: np.ndarray) -> np.ndarray:
    """Projected thickness of a shell (``cortex`` of the radius) around a textured core, from the distance field."""
    depth = np.clip(-d, 0, radius)
    off_axis = radius - depth
    outer = np.sqrt(np.maximum(radius**2 - off_axis**2, 0))
    inner = np.sqrt(np.maximum((radius * (1 - cortex)) ** 2 - off_axis**2, 0))
    return ((outer - inner) + trabecular * (1 + 0.25 * texture) * inner) / radius


def _axis_frame(axis: _Axis, x, y):
    """Coordinates along (u, from a) and across (v) the axis, and its length."""
    ex, ey = axis.b[0] - axis.a[0], axis.b[1] - axis.a[1]
    length = np.hypot(ex, ey)
    ex, ey = ex / length, ey / length
    dx, dy = x - axis.a[0], y - axis.a[1]
    return dx * ex + dy * ey, -dx * ey + dy * ex, length


def _line(fracture: _Fracture, axis: _Axis, u, v, length: float, scale: float):
    """The fracture line's profile (1 on the line) and the side of it (1 beyond it, towards b)."""
    w = axis.half_width
    thickness = fracture.thickness * scale
    t = axis.t_range[0] + fracture.t * (axis.t_range[1] - axis.t_range[0])
    centre = t * length + np.tan(fracture.tilt) * v
    for amplitude, frequency, phase in fracture.wiggle:
        centre = centre + amplitude * thickness * np.sin(frequency * v / w + phase)
    distance = (u - centre) * np.cos(fracture.tilt)
    profile = np.clip(1 - np.abs(distance) / (thickness / 2 + 0.5), 0, 1)
    lo, hi = fracture.extent
    profile = profile * np.clip(np.minimum(v / w - lo, hi - v / w) * w / 1.5 + 0.5, 0, 1)
    beyond = 1 / (1 + np.exp(-distance / 0.5))
    return profile, beyond, t * length


def _bone_image(bone: _Bone, x, y, texture, traits: dict, scale: float, fractures=()):
    """A bone's density, broken by ``fractures`` [(axis, fracture)]; and each fracture's pixel mask."""
    cortex, trabecular = traits["cortex"], traits["trabecular"]
    d = bone.sdf(x, y)
    density = _density(d, bone.radius, cortex, trabecular, texture)
    masks = []
    for axis, fracture in fractures:
        u, v, length = _axis_frame(axis, x, y)
        profile, beyond, position = _line(fracture, axis, u, v, length, scale)
        inside = d < 0
        masks.append((profile > 0.3) & inside)
        if fracture.difficulty != "displaced":
            density = density * (1 - fracture.depth * profile)
            continue
        # The moving fragment: the bone seen through the inverse of its displacement (a rotation
        # about the fracture's centre, then a shift), kept on its side of the line.
        ex, ey = (axis.b[0] - axis.a[0]) / length, (axis.b[1] - axis.a[1]) / length
        pivot = axis.a if axis.pivot_at_a else (axis.a[0] + ex * position, axis.a[1] + ey * position)
        along, across = fracture.shift_along, fracture.shift_across
        shift = (along * ex - across * ey, along * ey + across * ex)
        px = x - pivot[0] - shift[0] * axis.half_width
        py = y - pivot[1] - shift[1] * axis.half_width
        c, s = np.cos(-fracture.angle), np.sin(-fracture.angle)
        mx, my = pivot[0] + c * px - s * py, pivot[1] + s * px + c * py
        moved_d = bone.sdf(mx, my)
        mu, mv, _ = _axis_frame(axis, mx, my)
        moved_profile, moved_beyond, _ = _line(fracture, axis, mu, mv, length, scale)
        near = np.clip(axis.reach - np.abs(mv) / axis.half_width, 0, 1)  # only this part of the bone moves
        near_fixed = np.clip(axis.reach - np.abs(v) / axis.half_width, 0, 1)
        moving_side = (moved_beyond if axis.move_far else 1 - moved_beyond) * near
        fixed_side = 1 - (beyond if axis.move_far else 1 - beyond) * near_fixed
        moved = _density(moved_d, bone.radius, cortex, trabecular, texture) * (1 - fracture.depth * moved_profile)
        density = density * (1 - fracture.depth * profile) * fixed_side + moved * moving_side
        masks[-1] = masks[-1] | ((moved_profile > 0.3) & (moved_d < 0) & (moving_side > 0.5))
    return bone.weight * density, masks


def _mask_box(mask: np.ndarray, size: int):
    """A mask's bounding box in continuous pixels, with a margin, clipped to the image; None if empty."""
    rows, cols = np.nonzero(mask)
    if len(cols) == 0:
        return None
    margin = max(2.0, 3.0 * size / 256)
    return (
        float(max(cols.min() - margin, 0)),
        float(max(rows.min() - margin, 0)),
        float(min(cols.max() + 1 + margin, size)),
        float(min(rows.max() + 1 + margin, size)),
    )


def _posed_grid(size: int, angle: float, scale: float, shift, flip: bool):
    """Anatomical coordinates (px) seen at each pixel centre of an image posed by rotation, scale, shift, flip."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + np.float32(0.5)
    centre = size / 2
    dx, dy = xx - centre, yy - centre
    if flip:
        dx = -dx
    c, s = np.cos(angle), np.sin(angle)
    return centre + (c * dx + s * dy) / scale - shift[0], centre + (-s * dx + c * dy) / scale - shift[1]


def _expose(rng: np.random.Generator, image: np.ndarray, size: int, exposure: float) -> np.ndarray:
    """Blur, gain, offset, heel-effect ramp and quantum noise, as the other phantoms."""
    image = ndimage.gaussian_filter(image, 0.7 * size / 256)
    yy = np.arange(size, dtype=np.float64)[:, None] / size
    ramp = 1 + rng.uniform(-0.12, 0.12) * (yy - 0.5)
    image = exposure * rng.uniform(0.92, 1.08) * image * ramp + rng.uniform(0.05, 0.15)
    image = image + rng.normal(0, rng.uniform(0.008, 0.018), image.shape)
    return np.clip(image, 0, 1).astype(np.float32)


# --------------------------------------------------------------------------- pelvis


def pelvis_subject(rng: np.random.Generator) -> dict:
    """A patient's traits: size, bone density and structure, neck-shaft angle, typical exposure."""
    return {
        "scale": rng.uniform(0.93, 1.05),
        "width": rng.uniform(0.95, 1.05),
        "density": rng.uniform(0.75, 1.1),
        "cortex": rng.uniform(0.16, 0.26),
        "trabecular": rng.uniform(0.3, 0.45),
        "neck_shaft": rng.uniform(125, 140),
        "shaft_tilt": rng.uniform(4, 9),
        "soft": rng.uniform(0.85, 1.15),
        "exposure": rng.uniform(0.75, 1.0),
    }


def pelvis_study(rng: np.random.Generator, difficulty: str | None = None) -> dict:
    """The study's finding, used when the study is fractured: sides (-1 image left), grade, line.

    ``difficulty`` forces the grade (the same draws are made, so the rest stays as drawn).
    """
    both = rng.random() < 0.2
    side = int(rng.choice([-1, 1]))
    fractures = {s: _draw_fracture(rng, _draw_difficulty(rng, difficulty), max_tilt=25, angle_range=(12, 25))
                 for s in (-1, 1)}
    return {"sides": (-1, 1) if both else (side,), "fractures": fractures}


def _pelvic_bones(size: int, cx: float, widen: float) -> list[_Bone]:
    S = size

    cache: dict = {}

    def sacrum_sdf(x, y):  # also cuts both hip bones: computed once per grid
        if cache.get("grid") is x:
            return cache["d"]
        d = _union([_capsule(x, y, (cx, 0.22 * S), (cx, 0.44 * S), 0.1 * S, 0.02 * S),
                    _capsule(x, y, (cx, 0.44 * S), (cx, 0.5 * S), 0.014 * S, 0.008 * S)], 0.015 * S)
        for k in range(4):  # sacral foramina
            for s in (-1, 1):
                d = np.maximum(d, -_circle(x, y, (cx + s * (0.045 - 0.007 * k) * S, (0.2 + 0.05 * k) * S), 0.011 * S))
        cache.update(grid=x, d=d)
        return d

    def half(s: int) -> _Bone:
        head = (cx + s * 0.215 * S * widen, 0.5 * S)

        def sdf(x, y):
            wing = _ellipse(x, y, (cx + s * 0.25 * S * widen, 0.22 * S), 0.17 * S * widen, 0.095 * S, s * 0.4)
            body = _capsule(x, y, (cx + s * 0.2 * S * widen, 0.27 * S), (head[0] - s * 0.01 * S, head[1] - 0.045 * S),
                            0.085 * S, 0.05 * S)
            socket = _ellipse(x, y, (head[0] - s * 0.01 * S, head[1] - 0.026 * S), 0.078 * S, 0.064 * S)
            foramen = (cx + s * 0.11 * S * widen, 0.645 * S)
            ring = np.maximum(_ellipse(x, y, foramen, 0.105 * S, 0.078 * S, -s * 0.25),
                              -_ellipse(x, y, foramen, 0.06 * S, 0.042 * S, -s * 0.25))
            d = _union([wing, body, socket, ring], 0.025 * S)
            return np.maximum(d, -(sacrum_sdf(x, y) - 0.007 * S))  # the sacroiliac joint: a thin gap

        return _Bone(sdf, radius=0.032 * S, weight=0.85)

    def vertebra_sdf(x, y):  # L5, cut by the top of the field
        return _union([_ellipse(x, y, (cx, 0.07 * S), 0.085 * S, 0.042 * S),
                       _ellipse(x, y, (cx, 0.08 * S), 0.14 * S, 0.016 * S, 0.0)], 0.012 * S)

    return [half(-1), half(1), _Bone(sacrum_sdf, radius=0.04 * S, weight=0.75),
            _Bone(vertebra_sdf, radius=0.04 * S, weight=0.8)]


def _femur(size: int, cx: float, s: int, widen: float, subject: dict) -> _Bone:
    """Head in the socket, neck, trochanters and the shaft leaving the field; breaks across the neck."""
    S = size
    head = (cx + s * 0.215 * S * widen, 0.5 * S)
    rh = 0.06 * S
    tilt = np.deg2rad(subject["shaft_tilt"])
    gamma = np.deg2rad(subject["neck_shaft"] - 90 + subject["shaft_tilt"])  # neck's slope below horizontal
    length = 0.18 * S
    trochanter = (head[0] + s * length * np.cos(gamma), head[1] + length * np.sin(gamma))
    down = (-s * np.sin(tilt), np.cos(tilt))

    def sdf(x, y):
        parts = [
            _circle(x, y, head, rh),
            _capsule(x, y, head, trochanter, 0.034 * S, 0.041 * S),
            _capsule(x, y, (trochanter[0] - down[0] * 0.02 * S, trochanter[1] - down[1] * 0.02 * S),
                     (trochanter[0] + down[0] * S, trochanter[1] + down[1] * S), 0.04 * S),
            _ellipse(x, y, (trochanter[0] + s * 0.03 * S, trochanter[1] - 0.035 * S), 0.03 * S, 0.048 * S, s * 0.25),
            _ellipse(x, y, (trochanter[0] + down[0] * 0.09 * S - s * 0.034 * S, trochanter[1] + down[1] * 0.09 * S),
                     0.02 * S, 0.014 * S, -s * 0.5),
        ]
        return _union(parts, 0.018 * S)

    neck = _Axis(head, trochanter, half_width=0.036 * S, t_range=(0.38, 0.64), move_far=False, reach=1.9,
                 pivot_at_a=True)
    return _Bone(sdf, radius=0.04 * S, weight=1.0, axes=(neck,))


def render_pelvis(rng: np.random.Generator, size: int, fracture: bool, subject: dict) -> Phantom:
    """A frontal (AP) pelvis: L5, sacrum, iliac wings, sockets, pubic rings; both proximal femora.

    A fractured image breaks one femoral neck, or both (``subject["study"]``); each fracture
    has a box, tagged with the patient's side (image left is the patient's right) and its grade.
    """
    S = size
    study = subject["study"]
    scale = subject["scale"] * rng.uniform(0.97, 1.03)
    x, y = _posed_grid(S, np.deg2rad(rng.uniform(-3, 3)), scale, rng.uniform(-0.03, 0.03, 2) * S, flip=False)
    texture = _smooth_noise(rng, (S, S), max(0.8, 1.1 * S / 256))
    cx = S * (0.5 + rng.uniform(-0.015, 0.015))
    widen = subject["width"]

    # soft tissue: the body's silhouette, thicker at the centre, with bowel gas above the ring
    body = np.clip(1 - ((x - cx) / (0.62 * S)) ** 2 - ((y - 0.55 * S) / (0.95 * S)) ** 2, 0, 1) ** 0.5
    soft = 0.22 * subject["soft"] * body * (1 + 0.08 * _smooth_noise(rng, (S, S), S / 10))
    for _ in range(int(rng.integers(2, 6))):
        gas = _ellipse(x, y, (cx + rng.uniform(-0.14, 0.14) * S, rng.uniform(0.15, 0.4) * S),
                       rng.uniform(0.02, 0.05) * S, rng.uniform(0.015, 0.035) * S, rng.uniform(0, np.pi))
        soft = soft - rng.uniform(0.03, 0.07) * np.clip(-gas / (0.01 * S), 0, 1)

    bones = np.zeros((S, S))
    for bone in _pelvic_bones(S, cx, widen):
        bones += _bone_image(bone, x, y, texture, subject, scale)[0]
    brim = _ellipse(x, y, (cx, 0.43 * S), 0.17 * S * widen, 0.15 * S)  # the pelvic inlet's rim, seen edge on
    bones += 0.25 * np.exp(-((brim / (0.006 * S)) ** 2)) * np.clip((y - 0.36 * S) / (0.04 * S), 0, 1)

    findings = []
    for s in (-1, 1):
        femur = _femur(S, cx, s, widen, subject)
        broken = fracture and s in study["sides"]
        breaks = [(femur.axes[0], study["fractures"][s])] if broken else []
        density, masks = _bone_image(femur, x, y, texture, subject, scale, breaks)
        bones += density
        for mask, (_, frac) in zip(masks, breaks):
            box = _mask_box(mask, S)
            if box is not None:
                findings.append(Finding(box, {"side": "right" if s < 0 else "left", "difficulty": frac.difficulty}))

    image = soft + 0.5 * subject["density"] * bones
    pixels = _expose(rng, image, S, subject["exposure"])
    return Phantom(pixels, findings[0].box if findings else None, findings=findings)


# --------------------------------------------------------------------------- skeleton


def skeleton_subject(rng: np.random.Generator) -> dict:
    return {
        "scale": rng.uniform(0.93, 1.07),
        "density": rng.uniform(0.8, 1.15),
        "cortex": rng.uniform(0.18, 0.3),
        "trabecular": rng.uniform(0.3, 0.5),
        "soft": rng.uniform(0.85, 1.15),
        "exposure": rng.uniform(0.75, 1.05),
    }


def skeleton_study(rng: np.random.Generator, site: str | None = None, difficulty: str | None = None) -> dict:
    """The study's site (all its views show it) and its finding when fractured: which axes break, how.

    ``site`` and ``difficulty`` force those choices (the same draws are made).
    """
    drawn = str(rng.choice(SKELETON_SITES))
    count = 2 if rng.random() < 0.15 else 1
    order = rng.random(16)  # ranks the site's axes: the first ``count`` break
    fractures = [_draw_fracture(rng, _draw_difficulty(rng, difficulty), max_tilt=35, angle_range=(4, 12))
                 for _ in range(2)]
    return {"site": site or drawn, "count": count, "order": order, "fractures": fractures}


def _tube(a, b, ra, rb=None, extra=()):
    """A bone from a capsule plus extra parts (functions of x, y), smoothly joined."""

    def sdf(x, y):
        return _union([_capsule(x, y, a, b, ra, rb), *[part(x, y) for part in extra]], 0.5 * ra)

    return sdf


def _site_wrist(S: float, j) -> tuple[list[_Bone], Callable]:
    P = lambda fx, fy: (fx * S, fy * S)  # noqa: E731
    bones = [
        _Bone(_tube(P(.40, 1.3), P(.40, .60), .055 * S, extra=(
            lambda x, y: _capsule(x, y, P(.40, .76), P(.41, .57), .055 * S, .085 * S),
            lambda x, y: _ellipse(x, y, P(.41, .55 + j[0]), .09 * S, .04 * S, -0.1),
            lambda x, y: _capsule(x, y, P(.33, .55), P(.31, .49), .02 * S))),
            .05 * S, axes=(_Axis(P(.40, 1.3), P(.40, .57), .055 * S, (0.8, 0.97)),)),
        _Bone(_tube(P(.62, 1.3), P(.62, .58), .035 * S, extra=(
            lambda x, y: _circle(x, y, P(.62, .565), .04 * S),
            lambda x, y: _capsule(x, y, P(.655, .56), P(.665, .515), .012 * S))),
            .035 * S, axes=(_Axis(P(.62, 1.3), P(.62, .58), .035 * S, (0.6, 0.95)),)),
    ]
    for k, fx in enumerate((.37, .46, .55, .64)):  # carpal rows; the first is the scaphoid
        axes = (_Axis(P(.345, .50), P(.395, .40), .035 * S, (0.35, 0.65)),) if k == 0 else ()
        bones.append(_Bone(lambda x, y, fx=fx, k=k: _ellipse(x, y, P(fx, .455 - .01 * (k == 0)), .046 * S, .036 * S,
                                                             .3 * (k == 0)),
                           .03 * S, 0.9, axes))
        bones.append(_Bone(lambda x, y, fx=fx: _ellipse(x, y, P(fx - .005, .37), .042 * S, .034 * S), .03 * S, 0.9))
    for k, fx in enumerate((.37, .46, .55, .64)):  # metacarpal bases leaving the field
        a, b = P(fx, .31), P(fx + (k - 1.5) * .05, -.3)
        bones.append(_Bone(_tube(a, b, .026 * S, .022 * S), .026 * S, axes=(_Axis(a, b, .026 * S, (0.12, 0.4)),)))
    return bones, lambda x, y: _capsule(x, y, P(.5, 1.4), P(.5, -.4), .34 * S)


def _site_ankle(S: float, j) -> tuple[list[_Bone], Callable]:
    P = lambda fx, fy: (fx * S, fy * S)  # noqa: E731
    bones = [
        _Bone(_tube(P(.45, -.4), P(.45, .52), .085 * S, extra=(
            lambda x, y: _ellipse(x, y, P(.45, .555), .125 * S, .05 * S),
            lambda x, y: _capsule(x, y, P(.35, .56), P(.335, .68 + j[0]), .028 * S))),
            .06 * S, axes=(_Axis(P(.45, -.4), P(.45, .55), .085 * S, (0.6, 0.95)),
                           _Axis(P(.35, .56), P(.335, .70), .028 * S, (0.3, 0.7)))),
        _Bone(_tube(P(.66, -.4), P(.665, .62), .026 * S, extra=(
            lambda x, y: _ellipse(x, y, P(.665, .665), .036 * S, .066 * S),)),
            .03 * S, axes=(_Axis(P(.66, -.4), P(.665, .70), .03 * S, (0.6, 0.93)),)),
        _Bone(lambda x, y: _ellipse(x, y, P(.49, .69), .13 * S, .075 * S), .05 * S, 0.9),
        _Bone(lambda x, y: _ellipse(x, y, P(.52, .95), .2 * S, .09 * S, .15), .05 * S, 0.8),
    ]
    return bones, lambda x, y: _capsule(x, y, P(.5, -.4), P(.5, 1.4), .36 * S)


def _site_knee(S: float, j) -> tuple[list[_Bone], Callable]:
    P = lambda fx, fy: (fx * S, fy * S)  # noqa: E731

    def femur(x, y):
        d = _union([_capsule(x, y, P(.5, -.4), P(.5, .33), .09 * S),
                    _ellipse(x, y, P(.39, .41), .1 * S, .075 * S),
                    _ellipse(x, y, P(.61, .41), .1 * S, .075 * S)], .04 * S)
        return np.maximum(d, -_ellipse(x, y, P(.5, .48), .03 * S, .045 * S))  # intercondylar notch

    bones = [
        _Bone(femur, .07 * S, axes=(_Axis(P(.5, -.4), P(.5, .40), .09 * S, (0.55, 0.85)),)),
        _Bone(lambda x, y: _ellipse(x, y, P(.5, .36 + j[0]), .075 * S, .09 * S), .04 * S, 0.5),  # patella
        _Bone(_tube(P(.5, 1.4), P(.5, .6), .085 * S, extra=(
            lambda x, y: _ellipse(x, y, P(.5, .545), .21 * S, .045 * S),
            lambda x, y: _ellipse(x, y, P(.5, .62), .15 * S, .09 * S))),
            .07 * S, axes=(_Axis(P(.5, 1.4), P(.5, .53), .1 * S, (0.72, 0.95)),)),
        _Bone(_tube(P(.69, 1.4), P(.71, .67), .022 * S, extra=(lambda x, y: _circle(x, y, P(.71, .66), .038 * S),)),
              .03 * S, axes=(_Axis(P(.69, 1.4), P(.71, .64), .025 * S, (0.6, 0.92)),)),
    ]
    return bones, lambda x, y: _capsule(x, y, P(.5, -.4), P(.5, 1.4), .38 * S)


def _site_hand(S: float, j) -> tuple[list[_Bone], Callable]:
    P = lambda fx, fy: (fx * S, fy * S)  # noqa: E731
    bones, rays = [], []
    starts = [P(.29, .9)] + [P(.39 + .085 * k, .88) for k in range(4)]
    ends = [P(.15, .66)] + [P(.32 + .12 * k, .5 + .03 * abs(k - 1.5) + j[0]) for k in range(4)]
    for k, (a, b) in enumerate(zip(starts, ends)):
        direction = np.subtract(b, a) / np.hypot(*np.subtract(b, a))
        r = (.032 if k == 0 else .028) * S
        bones.append(_Bone(_tube(a, b, r, 0.9 * r, extra=(lambda x, y, b=b, r=r: _circle(x, y, b, 1.15 * r),)),
                           r, axes=(_Axis(a, b, r, (0.25, 0.75)),)))
        p0 = (b[0] + direction[0] * 0.05 * S, b[1] + direction[1] * 0.05 * S)
        p1 = (b[0] + direction[0] * (0.26 if k else 0.2) * S, b[1] + direction[1] * (0.26 if k else 0.2) * S)
        base = (lambda x, y, p0=p0, r=r: _circle(x, y, p0, 0.95 * r),)
        bones.append(_Bone(_tube(p0, p1, 0.8 * r, 0.7 * r, extra=base),
                           0.8 * r, axes=(_Axis(p0, p1, 0.8 * r, (0.25, 0.75)),)))
        rays.append((a, (b[0] + direction[0] * 0.45 * S, b[1] + direction[1] * 0.45 * S)))
    for fx in (.34, .44, .54, .64):  # distal carpal row, cut by the bottom of the field
        bones.append(_Bone(lambda x, y, fx=fx: _ellipse(x, y, P(fx, .97), .045 * S, .035 * S), .03 * S, 0.9))

    def soft(x, y):
        return _union([_ellipse(x, y, P(.5, .82), .27 * S, .26 * S)]
                      + [_capsule(x, y, a, b, .065 * S) for a, b in rays], .04 * S)

    return bones, soft


def _site_shoulder(S: float, j) -> tuple[list[_Bone], Callable]:
    P = lambda fx, fy: (fx * S, fy * S)  # noqa: E731

    def scapula(x, y):
        return _union([_ellipse(x, y, P(.27, .38), .035 * S, .09 * S),
                       _capsule(x, y, P(.27, .40), P(.16, .5), .05 * S),
                       _ellipse(x, y, P(.1, .62), .13 * S, .27 * S, .25),
                       _capsule(x, y, P(.02, .25), P(.46, .17 + j[0]), .03 * S)], .03 * S)

    def ribs(x, y):
        d = np.full(x.shape, np.inf)
        for k in range(4):
            d = np.minimum(d, np.abs(_ellipse(x, y, P(-.25, .5 + .14 * k), .5 * S, .22 * S, -.15)) - .012 * S)
        return d

    bones = [
        _Bone(ribs, .015 * S, 0.5),
        _Bone(scapula, .03 * S, 0.7),
        _Bone(_tube(P(.53, 1.4), P(.47, .45), .07 * S, extra=(
            lambda x, y: _circle(x, y, P(.42, .36), .115 * S),
            lambda x, y: _ellipse(x, y, P(.55, .34), .05 * S, .065 * S))),
            .07 * S, axes=(_Axis(P(.53, 1.4), P(.46, .38), .075 * S, (0.8, 0.9)),)),
        _Bone(_tube(P(-.3, .05), P(.15, .12), .034 * S,
                    extra=(lambda x, y: _capsule(x, y, P(.15, .12), P(.42, .13), .03 * S),)),
              .03 * S, axes=(_Axis(P(-.3, .05), P(.42, .13), .032 * S, (0.45, 0.8)),)),
    ]

    def soft(x, y):
        return _union([_ellipse(x, y, P(.35, .75), .5 * S, .75 * S),
                       _capsule(x, y, P(.55, .55), P(.6, 1.5), .2 * S)], .05 * S)

    return bones, soft


_SITES = {
    "wrist": _site_wrist, "ankle": _site_ankle, "knee": _site_knee, "hand": _site_hand, "shoulder": _site_shoulder,
}
if tuple(_SITES) != SKELETON_SITES:
    raise ImportError("skeleton sites out of step")


def render_skeleton(rng: np.random.Generator, size: int, fracture: bool, subject: dict) -> Phantom:
    """A radiograph of one site (``subject["study"]["site"]``), left or right, posed and exposed per view.

    A fractured image breaks one or two of the site's bones along their axes, a box each.
    """
    S = size
    study = subject["study"]
    scale = subject["scale"] * rng.uniform(0.95, 1.05)
    angle = np.deg2rad(rng.uniform(-12, 12))
    shift = rng.uniform(-0.04, 0.04, 2) * S
    x, y = _posed_grid(S, angle, scale, shift, flip=bool(rng.random() < 0.5))
    texture = _smooth_noise(rng, (S, S), max(0.8, 1.1 * S / 256))
    bones, soft_sdf = _SITES[study["site"]](S, rng.uniform(-0.01, 0.01, 2))
    limb = soft_sdf(x, y)
    soft = 0.24 * subject["soft"] * np.clip(-limb / (0.08 * S), 0, 1) ** 0.5
    soft = soft * (1 + 0.08 * _smooth_noise(rng, (S, S), S / 10))

    axes = [(k, axis) for k, bone in enumerate(bones) for axis in bone.axes]
    chosen = np.argsort(study["order"][: len(axes)])[: study["count"]] if fracture else []
    breaks: dict[int, list] = {}
    for n, index in enumerate(chosen):
        k, axis = axes[index]
        breaks.setdefault(k, []).append((axis, study["fractures"][n]))
    image = soft
    findings = []
    for k, bone in enumerate(bones):
        density, masks = _bone_image(bone, x, y, texture, subject, scale, breaks.get(k, ()))
        image = image + 0.5 * subject["density"] * density
        for mask, (_, frac) in zip(masks, breaks.get(k, ())):
            box = _mask_box(mask, S)
            if box is not None:
                findings.append(Finding(box, {"difficulty": frac.difficulty}))
    pixels = _expose(rng, image, S, subject["exposure"])
    return Phantom(pixels, findings[0].box if findings else None, findings=findings, tags={"site": study["site"]})
