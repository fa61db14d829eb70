"""`ecrs serve`: the HTTP API and web chat page (uvicorn), sessions kept in a database.

    ecrs serve --port 8000                               # http://127.0.0.1:8000/ : the chat page
    ECRS_API_KEY=secret ecrs serve --host 0.0.0.0 --db-url postgresql+psycopg://u:p@db/ecrs

Several processes given the same --db-url share sessions (PostgreSQL, or one SQLite file on one machine).
"""
from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from ecrs.errors import EcrsError
from ecrs.inference.pipeline import CHAT_REPLY_TOKENS
from ecrs.serving.store import SQLITE_SYNCHRONOUS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--db-url", default="sqlite:///artifacts/sessions.db",
                   help="SQLAlchemy URL of the sessions database (default: %(default)s)")
    p.add_argument("--durability", default="process", choices=sorted(SQLITE_SYNCHRONOUS),
                   help="SQLite: an acknowledged turn survives the server being killed ('process', WAL with "
                        "synchronous=NORMAL) or also a power loss ('power', synchronous=FULL: an fsync per turn)")
    p.add_argument("--artifacts", default="artifacts", help="folder with trained artifacts")
    p.add_argument("--recommender", default=None,
                   help="recommender run folder, or 'popularity' (default: the trained ECR run if present)")
    p.add_argument("--generator", default=None, help="generator folder, or 'template' (default: the fine-tuned generator if present)")
    p.add_argument("--reply-tokens", type=int, default=CHAT_REPLY_TOKENS,
                   help="most new tokens of a generated reply (default: %(default)s; the generation benchmarks use 60)")
    p.add_argument("--pipeline", default=None, metavar="MODULE:FUNCTION",
                   help="build the pipeline with this zero-argument function instead of loading --artifacts")
    p.add_argument("--rate-per-minute", type=float, default=60.0,
                   help="write requests per client address and minute; 0 = no limit (default: %(default)s)")
    p.add_argument("--rate-burst", type=int, default=20)
    p.add_argument("--max-message-chars", type=int, default=2000)
    p.add_argument("--threads", type=int, default=4, help="turns computed at once")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--no-access-log", action="store_true")


def _factory(args: argparse.Namespace):
    if args.pipeline:
        module, _, name = args.pipeline.partition(":")
        if not name:
            raise EcrsError(f"--pipeline {args.pipeline!r}: expected MODULE:FUNCTION")
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as e:
            raise EcrsError(f"--pipeline {args.pipeline!r}: {e}") from None
    emotion = Path(args.artifacts) / "emotion"
    if not emotion.exists():  # fail here with one line, before the server starts
        raise EcrsError(f"{emotion}: emotion classifier not found; train it with `ecrs train emotion`")
    from ecrs.inference.pipeline import EmpatheticRecommender

    return lambda: EmpatheticRecommender.load(args.artifacts, args.recommender, args.generator,
                                              reply_tokens=args.reply_tokens)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from ecrs.serving.app import ServeSettings, create_app

    settings = ServeSettings.from_env(db_url=args.db_url, durability=args.durability,
                                      rate_per_minute=args.rate_per_minute,
                                      rate_burst=args.rate_burst, max_message_chars=args.max_message_chars,
                                      pipeline_threads=args.threads)
    app = create_app(_factory(args), settings)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=not args.no_access_log,
                timeout_graceful_shutdown=5)
    return 0
