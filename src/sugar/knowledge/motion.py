"""Motion knowledge T_m (PAPER.md "Stage 1"): an LLM splits each action into six body-part movements,
from the paper's few-shot prompt; a second prompt writes the one-or-two sentence description.

Answers are parsed strictly enough that garbage is never written (all six parts, each a short phrase)
and loosely enough to accept the usual shapes ("head: ...", "- **Head**: ...", "head tilts ...;").

Knowledge for new classes must never be worse than the class names alone, so the generator guards against
what small local models do (sugar.knowledge.checks):
- the few-shot examples are chosen per action from `EXAMPLES`, never one that shares a word with it (a
  "sit down" example for "sitting down" invites a copy, and an unrelated one makes a copy detectable);
- an answer that copies the examples, says the same for most parts, or whose description does not name the
  action, names another class being generated or loops over the same words is asked again with sampling
  (another seed);
- answers that match another class's (in class-list order; the later class is asked again) are asked again;
- a class whose answers all fail these checks gets a template built from its name (`checks.template_motion`),
  reported by the command and recorded in the file's `source`. Only answers that never parse are failures.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from sugar.knowledge import checks
from sugar.knowledge.chat import AnswerRejected, ChatClient, Message, ParseError, Sampling, run_bounded
from sugar.knowledge.schema import BODY_PARTS, ClassKnowledge, Knowledge, Motion

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Example:
    """A few-shot example: an action, its six movements and its description."""

    label: str
    parts: dict[str, str]
    description: str

    @property
    def motion(self) -> Motion:
        return Motion(**self.parts)


def _still(head: str, hand: str, arm: str) -> dict[str, str]:
    return {"head": head, "hand": hand, "arm": arm, "hip": "remains stationary", "leg": "remains stationary",
            "foot": "remains stationary"}


# The paper's example (drink water) first, then actions of other body regions, so that every action has an
# unrelated example and small local models see the exact format.
EXAMPLES: tuple[Example, ...] = (
    Example("drink water", _still("tilts back slightly", "grasps cup", "lifts cup to mouth"),
            "A person lifts a cup to the mouth and tilts the head back slightly to drink. The body stays still "
            "while one hand holds the cup."),
    Example("kicking something", {"head": "looks down at the target", "hand": "swings slightly for balance",
                                  "arm": "moves out to the side for balance", "hip": "rotates toward the kick",
                                  "leg": "swings forward from the hip and straightens",
                                  "foot": "strikes the object"},
            "A person swings one leg forward from the hip and strikes an object with the foot. The arms move out "
            "to the side for balance."),
    Example("sit down", {"head": "stays level, facing forward", "hand": "rests on the thighs or the chair",
                         "arm": "reaches back slightly for balance", "hip": "bends and lowers onto the seat",
                         "leg": "bends at the knees", "foot": "stays planted on the floor"},
            "A person bends the hips and knees and lowers the body onto a chair. The feet stay on the floor."),
    Example("jump up", {"head": "rises with the body, eyes forward", "hand": "swings upward",
                        "arm": "swings back, then up to lift the body", "hip": "drops, then extends upward",
                        "leg": "bends, then straightens to push off", "foot": "leaves the floor and lands again"},
            "A person bends the knees and pushes off the floor to jump straight up. The arms swing up and the "
            "feet land again."),
    Example("salute", _still("faces forward, chin up", "flattens with the fingers together at the brow",
                             "bends at the elbow to raise the hand to the forehead"),
            "A person raises a flat hand to the forehead with the elbow out. The body stands still and upright."),
)
FEW_SHOT: tuple[tuple[str, dict[str, str]], ...] = tuple((e.label, e.parts) for e in EXAMPLES)  # older name
EXAMPLES_PER_PROMPT = 2
MOTION_MAX_TOKENS = 120  # six short lines are about 70 tokens; small models ramble on to any limit
DESCRIPTION_MAX_TOKENS = 90

SYSTEM_MOTION = ("You describe how each body part moves during a human action. Answer with exactly six lines, "
                 "one per body part, in the form 'part: movement' for head, hand, arm, hip, leg and foot, "
                 "and nothing else.")


def examples_for(action: str, n: int = EXAMPLES_PER_PROMPT) -> list[Example]:
    """The first `n` examples that share no content word with `action` (never the action itself)."""
    chosen = [e for e in EXAMPLES if not checks.related(e.label, action)]
    return chosen[:n]


def _format_parts(parts: dict[str, str]) -> str:
    return "\n".join(f"{p}: {parts[p]}" for p in BODY_PARTS)


def _question(action: str) -> str:
    return (f"Describe the following body part movements when '{action}': head, hand, arm, hip, leg, foot. "
            "Answer in the format 'head: ...' on six lines.")


def motion_messages(action: str) -> list[Message]:
    """The paper's few-shot prompt: examples of unrelated actions as earlier turns, then the action asked about
    (with a reminder that the examples are not the answer)."""
    shown = examples_for(action)
    intro = "Below are some examples of how the body parts move during an action.\n\n" + "\n".join(
        f"Example: A action of {{{e.label}}}: " + "; ".join(f"{p} {e.parts[p]}" for p in BODY_PARTS) + "."
        for e in shown
    )
    messages: list[Message] = [{"role": "system", "content": SYSTEM_MOTION}]
    for i, e in enumerate(shown):
        question = _question(e.label)
        messages.append({"role": "user", "content": f"{intro}\n\n{question}" if i == 0 else question})
        messages.append({"role": "assistant", "content": _format_parts(e.parts)})
    ask = _question(action) + f" Describe '{action}' itself, not the examples."
    messages.append({"role": "user", "content": ask})
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
        for e in EXAMPLES:
            if e.label != action and all(e.parts[p].lower() == found[p].lower() for p in BODY_PARTS):
                raise ParseError(f"copied the example {e.label!r}")
    return motion


SYSTEM_DESCRIPTION = ("You write short, concrete descriptions of human actions as seen in a video. Answer with one "
                      "or two plain sentences and nothing else.")


def description_messages(action: str, motion: Motion | None = None) -> list[Message]:
    """Second prompt: the one-or-two sentence description stage 3 trains the LLM to answer with (the example is
    an unrelated action's, as for motion)."""
    example = (examples_for(action, 1) or [EXAMPLES[0]])[0]
    ask = f"Describe the action '{action}' in one or two sentences, starting with 'A person'."
    if motion is not None:
        ask += f" How the body moves: {motion.text()}."
    return [
        {"role": "system", "content": SYSTEM_DESCRIPTION},
        {"role": "user", "content": f"Describe the action '{example.label}' in one or two sentences, starting "
                                    "with 'A person'."},
        {"role": "assistant", "content": example.description},
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


def check_motion(motion: Motion, action: str) -> Motion:
    """Per-class checks on a parsed motion answer (ParseError names the problem; sugar.knowledge.checks)."""
    copied = checks.copied_phrases(motion, [e.motion for e in EXAMPLES if e.label != action])
    if copied > checks.MAX_COPIED_PHRASES:
        raise ParseError(f"{copied} phrases copied from the few-shot examples")
    if checks.distinct_phrases(motion) < checks.MIN_DISTINCT_PHRASES:
        raise ParseError("the same phrase for most body parts")
    return motion


def check_description(text: str, action: str, others: Sequence[str] = ()) -> str:
    """Per-class checks on a parsed description: it names the action, names none of `others` (the other classes
    being generated), does not loop, and is not an example's description."""
    if not checks.mentions(text, action):
        raise ParseError(f"the description does not name {action!r}")
    named = checks.other_actions_named(text, action, others)
    if named:
        raise ParseError(f"the description names another action ({', '.join(map(repr, named))})")
    if checks.repeated_share(text) > checks.MAX_REPEATED_SHARE:
        raise ParseError("the description repeats itself")
    for e in EXAMPLES:
        if e.label != action and checks.same_description(text, e.description):
            raise ParseError(f"copied the description of the example {e.label!r}")
    return text


@dataclass
class MotionRun:
    """What `generate_motion_knowledge` made: the knowledge (None when nothing succeeded), the failures (answers
    that never parsed) and the classes that fell back on the label template (label -> why)."""

    knowledge: Knowledge | None
    failures: dict[str, str] = field(default_factory=dict)
    generated: list[str] = field(default_factory=list)
    templated: dict[str, str] = field(default_factory=dict)


class _Asker:
    """Asks one kind of answer per action with `client.ask_parsed`, telling apart answers that never parsed
    (a failure) from parsed answers the checks rejected (the template's case)."""

    def __init__(self, client: ChatClient, sampling: Sampling, attempts: int):
        self.client, self.sampling, self.attempts = client, sampling, attempts

    def ask(self, messages: list[Message], parse: Callable[[str], T], check: Callable[[T], T], what: str,
            sampling: Sampling | None = None) -> tuple[T | None, str | None]:
        """(value, None) on success; (None, reason) when every answer parsed but failed `check`; raises
        AnswerRejected when no answer parsed at all."""
        parsed_any: list[str] = []

        def parse_and_check(text: str) -> T:
            value = parse(text)
            parsed_any.append(text)
            return check(value)

        try:
            return self.client.ask_parsed(messages, parse_and_check, sampling=sampling or self.sampling,
                                          attempts=self.attempts, what=what), None
        except AnswerRejected as exc:
            if not parsed_any:
                raise
            return None, str(exc)


def generate_motion_knowledge(actions: Sequence[str], client: ChatClient, *, dataset: str,
                              existing: Knowledge | None = None, attempts: int = 3, concurrency: int = 4,
                              sampling: Sampling | None = None, progress: bool = True,
                              source: str | None = None) -> MotionRun:
    """Ask the motion (and, when absent, description) of every action; keep existing visual/description.

    Motion answers pass the per-class checks (`check_motion`), then, in action-list order, must differ from every
    earlier class's (`checks.same_motion`; the later class is asked again with sampling); a class left without
    an acceptable answer gets `checks.template_motion`. Descriptions likewise (`check_description`,
    `checks.template_description`). Classes whose answers never parse are listed in `failures` and left out.
    """
    sampling = sampling or Sampling(temperature=0.0, seed=0, max_tokens=MOTION_MAX_TOKENS)
    old = {c.label: c for c in existing.classes} if existing is not None else {}
    asker = _Asker(client, sampling, attempts)
    templated: dict[str, str] = {}

    def first_motion(action: str) -> Motion | None:
        value, reason = asker.ask(motion_messages(action), parse_motion,
                                  lambda m: check_motion(m, action), f"motion of {action!r}")
        if value is None:
            templated[action] = f"motion: {reason}"
        return value

    run = run_bounded(actions, first_motion, concurrency=concurrency, desc="motion knowledge", progress=progress)
    motions: dict[str, Motion] = {}
    for action in [a for a in actions if a in run.results]:  # list order: the earlier class keeps its text
        motion = run.results[action]

        def distinct(m: Motion, action: str = action) -> Motion:
            m = check_motion(m, action)
            clash = next((other for other, o in motions.items() if checks.same_motion(m, o)), None)
            if clash is not None:
                raise ParseError(f"the same motion as {clash!r}")
            return m

        if motion is not None:
            try:
                motion = distinct(motion)
            except ParseError as exc:
                again = replace(sampling, temperature=max(sampling.temperature, 0.7), seed=(sampling.seed or 0) + 1)
                motion, reason = asker.ask(motion_messages(action), parse_motion, distinct,
                                           f"motion of {action!r} (was {exc})", sampling=again)
                if motion is None:
                    templated[action] = f"motion: {reason}"
        motions[action] = motion if motion is not None else checks.template_motion(action)

    def describe(action: str) -> str:
        prev = old.get(action)
        if prev is not None:
            return prev.description
        description_sampling = replace(sampling, max_tokens=DESCRIPTION_MAX_TOKENS)
        value, reason = asker.ask(description_messages(action, motions[action]), parse_description,
                                  lambda d: check_description(d, action, actions), f"description of {action!r}",
                                  sampling=description_sampling)
        if value is None:
            templated[action] = "; ".join(filter(None, [templated.get(action), f"description: {reason}"]))
            return checks.template_description(action)
        return value

    described = run_bounded(list(motions), describe, concurrency=concurrency, desc="descriptions", progress=progress)
    failures = dict(run.failures) | dict(described.failures)
    results: dict[str, ClassKnowledge] = {}
    seen_descriptions: list[str] = []
    for action in [a for a in actions if a in motions and a in described.results]:
        description = described.results[action]
        if checks.words(description) in [checks.words(d) for d in seen_descriptions]:  # names differ
            templated[action] = "; ".join(filter(None, [templated.get(action), "description: the same as an "
                                                                                "earlier class's"]))
            description = checks.template_description(action)
        seen_descriptions.append(description)
        prev = old.get(action)
        visual = list(prev.visual) if prev is not None else []
        results[action] = ClassKnowledge(label=action, motion=motions[action], visual=visual, description=description)

    # requested actions in order (a failed one keeps its existing entry, if any), then other existing classes
    classes = [results.get(a) or old[a] for a in actions if a in results or a in old]
    classes += [c for label, c in old.items() if label not in set(actions)]
    src = source or f"motion and descriptions by {client.provider.identity} (sugar knowledge motion)"
    if templated:
        src += f"; label template for {len(templated)} class(es) whose answers failed the checks: " + ", ".join(
            sorted(templated, key=list(actions).index))
    if existing is not None and existing.source:
        src = existing.source if src in existing.source else f"{existing.source}; {src}"
    know = Knowledge(schema_version=1, dataset=existing.dataset if existing else dataset, source=src,
                     classes=classes) if classes else None
    for action, why in templated.items():
        log.info("%s: label template (%s)", action, why)
    return MotionRun(knowledge=know, failures=failures, generated=[a for a in actions if a in results],
                     templated={a: templated[a] for a in actions if a in templated})
