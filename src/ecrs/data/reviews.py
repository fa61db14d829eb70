"""Review knowledge for emotion-aligned response generation (ECR_SPEC §5).

ECR fine-tunes its generator on top-rated movie reviews: emotional, opinionated text about one movie. Here the
Large Movie Review Dataset (IMDb, 1–10 ratings) is joined to ReDial movies through IMDb ids
(`kg/redial_movie_info.json` imdb_id -> ReDial movie id -> graph entity), cleaned with ECR's rules, and stored
per movie together with the knowledge a prompt may state:

- `reviews`: cleaned top-rated reviews (rating 10; `min_rating=9` widens the pool if needed), the training targets;
- `review_entities`: up to 4 graph entities that the movie's reviews (all ratings) mention at least twice, found
  with the live linker (the movie itself excluded);
- `triples`: the movie's 1-hop KG facts over the relations ECR uses (starring, writer, producer/company,
  director, music composer), top-billed people first.

Cleaning rules (in this order):
  1. `<br />` becomes a sentence break; whitespace is collapsed.
  2. Drop the review when more than 50 % of its word tokens are repeats (1 - unique/total > 0.5).
  3. Drop sentences that talk about the review itself or the score ("review", "7/10", "out of ten", "rating",
     "vote", "stars").
  4. Keep the review only if ≥ 20 words remain. ECR also required ≥ 1 helpful vote: this dataset has no votes,
     so that rule cannot be applied (stated in the counts file).
  5. Longer than 150 words: keep the first and the last sentences, alternately taking the next sentence from the
     front and from the back while the total stays ≤ 150 words (a single first sentence over 150 words is cut at
     150 words).

`build_review_kb()` is deterministic; `load_review_kb()` caches the result under `artifacts/generator/` (the
linker takes a few seconds to build and the pass over 50k reviews about a minute).
"""
from __future__ import annotations

import gzip
import json
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ecrs.data.bundle import _sha256, bundled, iter_jsonl, read_json
from ecrs.data.catalogue import load_catalogue
from ecrs.data.kg import KnowledgeGraph, load_redial_kg, redial_movie_entities
from ecrs.data.linking import build_redial_linker
from ecrs.errors import DataError

__all__ = [
    "KB_RELATIONS",
    "MovieKnowledge",
    "ReviewKB",
    "build_review_kb",
    "clean_review",
    "display_name",
    "load_review_kb",
    "movie_triples",
    "repeat_fraction",
    "split_sentences",
    "truncate_sentences",
]

KB_VERSION = 2  # 2: genres and plot summary per movie (issue 25's prompt)
DEFAULT_CACHE = Path("artifacts/generator/review_kb.json.gz")
MIN_WORDS = 20
MAX_WORDS = 150
MAX_REPEAT_FRACTION = 0.5
MAX_REVIEW_ENTITIES = 4
MIN_ENTITY_MENTIONS = 2

# KG relation -> the words used in a prompt ("Titanic's director is James Cameron"). Order = preference when a
# prompt can hold only a few facts: who made it and who is in it before the companies.
KB_RELATIONS: dict[str, str] = {
    "director": "director",
    "starring": "star",
    "writer": "writer",
    "musicComposer": "music composer",
    "producer": "producer",
    "productionCompany": "production company",
    "company": "production company",
}

