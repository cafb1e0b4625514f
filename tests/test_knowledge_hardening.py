"""Knowledge generation against a faulty LLM server on loopback (issue 12, items 13 and 14): answers that do
not parse are never cached, --timeout bounds a whole request however slowly the server trickles, a refused
key stops the run after one request, and `sugar knowledge motion` exits 1 when actions failed."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from fake_openai import FakeOpenAI
from sugar.knowledge.chat import (
    AnswerCache,
    AuthError,
    ChatClient,
    OpenAIChatProvider,
    RetryPolicy,
    Sampling,
)
from sugar.knowledge.motion import generate_motion_knowledge, motion_messages

NO_RETRY = RetryPolicy(max_retries=0)


def client_for(server: FakeOpenAI, cache: Path, timeout: float = 5.0, retry: RetryPolicy = NO_RETRY) -> ChatClient:
    provider = OpenAIChatProvider("fake-model", base_url=server.base_url, api_key="k", timeout=timeout)
    return ChatClient(provider, AnswerCache(cache), retry)


def test_unparseable_answer_is_not_cached_and_is_asked_again(tmp_path: Path):
    cache = tmp_path / "answers"
    with FakeOpenAI(faults=["overloaded"]) as server:
        run = generate_motion_knowledge(["wave"], client_for(server, cache), dataset="toy", attempts=1,
                                        progress=False)
        assert "wave" in run.failures and len(AnswerCache(cache)) == 0
        again = client_for(server, cache)
        run = generate_motion_knowledge(["wave"], again, dataset="toy", attempts=1, progress=False)
        asked = [e["outcome"] for e in server.log]
    assert run.failures == {} and run.knowledge is not None
    assert asked == ["overloaded", "ok", "ok"]  # the rerun asked the motion again, then the description
    assert again.stats.asked == 2 and again.stats.cached == 0


def test_a_cached_answer_that_does_not_parse_is_replaced(tmp_path: Path):
    cache = AnswerCache(tmp_path / "answers")
    with FakeOpenAI() as server:
        client = client_for(server, tmp_path / "answers")
        sampling = Sampling(temperature=0.0, seed=0, max_tokens=200)
        key = cache.key(client.provider.identity, motion_messages("wave"), sampling)
        cache.put(key, "Service temporarily overloaded")  # what an older version kept
        run = generate_motion_knowledge(["wave"], client, dataset="toy", attempts=1, progress=False)
        assert len(server.log) == 2  # motion asked again (and the description)
    assert run.failures == {} and cache.get(key).startswith("- Head:")


@pytest.mark.parametrize("fault", ["trickle", "trickle-head"])
def test_timeout_bounds_a_trickling_answer(tmp_path: Path, fault: str):
    with FakeOpenAI(faults=[fault], trickle_s=0.3) as server:
        client = client_for(server, tmp_path / "answers", timeout=1.5)
        t = time.perf_counter()
        run = generate_motion_knowledge(["wave"], client, dataset="toy", attempts=1, progress=False)
        took = time.perf_counter() - t
    assert "no complete answer within 1.5 s" in run.failures["wave"]
    assert took < 4.0, took


def test_refused_key_stops_after_one_request(tmp_path: Path):
    with FakeOpenAI(faults=["401"] * 10) as server:
        client = client_for(server, tmp_path / "answers", retry=RetryPolicy(max_retries=3, base_delay=0.01))
        with pytest.raises(AuthError, match="HTTP 401"):
            generate_motion_knowledge(["wave", "kick", "bow", "jump"], client, dataset="toy", concurrency=1,
                                      progress=False)
        assert server.outcomes() == ["401"]
        with pytest.raises(AuthError):  # the same client never asks again
            client.ask(motion_messages("clap"))
        assert len(server.log) == 1


def test_motion_command_exits_1_when_actions_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Through the installed entry point (cli.main), not only typer's test runner."""
    from sugar.cli import main

    actions = tmp_path / "actions.txt"
    actions.write_text("wave\njuggle\n")
    with FakeOpenAI(never_parse=["juggle"]) as server:
        monkeypatch.setattr(sys, "argv", [
            "sugar", "knowledge", "motion", "--actions", str(actions), "--out", str(tmp_path / "k.json"),
            "--provider", "openai", "--model", "m", "--base-url", server.base_url, "--cache-dir",
            str(tmp_path / "cache"), "--quiet", "--attempts", "1"])
        with pytest.raises(SystemExit) as exited:
            main()
    assert exited.value.code == 1
    assert (tmp_path / "k.json").is_file()  # the action that succeeded is written
