"""Issue 15, "honest set-up": how the evaluation's numbers are set up, against independent computations.

- one direction, fixed in advance for runs (``higher``) and given or automatic for tables: pROC's
  pinned aSAH numbers with their symmetry (direction '>' reads 1 - AUC, the same DeLong variance),
  scikit-learn's AUC per fold;
- folds in the model's one direction: aSAH ndka in 10 folds (fold = row index mod 10 + 1), the
  issue's figures (pooled-direction mean 0.591, fold 6 0.321; per-fold 'auto' read 0.633, 0.679);
- a threshold chosen on the evaluated data is exploratory, its sensitivity/specificity CIs
  bootstrap the choice: checked against the exact bootstrap distribution enumerated over every
  resample of a 3 + 3 data set (scikit-learn's roc_curve in each), and a brute-force row bootstrap;
- the ROC band is pROC's ci.se: the per-resample sensitivity against a literal translation of
  pROC's ``coords(input = "specificity")``, a hand-worked point on wfns's curve, and a brute-force
  bootstrap; the curve stays inside its band; a constant score gets no band, and says so;
- the warnings pROC gives (and a few it does not) are notes, in report.md and the summary.
"""

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score, roc_curve

from cli.evaluate import evaluate
from tfxray.errors import UserError
from tfxray.evaluation import bootstrap, roc
from tfxray.evaluation.markdown import render_markdown
from tfxray.evaluation.model_table import model_arguments, models_arguments
from tfxray.evaluation.report import evaluate_table, format_summary, write_report

from .test_proc_reference import PROC_DELONG

TOL = 1e-9
FAST = {"n_bootstrap": 200}


def asah_report(asah, **options):
    options = {"label_column": "outcome", "positive": "Poor", "score_columns": ["s100b"], **FAST, **options}
    return evaluate_table(asah, **options)


def warnings(report):
    return [n for n in report["notes"] if n.startswith("warning: ")]


# ---------------------------------------------------------------------------------------------
# 1. one direction, fixed in advance


def test_a_fixed_direction_is_not_flipped_and_matches_proc_by_symmetry(asah, asah_labels):
    # pROC's roc(outcome, s100b, direction = ">") is the reversed curve: AUC 1 - 0.7314, the same DeLong
    # variance, so the CI is (1 - upper, 1 - lower) of the pinned one.
    _, auc, lower, upper, _ = PROC_DELONG["s100b"]
    model = asah_report(asah, direction="lower")["levels"]["image"]["models"]["s100b"]
    assert model["direction"] == ">"
    assert model["auc"] == pytest.approx(1 - auc, abs=TOL)
    assert (model["auc_ci"]["lower"], model["auc_ci"]["upper"]) == pytest.approx((1 - upper, 1 - lower), abs=TOL)
    # a worse-than-chance reading stays below 0.5: the classes swapped, direction higher
    swapped = asah_report(asah, positive="Good", direction="higher")
    model = swapped["levels"]["image"]["models"]["s100b"]
    assert model["direction"] == "<" and swapped["settings"]["direction"] == "higher"
    assert model["auc"] == pytest.approx(roc_auc_score(~asah_labels, asah["s100b"]), abs=1e-12)
    assert model["auc"] == pytest.approx(1 - auc, abs=TOL)
    assert any("AUC 0.269 is below 0.5 in the direction fixed in advance" in w for w in warnings(swapped))
    # auto flips it, as pROC, and says so with pROC's message
    flipped = asah_report(asah, positive="Good", direction="auto")
    assert flipped["levels"]["image"]["models"]["s100b"]["auc"] == pytest.approx(auc, abs=TOL)
    (message,) = [w for w in warnings(flipped) if "Setting direction" in w]
    assert message.startswith("warning: image level, s100b: Setting direction: controls > cases")
    assert "Setting direction: controls > cases" in format_summary(flipped)


def test_direction_names_and_refusals(asah):
    assert asah_report(asah)["settings"]["direction"] == "auto"  # a table's default, said in the report
    assert asah_report(asah, direction=">")["settings"]["direction"] == "lower"
    with pytest.raises(UserError, match="direction: 'up' is not one of higher, lower, auto"):
        asah_report(asah, direction="up")


