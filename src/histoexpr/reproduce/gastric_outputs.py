"""The gastric study's tables and figures (seed 000) from the ``bulk fit`` runs of
:func:`~histoexpr.reproduce.gastric.reproduce_gastric`.

- Table 1: Pearson r between true and predicted expression on the test patients, the mean
  over the four genes, per model (rows) and number of patches (columns N = 1, N = 10), with
  the validation patients' r beside it and the per-gene r in ``tables/``;
- Fig. 7: violins of true and predicted expression per gene (baseline, N = 1);
- the baselines (mean predictor, colour histograms, random-init encoder) on the same split;
- Cheong et al.'s groups (immune, stem-like, epithelial) of the test patients from the best
  model's predicted genes, with survival by group when a clinical table is given;
- with a response column: the binarising thresholds of the Cheong scores searched against
  the response (in-sample and cross-validated balanced accuracy); with a treatment column:
  the chemotherapy-benefit test, treatment x predicted benefit in a Cox model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import write_csv
from ..errors import InputError
from ..runs import BulkRunFolder
from . import report as rep

__all__ = ["table1", "write_outputs"]


def _pearson(run: Path, role: str, kind: str = "model") -> pd.DataFrame:
    m = pd.read_csv(BulkRunFolder(run).metrics)
    return m[(m["role"] == role) & (m["kind"] == kind) & (m["metric"] == "pearson_r")]


#: Table 1's layout: row -> (the run of its N = 1 cell, the run of its N = 10 cell); with one
#: patch, mean and max aggregation are the baseline (the paper: "same as M2 for N = 1")
LAYOUT = {
    "M1 simplified (fine-tuned)": ("M1 simplified (fine-tuned)", None),
    "M2 baseline": ("M2 baseline", None),
    "M3 mean aggregation": ("M2 baseline", "M3 mean aggregation"),
    "M4 max aggregation": ("M2 baseline", "M4 max aggregation"),
    "M3 + multi-task": ("M2 + multi-task", "M3 + multi-task"),
    "M4 + multi-task": ("M2 + multi-task", "M4 + multi-task"),
}


def table1(runs: dict[str, Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 1 (mean Pearson r over the genes; rows: models, columns: N = 1 / N = 10 on the
    test patients, then on the validation patients) and the per-gene r of every run."""
    score, genes = {}, []
    for label, path in runs.items():
        for role in ("test", "val"):
            t = _pearson(path, role)
            score[label, role] = float(t["value"].mean()) if len(t) else np.nan
            genes += [{"model": label, "role": role, "gene": g, "pearson_r": v}
                      for g, v in zip(t["gene"], t["value"])]
    rows = {}
    for row, cells in LAYOUT.items():
        if cells[0] not in runs:
            continue
        rows[row] = {f"{'' if role == 'test' else 'val, '}N = {n}":
                     score.get((run, role), np.nan) if run else np.nan
                     for role in ("test", "val") for n, run in zip((1, 10), cells)}
    return pd.DataFrame(rows).T, pd.DataFrame(genes)


def _fig7(run: Path, path: Path) -> Path:
    from ..plot.figures import new_figure
    from ..plot.spatial import save_figure

    pred = pd.read_csv(BulkRunFolder(run).predictions_csv)
    genes = [c for c in pred.columns if c not in ("entry", "model", "features", "kind", "unit",
                                                  "role", "slide")]
    test_slides = set(pred[(pred["role"] == "test") & (pred["kind"] == "model")]["slide"])
    model = pred[(pred["kind"] == "model") & (pred["role"] == "test")].set_index("slide")
    true = pred[pred["kind"] == "measured"].set_index("slide").loc[sorted(test_slides)]
    fig = new_figure((2.6 * len(genes), 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(genes)))
    for ax, g in zip(axes, genes):
        parts = ax.violinplot([true[g].to_numpy(float), model.loc[sorted(test_slides), g]
                               .to_numpy(float)], showmedians=True)
        for body, c in zip(parts["bodies"], ("#2b83ba", "#d7191c")):
            body.set_facecolor(c)
        ax.set_xticks([1, 2], ["true", "predicted"])
        ax.set_title(g, fontsize=10)
    axes[0].set_ylabel("log(1 + FPKM-UQ), test patients")
    return save_figure(fig, path)


def _cheong(run: Path, out: Path, clinical: Any, time_col: str, event_col: str) -> Any:
    from ..workflows import cheong_study

    kw: dict[str, Any] = {}
    if clinical is not None:
        kw = {"clinical": clinical, "time": time_col, "event": event_col}
    return cheong_study(run, out=out / "cheong", role="test", **kw)


_YES = {"1", "yes", "true", "responder", "response", "cr", "pr", "treated", "chemo"}
_NO = {"0", "no", "false", "non-responder", "nonresponder", "sd", "pd", "untreated", "none"}


def binary(col: pd.Series, name: str) -> pd.Series:
    """A yes/no column (1/0, yes/no, true/false, responder/non-responder, CR/PR vs SD/PD,
    treated/untreated) as booleans; anything else is an error naming the values."""
    v = col.astype(str).str.strip().str.lower()
    bad = sorted(set(v[~v.isin(_YES | _NO) & col.notna()]))
    if bad:
        raise InputError(f"column {name!r}: cannot read {', '.join(bad[:5])} as yes/no; use "
                         "1/0, yes/no or responder/non-responder")
    return v.isin(_YES).where(col.notna())


