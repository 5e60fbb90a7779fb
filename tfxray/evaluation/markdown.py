"""report.md (readable tables) and the one-screen summary, from a report dict (and, for a reader
study, from its MRMC analysis)."""

from __future__ import annotations

import textwrap

from .plots import fmt, fmt_threshold, number, safe_name
from .thresholds import model_rule_text

SUMMARY_NOTES = 3  # notes other than warnings printed in the summary (warnings are all printed)
SUMMARY_WIDTH = 118
SUMMARY_GROUPS = 6  # subgroups printed per model in the summary (all in report.md)
WARNING = "warning: "  # as report.WARNING (not imported: report imports this module's callers)


def threshold_rule_text(settings: dict) -> str:
    """The rule of the report's thresholds, named as training named it when it is the model's."""
    if settings["threshold_rule"] != "model":
        return settings["threshold_rule"]
    value = settings["model_threshold"]
    if isinstance(value, dict):
        return "each model's own saved threshold (see the operating points)"
    return model_rule_text(value, settings.get("model_threshold_rule"))


def threshold_source_text(settings: dict) -> str:
    """Where the report's thresholds come from, for its header."""
    if settings.get("threshold_exploratory"):
        return ("chosen on the evaluated data themselves: **exploratory** (optimistic on new data); sensitivity and"
                " specificity also get 95% CIs that bootstrap the choice (the rule re-applied in each stratified"
                " resample, as pROC's `ci.coords(x = \"best\")`); the exact CIs hold the threshold fixed")
    if settings["threshold_rule"] == "model":
        return "saved with the model, chosen before these data (at training): exact CIs"
    return "fixed in advance (given with --threshold): exact CIs"


def direction_text(settings: dict) -> str:
    """How the curves' direction was set, for the report's header."""
    direction = settings.get("direction", "auto")
    if direction == "auto":
        return ("`auto`, pROC's `direction=\"auto\"`: for each model and level from the class medians (a warning says"
                " when it picks lower = positive; the folds use the pooled choice); `--direction higher|lower` fixes"
                " it in advance")
    return (f"`{direction}` ({direction} score = positive), fixed in advance for every model, level and fold: an AUC"
            " below 0.5 stays below 0.5")


def _with_ci(entry: dict, digits: int = 3, dash: str = "–") -> str:
    if entry.get("lower") is None:
        return fmt(entry["value"], digits)
    return f"{fmt(entry['value'], digits)} ({fmt(entry['lower'], digits)}{dash}{fmt(entry['upper'], digits)})"


def _ci_method(ci: dict) -> str:
    if ci["method"] == "delong":
        return "DeLong"
    if ci["method"].startswith("Obuchowski"):
        return f"Obuchowski (1997), clustered by `{ci.get('unit')}`"
    if ci["method"].startswith("cluster bootstrap"):
        return (f"cluster bootstrap by `{ci.get('unit')}` ({ci['n_bootstrap']} resamples of whole"
                f" {ci.get('unit')} groups, seed {ci['seed']})")
    return f"bootstrap ({ci['n_bootstrap']} resamples, seed {ci['seed']})"


def _ci_short(ci: dict) -> str:
    """The CI method in a word or two, for the summary (as the figures' legends say it)."""
    from .plots import ci_label

    return ci_label(ci)


def level_order(report: dict) -> list[str]:
    """The report's level names, the headline level first (as report.level_order)."""
    names = list(report.get("levels", {}))
    first = (report.get("headline") or {}).get("level")
    return ([first] if first in names else []) + [n for n in names if n != first]


def _p(value) -> str:
    value = number(value)
    if value != value:
        return "n/a"
    return "< 0.0001" if value < 1e-4 else f"{value:.4f}"


def _test_name(c: dict) -> str:
    if c["cases"] == "different":
        return "DeLong unpaired" + (" (assumes independent images)" if c.get("assumes") else "")
    name = "Obuchowski clustered paired" if c.get("delong_independent") else "DeLong paired"
    return name + ("" if c["cases"] == "same" else f" ({c['n']} common)")


def _statistic(c: dict) -> str:
    if c["cases"] == "different":
        return f"D = {c['d']:.3f}, df = {c['df']:.1f}"
    return f"Z = {number(c['z']):.3f}"


