"""LLM labelling of user utterances with the nine ECR emotions (ECR_SPEC §2): the paper's annotation step, so a
user can label their own dialogues.

    items = read_items("utterances.jsonl")                 # {"id", "text", "context"?, "labels"? (gold)}
    llm = LLMConfig(base_url="http://localhost:8000/v1", model="my-model")   # or LLMConfig(gguf=path)
    summary = annotate(items, make_backend(llm), "labels.jsonl", retry=llm.retry())   # resumable

Each utterance is sent once per attempt with a versioned prompt (`PROMPT_VERSION`) holding the annotation guide's
nine label definitions; the answer must be a JSON object {"labels": [1-2 of the nine, strongest first]}
(`parse_labels`, strict). Backend errors and unparseable answers are retried (`ecrs.inference.llm.Retry`); an
utterance still failing after the last attempt is written to `<out>.failed.jsonl` with the reason (never
dropped). Labelled rows are appended to `<out>` and flushed one by one (`ecrs.data.rows`), so an interrupted run
loses nothing that was labelled; a rerun skips the ids already in `<out>` and retries the recorded failures.

When items carry gold labels (e.g. `sample_bundled`), `agreement_report` compares the backend's labels with them.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ecrs.data.bundle import iter_jsonl
from ecrs.data.rows import append_row, read_rows
from ecrs.emotions import EMOTION_INDEX, EMOTIONS
from ecrs.errors import DataError, EcrsError
from ecrs.evaluation.metrics import cohen_kappa
from ecrs.inference.llm import Answer, AnswerError, Backend, FatalBackendError, Retry
from ecrs.training.emotion import load_examples

__all__ = [
    "LABEL_DEFINITIONS",
    "PROMPT_VERSION",
    "AnnotationItem",
    "AnnotationSummary",
    "LabelParseError",
    "agreement_report",
    "annotate",
    "build_messages",
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

class LabelParseError(AnswerError):
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


# ---------------------------------------------------------------------------------------------------------------
# The labelling loop
# ---------------------------------------------------------------------------------------------------------------

def _label_one(item: AnnotationItem, backend: Backend, retry: Retry) -> tuple[AnnotationItem, Answer[list[str]]]:
    messages = build_messages(item.text, item.context)

    def ask() -> str:
        return backend.complete(messages, schema=label_schema(), schema_name="emotion_labels").text

    return item, retry.ask(ask, parse_labels)


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


def annotate(items: Sequence[AnnotationItem], backend: Backend, out: str | Path, *, retry: Retry = Retry(),
             keep_raw: bool = False, retry_failed: bool = True, max_consecutive_errors: int = 5,
             progress: bool = True) -> AnnotationSummary:
    """Label `items` with `backend` (up to `backend.concurrency` requests at a time), asking each through
    `retry`, and append one row per labelled utterance to `out`:

        {"id", "labels": [1-2, strongest first], "backend", "model", "prompt_version", "raw"? (keep_raw)}

    and one row per utterance that failed every attempt to `<out>.failed.jsonl`:

        {"id", "failed": reason, "kind": "parse" | "backend", "attempts", "backend", "model", "prompt_version",
         "raw"? (the last answer)}

    Ids already in `out` are skipped. Ids in the failed file are retried (`retry_failed`) or skipped; the failed
    file is rewritten at the end to hold only ids still unlabelled. Rows are written in completion order (= input
    order at concurrency 1). `max_consecutive_errors` utterances failing in a row on backend errors (not
    parse errors) stop the run with FatalBackendError: the endpoint is down, not the utterance. When items carry
    gold labels the agreement report is computed over the whole `out` file and written to `<out>.report.json`.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fpath = failed_path(out)
    done_rows = read_rows(out, repair=True)
    for row in done_rows:
        made = (row.get("backend"), row.get("model"), row.get("prompt_version"))
        if made != (backend.name, backend.model, PROMPT_VERSION):
            raise EcrsError(f"{out} holds labels from backend={made[0]} model={made[1]} prompt={made[2]}; this run "
                            f"is backend={backend.name} model={backend.model} prompt={PROMPT_VERSION}: "
                            "use another --out")
    done = {str(r["id"]) for r in done_rows}
    prior_failed = {str(r["id"]): r for r in read_rows(fpath, repair=True)}
    skip = done | (set() if retry_failed else set(prior_failed))
    todo = [it for it in items if it.id not in skip]
    base = {"backend": backend.name, "model": backend.model, "prompt_version": PROMPT_VERSION}
    workers = max(1, min(backend.concurrency, len(todo) or 1))
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
                    fut = ex.submit(_label_one, it, backend, retry)
                    order[fut] = len(order)
                    pending.add(fut)
                if not pending:
                    break
                finished, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for fut in sorted(finished, key=order.__getitem__):
                    item, ans = fut.result()  # FatalBackendError propagates
                    if ans.value is not None:
                        row = {"id": item.id, "labels": ans.value, **base}
                        if keep_raw:
                            row["raw"] = ans.raw
                        append_row(fo, row)
                        summary.labelled += 1
                        consecutive = 0
                    else:
                        row = {"id": item.id, "failed": ans.error, "kind": ans.kind, "attempts": ans.attempts, **base}
                        if ans.raw is not None:
                            row["raw"] = ans.raw
                        append_row(ff, row)
                        new_failed[item.id] = row
                        summary.failed += 1
                        summary.failures.append(item.id)
                        consecutive = consecutive + 1 if ans.kind == "backend" else 0
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
    labelled_ids = {str(r["id"]) for r in read_rows(out, repair=False)}
    keep = {i: r for i, r in prior_failed.items() if i not in labelled_ids}
    keep.update({i: r for i, r in new_failed.items() if i not in labelled_ids})
    if keep:
        tmp = fpath.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in keep.values()), encoding="utf-8")
        tmp.replace(fpath)
    else:
        fpath.unlink(missing_ok=True)

    if any(it.gold for it in items):
        rep = agreement_report(items, read_rows(out, repair=False), list(keep.values()))
        rep.update(base)
        summary.report = rep
        report_path(out).write_text(json.dumps(rep, indent=2) + "\n")
    return summary


def _progress(total: int, enabled: bool):
    return tqdm(total=total, desc="annotating", unit="utt", disable=not enabled, dynamic_ncols=True)


# ---------------------------------------------------------------------------------------------------------------
# Agreement with gold labels
# ---------------------------------------------------------------------------------------------------------------

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
