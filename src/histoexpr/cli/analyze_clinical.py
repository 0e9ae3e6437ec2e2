"""``histoexpr analyze clinical``: predicted genes against clinical variables (hist2RNA
Figs. 7 and 8).

    histoexpr analyze clinical --expression RUN|FILE --clinical FILE [--id-col COL]
        --genes ESR1,PGR,ERBB2,MKI67 --group ER_STATUS --group GRADE=1,2,3
        [--test auto|t|welch|mannwhitney|anova|kruskal] [--min-per-group 2]
        [--correlate MKI67=KI67_PERCENT] [--method pearson|spearman] --out DIR

Each ``--group COL`` compares the genes between the groups of that column: a t-test for two
groups (ER/PR/HER2 positive vs negative), a one-way ANOVA for more (grades 1-3), with
Benjamini-Hochberg q across the genes. ``COL=A,B`` names the groups to compare and their
order (others, e.g. ``Equivocal``, are left out and counted). Each ``--correlate GENE=COL``
correlates a gene with a measured number such as Ki67 % (``30%`` reads as 30).

Writes ``groups_<COL>.csv`` and ``violin_<COL>.png`` per group column,
``correlations.csv`` and ``correlation_<GENE>_<COL>.png`` per correlation, and
``analysis.json`` (missing labels and left-out groups per column).
"""

from __future__ import annotations

import argparse
import logging
import re

from ..errors import InputError
from .analyze import add_expression_args, add_out_arg, load_expression, print_files

logger = logging.getLogger(__name__)

_TESTS = ["auto", "t", "welch", "mannwhitney", "anova", "kruskal"]


