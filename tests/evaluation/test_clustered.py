"""Clustered (patient-level) inference for the image-level AUC, against independent computations:

- a published worked example with its printed intermediate components (below);
- a hand-worked four-patient example in exact fractions;
- a line-by-line loop port of the reference R implementation (funcs_clusteredROC.R) on tied data
  with mixed and unequal clusters;
- DeLong's variance (delong.py, itself checked against pROC) when every cluster holds one image;
- a brute-force cluster bootstrap that rebuilds every resample row by row and scores it with
  scikit-learn, from the same multinomial draws.
"""

from fractions import Fraction

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from tfxray.errors import UserError
from tfxray.evaluation import clustered, delong

# ---------------------------------------------------------------------------------------------
# The published worked example of the Cleveland Clinic reference implementation of Obuchowski
# (1997) (funcs_clusteredROC.R, documented in its tutorial clusteredROC_help.pdf, Lerner Research
# Institute, Dept. of Quantitative Health Sciences; a copy ships in DIDSR/mitoticFigureCounts,
# inst/extra/docs/). Two readers score 65 arteries clustered in 36 patients (1 or 2 per patient);
# rows with a missing score are removed, as the reference does. Data and printed figures as
# transcribed in craignied/neuron, tests/clustered/check_clustered.cpp. Columns: patient,
# truth (1 = diseased), reader 1, reader 2.
MRA = np.array([
    (1, 1, 87, 87), (1, 1, 79, 83), (2, 1, 88, 94), (2, 1, 95, 93), (3, 1, 100, 100), (3, 1, 68, 79),
    (4, 1, 65, 61), (4, 1, 89, 91), (5, 1, 97, 97), (5, 1, 100, 100), (6, 1, 100, 99), (6, 1, 89, 88),
    (7, 1, 77, 77), (8, 1, 94, 89), (8, 0, 45, 44), (9, 1, 89, 92), (9, 0, -11, -17), (10, 1, 95, 91),
    (10, 0, 30, 14), (11, 1, 95, 95), (11, 0, 10, -122), (12, 1, 100, 100), (12, 0, 19, -3), (13, 1, 75, 75),
    (14, 0, 70, 73), (14, 1, 70, 81), (15, 0, 26, 27), (15, 1, 86, 93), (16, 0, 0, 8), (16, 1, 65, 70),
    (17, 0, 6, 23), (17, 1, 100, 100), (18, 0, 76, 79), (18, 1, 96, 95), (19, 0, 44, 55), (19, 1, 100, 100),
    (20, 0, 73, 67), (20, 1, 97, 94), (21, 1, 85, 86), (22, 0, 58, 60), (22, 1, 100, 99), (23, 0, -2, -2),
    (23, 1, 100, 100), (24, 0, -3, -14), (24, 0, 0, -11), (25, 0, 47, -3), (25, 0, -94, -90), (26, 0, -16, 17),
    (26, 0, 75, 85), (27, 0, 5, -22), (27, 0, -1, -14), (28, 0, -6, -52), (29, 0, 37, 38), (29, 0, 47, 35),
    (30, 0, 42, 40), (30, 0, 4, 6), (31, 0, 55, 23), (31, 0, 55, 45), (32, 0, 4, -87), (32, 0, -13, -65),
    (33, 0, 49, 24), (33, 0, 35, 9), (34, 0, 53, 66), (35, 0, 2, -15), (36, 0, -48, -78),
])
# Printed figures: I=36, I10=23, I01=27, M=29, N=36; AUC (SE) 0.9837 (0.0108) and 0.9852 (0.0097);
# reader 1's 95% CI (0.9625, 1.005); difference 0.0014 (SE 0.0066), CI (-0.0115, 0.0143), p 0.8271.
PUBLISHED_COMPONENTS = {
    "reader1": {"S10": 0.0013151307, "S01": 0.0022375873, "S11": 0.0051785478},
    "reader2": {"S10": 0.0009284122, "S01": 0.0022598583, "S11": -0.0005015760},
    "cross": {"S10_12": 0.0008484357, "S01_12": 0.0019241250, "S11_12": 0.0028648340, "S11_21": -0.0015136931},
}


