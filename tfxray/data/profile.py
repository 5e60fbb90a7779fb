"""What a model was trained on, read from the training images' headers, and the check of an input against it.

``training_profile`` reads the header of every training image (pydicom with
``stop_before_pixels`` for DICOM, Pillow or tifffile for rasters: no pixels are decoded) and
keeps what the saved model should be shown again: DICOM modalities, photometric
interpretations, view positions, file kinds and the range of rows and columns. The trainer
saves it in ``tfxray.json`` (``BundleMeta.trained_on``).

``ProfileCheck`` tells, from an input's safe metadata (``read_image``'s), why an image lies
outside that profile, in one line that names the element and its value, never free text:

- modality: a DICOM Modality the training images did not have ("modality CT, model trained on
  DX/CR"). A model trained on rasters (PNG, JPEG, TIFF: no modality) accepts the projection
  radiography modalities (``RADIOGRAPH_MODALITIES``). An image without a Modality passes.
- photometric: a colour image (RGB, YBR_*, PALETTE COLOR...) for a model that saw only
  monochrome ones. MONOCHROME1 and MONOCHROME2 are one family (the reader inverts MONOCHROME1).
- size: a shorter side below ``min_side``: half the smallest side seen in training, or half
  the model's input size when that is smaller, and never below ``SIZE_FLOOR`` px. A thumbnail
  of a radiograph holds too little of it; exports at a lower resolution than the training
  images still pass.

File kinds and view positions are recorded, not checked: a model trained on PNG exports is
meant to score the DICOM files they came from, and a view missing from training is a question
for the user, not a reason to refuse an image.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Iterable

RADIOGRAPH_MODALITIES = ("CR", "DX", "IO", "MG", "PX", "RF", "RG", "XA")
MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
SIZE_FLOOR = 16  # px: below this no image is a radiograph
PROFILE_KEYS = ("images", "unreadable", "modalities", "photometric", "view_positions", "kinds", "rows", "cols")


def header_meta(path) -> dict:
    """kind, modality, photometric, view_position, rows and cols of one image file, from its header only.

    Raises ``OSError`` or ``ValueError`` when the header cannot be read.
    """
    from ..images.sniff import BARE_DICOM, open_regular, signature

    kind = signature(path)
    if kind in ("dicom", BARE_DICOM):
        import pydicom

        from ..images.dicom import dicom_meta

        # open_regular: never a pipe or device, and no read larger than the file (a bit-flipped length)
        with warnings.catch_warnings(), open_regular(path) as handle:
            warnings.simplefilter("ignore")  # pydicom warns about every odd header
            meta = dicom_meta(pydicom.dcmread(handle, force=True, stop_before_pixels=True))
        return {key: meta.get(key) for key in ("kind", "modality", "photometric", "view_position", "rows", "cols")}
    if kind == "tiff":
        try:
            return _tiff_header(path)
        except Exception:  # noqa: BLE001  a layout tifffile refuses: Pillow's header below
            pass
    if kind in ("png", "jpeg", "tiff"):
        from PIL import Image

        from ..images.raster import _PILLOW_PHOTOMETRIC

        with open_regular(path) as handle, Image.open(handle) as image:  # lazy: the header, no pixels
            width, height = image.size
            photometric = _PILLOW_PHOTOMETRIC.get(image.mode, image.mode)
        return {"kind": kind, "modality": None, "photometric": photometric, "view_position": None,
                "rows": int(height), "cols": int(width)}
    raise ValueError("not an image file")


def _tiff_header(path) -> dict:
    import tifffile

    from ..images.raster import _TIFF_PHOTOMETRIC
    from ..images.sniff import open_regular

    with open_regular(path) as handle, tifffile.TiffFile(handle) as tif:
        page = tif.pages[0]
        photometric = _TIFF_PHOTOMETRIC.get(int(page.photometric), str(page.photometric.name))
        return {"kind": "tiff", "modality": None, "photometric": photometric, "view_position": None,
                "rows": int(page.imagelength), "cols": int(page.imagewidth)}


def training_profile(paths: Iterable[str]) -> dict:
    """The profile of a model's training images (see the module docstring), from their headers.

    Files whose header cannot be read are counted in ``unreadable``; sets are sorted lists,
    sizes ``[min, max]``, so the profile is plain JSON.
    """
    seen = {"modalities": set(), "photometric": set(), "view_positions": set(), "kinds": set()}
    rows, cols, images, unreadable = [], [], 0, 0
    for path in dict.fromkeys(map(str, paths)):  # an image with several boxes is one image
        try:
            meta = header_meta(path)
        except Exception:  # noqa: BLE001  training read it; a header this reader refuses is only counted
            unreadable += 1
            continue
        images += 1
        for key, field in (("modalities", "modality"), ("photometric", "photometric"),
                           ("view_positions", "view_position"), ("kinds", "kind")):
            if meta.get(field):
                seen[key].add(str(meta[field]))
        if meta.get("rows") and meta.get("cols"):
            rows.append(int(meta["rows"]))
            cols.append(int(meta["cols"]))
    profile = {"images": images, "unreadable": unreadable, **{k: sorted(v) for k, v in seen.items()}}
    profile["rows"] = [min(rows), max(rows)] if rows else None
    profile["cols"] = [min(cols), max(cols)] if cols else None
    return profile


def _family(photometric: str | None) -> str:
    return "monochrome" if str(photometric).upper() in MONOCHROME else "colour"


@dataclass(frozen=True)
class ProfileCheck:
    """The check of one input against a saved profile; ``reason(meta)`` is '' inside it."""

    profile: dict
    input_size: int

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.profile.get("modalities") or ())

    @property
    def sides(self) -> tuple[int, int] | None:
        """(smallest, largest) side of the training images, None when unknown."""
        rows, cols = self.profile.get("rows"), self.profile.get("cols")
        if not rows or not cols:
            return None
        return min(rows[0], cols[0]), max(rows[1], cols[1])

    @property
    def min_side(self) -> int:
        """The shortest side accepted (module docstring)."""
        sides = self.sides
        half = sides[0] / 2 if sides else math.inf
        return max(SIZE_FLOOR, math.ceil(min(half, self.input_size / 2)))

    def reason(self, meta: dict) -> str:
        modality = meta.get("modality")
        if modality:
            allowed = self.modalities or RADIOGRAPH_MODALITIES
            if str(modality).upper() not in allowed:
                trained = "/".join(self.modalities) if self.modalities else \
                    f"radiographs ({'/'.join(self.profile.get('kinds') or ['raster'])} files)"
                return f"modality {modality}, model trained on {trained}"
        photometric = meta.get("photometric")
        trained_photometric = self.profile.get("photometric") or []
        if (photometric and trained_photometric and _family(photometric) == "colour"
                and all(_family(p) == "monochrome" for p in trained_photometric)):
            return f"photometric {photometric}, model trained on {'/'.join(trained_photometric)}"
        rows, cols = meta.get("rows"), meta.get("cols")
        if rows and cols and min(int(rows), int(cols)) < self.min_side:
            sides = self.sides
            trained = (f"{sides[0]} px" if sides[0] == sides[1] else f"{sides[0]}-{sides[1]} px") if sides else \
                f"{self.input_size} px inputs"
            return f"image {rows}x{cols} px, model trained on {trained} (shorter side under {self.min_side} px)"
        return ""

    def describe(self) -> str:
        """One line: what the check accepts."""
        modalities = "/".join(self.modalities) if self.modalities else "/".join(RADIOGRAPH_MODALITIES)
        photometric = "/".join(self.profile.get("photometric") or []) or "any"
        return f"modality {modalities}, photometric {photometric}, shorter side {self.min_side} px or more"


def profile_check(profile: dict | None, input_size: int) -> ProfileCheck | None:
    """The check for a saved profile; None for a model saved without one (older runs)."""
    return ProfileCheck(dict(profile), int(input_size)) if profile else None