def _level_heading(level: dict, settings: dict) -> str:
    if settings["task"] == "multiclass":
        counts = ", ".join(f"{n} {c}" for c, n in level["n_per_class"].items())
    else:
        counts = f"{level['n_positive']} {settings['positive']}, {level['n_negative']} {settings['negative']}"
    if level["unit"] == "image":
        return f"Image level ({level['n']} images: {counts})"
    return (f"Patient level ({level['n']} groups by `{level['group_column']}`, {level['aggregate']} over images:"
            f" {counts})")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _binary_level_md(name: str, level: dict, settings: dict, files: dict) -> list[str]:
    pos, neg = settings["positive"], settings["negative"]
    out = [f"## {_level_heading(level, settings)}", ""]
    rows = []
    for column, m in level["models"].items():
        direction = "higher = positive" if m["direction"] == "<" else f"**lower = {pos}** (flipped)"
        rows.append([column, f"{m['n_cases']} / {m['n_controls']}", m["n_missing"], fmt(m["auc"]),
                     f"{fmt(m['auc_ci']['lower'])}–{fmt(m['auc_ci']['upper'])}", _ci_method(m["auc_ci"]), direction])
    out += _table(["Model", f"n {pos} / {neg}", "not scored", "AUC", "95% CI", "CI method", "Direction"], rows)
    caveats = [f"> **Caveat**, {column}: {m['ci_caveat']}." for column, m in level["models"].items()
               if m.get("ci_caveat")]
    out += caveats + ([""] if caveats else [])
    out += _clustered_md(level)

    out += ["### Operating points (exact Clopper–Pearson 95% CIs)", ""]
    rows = []
    for column, m in level["models"].items():
        op, thr = m["operating_point"], m["threshold"]
        rule = thr["description"] if thr["rule"] == "model" else thr["rule"]
        rows.append([column, fmt_threshold(thr["value"]), rule, op["tp"], op["fp"], op["tn"], op["fn"],
                     *[_with_ci(op[k]) for k in ("sensitivity", "specificity", "accuracy", "ppv", "npv")],
                     fmt(op["f1"]["value"])])
    out += _table(["Model", "Threshold", "Rule", "TP", "FP", "TN", "FN", "Sensitivity", "Specificity", "Accuracy",
                   "PPV", "NPV", "F1 (no CI)"], rows)
    chosen = {column: m["operating_point"]["with_threshold_choice"] for column, m in level["models"].items()
              if m["operating_point"].get("with_threshold_choice")}
    if chosen:
        first = next(iter(chosen.values()))
        out += [f"Thresholds chosen on these data are exploratory. With the choice bootstrapped ({first['n_bootstrap']}"
                f" stratified resamples, seed {first['seed']}; the rule re-applied in each, as pROC's"
                " `ci.coords(x = \"best\")`):", ""]
        out += _table(["Model", "Rule", "Sensitivity (95% CI with the choice)", "Specificity (95% CI with the choice)"],
                      [[column, c["rule"], _with_ci(c["sensitivity"]), _with_ci(c["specificity"])]
                       for column, c in chosen.items()])
    for column, m in level["models"].items():
        thr = m["threshold"]
        out.append(f"- **{column}**: {thr['description']}; {thr['applied_as']}; threshold chosen on"
                   f" {thr.get('chosen_on', 'n/a')}.")
        if len(thr["ties"]) > 1:
            tied = "; ".join(f"{fmt_threshold(t['threshold'])} (sens {fmt(t['sensitivity'])}, spec"
                             f" {fmt(t['specificity'])})" for t in thr["ties"])
            out.append(f"  Tied optimal thresholds: {tied}.")
    out.append("")
    out += _clinical_md(level, settings)

    if level["comparisons"]:
        out += _comparisons_md(level["comparisons"])

    for column, m in level["models"].items():
        if "folds" not in m:
            continue
        f = m["folds"]
        out += [f"### Cross-validation, {column} ({f['n_folds']} folds; {f['threshold_note']})", ""]
        if f.get("direction_note"):
            out += [f"Direction: {f['direction_note']}.", ""]
        rows = []
        for r in f["per_fold"]:
            if r.get("auc") is None:
                rows.append([r["fold"], f"{r['n_cases']} / {r['n_controls']}", "", r.get("note", ""), "", "", "", ""])
                continue
            rows.append([r["fold"], f"{r['n_cases']} / {r['n_controls']}", f"`{r['direction']}`",
                         f"{fmt(r['auc'])} ({fmt(r['auc_lower'])}–{fmt(r['auc_upper'])})",
                         fmt_threshold(r["threshold"]), fmt(r["sensitivity"]), fmt(r["specificity"]), fmt(r["f1"])])
        rows.append(["**mean ± SD**", "", "", *[f"{fmt(f['mean'][k])} ± {fmt(f['sd'][k])}" if k else ""
                                                for k in ("auc", None, "sensitivity", "specificity", "f1")]])
        out += _table(["Fold", f"n {pos} / {neg}", "Direction", "AUC (95% CI)", "Threshold", "Sensitivity",
                       "Specificity", "F1"], rows)
        out.append(f"Pooled out-of-fold AUC: {fmt(m['auc'])} ({fmt(m['auc_ci']['lower'])}–{fmt(m['auc_ci']['upper'])}).")
        out.append("")

    out += _calibration_md(level)
    out += _figures(name, files)
    return out


def _clustered_md(level: dict) -> list[str]:
    """The image level with a patient column: the clustered CI, DeLong's naive one, the design effect."""
    models = {c: m for c, m in level["models"].items() if m.get("clustered")}
    if not models:
        return []
    first = next(iter(models.values()))["clustered"]
    unit = first["unit"]
    out = ["### Unit of analysis: images clustered by patient", "",
           f"The images of one `{unit}` are not independent, so the AUC's 95% CI above is cluster-aware: "
           + ("Obuchowski's (1997, Biometrics 53:567-578) clustered variance (the same image-level AUC, its variance"
              " taken over patients; normal CI clipped to [0, 1])" if first["method"].startswith("Obuchowski") else
              "the cluster bootstrap (whole patients resampled with replacement, percentile interval; Obuchowski's"
              " clustered CI beside it)")
           + ". DeLong's CI treats every image as an independent sampling unit and is given for comparison only; the"
           " variance ratio (clustered / DeLong, the design effect) says how much the naive CI understates the"
           " uncertainty. The patient level is the headline.", ""]
    rows = []
    for column, m in models.items():
        c, naive = m["clustered"], m["auc_cis"]["delong"]
        sizes = c["images_per_cluster"]
        obu = c["obuchowski"]
        rows.append([column, fmt(m["auc"]), f"{fmt(m['auc_ci']['lower'])}–{fmt(m['auc_ci']['upper'])}",
                     f"{fmt(obu['ci'][0])}–{fmt(obu['ci'][1])}",
                     f"{fmt(naive['lower'])}–{fmt(naive['upper'])}", fmt(c["variance_ratio"], 2),
                     f"{c['n_clusters']} ({c['n_clusters_with_cases']} / {c['n_clusters_with_controls']})",
                     f"{sizes['min']}–{fmt(sizes['median'], 1)}–{sizes['max']}"])
    out += _table(["Model", "AUC", "95% CI (reported)", "Obuchowski 95% CI", "DeLong 95% CI (assumes independent"
                   " images)", "Variance ratio", f"`{unit}` groups (with cases / controls)",
                   "Images per group (min–median–max)"], rows)
    out += ["The ROC band, the operating points' CIs and the bootstrap of the threshold choice at this level treat the"
            " images as independent.", ""]
    return out


