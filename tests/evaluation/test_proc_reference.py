"""Numbers pinned from R/pROC on the aSAH data set; R is not needed to run these tests.

Provenance: R 4.2.2, pROC 1.18.0 (Debian package r-cran-proc), run on 2026-11-22 with
asah.csv read by read.csv (checked identical to pROC's data(aSAH)). The script, verbatim:

    suppressMessages(library(pROC)); options(digits = 15)
    d <- read.csv("asah.csv"); lv <- c("Good", "Poor")
    for (m in c("s100b", "wfns", "ndka")) {
      r <- roc(d$outcome, d[[m]], levels = lv, direction = "auto", quiet = TRUE)
      ci <- ci.auc(r, method = "delong")
      cat(sprintf("%s dir=%s auc=%.15f ci=%.15f %.15f var=%.15g\n", m, r$direction,
                  as.numeric(r$auc), ci[1], ci[3], var(r, method = "delong")))
      print(coords(r, "best", best.method = "youden",
                   ret = c("threshold", "sensitivity", "specificity"), transpose = FALSE), digits = 15)
    }
    rs <- roc(d$outcome, d$s100b, levels = lv, quiet = TRUE)   # likewise rw (wfns), rn (ndka)
    t <- roc.test(rs, rn, method = "delong", paired = TRUE)    # likewise (rs, rw), (rw, rn)
    cat(sprintf("Z=%.15f p=%.15g ci=%.15f %.15f\n", t$statistic, t$p.value, t$conf.int[1], t$conf.int[2]))
    male <- d$gender == "Male"; female <- d$gender == "Female"
    rm <- roc(d$outcome[male], d$s100b[male], levels = lv, quiet = TRUE)
    rf <- roc(d$outcome[female], d$wfns[female], levels = lv, quiet = TRUE)
    t <- roc.test(rm, rf, method = "delong", paired = FALSE)
    cat(sprintf("D=%.15f df=%.15f p=%.15g\n", t$statistic, t$parameter, t$p.value))
    rneg <- roc(d$outcome, -d$s100b, levels = lv, quiet = TRUE)   # direction ">"
    a <- coords(rs, "all", ret = c("threshold", "sensitivity", "specificity"), transpose = FALSE)
    s <- a[a$sensitivity >= 0.9, ]; print(s[which.max(s$threshold), ], digits = 15)
    s <- a[a$specificity >= 0.9, ]; print(s[which.min(s$threshold), ], digits = 15)
    print(coords(rs, 0.5, input = "threshold", ret = c("tp", "fp", "tn", "fn")))
    coords(roc(d$outcome, d$wfns, levels = lv), "all", transpose = FALSE)

pROC's documentation quotes the same figures rounded (AUC s100b 0.7314, DeLong 95% CI
0.6301-0.8326; ndka 0.6120; wfns 0.8237).
"""

import numpy as np
import pytest

from tfxray.evaluation import delong, roc, thresholds

TOL = 1e-9  # pinned to 15 digits; agreement is to ~1e-15

PROC_DELONG = {
    # marker: (direction, auc, ci lower, ci upper, var(roc, method="delong"))
    "s100b": ("<", 0.731368563685637, 0.630118211761623, 0.832618915609651, 0.00266868245717244),
    "wfns": ("<", 0.823678861788618, 0.748534887819453, 0.898822835757783, 0.00146991470882363),
    "ndka": ("<", 0.611957994579946, 0.501244999271703, 0.722670989888189, 0.0031908105493913),
}

PROC_YOUDEN = {
    # coords(r, "best", best.method="youden"): threshold, sensitivity, specificity (one row each)
    "s100b": (0.205, 0.634146341463415, 0.805555555555556),
    "wfns": (3.5, 0.634146341463415, 0.833333333333333),
    "ndka": (11.08, 0.707317073170732, 0.513888888888889),
}

PROC_PAIRED = {
    # roc.test(method="delong", paired=TRUE): Z, p, conf.int, difference of AUCs
    ("s100b", "ndka"): (1.390770025735577, 0.164295175223054, -0.048870606422809, 0.287691744634191,
                        0.119410569105691),
    ("s100b", "wfns"): (-2.208983591440908, 0.0271757822291882, -0.174214419249478, -0.010406176956485,
                        -0.092310298102981),
    ("wfns", "ndka"): (2.797775918689039, 0.00514557970691098, 0.063401170933988, 0.360040563483357,
                       0.211720867208672),
}


@pytest.mark.parametrize("marker", list(PROC_DELONG))
def test_auc_and_delong_ci_match_proc(asah, asah_labels, marker):
    direction, auc, lower, upper, variance = PROC_DELONG[marker]
    scores = asah[marker].to_numpy()
    assert roc.choose_direction(asah_labels, scores) == direction
    assert roc.auc(asah_labels, scores, "auto") == pytest.approx(auc, abs=TOL)
    assert roc.roc_curve(asah_labels, scores).auc == pytest.approx(auc, abs=TOL)
    fit = delong.delong_ci(asah_labels, scores, direction="auto")
    assert (fit.auc, fit.lower, fit.upper) == pytest.approx((auc, lower, upper), abs=TOL)
    assert fit.variance == pytest.approx(variance, rel=1e-12)


@pytest.mark.parametrize("marker", list(PROC_YOUDEN))
def test_youden_point_matches_proc(asah, asah_labels, marker):
    threshold, sensitivity, specificity = PROC_YOUDEN[marker]
    choice = thresholds.choose_threshold(asah_labels, asah[marker], "youden", direction="auto")
    assert len(choice.ties) == 1
    assert (choice.threshold, choice.sensitivity, choice.specificity) == pytest.approx(
        (threshold, sensitivity, specificity), abs=TOL)


