"""The HTTP API and the web chat page (ECR_SPEC §8).

    app = create_app(lambda: EmpatheticRecommender.load("artifacts"), ServeSettings.from_env())
    uvicorn.run(app)                                   # `ecrs serve` does this

Endpoints (OpenAPI schema at /openapi.json):
    GET  /                                the web chat page
    GET  /health                          each loaded part, and a database write check (503 when writes fail)
    POST /sessions                        start a conversation -> {id}
    GET  /sessions/{id}?limit=&before=    a page of its turns (the latest by default), its feedback and memory
    POST /sessions/{id}/messages          one turn -> reply, recommendations, emotions, linked entities
                                          (`"reply": false`: recommendations only, no reply text generated)
    POST /sessions/{id}/messages/stream   the same as Server-Sent Events: `start` (recommendations, emotions,
                                          entities), `token` (reply pieces), then `done` once the turn is
                                          committed, or `error`
    POST /sessions/{id}/feedback          liked / disliked / seen on a movie of the conversation
    POST /sessions/{id}/forget            remove one remembered preference (a wish, an avoided genre or person,
                                          a liked / disliked / seen movie) -> the memory

The pipeline is loaded once, in the lifespan (so the factory's cost is paid at start, not on the first request).
Turns are CPU-bound: `turn_workers` run at once, at most `max_queued_turns` wait (a full queue, or a wait over
`queue_timeout_s`, answers 503 with Retry-After), one at a time per session (an asyncio lock per session id in this
process; across processes the store's version check turns a race into 409). A turn is acknowledged (the JSON
reply, or the stream's `done` event) only after its state is committed to the database; a turn whose client has
gone is not saved, and a message sent with an `Idempotency-Key` header lands once however often it is retried.

With `api_key` set (`ECRS_API_KEY` in the environment for `ecrs serve`: at least 16 printable ASCII characters),
/sessions* need the `X-API-Key` header; the page and /health stay public. Every request is limited per client
address (`rate_per_minute`), wrong keys more tightly, new sessions per hour (guard.py). Every limit is a field
of `ServeSettings`.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import secrets
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from importlib import resources
from typing import Annotated, Any, Literal, TypeVar

import anyio
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError

from ecrs.errors import EcrsError
from ecrs.inference.pipeline import (
    Done,
    EmpatheticRecommender,
    Recommendation,
    Recommended,
    ReplyPiece,
    TurnEvent,
    Understood,
)
from ecrs.inference.state import ConversationState
from ecrs.serving.guard import ClientLimits
from ecrs.serving.store import (
    SQLITE_SYNCHRONOUS,
    Conflict,
    FeedbackRecord,
    SessionStore,
    TurnRecord,
    UnknownSession,
    valid_session_id,
)

__all__ = ["ServeSettings", "create_app"]

log = logging.getLogger("ecrs.serving")
T = TypeVar("T")


# ---------------------------------------------------------------- settings

@dataclass
class ServeSettings:
    """Every limit of the server, in one place (`ecrs serve --help` lists them; README "Serving")."""

    # where and how sessions are kept
    db_url: str = "sqlite:///artifacts/sessions.db"
    durability: str = "process"  # SQLite: "process" survives SIGKILL, "power" also power loss (store.py)
    host: str = "127.0.0.1"  # address to listen on (default: loopback only)
    port: int = 8000
    # connections (guard.py): a request's headers must arrive within header_timeout_s (idle and trickling
    # connections are closed); at most max_connections open, max_connections_per_client from one address
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0  # a request body must arrive within this (else 408)
    keep_alive_s: int = 5  # an idle keep-alive connection closes after this
    max_connections: int = 4096
    max_connections_per_client: int = 64
    # proxies whose X-Forwarded-For is believed (comma-separated addresses or CIDRs, "*" for any); none by
    # default: the client is the TCP peer. Behind a reverse proxy on another host, name it here.
    trusted_proxies: str = ""
    # requests, per client address (0 turns a limit off)
    api_key: str | None = None  # None: no authentication; `ecrs serve` reads it from ECRS_API_KEY only
    rate_per_minute: int = 120  # every request (GETs too)
    auth_failures_per_minute: int = 20  # wrong or missing keys; beyond it 429, the key not even compared
    sessions_per_hour: int = 60  # new sessions
    max_message_chars: int = 2000  # longer messages get 413
    max_body_bytes: int = 64 * 1024  # any larger request body gets 413 before it is parsed
    # model work: turns computed at once, turns waiting (a full queue or a longer wait: 503 + Retry-After)
    turn_workers: int = 2
    max_queued_turns: int = 64
    queue_timeout_s: float = 60.0
    # sessions: turns and feedback rows per session, a page of history, idle days before a session is deleted
    max_turns_per_session: int = 500
    max_feedback_per_session: int = 200
    page_turns: int = 20
    session_ttl_days: float = 30.0
    # logging
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    access_log: bool = True  # session ids are cut to 4 characters in it

    def __post_init__(self) -> None:
        if self.durability not in SQLITE_SYNCHRONOUS:  # checked here so a typo fails before the server starts
            raise ValueError(f"durability {self.durability!r}: expected one of {sorted(SQLITE_SYNCHRONOUS)}")
        if self.api_key is not None:
            check_api_key(self.api_key)
        for name in ("turn_workers", "max_queued_turns", "page_turns", "max_connections",
                     "max_connections_per_client", "max_turns_per_session", "max_feedback_per_session"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def from_env(cls, **overrides: Any) -> ServeSettings:
        """Defaults, `ECRS_API_KEY` from the environment (set but empty is an error, not "no key"), then
        `overrides`."""
        values: dict[str, Any] = {"api_key": os.environ.get("ECRS_API_KEY")}
        values.update(overrides)
        return cls(**values)


MIN_KEY_CHARS = 16


def check_api_key(key: str) -> str:
    """A key worth having: 16+ printable ASCII characters (a header can carry nothing else, so any other key
    could never match)."""
    if not key:
        raise ValueError("ECRS_API_KEY is set but empty: unset it to run without a key, or set a key of "
                         f"{MIN_KEY_CHARS}+ characters (e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)")
    if not (key.isascii() and key.isprintable()) or key != key.strip():
        raise ValueError("ECRS_API_KEY must be printable ASCII without surrounding spaces")
    if len(key) < MIN_KEY_CHARS:
        raise ValueError(f"ECRS_API_KEY is {len(key)} characters; use at least {MIN_KEY_CHARS}")
    return key


# ---------------------------------------------------------------- wire models

class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Parts(_Wire):
    emotion: str
    stance: str
    recommender: str = Field(description="the recommender's name, or 'popularity' (the fallback)")
    generator: str = Field(description="the reply model's name, or 'template' (the fallback)")


class Health(_Wire):
    status: Literal["ok"]
    database: Literal["ok"] = Field(description="a write was committed just now")
    auth: bool = Field(description="whether /sessions needs the X-API-Key header")
    parts: Parts
    missing: list[str] = Field(description="trained parts the server runs without, with the command to train each")
    queued_turns: int = Field(description="turns waiting for a worker now")


class SessionCreated(_Wire):
    id: str
    created_at: float


class MessageIn(_Wire):
    text: str = Field(min_length=1, description="the user's message (at most max_message_chars characters)",
                      examples=["I loved Titanic, anything like it?"])
    reply: bool = Field(True, description="false: recommendations only, no reply text is generated")


class EmotionOut(_Wire):
    label: str
    p: float


class EntityOut(_Wire):
    entity: int
    name: str
    is_movie: bool


class RecommendationOut(_Wire):
    entity: int
    title: str
    year: int | None
    reason: str
    score: float


class MessageOut(_Wire):
    session_id: str
    turn: int = Field(description="index of this turn in the session (0, 1, ...)")
    reply: str
    emotions: list[EmotionOut]
    entities: list[EntityOut]
    recommendations: list[RecommendationOut]


class FeedbackIn(_Wire):
    entity: int = Field(ge=0, description="graph entity id of a movie recommended or mentioned in this session")
    value: Literal["liked", "disliked", "seen"]


class WishOut(_Wire):
    axis: Literal["genre", "person", "similar", "mood", "era", "studio"]
    # genres (genre, mood), entity ids (person, similar), [first, last year] (era), studios, named groups and
    # topics such as "Star Wars", "Christmas" or "vampires" (studio)
    values: list[int | str | None]
    label: str
    turn: int


class RememberedOut(_Wire):
    kind: str = Field(description="what `POST /sessions/{id}/forget` takes as kind")
    value: int | str | None
    label: str = Field(description="how to show it: 'no horror', 'wants with Tom Hanks', 'seen Titanic (1997)'")


class Memory(_Wire):
    items: list[RememberedOut] = Field(description="every removable entry, labelled")
    liked: list[int]
    disliked: list[int]
    seen: list[int]
    recommended: list[int]
    avoid_genres: list[str] = Field(description="genres the person ruled out (never recommended)")
    avoid_people: list[int] = Field(description="people (entity ids) the person ruled out (never recommended)")
    avoid_movies: list[int] = Field(description="movies ruled out, with their sequels (never recommended)")
    wishes: list[WishOut] = Field(description="soft wishes, the latest per axis; the oldest relaxes first")


class ForgetIn(_Wire):
    kind: Literal["liked", "disliked", "seen", "avoid_genres", "avoid_people", "avoid_movies", "genre", "person", "similar", "mood",
                  "era", "studio"]
    value: int | str | None = Field(None, description="the entry to remove (an entity id or a genre); for a wish "
                                                      "axis, None removes the whole wish")


class FeedbackOut(_Wire):
    session_id: str
    entity: int
    title: str
    value: Literal["liked", "disliked", "seen"]
    memory: Memory


class TurnOut(_Wire):
    turn: int
    created_at: float
    user_text: str
    reply: str
    emotions: list[EmotionOut]
    entities: list[EntityOut]
    recommendations: list[RecommendationOut]


class FeedbackItem(_Wire):
    entity: int
    title: str
    value: str
    created_at: float


class SessionOut(_Wire):
    id: str
    created_at: float
    updated_at: float
    turn_count: int = Field(description="turns in the whole session")
    turns: list[TurnOut] = Field(description="one page, oldest first: the latest `limit` turns before `before`")
    next_before: int | None = Field(description="pass as `before` for the previous page; null at the start")
    feedback: list[FeedbackItem]
    memory: Memory


class ErrorOut(BaseModel):
    detail: Any


def _emotions(emotions) -> list[dict[str, Any]]:
    return [{"label": str(lab), "p": round(float(p), 4)} for lab, p in emotions]


def _memory(state: ConversationState, pipeline: EmpatheticRecommender) -> Memory:
    return Memory(items=[RememberedOut(kind=k, value=v, label=label) for k, v, label in pipeline.remembered(state)],
                  liked=state.liked, disliked=state.disliked, seen=state.seen, recommended=state.recommended,
                  avoid_genres=state.avoid_genres, avoid_people=state.avoid_people,
                  avoid_movies=state.avoid_movies,
                  wishes=[WishOut(axis=w.axis, values=w.values, label=w.label, turn=w.turn) for w in state.wishes])


# ---------------------------------------------------------------- locks, the turn queue, body limit

class SessionLocks:
    """One asyncio lock per session id, dropped when no request holds or waits on it."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def get(self, sid: str) -> asyncio.Lock:
        lock = self._locks.get(sid)
        if lock is None:
            lock = self._locks[sid] = asyncio.Lock()
        return lock


