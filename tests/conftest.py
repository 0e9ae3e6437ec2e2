"""Shared fixtures: a generated pyramidal TIFF, and the real data in ../shared/data (tests
marked ``data`` skip cleanly when it is absent, e.g. on a user's fresh clone)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(
    os.environ.get("HISTOEXPR_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_data = pytest.mark.skip(reason=f"real data not found at {SHARED_DATA}")
    skip_gpu = pytest.mark.skip(reason="no CUDA device")
    has_gpu = False
    if any("gpu" in it.keywords for it in items):
        try:
            import torch

            has_gpu = torch.cuda.is_available()
        except ImportError:
            has_gpu = False
    for it in items:
        if "data" in it.keywords and not SHARED_DATA.is_dir():
            it.add_marker(skip_data)
        if "gpu" in it.keywords and not has_gpu:
            it.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def synthetic():
    """A 2048 x 1536 synthetic H&E slide at 0.5 µm/px (pixels + true tissue mask)."""
    from histoexpr.datasets.synthetic import synthetic_he

    return synthetic_he(2048, 1536, mpp=0.5, seed=3)


@pytest.fixture(scope="session")
def synthetic_tiff(tmp_path_factory, synthetic) -> Path:
    """The synthetic slide as a tiled pyramidal TIFF (levels 1, 4, 16), lossless."""
    from histoexpr.datasets.synthetic import write_pyramidal_tiff

    path = tmp_path_factory.mktemp("slides") / "synthetic.tif"
    return write_pyramidal_tiff(path, synthetic.rgb, mpp=0.5, compression="zlib")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny torch models: one thread is fastest and immune to other processes on a small
    box; the previous thread count is restored after the module."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)



@pytest.fixture
def cli(capsys):
    """``cli(*argv)`` runs ``histoexpr argv...`` in-process; returns a ``CliResult`` (exit
    status, stdout, stderr). For the bad-input matrix in ``tests/bad_inputs``, whose helpers
    (``matrix.py``) are importable from its test files."""
    from matrix import run_cli

    return lambda *argv: run_cli(capsys, *argv)


@pytest.fixture(scope="session")
def tiny_st_run(tmp_path_factory):
    """A small spatial run for the prediction paths: two synthetic sections (5 x 5 spots,
    12 genes, 4 with signal), the toy encoder's features of 32 µm patches at 0.5 µm/px,
    ridge, no baselines. Returns ``(run folder, the synthetic sections)``."""
    import json

    from histoexpr.config import STConfig
    from histoexpr.datasets.synthetic_st import synthetic_st
    from histoexpr.st import fit_run

    out = tmp_path_factory.mktemp("tiny_st")
    s = synthetic_st(out, n_sections=2, n_patients=2, grid=(5, 5), n_genes=12, n_signal=4,
                     seed=2)
    (out / "sections.json").write_text(json.dumps(s.specs))
    cfg = STConfig.resolve(data=[str(out / "sections.json")], split="section",
                           encoder="toy", genes="top10", patch_px=64, patch_um=32.0, k=2,
                           context=0, scales=(), baselines=(), model="ridge")
    return fit_run(cfg, tmp_path_factory.mktemp("tiny_st_run") / "ridge", maps=False), s
