"""The one client the stage-1 generators share: chat providers, an on-disk answer cache, retries with
backoff, validated asking (re-ask when an answer does not parse) and a bounded concurrent runner.

Providers:
- `OpenAIChatProvider`: any OpenAI-compatible `/chat/completions` endpoint (OpenAI, vLLM, Ollama,
  llama.cpp server, ...), spoken to with httpx. Text and image (data-URL) content.
- `HFChatProvider`: a local Hugging Face causal LM (default: the offline SmolLM2-135M), text only.

Every answer that parses is stored under a sha256 of (provider kind, model, messages, sampling) before it is
used, so a run that is killed resumes without asking (or paying) again; an answer that does not parse (a
transient "Service temporarily overloaded") is never stored, and a stored one that no longer parses is asked
again. The server's URL is not part of the key: the same model behind another URL reuses the answers.

`--timeout` is a deadline for the whole request (connect, headers and body): a server that trickles its answer
cannot stretch it. Bad credentials (401/403) stop the run: no further request is sent after the first refusal.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sugar.errors import SugarError
from sugar.fileio import atomic_write_text
from sugar.llm_loading import load_causal_lm
from sugar.paths import cache_dir

log = logging.getLogger(__name__)

Message = dict[str, Any]
T = TypeVar("T")
R = TypeVar("R")

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class ProviderError(SugarError):
    """The model could not be asked: bad credentials, unknown model, gave up after retries, ..."""


class AuthError(ProviderError):
    """The server refused the credentials (401/403): every further request would be refused too."""


class GaveUp(ProviderError):
    """Retries were exhausted for one request (the item fails; the run goes on)."""


class TransientError(Exception):
    """A failure worth retrying (429, 5xx, timeout, connection error, malformed response)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class ParseError(ValueError):
    """An answer that does not have the asked-for shape."""


class AnswerRejected(SugarError):
    """Every attempt at one question gave an answer that did not parse."""

    def __init__(self, message: str, answers: list[str]):
        super().__init__(message)
        self.answers = answers


@dataclass(frozen=True)
class Sampling:
    """How to sample one answer; part of the cache key."""

    temperature: float = 0.0
    seed: int | None = 0
    max_tokens: int = 256
    top_p: float = 0.95


# ----------------------------------------------------------------------------------------------- providers


class ChatProvider:
    """Answers a chat (list of {"role", "content"} messages) with text."""

    kind = "base"

    def __init__(self, model: str):
        self.model = model

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.model}"

    def complete(self, messages: Sequence[Message], sampling: Sampling) -> str:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections or memory."""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _content_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some servers return content parts
        texts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") in ("text", None)]
        return "".join(texts) if texts else None
    return None


class _LoopThread:
    """A private asyncio loop in a daemon thread: the sync API's worker threads run their requests on it,
    where asyncio.wait_for gives each one a deadline that httpx's per-read timeouts cannot."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="sugar-chat-loop")
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class OpenAIChatProvider(ChatProvider):
    """Any OpenAI-compatible chat endpoint. URL from base_url or OPENAI_BASE_URL; key from api_key,
    SUGAR_API_KEY or OPENAI_API_KEY (local servers usually need none). `timeout` bounds each request as a
    whole."""

    kind = "openai"

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None, timeout: float = 60.0):
        import httpx

        super().__init__(model)
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        key = api_key or os.environ.get("SUGAR_API_KEY") or os.environ.get("OPENAI_API_KEY")
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if self.base_url == DEFAULT_BASE_URL and not key:
            raise ProviderError("the OpenAI API needs a key: --api-key, SUGAR_API_KEY or OPENAI_API_KEY "
                                "(or point --base-url at a local server)")
        self._httpx = httpx
        self.timeout = timeout
        self._loop = _LoopThread()
        self.client = httpx.AsyncClient(base_url=self.base_url + "/", headers=headers, timeout=httpx.Timeout(timeout))

    def complete(self, messages: Sequence[Message], sampling: Sampling) -> str:
        httpx = self._httpx
        payload: dict[str, Any] = {"model": self.model, "messages": list(messages),
                                   "temperature": sampling.temperature, "max_tokens": sampling.max_tokens}
        if sampling.temperature > 0:
            payload["top_p"] = sampling.top_p
        if sampling.seed is not None:
            payload["seed"] = sampling.seed
        url = f"{self.base_url}/chat/completions"

        async def post() -> Any:
            return await asyncio.wait_for(self.client.post("chat/completions", json=payload), self.timeout)

        try:
            resp = self._loop.run(post())
        except TimeoutError:
            raise TransientError(f"{url}: no complete answer within {self.timeout:g} s") from None
        except httpx.TimeoutException as exc:
            raise TransientError(f"{url}: timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise TransientError(f"{url}: connection failed ({type(exc).__name__}: {exc})") from None
        status = resp.status_code
        if status == 429 or status == 408 or status >= 500:
            wait_s = parse_retry_after(resp.headers.get("retry-after"))
            raise TransientError(f"{url}: HTTP {status}", retry_after=wait_s)
        if status in (401, 403):
            raise AuthError(f"{url}: HTTP {status}: the server refused the credentials (--api-key, SUGAR_API_KEY "
                            f"or OPENAI_API_KEY): {resp.text[:200]}")
        if status >= 400:
            raise ProviderError(f"{url}: HTTP {status}: {resp.text[:300]}")
        try:
            data = resp.json()
            text = _content_text(data["choices"][0]["message"]["content"])
        except (ValueError, KeyError, IndexError, TypeError):
            raise TransientError(f"{url}: malformed response: {resp.text[:120]!r}") from None
        if text is None:
            raise TransientError(f"{url}: response without text content")
        return text

    def close(self) -> None:
        if not self._loop.loop.is_closed():
            self._loop.run(self.client.aclose())
        self._loop.close()


def has_images(messages: Sequence[Message]) -> bool:
    return any(isinstance(m.get("content"), list) and any(p.get("type") == "image_url" for p in m["content"])
               for m in messages)


class HFChatProvider(ChatProvider):
    """A local Hugging Face causal LM through its chat template (text only). One generation at a time."""

    kind = "hf"

    def __init__(self, model: str = "smollm2-135m", dtype: Any = None, device: str | None = None):
        super().__init__(model)
        self.lm, self.tokenizer = load_causal_lm(model, dtype, device=device)
        self._lock = threading.Lock()

    def complete(self, messages: Sequence[Message], sampling: Sampling) -> str:
        import torch

        if has_images(messages):
            raise ProviderError("the hf provider is text-only; ask a vision-language model with --provider openai")
        with self._lock:
            inputs = self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True,
                                                        return_tensors="pt", return_dict=True)
            inputs = {k: v.to(self.lm.device) for k, v in inputs.items()}
            kwargs: dict[str, Any] = {"max_new_tokens": sampling.max_tokens,
                                      "pad_token_id": self.tokenizer.pad_token_id}
            if sampling.temperature > 0:
                kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
                torch.manual_seed(sampling.seed or 0)
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            with torch.no_grad():
                out = self.lm.generate(**inputs, **kwargs)
            return self.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)

    def close(self) -> None:
        self.lm = None


