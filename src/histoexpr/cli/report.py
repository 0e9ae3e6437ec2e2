"""``histoexpr report RUN``: one self-contained HTML report of a run folder.

    histoexpr report RUN [--out FILE]

The report (default ``RUN/report.html``) opens offline: config and data summary, QC
thumbnails, the metrics table with the baselines beside the models, best and worst genes,
per-gene and per-patient correlations, spatial maps, analyses found under ``RUN/analyses/``
(e.g. survival curves) and the run's time and energy. Sections whose files a half-finished
run lacks say "not available". Every ``st fit`` and ``bulk fit`` writes it at the end.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import add_common


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write a run's self-contained HTML report",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, metavar="RUN", help="run folder of `st fit` / `bulk fit`")
    p.add_argument("--out", type=Path, default=None, help="HTML file (default RUN/report.html)")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..plot.report import write_report

    out = write_report(args.run, out=args.out)
    print(out)
    return 0
