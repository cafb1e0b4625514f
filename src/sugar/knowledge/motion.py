"""Motion knowledge T_m (PAPER.md "Stage 1"): an LLM splits each action into six body-part movements,
from the paper's few-shot prompt; a second prompt writes the one-or-two sentence description.

Answers are parsed strictly enough that garbage is never written (all six parts, each a short phrase)
and loosely enough to accept the usual shapes ("head: ...", "- **Head**: ...", "head tilts ...;").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from sugar.knowledge.chat import ChatClient, Message, ParseError, Sampling, run_bounded
from sugar.knowledge.schema import BODY_PARTS, ClassKnowledge, Knowledge, Motion

# The paper's example (drink water) plus two more, so that small local models see the exact format.
FEW_SHOT: tuple[tuple[str, dict[str, str]], ...] = (
    ("drink water", {"head": "tilts back slightly", "hand": "grasps cup", "arm": "lifts cup to mouth",
                     "hip": "remains stationary", "leg": "remains stationary", "foot": "remains stationary"}),
    ("sit down", {"head": "stays level, facing forward", "hand": "rests on the thighs or the chair",
                  "arm": "reaches back slightly for balance", "hip": "bends and lowers onto the seat",
                  "leg": "bends at the knees", "foot": "stays planted on the floor"}),
    ("kicking something", {"head": "looks down at the target", "hand": "swings slightly for balance",
                           "arm": "moves out to the side for balance", "hip": "rotates toward the kick",
                           "leg": "swings forward from the hip and straightens", "foot": "strikes the object"}),
)

SYSTEM_MOTION = ("You describe how each body part moves during a human action. Answer with exactly six lines, "
                 "one per body part, in the form 'part: movement' for head, hand, arm, hip, leg and foot, "
                 "and nothing else.")


def _format_parts(parts: dict[str, str]) -> str:
    return "\n".join(f"{p}: {parts[p]}" for p in BODY_PARTS)


def _question(action: str) -> str:
    return (f"Describe the following body part movements when '{action}': head, hand, arm, hip, leg, foot. "
            "Answer in the format 'head: ...' on six lines.")


def motion_messages(action: str) -> list[Message]:
    """The paper's few-shot prompt: examples as earlier turns, then the action asked about."""
    intro = "Below are some examples of how the body parts move during an action.\n\n" + "\n".join(
        f"Example: A action of {{{name}}}: " + "; ".join(f"{p} {parts[p]}" for p in BODY_PARTS) + "."
        for name, parts in FEW_SHOT
    )
    messages: list[Message] = [{"role": "system", "content": SYSTEM_MOTION}]
    for i, (name, parts) in enumerate(FEW_SHOT):
        question = _question(name)
        messages.append({"role": "user", "content": f"{intro}\n\n{question}" if i == 0 else question})
        messages.append({"role": "assistant", "content": _format_parts(parts)})
    messages.append({"role": "user", "content": _question(action)})
    return messages


_PART_ALIASES = {"head": "head", "face": "head", "hand": "hand", "hands": "hand", "arm": "arm", "arms": "arm",
                 "hip": "hip", "hips": "hip", "leg": "leg", "legs": "leg", "foot": "foot", "feet": "foot"}
_PART_RE = re.compile(r"^(?:the\s+|his\s+|her\s+|their\s+|both\s+|one\s+)?"
                      r"(head|face|hands?|arms?|hips?|legs?|foot|feet)\b"
                      r"\s*(?:\(s\))?\s*(?:[:=\-–—]\s*|\s+)(.*)$", re.IGNORECASE)
_BULLET_RE = re.compile(r"^\s*(?:[-*•·]+|\d+[.)]|\(\w\))\s*")
_LEADING_SUBJECT = re.compile(r"^(?:the|his|her|their)\s+(?:head|face|hands?|arms?|hips?|legs?|foot|feet)\s+",
                              re.IGNORECASE)
MAX_PHRASE_WORDS = 30


def _clean_phrase(text: str) -> str:
    text = text.replace("**", "").replace("__", "").strip().strip("\"'`").strip()
    text = _LEADING_SUBJECT.sub("", text)
    text = re.sub(r"\s+", " ", text).strip(" .;,")
    return text