_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Sentence pieces about the review or the score: "this review", "10/10", "8 out of 10", "my rating", "I vote".
_META = re.compile(
    r"\breview|\bcomments?\b|\b\d+(?:\.\d+)?\s*/\s*10\b|\b\d+(?:\.\d+)?\s*/\s*\*?10|\bout of (?:10|ten|5|five)\b"
    r"|\bratings?\b|\brate[ds]?\b(?! r\b)|\bscored?\b|\bvot(?:e|ed|es|ing)\b|\b\d+(?:\.\d+)? stars?\b"
    r"|\bstars? out of\b|\bimdb\b|\bspoilers?\b",
    re.IGNORECASE,
)
# A sentence ends at . ! ? (runs of them, optional closing quote/bracket) followed by space.
_SENT_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+(?=[\"'(\[]?[A-Z0-9])")
_DISAMBIGUATION = re.compile(r"\s*\([^)]*\)\s*$")


# ---------------------------------------------------------------------------------------------------------------
# Cleaning (pure functions, tested on hand-made reviews)
# ---------------------------------------------------------------------------------------------------------------

def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def repeat_fraction(text: str) -> float:
    """Share of word tokens that repeat an earlier token: 1 - #unique / #tokens (0.0 for no tokens)."""
    toks = words(text)
    return 1.0 - len(set(toks)) / len(toks) if toks else 0.0


def split_sentences(text: str) -> list[str]:
    """Sentences of `text` (whitespace collapsed); `<br />` always ends a sentence."""
    out: list[str] = []
    for block in _BR.split(text):
        block = " ".join(block.split())
        if block:
            out += [s.strip() for s in _SENT_END.split(block) if s.strip()]
    return out


def truncate_sentences(sentences: Sequence[str], max_words: int = MAX_WORDS) -> list[str]:
    """First and last sentences, ≤ `max_words` words in total (rule 5 above), in their original order."""
    lengths = [len(s.split()) for s in sentences]
    if sum(lengths) <= max_words:
        return list(sentences)
    if lengths[0] >= max_words:
        return [" ".join(sentences[0].split()[:max_words])]
    front, back = [0], []
    used, lo, hi = lengths[0], 1, len(sentences) - 1
    from_back = True  # the last sentence (the verdict) comes right after the first
    while lo <= hi:
        i = hi if from_back else lo
        if used + lengths[i] <= max_words:
            used += lengths[i]
            if from_back:
                back.append(i)
                hi -= 1
            else:
                front.append(i)
                lo += 1
        elif used + lengths[lo if from_back else hi] > max_words:
            break  # neither end fits any more
        from_back = not from_back
    return [sentences[i] for i in front + sorted(back)]


def clean_review(text: str, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS,
                 max_repeat: float = MAX_REPEAT_FRACTION) -> tuple[str | None, str]:
    """(cleaned text, "kept") or (None, reason) with reason in {"repetitive", "short"} (rules 1–5 above)."""
    if repeat_fraction(_BR.sub(" ", text)) > max_repeat:
        return None, "repetitive"
    sentences = [s for s in split_sentences(text) if not _META.search(s)]
    if sum(len(s.split()) for s in sentences) < min_words:
        return None, "short"
    return " ".join(truncate_sentences(sentences, max_words)), "kept"


# ---------------------------------------------------------------------------------------------------------------
# Knowledge per movie
# ---------------------------------------------------------------------------------------------------------------

def display_name(kg_name: str) -> str:
    """A graph name as a prompt shows it: `David Warner (actor)` -> `David Warner`."""
    return _DISAMBIGUATION.sub("", kg_name).strip()


def movie_triples(kg: KnowledgeGraph, movie: int, billing: Sequence[str] = ()) -> list[tuple[str, int]]:
    """(relation words, tail entity) for the movie's facts over `KB_RELATIONS`, ordered by relation preference,
    then by `billing` (names in credit order, e.g. the movie info's stars) and the graph's order."""
    rank = {name.lower(): i for i, name in enumerate(billing)}
    rel_order = {r: i for i, r in enumerate(KB_RELATIONS)}
    facts = [(rel, t) for rel, t in kg.neighbours(movie) if rel in KB_RELATIONS and t != movie]
    seen: set[tuple[str, int]] = set()
    out = []
    for rel, t in sorted(facts, key=lambda f: (rel_order[f[0]], rank.get(display_name(kg.names[f[1]]).lower(),
                                                                          len(rank)))):
        key = (KB_RELATIONS[rel], t)
        if key not in seen:
            seen.add(key)
            out.append(key)
    return out


@dataclass
class MovieKnowledge:
    entity: int
    title: str  # display title with year where known: "Titanic (1997)"
    name: str  # short name used in facts: "Titanic"
    triples: list[tuple[str, int, str]] = field(default_factory=list)  # (relation words, entity, entity name)
    review_entities: list[tuple[int, str]] = field(default_factory=list)  # (entity, name), most mentioned first
    reviews: list[str] = field(default_factory=list)  # cleaned top-rated reviews (training targets)
    genres: list[str] = field(default_factory=list)  # IMDb genres, as the catalogue has them
    plot: str = ""  # IMDb's one-paragraph plot summary (~26 words), "" where the catalogue has none

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> MovieKnowledge:
        return cls(entity=obj["entity"], title=obj["title"], name=obj["name"],
                   triples=[tuple(t) for t in obj["triples"]],  # type: ignore[misc]
                   review_entities=[tuple(e) for e in obj["review_entities"]],  # type: ignore[misc]
                   reviews=list(obj["reviews"]), genres=list(obj.get("genres", [])), plot=obj.get("plot", ""))


@dataclass
class ReviewKB:
    movies: dict[int, MovieKnowledge]  # every catalogue movie (facts), reviews where the dataset has them
    stats: dict[str, Any]

    def with_reviews(self) -> list[MovieKnowledge]:
        return [m for m in self.movies.values() if m.reviews]

    def to_json(self) -> dict[str, Any]:
        return {"version": KB_VERSION, "stats": self.stats,
                "movies": [asdict(m) for _, m in sorted(self.movies.items())]}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ReviewKB:
        if obj.get("version") != KB_VERSION:
            raise DataError(f"review KB version {obj.get('version')} != {KB_VERSION}; rebuild it")
        return cls(movies={m["entity"]: MovieKnowledge.from_json(m) for m in obj["movies"]}, stats=obj["stats"])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with gzip.GzipFile(tmp, "wb", mtime=0) as f:
            f.write(json.dumps(self.to_json(), ensure_ascii=False).encode())
        tmp.replace(path)


def _titles(kg: KnowledgeGraph) -> dict[int, tuple[str, str, list[str], list[str], str]]:
    """entity -> (display title, short name, billed stars, genres, plot), from the ReDial movie info where mapped."""
    return {e: (m.display, m.title, list(m.stars), list(m.genres), m.plot) for e, m in load_catalogue(kg).items()}


def review_entities(texts: Iterable[str], linker, exclude: set[int], kg: KnowledgeGraph,
                    k: int = MAX_REVIEW_ENTITIES, min_mentions: int = MIN_ENTITY_MENTIONS) -> list[tuple[int, str]]:
    """Up to k entities the texts mention ≥ min_mentions times (most mentioned first, ties by first mention)."""
    counts: Counter[int] = Counter()
    first: dict[int, int] = {}
    for text in texts:
        for m in linker.link(_BR.sub(" ", text)):
            if m.entity_id in exclude:
                continue
            counts[m.entity_id] += 1
            first.setdefault(m.entity_id, len(first))
    ranked = sorted((e for e, c in counts.items() if c >= min_mentions), key=lambda e: (-counts[e], first[e]))
    return [(e, display_name(kg.names[e])) for e in ranked[:k]]


def build_review_kb(kg: KnowledgeGraph | None = None, linker=None, min_rating: int = 10) -> ReviewKB:
    """Join, clean and link the bundled reviews; knowledge for every catalogue movie (see module docstring)."""
    t0 = time.time()
    kg = kg or load_redial_kg()
    if linker is None:
        linker = build_redial_linker(kg)
    info = read_json(bundled("kg/redial_movie_info.json.gz"))
    movie_entity = redial_movie_entities(kg)
    imdb_to_entity: dict[str, int] = {}
    for rid, i in sorted(info.items(), key=lambda kv: int(kv[0])):
        e = movie_entity.get(rid)
        if e is not None and e in kg.item_set and i.get("imdb_id"):
            imdb_to_entity.setdefault(i["imdb_id"], e)

    by_movie: dict[int, list[dict[str, Any]]] = defaultdict(list)
    n_reviews = 0
    for _, r in iter_jsonl(bundled("reviews/aclImdb_labeled.jsonl.gz")):
        n_reviews += 1
        e = imdb_to_entity.get(r.get("imdb_id", ""))
        if e is not None:
            by_movie[e].append(r)

    titles = _titles(kg)
    reasons: Counter[str] = Counter()
    movies: dict[int, MovieKnowledge] = {}
    for e in kg.item_ids:
        title, name, stars, genres, plot = titles.get(e, (display_name(kg.names[e]), display_name(kg.names[e]), [],
                                                         [], ""))
        triples = [(rel, t, display_name(kg.names[t])) for rel, t in movie_triples(kg, e, stars)]
        movies[e] = MovieKnowledge(entity=e, title=title, name=name, triples=triples, genres=genres, plot=plot)
    for e, rs in sorted(by_movie.items()):
        rs = sorted(rs, key=lambda r: (r["split"], r["id"]))
        kept = []
        for r in rs:
            if r["rating"] < min_rating:
                continue
            text, why = clean_review(r["text"])
            reasons[why] += 1
            if text is not None:
                kept.append(text)
        m = movies[e]
        m.reviews = kept
        m.review_entities = review_entities((r["text"] for r in rs), linker, {e}, kg)
    covered = [m for m in movies.values() if m.reviews]
    stats = {
        "reviews_in_dataset": n_reviews,
        "movies_joined": len(by_movie),
        "reviews_joined": sum(len(v) for v in by_movie.values()),
        "min_rating": min_rating,
        "top_rated_joined": sum(reasons.values()),
        "dropped_repetitive": reasons["repetitive"],
        "dropped_short": reasons["short"],
        "reviews_kept": sum(len(m.reviews) for m in covered),
        "movies_covered": len(covered),
        "movies_with_review_entities": sum(bool(m.review_entities) for m in movies.values()),
        "catalogue_movies": len(movies),
        "catalogue_movies_with_triples": sum(bool(m.triples) for m in movies.values()),
        "helpful_votes_rule": "not applied: the Large Movie Review Dataset has no helpful-vote counts",
        "inputs": {p: _sha256(bundled(p)) for p in ("reviews/aclImdb_labeled.jsonl.gz",
                                                    "kg/redial_movie_info.json.gz")},
        "seconds": round(time.time() - t0, 1),
    }
    return ReviewKB(movies=movies, stats=stats)


def load_review_kb(path: str | Path = DEFAULT_CACHE, rebuild: bool = False, kg: KnowledgeGraph | None = None,
                   linker=None) -> ReviewKB:
    """The cached KB, built (and cached) on first use, and again when the cache is of an older `KB_VERSION`."""
    path = Path(path)
    if path.exists() and not rebuild:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            obj = json.load(f)
        if obj.get("version") == KB_VERSION:
            return ReviewKB.from_json(obj)
    kb = build_review_kb(kg, linker)
    kb.save(path)
    return kb
