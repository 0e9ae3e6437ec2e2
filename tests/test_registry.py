from __future__ import annotations

import pytest

from histoexpr.errors import UnknownNameError
from histoexpr.registry import Registry


def test_register_create_and_priority_order():
    r = Registry("thing")
    r.register("b", lambda: "B")
    r.register("a", lambda: "A", priority=5)

    @r.register("c")
    def c(x=1):
        return x * 2

    assert r.list() == ["a", "b", "c"]
    assert r.create("C", x=4) == 8  # names are case-insensitive
    assert "a" in r and "z" not in r and len(r) == 3


def test_unknown_name_lists_valid_ones():
    r = Registry("stain normaliser")
    r.register("macenko", object)
    with pytest.raises(UnknownNameError, match=r"unknown stain normaliser 'x'.*macenko"):
        r.get("x")


def test_duplicate_registration_is_refused():
    r = Registry("thing")
    r.register("a", int)
    with pytest.raises(ValueError, match="already registered"):
        r.register("a", float)
