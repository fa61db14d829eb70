"""LLM labelling of user utterances with the nine ECR emotions (ECR_SPEC §2): the paper's annotation step, so a
user can label their own dialogues.

    items = read_items("utterances.jsonl")                 # {"id", "text", "context"?, "labels"? (gold)}
    backend = OpenAIChatBackend("http://localhost:8000/v1", "my-model")   # or LlamaCppBackend(path)
    summary = annotate(items, backend, "labels.jsonl")     # resumable; failures -> labels.jsonl.failed.jsonl

Each utterance is sent once per attempt with a versioned prompt (`PROMPT_VERSION`) holding the annotation guide's
nine label definitions; the answer must be a JSON object {"labels": [1-2 of the nine, strongest first]}
(`parse_labels`, strict). HTTP errors, timeouts and unparseable answers are retried with exponential backoff;
an utterance still failing after the last attempt is written to `<out>.failed.jsonl` with the reason (never
dropped). Labelled rows are appended to `<out>` and flushed one by one, so an interrupted run loses nothing that
was labelled; a rerun skips the ids already in `<out>` and retries the recorded failures.

When items carry gold labels (e.g. `sample_bundled`), `agreement_report` compares the backend's labels with them.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ecrs.data.bundle import iter_jsonl
from ecrs.emotions import EMOTION_INDEX, EMOTIONS
from ecrs.errors import DataError, EcrsError

__all__ = [
    "LABEL_DEFINITIONS",
    "PROMPT_VERSION",
    "AnnotationItem",
    "AnnotationSummary",
    "BackendError",
    "FatalBackendError",
    "LabelParseError",
    "LlamaCppBackend",
    "OpenAIChatBackend",
    "agreement_report",
    "annotate",
    "build_messages",
    "cohen_kappa",
    "failed_path",
    "label_schema",
    "parse_labels",
    "read_items",
    "report_path",
    "sample_bundled",
]

PROMPT_VERSION = "emo-v1"
BUNDLED_ANNOTATIONS = "emotion/redial_emotion_train.jsonl.gz"

# The nine definitions of data/emotion/ANNOTATION_GUIDE.md, in EMOTIONS order (changing them = a new PROMPT_VERSION).
LABEL_DEFINITIONS: dict[str, str] = {
    "like": 'expresses liking, enjoyment, love or preference for a movie, genre, actor or kind of film '
            '("I loved Titanic", "I\'m really into horror", "Comedies are my favorite")',
    "curious": 'asks, wonders, wants to know more or explores options '
               '("What is it about?", "Any suggestions?", "Have you seen Up?", "Who is in it?")',
    "happy": 'sounds cheerful, excited, amused, pleased ("Awesome!", "haha that sounds fun", "Great, can\'t wait!")',
    "grateful": 'thanks or appreciates the recommender ("Thanks so much!", "I appreciate the help")',
    "negative": 'dislikes, is disappointed, bored, annoyed, scared, sad, uninterested, rejects '
                '("I hated it", "Not a fan of musicals", "That one was boring", '
                '"No, I\'ve seen it and didn\'t like it")',
    "neutral": 'states facts or requests with no noticeable emotion '
               '("I\'m looking for a movie for tonight", "I saw it last year", "Hello")',
    "nostalgia": 'reminisces about the past, childhood, old favorites, memories '
                 '("I watched that as a kid", "That brings back memories", '
                 '"They don\'t make them like that anymore")',
    "agreement": 'agrees, accepts a suggestion, confirms, says they will watch it '
                 '("Yes I\'ll check it out", "Sure, sounds good", "Yes, I have seen that" (confirming))',
    "surprise": 'is surprised, astonished, didn\'t expect something ("Wow, really?", '
                '"I didn\'t know that was a book!", "No way")',
}
assert tuple(LABEL_DEFINITIONS) == EMOTIONS

_SYSTEM = (
    "You label the emotion(s) that the USER (the seeker) expresses in one utterance of a movie-recommendation "
    "chat. The recommender's line before it is given only as context.\n\n"
    "Use ONLY these nine labels:\n"
    + "\n".join(f"- {lab}: the user {d}" for lab, d in LABEL_DEFINITIONS.items())
    + "\n\nRules:\n"
    "- Give 1 or 2 labels, the strongest first. Use 2 only when a second emotion is clearly present too.\n"
    "- Judge the user's utterance; the recommender's line is only there to understand it "
    '(e.g. "Yes!" after a suggestion = agreement).\n'
    "- Greetings and plain requests are neutral unless excitement/gratitude is clearly expressed.\n"
    "- Questions are usually curious; a liking stated inside a question can add like.\n"
    '- Typos, slang, emoticons count (":)" suggests happy).\n\n'
    'Answer with a JSON object only, no other text, e.g. {"labels": ["like", "curious"]} or {"labels": ["neutral"]}.'
)


def build_messages(text: str, context: str = "") -> list[dict[str, str]]:
    """The chat messages of prompt `PROMPT_VERSION` for one utterance."""
    user = (f"Recommender: {context.strip() or '(none)'}\n"
            f"User: {text.strip()}\n\n"
            'Which of the nine labels does the user express? Answer {"labels": [...]} only.')
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]


def label_schema() -> dict[str, Any]:
    """JSON schema of a valid answer, for constrained decoding (llama.cpp grammar / OpenAI structured outputs)."""
    return {"type": "object",
            "properties": {"labels": {"type": "array", "items": {"type": "string", "enum": list(EMOTIONS)},
                                      "minItems": 1, "maxItems": 2}},
            "required": ["labels"], "additionalProperties": False}


# ---------------------------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------------------------

class LabelParseError(ValueError):
    """The model's answer is not a JSON object with 1-2 of the nine labels."""


