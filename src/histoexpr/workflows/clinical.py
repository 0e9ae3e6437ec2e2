"""Clinical study: (predicted) genes against clinical variables (hist2RNA Figs. 7 and 8).
``histoexpr analyze clinical`` is :func:`clinical_study`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from .inputs import clinical_table, expression_frame, input_label, named_genes
from .study import StudyOutput, StudyResult, safe_name

if TYPE_CHECKING:
    import pandas as pd

    from ..expression.genespec import GeneRequest

__all__ = ["clinical_study"]

logger = logging.getLogger(__name__)


def _split_group(spec: str | tuple[str, Sequence[str] | None]) -> tuple[str, list[str] | None]:
    if not isinstance(spec, str):
        col, order = spec
        return str(col), None if order is None else [str(v) for v in order]
    if "=" not in spec:
        return spec.strip(), None
    col, _, levels = spec.rpartition("=")
    order = [v.strip() for v in levels.split(",") if v.strip()]
    if not col.strip() or len(order) < 2:
        raise InputError(f"--group {spec!r}: write COL or COL=A,B (at least two groups)")
    return col.strip(), order


def _split_correlate(spec: str | tuple[str, str]) -> tuple[str, str]:
    if not isinstance(spec, str):
        gene, col = spec
        return str(gene), str(col)
    gene, sep, col = spec.partition("=")
    if not sep or not gene.strip() or not col.strip():
        raise InputError(f"--correlate {spec!r}: write GENE=COLUMN, e.g. MKI67=ki67_percent")
    return gene.strip(), col.strip()


def _resolve(request: GeneRequest | None, expr: pd.DataFrame,
             expr_name: str) -> tuple[list[str], list[str]]:
    """The requested genes the expression holds, and those it lacks (one-line error naming
    the expression when too many are missing)."""
    if request is None:
        return [], []
    try:
        choice = request.resolve(list(map(str, expr.columns)))
    except InputError as e:
        raise InputError(f"{expr_name}: {e}") from None
    return list(choice.genes), list(choice.missing)


def clinical_study(
    expression: str | Path | pd.DataFrame,
    *,
    clinical: str | Path | pd.DataFrame,
    out: str | Path,
    genes: str | Sequence[str] | None = None,
    groups: Sequence[str | tuple[str, Sequence[str] | None]] = (),
    correlate: Sequence[str | tuple[str, str]] = (),
    test: str = "auto",
    min_per_group: int = 2,
    method: str = "pearson",
    id_col: str | None = None,
    entry: str | None = None,
    source: str = "predicted",
    role: str | None = None,
) -> StudyResult:
    """Genes compared between clinical groups, and correlated with measured values.

    Each group column compares ``genes`` between its groups: a t-test for two groups, a
    one-way ANOVA for more (``test``), with Benjamini-Hochberg q across the genes. Each
    ``GENE=COL`` of ``correlate`` correlates a gene with a measured number such as Ki67 %
    (``30%`` reads as 30).

    Parameters
    ----------
    expression, entry, source, role
        The expression whose genes are compared: any expression input of
        :mod:`histoexpr.workflows.inputs` (a run folder, a CSV, a DataFrame).
    clinical, id_col
        The clinical table holding the group and measure columns, joined to the expression
        by patient (:func:`~histoexpr.workflows.inputs.clinical_table`).
    out
        Output folder: ``groups_<COL>.csv`` and ``violin_<COL>.png`` per group column,
        ``correlations.csv`` and ``correlation_<GENE>_<COL>.png``, ``analysis.json``.
    genes
        Genes to compare between groups, in the one ``--genes`` grammar
        (:mod:`histoexpr.expression.genespec`): a built-in panel (``"pam50"``), a gene-list
        file, ``"A,B"``, or a list. A panel's or file's genes the expression lacks are named
        and left out (an error when fewer than half remain); listed genes must all be
        present. A data-driven choice (``top50``, ``hvg50``, ``all``) is refused: it picks
        genes on a model's training samples, and this study fits no model.
    groups
        Clinical columns to compare groups of: ``"COL"``, ``"COL=A,B"`` (the groups and their
        order; others are left out and counted) or ``(COL, [A, B] | None)``.
    correlate
        ``"GENE=COL"`` or ``(GENE, COL)`` pairs; ``method`` is pearson or spearman.
    test, min_per_group
        The group test: auto (t-test for 2 groups, one-way ANOVA for more), t, welch,
        mannwhitney, anova or kruskal; groups with fewer samples are left out.

    Returns
    -------
    StudyResult
        ``res["groups_<COL>"]`` per group column, ``res["correlations"]``.

    Examples
    --------
    >>> from histoexpr.workflows import clinical_study
    >>> res = clinical_study("runs/bulk", clinical="clinical.tsv", genes="ESR1,PGR",
    ...                      groups=["ER_STATUS", "GRADE=1,2,3"], correlate=["MKI67=KI67"],
    ...                      out="out/clinical")  # doctest: +SKIP
    >>> res["groups_ER_STATUS"]  # doctest: +SKIP
    """
    import pandas as pd

    from ..analysis.tables import align_samples, select_genes
    from ..clinical.associations import (
        GROUP_TESTS,
        compare_groups,
        correlate_with_measure,
        parse_measure,
    )
    from ..plot.clinical import correlation_figure, violin_figure

    group_specs = [_split_group(s) for s in groups]
    pairs = [_split_correlate(s) for s in correlate]
    request = named_genes(genes, use="comparing genes between clinical groups",
                          reason=" (it picks genes on a model's training samples, and this "
                          "study fits no model)", instead="name the genes to compare, e.g. "
                          "--genes ESR1,PGR,ERBB2,MKI67 or --genes pam50")
    if not group_specs and not pairs:
        raise InputError("nothing to do: give --group COL (with --genes) and/or "
                         "--correlate GENE=COL")
    if group_specs and request is None:
        raise InputError("--group needs --genes A,B,... (the genes to compare)")
    clin_name = input_label(clinical, "clinical table")
    expr_name = input_label(expression, "expression")
    clin = clinical_table(clinical, id_col=id_col)
    wanted = [c for c, _ in group_specs] + [c for _, c in pairs]
    absent = [c for c in dict.fromkeys(wanted) if c not in clin.columns]
    if absent:
        raise InputError(f"{clin_name}: no column(s) {', '.join(map(repr, absent))}; "
                         f"columns are {', '.join(map(str, clin.columns))}")
    expr = expression_frame(expression, entry=entry, source=source, role=role)
    genes_l, missing = _resolve(request, expr, expr_name)
    all_genes = list(dict.fromkeys(genes_l + [g for g, _ in pairs]))
    expr = select_genes(expr, all_genes, what=expr_name)
    expr, clin = align_samples(expr, clin, what=(expr_name, clin_name))
    logger.info("%d samples in both the expression and the clinical table", len(expr))

    output = StudyOutput(out, "clinical")
    summary: dict = {"n_samples": len(expr), "groups": {}, "correlations": []}
    if missing:
        summary["genes_missing"] = missing
        output.note(f"--genes {request.spec}: {len(missing)} of {len(request.genes)} genes "
                    f"not in {expr_name}, left out: {', '.join(missing)}")
    for col, order in group_specs:
        res = compare_groups(expr, clin[col], genes=genes_l, test=test,
                             min_per_group=min_per_group, order=order)
        rep = res.attrs
        output.table(f"groups_{safe_name(col)}", res)
        output.figure(f"violin_{safe_name(col)}",
                      violin_figure(expr, clin[col], genes_l, stats=res, order=order,
                                    min_per_group=min_per_group))
        summary["groups"][col] = {
            "test": rep["test"], "groups": rep["groups"], "n_used": rep["n_used"],
            "n_missing_label": rep["n_missing_label"], "missing_labels": rep["missing_labels"],
            "groups_left_out": rep["groups_left_out"],
            "n_genes_q_lt_0.05": int((res["q"] < 0.05).sum()),
            "n_undefined": rep["n_undefined"],
        }
        if rep["n_missing_label"] or rep["groups_left_out"]:
            left = ", ".join(f"{g} (n={n})" for g, n in rep["groups_left_out"].items())
            output.note(f"{col}: {rep['n_missing_label']} of {rep['n_input']} samples without "
                        "a label left out" + (f"; groups left out: {left}" if left else ""))
    if group_specs:
        tests = sorted({v["test"] for v in summary["groups"].values()})
        output.note("group tests: " + ", ".join(GROUP_TESTS[t][0] for t in tests)
                    + "; q is Benjamini-Hochberg across the genes of each groups_<COL>.csv")

    rows = []
    for gene, col in pairs:
        res = correlate_with_measure(expr[gene], clin[col], method=method)
        rows.append(res)
        x, _ = parse_measure(clin[col])
        output.figure(f"correlation_{safe_name(gene)}_{safe_name(col)}",
                      correlation_figure(x, expr[gene], r=res["r"], p=res["p"], xlabel=col,
                                         ylabel=f"{gene} (predicted)" if source == "predicted"
                                         else gene, method=method, n=int(res["n"])))
        summary["correlations"].append({k: (v.item() if hasattr(v, "item") else v)
                                        for k, v in res.items()})
        if res["n_dropped"]:
            output.note(f"{gene} vs {col}: {int(res['n_dropped'])} sample(s) without both "
                        "values left out")
    if rows:
        output.table("correlations", pd.DataFrame(rows))
    record = output.finish(
        params={"genes": genes_l, "group": list(groups), "test": test,
                "min_per_group": min_per_group, "correlate": list(correlate),
                "method": method, "entry": entry, "source": source, "role": role,
                "id_col": id_col},
        inputs={"expression": expression, "clinical": clinical},
        summary=summary)
    return output.result(record)
