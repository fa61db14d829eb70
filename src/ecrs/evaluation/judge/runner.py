"""Asking the judge: `Judge` puts each question to an `ecrs.inference.llm` backend through an SQLite answer cache,
with retries (`ecrs.inference.llm.Retry`), a few items at a time, and turns the answers into rows.

    judge = Judge(make_backend(llm, default_gguf=qwen_gguf), cache="artifacts/judge/cache.sqlite")
    rows = judge.compare(items)                        # each dimension by the design it qualified with
    rows = judge.pairwise(items, ["emotional_intensity"])   # one design, for benchmarks and controls
    rows = judge.paired_yes_no(items, "lifelikeness")
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ecrs.errors import EcrsError
from ecrs.evaluation.judge.parsing import (
    answer_probs,
    calibrate_orders,
    combine_orders,
    parse_choice,
    parse_yes_no,
    with_choice_probs,
)
from ecrs.evaluation.judge.prompts import (
    CHOICE_SCHEMA,
    DEFAULT_DIMENSIONS,
    DIMENSIONS,
    FACT_DIMENSIONS,
    JUDGE_PROMPT_VERSION,
    SINGLE_PROMPT_VERSION,
    YES_NO_QUESTIONS,
    YES_NO_SCHEMA,
    YES_NO_VERSION,
    PairItem,
    design,
    single_question_messages,
    yes_no_messages,
)
from ecrs.inference.grounding import GroundingChecker
from ecrs.inference.llm import Answer, AnswerError, Backend, FatalBackendError, Retry

__all__ = ["Judge", "JudgeCache", "fact_faults"]

ANSWER_TOKENS = 4  # every answer is one short word: never pay for an explanation
_PER_ITEM = ("id", "a", "b", "backend", "model")  # said once per `compare` row, not again per dimension


class JudgeCache:
    """Parsed-OK judge answers in SQLite, keyed by sha256 of (model id, prompt version, messages). Only answers that
    parsed are stored, so a rerun retries failures. Thread-safe. The model id of a local judge is its GGUF file
    name: give a changed model file a new name (or use another cache file)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, model TEXT, "
                             "prompt_version TEXT, raw TEXT NOT NULL, created REAL)")
        return self._db

    @staticmethod
    def key(model: str, messages: list[dict[str, str]], variant: str = "") -> str:
        """`variant` names what else the request asked for ("logprobs"): an answer without probabilities must not
        be served to a judge that wants them."""
        obj = {"model": model, "prompt_version": JUDGE_PROMPT_VERSION, "messages": messages}
        blob = json.dumps({**obj, "variant": variant} if variant else obj, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._conn().execute("SELECT raw FROM answers WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, model: str, raw: str) -> None:
        with self._lock:
            db = self._conn()
            db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)",
                       (key, model, JUDGE_PROMPT_VERSION, raw, time.time()))
            db.commit()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


