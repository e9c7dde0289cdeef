"""The evaluation report's sections, built from `report.evaluation_summary`'s figures.

One builder per part (estimates, overrides, calibration, agreement, slices, analysts, drift);
`render` turns them into Markdown or HTML, for the report files and the UI alike.
"""
from __future__ import annotations

from typing import Any, Mapping

from .render import Md, Section, Table, est, kappa, measured, num, percent, plain


def _estimate_sections(s: Mapping[str, Any]) -> list[Section]:
    qa, alld = s["estimates"]["qa_audit"], s["estimates"]["all_decisions"]
    w = s["target_width"]
    weighted = qa["weighted"]
    needed: dict[str, dict[str, Any]] = {}
    for r in qa["table"]:
        needed.setdefault(r["policy"], {})[r["measure"]] = r
    rows = []
    for lab, m in qa["per_policy"].items():
        more = ["n/a" if needed[lab][k]["audits_to_target"] is None else str(needed[lab][k]["audits_to_target"])
                for k in ("precision", "recall", "f1")]
        rows.append([lab, est(m["precision"]), est(m["recall"]), est(m["f1"]), " / ".join(more)]
                    + ([" / ".join(num(m[k].get("n_eff"), 1) for k in ("precision", "recall", "f1"))] if weighted else []))
    # the interval method the figures carry (evaluation.yaml `interval_method`): the text said
    # "Wilson" / "stratified posterior" whatever the table's intervals were computed with
    boot = any(e.get("method") == "bootstrap" for m in qa["per_policy"].values() for e in m.values()
               if isinstance(e, Mapping))
    design = (f"stratified by predicted policy and score band ({qa['strata']} inclusion probabilities); each "
              "audit weighted by 1 / its inclusion probability, and up by its band's share of audits still "
              "pending (ratio estimator; " + ("percentile bootstrap interval, resampled within strata)" if boot else
                                             "interval from a stratified posterior of the population totals)")
              ) if weighted else "uniform (every case had the same chance); " + (
                  "percentile bootstrap intervals" if boot else "Wilson intervals")
    text = (f"{qa['n']} audited decisions; design: {design}. {percent(s['confidence'])} intervals. "
            f"*n* is the number of audited items in the rate's denominator (predicted the policy for precision, "
            f"truly the policy for recall; every audited item for prevalence, the share of traffic that "
            f"is the policy). Further audits: how many more would bring each interval (P / R / F1) "
            f"to a width of {w:.2f}. Accuracy: {est(qa['accuracy'], 3)}.")
    headers = ["policy", "precision", "recall", "F1", f"further audits to width {w:.2f} (P / R / F1)",
               *(["n_eff (P / R / F1)"] if weighted else [])]
    prev = [[r["policy"], est(qa["prevalence"][r["policy"]], 3),
             "n/a" if r["audits_to_target"] is None else str(r["audits_to_target"])]
            + ([num(r["n_eff"], 1)] if weighted else []) for r in qa.get("prevalence_table", [])]
    tables = ([Table(headers, rows)] if rows else []) + ([Table(
        ["policy", "prevalence", f"further audits to width {w:.2f}", *(["n_eff"] if weighted else [])], prev,
        "prevalence: the share of traffic whose human label is the policy, from the QA audit")] if prev else [])
    out = [Section("QA-audit estimates (unbiased precision, recall and prevalence)", text, tables, ["estimates"])]
    rows = [[lab, est(m["precision"]), est(m["recall"]), est(m["f1"])] for lab, m in alld["per_policy"].items()]
    out.append(Section("All decisions (model-ranked review)",
                       "Every current human label against the model's label at decision time. The queue shows the "
                       "model's riskiest items first, so these figures are biased (recall especially): read the "
                       f"QA-audit estimates above for unbiased ones. Accuracy {est(alld['accuracy'], 3)}.",
                       [Table(["policy", "precision", "recall", "F1"], rows)] if rows else []))
    return out


def _group_table(name: str, groups: Mapping[str, Any]) -> Table:
    rows = []
    for g, v in groups.items():
        ws, ch = v["windows"], v["change"]
        rows.append([g, est(v["overall"]), est(ws[-2]) if len(ws) > 1 else "n/a", est(ws[-1]),
                     "n/a" if ch.get("change") is None else f"{ch['change']:+.2f} [{ch['lo']:+.2f}, {ch['hi']:+.2f}]",
                     "n/a" if ch.get("pvalue") is None else f"{ch['pvalue']:.3f}",
                     Md("**changed**") if ch.get("significant") else ""])
    return Table([name, "all windows", "previous window", "last window", "change", "p", ""], rows,
                 f"override rate per {name}")


