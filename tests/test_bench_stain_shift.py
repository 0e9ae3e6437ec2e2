"""The re-staining helper of the stain-shift benchmark (``benchmarks/stain_shift.py``) on a
tiny synthetic section: strips give what the whole image gives, and a section's stain
shift is drawn once, whatever strip it is applied to."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from histoexpr.datasets.synthetic import synthetic_he
from histoexpr.stain import MacenkoNormalizer

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "stain_shift.py"


@pytest.fixture(scope="module")
def ss():
    spec = importlib.util.spec_from_file_location("stain_shift", _PATH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def section() -> np.ndarray:
    return synthetic_he(160, 120, seed=1).rgb


@pytest.fixture(scope="module")
def target() -> MacenkoNormalizer:
    other = synthetic_he(128, 96, seed=7).rgb
    # another lab's stain: the eosin channel stronger, haematoxylin weaker
    shifted = np.clip(other.astype(float) * [1.05, 0.85, 1.0], 0, 255).astype(np.uint8)
    return MacenkoNormalizer().fit(shifted)


def _shifts(ss, section, target):
    return {"svs": ss.macenko_shift(section, target),
            "hed-light": ss.hed_shift(section, 0.05, "C5"),
            "hed-strong": ss.hed_shift(section, 0.2, "C5")}


@pytest.mark.parametrize("condition", ["svs", "hed-light", "hed-strong"])
@pytest.mark.parametrize("rows", [1, 7, 50, 500])
def test_strips_equal_whole_image(ss, section, target, condition, rows):
    shift = _shifts(ss, section, target)[condition]
    whole = shift(section)
    assert whole.shape == section.shape and whole.dtype == np.uint8
    assert (whole != section).any()
    assert np.array_equal(ss.apply_in_strips(section, shift, rows=rows), whole)


def test_one_draw_per_section(ss, section):
    a = ss.hed_shift(section, 0.2, "C5")
    assert a == ss.hed_shift(section, 0.2, "C5")  # the same section, the same draw
    assert a.alpha != ss.hed_shift(section, 0.2, "C6").alpha  # another section, another one
    assert a.alpha != ss.hed_shift(section, 0.2, "C5", seed=1).alpha
    # the strip's content does not enter the shift: the top strip shifted with the
    # section's draw is the top of the shifted section
    top = section[:40]
    assert np.array_equal(a(top), a(section)[:40])
    # HED-strong is HED-light's draw four times over
    light = ss.hed_shift(section, 0.05, "C5")
    assert np.allclose(np.subtract(a.alpha, 1), 4 * np.subtract(light.alpha, 1))
    assert np.allclose(a.beta, 4 * np.asarray(light.beta))


def test_svs_restaining_moves_towards_target(ss, section, target):
    out = ss.macenko_shift(section, target)(section)
    refit = MacenkoNormalizer().fit(out)
    own = MacenkoNormalizer().fit(section)
    d_new = np.abs(refit.stain_matrix_ - target.stain_matrix_).sum()
    d_old = np.abs(own.stain_matrix_ - target.stain_matrix_).sum()
    assert d_new < d_old


def test_make_condition_writes_and_reuses(ss, section, target, tmp_path):
    from PIL import Image

    data = tmp_path / "data"
    for sub in ("images", "counts", "spots"):
        (data / sub).mkdir(parents=True)
    Image.fromarray(section).save(data / "images" / "C5.jpg", quality=95)
    (data / "counts" / "C5.tsv.gz").write_bytes(b"counts")
    (data / "spots" / "C5_selection.tsv").write_text("spots")
    log: list[str] = []
    out = tmp_path / "out"
    folder = ss.make_condition(data, out, "svs", ["C5"], target=target, target_path="t",
                               log=log.append)
    img = folder / "images" / "C5.jpg"
    assert img.is_file() and len(log) == 1
    assert (folder / "counts" / "C5.tsv.gz").read_bytes() == b"counts"
    assert (folder / "spots" / "C5_selection.tsv").read_text() == "spots"
    rec = json.loads((folder / "restain.json").read_text())
    assert rec["C5"]["settings"]["condition"] == "svs"
    stamp = img.stat().st_mtime_ns
    ss.make_condition(data, out, "svs", ["C5"], target=target, target_path="t", log=log.append)
    assert len(log) == 1 and img.stat().st_mtime_ns == stamp  # reused, not redone
    ss.make_condition(data, out, "hed-light", ["C5"], log=log.append)
    assert len(log) == 2 and ss.read_rgb(out / "hed-light" / "images" / "C5.jpg").shape == \
        section.shape


def test_condition_scores_pair_spots(ss, tmp_path):
    rng = np.random.default_rng(0)
    conds = ["original", "svs"]
    spots = [f"C5:{i}x1" for i in range(6)] + [f"C6:{i}x1" for i in range(5)]
    ids = spots + [f"svs_{s}" for s in spots if s != "C6:4x1"]  # one spot lost in svs
    y = rng.normal(size=(len(ids), 4))
    y[len(spots):] = y[[spots.index(i[4:]) for i in ids[len(spots):]]]
    (tmp_path / "folds" / "holdout").mkdir(parents=True)
    pd.DataFrame({"slide_id": [i.split(":")[0] for i in ids], "x": 0.0, "y": 0.0},
                 index=ids).to_csv(tmp_path / "spots.csv")
    for key, pred in (("ridge", y), ("ridge-colour_hist", -y)):
        np.savez(tmp_path / "folds" / "holdout" / f"{key}.npz", ids=np.array(ids), y_true=y,
                 y_pred=pred)
    table, n = ss.condition_scores(tmp_path, {"model": "ridge", "colour": "ridge-colour_hist"},
                                   ["C5", "C6"], conds)
    assert n == 10
    assert table.loc["svs", "model"] == pytest.approx(1.0)
    assert table.loc["original", "colour"] == pytest.approx(-1.0)
