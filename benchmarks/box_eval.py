"""Box AP at IoU 0.5: tfxray's ``average_precision`` against pycocotools' COCOeval, same data.

Synthetic: ``--images`` images with 0-3 truth boxes each (a quarter without any), ``--boxes``
predicted boxes spread over the images at random, 60% of them jittered copies of a truth box of
their image, the rest anywhere; scores rounded to 3 decimals so that ties occur. Both sides get
their inputs built beforehand, outside the timed part: tfxray the detections and truth
DataFrames and the image list, pycocotools the ground-truth COCO object and the results
(``loadRes``). Timed: tfxray ``average_precision`` (matching, ranking, 101-point precision);
pycocotools ``COCOeval(...)`` with iouThrs [0.5], areaRng all, maxDets [100], then
``evaluate()`` and ``accumulate()`` (its printing silenced). Best of ``--repeat`` runs each, in
one process.

    python benchmarks/box_eval.py [--images 10000] [--boxes 100000] [--repeat 3] [--seed 0]

Prints both times and APs (they must agree to 1e-9) and, as the last line,
``ratio: <tfxray time / pycocotools time>``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaluate import best_time  # noqa: E402  the same best-of-N timer as the evaluation benchmark


def synthetic(n_images: int, n_boxes: int, seed: int):
    rng = np.random.default_rng(seed)
    images = np.array([f"case{i:05d}/hip.dcm" for i in range(n_images)])
    n_truth = np.where(rng.random(n_images) < 0.25, 0, rng.integers(1, 4, n_images))
    truth_image = np.repeat(np.arange(n_images), n_truth)
    xy = rng.uniform(0, 900, (len(truth_image), 2))
    wh = rng.uniform(20, 120, (len(truth_image), 2))
    truth = pd.DataFrame({"path": images[truth_image], "x1": xy[:, 0], "y1": xy[:, 1],
                          "x2": xy[:, 0] + wh[:, 0], "y2": xy[:, 1] + wh[:, 1]})

    det_image = rng.integers(0, n_images, n_boxes)
    xy = rng.uniform(0, 900, (n_boxes, 2))
    wh = rng.uniform(20, 120, (n_boxes, 2))
    # 60% of the boxes on an image with truth: a jittered copy of one of its truth boxes
    first = np.concatenate([[0], np.cumsum(n_truth)[:-1]])
    near = (rng.random(n_boxes) < 0.6) & (n_truth[det_image] > 0)
    pick = first[det_image[near]] + (rng.random(near.sum()) * n_truth[det_image[near]]).astype(int)
    t = truth[["x1", "y1", "x2", "y2"]].to_numpy()[pick]
    xy[near] = t[:, :2] + rng.normal(0, 8, (near.sum(), 2))
    wh[near] = np.maximum(t[:, 2:] - t[:, :2] + rng.normal(0, 8, (near.sum(), 2)), 5)
    score = np.round(np.clip(rng.normal(np.where(near, 0.65, 0.35), 0.2), 0, 1), 3)
    detections = pd.DataFrame({"path": images[det_image], "x1": xy[:, 0], "y1": xy[:, 1],
                               "x2": xy[:, 0] + wh[:, 0], "y2": xy[:, 1] + wh[:, 1], "score": score})
    return detections, truth, list(images)


def coco_objects(detections, truth, images):
    from pycocotools.coco import COCO

    image_id = {path: i + 1 for i, path in enumerate(images)}
    t = truth[["x1", "y1", "x2", "y2"]].to_numpy()
    annotations = [
        {"id": j + 1, "image_id": image_id[path], "category_id": 1, "iscrowd": 0,
         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)}
        for j, (path, (x1, y1, x2, y2)) in enumerate(zip(truth["path"], t.tolist()))
    ]
    d = detections[["x1", "y1", "x2", "y2", "score"]].to_numpy()
    results = [
        {"image_id": image_id[path], "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score}
        for path, (x1, y1, x2, y2, score) in zip(detections["path"], d.tolist())
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": [{"id": i} for i in image_id.values()], "categories": [{"id": 1}],
                      "annotations": annotations}
        gt.createIndex()
        dt = gt.loadRes(results)
    return gt, dt


def coco_ap(gt, dt) -> float:
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.params.iouThrs = np.array([0.5])
        evaluator.params.areaRng = [[0, 1e10]]
        evaluator.params.areaRngLbl = ["all"]
        evaluator.params.maxDets = [100]
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"][0, :, :, 0, 0]
    return float(np.mean(precision[precision > -1]))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--boxes", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from tfxray.evaluation.boxes import average_precision

    detections, truth, images = synthetic(args.images, args.boxes, args.seed)
    gt, dt = coco_objects(detections, truth, images)

    ours_time, ours = best_time(lambda: average_precision(detections, truth, images), args.repeat)
    coco_time, coco = best_time(lambda: coco_ap(gt, dt), args.repeat)
    assert abs(ours - coco) <= 1e-9, (ours, coco)

    print(f"{len(detections):,} predicted boxes, {len(truth):,} truth boxes, {len(images):,} images "
          f"({sum(~pd.Index(images).isin(truth['path'])):,} without truth), "
          f"{detections['score'].nunique():,} distinct scores; best of {args.repeat}; inputs built outside the timing")
    print(f"tfxray average_precision:              {ours_time:.3f} s  (AP50 {ours:.12f})")
    print(f"pycocotools COCOeval evaluate+accumulate: {coco_time:.3f} s  (AP50 {coco:.12f})")
    print(f"ratio: {ours_time / coco_time:.3f}")


if __name__ == "__main__":
    main()
