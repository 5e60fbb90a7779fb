"""Synthetic radiographs (phantoms) that exercise the real code paths offline.

No real X-ray data can be had offline, so the demo and the tests draw phantoms: soft
tissue, long bones with a bright cortical rim and trabecular texture, exposure and
position variation, noise; the fracture class carries a thin, irregular lucent line
across a bone, with its bounding box.

The wrist phantoms are drawn from a difficulty mix (``--difficulty``, ``MIXES``): each fracture
study gets a grade, ``displaced`` (a wide gap and a sideways step), ``undisplaced`` (a clear line,
no step) or ``subtle`` (a faint hairline, half of them through one cortex only), recorded in the
manifest's ``difficulty`` column (empty for normals); and every image, normal or not, may show
overlapping structures or fracture mimics (the ulna superimposed on the radius, a skin fold, a
nutrient canal) and vary in exposure, noise and sharpness. Published wrist-fracture models land
at an AUC of about 0.90-0.98; the default mix puts the demo there, ``easy`` back near 1.

The fracture changes only a few hundred pixels, and mimics, exposure and noise are drawn alike
for both classes, so global image statistics carry almost no signal (a test checks that a
logistic regression on them stays near chance): a model has to find the line.

Each image is drawn from its own generator seeded by (seed, task, index), so a data set
is deterministic for a seed and the same whatever the order of generation.

The detection phantoms (``pelvis``, ``skeleton``: several boxes per image, graded
difficulty) live in ``synth_detection.py`` and are registered here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from scipy import ndimage

from ..errors import UserError
from ..io import atomic_path, atomic_write_text
from . import SYNTH_TASKS


@dataclass(frozen=True)
class Finding:
    """One boxed finding of an image with several: its box and per-box manifest columns."""

    box: tuple[float, float, float, float]
    tags: dict = field(default_factory=dict)  # e.g. {"side": "left", "difficulty": "subtle"}


@dataclass
class Phantom:
    pixels: np.ndarray  # float32 (H, W) in [0, 1], bone bright
    box: tuple[float, float, float, float] | None  # x1, y1, x2, y2 of the fracture, pixels
    findings: list[Finding] | None = None  # several boxes (detection tasks); when set, ``box`` is ignored
    tags: dict = field(default_factory=dict)  # per-image manifest columns, e.g. {"site": "knee"}


# --------------------------------------------------------------------------- drawing


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return field / (field.std() + 1e-8)


def _soft_tissue(rng: np.random.Generator, size: int, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """A forearm-like soft-tissue silhouette with a gentle thickness gradient."""
    cx = size * rng.uniform(0.4, 0.6)
    half_width = size * rng.uniform(0.28, 0.4)
    angle = np.deg2rad(rng.uniform(-12, 12))
    across = (xx - cx) * np.cos(angle) - (yy - size / 2) * np.sin(angle)
    profile = np.clip(1 - (across / half_width) ** 2, 0, 1) ** 0.5
    return 0.25 * profile * (1 + 0.1 * _smooth_noise(rng, (size, size), size / 8))


@dataclass
class _Bone:
    cx: float
    cy: float
    angle: float  # radians, axis direction
    half_width: float
    half_length: float


def _bone_coordinates(bone: _Bone, yy: np.ndarray, xx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates along (u) and across (v) the bone's axis."""
    dx, dy = xx - bone.cx, yy - bone.cy
    u = dx * np.sin(bone.angle) + dy * np.cos(bone.angle)
    v = dx * np.cos(bone.angle) - dy * np.sin(bone.angle)
    return u, v


def _bone_density(bone: _Bone, u: np.ndarray, v: np.ndarray, texture: np.ndarray, rim: float) -> np.ndarray:
    """Cortical rim bright, medulla dimmer with trabecular texture; rounded ends."""
    r = np.abs(v) / bone.half_width
    inside = np.clip(1 - r, 0, None)
    cortex = np.exp(-(((r - (1 - rim)) / (rim * 0.6)) ** 2)) * (r < 1.02)
    medulla = (r < 1 - rim) * (0.45 + 0.04 * texture)
    ends = np.clip((bone.half_length - np.abs(u)) / (bone.half_width * 0.8), 0, 1)
    return (np.maximum(cortex, medulla) + 0.15 * inside) * ends


# --------------------------------------------------------------------------- difficulty


GRADES = ("displaced", "undisplaced", "subtle")  # fracture grades of the wrist phantoms, easiest first


