"""Synthetic radiographs (phantoms) that exercise the real code paths offline.

No real X-ray data can be had offline, so the demo and the tests draw phantoms: soft
tissue, long bones with a bright cortical rim and trabecular texture, exposure and
position variation, noise; the fracture class carries a thin, irregular lucent line
across a bone (sometimes displaced), at varying subtlety, with its bounding box.

The fracture changes only a few hundred pixels, so global image statistics carry almost
no signal (a test checks that a logistic regression on them stays near chance): a model
has to find the line.

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


def _fracture_line(
    rng: np.random.Generator, bone: _Bone, u: np.ndarray, v: np.ndarray, thickness: float, size: int
) -> tuple[np.ndarray, float]:
    """An irregular line across the bone: a smooth random wiggle plus jagged steps, inside the field."""
    position = rng.uniform(-1, 1) * min(0.55 * bone.half_length, 0.3 * size)
    tilt = np.tan(np.deg2rad(rng.uniform(-35, 35)))
    freqs = rng.uniform(1.5, 4.0, size=3) / bone.half_width
    phases = rng.uniform(0, 2 * np.pi, size=3)
    amps = rng.uniform(0.3, 1.2, size=3) * thickness
    wiggle = sum(a * np.sin(f * v + p) for a, f, p in zip(amps, freqs, phases))
    centre = position + tilt * v + wiggle
    distance = np.abs(u - centre)
    line = np.clip(1 - distance / (thickness / 2 + 0.5), 0, 1)
    line *= np.abs(v) < bone.half_width * 1.02
    line *= np.abs(u) < bone.half_length
    return line, position


def render_wrist(rng: np.random.Generator, size: int, fracture: bool, subject: dict) -> Phantom:
    """A lateral-wrist-like phantom: radius and (often) ulna crossing the field."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    image = _soft_tissue(rng, size, yy, xx)

    n_bones = 2 if rng.random() < subject["two_bones"] else 1
    base_angle = np.deg2rad(rng.uniform(-18, 18))
    width = size * subject["bone_width"] * rng.uniform(0.92, 1.08)
    bones = []
    centre_x = size * rng.uniform(0.42, 0.58)
    for k in range(n_bones):
        offset = (k - (n_bones - 1) / 2) * width * rng.uniform(2.3, 2.8)
        bones.append(
            _Bone(
                cx=centre_x + offset,
                cy=size * rng.uniform(0.45, 0.55),
                angle=base_angle + np.deg2rad(rng.uniform(-4, 4)),
                half_width=width / 2 * (1.0 if k == 0 else rng.uniform(0.7, 0.9)),
                half_length=size * rng.uniform(0.75, 0.95),  # shafts cross the field: no bone end mimics a gap
            )
        )

    texture = _smooth_noise(rng, (size, size), 1.2)
    box = None
    fractured = int(rng.integers(n_bones)) if fracture else -1
    for k, bone in enumerate(bones):
        u, v = _bone_coordinates(bone, yy, xx)
        density_scale = subject["density"] * rng.uniform(0.9, 1.1)
        if k == fractured:
            thickness = rng.uniform(6.0, 10.0) * size / 256
            line, position = _fracture_line(rng, bone, u, v, thickness, size)
            displaced = rng.random() < 0.5
            if displaced:  # the distal fragment slides across the axis
                shift = rng.uniform(0.12, 0.35) * bone.half_width * rng.choice([-1, 1])
                v = np.where(u > position + 0.0, v - shift, v)
            density = _bone_density(bone, u, v, texture, rim=subject["rim"])
            depth = rng.uniform(0.8, 1.0)  # subtlety: share of the bone signal lost in the gap
            density = density * (1 - depth * line)
            mask = line > 0.2
            ys, xs = np.nonzero(mask & (density > 0) | mask)
            if len(xs):
                margin = 3 * size / 256
                box = (
                    float(max(xs.min() - margin, 0)),
                    float(max(ys.min() - margin, 0)),
                    float(min(xs.max() + margin, size - 1)),
                    float(min(ys.max() + margin, size - 1)),
                )
        else:
            density = _bone_density(bone, u, v, texture, rim=subject["rim"])
        image = image + 0.55 * density_scale * density

    image = ndimage.gaussian_filter(image, 0.7 * size / 256)
    # Exposure: gain and offset vary by image, with a smooth heel-effect ramp.
    ramp = 1 + rng.uniform(-0.12, 0.12) * (yy / size - 0.5)
    image = subject["exposure"] * rng.uniform(0.92, 1.08) * image * ramp + rng.uniform(0.05, 0.15)
    image = image + rng.normal(0, rng.uniform(0.008, 0.018), image.shape)
    return Phantom(np.clip(image, 0, 1).astype(np.float32), box if fracture else None)


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
    box_columns: tuple[str, ...] = ()  # extra per-box manifest columns (Finding.tags)


TASKS: dict[str, Task] = {
    "wrist": Task(render_wrist, ("normal", "fracture")),
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
    progress: bool = True,
) -> pd.DataFrame:
    """Write ``n`` phantoms and ``manifest.csv`` into ``out_dir``; return the manifest.

    The manifest has one row per box (an image without a box keeps one row), plus the task's
    extra columns: ``site`` per image, ``side`` and ``difficulty`` per box (detection tasks).
    """
    if task not in TASKS:
        raise UserError(f"--task: unknown task {task!r} (valid: {', '.join(TASKS)})")
    if fmt not in ("png", "dicom"):
        raise UserError(f"--format: expected png or dicom, got {fmt!r}")
    if n < 1:
        raise UserError(f"--n: must be at least 1, got {n}")
    if size < 32:
        raise UserError(f"--size: must be at least 32, got {size}")
    out_dir = Path(out_dir)
    plan = plan_dataset(n, seed, task)
    spec = TASKS[task]
    if spec.traits is None:
        subjects = {pid: _subject(_rng(seed, task, "subject", pid)) for pid in plan.patient_id.unique()}
    else:
        subjects = {pid: spec.traits(_rng(seed, task, "subject", pid), "subject") for pid in plan.patient_id.unique()}
        studies = {sid: spec.traits(_rng(seed, task, "study", sid), "study") for sid in plan.study_id.unique()}
    series = {sid: _series_traits(_rng(seed, task, "series", sid)) for sid in plan.study_id.unique()}
    rows = []
    from ..progress import progress as progress_bar

    for index, item in progress_bar(plan.iterrows(), total=len(plan), desc="synth", unit="img", disable=not progress):
        rng = _rng(seed, task, index)
        subject = subjects[item.patient_id]
        if spec.slices:
            subject = {**subject, "series": series[item.study_id], "offset": item.offset}
        if spec.traits is not None:
            subject = {**subject, "study": studies[item.study_id]}
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
