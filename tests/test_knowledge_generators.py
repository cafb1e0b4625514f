"""Motion generator against a real HTTP server on loopback: retries, cache resume after kill -9, failures."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fake_openai import FakeOpenAI
from sugar.cli import app
from sugar.knowledge.chat import (
    AnswerCache,
    ChatClient,
    GaveUp,
    OpenAIChatProvider,
    ParseError,
    ProviderError,
    RetryPolicy,
    TransientError,
    call_with_retry,
    parse_retry_after,
)
from sugar.knowledge.motion import generate_motion_knowledge, parse_description, parse_motion
from sugar.knowledge.schema import BODY_PARTS, ClassKnowledge, Knowledge, Motion, load_knowledge

SRC = Path(__file__).resolve().parents[1] / "src"
FAST = RetryPolicy(max_retries=5, base_delay=0.01, max_delay=0.05)


def client_for(server: FakeOpenAI, tmp_path: Path, timeout: float = 5.0, retry: RetryPolicy = FAST) -> ChatClient:
    provider = OpenAIChatProvider("fake-model", base_url=server.base_url, api_key="k", timeout=timeout)
    return ChatClient(provider, AnswerCache(tmp_path / "answers"), retry)


# ------------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("text", [
    "head: tilts back\nhand: grasps cup\narm: lifts cup\nhip: still\nleg: still\nfoot: still",
    "- **Head**: tilts back\n- **Hand**: grasps cup\n- **Arm**: lifts cup\n- **Hip**: still\n- **Leg**: still\n"
    "- **Foot**: still",
    "Sure! Here it is:\n1. Head - tilts back.\n2. Hands - grasp cup.\n3. Arms - lift cup.\n4. Hips - still.\n"
    "5. Legs - still.\n6. Feet - still.",
    "A action of {drink}: head tilts back; hand grasps cup; arm lifts cup; hip still; leg still; foot still.",
    "Head:\n- The head tilts back\nHand:\n- grasps cup\nArm:\nlifts cup\nHip:\nstill\nLeg:\nstill\nFoot:\nstill",
])
def test_parse_motion_accepts_common_shapes(text: str) -> None:
    motion = parse_motion(text)
    assert motion.head == "tilts back"
    assert motion.hand.startswith("grasp") and motion.arm.startswith("lift")
    assert motion.foot == "still"


def test_parse_motion_rejects_incomplete_and_copies() -> None:
    with pytest.raises(ParseError, match=r"missing body part\(s\) \['hip', 'leg', 'foot'\]"):
        parse_motion("head: up\nhand: open\narm: raised")
    with pytest.raises(ParseError, match="missing"):
        parse_motion("I cannot help with that.")
    with pytest.raises(ParseError, match="unusable"):
        parse_motion("head: <movement>\nhand: a\narm: b\nhip: c\nleg: d\nfoot: e")
    copy = "head: tilts back slightly\nhand: grasps cup\narm: lifts cup to mouth\nhip: remains stationary\n" \
           "leg: remains stationary\nfoot: remains stationary"
    assert parse_motion(copy, "drink water").head == "tilts back slightly"
    with pytest.raises(ParseError, match="copied the example"):
        parse_motion(copy, "wave")


def test_parse_description() -> None:
    assert parse_description('Description: "A person waves. The hand moves."') == "A person waves. The hand moves."
    three = "A person waves a hand. The arm is raised. Then it drops."
    assert parse_description(three) == "A person waves a hand. The arm is raised."
    assert parse_description("A person waves a hand. The arm is") == "A person waves a hand."
    with pytest.raises(ParseError):
        parse_description("ok")
    with pytest.raises(ParseError):
        parse_description("   ")


def test_retry_after_parsing_and_backoff() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < parse_retry_after(later) <= 30
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0, jitter=0.25)
    rng = random.Random(0)
    delays = [policy.delay(a, None, rng) for a in range(6)]
    assert [1 <= d / min(8, 2 ** a) <= 1.25 for a, d in enumerate(delays)] == [True] * 6
    assert 3.0 <= policy.delay(0, 3.0, rng) <= 3.25  # Retry-After wins over the (smaller) backoff
    slept: list[float] = []
    calls = iter([TransientError("x", retry_after=0.5), TransientError("y"), "done"])

    def fn() -> str:
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    assert call_with_retry(fn, policy, sleep=slept.append, rng=rng) == "done"
    assert len(slept) == 2 and slept[0] >= 0.5
    with pytest.raises(GaveUp, match="gave up after 3 attempt"):
        call_with_retry(lambda: (_ for _ in ()).throw(TransientError("down")), RetryPolicy(max_retries=2),
                        sleep=lambda s: None)


# ------------------------------------------------------------------------------------------- HTTP


def test_retries_429_500_badjson_stall(tmp_path: Path) -> None:
    with FakeOpenAI(faults=["429", "500", "badjson", "stall"], stall_s=2.0, retry_after="1") as server:
        client = client_for(server, tmp_path, timeout=0.5)
        run = generate_motion_knowledge(["wave", "kick"], client, dataset="toy", concurrency=1, progress=False)
        outcomes = server.outcomes()
        log = list(server.log)
    assert run.failures == {}
    know = run.knowledge
    assert know is not None and know.labels == ["wave", "kick"]
    assert know.classes[0].motion.head == "head moves as in wave"
    assert know.classes[1].description == "A person performs the action kick. The whole body takes part in it."
    assert outcomes[:5] == ["429", "500", "badjson", "stall", "ok"]
    assert client.stats.retries == 4 and client.stats.asked == 4
    assert log[1]["time"] - log[0]["time"] >= 0.95  # Retry-After: 1 was honoured
    assert log[0]["auth"] == "Bearer k" and log[0]["model"] == "fake-model"


def test_unparseable_action_is_reported_not_written(tmp_path: Path) -> None:
    out = tmp_path / "k.json"
    actions = tmp_path / "actions.txt"
    actions.write_text("# toy list\nwave\njuggle\nkick\n")
    with FakeOpenAI(never_parse=["juggle"]) as server:
        result = CliRunner().invoke(app, ["knowledge", "motion", "--actions", str(actions), "--out", str(out),
                                          "--provider", "openai", "--model", "m", "--base-url", server.base_url,
                                          "--cache-dir", str(tmp_path / "cache"), "--quiet", "--attempts", "3"])
        juggle = [e for e in server.log if "'juggle'" in e["question"]]
    assert result.exit_code == 1, result.output
    assert "juggle" in result.output and "failed" in result.output
    know = load_knowledge(out)
    assert know.labels == ["wave", "kick"] and know.dataset == "actions"
    # three different samples were asked before giving up
    assert [(e["seed"], e["temperature"]) for e in juggle] == [(0, 0.0), (1000, 0.7), (2000, 0.7)]


def test_gave_up_and_fatal_errors(tmp_path: Path) -> None:
    with FakeOpenAI(faults=["500"] * 3) as server:
        client = client_for(server, tmp_path, retry=RetryPolicy(max_retries=2, base_delay=0.01))
        run = generate_motion_knowledge(["wave"], client, dataset="toy", progress=False)
    assert run.knowledge is None and "gave up after 3 attempt(s)" in run.failures["wave"]
    with FakeOpenAI(faults=["401"]) as server:
        client = client_for(server, tmp_path / "b")
        with pytest.raises(ProviderError, match="HTTP 401"):
            generate_motion_knowledge(["wave", "kick"], client, dataset="toy", concurrency=1, progress=False)


def test_connection_refused_is_retried_then_reported(tmp_path: Path) -> None:
    with FakeOpenAI() as server:
        url = server.base_url
    provider = OpenAIChatProvider("m", base_url=url, timeout=1.0)
    client = ChatClient(provider, AnswerCache(tmp_path / "c"), RetryPolicy(max_retries=1, base_delay=0.01))
    run = generate_motion_knowledge(["wave"], client, dataset="toy", progress=False)
    assert "connection failed" in run.failures["wave"]


def test_cache_answers_second_run_and_merge_keeps_existing(tmp_path: Path) -> None:
    motion = Motion(**{p: "x" for p in BODY_PARTS})
    existing = Knowledge(schema_version=1, dataset="toy", source="hand made", classes=[
        ClassKnowledge(label="wave", motion=motion, visual=["A person waves at the camera."],
                       description="A person waves one hand."),
        ClassKnowledge(label="bow", motion=motion, visual=["A person bows."], description="A person bows down."),
    ])
    with FakeOpenAI() as server:
        run = generate_motion_knowledge(["wave", "kick"], client_for(server, tmp_path), dataset="toy",
                                        existing=existing, progress=False)
        first = len(server.log)
        again = client_for(server, tmp_path)
        run2 = generate_motion_knowledge(["wave", "kick"], again, dataset="toy", existing=existing, progress=False)
        assert len(server.log) == first  # everything came from the cache
    assert first == 3  # wave motion, kick motion, kick description (wave keeps its description)
    assert again.stats.cached == 3 and again.stats.asked == 0
    know = run.knowledge
    assert know is not None and run2.knowledge == know
    assert know.labels == ["wave", "kick", "bow"]  # requested order, then classes only in the old file
    wave = know.get("wave")
    assert wave.visual == ["A person waves at the camera."] and wave.description == "A person waves one hand."
    assert wave.motion.head == "head moves as in wave"
    assert know.get("bow") == existing.get("bow")
    assert know.source.startswith("hand made; motion and descriptions by openai:fake-model")


def _run_cli(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "sugar.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_resume_after_kill(tmp_path: Path) -> None:
    """kill -9 a running generator; the rerun asks only what was not cached and writes the complete file."""
    actions = [f"action number {i}" for i in range(12)]
    (tmp_path / "actions.txt").write_text("\n".join(actions) + "\n")
    out, cache = tmp_path / "k.json", tmp_path / "cache"
    with FakeOpenAI(delay=0.2) as server:
        args = ["knowledge", "motion", "--actions", str(tmp_path / "actions.txt"), "--out", str(out),
                "--provider", "openai", "--model", "m", "--base-url", server.base_url, "--cache-dir", str(cache),
                "--concurrency", "2", "--quiet"]
        proc = _run_cli(args)
        deadline = time.monotonic() + 60
        while len(AnswerCache(cache)) < 6 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[0]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not out.exists()
        cached = {json.loads(p.read_text())["messages_sha256"] for p in cache.glob("*/*.json")}
        asked_before = len(server.log)
        assert 6 <= len(cached) < 24

        proc = _run_cli(args)
        output = proc.communicate(timeout=120)[0]
        assert proc.returncode == 0, output
        rerun = server.log[asked_before:]
    assert not {e["digest"] for e in rerun} & cached  # nothing already cached was asked again
    assert len(rerun) == 24 - len(cached)
    assert load_knowledge(out).labels == actions
    assert f"{len(rerun)} asked, {len(cached)} from cache" in " ".join(output.split())
