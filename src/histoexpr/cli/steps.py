"""What the run-folder commands (``histoexpr st``, ``histoexpr bulk``) share: one STEP
subcommand each for fit / evaluate / predict, a ``fit`` step made of the config's flags,
``--out RUN`` and ``--overwrite``, and the cells of their summary tables."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import add_common

__all__ = ["add_fit_step", "add_steps", "cell"]


def add_steps(sub: argparse._SubParsersAction, name: str, *, help: str,
              description: str | None) -> argparse._SubParsersAction:
    """The parser of ``histoexpr NAME`` and its required STEP subcommands."""
    p = sub.add_parser(name, help=help, description=description,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(p)
    ss = p.add_subparsers(dest=f"{name}_command", metavar="STEP", title="steps")
    ss.required = True
    return ss


def add_fit_step(ss: argparse._SubParsersAction, config: type, *, help: str,
                 description: str | None, run: Callable[[argparse.Namespace], int],
                 options: Callable[[argparse.ArgumentParser], None] | None = None,
                 ) -> argparse.ArgumentParser:
    """``fit``: the flags of ``config`` (:func:`~histoexpr.config.add_config_flags`), the
    step's own ``options``, ``--out RUN`` and ``--overwrite``."""
    from ..config import add_config_flags

    f = ss.add_parser("fit", help=help, description=description,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(f, config)
    if options is not None:
        options(f)
    f.add_argument("--out", required=True, type=Path, help="run folder")
    f.add_argument("--overwrite", action="store_true",
                   help="replace a run folder that holds another config")
    add_common(f)
    f.set_defaults(func=run)
    return f


def cell(v: Any, fmt: str = ".3f") -> str:
    """A number of a summary table; ``—`` for a missing or undefined one.

    >>> cell(0.12345), cell(float("nan")), cell(None), cell(3.0, ".0f")
    ('0.123', '—', '—', '3')
    """
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)