def parse_motion(text: str, action: str | None = None) -> Motion:
    """Six body-part phrases from an answer; ParseError naming what is missing or unusable. With `action`,
    an answer that copies a few-shot example of another action word for word is rejected too."""
    found: dict[str, str] = {}
    pending: str | None = None  # a "Head:" line with its phrase on the next line
    segments: list[str] = []
    for line in text.replace("\r", "").split("\n"):
        segments.extend(s for s in re.split(r";", line))
        segments.append("\n")  # line break marker
    for raw in segments:
        if raw == "\n":
            continue
        seg = _BULLET_RE.sub("", raw.replace("**", "").replace("__", "")).strip()
        if not seg:
            continue
        # "A action of {kick}: head tilts ..." -> drop the prefix before the first part name
        if ":" in seg and not _PART_RE.match(seg):
            tail = seg.split(":", 1)[1].strip()
            if _PART_RE.match(tail):
                seg = tail
        m = _PART_RE.match(seg)
        if m:
            part = _PART_ALIASES[m.group(1).lower()]
            phrase = _clean_phrase(m.group(2))
            if part not in found:
                if phrase:
                    found[part] = phrase
                    pending = None
                else:
                    pending = part
            continue
        if pending is not None and pending not in found:
            phrase = _clean_phrase(seg)
            if phrase:
                found[pending] = phrase
                pending = None
    missing = [p for p in BODY_PARTS if p not in found]
    if missing:
        raise ParseError(f"missing body part(s) {missing}")
    bad = [p for p in BODY_PARTS if len(found[p].split()) > MAX_PHRASE_WORDS or not re.search(r"[a-zA-Z]", found[p])
           or "..." in found[p] or "<" in found[p]]
    if bad:
        raise ParseError(f"unusable phrase for {bad}")
    motion = Motion(**found)
    if action is not None:
        for name, parts in FEW_SHOT:
            if name != action and all(parts[p].lower() == found[p].lower() for p in BODY_PARTS):
                raise ParseError(f"copied the example {name!r}")
    return motion


SYSTEM_DESCRIPTION = ("You write short, concrete descriptions of human actions as seen in a video. Answer with one "
                      "or two plain sentences and nothing else.")


def description_messages(action: str, motion: Motion | None = None) -> list[Message]:
    """Second prompt: the one-or-two sentence description stage 3 trains the LLM to answer with."""
    example = ("A person lifts a cup to the mouth and tilts the head back slightly to drink. "
               "The body stays still while one hand holds the cup.")
    ask = f"Describe the action '{action}' in one or two sentences, starting with 'A person'."
    if motion is not None:
        ask += f" How the body moves: {motion.text()}."
    return [
        {"role": "system", "content": SYSTEM_DESCRIPTION},
        {"role": "user", "content": "Describe the action 'drink water' in one or two sentences, starting with "
                                    "'A person'."},
        {"role": "assistant", "content": example},
        {"role": "user", "content": ask},
    ]


def parse_description(text: str) -> str:
    """One or two sentences of plain prose (labels, quotes and lists removed)."""
    text = text.replace("**", "").strip()
    text = re.sub(r"^(?:description|answer)\s*:\s*", "", text, flags=re.IGNORECASE).strip().strip("\"'").strip()
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    if not lines:
        raise ParseError("empty description")
    prose = " ".join(_BULLET_RE.sub("", ln) for ln in lines if not ln.endswith(":"))
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", prose) if s.strip()]
    kept = " ".join(sentences[:2])
    if not kept.endswith((".", "!", "?")):
        if len(sentences) > 1:  # a cut-off second sentence: keep the first
            kept = sentences[0]
        else:
            kept += "."
    words = kept.split()
    if len(words) < 4:
        raise ParseError(f"description too short: {kept!r}")
    if len(words) > 80:
        raise ParseError("description longer than two sentences")
    if not re.search(r"[a-zA-Z]{3}", kept):
        raise ParseError("description has no words")
    return kept


@dataclass
class MotionRun:
    """What `generate_motion_knowledge` made: the knowledge (None when nothing succeeded) and the failures."""

    knowledge: Knowledge | None
    failures: dict[str, str] = field(default_factory=dict)
    generated: list[str] = field(default_factory=list)


def generate_motion_knowledge(actions: Sequence[str], client: ChatClient, *, dataset: str,
                              existing: Knowledge | None = None, attempts: int = 3, concurrency: int = 4,
                              sampling: Sampling | None = None, progress: bool = True,
                              source: str | None = None) -> MotionRun:
    """Ask the motion (and, when absent, description) of every action; keep existing visual/description.

    Classes whose answers never parse are listed in `failures` and left out of the knowledge.
    """
    sampling = sampling or Sampling(temperature=0.0, seed=0, max_tokens=200)
    old = {c.label: c for c in existing.classes} if existing is not None else {}

    def one(action: str) -> ClassKnowledge:
        motion = client.ask_parsed(motion_messages(action), lambda text: parse_motion(text, action),
                                   sampling=sampling, attempts=attempts, what=f"motion of {action!r}")
        prev = old.get(action)
        description = prev.description if prev is not None else client.ask_parsed(
            description_messages(action, motion), parse_description, sampling=sampling, attempts=attempts,
            what=f"description of {action!r}")
        visual = list(prev.visual) if prev is not None else []
        return ClassKnowledge(label=action, motion=motion, visual=visual, description=description)

    run = run_bounded(actions, one, concurrency=concurrency, desc="motion knowledge", progress=progress)
    # requested actions in order (a failed one keeps its existing entry, if any), then other existing classes
    classes = [run.results.get(a) or old[a] for a in actions if a in run.results or a in old]
    classes += [c for label, c in old.items() if label not in set(actions)]
    src = source or f"motion and descriptions by {client.provider.identity} (sugar knowledge motion)"
    if existing is not None and existing.source:
        src = existing.source if src in existing.source else f"{existing.source}; {src}"
    know = Knowledge(schema_version=1, dataset=existing.dataset if existing else dataset, source=src,
                     classes=classes) if classes else None
    return MotionRun(knowledge=know, failures=dict(run.failures), generated=[a for a in actions if a in run.results])
