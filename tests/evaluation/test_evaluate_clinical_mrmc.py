"""Issue 15 wired into `tfxray evaluate`: the clinical statistics under each model of report.json
(checked against scikit-learn, scipy and hand formulas), their figures, --prevalence, and the
reader study (MRMC) from a reads table, alone and beside a model (the published Van Dyke figures).
"""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image
from scipy import optimize, special, stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score

from cli.evaluate import evaluate
from tfxray.errors import UserError
from tfxray.evaluation import clinical, mrmc
from tfxray.evaluation.report import (evaluate_table, format_summary, model_readers, parse_prevalences, reader_study,
                                      write_report)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_READS = REPO / "examples" / "vandyke_reads.csv"
VANDYKE_LRC = Path("/work/shared/data/vandyke.lrc")
# Hillis (2007), RJafroc's documentation: Van Dyke et al. (1993), OR RRRC with Hillis' ddf
PUBLISHED = {"f": 4.456, "ddf": 15.26, "p": 0.0517, "auc": {"0": 0.8970, "1": 0.9408},
             "difference": (-0.0880, 0.0004)}
Z = stats.norm.ppf(0.975)


def run(args):
    return CliRunner().invoke(evaluate, [str(a) for a in args])


def probability_table(n: int = 80, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    y[:2] = [True, False]
    p = special.expit(-1.2 + 2.0 * y + rng.normal(0, 1, n)).round(3)
    return pd.DataFrame({"case": [f"c{i:03d}" for i in range(n)], "label": np.where(y, "fracture", "normal"),
                         "prob": p})


@pytest.fixture(scope="module")
def prob_report():
    table = probability_table()
    report = evaluate_table(table, label_column="label", positive="fracture", score_columns=["prob"], threshold="0.5",
                            direction="higher", n_bootstrap=300, seed=4, prevalence=[0.05, "0.2"])
    return table, report


def exact(k, n):
    ci = stats.binomtest(k, n).proportion_ci(method="exact")
    return k / n, ci.low, ci.high


# ---------------------------------------------------------------------------------------------
# the clinical statistics in report.json


def test_predictive_values_and_likelihood_ratios_by_hand(prob_report):
    table, report = prob_report
    model = report["levels"]["image"]["models"]["prob"]
    y = (table["label"] == "fracture").to_numpy()
    called = table["prob"].to_numpy() >= 0.5
    tn, fp, fn, tp = confusion_matrix(y, called).ravel()
    assert (model["operating_point"]["tp"], model["operating_point"]["fp"]) == (tp, fp)
    for key, (k, n) in {"ppv": (tp, tp + fp), "npv": (tn, tn + fn)}.items():
        value, low, high = exact(k, n)
        assert (model[key]["value"], model[key]["lower"], model[key]["upper"]) == pytest.approx((value, low, high),
                                                                                                abs=1e-12)
    se, sp = tp / (tp + fn), tn / (tn + fp)
    lr_pos, lr_neg = se / (1 - sp), (1 - se) / sp
    se_pos = math.sqrt(1 / tp - 1 / (tp + fn) + 1 / fp - 1 / (fp + tn))  # Simel et al. (1991)
    se_neg = math.sqrt(1 / fn - 1 / (tp + fn) + 1 / tn - 1 / (fp + tn))
    assert model["lr_positive"]["value"] == pytest.approx(lr_pos, rel=1e-12)
    assert (model["lr_positive"]["lower"], model["lr_positive"]["upper"]) == pytest.approx(
        (lr_pos * math.exp(-Z * se_pos), lr_pos * math.exp(Z * se_pos)), rel=1e-10)
    assert (model["lr_negative"]["value"], model["lr_negative"]["lower"], model["lr_negative"]["upper"]) == \
        pytest.approx((lr_neg, lr_neg * math.exp(-Z * se_neg), lr_neg * math.exp(Z * se_neg)), rel=1e-10)


def test_deployment_predictive_values_follow_bayes(prob_report):
    _, report = prob_report
    model = report["levels"]["image"]["models"]["prob"]
    assert report["settings"]["prevalence"] == [0.05, 0.2]
    op = model["operating_point"]
    tp, fp, tn, fn = op["tp"], op["fp"], op["tn"], op["fn"]
    se, sp = tp / (tp + fn), tn / (tn + fp)
    assert [d["prevalence"] for d in model["deployment"]] == [0.05, 0.2]
    for d in model["deployment"]:
        p = d["prevalence"]
        ppv = se * p / (se * p + (1 - sp) * (1 - p))
        npv = sp * (1 - p) / (sp * (1 - p) + (1 - se) * p)
        assert d["ppv"]["value"] == pytest.approx(ppv, rel=1e-12)
        assert d["npv"]["value"] == pytest.approx(npv, rel=1e-12)
        # logit interval of Mercaldo et al. (2007): logit PPV = logit p + ln LR+, Var = (1 - se)/TP + sp/FP
        centre, half = special.logit(p) + math.log(se / (1 - sp)), Z * math.sqrt((1 - se) / tp + sp / fp)
        assert (d["ppv"]["lower"], d["ppv"]["upper"]) == pytest.approx(
            (special.expit(centre - half), special.expit(centre + half)), rel=1e-10)


def test_auprc_equals_sklearn_and_its_bootstrap(prob_report):
    table, report = prob_report
    auprc = report["levels"]["image"]["models"]["prob"]["auprc"]
    y = (table["label"] == "fracture").to_numpy()
    assert auprc["value"] == pytest.approx(average_precision_score(y, table["prob"]), abs=1e-12)
    again = clinical.precision_recall(y, table["prob"].to_numpy(), n_bootstrap=300, seed=4)
    assert (auprc["lower"], auprc["upper"]) == (again["ci"]["lower"], again["ci"]["upper"])
    assert auprc["lower"] < auprc["value"] < auprc["upper"]
    assert auprc["baseline"] == pytest.approx(y.mean())


def test_decision_curve_by_brute_force(prob_report):
    table, report = prob_report
    curve = report["levels"]["image"]["models"]["prob"]["decision_curve"]
    y = (table["label"] == "fracture").to_numpy()
    p = table["prob"].to_numpy()
    n = len(y)
    assert curve["threshold"] == pytest.approx(np.arange(1, 100) / 100)
    assert len(curve["net_benefit"]) == 99 and curve["n"] == n
    for i in (0, 9, 24, 49, 79):
        pt = curve["threshold"][i]
        treated = p >= pt
        tp, fp = np.sum(treated & y), np.sum(treated & ~y)
        assert (curve["tp"][i], curve["fp"][i]) == (tp, fp)
        assert curve["net_benefit"][i] == pytest.approx(tp / n - fp / n * pt / (1 - pt), abs=1e-12)
        assert curve["treat_all"][i] == pytest.approx(y.mean() - (1 - y.mean()) * pt / (1 - pt), abs=1e-12)


def test_calibration_fit_matches_sklearn_and_scipy(prob_report):
    table, report = prob_report
    fit = report["levels"]["image"]["models"]["prob"]["calibration_fit"]
    y = (table["label"] == "fracture").to_numpy().astype(int)
    logit = special.logit(table["prob"].to_numpy())
    lr = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(logit[:, None], y)
    assert fit["slope"]["value"] == pytest.approx(lr.coef_[0, 0], abs=1e-5)
    # calibration-in-the-large: the intercept a with logit(p) as an offset solves sum(y - expit(a + logit p)) = 0
    a = optimize.brentq(lambda a: np.sum(y - special.expit(a + logit)), -10, 10, xtol=1e-14)
    assert fit["intercept"]["value"] == pytest.approx(a, abs=1e-8)
    assert len(fit["smooth"]["predicted"]) == 101
    # the binned reliability numbers are still there
    assert "brier" in report["levels"]["image"]["models"]["prob"]["calibration"]


def test_scores_that_are_not_probabilities_skip_dca_with_a_note(asah):
    report = evaluate_table(asah, label_column="outcome", positive="Poor", score_columns=["s100b", "wfns"],
                            n_bootstrap=200)
    for column in ("s100b", "wfns"):
        model = report["levels"]["image"]["models"][column]
        assert "outside [0, 1]" in model["decision_curve"]["skipped"]
        assert model["calibration_fit"] == model["decision_curve"]
        assert model["auprc"]["value"] == pytest.approx(
            average_precision_score(asah["outcome"] == "Poor", asah[column]), abs=1e-12)
    assert any("no decision curve or calibration fit for s100b, wfns" in n for n in report["notes"])


def test_lower_direction_ranks_reversed_scores_and_skips_dca():
    table = probability_table()
    table["prob"] = 1 - table["prob"]
    report = evaluate_table(table, label_column="label", positive="fracture", score_columns=["prob"],
                            direction="lower", n_bootstrap=200)
    model = report["levels"]["image"]["models"]["prob"]
    y = (table["label"] == "fracture").to_numpy()
    assert model["auprc"]["value"] == pytest.approx(average_precision_score(y, -table["prob"]), abs=1e-12)
    assert "lower scores mean positive" in model["decision_curve"]["skipped"]


def test_patient_level_gets_the_statistics_too():
    table = probability_table().assign(patient=lambda d: np.arange(len(d)) // 2)
    report = evaluate_table(table, label_column="label", positive="fracture", score_columns=["prob"],
                            patient_column="patient", aggregate="mean", direction="higher", n_bootstrap=200)
    patient = report["levels"]["patient"]["models"]["prob"]
    grouped = table.assign(y=table["label"] == "fracture").groupby("patient").agg(y=("y", "any"), p=("prob", "mean"))
    assert patient["auprc"]["value"] == pytest.approx(average_precision_score(grouped["y"], grouped["p"]), abs=1e-12)
    assert patient["calibration_fit"]["n"] == len(grouped)


@pytest.mark.parametrize("given, expected", [(None, []), (0.05, [0.05]), ("0.1,0.05", [0.05, 0.1]),
                                             (["0.05", "0.2, 0.05"], [0.05, 0.2])])
def test_parse_prevalences(given, expected):
    assert parse_prevalences(given) == expected


@pytest.mark.parametrize("given, message", [("5%", "'5%' is not a number"), (1.0, "strictly between 0 and 1"),
                                            ("0.05,", "an empty value")])
def test_bad_prevalence_is_a_user_error(given, message):
    with pytest.raises(UserError, match=message):
        parse_prevalences(given)


def test_prevalence_is_refused_for_multiclass():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"label": np.repeat(["a", "b", "c"], 10), **{k: rng.random(30) for k in "abc"}})
    with pytest.raises(UserError, match="two-class evaluation"):
        evaluate_table(table, label_column="label", positive=None, score_columns=["a", "b", "c"], n_bootstrap=100,
                       prevalence=0.05)