def _comparisons_md(comparisons: list[dict]) -> list[str]:
    """The level's pairwise AUC comparisons, raw and Holm-adjusted p."""
    adjustment = (comparisons[0].get("adjustment") or {})
    holm = adjustment.get("method") == "holm"
    clustered = any(c.get("delong_independent") for c in comparisons)
    header = ["Difference", "Test", "ΔAUC", "95% CI", "Statistic", "p (two-sided)"]
    header += ["p (Holm-adjusted)"] if holm else []
    header += ["DeLong p (assumes independent images)"] if clustered else []
    rows = []
    for c in comparisons:
        row = [f"{c['models'][0]} − {c['models'][1]}", _test_name(c), fmt(c["difference"]),
               f"{fmt(c['ci_lower'])} to {fmt(c['ci_upper'])}", _statistic(c), _p(c["p"])]
        if holm:
            row.append(_p(c.get("p_adjusted")))
        if clustered:
            row.append(_p(c["delong_independent"]["p"]) if c.get("delong_independent") else "")
        rows.append(row)
    out = ["### Comparisons of AUCs", ""] + _table(header, rows)
    if holm and adjustment.get("family_size", 0) > 1:
        out += [f"{adjustment['family_size']} tests at this level: p-values Holm-adjusted (Holm 1979) within the"
                " family; the 95% CIs of the differences are not adjusted.", ""]
    elif adjustment.get("method") == "none" and adjustment.get("family_size", 0) > 1:
        out += [f"{adjustment['note']}.", ""]
    if clustered:
        out += ["Obuchowski's (1997) clustered test compares the two image-level AUCs with their variances and"
                " covariance taken over patients; DeLong's p treats every image as independent.", ""]
    return out


def _flow_md(report: dict, files: dict) -> list[str]:
    """The flow of cases (STARD 2015 item 19): the table, what a row is, and the diagram."""
    from .flow import flow_markdown

    table = report.get("flow")
    if not table:
        return []
    out = [flow_markdown(table).rstrip("\n"), ""]
    unit = "patients" if table.get("patient_column") else None
    text = f"Rows read: {table.get('source', 'rows of the scores table')}."
    if table["n_excluded"]:
        text += " Excluded rows are left out of every number in this report."
    if unit:
        text += (f" Patients analysed: distinct `{table['patient_column']}` values among the images analysed, a"
                 " patient positive when any of its images is.")
    out += [text, ""]
    for level_name, models in (table.get("not_scored") or {}).items():
        out += ["Analysed but not scored by every model (" + level_name + " level): "
                + ", ".join(f"{c} {n}" for c, n in models.items()) + " (each model's AUC uses the rows it scored).", ""]
    if "flow.png" in files:
        out += ["![Flow of cases](flow.png)", ""]
    return out


def _subgroup_md(entry: dict, settings: dict, files: dict, stem: str) -> list[str]:
    """One subgroup column: per level (headline first) and model, every group's metrics with CIs,
    the homogeneity test and the Holm-adjusted pairwise tests."""
    column, pos, neg = entry["column"], settings["positive"], settings["negative"]
    out = [f"## Subgroups by `{column}`", ""]
    levels = [entry["headline_level"]] + [n for n in entry["levels"] if n != entry["headline_level"]]
    for name in levels:
        level = entry["levels"][name]
        for model_name, t in level["models"].items():
            out += [f"### {model_name}, {name} level (threshold {fmt_threshold(t['threshold'])}, {t['threshold_rule']})",
                    ""]
            rows = []
            for g in t["groups"]:
                auc = g["auc"]
                rows.append([g["group"], f"{g['n_cases']} / {g['n_controls']}",
                             _with_ci(auc) if auc else "n/a", _with_ci(g["sensitivity"]),
                             _with_ci(g["specificity"]), g["note"] or ""])
            rows.append(["**all**", "", fmt(t["pooled_auc"]), "", "", ""])
            out += _table(["Group", f"n {pos} / {neg}", "AUC (95% CI, DeLong)", "Sensitivity (95% CI)",
                           "Specificity (95% CI)", "Note"], rows)
            h = t["homogeneity"]
            if h:
                out += [f"Test of equal AUCs across the {len(h['groups'])} groups ({h['test']}): Q = {fmt(h['q'])} on"
                        f" {h['df']} df, **p = {_p(h['p'])}**; inverse-variance weighted AUC {fmt(h['weighted_auc'])}.",
                        ""]
            elif t.get("homogeneity_note"):
                out += [f"No test of equal AUCs: {t['homogeneity_note']}.", ""]
            if t["pairwise"]:
                adj = t["pairwise"][0]["adjustment"]
                out += _table(["Groups", "ΔAUC", "95% CI", "D (df)", "p", "p (Holm-adjusted)"],
                              [[f"{p['groups'][0]} − {p['groups'][1]}", fmt(p["difference"]),
                                f"{fmt(p['ci_lower'])} to {fmt(p['ci_upper'])}", f"{p['d']:.3f} ({p['df']:.1f})",
                                _p(p["p"]), _p(p.get("p_adjusted"))] for p in t["pairwise"]])
                out += [f"Pairwise: DeLong's unpaired test (pROC's `roc.test(paired = FALSE)`); {adj['note']}.", ""]
        if level.get("note"):
            out += [f"Note: {level['note']}.", ""]
    out += [f"Note: {n}." for n in entry.get("notes", [])] + ([""] if entry.get("notes") else [])
    name = f"subgroups_{stem}.png"
    if name in files:
        out += [f"![Subgroups by {column}]({name})", ""]
    return out


