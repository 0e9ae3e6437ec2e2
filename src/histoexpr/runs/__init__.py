"""The run folder every workflow writes: one layout, one provenance record, one lock.

- :mod:`.files` — the name of every file a run holds;
- :mod:`.folder` — :class:`RunFolder` (start / resume / stage / finish / fail) and
  :class:`BulkRunFolder`;
- :mod:`.provenance` — package versions, git commit and host of a run;
- :mod:`.checksums` — checksums of in-memory inputs (files use :func:`sha256_files`).

Files are written through :mod:`histoexpr.atomic` (unique temp name, fsync, ``os.replace``;
strict JSON).
"""

from __future__ import annotations

from ..atomic import write_json
from . import files
from .checksums import arrays_sha256, frame_sha256
from .folder import BulkRunFolder, RunFolder, sha256_files
from .provenance import provenance

__all__ = ["BulkRunFolder", "RunFolder", "arrays_sha256", "files", "frame_sha256",
           "provenance", "sha256_files", "write_json"]
