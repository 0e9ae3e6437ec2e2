"""The GTEx study's tables and figures (seed 002) from the variance studies of
:func:`~histoexpr.reproduce.gtex.reproduce_gtex`.

- the shared variance per feature set (patch size) and aggregation: total (raw), after
  regressing out the covariates (residual), their difference (the technical share), each
  with its chance level;
- Fig. 4: the share of variation in the image features and in expression that each of the
  top 8 technical factors explains (and all of them together);
- Q2.3: total vs technical shared variance, one point per feature set and aggregation;
- Q3: feature x gene associations with BH q < 0.05 per feature set, and the largest share of
  one transcript's variance one feature explains after the confounders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import write_csv
from . import report as rep

__all__ = ["shared_table", "write_outputs"]

#: Fig. 4 shows this many technical factors (seed 002, Fig. 4)
TOP_FACTORS = 8


def shared_table(studies: dict[str, Any]) -> pd.DataFrame:
    """Shared variance per feature set and aggregation: total, after the covariates, the
    technical share (total minus residual) and the chance level."""
    rows = []
    for pool, res in studies.items():
        sv = res.tables["shared_variance"]
        for name, g in sv.groupby("features", sort=False):
            by = g.set_index("data")
            raw = float(by.loc["raw", "shared_variance"])
            resid = float(by.loc["residual", "shared_variance"]) if "residual" in by.index \
                else np.nan
            rows.append({"features": name, "pool": pool, "total": raw,
                         "after covariates": resid, "technical": raw - resid,
                         "chance (total)": float(by.loc["raw", "expected_null"]),
                         "p (total)": float(by.loc["raw", "p_value"])})
    return pd.DataFrame(rows).set_index(["features", "pool"])


def _fig4(studies: dict[str, Any], path: Path) -> tuple[Path | None, pd.DataFrame]:
    from ..plot.figures import new_figure
    from ..plot.spatial import save_figure

    res = next(iter(studies.values()))
    summ = res.tables.get("confounders_summary")
    if summ is None or summ.empty:
        return None, pd.DataFrame()
    first = summ[summ["features"] == summ["features"].iloc[0]]
    wide = first.pivot_table(index="covariate", columns="source", values="mean_r2")
    total = wide.loc["all"] if "all" in wide.index else None
    wide = wide.drop(index="all", errors="ignore")
    wide = wide.loc[wide.max(axis=1).sort_values(ascending=False).index[:TOP_FACTORS]]
    fig = new_figure((7.0, 3.8), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(wide))
    for i, (col, colour) in enumerate(zip(("features", "expression"), ("#2b83ba", "#d7191c"))):
        if col in wide:
            ax.bar(x + (i - 0.5) * 0.4, 100 * wide[col], 0.4, color=colour, label=col)
    ax.set_xticks(x, wide.index, rotation=30, ha="right")
    ax.set_ylabel("variation explained (%)")
    if total is not None:
        ax.set_title(f"all factors: {100 * total.get('features', np.nan):.1f} % of the image "
                     f"features, {100 * total.get('expression', np.nan):.1f} % of expression",
                     fontsize=9)
    ax.legend(fontsize=8)
    return save_figure(fig, path), (total.to_frame("all factors").T if total is not None
                                    else pd.DataFrame())


def _scatter(tab: pd.DataFrame, path: Path) -> Path:
    from ..plot.figures import new_figure
    from ..plot.spatial import save_figure

    fig = new_figure((4.6, 4.0), layout="constrained")
    ax = fig.subplots()
    for (name, pool), r in tab.iterrows():
        ax.scatter(r["total"], r["technical"], s=30)
        ax.annotate(f"{name}/{pool}", (r["total"], r["technical"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    lim = float(np.nanmax(tab[["total", "technical"]].to_numpy(float))) * 1.1 or 1.0
    ax.plot([0, lim], [0, lim], color="#999", lw=0.7, ls="--")
    ax.set_xlabel("total shared variance")
    ax.set_ylabel("technical share (total - after covariates)")
    return save_figure(fig, path)


def _associations(studies: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for pool, res in studies.items():
        a = res.tables["association"]
        for (name, data), g in a.groupby(["features", "data"], sort=False):
            rows.append({"features": name, "pool": pool, "data": data,
                         "pairs tested": len(g), "pairs q < 0.05": int((g["q"] < 0.05).sum()),
                         "max r²": float(g["r2"].max()) if len(g) else np.nan})
    return pd.DataFrame(rows).set_index(["features", "pool", "data"])


def write_outputs(out: Path, studies: dict[str, Any], record: dict[str, Any], preset: Any
                  ) -> Path:
    """Write ``tables/*.csv``, ``figures/*.png`` and ``report.html`` into ``out``."""
    tables, figs = out / "tables", out / "figures"
    shared = shared_table(studies)
    write_csv(tables / "shared_variance.csv", shared)
    sec: list[rep.Section] = [rep.provenance_section(record), rep.table_section(
        "Shared variance of image features and expression", shared, "sum over image PCs of "
        "their variance share times their r² with the expression PCs (Q1); after "
        "covariates: both regressed on the technical factors first (Q2)", text_cols=2)]
    f4, totals = _fig4(studies, figs / "fig4_confounders.png")
    if f4 is not None:
        sec.append(rep.figure_section("Fig. 4: variation explained by the technical factors", f4,
                                  f"the top {TOP_FACTORS} factors; r² averaged over the "
                                  "features (genes)"))
    sec.append(rep.figure_section("Q2.3: total vs technical shared variance",
                              _scatter(shared, figs / "q2_total_vs_technical.png")))
    assoc = _associations(studies)
    write_csv(tables / "associations.csv", assoc)
    sec.append(rep.table_section("Q3: feature x gene associations", assoc, "the top varying "
                             "features x genes, Pearson tests with Benjamini-Hochberg q",
                             text_cols=3))
    for pool, res in studies.items():
        if "enrichment" in res.tables:
            sec.append(rep.table_section(f"Q3.3: ranked enrichment ({pool})",
                                     res.tables["enrichment"].head(20).set_index(
                                         res.tables["enrichment"].columns[0])))
    resid = assoc.xs("residual", level="data") if "residual" in assoc.index.get_level_values(
        "data") else assoc
    ours = [f"{100 * totals['features'].iloc[0]:.1f} %" if "features" in totals else "—",
            f"{100 * totals['expression'].iloc[0]:.1f} %" if "expression" in totals else "—",
            f"{100 * float(resid['max r²'].max()):.1f} %"]
    differs = (f"data: {record['config']['expression']}; feature sets: "
               f"{', '.join(record['config']['features'])}")
    sec.append(rep.versus_section([[h.metric, h.paper, v, h.data, differs]
                               for h, v in zip(preset.headlines, ours)]))
    intro = (f"histoexpr reproduce {preset.name}: one variance study per aggregation "
             f"({', '.join(studies)}) in variance_<pool>/.")
    return rep.write_study_report(out / "report.html", f"Reproduction of {preset.title}", intro,
                              sec)
