"""Stain augmentation (issue 20, item 2): the augmenter's draws, re-staining, and
``st fit --stain-augment`` / ``--smooth-targets`` in the fold loop."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pytest

from histoexpr.config import STConfig
from histoexpr.datasets.synthetic_st import synthetic_st
from histoexpr.errors import InputError
from histoexpr.stain.augment import StainAugmenter, hed_jitter, restain


@pytest.fixture(scope="module")
def tiles():
    """Six 64 px tiles of generated H&E, the most tissue-covered of a 512 px image."""
    from histoexpr.datasets.synthetic import synthetic_he

    slide = synthetic_he(512, 512, seed=3, n_blobs=6)
    cells = [(i, j) for i in range(0, 512, 64) for j in range(0, 512, 64)]
    cells.sort(key=lambda c: -slide.tissue[c[0]:c[0] + 64, c[1]:c[1] + 64].mean())
    return np.stack([slide.rgb[i:i + 64, j:j + 64] for i, j in cells[:6]])


def test_draws_depend_on_seed_and_patch_not_on_batch(tiles):
    a = StainAugmenter.named("strong", seed=1)
    full = a.transform(tiles)
    assert full.shape == tiles.shape and full.dtype == np.uint8
    assert np.abs(full.astype(int) - tiles).mean() > 3  # it does change the colours
    parts = np.concatenate([a.transform(tiles[:2]), a.transform(tiles[2:][::-1])[::-1]])
    assert (parts == full).all()
    other = StainAugmenter.named("strong", seed=2).transform(tiles)
    assert (other != full).any()
    # stronger settings move the colours further
    light = np.abs(StainAugmenter.named("light", seed=1).transform(tiles).astype(int) - tiles)
    assert light.mean() < np.abs(full.astype(int) - tiles).mean()


def test_zero_strengths_leave_patches_unchanged(tiles):
    out = StainAugmenter(hed=0, brightness=0, vectors=0).transform(tiles)
    assert (out == tiles).all()
    assert (hed_jitter(tiles[0], 0.0, np.random.default_rng(0)) == tiles[0]).all()


def test_bad_strengths_are_named():
    with pytest.raises(InputError, match="hed strength"):
        StainAugmenter(hed=1.5)
    with pytest.raises(InputError, match="'medium' is not one of light, strong"):
        StainAugmenter.named("medium")
    with pytest.raises(InputError, match="stain_augment must be one of light, strong"):
        STConfig.resolve(data=["x"], stain_augment="medium")
    with pytest.raises(InputError, match="augment_copies"):
        STConfig.resolve(data=["x"], augment_copies=0)
    with pytest.raises(InputError, match="smooth_targets"):
        STConfig.resolve(data=["x"], smooth_targets=1.5)


def test_restain_is_macenko_onto_the_other_image(tiles):
    from histoexpr.stain import MacenkoNormalizer

    other = StainAugmenter(hed=0.3, brightness=0, vectors=0.3, seed=4)._one(
        np.concatenate(list(tiles), axis=1))
    norm = MacenkoNormalizer().fit(other)
    assert (restain(tiles, other) == norm.transform(tiles)).all()
    assert (restain(tiles[0], norm) == norm.transform(tiles[:1])[0]).all()


@pytest.mark.data
def test_restained_real_tiles_carry_the_other_slides_stain_vectors(shared_data):
    """A breast H&E tile re-stained onto the CMU skin slide: Macenko finds the CMU slide's
    vectors in the result, not the tile's own."""
    import tiffslide
    from PIL import Image

    from histoexpr.stain import MacenkoNormalizer

    src = np.asarray(Image.open(shared_data / "he_tiles" / "tiatoolbox_target_image.png")
                     .convert("RGB"))
    with tiffslide.TiffSlide(shared_data / "wsi" / "CMU-1-Small-Region.svs") as s:
        other = np.asarray(s.read_region((600, 800), 0, (1000, 1000)).convert("RGB"))
    tiles = np.stack([src[i:i + 224, j:j + 224] for i in (0, 300, 600) for j in (0, 300, 600)])
    out = np.concatenate(list(restain(tiles, other)), axis=1)

    def vectors(img):
        return MacenkoNormalizer().fit(img).stain_matrix_

    ref = vectors(other)
    assert np.abs(vectors(out) - ref).max() < 0.5 * np.abs(vectors(src) - ref).max()


FAST = {"encoder": "toy", "genes": "SIG0,SIG1,NOISE0", "patch_px": 32, "k": 2,
        "baselines": ["mean", "colour"], "refit": True}


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn_aug")
    s = synthetic_st(out, n_sections=4, n_patients=2, seed=0)
    (out / "sections.json").write_text(json.dumps(s.specs))
    return out / "sections.json"


@pytest.fixture(scope="module")
def plain(specs, tmp_path_factory):
    from histoexpr.st import fit_run

    return fit_run(STConfig.resolve(data=[str(specs)], **FAST),
                   tmp_path_factory.mktemp("plain") / "run", maps=False)


def test_stain_augmented_copies_are_extra_training_rows(specs, plain, tmp_path):
    """--stain-augment light --augment-copies 2: every features entry (colour too) trains on
    its spots and two stain-augmented copies of them; the copies are cached apart."""
    from histoexpr.st import fit_run

    aug = fit_run(STConfig.resolve(data=[str(specs)], stain_augment="light", augment_copies=2,
                                   **FAST), tmp_path / "aug", maps=False)
    n = [joblib.load(r.final / "model.joblib").pipeline_[0].scaler_.n_samples_seen_
         for r in (plain, aug)]
    assert n[1] == 3 * n[0]
    # the fold loop tells the probe its rows are 3 blocks: penalties chosen on distinct rows
    from histoexpr.models.probe import ALPHAS

    alphas = joblib.load(aug.final / "model.joblib").alpha_
    assert np.isin(np.round(alphas / 3, 6), np.round(ALPHAS, 6)).all()
    cached = {p.name for p in (aug.path / "features").iterdir()}
    assert {"toy-aug-light-0", "toy-aug-light-1", "colour_hist-aug-light-0"} <= cached
    fold = json.loads((aug.path / "folds" / "0" / "ridge.json").read_text())
    assert fold["n_train"] == json.loads(
        (plain.path / "folds" / "0" / "ridge.json").read_text())["n_train"]
    a = np.load(aug.path / "folds" / "0" / "ridge.npz")
    p = np.load(plain.path / "folds" / "0" / "ridge.npz")
    assert (a["y_true"] == p["y_true"]).all() and not np.allclose(a["y_pred"], p["y_pred"])


def test_smoothed_targets_train_on_denoised_values_and_score_measured_ones(specs, plain,
                                                                          tmp_path):
    from histoexpr.st import fit_run

    sm = fit_run(STConfig.resolve(data=[str(specs)], smooth_targets=0.5, **FAST),
                 tmp_path / "sm", maps=False)
    a, p = (np.load(r.path / "folds" / "0" / "ridge.npz") for r in (sm, plain))
    assert (a["y_true"] == p["y_true"]).all()  # scored on the measured values
    assert not np.allclose(a["y_pred"], p["y_pred"])
    # the training error is against the smoothed targets, which are smoother
    err = [json.loads((r.path / "folds" / "0" / "ridge.json").read_text())["train_error"]
           for r in (sm, plain)]
    assert err[0]["amae"] < err[1]["amae"]
