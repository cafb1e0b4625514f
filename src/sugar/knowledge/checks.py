"""Checks on generated knowledge text, and the label template a class falls back on.

A small offline LLM (SmolLM2-135M) answers the few-shot motion prompt by copying the example, or by repeating
the same answer for several actions: on new datasets a third to a half of the classes got identical motion
text, which the text head cannot tell apart. These checks work on words (no model needed) so the generator can
reject such an answer, ask again, and as a last resort write a template built from the class name, which is
never another class's text.

- `copied_phrases`: how many of an answer's phrases of three or more words appear word for word in the few-shot
  examples. Two or more is a copy. Short phrases do not count: "remains stationary" for hip, leg and foot is a
  fair answer for many hand actions and is in the paper's own example; SmolLM2's patchworks of the kicking
  example ("looks down at the target", "strikes the object", with one part reworded) are caught.
- `same_motion`: two answers with five or six identical phrases, or whose word sequences are 90 % alike
  (difflib ratio), are the same text.
- `repeated_share`: SmolLM2 often loops ("their legs support their body, and their feet keep their stance, their
  legs support their body, ..."); a description whose word 3-grams are more than a quarter repeats says nothing.
- `other_actions_named`: a description that uses a word only another class's label has ("pick up with one hand"
  described as "A person walks to their destination ...", a word of "walk around") trains the skeleton towards
  the other class's text. [choice] The generator rejects such descriptions and, after its retries, falls back on
  the label template: a fair description that contrasts with another class ("unlike ...") is lost, but a wrong
  one never reaches the text head (the shipped MSR Action3D file, whose descriptions name other classes, trained
  a worse text head than label-only texts: docs/RESULTS.md, knowledge table).
- `mentions`: a description must name the action (any content word of the label, lightly stemmed, so
  "jogging" matches "jogs" and "Cleandishes" matches "cleans"); motion phrases need not (good motion
  knowledge describes the body, and the shipped files name the action in only 2 of 10 NW-UCLA motions).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from sugar.knowledge.schema import BODY_PARTS, Motion

MIN_DISTINCT_PHRASES = 3  # an answer with one phrase for four or more parts says nothing about the action
MAX_COPIED_PHRASES = 1  # of COPY_MIN_WORDS words or more
COPY_MIN_WORDS = 3
SAME_PARTS = 5
SAME_RATIO = 0.9
MAX_REPEATED_SHARE = 0.25  # of a description's word 3-grams

_STOP = {"a", "an", "the", "with", "one", "two", "of", "to", "up", "on", "in", "at", "out", "from", "and", "or",
         "something", "other", "person", "into", "off", "over", "its", "his", "her", "by", "for", "down", "self",
         "each", "someone", "using", "around"}
_BODY = {"head", "hand", "hands", "arm", "arms", "hip", "hips", "leg", "legs", "foot", "feet"}


def words(text: str) -> list[str]:
    """Lower-case words (letters and digits: "action 1" and "action 2" are different texts)."""
    return re.findall(r"[a-z0-9]+", text.lower())


def stem(word: str) -> str:
    """A light stemmer: drop one of -ing, -es, -ed, -s (keeping at least three letters) and a doubled last letter."""
    for suffix in ("ing", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if len(word) >= 4 and word[-1] == word[-2]:
        word = word[:-1]
    return word


def label_keywords(label: str) -> set[str]:
    """Stems of the label's content words: no stop words, and no body-part words unless nothing else is left."""
    found = [w for w in words(label) if len(w) >= 3 and w not in _STOP]
    content = [w for w in found if w not in _BODY] or found
    return {stem(w) for w in content}


def _match(a: str, b: str) -> bool:
    return a == b or (min(len(a), len(b)) >= 4 and (a.startswith(b) or b.startswith(a)))


def mentions(text: str, label: str) -> bool:
    """Does `text` name the action `label` (one of its content words, stemmed, prefixes of 4+ letters match)?"""
    keys = label_keywords(label)
    if not keys:
        return True
    stems = {stem(w) for w in words(text)}
    return any(_match(k, s) for k in keys for s in stems)


def repeated_share(text: str, n: int = 3) -> float:
    """The share of the text's word n-grams that already occurred earlier in it (0 for a text of < n words)."""
    w = words(text)
    grams = [tuple(w[i:i + n]) for i in range(len(w) - n + 1)]
    return (len(grams) - len(set(grams))) / len(grams) if grams else 0.0


def other_actions_named(text: str, label: str, others: Iterable[str]) -> list[str]:
    """The other labels whose distinctive words `text` uses: a content word of one label only ("walk" of "walk
    around"); words several labels share ("forward" of "forward punch" and "forward kick") describe, not name."""
    others = [o for o in others if o.lower() != label.lower()]
    keywords = {o: label_keywords(o) for o in [label, *others]}
    stems = {stem(w) for w in words(text)}
    named = []
    for other in others:
        keys = {k for k in keywords[other]
                if not any(_match(k, x) for o, ks in keywords.items() if o != other for x in ks)}
        if any(_match(k, s) for k in keys for s in stems):
            named.append(other)
    return named


def related(a: str, b: str) -> bool:
    """Do two action labels share a content word (then one is no fair few-shot example for the other)?"""
    return any(_match(x, y) for x in label_keywords(a) for y in label_keywords(b)) or a.lower() == b.lower()


def _phrase(text: str) -> str:
    return " ".join(words(text))


def phrases(motion: Motion) -> list[str]:
    """The six phrases, normalised to lower-case words."""
    return [_phrase(getattr(motion, p)) for p in BODY_PARTS]


def copied_phrases(motion: Motion, examples: list[Motion], min_words: int = COPY_MIN_WORDS) -> int:
    """How many of the phrases of `min_words` words or more appear word for word among the examples' phrases."""
    pool = {ph for ex in examples for ph in phrases(ex)}
    return sum(ph in pool and len(ph.split()) >= min_words for ph in phrases(motion))


def distinct_phrases(motion: Motion) -> int:
    return len(set(phrases(motion)))


def same_motion(a: Motion, b: Motion) -> bool:
    """Near-identical motion texts: five or six identical phrases, or 90 % alike word by word."""
    pa, pb = phrases(a), phrases(b)
    if sum(x == y for x, y in zip(pa, pb, strict=True)) >= SAME_PARTS:
        return True
    return difflib.SequenceMatcher(None, " ".join(pa).split(), " ".join(pb).split()).ratio() >= SAME_RATIO


def same_description(a: str, b: str) -> bool:
    """90 % alike word by word (against a fixed example text; across classes, whose descriptions name different
    actions, only identical texts count: "...thumb pointing up." and "...down." differ in one word on purpose)."""
    return difflib.SequenceMatcher(None, words(a), words(b)).ratio() >= SAME_RATIO


def template_motion(label: str) -> Motion:
    """Motion text made from the class name alone: every part names the action, so no two classes share it,
    and it carries what the label carries, nothing false. A file where most classes have it is embedded as the
    class names alone (`sugar.models.text.names_only`): the shared template wording cost the text head."""
    return Motion(head=f"turns as the action '{label}' needs", hand=f"does what '{label}' needs",
                  arm=f"moves the hand through '{label}'", hip=f"keeps the body balanced during '{label}'",
                  leg=f"supports the body during '{label}'", foot=f"keeps the stance '{label}' needs")


def template_description(label: str) -> str:
    return f"A person performs the action '{label}'."
