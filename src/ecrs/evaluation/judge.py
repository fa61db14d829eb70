"""LLM judge of recommender replies on ECR's five subjective dimensions (ECR_SPEC §6), each 0-9:

    emotional_intensity, emotional_persuasiveness, logic_persuasiveness, informativeness, lifelikeness

The paper's GPT-4 prompt was not published; `JUDGE_PROMPT_VERSION` names ours (changing the wording = a new
version, so cached answers of the old wording are never reused). Two modes:

    judge = Judge(backend, cache="artifacts/judge/cache.sqlite")
    rows = judge.absolute([ReplyItem(id, context, reply), ...])          # {"scores": {dim: 0-9}}
    rows = judge.pairwise([PairItem(id, context, a, b), ...])            # {"preference": {dim: a|b|tie}}
    summary = summarize_pairwise(rows)                                   # win/loss/tie rates, order agreement

Pairwise asks twice, with the replies shown as (A=a, B=b) and as (A=b, B=a). A preference counts only when both
orders name the same reply; any disagreement (a position-biased answer) becomes a tie, and the share of dimension
judgements on which the two orders agree is reported as the order-agreement rate. Small local judges (Qwen2.5-1.5B)
are reliable only this way (docs/MODELS.md).

Position-calibrated verdicts (beside the both-orders rule, never in its place): when the backend returns token
log-probabilities (the local llama.cpp judge always; an OpenAI-compatible endpoint with `logprobs=True`),
`choice_probs` reads the judge's probability of each answer ("A" / "B" / "tie") at each dimension's value, and
`calibrate_orders` averages them over the two orders, P(a) = (P_ab(A) + P_ba(B)) / 2 and likewise for b and tie;
the verdict is the most probable of the three. A judge that always prefers the first position adds as much to a as
to b, so the bias cancels while its confidence on the content stays (balanced position calibration, Wang et al.
2023, "Large Language Models are not Fair Evaluators").

judge-v2 (was v1): the grammar writes `{"key": "value", ...}` with a space after each colon and comma, as the model
writes JSON itself. v1's space-free grammar forced the first dimension's value through a token the model did not
want: after `":` the judge's top token is ` "` (log-probability 0.00 in the pair first inspected), which v1 forbids,
so the grammar let through `"B` at -13.2. v1's emotional-intensity verdicts were therefore read from tokens the
judge itself found very unlikely, not from its answer (benchmarks/judge_grammar.py counts how often).

judge-v3 (was v2): the pairwise instructions name the allowed values ("A", "B" or "tie") instead of ending with a
sample answer. v2's sample ({"emotional_intensity": "A", "emotional_persuasiveness": "B", ...}, `V2_EXAMPLE`)
pulled the 1.5B judge towards its values: on 25 pairs, 72 % of its emotional-intensity answers were "A" with that
sample shown, 28 % were "B" when the sample said "B", and none of either without a sample
(benchmarks/judge_anchor.py). Without a sample this judge answers "tie" on nearly everything.

One dimension per request (`Judge.pairwise(items, dimensions=[...])`, `ecrs judge pairwise --dimensions`, prompt
SINGLE_PROMPT_VERSION): "Which reply is better on <dimension>? Answer A, B or tie only", the answer the bare word,
its probabilities read at the first answer token (`first_token_probs`), both orders, the same rows and summaries.
Asked all five dimensions in one answer, the 1.5B judge failed the known-answer controls (`control_pairs`,
`robotic_pairs`); asked about emotional intensity alone it passes that control. Lifelikeness it separates only when
it reads each reply alone (`Judge.paired_yes_no`: "Could a real movie fan have written this reply? yes or no", the
reply with the higher P(yes) wins). Read a dimension only once its controls pass (benchmarks/judge_qualify.py).

Every request is greedy (temperature 0). Answers are strict JSON (`parse_scores`, `parse_preferences`); a
malformed answer or a backend error is retried with backoff and, after the last attempt, returned as a row with
"failed" (never dropped). Parsed answers are cached in SQLite keyed by sha256(model id, prompt version, messages,
whether log-probabilities were asked for), so a rerun makes no request for what it has already judged.

Agreement: `preference_kappa` (Cohen's kappa of two judges' a/b/tie outcomes, per dimension and pooled);
`scores_to_preferences` turns two systems' absolute scores into the same a/b/tie outcomes. Human rating:
`export_form` writes a blinded sample as CSV + a self-contained HTML page + a key, `import_form` reads a filled
CSV back into a/b/tie outcomes, comparable to the judge with `preference_kappa`.
"""
from __future__ import annotations

import bisect
import concurrent.futures as cf
import csv
import hashlib
import html
import itertools
import json
import math
import os
import random
import re
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecrs.errors import DataError, EcrsError
from ecrs.training.annotate import (
    BackendError,
    FatalBackendError,
    LlamaCppBackend,
    OpenAIChatBackend,
    _json_objects,
    choice_content,
    cohen_kappa,
)

__all__ = [
    "CHOICE_SCHEMA",
    "CONTROL_ENTHUSIASM",
    "CONTROL_ROBOTIC",
    "DIMENSIONS",
    "JUDGE_PROMPT_VERSION",
    "SINGLE_PROMPT_VERSION",
    "YES_NO_QUESTIONS",
    "YES_NO_VERSION",
    "TOP_LOGPROBS",
    "V2_EXAMPLE",
    "Judge",
    "JudgeCache",
    "JudgeLlamaBackend",
    "JudgeOpenAIBackend",
    "JudgeParseError",
    "PairItem",
    "ReplyItem",
    "absolute_messages",
    "absolute_schema",
    "answer_text",
    "calibrate_orders",
    "choice_probs",
    "combine_orders",
    "compact_grammar",
    "control_pairs",
    "export_form",
    "first_token_probs",
    "import_form",
    "pairwise_messages",
    "pairwise_schema",
    "pairwise_system",
    "parse_choice",
    "parse_preferences",
    "parse_scores",
    "parse_yes_no",
    "preference_kappa",
    "render_context",
    "robotic_pairs",
    "scores_to_preferences",
    "single_question_messages",
    "summarize_absolute",
    "summarize_calibrated",
    "summarize_pairwise",
    "summarize_yes_no",
    "token_starts",
    "with_choice_probs",
    "yes_no_messages",
]

JUDGE_PROMPT_VERSION = "judge-v3"

# ECR's five dimensions (paper §5.3), in its order; the wording is ours (part of JUDGE_PROMPT_VERSION).
DIMENSION_DEFINITIONS: dict[str, str] = {
    "emotional_intensity": "how strongly the reply conveys emotion (enthusiasm, warmth, empathy) to the user",
    "emotional_persuasiveness": "how well the reply connects with the user's feelings to make them want the movie",
    "logic_persuasiveness": "how well the reply gives coherent, relevant reasons why this movie suits the user",
    "informativeness": "how much concrete, useful information about the recommended movie the reply gives "
                       "(plot, genre, cast, what makes it good)",
    "lifelikeness": "how natural, fluent and human-like the reply sounds as a reply in this conversation",
}
DIMENSIONS: tuple[str, ...] = tuple(DIMENSION_DEFINITIONS)
PREFERENCES = ("A", "B", "tie")

