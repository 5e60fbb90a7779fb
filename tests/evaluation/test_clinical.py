"""Clinical statistics checked against independent computations: scikit-learn (AP, PR curve,
logistic regression), scipy (exact binomial limits, bootstrap, root finding, optimisation), a
published epiR::epi.tests printout, hand-worked tables and brute-force loops."""

import json
import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from scipy import optimize, special, stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, precision_recall_curve

from tfxray.errors import UserError
from tfxray.evaluation import clinical, clinical_plots

Z = stats.norm.ppf(0.975)


def strict_json(value):
    return json.loads(json.dumps(value, allow_nan=False))


# ---------------------------------------------------------------------------------------------
# predictive_values


def test_matches_published_epir_printout():
    # epiR::epi.tests on TP 42, FP 260, FN 72, TN 7778 (printed to two decimals in a public R script):
    # Se 0.37 (0.28, 0.46), Sp 0.97 (0.96, 0.97), PPV 0.14 (0.10, 0.18), LR+ 11.39 (8.71, 14.90).
    r = clinical.predictive_values(42, 260, 72, 7778)
    for key, expected in [("sensitivity", (0.37, 0.28, 0.46)), ("specificity", (0.97, 0.96, 0.97)),
                          ("ppv", (0.14, 0.10, 0.18)), ("lr_positive", (11.39, 8.71, 14.90))]:
        got = (r[key]["value"], r[key]["lower"], r[key]["upper"])
        assert got == pytest.approx(expected, abs=0.005 + 1e-9), key


def test_likelihood_ratios_hand_worked_with_simels_form():
    # TP 40, FN 10 (se 0.8), FP 20, TN 80 (sp 0.8). Simel et al.'s variance of ln(a/n1 / b/n0):
    # 1/a - 1/n1 + 1/b - 1/n0.
    r = clinical.predictive_values(40, 20, 10, 80)
    se_pos = math.sqrt(1 / 40 - 1 / 50 + 1 / 20 - 1 / 100)  # = sqrt(0.045) = 0.212132
    se_neg = math.sqrt(1 / 10 - 1 / 50 + 1 / 80 - 1 / 100)  # = sqrt(0.0825) = 0.287228
    assert r["lr_positive"]["value"] == pytest.approx(4.0)
    assert r["lr_positive"]["se_log"] == pytest.approx(se_pos)
    # 4 exp(-+1.959964 x 0.212132) = 2.639325, 6.062156
    assert (r["lr_positive"]["lower"], r["lr_positive"]["upper"]) == pytest.approx((2.639325, 6.062156), abs=1e-6)
    assert r["lr_negative"]["value"] == pytest.approx(0.25)
    assert r["lr_negative"]["se_log"] == pytest.approx(se_neg)
    # 0.25 exp(-+1.959964 x 0.287228) = 0.142381, 0.438964
    assert (r["lr_negative"]["lower"], r["lr_negative"]["upper"]) == pytest.approx((0.142381, 0.438964), abs=1e-6)
    assert r["lr_positive"]["continuity_correction"] == 0.0 and "Simel" in r["lr_positive"]["method"]


def test_deployment_predictive_values_hand_worked_logit():
    # se = sp = 0.8 (TP 40, FN 10, FP 20, TN 80) deployed at prevalence 0.1:
    # PPV = 0.08 / (0.08 + 0.18) = 0.307692; logit = ln(0.08/0.18) = -0.810930,
    # SE = sqrt(0.2/40 + 0.8/20) = 0.212132; expit(-0.810930 -+ 0.415772) = 0.226759, 0.402476.
    # NPV = 0.72 / 0.74 = 0.972973; logit = ln 36 = 3.583519, SE = sqrt(0.8/10 + 0.2/80) = 0.287228;
    # expit(3.583519 -+ 0.562958) = 0.953494, 0.984426.
    r = clinical.predictive_values(40, 20, 10, 80, prevalence=0.1)
    (entry,) = r["deployment"]
    assert entry["prevalence"] == 0.1
    ppv, npv = entry["ppv"], entry["npv"]
    assert ppv["value"] == pytest.approx(0.08 / 0.26)
    assert (ppv["lower"], ppv["upper"]) == pytest.approx((0.226759, 0.402476), abs=2e-6)
    assert npv["value"] == pytest.approx(0.72 / 0.74)
    assert (npv["lower"], npv["upper"]) == pytest.approx((0.953494, 0.984426), abs=2e-6)
    assert "Mercaldo" in ppv["method"] and "Mercaldo" in npv["method"]


