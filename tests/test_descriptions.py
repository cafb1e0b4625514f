"""Generated descriptions: whole sentences when the token budget cuts them, and the agreement measure."""

from __future__ import annotations

import numpy as np
import pytest

from sugar.errors import ConfigError
from sugar.evaluation.recognizer import description_agreement
from sugar.models.sentences import whole_sentence


@pytest.mark.parametrize(("text", "cut", "expected"), [
    ("The person bends down. Then lifts the obj", True, "The person bends down."),
    ("The person raises one arm and wav", True, "The person raises one arm."),
    ("A person pushes each arm into the sleeves and pulling it up onto the shou", True,
     "A person pushes each arm into the sleeves and pulling it up."),
    ("The person raises one arm", False, "The person raises one arm."),
    ("Sits down slowly!", False, "Sits down slowly!"),
    ("  lifts  the\nbox , ", False, "lifts the box."),
    ("", True, ""),
    ("word", True, "word."),
])
def test_whole_sentence(text: str, cut: bool, expected: str) -> None:
    assert whole_sentence(text, cut) == expected


def _encode(texts: list[str]) -> np.ndarray:
    """A bag-of-words encoder over a tiny vocabulary (unit rows)."""
    vocab = ["arm", "leg", "jump", "wave", "kick", "sit"]
    rows = np.array([[t.lower().count(w) for w in vocab] for t in texts], dtype=np.float64) + 1e-3
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_description_agreement_counts_descriptions_closest_to_their_label() -> None:
    actions = ["wave", "kick", "sit"]
    texts = {"wave": "wave an arm", "kick": "kick a leg", "sit": "sit down"}
    out = description_agreement(["waves the arm.", "kicks with the leg.", "waves an arm"], ["wave", "kick", "sit"],
                                actions, texts, _encode)
    assert out["samples"] == 3 and out["agreement"] == pytest.approx(2 / 3) and out["chance"] == pytest.approx(1 / 3)
    assert out["whole_sentences"] == pytest.approx(2 / 3)
    assert description_agreement([], [], actions, texts, _encode) == {"samples": 0}
    with pytest.raises(ConfigError):
        description_agreement(["x"], ["wave"], actions, {"wave": "w"}, _encode)