def _json_objects(raw: str) -> Iterable[Any]:
    """The whole text as JSON, then every JSON value that starts at a '{' inside it, left to right."""
    dec = json.JSONDecoder()
    s = raw.strip()
    try:
        yield json.loads(s)
        return
    except json.JSONDecodeError:
        pass
    i = s.find("{")
    while i != -1:
        try:
            obj, _ = dec.raw_decode(s, i)
            yield obj
        except json.JSONDecodeError:
            pass
        i = s.find("{", i + 1)


def parse_labels(raw: str) -> list[str]:
    """1-2 labels, strongest first, from a model answer.

    Accepted: a JSON object with key "labels" holding a list of 1-2 strings from the nine labels (case and
    surrounding spaces ignored; a repeated label counts once), either alone or embedded in surrounding text (a
    code fence, a sentence). The first embedded object that has a "labels" key decides. Anything else raises
    LabelParseError: no such object, a label outside the nine, 0 or more than 2 distinct labels, non-strings.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise LabelParseError("empty answer")
    for obj in _json_objects(raw):
        if not isinstance(obj, dict) or "labels" not in obj:
            continue
        labels = obj["labels"]
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise LabelParseError(f'"labels" must be a list of strings, got {json.dumps(labels)[:80]}')
        out: list[str] = []
        for x in labels:
            lab = x.strip().lower()
            if lab not in EMOTION_INDEX:
                raise LabelParseError(f"unknown label {x!r}")
            if lab not in out:
                out.append(lab)
        if not 1 <= len(out) <= 2:
            raise LabelParseError(f"expected 1-2 distinct labels, got {len(out)}")
        return out
    raise LabelParseError('no JSON object with a "labels" key')


# ---------------------------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------------------------

class BackendError(Exception):
    """A retryable backend failure (HTTP 5xx/429, timeout, connection error, malformed response)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class FatalBackendError(EcrsError):
    """A failure no retry can fix (bad API key, unknown model or URL): the run stops."""


class Backend(Protocol):
    name: str   # "openai-chat" | "llama.cpp"
    model: str
    max_concurrency: int

    def complete(self, messages: list[dict[str, str]]) -> str: ...

    def close(self) -> None: ...


def choice_content(choice: dict[str, Any]) -> str:
    """The message text of one chat-completion choice; BackendError when it has none."""
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise BackendError(f"malformed response: content is {type(content).__name__}")
    return content


