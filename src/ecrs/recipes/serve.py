"""`ecrs serve [--config FILE.yaml] [--set key=value ...]`: the HTTP API and web chat page (uvicorn), sessions kept in
a database (keys: `ServeConfig`: the pipeline's `BotConfig` and the server's limits, `ServeSettings`).

    ecrs serve --set port=8000                           # http://127.0.0.1:8000/ : the chat page
    ECRS_API_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe())') \
      ecrs serve --set host=0.0.0.0 --set db_url=postgresql+psycopg://u:p@db/ecrs --set trusted_proxies=10.0.0.5

The embedded default (one process, one SQLite file, loopback) is safe on its own. Several processes or hosts share
sessions through PostgreSQL; one SQLite file takes one server (a second refuses to start). Behind a reverse proxy,
name it in `trusted_proxies`, so each user is limited on their own address, not the proxy's (README "Serving").
"""
from __future__ import annotations

import argparse
import fcntl
import importlib
import ipaddress
import logging
import sys
from dataclasses import dataclass, fields
from pathlib import Path

from ecrs.config import add_config_arguments, load_config
from ecrs.errors import EcrsError
from ecrs.recipes.chat import BotConfig
from ecrs.serving.app import ServeSettings, create_app
from ecrs.serving.guard import RedactSessionIds, fit_connections, guarded_h11
from ecrs.serving.store import SessionStore, check_db_url

log = logging.getLogger("ecrs.serving")

_ENV_HELP = ("Environment: ECRS_API_KEY=KEY (16+ printable ASCII characters) makes /sessions* need the X-API-Key "
             "header; unset, anyone who can reach the server can chat (only loopback by default). Never put the key "
             "in a config file or --set.")


@dataclass
class ServeConfig(BotConfig, ServeSettings):
    # "MODULE:FUNCTION": build the pipeline with this zero-argument function instead of loading `artifacts`
    pipeline: str | None = None

    def __post_init__(self) -> None:
        if self.api_key is not None:  # a key given as a config value would show in `ps` and in shell history
            raise ValueError("api_key: set the key in the ECRS_API_KEY environment variable, not in the config")
        super().__post_init__()

    def settings(self) -> ServeSettings:
        """The server's settings, the key read from ECRS_API_KEY."""
        values = {f.name: getattr(self, f.name) for f in fields(ServeSettings) if f.name != "api_key"}
        try:
            return ServeSettings.from_env(**values)
        except ValueError as e:
            raise EcrsError(str(e)) from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, ServeConfig, "db_url=postgresql+psycopg://u:p@db/ecrs")
    p.epilog = f"{p.epilog}\n\n{_ENV_HELP}"


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


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def open_database(settings: ServeSettings) -> None:
    """Reach the database and create its tables now, so a wrong URL, a refused connection or a bad password is one
    line before the server starts, not a traceback from inside it."""
    store = SessionStore(check_db_url(settings.db_url), settings.durability)
    try:
        store.create_tables()
    except Exception as e:  # noqa: BLE001 - any driver error: say which, in one line
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0][:300]
        raise EcrsError(f"database {store.engine.url.render_as_string(hide_password=True)}: {reason}") from None
    finally:
        store.close()


def lock_sqlite(db_url: str):
    """One server per SQLite file: a second process on it would race the first for every streamed turn (409s).
    The lock is held, by the open file returned, until the process exits."""
    if not db_url.startswith("sqlite") or "///" not in db_url or db_url.endswith(":memory:"):
        return None
    path = Path(db_url.split("///", 1)[1] + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise EcrsError(f"{db_url}: another `ecrs serve` uses this SQLite file; run several servers on "
                        "PostgreSQL (db_url=postgresql+psycopg://...), or give each its own file") from None
    return handle


def run(args: argparse.Namespace) -> int:
    import uvicorn  # the `serve` extra

    try:
        cfg = load_config(ServeConfig, args.config, args.set)
    except ValueError as e:
        raise EcrsError(str(e)) from None
    settings = cfg.settings()
    lock = lock_sqlite(settings.db_url)  # noqa: F841 - held for the life of the process
    open_database(settings)
    if settings.api_key is None and not _is_loopback(settings.host):
        print(f"WARNING: listening on {settings.host} without an API key: anyone who can reach this address can "
              "chat and read sessions. Set ECRS_API_KEY (16+ characters).", file=sys.stderr)
    trusted = [t.strip() for t in settings.trusted_proxies.split(",") if t.strip()]
    logging.getLogger("uvicorn.access").addFilter(RedactSessionIds())
    app = create_app(_factory(cfg), settings)
    max_connections = fit_connections(settings.max_connections)
    protocol = guarded_h11(settings.header_timeout_s, max_connections, settings.max_connections_per_client,
                           exempt=frozenset(t for t in trusted if "/" not in t and t != "*"))
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                access_log=settings.access_log, timeout_graceful_shutdown=5, http=protocol,
                timeout_keep_alive=settings.keep_alive_s, proxy_headers=bool(trusted),
                forwarded_allow_ips=trusted or None, backlog=min(2048, max_connections),
                server_header=False)
    return 0

