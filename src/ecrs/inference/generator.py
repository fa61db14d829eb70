"""The response generator the chat pipeline calls (ECR_SPEC §5, §8): recommend one movie in a warm, grounded
reply, streamed.

    gen = ResponseGenerator.load("artifacts/generator/smollm2")   # once; llama.cpp on the merged GGUF
    for piece in gen.stream(movie_entity, dialogue, emotion):      # dialogue: [(role, text)], emotion: [(label, p)]
        ...

A reply is ECR's: the prompt's first sentence ("You might like Titanic (1997).") + the model's greedy
continuation (no repeated 3-gram, ≤ `max_tokens` tokens). At serve time every continuation sentence passes the
grounding checker before it is sent: a sentence naming a person, movie, company or year that the prompt's knowledge
does not contain is dropped, and so is an unfinished last sentence. Pieces therefore arrive sentence by sentence
(the first sentence at once).

Without a trained artifact, `ResponseGenerator.load` falls back to the base SmolLM2 GGUF zero-shot with the same
prompt; without llama.cpp (or an exported GGUF), to transformers with the LoRA adapter.
"""
from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from ecrs.data.linking import build_redial_linker
from ecrs.data.reviews import DEFAULT_CACHE, MovieKnowledge, ReviewKB, load_review_kb
from ecrs.errors import EcrsError
from ecrs.inference.grounding import GroundingChecker, Knowledge, Violation
from ecrs.inference.hf_decode import HFEngine
from ecrs.inference.llama import LlamaCppEngine
from ecrs.inference.model_files import smollm2_gguf
from ecrs.inference.prompts import GenerationPrompt, PromptFormat, render, serve_prompt

__all__ = ["GenerationResult", "GeneratorSettings", "ResponseGenerator"]

_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*(?=\s)")


class Engine(Protocol):
    def stream(self, prompt: str, max_tokens: int = 60, no_repeat_ngram: int = 3,
               stop_at_newline: bool = True) -> Iterator[str]: ...


@dataclass
class GeneratorSettings:
    format: PromptFormat = "chat"
    max_tokens: int = 60  # new tokens of the continuation (serve default: short)
    no_repeat_ngram: int = 3
    n_triples: int = 2
    dialogue: bool = True  # show the last turns and the user's emotion (the model was trained with them)
    n_turns: int = 2
    repair: bool = True  # drop ungrounded and unfinished sentences before they are sent


@dataclass
class GenerationResult:
    reply: str  # what the user sees (after repair when enabled)
    raw: str  # first sentence + the model's continuation, unrepaired
    violations: list[Violation] = field(default_factory=list)  # of the raw reply
    prompt: str = ""


def _split_complete(buffer: str) -> tuple[list[str], str]:
    """(complete sentences at the start of `buffer`, the unfinished rest)."""
    out, start = [], 0
    for m in _SENTENCE_END.finditer(buffer):
        s = buffer[start:m.end()].strip()
        if s:
            out.append(s)
        start = m.end()
    return out, buffer[start:]