def test_runs_read_higher_unless_asked():
    info = {"positive": "fracture", "classes": ["normal", "fracture"], "threshold": 0.4}
    assert model_arguments(info)["direction"] == "higher"
    assert model_arguments({**info, "classes": ["a", "b", "c"]})["direction"] == "higher"
    assert models_arguments({"a": info, "b": info})["direction"] == "higher"
    assert model_arguments(info, direction="auto")["direction"] == "auto"
    with pytest.raises(UserError, match="--direction: 'up'"):
        model_arguments(info, direction="up")


def test_multiclass_direction_fixed_and_in_folds():
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 3, 240)
    probs = rng.dirichlet(np.ones(3), 240)
    probs[:, 2] = 1 - probs[:, 2] * (truth == 2)  # class c's score points the wrong way
    table = pd.DataFrame({"label": np.array(["a", "b", "c"])[truth], "fold": np.arange(240) % 4,
                          **{f"score_{c}": probs[:, j] for j, c in enumerate("abc")}})
    report = evaluate_table(table, label_column="label", positive=None, score_columns=["score_a", "score_b", "score_c"],
                            fold_column="fold", direction="higher", **FAST)
    level = report["levels"]["image"]
    assert level["classes"]["c"]["direction"] == "<"
    assert level["classes"]["c"]["auc"] == pytest.approx(roc_auc_score(truth == 2, probs[:, 2]))
    assert level["classes"]["c"]["auc"] < 0.5
    assert level["folds"]["directions"] == {"a": "<", "b": "<", "c": "<"}
    for f in level["folds"]["per_fold"]:
        inside = table["fold"].to_numpy() == int(f["fold"])
        assert f["auc_c"] == pytest.approx(roc_auc_score(truth[inside] == 2, probs[inside, 2]))


# ---------------------------------------------------------------------------------------------
# 2. folds in the model's one direction


def test_ndka_ten_folds_keep_the_pooled_direction(asah, asah_labels, tmp_path):
    folds = np.arange(len(asah)) % 10 + 1  # deterministic: row index mod 10
    table = asah.assign(fold=folds)
    report = asah_report(table, score_columns=["ndka"], fold_column="fold", threshold="0.5")
    model = report["levels"]["image"]["models"]["ndka"]
    f = model["folds"]
    assert model["direction"] == "<" and f["direction"] == "<"
    assert [r["direction"] for r in f["per_fold"]] == ["<"] * 10
    expected = [roc_auc_score(asah_labels[folds == k], asah["ndka"][folds == k]) for k in range(1, 11)]
    assert [r["auc"] for r in f["per_fold"]] == pytest.approx(expected, abs=1e-12)
    assert f["mean"]["auc"] == pytest.approx(np.mean(expected), abs=1e-12)
    # the figures: fold 6 reads 0.321 in the model's direction, the mean 0.591 ...
    assert f["per_fold"][5]["fold"] == "6" and round(f["per_fold"][5]["auc"], 3) == 0.321
    assert round(f["mean"]["auc"], 3) == 0.591
    # ... where choosing each fold's direction from its own medians (the bug) read 0.679 and 0.633, 4 flipped
    own = [(1 - a) if np.median(asah["ndka"][(folds == k) & ~asah_labels]) > np.median(
        asah["ndka"][(folds == k) & asah_labels]) else a for k, a in zip(range(1, 11), expected)]
    assert round(own[5], 3) == 0.679 and round(np.mean(own), 3) == 0.633
    assert sum(o != a for o, a in zip(own, expected)) == 4
    below = [n for n in report["notes"] if "fold(s) read an AUC below 0.5" in n]
    assert len(below) == 1 and "fold 6 0.321" in below[0]
    markdown = render_markdown(report, {})
    assert "| Fold | n Poor / Good | Direction | AUC (95% CI) |" in markdown
    assert "| 6 | 4 / 7 | `<` | 0.321 (" in markdown
    paths = write_report(report, table, tmp_path, roc_only=True)
    written = json.loads(paths["report.json"].read_text())
    assert written["levels"]["image"]["models"]["ndka"]["folds"]["per_fold"][5]["direction"] == "<"


