"""One chat turn, end to end (ECR_SPEC §8): link entities in the user's text -> detect the user's emotion ->
update the conversation state (ECR's emotion attachment, memory of seen / disliked / recommended movies, stated
constraints) -> recommend -> reply (streamed).

    bot = EmpatheticRecommender.load()          # loads every artifact once, says what is missing
    state = ConversationState()
    for event in bot.turn_events(state, "I loved Titanic, but nothing too sad"):
        ...            # Understood (emotions, entities), Recommended (movies), ReplyPiece..., Done (whole reply)

`turn_events` is the one turn: the terminal chat, the JSON and the streaming endpoints, the simulator and the
latency benchmark all consume its events (`turn` collects them into a `TurnResult`).
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecrs.data.catalogue import Movie, genres_in, load_catalogue
from ecrs.data.kg import KnowledgeGraph, load_redial_kg
from ecrs.data.linking import build_redial_linker
from ecrs.data.prepare import load_samples
from ecrs.data.samples import Emotions, Sample
from ecrs.emotions import kept_labels
from ecrs.errors import EcrsError
from ecrs.inference.generator import ResponseGenerator
from ecrs.inference.recommender import TrainedRecommender
from ecrs.inference.state import ConversationState
from ecrs.models.baselines import Popularity, Recommender
from ecrs.models.emotion import EmotionClassifier

MAX_MESSAGE_CHARS = 2000  # longer messages are truncated for the models (the API rejects them with a 4xx first)
_SEEN = re.compile(r"\b(seen|saw|watched|watch(ed)? it)\b", re.I)
_NOT_SEEN = re.compile(r"\b(not|never|haven'?t|havent|didn'?t|hadn'?t)\b[^.?!]{0,20}\b(seen|saw|watched)\b", re.I)
_RECENT = re.compile(r"\b(recent|new(er)?|latest|this year|modern)\b", re.I)
# Serve / chat reply length: greedy decoding makes a 40-token reply the first ~35 words of the 60-token one the
# generation benchmarks score (two sentences, ~1.2 s on 2 cores instead of ~1.8 s).
CHAT_REPLY_TOKENS = 40
RECENT_YEAR = 2010  # ReDial was collected in 2017-2018
DEFAULT_RECOMMENDER = "recommender/redial/ecr-fast-s0"  # under the artifacts folder; `make run` trains it
DEFAULT_GENERATOR = "generator/smollm2"


@dataclass
class LinkedEntity:
    entity: int
    name: str
    is_movie: bool


@dataclass
class Recommendation:
    entity: int
    title: str
    year: int | None
    reason: str
    score: float


@dataclass
class _ColumnMasks:
    """Per catalogue column (`kg.item_ids` order): which movies have each genre / person, and the year."""

    genre: dict[str, np.ndarray]
    person: dict[str, np.ndarray]
    year: np.ndarray


@dataclass
class Understood:
    """What the system read in the user's message: its emotions and the entities it names."""

    emotions: Emotions
    entities: list[LinkedEntity]


@dataclass
class Recommended:
    recommendations: list[Recommendation]  # empty while nothing about the user's taste is known


@dataclass
class ReplyPiece:
    text: str  # the reply, streamed: the first sentence, then each continuation sentence that passes the checks


@dataclass
class Done:
    """The turn is remembered in the state (the caller stores it): `reply` is the system's whole turn."""

    reply: str


TurnEvent = Understood | Recommended | ReplyPiece | Done


@dataclass
class Missing:
    """A trained part the system runs without, what it uses instead, and the command that trains it."""

    part: str
    fallback: str
    command: str

    def __str__(self) -> str:
        return f"no trained {self.part}: using {self.fallback} (train it: {self.command})"


@dataclass
class TurnResult:
    reply: str
    emotions: Emotions
    entities: list[LinkedEntity]
    recommendations: list[Recommendation]


