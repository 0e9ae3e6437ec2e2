"""Find the spatial sections in the paths a user gives and read them into one cohort.

``histoexpr st fit --data PATH...`` accepts, per path:

- a her2st-style folder (``counts/<s>.tsv.gz``, ``spots/<s>_selection.tsv``,
  ``images/<s>.jpg``) → :func:`~histoexpr.expression.read_her2st`;
- a Space Ranger output (``outs/`` or a folder with ``spatial/``) →
  :func:`~histoexpr.expression.read_visium`;
- an ``.h5ad`` file (HEST layout or one this package wrote) →
  :func:`~histoexpr.expression.read_h5ad`;
- the ST-Net / BrST-Net breast layout (``<subtype>/<patient>/<patient>_<section>.tsv.gz``
  with ``.spots.txt`` and the image) → :func:`~histoexpr.expression.stnet.read_stnet`;
- a ``.json`` file holding a list of section specs → :func:`read_sections`
  (the general form: any reader, explicit images, patients and mpp);
- a HEST-1k download (``st/``, ``wsis/``, the metadata CSV), optionally with a query that
  selects samples: ``hest_data?organ=Breast&st_technology=Visium`` →
  :func:`~histoexpr.expression.hest.hest_sections`;
- a SpatialData zarr store (``spatialdata-io`` output, or one this package wrote),
  optionally with a query naming its table, image, coordinate system or pixel size:
  ``visium.zarr?image=V1_full_image&mpp=0.27`` →
  :func:`~histoexpr.expression.sdata_in.read_spatialdata`.

Any of these may be written ``NAME=PATH``: the section and patient ids read from PATH are
then prefixed ``NAME_``, so two datasets whose sections share names can be used together.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from . import h5ad, sdata_in, st, stnet, visium  # noqa: F401  (each registers its reader)
from .section import SPATIAL_READERS, concat_sections, prefix_ids, section_name

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["read_cohort", "read_sections", "section_specs", "split_prefix"]


_PREFIX = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)=(.+)$")


def split_prefix(path: str | Path) -> tuple[str | None, Path]:
    """``"rep2=data/her2st"`` -> ``("rep2", Path("data/her2st"))``: ``NAME=PATH`` prefixes
    the section and patient ids read from PATH with ``NAME_``. A path that exists as given
    is never split.

    Examples
    --------
    >>> split_prefix("rep2=data/her2st")
    ('rep2', PosixPath('data/her2st'))
    >>> split_prefix("data/her2st")
    (None, PosixPath('data/her2st'))
    """
    s = str(path)
    m = _PREFIX.match(s)
    if m is None or Path(s).exists():
        return None, Path(s)
    return m.group(1), Path(m.group(2))


def section_specs(path: str | Path) -> list[dict]:
    """The section specs a path stands for (see the module docstring).

    Examples
    --------
    >>> section_specs("../shared/data/her2st")[0]["platform"]  # doctest: +SKIP
    'legacy_st'
    """
    prefix, p = split_prefix(path)
    if prefix:
        return [{**s, "id_prefix": prefix} for s in section_specs(p)]
    from .hest import hest_sections, is_hest_folder, split_query
    from .sdata_in import is_spatialdata_store, spatialdata_spec

    root, query = split_query(p)
    if is_spatialdata_store(root):  # a SpatialData store; names in its query keep their case
        return [spatialdata_spec(root, split_query(p, lower=False)[1])]
    if query or (root.is_dir() and is_hest_folder(root)):  # a HEST-1k download
        if not root.is_dir() or not is_hest_folder(root):
            raise InputError(f"{root}: a ?query selects HEST-1k samples, but this is not a "
                             "HEST folder (st/<id>.h5ad beside wsis/<id>.tif)")
        return hest_sections(root, query)
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if p.is_file() and p.suffix == ".json":
        try:
            specs = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise InputError(f"{p}: not a JSON list of section specs ({e})") from e
        if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
            raise InputError(f"{p}: expected a JSON list of section specs (objects)")
        base = p.parent
        out = []
        for s in specs:  # relative paths in the file are relative to the file
            s = dict(s)
            for k in ("counts", "spots", "image", "folder", "path"):
                if isinstance(s.get(k), str) and not Path(s[k]).is_absolute():
                    s[k] = str(base / s[k])
            out.append(s)
        return out
    if p.is_file() and p.suffix == ".h5ad":
        return [{"platform": "h5ad", "path": str(p)}]
    if p.is_dir():
        if (p / "counts").is_dir() and (p / "spots").is_dir():
            out = []
            for c in sorted((p / "counts").glob("*.tsv.gz")):
                s = section_name(c)
                img = p / "images" / f"{s}.jpg"
                m = next((i for i, ch in enumerate(s) if not ch.isalpha()), len(s))
                out.append({
                    "platform": "legacy_st", "counts": str(c),
                    "spots": str(p / "spots" / f"{s}_selection.tsv"),
                    "image": str(img) if img.is_file() else None,
                    "section": s, "patient": s[:m] or s,
                })
            if out:
                return out
        if (p / "outs").is_dir() or (p / "spatial").is_dir():
            return [{"platform": "visium", "folder": str(p)}]
        h5ads = sorted(p.glob("*.h5ad"))
        if h5ads:
            return [{"platform": "h5ad", "path": str(h)} for h in h5ads]
        specs = stnet.stnet_sections(p)
        if specs:
            return specs
    raise InputError(
        f"{p}: not a spatial dataset I recognise; give a her2st-style folder (counts/, spots/, "
        "images/), a Space Ranger outs folder, .h5ad files, a HEST-1k folder, the ST-Net layout "
        "(<subtype>/<patient>/<patient>_<section>.tsv.gz), a SpatialData .zarr store, or a JSON "
        "list of section specs"
    )


def read_cohort(paths: Sequence[str | Path], *, join: str = "inner") -> AnnData:
    """Read every section found under ``paths`` into one AnnData (see the module docstring).

    Examples
    --------
    >>> import tempfile
    >>> from histoexpr.datasets.synthetic_st import synthetic_st
    >>> syn = synthetic_st(tempfile.mkdtemp(), n_sections=2, grid=(3, 3), n_genes=4, n_signal=1)
    >>> spec_file = Path(tempfile.mkdtemp()) / "sections.json"
    >>> _ = spec_file.write_text(json.dumps(syn.specs))
    >>> read_cohort([spec_file]).n_obs
    18
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    specs = [s for p in paths for s in section_specs(p)]
    if not specs:
        raise InputError("no sections given")
    return read_sections(specs, join=join)