def add_parser(ss: argparse._SubParsersAction) -> None:
    p = ss.add_parser("clinical", help="predicted genes between clinical groups (t-test, "
                      "ANOVA, violins) and against measured values (e.g. Ki67 %%)",
                      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_expression_args(p)
    p.add_argument("--clinical", required=True, help="clinical table (CSV/TSV, cBioPortal)")
    p.add_argument("--id-col", default=None,
                   help="id column of the clinical table (default: a usual id header)")
    p.add_argument("--genes", "--gene", dest="genes", default=None, metavar="A,B,...",
                   help="genes to compare between groups (comma list)")
    p.add_argument("--group", action="append", default=[], metavar="COL[=A,B,...]",
                   help="clinical column to compare groups of (repeatable); =A,B names the "
                   "groups and their order")
    p.add_argument("--test", default="auto", choices=_TESTS,
                   help="auto (default): t-test for 2 groups, one-way ANOVA for more")
    p.add_argument("--min-per-group", type=int, default=2,
                   help="groups with fewer samples are left out (default 2)")
    p.add_argument("--correlate", action="append", default=[], metavar="GENE=COL",
                   help="correlate a gene with a measured column, e.g. MKI67=ki67_percent "
                   "(repeatable)")
    p.add_argument("--method", default="pearson", choices=["pearson", "spearman"],
                   help="correlation for --correlate (default pearson)")
    add_out_arg(p)
    p.set_defaults(func=run_clinical)


def _safe(name: str) -> str:
    """A column or gene name usable in a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "x"


def _split_group(spec: str) -> tuple[str, list[str] | None]:
    if "=" not in spec:
        return spec.strip(), None
    col, _, levels = spec.rpartition("=")
    order = [v.strip() for v in levels.split(",") if v.strip()]
    if not col.strip() or len(order) < 2:
        raise InputError(f"--group {spec!r}: write COL or COL=A,B (at least two groups)")
    return col.strip(), order


def _split_correlate(spec: str) -> tuple[str, str]:
    gene, sep, col = spec.partition("=")
    if not sep or not gene.strip() or not col.strip():
        raise InputError(f"--correlate {spec!r}: write GENE=COLUMN, e.g. MKI67=ki67_percent")
    return gene.strip(), col.strip()


def run_clinical(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..analysis.output import AnalysisOutput
    from ..analysis.tables import align_samples, read_clinical, select_genes
    from ..clinical.associations import (
        GROUP_TESTS,
        compare_groups,
        correlate_with_measure,
        parse_measure,
    )
    from ..plot.clinical import correlation_figure, violin_figure

    groups = [_split_group(s) for s in args.group]
    pairs = [_split_correlate(s) for s in args.correlate]
    genes = list(dict.fromkeys(g.strip() for g in (args.genes or "").split(",") if g.strip()))
    if not groups and not pairs:
        raise InputError("nothing to do: give --group COL (with --genes) and/or "
                         "--correlate GENE=COL")
    if groups and not genes:
        raise InputError("--group needs --genes A,B,... (the genes to compare)")
    clin = read_clinical(args.clinical, id_col=args.id_col)
    wanted = [c for c, _ in groups] + [c for _, c in pairs]
    absent = [c for c in dict.fromkeys(wanted) if c not in clin.columns]
    if absent:
        raise InputError(f"{args.clinical}: no column(s) {', '.join(map(repr, absent))}; "
                         f"columns are {', '.join(map(str, clin.columns))}")
    expr = load_expression(args)
    all_genes = list(dict.fromkeys(genes + [g for g, _ in pairs]))
    expr = select_genes(expr, all_genes, what=str(args.expression))
    expr, clin = align_samples(expr, clin, what=(str(args.expression), str(args.clinical)))
    logger.info("%d samples in both the expression and the clinical table", len(expr))

    out = AnalysisOutput(args.out, "clinical")
    summary: dict = {"n_samples": len(expr), "groups": {}, "correlations": []}
    for col, order in groups:
        res = compare_groups(expr, clin[col], genes=genes, test=args.test,
                             min_per_group=args.min_per_group, order=order)
        rep = res.attrs
        out.table(f"groups_{_safe(col)}", res)
        out.figure(f"violin_{_safe(col)}",
                   violin_figure(expr, clin[col], genes, stats=res, order=order,
                                 min_per_group=args.min_per_group))
        summary["groups"][col] = {
            "test": rep["test"], "groups": rep["groups"], "n_used": rep["n_used"],
            "n_missing_label": rep["n_missing_label"], "missing_labels": rep["missing_labels"],
            "groups_left_out": rep["groups_left_out"],
            "n_genes_q_lt_0.05": int((res["q"] < 0.05).sum()),
            "n_undefined": rep["n_undefined"],
        }
        if rep["n_missing_label"] or rep["groups_left_out"]:
            left = ", ".join(f"{g} (n={n})" for g, n in rep["groups_left_out"].items())
            out.note(f"{col}: {rep['n_missing_label']} of {rep['n_input']} samples without a "
                     "label left out" + (f"; groups left out: {left}" if left else ""))
    if groups:
        tests = sorted({v["test"] for v in summary["groups"].values()})
        out.note("group tests: " + ", ".join(GROUP_TESTS[t][0] for t in tests)
                 + "; q is Benjamini-Hochberg across the genes of each groups_<COL>.csv")

    rows = []
    for gene, col in pairs:
        res = correlate_with_measure(expr[gene], clin[col], method=args.method)
        rows.append(res)
        x, _ = parse_measure(clin[col])
        out.figure(f"correlation_{_safe(gene)}_{_safe(col)}",
                   correlation_figure(x, expr[gene], r=res["r"], p=res["p"], xlabel=col,
                                      ylabel=f"{gene} (predicted)" if args.source == "predicted"
                                      else gene, method=args.method, n=int(res["n"])))
        summary["correlations"].append({k: (v.item() if hasattr(v, "item") else v)
                                        for k, v in res.items()})
        if res["n_dropped"]:
            out.note(f"{gene} vs {col}: {int(res['n_dropped'])} sample(s) without both "
                     "values left out")
    if rows:
        out.table("correlations", pd.DataFrame(rows))
    record = out.finish(
        params={"genes": genes, "group": args.group, "test": args.test,
                "min_per_group": args.min_per_group, "correlate": args.correlate,
                "method": args.method, "entry": args.entry, "source": args.source,
                "role": args.role, "id_col": args.id_col},
        inputs={"expression": args.expression, "clinical": args.clinical},
        summary=summary)
    if not getattr(args, "quiet", False):
        print_files(record, args.out)
    return 0
