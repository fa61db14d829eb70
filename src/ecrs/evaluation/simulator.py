"""Interactive evaluation with a simulated seeker, in the style of iEvaLM (Wang et al., EMNLP 2023).

A simulated seeker has one target movie in mind, taken from a ReDial test dialogue (the first movie the human
recommender suggested that the seeker said they liked), and knows what that seeker said before it: the opening
request and the movies they mentioned and liked. It talks with the system for up to `max_turns` turns:

    turn 1      the seeker opens (real opening request + liked movies);
    turn t > 1  the system's last suggestions did not contain the target: the seeker turns them down and reveals
                the next attribute of the target (genre, decade, a star, the director: `target_hints`).

The dialogue succeeds at the first turn whose recommendations contain the target, matched by entity id (never by
the seeker's judgement). The seeker never names the target: every seeker message passes `redact_title`, which
replaces the title and counts the leak, whichever simulator wrote it.

Two seekers share one interface (`Seeker.message`): `RuleSeeker` (templates; deterministic, cheap) and `LLMSeeker`
(any `ecrs.inference.llm` backend, prompt `SIM_PROMPT_VERSION`, temperature 0, the target only in the system
prompt; a failed call falls back to the rule message and is counted).

    profiles = seeker_profiles(test_dialogues, catalogue, n=50)
    rows = [run_dialogue(p, PipelineSystem(bot), RuleSeeker(), max_turns=5) for p in profiles]
    summarize(rows, max_turns=5)     # success@k, mean turns to success, rejections per dialogue
    simulate(profiles, system, seeker, "out/", max_turns=5)   # the same, resumable, to out/transcripts.jsonl
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from ecrs.data.catalogue import Movie
from ecrs.data.dialogues import Dialogue
from ecrs.data.rows import append_row, read_rows
from ecrs.errors import EcrsError
from ecrs.inference.llm import Backend, Retry
from ecrs.inference.state import ConversationState

__all__ = [
    "SIM_PROMPT_VERSION",
    "Hint",
    "LLMSeeker",
    "PipelineSystem",
    "RuleSeeker",
    "SeekerMessage",
    "SeekerProfile",
    "SimTurn",
    "Summary",
    "System",
    "SystemReply",
    "mean_rejections",
    "mean_turns_to_success",
    "redact_title",
    "rejected",
    "run_dialogue",
    "seeker_profiles",
    "simulate",
    "success_at_k",
    "success_turn",
    "summarize",
    "target_hints",
    "title_pattern",
]

SIM_PROMPT_VERSION = "sim-v1"
REDACTED = "[redacted]"
MAX_MESSAGE_CHARS = 400


# ---------------------------------------------------------------------------------------------------------------
# Seekers drawn from test dialogues
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Hint:
    kind: str   # "genre" | "star" | "director" | "decade"
    value: str

    def clause(self) -> str:
        """The fact as a clause about the wanted movie, for the LLM prompt."""
        return {"genre": f"you want a {self.value} movie", "star": f"it stars {self.value}",
                "director": f"it is directed by {self.value}",
                "decade": f"it came out in the {self.value}"}[self.kind]


@dataclass
class SeekerProfile:
    id: str                 # the ReDial dialogue id
    target: int             # entity id of the target movie
    target_title: str
    opening: str            # the seeker's first words in the real dialogue
    liked: list[str]        # display titles of the movies the seeker mentioned and liked before the target
    disliked: list[str]
    hints: list[Hint]       # revealed one per rejection, in this order
    facts: str = ""         # what the LLM seeker knows about the target (genres, people, plot)


def target_hints(movie: Movie) -> list[Hint]:
    """Attributes of the target from the catalogue, most general first: genre, decade, a star, the director (a
    person narrows the catalogue to a few movies, so people come last); none that would spell the title (a biopic
    named after its star)."""
    hints = []
    if movie.genres:
        hints.append(Hint("genre", movie.genres[0]))
    if movie.year:
        hints.append(Hint("decade", f"{movie.year // 10 * 10}s"))
    if movie.stars:
        hints.append(Hint("star", movie.stars[0]))
    if movie.directors:
        hints.append(Hint("director", movie.directors[0]))
    pattern = title_pattern(movie.title)
    return [h for h in hints if pattern is None or not pattern.search(h.value)]


def _facts(movie: Movie) -> str:
    parts = [f"year: {movie.year}" if movie.year else "",
             f"genres: {', '.join(movie.genres)}" if movie.genres else "",
             f"directed by: {', '.join(movie.directors[:2])}" if movie.directors else "",
             f"starring: {', '.join(movie.stars[:3])}" if movie.stars else "",
             f"plot: {movie.plot[:300]}" if movie.plot else ""]
    return "\n".join(p for p in parts if p)


def _opening(texts: list[str], min_words: int = 6) -> str:
    """The first seeker turn, joined with the next when it is only a greeting ("hi!")."""
    out = texts[0] if texts else ""
    if len(out.split()) < min_words and len(texts) > 1:
        out = f"{out} {texts[1]}"
    return out.strip()


def seeker_profiles(dialogues: Iterable[Dialogue], catalogue: dict[int, Movie], n: int | None = None,
                    seed: int = 0) -> list[SeekerProfile]:
    """One simulated seeker per dialogue that has a target: the first movie a recommender turn suggests that the
    seeker's questionnaire marks as liked, not mentioned earlier in the dialogue, and in the catalogue. The seeker
    knows only what they said before that turn. The first `n` in sha256(f"{seed}:{id}") order are returned: the
    same sample for the same (n, seed) on every machine, and a larger n extends a smaller one."""
    profiles = []
    for d in dialogues:
        mentioned: set[int] = set()
        said: list[str] = []
        seeker_movies: list[int] = []
        for turn in d.turns:
            if turn.role == "recommender":
                target = next((m for m in turn.movies if m in catalogue and m not in mentioned
                               and d.feedback.get(m) == "liked"), None)
                if target is not None:
                    movie = catalogue[target]
                    own = list(dict.fromkeys(m for m in seeker_movies if m in catalogue))
                    profiles.append(SeekerProfile(
                        id=d.id, target=target, target_title=movie.title, opening=_opening(said),
                        liked=[catalogue[m].display for m in own if d.feedback.get(m) == "liked"],
                        disliked=[catalogue[m].display for m in own if d.feedback.get(m) == "disliked"],
                        hints=target_hints(movie), facts=_facts(movie)))
                    break
            else:
                said.append(turn.text)
                seeker_movies += turn.movies
            mentioned.update(turn.movies)
    profiles.sort(key=lambda p: hashlib.sha256(f"{seed}:{p.id}".encode()).hexdigest())
    return profiles if n is None else profiles[:n]


# ---------------------------------------------------------------------------------------------------------------
# The title guard
# ---------------------------------------------------------------------------------------------------------------

_ARTICLE = re.compile(r"^(the|a|an)\s+", re.I)
_SENTENCE_START = re.compile(r"(^|[.!?]\s*)$")


def _variant_regex(variant: str) -> str:
    # Lookarounds, not \b: titles may start or end with punctuation ("(500) Days of Summer", "M*A*S*H").
    return r"(?<!\w)" + re.escape(variant).replace(r"\ ", r"\s+") + r"(?!\w)"


def title_pattern(title: str) -> re.Pattern[str] | None:
    """What counts as naming the movie: the title, without a leading article, and the part before a colon when it
    has two words or more ("Star Wars: The Last Jedi" -> "Star Wars"). Titles of several words match in any case;
    one-word titles ("Jaws", "It", "Up") only as capitalised in the title, since in lower case they are ordinary
    words (see `redact_title` for their sentence-initial exception)."""
    title = " ".join(title.split())
    variants = {title, _ARTICLE.sub("", title)}
    head = title.split(":", 1)[0].strip()
    if ":" in title and len(head.split()) >= 2:
        variants.add(head)
    variants = {v for v in variants if len(v) >= 2}
    multi = sorted((v for v in variants if " " in v), key=len, reverse=True)
    single = sorted(v for v in variants if " " not in v)
    alts = [f"(?i:{_variant_regex(v)})" for v in multi] + [_variant_regex(v) for v in single]
    return re.compile("|".join(alts)) if alts else None


def redact_title(text: str, title: str) -> tuple[str, int]:
    """(text with every mention of `title` replaced by REDACTED, number of mentions). A capitalised one-word title
    at the start of a sentence ("It was fun", "Yes, please") is taken for the ordinary word: that misses "Jaws is
    great" but keeps every "It ..." and "Yes ..." from counting as a leak."""
    pattern = title_pattern(title)
    if pattern is None:
        return text, 0
    count = 0

    def sub(m: re.Match[str]) -> str:
        nonlocal count
        if not re.search(r"\s", m.group(0)) and _SENTENCE_START.search(text[: m.start()]):
            return m.group(0)
        count += 1
        return REDACTED

    return pattern.sub(sub, text), count


