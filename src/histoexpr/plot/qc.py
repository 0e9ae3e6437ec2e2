"""Tiling QC: the slide thumbnail with the tissue outline and every tile drawn on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["qc_image", "save_png"]

TISSUE_COLOUR = (0, 200, 0)
TILE_COLOUR = (20, 60, 255)


def qc_image(
    thumb: np.ndarray,
    *,
    scale: tuple[float, float],
    mask: np.ndarray | None = None,
    coords: np.ndarray | None = None,
    size0: float = 0.0,
) -> np.ndarray:
    """Draw the tissue outline and tile squares on a thumbnail.

    Parameters
    ----------
    thumb
        ``(h, w, 3)`` uint8 thumbnail of the whole slide.
    scale
        Level-0 pixels per thumbnail pixel, ``(sx, sy)``.
    mask
        Tissue mask of any size covering the whole slide (resized to the thumbnail).
    coords, size0
        Level-0 top-left corners ``(N, 2)`` and side of the tiles.

    Examples
    --------
    >>> out = qc_image(np.full((50, 50, 3), 255, np.uint8), scale=(10.0, 10.0),
    ...                coords=np.array([[100, 100]]), size0=100)
    >>> out[10, 15].tolist()
    [20, 60, 255]
    """
    from PIL import Image, ImageDraw
    from skimage.segmentation import find_boundaries

    img = thumb.copy()
    h, w = img.shape[:2]
    if mask is not None:
        m = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((w, h))) > 127
        img[find_boundaries(m, mode="thick")] = TISSUE_COLOUR
    pil = Image.fromarray(img)
    if coords is not None and len(coords):
        draw = ImageDraw.Draw(pil)
        sx, sy = scale
        for x, y in np.asarray(coords, np.float64):
            x0, y0 = x / sx, y / sy
            x1, y1 = (x + size0) / sx, (y + size0) / sy
            draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=TILE_COLOUR)
    return np.asarray(pil)


def save_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an RGB array as PNG atomically (temporary file, then rename)."""
    from PIL import Image

    from ..atomic import atomic_path

    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")
    return Path(path)
