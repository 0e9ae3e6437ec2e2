"""One declaration per config field: its flag, its help, its JSON key, its merge order."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import fields

import pytest

from histoexpr.config import (
    BulkConfig,
    STConfig,
    add_config_flags,
    config_from_args,
    execution_keys,
    flag_names,
)
from histoexpr.errors import InputError

CONFIGS = [STConfig, BulkConfig]
REQUIRED = {STConfig: ["--data", "d"], BulkConfig: ["--features", "f", "--expression", "e"]}


def _parser(cls) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="histoexpr", add_help=False)
    add_config_flags(p, cls)
    return p


def _example(f) -> tuple[list[str], object]:
    """Command-line words for field ``f`` that differ from its default, and the value the
    config should then hold."""
    o = f.metadata["option"]
    flag = flag_names(f)[0]
    if isinstance(f.default, bool):
        return [flag], not f.default
    if o.form == "params":
        return [flag, "max_epochs=3"], {"max_epochs": 3}
    if o.choices:
        pick = next(c for c in o.choices if c != f.default)
        return [flag, pick], pick
    examples = {
        "data": (["d1", "d2"], ("d1", "d2")), "holdout": (["P1"], ("P1",)),
        "baselines": (["mean"], ("mean",)), "sample_types": (["01,11"], ("01", "11")),
        "split_fractions": (["0.5,0.25,0.25"], (0.5, 0.25, 0.25)),
        "encoder": (["toy"], "toy"), "genes": (["top50"], "top50"), "stain": (["macenko"],
                                                                                 "macenko"),
        "model": (["mlp"], "mlp"), "n_tiles": (["4"], 4), "holdout_fraction": (["0.1"], 0.1),
        "max_white": (["0.3"], 0.3), "smooth_targets": (["0.5"], 0.5),
        "ensemble_encoders": (["toy"], ("toy",)), "scales": (["300,600"], (300.0, 600.0)),
        "context": (["3"], 3.0),
    }
    if f.name in examples:
        words, value = examples[f.name]
        return [flag, *words], value
    t = f.type
    if t.startswith("int"):
        return [flag, "17"], 17
    if t.startswith("float"):
        return [flag, "7.5"], 7.5
    return [flag, "x"], "x"


@pytest.mark.parametrize("cls", CONFIGS)
def test_every_field_has_one_flag_that_sets_that_field_only(cls):
    p = _parser(cls)
    seen: dict[str, str] = {}
    for f in fields(cls):
        words, value = _example(f)
        assert words[0] not in seen, f"{words[0]} is the flag of {seen.get(words[0])} too"
        seen[words[0]] = f.name
        ns = p.parse_args(words)
        given = {g.name for g in fields(cls) if getattr(ns, g.name) is not None}
        assert given == {f.name}, (words, given)
        if f.name in ("select", "stain"):  # need other values to validate
            continue
        cfg = config_from_args(cls, p.parse_args([*REQUIRED[cls], *words]))
        assert getattr(cfg, f.name) == value, f.name


@pytest.mark.parametrize("cls", CONFIGS)
def test_cli_beats_the_json_file_beats_the_defaults(cls, tmp_path):
    file = tmp_path / "config.json"
    file.write_text(json.dumps({"k": 3, "seed": 4, "strict_genes": True}))
    args = _parser(cls).parse_args([*REQUIRED[cls], "--config", str(file), "--folds", "4",
                                    "--no-strict-genes"])
    cfg = config_from_args(cls, args)
    assert cfg.k == 4 and cfg.strict_genes is False  # the command line
    assert cfg.seed == 4  # the file
    assert cfg.genes == cls().genes and cfg.refit is True  # the defaults
    assert config_from_args(cls, args, model="mean").model == "mean"  # keywords beat all


@pytest.mark.parametrize("cls", CONFIGS)
def test_to_dict_is_the_json_config_and_reads_back(cls, tmp_path):
    cfg = cls.resolve(**_required_kwargs(cls), model_params={"alpha": 2.0})
    d = cfg.to_dict()
    assert list(d) == [f.name for f in fields(cls)]
    (tmp_path / "c.json").write_text(json.dumps(d))
    assert cls.resolve(tmp_path / "c.json") == cfg


def _required_kwargs(cls) -> dict:
    return {"data": ["d"]} if cls is STConfig else {"features": "f", "expression": "e"}


def test_execution_settings_are_marked_and_grouped_apart():
    assert set(execution_keys(STConfig)) == {"batch_size", "num_workers", "device"}
    assert set(execution_keys(BulkConfig)) == {"device"}
    text = _parser(STConfig).format_help()
    run, execution = text.split("run config:")[1].split("execution:")
    assert "--batch-size" in execution and "--device" in execution and "--seed" in run
    assert "--batch-size" not in run


@pytest.mark.parametrize("cls", CONFIGS)
def test_the_help_lists_every_flag_with_its_text_and_default(cls):
    text = " ".join(_parser(cls).format_help().split())
    for f in fields(cls):
        for flag in flag_names(f):
            assert flag in text, flag
        words = " ".join(f.metadata["option"].help.split()[:4])
        assert words in text, (f.name, words)
    assert "(default: 5)" in text and "seed 00" in text


def test_the_same_idea_has_the_same_flag_in_both_workflows():
    st = {f.name: flag_names(f) for f in fields(STConfig)}
    bulk = {f.name: flag_names(f) for f in fields(BulkConfig)}
    for name in ("k", "genes", "strict_genes", "seed", "device", "model", "model_params",
                 "baselines", "refit"):
        assert st[name] == bulk[name], name
    assert st["k"] == ("--folds",) and st["model_params"] == ("--param",)
    assert st["log"] == bulk["transform"] == ("--transform",)
    assert st["holdout"] == ("--holdout",)  # names of patients or sections
    assert bulk["holdout_fraction"] == ("--holdout-fraction",)  # a fraction


def test_old_bulk_flags_and_keys_still_work(caplog, tmp_path):
    p = _parser(BulkConfig)
    help_text = p.format_help()
    assert "--holdout-fraction" in help_text and "--panel" not in help_text
    assert "--holdout " not in help_text and "--log " not in help_text
    args = p.parse_args([*REQUIRED[BulkConfig], "--holdout", "0.1", "--panel", "pam50",
                         "--log", "log2"])
    with caplog.at_level(logging.WARNING, logger="histoexpr"):
        cfg = config_from_args(BulkConfig, args)
    assert (cfg.holdout_fraction, cfg.genes, cfg.transform) == (0.1, "pam50", "log2")
    assert "--holdout is deprecated" in caplog.text and "--holdout-fraction" in caplog.text
    # a config.json written before: the old key, and fractions as strings
    old = tmp_path / "config.json"
    old.write_text(json.dumps({"features": "f", "expression": "e", "holdout": 0.3,
                               "panel": "gastric4", "split_fractions": ["0.5", "0.3", "0.2"]}))
    cfg = BulkConfig.resolve(old)
    assert cfg.holdout_fraction == 0.3 and cfg.genes == "gastric4"
    assert cfg.split_fractions == (0.5, 0.3, 0.2)
    assert cfg.to_dict()["split_fractions"] == [0.5, 0.3, 0.2]
    assert BulkConfig.resolve(old, holdout_fraction=0.0).holdout_fraction == 0.0


def test_bad_split_fractions_name_the_key():
    with pytest.raises(InputError, match="split_fractions"):
        BulkConfig.resolve(features="f", expression="e", split_fractions="0.6,a,0.2")
    with pytest.raises(InputError, match=r"split_fractions.*summing to 1"):
        BulkConfig.resolve(features="f", expression="e", split_fractions=[0.6, 0.6, 0.2])


def test_choices_follow_the_stages_they_name():
    from histoexpr.cohort import SPLITS
    from histoexpr.features.bags import SELECTIONS

    st = {f.name: f.metadata["option"] for f in fields(STConfig)}
    bulk = {f.name: f.metadata["option"] for f in fields(BulkConfig)}
    assert st["split"].choices == SPLITS and bulk["select"].choices == SELECTIONS


@pytest.mark.parametrize("command", ["st", "bulk"])
def test_fit_help_of_the_real_cli_lists_every_config_field(command, capsys):
    from histoexpr.cli import main

    with pytest.raises(SystemExit):
        main([command, "fit", "--help"])
    text = capsys.readouterr().out
    cls = STConfig if command == "st" else BulkConfig
    for f in fields(cls):
        assert flag_names(f)[0] in text, f.name
    for flag in ("--out", "--overwrite", "--config"):
        assert flag in text
