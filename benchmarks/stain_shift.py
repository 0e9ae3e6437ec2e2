"""The stain-shift test of ``bench_cross_patient.py`` (issue 20, part (b)): re-stained copies
of whole section images, and the scores of a run's held-out predictions per condition.

A stain shift belongs to a slide, not to a patch: each condition draws its parameters once
per section image (from the whole image) and applies them to every pixel, strip by strip,
so the result does not depend on the strip height (``tests/test_bench_stain_shift.py``).

- ``svs``: Macenko re-staining onto another slide (the CMU-1 H&E skin slide). The section's
  own stain vectors and 99th-percentile concentrations are estimated once on a subsample of
  the whole image; every pixel's H and E concentrations are then rescaled to the target's
  range and mixed back with the target's vectors (torchstain's ``normalize``, with the
  source estimate per section instead of per image tile).
- ``hed-light`` / ``hed-strong``: Tellez et al. 2019's HED jitter (the formula of
  :func:`histoexpr.stain.augment.hed_jitter`: each of the H, E, D channels becomes
  ``alpha * c + beta * scale``, ``scale`` its 99th percentile of ``|c|``) with strength 0.05
  and 0.2, one draw per section: ``alpha = 1 + s * u``, ``beta = s * v`` with ``u, v ~
  U(-1, 1)^3`` seeded by the section's name, so the strong shift of a section is the light
  one four times over.

:func:`make_condition` writes ``<out>/<condition>/images/<section>.jpg`` (JPEG quality 95,
as the originals are JPEGs) beside symbolic links to the original counts and spots, and a
``restain.json`` of the parameters; a rerun with the same settings reuses the images.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

#: the test conditions; ``original`` are the sections as they are
CONDITIONS = ("original", "svs", "hed-light", "hed-strong")
#: HED jitter strengths: Tellez et al. 2019's HED-light and HED-strong
HED_STRENGTHS = {"hed-light": 0.05, "hed-strong": 0.2}
_STRIP = 512  # image rows per strip
_SUBSAMPLE = 4  # every 4th pixel in each direction estimates a section's stains
_VERSION = 1  # bump when the re-staining changes: cached images are redone


def _hed_matrices() -> tuple[np.ndarray, np.ndarray]:
    from skimage.color import hed_from_rgb, rgb_from_hed

    return np.asarray(hed_from_rgb, np.float32), np.asarray(rgb_from_hed, np.float32)


def _hed(rgb: np.ndarray) -> np.ndarray:
    """H, E, D channels of uint8 RGB (hed_jitter's OD: ``-log(max(I, 1) / 255)``)."""
    to_hed, _ = _hed_matrices()
    return (-np.log(np.maximum(rgb.astype(np.float32), 1.0) / 255.0)) @ to_hed


@dataclass(frozen=True)
class HedShift:
    """One section's HED jitter: ``c -> alpha * c + beta * scale`` per H, E, D channel."""

    alpha: tuple[float, float, float]
    beta: tuple[float, float, float]
    scale: tuple[float, float, float]

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        _, to_rgb = _hed_matrices()
        hed = _hed(rgb) * np.float32(self.alpha) + np.float32(self.beta) * np.float32(self.scale)
        return np.clip(np.rint(255.0 * np.exp(-(hed @ to_rgb))), 0, 255).astype(np.uint8)


def hed_shift(image: np.ndarray, strength: float, section: str, *, seed: int = 0) -> HedShift:
    """The HED jitter of one section: the draw depends on ``seed`` and ``section`` only,
    the channel scales on the whole image (subsampled).

    Examples
    --------
    >>> img = np.random.default_rng(0).integers(60, 230, (40, 50, 3), dtype=np.uint8)
    >>> a, b = hed_shift(img, 0.05, "C5"), hed_shift(img, 0.2, "C5")
    >>> bool(np.allclose(np.subtract(b.alpha, 1), 4 * np.subtract(a.alpha, 1)))
    True
    """
    rng = np.random.default_rng([seed, zlib.crc32(section.encode())])
    u, v = rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 3)
    sub = _hed(image[::_SUBSAMPLE, ::_SUBSAMPLE]).reshape(-1, 3)
    scale = np.maximum(np.percentile(np.abs(sub), 99, axis=0), 1e-3)
    return HedShift(tuple((1 + strength * u).tolist()), tuple((strength * v).tolist()),
                    tuple(scale.astype(float).tolist()))


