"""The tutorials in docs/tutorials are executed (issue 22, item 6): every code cell of every
notebook runs, in order, in a fresh interpreter in an empty folder, on data the notebook
generates itself, so a tutorial cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).resolve().parents[1] / "docs" / "tutorials").glob("*.ipynb"))

RUNNER = """
import json, sys
cells = json.load(open(sys.argv[1]))
ns = {"__name__": "__main__"}
for i, src in enumerate(cells):
    try:
        exec(compile(src, f"<cell {i}>", "exec"), ns)
    except Exception:
        print(f"cell {i} failed:\\n{src}", file=sys.stderr)
        raise
"""


def test_there_are_tutorials():
    assert {p.name for p in TUTORIALS} >= {"01_spatial.ipynb", "02_bulk.ipynb",
                                           "03_downstream.ipynb", "04_cohort_dask.ipynb"}


@pytest.mark.slow
@pytest.mark.parametrize("notebook", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs(notebook, tmp_path):
    nb = json.loads(notebook.read_text())
    assert nb["nbformat"] == 4
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert cells, f"{notebook.name} has no code"
    (tmp_path / "cells.json").write_text(json.dumps(cells))
    p = subprocess.run([sys.executable, "-c", RUNNER, "cells.json"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
