"""`ecrs chat [--show] [--config FILE.yaml] [--set key=value ...]`: talk to the recommender in the terminal, replies
streamed as they are generated (keys: `ChatConfig`)."""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from ecrs.config import add_config_arguments, load_config
from ecrs.errors import EcrsError
from ecrs.inference.pipeline import CHAT_REPLY_TOKENS, EmpatheticRecommender, ReplyPiece, Understood
from ecrs.inference.state import ConversationState


@dataclass
class BotConfig:
    """Which trained parts the pipeline loads: the keys `ecrs chat` and `ecrs serve` share."""

    artifacts: str = "artifacts"  # folder with trained artifacts
    recommender: str | None = None  # run folder, or "popularity"; None = the trained ECR run if present
    generator: str | None = None  # folder, "template", "zero-shot" or "friend:qwen-1.5b"; None = the fine-tuned one
    reply_tokens: int = CHAT_REPLY_TOKENS  # most new tokens of a generated reply (the generation benchmarks use 60)
    # llama.cpp threads of the reply model. 1: with another process on one of 2 cores, 2 threads fall to a third
    # of their speed (each token waits for the slower thread) while 1 holds; quiet, 2 are ~1.3-1.7x faster
    # (benchmarks/results/llm_threads.json)
    llm_threads: int = 1

    def load_pipeline(self) -> EmpatheticRecommender:
        return EmpatheticRecommender.load(self.artifacts, self.recommender, self.generator,
                                          reply_tokens=self.reply_tokens, llm_threads=self.llm_threads)


@dataclass
class ChatConfig(BotConfig):
    show: bool = False  # print the emotions and each named thing's stance before a reply, the memory after it


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, ChatConfig, "recommender=popularity")
    p.add_argument("--show", dest="set", action="append_const", const="show=true", help="same as --set show=true")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(ChatConfig, args.config, args.set)
    print("loading…", end="", flush=True, file=sys.stderr)
    bot = cfg.load_pipeline()
    print("\r", end="", file=sys.stderr)
    for part in bot.missing:
        print(f"note: {part}", file=sys.stderr)
    print("Type a message (empty line or Ctrl-D to quit).", file=sys.stderr)
    state = ConversationState()
    while True:
        try:
            text = input("you> ")
        except EOFError:
            break
        if not text.strip():
            break
        try:
            print("bot> ", end="", flush=True)
            for event in bot.turn_events(state, text):
                if isinstance(event, Understood) and cfg.show:
                    emo = ", ".join(f"{lab} {p:.2f}" for lab, p in event.emotions)
                    said = ", ".join(f"{name}: {stance}" for name, stance in event.stances) or "–"
                    print(f"[emotion: {emo} | named: {said}]\n     ", end="")
                elif isinstance(event, ReplyPiece):
                    print(event.text, end="", flush=True)
            print()
            if cfg.show:
                print(f"     [memory: {bot.describe(state)}]")
        except EcrsError as e:
            print(f"\n(error: {e})")
    return 0