def test_published_example_single_curves():
    truth, patient = MRA[:, 1], MRA[:, 0]
    r1 = clustered.clustered_auc(truth, MRA[:, 2], patient)
    r2 = clustered.clustered_auc(truth, MRA[:, 3], patient)
    for r in (r1, r2):
        assert (r["n_clusters"], r["n_clusters_with_cases"], r["n_clusters_with_controls"]) == (36, 23, 27)
        assert (r["n_images"], r["n_cases"], r["n_controls"]) == (65, 29, 36)
    assert r1["auc"] == pytest.approx(0.9837, abs=5e-5)
    assert r2["auc"] == pytest.approx(0.9852, abs=5e-5)
    assert r1["se"] == pytest.approx(0.0108, abs=5e-5)
    assert r2["se"] == pytest.approx(0.0097, abs=5e-5)
    assert r1["ci_unclipped"][0] == pytest.approx(0.9625, abs=5e-5)
    assert r1["ci_unclipped"][1] == pytest.approx(1.005, abs=5e-4)
    assert r1["ci"] == [pytest.approx(r1["ci_unclipped"][0]), 1.0]  # clipped as delong_ci
    for r, key in ((r1, "reader1"), (r2, "reader2")):
        for name, value in PUBLISHED_COMPONENTS[key].items():
            assert r["components"][name] == pytest.approx(value, abs=5e-11), (key, name)
    # the same AUC with every artery independent has a different SE
    assert abs(r1["delong_se"] - 0.0108) > 1e-4


def test_published_example_difference():
    truth, patient = MRA[:, 1], MRA[:, 0]
    t = clustered.clustered_paired_test(truth, MRA[:, 3], MRA[:, 2], patient)  # reader 2 - reader 1, as printed
    assert t["difference"] == pytest.approx(0.0014, abs=5e-5)
    assert t["se"] == pytest.approx(0.0066, abs=5e-5)
    assert t["ci_lower"] == pytest.approx(-0.0115, abs=5e-5)
    assert t["ci_upper"] == pytest.approx(0.0143, abs=5e-5)
    assert t["p"] == pytest.approx(0.8271, abs=5e-5)
    cross = t["components"]["ab"]  # a = reader 2, b = reader 1
    published = PUBLISHED_COMPONENTS["cross"]
    assert cross["S10"] == pytest.approx(published["S10_12"], abs=5e-11)
    assert cross["S01"] == pytest.approx(published["S01_12"], abs=5e-11)
    assert cross["S11_ba"] == pytest.approx(published["S11_12"], abs=5e-11)  # reader 1's cases x reader 2's controls
    assert cross["S11_ab"] == pytest.approx(published["S11_21"], abs=5e-11)


def test_hand_worked_example():
    """Four patients: P1 (case 0.8, control 0.4), P2 (case 0.6, control 0.7), P3 (case 0.9), P4 (control 0.2).

    psi(case, control): 0.8 beats all 3 controls, 0.6 beats 0.4 and 0.2, 0.9 beats all: A = 8/9.
    V10 = 1, 2/3, 1; V01 (of 0.4, 0.7, 0.2) = 1, 2/3, 1. Cluster sums, centred:
      a = V10_i. - m_i A = 1/9, -2/9, 1/9, 0;   b = V01_i. - n_i A = 1/9, -2/9, 0, 1/9.
    I = 4, I10 = I01 = 3, M = N = 3:
      S10 = 3/(2*3) * 6/81 = 1/27;  S01 = 1/27;  S11 = 4/3 * (1/81 + 4/81) = 20/243;
      Var = S10/3 + S01/3 + 2 S11/9 = 1/81 + 1/81 + 40/2187 = 94/2187,
    against DeLong's (patients ignored) 1/81 + 1/81 = 54/2187.
    """
    labels = [1, 0, 1, 0, 1, 0]
    scores = [0.8, 0.4, 0.6, 0.7, 0.9, 0.2]
    patients = ["P1", "P1", "P2", "P2", "P3", "P4"]
    r = clustered.clustered_auc(labels, scores, patients)
    assert r["auc"] == pytest.approx(8 / 9, abs=1e-15)
    assert r["components"]["S10"] == pytest.approx(float(Fraction(1, 27)), abs=1e-15)
    assert r["components"]["S01"] == pytest.approx(float(Fraction(1, 27)), abs=1e-15)
    assert r["components"]["S11"] == pytest.approx(float(Fraction(20, 243)), abs=1e-15)
    assert r["variance"] == pytest.approx(float(Fraction(94, 2187)), abs=1e-15)
    assert r["delong_se"] ** 2 == pytest.approx(float(Fraction(54, 2187)), abs=1e-15)
    assert r["variance_ratio"] == pytest.approx(94 / 54, rel=1e-12)
    half = stats.norm.ppf(0.975) * np.sqrt(94 / 2187)
    assert r["ci_unclipped"] == [pytest.approx(8 / 9 - half, abs=1e-14), pytest.approx(8 / 9 + half, abs=1e-14)]
    assert r["ci"][1] == 1.0
    assert r["images_per_cluster"] == {"min": 1, "median": 1.5, "max": 2}  # sizes 2, 2, 1, 1


