"""The ``histoexpr`` command line: one module per command, each a thin layer over the
public API. Errors caused by input end in one line naming the file and what to do, with
exit status 2; ``--debug`` shows the traceback."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

from ..config import parse_params
from ..errors import HistoexprError

__all__ = ["COMMANDS", "add_common", "add_dask_options", "build_parser", "main", "parse_params",
           "report_failures", "table_console"]

#: command name → module in this package (each has ``add_parser(subparsers)``)
COMMANDS = {
    "info": "info",
    "tile": "tile",
    "embed": "embed",
    "st": "st",
    "bulk": "bulk",
    "analyze": "analyze",
    "finetune": "finetune",
    "report": "report",
    "predict-slide": "predict_slide",
    "tma": "tma",
    "reproduce": "reproduce",
    "demo": "demo",
    "export-model": "export_model",
    "bench": "bench",
    "view": "view",
}


def add_dask_options(p: argparse.ArgumentParser) -> None:
    """``--workers`` and ``--scheduler``, for the commands that run a ``--manifest`` on
    Dask."""
    d = p.add_argument_group("Dask (with --manifest)")
    d.add_argument("--workers", type=int, default=None,
                   help="LocalCluster workers (default: one per GPU, else cores / 4)")
    d.add_argument("--scheduler", default=None,
                   help="address of a running Dask scheduler, e.g. tcp://head:8786")


def add_common(p: argparse.ArgumentParser) -> None:
    """Options every command takes (also accepted before the command name)."""
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show tracebacks and debug logs")
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="only warnings and errors; no progress bar")


def table_console(*, stderr: bool = False):
    """A rich console: the terminal's width on a terminal; otherwise (a pipe, a log file)
    wide enough that no cell or line is ever cut or wrapped ("efficient…")."""
    from rich.console import Console

    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=10_000,
                                                       soft_wrap=True)


def report_failures(failed: list[tuple[str, str]], *, total: int) -> int:
    """Print the slides a batch run skipped (name, reason) to stderr; the exit status."""
    if not failed:
        return 0
    err = table_console(stderr=True)
    err.print(f"[red]{len(failed)} of {total} slides failed:[/red]")
    for name, msg in failed:
        err.print(f"  {name}: {msg}", markup=False, highlight=False)
    return 2


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    p = argparse.ArgumentParser(
        prog="histoexpr",
        description="Predict gene expression from H&E histology. Stages: slide → tissue → "
        "tiles → stain → features → model → metrics → report.",
    )
    p.add_argument("--version", action="version", version=f"histoexpr {__version__}")
    add_common(p)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for module in COMMANDS.values():
        importlib.import_module(f"{__name__}.{module}").add_parser(sub)
    return p


def _setup_logging(debug: bool, quiet: bool) -> tuple:
    """Send the package's log records to stderr through rich; returns the previous state
    so :func:`main` can restore it (the CLI may run in-process, e.g. from tests or demo)."""
    from rich.console import Console
    from rich.logging import RichHandler

    log = logging.getLogger("histoexpr")
    before = (list(log.handlers), log.level, log.propagate)
    console = Console(stderr=True)
    handler: logging.Handler
    if console.is_terminal:
        handler = RichHandler(console=console, show_time=False, show_path=debug, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:  # pipes and log files: one plain line per record, never wrapped at 80 columns
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)-8s %(message)s"))
    log.handlers = [handler]
    log.setLevel(logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO)
    log.propagate = False
    return before


def _restore_logging(before: tuple) -> None:
    log = logging.getLogger("histoexpr")
    log.handlers, level, log.propagate = before
    log.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input, 1 internal error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug, quiet = getattr(args, "debug", False), getattr(args, "quiet", False)
    args.debug, args.quiet = debug, quiet
    if not args.command:
        parser.print_help()
        return 0
    before = _setup_logging(debug, quiet)
    try:
        return int(args.func(args) or 0)
    except HistoexprError as e:
        if debug:
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished slides are kept and a rerun resumes", file=sys.stderr)
        return 130
    except Exception as e:  # a bug or an unwrapped library error: still one line
        if debug:
            traceback.print_exc()
        print(
            f"error: unexpected {type(e).__name__}: {e} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
    finally:
        _restore_logging(before)


def entry() -> None:  # console script
    sys.exit(main())
