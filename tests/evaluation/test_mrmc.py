"""MRMC ROC analysis (Obuchowski-Rockette, Hillis ddf) against published results and brute force.

Reference data: the Van Dyke et al. (1993) study (cine vs spin-echo MRI for aortic dissection; 5
readers, 2 modalities, 114 cases), LABMRMC file ``VD.lrc`` as distributed with the R package
RJafroc (``inst/extdata/datasets/VD.lrc``, its ``dataset02``); see /work/shared/data/README.md.
Published figures:
- Hillis (2007), "A comparison of denominator degrees of freedom methods for multiple observer ROC
  analysis", Stat Med 26:596-619: reader-averaged trapezoidal AUCs 0.8970 and 0.9408, F = 4.456,
  ddf_H = 15.26, p = 0.0517, 95% CI of the difference (-0.0880, 0.0004);
- RJafroc's documentation (RJafrocBook, "Illustrations using the Obuchowski Rockette method",
  ``StSignificanceTesting(dataset02, FOM = "Wilcoxon", method = "OR")`` and
  ``UtilORVarComponentsFactorial``), which also matches the Iowa OR-DBM MRMC 2.51 output and the
  R package MRMCaov: the per-reader AUCs, the variance components and the RRRC, FRRC and RRFC
  results pinned below to the digits printed there.
"""

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tfxray.errors import UserError
from tfxray.evaluation import mrmc

REPO = Path(__file__).resolve().parents[2]
VANDYKE_CANDIDATES = [
    Path(os.environ.get("TFXRAY_VANDYKE", "")),
    REPO / "tests" / "data" / "vandyke.lrc",
    REPO.parent / "shared" / "data" / "vandyke.lrc",
    Path("/work/shared/data/vandyke.lrc"),
]


@pytest.fixture(scope="module")
def vandyke() -> pd.DataFrame:
    for path in VANDYKE_CANDIDATES:
        if path.is_file():
            return mrmc.read_lrc(path)
    pytest.skip("Van Dyke data set not found (set TFXRAY_VANDYKE or put it in tests/data/vandyke.lrc)")


@pytest.fixture(scope="module")
def vd_report(vandyke) -> dict:
    return mrmc.mrmc_report(vandyke)


def synthetic(n_modalities=3, n_readers=4, n_diseased=7, n_normal=9, seed=0, levels=5) -> pd.DataFrame:
    """A fully crossed table of 1..levels ratings (many ties), diseased cases rated higher on average."""
    rng = np.random.default_rng(seed)
    truth = np.r_[np.ones(n_diseased, int), np.zeros(n_normal, int)]
    rows = []
    for i in range(n_modalities):
        for j in range(n_readers):
            latent = truth * (1.0 + 0.3 * i) + rng.normal(size=truth.size)
            ratings = np.clip(np.round(latent * 1.3 + 2.5), 1, levels)
            rows += [{"case": f"c{k}", "reader": f"r{j}", "modality": f"m{i}", "truth": truth[k],
                      "rating": ratings[k]} for k in range(truth.size)]
    return pd.DataFrame(rows)


def printed(text: str):
    """A value as a reference printed it: equal to within half a unit of its last printed digit."""
    mantissa = text.lower().split("e")[0]
    exponent = int(text.lower().split("e")[1]) if "e" in text.lower() else 0
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return pytest.approx(float(text), abs=0.5 * 10.0 ** (exponent - decimals), rel=0)


def wmw_auc(ratings, truth) -> float:
    """AUC from scipy's Mann-Whitney U (ties count 1/2)."""
    ratings, truth = np.asarray(ratings, float), np.asarray(truth, bool)
    u = stats.mannwhitneyu(ratings[truth], ratings[~truth]).statistic
    return u / (truth.sum() * (~truth).sum())


# ---------------------------------------------------------------------------------------------
# the Van Dyke data: the published figures


