"""Box overlays: boxes drawn where they belong (read back from the PNG), their labels, the panel picks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import tfxray.explain.overlays as overlays
from tfxray.explain.overlays import draw_box_overlay, write_overlay_panels

WIDTH, HEIGHT = 200, 120
GRAY = 128


def gray_png(path, width=WIDTH, height=HEIGHT):
    Image.fromarray(np.full((height, width), GRAY, np.uint8)).save(path)
    return path


def image_extent(rgb: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the radiograph: the block of its uniform gray."""
    gray = (np.abs(rgb - GRAY) <= 3).all(axis=-1)
    rows = np.flatnonzero(gray.sum(1) >= 0.5 * gray.sum(1).max())
    cols = np.flatnonzero(gray[rows[0]:rows[-1] + 1].sum(0) >= 0.5 * len(rows))
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


def drawn_box(path, colour: str, box) -> tuple[float, float, float, float]:
    """The drawn box of ``colour`` around ``box``, read back in the image's pixel coordinates.

    Its left and right edges are read on a band of rows across its middle, its top and bottom on a
    band of columns at 80% of its width (away from the label on the top-left corner, and the dashes'
    gaps averaged out by the band).
    """
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    top, bottom, left, right = image_extent(rgb)
    sx, sy = (right - left) / WIDTH, (bottom - top) / HEIGHT
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mask = (r > 190) & (g < 90) & (b < 90) if colour == "red" else (b > 200) & (r < 90) & (g > 90) & (g < 170)
    x1, y1, x2, y2 = box
    middle = int(top + sy * (y1 + y2) / 2)
    band = mask[middle - 12:middle + 12]
    columns = np.flatnonzero(band.any(axis=0))
    at = int(left + sx * (x1 + 0.8 * (x2 - x1)))
    rows = np.flatnonzero(mask[:, at - 12:at + 12].any(axis=1))
    return ((columns.min() - left) / sx, (rows.min() - top) / sy, (columns.max() + 1 - left) / sx,
            (rows.max() + 1 - top) / sy)


@pytest.fixture()
def captured(monkeypatch):
    """Each saved figure's title and texts, by file name."""
    seen = {}
    original = overlays.atomic_save_figure

    def keep(fig, path, *args, **kwargs):
        ax = fig.axes[0]
        seen[path.name] = {"title": ax.get_title(), "texts": [t.get_text() for t in ax.texts]}
        return original(fig, path, *args, **kwargs)

    monkeypatch.setattr(overlays, "atomic_save_figure", keep)
    return seen


@pytest.mark.parametrize("max_size", [None, 64])  # full size, and read downsampled by 4
def test_boxes_land_where_they_belong(tmp_path, max_size):
    image = gray_png(tmp_path / "xr.png")
    predicted = pd.DataFrame({"x1": [100.0], "y1": [50.0], "x2": [180.0], "y2": [110.0], "score": [0.9]})
    reference = np.array([[20.0, 20.0, 60.0, 60.0]])
    out = draw_box_overlay(image, predicted, reference, tmp_path / "panel.png", 0.4, max_size=max_size)
    assert out == tmp_path / "panel.png" and not list(tmp_path.glob(".*tmp*"))
    # within a line's width (2 pt at 120 dpi, about 1 image pixel here)
    np.testing.assert_allclose(drawn_box(out, "red", (100, 50, 180, 110)), (100, 50, 180, 110), atol=1.5)
    np.testing.assert_allclose(drawn_box(out, "blue", (20, 20, 60, 60)), (20, 20, 60, 60), atol=1.5)


def test_labels_and_caption(tmp_path, captured):
    image = gray_png(tmp_path / "xr.png")
    predicted = pd.DataFrame([(12, 12, 50, 50, 0.9), (120, 60, 160, 100, 0.7), (130, 10, 150, 30, 0.2)],
                             columns=["x1", "y1", "x2", "y2", "score"])
    reference = pd.DataFrame([(10, 10, 50, 50)], columns=["x1", "y1", "x2", "y2"])
    draw_box_overlay(image, predicted, reference, tmp_path / "panel.png", cutoff=0.4, title="case 7")
    seen = captured["panel.png"]
    # IoU of (12,12,50,50) with (10,10,50,50): 38^2 / 40^2 = 0.9025
    assert seen["texts"] == ["0.90  IoU 0.90", "0.70  FP"]
    assert seen["title"] == ("case 7\nTP 1 · FP 1 · FN 0   (score ≥ 0.40, IoU ≥ 0.5); 1 below the cut-off not drawn")


def test_missed_reference_and_near_miss(tmp_path, captured):
    image = gray_png(tmp_path / "xr.png")
    predicted = pd.DataFrame([(40, 40, 80, 80, 0.6)], columns=["x1", "y1", "x2", "y2", "score"])
    draw_box_overlay(image, predicted, [[20, 20, 60, 60]], tmp_path / "panel.png", cutoff=0.4)
    # intersection 20 x 20 = 400, union 1600 + 1600 - 400: IoU 1/7
    assert captured["panel.png"]["texts"] == ["missed", "0.60  FP (IoU 0.14)"]
    assert "TP 0 · FP 1 · FN 1" in captured["panel.png"]["title"]