def _benefit_sections(groups: pd.DataFrame, clinical: Any, time_col: str, event_col: str,
                      response: str | None, treatment: str | None, tables: Path
                      ) -> list[rep.Section]:
    from ..clinical.benefit import benefit_interaction, threshold_search
    from ..workflows.inputs import clinical_table

    tab = clinical_table(clinical)
    sec = []
    if response:
        scores = groups.rename(columns={"immune_score": "immune",
                                        "stem_like_score": "stem_like"})
        res = threshold_search(scores, binary(tab[response], response).dropna())
        write_csv(tables / "cheong_threshold_grid.csv", res["grid"], index=False)
        best = pd.DataFrame([{**res["best"], "cv balanced accuracy": res["cv_balanced_accuracy"],
                              "n": res["n"], "responders": res["n_responders"]}])
        write_csv(tables / "cheong_threshold_best.csv", best, index=False)
        sec.append(rep.table_section("Cheong thresholds searched against the response",
                                 best.set_index("immune_quantile"), "balanced accuracy of "
                                 "'benefit predicted' vs 'responded' on the quantile grid; the "
                                 "out-of-fold number (thresholds chosen on the other folds) "
                                 "is the honest one"))
    if treatment:
        d = tab.join(groups["chemotherapy_benefit"].astype(int).rename("benefit"),
                     how="inner")
        d[treatment] = binary(d[treatment], treatment).astype(float)
        d[event_col] = binary(d[event_col].astype(str).str.split(":").str[0], event_col
                              ).astype(float)
        inter = benefit_interaction(d, time=time_col, event=event_col, treatment=treatment,
                                    group="benefit")
        write_csv(tables / "benefit_interaction.csv", inter)
        sec.append(rep.table_section("Chemotherapy benefit: treatment x predicted group (Cox)",
                                 inter, "the interaction row tests whether the treatment's "
                                 "hazard ratio differs between predicted benefit groups"))
    return sec


def write_outputs(out: Path, runs: dict[str, Path], record: dict[str, Any], preset: Any, *,
                  clinical: Any, time_col: str, event_col: str, response: str | None = None,
                  treatment: str | None = None) -> Path:
    """Write ``tables/*.csv``, ``figures/*.png``, ``cheong/`` and ``report.html``."""
    tables, figs = out / "tables", out / "figures"
    t1, per_gene = table1(runs)
    write_csv(tables / "table1_pearson.csv", t1)
    write_csv(tables / "pearson_per_gene.csv", per_gene, index=False)
    sec: list[rep.Section] = [rep.provenance_section(record), rep.table_section(
        "Table 1: Pearson r on the test patients", t1, "the mean over the genes of the "
        "Pearson r between true and predicted expression; val: the validation patients. With "
        "one patch, mean and max aggregation are the baseline (the paper's N/A cells).")]
    first = next(iter(runs.values()))
    base = _pearson(first, "test", "baseline")
    if len(base):
        b = base.groupby("entry")["value"].mean().rename("mean Pearson r (test)").to_frame()
        best = float(t1.max().max())
        b["model minus baseline"] = best - b.iloc[:, 0]
        write_csv(tables / "baselines.csv", b)
        sec.append(rep.table_section("Beside the baselines", b, "the same split; 'model minus "
                                 "baseline' uses the best cell of Table 1"))
    sec.append(rep.figure_section("Fig. 7: true vs predicted (baseline, N = 1)",
                              _fig7(first, figs / "fig7_violins.png")))
    best_label = max(runs, key=lambda k: np.nan_to_num(
        per_gene[(per_gene["model"] == k) & (per_gene["role"] == "val")]["pearson_r"].mean(),
        nan=-1.0))  # chosen on the validation patients, not the test
    best_run = runs[best_label]
    res = _cheong(best_run, out, clinical, time_col, event_col)
    sizes = res.tables.get("cheong_group_sizes")
    if sizes is not None:
        write_csv(tables / "cheong_group_sizes.csv", sizes, index=False)
        sec.append(rep.table_section(f"Cheong groups of the test patients ({best_label})",
                                 sizes.set_index(sizes.columns[0]), "thresholds are cohort "
                                 "quantiles (the published qPCR cut-offs do not transfer)"))
    groups = res.tables.get("cheong_groups")
    if groups is not None and "sample" in groups:
        groups = groups.set_index("sample")
    if clinical is not None and groups is not None and (response or treatment):
        sec += _benefit_sections(groups, clinical, time_col, event_col, response, treatment,
                                 tables)
    for name in ("cox_univariate", "logrank"):
        if name in res.tables:
            write_csv(tables / f"cheong_{name}.csv", res.tables[name], index=False)
            sec.append(rep.table_section(f"Survival by Cheong group ({name})", res.tables[name]
                                     .set_index(res.tables[name].columns[0])))
    ours = [t1.loc["M4 + multi-task", "N = 10"] if "M4 + multi-task" in t1.index else np.nan,
            t1.loc["M2 baseline", "N = 1"] if "M2 baseline" in t1.index else np.nan,
            t1.loc["M4 max aggregation", "N = 10"] if "M4 max aggregation" in t1.index
            else np.nan]
    cfg = record["config"]
    differs = (f"data: the given cohort; tiles: {cfg['select']}; features: the given folder's "
               f"encoder; epochs: {'short schedule' if record['short'] else 'as the models'}")
    sec.append(rep.versus_section([[h.metric, h.paper, v, h.data, differs]
                               for h, v in zip(preset.headlines, ours)]))
    intro = (f"histoexpr reproduce {preset.name}: {len(runs)} bulk run(s) in runs/ on one "
             f"60/20/20 split; {'SHORT schedule; ' if record['short'] else ''}scores on the "
             "test patients.")
    return rep.write_study_report(out / "report.html", f"Reproduction of {preset.title}", intro,
                              sec)
