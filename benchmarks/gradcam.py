"""Grad-CAM: tfxray's batched heatmaps vs one tf-keras-vis call per image.

A classifier that does realistic work (ResNet50 at 224 px, random weights: the heatmaps'
content does not matter, the arithmetic does) is saved as a bundle; synthetic radiographs are
decoded once into memory. Timed on the same images, in one run:

- tfxray: ``compute_cams`` over batches of ``--batch`` images, as ``tfxray gradcam`` and
  ``tfxray score --gradcam`` run it (the backbone up to the target layer as one traced graph,
  tf-keras-vis's Grad-CAM arithmetic on top; explainer built once, outside the timing);
- tf-keras-vis, one call per image: ``Gradcam(model, ReplaceToLinear(), clone=True)`` built
  once, then called on each image alone (the loop a first script writes);
- and, to show where the gain comes from: tf-keras-vis on whole batches (batching alone), and
  tfxray one image at a time (the traced graph alone).

Every timing follows a warm-up call. The heatmaps of the two main runs are compared.

    python benchmarks/gradcam.py [--n 64] [--backbone resnet50] [--size 224] [--batch 16] [--method gradcam]

Prints images per second of each and, as the last line,
``ratio: <tfxray batched img/s / tf-keras-vis per-image img/s>``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def rate(n: int, fn) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="images explained in batches")
    parser.add_argument("--single-n", type=int, default=16, help="images explained one call each")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--method", choices=["gradcam", "gradcam++"], default="gradcam")
    args = parser.parse_args()

    import numpy as np
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import BinaryScore

    from scoring import make_bundle  # benchmarks/scoring.py: the same bundle

    from tfxray.data.inputs import load_input
    from tfxray.data.synth import synthesize
    from tfxray.explain.gradcam import compute_cams
    from tfxray.models.bundle import load_bundle
    from tfxray.models.inference import geometry_of

    with tempfile.TemporaryDirectory(prefix="tfxray-bench-gradcam-") as tmp:
        work = Path(tmp)
        bundle = load_bundle(make_bundle(args.backbone, args.size, work / "run"))
        synthesize(work / "data", n=args.n, seed=3, size=256, progress=False)
        paths = sorted((work / "data").rglob("*.png"))[: args.n]
        images = np.stack([load_input(str(p), geometry_of(bundle))[0] for p in paths])
    n, single_n, layer = len(images), min(args.single_n, len(images)), bundle.meta.gradcam_layer
    print(f"{args.backbone} at {args.size} px, target layer {layer}, {args.method}, {n} images")

    def ours(batch):
        return np.concatenate([compute_cams(bundle, images[i:i + batch], method=args.method)
                               for i in range(0, n, batch)])

    cls = Gradcam if args.method == "gradcam" else GradcamPlusPlus
    plain = cls(bundle.model, model_modifier=ReplaceToLinear(), clone=True)

    def theirs(stack):
        cams = plain(BinaryScore([1.0] * len(stack)), stack, penultimate_layer=layer, seek_penultimate_conv_layer=False)
        return np.asarray(cams).reshape(len(stack), *stack.shape[1:3])

    compute_cams(bundle, images[: args.batch], method=args.method)  # warm-ups: build, trace
    compute_cams(bundle, images[:1], method=args.method)
    theirs(images[:1])
    theirs(images[: args.batch])

    batched = {}
    ours_batched = rate(n, lambda: batched.update(cams=ours(args.batch)))
    per_image = []
    theirs_single = rate(single_n, lambda: per_image.extend(theirs(images[i:i + 1])[0] for i in range(single_n)))
    theirs_batched = rate(n, lambda: [theirs(images[i:i + args.batch]) for i in range(0, n, args.batch)])
    ours_single = rate(single_n, lambda: [compute_cams(bundle, images[i:i + 1], method=args.method)
                                          for i in range(single_n)])
    agree = float(np.max(np.abs(batched["cams"][:single_n] - np.stack(per_image))))

    print(f"  tfxray, batches of {args.batch}:              {ours_batched:7.2f} img/s")
    print(f"  tf-keras-vis, one call per image:     {theirs_single:7.2f} img/s")
    print(f"  tf-keras-vis, batches of {args.batch} (batching alone):  {theirs_batched:7.2f} img/s")
    print(f"  tfxray, one image per call (traced graph alone): {ours_single:7.2f} img/s")
    print(f"  max |heatmap difference| tfxray batched vs tf-keras-vis per image: {agree:.1e}")
    print(f"ratio: {ours_batched / theirs_single:.2f}")


if __name__ == "__main__":
    main()
