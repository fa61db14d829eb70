"""Prompts of the response generator (ECR_SPEC §5, §8).

ECR's prompt has four segments in this order, and the model continues after the first sentence:

    Movie Name: Titanic (1997)
    Related Entities: Kate Winslet, Leonardo DiCaprio
    Related Knowledge from KG: Titanic's director is James Cameron, Titanic's star is Kate Winslet
    First Sentence: You might like Titanic (1997).

Our dialogue variant (ECR's generator sees neither) inserts two more segments before the first sentence: the last
turns of the conversation and the user's detected emotions (`Dialogue:` / `User Emotion:`).

Three renderings of the same segments:
- `plain`: the segments as text; the continuation follows "First Sentence: ..." directly (ECR's form).
- `chat`: ChatML (the template of SmolLM2-Instruct and Qwen2.5-Instruct): the segments are the user message and
  the assistant message starts with the first sentence.
- `friend` (issue 25, for instruction-following models used zero-shot): ChatML whose user message also gives the
  movie's genres and plot summary (`serve_prompt(plot=True)`), and whose system message says what a good reply is
  (2-3 short sentences, why it fits what the person said, one or two of the facts, warm, no repeated phrase; in the
  user message, a 0.5B model copied it into its reply); the assistant message starts with the first sentence, as in
  `chat`.
The reply is always `first sentence + continuation`; training targets end with the end-of-turn token.

Training targets are cleaned reviews (`ecrs.data.reviews`); `insert_triples` is ECR's augmentation: with
probability 0.1 per prompt triple, a sentence stating that triple is inserted at a random sentence boundary.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ecrs.data.reviews import split_sentences

__all__ = [
    "FIRST_SENTENCES",
    "GenerationPrompt",
    "PromptFormat",
    "first_sentence",
    "insert_triples",
    "render",
    "serve_prompt",
    "triple_sentence",
]

PromptFormat = Literal["plain", "chat", "friend"]
SYSTEM = "You recommend movies warmly, using only the facts given."
FRIEND_SYSTEM = ("You are a movie lover chatting with someone who wants something to watch. You recommend the movie "
                 "you are given in two or three short sentences, under 50 words: why it suits what they said, one or "
                 "two of its facts, and how much you loved it. You state only the facts you were given, never "
                 "repeat a phrase, and never repeat their words back to them.")
# Short recommendation openers naming the movie ("You might like X" is ECR's UniCRS-style first sentence).
FIRST_SENTENCES = (
    "You might like {title}.",
    "I think you would enjoy {title}.",
    "Have you seen {title}?",
    "I'd recommend {title}.",
    "How about {title}?",
)
MAX_TURN_WORDS = 40  # each dialogue turn in the prompt is cut to its last 40 words
SPEAKERS = {"seeker": "User", "recommender": "You", "user": "User", "assistant": "You"}


@dataclass
class GenerationPrompt:
    """Everything one generation is conditioned on (names already resolved to text)."""

    title: str  # "Titanic (1997)"
    name: str  # "Titanic": the subject of the KG sentences
    entities: list[str] = field(default_factory=list)  # related entities from reviews (≤ 4)
    triples: list[tuple[str, str]] = field(default_factory=list)  # (relation words, entity name), ≤ 2
    first: str = ""
    dialogue: list[tuple[str, str]] = field(default_factory=list)  # (role, text), last turns; [] = ECR prompt
    emotion: list[tuple[str, float]] = field(default_factory=list)  # the user's emotions, strongest first
    genres: list[str] = field(default_factory=list)  # shown by the `friend` format only ([] otherwise)
    plot: str = ""  # likewise

    def knowledge_text(self) -> str:
        """All the text the reply may draw its facts from (for the grounding checker)."""
        parts = [self.title, self.name, *self.entities, *(e for _, e in self.triples), self.first, *self.genres,
                 self.plot]
        parts += [t for _, t in self.dialogue]
        return "\n".join(parts)


def triple_sentence(name: str, relation: str, entity: str) -> str:
    """ECR's fact phrasing: "Titanic's director is James Cameron"."""
    return f"{name}'s {relation} is {entity}"


