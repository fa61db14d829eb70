"""What the judge is shown: ECR's five dimensions, the pairs to judge, the known-answer controls, and the two
questions (one dimension of two replies; one reply alone, yes or no).

A question's wording, including the dimension definitions, is part of `JUDGE_PROMPT_VERSION` and of every cache
key: changing it means a new version, so answers to the old wording are never reused.
"""
from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CHOICE_SCHEMA",
    "CONTROL_ENTHUSIASM",
    "CONTROL_ROBOTIC",
    "DEFAULT_DIMENSIONS",
    "DIMENSIONS",
    "DIMENSION_DEFINITIONS",
    "FACT_DIMENSIONS",
    "JUDGE_PROMPT_VERSION",
    "PREFERENCES",
    "SINGLE_PROMPT_VERSION",
    "YES_NO_QUESTIONS",
    "YES_NO_SCHEMA",
    "YES_NO_VERSION",
    "FAULT_CONTROLS",
    "PairItem",
    "control_pairs",
    "fault_controls",
    "design",
    "render_context",
    "robotic_pairs",
    "single_question_messages",
    "yes_no_messages",
]

# "v3": the versions before it asked all five dimensions in one JSON answer (experiments/judge-*/ tell why that
# was dropped); the name stays so the answers cached under it stay valid.
JUDGE_PROMPT_VERSION = "judge-v3"

# ECR's five dimensions (paper §5.3), in its order; the wording is ours (part of JUDGE_PROMPT_VERSION).
DIMENSION_DEFINITIONS: dict[str, str] = {
    "emotional_intensity": "how strongly the reply conveys emotion (enthusiasm, warmth, empathy) to the user",
    "emotional_persuasiveness": "how well the reply connects with the user's feelings to make them want the movie",
    "logic_persuasiveness": "how well the reply gives coherent, relevant reasons why this movie suits the user",
    "informativeness": "how much concrete, useful information about the recommended movie the reply gives "
                       "(plot, genre, cast, what makes it good)",
    "lifelikeness": "how natural, fluent and human-like the reply sounds as a reply in this conversation",
}
DIMENSIONS: tuple[str, ...] = tuple(DIMENSION_DEFINITIONS)
PREFERENCES = ("A", "B", "tie")
# The dimensions an invented fact must cost: decided by a grounding check where one reply has such a fact and the
# other has not (`Judge(checker=...)`), since the local judge does not notice a swapped director or another film
FACT_DIMENSIONS: tuple[str, ...] = ("informativeness", "logic_persuasiveness")

# The dimensions on which the local 1.5B judge passed its known-answer controls on held-out turns
# (benchmarks/judge.py, benchmarks/results/judge.json): what `ecrs judge` asks by default.
DEFAULT_DIMENSIONS: tuple[str, ...] = ("emotional_intensity", "lifelikeness")

# One dimension of two replies per request: the answer is the bare word A, B or tie, its probabilities read at the
# first answer token. Asked all five dimensions in one answer the 1.5B judge failed both known-answer controls;
# asked about emotional intensity alone it passed that control.
SINGLE_PROMPT_VERSION = JUDGE_PROMPT_VERSION + "-single"
CHOICE_SCHEMA: dict[str, Any] = {"type": "string", "enum": list(PREFERENCES)}

# One reply judged alone, yes or no: for lifelikeness, which the 1.5B judge could not separate when shown two
# replies side by side (shuffled words won half the time), but which it separates when it reads each reply alone.
# No second reply in view: no position to be biased by.
YES_NO_VERSION = JUDGE_PROMPT_VERSION + "-yesno"
YES_NO_SCHEMA: dict[str, Any] = {"type": "string", "enum": ["yes", "no"]}
# dimension -> (instructions, question); the lifelikeness question is the one of three that passed its controls
# best (judge.json).
YES_NO_QUESTIONS: dict[str, tuple[str, str]] = {
    "lifelikeness": ("You judge whether a reply in a movie-recommendation chat reads like natural, fluent text that "
                     "a real person would write.", "Could a real movie fan have written this reply?"),
}


def design(dimension: str) -> str:
    """How `Judge.compare` asks about `dimension`: "yes_no" (each reply alone) where a yes/no question exists,
    else "pairwise" (the two replies side by side, both orders)."""
    return "yes_no" if dimension in YES_NO_QUESTIONS else "pairwise"


@dataclass(frozen=True)
class PairItem:
    """Two replies to the same context; `a_name` / `b_name` name the systems in the output. `knowledge`: what
    the replies may state as facts, for the judge's fact gate ("" = the context): all the generators were shown
    (plot, review entities), which would make the judge's prompt long."""
    id: str
    context: str
    a: str
    b: str
    a_name: str = "a"
    b_name: str = "b"
    knowledge: str = ""


