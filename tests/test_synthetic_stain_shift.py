"""Patients of the synthetic ST generator differ in stain and scanner (issue 20): the shift
changes how each patient's sections look, never their expression, and at 0 it gives exactly
the images drawn before stain styles existed."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from histoexpr.datasets.nuclei import render_nuclei
from histoexpr.datasets.synthetic import StainStyle, draw_stain_style, patient_stain_styles
from histoexpr.datasets.synthetic_st import synthetic_st

TINY = {"n_sections": 2, "n_patients": 2, "grid": (3, 2), "n_genes": 6, "n_signal": 2,
        "mpp": 2.0, "signal": "texture", "seed": 0}
#: sha256 (first 16 hex digits) of TINY's two PNG images, concatenated, as drawn by the
#: generator before stain styles existed (computed from that code, then frozen here)
BEFORE_IMAGES = "ee3c0bd052feb156"


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def _read(syn) -> tuple[list[np.ndarray], np.ndarray]:
    images = [np.asarray(Image.open(spec["image"])) for spec in syn.specs]
    counts = np.concatenate([pd.read_csv(spec["counts"], sep="\t", index_col=0).to_numpy()
                             for spec in syn.specs])
    return images, counts


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    """TINY at shift 0 and at shift 1."""
    return {shift: synthetic_st(tmp_path_factory.mktemp(f"shift{shift}"), stain_shift=shift,
                                **TINY) for shift in (0.0, 1.0)}


def test_no_shift_reproduces_the_images_drawn_before_stain_styles(shifted):
    images, _ = _read(shifted[0.0])
    assert _sha(np.concatenate([i.ravel() for i in images])) == BEFORE_IMAGES
    assert all(s.is_reference for s in shifted[0.0].stains.values())


def test_patients_differ_in_stain_only_when_shifted(shifted):
    # both patients' tissue is drawn from the same distributions, so at shift 0 their mean
    # colours agree closely; with a shift each patient has its own stain vectors and colours
    for shift, syn in shifted.items():
        (a, b), _ = _read(syn)
        gap = np.abs(a.reshape(-1, 3).mean(0) - b.reshape(-1, 3).mean(0)).max()
        p0, p1 = syn.stains["P0"], syn.stains["P1"]
        if shift == 0:
            assert gap < 2.0, gap
            assert p0 == p1 == StainStyle()
        else:
            assert gap > 5.0, gap
            assert p0.h_vector != p1.h_vector and p0.e_vector != p1.e_vector
            for s in (p0, p1):  # stain vectors stay unit absorbances
                for v in (s.h_vector, s.e_vector):
                    assert np.isclose(np.linalg.norm(v), 1) and min(v) > 0


def test_expression_does_not_depend_on_the_shift(shifted):
    (img0, counts0), (img1, counts1) = _read(shifted[0.0]), _read(shifted[1.0])
    np.testing.assert_array_equal(counts0, counts1)
    pd.testing.assert_frame_equal(shifted[0.0].latents, shifted[1.0].latents)
    np.testing.assert_array_equal(shifted[0.0].weights, shifted[1.0].weights)
    assert not np.array_equal(img0[0], img1[0])  # while the images do change


def test_default_shift_is_on_for_texture_and_off_for_colour(tmp_path):
    tex = synthetic_st(tmp_path / "t", **TINY)
    assert not any(s.is_reference for s in tex.stains.values())
    col = synthetic_st(tmp_path / "c", **{**TINY, "signal": "colour"})
    assert all(s.is_reference for s in col.stains.values())


def test_a_style_recolours_the_same_nuclei():
    f = np.zeros((64, 64), np.float32)
    ref = render_nuclei(f, f, np.full_like(f, 0.4), mpp=1.0, seed=0)
    style = draw_stain_style(np.random.default_rng(1), 1.0)
    other = render_nuclei(f, f, np.full_like(f, 0.4), mpp=1.0, seed=0, style=style)
    assert np.array_equal(render_nuclei(f, f, np.full_like(f, 0.4), mpp=1.0, seed=0,
                                        style=StainStyle()), ref)
    assert not np.array_equal(ref, other)
    # the nuclei (darkest pixels) are in the same places under both styles
    nuc_ref, nuc_other = ref.sum(-1) < np.median(ref.sum(-1)) - 60, \
        other.sum(-1) < np.median(other.sum(-1)) - 60
    assert (nuc_ref == nuc_other).mean() > 0.95


def test_style_draws_scale_with_strength_and_reject_negative():
    styles = patient_stain_styles(3, strength=0.0, seed=5)
    assert styles == [StainStyle()] * 3
    weak, strong = (patient_stain_styles(1, strength=k, seed=5)[0] for k in (0.5, 2.0))
    assert abs(np.log(strong.h_scale)) == pytest.approx(4 * abs(np.log(weak.h_scale)))
    with pytest.raises(ValueError, match="strength"):
        draw_stain_style(np.random.default_rng(0), -1.0)