# ---------------------------------------------------------------------------------------------
# 3. operating points from the right data


def test_exploratory_flags(asah):
    for rule, exploratory in (("youden", True), ("sensitivity:0.9", True), ("specificity:0.9", True), ("0.2", False)):
        report = asah_report(asah, threshold=rule)
        model = report["levels"]["image"]["models"]["s100b"]
        assert report["settings"]["threshold_exploratory"] is exploratory
        assert model["threshold"]["exploratory"] is exploratory
        assert ("with_threshold_choice" in model["operating_point"]) is exploratory
        markdown = render_markdown(report, {})
        assert ("**exploratory**" in markdown) is exploratory
        assert ("fixed in advance (given with --threshold)" in markdown) is not exploratory
    model = asah_report(asah, threshold="model", model_threshold=0.2)["levels"]["image"]["models"]["s100b"]
    assert not model["threshold"]["exploratory"] and "with_threshold_choice" not in model["operating_point"]
    assert model["threshold"]["chosen_on"].startswith("the model's training run")


def _choose_sklearn(y, s, rule):
    """The rule's operating point on a resample, from scikit-learn's curve (thresholds descending)."""
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    if rule == "youden":
        j = tpr - fpr
        best = np.flatnonzero(j >= j.max() - 1e-12)
        k = best[np.argmax(tpr[best])]  # the tied point with the highest sensitivity
    elif rule.startswith("sensitivity"):
        k = np.flatnonzero(tpr >= float(rule.split(":")[1]) - 1e-12)[0]  # highest threshold meeting it
    else:
        k = np.flatnonzero(1 - fpr >= float(rule.split(":")[1]) - 1e-12)[-1]  # lowest threshold meeting it
    return round(tpr[k], 9), round(1 - fpr[k], 9)


@pytest.mark.parametrize("rule", ["youden", "sensitivity:0.6", "specificity:0.6"])
def test_threshold_choice_bootstrap_matches_the_exact_distribution(rule):
    # 3 cases and 3 controls: 27 x 27 equally likely stratified resamples, each enumerated.
    cases, controls = np.array([0.2, 0.5, 0.9]), np.array([0.1, 0.4, 0.6])
    y = np.array([True] * 3 + [False] * 3)
    exact = {}
    for a in itertools.product(range(3), repeat=3):
        for b in itertools.product(range(3), repeat=3):
            point = _choose_sklearn(y, np.concatenate((cases[list(a)], controls[list(b)])), rule)
            exact[point] = exact.get(point, 0) + 1 / 729
    result = bootstrap.stratified_bootstrap(y, np.concatenate((cases, controls)), 40000, seed=1, grid=np.zeros(0),
                                            rule=rule)
    drawn = pd.Series(list(zip(result.chosen_sensitivity.round(9), result.chosen_specificity.round(9))))
    observed = drawn.value_counts(normalize=True).to_dict()
    assert set(observed) <= set(exact)
    for point, p in exact.items():
        assert observed.get(point, 0.0) == pytest.approx(p, abs=0.01), point  # 4 SD of 40000 draws


def test_threshold_choice_ci_against_a_row_bootstrap(asah, asah_labels):
    # A brute-force stratified row bootstrap with scikit-learn in each resample (other random numbers).
    report = asah_report(asah, n_bootstrap=2000, seed=2)
    choice = report["levels"]["image"]["models"]["s100b"]["operating_point"]["with_threshold_choice"]
    s = asah["s100b"].to_numpy()
    cases, controls = s[asah_labels], s[~asah_labels]
    y = np.array([True] * len(cases) + [False] * len(controls))
    rng = np.random.default_rng(11)
    points = np.array([_choose_sklearn(y, np.concatenate((rng.choice(cases, len(cases)),
                                                          rng.choice(controls, len(controls)))), "youden")
                       for _ in range(2000)])
    for column, key in enumerate(("sensitivity", "specificity")):
        low, high = np.quantile(points[:, column], [0.025, 0.975])
        assert (choice[key]["lower"], choice[key]["upper"]) == pytest.approx((low, high), abs=0.05)
    # wider than the exact CIs that hold the threshold fixed
    op = report["levels"]["image"]["models"]["s100b"]["operating_point"]
    assert choice["sensitivity"]["upper"] - choice["sensitivity"]["lower"] > \
        op["sensitivity"]["upper"] - op["sensitivity"]["lower"]