def test_read_lrc_vandyke(vandyke):
    assert vandyke.shape == (5 * 2 * 114, 5)
    assert list(pd.unique(vandyke["reader"])) == ["0", "1", "2", "3", "4"]
    assert list(pd.unique(vandyke["modality"])) == ["0", "1"]
    cases = vandyke.drop_duplicates("case")
    assert len(cases) == 114 and cases["truth"].sum() == 45
    assert set(cases.loc[cases["truth"] == 0, "case"]) == set(range(69))
    row = vandyke.set_index(["reader", "modality", "case"])["rating"]
    # first data rows of the file: "1 3 0", then the first diseased row "5 5 69"; the last row "2 3 113"
    assert (row[("0", "0", 0)], row[("0", "1", 0)]) == (1.0, 3.0)
    assert (row[("0", "0", 69)], row[("0", "1", 69)]) == (5.0, 5.0)
    assert (row[("4", "0", 113)], row[("4", "1", 113)]) == (2.0, 3.0)


def test_vandyke_published_figures(vd_report):
    head = vd_report["mrmc"]
    assert round(head["auc"]["0"]["value"], 4) == 0.8970
    assert round(head["auc"]["1"]["value"], 4) == 0.9408
    assert round(head["f"], 3) == 4.456
    assert head["ndf"] == 1
    assert round(head["ddf"], 2) == 15.26
    assert round(head["p"], 4) == 0.0517
    diff = head["ci_difference"]["0 - 1"]
    assert diff["modalities"] == ["0", "1"]
    assert (round(diff["lower"], 4), round(diff["upper"], 4)) == (-0.0880, 0.0004)


def test_vandyke_rrrc_matches_rjafroc(vd_report):
    rrrc = vd_report["analyses"]["rrrc"]
    assert rrrc["test"]["value"] == printed("4.4563187")
    assert rrrc["test"]["ddf"] == printed("15.259675")
    assert rrrc["test"]["p"] == printed("0.051665686")
    assert rrrc["test"]["ms_denominator"] == printed("0.0010762629")
    diff = rrrc["differences"]["0 - 1"]
    assert diff["estimate"] == printed("-0.043800322")
    assert diff["se"] == printed("0.02074862")  # MRMCaov
    assert diff["statistic"] == printed("-2.110999")
    assert (diff["lower"], diff["upper"]) == (printed("-0.087959499"),
                                              printed("0.00035885444"))
    # single-modality CIs (Hillis 2007, 5.3): RJafroc's ciAvgRdrEachTrt, MRMCaov's df and SE
    avg = rrrc["modality_auc"]
    assert (avg["0"]["lower"], avg["0"]["upper"]) == (printed("0.82522360"),
                                                      printed("0.96885048"))
    assert (avg["1"]["lower"], avg["1"]["upper"]) == (printed("0.89413783"),
                                                      printed("0.98753689"))
    assert (avg["0"]["df"], avg["1"]["df"]) == (printed("12.74465"), printed("12.71019"))
    assert (avg["0"]["se"], avg["1"]["se"]) == (printed("0.03317360"),
                                                printed("0.02156637"))


def test_vandyke_reader_aucs_and_variance_components_match_rjafroc(vd_report):
    rjafroc = {"0": ["0.91964573", "0.94782609"], "1": ["0.85877617", "0.90531401"],
               "2": ["0.90386473", "0.92173913"], "3": ["0.97310789", "0.99935588"],
               "4": ["0.82979066", "0.92995169"]}
    got = {(r["reader"], r["modality"]): r["auc"] for r in vd_report["per_reader"]}
    for reader, (a0, a1) in rjafroc.items():
        assert got[(reader, "0")] == printed(a0)
        assert got[(reader, "1")] == printed(a1)
    vc = vd_report["variance_components"]
    expected = {"ms_t": "0.00479617053", "ms_r": "0.00383619999", "ms_tr": "0.00055103062", "ss_r": "0.0153448000",
                "ss_tr": "0.0022041225", "var_r": "0.00153499935", "var_tr": "0.00020040252",
                "cov1": "0.00034661371", "cov2": "0.00034407483", "cov3": "0.00023902837", "var": "0.00080228827",
                "rho1": "0.43203138", "rho2": "0.42886683", "rho3": "0.29793328"}
    for key, value in expected.items():
        assert vc[key] == printed(value), key
    each_modality = {e["modality"]: e for e in vd_report["each_modality"]}
    for modality, (ms_r, var, cov2) in {"0": ("0.0030826287", "0.00101410277", "0.00048396180"),
                                        "1": ("0.0013046019", "0.00059047376", "0.00020418785")}.items():
        assert each_modality[modality]["ms_r"] == printed(ms_r)
        assert each_modality[modality]["var"] == printed(var)
        assert each_modality[modality]["cov2"] == printed(cov2)
    each_reader = {e["reader"]: e for e in vd_report["each_reader"]}
    for reader, (ms_t, var, cov1) in {"0": ("0.00039706618", "0.00069890056", "3.7346610e-04"),
                                      "1": ("0.00108288538", "0.00110605283", "7.6015978e-04"),
                                      "2": ("0.00015974702", "0.00084234345", "3.5532241e-04"),
                                      "3": ("0.00034447841", "0.00015057773", "1.0833995e-06"),
                                      "4": ("0.00501611603", "0.00121356676", "2.4303685e-04")}.items():
        assert each_reader[reader]["ms_t"] == printed(ms_t)
        assert each_reader[reader]["var"] == printed(var)
        assert each_reader[reader]["cov1"] == printed(cov1)


