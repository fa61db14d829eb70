"""The one LLM client (ecrs.inference.llm): the retry helper every caller asks through, the config, and the HTTP
backend's request and error mapping against a REAL OpenAI-compatible server on a loopback port (FastAPI + uvicorn
in a thread) whose answers depend on the model name:
    "fine" -> "ok" (with logprobs when asked); "busy" -> HTTP 429 with Retry-After: 7 on the first request;
    "echo" -> the request body as the answer; "gone" -> HTTP 404.
"""
from __future__ import annotations

import json
import threading
from collections import Counter

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from serving_fixtures import ThreadServer

from ecrs.config import ConfigError, load_config
from ecrs.inference.llm import (
    AnswerError,
    BackendError,
    Completion,
    FatalBackendError,
    LLMConfig,
    OpenAIBackend,
    Retry,
    make_backend,
)

# ---------------------------------------------------------------- the retry helper


class Flaky:
    """A fake backend call: raises `errors` in turn, then answers `answer`; counts its calls."""

    def __init__(self, *errors: Exception, answer: str = "42"):
        self.errors = list(errors)
        self.answer = answer
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.answer


def number(raw: str) -> int:
    if not raw.isdigit():
        raise AnswerError(f"not a number: {raw!r}")
    return int(raw)


def test_retry_fails_twice_then_answers():
    sleeps: list[float] = []
    call = Flaky(BackendError("HTTP 500"), BackendError("timeout"))
    ans = Retry(3, backoff=0.5, sleep=sleeps.append).ask(call, number)
    assert (ans.value, ans.raw, ans.kind, ans.error, ans.attempts) == (42, "42", "ok", None, 3)
    assert call.calls == 3 and sleeps == [0.5, 1.0]  # exponential backoff between the attempts


def test_retry_gives_up_and_returns_the_failure():
    sleeps: list[float] = []
    ans = Retry(3, backoff=0, sleep=sleeps.append).ask(Flaky(answer="many"), number)
    assert (ans.value, ans.raw, ans.kind, ans.attempts) == (None, "many", "parse", 3)
    assert ans.error == "unparseable answer: not a number: 'many'" and sleeps == [0, 0]
    call = Flaky(AnswerError("x"), BackendError("HTTP 503"), BackendError("HTTP 502"))
    ans = Retry(3, backoff=0, sleep=sleeps.append).ask(call, number)
    # the last attempt decides the kind; a backend error leaves no answer text behind
    assert (ans.value, ans.raw, ans.kind, ans.error, ans.attempts) == (None, None, "backend", "HTTP 502", 3)


def test_fatal_errors_are_not_retried():
    sleeps: list[float] = []
    call = Flaky(FatalBackendError("HTTP 401"))
    with pytest.raises(FatalBackendError, match="401"):
        Retry(5, sleep=sleeps.append).ask(call, number)
    assert call.calls == 1 and sleeps == []
    bug = Flaky(KeyError("a bug, not a flaky endpoint"))
    with pytest.raises(KeyError):
        Retry(5, sleep=sleeps.append).ask(bug, number)
    assert bug.calls == 1


def test_backoff_is_capped_and_retry_after_honoured():
    sleeps: list[float] = []
    Retry(6, backoff=1.0, max_backoff=4.0, sleep=sleeps.append).ask(Flaky(*[BackendError("x")] * 5), number)
    assert sleeps == [1.0, 2.0, 4.0, 4.0, 4.0]
    sleeps.clear()
    call = Flaky(BackendError("429", retry_after=7.0), BackendError("429", retry_after=0.1),
                 BackendError("429", retry_after=99.0))
    Retry(4, backoff=1.0, max_backoff=30.0, sleep=sleeps.append).ask(call, number)
    assert sleeps == [7.0, 2.0, 30.0]  # the longer of backoff and Retry-After, capped at max_backoff


# ---------------------------------------------------------------- the config

