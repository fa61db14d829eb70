"""What keeps `ecrs serve` reachable when clients misbehave: connection limits and deadlines, per-client request
limits, and an access log without secrets.

uvicorn times out an idle keep-alive connection only *after* a first response, and never a connection that is slow
to send its request: 2,000 such connections exhausted the process's file descriptors and filled the log with "Too
many open files". `guarded_h11` is uvicorn's own HTTP/1.1 protocol with three additions:
  - a request's headers must arrive within `header_timeout_s` of the connection opening (or of the previous
    response), else the connection is closed: idle and trickling ("slowloris") connections are dropped;
  - at most `max_connections` open at once and `max_connections_per_client` from one address (a trusted proxy's
    address is exempt): a connection over either is closed at once, so descriptors stay bounded;
  - the soft descriptor limit is raised to the hard one and `max_connections` kept below it (`fit_connections`).
A slow request *body* is bounded by `BodyLimit` (app.py), the time to send a response by TCP itself.

Request limits use the `limits` library's moving windows, kept in this process's memory: behind a load balancer
each server process limits on its own.
"""
from __future__ import annotations

import asyncio
import logging
import re
import resource
import time
from typing import Any

from limits import RateLimitItemPerHour, RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["ClientLimits", "RedactSessionIds", "fit_connections", "guarded_h11"]

log = logging.getLogger("ecrs.serving")
_RESERVED_FILES = 256  # descriptors kept for the database, model files, logs and the listening socket


def fit_connections(wanted: int) -> int:
    """Raise this process's soft open-files limit to its hard limit; return `wanted` or, if the limit is lower,
    the most connections that fit beside `_RESERVED_FILES`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = wanted + _RESERVED_FILES if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))
            soft = max(soft, target)
        except (ValueError, OSError):
            pass
    fits = max(16, soft - _RESERVED_FILES)
    if fits < wanted:
        log.warning("open-files limit %d: at most %d connections (max_connections=%d asked)", soft, fits, wanted)
    return min(wanted, fits)


def guarded_h11(header_timeout_s: float, max_connections: int, max_per_client: int,
                exempt: frozenset[str] = frozenset()) -> type[H11Protocol]:
    """uvicorn's H11Protocol with a header deadline and connection caps (pass it as `uvicorn.run(http=...)`)."""
    open_by_client: dict[str, int] = {}  # one event loop: no lock needed
    dropped = {"n": 0, "logged": 0.0}

    class GuardedH11(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None
        _host: str | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            peer = transport.get_extra_info("peername")
            host = peer[0] if isinstance(peer, tuple) else "unix"
            total = sum(open_by_client.values())
            if total >= max_connections or (host not in exempt and open_by_client.get(host, 0) >= max_per_client):
                transport.abort()  # before uvicorn tracks it: nothing to clean up
                self._drop_note(host)
                return
            self._host = host
            open_by_client[host] = open_by_client.get(host, 0) + 1
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._host is None:
                return
            self._disarm()
            left = open_by_client.get(self._host, 1) - 1
            if left > 0:
                open_by_client[self._host] = left
            else:
                open_by_client.pop(self._host, None)
            self._host = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            cycle = self.cycle
            super().data_received(data)
            if self.cycle is not cycle:  # a request's headers are complete
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request's headers have the same deadline

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(header_timeout_s, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if self.cycle is None or self.cycle.response_complete:  # no request is being answered
                self.transport.close()

        @staticmethod
        def _drop_note(host: str) -> None:
            dropped["n"] += 1
            now = time.monotonic()
            if now - dropped["logged"] > 10:  # one line per 10 s, however many are dropped
                log.warning("connection limit: dropped %d connections (last from %s)", dropped["n"], host)
                dropped["n"], dropped["logged"] = 0, now

    GuardedH11.open_by_client = open_by_client  # type: ignore[attr-defined]  # for tests and benchmarks
    return GuardedH11


class ClientLimits:
    """Per-client request limits: `requests` per minute (every endpoint), wrong API keys per minute (a client over
    it gets 429 before its key is even compared), new sessions per hour. `hit` -> 0 when allowed, else the
    seconds until the window has room."""

    def __init__(self, requests_per_minute: int, auth_failures_per_minute: int, sessions_per_hour: int):
        self._storage = MemoryStorage()
        self._window = MovingWindowRateLimiter(self._storage)
        self._items = {"requests": RateLimitItemPerMinute(requests_per_minute) if requests_per_minute > 0 else None,
                       "auth": RateLimitItemPerMinute(auth_failures_per_minute) if auth_failures_per_minute > 0
                       else None,
                       "sessions": RateLimitItemPerHour(sessions_per_hour) if sessions_per_hour > 0 else None}

    def _wait(self, item: Any, client: str) -> float:
        reset = self._window.get_window_stats(item, client).reset_time
        return max(1.0, reset - time.time())

    def hit(self, kind: str, client: str) -> float:
        item = self._items[kind]
        if item is None or self._window.hit(item, client):
            return 0.0
        return self._wait(item, client)

    def room(self, kind: str, client: str) -> float:
        """Like `hit` without counting: 0 if the window still has room."""
        item = self._items[kind]
        if item is None or self._window.test(item, client):
            return 0.0
        return self._wait(item, client)


_SESSION_PATH = re.compile(r"(/sessions/)([0-9a-zA-Z_-]{4})[^/?\s\"]*")


class RedactSessionIds(logging.Filter):
    """A session id is the bearer secret of a conversation: access-log lines keep its first 4 characters only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_SESSION_PATH.sub(r"\1\2…", a) if isinstance(a, str) else a for a in record.args)
        return True
