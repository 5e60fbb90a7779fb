"""The evaluate report's unit of analysis, flow of cases, subgroups, multiplicity and journal
figures, each against an independent computation:

- the image-level CI clustered by patient against the published worked example of Obuchowski's
  (1997) method (the Cleveland Clinic reference, printed figures; test_clustered.py) and a loop
  port of the reference implementation; with one image per patient, against pROC's DeLong;
- the clustered paired test of two models against the same published example (p 0.8271);
- Holm's adjustment against a loop written from the definition (Holm 1979);
- the flow of cases against a pandas tally of the rows read;
- every subgroup's AUC and sensitivity/specificity against scikit-learn and hand counts, the test
  of equal AUCs against Cochran's Q written out from DeLong's variances (pROC's var());
- reader whiskers against scipy's beta quantiles (Clopper-Pearson);
- the figures: PNG at 300 dpi, an SVG beside each, every text in the SVG at 8 pt or more.
"""

import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image
from scipy import stats
from sklearn.metrics import roc_auc_score

from cli.evaluate import evaluate
from tfxray.errors import UserError
from tfxray.evaluation import clustered, delong
from tfxray.evaluation.report import evaluate_table, format_summary, write_report
from tfxray.evaluation.table import screen_rows

from .test_clustered import MRA, clustered_data, reference_port
from .test_proc_reference import PROC_DELONG, PROC_PAIRED

FAST = {"n_bootstrap": 200}
BASE = ["--label-column", "outcome", "--positive", "Poor", "--bootstrap", "200"]


def run(args):
    return CliRunner().invoke(evaluate, [str(a) for a in args])


def mra_table() -> pd.DataFrame:
    return pd.DataFrame({"patient": MRA[:, 0], "truth": MRA[:, 1], "reader1": MRA[:, 2].astype(float),
                         "reader2": MRA[:, 3].astype(float)})


# ---------------------------------------------------------------------------------------------
# unit of analysis


def test_image_level_ci_is_clustered_by_patient_published_example():
    """Obuchowski's worked example (65 arteries in 36 patients): the printed AUC, SE and CI."""
    report = evaluate_table(mra_table(), label_column="truth", positive=1, score_columns=["reader1", "reader2"],
                            patient_column="patient", direction="higher", threshold="youden", **FAST)
    assert report["headline"]["level"] == "patient" and "not independent" in report["headline"]["why"]
    model = report["levels"]["image"]["models"]["reader1"]
    ci = model["auc_ci"]
    assert ci["method"] == clustered.METHOD_OBUCHOWSKI and ci["unit"] == "patient"
    assert model["auc"] == pytest.approx(0.9837, abs=5e-5)
    assert ci["se"] == pytest.approx(0.0108, abs=5e-5)
    assert ci["lower"] == pytest.approx(0.9625, abs=5e-5) and ci["upper"] == 1.0  # 1.005 clipped
    # DeLong's CI is kept, labelled as assuming independent images, with the variance ratio
    naive = model["auc_cis"]["delong"]
    assert naive["assumes"].startswith("independent images")
    fit = delong.delong_ci(MRA[:, 1] == 1, MRA[:, 2].astype(float), direction="<")
    assert (naive["lower"], naive["upper"], naive["se"]) == pytest.approx((fit.lower, fit.upper, fit.se), abs=1e-12)
    assert ci["variance_ratio"] == pytest.approx((ci["se"] / fit.se) ** 2, rel=1e-9)
    assert model["clustered"]["n_clusters"] == 36 and model["clustered"]["n_clusters_with_cases"] == 23
    # the patient level is not clustered (one row per patient)
    assert report["levels"]["patient"]["models"]["reader1"]["auc_ci"]["method"] == "delong"


def test_clustered_paired_comparison_published_example():
    report = evaluate_table(mra_table(), label_column="truth", positive=1, score_columns=["reader2", "reader1"],
                            patient_column="patient", direction="higher", **FAST)
    c = report["levels"]["image"]["comparisons"][0]
    assert c["test"].startswith("Obuchowski (1997) clustered")
    assert c["difference"] == pytest.approx(0.0014, abs=5e-5)
    assert c["se"] == pytest.approx(0.0066, abs=5e-5)
    assert (c["ci_lower"], c["ci_upper"]) == pytest.approx((-0.0115, 0.0143), abs=5e-5)
    assert c["p"] == pytest.approx(0.8271, abs=5e-5)
    naive = delong.paired_test(MRA[:, 1] == 1, MRA[:, 3].astype(float), MRA[:, 2].astype(float))
    assert c["delong_independent"]["p"] == pytest.approx(naive["p"], abs=1e-12)
    assert c["delong_independent"]["assumes"].startswith("independent images")


