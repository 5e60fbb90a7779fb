"""Subgroup metrics, the homogeneity test of AUCs and Holm's adjustment, against independent
computations: pROC's unpaired roc.test (pinned values, test_proc_reference.py), DeLong variances
from brute-force structural components, exact binomial CIs from scipy on counts made here, Holm's
step-down procedure run as written in Holm (1979), and a hand-worked textbook example.
(statsmodels, whose multipletests would be a further check, is not installed here.)
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from tfxray.errors import UserError
from tfxray.evaluation import subgroups


def brute_delong(y, s):
    """AUC and DeLong variance from psi(x, y) = 1, 1/2, 0 over all pairs (DeLong 1988)."""
    y = np.asarray(y, dtype=bool)
    x, c = s[y], s[~y]
    psi = (x[:, None] > c[None, :]) + 0.5 * (x[:, None] == c[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return psi.mean(), np.var(v10, ddof=1) / len(x) + np.var(v01, ddof=1) / len(c)


def exact_ci(k, n, level=0.95):
    """Clopper-Pearson from the beta quantiles (not via binomial.py)."""
    a = (1 - level) / 2
    lower = 0.0 if k == 0 else stats.beta.ppf(a, k, n - k + 1)
    upper = 1.0 if k == n else stats.beta.ppf(1 - a, k + 1, n - k)
    return lower, upper


def three_groups(seed=0):
    rng = np.random.default_rng(seed)
    groups = np.repeat(["site A", "site B", "site C"], [120, 90, 150])
    shift = np.repeat([1.4, 0.7, 1.0], [120, 90, 150])
    labels = rng.random(len(groups)) < 0.4
    scores = np.round(rng.normal(labels * shift, 1.0), 1)  # ties
    return labels, scores, groups


def test_per_group_metrics_match_independent_computations():
    labels, scores, groups = three_groups()
    table = subgroups.subgroup_table(labels, scores, groups, threshold=0.5)
    assert [g["group"] for g in table["groups"]] == ["site A", "site B", "site C"]
    z = stats.norm.ppf(0.975)
    for entry in table["groups"]:
        inside = groups == entry["group"]
        y, s = labels[inside], scores[inside]
        auc, var = brute_delong(y, s)
        assert entry["auc"]["value"] == pytest.approx(roc_auc_score(y, s), abs=1e-13)
        assert entry["auc"]["variance"] == pytest.approx(var, rel=1e-10)
        assert entry["auc"]["lower"] == pytest.approx(auc - z * np.sqrt(var), abs=1e-12)
        assert entry["auc"]["upper"] == pytest.approx(min(1.0, auc + z * np.sqrt(var)), abs=1e-12)
        tp, tn = int(np.sum(y & (s >= 0.5))), int(np.sum(~y & (s < 0.5)))
        assert (entry["n_cases"], entry["n_controls"]) == (int(y.sum()), int((~y).sum()))
        assert entry["sensitivity"]["value"] == pytest.approx(tp / y.sum())
        assert entry["specificity"]["value"] == pytest.approx(tn / (~y).sum())
        for key, k, n in (("sensitivity", tp, int(y.sum())), ("specificity", tn, int((~y).sum()))):
            lower, upper = exact_ci(k, n)
            assert entry[key]["lower"] == pytest.approx(lower, abs=1e-10)
            assert entry[key]["upper"] == pytest.approx(upper, abs=1e-10)
        assert entry["in_test"] and entry["note"] is None


def test_homogeneity_q_by_hand_and_pairs_holm_adjusted():
    labels, scores, groups = three_groups()
    table = subgroups.subgroup_table(labels, scores, groups, threshold=0.5)
    fits = [brute_delong(labels[groups == g], scores[groups == g]) for g in ("site A", "site B", "site C")]
    a = np.array([f[0] for f in fits])
    w = 1 / np.array([f[1] for f in fits])
    pooled = np.sum(w * a) / np.sum(w)
    q = np.sum(w * (a - pooled) ** 2)
    test = table["homogeneity"]
    assert test["q"] == pytest.approx(q, rel=1e-10)
    assert test["df"] == 2
    assert test["p"] == pytest.approx(stats.chi2.sf(q, 2), rel=1e-9)
    assert test["weighted_auc"] == pytest.approx(pooled, rel=1e-12)
    assert test["groups"] == ["site A", "site B", "site C"]
    pairs = table["pairwise"]
    assert [p["groups"] for p in pairs] == [["site A", "site B"], ["site A", "site C"], ["site B", "site C"]]
    raw = [p["p"] for p in pairs]
    order = np.argsort(raw)
    expected = np.maximum.accumulate(np.minimum(1, np.array([3, 2, 1]) * np.array(raw)[order]))
    for rank, i in enumerate(order):
        assert pairs[i]["p_adjusted"] == pytest.approx(expected[rank], rel=1e-12)
        assert pairs[i]["adjustment"]["method"] == "holm" and pairs[i]["adjustment"]["family_size"] == 3
    for p, (i, j) in zip(pairs, [(0, 1), (0, 2), (1, 2)]):  # each pair's D is (A_i - A_j) / sqrt(V_i + V_j)
        assert p["d"] == pytest.approx((a[i] - a[j]) / np.sqrt(1 / w[i] + 1 / w[j]), rel=1e-10)


def test_two_groups_q_is_the_squared_unpaired_d_and_matches_proc(asah, asah_labels):
    """pROC's roc.test(paired=FALSE) of s100b on the men against wfns on the women (pinned in
    test_proc_reference.py: D = -0.064358849365383, df = 86.265920730203391, p = 0.948833398776537),
    as a two-group subgroup table of one score column holding s100b for men and wfns for women."""
    male = (asah["gender"] == "Male").to_numpy()
    score = np.where(male, asah["s100b"], asah["wfns"])
    table = subgroups.subgroup_table(asah_labels, score, asah["gender"], threshold=1.0)
    female_entry, male_entry = table["groups"]
    assert (female_entry["group"], male_entry["group"]) == ("Female", "Male")
    assert male_entry["auc"]["value"] == pytest.approx(0.772727272727273, abs=1e-9)
    assert female_entry["auc"]["value"] == pytest.approx(0.778571428571428, abs=1e-9)
    (pair,) = table["pairwise"]
    assert pair["groups"] == ["Female", "Male"]
    assert pair["d"] == pytest.approx(0.064358849365383, abs=1e-9)  # Female - Male: pROC's sign reversed
    assert pair["df"] == pytest.approx(86.265920730203391, abs=1e-8)
    assert pair["p"] == pytest.approx(0.948833398776537, abs=1e-9)
    assert table["homogeneity"]["q"] == pytest.approx(pair["d"] ** 2, rel=1e-12)
    assert table["homogeneity"]["df"] == 1
    assert table["homogeneity"]["p"] == pytest.approx(2 * stats.norm.sf(abs(pair["d"])), rel=1e-10)
    assert pair["p_adjusted"] == pytest.approx(pair["p"])  # a family of one


def test_one_class_group_is_reported_not_dropped():
    labels, scores, groups = three_groups(1)
    groups = groups.astype(object)
    extra = np.array(["site D"] * 7, dtype=object)
    labels = np.r_[labels, np.ones(7, bool)]
    scores = np.r_[scores, np.linspace(0, 1.2, 7)]
    groups = np.r_[groups, extra]
    table = subgroups.subgroup_table(labels, scores, groups, threshold=0.5)
    d = table["groups"][-1]
    assert d["group"] == "site D" and d["auc"] is None and not d["in_test"]
    assert "only cases" in d["note"]
    assert d["sensitivity"]["value"] == pytest.approx(np.sum(np.linspace(0, 1.2, 7) >= 0.5) / 7)
    assert d["specificity"]["n"] == 0 and np.isnan(d["specificity"]["value"])
    assert any("site D" in n for n in table["notes"])
    assert table["homogeneity"]["groups"] == ["site A", "site B", "site C"]
    assert "1 of 4 groups left out" in table["homogeneity_note"]


def test_missing_group_values_form_their_own_group_and_perfect_groups_leave_the_test():
    labels = np.array([1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 1])
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.4, 0.6, 0.7, 0.3, 0.2, 0.5, 0.35, 0.65])
    groups = pd.Series(["m", "m", "m", "m", None, None, "f", "f", "f", "f", "f", "f"])
    table = subgroups.subgroup_table(labels, scores, groups, threshold=0.5)
    assert [g["group"] for g in table["groups"]] == ["f", "m", "(missing)"]
    m = table["groups"][1]
    assert m["auc"]["value"] == 1.0 and "variance 0" in m["note"] and not m["in_test"]
    missing = table["groups"][2]
    assert missing["n"] == 2 and "no DeLong variance" in missing["note"]
    assert table["homogeneity"] is None and "1 group(s)" in table["homogeneity_note"]


def test_direction_is_fixed_across_groups():
    rng = np.random.default_rng(3)
    labels = rng.random(200) < 0.5
    groups = np.repeat(["g1", "g2"], 100)
    scores = rng.normal(labels * np.where(groups == "g1", 1.5, -0.6), 1.0)  # g2 worse than chance
    table = subgroups.subgroup_table(labels, scores, groups, threshold=0.0, direction="auto")
    assert table["direction"] == "<"  # resolved once, on the pooled data
    g2 = table["groups"][1]
    assert g2["auc"]["value"] < 0.5  # not flipped into an AUC above 0.5
    assert g2["auc"]["value"] == pytest.approx(roc_auc_score(labels[100:], scores[100:]), abs=1e-13)


def test_lower_direction_threshold_semantics():
    labels = np.array([1, 1, 0, 0, 1, 0])
    scores = np.array([0.1, 0.3, 0.7, 0.9, 0.5, 0.5])
    table = subgroups.subgroup_table(labels, scores, ["a"] * 6, threshold=0.5, direction=">")
    (g,) = table["groups"]
    assert g["counts"] == {"tp": 3, "fp": 1, "tn": 2, "fn": 0}  # score <= 0.5 is positive
    assert table["homogeneity"] is None and table["homogeneity_note"] == "a single group: nothing to compare"


@pytest.mark.parametrize("kwargs, message", [
    (dict(groups=["a", "b"]), "2 group values for 4 rows"),
    (dict(threshold=float("nan")), "NaN"),
    (dict(labels=[0, 0, 0, 0]), "one class"),
    (dict(level=0), "confidence level"),
    (dict(direction="sideways"), "direction"),
])
def test_user_errors(kwargs, message):
    args = dict(labels=[1, 0, 1, 0], scores=[0.9, 0.1, 0.7, 0.4], groups=["a", "a", "b", "b"], threshold=0.5)
    args.update(kwargs)
    with pytest.raises(UserError, match=message):
        subgroups.subgroup_table(**args)


# ---------------------------------------------------------------------------------------------
# Holm


def test_holm_hand_worked_textbook_example():
    """Four hypotheses with p = 0.01, 0.04, 0.03, 0.005 (the worked example of the Wikipedia article
    'Holm-Bonferroni method'): sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 gives 0.02, 0.03, 0.06,
    0.04 -> running maximum 0.02, 0.03, 0.06, 0.06. At alpha = 0.05 H1 and H4 are rejected."""
    adjusted = subgroups.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02], rtol=1e-14)
    assert list(adjusted <= 0.05) == [True, False, False, True]


def holm_rejects(p, alpha):
    """Holm (1979) as stated: order the p-values; reject H_(1), H_(2), ... while p_(j) <= alpha / (m - j + 1)."""
    order = np.argsort(p, kind="stable")
    rejected = np.zeros(len(p), bool)
    for j, i in enumerate(order):
        if p[i] > alpha / (len(p) - j):
            break
        rejected[i] = True
    return rejected


@pytest.mark.parametrize("seed", range(5))
def test_holm_adjusted_p_is_the_smallest_alpha_that_rejects(seed):
    rng = np.random.default_rng(seed)
    p = np.round(rng.random(9) ** 3, 3)  # small p-values, some tied
    adjusted = subgroups.holm(p)
    alphas = np.r_[np.unique(adjusted), np.linspace(0.001, 0.999, 300)]
    for alpha in alphas[alphas < 1]:  # an adjusted p capped at 1 means "never rejected below alpha = 1"
        np.testing.assert_array_equal(adjusted <= alpha + 1e-15, holm_rejects(p, alpha + 1e-15))


def test_holm_nan_and_edge_cases():
    out = subgroups.holm([0.02, np.nan, 0.04])
    np.testing.assert_allclose(out, [0.04, np.nan, 0.04])  # m = 2: NaN not counted (R's p.adjust)
    assert subgroups.holm([]).shape == (0,)
    assert subgroups.holm([0.7, 0.9]).tolist() == [1.0, 1.0]
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        subgroups.holm([0.5, 1.5])


def test_adjust_report_comparisons_holm_and_unadjusted_flag():
    report = {"levels": {
        "image": {"comparisons": [{"models": ["a", "b"], "p": 0.01}, {"models": ["a", "c"], "p": 0.04},
                                  {"models": ["b", "c"], "p": 0.03}]},
        "patient": {"comparisons": [{"models": ["a", "b"], "p": 0.2}]},
    }}
    holm = subgroups.adjust_report_comparisons(report)
    assert "p_adjusted" not in report["levels"]["image"]["comparisons"][0]  # the input is not changed
    image = holm["levels"]["image"]["comparisons"]
    assert [c["p_adjusted"] for c in image] == pytest.approx([0.03, 0.06, 0.06])
    assert image[0]["adjustment"] == {"method": "holm", "family_size": 3, "note": "Holm-adjusted for 3 tests"}
    assert holm["levels"]["patient"]["comparisons"][0]["p_adjusted"] == pytest.approx(0.2)
    whole = subgroups.adjust_report_comparisons(report, family="report")
    assert [c["p_adjusted"] for c in whole["levels"]["image"]["comparisons"]] == pytest.approx([0.04, 0.09, 0.09])
    assert whole["levels"]["patient"]["comparisons"][0]["p_adjusted"] == pytest.approx(0.2)
    flagged = subgroups.adjust_report_comparisons(report, method="none")
    c = flagged["levels"]["image"]["comparisons"][1]
    assert "p_adjusted" not in c and c["adjustment"]["method"] == "none"
    assert c["adjustment"]["note"].startswith("unadjusted for multiple comparisons")
    with pytest.raises(UserError, match="holm, none"):
        subgroups.adjust_report_comparisons(report, method="bonferroni")