def test_config_errors_are_one_line(tmp_path):
    assert load_config(LLMConfig, None, ["base_url=http://x/v1", "model=m"]).base_url == "http://x/v1"
    for overrides, message in ((["base_url=http://x/v1"], "base_url needs model"),
                               (["model=m"], "for a local model set gguf"),
                               (["base_url=ftp://x", "model=m"], "must start with http"),
                               (["base_url=http://x/v1", "model=m", "gguf=a.gguf"], "either base_url or gguf"),
                               (["attempts=0"], "attempts must be >= 1"),
                               (["temperature=1"], "unknown key 'temperature'")):
        with pytest.raises(ConfigError, match=message) as e:
            load_config(LLMConfig, None, overrides)
        assert "\n" not in str(e.value)
    assert LLMConfig(attempts=4, backoff=0.0).retry() == Retry(4, 0.0, 30.0)


# ---------------------------------------------------------------- the HTTP backend

@pytest.fixture(scope="module")
def endpoint():
    seen: Counter[str] = Counter()
    lock = threading.Lock()
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        model = body["model"]
        with lock:
            seen[model] += 1
        if model == "gone":
            return JSONResponse({"error": "no such model"}, status_code=404)
        if model == "strict":
            return JSONResponse({"error": "response_format is not supported"}, status_code=400)
        if model == "down":
            return JSONResponse({"error": "overloaded"}, status_code=503)
        if model == "busy" and seen[model] == 1:
            return JSONResponse({"error": "slow down"}, status_code=429, headers={"Retry-After": "7"})
        content = json.dumps(body, sort_keys=True) if model == "echo" else "ok"
        choice = {"index": 0, "message": {"role": "assistant", "content": content}}
        if body.get("logprobs"):
            choice["logprobs"] = {"content": [{"token": "ok", "logprob": 0.0, "top_logprobs": []}]}
        return {"choices": [choice]}

    with ThreadServer(app) as server:
        yield seen, server.url + "/v1"


def test_http_backend_request_and_errors(endpoint):
    seen, url = endpoint
    backend = make_backend(LLMConfig(base_url=url, model="echo", max_tokens=9))
    assert isinstance(backend, OpenAIBackend) and (backend.name, backend.model) == ("openai-chat", "echo")
    schema = {"type": "object", "properties": {}}
    sent = json.loads(backend.complete([{"role": "user", "content": "hi"}], schema=schema, logprobs=True).text)
    # json_schema and logprobs are off by default for HTTP: some endpoints reject the fields
    assert sent == {"model": "echo", "messages": [{"role": "user", "content": "hi"}], "temperature": 0,
                    "max_tokens": 9}
    both = make_backend(LLMConfig(base_url=url, model="echo", json_schema=True, logprobs=True))
    sent = json.loads(both.complete([], schema=schema, schema_name="labels", max_tokens=4).text)
    assert sent["response_format"] == {"type": "json_schema",
                                       "json_schema": {"name": "labels", "strict": True, "schema": schema}}
    assert sent["max_tokens"] == 4 and "logprobs" not in sent  # asked for per request only
    assert "response_format" not in json.loads(both.complete([], schema={"type": "string", "enum": ["A"]}).text)
    fine = make_backend(LLMConfig(base_url=url, model="fine", logprobs=True))
    assert fine.complete([], logprobs=True) == Completion("ok", {"content": [
        {"token": "ok", "logprob": 0.0, "top_logprobs": []}]})
    assert fine.complete([]) == Completion("ok", None)
    with pytest.raises(FatalBackendError, match="HTTP 404"):
        make_backend(LLMConfig(base_url=url, model="gone")).complete([])
    # a request the endpoint refuses as such fails at once: asking again would be refused again
    with pytest.raises(FatalBackendError, match="HTTP 400.*not supported"):
        make_backend(LLMConfig(base_url=url, model="strict")).complete([])
    with pytest.raises(BackendError, match="HTTP 503"):
        make_backend(LLMConfig(base_url=url, model="down")).complete([])
    sleeps: list[float] = []
    busy = make_backend(LLMConfig(base_url=url, model="busy"))
    ans = LLMConfig(backoff=0.5).retry(sleep=sleeps.append).ask(lambda: busy.complete([]).text, str)
    assert (ans.value, ans.attempts, sleeps, seen["busy"]) == ("ok", 2, [7.0], 2)  # waited as the server asked