@dataclass(frozen=True)
class MacenkoShift:
    """One section's Macenko re-staining: its stain vectors ``source`` (rows H, E) and
    concentration range ``source_max`` onto ``target`` / ``target_max`` (``io``: torchstain's
    transmitted light)."""

    source: tuple[tuple[float, ...], ...]
    source_max: tuple[float, float]
    target: tuple[tuple[float, ...], ...]
    target_max: tuple[float, float]
    io: float = 240.0

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        od = -np.log((rgb.astype(np.float32) + 1.0) / np.float32(self.io))
        unmix = np.linalg.pinv(np.asarray(self.source, np.float64).T).astype(np.float32)
        conc = od @ unmix.T  # (..., 2) concentrations under the section's own vectors
        conc *= np.float32(self.target_max) / np.float32(self.source_max)
        out = np.float32(self.io) * np.exp(-(conc @ np.asarray(self.target, np.float32)))
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def macenko_shift(image: np.ndarray, target) -> MacenkoShift:
    """The re-staining of one section onto ``target`` (a fitted
    :class:`~histoexpr.stain.MacenkoNormalizer`), its own stains fitted on the whole image
    (subsampled)."""
    from histoexpr.stain import MacenkoNormalizer

    src = MacenkoNormalizer(io=target.io).fit(image[::_SUBSAMPLE, ::_SUBSAMPLE])
    return MacenkoShift(tuple(map(tuple, src.stain_matrix_.tolist())),
                        tuple(src.max_concentrations_.tolist()),
                        tuple(map(tuple, target.stain_matrix_.tolist())),
                        tuple(target.max_concentrations_.tolist()), float(target.io))


def apply_in_strips(image: np.ndarray, shift: Callable[[np.ndarray], np.ndarray], *,
                    rows: int = _STRIP) -> np.ndarray:
    """``shift`` applied to ``image`` ``rows`` rows at a time (bounded float memory).

    Examples
    --------
    >>> img = np.random.default_rng(0).integers(60, 230, (40, 50, 3), dtype=np.uint8)
    >>> s = hed_shift(img, 0.2, "C5")
    >>> bool((apply_in_strips(img, s, rows=7) == s(img)).all())
    True
    """
    out = np.empty_like(image)
    for y in range(0, image.shape[0], rows):
        out[y:y + rows] = shift(image[y:y + rows])
    return out


def read_rgb(path: str | Path) -> np.ndarray:
    """A whole section image as ``(H, W, 3)`` uint8."""
    from PIL import Image

    from histoexpr.slide.array import no_pixel_limit

    with no_pixel_limit(), Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def target_normaliser(path: str | Path):
    """A Macenko normaliser fitted on a whole slide's thumbnail (its stained pixels: the
    fit leaves out those under the OD threshold, i.e. the background)."""
    from histoexpr.slide import open_slide
    from histoexpr.stain import MacenkoNormalizer

    slide = open_slide(path, mpp=None if str(path).endswith(".svs") else 0.5)
    return MacenkoNormalizer().fit(slide.thumbnail(4096))


def _shift_of(condition: str, image: np.ndarray, section: str, target, seed: int):
    if condition == "svs":
        return macenko_shift(image, target)
    return hed_shift(image, HED_STRENGTHS[condition], section, seed=seed)


def _link(src: Path, dst: Path) -> None:
    if dst.is_symlink() or dst.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(src.resolve(), dst)
    except OSError:  # a file system without links
        shutil.copyfile(src, dst)


