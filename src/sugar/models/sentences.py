"""Descriptions as whole sentences: what the recogniser is trained to say and what it shows."""

from __future__ import annotations

import re

# words a cut sentence must not end on: articles, possessives, conjunctions and prepositions that only lead into
# what was cut ("pulling it up onto [the shoulders]"); particles that end sentences ("up", "down", "off") are not here
_DANGLING = {"a", "against", "an", "and", "are", "as", "at", "but", "by", "each", "every", "for", "from", "her",
             "his", "if", "in", "into", "is", "its", "of", "on", "onto", "or", "the", "their", "then", "these", "this",
             "those", "to", "toward", "towards", "until", "upon", "was", "were", "when", "which", "while", "with"}
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+")


def whole_sentence(text: str, cut: bool) -> str:
    """A generated description as whole sentences: when generation ran out of tokens (`cut`), everything after
    the last sentence end goes (or, with no sentence end, the last, possibly partial word); a final full stop is
    added where the text has none. The demo and the API show this text, so it must never stop mid-word."""
    text = original = " ".join(text.split())
    if not text:
        return text
    if cut:
        ends = [m.end() for m in _SENTENCE_END.finditer(text)]
        if ends:
            text = text[:ends[-1]]
        else:
            words = text.split(" ")
            words = words[:-1] if len(words) > 1 else words
            while len(words) > 1 and words[-1].lower().strip(",;:") in _DANGLING:
                words.pop()  # "raises one arm and" -> "raises one arm"
            text = " ".join(words)
    text = text.rstrip(" ,;:-") or original  # trimming never empties a description that had words
    return text if text[-1] in ".!?" else text + "."


def sentences(text: str) -> list[str]:
    """The text's sentences, whitespace normalised."""
    return [s for s in _SENTENCE_SPLIT.split(" ".join(text.split())) if s]
