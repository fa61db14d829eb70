"""What the system remembers of one conversation (ECR_SPEC §8, "memory of the conversation"): the turns, the linked
context entities with the emotions ECR attaches to them, and the preferences stated so far. Plain data, so the
server can store it as JSON and restore it for the next turn.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ecrs.data.samples import Emotions

__all__ = ["FEEDBACK_EMOTIONS", "ConversationState"]

FEEDBACK_EMOTIONS: dict[str, Emotions] = {"liked": [("like", 1.0)], "disliked": [("negative", 1.0)]}


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
    genres: list[str] = field(default_factory=list)
    avoid_genres: list[str] = field(default_factory=list)
    people: list[int] = field(default_factory=list)
    recent: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ConversationState:
        obj = dict(obj)
        obj["turns"] = [tuple(t) for t in obj.get("turns", [])]
        obj["entity_emotions"] = [[tuple(e) for e in ems] for ems in obj.get("entity_emotions", [])]
        return cls(**obj)

    def excluded(self) -> set[int]:
        """Never recommend again: already recommended, seen, disliked."""
        return set(self.recommended) | set(self.seen) | set(self.disliked)

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