def reference_port(labels, scores, clusters):
    """funcs_clusteredROC.R's clusteredROC (one curve), loop for loop, with psi(x, y) straight from the paper."""
    labels = np.asarray(labels, dtype=bool)
    xs, ys = scores[labels], scores[~labels]

    def kern(x, y):
        return 1.0 if x > y else (0.5 if x == y else 0.0)

    auc = sum(kern(x, y) for x in xs for y in ys) / (len(xs) * len(ys))
    ids = list(dict.fromkeys(clusters))
    big_i = len(ids)
    i01 = len({c for c, lab in zip(clusters, labels) if not lab})
    i10 = len({c for c, lab in zip(clusters, labels) if lab})
    m = np.array([sum(1 for c, lab in zip(clusters, labels) if c == i and lab) for i in ids])
    n = np.array([sum(1 for c, lab in zip(clusters, labels) if c == i and not lab) for i in ids])
    big_m, big_n = m.sum(), n.sum()
    x_comps, y_comps = np.zeros(big_i), np.zeros(big_i)
    for k, i in enumerate(ids):
        for s, c, lab in zip(scores, clusters, labels):
            if c != i:
                continue
            if lab:
                x_comps[k] += sum(kern(s, y) for y in ys) / len(ys)
            else:
                y_comps[k] += sum(kern(x, s) for x in xs) / len(xs)
    s10 = i10 / ((i10 - 1) * big_m) * np.sum((x_comps - m * auc) ** 2)
    s01 = i01 / ((i01 - 1) * big_n) * np.sum((y_comps - n * auc) ** 2)
    s11 = big_i / (big_i - 1) * np.sum((x_comps - m * auc) * (y_comps - n * auc))
    return auc, s10 / big_m + s01 / big_n + 2 * s11 / (big_m * big_n), (s10, s01, s11)


