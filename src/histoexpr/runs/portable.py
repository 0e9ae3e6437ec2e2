"""One-file models (issue 22, item 4): ``histoexpr export-model RUN model.histoexpr``.

The file is a safetensors file: the final model's arrays and network weights as tensors,
and in its header metadata the model as a tree of allow-listed classes and attributes
(:mod:`histoexpr.models.portable`) beside the run files prediction reads (the config with
the encoder, patch size and µm/px, stain settings and pixel statistics, the gene list, the
output smoothing and intervals, the metrics that rank genes). Loading never unpickles
code: the header is JSON and the tensors are raw arrays.

:func:`open_model` turns a file into what the prediction code reads from a run folder:
its run files, written once under the model cache (``$HISTOEXPR_CACHE`` or
``~/.cache/histoexpr/models/<sha256>``), and the model object rebuilt from the tensors.
``st predict``, ``predict-slide`` and ``bulk predict`` take such a file wherever they take
a run folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from . import files as F

__all__ = ["FORMAT", "FORMAT_VERSION", "SUFFIX", "export_model", "is_model_file", "open_model",
           "portable_output"]

FORMAT = "histoexpr-model"
FORMAT_VERSION = 1
SUFFIX = ".histoexpr"
#: the run files a model file carries (those prediction reads), relative to the run
RUN_FILES = (F.CONFIG, F.RUN, F.DATA, F.METRICS, F.SUMMARY, F.SMOOTHING, F.UNCERTAINTY,
             F.ENTRIES, f"{F.FINAL}/{F.FINAL_INFO}")
#: the marker a model file's unpacked run folder holds instead of final/model.joblib
PORTABLE_MODEL = "model.portable.json"


def is_model_file(path: str | Path) -> bool:
    """Whether ``path`` is a file (a model file) rather than a run folder."""
    return Path(path).is_file()


def portable_output(path: str | Path) -> Path:
    """The default output folder of a prediction from a model file: ``<stem>_predict``
    beside it (a run folder's is ``RUN/predict``)."""
    path = Path(path)
    return path.with_name(f"{path.name.removesuffix(SUFFIX)}_predict")


def export_model(run: str | Path, path: str | Path) -> Path:
    """Write the final model of ``run`` (an ``st fit`` or ``bulk fit`` folder) to ``path``.

    Raises
    ------
    InputError
        No run or no final model; a model with parts that are not plain data (e.g.
        ``cnn_aux``, whose encoder is a whole timm network).
    """
    import joblib
    from safetensors.numpy import save_file

    from .. import __version__
    from ..atomic import atomic_path
    from ..models.portable import to_tree

    run = Path(run)
    model_path = run / F.FINAL / F.FINAL_MODEL
    if not model_path.is_file():
        raise InputError(f"{run}: no final model ({F.FINAL}/{F.FINAL_MODEL}); export a run "
                         "of `histoexpr st fit` or `bulk fit` that refitted its final model")
    est = joblib.load(model_path)  # our own run, written by this package
    tensors: dict[str, Any] = {}
    tree = to_tree(est, tensors)
    carried = {name: (run / name).read_text() for name in RUN_FILES if (run / name).is_file()}
    meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION),
            "histoexpr_version": __version__, "model": json.dumps(tree),
            "run_files": json.dumps(carried), "source_run": str(run.resolve())}
    path = Path(path)
    if not tensors:  # safetensors needs one tensor; a model without arrays has none
        tensors["_none"] = np.zeros(0, np.float32)
    with atomic_path(path, suffix=SUFFIX) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def _cache_root() -> Path:
    root = os.environ.get("HISTOEXPR_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "histoexpr") / "models"


def open_model(path: str | Path) -> tuple[Path, Any]:
    """``(run folder, model)`` of a model file: the carried run files unpacked (once) in
    the cache, and the model rebuilt from the tensors.

    Raises
    ------
    InputError
        Not a histoexpr model file, or one of a newer format.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    from ..atomic import atomic_path
    from ..models.portable import from_tree

    path = Path(path)
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(f"{path}: not a histoexpr model file ({e}); give a run folder or "
                         f"a file made by `histoexpr export-model`") from e
    if meta.get("format") != FORMAT:
        raise InputError(f"{path}: a safetensors file but not a histoexpr model (no "
                         f"format={FORMAT!r} in its header); export one with `histoexpr "
                         "export-model RUN FILE`")
    version = int(meta.get("format_version", "0"))
    if version > FORMAT_VERSION:
        raise InputError(f"{path}: written by histoexpr {meta.get('histoexpr_version')} in "
                         f"model format {version}; this histoexpr reads format "
                         f"{FORMAT_VERSION}: upgrade it (pip install -U histoexpr)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    folder = _cache_root() / digest
    if not (folder / F.FINAL / PORTABLE_MODEL).is_file():
        for name, text in json.loads(meta["run_files"]).items():
            with atomic_path(folder / name) as tmp:
                tmp.write_text(text)
        with atomic_path(folder / F.FINAL / PORTABLE_MODEL) as tmp:
            tmp.write_text(json.dumps({"model_file": str(path.resolve()),
                                       "histoexpr_version": meta.get("histoexpr_version")}))
    return folder, from_tree(json.loads(meta["model"]), tensors)
