"""`ecrs serve [--config FILE.yaml] [--set key=value ...]`: the HTTP API and web chat page (uvicorn), sessions kept in
a database (keys: `ServeConfig`).

    ecrs serve --set port=8000                           # http://127.0.0.1:8000/ : the chat page
    ECRS_API_KEY=secret ecrs serve --set host=0.0.0.0 --set db_url=postgresql+psycopg://u:p@db/ecrs

Several processes given the same db_url share sessions (PostgreSQL, or one SQLite file on one machine).
"""
from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ecrs.config import add_config_arguments, load_config
from ecrs.errors import EcrsError
from ecrs.recipes.chat import BotConfig
from ecrs.serving.app import ServeSettings, create_app
from ecrs.serving.store import SQLITE_SYNCHRONOUS, check_db_url


@dataclass
class ServeConfig(BotConfig):
    host: str = "127.0.0.1"  # address to listen on (default: loopback only)
    port: int = 8000
    db_url: str = "sqlite:///artifacts/sessions.db"  # SQLAlchemy URL of the sessions database
    # SQLite: an acknowledged turn survives the server being killed ("process", WAL with synchronous=NORMAL) or
    # also a power loss ("power", synchronous=FULL: an fsync per turn)
    durability: str = "process"
    # "MODULE:FUNCTION": build the pipeline with this zero-argument function instead of loading `artifacts`
    pipeline: str | None = None
    rate_per_minute: float = 60.0  # write requests per client address and minute; 0 = no limit
    rate_burst: int = 20
    max_message_chars: int = 2000
    threads: int = 4  # turns computed at once
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    access_log: bool = True

    def __post_init__(self) -> None:
        if self.durability not in SQLITE_SYNCHRONOUS:  # checked here so a typo fails before the server starts
            raise ValueError(f"durability {self.durability!r}: expected one of {sorted(SQLITE_SYNCHRONOUS)}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, ServeConfig, "db_url=postgresql+psycopg://u:p@db/ecrs")


def _factory(cfg: ServeConfig):
    if cfg.pipeline:
        module, _, name = cfg.pipeline.partition(":")
        if not name:
            raise EcrsError(f"pipeline {cfg.pipeline!r}: expected MODULE:FUNCTION")
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as e:
            raise EcrsError(f"pipeline {cfg.pipeline!r}: {e}") from None
    emotion = Path(cfg.artifacts) / "emotion"
    if not emotion.exists():  # fail here with one line, before the server starts
        raise EcrsError(f"{emotion}: emotion classifier not found; train it with `ecrs train emotion`")
    return cfg.load_pipeline


def run(args: argparse.Namespace) -> int:
    import uvicorn  # the `serve` extra

    cfg = load_config(ServeConfig, args.config, args.set)
    settings = ServeSettings.from_env(db_url=check_db_url(cfg.db_url), durability=cfg.durability,
                                      rate_per_minute=cfg.rate_per_minute, rate_burst=cfg.rate_burst,
                                      max_message_chars=cfg.max_message_chars, pipeline_threads=cfg.threads)
    app = create_app(_factory(cfg), settings)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=cfg.log_level, access_log=cfg.access_log,
                timeout_graceful_shutdown=5)
    return 0