# Emotion without facts (no title, year or name), so only emotional intensity separates the two replies.
CONTROL_ENTHUSIASM = (
    "I absolutely loved it, it's one of my all-time favourites!",
    "Honestly, it moved me to tears and I still think about it.",
    "I was grinning from start to finish, it's pure joy!",
    "It gave me chills, I can't recommend it enough!",
    "I adore this one, it never fails to make my day!",
)


def control_pairs(items: Sequence[PairItem], seed: int = 0) -> dict[str, list[PairItem]]:
    """Known-answer pairs to qualify a judge, built from each item's b reply (a is the better reply by
    construction): {"emotional_intensity": [b + one enthusiastic, fact-free sentence vs b],
    "lifelikeness": [b vs the same words shuffled]}. A judge that cannot separate these cannot separate systems on
    those dimensions either."""
    rng = random.Random(seed)
    ei, ll = [], []
    for i, it in enumerate(items):
        base = it.b.strip()
        ei.append(PairItem(f"control_ei|{it.id}", it.context, f"{base} {CONTROL_ENTHUSIASM[i % len(CONTROL_ENTHUSIASM)]}",
                           base, "base+enthusiasm", "base"))
        words = base.split()
        shuffled = words[:]
        while len(set(words)) > 1 and shuffled == words:
            rng.shuffle(shuffled)
        ll.append(PairItem(f"control_ll|{it.id}", it.context, base, " ".join(shuffled), "base", "base shuffled"))
    return {"emotional_intensity": ei, "lifelikeness": ll}


# What no person chatting about movies writes: a reply that opens with it is less lifelike by construction.
CONTROL_ROBOTIC = "As an AI language model, I do not have personal opinions or feelings, but here is a recommendation."


def robotic_pairs(items: Sequence[PairItem]) -> list[PairItem]:
    """A second known-answer lifelikeness control, beside `control_pairs`' shuffled words (which a judge can pass on
    grammar alone): each item's b reply against the same reply opened by `CONTROL_ROBOTIC`; a is better."""
    return [PairItem(f"control_ll_robotic|{it.id}", it.context, it.b.strip(), f"{CONTROL_ROBOTIC} {it.b.strip()}",
                     "base", "robotic+base") for it in items]


# The faults a generator really makes (issue 25), each a known-answer control on the dimension it must cost (or,
# for the last two, win): {control: dimension}. Every pair adds one sentence to the same base reply on both sides,
# or one of similar length, so length alone decides nothing.
FAULT_CONTROLS: dict[str, str] = {
    "duplicated_sentence": "lifelikeness",  # "the acting is great. the acting is great."
    "contradiction": "logic_persuasiveness",  # praise, then "I would not recommend it"
    "swapped_fact": "informativeness",  # another film's director or star stated as this film's
    "other_film": "logic_persuasiveness",  # a reply about another movie than the one recommended
    "emotion_vs_neutral": "emotional_intensity",  # an emotional sentence vs a neutral one of the same length
    "feeling_vs_neutral": "emotional_persuasiveness",  # a sentence that answers the user's feeling vs a neutral one
}
# Fact-free sentences of ~10 words: neutral ones to match the length of the emotional, contradicting and
# feeling-answering ones.
CONTROL_NEUTRAL = (
    "It is a feature film that is available in several formats.",
    "It was released in cinemas and later came out on disc.",
    "It has a runtime that is typical for a movie of its kind.",
    "It is one of many movies in the catalogue I can look up.",
    "You can usually find it on the common streaming services too.",
)
CONTROL_CONTRADICTION = (
    "That said, I honestly would not recommend it to you at all.",
    "But to be honest, it is not worth your time, skip it.",
    "Then again, I really disliked it and think you will too.",
    "Actually, forget it, it is a boring movie you would hate.",
    "On second thought, it is awful and I would avoid it.",
)
CONTROL_FEELING = (
    "Since you want something to enjoy tonight, I think it will lift you.",
    "I hear what you are looking for, and this one should really hit the spot.",
    "Given what you told me, I think it will make your evening feel better.",
    "It fits just what you said you're in the mood for right now.",
    "From what you said you like, I think it will speak to you.",
)


def _sentences(text: str) -> list[str]:
    return [x for x in re.split(r"(?<=[.!?])\s+", text.strip()) if x]