def test_predicted_boxes_only(tmp_path, captured):
    """Scoring's overlays: no reference boxes, the predicted ones with their confidence."""
    image = gray_png(tmp_path / "xr.png")
    predicted = np.array([[100, 50, 180, 110, 0.9], [10, 10, 30, 30, 0.1]])
    out = draw_box_overlay(image, predicted, None, tmp_path / "panel.png", 0.4)
    seen = captured["panel.png"]
    assert seen["texts"] == ["0.90"]
    assert seen["title"] == "xr.png\n1 predicted box(es) with score ≥ 0.40; 1 below the cut-off not drawn"
    rgb = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert not ((rgb[..., 2] > 200) & (rgb[..., 0] < 90)).any()  # nothing blue
    np.testing.assert_allclose(drawn_box(out, "red", (100, 50, 180, 110)), (100, 50, 180, 110), atol=1.5)
    draw_box_overlay(image, None, None, tmp_path / "empty.png")  # no box at all: the radiograph alone
    assert captured["empty.png"]["texts"] == []


def hand_set_on_disk(folder):
    """Three fracture images (p1 found, p2 missed with a false box beside, p3 one of two found), three normal."""
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    names = {"p1": "a/p1.png", "p2": "a/p2.png", "p3": "b/p3.png", "n1": "b/n1.png", "n2": "b/n2.png",
             "n3": "b/n3.png"}
    paths = {k: str(gray_png(folder / v)) for k, v in names.items()}
    images = pd.DataFrame({"path": list(paths.values()), "label": ["fracture"] * 3 + ["normal"] * 3})
    truth = pd.DataFrame([(paths["p1"], 10, 10, 50, 50), (paths["p2"], 20, 20, 60, 60),
                          (paths["p3"], 10, 10, 30, 30), (paths["p3"], 60, 60, 90, 90)],
                         columns=["path", "x1", "y1", "x2", "y2"])
    detections = pd.DataFrame([(paths["p1"], 12, 12, 50, 50, 0.9), (paths["p2"], 40, 40, 80, 80, 0.6),
                               (paths["p3"], 10, 10, 30, 30, 0.8), (paths["n1"], 5, 5, 25, 25, 0.7),
                               (paths["n2"], 0, 0, 10, 10, 0.2)],
                              columns=["path", "x1", "y1", "x2", "y2", "score"])
    return detections, images, truth, paths


def test_write_overlay_panels(tmp_path):
    detections, images, truth, paths = hand_set_on_disk(tmp_path / "data")
    result = write_overlay_panels(detections, images, truth, 0.4, tmp_path / "overlays")
    kinds = result["kinds"]
    assert {k: v["images"] for k, v in kinds.items()} == {"tp": 2, "fn": 2, "fp": 2}
    # TP by the best true box (p1 0.9, p3 0.8); FN by missed boxes then lowest score (p2 0.6, p3 0.8); FP by the box
    assert [p["panel"] for p in kinds["tp"]["panels"]] == ["tp_01_a__p1.png_boxes.png", "tp_02_b__p3.png_boxes.png"]
    assert [p["panel"] for p in kinds["fn"]["panels"]] == ["fn_01_a__p2.png_boxes.png", "fn_02_b__p3.png_boxes.png"]
    assert [p["panel"] for p in kinds["fp"]["panels"]] == ["fp_01_b__n1.png_boxes.png", "fp_02_a__p2.png_boxes.png"]
    assert kinds["fn"]["panels"][0] == {"path": paths["p2"], "name": "a/p2.png", "panel": "fn_01_a__p2.png_boxes.png",
                                        "label": "fracture", "score": 0.6, "tp": 0, "fp": 1, "fn": 1}
    written = sorted(p.name for p in (tmp_path / "overlays").iterdir())
    assert written == sorted(p["panel"] for k in kinds.values() for p in k["panels"])
    assert result["failures"] == []


def test_panels_cap_and_unreadable_images(tmp_path):
    detections, images, truth, paths = hand_set_on_disk(tmp_path / "data")
    with open(paths["p2"], "w") as handle:
        handle.write("not an image")
    result = write_overlay_panels(detections, images, truth, 0.4, tmp_path / "overlays", n_per_kind=1)
    kinds = result["kinds"]
    assert [p["name"] for k in ("tp", "fn", "fp") for p in kinds[k]["panels"]] == ["a/p1.png", "b/p3.png", "b/n1.png"]
    assert [f["path"] for f in result["failures"]] == [paths["p2"]]
    assert "not an image" in result["failures"][0]["reason"]
    assert len(list((tmp_path / "overlays").iterdir())) == 3
