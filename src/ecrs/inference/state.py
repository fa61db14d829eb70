"""What the system remembers of one conversation (ECR_SPEC §8, "memory of the conversation"): the turns, the linked
context entities with the emotions ECR attaches to them, and the person's preferences. Plain data, so the server
can store it as JSON and restore it for the next turn.

Preferences come in two kinds (issue 24):
- exclusions, hard and kept until the person takes them back: movies disliked, seen or already recommended, and
  the genres and people the person ruled out ("no horror", "not a fan of Adam Sandler");
- wishes, soft, one per axis (genre, person, similar-to, mood, era, studio: a studio, a named group such as a
  series or Christmas movies, or a topic such as vampires): the latest request on an axis replaces the
  older one, and when the wishes together leave too few movies the older ones give way first (`relaxed` says which,
  so the reply can say so). An exclusion is never relaxed.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ecrs.data.samples import Emotions

__all__ = ["AXES", "COMPOUND", "FEEDBACK_EMOTIONS", "KEEP_ENTITIES", "KEEP_TURNS", "ConversationState", "Wish",
           "genre_label"]

FEEDBACK_EMOTIONS: dict[str, Emotions] = {"liked": [("like", 1.0)], "disliked": [("negative", 1.0)]}
AXES = ("genre", "person", "similar", "mood", "era", "studio")
# A long conversation keeps its last turns and context entities in full; what older turns said lives on in the
# preferences (exclusions, wishes, verdicts) and in `mentioned`. 500 entity-heavy turns made a 4 MB state that cost
# 2 s to decode and re-encode on every turn; compacted, it stays a few kB.
KEEP_TURNS = 40  # (role, text) entries: the last 20 exchanges (the recommender and the reply read the last few)
KEEP_ENTITIES = 64  # context entities (the recommender reads the last 32)
COMPOUND = "+"  # a genre wish's value "sci-fi+adventure": movies of both genres ("sci-fi adventure")


def genre_label(values: list[str]) -> str:
    """How a genre wish is said back: ["sci-fi+adventure", "comedy"] -> "sci-fi adventure or comedy"."""
    return " or ".join(v.replace(COMPOUND, " ") for v in values)


@dataclass
class Wish:
    """A soft wish: `values` are catalogue genres (genre: alternatives, each one genre or a `COMPOUND` of several;
    mood), entity ids (person, similar) or years (era: [first, last], either None when open; first > last for any
    year outside last+1..first-1, "not from the 80s"); `turn` is the seeker turn that said it (older wishes relax first)."""

    axis: str
    values: list[Any]
    turn: int
    label: str = ""  # how to say it back: "comedy", "with Tom Hanks", "like Inception", "something cheerful"


@dataclass
class ConversationState:
    """Everything the system remembers of one conversation; plain data, so it can be stored and restored."""

    turns: list[tuple[str, str]] = field(default_factory=list)  # (role, text)
    entities: list[int] = field(default_factory=list)  # linked context entities, duplicates kept
    entity_emotions: list[Emotions] = field(default_factory=list)
    awaiting_reaction: list[int] = field(default_factory=list)  # positions of the system's last-turn entities
    recommended: list[int] = field(default_factory=list)
    seen: list[int] = field(default_factory=list)
    disliked: list[int] = field(default_factory=list)
    liked: list[int] = field(default_factory=list)
    avoid_genres: list[str] = field(default_factory=list)
    avoid_people: list[int] = field(default_factory=list)
    avoid_movies: list[int] = field(default_factory=list)  # "a Keanu movie that isn't John Wick": nor its sequels
    wishes: list[Wish] = field(default_factory=list)
    relaxed: list[Wish] = field(default_factory=list)  # wishes the last recommendation had to drop
    dropped_turns: int = 0  # seeker turns no longer in `turns` (`compact`)
    mentioned: list[int] = field(default_factory=list)  # movies named in context entities `compact` dropped
    asked: int | None = None  # the suggestion the last turn answered a question about: "it" / "that one" now

    @property
    def seeker_turns(self) -> int:
        """Seeker turns so far, compacted ones included (a wish's `turn` counts on this clock)."""
        return self.dropped_turns + sum(1 for role, _ in self.turns if role == "seeker")

    def compact(self, movies: set[int] | frozenset[int], keep_turns: int = KEEP_TURNS,
                keep_entities: int = KEEP_ENTITIES) -> None:
        """Keep the last `keep_turns` turns and `keep_entities` context entities; movies among the dropped entities
        go to `mentioned` (still never recommended back)."""
        extra = len(self.turns) - keep_turns
        if extra > 0:
            self.dropped_turns += sum(1 for role, _ in self.turns[:extra] if role == "seeker")
            self.turns = self.turns[extra:]
        cut = len(self.entities) - keep_entities
        if cut > 0:
            known = set(self.mentioned) | set(self.entities[cut:])
            self.mentioned += [e for e in dict.fromkeys(self.entities[:cut]) if e in movies and e not in known]
            self.entities = self.entities[cut:]
            self.entity_emotions = self.entity_emotions[cut:]
            self.awaiting_reaction = [p - cut for p in self.awaiting_reaction if p >= cut]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ConversationState:
        obj = dict(obj)
        obj["turns"] = [tuple(t) for t in obj.get("turns", [])]
        obj["entity_emotions"] = [[tuple(e) for e in ems] for ems in obj.get("entity_emotions", [])]
        wishes = [Wish(**w) for w in obj.get("wishes", [])]
        # Sessions stored before wishes existed: their genre / person / recency constraints become wishes.
        turn = obj.get("dropped_turns", 0) + sum(1 for role, _ in obj["turns"] if role == "seeker")
        if obj.get("genres"):
            wishes.append(Wish("genre", list(obj["genres"]), turn, "/".join(obj["genres"])))
        if obj.get("people"):
            wishes.append(Wish("person", list(obj["people"]), turn))
        if obj.get("recent"):
            wishes.append(Wish("era", [2010, None], turn, "recent"))
        for old in ("genres", "people", "recent"):
            obj.pop(old, None)
        obj["wishes"] = wishes
        obj["relaxed"] = [Wish(**w) for w in obj.get("relaxed", [])]
        return cls(**obj)

    def excluded(self) -> set[int]:
        """Never recommend again: already recommended, seen, disliked, ruled out."""
        return set(self.recommended) | set(self.seen) | set(self.disliked) | set(self.avoid_movies)

    def wish(self, axis: str, values: list[Any], turn: int, label: str = "") -> None:
        """The latest wish on an axis replaces the older one."""
        self.wishes = [w for w in self.wishes if w.axis != axis] + [Wish(axis, list(values), turn, label)]

    def remove(self, kind: str, value: Any) -> bool:
        """Forget one remembered preference (the API's and the page's "remove"): `kind` is an exclusion list
        (disliked, seen, liked, avoid_genres, avoid_people, avoid_movies) or a wish axis, `value` one entry of it (None: the whole
        wish). True when something was removed. A forgotten verdict on a movie also takes its emotion back from the
        recommender's context; a movie named in the conversation is still not recommended back."""
        if kind in AXES:
            changed = False
            for w in list(self.wishes):
                if w.axis != kind or (value is not None and value not in w.values):
                    continue
                changed = True
                w.values = [] if value is None else [v for v in w.values if v != value]
                if w.axis == "genre":
                    w.label = genre_label(w.values)
                elif w.axis == "person":
                    w.label = ""  # said from the names that are left (`EmpatheticRecommender.remembered`)
                if not w.values:
                    self.wishes.remove(w)
            return changed
        if kind not in ("disliked", "seen", "liked", "avoid_genres", "avoid_people", "avoid_movies"):
            raise ValueError(f"unknown preference {kind!r}")
        items: list[Any] = getattr(self, kind)
        if value not in items:
            return False
        items.remove(value)
        if kind in ("liked", "disliked"):
            self.entity_emotions = [[] if e == value else ems for e, ems in zip(self.entities, self.entity_emotions)]
        return True

    def record_feedback(self, entity: int, value: str) -> None:
        """A verdict on one movie given outside the text (a recommendation card's button), remembered as if said:
        `seen` and `disliked` exclude it from now on; `liked` / `disliked` replace each other and attach the
        matching emotion to the movie's context mentions, as ECR's rule does for a typed reaction."""
        if value == "seen":
            if entity not in self.seen:
                self.seen.append(entity)
            return
        if value not in FEEDBACK_EMOTIONS:
            raise ValueError(f"feedback must be liked, disliked or seen, not {value!r}")
        keep, drop = (self.liked, self.disliked) if value == "liked" else (self.disliked, self.liked)
        if entity in drop:
            drop.remove(entity)
        if entity not in keep:
            keep.append(entity)
        for i, e in enumerate(self.entities):
            if e == entity:
                self.entity_emotions[i] = list(FEEDBACK_EMOTIONS[value])
        # The explicit verdict wins over the emotion of the next message.
        self.awaiting_reaction = [i for i in self.awaiting_reaction if self.entities[i] != entity]