class TurnQueue:
    """At most `workers` turns computed at once and `max_waiting` waiting, each for at most `timeout_s`; beyond
    either, 503 with Retry-After (a bounded queue: under load a client is told to come back, instead of every
    turn getting slower without end)."""

    def __init__(self, workers: int, max_waiting: int, timeout_s: float):
        self.limiter = anyio.CapacityLimiter(workers)
        self.max_waiting = max_waiting
        self.timeout_s = timeout_s
        self.waiting = 0

    def _busy(self, why: str) -> HTTPException:
        return HTTPException(503, f"server busy ({why}); retry shortly", headers={"Retry-After": "5"})

    def check(self) -> None:
        """503 now if the queue is full (before a stream's 200 is sent)."""
        if self.limiter.available_tokens == 0 and self.waiting >= self.max_waiting:
            raise self._busy(f"{self.waiting} turns waiting")

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self.check()
        token = object()
        self.waiting += 1
        try:
            with anyio.fail_after(self.timeout_s):
                await self.limiter.acquire_on_behalf_of(token)
        except TimeoutError:
            raise self._busy(f"no worker free within {self.timeout_s:g} s") from None
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            self.limiter.release_on_behalf_of(token)


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` gets 413 before any parsing (chunked bodies included);
    one not received within `timeout_s` gets 408 (a trickled body holds no worker forever)."""

    def __init__(self, app, max_bytes: int, timeout_s: float = 10.0):
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def _reject(self, send, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                return await self._reject(send, 400, "invalid Content-Length header")
            if n > self.max_bytes:
                return await self._reject(send, 413, f"request body over {self.max_bytes} bytes")
        chunks, size, more = [], 0, True
        with anyio.move_on_after(self.timeout_s) as waited:
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_bytes:
                    return await self._reject(send, 413, f"request body over {self.max_bytes} bytes")
                chunks.append(chunk)
                more = message.get("more_body", False)
        if waited.cancelled_caught:
            return await self._reject(send, 408, f"request body not received within {self.timeout_s:g} s")
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


# ---------------------------------------------------------------- the service: one turn, one feedback

@dataclass
class Committed:
    """The last event of a served turn: it is stored (`record`); `replayed` when an earlier request with the same
    Idempotency-Key stored it and this one only reads it back."""

    record: TurnRecord
    replayed: bool = False


def error_status(e: Exception) -> tuple[int, Any]:
    """(HTTP status, detail) of a failure: the one mapping of the JSON responses and the stream's `error` event."""
    if isinstance(e, HTTPException):
        return e.status_code, e.detail
    if isinstance(e, UnknownSession):
        return 404, str(e)
    if isinstance(e, Conflict):
        return 409, str(e)
    if isinstance(e, EcrsError):
        return 422, str(e)
    if isinstance(e, (SQLAlchemyError, OSError)):  # read-only or full disk, lost connection: nothing was saved
        log.error("database unavailable: %s", e)
        return 503, f"database unavailable ({type(e).__name__}); nothing was saved, retry later"
    log.error("turn failed", exc_info=e)
    return 500, "internal error; the turn was not saved"


class ChatService:
    """What the endpoints do, apart from HTTP: runs turns against the store, through the bounded turn queue."""

    def __init__(self, pipeline: EmpatheticRecommender, store: SessionStore, settings: ServeSettings):
        self.pipeline = pipeline
        self.store = store
        self.settings = settings
        self.locks = SessionLocks()
        self.queue = TurnQueue(settings.turn_workers, settings.max_queued_turns, settings.queue_timeout_s)
        self._uris = pipeline.kg.id2entity

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(partial(fn, *args))

    def check_text(self, text: str) -> str:
        if len(text) > self.settings.max_message_chars:
            raise HTTPException(413, f"message too long: {len(text)} characters "
                                     f"(the limit is {self.settings.max_message_chars})")
        if not text.strip():
            raise HTTPException(422, "empty message")
        if "\x00" in text:  # no database should have to store it (PostgreSQL refuses it in text)
            raise HTTPException(422, "message contains a NUL character")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise HTTPException(422, "message is not valid Unicode (unpaired surrogate)") from None
        return text

    def _check_room(self, state: ConversationState) -> None:
        if state.seeker_turns >= self.settings.max_turns_per_session:
            raise HTTPException(409, f"session is full ({self.settings.max_turns_per_session} turns); "
                                     "start a new one")

    def _recommendations(self, recs: list[Recommendation], uris: bool = False) -> list[dict[str, Any]]:
        return [{"entity": r.entity, "title": r.title, "year": r.year, "reason": r.reason,
                 "score": float(r.score) if math.isfinite(r.score) else 0.0,
                 **({"uri": self._uris[r.entity]} if uris else {})} for r in recs]

    def turn(self, sid: str, text: str, reply: bool, key: str | None = None,
             cancelled: threading.Event | None = None) -> Iterator[TurnEvent | Committed]:
        """The one served turn (blocking: run it in a thread): the pipeline's events on the session's stored state,
        then `Committed` once the turn is in the database. Both message endpoints consume it. With `key` (the
        Idempotency-Key), a turn already stored under it is returned instead; when `cancelled` is set (the client
        left) the turn stops before it is saved."""
        if key is not None and (earlier := self.store.find_turn(sid, key)) is not None:
            yield Committed(earlier, replayed=True)
            return
        state, version = self.store.load_state(sid)
        self._check_room(state)
        understood, recs = None, []
        for event in self.pipeline.turn_events(state, text, reply):
            yield event
            if isinstance(event, Understood):
                understood = event
            elif isinstance(event, Recommended):
                recs = event.recommendations
            elif isinstance(event, Done):
                assert understood is not None
                if cancelled is not None and cancelled.is_set():
                    return
                record = TurnRecord(
                    user_text=text, reply=event.reply,
                    emotions=[(lab, float(p)) for lab, p in understood.emotions],
                    entities=[{"entity": e.entity, "name": e.name, "is_movie": e.is_movie}
                              for e in understood.entities],
                    recommendations=self._recommendations(recs, uris=True))
                yield Committed(self.store.commit_turn(sid, version, state, record, key))

    def turn_collected(self, sid: str, text: str, reply: bool, key: str | None,
                       cancelled: threading.Event) -> Committed | None:
        """`turn` run to its end (the JSON endpoint), rerun on the fresh state when another process extended the
        session first: nothing of the lost attempt was sent, so rerunning it is safe. None: cancelled."""
        return _retry_on_conflict(
            lambda: next((e for e in self.turn(sid, text, reply, key, cancelled) if isinstance(e, Committed)), None))

    def message_out(self, sid: str, record: TurnRecord) -> MessageOut:
        return MessageOut(
            session_id=sid, turn=record.idx, reply=record.reply, emotions=_emotions(record.emotions),
            entities=record.entities, recommendations=_public(record.recommendations))

    async def stream(self, sid: str, text: str, key: str | None) -> AsyncIterator[str]:
        """SSE events of one turn: `start` once the recommendations are known, `token`s, `done` once committed, or
        `error`. The session lock and a queue slot are held until the turn is committed (or fails); a client that
        leaves cancels the turn before it is saved; a streamed turn is not rerun."""
        cancelled = threading.Event()
        try:
            async with self.queue.slot(), self.locks.get(sid):
                end = object()
                events = self.turn(sid, text, True, key, cancelled)
                understood = None
                while (event := await self.run(next, events, end)) is not end:
                    if isinstance(event, Understood):
                        understood = event
                    elif isinstance(event, Recommended):
                        assert understood is not None
                        yield _sse("start", {"emotions": _emotions(understood.emotions),
                                             "entities": [e.__dict__ for e in understood.entities],
                                             "recommendations": self._recommendations(event.recommendations)})
                    elif isinstance(event, ReplyPiece):
                        yield _sse("token", {"text": event.text})
                    elif isinstance(event, Committed):
                        record = event.record
                        if event.replayed:
                            yield _sse("start", {"emotions": _emotions(record.emotions), "entities": record.entities,
                                                 "recommendations": _public(record.recommendations)})
                            yield _sse("token", {"text": record.reply})
                        yield _sse("done", {"session_id": sid, "turn": record.idx, "reply": record.reply,
                                            "replayed": event.replayed})
        except Exception as e:  # noqa: BLE001 - every failure becomes the stream's `error` event
            status, detail = error_status(e)
            yield _sse("error", {"status": status, "detail": detail})
        finally:  # the client left (the generator is closed) or the turn ended: either way, save nothing more
            cancelled.set()

    def feedback_sync(self, sid: str, body: FeedbackIn) -> tuple[FeedbackRecord, ConversationState]:
        return _retry_on_conflict(self._feedback_once, sid, body)

    def _feedback_once(self, sid: str, body: FeedbackIn) -> tuple[FeedbackRecord, ConversationState]:
        state, version = self.store.load_state(sid)
        if self.store.count("feedback", sid) >= self.settings.max_feedback_per_session:
            raise HTTPException(409, f"this session has {self.settings.max_feedback_per_session} feedback entries, "
                                     "the most kept; start a new session")
        movies = set(state.recommended) | {e for e in state.entities if e in self.pipeline.catalogue}
        if body.entity not in movies:
            raise HTTPException(422, f"entity {body.entity} is not a movie recommended or mentioned in this session")
        state.record_feedback(body.entity, body.value)
        movie = self.pipeline.catalogue[body.entity]
        fb = FeedbackRecord(entity=body.entity, uri=self._uris[body.entity], title=movie.display, value=body.value)
        return self.store.commit_feedback(sid, version, state, fb), state

    def forget_sync(self, sid: str, body: ForgetIn) -> ConversationState:
        return _retry_on_conflict(self._forget_once, sid, body)

    def _forget_once(self, sid: str, body: ForgetIn) -> ConversationState:
        state, version = self.store.load_state(sid)
        if not state.remove(body.kind, body.value):
            raise HTTPException(404, f"nothing remembered as {body.kind} {body.value!r} in this session")
        self.store.commit_state(sid, version, state)
        return state

    def session_sync(self, sid: str, limit: int, before: int | None) -> SessionOut:
        info = self.store.session_info(sid)
        records = self.store.turns(sid, limit=limit, before=before)
        total = self.store.count("turns", sid)
        first = records[0].idx if records else (before if before is not None else total)
        return SessionOut(
            id=info["id"], created_at=info["created_at"], updated_at=info["updated_at"], turn_count=total,
            turns=[TurnOut(turn=t.idx, created_at=t.created_at, user_text=t.user_text, reply=t.reply,
                           emotions=_emotions(t.emotions), entities=t.entities,
                           recommendations=_public(t.recommendations))
                   for t in records],
            next_before=first if first > 0 else None,
            feedback=[FeedbackItem(entity=f.entity, title=f.title, value=f.value, created_at=f.created_at)
                      for f in self.store.feedback(sid)],
            memory=_memory(info["state"], self.pipeline))

    def parts(self) -> Parts:
        p = self.pipeline
        return Parts(emotion="loaded", stance="loaded" if p.stance is not None else "none (the utterance's emotion)",
                     recommender=getattr(p.recommender, "name", type(p.recommender).__name__.lower()),
                     generator=p.generator.name if p.generator is not None else "template")


def _public(recommendations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "uri"} for r in recommendations]


def _retry_on_conflict(fn: Callable[..., T], *args: Any, attempts: int = 3) -> T:
    """Run `fn` again on the fresh state when another process extended the session first: nothing of the lost
    attempt was acknowledged, so rerunning it is safe. (A streamed turn cannot be rerun: it reports 409.)"""
    for attempt in range(attempts):
        try:
            return fn(*args)
        except Conflict:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


# ---------------------------------------------------------------- dependencies

def get_service(request: Request) -> ChatService:
    return request.app.state.service


Service = Annotated[ChatService, Depends(get_service)]


def client_address(request: Request) -> str:
    # uvicorn has already put X-Forwarded-For's client here when the peer is a trusted proxy (`trusted_proxies`)
    return request.client.host if request.client else "unknown"


def _too_many(wait: float, what: str) -> HTTPException:
    return HTTPException(429, f"too many {what}; retry in {math.ceil(wait)} s",
                         headers={"Retry-After": str(math.ceil(wait))})


def rate_limit(request: Request) -> None:
    wait = request.app.state.limits.hit("requests", client_address(request))
    if wait > 0:
        raise _too_many(wait, "requests")


def require_api_key(request: Request) -> None:
    key = request.app.state.settings.api_key
    if key is None:
        return
    limits, client = request.app.state.limits, client_address(request)
    if (wait := limits.room("auth", client)) > 0:  # guessing: refused before the key is compared
        raise _too_many(wait, "wrong API keys")
    given = request.headers.get("x-api-key", "")
    if not secrets.compare_digest(given.encode("utf-8", "replace"), key.encode("ascii")):
        limits.hit("auth", client)
        raise HTTPException(401, "missing or wrong X-API-Key header", headers={"WWW-Authenticate": "X-API-Key"})


def session_id(session_id: str) -> str:
    return valid_session_id(session_id)


SessionId = Annotated[str, Depends(session_id)]
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$",
    description="any printable ASCII token (e.g. a UUID): a retried message with the same key lands once")]


# ---------------------------------------------------------------- the app

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut}
                                             for code in (401, 404, 408, 409, 413, 422, 429, 503)}


def _routes() -> APIRouter:
    router = APIRouter(prefix="/sessions", tags=["sessions"], responses=_ERRORS,
                       dependencies=[Depends(rate_limit), Depends(require_api_key)])

    @router.post("", status_code=201, response_model=SessionCreated, summary="Start a conversation")
    async def create_session(request: Request, svc: Service) -> SessionCreated:
        if (wait := request.app.state.limits.hit("sessions", client_address(request))) > 0:
            raise _too_many(wait, "new sessions from this address")
        sid, created = await svc.run(svc.store.create_session)
        return SessionCreated(id=sid, created_at=created)

    @router.get("/{session_id}", response_model=SessionOut,
                summary="A page of a conversation's turns (the latest by default), its feedback and memory")
    async def read_session(session_id: SessionId, svc: Service,
                           limit: Annotated[int | None, Query(ge=0, le=2**31 - 1, description="turns per page (at "
                                                              "most page_turns, the default)")] = None,
                           before: Annotated[int | None, Query(ge=0, le=2**31 - 1,
                                                               description="turns before this index")] = None,
                           ) -> SessionOut:
        page = svc.settings.page_turns
        if limit is not None and limit > page:
            raise HTTPException(422, f"limit {limit}: at most {page} turns per page")
        return await svc.run(svc.session_sync, session_id, page if limit is None else limit, before)

    @router.post("/{session_id}/messages", response_model=MessageOut, summary="Send a message; get the reply")
    async def send_message(session_id: SessionId, body: MessageIn, request: Request, svc: Service,
                           idempotency_key: IdempotencyKey = None) -> Response | MessageOut:
        text = svc.check_text(body.text)
        cancelled = threading.Event()

        async def watch() -> None:  # the body is read: the next message is the client leaving
            while (await request.receive())["type"] != "http.disconnect":
                pass
            cancelled.set()

        async with svc.queue.slot(), svc.locks.get(session_id):
            watcher = asyncio.ensure_future(watch())  # a plain task: a task group would wrap the turn's errors
            try:
                done = await svc.run(svc.turn_collected, session_id, text, body.reply, idempotency_key, cancelled)
            finally:
                watcher.cancel()
        if done is None:  # nobody is listening; nothing was saved
            return Response(status_code=499)
        return svc.message_out(session_id, done.record)

    @router.post("/{session_id}/messages/stream", summary="Send a message; the reply as Server-Sent Events",
                 response_class=StreamingResponse,
                 responses={200: {"content": {"text/event-stream": {}},
                                  "description": "events `start`, `token`..., then `done` (committed) or `error`"}})
    async def stream_message(session_id: SessionId, body: MessageIn, svc: Service,
                             idempotency_key: IdempotencyKey = None):
        text = svc.check_text(body.text)
        if not await svc.run(svc.store.exists, session_id):
            raise UnknownSession("session not found")
        svc.queue.check()
        return StreamingResponse(svc.stream(session_id, text, idempotency_key), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @router.post("/{session_id}/feedback", response_model=FeedbackOut, summary="Like, dislike or mark seen")
    async def send_feedback(session_id: SessionId, body: FeedbackIn, svc: Service) -> FeedbackOut:
        async with svc.locks.get(session_id):
            fb, state = await svc.run(svc.feedback_sync, session_id, body)
        return FeedbackOut(session_id=session_id, entity=fb.entity, title=fb.title, value=body.value,
                           memory=_memory(state, svc.pipeline))

    @router.post("/{session_id}/forget", response_model=Memory, summary="Remove one remembered preference",
                 responses={404: {"model": ErrorOut}})
    async def forget(session_id: SessionId, body: ForgetIn, svc: Service) -> Memory:
        async with svc.locks.get(session_id):
            state = await svc.run(svc.forget_sync, session_id, body)
        return _memory(state, svc.pipeline)

    return router


def _page() -> str:
    return resources.files("ecrs.serving").joinpath("static/index.html").read_text(encoding="utf-8")


_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                               "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def create_app(pipeline_factory: Callable[[], EmpatheticRecommender], settings: ServeSettings | None = None) -> FastAPI:
    """The app; `pipeline_factory()` is called once, at startup (in the lifespan), and the database tables are
    created if missing. Sessions idle for `session_ttl_days` are deleted at startup and every hour."""
    settings = settings or ServeSettings()

    async def expire_sessions(store: SessionStore) -> None:
        while True:
            try:
                if n := await anyio.to_thread.run_sync(store.expire, settings.session_ttl_days * 86400):
                    log.info("deleted %d sessions idle for %g days", n, settings.session_ttl_days)
            except Exception as e:  # noqa: BLE001 - a failed sweep is retried in an hour; the server stays up
                log.warning("session expiry failed: %s", e)
            await anyio.sleep(3600)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store = SessionStore(settings.db_url, settings.durability)
        await anyio.to_thread.run_sync(store.create_tables)
        pipeline = await anyio.to_thread.run_sync(pipeline_factory)
        app.state.service = ChatService(pipeline, store, settings)
        for part in getattr(pipeline, "missing", []):
            log.warning("%s", part)
        log.info("ready: database %s, auth %s", store.engine.url.render_as_string(hide_password=True),
                 "on" if settings.api_key else "off")
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(expire_sessions, store)
                yield
                tg.cancel_scope.cancel()
        finally:
            store.close()

    app = FastAPI(title="ecrs", version="0.1.0", lifespan=lifespan,
                  description="Empathetic conversational recommender: chat sessions, streamed replies, feedback.")
    app.state.settings = settings
    app.state.limits = ClientLimits(settings.rate_per_minute, settings.auth_failures_per_minute,
                                    settings.sessions_per_hour)
    page = _page()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> Response:
        # FastAPI's default handler echoes the input and fails (500) on a lone surrogate ("\\ud800") in it;
        # ASCII-escaped JSON encodes anything, and the input is left out.
        errors = [{"type": err.get("type"), "loc": list(err.get("loc", ())), "msg": err.get("msg")}
                  for err in e.errors()]
        return Response(json.dumps({"detail": errors}, ensure_ascii=True, default=str), status_code=422,
                        media_type="application/json")

    async def _mapped(_: Request, e: Exception) -> JSONResponse:
        status, detail = error_status(e)
        return JSONResponse({"detail": detail}, status_code=status,
                            headers={"Retry-After": "5"} if status == 503 else None)

    for error in (UnknownSession, Conflict, EcrsError, SQLAlchemyError, OSError):
        app.add_exception_handler(error, _mapped)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers=_PAGE_HEADERS)

    @app.get("/health", response_model=Health, tags=["service"], responses={503: {"model": ErrorOut}},
             dependencies=[Depends(rate_limit)])
    async def health(svc: Service) -> Health:
        """200 when a database write commits within a second; else 503 (the server is up, writes would fail)."""
        try:
            with anyio.fail_after(1.0):
                await anyio.to_thread.run_sync(svc.store.write_check, abandon_on_cancel=True)
        except TimeoutError:
            raise HTTPException(503, "database not answering within 1 s", headers={"Retry-After": "5"}) from None
        except Exception as e:  # noqa: BLE001 - any database failure means "not ready"
            raise HTTPException(503, f"database not writable: {type(e).__name__}: {str(e)[:200]}",
                                headers={"Retry-After": "5"}) from None
        return Health(status="ok", database="ok", auth=settings.api_key is not None, parts=svc.parts(),
                      missing=[str(m) for m in getattr(svc.pipeline, "missing", [])], queued_turns=svc.queue.waiting)

    app.include_router(_routes())
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s)
    return app
