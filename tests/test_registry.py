"""Registry: register with metadata, get, prefix entries (``folder:PATH``), did-you-mean, lazy loading."""

from __future__ import annotations

import pytest

from genbench._registry import Registry, UnknownNameError


def make() -> Registry:
    reg: Registry = Registry("widget")

    @reg.register("sprocket", colour="red")
    def sprocket():
        """Turns things.

        More text that is not the description.
        """

    @reg.register("gear", description="explicit description", teeth=12)
    def gear():
        """Ignored docstring."""

    reg.add("file:", lambda path: f"opened {path}", description="a prefix entry")
    return reg


def test_get_entries_and_meta():
    reg = make()
    assert reg.names() == ["file:", "gear", "sprocket"] and list(reg) == reg.names()
    e = reg.entry("sprocket")
    assert e.name == "sprocket" and e.meta == {"colour": "red"} and e.description == "Turns things."
    assert reg.entry("gear").description == "explicit description" and reg.entry("gear").meta == {"teeth": 12}
    assert reg.get("gear") is reg.entry("gear").obj and reg.get("gear").__name__ == "gear"
    assert [x.name for x in reg.entries()] == reg.names()
    # register returns the object unchanged (usable as a decorator)
    obj = object()
    assert reg.register("thing")(obj) is obj


def test_prefix_entries():
    reg = make()
    assert reg.entry("file:/tmp/x.npz").name == "file:"
    assert reg.get("file:/a:b")("/a:b") == "opened /a:b"  # only the first colon splits
    assert "file:anything" in reg and "gear" in reg and "nope" not in reg and "nope:x" not in reg
    with pytest.raises(UnknownNameError, match="Unknown widget 'gear:x'"):
        reg.entry("gear:x")  # a plain entry is not a prefix


def test_unknown_name_did_you_mean():
    reg = make()
    with pytest.raises(UnknownNameError) as e:
        reg.get("sprockte")
    assert str(e.value) == "Unknown widget 'sprockte'. Did you mean: sprocket? Available: file:, gear, sprocket"
    # a KeyError and a ValueError at once, with a plain (unquoted) message
    assert isinstance(e.value, KeyError) and isinstance(e.value, ValueError)
    with pytest.raises(UnknownNameError) as e:
        reg.get("zzzzzz")
    assert "Did you mean" not in str(e.value) and "Available: file:, gear, sprocket" in str(e.value)
    with pytest.raises(UnknownNameError, match="Did you mean: file:"):
        reg.get("fil:x")
    assert Registry("empty").unknown_message("x") == "Unknown empty 'x'. Available: "


def test_duplicate_names():
    reg = make()
    with pytest.raises(ValueError, match="widget 'gear' is already registered"):
        reg.add("gear", object())
    same = reg.get("gear")
    reg.add("gear", same, description="re-registering the same object is harmless (module reloads)")
    assert reg.get("gear") is same


def test_loader_runs_once_before_first_lookup():
    calls = []

    def loader():
        calls.append(1)
        reg.add("late", 42)

    reg: Registry = Registry("lazy", loader=loader)
    reg.add("early", 1)
    assert calls == []  # registering does not trigger loading
    assert reg.names() == ["early", "late"] and calls == [1]
    assert reg.get("late") == 42 and "late" in reg and calls == [1]
