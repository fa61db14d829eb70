"""`ecrs chat`: talk to the recommender in the terminal, replies streamed as they are generated."""
from __future__ import annotations

import argparse
import sys

from ecrs.errors import EcrsError
from ecrs.inference.pipeline import CHAT_REPLY_TOKENS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--artifacts", default="artifacts", help="folder with trained artifacts")
    p.add_argument("--recommender", default=None, help="recommender run folder, or 'popularity' (default: the trained ECR run if present)")
    p.add_argument("--generator", default=None, help="generator folder, or 'template' (default: the fine-tuned generator if present)")
    p.add_argument("--reply-tokens", type=int, default=CHAT_REPLY_TOKENS,
                   help="most new tokens of a generated reply (default: %(default)s; the generation benchmarks use 60)")
    p.add_argument("--show", action="store_true", help="show detected emotions and linked entities")


def run(args: argparse.Namespace) -> int:
    from ecrs.inference.pipeline import EmpatheticRecommender, ReplyPiece, Understood
    from ecrs.inference.state import ConversationState

    print("loading…", end="", flush=True, file=sys.stderr)
    bot = EmpatheticRecommender.load(args.artifacts, args.recommender, args.generator,
                                     reply_tokens=args.reply_tokens)
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
                if isinstance(event, Understood) and args.show:
                    emo = ", ".join(f"{lab} {p:.2f}" for lab, p in event.emotions)
                    ents = ", ".join(e.name for e in event.entities) or "–"
                    print(f"[emotion: {emo} | entities: {ents}]\n     ", end="")
                elif isinstance(event, ReplyPiece):
                    print(event.text, end="", flush=True)
            print()
        except EcrsError as e:
            print(f"\n(error: {e})")
    return 0
