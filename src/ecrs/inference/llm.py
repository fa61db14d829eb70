"""The one LLM client of the project: emotion annotation, the judge and the LLM seeker all ask through it.

    cfg = LLMConfig(base_url="http://127.0.0.1:8080/v1", model="local")   # or LLMConfig(gguf="model.gguf")
    backend = make_backend(cfg)                   # OpenAIBackend (HTTP) or LlamaCppBackend (in-process llama.cpp)
    answer = cfg.retry().ask(lambda: backend.complete(messages).text, parse)   # parse(str) -> value, may raise
    answer.value, answer.error, answer.attempts   # value None when every attempt failed

Every request is greedy (temperature 0). A backend either answers, raises `BackendError` (worth retrying: HTTP
5xx, 408 or 429, a timeout, a connection that failed or dropped, a malformed response) or raises `FatalBackendError`
(no retry can fix it: any other HTTP 4xx, such as a bad key, model, URL path or request field). A caller's parser
raises `AnswerError` when the text is not in the form asked for. `Retry.ask` retries the first with exponential
backoff (tenacity), honouring an HTTP Retry-After, and the last at once; it returns the failure as data after the
last attempt, and a fatal error propagates at once.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import httpx
import tenacity

from ecrs.errors import EcrsError
from ecrs.inference.llama import LlamaCppEngine
from ecrs.inference.model_files import smollm2_gguf

__all__ = [
    "TOP_LOGPROBS",
    "Answer",
    "AnswerError",
    "Backend",
    "BackendError",
    "Completion",
    "FatalBackendError",
    "LLMConfig",
    "LlamaCppBackend",
    "OpenAIBackend",
    "Retry",
    "make_backend",
]

TOP_LOGPROBS = 20  # OpenAI's maximum; the judge's few allowed answers sit far inside it
RETRYABLE_4XX = (408, 429)  # request timeout, rate limit: the same request may pass later

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------------

class BackendError(Exception):
    """A retryable backend failure (HTTP 5xx/429, timeout, connection error, malformed response)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after  # seconds the server asked us to wait (HTTP Retry-After), if it did


class FatalBackendError(EcrsError):
    """A failure no retry can fix (bad API key, unknown model or URL): the run stops."""


class AnswerError(ValueError):
    """The model's answer is not in the form asked for (each caller's parser raises a subclass); retried."""


# ---------------------------------------------------------------------------------------------------------------
# Retries
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class Answer(Generic[T]):
    """What one question came to. `attempts` 0 means it was not asked (e.g. served from the judge's cache)."""
    value: T | None            # the parsed answer; None when every attempt failed
    raw: str | None            # the last answer text; None after a backend error
    error: str | None = None   # why the last attempt failed
    kind: str = "ok"           # "ok" | "parse" (unparseable answer) | "backend"
    attempts: int = 0


@dataclass(frozen=True)
class Retry:
    """Try a request up to `attempts` times; before retry n wait min(max_backoff, backoff * 2^(n-1)) seconds, or
    the server's Retry-After when longer (capped at max_backoff too). `sleep` is injectable for tests."""
    attempts: int = 3
    backoff: float = 1.0
    max_backoff: float = 30.0
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise EcrsError(f"attempts must be >= 1, got {self.attempts}")

    def _wait(self, state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, AnswerError):
            return 0.0  # the endpoint answered: asking again at once costs it nothing more than waiting would
        delay = tenacity.wait_exponential(multiplier=self.backoff, max=self.max_backoff)(state)
        asked = getattr(error, "retry_after", None)
        return max(delay, min(asked or 0.0, self.max_backoff))

    def ask(self, request: Callable[[], str], parse: Callable[[str], T]) -> Answer[T]:
        """`parse(request())`, retried on BackendError and AnswerError. FatalBackendError (and any other
        exception) propagates: retrying cannot fix it."""
        raw: list[str | None] = [None]

        def once() -> T:
            raw[0] = None  # a backend error leaves no answer behind
            raw[0] = request()
            return parse(raw[0])

        def gave_up(state: tenacity.RetryCallState) -> Answer[T]:
            e = state.outcome.exception()
            if isinstance(e, AnswerError):
                return Answer(None, raw[0], f"unparseable answer: {e}", "parse", state.attempt_number)
            return Answer(None, None, str(e), "backend", state.attempt_number)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts), wait=self._wait, sleep=self.sleep,
            retry=tenacity.retry_if_exception_type((BackendError, AnswerError)), retry_error_callback=gave_up)
        out = retrying(once)
        if isinstance(out, Answer):
            return out
        return Answer(out, raw[0], attempts=retrying.statistics["attempt_number"])


