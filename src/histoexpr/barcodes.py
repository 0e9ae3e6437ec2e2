"""TCGA barcodes: parse slide names, tile names and expression ids down to patient and sample.

A TCGA barcode names a patient and, level by level, what was taken from them::

    TCGA-A2-A04R-01A-11R-A41B-07      aliquot: sample 01 (primary tumour), vial A, portion 11,
    │    │  │    │ │ │ │  │    └ centre           analyte R (RNA), plate A41B, centre 07
    │    │  │    │ │ │ └ analyte
    │    │  │    │ │ └ portion
    │    │  │    │ └ vial
    │    │  │    └ sample type (01-09 tumour, 10-19 normal, 20-29 control)
    │    │  └ participant
    │    └ tissue source site (TSS)
    └ project
    TCGA-A2-A04R-01Z-00-DX1           slide: portion 00, section DX1 (diagnostic, FFPE);
                                      frozen sections are TS (top), BS (bottom), MS (middle)

Slide files from the GDC carry a UUID after a dot (``TCGA-...-DX1.BE3661A3-....svs``) and tile
files add the tile box (``TCGA-...-DX1.BE36... [x=15680,y=39200,w=224,h=224].png``); both parse
to the barcode in front. Everything here is a pure function of a string.

Examples
--------
>>> b = parse_barcode("TCGA-A2-A04R-01Z-00-DX1.BE3661A3-A2A0-4248-B7D5-D8986E529B6C.svs")
>>> b.patient, b.sample, b.is_tumour, b.is_diagnostic_slide
('TCGA-A2-A04R', 'TCGA-A2-A04R-01Z', True, True)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

from .errors import InputError

__all__ = ["Barcode", "parse_barcode", "patient_id", "try_parse_barcode"]

_BARCODE = re.compile(
    r"""
    (?P<project>TCGA)-(?P<tss>[A-Z0-9]{2})-(?P<participant>[A-Z0-9]{4})
    (?:-(?P<sample_type>\d{2})(?P<vial>[A-Z])?
      (?:-(?P<portion>\d{2})
        (?:
          (?P<analyte>[A-Z])(?:-(?P<plate>[A-Z0-9]{4})(?:-(?P<centre>[A-Z0-9]{2}))?)?
        | -(?P<slide>(?:DX|TS|BS|MS)[A-Z0-9]*)
        )?
      )?
    )?
    (?=$|[.\s_\[])   # the barcode ends here: end, UUID dot, tile box, or an underscore suffix
    """,
    re.VERBOSE,
)

_LOOKS_LIKE = (
    "a TCGA barcode looks like TCGA-A2-A04R (patient), TCGA-A2-A04R-01A-11R-A41B-07 (sample/"
    "aliquot) or TCGA-A2-A04R-01Z-00-DX1 (slide), optionally followed by '.<UUID>.svs' or a "
    "tile box ' [x=..,y=..,w=..,h=..].png'"
)


@dataclass(frozen=True)
class Barcode:
    """The fields of a TCGA barcode; levels the name does not reach are ``None``.

    Examples
    --------
    >>> b = parse_barcode("TCGA-3C-AAAU-11A-11R-A41B-07")
    >>> b.sample_type, b.is_normal, b.analyte, str(b)
    (11, True, 'R', 'TCGA-3C-AAAU-11A-11R-A41B-07')
    """

    project: str
    tss: str
    participant: str
    sample_type: int | None = None
    vial: str | None = None
    portion: str | None = None
    analyte: str | None = None
    plate: str | None = None
    centre: str | None = None
    slide: str | None = None

    @property
    def patient(self) -> str:
        """The patient (case) barcode, e.g. ``TCGA-A2-A04R``."""
        return f"{self.project}-{self.tss}-{self.participant}"

    @property
    def sample(self) -> str | None:
        """The sample barcode, e.g. ``TCGA-A2-A04R-01A`` (no vial letter if the name has
        none)."""
        if self.sample_type is None:
            return None
        return f"{self.patient}-{self.sample_type:02d}{self.vial or ''}"

    @property
    def is_tumour(self) -> bool:
        """Sample type 01-09 (primary, recurrent, metastatic, ...); ``False`` if unknown."""
        return self.sample_type is not None and 1 <= self.sample_type <= 9

    @property
    def is_normal(self) -> bool:
        """Sample type 10-19 (blood, solid tissue, buccal normal, ...); ``False`` if unknown."""
        return self.sample_type is not None and 10 <= self.sample_type <= 19

    @property
    def is_diagnostic_slide(self) -> bool:
        """The slide section is ``DX<n>`` (a formalin-fixed diagnostic slide)."""
        return self.slide is not None and self.slide.startswith("DX")

    @property
    def dx_number(self) -> int | None:
        """``n`` of a ``DX<n>`` section (``None`` for frozen sections or non-slides)."""
        if not self.is_diagnostic_slide:
            return None
        digits = self.slide[2:]  # type: ignore[index]
        return int(digits) if digits.isdigit() else None

    def __str__(self) -> str:
        parts = [self.patient]
        if self.sample is not None:
            parts.append(self.sample.rsplit("-", 1)[1])
            if self.portion is not None:
                parts.append(self.portion + (self.analyte or ""))
                if self.slide is not None:
                    parts.append(self.slide)
                elif self.plate is not None:
                    parts.append(self.plate)
                    if self.centre is not None:
                        parts.append(self.centre)
        return "-".join(parts)


def _basename(name: object) -> str:
    """The last path component of ``name`` (``/`` or ``\\`` separated), stripped."""
    text = str(name).strip()
    if isinstance(name, PurePath):
        text = name.name
    return re.split(r"[\\/]", text)[-1].strip()


def try_parse_barcode(name: object) -> Barcode | None:
    """Parse a TCGA barcode at the start of a file or id name; ``None`` if it is not one.

    Parameters
    ----------
    name
        A barcode, a slide or tile file name, or a path to one (only the last component is
        read). Case does not matter; the fields come back upper case.

    Returns
    -------
    Barcode or None

    Examples
    --------
    >>> try_parse_barcode("tcga-3c-aaau").patient
    'TCGA-3C-AAAU'
    >>> try_parse_barcode("slide_0001.svs") is None
    True
    """
    m = _BARCODE.match(_basename(name).upper())
    if m is None:
        return None
    g = m.groupdict()
    st = g.pop("sample_type")
    return Barcode(sample_type=None if st is None else int(st), **g)


def parse_barcode(name: object) -> Barcode:
    """Parse a TCGA barcode at the start of a file or id name.

    Parameters
    ----------
    name
        A barcode (patient, sample, aliquot or slide level), a slide file name with its UUID
        suffix, a tile file name, or a path to one.

    Returns
    -------
    Barcode

    Raises
    ------
    InputError
        ``name`` does not start with a TCGA barcode; the message shows what one looks like.

    Examples
    --------
    >>> b = parse_barcode("TCGA-E2-A15K-01Z-00-DX1.9F424BE2 [x=16800,y=20160,w=224,h=224].png")
    >>> str(b), b.dx_number
    ('TCGA-E2-A15K-01Z-00-DX1', 1)
    """
    b = try_parse_barcode(name)
    if b is None:
        raise InputError(
            f"{_basename(name)!r} is not a TCGA barcode: {_LOOKS_LIKE}. For other cohorts, "
            "map slides to patients with a manifest (columns slide, patient)."
        )
    return b


def patient_id(name: object) -> str:
    """The patient barcode (e.g. ``TCGA-A2-A04R``) of any TCGA name (raises InputError otherwise).

    Examples
    --------
    >>> patient_id("TCGA-A2-A04R-01Z-00-DX1.BE3661A3-A2A0-4248-B7D5-D8986E529B6C.svs")
    'TCGA-A2-A04R'
    """
    return parse_barcode(name).patient
