"""The one way every figure of this package is made: a matplotlib Figure on its own Agg
canvas, built with the object-oriented API, never ``pyplot`` (no global state, no GUI backend,
safe in threads and on headless machines). matplotlib is imported inside the function, so
importing this module is cheap.

Examples
--------
>>> fig = new_figure((3, 2), layout="constrained")
>>> ax = fig.add_subplot()
>>> type(fig.canvas).__name__
'FigureCanvasAgg'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["new_figure"]


def new_figure(figsize: tuple[float, float], **kwargs: Any) -> Figure:
    """A matplotlib Figure on its own Agg canvas (no pyplot, no global state, no GUI)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, **kwargs)
    FigureCanvasAgg(fig)
    return fig
