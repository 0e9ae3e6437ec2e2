"""Features on the real slides in ../shared/data: the CMU .svs and a her2st section, with the
default efficientnet_lite0 (real ImageNet weights), in-process and through Dask."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from histoexpr.cli import main
from histoexpr.features import load_features
from histoexpr.tiling import load_coords, save_coords

pytestmark = pytest.mark.data
N_TILES = 24  # enough to see real features, few enough for a test


@pytest.fixture(scope="module")
def real_tiles(shared_data, tmp_path_factory):
    """Coordinates for the CMU slide (grid) and her2st C3 (spots), cut to N_TILES each."""
    root = tmp_path_factory.mktemp("real")
    cmu = shared_data / "wsi" / "CMU-1-Small-Region.svs"
    c3 = shared_data / "her2st" / "images" / "C3.jpg"
    assert main(["-q", "tile", str(cmu), "--out", str(root / "t"), "--filter", "white"]) == 0
    assert main(["-q", "tile", str(c3), "--out", str(root / "t"), "--spots",
                 str(shared_data / "her2st" / "spots"), "--slide-mpp", "from-spots",
                 "--filter", "white"]) == 0
    folder = root / "t" / "224px_0.5mpp"
    for name in ("CMU-1-Small-Region", "C3"):
        coords, attrs = load_coords(folder / f"{name}.h5")
        save_coords(folder / f"{name}.h5", coords[:N_TILES], attrs)
    (root / "slides.csv").write_text(f"slide\n{cmu}\n{c3}\n")
    return root, folder


def test_real_slides_in_process_and_on_dask_give_the_same_features(real_tiles, capsys):
    root, coords = real_tiles
    manifest = root / "slides.csv"
    slides = manifest.read_text().split()[1:]
    common = ["--coords", str(coords), "--batch-size", "16"]
    assert main(["-q", "embed", slides[0], *common, "--out", str(root / "local")]) == 0
    assert main(["-q", "embed", "--manifest", str(manifest), *common, "--out", str(root / "dask"),
                 "--workers", "1"]) == 0
    for name in ("CMU-1-Small-Region", "C3"):
        c, f, attrs = load_features(root / "dask" / f"{name}.h5")
        assert len(c) == N_TILES
        assert f.shape == (N_TILES, 1280) and np.isfinite(f).all()
        assert attrs["encoder"]["name"] == "efficientnet_lite0"
        assert attrs["encoder_weights"] == "package"
        assert f.std(axis=0).mean() > 0.01  # tiles differ: real features, not a constant
    _, a, _ = load_features(root / "local" / "CMU-1-Small-Region.h5")
    _, b, _ = load_features(root / "dask" / "CMU-1-Small-Region.h5")
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # two different sections (C3 tiled without --slide-mpp at embed time: the pixel size
    # recorded at tiling is used) are told apart by their mean features
    _, c3, _ = load_features(root / "dask" / "C3.h5")
    between = np.linalg.norm(a.mean(0) - c3.mean(0))
    within = np.linalg.norm(a[: N_TILES // 2].mean(0) - a[N_TILES // 2 :].mean(0))
    assert between > within
