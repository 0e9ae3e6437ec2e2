"""The model contract: every registered model declares its tags; fit_model follows them."""

from __future__ import annotations

import numpy as np
import pytest

from histoexpr.errors import InputError, UnknownNameError
from histoexpr.models import (
    INPUTS,
    MODELS,
    ModelTags,
    PooledModel,
    build_model,
    fit_model,
    level_input,
    model_names,
    tags_of,
)


@pytest.mark.parametrize("name", MODELS.list())
def test_every_model_declares_its_tags(name):
    tags = tags_of(MODELS.get(name))  # factories are built once to ask
    assert tags.input in INPUTS


def test_one_registry_serves_both_levels():
    spot, slide = model_names("spot"), model_names("slide")
    assert set(spot) | set(slide) == set(MODELS.list())
    assert {"ridge", "mlp", "mean"} <= set(spot) & set(slide)   # one entry, both levels
    assert "cnn_aux" in spot and "cnn_aux" not in slide
    assert {"hist2rna", "abmil", "gastric_max"} <= set(slide) - set(spot)
    assert level_input("ridge", "spot") == "features"
    assert level_input("ridge", "slide") == "bags"            # pooled per slide
    with pytest.raises(UnknownNameError, match=r"hist2rna.*bags.*spot-level.*ridge"):
        level_input("hist2rna", "spot")
    with pytest.raises(UnknownNameError, match="unknown expression model 'nope'"):
        level_input("nope", "slide")


def test_build_model_checks_params_and_sets_seed_everywhere():
    est = build_model("ridge", "slide", {"n_components": 8}, seed=3)
    assert isinstance(est, PooledModel)
    assert est.head.n_components == 8 and est.head.random_state == 3
    kept = build_model("mlp", "spot", {"random_state": 9}, seed=3, device="cpu")
    assert kept.random_state == 9 and kept.device == "cpu"    # the user's value wins
    with pytest.raises(InputError, match=r"'ridge' has no parameter.*bogus.*it takes:.*alphas"):
        build_model("ridge", "spot", {"bogus": 1})


class _Recorder:
    def __init__(self, tags):
        self.model_tags = tags

    def fit(self, X, y, **kw):
        self.kw = kw
        return self


@pytest.mark.parametrize("tags, expected", [
    (ModelTags(), set()),
    (ModelTags(groups=True), {"groups"}),
    (ModelTags(input="patches", groups=True, aux_targets=True), {"groups", "y_aux"}),
])
def test_fit_model_passes_what_the_tags_ask_for(tags, expected):
    est = fit_model(_Recorder(tags), np.zeros((3, 2)), np.zeros(3), groups=np.arange(3),
                    y_aux=np.zeros((3, 1)))
    assert set(est.kw) == expected


def test_a_model_without_tags_is_refused():
    class Bare:
        def fit(self, X, y):
            return self

    with pytest.raises(InputError, match="declares no model_tags"):
        tags_of(Bare())
    with pytest.raises(ValueError, match="unknown model input"):
        ModelTags(input="pixels")