DECISION_ROWS = (0.05, 0.1, 0.2, 0.3, 0.5)  # threshold probabilities shown in report.md (all 99 in report.json)


def _clinical_md(level: dict, settings: dict) -> list[str]:
    """Predictive values and likelihood ratios at the operating point, deployment PPV/NPV, AUPRC and
    the decision curve at a few threshold probabilities."""
    models = {c: m for c, m in level["models"].items() if "auprc" in m}
    if not models:
        return []
    first = next(iter(models.values()))
    out = ["### Predictive values and likelihood ratios (at the operating point)", "",
           "PPV and NPV at the sample prevalence hold only for a consecutive (cohort) sample; exact Clopper–Pearson"
           " 95% CIs. Likelihood ratios: log-method 95% CIs (Simel et al. 1991).", ""]
    out += _table(["Model", "Sample prevalence", "PPV (sample)", "NPV (sample)", "LR+", "LR−"],
                  [[c, fmt(m["n_cases"] / (m["n_cases"] + m["n_controls"])), _with_ci(m["ppv"]), _with_ci(m["npv"]),
                    _with_ci(m["lr_positive"], 2), _with_ci(m["lr_negative"], 2)] for c, m in models.items()])
    rows = [[c, f"{d['prevalence']:g}", _with_ci(d["ppv"]), _with_ci(d["npv"])]
            for c, m in models.items() for d in m["deployment"]]
    if rows:
        out += ["At the deployment prevalence(s) given with --prevalence: PPV and NPV by Bayes' theorem from the"
                " sensitivity and specificity above, logit 95% CIs (Mercaldo, Lau & Zhou 2007; the prevalence is"
                " taken as known).", ""]
        out += _table(["Model", "Prevalence", "PPV (95% CI)", "NPV (95% CI)"], rows)
    else:
        out += ["No deployment prevalence given (--prevalence P gives PPV and NPV at P).", ""]
    auprc = first["auprc"]
    out += ["### Precision–recall", "",
            f"AUPRC = average precision (step-wise, as scikit-learn); 95% CI: {auprc['method']}"
            f" ({auprc['n_bootstrap']} resamples, seed {auprc['seed']}). The baseline (a ranking with no skill) is"
            " the prevalence.", ""]
    out += _table(["Model", "AUPRC (95% CI)", "Baseline"],
                  [[c, _with_ci(m["auprc"]), fmt(m["auprc"]["baseline"])] for c, m in models.items()])
    curves = {c: m["decision_curve"] for c, m in models.items() if "skipped" not in m["decision_curve"]}
    out += ["### Decision curve (net benefit)", ""]
    if curves:
        out += ["Net benefit = TP/n − FP/n × pt/(1 − pt) at threshold probability pt (Vickers & Elkin 2006); treat"
                " none is 0. It reads the scores as calibrated probabilities, at the sample's prevalence. Every pt"
                " from 0.01 to 0.99 is in report.json.", ""]
        rows = []
        for c, d in curves.items():
            for pt in DECISION_ROWS:
                i = min(range(len(d["threshold"])), key=lambda k: abs(d["threshold"][k] - pt))
                rows.append([c, f"{d['threshold'][i]:g}", f"{number(d['net_benefit'][i]):.4f}",
                             f"{number(d['treat_all'][i]):.4f}",
                             f"{number(d['interventions_avoided_per_100'][i]):.1f}"])
        out += _table(["Model", "pt", "Net benefit (model)", "Net benefit (treat all)",
                       "Net interventions avoided per 100"], rows)
    skipped = [f"{c} ({m['clinical_skipped']})" for c, m in models.items() if m.get("clinical_skipped")]
    if skipped:
        out += [f"No decision curve for {'; '.join(skipped)}.", ""]
    return out


def _calibration_md(level: dict) -> list[str]:
    rows = []
    for column, m in level["models"].items():
        cal = m["calibration"]
        binned = cal["skipped"] if "skipped" in cal else f"Brier score {fmt(cal['brier'])}"
        fit = m.get("calibration_fit") or {"skipped": "not computed"}
        if "skipped" in fit:
            rows.append([column, binned, "n/a", "n/a", ""])
            continue
        rows.append([column, binned, _with_ci(fit["slope"], 2, " to "), _with_ci(fit["intercept"], 2, " to "),
                     fit.get("note", "")])
    return (["### Calibration", "",
             "Slope and calibration-in-the-large by logistic recalibration on logit(p) (ideal: 1 and 0; Wald 95% CIs);"
             " the figure's curve is a LOWESS smooth of the outcome on the prediction.", ""]
            + _table(["Model", "Reliability", "Calibration slope (95% CI)", "Calibration-in-the-large (95% CI)",
                      "Note"], rows))


