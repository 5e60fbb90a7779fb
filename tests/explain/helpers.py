"""Reading a Grad-CAM panel PNG back: where its radiograph and its overlay are."""

from __future__ import annotations

import numpy as np


def panel_parts(path) -> tuple[np.ndarray, tuple[int, int, int, int], np.ndarray]:
    """(the radiograph's pixels as gray in [0, 1], its (top, bottom, left, right) in the PNG, mask of coloured pixels).

    The radiograph is the one large block of gray (R = G = B), not white pixels: text is gray
    too but covers few pixels of a row, and the colour bar's frame is a thin line; the heatmap
    overlay and the colour bar are coloured.
    """
    from PIL import Image

    rgb = np.asarray(Image.open(path).convert("RGB")).astype(np.int16)
    gray = (np.abs(rgb[..., 0] - rgb[..., 1]) <= 1) & (np.abs(rgb[..., 1] - rgb[..., 2]) <= 1)
    coloured = ~gray
    ink = gray & (rgb.min(-1) < 255)
    top, bottom = _longest_run(ink.sum(1) >= 0.6 * ink.sum(1).max())
    left, right = _longest_run(ink[top:bottom].sum(0) >= 0.6 * (bottom - top))
    return rgb[top:bottom, left:right, 1] / 255.0, (top, bottom, left, right), coloured


def _longest_run(flags: np.ndarray) -> tuple[int, int]:
    """(start, end) of the longest run of True in ``flags``."""
    best, start = (0, 0), None
    for i, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            best = max(best, (start, i), key=lambda run: run[1] - run[0])
            start = None
    return best


def shrunk(image: np.ndarray, size: int = 24) -> np.ndarray:
    """``image`` (H, W) in [0, 1] averaged down to ``size`` x ``size`` pixels.

    Panels and references are compared at a size below the model input's (48 px here), where
    the ways each was resized (matplotlib's, Pillow's) no longer matter.
    """
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(image, dtype=np.float32)).resize((size, size), Image.BOX))


def capture_captions(monkeypatch) -> dict:
    """Record each panel's caption (the figure's suptitle) by file name, as it is saved."""
    import tfxray.explain.gradcam as gradcam

    captions = {}
    original = gradcam.atomic_save_figure

    def keep(fig, path, *args, **kwargs):
        captions[path.name] = fig.get_suptitle()
        return original(fig, path, *args, **kwargs)

    monkeypatch.setattr(gradcam, "atomic_save_figure", keep)
    return captions