# ---------------------------------------------------------------------------------------------------------------
# The system under test
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class SystemReply:
    text: str
    recommended: list[tuple[int, str]]  # (entity id, title), best first


class System(Protocol):
    name: str
    top_k: int  # movies recommended per turn

    def reset(self) -> None: ...  # start a new conversation

    def respond(self, text: str) -> SystemReply: ...


class PipelineSystem:
    """The chat pipeline (`EmpatheticRecommender.turn`), one `ConversationState` per simulated dialogue."""

    def __init__(self, bot, name: str):
        self.bot = bot
        self.name = name
        self.state = None

    @property
    def top_k(self) -> int:
        return self.bot.top_k

    def reset(self) -> None:
        self.state = ConversationState()

    def respond(self, text: str) -> SystemReply:
        r = self.bot.turn(self.state, text)
        return SystemReply(r.reply, [(x.entity, x.title) for x in r.recommendations])


# ---------------------------------------------------------------------------------------------------------------
# Seekers
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class SimTurn:
    seeker: str                         # what the system received (after redaction)
    system: str
    recommended: list[tuple[int, str]]
    accepted: bool                      # the target is among `recommended`
    hint: Hint | None = None            # revealed in this seeker message
    leaks: int = 0                      # title mentions redacted from this seeker message
    fallback: str | None = None         # why the LLM seeker's message was replaced by the rule message