def _multiclass_level_md(name: str, level: dict, settings: dict, files: dict) -> list[str]:
    out = [f"## {_level_heading(level, settings)}", ""]
    rows = []
    for cls, r in level["classes"].items():
        if r["auc"] is None:
            rows.append([cls, r["score_column"], f"{r['n_cases']} / {r['n_controls']}", "n/a", r.get("note", ""), ""])
            continue
        rows.append([cls, r["score_column"], f"{r['n_cases']} / {r['n_controls']}", fmt(r["auc"]),
                     f"{fmt(r['auc_ci']['lower'])}–{fmt(r['auc_ci']['upper'])}",
                     "higher = class" if r["direction"] == "<" else "**lower = class** (flipped)"])
    rows.append(["**macro average**", "", "", fmt(level["macro_auc"]), "(no CI)", ""])
    out += _table(["Class (vs rest)", "Score column", "n class / rest", "AUC", "95% CI", "Direction"], rows)
    caveats = [f"> **Caveat**, {cls}: {r['ci_caveat']}." for cls, r in level["classes"].items() if r.get("ci_caveat")]
    out += caveats + ([""] if caveats else [])
    clustered = {cls: r for cls, r in level["classes"].items() if r.get("clustered")}
    if clustered:
        first = next(iter(clustered.values()))
        naive = "; ".join(f"{cls} {fmt(r['auc_cis']['delong']['lower'])}–{fmt(r['auc_cis']['delong']['upper'])}"
                          f" (variance ratio {fmt(r['clustered']['variance_ratio'], 2)})" for cls, r in clustered.items())
        out += [f"The images of one `{first['clustered']['unit']}` are not independent: the 95% CIs above are"
                f" {_ci_method(first['auc_ci'])}. DeLong's CIs, which assume independent images: {naive}.", ""]
    acc = level["argmax"]["accuracy"]
    out += [f"Argmax accuracy: {_with_ci(acc)} (exact 95% CI), {acc['k']} of {acc['n']}.", ""]
    conf = level["argmax"]["confusion"]
    out += _table(["true \\ predicted", *conf["classes"]],
                  [[c, *row] for c, row in zip(conf["classes"], conf["matrix"])])
    if "folds" in level:
        f = level["folds"]
        keys = [k for k in f["mean"]]
        rows = [[r["fold"], *[fmt(r.get(k)) for k in keys]] for r in f["per_fold"]]
        rows.append(["**mean ± SD**", *[f"{fmt(f['mean'][k])} ± {fmt(f['sd'][k])}" for k in keys]])
        out += [f"### Cross-validation ({f['n_folds']} folds)", ""]
        if f.get("directions"):
            shown = ", ".join(f"{c} `{d}`" for c, d in f["directions"].items())
            out += [f"Direction in every fold, each class's pooled one: {shown}.", ""]
        out += _table(["Fold", *keys], rows)
    out += _figures(name, files)
    return out


def _figures(level_name: str, files: dict) -> list[str]:
    names = [n for n in files if n.endswith(".png") and f"_{level_name}" in n and "/" not in n
             and not n.startswith(("subgroups_", "flow"))]
    if not names:
        return []
    return ["### Figures", ""] + [f"![{n}]({n})" for n in sorted(names)] + [""]


def render_markdown(report: dict, files: dict) -> str:
    s = report["settings"]
    out = ["# Evaluation report", ""]
    if report["task"] == "binary":
        out.append(f"- Label column `{s['label_column']}`: positive (cases) `{s['positive']}`, negative (controls)"
                   f" `{s['negative']}`.")
    else:
        out.append(f"- Label column `{s['label_column']}`: {len(s['class_columns'])} classes, one-vs-rest.")
    out.append(f"- Score columns: {', '.join(f'`{c}`' for c in s['score_columns'])}.")
    if report["task"] == "binary":
        out.append(f"- Threshold rule: {threshold_rule_text(s)}.")
        out.append(f"- Threshold source: {threshold_source_text(s)}.")
    out.append(f"- Direction: {direction_text(s)}.")
    if s["ci"] == "delong":
        ci_text = "DeLong (fast midrank algorithm, Sun & Xu 2014), normal, clipped to [0, 1]"
    else:
        ci_text = f"stratified bootstrap percentile ({s['n_bootstrap']} resamples, seed {s['seed']})"
    out.append(f"- AUC: Mann–Whitney (ties count ½). AUC CI: {ci_text}.")
    if report["task"] == "binary":
        out.append("- ROC band: **pointwise** 95% stratified bootstrap interval of the sensitivity at each specificity"
                   " (pROC's `ci.se`: in each resample the sensitivity is interpolated between the ROC points); each"
                   " specificity's interval holds on its own, not the whole curve at once.")
    out.append("- Proportions: exact Clopper–Pearson 95% CIs.")
    if s["patient_column"]:
        out.append(f"- Patient level: rows grouped by `{s['patient_column']}`, scores combined by `{s['aggregate']}`;"
                   " a patient is positive when any of its rows is positive.")
    why = (report.get("headline") or {}).get("why")
    if why:
        out.append(f"- Unit of analysis: {why[0].upper() + why[1:]}.")
    if report["task"] == "binary" and s.get("multiplicity") == "holm":
        out.append("- Multiple tests: the pairwise tests of one family (the model comparisons of a level; the"
                   " pairs of subgroups of a model and level) are Holm-adjusted; raw and adjusted p are both given.")
    if s["fold_column"]:
        out.append(f"- Cross-validation folds from `{s['fold_column']}`; the main results are the pooled out-of-fold"
                   " ones.")
    out.append("")
    out += _flow_md(report, files)
    for name in level_order(report):
        level = report["levels"][name]
        if report["task"] == "binary":
            out += _binary_level_md(name, level, s, files)
        else:
            out += _multiclass_level_md(name, level, s, files)
    for column, entry in (report.get("subgroups") or {}).items():
        out += _subgroup_md(entry, s, files, safe_name(column))
    out += _excluded_md(report.get("excluded"))
    out += _worst_md(report.get("worst"))
    if report.get("readers"):
        out += ["## Readers", ""] + _table(["Reader", "Sensitivity", "Specificity", "Level"],
                                           [[r["name"], fmt(r["sensitivity"]), fmt(r["specificity"]),
                                             r.get("level", "all")] for r in report["readers"]])
    if report.get("mrmc"):
        out += _mrmc_md(report["mrmc"])
    if report["notes"]:
        out += ["## Notes", ""] + [f"- **Warning:** {n[len(WARNING):]}" if n.startswith(WARNING) else f"- {n}"
                                   for n in report["notes"]] + [""]
    return "\n".join(out)