def fault_controls(items: Sequence[PairItem], facts: Sequence[Sequence[tuple[str, str]]], titles: Sequence[str],
                   seed: int = 0) -> dict[str, list[PairItem]]:
    """The `FAULT_CONTROLS` pairs built from each item's b reply (the base; a is better by construction on the
    control's dimension). `facts[i]`: item i's movie facts as (relation, value), director and stars first;
    `titles[i]`: its recommended movie. The judge sees them in the context ("Recommended movie: ...; facts: ..."),
    as the generator saw them in its prompt, so a swapped fact and a reply about another film can be told apart.
    Items without a fact skip the swapped-fact control; the other-film control pairs item i with item i+1's base."""
    rng = random.Random(seed)
    out: dict[str, list[PairItem]] = {k: [] for k in FAULT_CONTROLS}
    n = len(items)
    for i, it in enumerate(items):
        base = it.b.strip()
        fact_text = "; ".join(f"{r}: {v}" for r, v in facts[i])
        context = f"{it.context}\n\n(Recommended movie: {titles[i]}{'; facts: ' + fact_text if fact_text else ''})"
        neutral = CONTROL_NEUTRAL[i % len(CONTROL_NEUTRAL)]

        def pair(kind: str, a: str, b: str, a_name: str, b_name: str) -> None:
            out[kind].append(PairItem(f"control_{kind}|{it.id}", context, a, b, a_name, b_name))

        sentences = _sentences(base)
        longest = max(sentences, key=len) if sentences else base
        pair("duplicated_sentence", base, f"{base} {longest}", "base", "base+duplicate")
        pair("contradiction", f"{base} {neutral}", f"{base} {CONTROL_CONTRADICTION[i % len(CONTROL_CONTRADICTION)]}",
             "base+neutral", "base+contradiction")
        pair("emotion_vs_neutral", f"{base} {CONTROL_ENTHUSIASM[i % len(CONTROL_ENTHUSIASM)]}", f"{base} {neutral}",
             "base+emotion", "base+neutral")
        pair("feeling_vs_neutral", f"{base} {CONTROL_FEELING[i % len(CONTROL_FEELING)]}", f"{base} {neutral}",
             "base+feeling", "base+neutral")
        if n > 1:
            other = items[(i + 1) % n].b.strip()
            pair("other_film", base, other, "base", "another turn's base")
        if facts[i]:
            relation, value = facts[i][rng.randrange(len(facts[i]))]
            wrong = [v for j in range(n) if j != i for r, v in facts[j] if r == relation and v != value
                     and v not in {x for _, x in facts[i]}]
            if wrong:
                lie = rng.choice(wrong)
                pair("swapped_fact", f"{base} Its {relation} is {value}.", f"{base} Its {relation} is {lie}.",
                     "base+true fact", "base+swapped fact")
    return out


def render_context(turns: Sequence[tuple[str, str]] | str, max_turns: int = 4, max_chars: int = 300) -> str:
    """The last `max_turns` turns as "User: ..." / "Recommender: ..." lines, each cut to `max_chars` (a longer
    prompt costs the local judge seconds and the last turns decide what a good reply is)."""
    if isinstance(turns, str):
        return turns.strip()
    lines = []
    for role, text in list(turns)[-max_turns:]:
        who = "Recommender" if role == "recommender" else "User"
        text = " ".join(text.split())
        lines.append(f"{who}: {text[:max_chars] + ('...' if len(text) > max_chars else '')}")
    return "\n".join(lines)


def single_question_messages(context: str, first: str, second: str, dimension: str,
                             definition: str | None = None) -> list[dict[str, str]]:
    """Which of two replies is better on one dimension (`definition`: other wording than DIMENSION_DEFINITIONS).
    The context comes before the replies so both orders share the prompt prefix llama.cpp caches."""
    text = definition or DIMENSION_DEFINITIONS[dimension]
    system = ("You compare two candidate replies, A and B, of a recommender in a movie-recommendation chat on one "
              f"dimension, {dimension}: {text}. Answer \"A\", \"B\", or \"tie\" when they are about equally good; "
              "the order in which the replies are shown does not matter.")
    user = (f"Conversation so far:\n{context or '(none)'}\n\nReply A:\n{first.strip() or '(empty)'}\n\n"
            f"Reply B:\n{second.strip() or '(empty)'}\n\nWhich reply is better on {dimension}? Answer A, B or tie only.")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def yes_no_messages(reply: str, system: str, question: str) -> list[dict[str, str]]:
    """One reply, no conversation: the question is about how the reply itself reads."""
    return [{"role": "system", "content": system},
            {"role": "user", "content": f"Reply:\n{reply.strip() or '(empty)'}\n\n{question} Answer yes or no."}]