def clustered_data(seed, n_clusters=40, tie_levels=6, effect=0.55):
    """Patients with 1-4 images, a shared patient effect, mixed and one-class patients, rounded scores (ties)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 5, n_clusters)
    clusters = np.repeat([f"pt{i:03d}" for i in range(n_clusters)], sizes)
    prevalence = rng.random(n_clusters)[np.repeat(np.arange(n_clusters), sizes)]
    labels = rng.random(len(clusters)) < prevalence
    patient_effect = rng.normal(0, effect, n_clusters)[np.repeat(np.arange(n_clusters), sizes)]
    scores = np.round((labels * 1.0 + patient_effect + rng.normal(0, 0.8, len(clusters))) * tie_levels) / tie_levels
    return labels, scores, clusters


@pytest.mark.parametrize("seed", range(5))
def test_matches_a_loop_port_of_the_reference_implementation(seed):
    labels, scores, clusters = clustered_data(seed)
    assert len(np.unique(scores)) < len(scores) / 2  # ties within and across classes
    auc, variance, (s10, s01, s11) = reference_port(labels, scores, list(clusters))
    r = clustered.clustered_auc(labels, scores, clusters)
    assert r["auc"] == pytest.approx(auc, abs=1e-13)
    assert r["auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-13)
    assert r["components"]["S10"] == pytest.approx(s10, rel=1e-10)
    assert r["components"]["S01"] == pytest.approx(s01, rel=1e-10)
    assert r["components"]["S11"] == pytest.approx(s11, rel=1e-10, abs=1e-15)
    assert r["variance"] == pytest.approx(variance, rel=1e-10)


def test_invariant_to_cluster_naming_and_row_order():
    labels, scores, clusters = clustered_data(11)
    base = clustered.clustered_auc(labels, scores, clusters)
    renamed = np.array([hash(c) % 100_003 for c in clusters])  # non-dense integer ids
    assert len(np.unique(renamed)) == len(np.unique(clusters))
    perm = np.random.default_rng(0).permutation(len(labels))
    other = clustered.clustered_auc(labels[perm], scores[perm], renamed[perm])
    assert other["variance"] == pytest.approx(base["variance"], rel=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_one_image_per_cluster_is_delong_exactly(seed):
    rng = np.random.default_rng(seed)
    labels = rng.random(150) < 0.4
    scores = np.round(rng.normal(labels * 0.9, 1.0), 1)  # ties
    r = clustered.clustered_auc(labels, scores, np.arange(150))
    d = delong.delong_ci(labels, scores)
    assert r["components"]["S11"] == 0.0
    assert r["variance"] == pytest.approx(d.variance, rel=1e-13)
    assert r["ci"] == [pytest.approx(d.lower, abs=1e-13), pytest.approx(d.upper, abs=1e-13)]
    assert r["variance_ratio"] == pytest.approx(1.0, abs=1e-12)


def test_paired_test_without_clustering_is_delongs_paired_test():
    rng = np.random.default_rng(5)
    labels = rng.random(120) < 0.5
    a = rng.normal(labels * 1.0, 1.0)
    b = np.round(a + rng.normal(0, 0.8, 120), 1)
    t = clustered.clustered_paired_test(labels, a, b, np.arange(120))
    d = delong.paired_test(labels, a, b)
    for key in ("difference", "se", "z", "p", "ci_lower", "ci_upper", "correlation"):
        assert t[key] == pytest.approx(d[key], rel=1e-11, abs=1e-14), key


def test_direction_lower_and_auto():
    labels, scores, clusters = clustered_data(3)
    up = clustered.clustered_auc(labels, scores, clusters)
    down = clustered.clustered_auc(labels, -scores, clusters, direction=">")
    auto = clustered.clustered_auc(labels, -scores, clusters, direction="auto")
    assert down["auc"] == pytest.approx(up["auc"], abs=1e-14)
    assert down["variance"] == pytest.approx(up["variance"], rel=1e-12)
    assert auto["direction"] == ">"
    kept = clustered.clustered_auc(labels, -scores, clusters)  # '<' is not flipped
    assert kept["auc"] == pytest.approx(1 - up["auc"], abs=1e-14)
    named = clustered.clustered_auc(labels, -scores, clusters, direction="lower")  # --direction's names
    assert named["direction"] == ">" and named["variance"] == down["variance"]


def test_too_few_clusters_of_a_class_gives_no_se():
    # every case image in one patient: I10 = 1
    r = clustered.clustered_auc([1, 1, 0, 0, 0], [0.9, 0.8, 0.1, 0.5, 0.3], ["a", "a", "a", "b", "c"])
    assert np.isnan(r["se"]) and np.isnan(r["ci"][0])
    assert "at least 2 clusters" in r["note"]
    assert r["auc"] == pytest.approx(1.0)


@pytest.mark.parametrize("bad, message", [
    (dict(clusters=["a", "b", None, "c"]), "no cluster"),
    (dict(clusters=["a", "b"]), "2 cluster ids for 4 images"),
    (dict(labels=[1, 1, 1, 1]), "one class"),
    (dict(level=1.5), "confidence level"),
    (dict(direction="up"), "direction"),
])
def test_user_errors(bad, message):
    args = dict(labels=[1, 0, 1, 0], scores=[0.9, 0.2, 0.6, 0.4], clusters=["a", "b", "c", "c"], level=0.95,
                direction="<")
    args.update(bad)
    with pytest.raises(UserError, match=message):
        clustered.clustered_auc(**args)


# ---------------------------------------------------------------------------------------------
# cluster bootstrap


def brute_force_bootstrap(labels, scores, clusters, n_bootstrap, seed):
    """Rebuild each resample row by row from the same multinomial counts; sklearn scores it."""
    ids = list(dict.fromkeys(clusters))
    rows_of = {c: np.flatnonzero(clusters == c) for c in ids}
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(ids), np.full(len(ids), 1 / len(ids)), size=n_bootstrap)
    out = []
    for row in counts:
        take = np.concatenate([np.tile(rows_of[c], k) for c, k in zip(ids, row) if k > 0])
        y = labels[take]
        out.append(roc_auc_score(y, scores[take]) if 0 < y.sum() < len(y) else np.nan)
    return np.array(out)


@pytest.mark.parametrize("chunk_cells", [10**7, 500])  # one chunk, and many
def test_bootstrap_matches_brute_force_resampling(monkeypatch, chunk_cells):
    monkeypatch.setattr(clustered, "_CHUNK_CELLS", chunk_cells)
    labels, scores, clusters = clustered_data(7, n_clusters=12)
    result = clustered.cluster_bootstrap_auc(labels, scores, clusters, n_bootstrap=150, seed=42,
                                             return_resamples=True)
    expected = brute_force_bootstrap(labels, scores, clusters, 150, 42)
    np.testing.assert_allclose(result["resamples"], expected, atol=1e-12, equal_nan=True)
    used = expected[np.isfinite(expected)]
    assert result["n_used"] == len(used)
    assert result["ci"] == [pytest.approx(np.percentile(used, 2.5), abs=1e-12),
                            pytest.approx(np.percentile(used, 97.5), abs=1e-12)]
    assert result["se"] == pytest.approx(np.std(used, ddof=1), abs=1e-12)
    assert result["auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-13)


def test_bootstrap_degenerate_resamples_are_counted():
    # 3 patients, only one holds cases: many resamples miss it
    labels = np.array([1, 0, 0, 0, 0])
    clusters = np.array(["a", "a", "b", "c", "c"])
    r = clustered.cluster_bootstrap_auc(labels, [0.9, 0.1, 0.2, 0.3, 0.4], clusters, n_bootstrap=200, seed=1)
    assert r["n_degenerate"] > 0 and r["n_used"] + r["n_degenerate"] == 200
    assert "dropped" in r["note"]


def test_bootstrap_is_seeded():
    labels, scores, clusters = clustered_data(2)
    a = clustered.cluster_bootstrap_auc(labels, scores, clusters, n_bootstrap=200, seed=3)
    b = clustered.cluster_bootstrap_auc(labels, scores, clusters, n_bootstrap=200, seed=3)
    c = clustered.cluster_bootstrap_auc(labels, scores, clusters, n_bootstrap=200, seed=4)
    assert a == b and a["ci"] != c["ci"]


def test_bootstrap_and_obuchowski_agree_and_both_exceed_delong_with_one_class_patients():
    """Patients with one class only and a strong patient effect: images of a patient move together, so the
    image-independent DeLong SE is too small; the analytic and the resampling answers agree."""
    rng = np.random.default_rng(2024)
    n = 150
    sizes = rng.integers(1, 6, n)
    patient_label = rng.random(n) < 0.4
    effect = rng.normal(0, 0.9, n)
    labels = np.repeat(patient_label, sizes)
    clusters = np.repeat(np.arange(n), sizes)
    scores = np.repeat(patient_label * 1.0 + effect, sizes) + rng.normal(0, 0.5, len(labels))
    ob = clustered.clustered_auc(labels, scores, clusters)
    boot = clustered.cluster_bootstrap_auc(labels, scores, clusters, n_bootstrap=2000, seed=0)
    assert boot["se"] == pytest.approx(ob["se"], rel=0.12)
    assert ob["se"] > 1.4 * ob["delong_se"]
    assert ob["variance_ratio"] > 2