def make_provider(provider: str, model: str | None = None, *, base_url: str | None = None,
                  api_key: str | None = None, timeout: float = 60.0) -> ChatProvider:
    """`openai` (any compatible server) or `hf` (local causal LM; default model smollm2-135m)."""
    if provider == "openai":
        if not model:
            raise ProviderError("--model is required with --provider openai (e.g. gpt-4o-mini, or the name "
                                "your vLLM/Ollama server serves)")
        return OpenAIChatProvider(model, base_url=base_url, api_key=api_key, timeout=timeout)
    if provider == "hf":
        return HFChatProvider(model or "smollm2-135m")
    raise ProviderError(f"unknown provider {provider!r}; use openai or hf")


# ----------------------------------------------------------------------------------------------- cache


class AnswerCache:
    """One JSON file per answer under root/<2 hex>/<sha256>.json, written atomically."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else cache_dir("answers")
        self.root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(identity: str, messages: Sequence[Message], sampling: Sampling) -> str:
        blob = json.dumps({"provider": identity, "messages": list(messages), "sampling": sampling.__dict__},
                          sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    @staticmethod
    def messages_digest(messages: Sequence[Message]) -> str:
        """sha256 of the canonical messages alone (stored with each entry, so a server log can be matched)."""
        blob = json.dumps(list(messages), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        path = self.path(key)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            return entry["answer"] if isinstance(entry.get("answer"), str) else None
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, AttributeError):
            log.warning("ignoring unreadable cache entry %s", path)
            return None

    def put(self, key: str, answer: str, meta: dict[str, Any] | None = None) -> None:
        entry = {"answer": answer, "time": time.time(), **(meta or {})}
        atomic_write_text(self.path(key), json.dumps(entry, ensure_ascii=False))

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.json"))


# ----------------------------------------------------------------------------------------------- retries


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; Retry-After is honoured up to max_retry_after seconds."""

    max_retries: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 300.0
    jitter: float = 0.25

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds before retry number attempt+1: the server's Retry-After when it sent one, else backoff."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after) + self.jitter * self.base_delay * rng.random()
        backoff = min(self.max_delay, self.base_delay * (2 ** attempt))
        return backoff * (1.0 + self.jitter * rng.random())


def call_with_retry(fn: Callable[[], T], policy: RetryPolicy, *, what: str = "request",
                    sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
                    on_retry: Callable[[TransientError, float], None] | None = None) -> T:
    """Call fn until it succeeds; TransientError is retried up to policy.max_retries times."""
    rng = rng or random.Random()
    for attempt in range(policy.max_retries + 1):
        try:
            return fn()
        except TransientError as exc:
            if attempt >= policy.max_retries:
                raise GaveUp(f"{what}: gave up after {attempt + 1} attempt(s); last error: {exc}") from None
            delay = policy.delay(attempt, exc.retry_after, rng)
            log.info("%s: %s; retrying in %.2fs", what, exc, delay)
            if on_retry is not None:
                on_retry(exc, delay)
            sleep(delay)
    raise AssertionError("unreachable")