def test_vandyke_frrc_and_rrfc_match_rjafroc(vd_report):
    frrc = vd_report["analyses"]["frrc"]
    assert frrc["test"]["value"] == printed("5.4759532")
    assert frrc["test"]["p"] == printed("0.019279843")
    assert frrc["test"]["ms_denominator"] == pytest.approx(0.00087586039, rel=2e-8)
    d = frrc["differences"]["0 - 1"]
    assert (d["lower"], d["upper"]) == (printed("-0.080485914"), printed("-0.0071147303"))
    avg = frrc["modality_auc"]
    assert (avg["0"]["lower"], avg["0"]["upper"]) == (printed("0.84943008"),
                                                      printed("0.94464399"))
    assert (avg["1"]["lower"], avg["1"]["upper"]) == (printed("0.90795637"),
                                                      printed("0.97371835"))
    per_reader = frrc["reader_differences"]
    assert per_reader["4"]["0 - 1"]["se"] == printed("0.04405746")
    assert per_reader["4"]["0 - 1"]["p"] == printed("0.02300099")
    assert per_reader["1"]["0 - 1"]["upper"] == printed("0.005012792")
    rrfc = vd_report["analyses"]["rrfc"]
    assert rrfc["test"]["value"] == printed("8.704")
    assert rrfc["test"]["p"] == printed("0.041958752")
    assert (rrfc["test"]["ndf"], rrfc["test"]["ddf"]) == (1, 4)
    d = rrfc["differences"]["0 - 1"]
    assert (d["lower"], d["upper"]) == (printed("-0.085020224"), printed("-0.0025804202"))


def test_vandyke_aucs_are_mann_whitney(vandyke, vd_report):
    got = {(r["reader"], r["modality"]): r["auc"] for r in vd_report["per_reader"]}
    for (reader, modality), group in vandyke.groupby(["reader", "modality"]):
        assert got[(reader, modality)] == pytest.approx(wmw_auc(group["rating"], group["truth"]), abs=1e-14)