# ---------------------------------------------------------------------------------------------
# 4. the ROC band is pROC's ci.se


def _proc_sensitivity_at(sp_points, se_points, x):
    """Literal pROC coords(roc, x, input = "specificity", ret = "sensitivity") (pROC 1.18's coords.roc):
    the curve sorted by specificity ascending (sensitivity descending); an exact match takes the first;
    otherwise interpolate between the point before and the first with a higher specificity."""
    order = np.lexsort((-se_points, sp_points))
    sp, se = sp_points[order], se_points[order]
    match = np.flatnonzero(np.isclose(sp, x, rtol=0, atol=1e-12))
    if len(match):
        return se[match[0]]
    nxt = int(np.argmax(sp > x))
    proportion = (x - sp[nxt]) / (sp[nxt - 1] - sp[nxt])
    return se[nxt] + proportion * (se[nxt - 1] - se[nxt])


def test_interpolated_sensitivity_is_procs_coords():
    rng = np.random.default_rng(0)
    for _ in range(30):
        n_cases, n_controls = rng.integers(3, 25, 2)
        y = np.array([True] * n_cases + [False] * n_controls)
        s = rng.integers(0, 8, len(y)).astype(float)  # ties: vertical and diagonal segments
        curve = roc.roc_curve(y, s, "<")
        fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
        grid = np.unique(np.concatenate((np.linspace(0, 1, 41), curve.specificity)))
        ours = roc.interpolated_sensitivity(curve.tn, curve.tp, curve.n_controls, curve.n_cases, grid)
        theirs = [_proc_sensitivity_at(1 - fpr, tpr, x) for x in grid]
        np.testing.assert_allclose(ours, theirs, atol=1e-12)


def test_wfns_curve_stays_inside_its_band(asah, asah_labels):
    report = asah_report(asah, score_columns=["wfns"], n_bootstrap=2000)
    band = report["levels"]["image"]["models"]["wfns"]["roc_band"]
    assert band["pointwise"] and "ci.se" in band["method"] and band["curve_outside"] == 0
    grid = np.array(band["specificity"])
    # the curve's own points are on the band's grid: (0.944, 0.439) and its neighbours
    curve = roc.roc_curve(asah_labels, asah["wfns"], "<")
    assert np.all(np.isin(curve.specificity, grid))
    # by hand, at FPR 0.01: between (spec 68/72, sens 18/41) and (spec 1, sens 0), 0.01 / (4/72) of the way
    at = int(np.flatnonzero(np.isclose(grid, 0.99))[0])
    by_hand = 18 / 41 * (0.01 / (4 / 72))
    assert band["sensitivity"][at] == pytest.approx(by_hand, abs=1e-12)
    assert band["sensitivity_lower"][at] <= by_hand <= band["sensitivity_upper"][at]
    lower, upper, observed = map(np.array, (band["sensitivity_lower"], band["sensitivity_upper"], band["sensitivity"]))
    assert np.all((lower <= observed + 1e-12) & (observed <= upper + 1e-12))


@pytest.mark.parametrize("marker", ["wfns", "s100b"])  # a coarse curve (5 grades), where step and line differ most
def test_band_against_a_row_bootstrap_with_procs_coords(asah, asah_labels, marker):
    grid = np.linspace(0, 1, 21)
    s = asah[marker].to_numpy()
    ours = bootstrap.stratified_bootstrap(asah_labels, s, 2000, seed=5, grid=grid)
    cases, controls = s[asah_labels], s[~asah_labels]
    y = np.array([True] * len(cases) + [False] * len(controls))
    rng = np.random.default_rng(8)
    rows = []
    for _ in range(1000):
        fpr, tpr, _ = roc_curve(y, np.concatenate((rng.choice(cases, len(cases)), rng.choice(controls, len(controls)))),
                                drop_intermediate=False)
        rows.append([_proc_sensitivity_at(1 - fpr, tpr, x) for x in grid])
    low, high = np.quantile(np.array(rows), [0.025, 0.975], axis=0)
    np.testing.assert_allclose(ours.sensitivity_lower, low, atol=0.06)
    np.testing.assert_allclose(ours.sensitivity_upper, high, atol=0.06)