def _override_sections(s: Mapping[str, Any]) -> list[Section]:
    o = s["overrides"]
    ch = o["change"]
    change = ("not enough decisions in the last two windows" if ch.get("change") is None else
              f"Last window against the one before: {ch['change']:+.3f} [{ch['lo']:+.3f}, {ch['hi']:+.3f}], "
              f"two-proportion z-test p = {ch['pvalue']:.3f}" + (" (**changed**)" if ch["significant"] else ""))
    cut = 10 if o["window_days"] >= 1 else 16  # dates, or dates and times for sub-day windows
    rows = [[w["start"][:cut].replace("T", " "), w["end"][:cut].replace("T", " "), w["n"], w["k"],
             est(w, 3, with_n=False)] for w in o["windows"]]
    out = [Section("Override rate over time",
                   f"Decisions judged against the model's label, in windows of {o['window']} up to "
                   f"{o['as_of'][:16]}. All windows: {est(o['overall'], 3)}. {change}.",
                   [Table(["from", "to", "n", "overrides", "rate [interval]"], rows)], ["override_rate"])]
    tables = [_group_table(name, o[key]) for name, key in (("model version", "by_model_version"),
                                                            ("policy", "by_policy"), ("queue", "by_queue")) if o[key]]
    out.append(Section("Overrides per model version, policy and queue",
                       "Change: last window minus the one before, with Newcombe's interval; p from a two-proportion "
                       f"z-test, flagged below {s['change_alpha']}.", tables))
    labels = o["labels"]
    conf_rows = [[labels[i]] + row for i, row in enumerate(o["confusion"])]
    sc = o["scores"]
    split = [[name, sc[name]["n"], num(sc[name]["mean"]), num(sc[name]["q25"]), num(sc[name]["median"]),
              num(sc[name]["q75"])] for name in ("confirmed", "overridden")]
    out.append(Section("Confusion matrix and scores of confirmed vs overridden decisions",
                       "Rows: the model's label; columns: the human's. AUC of the model's score at telling a "
                       f"confirm from an override: {num(sc['auc'])} (0.5: no signal).",
                       [Table(["model \\ human"] + labels, conf_rows),
                        Table(["decisions", "n", "mean score", "q25", "median", "q75"], split)], ["score_split"]))
    return out


def _calibration_and_agreement(s: Mapping[str, Any]) -> list[Section]:
    c = s["calibration"]
    out = [Section("Calibration on human labels",
                   f"Expected calibration error {num(c['ece'])} over n = {c['n']} decisions with the model's scores "
                   "(all decisions: model-ranked, so read it together with the QA-audit figures)."
                   + (f" Left out: {c['nonfinite']} decisions whose stored scores are not finite numbers."
                      if c.get("nonfinite") else "")
                   + (f" Left out: {c['retired_model']} decisions whose model label is a retired policy (its "
                      "score is not among the current policies'); a retired human label counts as a wrong top label."
                      if c.get("retired_model") else ""),
                   plots=["reliability"])]
    # kappa undefined (one label only, one rater) says why, as `report.agreement` notes it
    rows = [[name, v["items"], v["raters_per_item"], v["method"] or "n/a",
             num(v["kappa"]) if measured(v["kappa"]) else f"n/a ({v.get('kappa_note') or 'not enough data'})"]
            for name, v in s["agreement"].items()]
    out.append(Section("Agreement between analysts (calibration sets)",
                       "" if rows else "No calibration decisions yet.",
                       [Table(["set", "items", "raters per item", "method", "kappa"], rows)] if rows else []))
    return out


