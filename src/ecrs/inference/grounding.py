"""Grounding checker (ECR_SPEC §8, "grounded facts only"): does a generated reply state a year or name a person,
movie or company that the prompt's knowledge does not contain?

- Years: every 4-digit year 1800–2099 in the reply ("in 1997"; decades such as "1990s" are not years) must occur
  in the prompt's knowledge text.
- Names: the live entity linker finds graph entities in the reply; a mention is a *name* when its surface has a
  capital letter and it is not a genre ("horror", "Comedy" are descriptions, not facts about people). A name is
  grounded when its entity is one the prompt gave, or one the linker finds in the knowledge text, or its surface
  occurs in the knowledge text (case-insensitive).

Used two ways: as a metric (`error_rate`: share of replies with at least one violation) and at serve time
(`repair`): sentences with a violation are dropped, the first sentence (the prompt's own, grounded by
construction) is always kept.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from ecrs.data.reviews import split_sentences

__all__ = ["GroundingChecker", "Knowledge", "Violation", "error_rate", "years_in"]

_YEAR = re.compile(r"(?<![\d/.,-])\b(1[89]\d{2}|20\d{2})\b(?!'?s\b)(?![\d/-])")


def years_in(text: str) -> set[str]:
    """4-digit years in `text` ("1997", "(2004)"); decades ("1990s", "1990's") and long numbers excluded."""
    return set(_YEAR.findall(text))


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


@dataclass(frozen=True)
class Violation:
    kind: Literal["year", "name"]
    surface: str
    sentence: int  # index of the offending sentence in `split_sentences(reply)`
    entity: int | None = None


@dataclass
class Knowledge:
    """What a reply may state: the prompt's knowledge text and the entity ids it names."""

    text: str
    entities: frozenset[int] = frozenset()


class GroundingChecker:
    """Wraps a linker (`link(text) -> [Mention]`) and the ids of genre entities (never counted as names)."""

    def __init__(self, linker, genre_ids: Iterable[int] | None = None):
        self.linker = linker
        self.genre_ids = frozenset(genre_ids if genre_ids is not None else getattr(linker, "genre_ids", ()))

    def knowledge(self, text: str, entities: Iterable[int] = ()) -> Knowledge:
        """Knowledge from a prompt text (the entities the linker finds in it are added to `entities`)."""
        found = {m.entity_id for m in self.linker.link(text)}
        return Knowledge(text=text, entities=frozenset(entities) | found)

    def violations(self, reply: str, knowledge: Knowledge) -> list[Violation]:
        years = years_in(knowledge.text)
        known = f" {_norm(knowledge.text)} "
        out: list[Violation] = []
        for i, sentence in enumerate(split_sentences(reply)):
            out += [Violation("year", y, i) for y in sorted(years_in(sentence) - years)]
            for m in self.linker.link(sentence):
                if m.entity_id in self.genre_ids or m.surface == m.surface.lower():
                    continue
                if m.entity_id in knowledge.entities or f" {_norm(m.surface)} " in known:
                    continue
                out.append(Violation("name", m.surface, i, m.entity_id))
        return out

    def repair(self, reply: str, knowledge: Knowledge, keep_first: bool = True) -> tuple[str, list[Violation]]:
        """(reply without its offending sentences, the violations found before the repair)."""
        found = self.violations(reply, knowledge)
        if not found:
            return reply, found
        bad = {v.sentence for v in found}
        if keep_first:
            bad.discard(0)
        kept = [s for i, s in enumerate(split_sentences(reply)) if i not in bad]
        return " ".join(kept), found


def error_rate(violations: Sequence[Sequence[Violation]]) -> float:
    """Share of replies with at least one violation; raises on an empty list (undefined)."""
    if len(violations) == 0:
        raise ValueError("no replies: the grounding-error rate is undefined")
    return sum(bool(v) for v in violations) / len(violations)