_DIMS_TEXT = "\n".join(f"- {d}: {t}" for d, t in DIMENSION_DEFINITIONS.items())
_ABSOLUTE_SYSTEM = (
    "You rate the recommender's reply in a movie-recommendation chat on five dimensions:\n" + _DIMS_TEXT + "\n\n"
    "Score each dimension from 0 (absent) to 9 (excellent), independently of the others. Judge only the reply; "
    "the conversation is context. A short generic reply scores low on informativeness and persuasiveness.\n"
    "Answer with a JSON object only: the five dimensions as keys, each value an integer 0-9."
)
# judge-v2's pairwise example answer, kept so benchmarks/judge_anchor.py can measure its pull (see the docstring).
V2_EXAMPLE: dict[str, str] = dict(zip(DIMENSIONS, ["A", "B", "tie", "A", "B"]))


def pairwise_system(example: Mapping[str, str] | None = None) -> str:
    """The pairwise judge's instructions; `example` (judge-v2 showed `V2_EXAMPLE`) adds a sample answer with
    concrete values, which judge-v3 leaves out."""
    fmt = ("Answer with a JSON object only, the five dimensions as keys, e.g. " + json.dumps(dict(example)) + "."
           if example else 'Answer with a JSON object only: the five dimensions as keys, each value "A", "B" or "tie".')
    return ("You compare two candidate replies, A and B, of a recommender in a movie-recommendation chat on five "
            "dimensions:\n" + _DIMS_TEXT + "\n\n"
            'For each dimension say which reply is better: "A", "B", or "tie" when they are about equally good. '
            "Judge each dimension independently; the order in which the replies are shown does not matter.\n" + fmt)


_PAIRWISE_SYSTEM = pairwise_system()


# ---------------------------------------------------------------------------------------------------------------
# Items and prompts
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReplyItem:
    """One reply to rate (absolute mode)."""
    id: str
    context: str
    reply: str


@dataclass(frozen=True)
class PairItem:
    """Two replies to the same context (pairwise mode); `a_name` / `b_name` name the systems in the output."""
    id: str
    context: str
    a: str
    b: str
    a_name: str = "a"
    b_name: str = "b"


# Emotion without facts (no title, year or name), so only emotional intensity separates the two replies.
CONTROL_ENTHUSIASM = (
    "I absolutely loved it, it's one of my all-time favourites!",
    "Honestly, it moved me to tears and I still think about it.",
    "I was grinning from start to finish, it's pure joy!",
    "It gave me chills, I can't recommend it enough!",
    "I adore this one, it never fails to make my day!",
)


def control_pairs(items: Sequence[PairItem], seed: int = 0) -> dict[str, list[PairItem]]:
    """Known-answer pairs to qualify a judge, built from each item's b reply (a is the better reply by
    construction): {"emotional_intensity": [b + one enthusiastic, fact-free sentence vs b],
    "lifelikeness": [b vs the same words shuffled]}. A judge that cannot separate these cannot separate systems on
    those dimensions either (benchmarks/judge_anchor.py --controls)."""
    rng = random.Random(seed)
    ei, ll = [], []
    for i, it in enumerate(items):
        base = it.b.strip()
        ei.append(PairItem(f"control_ei|{it.id}", it.context, f"{base} {CONTROL_ENTHUSIASM[i % len(CONTROL_ENTHUSIASM)]}",
                           base, "base+enthusiasm", "base"))
        words = base.split()
        shuffled = words[:]
        while len(set(words)) > 1 and shuffled == words:
            rng.shuffle(shuffled)
        ll.append(PairItem(f"control_ll|{it.id}", it.context, base, " ".join(shuffled), "base", "base shuffled"))
    return {"emotional_intensity": ei, "lifelikeness": ll}


# What no person chatting about movies writes: a reply that opens with it is less lifelike by construction.
CONTROL_ROBOTIC = "As an AI language model, I do not have personal opinions or feelings, but here is a recommendation."


def robotic_pairs(items: Sequence[PairItem]) -> list[PairItem]:
    """A second known-answer lifelikeness control, beside `control_pairs`' shuffled words (which a judge can pass on
    grammar alone): each item's b reply against the same reply opened by `CONTROL_ROBOTIC`; a is better."""
    return [PairItem(f"control_ll_robotic|{it.id}", it.context, it.b.strip(), f"{CONTROL_ROBOTIC} {it.b.strip()}",
                     "base", "robotic+base") for it in items]


def render_context(turns: Sequence[tuple[str, str]] | str, max_turns: int = 4, max_chars: int = 300) -> str:
    """The last `max_turns` turns as "User: ..." / "Recommender: ..." lines, each cut to `max_chars` (a longer
    prompt costs the local judge seconds and the last turns decide what a good reply is)."""
    if isinstance(turns, str):
        return turns.strip()
    lines = []
    for role, text in list(turns)[-max_turns:]:
        who = "Recommender" if role == "recommender" else "User"
        text = " ".join(text.split())
        lines.append(f"{who}: {text[:max_chars] + ('...' if len(text) > max_chars else '')}")
    return "\n".join(lines)


def absolute_messages(context: str, reply: str) -> list[dict[str, str]]:
    user = (f"Conversation so far:\n{context or '(none)'}\n\n"
            f"Recommender's reply:\n{reply.strip() or '(empty)'}\n\n"
            "Rate the reply. Answer the JSON object only.")
    return [{"role": "system", "content": _ABSOLUTE_SYSTEM}, {"role": "user", "content": user}]


def pairwise_messages(context: str, first: str, second: str, system: str = _PAIRWISE_SYSTEM) -> list[dict[str, str]]:
    # The context comes before the replies so both orders (and all systems) share the cached prompt prefix.
    user = (f"Conversation so far:\n{context or '(none)'}\n\n"
            f"Reply A:\n{first.strip() or '(empty)'}\n\n"
            f"Reply B:\n{second.strip() or '(empty)'}\n\n"
            "Which reply is better on each dimension? Answer the JSON object only.")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def absolute_schema() -> dict[str, Any]:
    """JSON schema of a valid absolute answer (for llama.cpp's grammar-constrained decoding)."""
    return {"type": "object", "properties": {d: {"type": "integer", "enum": list(range(10))} for d in DIMENSIONS},
            "required": list(DIMENSIONS), "additionalProperties": False}


def pairwise_schema() -> dict[str, Any]:
    return {"type": "object", "properties": {d: {"type": "string", "enum": list(PREFERENCES)} for d in DIMENSIONS},
            "required": list(DIMENSIONS), "additionalProperties": False}


