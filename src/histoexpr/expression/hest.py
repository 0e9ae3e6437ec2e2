"""A HEST-1k download folder as section specs (issue 22, item 2).

HEST-1k (Jaume et al. 2024) ships each sample as ``st/<id>.h5ad`` (spots, counts,
full-resolution pixel positions), ``wsis/<id>.tif`` (the pyramidal H&E),
``metadata/<id>.json``, ``patches/<id>.h5`` and ``spatial_plots/`` (ignored here), with one
metadata CSV at the root (``HEST_v1_*.csv``: ``id``, ``patient``, ``organ``,
``st_technology``, ``species``, ``pixel_size_um_estimated``, ...). ``histoexpr st fit --data
ROOT`` takes the whole folder; a query after ``?`` selects samples by id or by metadata:

    --data "hest_data?organ=Breast&st_technology=Visium"
    --data "hest_data?id=TENX95,TENX99"

Values match case-insensitively; a comma means "any of". Each selected sample becomes an
``h5ad`` section spec with its whole-slide image, its patient (so splits group by patient)
and its pixel size from the CSV.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from ..errors import InputError

__all__ = ["hest_sections", "is_hest_folder", "split_query"]


def split_query(path: str | Path, *, lower: bool = True) -> tuple[Path, dict[str, list[str]]]:
    """``"root?organ=Breast&id=A,B"`` -> ``(Path("root"), {"organ": ["breast"], ...})``
    (keys lower-cased, values too unless ``lower=False``; a path that exists as given is
    never split).

    >>> split_query("hest?organ=Breast&id=TENX95,TENX99")
    (PosixPath('hest'), {'organ': ['breast'], 'id': ['tenx95', 'tenx99']})
    """
    s = str(path)
    if "?" not in s or Path(s).exists():
        return Path(s), {}
    root, _, query = s.partition("?")
    out: dict[str, list[str]] = {}
    for k, v in parse_qsl(query, keep_blank_values=True):
        out.setdefault(k.strip().lower(), []).extend(
            (x.strip().lower() if lower else x.strip()) for x in v.split(",") if x.strip())
    return Path(root), out


def is_hest_folder(path: Path) -> bool:
    """A HEST-1k download: ``st/*.h5ad`` beside ``wsis/``."""
    return (path / "st").is_dir() and (path / "wsis").is_dir() and any((path / "st").glob(
        "*.h5ad"))


def _metadata(root: Path) -> Any:
    import pandas as pd

    csvs = sorted(root.glob("HEST_v*.csv")) or sorted(root.glob("*.csv"))
    if not csvs:
        return None
    try:
        meta = pd.read_csv(csvs[-1])
    except (OSError, ValueError) as e:
        raise InputError(f"{csvs[-1]}: cannot read the HEST metadata ({e})") from e
    meta.columns = [str(c).strip().lower() for c in meta.columns]
    if "id" not in meta.columns:
        raise InputError(f"{csvs[-1]}: the HEST metadata has no `id` column (found "
                         f"{', '.join(meta.columns[:8])})")
    meta["id"] = meta["id"].astype(str)
    return meta


def _positive(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f > 0 else None


def hest_sections(root: str | Path, query: dict[str, list[str]] | None = None) -> list[dict]:
    """Section specs of the HEST samples under ``root`` that ``query`` selects.

    Raises
    ------
    InputError
        A query column the metadata lacks, a query that selects nothing (the values the
        column has are listed), a selected sample without ``st/<id>.h5ad`` or
        ``wsis/<id>.tif``.
    """
    root = Path(root)
    query = dict(query or {})
    meta = _metadata(root)
    on_disk = sorted(p.stem for p in (root / "st").glob("*.h5ad"))
    if meta is None:
        if set(query) - {"id"}:
            raise InputError(f"{root}: no HEST metadata CSV (HEST_v*.csv) to filter on "
                             f"{', '.join(sorted(set(query) - {'id'}))}; download it, or "
                             "select by id only")
        rows = [{"id": i} for i in on_disk]
    else:
        sel = meta[meta["id"].isin(on_disk)] if not query.get("id") else meta
        for col, values in query.items():
            if col not in sel.columns:
                raise InputError(f"{root}: the HEST metadata has no column {col!r} to select "
                                 f"on; columns: {', '.join(sorted(sel.columns)[:20])}")
            sel = sel[sel[col].astype(str).str.strip().str.lower().isin(values)]
            if sel.empty:
                have = sorted(meta[col].dropna().astype(str).unique())[:15]
                raise InputError(f"{root}: no HEST sample has {col} in {values}; the values "
                                 f"are e.g. {', '.join(have)}")
        rows = sel.to_dict("records")
    if query.get("id") and meta is None:
        rows = [r for r in rows if r["id"].lower() in query["id"]]
        if not rows:
            raise InputError(f"{root}: none of ids {query['id']} is in st/ (found e.g. "
                             f"{', '.join(on_disk[:5])})")
    specs = []
    for r in rows:
        sid = str(r["id"])
        h5 = root / "st" / f"{sid}.h5ad"
        wsi = root / "wsis" / f"{sid}.tif"
        for need in (h5, wsi):
            if not need.is_file():
                raise InputError(f"{need}: HEST sample {sid} is listed but this file is "
                                 "missing; download the sample again (hest's "
                                 "`snapshot_download(... allow_patterns=...)`) or drop it "
                                 "with ?id=")
        spec = {"platform": "h5ad", "path": str(h5), "image": str(wsi), "section": sid}
        mpp = _positive(r.get("pixel_size_um_estimated")) or _positive(
            r.get("pixel_size_um_embedded"))
        if mpp:
            spec["mpp"] = mpp
        patient = r.get("patient")
        if isinstance(patient, str) and patient.strip() and patient.lower() != "nan":
            spec["patient"] = patient.strip()
        specs.append(spec)
    return specs