class EmpatheticRecommender:
    """The whole system, loaded once; `turn_events` runs one user message."""

    def __init__(self, kg: KnowledgeGraph, catalogue: dict[int, Movie], linker, emotion, recommender: Recommender,
                 generator=None, top_k: int = 3, missing: list[Missing] | None = None):
        self.kg = kg
        self.catalogue = catalogue
        self.linker = linker
        self.emotion = emotion
        self.recommender = recommender
        self.generator = generator
        self.top_k = top_k
        self.missing = missing or []  # trained parts it runs without (said at start-up by chat and serve)
        self._column = np.array(kg.item_ids)

    # ------------------------------------------------------------ loading

    @classmethod
    def load(cls, artifacts: str | Path = "artifacts", recommender: str | None = None,
             generator: str | None = None, top_k: int = 3,
             reply_tokens: int | None = None) -> EmpatheticRecommender:
        """Load every artifact once (the graph and the 2.5 s entity linker are shared by every part). The emotion
        classifier is required (a clear error names the command that trains it); without the default trained
        recommender or generator the system runs on popularity or template replies and lists them in `missing`.
        `recommender` / `generator` name other run folders ("popularity" / "template" force the fallbacks);
        `reply_tokens` caps the generated continuation (None: the generator's own setting)."""
        artifacts = Path(artifacts)
        emotion_dir = artifacts / "emotion"
        if not emotion_dir.exists():
            raise EcrsError(f"{emotion_dir}: emotion classifier not found; train it with `ecrs train emotion`")
        kg = load_redial_kg()
        linker = build_redial_linker(kg)
        missing: list[Missing] = []
        if recommender is None and not (artifacts / DEFAULT_RECOMMENDER / "model.pt").exists():
            missing.append(Missing("recommender", "popularity",
                                   "ecrs train recommender --config configs/recommender/ecr-fast.yaml"))
        if generator is None and not (artifacts / DEFAULT_GENERATOR / "generator.json").exists():
            missing.append(Missing("generator", "one-line template replies", "ecrs train generator"))
        return cls(
            kg=kg,
            catalogue=load_catalogue(kg),
            linker=linker,
            emotion=EmotionClassifier.load(emotion_dir),
            recommender=load_scorer(kg, artifacts, recommender),
            generator=load_generator(artifacts, generator, reply_tokens, linker),
            top_k=top_k,
            missing=missing,
        )

    # ------------------------------------------------------------ one turn

    def understand(self, state: ConversationState, text: str) -> tuple[Emotions, list[LinkedEntity]]:
        """Link, detect emotion, and update the state with the user's message."""
        text = text[:MAX_MESSAGE_CHARS]
        context = state.turns[-1][1] if state.turns and state.turns[-1][0] == "recommender" else ""
        probs = self.emotion.predict_proba([text], [context])[0]
        emotions = kept_labels(list(probs))
        mentions = self.linker.link(text)
        linked = [LinkedEntity(m.entity_id, self.kg.names[m.entity_id], m.is_movie) for m in mentions]
        # ECR's attachment rule: the system's entities of the last turn take this reaction's emotions.
        for pos in state.awaiting_reaction:
            state.entity_emotions[pos] = emotions
        state.awaiting_reaction = []
        state.entities += [e.entity for e in linked]
        state.entity_emotions += [emotions] * len(linked)
        state.turns.append(("seeker", text))
        self._update_memory(state, text, emotions, linked)
        return emotions, linked

    def _update_memory(self, state: ConversationState, text: str, emotions: Emotions,
                       linked: list[LinkedEntity]) -> None:
        movies = [e.entity for e in linked if e.is_movie and e.entity in self.catalogue]
        # A reaction without a title is about what we just recommended.
        about = movies or state.recommended[-self.top_k:]
        primary = emotions[0][0] if emotions else "neutral"
        if _SEEN.search(text) and not _NOT_SEEN.search(text):
            state.seen += [m for m in about if m not in state.seen]
        if primary == "negative":
            state.disliked += [m for m in about if m not in state.disliked]
        elif primary in ("like", "happy", "nostalgia") and movies:
            state.liked += [m for m in movies if m not in state.liked]
        wanted, avoided = genres_in(text)
        if wanted:  # a newly stated genre replaces the previous wish
            state.genres = wanted
        state.avoid_genres += [g for g in avoided if g not in state.avoid_genres]
        state.genres = [g for g in state.genres if g not in state.avoid_genres]
        for e in linked:
            if not e.is_movie and self._is_person(e.entity) and e.entity not in state.people:
                state.people.append(e.entity)
        if _RECENT.search(text):
            state.recent = True

    def _is_person(self, entity: int) -> bool:
        return entity in self._person_entities

    @property
    def _person_entities(self) -> set[int]:
        if not hasattr(self, "_people_cache"):
            self._people_cache = {o for e in self.kg.item_ids for r, o in self.kg.neighbours(e)
                                  if r in ("starring", "director", "writer")}
        return self._people_cache

    def recommend(self, state: ConversationState, k: int | None = None) -> list[Recommendation]:
        """Top-k movies for the current state, honouring memory and stated constraints."""
        k = k or self.top_k
        sample = Sample(
            id="live", dialog_id="live", turn=len(state.turns), context=list(state.turns),
            entities=state.entities[-32:], entity_emotions=state.entity_emotions[-32:],
            mentioned_items=[e for e in state.entities if e in self.kg.item_set], targets=[], response="",
            seeker_emotion=state.entity_emotions[-1] if state.entity_emotions else [],
        )
        raw = self.recommender.score([sample])[0].astype(np.float64)
        scores = np.where(self._allowed(state), raw, -np.inf)
        if not np.isfinite(scores).any():  # constraints too strict: relax them rather than say nothing
            scores = np.where(self._allowed(state, constraints=False), raw, -np.inf)
        top = np.argsort(-scores, kind="stable")[:k]
        out = []
        for i in top:
            if not np.isfinite(scores[i]):
                break
            m = self.catalogue[int(self._column[i])]
            out.append(Recommendation(m.entity, m.title, m.year, m.reason(), float(scores[i])))
        return out

    def _allowed(self, state: ConversationState, constraints: bool = True) -> np.ndarray:
        """Boolean mask over `kg.item_ids`: not excluded by memory and, with `constraints`, of a wanted genre,
        of no avoided genre, recent if asked, with one of the named people. Column masks are precomputed once
        (`_masks`), so this costs well under a millisecond instead of a Python loop over every movie."""
        excluded = state.excluded() | {e for e in state.entities if e in self.kg.item_set}
        ok = ~np.isin(self._column, np.fromiter(excluded, dtype=self._column.dtype, count=len(excluded)))
        if not constraints:
            return ok
        masks = self._masks
        none = np.zeros(len(self._column), dtype=bool)

        def any_of(table: dict[str, np.ndarray], keys) -> np.ndarray:
            return np.logical_or.reduce([table.get(k, none) for k in keys], initial=False) | none

        if state.genres:
            ok &= any_of(masks.genre, state.genres)
        if state.avoid_genres:
            ok &= ~any_of(masks.genre, state.avoid_genres)
        if state.recent:
            ok &= masks.year >= RECENT_YEAR
        if state.people:
            ok &= any_of(masks.person, {self.kg.names[p] for p in state.people})
        return ok

    @property
    def _masks(self) -> _ColumnMasks:
        if not hasattr(self, "_masks_cache"):
            genre: dict[str, list[int]] = {}
            person: dict[str, list[int]] = {}
            year = np.full(len(self._column), -1, dtype=np.int32)  # unknown year: never "recent"
            for i, e in enumerate(self._column):
                m = self.catalogue[int(e)]
                for g in set(m.genres):
                    genre.setdefault(g, []).append(i)
                for name in set(m.stars + m.directors + m.writers):
                    person.setdefault(name, []).append(i)
                if m.year is not None:
                    year[i] = m.year

            def as_masks(table: dict[str, list[int]]) -> dict[str, np.ndarray]:
                out = {}
                for key, cols in table.items():
                    mask = np.zeros(len(self._column), dtype=bool)
                    mask[cols] = True
                    out[key] = mask
                return out

            self._masks_cache = _ColumnMasks(as_masks(genre), as_masks(person), year)
        return self._masks_cache

    def turn_events(self, state: ConversationState, text: str, reply: bool = True) -> Iterator[TurnEvent]:
        """The one chat turn: `Understood`, `Recommended`, the reply in `ReplyPiece`s, then `Done` once the state
        remembers the turn. `reply=False` generates no text: the system's turn is the list of titles."""
        if not isinstance(text, str) or not text.strip():
            raise EcrsError("empty message")
        emotions, linked = self.understand(state, text)
        yield Understood(emotions, linked)
        recs = self.recommend(state) if self._should_recommend(state) else []
        yield Recommended(recs)
        if reply:
            pieces = []
            for piece in self._reply(state, emotions, recs):
                pieces.append(piece)
                yield ReplyPiece(piece)
            said = "".join(pieces)
        else:
            said = "; ".join(f"{r.title}{f' ({r.year})' if r.year else ''}" for r in recs)
        self._finish_turn(state, said, recs)
        yield Done(said)

    def turn(self, state: ConversationState, text: str, reply: bool = True) -> TurnResult:
        """`turn_events`, collected."""
        return collect(self.turn_events(state, text, reply))

    def _finish_turn(self, state: ConversationState, reply: str, recs: list[Recommendation]) -> None:
        state.turns.append(("recommender", reply))
        prefetch = getattr(self.recommender, "prefetch", None)
        if prefetch is not None:  # embed our reply while the user reads it, not on their next turn
            prefetch([reply])
        rec_entities = [r.entity for r in recs]
        state.recommended += rec_entities
        state.awaiting_reaction = list(range(len(state.entities), len(state.entities) + len(rec_entities)))
        state.entities += rec_entities
        state.entity_emotions += [[] for _ in rec_entities]

    def _should_recommend(self, state: ConversationState) -> bool:
        # Ask first when nothing about the user's taste is known yet.
        return bool(state.entities or state.genres or len(state.turns) > 2)

    def _reply(self, state: ConversationState, emotions: Emotions, recs: list[Recommendation]) -> Iterator[str]:
        if not recs:
            yield ("Tell me about a movie you loved, or a genre or actor you're in the mood for, "
                   "and I'll find you something!")
            return
        if self.generator is not None:
            yield from self.generator.stream(recs[0].entity, state.turns, emotions)
        else:
            yield from template_reply(emotions, recs)
        if len(recs) > 1:
            yield " Also worth a look: " + "; ".join(
                f"{r.title}{f' ({r.year})' if r.year else ''}" for r in recs[1:]) + "."


