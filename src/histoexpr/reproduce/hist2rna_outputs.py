"""hist2RNA's tables and figures (seed 001) from the ``bulk fit`` run of
:func:`~histoexpr.reproduce.hist2rna.reproduce_hist2rna`.

- the scores on the held-out test patients, per entry (the model and its baselines): median
  Spearman r across patients and across genes, genes with FDR q < 0.05, genes with
  R² >= 0.1 and how many of them are PAM50 genes;
- Fig. 3: boxes of Spearman r across patients and across genes, and of -log10 q;
- Fig. 5: R² per gene (genes with R² >= 0.1), PAM50 genes in red;
- subtypes: the soft-voting classifier (random forest, MLP, LDA, logistic regression; 3.2)
  trained on the training patients' measured PAM50 genes, applied to the test patients'
  predicted ones: accuracy, F1 and AUROC per subtype;
- Tables 1-2 (with a clinical table): Cox models and log-rank of the predicted luminal
  subtypes (LumA vs LumB).
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

__all__ = ["score_table", "write_outputs"]

#: the R² threshold of Fig. 5 (seed 001, 3.1)
R2_MIN = 0.1


def _pam50() -> set[str]:
    from ..expression import load_panel

    return set(load_panel("pam50"))


def _test_metrics(run: BulkRunFolder) -> pd.DataFrame:
    m = pd.read_csv(run.metrics)
    return m[m["role"].isin(["test", "holdout"])]


def _test_patients(run: BulkRunFolder) -> pd.DataFrame:
    p = pd.read_csv(run.patients_csv)
    return p[p["role"].isin(["test", "holdout"])]


def _median(v: pd.Series) -> float:
    """The median of the finite values; NaN when there are none (the mean predictor's r)."""
    v = pd.to_numeric(v, errors="coerce").dropna()
    return float(v.median()) if len(v) else float("nan")


def score_table(metrics: pd.DataFrame, patients: pd.DataFrame) -> pd.DataFrame:
    """Per entry: the paper's scores on the test patients (see the module docstring)."""
    pam50, rows = _pam50(), {}
    for entry, g in metrics.groupby("entry", sort=False):
        wide = g.pivot_table(index="gene", columns="metric", values="value", dropna=False)
        nan = pd.Series(np.nan, index=wide.index)
        r2 = wide.get("r2", nan)
        rho, q = wide.get("spearman_r", nan), wide.get("spearman_q", nan)
        good = r2[r2 >= R2_MIN].index
        pts = patients[patients["entry"] == entry]["spearman_r"]
        rows[entry] = {
            "median Spearman r across patients": _median(pts),
            "median Spearman r across genes": _median(rho),
            "genes q < 0.05": int((q < 0.05).sum()),
            "genes": len(wide),
            f"genes R² >= {R2_MIN}": len(good),
            "of them PAM50": int(sum(g_ in pam50 for g_ in good)),
        }
    return pd.DataFrame(rows).T


def _fig3(metrics: pd.DataFrame, patients: pd.DataFrame, path: Path) -> Path:
    from ..plot.figures import new_figure
    from ..plot.spatial import save_figure

    entries = list(dict.fromkeys(metrics["entry"]))
    fig = new_figure((11.0, 3.6), layout="constrained")
    axes = fig.subplots(1, 4)
    panels = [
        ("Spearman r across patients", [patients.loc[patients["entry"] == e, "spearman_r"]
                                        for e in entries]),
        ("-log10 q across patients", [-np.log10(patients.loc[patients["entry"] == e,
                                                              "spearman_q"].clip(1e-300))
                                      for e in entries]),
        ("Spearman r across genes", [metrics[(metrics["entry"] == e)
                                             & (metrics["metric"] == "spearman_r")]["value"]
                                     for e in entries]),
        ("-log10 q across genes", [-np.log10(metrics[(metrics["entry"] == e)
                                                     & (metrics["metric"] == "spearman_q")]
                                             ["value"].clip(1e-300)) for e in entries]),
    ]
    for ax, (title, data) in zip(axes, panels):
        ax.boxplot([d.dropna().to_numpy() for d in data], orientation="horizontal")
        ax.set_yticks(range(1, len(entries) + 1), entries if ax is axes[0] else [""] * len(
            entries))
        ax.set_title(title, fontsize=9)
        if "q" in title:
            ax.axvline(-np.log10(0.05), color="#c00", lw=0.8, ls="--")
    return save_figure(fig, path)


def _fig5(metrics: pd.DataFrame, entry: str, path: Path) -> tuple[Path, str]:
    from ..plot.figures import new_figure
    from ..plot.spatial import save_figure

    r2 = metrics[(metrics["entry"] == entry) & (metrics["metric"] == "r2")]
    r2 = r2.set_index("gene")["value"].sort_values(ascending=False)
    shown, note = r2[r2 >= R2_MIN], f"genes with R² >= {R2_MIN}"
    if shown.empty:
        shown, note = r2.head(20), f"no gene reached R² {R2_MIN}: the 20 best"
    pam50 = _pam50()
    fig = new_figure((max(5.0, 0.3 * len(shown) + 1.5), 3.8), layout="constrained")
    ax = fig.subplots()
    ax.bar(shown.index, shown.to_numpy(), color=["#d7191c" if g in pam50 else "#7f7f7f"
                                                 for g in shown.index])
    ax.set_ylabel("R² (test patients)")
    for t in ax.get_xticklabels():
        t.set_rotation(90)
    ax.set_title(f"{entry}: {note}; PAM50 genes in red", fontsize=9)
    return save_figure(fig, path), note


def _subtypes(run: Path, out: Path, subtypes: Any, subtype_col: str | None) -> Any:
    from ..workflows import subtype_study

    return subtype_study(run, out=out / "subtype", method="vote", labels=subtypes,
                         label_col=subtype_col, genes="pam50", missing_genes="drop",
                         role="test", train=run, train_source="measured")


def _survival(run: Path, out: Path, calls: pd.DataFrame, clinical: Any, time_col: str,
              event_col: str) -> Any:
    from ..workflows import survival_study
    from ..workflows.inputs import clinical_table

    tab = clinical_table(clinical)
    call = calls.iloc[:, 0] if "subtype" not in calls else calls["subtype"]
    tab = tab.join(call.rename("predicted_subtype"), how="inner")
    tab = tab[tab["predicted_subtype"].isin(["LumA", "LumB"])]
    covariates = [c for c in ("AGE", "STAGE", "GRADE") if c in tab]
    try:
        return survival_study(run, clinical=tab, time=time_col, event=event_col,
                              out=out / "survival", groups="predicted_subtype",
                              covariates=covariates or None, role="test"), ""
    except InputError as e:  # too few events for the multivariate model: univariate only
        if not covariates:
            raise
        note = f"multivariate model left out: {e}"
        return survival_study(run, clinical=tab, time=time_col, event=event_col,
                              out=out / "survival", groups="predicted_subtype",
                              role="test"), note


def write_outputs(out: Path, run_path: Path, record: dict[str, Any], preset: Any, *,
                  subtypes: Any, subtype_col: str | None, clinical: Any, time_col: str,
                  event_col: str) -> Path:
    """Write ``tables/*.csv``, ``figures/*.png``, ``subtype/``, [``survival/``] and
    ``report.html`` into ``out``."""
    run = BulkRunFolder(run_path)
    metrics, patients = _test_metrics(run), _test_patients(run)
    tables, figs = out / "tables", out / "figures"
    scores = score_table(metrics, patients)
    write_csv(tables / "scores.csv", scores)
    model = str(metrics[metrics["kind"] == "model"]["entry"].iloc[0])
    sec: list[rep.Section] = [rep.provenance_section(record), rep.table_section(
        "Scores on the held-out test patients", scores, "Spearman r per gene across the test "
        "patients and per patient across the genes; q: Benjamini-Hochberg over genes "
        "(patients); the baselines beside the model. Across patients, r mostly ranks genes by "
        "their mean level: the mean predictor scores high there too, so compare the model "
        "with it, not with zero", text_cols=1)]
    sec.append(rep.figure_section("Fig. 3: Spearman r and -log10 q", _fig3(
        metrics, patients, figs / "fig3_spearman.png"), "dashed: q = 0.05"))
    f5, note = _fig5(metrics, model, figs / "fig5_r2.png")
    sec.append(rep.figure_section("Fig. 5: R² per gene", f5, note))
    sub = _subtypes(run_path, out, subtypes, subtype_col)
    sub_metrics = sub.tables.get("metrics")
    if sub_metrics is not None:
        write_csv(tables / "subtype_metrics.csv", sub_metrics, index=False)
        sec.append(rep.table_section(
            "Subtypes from the predicted PAM50 genes",
            sub_metrics.set_index(sub_metrics.columns[0]), "soft-voting classifier trained on "
            "the training patients' measured PAM50 genes, applied to the test patients' "
            "predicted ones"))
    if clinical is not None:
        calls = sub.tables["calls"].set_index(sub.tables["calls"].columns[0])
        surv, note = _survival(run_path, out, calls, clinical, time_col, event_col)
        for name in ("cox_univariate", "cox_multivariate", "logrank"):
            if name in surv.tables:
                write_csv(tables / f"survival_{name}.csv", surv.tables[name], index=False)
                sec.append(rep.table_section(f"Tables 1-2: survival ({name}) of the predicted "
                                         "luminal subtypes", surv.tables[name].set_index(
                                             surv.tables[name].columns[0]), note))
    sec.append(rep.versus_section(_versus(preset, scores.loc[model], sub_metrics, record)))
    intro = (f"histoexpr reproduce {preset.name}: the bulk run is in run/; "
             f"{'SHORT schedule (not the paper’s 150 epochs); ' if record['short'] else ''}"
             "the split and the scores are on held-out test patients.")
    return rep.write_study_report(out / "report.html", f"Reproduction of {preset.title}", intro,
                              sec)


def _metric(tab: pd.DataFrame | None, name: str) -> float:
    if tab is None:
        return float("nan")
    for col in tab.columns:
        hit = tab[tab[col].astype(str).str.lower() == name]
        if len(hit):
            num = hit.select_dtypes("number")
            return float(num.iloc[0, 0]) if num.shape[1] else float("nan")
    return float("nan")


def _versus(preset: Any, s: pd.Series, sub: pd.DataFrame | None, record: dict[str, Any]
            ) -> list:
    ours = [s["median Spearman r across patients"], s["median Spearman r across genes"],
            f"{s['genes q < 0.05']} / {s['genes']}",
            f"{s[f'genes R² >= {R2_MIN}']} ({s['of them PAM50']})",
            _metric(sub, "accuracy"), _metric(sub, "macro_f1")]
    differs = (f"data: the given cohort ({record['config']['features']}); encoder: the one "
               "that made the features; epochs: "
               f"{record['config']['model_params'].get('max_epochs')}"
               f"{' (short schedule)' if record['short'] else ''}")
    return [[h.metric, h.paper, v, h.data, differs] for h, v in zip(preset.headlines, ours)]