# ----------------------------------------------------------------------------------------------- client


@dataclass
class ChatStats:
    asked: int = 0
    cached: int = 0
    retries: int = 0
    rejected: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + n)


class ChatClient:
    """A provider plus the answer cache and the retry policy. A fatal provider error (bad credentials, unknown
    model) is remembered: every later question fails with it at once, without asking the server again."""

    def __init__(self, provider: ChatProvider, cache: AnswerCache | None = None, retry: RetryPolicy | None = None):
        self.provider = provider
        self.cache = cache if cache is not None else AnswerCache()
        self.retry = retry or RetryPolicy()
        self.stats = ChatStats()
        self.fatal: ProviderError | None = None

    def ask(self, messages: Sequence[Message], sampling: Sampling | None = None, what: str = "request",
            accept: Callable[[str], object] | None = None) -> str:
        """The answer to `messages`, from the cache when it was asked before. With `accept`, an answer is kept
        in the cache only when accept(answer) does not raise ParseError (and a cached one that fails it is asked
        again); the ParseError of a fresh answer is raised."""
        sampling = sampling or Sampling()
        key = self.cache.key(self.provider.identity, messages, sampling)
        hit = self.cache.get(key)
        if hit is not None:
            try:
                if accept is not None:
                    accept(hit)
                self.stats.add("cached")
                return hit
            except ParseError:
                log.info("%s: the cached answer does not parse; asking again", what)
        answer = self._complete(messages, sampling, what)
        if accept is not None:
            accept(answer)
        self.cache.put(key, answer, {"provider": self.provider.identity, "what": what,
                                     "messages_sha256": self.cache.messages_digest(messages),
                                     "temperature": sampling.temperature, "seed": sampling.seed})
        return answer

    def _complete(self, messages: Sequence[Message], sampling: Sampling, what: str) -> str:
        if self.fatal is not None:
            raise self.fatal
        try:
            answer = call_with_retry(lambda: self.provider.complete(messages, sampling), self.retry, what=what,
                                     on_retry=lambda exc, delay: self.stats.add("retries"))
        except GaveUp:
            raise
        except ProviderError as exc:
            self.fatal = exc
            raise
        self.stats.add("asked")
        return answer

    def ask_parsed(self, messages: Sequence[Message], parse: Callable[[str], T], *, sampling: Sampling | None = None,
                   attempts: int = 3, what: str = "request",
                   repair: Callable[[str, ParseError], Sequence[Message]] | None = None) -> T:
        """Ask until `parse` accepts the answer. Attempt 0 uses `sampling`; later ones sample (temperature
        >= 0.7) with a different seed, or, when `repair` is given, re-ask with the repair messages."""
        sampling = sampling or Sampling()
        answers: list[str] = []
        errors: list[str] = []
        current = list(messages)
        for attempt in range(max(1, attempts)):
            s = sampling if attempt == 0 else replace(
                sampling, temperature=max(sampling.temperature, 0.7), seed=(sampling.seed or 0) + 1000 * attempt)
            try:
                text = self.ask(current, s, what=what, accept=lambda t: answers.append(t) or parse(t))
                return parse(text)
            except ParseError as exc:
                errors.append(str(exc))
                log.info("%s: answer %d did not parse (%s)", what, attempt + 1, exc)
                if repair is not None and attempt == 0:
                    current = list(repair(text, exc))
        self.stats.add("rejected")
        raise AnswerRejected(f"{what}: no usable answer in {len(answers)} attempt(s) ({'; '.join(errors)})", answers)

    def close(self) -> None:
        self.provider.close()


# ----------------------------------------------------------------------------------------------- runner


@dataclass
class RunResult:
    """Per-item results and failures (item -> reason) of `run_bounded`."""

    results: dict[Any, Any] = field(default_factory=dict)
    failures: dict[Any, str] = field(default_factory=dict)


def run_bounded(items: Iterable[R], fn: Callable[[R], Any], *, concurrency: int = 4, desc: str = "",
                progress: bool = True) -> RunResult:
    """Run fn(item) on a pool of `concurrency` threads. AnswerRejected and retry exhaustion become failures
    of that item; any other ProviderError (bad key, unknown model) stops the whole run."""
    from tqdm.auto import tqdm

    items = list(items)
    out = RunResult()
    bar = tqdm(total=len(items), desc=desc, disable=not progress, unit="item")

    stop = threading.Event()  # set by a fatal error: items not yet started are not run

    def one(item: R) -> None:
        try:
            if not stop.is_set():
                out.results[item] = fn(item)
        except (AnswerRejected, GaveUp) as exc:
            out.failures[item] = str(exc)
        except BaseException:
            stop.set()
            raise
        finally:
            bar.update(1)

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = [pool.submit(one, item) for item in items]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for fut in done:
            if fut.exception() is not None:
                for p in pending:
                    p.cancel()
                bar.close()
                raise fut.exception()  # type: ignore[misc]
    bar.close()
    return out
