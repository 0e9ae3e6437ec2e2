"""The run folder: provenance, execution settings outside the run's identity, resume."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from histoexpr.config import BulkConfig, STConfig, execution_keys
from histoexpr.datasets.synthetic_st import synthetic_st
from histoexpr.errors import InputError
from histoexpr.runs import RunFolder, files
from histoexpr.st import fit_run

FAST = {"encoder": "toy", "genes": "top6", "patch_px": 32, "k": 2, "baselines": ["mean"]}


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    out = tmp_path_factory.mktemp("st")
    s = synthetic_st(out, n_sections=4, n_patients=2, grid=(5, 5), n_genes=10, n_signal=3,
                     seed=0)
    (out / "sections.json").write_text(json.dumps(s.specs))
    return str(out / "sections.json")


def test_execution_settings_are_not_the_identity():
    assert set(execution_keys(STConfig)) == {"batch_size", "num_workers", "device"}
    assert set(execution_keys(BulkConfig)) == {"device"}
    cfg = STConfig.resolve(data=["x"], batch_size=8)
    assert "batch_size" not in cfg.identity() and cfg.execution()["batch_size"] == 8
    assert STConfig.from_dict(cfg.identity()).identity() == cfg.identity()


def _metrics(run: RunFolder) -> pd.DataFrame:
    m = pd.read_csv(run.metrics).sort_values(["model", "fold", "section", "gene", "metric"])
    return m.reset_index(drop=True)


def test_interrupted_run_resumed_with_another_batch_size_gives_the_same_metrics(
        specs, tmp_path, monkeypatch):
    import histoexpr.models as models_mod

    whole = fit_run(STConfig.resolve(data=[specs], batch_size=64, **FAST), tmp_path / "a",
                    maps=False)
    calls = {"n": 0}
    real = models_mod.fit_model

    def dies_on_the_third_fit(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(models_mod, "fit_model", dies_on_the_third_fit)
    with pytest.raises(KeyboardInterrupt):
        fit_run(STConfig.resolve(data=[specs], batch_size=3, **FAST), tmp_path / "b",
                maps=False)
    run = RunFolder(tmp_path / "b")
    assert run.read_json(run.run_json)["status"] == "interrupted"
    monkeypatch.undo()
    resumed = fit_run(STConfig.resolve(data=[specs], batch_size=5, num_workers=0, **FAST),
                      tmp_path / "b", maps=False)
    info = resumed.read_json(resumed.run_json)
    assert info["resumed"] and info["execution"]["batch_size"] == 5
    assert "batch_size" not in resumed.read_json(resumed.config)
    a, b = _metrics(whole), _metrics(resumed)
    assert a[["model", "fold", "gene", "metric"]].equals(b[["model", "fold", "gene", "metric"]])
    np.testing.assert_allclose(a["value"], b["value"], rtol=1e-5, atol=1e-6)


def test_a_setting_that_changes_the_result_is_refused_by_name(specs, tmp_path):
    fit_run(STConfig.resolve(data=[specs], **FAST), tmp_path / "r", maps=False)
    with pytest.raises(InputError, match="differs in: patch_px"):
        fit_run(STConfig.resolve(data=[specs], **(FAST | {"patch_px": 48})), tmp_path / "r")


def test_run_json_records_provenance_and_timed_stages(specs, tmp_path):
    run = fit_run(STConfig.resolve(data=[specs], **FAST), tmp_path / "r", maps=False)
    info = json.loads((run.path / files.RUN).read_text())
    prov = info["provenance"]
    assert prov["packages"]["numpy"] and prov["packages"]["histoexpr"]
    assert {"python", "platform", "host", "git"} <= set(prov)
    assert info["status"] == "done" and info["stages"]["data"]["seconds"] >= 0


def test_an_in_memory_cohort_fits_like_its_files(specs, tmp_path):
    from histoexpr.expression import read_cohort

    from_files = fit_run(STConfig.resolve(data=[specs], **FAST), tmp_path / "files", maps=False)
    cohort = read_cohort([specs])
    in_memory = fit_run(STConfig.resolve(**FAST), tmp_path / "mem", maps=False, adata=cohort)
    a, b = _metrics(from_files), _metrics(in_memory)
    np.testing.assert_allclose(a["value"], b["value"], rtol=1e-6, atol=1e-7)
    inputs = in_memory.read_json(in_memory.run_json)["inputs"]
    assert len(inputs["<in-memory AnnData>"]) == 64
    cohort.obs["x"] = cohort.obs["x"] + 1.0  # other data in the same folder: refused
    with pytest.raises(InputError, match="changed since this run"):
        fit_run(STConfig.resolve(**FAST), tmp_path / "mem", maps=False, adata=cohort)
    del cohort.layers["counts"]
    with pytest.raises(InputError, match='lacks layers\\["counts"\\]'):
        fit_run(STConfig.resolve(**FAST), tmp_path / "other", adata=cohort)


def test_an_option_added_since_the_run_resumes_when_left_empty(tmp_path):
    """A run written before an option existed resumes when the option is unset, off or an
    empty list (e.g. ensemble_encoders ()); set to something, it is another config."""
    from histoexpr.errors import InputError
    from histoexpr.runs import RunFolder

    run = RunFolder(tmp_path / "r")
    run.start({"a": 1})
    run.stage("data", 0.1)
    run.finish()
    again = RunFolder(tmp_path / "r")
    again.start({"a": 1, "new_list": (), "new_flag": False, "new_value": None})
    again.finish()
    with pytest.raises(InputError, match="another config"):
        RunFolder(tmp_path / "r").start({"a": 1, "new_list": ("x",)})