class ResponseGenerator:
    def __init__(self, engine: Engine, kb: ReviewKB, checker: GroundingChecker, settings: GeneratorSettings,
                 name: str = ""):
        self.engine = engine
        self.kb = kb
        self.checker = checker
        self.settings = settings
        self.name = name

    # ------------------------------------------------------------ loading

    @classmethod
    def load(cls, directory: str | Path | None = "artifacts/generator/smollm2", *, linker=None,
             kb: ReviewKB | None = None, backend: str = "auto", n_threads: int = 2,
             **overrides: Any) -> ResponseGenerator:
        """A trained generator directory (`ecrs train generator`); without one, the zero-shot base model."""
        d = Path(directory) if directory else None
        if d is None or not (d / "generator.json").exists():
            print(f"ecrs: no trained generator at {d}; using the base SmolLM2 zero-shot", file=sys.stderr)
            return cls.zero_shot(linker=linker, kb=kb, n_threads=n_threads, **overrides)
        meta = json.loads((d / "generator.json").read_text())
        settings = GeneratorSettings(format=meta.get("format", "chat"), max_tokens=meta.get("max_tokens", 60),
                                     n_triples=meta.get("n_triples", 2), dialogue=meta.get("dialogue", True))
        settings = replace(settings, **overrides)
        engine: Engine
        gguf = d / meta["gguf"] if meta.get("gguf") else None
        if backend in ("auto", "llama.cpp") and gguf is not None and gguf.exists() and _has_llamacpp():
            engine = LlamaCppEngine.open(gguf, n_threads=n_threads)
        elif backend == "llama.cpp":
            raise EcrsError(f"{d}: no exported GGUF or no xllamacpp; use backend='transformers'")
        else:
            engine = HFEngine.open(meta["base"], d / meta.get("adapter", "adapter"))
        return cls(engine, kb or load_review_kb(meta.get("kb", DEFAULT_CACHE), linker=linker), _checker(linker),
                   settings, name=str(d))

    @classmethod
    def zero_shot(cls, gguf: str | Path | None = None, *, linker=None, kb: ReviewKB | None = None,
                  n_threads: int = 2, name: str = "zero-shot", **overrides: Any) -> ResponseGenerator:
        """The base GGUF (SmolLM2 by default) with the same prompt, no fine-tuning, no dialogue segment."""
        settings = replace(GeneratorSettings(dialogue=False), **overrides)
        engine = LlamaCppEngine.open(gguf or smollm2_gguf(), n_threads=n_threads)
        return cls(engine, kb or load_review_kb(linker=linker), _checker(linker), settings, name=name)

    # ------------------------------------------------------------ one reply

    def prompt(self, movie_entity: int, dialogue: Sequence[tuple[str, str]] = (),
               emotion: Sequence[tuple[str, float]] = (), use_dialogue: bool | None = None,
               seed: int | str | None = None) -> tuple[GenerationPrompt, Knowledge]:
        movie = self._movie(movie_entity)
        with_dialogue = self.settings.dialogue if use_dialogue is None else use_dialogue
        p = serve_prompt(movie, dialogue if with_dialogue else (), emotion if with_dialogue else (),
                         n_triples=self.settings.n_triples, n_turns=self.settings.n_turns if with_dialogue else 0,
                         seed=movie_entity if seed is None else seed, plot=self.settings.format == "friend")
        ids = [movie.entity, *(e for e, _ in movie.review_entities),
               *(e for _, e, _ in movie.triples[:self.settings.n_triples])]
        return p, self.checker.knowledge(p.knowledge_text(), ids)

    def stream(self, movie_entity: int, dialogue: Sequence[tuple[str, str]] = (),
               emotion: Sequence[tuple[str, float]] = (), use_dialogue: bool | None = None) -> Iterator[str]:
        """The reply in pieces: the first sentence, then each continuation sentence that passes the checks."""
        p, knowledge = self.prompt(movie_entity, dialogue, emotion, use_dialogue)
        yield from self._pieces(p, knowledge)

    def generate(self, movie_entity: int, dialogue: Sequence[tuple[str, str]] = (),
                 emotion: Sequence[tuple[str, float]] = (), use_dialogue: bool | None = None) -> str:
        return "".join(self.stream(movie_entity, dialogue, emotion, use_dialogue))

    def generate_detailed(self, movie_entity: int, dialogue: Sequence[tuple[str, str]] = (),
                          emotion: Sequence[tuple[str, float]] = (),
                          use_dialogue: bool | None = None) -> GenerationResult:
        """The reply as served, with the raw (unrepaired) one and its violations (for evaluation)."""
        p, knowledge = self.prompt(movie_entity, dialogue, emotion, use_dialogue)
        continuation: list[str] = []
        reply = "".join(self._pieces(p, knowledge, continuation))
        raw = f"{p.first} {''.join(continuation).strip()}".strip()
        return GenerationResult(reply=reply if self.settings.repair else raw, raw=raw,
                                violations=self.checker.violations(raw, knowledge),
                                prompt=render(p, self.settings.format))

    def _pieces(self, p: GenerationPrompt, knowledge: Knowledge, raw: list[str] | None = None) -> Iterator[str]:
        """The repair loop: the first sentence, then each completed continuation sentence without a violation (all
        of them, and an unfinished last one, when repair is off). `raw` collects the model's continuation."""
        s = self.settings
        yield p.first
        buffer = ""
        for piece in self.engine.stream(render(p, s.format), s.max_tokens, s.no_repeat_ngram):
            if raw is not None:
                raw.append(piece)
            done, buffer = _split_complete(buffer + piece)
            yield from self._grounded(done, knowledge)
        done, tail = _split_complete(buffer + " ")  # the stream's end closes a final sentence
        yield from self._grounded(done, knowledge)
        if tail.strip() and not s.repair:
            yield " " + tail.strip()

    def _grounded(self, sentences: list[str], knowledge: Knowledge) -> Iterator[str]:
        for sentence in sentences:
            if not self.settings.repair or not self.checker.violations(sentence, knowledge):
                yield " " + sentence

    def _movie(self, entity: int) -> MovieKnowledge:
        try:
            return self.kb.movies[int(entity)]
        except (KeyError, ValueError, TypeError):
            raise EcrsError(f"movie {entity!r} is not in the catalogue") from None


def _has_llamacpp() -> bool:
    return importlib.util.find_spec("xllamacpp") is not None


def _checker(linker) -> GroundingChecker:
    return GroundingChecker(linker if linker is not None else build_redial_linker())