def first_sentence(title: str, seed: int | str = 0) -> str:
    """A short recommendation sentence naming the movie; the template is a pure function of `seed`."""
    return FIRST_SENTENCES[random.Random(str(seed)).randrange(len(FIRST_SENTENCES))].format(title=title)


def _clip_words(text: str, n: int) -> str:
    w = text.split()
    return " ".join(w[-n:]) if len(w) > n else " ".join(w)


def segments(p: GenerationPrompt) -> list[str]:
    out = [f"Movie Name: {p.title}"]
    if p.entities:
        out.append("Related Entities: " + ", ".join(p.entities))
    if p.triples:
        out.append("Related Knowledge from KG: " + ", ".join(triple_sentence(p.name, r, e) for r, e in p.triples))
    if p.dialogue:
        out.append("Dialogue:\n" + "\n".join(f"{SPEAKERS.get(r, r)}: {_clip_words(t, MAX_TURN_WORDS)}"
                                              for r, t in p.dialogue))
    if p.emotion:
        out.append("User Emotion: " + ", ".join(label for label, _ in p.emotion))
    return out


def render(p: GenerationPrompt, fmt: PromptFormat = "chat") -> str:
    """The prompt text up to and including the first sentence; the model writes the continuation.

    No BOS token is added (neither GGUF model wants one); the continuation should start with a space.
    """
    if fmt == "plain":
        return "\n".join([*segments(p), f"First Sentence: {p.first}"])
    if fmt == "chat":
        user = "\n".join(segments(p))
        return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
                f"<|im_start|>assistant\n{p.first}")
    if fmt == "friend":
        lines = segments(p)
        lines[1:1] = [*([f"Genres: {', '.join(p.genres)}"] if p.genres else []),
                      *([f"Plot: {p.plot}"] if p.plot else [])]
        user = "\n".join(lines)
        return (f"<|im_start|>system\n{FRIEND_SYSTEM}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
                f"<|im_start|>assistant\n{p.first}")
    raise ValueError(f"unknown prompt format {fmt!r} (plain, chat or friend)")


def insert_triples(target: str, name: str, triples: Sequence[tuple[str, str]], rng: random.Random,
                   p: float = 0.1) -> str:
    """ECR's augmentation: each triple, with probability p, becomes a sentence inserted at a random boundary."""
    sentences = split_sentences(target)
    for relation, entity in triples:
        if rng.random() < p:
            sentences.insert(rng.randint(0, len(sentences)), triple_sentence(name, relation, entity) + ".")
    return " ".join(sentences)


def serve_prompt(movie, dialogue: Sequence[tuple[str, str]] = (), emotion: Sequence[tuple[str, float]] = (),
                 n_triples: int = 2, n_turns: int = 2, seed: int | str = 0, plot: bool = False) -> GenerationPrompt:
    """The prompt for recommending `movie` (an `ecrs.data.reviews.MovieKnowledge`): its first `n_triples` facts
    (director and top-billed star first), its review entities, the last `n_turns` turns and the emotions
    (pass no dialogue and no emotion for ECR's prompt); `plot`: also its genres and plot summary (`friend`)."""
    return GenerationPrompt(
        title=movie.title, name=movie.name,
        entities=[name for _, name in movie.review_entities],
        triples=[(rel, name) for rel, _, name in movie.triples[:n_triples]],
        first=first_sentence(movie.title, seed),
        dialogue=[(r, t) for r, t in list(dialogue)[-n_turns:]] if n_turns > 0 else [],
        emotion=list(emotion)[:3],
        genres=list(movie.genres) if plot else [],
        plot=movie.plot if plot else "",
    )