@pytest.mark.parametrize("seed", [0, 3])
def test_clustered_ci_matches_a_loop_port_of_the_reference(seed):
    labels, scores, clusters = clustered_data(seed)
    table = pd.DataFrame({"y": np.where(labels, "fracture", "normal"), "s": scores, "pt": clusters})
    report = evaluate_table(table, label_column="y", positive="fracture", score_columns=["s"], patient_column="pt",
                            direction="higher", **FAST)
    auc, variance, _ = reference_port(labels, scores, list(clusters))
    model = report["levels"]["image"]["models"]["s"]
    z = stats.norm.ppf(0.975)
    assert model["auc"] == pytest.approx(auc, abs=1e-12)
    assert model["auc_ci"]["lower"] == pytest.approx(max(0.0, auc - z * np.sqrt(variance)), abs=1e-10)
    assert model["auc_ci"]["upper"] == pytest.approx(min(1.0, auc + z * np.sqrt(variance)), abs=1e-10)


def test_one_image_per_patient_gives_procs_delong(asah):
    """With every row its own patient, the clustered CI and test are DeLong's (pROC's numbers)."""
    table = asah.assign(patient=np.arange(len(asah)))
    report = evaluate_table(table, label_column="outcome", positive="Poor", score_columns=["s100b", "wfns"],
                            patient_column="patient", **FAST)
    model = report["levels"]["image"]["models"]["s100b"]
    _, auc, lower, upper, _ = PROC_DELONG["s100b"]
    assert (model["auc_ci"]["lower"], model["auc_ci"]["upper"]) == pytest.approx((lower, upper), abs=1e-9)
    assert model["auc_ci"]["variance_ratio"] == pytest.approx(1.0, abs=1e-9)
    z, p, *_ = PROC_PAIRED[("s100b", "wfns")]
    c = report["levels"]["image"]["comparisons"][0]
    assert (c["z"], c["p"]) == pytest.approx((z, p), abs=1e-9)


