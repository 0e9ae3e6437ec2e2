"""``histoexpr analyze``: take predicted (or measured) expression further.

    histoexpr analyze subtype  --expression RUN|FILE --train FILE --labels FILE ... --out DIR
    histoexpr analyze survival --expression RUN|FILE --clinical FILE --time COL --event COL ...
    histoexpr analyze cheong   --expression RUN|FILE [--clinical FILE ...] --out DIR
    histoexpr analyze clinical --expression RUN|FILE --clinical FILE --genes A,B --group COL ...
    histoexpr analyze variance --features [NAME=]DIR|FILE ... --expression RUN|FILE ... --out DIR

``--expression`` takes a bulk run folder (out-of-fold predictions of its model by default;
``--entry`` picks a baseline, ``--source measured`` the measured expression, ``--role`` the
held-out rows), the ``predictions.csv`` of ``histoexpr bulk predict``, or any expression table
(GDC, cBioPortal, GCT, CSV/TSV). Rows are averaged per TCGA patient and joined to clinical
tables by patient barcode. Each analysis writes its tables (CSV), figures (PNG) and
``analysis.json`` (parameters, inputs and their SHA-256, notes) into ``--out``.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import add_common

#: analysis name → module in this package (each has ``add_parser(subparsers)``)
ANALYSES = {
    "subtype": "analyze_subtype",
    "survival": "analyze_survival",
    "cheong": "analyze_cheong",
    "clinical": "analyze_clinical",
    "variance": "analyze_variance",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="subtypes, survival, gastric rules, clinical "
                       "associations, variance studies", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(p)
    ss = p.add_subparsers(dest="analysis", metavar="ANALYSIS", title="analyses")
    ss.required = True
    for module in ANALYSES.values():
        importlib.import_module(f"{__package__}.{module}").add_parser(ss)


def add_expression_args(p: argparse.ArgumentParser, *, flag: str = "--expression",
                        required: bool = True, help: str | None = None) -> None:
    """``--expression`` and the options that pick rows of a run folder."""
    dest = flag.lstrip("-").replace("-", "_")
    p.add_argument(flag, dest=dest, type=Path, required=required, metavar="RUN|FILE",
                   help=help or "bulk run folder, `bulk predict` CSV, or expression table")
    if flag == "--expression":
        p.add_argument("--entry", default=None,
                       help="run folder: entry whose predictions to use (default the model)")
        p.add_argument("--source", default="predicted", choices=["predicted", "measured"],
                       help="run folder: predicted (default) or measured expression")
        p.add_argument("--role", default=None, choices=["cv", "holdout", "val", "test"],
                       help="run folder: out-of-fold (cv, default) or held-out rows")


def add_out_arg(p: argparse.ArgumentParser, *, run: Callable[[argparse.Namespace], int]) -> None:
    """``--out``, the options every command takes, and the function that runs the analysis."""
    p.add_argument("--out", required=True, type=Path, help="output folder")
    add_common(p)
    p.set_defaults(func=run)


def run_study(args: argparse.Namespace, study: Callable[..., Any], *inputs: Any,
              show: Callable[[Any], None] | None = None, files_when_quiet: bool = False,
              **options: Any) -> int:
    """Call ``study`` (a :mod:`histoexpr.workflows` function) with ``inputs``, ``options``
    and what every analysis takes from the command line (``--out``; the rows of an
    ``--expression`` run folder: ``--entry``, ``--source``, ``--role``), then print
    ``show(result)`` and the files it wrote (unless ``--quiet``; the files anyway with
    ``files_when_quiet``). The exit status."""
    res = study(*inputs, out=args.out, entry=args.entry, source=args.source, role=args.role,
                **options)
    if not args.quiet and show is not None:
        show(res)
    if not args.quiet or files_when_quiet:
        print_files(res.record, args.out)
    return 0


def print_files(record: dict, out: Path) -> None:
    """One line per file the analysis wrote, and its notes."""
    from rich.console import Console

    c = Console()
    c.print(f"[bold]{record['analysis']}[/bold] → {out}")
    for f in record["files"]:
        c.print(f"  {f}", markup=False, highlight=False)
    for n in record.get("notes", []):
        c.print(f"[yellow]note:[/yellow] {n}", highlight=False)