def test_a_constant_score_gets_no_band_and_says_so(tmp_path):
    table = pd.DataFrame({"truth": ["n"] * 12 + ["f"] * 12, "s": [0.5] * 24})
    report = evaluate_table(table, label_column="truth", positive="f", score_columns=["s"], **FAST)
    model = report["levels"]["image"]["models"]["s"]
    assert model["roc_band"]["no_width"] and model["auc"] == 0.5
    np.testing.assert_allclose(model["roc_band"]["sensitivity"], 1 - np.array(model["roc_band"]["specificity"]))
    assert any("the pointwise ROC band has no width" in w and "(the score is constant)" in w for w in warnings(report))
    assert any("the threshold chosen by youden is -inf: every image is called positive" in w for w in warnings(report))
    write_report(report, table, tmp_path, roc_only=True)  # the figure draws no band (no error either)


# ---------------------------------------------------------------------------------------------
# 5. warnings


def test_warnings_reach_json_markdown_and_summary(asah):
    table = asah.assign(neg_wfns=-asah["wfns"])
    report = asah_report(table, score_columns=["s100b", "neg_wfns"])  # auto: the second reads '>'
    (opposite,) = [w for w in warnings(report) if "different direction" in w]
    assert "DeLong's test should not be applied to ROC curves with a different direction" in opposite
    assert "**Warning:** image level, s100b vs neg_wfns: DeLong's test" in render_markdown(report, {})
    assert "warning: image level, s100b vs neg_wfns: DeLong's test" in format_summary(report)
    fixed = asah_report(table, score_columns=["s100b", "neg_wfns"], direction="higher")
    assert not [w for w in warnings(fixed) if "different direction" in w]
    assert fixed["levels"]["image"]["models"]["neg_wfns"]["auc"] == pytest.approx(1 - PROC_DELONG["wfns"][1], abs=TOL)


def test_few_cases_perfect_separation_and_infinite_thresholds():
    table = pd.DataFrame({"truth": ["n"] * 6 + ["f"] * 4, "s": [.1, .2, .3, .35, .4, .45, .6, .7, .8, .9]})
    report = evaluate_table(table, label_column="truth", positive="f", score_columns=["s"], **FAST)
    texts = warnings(report)
    assert any("only 4 f and 6 n (fewer than 10 in a class)" in w for w in texts)
    caveat = report["levels"]["image"]["models"]["s"]["ci_caveat"]
    assert caveat and f"warning: image level, s: {caveat}" in texts
    summary = format_summary(report)
    assert summary.count(caveat) == 1  # printed once, under its model
    # specificity:1 when the highest score is a case still has a finite threshold; sensitivity:1 when the
    # lowest score is a case calls every image positive: -inf
    low_case = table.assign(s=[.2, .3, .35, .4, .45, .5, .05, .7, .8, .9])
    report = evaluate_table(low_case, label_column="truth", positive="f", score_columns=["s"],
                            threshold="sensitivity:1", **FAST)
    model = report["levels"]["image"]["models"]["s"]
    assert model["threshold"]["value"] == "-inf" and model["operating_point"]["specificity"]["value"] == 0
    assert any("the threshold chosen by sensitivity:1 is -inf: every image is called positive" in w
               for w in warnings(report))
    high_control = table.assign(s=[.1, .2, .3, .35, .4, .95, .6, .7, .8, .9])
    report = evaluate_table(high_control, label_column="truth", positive="f", score_columns=["s"],
                            threshold="specificity:1", **FAST)
    assert report["levels"]["image"]["models"]["s"]["threshold"]["value"] == "inf"
    assert any("is +inf: no image is called positive" in w for w in warnings(report))
    assert "is +inf: no image is called" in format_summary(report)