# ---------------------------------------------------------------------------------------------
# the CLI: figures, --prevalence, summaries


def test_cli_prevalence_changes_the_deployment_ppv_as_bayes_says(tmp_path):
    probability_table().to_csv(tmp_path / "scores.csv", index=False)
    base = ["--scores", tmp_path / "scores.csv", "--label-column", "label", "--positive", "fracture", "--score-column",
            "prob", "--threshold", "0.5", "--direction", "higher", "--bootstrap", "200"]
    plain = run([*base, "--out", tmp_path / "plain", "--roc"])
    given = run([*base, "--out", tmp_path / "given", "--roc", "--prevalence", "0.05"])
    assert plain.exit_code == 0 and given.exit_code == 0, given.output
    a = json.loads((tmp_path / "plain" / "report.json").read_text())["levels"]["image"]["models"]["prob"]
    b = json.loads((tmp_path / "given" / "report.json").read_text())["levels"]["image"]["models"]["prob"]
    assert a["deployment"] == [] and a["ppv"] == b["ppv"]
    se, sp = b["operating_point"]["sensitivity"]["value"], b["operating_point"]["specificity"]["value"]
    ppv = se * 0.05 / (se * 0.05 + (1 - sp) * 0.95)
    (d,) = b["deployment"]
    assert d["prevalence"] == 0.05 and d["ppv"]["value"] == pytest.approx(ppv, rel=1e-12)
    assert d["ppv"]["value"] < b["ppv"]["value"]  # a rarer disease: a lower PPV than at the sample's 30%
    assert f"at prevalence 0.05: PPV {ppv:.3f}" in given.output
    assert "PPV " in plain.output and "LR+ " in plain.output and "AUPRC " in plain.output
    md = (tmp_path / "given" / "report.md").read_text()
    assert "### Predictive values and likelihood ratios" in md and "| prob | 0.05 |" in md
    # --roc: the ROC figure only
    assert {p.name for p in (tmp_path / "given").glob("*.png")} == {"roc_image_prob.png"}