@dataclass(frozen=True)
class Mix:
    """A wrist data set's difficulty: the grades' shares among fracture studies, and image conditions
    drawn alike for normal and fracture images."""

    weights: tuple[float, float, float]  # displaced, undisplaced, subtle; sum 1
    overlap: float  # share of images with an overlapping structure or a fracture mimic
    exposure: float  # exposure spread: gain within 1 +/- this, and a contrast (gamma) change as large
    noise: float  # the noisiest image has this many times the cleanest one's noise, and is blurrier

    def describe(self) -> str:
        grades = ",".join(f"{g}:{w:g}" for g, w in zip(GRADES, self.weights))
        return f"{grades},overlap:{self.overlap:g},exposure:{self.exposure:g},noise:{self.noise:g}"


MIXES: dict[str, Mix] = {
    # clear fractures on clean images: the model separates the classes (AUC about 1)
    "easy": Mix((0.6, 0.4, 0.0), overlap=0.0, exposure=0.08, noise=1.0),
    # where published wrist models are (AUC about 0.90-0.98): the demo's small CNN, trained on it, scores
    # about 0.93 on a large independent set (displaced 1.00, undisplaced 0.99, subtle 0.63)
    "default": Mix((0.5, 0.35, 0.15), overlap=0.25, exposure=0.1, noise=1.3),
    # mostly hairlines, many mimics, poor images
    "hard": Mix((0.25, 0.25, 0.5), overlap=0.5, exposure=0.2, noise=2.0),
}
_CONDITIONS = {"overlap": (0.0, 1.0), "exposure": (0.0, 0.5), "noise": (1.0, 10.0)}  # key: allowed range


def parse_mix(text: str | None) -> Mix:
    """``--difficulty``: a named mix (``easy``, ``default``, ``hard``), grade weights
    (``displaced:0.3,undisplaced:0.4,subtle:0.3``, relative, a grade left out weighs 0), image
    conditions (``overlap:0.5``, ``exposure:0.2``, ``noise:2``), or a name followed by changes
    (``hard,overlap:0``). What is not given comes from ``default`` (or the named mix)."""
    where = "--difficulty"
    if text is None or not str(text).strip():
        return MIXES["default"]
    items = [item.strip() for item in str(text).split(",")]
    if any(not item for item in items):
        raise UserError(f"{where}: empty item in {text!r} (expected NAME or KEY:VALUE items joined by commas)")
    base = MIXES["default"]
    if ":" not in items[0] and "=" not in items[0]:
        name = items.pop(0).lower()
        if name not in MIXES:
            raise UserError(f"{where}: unknown mix {name!r} (valid: {', '.join(MIXES)}, or weights like "
                            "displaced:0.3,undisplaced:0.4,subtle:0.3)")
        base = MIXES[name]
    grades: dict[str, float] = {}
    conditions: dict[str, float] = {}
    for item in items:
        key, sep, value = item.replace("=", ":").partition(":")
        key = key.strip().lower()
        if not sep:
            raise UserError(f"{where}: {item!r} is not KEY:VALUE (a mix name may only come first)")
        if key not in GRADES and key not in _CONDITIONS:
            raise UserError(f"{where}: unknown key {key!r} (grades: {', '.join(GRADES)}; "
                            f"conditions: {', '.join(_CONDITIONS)})")
        if key in grades or key in conditions:
            raise UserError(f"{where}: {key!r} given twice")
        try:
            number = float(value)
        except ValueError:
            raise UserError(f"{where}: {key}: expected a number, got {value.strip()!r}") from None
        if not np.isfinite(number):
            raise UserError(f"{where}: {key}: expected a finite number, got {value.strip()!r}")
        if key in GRADES:
            if number < 0:
                raise UserError(f"{where}: {key}: a weight cannot be negative, got {number:g}")
            grades[key] = number
        else:
            low, high = _CONDITIONS[key]
            if not low <= number <= high:
                raise UserError(f"{where}: {key}: expected {low:g} to {high:g}, got {number:g}")
            conditions[key] = number
    weights = base.weights
    if grades:
        total = sum(grades.values())
        if total <= 0:
            raise UserError(f"{where}: the grade weights sum to 0 (give at least one of {', '.join(GRADES)} a weight)")
        weights = tuple(grades.get(g, 0.0) / total for g in GRADES)
    return Mix(weights, **{**{k: getattr(base, k) for k in _CONDITIONS}, **conditions})


def draw_grade(u: float, mix: Mix) -> str:
    """The grade a uniform draw ``u`` falls on (the same draw moves little as the weights change)."""
    edges = np.cumsum(mix.weights)
    edges = edges / edges[-1]  # exactly 1 at the end: a grade of weight 0 is never drawn, even after rounding
    return GRADES[int(np.searchsorted(edges, u, side="right"))]


# --------------------------------------------------------------------------- wrist