_OPENERS = {
    "negative": "Sorry that one didn't click for you.",
    "like": "Great taste!",
    "happy": "Love the enthusiasm!",
    "grateful": "Happy to help!",
    "nostalgia": "Ah, the classics!",
    "curious": "Good question!",
    "surprise": "Right?!",
    "agreement": "Awesome.",
}


def collect(events: Iterator[TurnEvent]) -> TurnResult:
    """A turn's events as one result (the reply is `Done`'s)."""
    emotions: Emotions = []
    entities: list[LinkedEntity] = []
    recs: list[Recommendation] = []
    reply = ""
    for event in events:
        if isinstance(event, Understood):
            emotions, entities = event.emotions, event.entities
        elif isinstance(event, Recommended):
            recs = event.recommendations
        elif isinstance(event, Done):
            reply = event.reply
    return TurnResult(reply, emotions, entities, recs)


def template_reply(emotions: Emotions, recs: list[Recommendation]) -> Iterator[str]:
    """A grounded reply from facts only, used when no trained generator is present."""
    primary = emotions[0][0] if emotions else "neutral"
    top = recs[0]
    opener = _OPENERS.get(primary)
    if opener:
        yield opener + " "
    yield f"You might like {top.title}{f' ({top.year})' if top.year else ''}"
    yield f" — {top.reason}." if top.reason else "."