def _mrmc_headline_md(head: dict) -> list[str]:
    d = head["design"]
    out = [f"{len(d['readers'])} readers ({', '.join(map(str, d['readers']))}) x {len(d['modalities'])} modalities x"
           f" {d['n_cases']} cases ({d['n_diseased']} diseased, {d['n_nondiseased']} non-diseased). {head['method']}:"
           f" **F = {fmt(head['f'])}** on {head['ndf']} and {fmt(head['ddf'], 2)} df, **p = {_p(head['p'])}**.", ""]
    out += _table(["Modality", "Reader-averaged AUC (95% CI)"],
                  [[m, _with_ci(a, 4)] for m, a in head["auc"].items()])
    out += _table(["Difference", "Estimate (95% CI)", "p"],
                  [[name, f"{fmt(c['estimate'], 4)} ({fmt(c['lower'], 4)} to {fmt(c['upper'], 4)})", _p(c["p"])]
                   for name, c in head["ci_difference"].items()])
    return out


def _mrmc_md(head: dict) -> list[str]:
    """The reader study's headline in report.md; the whole analysis is in mrmc.md."""
    files = head["files"]
    out = ["## Reader study (multi-reader multi-case ROC)", "", f"Reads: `{head.get('source')}`. Full analysis"
           f" (each reader's AUC, the three generalisations, variance components, readers' McNemar): [{files['md']}]"
           f"({files['md']}).", "", f"![Reader AUCs per modality]({files['png']})", ""]
    out += _mrmc_headline_md(head)
    other = head.get("with_model")
    if other:
        out += [f"### With the model as a reader ({', '.join(other['model_readers'])}, the same scores in every"
                " modality)", "", f"Full analysis: [{other['files']['md']}]({other['files']['md']}). The readers' own"
                " analysis above is unchanged by it.", ""]
        out += _mrmc_headline_md(other)
        by = [r for r in other["per_reader"] if r["reader"] in other["model_readers"]]
        out += _table(["Model reader", "Modality", "AUC (jackknife SE)"],
                      [[r["reader"], r["modality"], f"{fmt(r['auc'], 4)} ({fmt(r['se'], 4)})"] for r in by])
    return out


def render_reader_markdown(report: dict, study: dict) -> str:
    """report.md of a reads table analysed alone: mrmc.md's content under a report title."""
    from .mrmc import mrmc_markdown

    head = report["mrmc"]
    body = mrmc_markdown(study, head["files"])
    notes = [n for n in report.get("notes", []) if not n.startswith("reader study: ")]
    extra = (["## Notes", ""] + [f"- {n}" for n in notes] + [""]) if notes else []
    return "\n".join(["# Reader study report", "", f"Reads: `{head.get('source')}`.", "", body, *extra])


def _excluded_md(excluded: dict | None) -> list[str]:
    """The images left out of the analysis because they lie outside a model's training profile."""
    if not excluded or not excluded.get("n"):
        return []
    out = ["## Excluded images", "",
           f"{excluded['n']} image(s) of the data lie outside the training profile of the model(s) evaluated and are"
           f" left out of every number above (listed in [{excluded['file']}]({excluded['file']})):", ""]
    out += _table(["Reason", "Images"], [[reason, count] for reason, count in excluded["reasons"].items()])
    return out


def _worst_md(worst: dict | None) -> list[str]:
    """The Grad-CAM gallery of the worst cases, each row linking its panel."""
    if not worst:
        return []
    out = ["## Worst cases (Grad-CAM)", "",
           f"The {worst['n']} highest-scoring {worst['negative']} images (false positives when called"
           f" {worst['positive']}) and the {worst['n']} lowest-scoring {worst['positive']} images (false negatives"
           f" when called {worst['negative']}), image level; panels in `{worst['folder']}/`.", ""]
    for model, groups in worst["models"].items():
        for title, key in ((f"Highest-scoring {worst['negative']}", "false_positives"),
                           (f"Lowest-scoring {worst['positive']}", "false_negatives")):
            rows = [[c["rank"], f"`{c['path']}`", fmt(c["score"]), c["call"],
                     f"[panel]({c['panel']})" if c.get("panel") else c.get("note", "no panel")]
                    for c in groups[key]]
            heading = f"### {title}" + (f", {model}" if len(worst["models"]) > 1 else "")
            out += [heading, ""] + (_table(["#", "Image", "Score", "Call", "Grad-CAM"], rows) if rows else ["none", ""])
            out += [f"![{c['path']}]({c['panel']})" for c in groups[key] if c.get("panel")] + [""]
    return out