def _fracture_line(
    rng: np.random.Generator, bone: _Bone, u: np.ndarray, v: np.ndarray, thickness: float, size: int,
    extent: tuple[float, float] = (-1.1, 1.1),
) -> tuple[np.ndarray, float]:
    """An irregular line across the bone: a smooth random wiggle plus jagged steps, inside the field.

    ``extent``: the part of the width it crosses, in half-widths (an incomplete line stops inside the bone).
    """
    position = rng.uniform(-1, 1) * min(0.55 * bone.half_length, 0.3 * size)
    tilt = np.tan(np.deg2rad(rng.uniform(-35, 35)))
    freqs = rng.uniform(1.5, 4.0, size=3) / bone.half_width
    phases = rng.uniform(0, 2 * np.pi, size=3)
    amps = rng.uniform(0.3, 1.2, size=3) * thickness
    wiggle = sum(a * np.sin(f * v + p) for a, f, p in zip(amps, freqs, phases))
    centre = position + tilt * v + wiggle
    distance = np.abs(u - centre)
    line = np.clip(1 - distance / (thickness / 2 + 0.5), 0, 1)
    across = v / bone.half_width
    line *= np.clip(np.minimum(across - extent[0], extent[1] - across) * bone.half_width / 1.5 + 0.5, 0, 1)
    line *= np.abs(v) < bone.half_width * 1.02
    line *= np.abs(u) < bone.half_length
    return line, position


def _draw_wrist_fracture(rng: np.random.Generator, grade: str, scale: float) -> dict:
    """One grade's fracture parameters; the same draws whatever the grade (forcing a grade changes only the fracture).

    thickness: px; depth: share of the bone signal lost in the line; shift: the distal fragment's step across
    the axis, in half-widths; angle: its angulation, radians; extent: the part of the width the line crosses, in
    half-widths.
    """
    f = rng.random(6)
    sign = 1.0 if f[4] < 0.5 else -1.0
    if grade == "displaced":  # a wide gap, the distal fragment shifted across the axis and angulated
        return {"thickness": (8.0 + 6.0 * f[0]) * scale, "depth": 0.9 + 0.1 * f[1],
                "shift": sign * (0.3 + 0.3 * f[2]), "angle": np.deg2rad(6 + 10 * f[5]) * sign, "extent": (-1.1, 1.1)}
    if grade == "undisplaced":
        return {"thickness": (6.0 + 4.0 * f[0]) * scale, "depth": 0.75 + 0.25 * f[1], "shift": 0.0, "angle": 0.0,
                "extent": (-1.1, 1.1)}
    # subtle: a hairline, faint; half of them incomplete, from one cortex over 45-85% of the width
    extent = (-1.1, 1.1)
    if f[2] < 0.5:
        covered = 2 * (0.45 + 0.4 * f[3])
        extent = (-1.1, -1.0 + covered) if sign > 0 else (1.0 - covered, 1.1)
    return {"thickness": (2.0 + 1.5 * f[0]) * scale, "depth": 0.25 + 0.2 * f[1], "shift": 0.0, "angle": 0.0,
            "extent": extent}


MIMICS = ("superimposed", "skin_fold", "nutrient_canal")  # overlapping structures and fracture mimics


def _skin_fold(rng: np.random.Generator, size: int, yy: np.ndarray, xx: np.ndarray, scale: float) -> np.ndarray:
    """A skin fold: a long, gently curved edge of extra soft tissue with a thin lucent crease, across the field."""
    px, py = size * rng.uniform(0.3, 0.7, size=2)
    angle = rng.uniform(0, np.pi)
    bend = rng.uniform(-1.5, 1.5) / size
    along = (xx - px) * np.cos(angle) + (yy - py) * np.sin(angle)
    d = (xx - px) * np.sin(angle) - (yy - py) * np.cos(angle) + bend * along**2
    width, tissue, crease = rng.uniform(6, 16) * scale, rng.uniform(0.02, 0.05), rng.uniform(0.015, 0.04)
    band = tissue * np.exp(-np.maximum(d, 0) / width) * (d > 0)
    return band - crease * np.exp(-((d / (1.2 * scale)) ** 2))