def test_cli_draws_pr_decision_and_calibration_as_png_and_svg(tmp_path):
    probability_table().to_csv(tmp_path / "scores.csv", index=False)
    out = tmp_path / "out"
    result = run(["--scores", tmp_path / "scores.csv", "--label-column", "label", "--positive", "fracture",
                  "--score-column", "prob", "--direction", "higher", "--bootstrap", "200", "--out", out])
    assert result.exit_code == 0, result.output
    for kind in ("pr", "decision", "calibration"):
        png, svg = out / f"{kind}_image_prob.png", out / f"{kind}_image_prob.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "<svg" in svg.read_text()[:2000]
        assert Image.open(png).info["dpi"] == pytest.approx((300, 300), abs=0.5)
        assert f"![{kind}_image_prob.png]({kind}_image_prob.png)" in (out / "report.md").read_text()
    report = json.loads((out / "report.json").read_text())
    model = report["levels"]["image"]["models"]["prob"]
    for key in ("ppv", "npv", "lr_positive", "lr_negative", "deployment", "auprc", "decision_curve",
                "calibration_fit"):
        assert key in model
    md = (out / "report.md").read_text()
    assert "### Decision curve (net benefit)" in md and "Calibration slope (95% CI)" in md


# ---------------------------------------------------------------------------------------------
# reader studies