def render_summary(report: dict) -> str:
    """The one-screen text: per level and model, AUC (CI), threshold and rule, sens/spec (CI), n."""
    if report.get("task") == "mrmc":
        return "\n".join(_mrmc_summary(report["mrmc"]) + _summary_notes(report))
    s = report["settings"]
    lines = []
    direction = s.get("direction", "auto")
    if report["task"] == "binary":
        chosen_here = " (exploratory*)" if s.get("threshold_exploratory") else ""
        lines.append(f"{s['positive']} (positive) vs {s['negative']} | threshold rule: {threshold_rule_text(s)}"
                     f"{chosen_here} | direction: {direction} | AUC CI: {'DeLong' if s['ci'] == 'delong' else 'bootstrap'}"
                     " 95%")
    else:
        lines.append(f"one-vs-rest over {len(s['class_columns'])} classes | direction: {direction} | AUC CI:"
                     f" {'DeLong' if s['ci'] == 'delong' else 'bootstrap'} 95%")
    names = s["class_columns"] if report["task"] == "multiclass" else s["score_columns"]
    width = max(len(str(c)) for c in names)
    if report.get("flow"):
        lines.append(_flow_summary(report["flow"]))
    headline_level = (report.get("headline") or {}).get("level")
    for name in level_order(report):
        level = report["levels"][name]
        clustered = _clustered_unit(level)
        if level["unit"] == "image":
            head = f"image level: {level['n']} images"
        else:
            head = f"patient level ({level['aggregate']} by {level['group_column']}): {level['n']} patients"
        if report["task"] == "multiclass":
            counts = ", ".join(f"{n} {c}" for c, n in level["n_per_class"].items())
            lines.append(f"{head} ({counts}){_level_tail(name, headline_level, clustered, naive=False)}")
            for cls, r in level["classes"].items():
                if r["auc"] is None:
                    lines.append(f"  {cls:<{width}}  no AUC ({r.get('note', '')})")
                    continue
                lines.append(f"  {cls:<{width}}  AUC {fmt(r['auc'])} ({fmt(r['auc_ci']['lower'])}-"
                             f"{fmt(r['auc_ci']['upper'])})  n {r['n_cases']}/{r['n_controls']}")
                if r.get("ci_caveat"):
                    lines.append(f"  {'':<{width}}  caveat: {r['ci_caveat']}")
            lines.append(f"  macro-average AUC {fmt(level['macro_auc'])}; argmax accuracy"
                         f" {_with_ci(level['argmax']['accuracy'], dash='-')}")
            if "folds" in level:
                f = level["folds"]
                lines.append(f"  folds ({f['n_folds']}): macro AUC {fmt(f['mean']['macro_auc'])} +- {fmt(f['sd']['macro_auc'])}")
            continue
        lines.append(f"{head} ({level['n_positive']} {s['positive']} / {level['n_negative']} {s['negative']})"
                     f"{_level_tail(name, headline_level, clustered)}")
        pad = " " * (width + 4)
        for column, m in level["models"].items():
            ci = m["auc_ci"]
            flipped = f"  [lower score = {s['positive']}]" if m["direction"] == ">" else ""
            auprc = f"  AUPRC {_with_ci(m['auprc'], dash='-')}" if "auprc" in m else ""
            naive = ""
            if m.get("clustered"):
                delong_ci = m["auc_cis"]["delong"]
                naive = f"; naive {fmt(delong_ci['lower'])}-{fmt(delong_ci['upper'])}"
            lines.append(f"  {column:<{width}}  AUC {fmt(m['auc'])} (95% CI {fmt(ci['lower'])}-{fmt(ci['upper'])}"
                         f"{naive})  n {m['n_cases']}/{m['n_controls']}{auprc}{flipped}")
            if m.get("ci_caveat"):
                lines.append(f"{pad}caveat: {m['ci_caveat']}")
            op, thr = m["operating_point"], m["threshold"]
            ties = f", {len(thr['ties'])} tied" if len(thr["ties"]) > 1 else ""
            chosen = thr["description"] if thr["rule"] == "model" else \
                f"threshold {fmt_threshold(thr['value'])} ({thr['rule']}{ties})"
            points = op.get("with_threshold_choice") or op  # exploratory: the CIs that include the choice
            star = "*" if op.get("with_threshold_choice") else ""
            lines.append(f"{pad}{chosen}{star}"
                         f"  sens {_with_ci(points['sensitivity'], dash='-')}"
                         f"  spec {_with_ci(points['specificity'], dash='-')}")
            if "auprc" in m:
                lines.append(f"{pad}PPV {_with_ci(m['ppv'], dash='-')}  NPV {_with_ci(m['npv'], dash='-')}"
                             f"  LR+ {_with_ci(m['lr_positive'], 2, '-')}  LR- {_with_ci(m['lr_negative'], 2, '-')}")
                for d in m["deployment"]:
                    lines.append(f"{pad}at prevalence {d['prevalence']:g}: PPV {_with_ci(d['ppv'], dash='-')}"
                                 f"  NPV {_with_ci(d['npv'], dash='-')}")
            if "folds" in m:
                f = m["folds"]
                lines.append(f"{pad}folds ({f['n_folds']}, '{f.get('direction', m['direction'])}' in each): AUC"
                             f" {fmt(f['mean']['auc'])} +- {fmt(f['sd']['auc'])},"
                             f" sens {fmt(f['mean']['sensitivity'])} +- {fmt(f['sd']['sensitivity'])},"
                             f" spec {fmt(f['mean']['specificity'])} +- {fmt(f['sd']['specificity'])} (mean +- SD)")
        for c in level["comparisons"]:
            a, b = c["models"]
            stat = f"Z {number(c['z']):.2f}" if c["cases"] != "different" else f"D {c['d']:.2f} (df {c['df']:.0f})"
            kind = ("Obuchowski, clustered" if c.get("delong_independent") else
                    "DeLong paired" if c["cases"] != "different" else "DeLong unpaired")
            adjustment = c.get("adjustment") or {}
            holm = (f", Holm-adjusted p {number(c['p_adjusted']):.3g}"
                    if adjustment.get("method") == "holm" and adjustment.get("family_size", 0) > 1 else "")
            lines.append(f"  {a} vs {b}: dAUC {fmt(c['difference'])} ({fmt(c['ci_lower'])} to {fmt(c['ci_upper'])}),"
                         f" {stat}, p {number(c['p']):.3g}{holm} ({kind})")
    for column, entry in (report.get("subgroups") or {}).items():
        lines += _subgroup_summary(entry)
    if s.get("threshold_exploratory") and report["task"] == "binary":
        lines.append("* threshold chosen on these data (exploratory): sens/spec CIs include the choice (bootstrap);"
                     " exact CIs in report.md")
    if report.get("mrmc"):
        lines += _mrmc_summary(report["mrmc"])
    return "\n".join(lines + _summary_notes(report))


