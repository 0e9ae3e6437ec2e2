"""``histoexpr demo --small``: the whole pipeline on generated data finds the texture signal
that colour histograms cannot see, on the sections and on the whole slide. (CI also runs the
full ``make demo``.)"""

from __future__ import annotations

import json

import pytest

from histoexpr.cli import main


@pytest.mark.slow
def test_small_demo_finds_the_signal_and_the_baselines_do_not(tmp_path, capsys):
    assert main(["-q", "demo", "--small", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "signal found" in out and f"report: {tmp_path / 'run' / 'report.html'}" in out
    summary = json.loads((tmp_path / "demo_summary.json").read_text())
    sec = summary["scores"]["sections"]
    model = sec["ridge efficientnet_lite0"]
    assert model["signal"] > 0.6 and abs(model["noise"]) < 0.15, model
    assert sec["ridge colour_hist"]["signal"] < model["signal"] - 0.4, sec
    assert sec["ridge efficientnet_lite0-random"]["signal"] < model["signal"] - 0.2, sec
    assert sec["mean"]["signal"] is None  # r undefined (constant predictions): null in JSON
    assert summary["scores"]["slide"]["signal"] > 0.3, summary["scores"]["slide"]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["scales"] == [224.0, 448.0] and config["context"] == 2.0  # the default
    for f in ("run/report.html", "run/final/model.joblib", "slide_maps/demo_slide.geojson",
              "slide_maps/maps/SIG0.png", "slide_maps/truth/SIG0.png"):
        assert (tmp_path / f).is_file(), f
    import importlib.util

    if importlib.util.find_spec("spatialdata"):  # the stores the demo prints
        for f in ("slide_maps/demo_slide.zarr", "run/predictions.zarr"):
            assert (tmp_path / f / "zarr.json").is_file() and str(tmp_path / f) in out, f


def test_demo_inputs_read_back_from_a_relative_folder(tmp_path, monkeypatch):
    from histoexpr.datasets.demo import make_demo_inputs
    from histoexpr.expression.discover import read_cohort

    monkeypatch.chdir(tmp_path)
    small = {"n_sections": 2, "n_patients": 2, "grid": [3, 3], "n_genes": 4, "n_signal": 2,
             "slide_size": [256, 192]}
    inp, new = make_demo_inputs("rel/inputs", **small)
    assert new and not inp.sections.is_absolute()
    assert read_cohort([str(inp.sections)]).n_obs == 18
    assert make_demo_inputs("rel/inputs", **small)[1] is False  # reused, not regenerated