def test_no_setup_warning_on_asah(asah):
    assert warnings(asah_report(asah, score_columns=["s100b", "wfns", "ndka"])) == []


# ---------------------------------------------------------------------------------------------
# the command line


def _swapped_run(tmp_path, monkeypatch, asah):
    """A run directory whose model is scored by a stub (no TensorFlow) on a manifest with its two labels
    swapped: the model's positive class Poor is written Good and the other way round."""
    import tfxray.scoring.predict as predict
    from tfxray.models.bundle import Bundle, load_meta

    swapped = asah["outcome"].map({"Good": "Poor", "Poor": "Good"})

    def predict_manifest(bundle, manifest_path, **options):
        table = pd.DataFrame({"path": [f"img{i}.png" for i in range(len(asah))], "label": swapped,
                              "score": asah["s100b"] / asah["s100b"].max()})
        return table, {"positive": "Poor", "threshold": 0.1, "classes": ["Good", "Poor"]}

    monkeypatch.setattr(predict, "predict_manifest", predict_manifest)
    monkeypatch.setattr(predict, "load_bundle", lambda run_dir: Bundle(None, load_meta(run_dir), run_dir))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    meta = {"classes": ["Good", "Poor"], "input_size": 48, "channels": 1, "resize": "stretch",
            "backbone": "tiny_cnn", "threshold": 0.1, "recipe": {"name": "stub"}}
    (run_dir / "tfxray.json").write_text(json.dumps(meta))
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,label\n")
    return run_dir, manifest, swapped


def test_run_dir_with_swapped_labels_reads_below_chance(asah, tmp_path, monkeypatch):
    run_dir, manifest, swapped = _swapped_run(tmp_path, monkeypatch, asah)
    out = tmp_path / "eval"
    result = CliRunner().invoke(evaluate, [str(run_dir), "--data", str(manifest), "--out", str(out), "--roc",
                                           "--bootstrap", "200"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    expected = roc_auc_score(swapped == "Poor", asah["s100b"])
    assert report["settings"]["direction"] == "higher" and report["auc"] == pytest.approx(expected, abs=1e-12)
    assert report["auc"] == pytest.approx(1 - PROC_DELONG["s100b"][1], abs=TOL)
    assert "is below 0.5 in the direction fixed in advance" in result.output
    assert "direction: higher" in result.output
    assert "- Direction: `higher` (higher score = positive), fixed in advance" in (out / "report.md").read_text()
    # --direction auto flips it, with pROC's message
    result = CliRunner().invoke(evaluate, [str(run_dir), "--data", str(manifest), "--out", str(tmp_path / "auto"),
                                           "--roc", "--bootstrap", "200", "--direction", "auto"])
    assert result.exit_code == 0, result.output
    assert "Setting direction: controls > cases" in result.output
    assert json.loads((tmp_path / "auto" / "report.json").read_text())["auc"] == pytest.approx(
        PROC_DELONG["s100b"][1], abs=TOL)


def test_scores_direction_option_and_detector_refusal(asah, tmp_path):
    table = asah.assign(neg=-asah["s100b"])
    table.to_csv(tmp_path / "s.csv", index=False)
    base = ["--scores", str(tmp_path / "s.csv"), "--label-column", "outcome", "--positive", "Poor", "--score-column",
            "neg", "--roc", "--bootstrap", "200"]
    result = CliRunner().invoke(evaluate, [*base, "--out", str(tmp_path / "a")])
    assert result.exit_code == 0 and "direction: auto" in result.output
    assert "Setting direction: controls > cases" in result.output
    result = CliRunner().invoke(evaluate, [*base, "--out", str(tmp_path / "h"), "--direction", "higher"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "h" / "report.json").read_text())["auc"] == pytest.approx(
        1 - PROC_DELONG["s100b"][1], abs=TOL)
    result = CliRunner().invoke(evaluate, ["--detections", str(tmp_path / "s.csv"), "--truth", str(tmp_path / "s.csv"),
                                           "--threshold", "0.4", "--out", str(tmp_path / "d"), "--direction", "lower"])
    assert result.exit_code == 2 and "higher = positive by construction" in result.output
