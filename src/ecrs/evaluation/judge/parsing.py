"""Reading the judge's answers: the bare word it wrote, its probabilities of each allowed word at the first answer
token, and the two orders of a pair combined into one verdict.

Position calibration: with token log-probabilities (the local llama.cpp judge always; an OpenAI-compatible endpoint
with `llm.logprobs`), `calibrate_orders` averages the judge's probabilities over the two orders, P(a) = (P_ab(A) +
P_ba(B)) / 2 and likewise for b and tie; the verdict is the most probable of the three. A judge that always prefers
the first position adds as much to a as to b, so the bias cancels while its confidence on the content stays
(balanced position calibration, Wang et al. 2023, "Large Language Models are not Fair Evaluators").
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ecrs.evaluation.judge.prompts import DIMENSIONS, PREFERENCES
from ecrs.inference.llm import AnswerError

__all__ = [
    "JudgeParseError",
    "answer_probs",
    "answer_text",
    "calibrate_orders",
    "combine_orders",
    "first_token_probs",
    "parse_choice",
    "parse_yes_no",
    "with_choice_probs",
]


class JudgeParseError(AnswerError):
    """The judge's answer is not one of the allowed words."""


def parse_choice(raw: str) -> dict[str, str]:
    """A single-question answer -> {"choice": "A" | "B" | "tie"}: the bare word, in any case, with surrounding
    quotes, spaces or a full stop ("Reply A" too, as endpoints without a grammar write it)."""
    m = re.fullmatch(r"""\W*(?:reply\s+)?(a|b|tie)\W*""", str(answer_text(raw)).strip(), flags=re.IGNORECASE)
    if m is None:
        raise JudgeParseError(f"expected A, B or tie, got {str(answer_text(raw))[:60]!r}")
    word = m.group(1)
    return {"choice": "tie" if word.lower() == "tie" else word.upper()}


def parse_yes_no(raw: str) -> dict[str, str]:
    """A yes/no answer -> {"choice": "yes" | "no"} (any case, surrounding punctuation allowed)."""
    m = re.fullmatch(r"\W*(yes|no)\W*", str(answer_text(raw)).strip(), flags=re.IGNORECASE)
    if m is None:
        raise JudgeParseError(f"expected yes or no, got {str(answer_text(raw))[:60]!r}")
    return {"choice": m.group(1).lower()}


def first_token_probs(logprobs: Any, values: Sequence[str] = PREFERENCES) -> dict[str, float] | None:
    """{value: probability} of a bare-word answer: the top tokens at the first answer token that start a value
    ("A", "B"; "t", "ti", "tie", in any case, for tie), renormalised over the values (a grammar-constrained answer
    never contains the rest); None when there are no log-probabilities or none of them starts a value."""
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


def with_choice_probs(content: str, logprobs: Any, values: Sequence[str]) -> str:
    """The raw answer the judge caches: `content` itself, or, when the log-probabilities give the allowed `values`
    some mass, the JSON envelope {"answer": content, "choice_probs": {"choice": {value: probability}}}."""
    first = first_token_probs(logprobs, values) if logprobs else None
    return json.dumps({"answer": content, "choice_probs": {"choice": first}}) if first else content


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


SHOWN_AB = {"A": "a", "B": "b", "tie": "tie"}  # one order's verdict as the system it names (a shown first)
SHOWN_BA = {"A": "b", "B": "a", "tie": "tie"}  # (b shown first)


def combine_orders(ab: Mapping[str, str], ba: Mapping[str, str]) -> tuple[dict[str, str], dict[str, bool]]:
    """Per dimension (of those `ab` holds): the (A=a, B=b) verdict and the (A=b, B=a) verdict, mapped back to
    a/b/tie; kept when the two agree, else tie. Returns (preference, agree)."""
    pref, agree = {}, {}
    for d in (d for d in DIMENSIONS if d in ab):
        x, y = SHOWN_AB[ab[d]], SHOWN_BA[ba[d]]
        agree[d] = x == y
        pref[d] = x if x == y else "tie"
    return pref, agree
