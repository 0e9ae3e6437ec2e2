"""The bad-input and fault matrix: each case runs the command line in-process the way a user
would, then checks the exit status, that stderr is one line naming the file and the fix (no
traceback, no library log noise), and what is left on disk. Helpers live in ``matrix.py``."""

from __future__ import annotations

import pytest
from matrix import run_cli


@pytest.fixture
def cli(capsys):
    """``cli(*argv)`` runs ``histoexpr argv...`` in-process; returns a ``CliResult``."""
    return lambda *argv: run_cli(capsys, *argv)
