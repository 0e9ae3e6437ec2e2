"""Every Python name the README mentions exists: dotted names (``histoexpr.x.y``) and the
names its code blocks import (``from histoexpr.x import a, b``)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _text() -> str:
    # a dotted name may be wrapped after a dot ("histoexpr.features.\nspot_features")
    return re.sub(r"\.\s*\n\s*", ".", README.read_text())


def _dotted() -> list[str]:
    names = re.findall(r"\bhistoexpr(?:\.[A-Za-z_][A-Za-z0-9_]*)+", _text())
    return sorted(set(names))


def _imported() -> list[str]:
    out = []
    for mod, names in re.findall(r"^\s*from (histoexpr[\w.]*) import ([\w, ]+)$", _text(),
                                 flags=re.M):
        out += [f"{mod}.{n.strip()}" for n in names.split(",") if n.strip()]
    return sorted(set(out))


def resolve(name: str) -> object:
    """Import the longest module prefix of ``name``, then getattr the rest."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(name)


def test_the_readme_mentions_names():
    assert len(_dotted()) > 10 and _imported()


@pytest.mark.parametrize("name", _dotted() + _imported())
def test_every_name_the_readme_mentions_exists(name):
    try:
        resolve(name)
    except (ImportError, AttributeError) as e:
        pytest.fail(f"README.md mentions {name}, which does not exist ({e})")
