"""The phantoms' shortcut check: global image statistics must not tell fractures from normals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def global_statistics_auc(folder: Path, manifest: pd.DataFrame) -> float:
    """Cross-validated AUC (patient-grouped, 5 folds) of a logistic regression on each image's mean,
    standard deviation and percentiles: near 0.5 when only the fracture itself tells the classes apart."""
    from PIL import Image
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    images = manifest.drop_duplicates("path")
    features = []
    for path in images.path:
        pixels = np.array(Image.open(Path(folder) / path)).astype(np.float64) / 65535
        features.append([pixels.mean(), pixels.std(), *np.percentile(pixels, [1, 5, 25, 50, 75, 95, 99])])
    labels = (images.label == "fracture").to_numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    predicted = cross_val_predict(
        model, np.array(features), labels, cv=GroupKFold(5), groups=images.patient_id, method="predict_proba"
    )[:, 1]
    return float(roc_auc_score(labels, predicted))