def test_rrfc_with_two_modalities_is_the_paired_t_test(vd_report):
    by = {(r["reader"], r["modality"]): r["auc"] for r in vd_report["per_reader"]}
    readers = vd_report["design"]["readers"]
    t = stats.ttest_rel([by[(r, "0")] for r in readers], [by[(r, "1")] for r in readers])
    rrfc = vd_report["analyses"]["rrfc"]
    assert rrfc["test"]["value"] == pytest.approx(t.statistic ** 2, rel=1e-12)
    assert rrfc["test"]["p"] == pytest.approx(t.pvalue, rel=1e-10)
    assert rrfc["differences"]["0 - 1"]["statistic"] == pytest.approx(t.statistic, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# brute force on synthetic tables


def test_jackknife_covariances_brute_force():
    reads = synthetic()
    result = mrmc.or_analysis(reads)
    modalities, readers = result["design"]["modalities"], result["design"]["readers"]
    cases = list(pd.unique(reads["case"]))
    n_case = len(cases)
    # leave each case out and recompute every AUC with scipy
    jack = np.empty((len(modalities), len(readers), n_case))
    for i, m in enumerate(modalities):
        for j, r in enumerate(readers):
            g = reads[(reads["modality"] == m) & (reads["reader"] == r)].set_index("case").loc[cases]
            for k in range(n_case):
                keep = np.arange(n_case) != k
                jack[i, j, k] = wmw_auc(g["rating"].to_numpy()[keep], g["truth"].to_numpy()[keep])
    # jackknife covariance (K-1)/K sum (x - xbar)(y - ybar), averaged the OR way with explicit loops
    sums = {"var": [], "cov1": [], "cov2": [], "cov3": []}
    for i in range(len(modalities)):
        for ip in range(len(modalities)):
            for j in range(len(readers)):
                for jp in range(len(readers)):
                    a, b = jack[i, j], jack[ip, jp]
                    c = (n_case - 1) / n_case * np.sum((a - a.mean()) * (b - b.mean()))
                    key = {(True, True): "var", (False, True): "cov1", (True, False): "cov2",
                           (False, False): "cov3"}[(i == ip, j == jp)]
                    sums[key].append(c)
    vc = result["variance_components"]
    for key, values in sums.items():
        assert vc[key] == pytest.approx(np.mean(values), rel=1e-12), key
    # the same from pseudo-values: cov(pseudo) / K
    auc = np.array([[wmw_auc(reads[(reads["modality"] == m) & (reads["reader"] == r)]["rating"],
                             reads[(reads["modality"] == m) & (reads["reader"] == r)]["truth"]) for r in readers]
                    for m in modalities])
    pseudo = n_case * auc[:, :, None] - (n_case - 1) * jack
    assert vc["var"] == pytest.approx(np.mean([np.var(pseudo[i, j], ddof=1) / n_case for i in range(3)
                                               for j in range(4)]), rel=1e-12)


def test_three_modalities_anova_and_f_from_first_principles():
    reads = synthetic(n_modalities=3, n_readers=4, seed=3)
    result = mrmc.or_analysis(reads)
    modalities, readers = result["design"]["modalities"], result["design"]["readers"]
    auc = {(r["modality"], r["reader"]): r["auc"] for r in result["per_reader"]}
    theta = np.array([[auc[(m, r)] for r in readers] for m in modalities])
    # MS(T*R): residual mean square of the additive two-way model, fitted by least squares
    n_mod, n_rdr = theta.shape
    design = np.column_stack([np.ones(theta.size)]
                             + [np.repeat(np.arange(n_mod) == i, n_rdr).astype(float) for i in range(1, n_mod)]
                             + [np.tile(np.arange(n_rdr) == j, n_mod).astype(float) for j in range(1, n_rdr)])
    coef, *_ = np.linalg.lstsq(design, theta.ravel(), rcond=None)
    residual = theta.ravel() - design @ coef
    ms_tr = residual @ residual / ((n_mod - 1) * (n_rdr - 1))
    vc = result["variance_components"]
    assert vc["ms_tr"] == pytest.approx(ms_tr, rel=1e-10)
    # MS(T): J times the variance of the modality means
    assert vc["ms_t"] == pytest.approx(n_rdr * np.var(theta.mean(axis=1), ddof=1), rel=1e-12)
    den = ms_tr + n_rdr * max(vc["cov2"] - vc["cov3"], 0)
    ddf = den ** 2 / (ms_tr ** 2 / ((n_mod - 1) * (n_rdr - 1)))
    rrrc = result["analyses"]["rrrc"]
    assert rrrc["test"]["value"] == pytest.approx(vc["ms_t"] / den, rel=1e-12)
    assert rrrc["test"]["ddf"] == pytest.approx(ddf, rel=1e-12)
    assert rrrc["test"]["p"] == pytest.approx(stats.f.sf(vc["ms_t"] / den, n_mod - 1, ddf), rel=1e-10)
    assert list(rrrc["differences"]) == ["m0 - m1", "m0 - m2", "m1 - m2"]
    d = rrrc["differences"]["m1 - m2"]
    se = math.sqrt(2 / n_rdr * den)
    assert d["estimate"] == pytest.approx(theta[1].mean() - theta[2].mean(), abs=1e-14)
    assert d["upper"] == pytest.approx(d["estimate"] + stats.t.ppf(0.975, ddf) * se, rel=1e-12)


def test_cov2_below_cov3_is_truncated_and_said():
    for seed in range(40):
        result = mrmc.or_analysis(synthetic(n_modalities=2, n_readers=3, seed=seed))
        vc = result["variance_components"]
        if vc["cov2"] < vc["cov3"]:
            break
    else:
        pytest.fail("no seed gave Cov2 < Cov3")
    rrrc = result["analyses"]["rrrc"]
    assert rrrc["test"]["ms_denominator"] == vc["ms_tr"]
    assert rrrc["test"]["ddf"] == pytest.approx(vc["df_tr"])
    assert any("Cov2" in n and "max(Cov2 - Cov3, 0)" in n for n in result["notes"])


# ---------------------------------------------------------------------------------------------
# checking the input


def test_validation_messages():
    good = synthetic(n_modalities=2, n_readers=2)
    with pytest.raises(UserError, match=r"missing column\(s\) truth, rating"):
        mrmc.validate_reads(good.drop(columns=["truth", "rating"]))
    bad = good.copy()
    bad.loc[(bad["case"] == "c3") & (bad["reader"] == "r1"), "truth"] = 0
    with pytest.raises(UserError, match=r"1 case\(s\) have a truth that differs between rows \(first: case 'c3'\)"):
        mrmc.validate_reads(bad)
    missing = good.drop(good.index[(good["reader"] == "r1") & (good["modality"] == "m0")
                                   & good["case"].isin(["c1", "c2", "c5"])])
    with pytest.raises(UserError, match=r"reader 'r1' in modality 'm0' lacks 3 of 16 cases \(e.g. 'c1', 'c2', 'c5'\)"):
        mrmc.validate_reads(missing)
    with pytest.raises(UserError, match=r"at least 2 readers, got 1 \('r0'\)"):
        mrmc.validate_reads(good[good["reader"] == "r0"])
    with pytest.raises(UserError, match=r"at least 2 modalities, got 1 \('m1'\)"):
        mrmc.or_analysis(good[good["modality"] == "m1"])
    with pytest.raises(UserError, match=r"2 duplicate read\(s\).*first: case 'c0', reader 'r0', modality 'm0'"):
        mrmc.validate_reads(pd.concat([good, good.iloc[[0, 1]]]))
    text = good.astype({"rating": object})
    text.loc[5, "rating"] = "high"
    with pytest.raises(UserError, match=r"rating must be a finite number, got 'high' in data row 6"):
        mrmc.validate_reads(text)
    with pytest.raises(UserError, match=r"truth must be 0/1 \(or name the positive label\)"):
        mrmc.validate_reads(good.assign(truth=good["truth"].map({1: "yes", 0: "no"})))
    with pytest.raises(UserError, match="every case is non-diseased"):
        mrmc.validate_reads(good.assign(truth=0))
    with pytest.raises(UserError, match=r"1 row\(s\) have no reader \(first: data row 3\)"):
        mrmc.validate_reads(good.assign(reader=lambda d: d["reader"].where(d.index != 2)))
    with pytest.raises(UserError, match="positive label 'fracture' is not in the truth column"):
        mrmc.validate_reads(good, positive="fracture")
    with pytest.raises(UserError) as caught:
        mrmc.validate_reads(missing)
    assert "\n" not in str(caught.value)  # one line


def test_positive_label_and_csv_round_trip(tmp_path, vandyke):
    table = vandyke.assign(truth=vandyke["truth"].map({1: "dissection", 0: "none"}))
    path = tmp_path / "reads.csv"
    table.to_csv(path, index=False)
    reads = mrmc.read_reads_csv(path, positive="dissection")
    assert reads["truth"].sum() == 5 * 2 * 45
    assert round(mrmc.mrmc_report(reads)["mrmc"]["f"], 3) == 4.456
    (tmp_path / "short.csv").write_text("case,reader,modality,truth\n1,a,b,0\n")
    with pytest.raises(UserError, match=r"short.csv: missing column\(s\) rating"):
        mrmc.read_reads_csv(tmp_path / "short.csv")
    with pytest.raises(UserError, match="no such file"):
        mrmc.read_reads_csv(tmp_path / "absent.csv")


# ---------------------------------------------------------------------------------------------
# the .lrc reader on small hand-written files

LRC = """Two readers, two modalities
R1
"unaided" "aided"
L S
1 5 n1
2 4 n2
3 3 n3
*
4 2 d1
5 1 d2
*
"R2"
2 4 n1
1 5 n2
1 5 n3
*
5 1 d1
3 3 d2
*
#
"""


def test_read_lrc_small_file_and_small_is_better_direction(tmp_path):
    path = tmp_path / "small.lrc"
    path.write_text(LRC)
    reads = mrmc.read_lrc(path)
    assert reads.attrs["title"] == "Two readers, two modalities"
    assert list(pd.unique(reads["reader"])) == ["R1", "R2"]
    assert list(pd.unique(reads["modality"])) == ["unaided", "aided"]
    # "aided" is S (smaller = more likely diseased): negated, so its AUC equals the reversed ratings' AUC
    by = {(r["reader"], r["modality"]): r["auc"] for r in mrmc.or_analysis(reads)["per_reader"]}
    assert by[("R1", "unaided")] == 1.0 and by[("R1", "aided")] == 1.0
    assert by[("R2", "unaided")] == pytest.approx(wmw_auc([2, 1, 1, 5, 3], [0, 0, 0, 1, 1]))
    assert by[("R2", "aided")] == pytest.approx(wmw_auc([-4, -5, -5, -1, -3], [0, 0, 0, 1, 1]))
    # no case identifiers: matched by position (non-diseased 1..K1, diseased K1+1..)
    plain = "\n".join(" ".join(line.split()[:2]) if line[:1].isdigit() else line for line in LRC.splitlines())
    path.write_text(plain)
    assert sorted(mrmc.read_lrc(path)["case"].unique()) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("change, message", [
    (lambda t: t.replace("L S", "L"), r"line 4: 1 direction\(s\) for 2 modalities"),
    (lambda t: t.replace("L S", "L X"), "line 4: direction 'X' is not L, LARGE, S or SMALL"),
    (lambda t: t.replace("2 4 n2", "2 n2"), "line 6: ratings must be numbers"),
    (lambda t: t.replace("2 4 n2", "2"), r"line 6: 1 rating\(s\) for 2 modalities"),
    (lambda t: t.replace("#\n", ""), "ended without the closing '#'"),
    (lambda t: t.replace("2 4 n2", "2 4"), "line 6: no case identifier, while other rows have one"),
    # R2 swaps the identifiers of a non-diseased and a diseased case
    (lambda t: t.replace("1 5 n3", "1 5 d2").replace("3 3 d2", "3 3 n3"),
     r"2 case\(s\) have a truth that differs between rows \(first: case 'n3'\)"),
])
def test_read_lrc_errors(tmp_path, change, message):
    path = tmp_path / "bad.lrc"
    path.write_text(change(LRC))
    with pytest.raises(UserError, match=message):
        mrmc.read_lrc(path)


# ---------------------------------------------------------------------------------------------
# a model as one more reader


def test_add_model_reader(vandyke):
    cases = vandyke.drop_duplicates("case")
    rng = np.random.default_rng(1)
    scores = dict(zip(cases["case"], cases["truth"] * 1.5 + rng.normal(size=len(cases))))
    with_model = mrmc.add_model_reader(vandyke, scores, "model")
    assert len(with_model) == len(vandyke) + 2 * 114
    result = mrmc.or_analysis(with_model)
    assert result["design"]["readers"][-1] == "model"
    by = {(r["reader"], r["modality"]): r["auc"] for r in result["per_reader"]}
    expected = wmw_auc(list(scores.values()), cases["truth"])
    assert by[("model", "0")] == pytest.approx(expected, abs=1e-14) and by[("model", "1")] == by[("model", "0")]
    # keys given as text find integer case ids
    assert len(mrmc.add_model_reader(vandyke, {str(k): v for k, v in scores.items()}, "m", "1")) == len(vandyke) + 114
    with pytest.raises(UserError, match=r"model reader '0': a reader of that name is already"):
        mrmc.add_model_reader(vandyke, scores, "0")
    with pytest.raises(UserError, match=r"1 of 114 cases have no score \(e.g. 5\)"):
        mrmc.add_model_reader(vandyke, {k: v for k, v in scores.items() if k != 5}, "model")
    with pytest.raises(UserError, match=r"1 scored case\(s\) are not in the reads table \(e.g. 'x9'\)"):
        mrmc.add_model_reader(vandyke, {**scores, "x9": 0.3}, "model")
    with pytest.raises(UserError, match=r"1 score\(s\) are not finite numbers \(first: case 7\)"):
        mrmc.add_model_reader(vandyke, {**scores, 7: float("nan")}, "model")
    # in one modality only, the design is no longer crossed, and the analysis says so
    with pytest.raises(UserError, match="reader 'model' in modality '0' lacks 114 of 114 cases"):
        mrmc.or_analysis(mrmc.add_model_reader(vandyke, scores, "model", modality="1"))


# ---------------------------------------------------------------------------------------------
# binary calls: McNemar


def exact_mcnemar_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value, written out: 2 P(X <= min(b, c)), X ~ Bin(b + c, 1/2), capped at 1."""
    n = b + c
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2 ** n)


def clopper_pearson(k: int, n: int, level=0.95):
    a = 1 - level
    lower = 0.0 if k == 0 else stats.beta.ppf(a / 2, k, n - k + 1)
    upper = 1.0 if k == n else stats.beta.ppf(1 - a / 2, k + 1, n - k)
    return lower, upper


def calls_table():
    # 10 diseased (d*) and 8 non-diseased (n*) cases; two readers; 0/1 calls without and with help
    truth = {f"d{i}": 1 for i in range(10)} | {f"n{i}": 0 for i in range(8)}
    calls = {
        ("A", "without"): {**{f"d{i}": int(i < 4) for i in range(10)}, **{f"n{i}": int(i < 3) for i in range(8)}},
        ("A", "with"): {**{f"d{i}": int(i < 9 and i != 1) for i in range(10)},
                        **{f"n{i}": int(i in (0, 5)) for i in range(8)}},
        ("B", "without"): {**{f"d{i}": int(i < 7) for i in range(10)}, **{f"n{i}": 0 for i in range(8)}},
        ("B", "with"): {**{f"d{i}": int(i < 7) for i in range(10)}, **{f"n{i}": 0 for i in range(8)}},
    }
    rows = [{"case": c, "reader": r, "modality": m, "truth": truth[c], "rating": v}
            for (r, m), cs in calls.items() for c, v in cs.items()]
    return pd.DataFrame(rows)


def test_reader_mcnemar_hand_worked():
    result = mrmc.reader_mcnemar(calls_table())
    assert (result["without"], result["with"]) == ("without", "with")
    a = {r["reader"]: r for r in result["readers"]}["A"]
    # sensitivity, reader A: without d0-d3 (4/10); with d0, d2-d8 (8/10): gained d4-d8 (5), lost d1 (1)
    sens = a["sensitivity"]
    assert (sens["without"]["k"], sens["with"]["k"], sens["gained"], sens["lost"]) == (4, 8, 5, 1)
    assert sens["p"] == pytest.approx(exact_mcnemar_p(5, 1), rel=1e-12)
    assert exact_mcnemar_p(5, 1) == pytest.approx(14 / 64)
    assert (sens["with"]["lower"], sens["with"]["upper"]) == pytest.approx(clopper_pearson(8, 10), rel=1e-9)
    # specificity, reader A: without n3-n7 correct (5/8); with all but n0, n5 (6/8): gained n1, n2; lost n5
    spec = a["specificity"]
    assert (spec["without"]["k"], spec["with"]["k"], spec["gained"], spec["lost"]) == (5, 6, 2, 1)
    assert spec["p"] == pytest.approx(1.0)
    assert (spec["without"]["lower"], spec["without"]["upper"]) == pytest.approx(clopper_pearson(5, 8), rel=1e-9)
    b = {r["reader"]: r for r in result["readers"]}["B"]
    assert (b["sensitivity"]["gained"], b["sensitivity"]["lost"], b["sensitivity"]["p"]) == (0, 0, 1.0)


def test_reader_mcnemar_cutoff_and_errors(vandyke):
    with pytest.raises(UserError, match=r"not 0/1 calls .*give a cut point \(--reader-cutoff\)"):
        mrmc.reader_mcnemar(vandyke)
    result = mrmc.reader_mcnemar(vandyke, cutoff=3, modalities=["1", "0"])
    assert (result["without"], result["with"]) == ("1", "0")
    r2 = {r["reader"]: r for r in result["readers"]}["2"]
    reads = vandyke[vandyke["reader"] == "2"].pivot(index="case", columns="modality", values="rating")
    truth = vandyke.drop_duplicates("case").set_index("case")["truth"].loc[reads.index] == 1
    positive = reads >= 3
    assert r2["sensitivity"]["without"]["k"] == int(positive.loc[truth, "1"].sum())
    assert r2["sensitivity"]["with"]["k"] == int(positive.loc[truth, "0"].sum())
    assert r2["specificity"]["with"]["k"] == int((~positive.loc[~truth, "0"]).sum())
    gained = int((~positive.loc[truth, "1"] & positive.loc[truth, "0"]).sum())
    lost = int((positive.loc[truth, "1"] & ~positive.loc[truth, "0"]).sum())
    assert (r2["sensitivity"]["gained"], r2["sensitivity"]["lost"]) == (gained, lost)
    assert r2["sensitivity"]["p"] == pytest.approx(exact_mcnemar_p(gained, lost), rel=1e-12)
    with pytest.raises(UserError, match="modality 'x' is not in the table"):
        mrmc.reader_mcnemar(vandyke, cutoff=3, modalities=["0", "x"])
    with pytest.raises(UserError, match="3 modalities"):
        mrmc.reader_mcnemar(synthetic(n_modalities=3), cutoff=3)


# ---------------------------------------------------------------------------------------------
# the report and its files


def test_report_with_calls_includes_mcnemar():
    report = mrmc.mrmc_report(calls_table())
    assert report["mcnemar"]["readers"][0]["reader"] == "A"
    assert not any("McNemar" in n for n in report["notes"])
    # a binary call's AUC is (sensitivity + specificity) / 2
    by = {(r["reader"], r["modality"]): r["auc"] for r in report["per_reader"]}
    assert by[("A", "with")] == pytest.approx((8 / 10 + 6 / 8) / 2)


def test_report_keys_and_files(tmp_path, vd_report):
    assert set(vd_report["mrmc"]) >= {"f", "ddf", "p", "auc", "ci_difference"}
    assert set(vd_report["analyses"]) == {"rrrc", "frrc", "rrfc"}
    assert vd_report["mcnemar"] is None
    assert any("no McNemar comparison" in n for n in vd_report["notes"])
    paths = mrmc.write_mrmc_report(vd_report, tmp_path / "out")
    assert set(paths) == {"json", "md", "png", "svg"}
    data = json.loads(paths["json"].read_text())
    assert round(data["mrmc"]["f"], 3) == 4.456 and data["mrmc"]["auc"]["1"]["value"] == pytest.approx(0.9408374)
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in paths["svg"].read_text()[:2000]
    md = paths["md"].read_text()
    assert "F = 4.456 on 1 and 15.26 df, p = 0.0517" in md
    assert "| 0 - 1 | -0.0438 | -0.0880 to 0.0004 |" in md
    assert "![Reader AUCs per modality](mrmc.png)" in md
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["mrmc.json", "mrmc.md", "mrmc.png", "mrmc.svg"]


def test_report_of_three_modalities_and_many_readers(tmp_path):
    reads = synthetic(n_modalities=3, n_readers=11, seed=5)
    report = mrmc.mrmc_report(reads, reader_cutoff=3)
    assert report["mcnemar"] is None
    assert any("3 modalities; name the two to compare" in n for n in report["notes"])
    assert list(report["mrmc"]["ci_difference"]) == ["m0 - m1", "m0 - m2", "m1 - m2"]
    chosen = mrmc.mrmc_report(reads, reader_cutoff=3, mcnemar_modalities=["m0", "m2"])["mcnemar"]
    assert (chosen["without"], chosen["with"], len(chosen["readers"])) == ("m0", "m2", 11)
    paths = mrmc.write_mrmc_report(report, tmp_path)
    md = paths["md"].read_text()
    assert "| RRFC | readers random, cases fixed | F = " in md and "| 2, 20 |" in md
    assert paths["png"].stat().st_size > 0 and paths["svg"].stat().st_size > 0