# ---------------------------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class LLMConfig:
    """The `llm:` section of `ecrs annotate-emotions`, `ecrs judge` and `ecrs simulate`: an OpenAI-compatible
    endpoint (`base_url` + `model`) or, when `base_url` is unset, a local GGUF model through llama.cpp."""
    base_url: str | None = None          # e.g. https://api.openai.com/v1 or http://127.0.0.1:8080/v1
    model: str | None = None             # the model name the endpoint serves (required with base_url)
    api_key_env: str = "OPENAI_API_KEY"  # environment variable holding the API key; unset = no key
    timeout: float = 120.0               # seconds per HTTP request
    gguf: str | None = None              # local GGUF chat model; None = the command's default model
    threads: int = 2                     # llama.cpp threads
    n_ctx: int = 4096                    # llama.cpp context size
    max_tokens: int = 64                 # answer length limit (a caller may ask for fewer)
    json_schema: bool | None = None      # constrain answers to the caller's schema; None = on locally, off for HTTP
    logprobs: bool = False               # HTTP: also ask for top log-probabilities (llama.cpp always can)
    attempts: int = Retry.attempts       # tries per question
    backoff: float = Retry.backoff       # first retry delay in seconds, doubled per retry
    max_backoff: float = Retry.max_backoff
    concurrency: int = 1                 # parallel HTTP requests (llama.cpp has one slot)

    def __post_init__(self) -> None:
        # ValueError: load_config reports it as one line naming the section.
        if self.base_url is not None:
            if not self.base_url.startswith(("http://", "https://")):
                raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
            if not self.model:
                raise ValueError("base_url needs model (the model name the endpoint serves)")
            if self.gguf:
                raise ValueError("give either base_url or gguf, not both")
        elif self.model:
            raise ValueError("model names a model of an HTTP endpoint (base_url); for a local model set gguf")
        for name in ("threads", "n_ctx", "max_tokens", "attempts", "concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.timeout <= 0 or self.backoff < 0 or self.max_backoff < 0:
            raise ValueError("timeout must be > 0, backoff and max_backoff >= 0")

    def retry(self, sleep: Callable[[float], None] = time.sleep) -> Retry:
        return Retry(self.attempts, self.backoff, self.max_backoff, sleep)


# ---------------------------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Completion:
    text: str
    logprobs: Any = None  # OpenAI-style {"content": [{"token", "logprob", "top_logprobs"}, ...]} when asked for


class Backend(Protocol):
    name: str          # "openai-chat" | "llama.cpp": recorded in outputs
    model: str         # the endpoint's model name or the GGUF file name: part of cache keys and outputs
    concurrency: int   # parallel requests it takes
    logprobs: bool     # whether `complete(..., logprobs=True)` returns log-probabilities

    def complete(self, messages: list[dict[str, str]], *, schema: dict[str, Any] | None = None,
                 schema_name: str = "answer", max_tokens: int | None = None,
                 logprobs: bool = False) -> Completion: ...

    def close(self) -> None: ...


class OpenAIBackend:
    """Any OpenAI-compatible chat endpoint: POST {base_url}/chat/completions, temperature 0. Thread-safe.

    With `json_schema` an object `schema` is sent as `response_format` (OpenAI structured outputs; llama.cpp and
    vLLM servers accept it, others may reject it); a bare-word schema cannot be expressed there and is not sent.
    `logprobs` (cfg.logprobs) is opt-in because some endpoints reject the field."""

    name = "openai-chat"

    def __init__(self, cfg: LLMConfig):
        if not cfg.base_url or not cfg.model:
            raise EcrsError("an HTTP backend needs base_url and model")
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        self.model = cfg.model
        self.max_tokens = cfg.max_tokens
        self.json_schema = bool(cfg.json_schema)
        self.logprobs = cfg.logprobs
        self.concurrency = cfg.concurrency
        key = os.environ.get(cfg.api_key_env)
        self._client = httpx.Client(headers={"Authorization": f"Bearer {key}"} if key else {}, timeout=cfg.timeout)

    def complete(self, messages: list[dict[str, str]], *, schema: dict[str, Any] | None = None,
                 schema_name: str = "answer", max_tokens: int | None = None,
                 logprobs: bool = False) -> Completion:
        """One greedy chat completion. A request the endpoint refuses as such (HTTP 4xx but 408 and 429: a bad key,
        model, URL or field) raises FatalBackendError; a failure a later try may not meet (5xx, 408, 429, a timeout, a
        dropped connection, a malformed answer) BackendError."""
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": 0,
                                "max_tokens": max_tokens or self.max_tokens}
        if schema is not None and self.json_schema and schema.get("type") == "object":
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": schema_name, "strict": True, "schema": schema}}
        if logprobs and self.logprobs:
            body.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
        try:
            r = self._client.post(self.url, json=body)
        except httpx.TimeoutException as e:
            raise BackendError(f"timeout ({type(e).__name__})") from None
        except httpx.HTTPError as e:
            raise BackendError(f"{type(e).__name__}: {e}") from None
        if 400 <= r.status_code < 500 and r.status_code not in RETRYABLE_4XX:
            raise FatalBackendError(f"{self.url}: HTTP {r.status_code}: {r.text[:200]}")
        if r.status_code >= 400:
            try:
                retry_after = float(r.headers.get("retry-after", ""))
            except ValueError:
                retry_after = None  # absent, or an HTTP date: the backoff decides
            raise BackendError(f"HTTP {r.status_code}: {r.text[:200]}", retry_after)
        try:
            choice = r.json()["choices"][0]
            content = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise BackendError(f"malformed response: {r.text[:200]}") from None
        if not isinstance(content, str):
            raise BackendError(f"malformed response: content is {type(content).__name__}")
        return Completion(content, choice.get("logprobs") if logprobs and self.logprobs else None)

    def close(self) -> None:
        self._client.close()