def test_deployment_identities():
    tp, fp, fn, tn = 37, 11, 9, 120
    r = clinical.predictive_values(tp, fp, fn, tn, prevalence=[(tp + fn) / (tp + fp + fn + tn), 0.02])
    at_sample, low_prev = r["deployment"]
    # Bayes at the sample prevalence gives back the sample PPV and NPV.
    assert at_sample["ppv"]["value"] == pytest.approx(tp / (tp + fp))
    assert at_sample["npv"]["value"] == pytest.approx(tn / (tn + fn))
    # The logit interval of the PPV is the post-test probability of the LR+ interval
    # (post-test odds = pre-test odds x LR).
    odds = 0.02 / 0.98
    for bound in ("lower", "upper"):
        post = odds * r["lr_positive"][bound]
        assert low_prev["ppv"][bound] == pytest.approx(post / (1 + post))
        post_neg = odds * r["lr_negative"][bound]
        npv_bound = "upper" if bound == "lower" else "lower"
        assert low_prev["npv"][npv_bound] == pytest.approx(1 / (1 + post_neg))


def test_zero_false_positives_fall_back_and_correct():
    tp, fp, fn, tn = 30, 0, 5, 40
    r = clinical.predictive_values(tp, fp, fn, tn, prevalence=0.05)
    ppv = r["deployment"][0]["ppv"]
    # PPV is exactly 1 when sp = 1; the logit interval is undefined, so the Clopper-Pearson limits
    # of se and sp (scipy's beta quantiles, computed here independently) go through Bayes' theorem.
    se_low = stats.beta.ppf(0.025, tp, fn + 1)
    sp_low = stats.beta.ppf(0.025, tn, fp + 1)
    expected_low = se_low * 0.05 / (se_low * 0.05 + (1 - sp_low) * 0.95)
    assert ppv["value"] == 1.0 and ppv["upper"] == 1.0
    assert ppv["lower"] == pytest.approx(expected_low, rel=1e-6)
    assert "Clopper-Pearson" in ppv["method"] and "note" in ppv
    # NPV still has its logit interval (FN and TN are both positive).
    assert "Mercaldo" in r["deployment"][0]["npv"]["method"]
    # LR+ with 0.5 added to every cell: (30.5/36) / (0.5/41).
    lr = r["lr_positive"]
    assert lr["continuity_correction"] == 0.5
    assert lr["value"] == pytest.approx((30.5 / 36) / (0.5 / 41))
    assert lr["se_log"] == pytest.approx(math.sqrt(1 / 30.5 - 1 / 36 + 1 / 0.5 - 1 / 41))
    strict_json(r)


def test_sample_predictive_values_are_exact_binomial_and_json_ready():
    r = clinical.predictive_values(0, 0, 10, 90, prevalence=0.3)  # nothing called positive
    assert r["ppv"]["value"] is None and r["ppv"]["lower"] is None
    ci = stats.binomtest(90, 100).proportion_ci(method="exact")
    assert (r["npv"]["lower"], r["npv"]["upper"]) == pytest.approx((ci.low, ci.high))
    assert r["lr_positive"]["continuity_correction"] == 0.5
    assert strict_json(r) == r


@pytest.mark.parametrize("kwargs, message", [
    ({"tp": -1, "fp": 1, "fn": 1, "tn": 1}, "tp"),
    ({"tp": 1.5, "fp": 1, "fn": 1, "tn": 1}, "tp"),
    ({"tp": 0, "fp": 1, "fn": 0, "tn": 1}, "diseased"),
    ({"tp": 1, "fp": 1, "fn": 1, "tn": 1, "prevalence": 1.0}, "prevalence"),
    ({"tp": 1, "fp": 1, "fn": 1, "tn": 1, "level": 95}, "level"),
])
def test_predictive_values_user_errors(kwargs, message):
    with pytest.raises(UserError, match=message):
        clinical.predictive_values(**kwargs)