def _slice_section(s: Mapping[str, Any]) -> Section:
    sl = s["slices"]

    def auc(e: Mapping[str, Any]) -> str:
        if not measured(e["estimate"]):
            return "n/a"
        return f"{e['estimate']:.2f}" + (f" [{e['lo']:.2f}, {e['hi']:.2f}]" if measured(e["lo"]) and measured(e["hi"])
                                         else "")

    rows, f1_rows = [], []
    policies = list(s["estimates"]["all_decisions"]["per_policy"])
    empty = [name for name, f in sl["slices"].items() if not f["n"]]
    for name, f in [("all", {**sl["overall"], "subgroup_auc": sl["overall_auc"], "bpsn_auc": None,
                             "bnsp_auc": None, "small": False})] + [
            (k, v) for k, v in sl["slices"].items() if v["n"]]:
        rows.append([name + (" (small)" if f["small"] else ""), f["n"], f["audits"], est(f["override_rate"]),
                     est(f["fpr"]), est(f["fnr"]), auc(f["subgroup_auc"]),
                     auc(f["bpsn_auc"]) if f["bpsn_auc"] else "—", auc(f["bnsp_auc"]) if f["bnsp_auc"] else "—"])
        f1_rows.append([name] + [est(f["per_policy"].get(p, {}).get("f1")) for p in policies])
    text = ("Per slice, on every current human label: FPR = benign by the human but flagged by the model (n = "
            "benign items), FNR = violating but called benign (n = violating items). AUCs of the violation score "
            "(1 - p(benign)) for violating vs benign, against the background (items outside the slice): subgroup "
            "AUC within the slice; BPSN (background positive, subgroup negative) low = false positives against "
            "the slice; BNSP (background negative, subgroup positive) low = misses within it (Borkan et al. 2019). "
            f"Model≠human: the current human label differs from the model's. Slices under {s['min_slice_n']} "
            "decisions are marked small." + (f" No decisions yet: {plain(', '.join(empty))}." if empty else ""))
    return Section("Slices and bias", text,
                   [Table(["slice", "n", "audits", "model≠human", "FPR", "FNR", "subgroup AUC", "BPSN AUC",
                           "BNSP AUC"], rows),
                    Table(["slice"] + [f"F1 {p}" for p in policies], f1_rows, "F1 per policy and slice")])


def _analyst_section(s: Mapping[str, Any]) -> Section:
    a = s["analysts"]
    title = "Analyst quality (leads only)"
    if "refused" in a:
        return Section(title, f"Not shown: {plain(a['refused'])}")
    rows = [[r["analyst"], r["decisions"], r["active_days"], num(r["per_active_day"], 1), est(r["qa_pass_rate"]),
             kappa(r["gold_agreement"]), kappa(r["peer_agreement"]), est(r["override_rate"]), est(r["rework_rate"]),
             r["label_errors"]["queued"], r["label_errors"]["corrected"], r["label_errors"]["confirmed"]]
            for r in a["analysts"]]
    scan = ("" if a.get("label_errors_queued") else " No label-error scan has queued a decision yet "
            "(`workbench label-errors scan`): those columns are 0.")
    return Section(title, "For coaching, sorted by name (not a ranking). QA pass: the lead's blind re-review gave "
                          "the same label; gold: calibration labels against the label of record by someone else; "
                          "peers: every other rater of the same calibration item (n counts the pairs, the interval "
                          "the items: one answer per item, however many peers); rework: own decisions later "
                          "changed. Each with its interval and n. Label errors: own decisions the confident-learning "
                          "scan queued for a lead's re-review, of them confirmed errors (corrected) and confirmed "
                          "correct; the rest are pending." + scan,
                   [Table(["analyst", "decisions", "active days", "per active day", "QA pass rate", "gold agreement",
                           "peer agreement", "override rate", "rework rate", "flagged label errors",
                           "confirmed errors", "confirmed correct"], rows)] if rows else [])


def _retired_line(s: Mapping[str, Any]) -> str:
    """The summary's sentence on decisions that carry a retired policy label (`data.retired_counts`),
    empty without any: the figures keep them, and the reader learns how many there are."""
    r = s.get("retired") or {}
    if not r.get("decisions"):
        return ""
    labels = ", ".join(f"{plain(lab)}: {n}" for lab, n in r["labels"].items())
    return (f" **{r['decisions']}** of these decisions carry a policy label no longer in the taxonomy ({labels}), "
            f"{r['qa_audit']} of them from the QA audit: they count against the model's current policies "
            "and in every denominator; a retired policy gets no figures of its own.")


def evaluation_sections(s: Mapping[str, Any]) -> list[Section]:
    """Every section of the report, in reading order."""
    out = [Section("Summary", (
        f"**{s['decisions']}** current human labels joined with the prediction the analyst saw, "
        f"**{s['estimates']['qa_audit']['n']}** of them from the QA audit; override rate over all decisions "
        f"judged against the model: **{est(s['overrides']['overall'], 3)}**. Intervals: "
        f"{percent(s['confidence'])}." + _retired_line(s)))]
    out += _estimate_sections(s) + _override_sections(s) + _calibration_and_agreement(s)
    out += [_slice_section(s), _analyst_section(s)]
    d = s.get("drift") or {}
    if d.get("markdown"):
        out.append(Section("Drift", markdown=d["markdown"], plots=["drift"]))
    else:
        out.append(Section("Drift", plain(d.get("error", "Drift was not computed."))))
    return out
