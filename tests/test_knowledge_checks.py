"""The offline generator never ends with one class's text for another: per-class checks, re-asking a class whose
answer matches an earlier class's, and the label template as the last resort (no HTTP, a scripted provider)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from sugar.knowledge import checks
from sugar.knowledge.chat import AnswerCache, ChatClient, ChatProvider, Message, Sampling
from sugar.knowledge.motion import (
    EXAMPLES,
    check_motion,
    examples_for,
    generate_motion_knowledge,
    motion_messages,
    parse_motion,
)
from sugar.knowledge.schema import BODY_PARTS, Motion


def motion(*phrases: str) -> Motion:
    return Motion(**dict(zip(BODY_PARTS, phrases, strict=True)))


def test_examples_are_unrelated_to_the_action():
    assert [e.label for e in examples_for("sitting down")] == ["drink water", "kicking something"]
    assert "drink water" not in [e.label for e in examples_for("drink water")]
    assert "kicking something" not in [e.label for e in examples_for("side kick")]
    assert "jump up" not in [e.label for e in examples_for("jumping jacks")]
    text = " ".join(m["content"] for m in motion_messages("pickup"))
    assert "{drink water}" in text and "'pickup' itself" in text


def test_keywords_and_mentions():
    assert checks.label_keywords("pick up with one hand") == {"pick"}
    assert checks.label_keywords("hand clap") == {"clap"}
    assert checks.label_keywords("two hand wave") == {"wave"}
    assert checks.mentions("A person jogs in place.", "jogging")
    assert checks.mentions("A person cleans the dishes.", "Cook.Cleandishes")
    assert not checks.mentions("A person lifts a cup to the mouth.", "high arm wave")
    assert checks.related("sit down", "sitting down") and checks.related("pick up", "pickup")
    assert not checks.related("drink water", "drop")


def test_copies_and_sameness():
    kick = EXAMPLES[1].motion
    assert checks.copied_phrases(kick, [kick]) == 6
    assert checks.copied_phrases(EXAMPLES[0].motion, [EXAMPLES[0].motion]) == 2  # "remains stationary" is short
    mixed = motion("looks down at the target", "swings slightly for balance", "reaches back slightly for balance",
                   "bends and straightens", "swings forward from the hip and straightens", "strikes the object")
    assert checks.copied_phrases(mixed, [e.motion for e in EXAMPLES]) == 5  # a patchwork of the examples
    with pytest.raises(Exception, match="copied from the few-shot"):
        check_motion(mixed, "drop trash")
    clap = motion("stays still", "claps together", "swing inward", "remains stationary", "remains stationary",
                  "remains stationary")
    assert check_motion(clap, "hand clap") == clap  # three shared 'remains stationary' are fine
    patchwork = motion("looks down at the target", "swings a little for balance", "swings a little for balance",
                       "swings a little for balance", "swings forward from the hip and straightens",
                       "strikes the object")  # SmolLM2's sampled answer for "pick up with one hand"
    with pytest.raises(Exception, match="3 phrases copied"):
        check_motion(patchwork, "pick up with one hand")
    with pytest.raises(Exception, match="same phrase"):
        check_motion(motion(*["stands upright"] * 6), "drop trash")
    wave = motion("stays still", "waves side to side", "raised high", "remains stationary", "remains stationary",
                  "remains stationary")
    assert not checks.same_motion(clap, wave)
    assert checks.same_motion(clap, motion("stays still", "claps together", "swings inward", "remains stationary",
                                           "remains stationary", "remains stationary"))
    t1, t2 = checks.template_motion("hand clap"), checks.template_motion("two hand wave")
    assert not checks.same_motion(t1, t2) and "'hand clap'" in t1.text()


class Scripted(ChatProvider):
    """Answers from a function of (action, kind, sampling), like a model that copies or repeats itself."""

    kind = "scripted"

    def __init__(self, answer: Callable[[str, str, Sampling], str]):
        super().__init__("scripted")
        self.answer = answer
        self.asked: list[tuple[str, str, float]] = []

    def complete(self, messages: Sequence[Message], sampling: Sampling) -> str:
        last = messages[-1]["content"]
        m = re.search(r"movements when '([^']+)'", last) or re.search(r"Describe the action '([^']+)'", last)
        assert m is not None
        kind = "motion" if "movements" in last else "description"
        self.asked.append((m.group(1), kind, sampling.temperature))
        return self.answer(m.group(1), kind, sampling)


def lines(parts: Sequence[str]) -> str:
    return "\n".join(f"{p}: {x}" for p, x in zip(BODY_PARTS, parts, strict=True))


def run(tmp_path: Path, answer: Callable[[str, str, Sampling], str], actions: list[str], attempts: int = 3):
    provider = Scripted(answer)
    client = ChatClient(provider, AnswerCache(tmp_path / "cache"))
    result = generate_motion_knowledge(actions, client, dataset="toy", attempts=attempts, concurrency=2,
                                       progress=False)
    return result, provider


def motion_texts(result) -> list[str]:
    return [c.motion_text for c in result.knowledge.classes]


def test_a_model_that_copies_the_example_gets_label_templates(tmp_path):
    kick = EXAMPLES[1].parts
    actions = ["drop trash", "hammer", "bend", "draw circle"]

    def copier(action: str, kind: str, s: Sampling) -> str:
        return lines([kick[p] for p in BODY_PARTS]) if kind == "motion" else f"A person does {action} slowly."

    result, provider = run(tmp_path, copier, actions)
    assert result.failures == {}
    assert set(result.templated) == set(actions)
    assert len(set(motion_texts(result))) == len(actions)  # no two classes share a text
    for cls in result.knowledge.classes:
        assert cls.motion == checks.template_motion(cls.label)
    assert "label template for 4 class(es)" in result.knowledge.source
    assert sum(kind == "motion" for _, kind, _ in provider.asked) == 3 * len(actions)  # sampled retries first


def test_a_repeated_answer_is_asked_again_for_the_later_class(tmp_path):
    same = lines(["stays still", "closes firmly", "moves forward", "turns a little", "steps", "pivots"])

    def repeater(action: str, kind: str, s: Sampling) -> str:
        if kind == "description":
            return f"A person does {action} with care."
        if s.temperature > 0 and action == "forward punch":  # sampling gives this class its own answer
            return lines(["faces the target", "makes a fist", "drives straight out", "twists", "braces", "pushes"])
        return same

    actions = ["hammer", "forward punch", "side boxing"]
    result, _ = run(tmp_path, repeater, actions)
    texts = motion_texts(result)
    assert texts[0] == parse_motion(same).text()  # the first class keeps the shared answer
    assert "drives straight out" in texts[1]  # re-asked with sampling
    assert result.templated.keys() == {"side boxing"}  # never answered otherwise
    assert "the same motion as 'hammer'" in result.templated["side boxing"]
    assert len(set(texts)) == 3


def test_a_description_that_does_not_name_the_action_is_replaced(tmp_path):
    def answer(action: str, kind: str, s: Sampling) -> str:
        if kind == "motion":
            return lines([f"{p} moves for {action}" for p in BODY_PARTS])
        return EXAMPLES[0].description if action == "bend" else f"A person does a {action} quickly."

    result, _ = run(tmp_path, answer, ["bend", "hammer"])
    bend, hammer = result.knowledge.classes
    assert bend.description == checks.template_description("bend") and "description" in result.templated["bend"]
    assert hammer.description == "A person does a hammer quickly." and "hammer" not in result.templated


def test_answers_that_never_parse_are_still_failures(tmp_path):
    result, _ = run(tmp_path, lambda a, k, s: "Sorry, I cannot.", ["bend"], attempts=2)
    assert result.knowledge is None and "bend" in result.failures and result.templated == {}


def test_loops_and_other_actions_are_found():
    loop = ("A person walks around, their legs support their body, and their feet keep their stance, their legs "
            "support their body, and their feet keep their stance, their legs support their body.")
    assert checks.repeated_share(loop) > checks.MAX_REPEATED_SHARE
    assert checks.repeated_share("A person sits down on a chair, bending the knees.") == 0.0
    ucla = ["pick up with one hand", "walk around", "sit down", "donning"]
    assert checks.other_actions_named("A person walks to a box and picks it up.", ucla[0], ucla) == ["walk around"]
    # "around" is no action's word; words several labels share ("forward") describe, not name
    assert checks.other_actions_named("A person wraps the arms around the shoulders.", "donning", ucla) == []
    msr = ["forward punch", "forward kick", "jogging"]
    assert checks.other_actions_named("A person steps forward and runs in place.", "jogging", msr) == []
    assert checks.other_actions_named("A person kicks while jogging.", "jogging", msr) == ["forward kick"]


def test_a_description_naming_another_action_or_looping_is_asked_again(tmp_path):
    def answer(action: str, kind: str, s: Sampling) -> str:
        if kind == "motion":
            return lines([f"{p} moves for {action}" for p in BODY_PARTS])
        if action == "sit down":  # loops until sampled, then answers
            return ("A person sits down, legs bent, legs bent, legs bent, legs bent, legs bent." if s.temperature == 0
                    else "A person sits down on a chair, bending the knees.")
        return "A person walks over and picks a box up with one hand."  # names 'walk around' every time

    result, _ = run(tmp_path, answer, ["pick up with one hand", "walk around", "sit down"])
    pick, _walk, sit = result.knowledge.classes
    assert pick.description == checks.template_description("pick up with one hand")
    assert "names another action ('walk around')" in result.templated["pick up with one hand"]
    assert sit.description == "A person sits down on a chair, bending the knees." and "sit down" not in result.templated