def test_example_reads_are_the_van_dyke_lrc():
    if not VANDYKE_LRC.is_file():
        pytest.skip("vandyke.lrc not found")
    shipped = pd.read_csv(EXAMPLE_READS, dtype={"reader": str, "modality": str})
    lrc = mrmc.read_lrc(VANDYKE_LRC)
    key = ["case", "reader", "modality"]
    merged = shipped.merge(lrc, on=key, suffixes=("", "_lrc"), validate="one_to_one")
    assert len(merged) == len(lrc) == 1140
    assert (merged["truth"] == merged["truth_lrc"]).all() and (merged["rating"] == merged["rating_lrc"]).all()


def test_cli_reads_alone_gives_the_published_van_dyke_analysis(tmp_path):
    out = tmp_path / "vd"
    result = run(["--readers", EXAMPLE_READS, "--out", out])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    head = report["mrmc"]
    assert round(head["f"], 3) == PUBLISHED["f"]
    assert round(head["ddf"], 2) == PUBLISHED["ddf"]
    assert round(head["p"], 4) == PUBLISHED["p"]
    assert {m: round(a["value"], 4) for m, a in head["auc"].items()} == PUBLISHED["auc"]
    diff = head["ci_difference"]["0 - 1"]
    assert (round(diff["lower"], 4), round(diff["upper"], 4)) == PUBLISHED["difference"]
    # the same as the mrmc module on the same table
    direct = mrmc.mrmc_report(mrmc.read_reads_csv(EXAMPLE_READS))["mrmc"]
    assert (head["f"], head["ddf"], head["p"]) == pytest.approx((direct["f"], direct["ddf"], direct["p"]), rel=1e-12)
    for name in ("mrmc.json", "mrmc.md", "mrmc.png", "mrmc.svg", "report.md"):
        assert (out / name).is_file(), name
    assert (out / "mrmc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "<svg" in (out / "mrmc.svg").read_text()
    assert "F 4.456 on 1 and 15.26 df, p 0.0517" in result.output
    assert "modality 0  reader-averaged AUC 0.8970 (95% CI" in result.output
    assert "difference 0 - 1: -0.0438 (95% CI -0.0880 to 0.0004)" in result.output
    assert (out / "report.md").read_text().startswith("# Reader study report")


def test_cli_reads_lrc_and_reader_cutoff(tmp_path):
    if not VANDYKE_LRC.is_file():
        pytest.skip("vandyke.lrc not found")
    result = run(["--readers", VANDYKE_LRC, "--reader-cutoff", "3", "--out", tmp_path])
    assert result.exit_code == 0, result.output
    head = json.loads((tmp_path / "report.json").read_text())["mrmc"]
    assert round(head["f"], 3) == PUBLISHED["f"]
    # McNemar per reader with "rating >= 3 is positive": the exact test of the discordant cases
    reads = mrmc.read_lrc(VANDYKE_LRC)
    first = head["mcnemar"]["readers"][0]
    r = reads[(reads["reader"] == first["reader"]) & (reads["truth"] == 1)].pivot(index="case", columns="modality",
                                                                                    values="rating") >= 3
    gained, lost = int((~r["0"] & r["1"]).sum()), int((r["0"] & ~r["1"]).sum())
    sens = first["sensitivity"]
    assert (sens["gained"], sens["lost"]) == (gained, lost)
    assert sens["p"] == pytest.approx(stats.binomtest(gained, gained + lost).pvalue if gained + lost else 1.0)


@pytest.mark.parametrize("content, message", [
    ("a,b\n1,2\n", "neither reader operating points (columns name, sensitivity, specificity[, level]) nor a reads"
                   " table (columns case, reader, modality, truth, rating"),
    ("case,reader,modality,truth,rating\n1,A,x,1,3\n2,A,x,0,\n", "row(s) have no rating"),
    ("case,reader,modality,truth,rating\n1,A,x,1,3\n2,A,x,0,2\n1,A,y,1,3\n2,A,y,0,2\n1,B,x,1,3\n",
     "fully crossed"),
])
def test_bad_reads_file_is_a_one_line_error(tmp_path, content, message):
    (tmp_path / "reads.csv").write_text(content)
    result = run(["--readers", tmp_path / "reads.csv", "--out", tmp_path / "out"])
    assert isinstance(result.exception, UserError), result.output
    assert message in str(result.exception) and "\n" not in str(result.exception)


def test_reads_alone_refuses_options_that_need_scores(tmp_path):
    result = run(["--readers", EXAMPLE_READS, "--out", tmp_path, "--prevalence", "0.05"])
    assert result.exit_code == 2 and "--prevalence goes with --scores or RUN_DIR" in result.output
    result = run(["--readers", EXAMPLE_READS, "--out", tmp_path, "--model-as-reader"])
    assert result.exit_code == 2 and "--model-as-reader needs a model's scores" in result.output


def test_reader_cutoff_needs_a_reads_table(tmp_path, asah_csv):
    pd.DataFrame({"name": ["R1"], "sensitivity": [0.7], "specificity": [0.8]}).to_csv(tmp_path / "r.csv", index=False)
    result = run(["--scores", asah_csv, "--label-column", "outcome", "--positive", "Poor", "--score-column", "s100b",
                  "--readers", tmp_path / "r.csv", "--reader-cutoff", "3", "--out", tmp_path / "o"])
    assert result.exit_code == 2 and "--reader-cutoff goes with --readers READS" in result.output


def van_dyke_scores(seed: int = 0) -> pd.DataFrame:
    reads = pd.read_csv(EXAMPLE_READS)
    cases = reads.drop_duplicates("case")[["case", "truth"]].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    return cases.assign(prob=special.expit(-1 + 2.5 * cases["truth"] + rng.normal(0, 1, len(cases))).round(4))


def test_cli_model_beside_and_as_a_reader(tmp_path):
    scores = van_dyke_scores()
    scores.to_csv(tmp_path / "scores.csv", index=False)
    out = tmp_path / "out"
    result = run(["--scores", tmp_path / "scores.csv", "--label-column", "truth", "--positive", "1", "--score-column",
                  "prob", "--direction", "higher", "--bootstrap", "200", "--readers", EXAMPLE_READS,
                  "--model-as-reader", "--roc", "--out", out])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    head = report["mrmc"]
    assert round(head["f"], 3) == PUBLISHED["f"]  # the readers' own analysis is unchanged by the model
    with_model = head["with_model"]
    # independently: the model added to every modality with mrmc.add_model_reader, then the OR analysis
    reads = mrmc.read_reads_csv(EXAMPLE_READS)
    combined = mrmc.add_model_reader(reads, dict(zip(scores["case"].astype(str), scores["prob"])), "prob")
    expected = mrmc.mrmc_report(combined)["mrmc"]
    assert (with_model["f"], with_model["ddf"], with_model["p"]) == pytest.approx(
        (expected["f"], expected["ddf"], expected["p"]), rel=1e-12)
    model_auc = [r["auc"] for r in with_model["per_reader"] if r["reader"] == "prob"]
    assert model_auc == pytest.approx([roc_auc_score(scores["truth"], scores["prob"])] * 2, abs=1e-12)
    assert report["levels"]["image"]["models"]["prob"]["auc"] == pytest.approx(model_auc[0], abs=1e-12)
    for name in ("mrmc.json", "mrmc.png", "mrmc.svg", "with_model/mrmc.json", "with_model/mrmc.svg"):
        assert (out / name).is_file(), name
    md = (out / "report.md").read_text()
    assert "## Reader study (multi-reader multi-case ROC)" in md and "### With the model as a reader" in md
    assert "F 4.456 on 1 and 15.26 df, p 0.0517" in result.output
    assert "with the model as a reader (prob" in result.output


def test_model_reader_needs_matching_cases_and_labels():
    reads = mrmc.read_reads_csv(EXAMPLE_READS)
    scores = van_dyke_scores()
    swapped = scores.assign(truth=np.where(scores.index == 5, 1 - scores["truth"], scores["truth"]))
    report = evaluate_table(swapped, label_column="truth", positive=1, score_columns=["prob"], direction="higher",
                            n_bootstrap=100)
    with pytest.raises(UserError, match="case '5' is .* in the scores table .* but has truth"):
        model_readers(swapped, report, reads, "case")
    with pytest.raises(UserError, match="no case column 'image_id'"):
        model_readers(swapped, report, reads, "image_id")
    partial = scores.iloc[:-3]
    report = evaluate_table(partial, label_column="truth", positive=1, score_columns=["prob"], direction="higher",
                            n_bootstrap=100)
    with pytest.raises(UserError, match="3 of 114 cases have no score"):
        reader_study(reads, models=model_readers(partial, report, reads, "case"))


def test_write_report_with_a_study_lists_its_files(tmp_path):
    table = van_dyke_scores()
    report = evaluate_table(table, label_column="truth", positive=1, score_columns=["prob"], direction="higher",
                            n_bootstrap=100)
    study = reader_study(mrmc.read_reads_csv(EXAMPLE_READS))
    from tfxray.evaluation.report import add_reader_study

    add_reader_study(report, study)
    paths = write_report(report, table, tmp_path, roc_only=True, study=study)
    assert {"mrmc.json", "mrmc.md", "mrmc.png", "mrmc.svg", "report.json", "report.md"} <= set(paths)
    assert all(p.is_file() for p in paths.values())
    assert "reader study: 5 readers x 2 modalities x 114 cases" in format_summary(report)