class Judge:
    """Asks `backend` bare-word questions through the cache, with `retry`, `backend.concurrency` items at a time.
    `requests` counts backend calls, `cache_hits` answers served from the cache. `max_consecutive_errors` items
    failing in a row on backend errors stop the run with FatalBackendError (the endpoint is down, not the items)."""

    def __init__(self, backend: Backend, cache: JudgeCache | str | Path | None = None, *, retry: Retry = Retry(),
                 max_consecutive_errors: int = 5, checker: GroundingChecker | None = None):
        self.backend = backend
        # The local judge cannot check facts (its swapped-fact control: 0.37): with a grounding checker, a reply
        # that names a person, movie or year the context does not hold, where the other reply does not, loses
        # the FACT_DIMENSIONS whatever the model said (`fact_faults`)
        self.checker = checker
        self.cache = JudgeCache(cache) if isinstance(cache, (str, Path)) else cache
        self.retry = retry
        self.max_consecutive_errors = max_consecutive_errors
        self.requests = 0
        self.cache_hits = 0
        self._count = threading.Lock()

    @property
    def meta(self) -> dict[str, str]:
        return {"backend": self.backend.name, "model": self.backend.model, "prompt_version": JUDGE_PROMPT_VERSION}

    def close(self) -> None:
        self.backend.close()
        if self.cache is not None:
            self.cache.close()

    def _complete(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> str:
        with self._count:
            self.requests += 1
        c = self.backend.complete(messages, schema=schema, max_tokens=ANSWER_TOKENS, logprobs=self.backend.logprobs)
        return with_choice_probs(c.text, c.logprobs, [str(v) for v in schema["enum"]])

    def ask(self, messages: list[dict[str, str]], parse: Callable[[str], dict[str, Any]],
            schema: dict[str, Any]) -> Answer[dict[str, Any]]:
        """One question, from the cache when it holds a parseable answer (then `attempts` is 0), else asked."""
        key = JudgeCache.key(self.backend.model, messages, "logprobs" if self.backend.logprobs else "")
        if self.cache is not None and (raw := self.cache.get(key)) is not None:
            try:
                value = parse(raw)
                with self._count:
                    self.cache_hits += 1
                return Answer(value, raw)
            except AnswerError:
                pass  # a stricter parser than the one that cached it: ask again
        ans = self.retry.ask(lambda: self._complete(messages, schema), parse)
        if ans.value is not None and self.cache is not None:
            self.cache.put(key, self.backend.model, ans.raw)
        return ans

    def _map(self, fn: Callable[[Any], dict[str, Any]], items: Sequence[Any], progress: bool,
             desc: str) -> list[dict[str, Any]]:
        ids = [it.id for it in items]
        if len(set(ids)) != len(ids):
            raise EcrsError("item ids must be unique")
        ex = cf.ThreadPoolExecutor(max_workers=max(1, self.backend.concurrency))
        try:
            bar = tqdm(total=len(items), desc=desc, unit="item", disable=not progress, dynamic_ncols=True)
            rows, consecutive = [], 0
            for row in ex.map(fn, items):  # input order
                rows.append(row)
                bar.update(1)
                consecutive = consecutive + 1 if row.get("kind") == "backend" else 0
                if self.max_consecutive_errors and consecutive >= self.max_consecutive_errors:
                    raise FatalBackendError(f"{consecutive} items in a row failed on backend errors (last: "
                                            f"{row['failed']}); stopping. Answers so far are cached: rerun to resume")
            bar.close()
        finally:
            ex.shutdown(wait=False, cancel_futures=True)  # a stop or Ctrl-C leaves no queued requests
        return rows

    def compare(self, items: Sequence[PairItem], dimensions: Sequence[str] = DEFAULT_DIMENSIONS,
                progress: bool = False) -> list[dict[str, Any]]:
        """Each dimension asked the way the judge qualified on it (`design`), one row per item:

            {"id", "a", "b", "verdict": {dim: "a" | "b" | "tie"}, "by_dimension": {dim: that design's row},
             backend/model/prompt_version}

        The verdict is the position-calibrated one where the answers carry probabilities (pairwise) or P(yes)
        (yes/no), else the both-orders rule (pairwise) or the yes/no answers themselves. When any question of an
        item failed every attempt, its row is that question's failed row (with "dimension"). Summarize with
        `summarize_compare`."""
        unknown = sorted(set(dimensions) - set(DIMENSIONS))
        if unknown or not dimensions:
            raise EcrsError(f"dimensions must be some of {', '.join(DIMENSIONS)}; got {unknown or 'none'}")
        per_dim = {d: (self.paired_yes_no(items, d, progress) if design(d) == "yes_no"
                       else self.pairwise(items, [d], progress=progress)) for d in dimensions}
        rows = []
        for i, it in enumerate(items):
            mine = {d: per_dim[d][i] for d in dimensions}
            failed = next((r for r in mine.values() if "failed" in r), None)
            if failed is not None:
                rows.append(failed)
                continue
            verdict = {d: (r.get("calibrated") or r["preference"])[d] for d, r in mine.items()}
            rows.append({"id": it.id, "a": it.a_name, "b": it.b_name, "verdict": verdict,
                         "by_dimension": {d: {k: v for k, v in r.items() if k not in _PER_ITEM} for d, r in mine.items()},
                         **self.meta})
        return rows

    def pairwise(self, items: Sequence[PairItem], dimensions: Sequence[str], progress: bool = False,
                 definitions: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Both replies shown, one question per dimension and order (`single_question_messages`, prompt version
        SINGLE_PROMPT_VERSION; `definitions` rewords some dimensions, labelled "+custom"). One row per item:

            {"id", "a", "b" (system names), "ab": {dim: A|B|tie} (A shown = a), "ba": {dim: A|B|tie} (A shown = b),
             "preference": {dim: "a"|"b"|"tie"}, "agree": {dim: bool}, "cached": [bool per question], backend/...}

        `preference` is a or b only when both orders chose it; `agree` says whether the two orders gave the same
        verdict (the same reply, or tie in both). When every answer carries choice probabilities the row also has
        "ab_probs" / "ba_probs" ({dim: {A, B, tie}} as shown) and the position-calibrated "calibrated" ({dim:
        a|b|tie}) with "calibrated_probs" (`calibrate_orders`). When a question fails every attempt the row is
        {"id", "a", "b", "failed", "kind", "attempts", "order", "dimension", "raw"?, ...} instead."""
        dimensions, definitions = list(dimensions), dict(definitions or {})
        unknown = sorted({*dimensions, *definitions} - set(DIMENSIONS))
        if unknown or not dimensions:
            raise EcrsError(f"dimensions must be some of {', '.join(DIMENSIONS)}; got {unknown or 'none'}")
        meta = {**self.meta, "prompt_version": SINGLE_PROMPT_VERSION + ("+custom" if definitions else "")}

        def one(it: PairItem) -> dict[str, Any]:
            names = {"a": it.a_name, "b": it.b_name}
            ab, ba, p_ab, p_ba, cached = {}, {}, {}, {}, []
            for d in dimensions:
                for order, (x, y), verdicts, probs in (("ab", (it.a, it.b), ab, p_ab), ("ba", (it.b, it.a), ba, p_ba)):
                    msgs = single_question_messages(it.context, x, y, d, definitions.get(d))
                    ans = self.ask(msgs, parse_choice, CHOICE_SCHEMA)
                    if ans.value is None:
                        return {**_failed(it.id, ans, order, {**names, **meta}), "dimension": d}
                    verdicts[d] = ans.value["choice"]
                    if (p := answer_probs(ans.raw)) and "choice" in p:
                        probs[d] = p["choice"]
                    cached.append(ans.attempts == 0)
            pref, agree = combine_orders(ab, ba)
            row = {"id": it.id, **names, "ab": ab, "ba": ba, "preference": pref, "agree": agree,
                   "cached": cached, **meta}
            if len(p_ab) == len(p_ba) == len(dimensions):
                row["ab_probs"], row["ba_probs"] = p_ab, p_ba
                row["calibrated"], row["calibrated_probs"] = calibrate_orders(p_ab, p_ba)
            gated = [d for d in dimensions if d in FACT_DIMENSIONS]
            faults = fact_faults(self.checker, it) if self.checker is not None and gated else (False, False)
            if faults[0] != faults[1]:  # the LLM's own answers stay in ab / ba / agree
                winner = "b" if faults[0] else "a"
                row["fact_gate"] = {d: winner for d in gated}
                for d in gated:
                    pref[d] = winner
                    if "calibrated" in row:
                        row["calibrated"][d] = winner
                        row["calibrated_probs"][d] = {"a": float(winner == "a"), "b": float(winner == "b"),
                                                      "tie": 0.0}
            return row

        return self._map(one, items, progress, "judging pairs, one dimension at a time")

    def paired_yes_no(self, items: Sequence[PairItem], dimension: str, progress: bool = False,
                      question: tuple[str, str] | None = None) -> list[dict[str, Any]]:
        """Each reply of each pair asked alone whether it has `dimension` (`YES_NO_QUESTIONS`, or `question` =
        (instructions, question), labelled "+custom"); P(yes) from the first answer token (the answer itself, 1 or
        0, when the backend gives no probabilities). One row per pair:

            {"id", "a", "b", "dimension", "answers": {"a", "b"}, "p_yes": {"a", "b"},
             "calibrated": {dimension: a|b|tie}, "calibrated_probs": {dimension: {"a", "b", "tie": 0}}, ...}

        a wins when P(yes | a) > P(yes | b): a preference between the two replies, read from two separate
        judgements (no order to swap). Summarize with `summarize_yes_no`."""
        if dimension not in DIMENSIONS or (question is None and dimension not in YES_NO_QUESTIONS):
            raise EcrsError(f"no yes/no question for {dimension!r}: pass question=(instructions, question)")
        system, q = question or YES_NO_QUESTIONS[dimension]
        meta = {**self.meta, "prompt_version": YES_NO_VERSION + ("+custom" if question else "")}

        def one(it: PairItem) -> dict[str, Any]:
            names = {"a": it.a_name, "b": it.b_name}
            answers, p_yes, cached = {}, {}, []
            for side, reply in (("a", it.a), ("b", it.b)):
                ans = self.ask(yes_no_messages(reply, system, q), parse_yes_no, YES_NO_SCHEMA)
                if ans.value is None:
                    return {**_failed(it.id, ans, side, {**names, **meta}), "dimension": dimension}
                answers[side] = ans.value["choice"]
                probs = (answer_probs(ans.raw) or {}).get("choice")
                p_yes[side] = probs["yes"] if probs else float(answers[side] == "yes")
                cached.append(ans.attempts == 0)
            diff = p_yes["a"] - p_yes["b"]
            verdict = "tie" if math.isclose(diff, 0.0, abs_tol=1e-9) else "a" if diff > 0 else "b"
            return {"id": it.id, **names, "dimension": dimension, "answers": answers, "p_yes": p_yes,
                    "calibrated": {dimension: verdict},
                    "calibrated_probs": {dimension: {"a": p_yes["a"], "b": p_yes["b"], "tie": 0.0}},
                    "cached": cached, **meta}

        return self._map(one, items, progress, f"asking each reply alone ({dimension})")


def fact_faults(checker: GroundingChecker, item: PairItem) -> tuple[bool, bool]:
    """(a states an ungrounded name or year that b does not, and the other way round), against the item's
    knowledge (else its context: the conversation, the recommended movie and its facts): what both replies share,
    such as a base reply's own slip, decides nothing."""
    knowledge = checker.knowledge(item.knowledge or item.context)
    a, b = ({(v.kind, v.surface.lower()) for v in checker.violations(reply, knowledge)} for reply in (item.a, item.b))
    return bool(a - b), bool(b - a)


def _failed(item_id: str, ans: Answer, order: str, meta: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"id": item_id, **meta, "failed": ans.error, "kind": ans.kind, "attempts": ans.attempts,
                           "order": order}
    if ans.raw is not None:
        row["raw"] = ans.raw
    return row