def _clustered_unit(level: dict) -> str | None:
    """The patient column an image level's CIs are clustered by, else None."""
    records = (level.get("models") or level.get("classes") or {}).values()
    found = next((r["clustered"] for r in records if r.get("clustered")), None)
    return found["unit"] if found else None


def _level_tail(name: str, headline_level: str | None, clustered: str | None, naive: bool = True) -> str:
    """What follows a level's head line in the summary: why it is the headline, or how its CIs are clustered."""
    if name == "patient" and headline_level == "patient":
        return " - the headline: a patient's images are not independent"
    if clustered:
        return f"; CIs clustered by {clustered}" + (", naive = assuming independent images" if naive else
                                                     " (DeLong's, assuming independent images, in report.md)")
    return ""


def _flow_summary(table: dict) -> str:
    """The flow of cases in one line."""
    excluded = "none excluded" if not table["n_excluded"] else (
        f"{table['n_excluded']} excluded (" + ", ".join(f"{s['n']} {s['reason']}" for s in table["excluded"]) + ")")
    patients = (f", {table['patients_analysed']['n']} patients" if table.get("patients_analysed") else "")
    return (f"flow of cases: {table['rows_read']['n']} rows read, {excluded}; {table['images_analysed']['n']} images"
            f"{patients} analysed")


def _subgroup_summary(entry: dict) -> list[str]:
    """Each model's subgroups at the entry's headline level: AUC (CI) per group, the test of equal AUCs."""
    name = entry["headline_level"]
    lines = []
    for model, t in entry["levels"][name]["models"].items():
        groups = "; ".join(f"{g['group']} {_with_ci(g['auc'], dash='-') if g['auc'] else 'no AUC'}"
                           f" n {g['n_cases']}/{g['n_controls']}" for g in t["groups"][:SUMMARY_GROUPS])
        if len(t["groups"]) > SUMMARY_GROUPS:
            groups += f"; {len(t['groups']) - SUMMARY_GROUPS} more groups in report.md"
        text = f"subgroups by {entry['column']} ({name} level, {model}): {groups}"
        h = t["homogeneity"]
        if h:
            text += f"; equal AUCs: Q {h['q']:.2f} on {h['df']} df, p {number(h['p']):.3g}"
        adjusted = [number(p["p_adjusted"]) for p in t["pairwise"] if p.get("p_adjusted") is not None]
        if len(t["pairwise"]) > 1 and adjusted:
            text += f"; {len(t['pairwise'])} pairwise tests, Holm-adjusted: smallest p {min(adjusted):.3g}"
        lines += textwrap.wrap(text, SUMMARY_WIDTH, subsequent_indent="  ", break_on_hyphens=False)
    return lines


def _mrmc_summary(head: dict) -> list[str]:
    """Reader-averaged AUC per modality with its CI, F, ddf, p and the CI of each difference."""
    d = head["design"]
    lines = [f"reader study: {len(d['readers'])} readers x {len(d['modalities'])} modalities x {d['n_cases']} cases"
             f" ({d['n_diseased']} diseased / {d['n_nondiseased']} non-diseased); OR random readers and cases,"
             " Hillis ddf"]
    width = max(len(str(m)) for m in head["auc"])
    for m, a in head["auc"].items():
        lines.append(f"  modality {str(m):<{width}}  reader-averaged AUC {fmt(a['value'], 4)} (95% CI"
                     f" {fmt(a['lower'], 4)}-{fmt(a['upper'], 4)})")
    lines.append(f"  F {fmt(head['f'])} on {head['ndf']} and {fmt(head['ddf'], 2)} df, p {_p(head['p'])}")
    for name, c in head["ci_difference"].items():
        lines.append(f"  difference {name}: {fmt(c['estimate'], 4)} (95% CI {fmt(c['lower'], 4)} to"
                     f" {fmt(c['upper'], 4)})")
    other = head.get("with_model")
    if other:
        models = {r["reader"]: r for r in other["per_reader"] if r["reader"] in other["model_readers"]}
        lines.append(f"  with the model as a reader ({', '.join(other['model_readers'])}, same scores in every modality):"
                     f" F {fmt(other['f'])} on {other['ndf']} and {fmt(other['ddf'], 2)} df, p {_p(other['p'])}; "
                     + ", ".join(f"{name} AUC {fmt(r['auc'], 4)} (SE {fmt(r['se'], 4)})" for name, r in models.items()))
    lines.append(f"  details: {head['files']['md']}")
    return lines


def _summary_notes(report: dict) -> list[str]:
    lines = []
    notes = report.get("notes", [])
    caveats = _printed_caveats(report)
    for note in notes:
        if note.startswith(WARNING) and not any(c in note for c in caveats):
            lines += textwrap.wrap(note, SUMMARY_WIDTH, subsequent_indent="  ", break_on_hyphens=False)
    others = [n for n in notes if not n.startswith(WARNING)]
    for note in others[:SUMMARY_NOTES]:
        lines.append(f"note: {note if len(note) <= 160 else note[:157] + '...'}")
    if len(others) > SUMMARY_NOTES:
        lines.append(f"({len(others) - SUMMARY_NOTES} more notes in report.md)")
    return lines


def _printed_caveats(report: dict) -> list[str]:
    """The CI caveats the summary prints under their models (their warnings are not printed twice)."""
    out = []
    for level in report.get("levels", {}).values():
        for record in (level.get("models") or level.get("classes") or {}).values():
            if record.get("ci_caveat"):
                out.append(record["ci_caveat"])
    return out