# One dimension per request (`Judge.pairwise(..., dimensions=[...])`): the answer is the bare word A, B or tie, and
# its probabilities are read at the first answer token (`first_token_probs`). The 1.5B judge, asked all five
# dimensions in one JSON answer, failed both known-answer controls; asked about emotional intensity alone it passed
# that control 20 / 20 (benchmarks/judge_anchor.py).
SINGLE_PROMPT_VERSION = JUDGE_PROMPT_VERSION + "-single"
CHOICE_SCHEMA: dict[str, Any] = {"type": "string", "enum": list(PREFERENCES)}


# One reply judged alone, yes or no (`Judge.paired_yes_no`): for lifelikeness, which the 1.5B judge could not
# separate when shown two replies side by side (shuffled words won half the time), but which it separates when it
# reads each reply alone (benchmarks/judge_qualify.py). No second reply in view: no position to be biased by.
YES_NO_VERSION = JUDGE_PROMPT_VERSION + "-yesno"
YES_NO_SCHEMA: dict[str, Any] = {"type": "string", "enum": ["yes", "no"]}
# dimension -> (instructions, question); a question's wording is part of the cache key like every prompt's. The
# lifelikeness question is the one of three that passed its controls best (judge_single.json).
YES_NO_QUESTIONS: dict[str, tuple[str, str]] = {
    "lifelikeness": ("You judge whether a reply in a movie-recommendation chat reads like natural, fluent text that "
                     "a real person would write.", "Could a real movie fan have written this reply?"),
}


def yes_no_messages(reply: str, system: str, question: str) -> list[dict[str, str]]:
    """One reply, no conversation: the question is about how the reply itself reads."""
    return [{"role": "system", "content": system},
            {"role": "user", "content": f"Reply:\n{reply.strip() or '(empty)'}\n\n{question} Answer yes or no."}]


def single_question_messages(context: str, first: str, second: str, dimension: str,
                             definition: str | None = None) -> list[dict[str, str]]:
    """Which of two replies is better on one dimension (`definition`: other wording than DIMENSION_DEFINITIONS)."""
    text = definition or DIMENSION_DEFINITIONS[dimension]
    system = ("You compare two candidate replies, A and B, of a recommender in a movie-recommendation chat on one "
              f"dimension, {dimension}: {text}. Answer \"A\", \"B\", or \"tie\" when they are about equally good; "
              "the order in which the replies are shown does not matter.")
    user = (f"Conversation so far:\n{context or '(none)'}\n\nReply A:\n{first.strip() or '(empty)'}\n\n"
            f"Reply B:\n{second.strip() or '(empty)'}\n\nWhich reply is better on {dimension}? Answer A, B or tie only.")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


# ---------------------------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------------------------

class JudgeParseError(ValueError):
    """The judge's answer is not a JSON object with exactly the five dimensions and valid values."""


def _dimension_object(raw: str) -> dict[str, Any]:
    """The first JSON object in `raw` (alone or embedded in text / a code fence) that has a dimension key; it must
    hold exactly the five dimensions."""
    raw = answer_text(raw)
    if not isinstance(raw, str) or not raw.strip():
        raise JudgeParseError("empty answer")
    for obj in _json_objects(raw):
        if isinstance(obj, dict) and any(d in obj for d in DIMENSIONS):
            missing = [d for d in DIMENSIONS if d not in obj]
            extra = [k for k in obj if k not in DIMENSION_DEFINITIONS]
            if missing or extra:
                raise JudgeParseError(f"dimensions missing {missing} / unknown {extra}")
            return obj
    raise JudgeParseError("no JSON object with the five dimensions")


def parse_scores(raw: str) -> dict[str, int]:
    """{dimension: integer 0-9} from an absolute answer; anything else (floats, strings, out of range, missing or
    extra keys) raises JudgeParseError."""
    obj = _dimension_object(raw)
    out = {}
    for d in DIMENSIONS:
        v = obj[d]
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 9:
            raise JudgeParseError(f"{d}: expected an integer 0-9, got {json.dumps(v)}")
        out[d] = v
    return out


def parse_preferences(raw: str) -> dict[str, str]:
    """{dimension: "A" | "B" | "tie"} from a pairwise answer (case ignored); anything else raises JudgeParseError."""
    obj = _dimension_object(raw)
    canon = {p.lower(): p for p in PREFERENCES}
    out = {}
    for d in DIMENSIONS:
        v = obj[d]
        if not isinstance(v, str) or v.strip().lower() not in canon:
            raise JudgeParseError(f'{d}: expected "A", "B" or "tie", got {json.dumps(v)}')
        out[d] = canon[v.strip().lower()]
    return out


def parse_yes_no(raw: str) -> dict[str, str]:
    """A yes/no answer -> {"choice": "yes" | "no"} (any case, surrounding punctuation allowed)."""
    m = re.fullmatch(r"\W*(yes|no)\W*", str(answer_text(raw)).strip(), flags=re.IGNORECASE)
    if m is None:
        raise JudgeParseError(f"expected yes or no, got {str(answer_text(raw))[:60]!r}")
    return {"choice": m.group(1).lower()}


def parse_choice(raw: str) -> dict[str, str]:
    """A single-question answer -> {"choice": "A" | "B" | "tie"}: the bare word, in any case, with surrounding
    quotes, spaces or a full stop ("Reply A" too, as endpoints without a grammar write it)."""
    m = re.fullmatch(r"""\W*(?:reply\s+)?(a|b|tie)\W*""", str(answer_text(raw)).strip(), flags=re.IGNORECASE)
    if m is None:
        raise JudgeParseError(f"expected A, B or tie, got {str(answer_text(raw))[:60]!r}")
    word = m.group(1)
    return {"choice": "tie" if word.lower() == "tie" else word.upper()}


# ---------------------------------------------------------------------------------------------------------------
# Choice probabilities (position calibration)
# ---------------------------------------------------------------------------------------------------------------

TOP_LOGPROBS = 20  # OpenAI's maximum; the three verdicts sit far inside it


def token_starts(content: str, items: Any) -> list[int] | None:
    """Offsets in `content` of each OpenAI-style logprobs token (plus the end), so that token i covers
    content[starts[i]:starts[i + 1]]; None when the tokens do not spell `content`."""
    if not isinstance(items, list) or not items:
        return None
    try:
        tokens = [str(t["token"]) for t in items]
    except (KeyError, TypeError):
        return None
    if "".join(tokens) != content:
        return None
    return list(itertools.accumulate([0, *map(len, tokens)]))


