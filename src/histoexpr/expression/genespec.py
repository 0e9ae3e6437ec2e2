"""One grammar for choosing genes, and messages that say what a token is not.

``--genes`` takes one of:

- ``topN``: the N genes of highest mean expression on the training spots (seed 003, §2.2);
- ``hvgN``: the N most variable genes (Seurat-style dispersion) on the training spots;
- a built-in panel name (``pam50``, ``hist2rna138``, ``gastric4``; see
  :func:`~histoexpr.expression.panels.list_panels`);
- a file with one gene per line (or a CSV/TSV with a gene column);
- ``all``: every gene of the data;
- a comma-separated list of genes (one gene alone is a list of one).

A data-driven choice (``topN``, ``hvgN``) happens on training samples only; a panel, file
or list is checked against the data by :meth:`GeneRequest.resolve` before a run starts: a
gene the counts hold but a filter removed is named with the filter, and a token that is
none of the forms above is told so. Genes of a panel or a file that the data lack are
named (log and run record) and the rest are fitted, unless fewer than half are present or
``strict``; genes listed by name must all be present.

Examples
--------
>>> GeneRequest.parse("top250").kind, GeneRequest.parse("hvg50").n
('top_mean', 50)
>>> r = GeneRequest.parse("pam50"); r.kind, len(r.genes)
('panel', 50)
>>> GeneRequest.parse("ERBB2,GRB7").genes
('ERBB2', 'GRB7')
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["FORMS", "GeneChoice", "GeneRequest"]

#: what ``--genes`` accepts, for messages
FORMS = ("a form like top250 (highest mean) or hvg50 (most variable), a built-in panel "
         "({panels}), a file with one gene per line, or a comma list of genes such as "
         "ERBB2,GRB7")


def _forms() -> str:
    from .panels import list_panels

    return FORMS.format(panels=", ".join(list_panels()))


@dataclass(frozen=True)
class GeneRequest:
    """A parsed ``--genes`` value.

    Attributes
    ----------
    spec
        The value as given.
    kind
        ``"top_mean"``, ``"hvg"``, ``"all"``, ``"panel"``, ``"file"`` or ``"list"``.
    n
        The number of genes asked for.
    genes
        The named genes (``None`` for ``top_mean`` / ``hvg``).
    """

    spec: str
    kind: str
    n: int
    genes: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, spec: str) -> GeneRequest:
        """Read ``spec`` (see the module docstring); raises :class:`InputError` for a value
        that cannot be any of the forms (empty, ``top0``, a missing file path)."""
        from .panels import PANELS, load_panel

        s = str(spec).strip()
        if s.lower() == "all":
            return cls(s, "all", 0)
        for prefix, kind in (("top", "top_mean"), ("hvg", "hvg")):
            if s.lower().startswith(prefix) and s[len(prefix):].isdigit():
                n = int(s[len(prefix):])
                if n < 1:
                    raise InputError(f"--genes {s}: the number of genes must be at least 1")
                return cls(s, kind, n)
        p = Path(s)
        if s.lower() in PANELS and not p.is_file():
            genes = tuple(load_panel(s.lower()))
            return cls(s, "panel", len(genes), genes)
        if p.is_file():
            genes = tuple(load_panel(p))
            return cls(s, "file", len(genes), genes)
        if "/" in s or p.suffix.lower() in (".txt", ".csv", ".tsv"):
            raise InputError(f"--genes {s}: no such gene list file; give an existing file, "
                             f"or {_forms()}")
        names = tuple(dict.fromkeys(g.strip() for g in s.split(",") if g.strip()))
        if not names:
            raise InputError(f"--genes {s!r}: empty; give {_forms()}")
        return cls(s, "list", len(names), names)

    @property
    def data_driven(self) -> bool:
        """Whether the genes are chosen from the data, on training samples only."""
        return self.kind in ("top_mean", "hvg")

    def check(self, var_names: Sequence[str], removed: Mapping[str, str] | None = None,
              *, strict: bool = False) -> list[str]:
        """The genes of :meth:`resolve`."""
        return self.resolve(var_names, removed, strict=strict).genes

    def resolve(self, var_names: Sequence[str], removed: Mapping[str, str] | None = None,
                *, strict: bool = False) -> GeneChoice:
        """The requested genes present in ``var_names`` (all of them for ``all`` and a
        data-driven request, which chooses later, on training samples); a missing gene is
        explained.

        Parameters
        ----------
        var_names
            The genes left after the readers and filters.
        removed
            Genes the counts held but a filter removed -> which filter, e.g.
            ``{"KRT5": "no counts in the 620 spots kept after the spot filters"}``.
        strict
            A panel's or a file's missing genes are an error too.

        Raises
        ------
        InputError
            A gene of a comma list is missing (a list names exactly what the user wants);
            fewer than half the genes of a panel or file are present, or any is missing
            with ``strict``. Otherwise missing genes of a panel or a file are a warning.
        """
        from .panels import PANEL_ALIASES

        have = {str(g) for g in var_names}
        if self.genes is None:
            return GeneChoice(self, [str(g) for g in var_names])
        removed = removed or {}
        present: list[str] = []
        absent: list[str] = []
        gone: dict[str, str] = {}  # in the counts, removed by a filter -> which filter
        for g in self.genes:
            alias = PANEL_ALIASES.get(g) or next(
                (old for old, new in PANEL_ALIASES.items() if new == g), None)
            hit = g if g in have else alias if alias in have else None
            if hit is not None:
                present.append(hit)
            elif g in removed or (alias is not None and alias in removed):
                gone[g] = removed.get(g) or removed[alias]
            else:
                absent.append(g)
        present = list(dict.fromkeys(present))
        if not gone and not absent:
            return GeneChoice(self, present)
        what = f"--genes {self.spec}"
        if self.kind == "list" and len(self.genes) == 1 and absent:
            raise InputError(f"{what}: {self.genes[0]!r} is not a gene in the data; give "
                             f"{_forms()}{_did_you_mean(absent, have)}")
        parts = []
        if gone:
            shown = "; ".join(f"{g} ({why})" for g, why in list(gone.items())[:5])
            parts.append(f"{len(gone)} in the counts but removed by a filter: "
                         f"{shown}{' ...' if len(gone) > 5 else ''}")
        if absent:
            parts.append(f"{len(absent)} not in the data (e.g. {', '.join(absent[:5])})"
                         f"{_did_you_mean(absent, have)}")
        msg = (f"{what}: {len(gone) + len(absent)} of {len(self.genes)} requested genes "
               f"cannot be modelled: {'; '.join(parts)}")
        if self.kind == "list" or strict or 2 * len(present) < len(self.genes):
            todo = []
            if absent:
                example = ", ".join(sorted(have)[:3])
                todo.append(f"check the symbols (the data's genes look like {example}) or "
                            "drop them")
            if gone:
                todo.append("lower the filter that removed them")
            if self.kind != "list":
                todo.append("(--strict-genes asks for every one)" if strict else
                            f"(a panel needs at least half its genes; {len(present)} present)")
            raise InputError(f"{msg}; {', or '.join(todo)}")
        logger.warning("%s; going on with the other %d (--strict-genes makes this an error)",
                       msg, len(present))
        return GeneChoice(self, present, absent + list(gone), gone)


@dataclass(frozen=True)
class GeneChoice:
    """What :meth:`GeneRequest.resolve` found: the genes to fit, and the requested genes the
    data lack (``removed``: those a filter removed, with the filter)."""

    request: GeneRequest
    genes: list[str]
    missing: list[str] = field(default_factory=list)
    removed: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """For a run record (``data.json``)."""
        return {"spec": self.request.spec, "kind": self.request.kind,
                "n_requested": self.request.n or None, "n_present": len(self.genes),
                "missing": self.missing, "removed_by_filter": self.removed}


def _did_you_mean(absent: Sequence[str], have: set[str]) -> str:
    """`` (did you mean ERBB2?)`` for symbols that differ only in case."""
    upper = {g.upper(): g for g in have}
    hits = [upper[g.upper()] for g in absent if g.upper() in upper]
    return f" (did you mean {', '.join(hits[:5])}?)" if hits else ""
