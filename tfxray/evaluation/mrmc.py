"""Multi-reader multi-case (MRMC) ROC analysis: Obuchowski-Rockette with Hillis' degrees of freedom.

A *reads table* has one row per case x reader x modality, with the columns ``case, reader,
modality, truth, rating``: ``truth`` is 0/1 (or the ``positive`` label against anything else),
``rating`` is higher = more likely diseased. The design must be fully crossed (every reader reads
every case in every modality).

The analysis follows the Obuchowski-Rockette (OR) model as RJafroc (``StSignificanceTesting``,
``method = "OR"``, ``covEstMethod = "jackknife"``) and the Iowa OR-DBM MRMC software compute it:

- figure of merit: each reader x modality's trapezoidal AUC = the Wilcoxon-Mann-Whitney statistic,
  P(diseased rating > non-diseased rating) + P(tie) / 2;
- Var, Cov1 (same reader, other modality), Cov2 (same modality, other reader) and Cov3 (other
  reader, other modality) from the jackknife: the covariances over cases of the *leave-one-case-out*
  AUCs, times (K - 1)^2 / K (RJafroc's ``FOMijk2VC``, Efron-Stein). That is the same as
  cov(pseudo-values) / K, the pseudo-values being K theta - (K - 1) theta_(k);
- the modality x reader ANOVA of the AUCs: MS(T), MS(R), MS(T*R);
- random readers and random cases (RRRC): F = MS(T) / (MS(T*R) + J max(Cov2 - Cov3, 0)) on
  (I - 1, ddf_H) degrees of freedom, ddf_H = (MS(T*R) + J max(Cov2 - Cov3, 0))^2 /
  (MS(T*R)^2 / ((I - 1)(J - 1))) (Hillis 2007, Stat Med 26:596; Hillis 2008); pairwise
  differences of reader-averaged AUCs with SE sqrt(2/J (MS(T*R) + J max(Cov2 - Cov3, 0))) and t on
  ddf_H; each modality's reader-averaged AUC from that modality's data alone (Hillis 2007, 5.3);
- fixed readers, random cases (FRRC): chi-square = (I - 1) MS(T) / (Var - Cov1 + (J - 1)
  max(Cov2 - Cov3, 0)) on I - 1 df, normal-theory CIs; single-reader differences;
- random readers, fixed cases (RRFC): F = MS(T) / MS(T*R) on (I - 1, (I - 1)(J - 1)) df (the
  paired t-test of reader AUCs when I = 2).

I modalities, J readers, K cases. The reference results (Van Dyke et al. 1993, Hillis 2007, RJafroc's
``dataset02``) are asserted in tests/evaluation/test_mrmc.py.

``reader_mcnemar`` compares each reader's sensitivity and specificity without and with
assistance (two modalities) by McNemar's exact test on the discordant cases, with
Clopper-Pearson CIs. ``read_lrc`` reads the LABMRMC ``.lrc`` format, ``read_reads_csv`` a reads CSV.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import UserError
from ..io import atomic_save_figure, atomic_write_text
from . import binomial
from .table import read_table_csv

COLUMNS = ("case", "reader", "modality", "truth", "rating")
LEVEL = 0.95
SCHEMA = "tfxray.mrmc/1"

# Okabe-Ito: distinguishable with the common colour-vision deficiencies (black is the average).
READER_COLORS = ("#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#F0E442", "#999999")
READER_MARKERS = ("o", "s", "^", "v", "P", "X", "<", ">", "h", "p")  # "D" is the average's
READER_LINESTYLES = ("-", "--", "-.", ":")
AVERAGE_COLOR = "#000000"
DPI = 300


# ---------------------------------------------------------------------------------------------
# reading and checking a reads table


def _show(value) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _examples(values, n: int = 3) -> str:
    values = list(values)
    shown = ", ".join(_show(v) for v in values[:n])
    return shown + (", ..." if len(values) > n else "")


def _same_label(value, wanted) -> bool:
    """Labels match as text, or as numbers when both sides are numbers (1 == "1.0")."""
    if str(value) == str(wanted):
        return True
    try:
        return float(value) == float(wanted)
    except (TypeError, ValueError):
        return False


def _truth_as_binary(truth: pd.Series, positive, source: str) -> np.ndarray:
    values = pd.unique(truth)
    if positive is not None:
        hits = np.array([_same_label(v, positive) for v in truth], dtype=bool)
        if not hits.any():
            raise UserError(f"{source}: positive label {_show(positive)} is not in the truth column "
                            f"(values: {_examples(values, 6)})")
        return hits.astype(np.int64)
    if truth.dtype == bool:
        return truth.to_numpy().astype(np.int64)
    numeric = pd.to_numeric(truth, errors="coerce")
    if numeric.isna().any() or not numeric.isin([0, 1]).all():
        raise UserError(f"{source}: truth must be 0/1 (or name the positive label), got values "
                        f"{_examples(values, 6)}")
    return numeric.to_numpy().astype(np.int64)


def validate_reads(reads: pd.DataFrame, positive=None, *, min_readers: int = 2, min_modalities: int = 2,
                   source: str = "reads table") -> pd.DataFrame:
    """The reads table checked and normalised, or a one-line UserError naming the problem.

    Returns a new frame with exactly the columns ``case, reader, modality, truth, rating``:
    reader and modality as text, truth as 0/1 integers, rating as float; rows in the given order.
    Checks: the columns exist; no empty cell; ratings are finite numbers; truth is 0/1 (or
    ``positive`` names the diseased label) with both classes present; no case x reader x
    modality twice; each case has one truth; at least ``min_readers`` readers and
    ``min_modalities`` modalities; every reader read every case in every modality.
    """
    if not isinstance(reads, pd.DataFrame):
        raise UserError(f"{source}: expected a table (DataFrame), got {type(reads).__name__}")
    missing = [c for c in COLUMNS if c not in reads.columns]
    if missing:
        have = ", ".join(map(str, reads.columns[:20])) + (" ..." if len(reads.columns) > 20 else "")
        raise UserError(f"{source}: missing column(s) {', '.join(missing)} (needs {', '.join(COLUMNS)}; "
                        f"has {have or 'none'})")
    if reads.empty:
        raise UserError(f"{source}: no reads (the table has no rows)")
    df = reads.loc[:, list(COLUMNS)].reset_index(drop=True)
    for column in COLUMNS:
        empty = df[column].isna() | (df[column].astype(str).str.strip() == "")
        if empty.any():
            first = int(np.flatnonzero(empty.to_numpy())[0])
            raise UserError(f"{source}: {int(empty.sum())} row(s) have no {column} (first: data row {first + 1})")
    rating = pd.to_numeric(df["rating"], errors="coerce")
    bad = rating.isna() | ~np.isfinite(rating.to_numpy(dtype=float, na_value=np.nan))
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise UserError(f"{source}: rating must be a finite number, got {_show(df['rating'].iloc[first])} "
                        f"in data row {first + 1} ({int(bad.sum())} such row(s))")
    out = pd.DataFrame({
        "case": df["case"].to_numpy(),
        "reader": df["reader"].astype(str).to_numpy(),
        "modality": df["modality"].astype(str).to_numpy(),
        "truth": _truth_as_binary(df["truth"], positive, source),
        "rating": rating.to_numpy(dtype=float),
    })
    key = ["case", "reader", "modality"]
    duplicated = out.duplicated(key, keep="first")
    if duplicated.any():
        first = out.loc[duplicated].iloc[0]
        raise UserError(f"{source}: {int(duplicated.sum())} duplicate read(s) of a case by the same reader in the "
                        f"same modality (first: case {_show(first['case'])}, reader {first['reader']!r}, "
                        f"modality {first['modality']!r})")
    per_case = out.groupby("case", sort=False)["truth"].nunique()
    conflicting = per_case[per_case > 1]
    if len(conflicting):
        raise UserError(f"{source}: {len(conflicting)} case(s) have a truth that differs between rows "
                        f"(first: case {_show(conflicting.index[0])})")
    truth = out.drop_duplicates("case")["truth"]
    if truth.nunique() < 2:
        kind = "diseased (truth 1)" if truth.iloc[0] == 1 else "non-diseased (truth 0)"
        raise UserError(f"{source}: every case is {kind}; ROC analysis needs both diseased and non-diseased cases")
    readers = list(pd.unique(out["reader"]))
    modalities = list(pd.unique(out["modality"]))
    if len(readers) < min_readers:
        raise UserError(f"{source}: the MRMC analysis needs at least {min_readers} readers, got {len(readers)} "
                        f"({_examples(readers)})")
    if len(modalities) < min_modalities:
        raise UserError(f"{source}: the MRMC analysis needs at least {min_modalities} modalities, got "
                        f"{len(modalities)} ({_examples(modalities)})")
    cases = pd.unique(out["case"])
    counts = out.groupby(["reader", "modality"], sort=False).size()
    incomplete = [(r, m) for r in readers for m in modalities if counts.get((r, m), 0) != len(cases)]
    if incomplete:
        r, m = incomplete[0]
        have = set(out.loc[(out["reader"] == r) & (out["modality"] == m), "case"])
        lacking = [c for c in cases if c not in have]
        more = f"; {len(incomplete)} reader x modality pairs are incomplete" if len(incomplete) > 1 else ""
        raise UserError(f"{source}: reader {r!r} in modality {m!r} lacks {len(lacking)} of {len(cases)} cases "
                        f"(e.g. {_examples(lacking)}); the design must be fully crossed (every reader reads every "
                        f"case in every modality){more}")
    return out


def read_reads_csv(path, positive=None, *, min_readers: int = 2, min_modalities: int = 2) -> pd.DataFrame:
    """A reads CSV (columns case, reader, modality, truth, rating), checked by ``validate_reads``.

    Reader, modality and case names are read as text, so "01" stays "01"."""
    path = Path(path)
    df = read_table_csv(path, dtype={"case": str, "reader": str, "modality": str})
    return validate_reads(df, positive, min_readers=min_readers, min_modalities=min_modalities, source=str(path))


def _lrc_names(line: str) -> list[str]:
    quoted = re.findall(r'"([^"]*)"', line)
    names = [q.strip() for q in quoted] if quoted else line.split()
    return [n for n in names if n]


def _lrc_case_id(token: str):
    try:
        return int(token)
    except ValueError:
        return token


def read_lrc(path) -> pd.DataFrame:
    """A LABMRMC ``.lrc`` file as a reads table (checked by ``validate_reads``; at least 1 reader
    and 1 modality).

    Layout (as RJafroc's ``ReadLrc`` reads it): a title line; the first reader's name; the
    modality names (``"0" "1"``); one direction per modality (``L``/``LARGE``: larger = more
    likely diseased, ``S``/``SMALL``: smaller); then per reader: rows of non-diseased cases (one
    rating per modality, then optionally a case identifier) up to ``*``, rows of diseased cases up
    to ``*``, then the next reader's name, or ``#`` to end. Blank lines are skipped.

    Cases are matched across readers by their identifier when every row has one, else by
    position (non-diseased cases numbered 1..K1, diseased K1+1..K1+K2). Ratings of an ``S``
    modality are negated so that higher always means more likely diseased (RJafroc flips only
    the non-diseased ratings of such a modality). The title is kept in ``df.attrs["title"]``.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file (an .lrc file is plain text)") from None
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if len(lines) < 5:
        raise UserError(f"{path}: too short for an .lrc file (title, reader, modalities, directions, ratings)")
    title = lines[0][1]
    reader = lines[1][1].strip('"').strip()
    modalities = _lrc_names(lines[2][1])
    n_mod = len(modalities)
    if n_mod == 0:
        raise UserError(f"{path}: line {lines[2][0]}: no modality names")
    directions = lines[3][1].replace('"', " ").split()
    if len(directions) != n_mod:
        raise UserError(f"{path}: line {lines[3][0]}: {len(directions)} direction(s) for {n_mod} modalities")
    flip = []
    for word in directions:
        if word.upper() in ("L", "LARGE"):
            flip.append(False)
        elif word.upper() in ("S", "SMALL"):
            flip.append(True)
        else:
            raise UserError(f"{path}: line {lines[3][0]}: direction {word!r} is not L, LARGE, S or SMALL")

    rows = []  # (reader, truth, position, case id or None, ratings, line number)
    position = 4
    while True:
        for truth in (0, 1):
            count = 0
            while True:
                if position >= len(lines):
                    raise UserError(f"{path}: ended inside reader {reader!r}'s ratings (no '*' and '#')")
                number, line = lines[position]
                position += 1
                if line == "*":
                    break
                tokens = line.split()
                try:
                    ratings = [float(t) for t in tokens[:n_mod]]
                except ValueError:
                    raise UserError(f"{path}: line {number}: ratings must be numbers, got {line!r}") from None
                if len(ratings) < n_mod:
                    raise UserError(f"{path}: line {number}: {len(ratings)} rating(s) for {n_mod} modalities")
                case = _lrc_case_id(tokens[n_mod]) if len(tokens) > n_mod else None
                count += 1
                rows.append((reader, truth, count, case, ratings, number))
        if position >= len(lines):
            raise UserError(f"{path}: ended without the closing '#'")
        number, line = lines[position]
        position += 1
        if line == "#":
            break
        reader = line.strip('"').strip()
    with_id = [r[3] is not None for r in rows]
    if any(with_id) and not all(with_id):
        first = rows[with_id.index(False)]
        raise UserError(f"{path}: line {first[5]}: no case identifier, while other rows have one")
    if not all(with_id):
        n_negative = max((r[2] for r in rows if r[1] == 0), default=0)
        rows = [(r[0], r[1], r[2], r[2] + (n_negative if r[1] else 0), r[4], r[5]) for r in rows]
    records = [{"case": case, "reader": rdr, "modality": modalities[i], "truth": truth,
                "rating": -ratings[i] if flip[i] else ratings[i]}
               for rdr, truth, _, case, ratings, _ in rows for i in range(n_mod)]
    df = validate_reads(pd.DataFrame.from_records(records, columns=list(COLUMNS)), min_readers=1,
                        min_modalities=1, source=str(path))
    df.attrs["title"] = title
    return df


def add_model_reader(reads: pd.DataFrame, scores_by_case, name: str, modality=None) -> pd.DataFrame:
    """The reads table with a model added as one more reader.

    ``scores_by_case``: a mapping (or Series) from case to the model's score, higher = more
    likely diseased; every case of the table needs a score and every score a case. ``modality``:
    the modality (or list of modalities) in which the model reads; None = every modality of the
    table, with the same score in each (a model reads the same way with or without assistance),
    which keeps the design fully crossed. The truth comes from the reads table.
    """
    reads = validate_reads(reads, min_readers=1, min_modalities=1)
    name = str(name)
    if name in set(reads["reader"]):
        raise UserError(f"model reader {name!r}: a reader of that name is already in the reads table")
    scores = scores_by_case if isinstance(scores_by_case, pd.Series) else pd.Series(dict(scores_by_case))
    if scores.index.has_duplicates:
        raise UserError(f"model reader {name!r}: case {_show(scores.index[scores.index.duplicated()][0])} "
                        "has more than one score")
    values = pd.to_numeric(scores, errors="coerce")
    bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
    if bad.any():
        raise UserError(f"model reader {name!r}: {int(bad.sum())} score(s) are not finite numbers "
                        f"(first: case {_show(values.index[bad.to_numpy()][0])})")
    cases = reads.drop_duplicates("case")[["case", "truth"]]
    known = set(cases["case"])
    by_text = {str(c): c for c in cases["case"]}  # "12" in a mapping finds case 12, and the reverse
    lookup, extra = {}, []
    for case, value in values.items():
        if case in known:
            lookup[case] = float(value)
        elif str(case) in by_text:
            lookup[by_text[str(case)]] = float(value)
        else:
            extra.append(case)
    if extra:
        raise UserError(f"model reader {name!r}: {len(extra)} scored case(s) are not in the reads table "
                        f"(e.g. {_examples(extra)})")
    unscored = [c for c in cases["case"] if c not in lookup]
    if unscored:
        raise UserError(f"model reader {name!r}: {len(unscored)} of {len(cases)} cases have no score "
                        f"(e.g. {_examples(unscored)})")
    present = list(pd.unique(reads["modality"]))
    if modality is None:
        chosen = present
    else:
        chosen = [str(modality)] if isinstance(modality, str) or not isinstance(modality, Sequence) \
            else [str(m) for m in modality]
    added = pd.DataFrame([{"case": c, "reader": name, "modality": m, "truth": t, "rating": lookup[c]}
                          for m in chosen for c, t in zip(cases["case"], cases["truth"])], columns=list(COLUMNS))
    return pd.concat([reads, added], ignore_index=True)


# ---------------------------------------------------------------------------------------------
# the figure of merit and its jackknife


def _arrays(reads: pd.DataFrame):
    """(ratings [I, J, K], truth [K] bool, cases, readers, modalities) of a validated table."""
    readers = list(pd.unique(reads["reader"]))
    modalities = list(pd.unique(reads["modality"]))
    cases = list(pd.unique(reads["case"]))
    case_index = {c: k for k, c in enumerate(cases)}
    reader_index = {r: j for j, r in enumerate(readers)}
    modality_index = {m: i for i, m in enumerate(modalities)}
    ratings = np.full((len(modalities), len(readers), len(cases)), np.nan)
    ratings[reads["modality"].map(modality_index).to_numpy(), reads["reader"].map(reader_index).to_numpy(),
            reads["case"].map(case_index).to_numpy()] = reads["rating"].to_numpy()
    truth = reads.drop_duplicates("case").set_index("case").loc[cases, "truth"].to_numpy() == 1
    return ratings, truth, cases, readers, modalities


def _psi(diseased: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Wilcoxon kernel [K2, K1]: 1 if the diseased rating is higher, 1/2 on a tie, else 0."""
    d, n = diseased[:, None], normal[None, :]
    return (d > n) + 0.5 * (d == n)


def auc_and_jackknife(ratings: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Trapezoidal AUCs [I, J] and leave-one-case-out AUCs [I, J, K] of ratings [I, J, K]."""
    truth = np.asarray(truth, dtype=bool)
    k1, k2 = int((~truth).sum()), int(truth.sum())
    if k1 < 2 or k2 < 2:
        raise UserError(f"the jackknife needs at least 2 diseased and 2 non-diseased cases, got {k2} and {k1}")
    n_mod, n_rdr, n_case = ratings.shape
    auc = np.empty((n_mod, n_rdr))
    jack = np.empty((n_mod, n_rdr, n_case))
    for i, j in itertools.product(range(n_mod), range(n_rdr)):
        psi = _psi(ratings[i, j, truth], ratings[i, j, ~truth])
        total = psi.sum()
        auc[i, j] = total / (k1 * k2)
        jack[i, j, ~truth] = (total - psi.sum(axis=0)) / ((k1 - 1) * k2)
        jack[i, j, truth] = (total - psi.sum(axis=1)) / (k1 * (k2 - 1))
    return auc, jack


def jackknife_covariance(jack: np.ndarray) -> np.ndarray:
    """Covariances [I, J, I, J] of the AUCs over cases from leave-one-out AUCs [I, J, K]:
    cov(theta_(k)) (K - 1)^2 / K, as RJafroc's ``FOMijk2VC`` (= cov(pseudo-values) / K)."""
    n_mod, n_rdr, n_case = jack.shape
    flat = jack.reshape(n_mod * n_rdr, n_case)
    cov = np.atleast_2d(np.cov(flat)) * (n_case - 1) ** 2 / n_case
    return cov.reshape(n_mod, n_rdr, n_mod, n_rdr)


def or_covariances(cov: np.ndarray) -> dict:
    """Var and Cov1, Cov2, Cov3: the OR averages of a [I, J, I, J] covariance array."""
    n_mod, n_rdr = cov.shape[:2]
    same_mod = np.eye(n_mod, dtype=bool)[:, None, :, None]
    same_rdr = np.eye(n_rdr, dtype=bool)[None, :, None, :]
    shape = cov.shape

    def mean(mask):
        mask = np.broadcast_to(mask, shape)
        return float(cov[mask].mean()) if mask.any() else 0.0

    return {"var": mean(same_mod & same_rdr), "cov1": mean(~same_mod & same_rdr),
            "cov2": mean(same_mod & ~same_rdr), "cov3": mean(~same_mod & ~same_rdr)}


# ---------------------------------------------------------------------------------------------
# the OR analysis


def _f_sf(f: float, ndf: float, ddf: float) -> float:
    if math.isnan(f):
        return math.nan
    if math.isinf(ddf):
        return float(stats.chi2.sf(f * ndf, ndf))
    return float(stats.f.sf(f, ndf, ddf))


def _t_quantile(q: float, df: float) -> float:
    return float(stats.norm.ppf(q)) if math.isinf(df) else float(stats.t.ppf(q, df))


def _t_sf2(t: float, df: float) -> float:
    if math.isnan(t):
        return math.nan
    return float(2 * (stats.norm.sf(abs(t)) if math.isinf(df) else stats.t.sf(abs(t), df)))


def _ratio(a: float, b: float) -> float:
    if b > 0:
        return a / b
    return math.nan if a == 0 else math.inf


def _hillis_df(ms_den: float, ms: float, df: float) -> float:
    """Satterthwaite-type ddf of Hillis: ms_den^2 / (ms^2 / df); infinite when ms is 0."""
    return math.inf if ms == 0 else ms_den ** 2 / (ms ** 2 / df)


def _interval(estimate: float, se: float, df: float | None, level: float, test: bool = True) -> dict:
    """estimate +- t (or z when df is None) x se; with ``test``, the t (z) statistic against 0 and its p."""
    q = _t_quantile(0.5 + level / 2, math.inf if df is None else df)
    if not test:
        return {"estimate": estimate, "se": se, "df": df, "lower": estimate - q * se, "upper": estimate + q * se,
                "level": level}
    stat = _ratio(estimate, se) if se > 0 else (math.nan if estimate == 0 else math.copysign(math.inf, estimate))
    p = _t_sf2(stat, math.inf if df is None else df)
    return {"estimate": estimate, "se": se, "df": df, "lower": estimate - q * se, "upper": estimate + q * se,
            "statistic": stat, "p": p, "level": level}


def _pair_name(a: str, b: str) -> str:
    return f"{a} - {b}"


def or_analysis(reads: pd.DataFrame, *, positive=None, level: float = LEVEL, source: str = "reads table") -> dict:
    """The Obuchowski-Rockette analysis (RRRC with Hillis ddf, FRRC, RRFC) of a reads table.

    Modalities and readers keep the order of their first appearance; a pairwise difference is
    the earlier modality minus the later one (as RJafroc's ``trt0 - trt1``).
    """
    if not 0 < level < 1:
        raise UserError(f"confidence level must be between 0 and 1, got {level}")
    reads = validate_reads(reads, positive, source=source)
    ratings, truth, cases, readers, modalities = _arrays(reads)
    n_mod, n_rdr, n_case = ratings.shape
    auc, jack = auc_and_jackknife(ratings, truth)
    cov = jackknife_covariance(jack)
    vc = or_covariances(cov)
    notes = []

    grand = auc.mean()
    mod_mean, rdr_mean = auc.mean(axis=1), auc.mean(axis=0)
    ss_t = n_rdr * float(((mod_mean - grand) ** 2).sum())
    ss_r = n_mod * float(((rdr_mean - grand) ** 2).sum())
    ss_tr = float(((auc - mod_mean[:, None] - rdr_mean[None, :] + grand) ** 2).sum())
    df_t, df_r, df_tr = n_mod - 1, n_rdr - 1, (n_mod - 1) * (n_rdr - 1)
    ms_t, ms_r, ms_tr = ss_t / df_t, ss_r / df_r, ss_tr / df_tr
    cov2_minus_cov3 = max(vc["cov2"] - vc["cov3"], 0.0)
    if vc["cov2"] < vc["cov3"]:
        notes.append(f"Cov2 ({vc['cov2']:.3g}) < Cov3 ({vc['cov3']:.3g}): max(Cov2 - Cov3, 0) = 0 is used, "
                     "as Hillis (2007) constrains it")
    var_tr = ms_tr - vc["var"] + vc["cov1"] + vc["cov2"] - vc["cov3"]
    var_r = (ms_r - var_tr - vc["var"] - (n_mod - 1) * vc["cov1"] + vc["cov2"] + (n_mod - 1) * vc["cov3"]) / n_mod
    components = {
        "ms_t": ms_t, "ms_r": ms_r, "ms_tr": ms_tr, "df_t": df_t, "df_r": df_r, "df_tr": df_tr,
        "ss_t": ss_t, "ss_r": ss_r, "ss_tr": ss_tr, **vc, "var_r": var_r, "var_tr": var_tr,
        "rho1": _ratio(vc["cov1"], vc["var"]), "rho2": _ratio(vc["cov2"], vc["var"]),
        "rho3": _ratio(vc["cov3"], vc["var"]),
        "method": "jackknife: cov of leave-one-case-out AUCs x (K-1)^2/K",
    }

    # single-modality quantities (Hillis 2007, section 5.3) and single-reader ones
    eye = np.eye(n_rdr, dtype=bool)
    each_modality = []
    for i, m in enumerate(modalities):
        c = cov[i, :, i, :]
        ms_r_i = float(((auc[i] - mod_mean[i]) ** 2).sum() / df_r)
        each_modality.append({"modality": m, "auc": float(mod_mean[i]), "ms_r": ms_r_i,
                              "var": float(c[eye].mean()), "cov2": float(c[~eye].mean())})
    mod_eye = np.eye(n_mod, dtype=bool)
    each_reader = []
    for j, r in enumerate(readers):
        c = cov[:, j, :, j]
        ms_t_j = float(((auc[:, j] - rdr_mean[j]) ** 2).sum() / df_t)
        each_reader.append({"reader": r, "ms_t": ms_t_j, "var": float(c[mod_eye].mean()),
                            "cov1": float(c[~mod_eye].mean())})

    pairs = list(itertools.combinations(range(n_mod), 2))

    # RRRC
    den = ms_tr + n_rdr * cov2_minus_cov3
    ddf = _hillis_df(den, ms_tr, df_tr)
    f_rrrc = _ratio(ms_t, den)
    if math.isinf(ddf):
        notes.append("MS(T*R) is 0 (the readers' AUC differences are identical): ddf_H is infinite")
    rrrc_avg = {}
    for e in each_modality:
        den_i = e["ms_r"] + n_rdr * max(e["cov2"], 0.0)
        rrrc_avg[e["modality"]] = {**_interval(e["auc"], math.sqrt(den_i / n_rdr), _hillis_df(den_i, e["ms_r"], df_r),
                                               level, test=False), "ms_r": e["ms_r"], "cov2": e["cov2"]}
    rrrc = {
        "name": "random readers, random cases (OR, Hillis ddf)",
        "test": {"statistic": "F", "value": f_rrrc, "ndf": df_t, "ddf": ddf, "p": _f_sf(f_rrrc, df_t, ddf),
                 "ms_t": ms_t, "ms_denominator": den},
        "differences": {_pair_name(modalities[a], modalities[b]): {
            "modalities": [modalities[a], modalities[b]],
            **_interval(float(mod_mean[a] - mod_mean[b]), math.sqrt(2 * den / n_rdr), ddf, level)} for a, b in pairs},
        "modality_auc": rrrc_avg,
    }

    # FRRC
    den_frrc = vc["var"] - vc["cov1"] + (n_rdr - 1) * cov2_minus_cov3
    chisq = df_t * _ratio(ms_t, den_frrc)
    frrc_avg = {e["modality"]: _interval(e["auc"], math.sqrt(max(e["var"] + (n_rdr - 1) * max(e["cov2"], 0.0), 0.0)
                                                             / n_rdr), None, level, test=False) for e in each_modality}
    per_reader = {}
    for j, e in enumerate(each_reader):
        se = math.sqrt(max(2 * (e["var"] - e["cov1"]), 0.0))
        per_reader[e["reader"]] = {_pair_name(modalities[a], modalities[b]): _interval(
            float(auc[a, j] - auc[b, j]), se, None, level) for a, b in pairs}
    frrc = {
        "name": "fixed readers, random cases (OR)",
        "test": {"statistic": "chi-square", "value": chisq, "df": df_t,
                 "p": float(stats.chi2.sf(chisq, df_t)) if not math.isnan(chisq) else math.nan,
                 "ms_t": ms_t, "ms_denominator": den_frrc},
        "differences": {_pair_name(modalities[a], modalities[b]): {
            "modalities": [modalities[a], modalities[b]],
            **_interval(float(mod_mean[a] - mod_mean[b]), math.sqrt(max(2 * den_frrc / n_rdr, 0.0)), None, level)}
            for a, b in pairs},
        "modality_auc": frrc_avg,
        "reader_differences": per_reader,
    }

    # RRFC
    f_rrfc = _ratio(ms_t, ms_tr)
    rrfc = {
        "name": "random readers, fixed cases (ANOVA of the AUCs)",
        "test": {"statistic": "F", "value": f_rrfc, "ndf": df_t, "ddf": df_tr, "p": _f_sf(f_rrfc, df_t, df_tr),
                 "ms_t": ms_t, "ms_denominator": ms_tr},
        "differences": {_pair_name(modalities[a], modalities[b]): {
            "modalities": [modalities[a], modalities[b]],
            **_interval(float(mod_mean[a] - mod_mean[b]), math.sqrt(2 * ms_tr / n_rdr), df_tr, level)}
            for a, b in pairs},
        "modality_auc": {e["modality"]: _interval(e["auc"], math.sqrt(e["ms_r"] / n_rdr), df_r, level, test=False)
                         for e in each_modality},
    }

    per_reader_table = [{"reader": r, "modality": m, "auc": float(auc[i, j]),
                         "se": math.sqrt(max(float(cov[i, j, i, j]), 0.0))}
                        for j, r in enumerate(readers) for i, m in enumerate(modalities)]
    return {
        "design": {"n_cases": n_case, "n_diseased": int(truth.sum()), "n_nondiseased": int((~truth).sum()),
                   "readers": readers, "modalities": modalities, "n_reads": int(len(reads))},
        "per_reader": per_reader_table,
        "variance_components": components,
        "each_modality": each_modality,
        "each_reader": each_reader,
        "analyses": {"rrrc": rrrc, "frrc": frrc, "rrfc": rrfc},
        "notes": notes,
    }


# ---------------------------------------------------------------------------------------------
# binary calls: McNemar per reader


def _calls(reads: pd.DataFrame, cutoff) -> np.ndarray:
    ratings = reads["rating"].to_numpy()
    if cutoff is None:
        values = np.unique(ratings)
        if not np.all(np.isin(values, [0, 1])):
            raise UserError("reader calls: the ratings are not 0/1 calls (values "
                            f"{_examples(values.tolist(), 6)}); give a cut point (--reader-cutoff): "
                            "a rating >= the cut point is a positive call")
        return ratings == 1
    try:
        cutoff = float(cutoff)
    except (TypeError, ValueError):
        raise UserError(f"reader cut-off must be a number, got {cutoff!r}") from None
    if not math.isfinite(cutoff):
        raise UserError(f"reader cut-off must be finite, got {cutoff}")
    return ratings >= cutoff


def _paired(without: np.ndarray, with_: np.ndarray, level: float) -> dict:
    """Correct/incorrect of the same cases without and with assistance: both proportions and the
    exact McNemar test (binomial test of the discordant cases at 1/2)."""
    gained = int((~without & with_).sum())  # wrong without, right with
    lost = int((without & ~with_).sum())
    n = len(without)
    discordant = gained + lost
    p = float(stats.binomtest(gained, discordant, 0.5).pvalue) if discordant else 1.0
    a, b = binomial.proportion(int(without.sum()), n, level), binomial.proportion(int(with_.sum()), n, level)
    return {"without": a, "with": b, "difference": b["value"] - a["value"], "gained": gained, "lost": lost,
            "p": p, "test": "McNemar exact (two-sided binomial test of the discordant cases)"}


def reader_mcnemar(reads: pd.DataFrame, cutoff=None, *, positive=None, modalities: Sequence[str] | None = None,
                   level: float = LEVEL, source: str = "reads table") -> dict:
    """Each reader's sensitivity and specificity without vs with assistance, paired by case.

    The call of a read is ``rating >= cutoff``; with ``cutoff=None`` the ratings must already be
    0/1 calls. ``modalities = (without, with)``; by default the table's two modalities in order
    of appearance (a table with more than two needs them named). Each proportion has its
    Clopper-Pearson CI; the change is tested by McNemar's exact test on the discordant cases
    (``gained``: wrong without, right with; ``lost``: the reverse). Readers share the cases, so
    the per-reader tests are not independent and are not pooled here.
    """
    reads = validate_reads(reads, positive, min_readers=1, source=source)
    present = list(pd.unique(reads["modality"]))
    if modalities is None:
        if len(present) != 2:
            raise UserError(f"reader calls: {len(present)} modalities ({_examples(present, 5)}); name the two to "
                            "compare as (without, with)")
        modalities = present
    modalities = [str(m) for m in modalities]
    if len(modalities) != 2 or modalities[0] == modalities[1]:
        raise UserError(f"reader calls: need two different modalities (without, with), got {modalities}")
    unknown = [m for m in modalities if m not in present]
    if unknown:
        raise UserError(f"reader calls: modality {unknown[0]!r} is not in the table ({_examples(present, 5)})")
    calls = _calls(reads, cutoff)
    reads = reads.assign(call=calls)
    out = []
    for reader, group in reads.groupby("reader", sort=False):
        off = group[group["modality"] == modalities[0]].set_index("case")
        on = group[group["modality"] == modalities[1]].set_index("case").loc[off.index]
        diseased = off["truth"].to_numpy() == 1
        correct_off = off["call"].to_numpy() == diseased
        correct_on = on["call"].to_numpy() == diseased
        out.append({"reader": reader,
                    "sensitivity": _paired(correct_off[diseased], correct_on[diseased], level),
                    "specificity": _paired(correct_off[~diseased], correct_on[~diseased], level)})
    return {"without": modalities[0], "with": modalities[1], "cutoff": None if cutoff is None else float(cutoff),
            "level": level, "readers": out}


# ---------------------------------------------------------------------------------------------
# the report


def mrmc_report(reads: pd.DataFrame, *, positive=None, level: float = LEVEL, reader_cutoff=None,
                mcnemar_modalities: Sequence[str] | None = None, source: str = "reads table") -> dict:
    """Every MRMC number in one dict.

    ``report["mrmc"]`` holds the headline (RRRC, Hillis ddf): ``f``, ``ndf``, ``ddf``, ``p``,
    ``auc`` (reader-averaged AUC per modality with its CI) and ``ci_difference`` (each pairwise
    difference "A - B" with its CI). The rest: ``design``, ``per_reader`` (each reader x modality
    AUC), ``variance_components``, ``analyses`` (rrrc, frrc, rrfc), ``mcnemar`` (per-reader
    sensitivity/specificity with vs without assistance, when the reads are 0/1 calls or
    ``reader_cutoff`` is given and two modalities are compared; else None with a note), ``notes``.
    """
    result = or_analysis(reads, positive=positive, level=level, source=source)
    notes = result["notes"]
    rrrc = result["analyses"]["rrrc"]
    headline = {
        "method": "Obuchowski-Rockette, random readers and random cases, Hillis (2007) denominator df",
        "f": rrrc["test"]["value"], "ndf": rrrc["test"]["ndf"], "ddf": rrrc["test"]["ddf"], "p": rrrc["test"]["p"],
        "level": level,
        "auc": {m: {"value": e["estimate"], "lower": e["lower"], "upper": e["upper"], "se": e["se"], "df": e["df"]}
                for m, e in rrrc["modality_auc"].items()},
        "ci_difference": {name: {"modalities": d["modalities"], "estimate": d["estimate"], "lower": d["lower"],
                                 "upper": d["upper"], "se": d["se"], "df": d["df"], "t": d["statistic"], "p": d["p"]}
                          for name, d in rrrc["differences"].items()},
    }
    mcnemar = None
    checked = validate_reads(reads, positive, source=source)
    binary_ratings = bool(np.all(np.isin(np.unique(checked["rating"]), [0, 1])))
    n_mod = len(result["design"]["modalities"])
    if reader_cutoff is None and not binary_ratings:
        notes.append("no McNemar comparison of reader calls: the ratings are not 0/1 calls and no reader cut-off "
                     "was given")
    elif mcnemar_modalities is None and n_mod != 2:
        notes.append(f"no McNemar comparison of reader calls: {n_mod} modalities; name the two to compare "
                     "(without, with)")
    else:
        mcnemar = reader_mcnemar(checked, reader_cutoff, modalities=mcnemar_modalities, level=level, source=source)
    return {"schema": SCHEMA, "mrmc": headline, **{k: v for k, v in result.items() if k != "notes"},
            "mcnemar": mcnemar, "notes": notes}


def _f(value, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    value = float(value)
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.{digits}f}"


def _p(value) -> str:
    if value is None or math.isnan(float(value)):
        return "n/a"
    return "< 0.0001" if value < 1e-4 else f"{value:.4f}"


def _md_table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + [""]


def _pct(level: float) -> str:
    return f"{100 * level:g}%"


def mrmc_markdown(report: dict, files: Mapping[str, str] | None = None) -> str:
    """The MRMC section of report.md (markdown), from ``mrmc_report``'s dict."""
    head, design = report["mrmc"], report["design"]
    ci = _pct(head["level"])
    modalities, readers = design["modalities"], design["readers"]
    out = ["## Multi-reader multi-case ROC analysis", "",
           f"{len(readers)} readers x {len(modalities)} modalities x {design['n_cases']} cases "
           f"({design['n_diseased']} diseased, {design['n_nondiseased']} non-diseased), fully crossed. "
           "Figure of merit: trapezoidal (Wilcoxon) AUC; variance components by the jackknife over cases.", ""]
    if files and files.get("png"):
        out += [f"![Reader AUCs per modality]({files['png']})", ""]
    out += [f"**{head['method']}**: F = {_f(head['f'], 3)} on {head['ndf']} and {_f(head['ddf'], 2)} df, "
            f"p = {_p(head['p'])}.", ""]
    out += _md_table(["Modality", "Reader-averaged AUC", f"{ci} CI", "df"],
                     [[m, _f(a["value"]), f"{_f(a['lower'])} to {_f(a['upper'])}", _f(a["df"], 2)]
                      for m, a in head["auc"].items()])
    out += _md_table(["Difference", "Estimate", f"{ci} CI", "SE", "df", "p"],
                     [[name, _f(d["estimate"]), f"{_f(d['lower'])} to {_f(d['upper'])}", _f(d["se"]),
                       _f(d["df"], 2), _p(d["p"])] for name, d in head["ci_difference"].items()])
    by = {(r["reader"], r["modality"]): r["auc"] for r in report["per_reader"]}
    out += ["### AUC of each reader", ""]
    out += _md_table(["Reader", *modalities], [[r, *(_f(by[(r, m)]) for m in modalities)] for r in readers])
    out += ["### The three generalisations", ""]
    rows = []
    for key, label in (("rrrc", "readers and cases random"), ("frrc", "readers fixed, cases random"),
                       ("rrfc", "readers random, cases fixed")):
        a = report["analyses"][key]
        t = a["test"]
        ddf = t.get("ddf")
        df = f"{t['df']}" if "df" in t else f"{t['ndf']}, {ddf if isinstance(ddf, int) else _f(ddf, 2)}"
        diffs = "; ".join(f"{n}: {_f(d['estimate'])} ({_f(d['lower'])} to {_f(d['upper'])})"
                          for n, d in a["differences"].items())
        rows.append([key.upper(), label, f"{t['statistic']} = {_f(t['value'], 3)}", df, _p(t["p"]), diffs])
    out += _md_table(["Analysis", "Generalises to", "Statistic", "df", "p", f"Differences ({ci} CI)"], rows)
    vc = report["variance_components"]
    out += ["### OR variance components", ""]
    out += _md_table(["MS(T)", "MS(R)", "MS(T*R)", "Var", "Cov1", "Cov2", "Cov3", "VarR", "VarTR"],
                     [[f"{vc[k]:.6g}" for k in ("ms_t", "ms_r", "ms_tr", "var", "cov1", "cov2", "cov3", "var_r",
                                                "var_tr")]])
    mc = report.get("mcnemar")
    if mc:
        rule = "0/1 calls as given" if mc["cutoff"] is None else f"rating >= {mc['cutoff']:g} is a positive call"
        out += [f"### Reader calls: {mc['with']} vs {mc['without']} ({rule}; McNemar exact test)", ""]
        rows = []
        for r in mc["readers"]:
            for what in ("sensitivity", "specificity"):
                e = r[what]
                w, o = e["without"], e["with"]
                rows.append([r["reader"], what,
                             f"{_f(w['value'], 3)} ({_f(w['lower'], 3)}–{_f(w['upper'], 3)}), {w['k']}/{w['n']}",
                             f"{_f(o['value'], 3)} ({_f(o['lower'], 3)}–{_f(o['upper'], 3)}), {o['k']}/{o['n']}",
                             f"+{e['gained']} / −{e['lost']}", _p(e["p"])])
        out += _md_table(["Reader", "Measure", f"{mc['without']} ({ci} CI)", f"{mc['with']} ({ci} CI)",
                          "Discordant (gained / lost)", "p"], rows)
    if report.get("notes"):
        out += ["### Notes", ""] + [f"- {n}" for n in report["notes"]] + [""]
    return "\n".join(out)


def plot_mrmc(path, report: dict) -> list[Path]:
    """Each reader's AUC per modality (joined per reader; distinct colour, marker and line style)
    and the reader-averaged AUC with its RRRC CI; written as PNG at ``path`` and as SVG beside it,
    each atomically. Returns [png, svg]."""
    from matplotlib.figure import Figure

    path = Path(path)
    design, head = report["design"], report["mrmc"]
    modalities, readers = design["modalities"], design["readers"]
    by = {(r["reader"], r["modality"]): r["auc"] for r in report["per_reader"]}
    x = np.arange(len(modalities), dtype=float)
    fig = Figure(figsize=(max(5.0, 1.6 * len(modalities) + 3.0), 5.0), layout="constrained")
    ax = fig.subplots()
    spread = 0.12
    offsets = np.linspace(-spread, spread, len(readers)) if len(readers) > 1 else np.zeros(1)
    for j, reader in enumerate(readers):
        ax.plot(x + offsets[j], [by[(reader, m)] for m in modalities],
                color=READER_COLORS[j % len(READER_COLORS)], marker=READER_MARKERS[j % len(READER_MARKERS)],
                linestyle=READER_LINESTYLES[j % len(READER_LINESTYLES)], linewidth=1.2, markersize=6,
                markeredgecolor="black", markeredgewidth=0.5, label=f"reader {reader}")
    mean = np.array([head["auc"][m]["value"] for m in modalities])
    lower = np.array([head["auc"][m]["lower"] for m in modalities])
    upper = np.array([head["auc"][m]["upper"] for m in modalities])
    ax.errorbar(x + spread + 0.12, mean, yerr=[mean - lower, upper - mean], color=AVERAGE_COLOR, marker="D",
                markersize=7, linewidth=2.2, capsize=5, label=f"reader average ({_pct(head['level'])} CI, RRRC)")
    ax.set_xticks(x, [str(m) for m in modalities])
    ax.set_xlim(-0.5, len(modalities) - 0.5)
    low = min(min(by.values()), float(lower.min()))
    ax.set_ylim(max(0.0, low - 0.05), min(1.0, max(max(by.values()), float(upper.max())) + 0.03) + 0.01)
    ax.set_xlabel("Modality")
    ax.set_ylabel("AUC (trapezoidal)")
    ax.set_title(f"{len(readers)} readers, {design['n_cases']} cases: F = {_f(head['f'], 3)}, "
                 f"ddf = {_f(head['ddf'], 2)}, p = {_p(head['p'])} (OR, Hillis ddf)", fontsize=10)
    ax.grid(True, axis="y", color="0.9", linewidth=0.8)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), framealpha=0.9)
    svg = path.with_suffix(".svg")
    return [atomic_save_figure(fig, path, dpi=DPI), atomic_save_figure(fig, svg, dpi=DPI)]


def write_mrmc_report(report: dict, out_dir) -> dict[str, Path]:
    """Write mrmc.json, mrmc.md, mrmc.png and mrmc.svg into ``out_dir``, each atomically."""
    from .report import json_ready

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "mrmc.json", "md": out_dir / "mrmc.md", "png": out_dir / "mrmc.png",
             "svg": out_dir / "mrmc.svg"}
    plot_mrmc(paths["png"], report)
    atomic_write_text(paths["json"], json.dumps(json_ready(report), indent=2, allow_nan=False) + "\n")
    atomic_write_text(paths["md"], mrmc_markdown(report, {k: p.name for k, p in paths.items()}))
    return paths