def choice_probs(content: str, logprobs: Any, schema: Mapping[str, Any]) -> dict[str, dict[str, str | float]] | None:
    """{property: {value: probability}} for each enum property of `schema` that the answer `content` states: the
    judge's probability of each allowed value at the token where it wrote the value, from OpenAI-style `logprobs`
    ({"content": [{"token", "logprob", "top_logprobs": [{"token", "logprob"}, ...]}, ...]}, as OpenAI and the
    llama.cpp server return them).

    The value starts where the allowed literals stop sharing a prefix (after the opening quote of "A" / "B" /
    "tie"); a top token counts for a value when, past the part of the token before that point, it is a prefix of
    the value's literal or starts with it. The mass is renormalised over the allowed values: a grammar-constrained
    answer never contains the rest. A property whose value is not found or got no mass is left out; None when the
    tokens do not spell `content` or nothing was found."""
    items = logprobs.get("content") if isinstance(logprobs, Mapping) else logprobs
    starts = token_starts(content, items)
    if starts is None:
        return None
    out: dict[str, dict[str, Any]] = {}
    for key, prop in schema["properties"].items():
        values = [str(v) for v in prop["enum"]]
        literals = [json.dumps(v) for v in prop["enum"]]
        shared = len(os.path.commonprefix(literals))
        m = re.search(re.escape(json.dumps(key)) + r"\s*:\s*", content)
        if m is None or m.end() + shared >= len(content):
            continue
        pos = m.end() + shared
        i = bisect.bisect_right(starts, pos) - 1
        lead = content[starts[i]:pos]
        mass = dict.fromkeys(values, 0.0)
        for top in items[i].get("top_logprobs") or []:
            tok = str(top.get("token", ""))
            if len(tok) <= len(lead) or not tok.startswith(lead):
                continue
            rest = tok[len(lead):]
            hits = [v for v, lit in zip(values, literals) if lit[shared:].startswith(rest) or rest.startswith(lit[shared:])]
            if len(hits) == 1:
                mass[hits[0]] += math.exp(float(top["logprob"]))
        total = sum(mass.values())
        if total > 0:
            out[key] = {v: round(p / total, 6) for v, p in mass.items()}
    return out or None


def first_token_probs(logprobs: Any, values: Sequence[str] = PREFERENCES) -> dict[str, float] | None:
    """{value: probability} of a bare-word answer (`CHOICE_SCHEMA`): the top tokens at the first answer token that
    start a value ("A", "B"; "t", "ti", "tie", in any case, for tie), renormalised over the values; None when there
    are no log-probabilities or none of them starts a value."""
    items = logprobs.get("content") if isinstance(logprobs, Mapping) else logprobs
    if not isinstance(items, list) or not items or not isinstance(items[0], Mapping):
        return None
    mass = dict.fromkeys(values, 0.0)
    for top in items[0].get("top_logprobs") or []:
        tok = str(top.get("token", "")).strip().lower()
        hits = [v for v in values if tok and (v.lower().startswith(tok) if len(v) > 1 else tok == v.lower())]
        if len(hits) == 1:
            mass[hits[0]] += math.exp(float(top["logprob"]))
    total = sum(mass.values())
    return {v: round(p / total, 6) for v, p in mass.items()} if total > 0 else None


def with_choice_probs(content: str, logprobs: Any, schema: Mapping[str, Any]) -> str:
    """The raw answer a backend returns (and the cache keeps): `content` itself, or, when `choice_probs` could read
    the log-probabilities, the JSON envelope {"answer": content, "choice_probs": {...}}; for a bare-word answer
    (`CHOICE_SCHEMA`) the probabilities are `first_token_probs`, under the key "choice"."""
    if schema.get("type") == "string":
        first = first_token_probs(logprobs, [str(v) for v in schema["enum"]]) if logprobs else None
        return json.dumps({"answer": content, "choice_probs": {"choice": first}}) if first else content
    probs = choice_probs(content, logprobs, schema) if logprobs else None
    return json.dumps({"answer": content, "choice_probs": probs}) if probs else content


def _unwrap(raw: Any) -> tuple[Any, dict[str, dict[str, float]] | None]:
    if isinstance(raw, str) and raw.startswith('{"answer": '):
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError:
            return raw, None
        if isinstance(obj, dict) and set(obj) == {"answer", "choice_probs"} and isinstance(obj["answer"], str):
            return obj["answer"], obj["choice_probs"]
    return raw, None


def answer_text(raw: Any) -> Any:
    """The judge's answer text of a raw answer (`with_choice_probs` envelope or plain text)."""
    return _unwrap(raw)[0]


def answer_probs(raw: Any) -> dict[str, dict[str, float]] | None:
    """The choice probabilities of a raw answer, None when it carries none."""
    return _unwrap(raw)[1]


def calibrate_orders(ab: Mapping[str, Mapping[str, float]], ba: Mapping[str, Mapping[str, float]]
                     ) -> tuple[dict[str, str], dict[str, dict[str, float]]]:
    """Per dimension that both orders' probabilities cover: P(a) = (P_ab(A) + P_ba(B)) / 2, P(b) = (P_ab(B) +
    P_ba(A)) / 2, P(tie) = the mean of the two; the verdict is the most probable, "tie" when a and b are equal.
    Returns (verdict, {dim: {"a", "b", "tie"}})."""
    verdict, probs = {}, {}
    for d in DIMENSIONS:
        if d not in ab or d not in ba:
            continue
        p = {"a": (ab[d]["A"] + ba[d]["B"]) / 2, "b": (ab[d]["B"] + ba[d]["A"]) / 2,
             "tie": (ab[d]["tie"] + ba[d]["tie"]) / 2}
        best = max(p.values())
        top = [k for k, v in p.items() if math.isclose(v, best, abs_tol=1e-9)]
        verdict[d] = top[0] if len(top) == 1 else "tie"
        probs[d] = {k: round(v, 6) for k, v in p.items()}
    return verdict, probs


# ---------------------------------------------------------------------------------------------------------------
# Backend and cache
# ---------------------------------------------------------------------------------------------------------------

def compact_grammar(schema: Mapping[str, Any], spaced: bool = True) -> str:
    """llama.cpp GBNF for one of the judge's schemas (an object whose properties are enums), on one line, in
    property order, spaced as the model writes JSON (`{"k": "v", "k2": "v2"}`). Why not llama.cpp's own
    JSON-schema grammar: it lets the model pretty-print (61 instead of 50 answer tokens for a pairwise verdict),
    and on a loaded 2-core CPU each token costs 0.15-1 s. Why the spaces: without them the grammar forbids the
    token the model wants after `":` (` "`) and forces the first value through an unlikely one. `spaced=False`
    is judge-v1's grammar, kept for benchmarks/judge_grammar.py, which measures that."""
    comma, colon = (", ", ": ") if spaced else (",", ":")
    parts = []
    for i, (k, p) in enumerate(schema["properties"].items()):
        alts = " | ".join(json.dumps(json.dumps(v)) for v in p["enum"])  # a GBNF literal is a JSON-quoted string
        parts.append(f'{json.dumps((comma if i else "") + json.dumps(k) + colon)} ({alts})')
    return 'root ::= "{" ' + " ".join(parts) + ' "}"\n'