class LlamaCppBackend:
    """A local GGUF chat model through the project's llama.cpp engine (`ecrs.inference.llama.LlamaCppEngine`),
    prompted with the model's own chat template, greedy. With `json_schema` (default on) decoding is constrained
    to the caller's schema by llama.cpp's grammar, which small models need to answer in the format at all: an
    object schema as a JSON grammar, a bare-word schema ({"type": "string", "enum": [...]}) as the alternatives."""

    name = "llama.cpp"
    concurrency = 1  # one llama.cpp slot
    logprobs = True

    def __init__(self, cfg: LLMConfig, path: str | Path):
        self.path = Path(path)
        self.model = self.path.name
        self.max_tokens = cfg.max_tokens
        self.json_schema = cfg.json_schema is not False
        self.engine = LlamaCppEngine.open(self.path, n_threads=cfg.threads, n_ctx=cfg.n_ctx)
        self._lock = threading.Lock()

    def complete(self, messages: list[dict[str, str]], *, schema: dict[str, Any] | None = None,
                 schema_name: str = "answer", max_tokens: int | None = None,
                 logprobs: bool = False) -> Completion:
        req: dict[str, Any] = {"messages": messages, "temperature": 0.0, "max_tokens": max_tokens or self.max_tokens}
        if schema is not None and self.json_schema:
            if schema.get("type") == "string":
                req["grammar"] = "root ::= " + " | ".join(json.dumps(str(v)) for v in schema["enum"]) + "\n"
            else:
                req["response_format"] = {"type": "json_object", "schema": schema}
        if logprobs:
            req.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
        try:
            with self._lock:
                r = self.engine.server.handle_chat_completions(req)
        except (ValueError, RuntimeError) as e:
            raise BackendError(f"llama.cpp: {e}") from None
        choices = r.get("choices") if isinstance(r, dict) else None
        content = choices[0].get("message", {}).get("content") if choices else None
        if not isinstance(content, str):
            raise BackendError(f"llama.cpp: no message content in {str(r)[:200]}")
        return Completion(content, choices[0].get("logprobs") if logprobs else None)

    def close(self) -> None:
        pass


def make_backend(cfg: LLMConfig, default_gguf: Callable[[], Path] = smollm2_gguf) -> Backend:
    """The backend `cfg` names: HTTP when base_url is set, else llama.cpp with cfg.gguf or `default_gguf()` (the
    installed SmolLM2-135M-Instruct unless the command has another default)."""
    if cfg.base_url:
        return OpenAIBackend(cfg)
    return LlamaCppBackend(cfg, Path(cfg.gguf) if cfg.gguf else default_gguf())