def _nutrient_canal(rng: np.random.Generator, bone: _Bone, u: np.ndarray, v: np.ndarray, rim: float,
                    scale: float) -> np.ndarray:
    """A nutrient canal: a short, thin lucent channel running obliquely in from one cortex (a fracture mimic)."""
    side = 1.0 if rng.random() < 0.5 else -1.0
    u0 = rng.uniform(-0.5, 0.5) * bone.half_length * 0.6
    angle = np.deg2rad(rng.uniform(15, 40))
    length = rng.uniform(0.7, 1.4) * bone.half_width
    thickness, depth = rng.uniform(1.2, 2.4) * scale, rng.uniform(0.25, 0.5)
    v0 = side * bone.half_width * (1 - rim / 2)
    du, dv = np.cos(angle) * rng.choice([-1.0, 1.0]), -side * np.sin(angle)  # inwards from the cortex
    along = (u - u0) * du + (v - v0) * dv
    across = np.abs(-(u - u0) * dv + (v - v0) * du)
    ends = np.clip(np.minimum(along, length - along) / 2 + 0.5, 0, 1)
    profile = np.clip(1 - across / (thickness / 2 + 0.5), 0, 1) * ends
    return depth * profile


def render_wrist(rng: np.random.Generator, size: int, fracture: bool, subject: dict) -> Phantom:
    """A lateral-wrist-like phantom: radius and (often) ulna crossing the field.

    ``subject`` may carry ``mix`` (a ``Mix``; ``default`` if absent) and, for a fracture, its
    ``difficulty`` (a grade; drawn from the mix if absent). An image makes the same draws whatever
    its grade and whether it shows a mimic, so forcing either changes only that.
    """
    mix = subject.get("mix") or MIXES["default"]
    scale = size / 256
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    image = _soft_tissue(rng, size, yy, xx)

    # Overlapping structures and mimics: drawn for every image, shown in a share ``mix.overlap`` of them
    shown = rng.random() < mix.overlap
    mimic = MIMICS[int(rng.integers(len(MIMICS)))] if shown else None
    n_bones = 2 if rng.random() < subject["two_bones"] or mimic == "superimposed" else 1
    base_angle = np.deg2rad(rng.uniform(-18, 18))
    width = size * subject["bone_width"] * rng.uniform(0.92, 1.08)
    centre_x = size * rng.uniform(0.42, 0.58)
    spacing = width * (rng.uniform(0.5, 1.1) if mimic == "superimposed" else rng.uniform(2.3, 2.8))
    crossing = np.deg2rad(rng.uniform(4, 10) * rng.choice([-1, 1]))  # superimposed bones cross at a small angle
    bones = []
    for k in range(2):
        bones.append(
            _Bone(
                cx=centre_x + (k - (n_bones - 1) / 2) * spacing,
                cy=size * rng.uniform(0.45, 0.55),
                angle=base_angle + np.deg2rad(rng.uniform(-4, 4)) + (crossing * k if mimic == "superimposed" else 0),
                half_width=width / 2 * (1.0 if k == 0 else rng.uniform(0.7, 0.9)),
                half_length=size * rng.uniform(0.75, 0.95),  # shafts cross the field: no bone end mimics a gap
            )
        )
    bones = bones[:n_bones]

    texture = _smooth_noise(rng, (size, size), 1.2)
    drawn = draw_grade(rng.random(), mix)
    grade = subject.get("difficulty") or drawn
    params = _draw_wrist_fracture(rng, grade, scale)
    fractured = int(rng.integers(n_bones))
    canal_bone = int(rng.integers(n_bones))
    mimic_rng = np.random.default_rng(int(rng.integers(2**62)))  # the mimic's own draws: the rest stays as drawn
    density_scales = subject["density"] * rng.uniform(0.9, 1.1, size=2)
    box = None
    for k, bone in enumerate(bones):
        u, v = _bone_coordinates(bone, yy, xx)
        density_scale = density_scales[k]
        if fracture and k == fractured:
            line, position = _fracture_line(rng, bone, u, v, params["thickness"], size, params["extent"])
            if params["shift"] or params["angle"]:  # the distal fragment turns about the break and slides across
                du, c, s = u - position, np.cos(params["angle"]), np.sin(params["angle"])
                distal = u > position
                u, v = (np.where(distal, position + du * c - v * s, u),
                        np.where(distal, du * s + v * c - params["shift"] * bone.half_width, v))
            density = _bone_density(bone, u, v, texture, rim=subject["rim"])
            density = density * (1 - params["depth"] * line)
            ys, xs = np.nonzero(line > 0.2)
            if len(xs):
                margin = 3 * scale
                box = (
                    float(max(xs.min() - margin, 0)),
                    float(max(ys.min() - margin, 0)),
                    float(min(xs.max() + margin, size - 1)),
                    float(min(ys.max() + margin, size - 1)),
                )
        else:
            density = _bone_density(bone, u, v, texture, rim=subject["rim"])
        if mimic == "nutrient_canal" and k == canal_bone:
            density = density * (1 - _nutrient_canal(mimic_rng, bone, u, v, subject["rim"], scale))
        image = image + 0.55 * density_scale * density
    if mimic == "skin_fold":
        image = image + _skin_fold(mimic_rng, size, yy, xx, scale)

    # Image quality: sharpness and noise vary by image, up to ``mix.noise`` times the cleanest's noise.
    quality = rng.uniform(1.0, mix.noise)
    image = ndimage.gaussian_filter(image, 0.7 * scale * (1 + 0.4 * (quality - 1)))
    # Exposure: gain, contrast and offset vary by image, with a smooth heel-effect ramp.
    gain = 1 + mix.exposure * rng.uniform(-1, 1)
    gamma = np.exp(mix.exposure * rng.uniform(-1, 1))
    ramp = 1 + rng.uniform(-0.12, 0.12) * (yy / size - 0.5)
    image = subject["exposure"] * gain * np.clip(image, 0, None) ** gamma * ramp + rng.uniform(0.05, 0.15)
    image = image + rng.normal(0, rng.uniform(0.008, 0.018) * quality, image.shape)
    tags = {"difficulty": grade} if fracture else {}
    return Phantom(np.clip(image, 0, 1).astype(np.float32), box if fracture else None, tags=tags)