def test_bootstrap_ci_clusters_whole_patients(asah):
    table = asah.assign(patient=np.arange(len(asah)) // 3)
    report = evaluate_table(table, label_column="outcome", positive="Poor", score_columns=["s100b"],
                            patient_column="patient", ci="bootstrap", n_bootstrap=300, seed=4)
    ci = report["levels"]["image"]["models"]["s100b"]["auc_ci"]
    assert ci["method"] == clustered.METHOD_BOOTSTRAP and report["settings"]["clustered_ci"] == ci["method"]
    # a brute-force cluster bootstrap from the same multinomial draws, every resample rebuilt row by row
    rng = np.random.default_rng(4)
    codes, _ = pd.factorize(table["patient"].astype(str))
    counts = rng.multinomial(codes.max() + 1, np.full(codes.max() + 1, 1 / (codes.max() + 1)), size=300)
    y, s = (table["outcome"] == "Poor").to_numpy(), table["s100b"].to_numpy()
    aucs = []
    for row in counts:
        weight = row[codes]
        if (weight * y).sum() and (weight * ~y).sum():
            aucs.append(roc_auc_score(y, s, sample_weight=weight))
    assert (ci["lower"], ci["upper"]) == pytest.approx(tuple(np.quantile(aucs, [0.025, 0.975])), abs=1e-12)


# ---------------------------------------------------------------------------------------------
# multiple tests


def holm_by_definition(p):
    """Holm (1979): the j-th smallest p times (m - j + 1), made monotone, capped at 1."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    out, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return out


def test_model_comparisons_are_holm_adjusted_per_level(asah):
    report = evaluate_table(asah, label_column="outcome", positive="Poor", score_columns=["s100b", "wfns", "ndka"],
                            **FAST)
    comparisons = report["levels"]["image"]["comparisons"]
    raw = [c["p"] for c in comparisons]
    assert raw == pytest.approx([PROC_PAIRED[tuple(c["models"])][1] for c in comparisons], abs=1e-12)
    assert [c["p_adjusted"] for c in comparisons] == pytest.approx(holm_by_definition(raw), abs=1e-15)
    assert all(c["adjustment"] == {"method": "holm", "family_size": 3, "note": "Holm-adjusted for 3 tests"}
               for c in comparisons)


# ---------------------------------------------------------------------------------------------
# flow of cases


def messy_table(asah):
    table = asah.assign(patient=np.arange(len(asah)) // 2, status="ok").astype({"outcome": object})
    table.loc[3, ["status", "s100b", "wfns"]] = ["error", np.nan, np.nan]  # as `tfxray score` writes a failed file
    table.loc[[5, 40], "outcome"] = np.nan
    table.loc[[7, 8], ["s100b", "wfns"]] = np.nan
    table.loc[9, "s100b"] = np.nan  # scored by wfns only: analysed, not scored by s100b
    return table


def test_screen_rows_counts_what_it_leaves_out(asah):
    kept, out = screen_rows(messy_table(asah), "outcome", ["s100b", "wfns"])
    assert out["reason"].tolist() == ["unreadable", "unknown label", "no score", "no score", "unknown label"]
    assert out.index.tolist() == [3, 5, 7, 8, 40] and len(kept) == len(asah) - 5 and 9 in kept.index
    # a status column that is not `tfxray score`'s is not read
    other = asah.assign(status=["admitted"] * len(asah))
    assert len(screen_rows(other, "outcome", ["s100b"])[1]) == 0
    with pytest.raises(UserError, match="score column 'nope': no such column"):
        screen_rows(asah, "outcome", ["nope"])


def test_flow_counts_against_a_tally(asah, tmp_path):
    table = messy_table(asah)
    table.to_csv(tmp_path / "s.csv", index=False)
    out = tmp_path / "o"
    result = run(["--scores", tmp_path / "s.csv", *BASE, "--score-column", "s100b", "--score-column", "wfns",
                  "--patient-column", "patient", "--out", out])
    assert result.exit_code == 0, result.output
    assert (f"left out 5 of {len(asah)} rows of {tmp_path / 's.csv'}: 1 unreadable, 2 unknown label, 2 no score"
            " (counted in report.md's flow of cases)") in result.output
    flow = json.loads((out / "report.json").read_text())["flow"]
    read = table["outcome"].fillna("unknown").value_counts()
    assert flow["rows_read"] == {"n": len(table), "by_class": {"Poor": read["Poor"], "Good": read["Good"],
                                                               "unknown": read["unknown"]}}
    kept = table.drop(index=[3, 5, 7, 8, 40])
    assert flow["images_analysed"]["by_class"] == kept["outcome"].value_counts().reindex(["Poor", "Good"]).to_dict()
    per_patient = kept.groupby("patient")["outcome"].agg(lambda s: "Poor" if (s == "Poor").any() else "Good")
    assert flow["patients_analysed"]["by_class"] == per_patient.value_counts().reindex(["Poor", "Good"]).to_dict()
    report = json.loads((out / "report.json").read_text())
    assert flow["patients_analysed"]["n"] == report["levels"]["patient"]["n"]
    assert flow["images_analysed"]["n"] == report["levels"]["image"]["n"]
    # row 9 is its patient's only row analysed (row 8 has no score): neither is scored by s100b
    assert flow["not_scored"] == {"image": {"s100b": 1}, "patient": {"s100b": 1}} and flow["source"] == "rows of s.csv"
    markdown = (out / "report.md").read_text()
    assert "## Flow of cases (STARD 2015 item 19)" in markdown and "| Excluded: no score | 2 | 1 | 1 | 0 |" in markdown
    assert markdown.index("## Flow of cases") < markdown.index("## Patient level") < markdown.index("## Image level")
    assert "![Flow of cases](flow.png)" in markdown and (out / "flow.svg").is_file()
    links = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown))
    assert links == {p.name for p in out.glob("*.png")}  # report.md links every figure
    # with --roc: no flow diagram, the same numbers
    roc_out = tmp_path / "roc"
    assert run(["--scores", tmp_path / "s.csv", *BASE, "--score-column", "s100b", "--out", roc_out,
                "--roc"]).exit_code == 0
    assert not (roc_out / "flow.png").exists() and json.loads((roc_out / "report.json").read_text())["flow"]


def test_flow_of_a_runs_excluded_images(asah):
    """Images outside a model's profile (evaluate_runs' excluded rows) are read, excluded with their reason."""
    table = asah.assign(patient_id=np.arange(len(asah)) // 2)
    excluded = pd.DataFrame({"outcome": ["Poor", "Good", "Good"], "patient_id": [900, 900, 901],
                             "reason": "outside training profile"})
    report = evaluate_table(table, label_column="outcome", positive="Poor", score_columns=["s100b"],
                            patient_column="patient_id", excluded_rows=excluded, rows_source="images of the manifest",
                            **FAST)
    flow = report["flow"]
    assert flow["rows_read"]["by_class"] == {"Poor": 42, "Good": 74} and flow["source"] == "images of the manifest"
    assert flow["excluded"] == [{"reason": "outside training profile", "n": 3, "by_class": {"Poor": 1, "Good": 2}}]
    assert flow["patients_analysed"]["n"] == len(asah) // 2 + 1  # patients 900 and 901 have no image analysed
    assert "3 of 116 rows left out of the analysis" in " ".join(report["notes"])


# ---------------------------------------------------------------------------------------------
# subgroups


def test_subgroups_against_sklearn_and_hand_counts(asah):
    report = evaluate_table(asah, label_column="outcome", positive="Poor", score_columns=["s100b"],
                            subgroups=["gender"], threshold="0.2", **FAST)
    entry = report["subgroups"]["gender"]
    assert entry["headline_level"] == "image" and list(entry["levels"]) == ["image"]
    table = entry["levels"]["image"]["models"]["s100b"]
    variances = []
    for group in table["groups"]:
        part = asah[asah["gender"] == group["group"]]
        y = (part["outcome"] == "Poor").to_numpy()
        s = part["s100b"].to_numpy()
        assert group["auc"]["value"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        assert group["sensitivity"]["k"] == int(((s >= 0.2) & y).sum())
        assert group["specificity"]["k"] == int(((s < 0.2) & ~y).sum())
        lower, upper = stats.beta.ppf([0.025, 0.975], [group["sensitivity"]["k"], group["sensitivity"]["k"] + 1],
                                      [y.sum() - group["sensitivity"]["k"] + 1, y.sum() - group["sensitivity"]["k"]])
        assert (group["sensitivity"]["lower"], group["sensitivity"]["upper"]) == pytest.approx((lower, upper))
        variances.append(delong.delong_ci(y, s, direction="<").variance)
    a = np.array([g["auc"]["value"] for g in table["groups"]])
    w = 1 / np.array(variances)
    q = float(np.sum(w * (a - np.sum(w * a) / np.sum(w)) ** 2))
    assert table["homogeneity"]["q"] == pytest.approx(q, rel=1e-12)
    assert table["homogeneity"]["p"] == pytest.approx(stats.chi2.sf(q, 1), rel=1e-12)
    assert table["pooled_auc"] == pytest.approx(PROC_DELONG["s100b"][1], abs=1e-12)


def test_patient_level_subgroups_need_one_value_per_patient(asah):
    rng = np.random.default_rng(1)
    table = asah.assign(patient=np.arange(len(asah)) // 2)
    site = {p: rng.choice(["A", "B", "C"]) for p in table["patient"].unique()}
    table["site"] = table["patient"].map(site)
    report = evaluate_table(table, label_column="outcome", positive="Poor", score_columns=["s100b"],
                            patient_column="patient", subgroups=["site", "gender"], **FAST)
    site_entry = report["subgroups"]["site"]
    assert site_entry["headline_level"] == "patient"
    per_patient = table.assign(poor=table["outcome"] == "Poor").groupby("patient").agg(
        poor=("poor", "any"), score=("s100b", "max"), site=("site", "first"))
    for group in site_entry["levels"]["patient"]["models"]["s100b"]["groups"]:
        part = per_patient[per_patient["site"] == group["group"]]
        assert group["auc"]["value"] == pytest.approx(roc_auc_score(part["poor"], part["score"]), abs=1e-12)
    pairs = site_entry["levels"]["patient"]["models"]["s100b"]["pairwise"]
    assert [p["p_adjusted"] for p in pairs] == pytest.approx(holm_by_definition([p["p"] for p in pairs]))
    # gender differs between the two rows of a pseudo-patient: image level only, said so
    gender = report["subgroups"]["gender"]
    assert gender["headline_level"] == "image" and "varies within" in gender["notes"][0]


def test_a_case_only_column_says_why_no_group_has_an_auc(asah):
    grade = np.where(asah["outcome"] == "Poor", np.where(asah["wfns"] >= 3, "severe", "mild"), None)
    report = evaluate_table(asah.assign(grade=grade), label_column="outcome", positive="Poor",
                            score_columns=["s100b"], subgroups=["grade"], **FAST)
    entry = report["subgroups"]["grade"]
    assert all(g["auc"] is None for g in entry["levels"]["image"]["models"]["s100b"]["groups"])
    assert entry["notes"][0].startswith("grade is given for Poor images only")


def test_multiclass_image_level_is_clustered_too():
    rng = np.random.default_rng(2)
    patients = np.repeat(np.arange(40), 3)
    truth = np.repeat(rng.integers(0, 3, 40), 3)
    probs = rng.dirichlet(np.ones(3), size=len(truth)) + np.eye(3)[truth] * 0.5
    table = pd.DataFrame({"label": np.array(["a", "b", "c"])[truth], "pt": patients,
                          **{f"score_{c}": probs[:, j] for j, c in enumerate("abc")}})
    report = evaluate_table(table, label_column="label", positive=None, score_columns=["score_a", "score_b", "score_c"],
                            patient_column="pt", **FAST)
    record = report["levels"]["image"]["classes"]["a"]
    expected = clustered.clustered_auc(truth == 0, probs[:, 0], patients)
    assert (record["auc_ci"]["lower"], record["auc_ci"]["upper"]) == pytest.approx(tuple(expected["ci"]), abs=1e-12)
    assert report["headline"]["level"] == "patient" and report["flow"]["patients_analysed"]["n"] == 40


@pytest.mark.parametrize("options, message", [
    ({"subgroups": ["sex"]}, r"subgroup 'sex': no such column \(columns: gos6, outcome, gender, age, wfns, s100b,"
                             r" ndka\)"),
    ({"subgroups": ["age"]}, "subgroup 'age': 52 distinct values"),  # asah.age.nunique()
    ({"subgroups": ["s100b"]}, "subgroup 's100b': it is a score column"),
])
def test_subgroup_errors_are_one_line(asah, options, message):
    with pytest.raises(UserError, match=message) as info:
        evaluate_table(asah, label_column="outcome", positive="Poor", score_columns=["s100b"], **options, **FAST)
    assert "\n" not in str(info.value)


def test_cli_subgroup_report_figure_and_summary(asah_csv, tmp_path):
    out = tmp_path / "eval"
    result = run(["--scores", asah_csv, *BASE, "--score-column", "s100b", "--score-column", "wfns", "--subgroup",
                  "gender", "--out", out])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert set(report["subgroups"]["gender"]["levels"]["image"]["models"]) == {"s100b", "wfns"}
    assert "subgroups by gender (image level, s100b): Female 0.720 (0.570-0.870) n 21/50" in result.output
    markdown = (out / "report.md").read_text()
    assert "## Subgroups by `gender`" in markdown and "![Subgroups by gender](subgroups_gender.png)" in markdown
    check_figure(out / "subgroups_gender.png")
    result = run(["--scores", asah_csv, *BASE, "--score-column", "s100b", "--subgroup", "sex", "--out", out])
    assert isinstance(result.exception, UserError)
    assert str(result.exception).startswith("subgroup 'sex': no such column (columns: gos6, outcome, gender")


def test_run_dir_subgroup_comes_from_the_manifest(asah, tmp_path, monkeypatch):
    from .test_cli_evaluate import stub_run

    run_dir, manifest, _ = stub_run(tmp_path, monkeypatch, asah)
    result = run([run_dir, "--data", manifest, "--out", tmp_path / "e", "--subgroup", "sex", "--roc"])
    assert isinstance(result.exception, UserError)
    assert str(result.exception) == f"--subgroup 'sex': the manifest {manifest} has no such column (columns: path, label)"


def test_manifest_columns_travel_with_the_scores(tmp_path):
    from tfxray.data.manifest import Manifest
    from tfxray.scoring.predict import manifest_columns

    (tmp_path / "m.csv").write_text("path,label,patient,sex,fracture_type,x1,y1,x2,y2\n"
                                    "a.png,fracture,p1,F,displaced,1,1,5,5\n"
                                    "a.png,fracture,p1,F,hairline,6,6,9,9\n"
                                    "b.png,normal,p2,M,,,,,\n")
    images = pd.DataFrame({"path": [str(tmp_path / "a.png"), str(tmp_path / "b.png")]})
    extra, left_out = manifest_columns(Manifest(images, pd.DataFrame(), ["normal", "fracture"], tmp_path / "m.csv"))
    assert extra.to_dict("list") == {"path": [str(tmp_path / "a.png"), str(tmp_path / "b.png")], "sex": ["F", "M"]}
    assert "fracture_type" in left_out and "disagree" in left_out["fracture_type"]


# ---------------------------------------------------------------------------------------------
# figures


def check_figure(png):
    with Image.open(png) as image:
        assert image.info["dpi"] == pytest.approx((300, 300), abs=0.5)
    svg = png.with_suffix(".svg")
    text = svg.read_text()
    assert ET.fromstring(text).tag.endswith("svg")
    sizes = [float(v) for v in re.findall(r"font-size: ([0-9.]+)px", text)]
    assert sizes and min(sizes) >= 8  # SVG user units are points: every text (legends included) at 8 pt or more


def svg_text(path) -> str:
    """Every text of an SVG written with text as text, joined with single spaces (legend lines are wrapped)."""
    return " ".join(" ".join(re.findall(r"<text[^>]*>([^<]*)", path.read_text())).split())


def test_every_figure_is_300_dpi_with_an_svg_and_legends_of_8_pt(asah, tmp_path):
    table = asah.assign(patient=np.arange(len(asah)) // 2, fold=(np.arange(len(asah)) // 2) % 3)
    readers = pd.DataFrame({"name": ["R1"], "sensitivity": [0.6], "specificity": [0.85]})
    report = evaluate_table(table, label_column="outcome", positive="Poor", score_columns=["s100b", "wfns"],
                            patient_column="patient", fold_column="fold", subgroups=["gender"], readers=readers,
                            **FAST)
    paths = write_report(report, table, tmp_path)
    pngs = [p for name, p in paths.items() if name.endswith(".png")]
    assert {"flow.png", "subgroups_gender.png", "roc_image_all.png", "folds_roc_patient_wfns.png"} <= set(paths)
    for png in pngs:
        check_figure(png)
        assert png.with_suffix(".svg").name in paths
    # the overlay's legend gives the difference in AUC and its p (Obuchowski at the image level, Holm not needed)
    c = report["levels"]["image"]["comparisons"][0]
    svg = svg_text(tmp_path / "roc_image_all.svg")
    assert f"ΔAUC s100b − wfns = {c['difference']:.3f}" in svg and f"p = {c['p']:.3f}" in svg
    assert "Obuchowski clustered paired" in svg
    assert format_summary(report).splitlines()[2].startswith("patient level")


def test_reader_whiskers_are_clopper_pearson_or_as_given():
    from tfxray.evaluation.plots import reader_limits

    sens, spec, given = reader_limits({"name": "R", "sensitivity": 0.6, "specificity": 0.85}, 40, 60)
    assert not given
    k, n = 24, 40
    assert sens == pytest.approx([stats.beta.ppf(0.025, k, n - k + 1), stats.beta.ppf(0.975, k + 1, n - k)])
    k, n = 51, 60
    assert spec == pytest.approx([stats.beta.ppf(0.025, k, n - k + 1), stats.beta.ppf(0.975, k + 1, n - k)])
    point = {"name": "R", "sensitivity": 0.6, "specificity": 0.85, "sensitivity_lower": 0.5, "sensitivity_upper": 0.7}
    assert reader_limits(point, 40, 60) == ([0.5, 0.7], [None, None], True)


def test_readers_table_takes_ci_limits():
    from tfxray.evaluation.table import readers_table

    rows = pd.DataFrame({"name": ["R1", "R2"], "sensitivity": [0.6, 0.7], "specificity": [0.8, 0.9],
                         "sensitivity_lower": [0.5, np.nan], "sensitivity_upper": [0.7, np.nan]})
    assert readers_table(rows) == [{"name": "R1", "sensitivity": 0.6, "specificity": 0.8, "sensitivity_lower": 0.5,
                                    "sensitivity_upper": 0.7},
                                   {"name": "R2", "sensitivity": 0.7, "specificity": 0.9}]
    with pytest.raises(UserError, match="sensitivity_lower 0.9 in data row 1 is on the wrong side of sensitivity 0.6"):
        readers_table(rows.assign(sensitivity_lower=[0.9, np.nan]))


def test_mrmc_figure_is_300_dpi(tmp_path):
    from pathlib import Path

    from tfxray.evaluation.mrmc import mrmc_report, plot_mrmc, read_reads_csv

    reads = read_reads_csv(Path(__file__).resolve().parents[2] / "examples" / "vandyke_reads.csv")
    png, svg = plot_mrmc(tmp_path / "mrmc.png", mrmc_report(reads))
    with Image.open(png) as image:
        assert image.info["dpi"] == pytest.approx((300, 300), abs=0.5)
    assert svg.is_file()