# ---------------------------------------------------------------------------------------------
# precision_recall


def tied_data(seed, n=300, prevalence=0.3):
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < prevalence
    labels[:2] = [True, False]
    scores = np.round(rng.normal(labels * 1.2, 1), 1)  # rounding makes ties
    return labels, scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_precision_and_curve_equal_sklearn(seed):
    labels, scores = tied_data(seed)
    r = clinical.precision_recall(labels, scores, n_bootstrap=0)
    assert r["average_precision"] == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    precision, recall, thresholds = precision_recall_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(r["curve"]["precision"], precision, atol=1e-12)
    np.testing.assert_allclose(r["curve"]["recall"], recall, atol=1e-12)
    np.testing.assert_allclose(r["curve"]["thresholds"], thresholds, atol=1e-12)
    assert r["prevalence"] == pytest.approx(labels.mean()) and r["ci"] is None
    assert r["n"] == len(labels) and r["n_positive"] == int(labels.sum())


def test_bootstrap_kernel_equals_sklearn_on_expanded_resamples():
    # The bootstrap computes AP from counts per distinct score; each must equal sklearn's AP of
    # the rows those counts stand for.
    rng = np.random.default_rng(5)
    values = np.linspace(1, 0, 12)  # distinct scores, descending
    for _ in range(50):
        cases = rng.integers(0, 4, 12)
        controls = rng.integers(0, 4, 12)
        if cases.sum() == 0 or controls.sum() == 0:
            continue
        labels = np.r_[np.ones(cases.sum()), np.zeros(controls.sum())]
        scores = np.r_[np.repeat(values, cases), np.repeat(values, controls)]
        ours = clinical._average_precision_counts(cases.astype(float), controls.astype(float))
        assert ours == pytest.approx(average_precision_score(labels, scores), abs=1e-12)


def test_bootstrap_ci_agrees_with_scipy_two_sample_bootstrap():
    labels, scores = tied_data(3, n=200, prevalence=0.35)
    r = clinical.precision_recall(labels, scores, n_bootstrap=3000, seed=1)
    cases, controls = scores[labels], scores[~labels]

    def ap(case_sample, control_sample):
        return average_precision_score(np.r_[np.ones(len(case_sample)), np.zeros(len(control_sample))],
                                       np.r_[case_sample, control_sample])

    # scipy resamples each sample separately (paired=False): the same stratified design.
    ref = stats.bootstrap((cases, controls), ap, n_resamples=3000, method="percentile", vectorized=False,
                          paired=False, random_state=np.random.default_rng(2)).confidence_interval
    assert r["ci"]["lower"] == pytest.approx(ref.low, abs=0.02)
    assert r["ci"]["upper"] == pytest.approx(ref.high, abs=0.02)
    assert r["ci"]["lower"] < r["average_precision"] < r["ci"]["upper"]
    again = clinical.precision_recall(labels, scores, n_bootstrap=3000, seed=1)
    assert again["ci"] == r["ci"]  # seeded
    assert strict_json(r) == r


