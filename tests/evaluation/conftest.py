"""Shared fixtures: the aSAH data set distributed with pROC (see /work/shared/data/README.md)."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
ASAH_CANDIDATES = [
    Path(os.environ.get("TFXRAY_ASAH", "")),
    REPO / "tests" / "data" / "asah.csv",
    REPO.parent / "shared" / "data" / "asah.csv",
    Path("/work/shared/data/asah.csv"),
]


def asah_path() -> Path:
    for path in ASAH_CANDIDATES:
        if path.is_file():
            return path
    pytest.skip("aSAH data set not found (set TFXRAY_ASAH or put it in tests/data/asah.csv)")


@pytest.fixture(scope="session")
def asah_csv() -> Path:
    return asah_path()


@pytest.fixture(scope="session")
def asah(asah_csv) -> pd.DataFrame:
    return pd.read_csv(asah_csv)


@pytest.fixture(scope="session")
def asah_labels(asah) -> np.ndarray:
    """True for cases (outcome Poor), False for controls (Good), as pROC's levels=c("Good", "Poor")."""
    return (asah["outcome"] == "Poor").to_numpy()