@pytest.mark.parametrize("pair", list(PROC_PAIRED))
def test_paired_delong_test_matches_proc(asah, asah_labels, pair):
    z, p, ci_lower, ci_upper, difference = PROC_PAIRED[pair]
    result = delong.paired_test(asah_labels, asah[pair[0]], asah[pair[1]])
    assert result["z"] == pytest.approx(z, abs=TOL)
    assert result["p"] == pytest.approx(p, rel=1e-9)
    assert (result["ci_lower"], result["ci_upper"]) == pytest.approx((ci_lower, ci_upper), abs=TOL)
    assert result["difference"] == pytest.approx(difference, abs=TOL)


def test_unpaired_delong_test_matches_proc(asah, asah_labels):
    # s100b on the men against wfns on the women: two independent samples.
    male = (asah["gender"] == "Male").to_numpy()
    result = delong.unpaired_test(asah_labels[male], asah["s100b"][male], asah_labels[~male], asah["wfns"][~male])
    assert (result["auc_a"], result["auc_b"]) == pytest.approx((0.772727272727273, 0.778571428571428), abs=TOL)
    assert result["d"] == pytest.approx(-0.064358849365383, abs=TOL)
    assert result["df"] == pytest.approx(86.265920730203391, abs=1e-8)
    assert result["p"] == pytest.approx(0.948833398776537, abs=TOL)


def test_reversed_marker_flips_direction_like_proc(asah, asah_labels):
    # roc(outcome, -s100b): direction ">", same AUC, Youden threshold -0.205.
    scores = -asah["s100b"].to_numpy()
    assert roc.choose_direction(asah_labels, scores) == ">"
    assert roc.auc(asah_labels, scores, "auto") == pytest.approx(0.731368563685637, abs=TOL)
    choice = thresholds.choose_threshold(asah_labels, scores, "youden", direction="auto")
    assert choice.direction == ">"
    assert choice.threshold == pytest.approx(-0.205, abs=TOL)
    assert (choice.sensitivity, choice.specificity) == pytest.approx((0.634146341463415, 0.805555555555556), abs=TOL)


def test_target_rules_match_proc_coords(asah, asah_labels):
    # Highest threshold with sensitivity >= 0.9; lowest with specificity >= 0.9 (coords "all", filtered in R).
    sens = thresholds.choose_threshold(asah_labels, asah["s100b"], "sensitivity:0.9")
    assert (sens.threshold, sens.sensitivity, sens.specificity) == pytest.approx(
        (0.075, 0.902439024390244, 0.222222222222222), abs=TOL)
    spec = thresholds.choose_threshold(asah_labels, asah["s100b"], "specificity:0.9")
    assert (spec.threshold, spec.sensitivity, spec.specificity) == pytest.approx(
        (0.435, 0.390243902439024, 0.902777777777778), abs=TOL)


def test_counts_at_fixed_threshold_match_proc(asah, asah_labels):
    # coords(rs, 0.5, input="threshold", ret=c("tp","fp","tn","fn")) -> 12 2 70 29
    assert roc.confusion_at(asah_labels, asah["s100b"], 0.5) == {"tp": 12, "fp": 2, "tn": 70, "fn": 29}


def test_curve_matches_proc_coords_all(asah, asah_labels):
    # coords(roc(outcome, wfns), "all"): every threshold with its sensitivity and specificity.
    curve = roc.roc_curve(asah_labels, asah["wfns"])
    np.testing.assert_allclose(curve.thresholds, [-np.inf, 1.5, 2.5, 3.5, 4.5, np.inf])
    np.testing.assert_allclose(curve.sensitivity, [1, 0.951219512195122, 0.658536585365854, 0.634146341463415,
                                                   0.439024390243902, 0], atol=1e-12)
    np.testing.assert_allclose(curve.specificity, [0, 0.513888888888889, 0.791666666666667, 0.833333333333333,
                                                   0.944444444444444, 1], atol=1e-12)


def test_youden_ties_include_procs_and_are_exact():
    # pROC 1.18: controls = c(.1,.2,.3,.4,.6,.65); cases = c(.35,.5,.7,.8,.05,.62)
    # roc(controls=, cases=) -> AUC 0.666666666666667; coords(r, "best") gives two rows:
    # (0.325, 5/6, 1/2) and (0.61, 1/2, 5/6). Two more points, (0.45, 4/6, 4/6) and (0.675, 2/6, 1),
    # have the same sens + spec = 8/6 exactly, but pROC compares floating sums (4/6 + 4/6 is
    # 1.3333333333333333 while 5/6 + 1/2 is 1.3333333333333335) and drops them. We compare
    # exact integers and report all four.
    controls = [0.1, 0.2, 0.3, 0.4, 0.6, 0.65]
    cases = [0.35, 0.5, 0.7, 0.8, 0.05, 0.62]
    labels = np.array([0] * 6 + [1] * 6)
    scores = np.array(controls + cases)
    assert roc.auc(labels, scores) == pytest.approx(0.666666666666667, abs=TOL)
    choice = thresholds.choose_threshold(labels, scores, "youden")
    points = [(t["threshold"], t["sensitivity"], t["specificity"]) for t in choice.ties]
    for proc_point in [(0.325, 5 / 6, 1 / 2), (0.61, 1 / 2, 5 / 6)]:
        assert any(np.allclose(p, proc_point) for p in points)
    np.testing.assert_allclose(points, [(0.325, 5 / 6, 3 / 6), (0.45, 4 / 6, 4 / 6), (0.61, 3 / 6, 5 / 6),
                                        (0.675, 2 / 6, 6 / 6)])
    assert choice.threshold == pytest.approx(0.325)  # highest sensitivity among the tied
