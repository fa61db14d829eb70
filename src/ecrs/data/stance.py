"""What a person said about each thing a message names: one stance per mention (issue 24).

    ex = StanceExample(text="loved Titanic but no horror please", group="d1",
                       mentions=[Span(6, 13, "movie"), Span(21, 27, "genre")], labels=["liked", "avoid"])

Stances: `liked` / `disliked` (an opinion of something known), `wants` / `avoid` (a request for now: "something
with Tom Hanks", "no horror"), `seen` (a movie already watched, no opinion given), `none` (named without an opinion
or request, or someone else's). ECR broadcasts the utterance's emotion to every entity it names; a stance is the
emotion of the one entity ("I loved Titanic but Jim Carrey gets on my nerves" likes one and dislikes the other).

Two sources of real labels:
- ReDial's seeker questionnaire (`redial_stance_examples`): after each dialogue the seeker said, for every movie of
  it, whether they had seen it and liked it. Each seeker message naming a movie is an example, labelled with that
  answer (liked, disliked, seen-without-verdict, else none); a seeker message that names no movie but answers the
  recommender's single suggestion ("seen it, loved it") is an example about that movie, of kind `reply`.
- Hand-written seeker utterances about people and genres (`data/stance/people_genres.jsonl`), split by sentence
  family so paraphrases of one sentence never sit on both sides.
"""
from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ecrs.data.bundle import iter_jsonl
from ecrs.data.catalogue import genre_mentions, studio_mentions
from ecrs.data.dialogues import REDIAL_MENTION
from ecrs.errors import DataError

__all__ = ["KINDS", "STANCES", "STANCE_EMOTIONS", "Span", "StanceExample", "Target", "load_people_genres", "named_targets",
           "redial_stance_examples"]

STANCES = ("liked", "disliked", "wants", "avoid", "seen", "none")
# `reply`: no span; the message reacts to the movie the system just suggested ("seen it, loved it").
KINDS = ("movie", "person", "genre", "reply")
Kind = Literal["movie", "person", "genre", "reply"]


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    kind: Kind


@dataclass
class StanceExample:
    text: str
    group: str  # the dialogue or sentence family: splits never cut one
    mentions: list[Span]
    labels: list[str] = field(default_factory=list)  # one per mention (empty when unlabelled)


# A stance as the emotion ECR attaches to the entity (the others keep the utterance's: ECR's broadcast).
STANCE_EMOTIONS: dict[str, list[tuple[str, float]]] = {
    "liked": [("like", 1.0)], "wants": [("like", 1.0)], "disliked": [("negative", 1.0)], "avoid": [("negative", 1.0)]}


@dataclass
class Target:
    """One thing a message names (a span of it, or the last suggestions for `reply`) and what was said of it."""

    span: Span
    entity: int | None
    genre: str | None
    stance: str = "none"


def named_targets(text: str, mentions, people: Collection[int], after_suggestion: bool) -> list[Target]:
    """The things `text` names, in text order: linked movies and people (`mentions`: the linker's, with spans),
    genre words not inside a linked title or name, and, when it names nothing right after the recommender
    suggested some (`after_suggestion`), those suggestions ("seen it", "loved it") as one `reply` target."""
    out = []
    for m in mentions:
        kind = "movie" if m.is_movie else "person" if m.entity_id in people else None
        if kind:
            out.append(Target(Span(m.start, m.end, kind), m.entity_id, None))
    named = [(t.span.start, t.span.end) for t in out]  # "Civil War" is a title, not the war genre
    for start, end, genre in genre_mentions(text) + studio_mentions(text):  # a studio is read as a genre is
        if not any(s < end and start < e for s, e in named):
            out.append(Target(Span(start, end, "genre"), None, genre))
            named.append((start, end))
    if after_suggestion and not out:  # "I can't stand musicals" after a suggestion is about musicals, not it
        out.append(Target(Span(0, 0, "reply"), None, None))
    return sorted(out, key=lambda t: t.span.start)


def questionnaire_stance(answer: object) -> str:
    """A ReDial questionnaire answer ({suggested, seen, liked}: 0 no, 1 yes, 2 did not say) as a stance."""
    if not isinstance(answer, dict):
        return "none"
    liked, seen = answer.get("liked"), answer.get("seen")
    if liked == 1:
        return "liked"
    if liked == 0:
        return "disliked"
    return "seen" if seen == 1 else "none"


def redial_stance_examples(path: Path, titles: dict[str, str]) -> Iterator[StanceExample]:
    """Seeker messages of raw ReDial dialogues that have the seeker's questionnaire, one example per message (not
    per merged turn: a chat message is what the live system reads). `@123` becomes the movie's title and its span a
    `movie` mention labelled with the seeker's answer for it."""
    for lineno, obj in iter_jsonl(path):
        try:
            answers = obj.get("initiatorQuestions") or {}
            seeker = obj["initiatorWorkerId"]
            names = {**titles, **(obj.get("movieMentions") or {})}
            messages = obj["messages"]
            group = str(obj.get("conversationId", lineno))
        except (AttributeError, KeyError, TypeError) as e:
            raise DataError(f"not a ReDial dialogue ({e})", path, lineno) from None
        if not isinstance(answers, dict) or not answers:
            continue
        suggested: list[str] = []  # the movies of the recommender's messages since the seeker last spoke
        for m in messages:
            raw = str(m.get("text", ""))
            ids = REDIAL_MENTION.findall(raw)
            if m.get("senderWorkerId") != seeker:
                suggested += ids
                continue
            text, spans = _replace_mentions(raw, names)
            if spans:
                yield StanceExample(text, group, [s for s, _ in spans],
                                    [questionnaire_stance(answers.get(mid)) for _, mid in spans])
            elif len(set(suggested)) == 1 and text.strip():
                yield StanceExample(text, group, [Span(0, 0, "reply")],
                                    [questionnaire_stance(answers.get(suggested[0]))])
            suggested = []


def _replace_mentions(raw: str, names: dict[str, str]) -> tuple[str, list[tuple[Span, str]]]:
    out, spans, pos = [], [], 0
    for m in REDIAL_MENTION.finditer(raw):
        out.append(raw[pos:m.start()])
        start = sum(len(p) for p in out)
        title = re.sub(r"\s*\(\d{4}\)\s*$", "", " ".join(str(names.get(m.group(1), "that movie")).split()))
        out.append(title)
        spans.append((Span(start, start + len(title), "movie"), m.group(1)))
        pos = m.end()
    out.append(raw[pos:])
    return "".join(out), spans


def load_people_genres(path: Path) -> dict[str, list[StanceExample]]:
    """The hand-written people / genre utterances, by split ({"train": [...], "test": [...]}); a `reply` mention
    (no span) is a reaction to the system's one suggestion."""
    out: dict[str, list[StanceExample]] = {"train": [], "test": []}
    for lineno, obj in iter_jsonl(path):
        try:
            text, split = obj["text"], obj["split"]
            mentions, labels = [], []
            for m in obj["mentions"]:
                mentions.append(Span(int(m["start"]), int(m["end"]), m["kind"]))
                labels.append(m["stance"])
            out[split].append(StanceExample(text, str(obj["family"]), mentions, labels))
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"not a stance example ({type(e).__name__}: {e})", path, lineno) from None
        if any(lab not in STANCES for lab in labels) or any(s.kind not in KINDS for s in mentions):
            raise DataError(f"unknown stance or kind in {labels} / {[s.kind for s in mentions]}", path, lineno)
    return out
