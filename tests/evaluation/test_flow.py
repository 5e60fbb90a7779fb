"""The flow of cases (STARD 2015 item 19): counts against an independent pandas tally of a row
table, the consistency rules, the Markdown table and the diagram files."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tfxray.errors import UserError
from tfxray.evaluation import flow


def row_table(seed=0, n=400):
    """A manifest-like table: label as read (None = unknown), why a row was left out, patient."""
    rng = np.random.default_rng(seed)
    label = rng.choice(np.array(["fracture", "normal", None], dtype=object), n, p=[0.35, 0.62, 0.03])
    reason = rng.choice(np.array([None, "no score", "unreadable", "outside training profile"], dtype=object), n,
                        p=[0.88, 0.04, 0.03, 0.05])
    reason[pd.isna(label)] = "unknown label"
    patient = np.array([f"p{i}" for i in rng.integers(0, 150, n)], dtype=object)
    return pd.DataFrame({"label": label, "reason": reason, "patient": patient})


def test_counts_match_an_independent_tally():
    df = row_table()
    table = flow.flow_from_rows(df["label"], df["reason"], df["patient"], positive="fracture")
    known = df["label"].fillna("unknown")
    assert table["classes"] == ["fracture", "normal", "unknown"]
    assert table["rows_read"]["n"] == len(df)
    assert table["rows_read"]["by_class"] == known.value_counts().to_dict()
    for step in table["excluded"]:
        rows = known[df["reason"] == step["reason"]]
        assert step["n"] == len(rows)
        assert {c: v for c, v in step["by_class"].items() if v} == rows.value_counts().to_dict()
    assert [s["reason"] for s in table["excluded"]] == list(dict.fromkeys(df["reason"].dropna()))
    kept = df[df["reason"].isna()]
    assert table["n_excluded"] == len(df) - len(kept)
    assert table["images_analysed"]["n"] == len(kept)
    tally = kept["label"].value_counts().reindex(["fracture", "normal"])
    assert table["images_analysed"]["by_class"] == tally.to_dict()
    any_fracture = kept.groupby("patient")["label"].apply(lambda s: (s == "fracture").any())
    assert table["patients_analysed"]["by_class"] == {"fracture": int(any_fracture.sum()),
                                                      "normal": int((~any_fracture).sum())}
    json.dumps(table)  # JSON-ready: plain ints and strings only


def test_flow_table_from_counts_subtracts_class_by_class():
    table = flow.flow_table({"fracture": 50, "normal": 70, "unknown": 2},
                            [("no score", {"fracture": 1, "normal": 3}), ("unknown label", {"unknown": 2})],
                            patients={"fracture": 30, "normal": 41})
    assert table["images_analysed"] == {"n": 116, "by_class": {"fracture": 49, "normal": 67}}
    assert table["excluded"][0] == {"reason": "no score", "n": 4,
                                    "by_class": {"fracture": 1, "normal": 3, "unknown": 0}}
    assert table["n_excluded"] == 6
    assert table["patients_analysed"] == {"n": 71, "by_class": {"fracture": 30, "normal": 41}}
    assert flow.flow_table({"a": 3, "b": 4}, [])["patients_analysed"] is None


def test_rows_without_reason_and_unknown_label_are_excluded_as_unknown_label():
    table = flow.flow_from_rows(["fracture", None, "normal", np.nan], reasons=None)
    assert table["excluded"] == [{"reason": "unknown label", "n": 2,
                                  "by_class": {"fracture": 0, "normal": 0, "unknown": 2}}]
    assert table["images_analysed"]["by_class"] == {"fracture": 1, "normal": 1}


def test_patient_class_without_positive_is_shared_or_mixed():
    table = flow.flow_from_rows(["a", "b", "a", "a"], patients=["p1", "p1", "p2", "p2"])
    assert table["patients_analysed"]["by_class"] == {"a": 1, "b": 0, "mixed": 1}


@pytest.mark.parametrize("args, message", [
    (({"a": 3}, [("no score", {"a": 4})]), "more 'a' rows excluded than read"),
    (({"a": 3, "unknown": 1}, []), "unknown label are not among the excluded"),
    (({"a": 3}, [("x", {"a": 1}), ("x", {"a": 1})]), "given twice"),
    (({"a": 3}, [("x", {"b": 1})]), "no row read has"),
    (({"a": -1}, []), "whole number >= 0"),
    (({"a": 2.5}, []), "whole number"),
    (({"a": 3}, [("", {"a": 1})]), "empty reason"),
    (({"a": 3}, ["no score"]), "an exclusion is"),
])
def test_user_errors(args, message):
    with pytest.raises(UserError, match=message):
        flow.flow_table(*args)


def test_row_length_mismatch():
    with pytest.raises(UserError, match="2 exclusion reasons for 3 rows"):
        flow.flow_from_rows(["a", "b", "a"], ["x", None])
    with pytest.raises(UserError, match="no patient id"):
        flow.flow_from_rows(["a", "b"], patients=["p1", None])


def test_markdown_table():
    table = flow.flow_table({"fracture": 50, "normal": 70, "unknown": 2},
                            [("unreadable", {"normal": 1}), ("unknown label", {"unknown": 2})],
                            patients={"fracture": 30, "normal": 41})
    text = flow.flow_markdown(table)
    lines = text.strip().splitlines()
    assert lines[0] == "## Flow of cases (STARD 2015 item 19)"
    assert lines[2] == "| Stage | Total | fracture | normal | unknown label |"
    assert "| Rows read | 122 | 50 | 70 | 2 |" in lines
    assert "| Excluded: unreadable | 1 | 0 | 1 | 0 |" in lines
    assert "| **Images analysed** | 119 | 50 | 69 | – |" in lines
    assert lines[-1] == "| **Patients analysed** | 71 | 30 | 41 | – |"
    assert flow.flow_markdown(table, heading=None).startswith("| Stage |")


def test_plot_flow_writes_png_at_300_dpi_and_svg(tmp_path):
    df = row_table(1)
    table = flow.flow_from_rows(df["label"], df["reason"], df["patient"], positive="fracture")
    png = flow.plot_flow(tmp_path / "flow.png", table)
    assert png == tmp_path / "flow.png"
    with Image.open(png) as image:
        assert image.info["dpi"] == pytest.approx((300, 300), abs=0.5)
        assert image.size[0] > 1500
    svg = (tmp_path / "flow.svg").read_text()
    assert "Images analysed" in svg and "Patients analysed" in svg  # text kept as text
    assert f"n = {table['images_analysed']['n']}" in svg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flow.png", "flow.svg"]  # no temporary files left
    # no patients, no exclusions, a path given without .png
    out = flow.plot_flow(tmp_path / "sub" / "plain", flow.flow_table({"a": 3, "b": 4}), title=None)
    assert out.suffix == ".png" and out.is_file() and out.with_suffix(".svg").is_file()