def read_sections(specs: Sequence[Mapping[str, Any]], *, join: str = "inner") -> AnnData:
    """Read several sections, each described by a mapping, and join them.

    Each spec names its reader under ``"platform"`` (``legacy_st``, ``visium``, ``h5ad``; see
    ``SPATIAL_READERS.list()``); the other keys are that reader's arguments, except
    ``"id_prefix"``, which prefixes the section's ids
    (:func:`~histoexpr.expression.section.prefix_ids`).

    Examples
    --------
    >>> cohort = read_sections([
    ...     {"platform": "legacy_st", "counts": "C2.tsv.gz", "spots": "C2_selection.tsv",
    ...      "image": "C2.jpg", "patient": "C"},
    ...     {"platform": "visium", "folder": "outs", "section": "V1", "patient": "P7"},
    ... ])  # doctest: +SKIP
    """
    adatas = []
    for i, spec in enumerate(specs):
        spec = dict(spec)
        if "platform" not in spec:
            raise InputError(
                f"section spec {i} has no 'platform'; choose one of: "
                f"{', '.join(SPATIAL_READERS.list())}"
            )
        prefix = spec.pop("id_prefix", None)
        a = SPATIAL_READERS.create(spec.pop("platform"), **spec)
        adatas.append(prefix_ids(a, prefix) if prefix else a)
    return concat_sections(adatas, join=join)