class JudgeLlamaBackend(LlamaCppBackend):
    """`LlamaCppBackend` (greedy, temperature 0) constrained to the judge's answer (`compact_grammar`) instead of
    the emotion-label schema; `complete_schema` is what the Judge calls. It returns the answer with its choice
    probabilities (`with_choice_probs`) when `logprobs` is on (default). Defaults to the installed
    Qwen2.5-Coder-1.5B GGUF."""

    def __init__(self, path: str | Path | None = None, n_threads: int = 2, n_ctx: int = 4096,
                 max_tokens: int = 96, json_schema: bool = True, logprobs: bool = True):
        if path is None:
            from ecrs.inference.model_files import qwen_gguf

            path = qwen_gguf("1.5b")
        super().__init__(path, n_threads=n_threads, n_ctx=n_ctx, max_tokens=max_tokens, json_schema=False)
        self.constrain = json_schema
        self.logprobs = logprobs

    def complete_schema(self, messages: list[dict[str, str]], schema: dict[str, Any] | None) -> str:
        req: dict[str, Any] = {"messages": messages, "temperature": 0.0, "max_tokens": self.max_tokens}
        if schema is not None and schema.get("type") == "string":  # a bare word (single question)
            req["max_tokens"] = 4
            if self.constrain:
                req["grammar"] = "root ::= " + " | ".join(json.dumps(str(v)) for v in schema["enum"]) + "\n"
        elif self.constrain and schema is not None:
            req["grammar"] = compact_grammar(schema)
        if self.logprobs and schema is not None:
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
        if self.logprobs and schema is not None:
            return with_choice_probs(content, choices[0].get("logprobs"), schema)
        return content


class JudgeOpenAIBackend(OpenAIChatBackend):
    """An OpenAI-compatible endpoint as the judge (no grammar: answers are parsed strictly). `logprobs=True` also
    asks for the top token log-probabilities (OpenAI, llama.cpp and vLLM servers return them), so the verdicts can
    be position-calibrated; off by default because some endpoints reject the field."""

    def __init__(self, base_url: str, model: str, *, logprobs: bool = False, **kwargs: Any):
        super().__init__(base_url, model, **kwargs)
        self.logprobs = logprobs

    def complete_schema(self, messages: list[dict[str, str]], schema: dict[str, Any] | None) -> str:
        extra: dict[str, Any] = {"logprobs": True, "top_logprobs": TOP_LOGPROBS} if self.logprobs else {}
        if schema is not None and schema.get("type") == "string":
            extra["max_tokens"] = 4  # a bare word: never pay for an explanation
        choice = self.chat(messages, extra or None)
        content = choice_content(choice)
        if self.logprobs and schema is not None:
            return with_choice_probs(content, choice.get("logprobs"), schema)
        return content


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


# ---------------------------------------------------------------------------------------------------------------
# The judge
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class _Answer:
    value: dict[str, Any] | None
    raw: str | None
    error: str | None = None
    kind: str = "ok"  # "ok" | "parse" | "backend"
    attempts: int = 0
    cached: bool = False


