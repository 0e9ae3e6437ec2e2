"""Helpers of the bad-input and fault matrix (imported by its test files as ``matrix``).

Each case runs the command line in-process the way a user would, then checks three things:
the exit status, that stderr is exactly one line naming the file and the fix (no traceback,
no library log noise), and what is left on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from histoexpr.cli import main


@dataclass
class CliResult:
    rc: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [ln for ln in self.err.strip().splitlines() if ln.strip()]


def assert_clear_error(res: CliResult, *needles: str, rc: int = 2) -> str:
    """``res`` failed with status ``rc`` and one stderr line ``error: ...`` holding every
    needle; returns that line."""
    assert res.rc == rc, (res.rc, res.err)
    assert "Traceback" not in res.err, res.err
    assert len(res.err_lines) == 1, res.err
    line = res.err_lines[0]
    assert line.startswith("error: "), line
    for n in needles:
        assert n in line, f"{n!r} not in {line!r}"
    return line


def files_under(folder: str | Path) -> set[str]:
    """Every file below ``folder`` as a relative path (the lock file left out)."""
    folder = Path(folder)
    if not folder.exists():
        return set()
    return {str(p.relative_to(folder)) for p in folder.rglob("*")
            if p.is_file() and p.name != ".histoexpr.lock"}


def run_cli(capsys, *argv) -> CliResult:
    """Run ``histoexpr argv...`` in-process and capture what it printed."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return CliResult(rc, out, err)