def _subject(rng: np.random.Generator) -> dict:
    """Traits shared by all images of one patient (anatomy, typical exposure)."""
    return {
        "bone_width": rng.uniform(0.09, 0.14),
        "density": rng.uniform(0.8, 1.15),
        "rim": rng.uniform(0.18, 0.3),
        "exposure": rng.uniform(0.75, 1.05),
        "two_bones": rng.uniform(0.4, 0.9),
    }


def _rounded_box(yy, xx, cx, cy, half_w, half_h, corner):
    """Signed-distance-like profile of a rounded rectangle: >0 inside, 1 at the centre."""
    dx = np.maximum(np.abs(xx - cx) - (half_w - corner), 0)
    dy = np.maximum(np.abs(yy - cy) - (half_h - corner), 0)
    return 1 - np.sqrt(dx**2 + dy**2) / corner


def render_spine(rng: np.random.Generator, size: int, fracture: bool, subject: dict) -> Phantom:
    """A frontal lumbar-spine-like phantom: five vertebral bodies with pedicles and discs.

    The fracture class has one body compressed (height loss of 25-45%, a dense endplate band).
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    image = 0.22 * (1 + 0.15 * _smooth_noise(rng, (size, size), size / 6))  # abdomen soft tissue and gas
    cx = size * rng.uniform(0.42, 0.58)
    tilt = rng.uniform(-0.12, 0.12)  # scoliotic lean
    height = size * subject["bone_width"] * rng.uniform(1.05, 1.25)
    width = height * rng.uniform(1.9, 2.3)
    gap = height * rng.uniform(0.22, 0.32)
    top = size / 2 - 2.5 * (height + gap) + rng.uniform(-0.05, 0.05) * size
    broken = int(rng.integers(1, 4)) if fracture else -1
    texture = _smooth_noise(rng, (size, size), 1.5)
    box = None
    y = top
    for k in range(5):
        h = height * (rng.uniform(0.55, 0.75) if k == broken else rng.uniform(0.95, 1.05))
        cy = y + h / 2
        centre_x = cx + tilt * (cy - size / 2)
        inside = np.clip(_rounded_box(yy, xx, centre_x, cy, width / 2, h / 2, min(h, width) * 0.2), 0, 1)
        rim = np.exp(-((inside - 0.08) / 0.06) ** 2) * (inside > 0)
        body = (inside > 0) * (0.45 + 0.05 * texture) + 0.5 * rim
        if k == broken:  # compressed trabeculae: a dense band near the collapsed endplate
            band = np.exp(-(((yy - (y + h * 0.2)) / (h * 0.12)) ** 2)) * (inside > 0)
            body = body + 0.35 * band
            box = (float(centre_x - width / 2 - 2), float(y - 2), float(centre_x + width / 2 + 2), float(y + h + 2))
        for side in (-1, 1):  # pedicles: small bright rings seen end on
            px = centre_x + side * width * 0.3
            ring = np.exp(-((np.hypot(xx - px, yy - cy) - width * 0.08) / (width * 0.025)) ** 2)
            body = body + 0.35 * ring
        image = image + 0.5 * subject["density"] * body
        y += h + gap
    image = ndimage.gaussian_filter(image, 0.7 * size / 256)
    image = subject["exposure"] * rng.uniform(0.92, 1.08) * image + rng.uniform(0.04, 0.12)
    image = image + rng.normal(0, rng.uniform(0.008, 0.018), image.shape)
    box = tuple(float(np.clip(v, 0, size - 1)) for v in box) if box else None
    return Phantom(np.clip(image, 0, 1).astype(np.float32), box)


def render_ct_slice(rng: np.random.Generator, size: int, malignant: bool, subject: dict) -> Phantom:
    """An axial CT-like slice of a vertebra with a lesion: lytic and destructive (malignant) or a
    sclerotic fracture line (benign). ``subject`` carries the series' geometry and the slice offset."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    series = subject["series"]
    offset = subject["offset"]  # slices from the lesion's centre
    cx, cy = series["cx"] * size, series["cy"] * size
    radius = series["radius"] * size * (1 - 0.04 * abs(offset))
    image = 0.18 + 0.06 * np.exp(-((np.hypot(xx - size / 2, yy - size / 2) / (0.45 * size)) ** 2))  # soft tissue
    distance = np.hypot((xx - cx) / 1.15, yy - cy)
    body = distance < radius
    cortex = np.exp(-((distance - radius) / (0.06 * radius)) ** 2)
    image = image + body * (0.35 + 0.05 * _smooth_noise(rng, (size, size), 1.5)) + 0.45 * cortex
    # posterior arch: a ring behind the body
    arch = np.exp(-((np.hypot(xx - cx, (yy - cy - 1.6 * radius) * 1.4) - 0.55 * radius) / (0.08 * radius)) ** 2)
    image = image + 0.4 * arch * (yy > cy + radius * 0.9)
    strength = max(0.0, 1 - abs(offset) / (series["extent"] + 0.5))
    if strength > 0:
        lx, ly = cx + series["lesion_dx"] * radius, cy + series["lesion_dy"] * radius
        if malignant:  # lytic lesion with an irregular, permeative margin breaching the cortex
            wobble = 1 + 0.25 * _smooth_noise(rng, (size, size), size / 24)
            lesion = np.hypot(xx - lx, yy - ly) < series["lesion_r"] * radius * strength * wobble
            image = np.where(lesion, image * (1 - 0.75 * strength), image)
        else:  # benign: a sclerotic (dense) fracture line across the body
            angle = series["line_angle"]
            d = np.abs((xx - lx) * np.sin(angle) - (yy - ly) * np.cos(angle))
            image = image + 0.3 * strength * np.exp(-((d / (0.05 * radius)) ** 2)) * body
    image = ndimage.gaussian_filter(image, 0.6 * size / 128)
    image = image + rng.normal(0, 0.012, image.shape)
    margin = 0.15 * radius
    box = (float(cx - 1.15 * radius - margin), float(cy - radius - margin),
           float(cx + 1.15 * radius + margin), float(cy + radius + margin))
    box = tuple(float(np.clip(v, 0, size - 1)) for v in box)
    return Phantom(np.clip(image, 0, 1).astype(np.float32), box)