def make_condition(data: str | Path, out: str | Path, condition: str,
                   sections: Sequence[str], *, target=None, target_path: str = "",
                   seed: int = 0, log: Callable[[str], None] = print) -> Path:
    """``out/<condition>``: a her2st-style folder of ``sections`` re-stained (see the module
    docstring), with ``restain.json``; images made earlier with the same settings are kept.

    ``target`` (a fitted Macenko normaliser, :func:`target_normaliser`) is needed for
    ``svs``; ``target_path`` names it in the record.
    """
    from PIL import Image

    from histoexpr.atomic import atomic_path

    data, folder = Path(data), Path(out) / condition
    record_path = folder / "restain.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    settings = {"version": _VERSION, "condition": condition, "seed": seed,
                "target": target_path if condition == "svs" else None}
    for s in sections:
        img = folder / "images" / f"{s}.jpg"
        if img.is_file() and record.get(s, {}).get("settings") == settings:
            continue
        t0 = time.perf_counter()
        image = read_rgb(data / "images" / f"{s}.jpg")
        shift = _shift_of(condition, image, s, target, seed)
        shifted = apply_in_strips(image, shift)
        del image
        img.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(img, suffix=".jpg") as tmp:
            Image.fromarray(shifted).save(tmp, "JPEG", quality=95)
        del shifted
        _link(data / "counts" / f"{s}.tsv.gz", folder / "counts" / f"{s}.tsv.gz")
        _link(data / "spots" / f"{s}_selection.tsv", folder / "spots" / f"{s}_selection.tsv")
        record[s] = {"settings": settings, "params": asdict(shift)}
        record_path.write_text(json.dumps(record, indent=1))
        log(f"  {condition}/{s}: re-stained in {time.perf_counter() - t0:.0f} s")
    return folder


def condition_scores(run_path: str | Path, entries: dict[str, str],
                     test_sections: Sequence[str], conditions: Sequence[str],
                     smooth: bool = False) -> tuple[pd.DataFrame, int]:
    """Mean Pearson r over a run's genes of each entry in each condition, from the
    held-out predictions (``folds/holdout/<entry>.npz``): per test section, on the spots
    kept in every condition, then averaged over the sections (as leave-one-section-out
    averages its one-section folds).

    ``entries`` maps a column name (``model``, ``colour``, ...) to a run entry key; a
    copied section's id is ``<condition>_<section>``. With ``smooth`` the ``model`` column's
    predictions are smoothed over the spot grid at the strength the run chose on its cv
    folds (``smoothing.json``). Returns the table (conditions x entries) and the number of
    spots scored.
    """
    from histoexpr.metrics import per_gene

    run = Path(run_path)
    spots = pd.read_csv(run / "spots.csv", index_col=0)

    def bare(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cond = np.full(len(ids), "original", object)
        plain = np.asarray(ids, object).copy()
        for c in conditions:
            hit = np.char.startswith(ids.astype(str), f"{c}_")
            cond[hit] = c
            plain[hit] = [i[len(c) + 1:] for i in ids[hit]]
        return cond, plain

    out: dict[str, dict[str, float]] = {}
    n_common = 0
    for col, key in entries.items():
        with np.load(run / "folds" / "holdout" / f"{key}.npz", allow_pickle=False) as z:
            ids, y, p = z["ids"].astype(str), z["y_true"], z["y_pred"]
        if smooth and col == "model":
            from histoexpr.st.smoothing import smooth as smooth_grid

            a = json.loads((run / "smoothing.json").read_text())["strength"]
            sub = spots.loc[ids]
            p = smooth_grid(p, sub[["x", "y"]].to_numpy(float),
                            sub["slide_id"].astype(str).to_numpy(), a)
        cond, plain = bare(ids)
        common = set.intersection(*(set(plain[cond == c]) for c in conditions))
        n_common = len(common)
        keep = np.array([q in common for q in plain])
        section = np.array([q.split(":", 1)[0] for q in plain])
        for c in conditions:
            rs = []
            for s in test_sections:
                m = keep & (cond == c) & (section == s)
                order = np.argsort(plain[m])  # the same spots in the same order
                r = per_gene(y[m][order], p[m][order])["pearson_r"]
                rs.append(float(r.mean()))
            out.setdefault(c, {})[col] = float(np.mean(rs))
    return pd.DataFrame(out).T.loc[list(conditions)], n_common
