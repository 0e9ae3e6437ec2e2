"""A folder of tiles whose file names carry their level-0 position, read as one slide.

This is how tiles cut from TCGA diagnostic slides are often shared, e.g.
``TCGA-A2-A04R-01Z-00-DX1.BE36... [x=15680,y=39200,w=224,h=224].png``. The slide's extent is
the union of the tiles; areas without a tile read as white.

A tile that cannot be read (cut short, empty, not an image) is skipped, not fatal: it is
named in one warning when the folder is opened, and its area reads as white (background),
like an area without a tile, so ``histoexpr tile`` places no tile there and ``embed`` and
the thumbnails agree. Only a folder in which no tile can be read is an error.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from pathlib import Path

import numpy as np

from ..errors import HistoexprError, SlideError
from .base import Slide, resize_rgb, resolve_mpp
from .integrity import check_complete

logger = logging.getLogger(__name__)

__all__ = ["TILE_NAME", "TileFolderSlide", "parse_tile_name"]

TILE_NAME = re.compile(
    r"^(?P<slide>.*?)\s*\[x=(?P<x>\d+),\s*y=(?P<y>\d+),\s*w=(?P<w>\d+),\s*h=(?P<h>\d+)\]"
    r"\.(?:png|jpe?g|tiff?)$",
    re.IGNORECASE,
)
#: virtual levels: level k is 4**k smaller, until the longer side fits in this many pixels
MIN_LEVEL_SIDE = 2048
#: skipped tiles named in the warning (the rest are counted)
N_NAMED = 3


def parse_tile_name(name: str) -> tuple[str, int, int, int, int] | None:
    """``(slide_id, x, y, w, h)`` from a tile file name, or ``None`` when it has no position."""
    m = TILE_NAME.match(name)
    if not m:
        return None
    return m["slide"], int(m["x"]), int(m["y"]), int(m["w"]), int(m["h"])


def _unreadable(path: Path) -> str:
    """Why a tile file cannot be used (``""`` when its header reads and it is complete);
    only the end of the file and its header are read, not the pixels."""
    from PIL import Image

    try:
        check_complete(path)
        with Image.open(path) as im:
            im.size  # noqa: B018 - parsing the header is the check
    except HistoexprError as e:
        why = str(e).removeprefix(f"{path}: ").split("; ")[0]
        return why.replace("the file is incomplete (truncated: ", "incomplete: ", 1).rstrip(")") \
            if "(truncated: " in why else why
    except (OSError, SyntaxError, ValueError) as e:
        return str(e).removeprefix(f"{path}: ") or type(e).__name__
    return ""


class TileFolderSlide(Slide):
    """Tiles named ``<slide id> [x=..,y=..,w=..,h=..].png`` in one folder, as one slide."""

    reader = "tilefolder"

    def __init__(self, path: str | Path, *, mpp: float | None = None) -> None:
        path = Path(path)
        rows = [(p, parse_tile_name(p.name)) for p in sorted(path.iterdir()) if p.is_file()]
        rows = [(p, t) for p, t in rows if t is not None]
        if not rows:
            raise SlideError(
                f"{path}: no tiles named '<slide> [x=..,y=..,w=..,h=..].png' in this folder"
            )
        ids = sorted({t[0] for _, t in rows})
        if len(ids) > 1:
            raise SlideError(
                f"{path}: holds tiles of {len(ids)} slides ({', '.join(ids[:3])}...); "
                "put each slide's tiles in a folder of its own"
            )
        self.slide_id = ids[0]
        # the extent comes from every named tile, so fixing a bad one later moves nothing
        all_boxes = np.array([t[1:] for _, t in rows], np.int64)  # x, y, w, h
        w0 = int((all_boxes[:, 0] + all_boxes[:, 2]).max())
        h0 = int((all_boxes[:, 1] + all_boxes[:, 3]).max())
        bad = {i: why for i, (p, _) in enumerate(rows) if (why := _unreadable(p))}
        if len(bad) == len(rows):
            p0, why0 = rows[min(bad)][0], bad[min(bad)]
            raise SlideError(
                f"{path}: none of its {len(rows)} tiles can be read (e.g. {p0.name}: {why0}); "
                "copy the tiles again"
            )
        self.skipped: dict[str, str] = {rows[i][0].name: why for i, why in bad.items()}
        if bad:
            named = "; ".join(f"{n} ({w})" for n, w in list(self.skipped.items())[:N_NAMED])
            more = f" and {len(bad) - N_NAMED} more" if len(bad) > N_NAMED else ""
            logger.warning(
                "%s: skipping %d of %d tiles that cannot be read: %s%s; their area reads as "
                "background (copy them again to use them)", path, len(bad), len(rows), named, more,
            )
        keep = [i for i in range(len(rows)) if i not in bad]
        self._files = [rows[i][0] for i in keep]
        self._boxes = all_boxes[keep]
        dims = [(w0, h0)]
        while max(dims[-1]) > MIN_LEVEL_SIDE:
            ds = 4 ** len(dims)
            dims.append((max(1, w0 // ds), max(1, h0 // ds)))
        self._dims = tuple(dims)
        super().__init__(path, mpp=resolve_mpp(None, mpp, path))

    @staticmethod
    def can_open(path: Path) -> bool:
        return path.is_dir() and any(parse_tile_name(p.name) for p in path.iterdir())

    @property
    def name(self) -> str:
        return self.slide_id

    @property
    def vendor(self) -> str:
        return "tile-folder"

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return self._dims

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return tuple(float(4**k) for k in range(len(self._dims)))

    @property
    def n_tiles(self) -> int:
        return len(self._files)

    @property
    def tile_boxes(self) -> np.ndarray:
        """``(N, 4)`` level-0 ``x, y, w, h`` of every tile in the folder."""
        return self._boxes.copy()

    @functools.lru_cache(maxsize=256)  # noqa: B019 - per-instance cache of decoded tiles
    def _tile(self, i: int) -> np.ndarray | None:
        """Tile ``i``'s pixels, or ``None`` (logged once) when it cannot be decoded."""
        from PIL import Image

        f = self._files[i]
        try:
            with Image.open(f) as im:
                return np.asarray(im.convert("RGB"))
        except (OSError, SyntaxError, ValueError) as e:
            if f.name not in self.skipped:
                self.skipped[f.name] = str(e)
                logger.warning("%s: cannot decode this tile (%s); its area reads as "
                               "background (copy it again to use it)", f, e)
            return None

    def _read(self, x: int, y: int, w: int, h: int, level: int) -> np.ndarray:
        ds = self.level_downsamples[level]
        out = np.full((h, w, 3), 255, np.uint8)
        x1, y1 = x + w * ds, y + h * ds  # level-0 extent of the request
        b = self._boxes
        hit = np.nonzero(
            (b[:, 0] < x1) & (b[:, 0] + b[:, 2] > x) & (b[:, 1] < y1) & (b[:, 1] + b[:, 3] > y)
        )[0]
        for i in hit:
            tx, ty, tw, th = (int(v) for v in b[i])
            tile = self._tile(int(i))
            if tile is None:
                continue
            if ds != 1:
                sw, sh = max(1, round(tw / ds)), max(1, round(th / ds))
                tile = resize_rgb(tile, (sw, sh))
            # tile origin in output pixels
            ox, oy = round((tx - x) / ds), round((ty - y) / ds)
            sy0, sx0 = max(0, -oy), max(0, -ox)
            dy0, dx0 = max(0, oy), max(0, ox)
            hh = min(tile.shape[0] - sy0, h - dy0)
            ww = min(tile.shape[1] - sx0, w - dx0)
            if hh > 0 and ww > 0:
                out[dy0 : dy0 + hh, dx0 : dx0 + ww] = tile[sy0 : sy0 + hh, sx0 : sx0 + ww]
        return out

    def checksum(self) -> str:
        """SHA-256 over the tile names and sizes (a folder has no single file to hash)."""
        h = hashlib.sha256()
        for p in self._files:
            h.update(f"{p.name}\0{p.stat().st_size}\n".encode())
        return h.hexdigest()
