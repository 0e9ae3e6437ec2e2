"""What a result was computed with: package versions, the source's git commit, the machine.

Recorded in every run's ``run.json`` (``"provenance"``) so that a result can be traced to
the code and libraries that made it.

Examples
--------
>>> p = provenance()
>>> sorted(p)[:4]
['git', 'host', 'packages', 'platform']
>>> "numpy" in p["packages"]
True
"""

from __future__ import annotations

import functools
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["PACKAGES", "git_commit", "package_versions", "provenance"]

#: the libraries whose versions can change a result
PACKAGES = ("histoexpr", "numpy", "scipy", "pandas", "scikit-learn", "scikit-image",
            "torch", "torchvision", "timm", "anndata", "h5py", "pillow", "tifffile",
            "openslide-python", "tiffslide", "statsmodels", "lifelines", "dask")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (``None`` when it is not installed)."""
    out: dict[str, str | None] = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


@functools.lru_cache(maxsize=1)
def git_commit() -> dict[str, Any] | None:
    """The commit of the histoexpr source when it runs from a git checkout (``commit``,
    ``dirty``: uncommitted changes present); ``None`` for an installed wheel or no git."""
    src = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "dirty": bool(dirty.strip())} if head else None


def provenance() -> dict[str, Any]:
    """Package versions, git commit, Python, platform and host of this process."""
    return {"packages": package_versions(), "git": git_commit(),
            "python": platform.python_version(), "platform": platform.platform(),
            "host": socket.gethostname()}
