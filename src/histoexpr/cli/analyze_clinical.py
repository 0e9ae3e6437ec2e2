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

from .analyze import add_expression_args, add_out_arg, run_study

_TESTS = ["auto", "t", "welch", "mannwhitney", "anova", "kruskal"]


def add_parser(ss: argparse._SubParsersAction) -> None:
    p = ss.add_parser("clinical", help="predicted genes between clinical groups (t-test, "
                      "ANOVA, violins) and against measured values (e.g. Ki67 %%)",
                      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_expression_args(p)
    p.add_argument("--clinical", required=True, help="clinical table (CSV/TSV, cBioPortal)")
    p.add_argument("--id-col", default=None,
                   help="id column of the clinical table (default: a usual id header)")
    p.add_argument("--genes", "--gene", dest="genes", default=None,
                   metavar="A,B,...|PANEL|FILE",
                   help="genes to compare between groups: a comma list, a built-in panel "
                   "(pam50, ...) or a file with one gene per line")
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
    add_out_arg(p, run=run_clinical)


def run_clinical(args: argparse.Namespace) -> int:
    from ..workflows import clinical_study

    return run_study(args, clinical_study, args.expression, clinical=args.clinical,
                     genes=args.genes, groups=args.group, correlate=args.correlate,
                     test=args.test, min_per_group=args.min_per_group, method=args.method,
                     id_col=args.id_col)