# ---------------------------------------------------------------- artifact loading

def load_scorer(kg: KnowledgeGraph, artifacts: Path, spec: str | None) -> Recommender:
    """A trained recommender run folder (`ecrs train recommender`), else popularity over the prepared samples.

    `spec=None` takes the default ECR run (`make run` trains it) when present; `spec="popularity"` forces the baseline.
    """
    default = artifacts / DEFAULT_RECOMMENDER
    if spec is None and (default / "model.pt").exists():
        spec = str(default)
    if spec and spec != "popularity":
        # One torch thread: a chat turn scores one context (ops too small to split), and with OpenMP's spinning
        # a second thread fighting the generator or another process for 2 cores made a turn ~10x slower.
        # Turns are embedded by the int8 MiniLM (same test recall as the float one, ~1.6x faster per turn).
        rec = TrainedRecommender.load(spec, kg=kg, threads=1, live_int8=True)
        rec.warm_up()  # at startup, not in the first turn
        return rec
    model = Popularity()
    model.fit(load_samples(artifacts / "data", "redial", "train"), kg)
    return model


def load_generator(artifacts: Path, spec: str | None, max_tokens: int | None = None,
                   linker=None) -> ResponseGenerator | None:
    """A fine-tuned generator folder (`ecrs train generator`); `None` takes the default one when present;
    `"template"` (or nothing trained) gives the grounded template reply, `"zero-shot"` the base SmolLM2 with the
    same prompt. `max_tokens` overrides the reply's length; `linker` is the pipeline's (its grounding check reuses
    it instead of building a second one)."""
    default = artifacts / DEFAULT_GENERATOR
    if spec is None and (default / "generator.json").exists():
        spec = str(default)
    if not spec or spec == "template":
        return None
    if max_tokens is not None and max_tokens < 1:
        raise EcrsError(f"reply tokens must be >= 1, got {max_tokens}")
    length = {} if max_tokens is None else {"max_tokens": max_tokens}
    if spec == "zero-shot":
        return ResponseGenerator.zero_shot(linker=linker, **length)
    if not (Path(spec) / "generator.json").exists():
        raise EcrsError(f"{spec}: no trained generator here (train one with `ecrs train generator`, or set "
                        "generator=template or generator=zero-shot)")
    return ResponseGenerator.load(spec, linker=linker, **length)


__all__ = ["ConversationState", "Done", "EmpatheticRecommender", "Missing", "Recommendation", "Recommended",
           "ReplyPiece", "TurnEvent", "TurnResult", "Understood", "collect"]
