"""``histoexpr bench``: the field's benchmarks, run as their authors run them.

    histoexpr bench hest BENCH_DATA --encoder efficientnet_lite0[,resnet50] --out DIR
                         [--tasks IDC,PRAD] [--random-init] [--batch-size 64]

``hest`` runs HEST-Benchmark's protocol (its patient-level splits files, the top-50 variable
genes of each task, log1p targets, StandardScaler > PCA-256 > ridge with alpha = 100 /
(features x genes) on frozen features, Pearson per gene, mean and std over splits) on any
encoder card, over the ``MahmoodLab/hest-bench`` data folder (one folder per task), and
prints the task x encoder table the HEST paper reports.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import add_common, table_console


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run a published benchmark's protocol (HEST-Benchmark)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ss = p.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
    h = ss.add_parser("hest", help="HEST-Benchmark: linear probe of a patch encoder",
                      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    h.add_argument("root", type=Path, metavar="BENCH_DATA",
                   help="hest-bench data folder (task folders with splits/) or one task")
    h.add_argument("--encoder", default="efficientnet_lite0",
                   help="encoder card name(s), comma separated")
    h.add_argument("--tasks", default=None, help="tasks to run, comma separated (default all)")
    h.add_argument("--random-init", action="store_true",
                   help="the encoders with random weights (the baseline pretraining beats)")
    h.add_argument("--batch-size", type=int, default=64)
    h.add_argument("--out", required=True, type=Path, help="output folder")
    add_common(h)
    h.set_defaults(func=run_hest)


def run_hest(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..workflows.hest_bench import run_hest_bench

    table = run_hest_bench(args.root, encoders=[e for e in args.encoder.split(",") if e],
                           out=args.out, pretrained=not args.random_init,
                           tasks=[t for t in args.tasks.split(",") if t] if args.tasks
                           else None, batch_size=args.batch_size)
    t = Table(title="HEST-Benchmark: mean Pearson r over genes, mean ± std over splits")
    for c in ("task", "encoder", "Pearson", "splits", "genes"):
        t.add_column(c, justify="left" if c in ("task", "encoder") else "right")
    for r in table.itertuples():
        t.add_row(r.task, r.encoder + ("" if r.pretrained else " (random init)"),
                  f"{r.pearson_mean:.3f} ± {r.pearson_std:.3f}", str(r.n_splits),
                  str(r.n_genes))
    table_console().print(t)
    print(f"results: {args.out / 'results.csv'}")
    return 0