class Judge:
    """Asks `backend` (an annotate backend: `complete(messages) -> str`, or one with `complete_schema`) for
    absolute scores or pairwise preferences, through the cache, with retries. `requests` counts backend calls."""

    def __init__(self, backend: Any, cache: JudgeCache | str | Path | None = None, *, attempts: int = 3,
                 backoff: float = 1.0, max_backoff: float = 30.0, concurrency: int = 1,
                 max_consecutive_errors: int = 5, sleep: Callable[[float], None] = time.sleep):
        if attempts < 1 or concurrency < 1:
            raise EcrsError("attempts and concurrency must be >= 1")
        self.backend = backend
        self.cache = JudgeCache(cache) if isinstance(cache, (str, Path)) else cache
        self.attempts, self.backoff, self.max_backoff, self.sleep = attempts, backoff, max_backoff, sleep
        self.max_consecutive_errors = max_consecutive_errors
        self.concurrency = max(1, min(concurrency, getattr(backend, "max_concurrency", 1)))
        self.requests = 0
        self.cache_hits = 0
        self._count = threading.Lock()

    @property
    def meta(self) -> dict[str, str]:
        return {"backend": self.backend.name, "model": self.backend.model, "prompt_version": JUDGE_PROMPT_VERSION}

    def _complete(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> str:
        with self._count:
            self.requests += 1
        fn = getattr(self.backend, "complete_schema", None)
        return fn(messages, schema) if fn is not None else self.backend.complete(messages)

    def ask(self, messages: list[dict[str, str]], parse: Callable[[str], dict[str, Any]],
            schema: dict[str, Any]) -> _Answer:
        key = JudgeCache.key(self.backend.model, messages, "logprobs" if getattr(self.backend, "logprobs", False) else "")
        if self.cache is not None and (raw := self.cache.get(key)) is not None:
            try:
                value = parse(raw)
                with self._count:
                    self.cache_hits += 1
                return _Answer(value, raw, cached=True)
            except JudgeParseError:
                pass  # a stricter parser than the one that cached it: ask again
        ans = _Answer(None, None, kind="backend")
        for attempt in range(1, self.attempts + 1):
            ans.attempts = attempt
            retry_after = None
            try:
                ans.raw = self._complete(messages, schema)
                ans.value, ans.error, ans.kind = parse(ans.raw), None, "ok"
                if self.cache is not None:
                    self.cache.put(key, self.backend.model, ans.raw)
                return ans
            except JudgeParseError as e:
                ans.error, ans.kind = f"unparseable answer: {e}", "parse"
            except BackendError as e:  # FatalBackendError (an EcrsError) propagates: no retry can fix it
                ans.error, ans.kind, ans.raw, retry_after = str(e), "backend", None, e.retry_after
            if attempt < self.attempts:
                delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                self.sleep(max(delay, min(retry_after or 0.0, self.max_backoff)))
        return ans

    def _map(self, fn: Callable[[Any], dict[str, Any]], items: Sequence[Any], progress: bool,
             desc: str) -> list[dict[str, Any]]:
        from tqdm.auto import tqdm

        ids = [it.id for it in items]
        if len(set(ids)) != len(ids):
            raise EcrsError("item ids must be unique")
        ex = cf.ThreadPoolExecutor(max_workers=self.concurrency)
        try:
            bar = tqdm(total=len(items), desc=desc, unit="item", disable=not progress, dynamic_ncols=True)
            rows, consecutive = [], 0
            for row in ex.map(fn, items):  # input order
                rows.append(row)
                bar.update(1)
                consecutive = consecutive + 1 if row.get("kind") == "backend" else 0
                if self.max_consecutive_errors and consecutive >= self.max_consecutive_errors:
                    # The endpoint is down, not the items: stop instead of failing every remaining item slowly.
                    raise FatalBackendError(f"{consecutive} items in a row failed on backend errors (last: "
                                            f"{row['failed']}); stopping. Answers so far are cached: rerun to resume")
            bar.close()
        finally:
            ex.shutdown(wait=False, cancel_futures=True)  # a stop or Ctrl-C leaves no queued requests
        return rows

    def absolute(self, items: Sequence[ReplyItem], progress: bool = False) -> list[dict[str, Any]]:
        """One row per item: {"id", "scores": {dim: 0-9}, "cached", backend/model/prompt_version} or, when every
        attempt failed, {"id", "failed": reason, "kind", "attempts", "raw"?, ...}."""
        def one(it: ReplyItem) -> dict[str, Any]:
            ans = self.ask(absolute_messages(it.context, it.reply), parse_scores, absolute_schema())
            if ans.value is None:
                return _failed(it.id, ans, None, self.meta)
            return {"id": it.id, "scores": ans.value, "cached": ans.cached, **self.meta}

        return self._map(one, items, progress, "judging")

    def pairwise(self, items: Sequence[PairItem], progress: bool = False, system: str | None = None,
                 dimensions: Sequence[str] | None = None,
                 definitions: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """One row per item (`system`: other instructions than `pairwise_system()`, e.g. to measure the wording;
        the rows then name the prompt version "<version>+custom"):

            {"id", "a", "b" (system names), "ab": {dim: A|B|tie} (A shown = a), "ba": {dim: A|B|tie} (A shown = b),
             "preference": {dim: "a"|"b"|"tie"}, "agree": {dim: bool}, "cached": [ab, ba], backend/model/prompt}

        `preference` is a or b only when both orders chose it; `agree` says whether the two orders gave the same
        verdict (the same reply, or tie in both). When both answers carry choice probabilities the row also has
        "ab_probs" / "ba_probs" ({dim: {A, B, tie}} as shown) and the position-calibrated "calibrated" ({dim:
        a|b|tie}) with "calibrated_probs" (`calibrate_orders`). When either order fails every attempt the row is
        {"id", "a", "b", "failed", "kind", "order", ...} instead.

        `dimensions` asks one question per dimension instead (`single_question_messages`, prompt version
        SINGLE_PROMPT_VERSION; `definitions` rewords some dimensions, "+custom"): the same row with only those
        dimensions, "failed" (with "dimension") when any of its questions failed."""
        if dimensions is not None:
            return self._pairwise_single(items, list(dimensions), dict(definitions or {}), progress)
        sys_text = _PAIRWISE_SYSTEM if system is None else system
        meta = self.meta if system is None else {**self.meta, "prompt_version": JUDGE_PROMPT_VERSION + "+custom"}

        def one(it: PairItem) -> dict[str, Any]:
            names = {"a": it.a_name, "b": it.b_name}
            ab = self.ask(pairwise_messages(it.context, it.a, it.b, sys_text), parse_preferences, pairwise_schema())
            if ab.value is None:
                return _failed(it.id, ab, "ab", {**names, **meta})
            ba = self.ask(pairwise_messages(it.context, it.b, it.a, sys_text), parse_preferences, pairwise_schema())
            if ba.value is None:
                return _failed(it.id, ba, "ba", {**names, **meta})
            pref, agree = combine_orders(ab.value, ba.value)
            row = {"id": it.id, **names, "ab": ab.value, "ba": ba.value, "preference": pref, "agree": agree,
                   "cached": [ab.cached, ba.cached], **meta}
            p_ab, p_ba = answer_probs(ab.raw), answer_probs(ba.raw)
            if p_ab and p_ba:
                row["ab_probs"], row["ba_probs"] = p_ab, p_ba
                row["calibrated"], row["calibrated_probs"] = calibrate_orders(p_ab, p_ba)
            return row

        return self._map(one, items, progress, "judging pairs")

    def _pairwise_single(self, items: Sequence[PairItem], dimensions: list[str], definitions: dict[str, str],
                         progress: bool) -> list[dict[str, Any]]:
        unknown = sorted({*dimensions, *definitions} - set(DIMENSIONS))
        if unknown or not dimensions:
            raise EcrsError(f"dimensions must be some of {', '.join(DIMENSIONS)}; got {unknown or 'none'}")
        version = SINGLE_PROMPT_VERSION + ("+custom" if definitions else "")
        meta = {**self.meta, "prompt_version": version}

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
                    cached.append(ans.cached)
            pref, agree = combine_orders(ab, ba)
            row = {"id": it.id, **names, "ab": ab, "ba": ba, "preference": pref, "agree": agree,
                   "cached": cached, **meta}
            if len(p_ab) == len(p_ba) == len(dimensions):
                row["ab_probs"], row["ba_probs"] = p_ab, p_ba
                row["calibrated"], row["calibrated_probs"] = calibrate_orders(p_ab, p_ba)
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
                cached.append(ans.cached)
            diff = p_yes["a"] - p_yes["b"]
            verdict = "tie" if math.isclose(diff, 0.0, abs_tol=1e-9) else "a" if diff > 0 else "b"
            return {"id": it.id, **names, "dimension": dimension, "answers": answers, "p_yes": p_yes,
                    "calibrated": {dimension: verdict},
                    "calibrated_probs": {dimension: {"a": p_yes["a"], "b": p_yes["b"], "tie": 0.0}},
                    "cached": cached, **meta}

        return self._map(one, items, progress, f"asking each reply alone ({dimension})")


def _failed(item_id: str, ans: _Answer, order: str | None, meta: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"id": item_id, **meta, "failed": ans.error, "kind": ans.kind, "attempts": ans.attempts}
    if order is not None:
        row["order"] = order
    if ans.raw is not None:
        row["raw"] = ans.raw
    return row


_SHOWN_AB = {"A": "a", "B": "b", "tie": "tie"}  # one order's verdict as the system it names (a shown first)
_SHOWN_BA = {"A": "b", "B": "a", "tie": "tie"}  # (b shown first)


def combine_orders(ab: Mapping[str, str], ba: Mapping[str, str]) -> tuple[dict[str, str], dict[str, bool]]:
    """Per dimension (of those `ab` holds): the (A=a, B=b) verdict and the (A=b, B=a) verdict, mapped back to
    a/b/tie; kept when the two agree, else tie. Returns (preference, agree)."""
    pref, agree = {}, {}
    for d in (d for d in DIMENSIONS if d in ab):
        x, y = _SHOWN_AB[ab[d]], _SHOWN_BA[ba[d]]
        agree[d] = x == y
        pref[d] = x if x == y else "tie"
    return pref, agree


# ---------------------------------------------------------------------------------------------------------------
# Summaries and agreement
# ---------------------------------------------------------------------------------------------------------------

def _rate(k: int, n: int) -> float | None:
    return round(k / n, 4) if n else None


def summarize_pairwise(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Win/loss/tie rates of a over b per dimension, over judged rows (failed rows are counted, not rated).

    win = both orders preferred a; loss = both preferred b; tie = both said tie or the orders disagreed.
    order_agreement = share of dimension verdicts on which the two orders agreed (same reply or both tie).
    first_position_rate = share of single-order non-tie verdicts that picked the reply shown first (0.5 = no
    position bias).
    single_order = the same win/loss/tie counted over the 2n single-order judgements (each order one judgement):
    every pair is shown once in each position, so position bias adds as much to a as to b; ties only where the
    judge said tie. A second reading of "share of pairwise judgements", beside the both-orders one.
    calibrated = win/loss/tie of the position-calibrated verdicts (`calibrate_orders`) over the rows that carry
    them, with the mean P(a) - P(b) and "forced": the shares of rows with P(a) > P(b) and P(b) > P(a), i.e. which
    reply the judge leans to with "tie" set aside (a direction, not a verdict: a judge that says "tie" to
    everything still leans); first_position_prob = the judge's mean P(A) / (P(A) + P(B)) over both orders
    and all dimensions of those rows (0.5 = no position bias). A third reading, present only with probabilities."""
    rows = list(rows)
    ok = [r for r in rows if "preference" in r]
    n = len(ok)
    asked = [d for d in DIMENSIONS if all(d in r["preference"] for r in ok)]  # all five, or those asked alone
    dims: dict[str, Any] = {}
    first = decisive = 0
    for d in asked:
        c = Counter(r["preference"][d] for r in ok)
        agree = sum(r["agree"][d] for r in ok)
        single = Counter(v for r in ok for v in (_SHOWN_AB[r["ab"][d]], _SHOWN_BA[r["ba"][d]]))
        dims[d] = {"win": _rate(c["a"], n), "loss": _rate(c["b"], n), "tie": _rate(c["tie"], n),
                   "wins": c["a"], "losses": c["b"], "ties": c["tie"], "n": n,
                   "order_agreement": _rate(agree, n),
                   "single_order": {"win": _rate(single["a"], 2 * n), "loss": _rate(single["b"], 2 * n),
                                    "tie": _rate(single["tie"], 2 * n), "n": 2 * n}}
        cal = [(r["calibrated"][d], r["calibrated_probs"][d]) for r in ok if d in r.get("calibrated", {})]
        if cal:
            dims[d]["calibrated"] = summarize_calibrated(cal)
        for r in ok:
            for v in (r["ab"][d], r["ba"][d]):
                decisive += v != "tie"
                first += v == "A"
    agree_all = sum(r["agree"][d] for r in ok for d in asked)
    out = {"n": n, "n_failed": len(rows) - n, "dimensions": dims,
           "order_agreement": _rate(agree_all, n * len(asked)),
           "first_position_rate": _rate(first, decisive), "decisive_single_order_verdicts": decisive}
    shown = [p[d] for r in ok for key in ("ab_probs", "ba_probs") for p in [r.get(key) or {}] for d in p
             if p[d]["A"] + p[d]["B"] > 0]
    if shown:
        out["first_position_prob"] = round(sum(p["A"] / (p["A"] + p["B"]) for p in shown) / len(shown), 4)
    return out


def summarize_calibrated(cal: Sequence[tuple[str, Mapping[str, float]]]) -> dict[str, Any]:
    """Position-calibrated verdicts of one dimension, [(a | b | tie, {"a", "b", "tie"} probabilities)] as
    `calibrate_orders` gives them -> win / loss / tie rates, n, mean P(a) - P(b) and the "forced" lean (shares with
    P(a) > P(b) and P(b) > P(a))."""
    n = len(cal)
    c = Counter(v for v, _ in cal)
    diffs = [p["a"] - p["b"] for _, p in cal]
    return {"win": _rate(c["a"], n), "loss": _rate(c["b"], n), "tie": _rate(c["tie"], n), "n": n,
            "mean_p_a_minus_p_b": round(sum(diffs) / n, 4) if n else None,
            "forced": {"a": _rate(sum(x > 0 for x in diffs), n), "b": _rate(sum(x < 0 for x in diffs), n)}}


def summarize_yes_no(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """`Judge.paired_yes_no` rows -> win / loss / tie of a (P(yes) higher / lower / equal), mean P(yes | a) -
    P(yes | b), the yes-answer rates of both sides; failed rows counted apart."""
    rows = list(rows)
    ok = [r for r in rows if "p_yes" in r]
    out: dict[str, Any] = {"n": len(ok), "n_failed": len(rows) - len(ok)}
    if ok:
        d = ok[0]["dimension"]
        out.update(dimension=d, **summarize_calibrated([(r["calibrated"][d], r["calibrated_probs"][d]) for r in ok]))
        out["yes_rate"] = {s: _rate(sum(r["answers"][s] == "yes" for r in ok), len(ok)) for s in ("a", "b")}
        out["mean_p_yes"] = {s: round(sum(r["p_yes"][s] for r in ok) / len(ok), 4) for s in ("a", "b")}
    return out


def summarize_absolute(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean score per dimension over rated rows (failed rows counted apart)."""
    rows = list(rows)
    ok = [r for r in rows if "scores" in r]
    return {"n": len(ok), "n_failed": len(rows) - len(ok),
            "mean": {d: round(sum(r["scores"][d] for r in ok) / len(ok), 3) if ok else None for d in DIMENSIONS}}


def scores_to_preferences(a: Mapping[str, Mapping[str, int]], b: Mapping[str, Mapping[str, int]]
                          ) -> dict[str, dict[str, str]]:
    """Absolute scores of two systems on the same ids -> {id: {dim: "a" | "b" | "tie"}} (higher score wins), so an
    absolute judge's ranking can be compared with a pairwise one or with people."""
    return {i: {d: "a" if a[i][d] > b[i][d] else "b" if a[i][d] < b[i][d] else "tie" for d in DIMENSIONS}
            for i in a if i in b}


def preference_kappa(x: Mapping[str, Mapping[str, str]], y: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """Cohen's kappa of two raters' a/b/tie outcomes ({id: {dim: outcome}}), per dimension and pooled over all
    (id, dimension) pairs both rated; None where kappa is undefined (one label throughout)."""
    out: dict[str, Any] = {"dimensions": {}}
    pooled_x, pooled_y = [], []
    for d in DIMENSIONS:
        ids = [i for i in x if i in y and d in x[i] and d in y[i]]
        xs, ys = [x[i][d] for i in ids], [y[i][d] for i in ids]
        k = cohen_kappa(xs, ys)
        out["dimensions"][d] = {"n": len(ids), "kappa": None if k is None else round(k, 4),
                                "agreement": _rate(sum(p == q for p, q in zip(xs, ys)), len(ids))}
        pooled_x += xs
        pooled_y += ys
    k = cohen_kappa(pooled_x, pooled_y)
    out.update({"n": len(pooled_x), "kappa": None if k is None else round(k, 4),
                "agreement": _rate(sum(p == q for p, q in zip(pooled_x, pooled_y)), len(pooled_x))})
    return out


# ---------------------------------------------------------------------------------------------------------------
# Human rating form
# ---------------------------------------------------------------------------------------------------------------

FORM_VALUES = ("1", "2", "tie")  # reply 1 better, reply 2 better, equal; an empty cell = not rated
_FORM_FIELDS = ("item", "context", "reply_1", "reply_2", *DIMENSIONS)


def form_paths(csv_path: str | Path) -> tuple[Path, Path, Path]:
    """(form.csv, form.html, form.key.json) of a form."""
    p = Path(csv_path)
    return p, p.with_suffix(".html"), p.with_suffix(".key.json")


def export_form(items: Sequence[PairItem], csv_path: str | Path, n: int | None = None, seed: int = 0) -> list[Path]:
    """Write a blinded rating form for `n` seeded-random items (all when None): a CSV to fill in a spreadsheet,
    the same as a self-contained HTML page whose button downloads the filled CSV, and a key file (which system
    is reply 1) that the raters should not see. Replies are shown in a random order per item so people cannot
    learn which position holds which system."""
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        raise EcrsError("item ids must be unique")
    rng = random.Random(seed)
    sample = rng.sample(list(items), min(n, len(items))) if n is not None else list(items)
    if not sample:
        raise EcrsError("no items to put in the form")
    csv_p, html_p, key_p = form_paths(csv_path)
    csv_p.parent.mkdir(parents=True, exist_ok=True)
    key, rows = {}, []
    for it in sample:
        swapped = rng.random() < 0.5
        first, second = (it.b, it.a) if swapped else (it.a, it.b)
        key[it.id] = {"reply_1": it.b_name if swapped else it.a_name, "reply_2": it.a_name if swapped else it.b_name,
                      "swapped": swapped}
        rows.append({"item": it.id, "context": it.context, "reply_1": first, "reply_2": second,
                     **{d: "" for d in DIMENSIONS}})
    with csv_p.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=_FORM_FIELDS)
        w.writeheader()
        w.writerows(rows)
    key_p.write_text(json.dumps({"prompt_version": JUDGE_PROMPT_VERSION, "seed": seed, "items": key}, indent=1)
                     + "\n")
    html_p.write_text(_form_html(rows), encoding="utf-8")
    return [csv_p, html_p, key_p]


def _form_html(rows: list[dict[str, str]]) -> str:
    data = json.dumps({"fields": _FORM_FIELDS, "dims": DIMENSION_DEFINITIONS, "rows": rows}, ensure_ascii=False)
    data = data.replace("</", "<\\/")  # a reply containing "</script>" must not end the script element
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Rate recommender replies ({html.escape(JUDGE_PROMPT_VERSION)})
</title>
<style>body{{font:15px system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
.item{{border:1px solid #ccc;border-radius:6px;padding:1rem;margin:1rem 0}}pre{{white-space:pre-wrap;
background:#f6f6f6;padding:.5rem}}.replies{{display:grid;grid-template-columns:1fr 1fr;gap:1rem}}
td{{padding:.2rem .6rem}}</style></head><body>
<h1>Which reply is better?</h1>
<p>For each conversation, compare reply 1 and reply 2 on each dimension: 1, 2, or tie. Dimensions:</p>
<ul id="dims"></ul><div id="items"></div>
<button id="save">Download filled CSV</button>
<script id="data" type="application/json">{data}</script>
<script>
const D = JSON.parse(document.getElementById("data").textContent);
const el = (t, a = {{}}, txt) => {{ const e = document.createElement(t); Object.assign(e, a);
  if (txt !== undefined) e.textContent = txt; return e; }};
for (const [d, t] of Object.entries(D.dims)) document.getElementById("dims").append(el("li", {{}}, d + ": " + t));
D.rows.forEach((r, i) => {{
  const box = el("div", {{className: "item"}});
  box.append(el("h3", {{}}, "Item " + (i + 1)), el("pre", {{}}, r.context));
  const reps = el("div", {{className: "replies"}});
  for (const k of ["reply_1", "reply_2"]) {{ const c = el("div"); c.append(el("b", {{}}, k.replace("_", " ")),
    el("pre", {{}}, r[k])); reps.append(c); }}
  const tab = el("table");
  for (const d of Object.keys(D.dims)) {{
    const tr = el("tr"); tr.append(el("td", {{}}, d));
    for (const v of ["1", "2", "tie"]) {{ const td = el("td"), lab = el("label");
      const inp = el("input", {{type: "radio", name: i + ":" + d, value: v}});
      inp.onchange = () => {{ r[d] = v; }}; lab.append(inp, " " + v); td.append(lab); tr.append(td); }}
    tab.append(tr);
  }}
  box.append(reps, tab); document.getElementById("items").append(box);
}});
const q = s => '"' + String(s).replaceAll('"', '""') + '"';
document.getElementById("save").onclick = () => {{
  const lines = [D.fields.join(",")].concat(D.rows.map(r => D.fields.map(f => q(r[f] ?? "")).join(",")));
  const a = el("a", {{href: URL.createObjectURL(new Blob([lines.join("\\r\\n") + "\\r\\n"], {{type: "text/csv"}})),
    download: "ratings.csv"}});
  a.click();
}};
</script></body></html>
"""


def import_form(csv_path: str | Path, key_path: str | Path | None = None) -> dict[str, dict[str, str]]:
    """A filled form -> {item: {dim: "a" | "b" | "tie"}} (un-blinded with the key; default: the form's own key
    file). Empty cells are unrated and left out; any other value than 1, 2, tie raises DataError with the line."""
    csv_p = Path(csv_path)
    key_p = Path(key_path) if key_path is not None else form_paths(csv_p)[2]
    if not csv_p.exists():
        raise DataError("form not found", csv_p)
    if not key_p.exists():
        raise DataError("key file not found (written by export-form beside the CSV)", key_p)
    try:
        key = json.loads(key_p.read_text())["items"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataError(f"not a form key ({type(e).__name__})", key_p) from None
    out: dict[str, dict[str, str]] = {}
    with csv_p.open(newline="", encoding="utf-8-sig") as f:  # utf-8-sig: spreadsheets often add a BOM
        reader = csv.DictReader(f)
        missing = [c for c in ("item", *DIMENSIONS) if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"missing columns {missing}", csv_p, 1)
        for row in reader:
            line = reader.line_num
            item = (row["item"] or "").strip()
            if item not in key:
                raise DataError(f"item {item!r} is not in the key {key_p}", csv_p, line)
            if item in out:
                raise DataError(f"item {item!r} twice", csv_p, line)
            swapped = bool(key[item]["swapped"])
            to_ab = {"1": "b" if swapped else "a", "2": "a" if swapped else "b", "tie": "tie"}
            rated = {}
            for d in DIMENSIONS:
                v = (row[d] or "").strip().lower()
                if not v:
                    continue
                if v not in to_ab:
                    raise DataError(f"{d}: {row[d]!r} is not one of 1, 2, tie (or empty)", csv_p, line)
                rated[d] = to_ab[v]
            out[item] = rated
    return out