def _render_pelvis(*args) -> Phantom:
    from .synth_detection import render_pelvis  # imported on use: synth_detection builds on this module

    return render_pelvis(*args)


def _render_skeleton(*args) -> Phantom:
    from .synth_detection import render_skeleton

    return render_skeleton(*args)


def _pelvis_traits(rng: np.random.Generator, kind: str) -> dict:
    from .synth_detection import pelvis_study, pelvis_subject

    return (pelvis_subject if kind == "subject" else pelvis_study)(rng)


def _skeleton_traits(rng: np.random.Generator, kind: str) -> dict:
    from .synth_detection import skeleton_study, skeleton_subject

    return (skeleton_subject if kind == "subject" else skeleton_study)(rng)


@dataclass(frozen=True)
class Task:
    render: Callable[..., Phantom]
    classes: tuple[str, str]  # negative, positive
    slices: bool = False  # a series of adjacent slices per study (CT)
    box_every_image: bool = False  # a region-of-interest box on every image, not only positives
    body_part: str = "WRIST"  # DICOM BodyPartExamined
    views: tuple[int, int] = (1, 4)  # views per study, drawn from [low, high)
    # traits(rng, "subject" | "study") -> dict, for tasks with their own patient traits and a
    # finding shared by a study's views (``subject["study"]``); None: ``_subject``
    traits: Callable[[np.random.Generator, str], dict] | None = None
    image_columns: tuple[str, ...] = ()  # extra per-image manifest columns (Phantom.tags)
    mixed: bool = False  # takes a difficulty mix (``--difficulty``), passed to ``render`` as ``subject["mix"]``
    box_columns: tuple[str, ...] = ()  # extra per-box manifest columns (Finding.tags)


