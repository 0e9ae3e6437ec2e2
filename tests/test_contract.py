"""The model contract: every registered model declares its tags; fit_model follows them."""

from __future__ import annotations

import numpy as np
import pytest

from histoexpr.errors import InputError
from histoexpr.models import BULK_MODELS, INPUTS, MODELS, ModelTags, fit_model, tags_of


@pytest.mark.parametrize("name", MODELS.list())
def test_every_spot_model_declares_its_tags(name):
    tags = tags_of(MODELS.get(name))
    assert tags.input in ("features", "patches")


@pytest.mark.parametrize("name", BULK_MODELS.list())
def test_every_slide_model_declares_its_tags(name):
    tags = tags_of(BULK_MODELS.get(name))  # factories are built once to ask
    assert tags.input in ("bags", "patch_bags") and tags.input in INPUTS


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
