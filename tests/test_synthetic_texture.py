"""The texture signal: nuclear size and elongation change the image's shapes, not its
colours, so colour histograms carry (almost) nothing about them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from histoexpr.datasets.nuclei import render_nuclei, signal_slide
from histoexpr.datasets.synthetic_st import synthetic_st
from histoexpr.expression import read_sections
from histoexpr.features.colour import colour_histogram


def _patch(size: float, elong: float, seed: int) -> np.ndarray:
    f = np.full((200, 200), size, np.float32)
    img = render_nuclei(f, np.full_like(f, elong), np.full_like(f, 0.4), mpp=1.0, seed=seed)
    return img[44:156, 44:156]  # away from the edges, as a spot patch is


def test_size_changes_nuclei_but_not_coverage_or_colour_histogram():
    small = np.stack([_patch(-1.5, 0.0, s) for s in range(6)])
    large = np.stack([_patch(1.5, 0.0, s) for s in range(6)])
    nuc = [p[..., 0] < 170 for p in (small, large)]  # dark red channel = nucleus
    cover = [m.mean() for m in nuc]
    assert abs(cover[0] - cover[1]) < 0.02, cover  # same share of nuclear pixels
    mean_area = [m.sum() / sum(ndimage.label(i)[1] for i in m) for m in nuc]
    assert mean_area[1] > 2.5 * mean_area[0], mean_area  # but far bigger nuclei
    h = [colour_histogram(p).mean(0) for p in (small, large)]
    spread = np.abs(colour_histogram(small) - h[0]).mean()  # patch-to-patch variation
    assert np.abs(h[0] - h[1]).mean() < 2 * spread


def test_texture_sections_are_lossless_and_record_size_and_elongation(tmp_path):
    s = synthetic_st(tmp_path, n_sections=2, grid=(3, 2), n_genes=6, n_signal=2,
                     mpp=2.0, signal="texture")
    assert all(spec["image"].endswith(".png") for spec in s.specs)
    assert list(s.latents.columns) == ["size", "elong"]
    assert read_sections(s.specs).shape == (12, 6)
    with pytest.raises(ValueError, match="signal"):
        synthetic_st(tmp_path, signal="shape")


def test_signal_slide_fields_follow_the_tissue():
    s = signal_slide(384, 256, mpp=2.0, seed=3)
    assert s.rgb.shape == (256, 384, 3) and s.size.shape == s.tissue.shape
    glass = s.rgb[~s.tissue].mean()
    assert glass > 230 and s.rgb[s.tissue].mean() < glass - 40