class OpenAIChatBackend:
    """Any OpenAI-compatible chat endpoint: POST {base_url}/chat/completions, temperature 0. Thread-safe.

    `json_schema=True` also sends `response_format` with the label schema (OpenAI structured outputs; llama.cpp
    and vLLM servers accept it too, others may reject it)."""

    name = "openai-chat"

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 60.0,
                 max_tokens: int = 64, json_schema: bool = False, max_concurrency: int = 8):
        import httpx

        if not base_url.startswith(("http://", "https://")):
            raise EcrsError(f"--base-url must start with http:// or https://, got {base_url!r}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.max_tokens = max_tokens
        self.json_schema = json_schema
        self.max_concurrency = max_concurrency
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._httpx = httpx
        self._client = httpx.Client(headers=headers, timeout=timeout)

    def complete(self, messages: list[dict[str, str]]) -> str:
        extra: dict[str, Any] = {}
        if self.json_schema:
            extra["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "emotion_labels", "strict": True, "schema": label_schema()}}
        return choice_content(self.chat(messages, extra))

    def chat(self, messages: list[dict[str, str]], extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST one greedy chat completion (`extra` adds request fields, e.g. logprobs) and return its first
        choice. HTTP 401/403/404 raise FatalBackendError; other failures BackendError (retryable)."""
        httpx = self._httpx
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": 0,
                                "max_tokens": self.max_tokens, **(extra or {})}
        try:
            r = self._client.post(self.url, json=body)
        except httpx.TimeoutException as e:
            raise BackendError(f"timeout ({type(e).__name__})") from None
        except httpx.HTTPError as e:
            raise BackendError(f"{type(e).__name__}: {e}") from None
        if r.status_code in (401, 403, 404):
            raise FatalBackendError(f"{self.url}: HTTP {r.status_code}: {r.text[:200]}")
        if r.status_code >= 400:
            retry_after = None
            try:
                retry_after = float(r.headers.get("retry-after", ""))
            except ValueError:
                pass
            raise BackendError(f"HTTP {r.status_code}: {r.text[:200]}", retry_after)
        try:
            choice = r.json()["choices"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            raise BackendError(f"malformed response: {r.text[:200]}") from None
        if not isinstance(choice, dict):
            raise BackendError(f"malformed response: {r.text[:200]}")
        return choice

    def close(self) -> None:
        self._client.close()


class LlamaCppBackend:
    """A local GGUF chat model through the project's llama.cpp engine (`ecrs.inference.llama.LlamaCppEngine`),
    prompted with the model's own chat template, greedy. `json_schema=True` (default) constrains decoding to the
    label schema with llama.cpp's grammar, which small models need to produce valid JSON at all."""

    name = "llama.cpp"
    max_concurrency = 1  # one llama.cpp slot

    def __init__(self, path: str | Path | None = None, n_threads: int = 2, n_ctx: int = 2048,
                 max_tokens: int = 48, json_schema: bool = True):
        from ecrs.inference.llama import LlamaCppEngine
        from ecrs.inference.model_files import smollm2_gguf

        self.path = Path(path) if path is not None else smollm2_gguf()
        self.model = self.path.name
        self.max_tokens = max_tokens
        self.json_schema = json_schema
        self.engine = LlamaCppEngine.open(self.path, n_threads=n_threads, n_ctx=n_ctx)
        self._lock = threading.Lock()

    def complete(self, messages: list[dict[str, str]]) -> str:
        req: dict[str, Any] = {"messages": messages, "temperature": 0.0, "max_tokens": self.max_tokens}
        if self.json_schema:
            req["response_format"] = {"type": "json_object", "schema": label_schema()}
        try:
            with self._lock:
                r = self.engine.server.handle_chat_completions(req)
        except (ValueError, RuntimeError) as e:
            raise BackendError(f"llama.cpp: {e}") from None
        if not isinstance(r, dict) or "choices" not in r:
            raise BackendError(f"llama.cpp error: {str(r)[:200]}")
        content = r["choices"][0].get("message", {}).get("content")
        if not isinstance(content, str):
            raise BackendError(f"llama.cpp: no message content in {str(r)[:200]}")
        return content

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------------------------
# Items
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AnnotationItem:
    id: str
    text: str
    context: str = ""
    gold: tuple[str, ...] = ()  # gold labels (strongest first), if known


def read_items(path: str | Path) -> list[AnnotationItem]:
    """Utterances to label, one JSON object a line: "id" (string or number), "text" (non-empty), optional
    "context" (the recommender's line before), optional "labels" (gold, 1-2 of the nine, for the agreement
    report). Other keys are ignored. Raises DataError naming file and line."""
    p = Path(path)
    items: list[AnnotationItem] = []
    seen: set[str] = set()
    for lineno, row in iter_jsonl(p):
        if not isinstance(row, dict) or "id" not in row or not isinstance(row.get("text"), str):
            raise DataError('expected an object with "id" and "text" (string)', p, lineno)
        if not isinstance(row["id"], (str, int)) or isinstance(row["id"], bool):
            raise DataError(f'"id" must be a string or integer, got {row["id"]!r}', p, lineno)
        iid = str(row["id"])
        if iid in seen:
            raise DataError(f"duplicate id {iid!r}", p, lineno)
        if not row["text"].strip():
            raise DataError(f"empty text for id {iid!r}", p, lineno)
        ctx = row.get("context") or ""
        if not isinstance(ctx, str):
            raise DataError(f'"context" must be a string for id {iid!r}', p, lineno)
        gold = row.get("labels") or []
        if (not isinstance(gold, list) or len(gold) > 2
                or any(not isinstance(g, str) or g not in EMOTION_INDEX for g in gold)):
            raise DataError(f'"labels" must be 1-2 of {", ".join(EMOTIONS)}; got {gold!r}', p, lineno)
        seen.add(iid)
        items.append(AnnotationItem(iid, row["text"], ctx, tuple(gold)))
    if not items:
        raise DataError("no utterances", p)
    return items


def sample_bundled(n: int, seed: int = 0, path: str = BUNDLED_ANNOTATIONS) -> list[AnnotationItem]:
    """`n` bundled LLM-annotated utterances (with their labels as gold), the first `n` in sha256(seed:id) order:
    the same sample for the same (n, seed) on every machine; a larger n extends a smaller one."""
    from ecrs.training.emotion import load_examples

    if n < 1:
        raise EcrsError(f"--sample-bundled must be >= 1, got {n}")
    examples = load_examples(path)
    if n > len(examples):
        raise EcrsError(f"--sample-bundled {n}: only {len(examples)} annotated utterances are bundled")
    examples = sorted(examples, key=lambda e: hashlib.sha256(f"{seed}:{e.id}".encode()).hexdigest())[:n]
    return [AnnotationItem(e.id, e.text, e.context, e.labels) for e in examples]


# ---------------------------------------------------------------------------------------------------------------
# Output files
# ---------------------------------------------------------------------------------------------------------------

def failed_path(out: str | Path) -> Path:
    return Path(f"{out}.failed.jsonl")


def report_path(out: str | Path) -> Path:
    return Path(f"{out}.report.json")


def _read_rows(path: Path, repair: bool) -> list[dict[str, Any]]:
    """Rows of an output file. A last line without its newline (a run killed mid-write) is cut off when
    `repair`, else ignored; any other unreadable line raises DataError."""
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        if repair:
            with path.open("r+b") as f:
                f.truncate(keep)
        data = data[:keep]
    rows = []
    for lineno, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"invalid JSON ({e.msg})", path, lineno) from None
        if not isinstance(row, dict) or "id" not in row:
            raise DataError('expected an object with "id"', path, lineno)
        rows.append(row)
    return rows


def _write_line(f, row: dict[str, Any]) -> None:
    f.write(json.dumps(row, ensure_ascii=False) + "\n")
    f.flush()
    os.fsync(f.fileno())


# ---------------------------------------------------------------------------------------------------------------
# The labelling loop
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class _Outcome:
    item: AnnotationItem
    labels: list[str] | None
    raw: str | None
    error: str | None
    kind: str  # "ok" | "parse" | "backend"
    attempts: int


def _label_one(item: AnnotationItem, backend: Backend, attempts: int, backoff: float, max_backoff: float,
               sleep: Callable[[float], None]) -> _Outcome:
    messages = build_messages(item.text, item.context)
    raw: str | None = None
    error, kind = "", "backend"
    for attempt in range(1, attempts + 1):
        retry_after = None
        try:
            raw = backend.complete(messages)
            return _Outcome(item, parse_labels(raw), raw, None, "ok", attempt)
        except LabelParseError as e:
            error, kind = f"unparseable answer: {e}", "parse"
        except BackendError as e:
            error, kind, raw, retry_after = str(e), "backend", None, e.retry_after
        if attempt < attempts:
            delay = min(max_backoff, backoff * 2 ** (attempt - 1))
            sleep(max(delay, min(retry_after or 0.0, max_backoff)))
    return _Outcome(item, None, raw, error, kind, attempts)


@dataclass
class AnnotationSummary:
    out: Path
    failed_file: Path
    n_items: int
    skipped: int          # already labelled in `out` before this run
    labelled: int         # labelled by this run
    failed: int           # failed in this run (recorded in failed_file)
    seconds: float
    report: dict[str, Any] | None = None
    failures: list[str] = field(default_factory=list)  # ids


def annotate(items: Sequence[AnnotationItem], backend: Backend, out: str | Path, *, attempts: int = 3,
             backoff: float = 1.0, max_backoff: float = 30.0, concurrency: int = 1, keep_raw: bool = False,
             retry_failed: bool = True, max_consecutive_errors: int = 5, progress: bool = True,
             sleep: Callable[[float], None] = time.sleep) -> AnnotationSummary:
    """Label `items` with `backend`, appending one row per labelled utterance to `out`:

        {"id", "labels": [1-2, strongest first], "backend", "model", "prompt_version", "raw"? (keep_raw)}

    and one row per utterance that failed every attempt to `<out>.failed.jsonl`:

        {"id", "failed": reason, "kind": "parse" | "backend", "attempts", "backend", "model", "prompt_version",
         "raw"? (the last answer)}

    Ids already in `out` are skipped. Ids in the failed file are retried (`retry_failed`) or skipped; the failed
    file is rewritten at the end to hold only ids still unlabelled. Rows are written in completion order (= input
    order when concurrency is 1). `max_consecutive_errors` utterances failing in a row on backend errors (not
    parse errors) stop the run with FatalBackendError: the endpoint is down, not the utterance. When items carry
    gold labels the agreement report is computed over the whole `out` file and written to `<out>.report.json`.
    """
    if attempts < 1:
        raise EcrsError(f"attempts must be >= 1, got {attempts}")
    if concurrency < 1:
        raise EcrsError(f"concurrency must be >= 1, got {concurrency}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fpath = failed_path(out)
    done_rows = _read_rows(out, repair=True)
    for row in done_rows:
        made = (row.get("backend"), row.get("model"), row.get("prompt_version"))
        if made != (backend.name, backend.model, PROMPT_VERSION):
            raise EcrsError(f"{out} holds labels from backend={made[0]} model={made[1]} prompt={made[2]}; this run "
                            f"is backend={backend.name} model={backend.model} prompt={PROMPT_VERSION}: "
                            "use another --out")
    done = {str(r["id"]) for r in done_rows}
    prior_failed = {str(r["id"]): r for r in _read_rows(fpath, repair=True)}
    skip = done | (set() if retry_failed else set(prior_failed))
    todo = [it for it in items if it.id not in skip]
    base = {"backend": backend.name, "model": backend.model, "prompt_version": PROMPT_VERSION}
    workers = max(1, min(concurrency, backend.max_concurrency, len(todo) or 1))
    summary = AnnotationSummary(out, fpath, len(items), len(items) - len(todo), 0, 0, 0.0)
    new_failed: dict[str, dict[str, Any]] = {}

    t0 = time.perf_counter()
    bar = _progress(len(todo), progress)
    consecutive = 0
    ex = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="annotate")
    try:
        with out.open("a", encoding="utf-8") as fo, fpath.open("a", encoding="utf-8") as ff:
            pending: set[cf.Future] = set()
            order: dict[cf.Future, int] = {}  # submission number: rows of one wait() are written in input order
            queue = iter(todo)
            while True:
                while len(pending) < 2 * workers:  # bounded: a Ctrl-C leaves few requests in flight
                    it = next(queue, None)
                    if it is None:
                        break
                    fut = ex.submit(_label_one, it, backend, attempts, backoff, max_backoff, sleep)
                    order[fut] = len(order)
                    pending.add(fut)
                if not pending:
                    break
                finished, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for fut in sorted(finished, key=order.__getitem__):
                    o: _Outcome = fut.result()  # FatalBackendError propagates
                    if o.labels is not None:
                        row = {"id": o.item.id, "labels": o.labels, **base}
                        if keep_raw:
                            row["raw"] = o.raw
                        _write_line(fo, row)
                        summary.labelled += 1
                        consecutive = 0
                    else:
                        row = {"id": o.item.id, "failed": o.error, "kind": o.kind, "attempts": o.attempts, **base}
                        if o.raw is not None:
                            row["raw"] = o.raw
                        _write_line(ff, row)
                        new_failed[o.item.id] = row
                        summary.failed += 1
                        summary.failures.append(o.item.id)
                        consecutive = consecutive + 1 if o.kind == "backend" else 0
                    bar.update(1)
                    bar.set_postfix(failed=summary.failed, refresh=False)
                if max_consecutive_errors and consecutive >= max_consecutive_errors:
                    raise FatalBackendError(
                        f"{consecutive} utterances in a row failed on backend errors (last: "
                        f"{new_failed[summary.failures[-1]]['failed']}); stopping. Labelled rows are kept in "
                        f"{out}; rerun the same command to resume")
    finally:
        ex.shutdown(wait=False, cancel_futures=True)
        bar.close()
    summary.seconds = time.perf_counter() - t0

    # Compact the failed file: the latest failure per id, only ids that are still unlabelled.
    labelled_ids = {str(r["id"]) for r in _read_rows(out, repair=False)}
    keep = {i: r for i, r in prior_failed.items() if i not in labelled_ids}
    keep.update({i: r for i, r in new_failed.items() if i not in labelled_ids})
    if keep:
        tmp = fpath.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in keep.values()), encoding="utf-8")
        tmp.replace(fpath)
    else:
        fpath.unlink(missing_ok=True)

    if any(it.gold for it in items):
        rep = agreement_report(items, _read_rows(out, repair=False), list(keep.values()))
        rep.update(base)
        summary.report = rep
        report_path(out).write_text(json.dumps(rep, indent=2) + "\n")
    return summary


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="annotating", unit="utt", disable=not enabled, dynamic_ncols=True)


