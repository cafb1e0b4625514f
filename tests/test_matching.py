"""Generate mode: matching a free-text answer to the action list."""

from __future__ import annotations

from sugar.models.matching import match_label, normalise

ACTIONS = ["pick up with one hand", "pick up with two hands", "sit down", "stand up", "throw"]


def test_exact() -> None:
    m = match_label("pick up with two hands. Both arms reach down.", ACTIONS)
    assert (m.label, m.match, m.description) == ("pick up with two hands", "exact", "Both arms reach down.")
    assert match_label("throw", ACTIONS).match == "exact"


def test_exact_needs_a_word_boundary() -> None:
    m = match_label("throwing a ball.", ACTIONS)
    assert m.match != "exact"


def test_normalised() -> None:
    m = match_label("Sit-Down. The person lowers the hips.", ACTIONS)
    assert (m.label, m.match, m.description) == ("sit down", "normalised", "The person lowers the hips.")
    assert normalise("  Pick UP, with one-hand!") == "pick up with one hand"


def test_fuzzy() -> None:
    m = match_label("pick up with on hand. Bends over.", ACTIONS)
    assert (m.label, m.match) == ("pick up with one hand", "fuzzy")
    assert 80 <= m.similarity < 100


def test_none() -> None:
    m = match_label("dance wildly. Arms everywhere.", ACTIONS)
    assert (m.label, m.match) == (None, "none")
    assert m.description == "dance wildly. Arms everywhere."
    assert match_label("", ACTIONS).match == "none"