def test_precision_recall_user_errors():
    with pytest.raises(UserError, match="both classes"):
        clinical.precision_recall([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(UserError, match="NaN"):
        clinical.precision_recall([0, 1], [0.1, float("nan")])
    with pytest.raises(UserError, match="0/1"):
        clinical.precision_recall([0, 2], [0.1, 0.2])


# ---------------------------------------------------------------------------------------------
# decision_curve

DCA_LABELS = [1, 1, 0, 1, 0, 1, 0, 0, 0, 0]
DCA_PROBS = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05]


def test_decision_curve_hand_worked():
    # 10 cases, 4 positive (prevalence 0.4); treat when p >= pt.
    # pt 0.10: treated p >= 0.1 = first 9: TP 4, FP 5, odds 1/9: NB = 0.4 - 0.5/9 = 0.344444;
    #          treat-all 0.4 - 0.6/9 = 0.333333; avoided (0.344444 - 0.333333) * 9 * 100 = 10.
    # pt 0.25: first 7: TP 4, FP 3, odds 1/3: NB = 0.4 - 0.3/3 = 0.3; all 0.4 - 0.2 = 0.2; avoided 30.
    # pt 0.50: first 5: TP 3, FP 2, odds 1: NB = 0.3 - 0.2 = 0.1; all 0.4 - 0.6 = -0.2; avoided 30.
    # pt 0.75: first 2: TP 2, FP 0, odds 3: NB = 0.2; all 0.4 - 1.8 = -1.4; avoided 1.6/3*100 = 53.33.
    t = clinical.decision_curve(DCA_LABELS, DCA_PROBS, [0.1, 0.25, 0.5, 0.75])
    assert t["tp"].tolist() == [4, 4, 3, 2] and t["fp"].tolist() == [5, 3, 2, 0]
    np.testing.assert_allclose(t["net_benefit"], [0.4 - 0.5 / 9, 0.3, 0.1, 0.2], atol=1e-12)
    np.testing.assert_allclose(t["treat_all"], [0.4 - 0.6 / 9, 0.2, -0.2, -1.4], atol=1e-12)
    np.testing.assert_allclose(t["treat_none"], 0.0)
    np.testing.assert_allclose(t["interventions_avoided_per_100"], [10, 30, 30, 160 / 3], atol=1e-9)
    assert t.attrs["prevalence"] == pytest.approx(0.4) and t.attrs["n"] == 10
    strict_json(t.to_dict(orient="list"))


def test_decision_curve_default_grid_equals_brute_force():
    rng = np.random.default_rng(7)
    p = rng.random(400)
    y = rng.random(400) < p
    t = clinical.decision_curve(y, p)
    assert len(t) == 99 and t["threshold"].iloc[0] == pytest.approx(0.01) and t["threshold"].iloc[-1] == 0.99
    for _, row in t.iterrows():
        pt = row["threshold"]
        treated = p >= pt
        expected = np.sum(treated & y) / 400 - np.sum(treated & ~y) / 400 * pt / (1 - pt)
        assert row["net_benefit"] == pytest.approx(expected, abs=1e-12)


def test_decision_curve_user_errors():
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        clinical.decision_curve([0, 1], [0.2, 1.3])
    with pytest.raises(UserError, match="thresholds"):
        clinical.decision_curve([0, 1], [0.2, 0.3], [0.0, 0.5])


# ---------------------------------------------------------------------------------------------
# calibration_fit


def simulated(seed, n=1500, stretch=1.0, shift=0.0):
    """Outcomes drawn from true risks; predictions are expit(stretch * true logit + shift)."""
    rng = np.random.default_rng(seed)
    true_logit = rng.normal(-1.0, 1.4, n)
    y = rng.random(n) < special.expit(true_logit)
    return y, special.expit(stretch * true_logit + shift)


def neg_loglik(beta, x, y, offset=0.0):
    eta = offset + beta[0] + (beta[1] * x if len(beta) > 1 else 0.0)
    return float(np.sum(np.logaddexp(0, eta) - y * eta))


def test_slope_matches_sklearn_and_scipy_optimisation():
    y, p = simulated(0, stretch=2.0)
    fit = clinical.calibration_fit(y, p)
    x = special.logit(p)
    sk = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(x[:, None], y)
    assert fit["slope"]["value"] == pytest.approx(sk.coef_[0, 0], abs=1e-5)
    assert fit["recalibration"]["intercept"] == pytest.approx(sk.intercept_[0], abs=1e-5)
    direct = optimize.minimize(neg_loglik, [0.0, 1.0], args=(x, y.astype(float)), method="BFGS",
                               options={"gtol": 1e-9})
    assert fit["slope"]["value"] == pytest.approx(direct.x[1], abs=1e-5)
    assert fit["slope"]["value"] == pytest.approx(0.5, abs=0.08)  # predictions twice too extreme
    assert fit["converged"] and "Newton" in fit["method"]


def test_standard_errors_match_numerical_information():
    y, p = simulated(1, n=800, stretch=1.3, shift=-0.4)
    fit = clinical.calibration_fit(y, p)
    x, yf = special.logit(p), y.astype(float)
    beta = np.array([fit["recalibration"]["intercept"], fit["slope"]["value"]])
    h = 1e-4
    hessian = np.empty((2, 2))
    for i in range(2):
        for j in range(2):
            ei, ej = np.eye(2)[i] * h, np.eye(2)[j] * h
            hessian[i, j] = (neg_loglik(beta + ei + ej, x, yf) - neg_loglik(beta + ei - ej, x, yf)
                             - neg_loglik(beta - ei + ej, x, yf) + neg_loglik(beta - ei - ej, x, yf)) / (4 * h * h)
    se_slope = math.sqrt(np.linalg.inv(hessian)[1, 1])
    assert fit["slope"]["se"] == pytest.approx(se_slope, rel=1e-4)
    assert fit["slope"]["lower"] == pytest.approx(fit["slope"]["value"] - Z * se_slope, rel=1e-4)
    # Calibration-in-the-large: root of the score equation sum(y - expit(a + logit p)) = 0.
    a = optimize.brentq(lambda a: np.sum(yf - special.expit(a + x)), -10, 10, xtol=1e-14)
    mu = special.expit(a + x)
    assert fit["intercept"]["value"] == pytest.approx(a, abs=1e-9)
    assert fit["intercept"]["se"] == pytest.approx(1 / math.sqrt(np.sum(mu * (1 - mu))), rel=1e-6)


def test_calibrated_predictions_give_ideal_values():
    y, p = simulated(2, n=5000)
    fit = clinical.calibration_fit(y, p)
    assert fit["slope"]["lower"] < 1 < fit["slope"]["upper"]
    assert fit["intercept"]["lower"] < 0 < fit["intercept"]["upper"]
    grid, smooth = np.array(fit["smooth"]["predicted"]), np.array(fit["smooth"]["observed"])
    middle = (grid > 0.1) & (grid < 0.6)
    assert np.max(np.abs(smooth[middle] - grid[middle])) < 0.06
    assert len(grid) == 101 and "LOWESS" in fit["smooth"]["method"]
    assert sum(fit["histogram"]["positives"]) == int(y.sum())
    assert sum(fit["histogram"]["negatives"]) == int((~y).sum())
    assert strict_json(fit) == fit


def test_probabilities_of_zero_and_one_are_clipped():
    y, p = simulated(3, n=400)
    p = p.copy()
    p[:3], p[3:5] = 0.0, 1.0
    fit = clinical.calibration_fit(y, p)
    assert fit["n_clipped"] == 5 and fit["clip"] == 1e-6
    assert math.isfinite(fit["slope"]["value"]) and math.isfinite(fit["intercept"]["value"])
    clipped = np.clip(p, 1e-6, 1 - 1e-6)
    sk = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(special.logit(clipped)[:, None], y)
    assert fit["slope"]["value"] == pytest.approx(sk.coef_[0, 0], abs=1e-5)


def test_perfect_separation_is_reported_not_raised():
    p = np.linspace(0.05, 0.95, 40)
    fit = clinical.calibration_fit(p > 0.5, p)
    assert fit["converged"] is False and fit["slope"]["value"] is None and "separate" in fit["note"]
    strict_json(fit)


def test_calibration_user_errors():
    with pytest.raises(UserError, match="both classes"):
        clinical.calibration_fit([0, 0], [0.1, 0.2])
    with pytest.raises(UserError, match="one value per label"):
        clinical.calibration_fit([0, 1, 1], [0.1, 0.2])


def test_lowess_reproduces_lines_and_matches_brute_force_local_fit():
    rng = np.random.default_rng(4)
    x = np.sort(rng.random(120))
    at = np.linspace(0, 1, 7)
    # Local linear regression reproduces a straight line exactly.
    np.testing.assert_allclose(clinical.lowess(x, 0.3 + 2.0 * x, at), 0.3 + 2.0 * at, atol=1e-10)
    # Brute force: tricube weights over the q nearest points, numpy's weighted least squares line
    # (polyfit weights multiply the residuals, hence the square root).
    y = (rng.random(120) < x).astype(float)
    q = int(2 / 3 * 120)
    ours = clinical.lowess(x, y, at)
    for x0, value in zip(at, ours):
        d = np.abs(x - x0)
        h = np.sort(d)[q - 1]
        w = np.where(d <= 0.999 * h, (1 - (d / h) ** 3) ** 3, 0.0)
        coef = np.polyfit(x, y, 1, w=np.sqrt(w))
        assert value == pytest.approx(np.polyval(coef, x0), abs=1e-10)


def test_lowess_with_tied_x_falls_back_to_weighted_means():
    # All x equal: no line can be fitted; every evaluation is the plain mean of y (3/5).
    np.testing.assert_allclose(clinical.lowess(np.full(5, 0.4), [0, 1, 0, 1, 1], [0.4, 0.3]), [0.6, 0.6])
    # Two tied clusters; halfway between them every neighbour sits exactly at the radius.
    x = np.r_[np.zeros(5), np.ones(5)]
    np.testing.assert_allclose(clinical.lowess(x, x, [0.5, 0.0, 1.0]), [0.5, 0.0, 1.0])
    fit = clinical.calibration_fit([0, 1, 0, 1, 1], [0.4] * 5)
    assert fit["slope"]["value"] is None and "equal" in fit["note"]
    assert fit["intercept"]["value"] == pytest.approx(special.logit(0.6) - special.logit(0.4))
    np.testing.assert_allclose(fit["smooth"]["observed"], 0.6)


def test_lowess_matches_statsmodels_when_installed():
    sm = pytest.importorskip("statsmodels.nonparametric.smoothers_lowess")
    rng = np.random.default_rng(6)
    x = np.sort(rng.random(300))
    y = (rng.random(300) < x).astype(float)
    ref = sm.lowess(y, x, frac=2 / 3, it=0, return_sorted=False)
    np.testing.assert_allclose(clinical.lowess(x, y, x), ref, atol=0.01)


# ---------------------------------------------------------------------------------------------
# plots


def check_figure(png):
    from PIL import Image

    assert png.suffix == ".png" and png.is_file()
    with Image.open(png) as image:
        assert image.info["dpi"] == pytest.approx((300, 300), abs=0.5)
    svg = png.with_suffix(".svg")
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    texts = [el for el in root.iter() if el.tag.endswith("text")]
    sizes = [float(re.search(r"font-size: ([0-9.]+)px", el.get("style", "")).group(1)) for el in texts]
    assert sizes and min(sizes) >= 8.0  # every text, legends included, at >= 8 pt (SVG px = pt here)
    assert not list(png.parent.glob(".*.tmp*"))  # atomic: no temporary files left behind


def test_plots_write_png_and_svg(tmp_path):
    labels, scores = tied_data(8, n=150)
    curves = {"model A": clinical.precision_recall(labels, scores, n_bootstrap=200),
              "model B": clinical.precision_recall(labels, scores + np.random.default_rng(0).normal(0, 1, 150),
                                                   n_bootstrap=200)}
    check_figure(clinical_plots.plot_pr(tmp_path / "pr.png", curves, "PR"))
    y, p = simulated(9, n=600, stretch=1.5)
    check_figure(clinical_plots.plot_decision_curve(tmp_path / "dca.png", clinical.decision_curve(y, p), "DCA"))
    check_figure(clinical_plots.plot_calibration_smooth(tmp_path / "cal.png", clinical.calibration_fit(y, p), "Cal"))
    # A several-model decision curve and a non-.png path (the PNG goes beside it with .png).
    both = {"a": clinical.decision_curve(y, p), "b": clinical.decision_curve(y, special.expit(special.logit(p) / 1.5))}
    check_figure(clinical_plots.plot_decision_curve(tmp_path / "dca2", both, "DCA"))


def test_imports_no_tensorflow():
    code = ("import sys, tfxray.evaluation.clinical, tfxray.evaluation.clinical_plots; "
            "assert 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
