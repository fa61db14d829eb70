"""Recommendation samples (ECR_SPEC §2–§4): one per recommender turn that mentions catalogue movies.

A sample holds the dialogue context, the ordered linked context entities (duplicates kept, the last 32) with the
emotions attached to each by ECR's rule, and the target movies with the seeker's questionnaire feedback and a flag
for targets already mentioned earlier in the dialogue (the "dedup" evaluation removes those).
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ecrs.data.dialogues import Dialogue, Feedback, Role
from ecrs.emotions import BETA, kept_labels

Emotions = list[tuple[str, float]]  # kept labels, strongest first (≤ 3)


@dataclass
class Target:
    item: int
    feedback: Feedback
    mentioned_before: bool


@dataclass
class Sample:
    id: str
    dialog_id: str
    turn: int
    context: list[tuple[Role, str]]
    entities: list[int]
    entity_emotions: list[Emotions]
    mentioned_items: list[int]  # catalogue movies mentioned before this turn (excluded from the dedup ranking)
    targets: list[Target]
    response: str
    seeker_emotion: Emotions = field(default_factory=list)  # of the seeker's last turn in the context

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Sample:
        obj = dict(obj)
        obj["context"] = [tuple(c) for c in obj["context"]]
        obj["entity_emotions"] = [[tuple(e) for e in ems] for ems in obj["entity_emotions"]]
        obj["seeker_emotion"] = [tuple(e) for e in obj.get("seeker_emotion", [])]
        obj["targets"] = [Target(**t) for t in obj["targets"]]
        return cls(**obj)


def turn_emotions(dialogue: Dialogue, seeker_probs: dict[int, Sequence[float]], beta: float = BETA) -> list[Emotions]:
    """Emotions attached to the entities of each turn (ECR's attachment rule).

    Entities the seeker mentions in turn k get turn k's labels; entities the recommender mentions get the labels
    of the seeker's next turn (the reaction). `seeker_probs` maps seeker-turn index -> probability vector.
    Labels with p > beta are kept (≤ 3); a turn with none above beta keeps its top-1 label.
    """
    own: list[Emotions | None] = [
        kept_labels(seeker_probs[k], beta) if k in seeker_probs else None for k in range(len(dialogue.turns))
    ]
    attached: list[Emotions] = [[] for _ in dialogue.turns]
    reaction: Emotions = []  # labels of the next seeker turn, scanning backwards
    for k in range(len(dialogue.turns) - 1, -1, -1):
        if dialogue.turns[k].role == "seeker":
            reaction = own[k] or []
            attached[k] = reaction
        else:
            attached[k] = reaction
    return attached


# The questionnaire answer read as an emotion (`questionnaire_emotions`).
QUESTIONNAIRE_EMOTION: dict[str, Emotions] = {"liked": [("like", 1.0)], "disliked": [("negative", 1.0)]}


def questionnaire_emotions(dialogue: Dialogue) -> dict[int, Emotions]:
    """Oracle emotions for an upper-bound analysis, not for a deployable model: each movie the seeker answered in
    ReDial's post-dialogue questionnaire gets "like" (liked) or "negative" (disliked) with probability 1. The
    questionnaire is filled in after the dialogue, so no system has it at chat time."""
    return {m: QUESTIONNAIRE_EMOTION[f] for m, f in dialogue.feedback.items() if f in QUESTIONNAIRE_EMOTION}


def build_samples(
    dialogue: Dialogue,
    items: frozenset[int],
    emotions: list[Emotions] | None = None,
    max_entities: int = 32,
    entity_override: dict[int, Emotions] | None = None,
    turn_overrides: list[dict[int, Emotions]] | None = None,
) -> list[Sample]:
    """All recommendation samples of one dialogue. `emotions[k]` are the labels attached to turn k's entities;
    `entity_override` replaces them for the entities it names (`questionnaire_emotions`), `turn_overrides[k]` for
    the entities of turn k it names (each entity's own stance, `ecrs.models.stance.EntityStancer`)."""
    emotions = emotions or [[] for _ in dialogue.turns]
    override = entity_override or {}
    samples = []
    ctx_entities: list[int] = []
    ctx_emotions: list[Emotions] = []
    mentioned: list[int] = []
    last_seeker: Emotions = []
    for k, turn in enumerate(dialogue.turns):
        targets = list(dict.fromkeys(m for m in turn.movies if m in items))
        if turn.role == "recommender" and targets:
            seen = set(mentioned)
            samples.append(Sample(
                id=f"{dialogue.id}/{k}",
                dialog_id=dialogue.id,
                turn=k,
                context=[(t.role, t.text) for t in dialogue.turns[:k]],
                entities=ctx_entities[-max_entities:],
                entity_emotions=ctx_emotions[-max_entities:],
                mentioned_items=list(dict.fromkeys(mentioned)),
                targets=[Target(m, dialogue.feedback.get(m, "missing"), m in seen) for m in targets],
                response=turn.text,
                seeker_emotion=last_seeker,
            ))
        ctx_entities += turn.entities
        own = turn_overrides[k] if turn_overrides else {}
        ctx_emotions += [own.get(e, override.get(e, emotions[k])) for e in turn.entities]
        mentioned += [e for e in turn.entities if e in items] + [m for m in turn.movies if m in items]
        if turn.role == "seeker":
            last_seeker = emotions[k]
    return samples


def split_train_valid(ids: Sequence[str], valid_fraction: float, seed: int) -> tuple[set[str], set[str]]:
    """Seeded split of dialogue ids; the result depends only on the set of ids, not their order."""
    ordered = sorted(set(ids))
    n_valid = round(len(ordered) * valid_fraction)
    valid = set(random.Random(seed).sample(ordered, n_valid))
    return set(ordered) - valid, valid