@dataclass
class SeekerMessage:
    text: str
    fallback: str | None = None


class Seeker(Protocol):
    name: str
    model: str

    def message(self, profile: SeekerProfile, history: Sequence[SimTurn], hint: Hint | None) -> SeekerMessage: ...


def _a(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


class RuleSeeker:
    """Template messages: the real opening plus liked movies, then a refusal with the next hint."""

    name = "rule"
    model = "templates-v1"

    def message(self, profile: SeekerProfile, history: Sequence[SimTurn], hint: Hint | None) -> SeekerMessage:
        if not history:
            text = profile.opening or "Hi! Can you recommend a movie?"
            liked = [t for t in profile.liked if t.lower() not in text.lower()]
            if liked:
                text += f" I liked {' and '.join(liked[:3])}."
            return SeekerMessage(text)
        # No movie name and no "seen": the pipeline reads "seen" as "exclude it", which a refusal is not.
        lead = "Hmm, not quite what I'm looking for." if history[-1].recommended else "Sure."
        if hint is None:
            return SeekerMessage(f"{lead} Do you have anything else?")
        phrase = {"genre": f"I'm in the mood for {_a(hint.value)} {hint.value} movie.",
                  "star": f"Something with {hint.value} in it would be great.",
                  "director": f"Maybe something directed by {hint.value}.",
                  "decade": f"Ideally something from the {hint.value}."}[hint.kind]
        return SeekerMessage(f"{lead} {phrase}")


_SYSTEM_PROMPT = (
    "You are role-playing a movie fan (the seeker) who chats with a movie recommendation assistant (the user).\n"
    'You secretly want to watch one particular movie: "{title}".\n'
    "What you know about it:\n{facts}\n"
    "Movies you liked before: {liked}\n\n"
    "Rules:\n"
    "- NEVER write its title or any part of its title: the assistant must find it from your descriptions.\n"
    "- Write only the seeker's next chat message: one or two short, casual sentences, no quotes, no name label.\n"
    "- Do not accept a suggestion; whether it is the right movie is checked automatically.\n"
    "- Follow the instruction in square brackets at the end of the assistant's message; never repeat it."
)
_LABEL = re.compile(r"^\s*(seeker|you|user|me|fan)\s*:\s*", re.I)
_NEXT_SPEAKER = re.compile(r"\n\s*(assistant|recommender|system|seeker|user|you|task)\s*:|\n\s*\n|\n\s*\[", re.I)


class LLMSeeker:
    """The seeker's messages written by an LLM (prompt `SIM_PROMPT_VERSION`). Roles are swapped, as usual for
    user simulators: the LLM answers as the chat "assistant" (the seeker) to "user" messages that hold the
    system's replies, so that the model continues the chat instead of a transcript. The title of the target appears
    only in the system prompt; each user message ends with a bracketed instruction (open the chat like the real
    seeker did / turn the suggestions down and reveal this clue). Backend errors are retried (`retry`); a
    message still missing or empty is replaced by `RuleSeeker`'s, with the reason in `SeekerMessage.fallback`.
    Unrecoverable errors (FatalBackendError) raise."""

    def __init__(self, backend: Backend, retry: Retry = Retry()):
        self.backend = backend
        self.name = f"llm-{backend.name}"
        self.model = backend.model
        self.retry = retry
        self._rule = RuleSeeker()

    @staticmethod
    def build_messages(profile: SeekerProfile, history: Sequence[SimTurn], hint: Hint | None) -> list[dict[str, str]]:
        liked = ", ".join(profile.liked) or "(none named)"
        if profile.disliked:
            liked += f"; you did not like {', '.join(profile.disliked)}"
        messages = [{"role": "system", "content": _SYSTEM_PROMPT.format(
            title=profile.target_title, facts=profile.facts or "(nothing more)", liked=liked)}]
        opening = (f'[Start the chat: ask for a movie recommendation, like the real seeker who wrote "'
                   f'{profile.opening or "Hi!"}"'
                   + (f", and say you liked {' and '.join(profile.liked[:3])}" if profile.liked else "") + ".]")
        messages.append({"role": "user", "content": "Hi! What are you in the mood for?\n\n" + opening})
        for i, t in enumerate(history):
            messages.append({"role": "assistant", "content": t.seeker})
            if i < len(history) - 1:
                messages.append({"role": "user", "content": t.system})
        if history:
            last = history[-1]
            if last.recommended:
                task = (f"[These suggestions ({', '.join(title for _, title in last.recommended)}) are not the "
                        "movie you want. Turn them down politely")
            else:
                task = "[Answer the assistant"
            task += f", and add this clue: {hint.clause()}.]" if hint else ", and ask for something else.]"
            messages.append({"role": "user", "content": f"{last.system}\n\n{task}"})
        return messages

    def message(self, profile: SeekerProfile, history: Sequence[SimTurn], hint: Hint | None) -> SeekerMessage:
        messages = self.build_messages(profile, history, hint)
        # An empty message is not retried: at temperature 0 asking again gives the same answer.
        ans = self.retry.ask(lambda: self.backend.complete(messages).text, clean_message)
        if ans.value:
            return SeekerMessage(ans.value)
        error = "empty message" if ans.value == "" else ans.error or ""
        return SeekerMessage(self._rule.message(profile, history, hint).text, fallback=error[:200])


def clean_message(raw: str) -> str:
    """The seeker's message from a model answer: the first paragraph, up to another speaker's label (small models
    go on writing the other side's turn or echo the instructions), without a "Seeker:" label or enclosing
    quotes, at most MAX_MESSAGE_CHARS."""
    text = _NEXT_SPEAKER.split("\n" + _LABEL.sub("", raw.strip()), maxsplit=1)[0].strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return " ".join(text.split())[:MAX_MESSAGE_CHARS]


# ---------------------------------------------------------------------------------------------------------------
# One simulated dialogue
# ---------------------------------------------------------------------------------------------------------------

def run_dialogue(profile: SeekerProfile, system: System, seeker: Seeker, max_turns: int) -> dict[str, Any]:
    """Talk until the system recommends the target or `max_turns` seeker messages were sent; the transcript as a
    JSON-ready row: {"id", "target", "target_title", "turns": [SimTurn...], "success_turn", "rejected",
    "leaks", "fallbacks"}."""
    system.reset()
    turns: list[SimTurn] = []
    for t in range(max_turns):
        hint = profile.hints[t - 1] if 0 < t <= len(profile.hints) else None
        msg = seeker.message(profile, turns, hint)
        text, leaks = redact_title(msg.text, profile.target_title)
        reply = system.respond(text)
        accepted = any(e == profile.target for e, _ in reply.recommended)
        turns.append(SimTurn(text, reply.text, reply.recommended, accepted, hint, leaks, msg.fallback))
        if accepted:
            break
    rows = [asdict(t) for t in turns]
    return {"id": profile.id, "target": profile.target, "target_title": profile.target_title, "turns": rows,
            "success_turn": success_turn(rows), "rejected": rejected(rows),
            "leaks": sum(t.leaks for t in turns), "fallbacks": sum(t.fallback is not None for t in turns)}


# ---------------------------------------------------------------------------------------------------------------
# Metrics: pure functions of transcripts ({"turns": [{"recommended": [...], "accepted": bool}, ...]})
# ---------------------------------------------------------------------------------------------------------------

def success_turn(turns: Sequence[dict[str, Any]]) -> int | None:
    """1-based index of the first turn whose recommendations the seeker accepted; None if none was."""
    return next((i for i, t in enumerate(turns, start=1) if t["accepted"]), None)


def rejected(turns: Sequence[dict[str, Any]]) -> int:
    """Recommended movies the seeker turned down: all recommendations of the turns before the accepted one (the
    other movies of the accepted turn were not judged)."""
    return sum(len(t["recommended"]) for t in turns if not t["accepted"])


def success_at_k(transcripts: Sequence[dict[str, Any]], max_k: int) -> dict[int, float]:
    """success@k = |{dialogues whose success turn <= k}| / |dialogues|, for k = 1..max_k. Dialogues run for
    max_k turns; the seeker does not depend on the turn budget, so the first k turns are what a k-turn run sees."""
    if not transcripts:
        raise ValueError("success@k of no dialogues is undefined")
    turns = [success_turn(t["turns"]) for t in transcripts]
    return {k: sum(s is not None and s <= k for s in turns) / len(turns) for k in range(1, max_k + 1)}


def mean_turns_to_success(transcripts: Sequence[dict[str, Any]]) -> float | None:
    """Mean success turn over the successful dialogues; None when none succeeded."""
    turns = [s for s in (success_turn(t["turns"]) for t in transcripts) if s is not None]
    return sum(turns) / len(turns) if turns else None


def mean_rejections(transcripts: Sequence[dict[str, Any]]) -> float:
    """Mean number of recommended movies rejected per dialogue (`rejected`), over all dialogues."""
    if not transcripts:
        raise ValueError("rejections of no dialogues are undefined")
    return sum(rejected(t["turns"]) for t in transcripts) / len(transcripts)


TRANSCRIPTS = "transcripts.jsonl"
SUMMARY = "summary.json"
_META = ("simulator", "model", "prompt_version", "system", "max_turns", "top_k")


def simulate(profiles: Sequence[SeekerProfile], system: System, seeker: Seeker, out: str | Path, max_turns: int,
             progress: bool = True, extra: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], Summary]:
    """Run every profile's dialogue, appending each transcript to `out/transcripts.jsonl` as soon as it ends
    (flushed: an interrupted run loses at most the dialogue in progress). Dialogues already in the file are
    skipped, provided they were made by the same simulator, model, prompt, system and budget (else EcrsError:
    mixing them would average different experiments). Writes `out/summary.json` (the Summary of `profiles`, plus
    `extra`) and returns the transcripts of `profiles` in their order with it."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EcrsError(f"{out}: not a folder")
    out.mkdir(parents=True, exist_ok=True)
    path = out / TRANSCRIPTS
    meta = {"simulator": seeker.name, "model": seeker.model, "prompt_version": SIM_PROMPT_VERSION,
            "system": system.name, "max_turns": max_turns, "top_k": system.top_k}
    done: dict[str, dict[str, Any]] = {}
    for row in read_rows(path, repair=True):
        made = {k: row.get(k) for k in _META}
        if made != meta:
            diff = next(k for k in _META if made[k] != meta[k])
            raise EcrsError(f"{path} holds dialogues with {diff}={made[diff]!r}, this run has {diff}={meta[diff]!r}: "
                            "use another output folder")
        done[str(row["id"])] = row
    todo = [p for p in profiles if p.id not in done]
    with path.open("a", encoding="utf-8") as f, tqdm(total=len(profiles), initial=len(profiles) - len(todo),
                                                    desc=f"simulate ({seeker.name})", unit="dlg",
                                                    disable=not progress, dynamic_ncols=True) as bar:
        for p in todo:
            row = {**run_dialogue(p, system, seeker, max_turns), **meta}
            append_row(f, row)
            done[p.id] = row
            bar.update(1)
            bar.set_postfix(found=sum(r["success_turn"] is not None for r in done.values()), refresh=False)
    rows = [done[p.id] for p in profiles]
    summary = summarize(rows, max_turns)
    (out / SUMMARY).write_text(json.dumps({**meta, **(extra or {}), **asdict(summary)}, indent=2) + "\n")
    return rows, summary


@dataclass
class Summary:
    n: int
    max_turns: int
    success_at_k: dict[int, float]
    successes: int
    mean_turns_to_success: float | None
    mean_rejections: float
    leaks: int                      # title mentions redacted, all dialogues
    dialogues_with_leaks: int
    fallbacks: int                  # LLM messages replaced by the rule message
    turns: int                      # seeker messages sent
    definitions: dict[str, str] = field(default_factory=lambda: {
        "success@k": "dialogues whose recommendations contained the target (entity id) within k turns / n",
        "mean_turns_to_success": "mean 1-based turn of success, over successful dialogues only",
        "mean_rejections": "recommended movies in the turns before success (all turns if none) per dialogue",
        "leaks": "mentions of the target title redacted from seeker messages before the system saw them",
        "fallbacks": "LLM seeker messages replaced by the rule-based message (backend error or empty answer)",
    })


def summarize(transcripts: Sequence[dict[str, Any]], max_turns: int) -> Summary:
    turns = [t["turns"] for t in transcripts]
    return Summary(
        n=len(transcripts), max_turns=max_turns, success_at_k=success_at_k(transcripts, max_turns),
        successes=sum(success_turn(t) is not None for t in turns),
        mean_turns_to_success=mean_turns_to_success(transcripts), mean_rejections=mean_rejections(transcripts),
        leaks=sum(x["leaks"] for t in turns for x in t),
        dialogues_with_leaks=sum(any(x["leaks"] for x in t) for t in turns),
        fallbacks=sum(x["fallback"] is not None for t in turns for x in t), turns=sum(len(t) for t in turns))