# ---------------------------------------------------------------------------------------------------------------
# Agreement with gold labels
# ---------------------------------------------------------------------------------------------------------------

def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Cohen's kappa of two label sequences (one label per item); None when undefined (expected agreement 1,
    i.e. both raters always give the same single label, or no items)."""
    if len(a) != len(b):
        raise ValueError("sequences differ in length")
    n = len(a)
    if n == 0:
        return None
    p_o = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    p_e = sum(ca[k] * cb[k] for k in ca) / (n * n)
    if p_e >= 1.0:
        return None
    return (p_o - p_e) / (1.0 - p_e)


def agreement_report(items: Sequence[AnnotationItem], rows: Sequence[dict[str, Any]],
                     failed_rows: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """Backend labels vs gold labels, over the items that have gold labels.

    primary_agreement: share of labelled items whose first label equals the gold first label.
    kappa_primary: Cohen's kappa of the first labels (labelled items).
    hit_rate: share of labelled items whose (1-2) labels contain the gold first label (Recall@2-style).
    *_all variants count items without labels (failed or not yet labelled) as disagreements.
    """
    gold = {it.id: it.gold for it in items if it.gold}
    pred = {str(r["id"]): r["labels"] for r in rows if str(r["id"]) in gold}
    failed = sorted(str(r["id"]) for r in failed_rows if str(r["id"]) in gold and str(r["id"]) not in pred)
    ids = [i for i in gold if i in pred]
    agree = sum(pred[i][0] == gold[i][0] for i in ids)
    hits = sum(gold[i][0] in pred[i] for i in ids)
    n, n_gold = len(ids), len(gold)
    confusion: dict[str, dict[str, int]] = {}
    for i in ids:
        row = confusion.setdefault(gold[i][0], {})
        row[pred[i][0]] = row.get(pred[i][0], 0) + 1
    return {
        "prompt_version": PROMPT_VERSION,
        "n_gold": n_gold,
        "n_labelled": n,
        "n_failed": len(failed),
        "n_missing": n_gold - n - len(failed),
        "primary_agreement": agree / n if n else None,
        "primary_agreement_count": agree,
        "kappa_primary": cohen_kappa([gold[i][0] for i in ids], [pred[i][0] for i in ids]),
        "hit_rate": hits / n if n else None,
        "hit_count": hits,
        "primary_agreement_all": agree / n_gold if n_gold else None,
        "hit_rate_all": hits / n_gold if n_gold else None,
        "two_label_share": sum(len(pred[i]) == 2 for i in ids) / n if n else None,
        "gold_primary_counts": dict(Counter(gold[i][0] for i in gold)),
        "pred_primary_counts": dict(Counter(pred[i][0] for i in ids)),
        "confusion_primary": confusion,
        "failed_ids": failed,
        "definitions": {
            "primary_agreement": "labelled items whose first label equals the gold first label / n_labelled",
            "kappa_primary": "Cohen's kappa of first labels over labelled items (null when undefined)",
            "hit_rate": "labelled items whose labels contain the gold first label / n_labelled (Recall@2-style)",
            "*_all": "same counts divided by n_gold: failed or missing items count as misses",
            "confusion_primary": "gold first label -> backend first label -> count",
        },
    }