TASKS: dict[str, Task] = {
    "wrist": Task(render_wrist, ("normal", "fracture"), image_columns=("difficulty",), mixed=True),
    "spine": Task(render_spine, ("normal", "fracture"), body_part="LSPINE"),
    "ct": Task(render_ct_slice, ("benign", "malignant"), slices=True, box_every_image=True, body_part="SPINE"),
    "pelvis": Task(_render_pelvis, ("normal", "fracture"), body_part="PELVIS", views=(1, 2), traits=_pelvis_traits,
                   box_columns=("side", "difficulty")),
    "skeleton": Task(_render_skeleton, ("normal", "fracture"), body_part="EXTREMITY", traits=_skeleton_traits,
                     image_columns=("site",), box_columns=("difficulty",)),
}
if TASKS.keys() != SYNTH_TASKS.keys():  # the CLI lists SYNTH_TASKS: keep the two in step
    raise ImportError(f"synth tasks {sorted(TASKS)} differ from tfxray.data.SYNTH_TASKS {sorted(SYNTH_TASKS)}")


# --------------------------------------------------------------------------- data set


def _rng(seed: int, *keys) -> np.random.Generator:
    digest = hashlib.sha256(repr((seed, *keys)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def plan_dataset(n: int, seed: int, task: str = "wrist") -> pd.DataFrame:
    """Patients, studies and labels, the label fixed per study.

    Radiographs: 1-3 views per study, 1-2 studies per patient. CT: one series of 5-9
    adjacent slices per patient (``slice_index``), the lesion centred in the series.
    """
    spec = TASKS[task]
    rng = _rng(seed, task, "plan")
    rows = []
    patient = 0
    while len(rows) < n:
        patient += 1
        n_studies = 1 if (spec.slices or rng.random() < 0.75) else 2
        for study in range(1, n_studies + 1):
            label = spec.classes[int(rng.random() < 0.5)]
            count = int(rng.integers(5, 10)) if spec.slices else int(rng.integers(*spec.views))
            for view in range(count):
                rows.append(
                    {
                        "patient_id": f"P{patient:04d}",
                        "study_id": f"P{patient:04d}-S{study}",
                        "label": label,
                        "view": view,
                        "offset": view - (count - 1) / 2 if spec.slices else 0.0,
                    }
                )
    return pd.DataFrame(rows[:n])


def _series_traits(rng: np.random.Generator) -> dict:
    return {
        "cx": rng.uniform(0.42, 0.58), "cy": rng.uniform(0.4, 0.5), "radius": rng.uniform(0.2, 0.27),
        "extent": rng.uniform(1.5, 3.0), "lesion_dx": rng.uniform(-0.35, 0.35), "lesion_dy": rng.uniform(-0.35, 0.35),
        "lesion_r": rng.uniform(0.35, 0.6), "line_angle": rng.uniform(0, np.pi),
    }


def synthesize(
    out_dir: str | Path,
    *,
    task: str = "wrist",
    n: int = 400,
    seed: int = 0,
    fmt: str = "png",
    size: int = 256,
    difficulty: str | Mix | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Write ``n`` phantoms and ``manifest.csv`` into ``out_dir``; return the manifest.

    The manifest has one row per box (an image without a box keeps one row), plus the task's
    extra columns: ``difficulty`` per image (wrist: the fracture's grade, empty for normals),
    ``site`` per image, ``side`` and ``difficulty`` per box (detection tasks).

    ``difficulty``: the wrist phantoms' mix (see ``parse_mix``; None: ``default``). Each fracture
    study draws its grade from the mix, shared by its views.
    """
    if task not in TASKS:
        raise UserError(f"--task: unknown task {task!r} (valid: {', '.join(TASKS)})")
    if fmt not in ("png", "dicom"):
        raise UserError(f"--format: expected png or dicom, got {fmt!r}")
    if n < 1:
        raise UserError(f"--n: must be at least 1, got {n}")
    if size < 32:
        raise UserError(f"--size: must be at least 32, got {size}")
    spec = TASKS[task]
    if difficulty is not None and not spec.mixed:
        raise UserError(f"--difficulty: only the {', '.join(k for k, t in TASKS.items() if t.mixed)} task takes a "
                        f"mix, not {task}")
    mix = difficulty if isinstance(difficulty, Mix) else parse_mix(difficulty)
    out_dir = Path(out_dir)
    plan = plan_dataset(n, seed, task)
    if spec.traits is None:
        subjects = {pid: _subject(_rng(seed, task, "subject", pid)) for pid in plan.patient_id.unique()}
    else:
        subjects = {pid: spec.traits(_rng(seed, task, "subject", pid), "subject") for pid in plan.patient_id.unique()}
        studies = {sid: spec.traits(_rng(seed, task, "study", sid), "study") for sid in plan.study_id.unique()}
    series = {sid: _series_traits(_rng(seed, task, "series", sid)) for sid in plan.study_id.unique()}
    if spec.mixed:  # a study's grade, shared by its views (normal studies draw one too, unused)
        grades = {sid: draw_grade(_rng(seed, task, "difficulty", sid).random(), mix) for sid in plan.study_id.unique()}
    rows = []
    from ..progress import progress as progress_bar

    for index, item in progress_bar(plan.iterrows(), total=len(plan), desc="synth", unit="img", disable=not progress):
        rng = _rng(seed, task, index)
        subject = subjects[item.patient_id]
        if spec.slices:
            subject = {**subject, "series": series[item.study_id], "offset": item.offset}
        if spec.traits is not None:
            subject = {**subject, "study": studies[item.study_id]}
        if spec.mixed:
            subject = {**subject, "mix": mix, "difficulty": grades[item.study_id]}
        phantom = spec.render(rng, size, item.label == spec.classes[1], subject)
        rel = Path("images") / item.patient_id / f"{item.study_id}_{item.view}.{'dcm' if fmt == 'dicom' else 'png'}"
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "png":
            write_png16(path, phantom.pixels)
        else:
            write_dicom(path, phantom.pixels, rng, seed=seed, index=index, item=item, task=task)
        image_row = {
            "path": rel.as_posix(),
            "label": item.label,
            "patient_id": item.patient_id,
            "study_id": item.study_id,
            **({"series_id": item.study_id, "slice_index": int(item.view)} if spec.slices else {}),
            **{c: phantom.tags.get(c) for c in spec.image_columns},
        }
        if phantom.findings is not None:  # one row per box; an image without one keeps one row
            findings = phantom.findings
        else:
            findings = [Finding(phantom.box)] if phantom.box else []
        for finding in findings or [None]:
            x1, y1, x2, y2 = finding.box if finding else (np.nan,) * 4
            box_tags = {c: (finding.tags.get(c) if finding else None) for c in spec.box_columns}
            rows.append({**image_row, "x1": x1, "y1": y1, "x2": x2, "y2": y2, **box_tags})
    manifest = pd.DataFrame(rows)
    atomic_write_text(out_dir / "manifest.csv", manifest.to_csv(index=False, float_format="%.1f"))
    return manifest


def write_png16(path: Path, pixels: np.ndarray) -> None:
    from PIL import Image

    values = np.round(np.clip(pixels, 0, 1) * 65535).astype(np.uint16)
    with atomic_path(path) as tmp:
        Image.fromarray(values).save(tmp, format="PNG")  # 16-bit grayscale (mode I;16)


def write_dicom(
    path: Path, pixels: np.ndarray, rng: np.random.Generator, *, seed: int, index: int, item, task: str = "wrist"
) -> None:
    """A valid DX (or CT) object: 12-bit stored values, rescale slope/intercept, a window, some MONOCHROME1."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    stored = np.round(np.clip(pixels, 0, 1) * 4095).astype(np.uint16)
    slope = float(rng.choice([1.0, 0.5, 2.0]))
    intercept = float(rng.choice([0.0, -1024.0, 100.0]))
    ct = TASKS[task].slices
    monochrome1 = (not ct) and rng.random() < 0.25  # CT is always MONOCHROME2
    if monochrome1:  # MONOCHROME1: low values are bright, so store the inverse
        stored = (4095 - stored).astype(np.uint16)
    value_min, value_max = intercept, 4095 * slope + intercept
    centre, width = (value_min + value_max) / 2, (value_max - value_min) * rng.uniform(0.95, 1.05)

    def uid(*keys) -> str:
        return generate_uid(entropy_srcs=[str(seed), *map(str, keys)])

    meta = FileMetaDataset()
    # CT Image Storage, or Digital X-Ray Image Storage for presentation
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2" if ct else "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = uid("sop", index)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = f"Phantom^{item.patient_id}"  # synthetic; lets tests check names never leak
    ds.PatientID = item.patient_id
    ds.PatientBirthDate = "19700101"
    ds.StudyInstanceUID = uid("study", item.study_id)
    ds.SeriesInstanceUID = uid("series", item.study_id) if ct else uid("series", item.study_id, item.view)
    ds.StudyID = item.study_id
    ds.InstanceNumber = int(item.view) + 1
    ds.Modality = "CT" if ct else "DX"
    ds.BodyPartExamined = TASKS[task].body_part
    if ct:  # axial slices 3 mm apart, positions along the patient's z axis
        ds.ImagePositionPatient = [0.0, 0.0, 3.0 * int(item.view)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.SliceThickness = 3.0
    else:
        ds.ViewPosition = "LL" if task == "wrist" else "AP"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept, "US"
    ds.WindowCenter, ds.WindowWidth = round(centre, 1), round(width, 1)
    ds.PixelData = stored.tobytes()
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
