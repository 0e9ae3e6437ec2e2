"""The package's error hierarchy.

Every error a user can cause by giving bad input is a :class:`HistoexprError`. The message
names the file (when there is one) and says what to do next; the CLI prints it on one line
and exits with status 2.
"""

from __future__ import annotations

__all__ = [
    "CoordinateError",
    "HistoexprError",
    "InputError",
    "MppMissingError",
    "OutputError",
    "SlideError",
    "TissueError",
    "UnknownNameError",
]


class HistoexprError(Exception):
    """Base class of every error histoexpr raises on purpose."""


class InputError(HistoexprError, ValueError):
    """An argument or input file is malformed."""


class OutputError(HistoexprError):
    """An output cannot be written (disk full, read-only or not writable folder)."""


class SlideError(HistoexprError):
    """A slide cannot be opened or read (missing, not a slide, truncated)."""


class MppMissingError(SlideError):
    """The slide carries no pixel size and none was given."""


class TissueError(HistoexprError):
    """No usable tissue was found on a slide."""


class CoordinateError(InputError):
    """Coordinates (spots, tiles) fall outside the image they refer to."""


class UnknownNameError(HistoexprError, KeyError):
    """A registry was asked for a name it does not hold."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""
