"""Dialogues in one canonical form, from ReDial's raw schema, INSPIRED (UniCRS format) and our own JSONL format.

Consecutive messages of one speaker are merged into one turn, as UniCRS does. A turn keeps
- `text`: what a person reads (ReDial `@123` mentions replaced by the movie title),
- `raw`: the text as stored (with `@123`, which the linker resolves exactly),
- `movies`: graph entity ids of the movies the turn mentions with gold ids (ReDial `@id`, INSPIRED `movie_link`,
  own-data `movies`), in order; these define recommendation targets,
- `entities`: all linked graph entities in text order, duplicates kept (filled by the linker in `prepare`).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ecrs.data.bundle import iter_jsonl
from ecrs.errors import DataError

Role = Literal["seeker", "recommender"]
# unknown = the seeker answered the questionnaire with "did not say"; missing = there is no answer for the movie at
# all (most public ReDial train dialogues come without the questionnaire: ECR's weights are for the first, not this)
Feedback = Literal["liked", "disliked", "unknown", "missing"]
REDIAL_MENTION = re.compile(r"@(\d+)")
_LIKED = {1: "liked", 0: "disliked", 2: "unknown"}


@dataclass
class Turn:
    role: Role
    text: str
    raw: str = ""
    movies: list[int] = field(default_factory=list)
    entities: list[int] = field(default_factory=list)


@dataclass
class Dialogue:
    id: str
    turns: list[Turn]
    feedback: dict[int, Feedback] = field(default_factory=dict)  # movie entity id -> seeker's questionnaire answer
    source: str = ""


def _merge_turns(messages: Iterable[tuple[Role, str]]) -> list[tuple[Role, str]]:
    merged: list[tuple[Role, str]] = []
    for role, text in messages:
        text = text.strip()
        if not text:
            continue
        if merged and merged[-1][0] == role:
            merged[-1] = (role, merged[-1][1] + " " + text)
        else:
            merged.append((role, text))
    return merged


def _clean_title(title: str) -> str:
    return re.sub(r"\s+", " ", title).strip()


# ---------------------------------------------------------------- ReDial (raw official schema)

def redial_dialogue(
    obj: dict[str, Any], movie_entity: dict[str, int], titles: dict[str, str], where: tuple[Path, int]
) -> Dialogue | None:
    """One raw ReDial line -> Dialogue; None for lines without speaker-segmented messages (kept out on purpose:
    with speakers unknown there is no recommender turn to learn from)."""
    try:
        messages = obj["messages"]
        seeker = obj["initiatorWorkerId"]
        conv_id = str(obj.get("conversationId", ""))
        mentions = obj.get("movieMentions") or {}
    except (KeyError, TypeError) as e:
        raise DataError(f"not a ReDial dialogue (missing {e})", *where) from None
    if not isinstance(messages, list) or not isinstance(mentions, dict):
        raise DataError("not a ReDial dialogue (messages must be a list, movieMentions a mapping)", *where)
    if not messages:
        return None
    names = {**titles, **{k: _clean_title(v) for k, v in mentions.items() if isinstance(v, str)}}
    try:
        merged = _merge_turns(
            ("seeker" if m["senderWorkerId"] == seeker else "recommender", str(m["text"])) for m in messages
        )
    except (KeyError, TypeError) as e:
        raise DataError(f"malformed message (missing {e})", *where) from None
    turns = []
    for role, raw in merged:
        movies = [movie_entity[m] for m in REDIAL_MENTION.findall(raw) if m in movie_entity]
        text = REDIAL_MENTION.sub(lambda m: names.get(m.group(1), m.group(0)), raw)
        turns.append(Turn(role=role, text=text, raw=raw, movies=movies))
    # The seeker's own questionnaire answers; the recommender's guesses only where the seeker gave none.
    feedback: dict[int, Feedback] = {}
    for key in ("respondentQuestions", "initiatorQuestions"):
        answers = obj.get(key)
        if not isinstance(answers, dict):
            continue
        for mid, ans in answers.items():
            if mid in movie_entity and isinstance(ans, dict):
                feedback[movie_entity[mid]] = _LIKED.get(ans.get("liked"), "unknown")  # type: ignore[assignment]
    return Dialogue(id=conv_id, turns=turns, feedback=feedback, source=str(obj.get("_source", "redial")))


def load_redial(path: Path, movie_entity: dict[str, int], titles: dict[str, str]) -> Iterator[Dialogue]:
    for lineno, obj in iter_jsonl(path):
        if not isinstance(obj, dict):
            raise DataError("expected a JSON object", path, lineno)
        d = redial_dialogue(obj, movie_entity, titles, (path, lineno))
        if d is not None:
            yield d


# ---------------------------------------------------------------- INSPIRED (UniCRS format)

def load_inspired(path: Path, entity2id: dict[str, int]) -> Iterator[Dialogue]:
    """INSPIRED as released by UniCRS: one dialogue per line, a list of turns with DBpedia links."""
    for lineno, obj in iter_jsonl(path):
        if not isinstance(obj, list):
            raise DataError("expected a list of turns", path, lineno)
        turns: list[tuple[Role, str, list[int], list[int]]] = []
        for t in obj:
            try:
                role: Role = "seeker" if t["role"] == "SEEKER" else "recommender"
                text = str(t["text"])
                movies = [entity2id[u] for u in t.get("movie_link", []) if u in entity2id]
                ents = [
                    (text.lower().find(name.lower()), entity2id[u])
                    for u, name in zip(t.get("entity_link", []), t.get("entity_name", []))
                    if u in entity2id
                ]
                ents += [
                    (text.lower().find(name.lower()), entity2id[u])
                    for u, name in zip(t.get("movie_link", []), t.get("movie_name", []))
                    if u in entity2id
                ]
            except (KeyError, TypeError, AttributeError) as e:
                raise DataError(f"malformed INSPIRED turn ({e})", path, lineno) from None
            ordered = [e for pos, e in sorted(ents, key=lambda pe: (pe[0] < 0, pe[0]))]
            if turns and turns[-1][0] == role:  # merge consecutive messages of one speaker
                r, tx, mv, en = turns[-1]
                turns[-1] = (r, tx + " " + text, mv + movies, en + ordered)
            else:
                turns.append((role, text, movies, ordered))
        yield Dialogue(
            id=f"inspired-{path.stem.split('_')[0]}-{lineno}",
            turns=[Turn(role=r, text=tx, raw=tx, movies=mv, entities=en) for r, tx, mv, en in turns],
            source="inspired",
        )


# ---------------------------------------------------------------- our own JSONL format (docs/OWN_DATA.md)

def load_own(path: Path, resolve_movie) -> Iterator[Dialogue]:
    """Own-data format: `{"id", "turns": [{"role": "seeker"|"recommender", "text", "movies"?: [..]}],
    "feedback"?: {movie: "liked"|"disliked"|"unknown"}}`; `resolve_movie(str) -> entity id | None` maps a
    movie given as a DBpedia URI or a title to the graph."""
    seen: set[str] = set()
    for lineno, obj in iter_jsonl(path):
        if not isinstance(obj, dict) or not isinstance(obj.get("turns"), list) or "id" not in obj:
            raise DataError('expected {"id": ..., "turns": [...]}', path, lineno)
        did = str(obj["id"])
        if did in seen:
            raise DataError(f"duplicate dialogue id {did!r}", path, lineno)
        seen.add(did)
        unknown = set(obj) - {"id", "turns", "feedback", "source"}
        if unknown:
            raise DataError(f"unknown key {sorted(unknown)[0]!r}", path, lineno)
        turns = []
        for i, t in enumerate(obj["turns"]):
            if not isinstance(t, dict) or t.get("role") not in ("seeker", "recommender") or not isinstance(
                t.get("text"), str
            ):
                raise DataError(f'turn {i}: expected {{"role": "seeker"|"recommender", "text": str}}', path, lineno)
            movies = []
            for m in t.get("movies", []):
                e = resolve_movie(str(m))
                if e is None:
                    raise DataError(f"turn {i}: movie {m!r} is not in the graph", path, lineno)
                movies.append(e)
            turns.append(Turn(role=t["role"], text=t["text"], raw=t["text"], movies=movies))
        feedback: dict[int, Feedback] = {}
        for m, v in (obj.get("feedback") or {}).items():
            e = resolve_movie(str(m))
            if e is None or v not in ("liked", "disliked", "unknown"):
                raise DataError(f"feedback {m!r}: {v!r} (movie must be in the graph; value liked|disliked|unknown)",
                                path, lineno)
            feedback[e] = v
        yield Dialogue(id=did, turns=turns, feedback=feedback, source=str(obj.get("source", path.name)))


def dump_own(d: Dialogue, movie_key) -> dict[str, Any]:
    """Dialogue -> own-data JSON object (`movie_key(entity id) -> str` names each movie)."""
    return {
        "id": d.id,
        "source": d.source,
        "turns": [
            {"role": t.role, "text": t.text, **({"movies": [movie_key(m) for m in t.movies]} if t.movies else {})}
            for t in d.turns
        ],
        **({"feedback": {movie_key(m): v for m, v in d.feedback.items()}} if d.feedback else {}),
    }
