"""The HTTP API and the web chat page (ECR_SPEC §8).

    app = create_app(lambda: EmpatheticRecommender.load("artifacts"), ServeSettings.from_env())
    uvicorn.run(app)                                   # `ecrs serve` does this

Endpoints (OpenAPI schema at /openapi.json):
    GET  /                                the web chat page
    GET  /health                          liveness + database check
    POST /sessions                        start a conversation -> {id}
    GET  /sessions/{id}                   its turns, feedback and memory
    POST /sessions/{id}/messages          one turn -> reply, recommendations, emotions, linked entities
                                          (`"reply": false`: recommendations only, no reply text generated)
    POST /sessions/{id}/messages/stream   the same as Server-Sent Events: `start` (recommendations, emotions,
                                          entities), `token` (reply pieces), then `done` once the turn is
                                          committed, or `error`
    POST /sessions/{id}/feedback          liked / disliked / seen on a movie of the conversation
    POST /sessions/{id}/forget            remove one remembered preference (a wish, an avoided genre or person,
                                          a liked / disliked / seen movie) -> the memory

The pipeline is loaded once, in the lifespan (so the factory's cost is paid at start, not on the first request).
Turns are CPU-bound: they run in a bounded thread pool, one at a time per session (an asyncio lock per session
id in this process; across processes the store's version check turns a race into 409). A turn is acknowledged
(the JSON reply, or the stream's `done` event) only after its state is committed to the database.

With `api_key` set (`ECRS_API_KEY` in the environment for `ecrs serve`), /sessions* need the `X-API-Key` header;
the page and /health stay public. Write requests are rate limited per client address (token bucket).
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import secrets
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from importlib import resources
from typing import Annotated, Any, Literal, TypeVar

import anyio
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

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
from ecrs.serving.store import Conflict, FeedbackRecord, SessionStore, TurnRecord, UnknownSession

__all__ = ["ServeSettings", "create_app"]

log = logging.getLogger("ecrs.serving")
T = TypeVar("T")


# ---------------------------------------------------------------- settings

@dataclass
class ServeSettings:
    db_url: str = "sqlite:///artifacts/sessions.db"
    durability: str = "process"  # SQLite: "process" survives SIGKILL, "power" also power loss (store.py)
    api_key: str | None = None  # None: no authentication
    max_message_chars: int = 2000  # longer messages get 413
    max_body_bytes: int = 64 * 1024  # any larger request body gets 413 before it is parsed
    rate_per_minute: float = 60.0  # write requests per client address; 0 turns the limit off
    rate_burst: int = 20
    pipeline_threads: int = 4  # turns running at once (CPU-bound: more only queues inside the GIL)
    max_turns_per_session: int = 500

    @classmethod
    def from_env(cls, **overrides: Any) -> ServeSettings:
        """Defaults, `ECRS_API_KEY` from the environment, then `overrides`."""
        values: dict[str, Any] = {"api_key": os.environ.get("ECRS_API_KEY") or None}
        values.update(overrides)
        return cls(**values)


# ---------------------------------------------------------------- wire models

class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Health(_Wire):
    status: Literal["ok"]
    database: Literal["ok"]
    auth: bool = Field(description="whether /sessions needs the X-API-Key header")
    missing: list[str] = Field(description="trained parts the server runs without, with the command to train each")


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
    axis: Literal["genre", "person", "similar", "mood", "era"]
    values: list[int | str | None]  # genres (genre, mood), entity ids (person, similar), [first, last year] (era)
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
                  "era"]
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
    turns: list[TurnOut]
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


# ---------------------------------------------------------------- rate limit, locks, body limit

class TokenBucket:
    """`rate_per_minute` requests per key with bursts of `burst`; `take` -> 0 if allowed, else seconds to wait.
    Used from the event loop only (no lock needed)."""

    def __init__(self, rate_per_minute: float, burst: int, max_keys: int = 10_000):
        self.rate = rate_per_minute / 60.0
        self.burst = float(max(burst, 1))
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last time)

    def take(self, key: str, now: float | None = None) -> float:
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > self.max_keys:  # forget clients whose bucket has refilled
            self._buckets = {k: v for k, v in self._buckets.items()
                             if v[0] + (now - v[1]) * self.rate < self.burst}
        return 0.0


class SessionLocks:
    """One asyncio lock per session id, dropped when no request holds or waits on it."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def get(self, sid: str) -> asyncio.Lock:
        lock = self._locks.get(sid)
        if lock is None:
            lock = self._locks[sid] = asyncio.Lock()
        return lock


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` gets 413 before any parsing (chunked bodies included)."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

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
    """The last event of a served turn: it is stored (`record`), with what the pipeline understood and chose."""

    record: TurnRecord
    understood: Understood
    recommendations: list[Recommendation]


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
    log.error("turn failed", exc_info=e)
    return 500, "internal error; the turn was not saved"


class ChatService:
    """What the endpoints do, apart from HTTP: runs turns against the store, in a bounded thread pool."""

    def __init__(self, pipeline: EmpatheticRecommender, store: SessionStore, settings: ServeSettings):
        self.pipeline = pipeline
        self.store = store
        self.settings = settings
        self.locks = SessionLocks()
        self.limiter = anyio.CapacityLimiter(max(1, settings.pipeline_threads))
        self._uris = pipeline.kg.id2entity

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(partial(fn, *args), limiter=self.limiter)

    def check_text(self, text: str) -> str:
        if len(text) > self.settings.max_message_chars:
            raise HTTPException(413, f"message too long: {len(text)} characters "
                                     f"(the limit is {self.settings.max_message_chars})")
        if not text.strip():
            raise HTTPException(422, "empty message")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise HTTPException(422, "message is not valid Unicode (unpaired surrogate)") from None
        return text

    def _check_room(self, state: ConversationState) -> None:
        if len(state.turns) // 2 >= self.settings.max_turns_per_session:
            raise HTTPException(409, f"session is full ({self.settings.max_turns_per_session} turns); "
                                     "start a new one")

    def _recommendations(self, recs: list[Recommendation], uris: bool = False) -> list[dict[str, Any]]:
        return [{"entity": r.entity, "title": r.title, "year": r.year, "reason": r.reason,
                 "score": float(r.score) if math.isfinite(r.score) else 0.0,
                 **({"uri": self._uris[r.entity]} if uris else {})} for r in recs]

    def turn(self, sid: str, text: str, reply: bool) -> Iterator[TurnEvent | Committed]:
        """The one served turn (blocking: run it in the pool): the pipeline's events on the session's stored state,
        then `Committed` once the turn is in the database. Both message endpoints consume it."""
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
                record = TurnRecord(
                    user_text=text, reply=event.reply,
                    emotions=[(lab, float(p)) for lab, p in understood.emotions],
                    entities=[{"entity": e.entity, "name": e.name, "is_movie": e.is_movie}
                              for e in understood.entities],
                    recommendations=self._recommendations(recs, uris=True))
                yield Committed(self.store.commit_turn(sid, version, state, record), understood, recs)

    def turn_collected(self, sid: str, text: str, reply: bool) -> Committed:
        """`turn` run to its end (the JSON endpoint), rerun on the fresh state when another process extended the
        session first: nothing of the lost attempt was sent, so rerunning it is safe."""
        return _retry_on_conflict(lambda: next(e for e in self.turn(sid, text, reply) if isinstance(e, Committed)))

    def message_out(self, sid: str, done: Committed) -> MessageOut:
        return MessageOut(
            session_id=sid, turn=done.record.idx, reply=done.record.reply,
            emotions=_emotions(done.understood.emotions), entities=done.record.entities,
            recommendations=self._recommendations(done.recommendations))

    async def stream(self, sid: str, text: str) -> AsyncIterator[str]:
        """SSE events of one turn: `start` once the recommendations are known, `token`s, `done` once committed, or
        `error`. The session lock is held until the turn is committed (or fails); a streamed turn is not rerun."""
        async with self.locks.get(sid):
            end = object()
            try:
                events = self.turn(sid, text, reply=True)
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
                        yield _sse("done", {"session_id": sid, "turn": event.record.idx,
                                            "reply": event.record.reply})
            except Exception as e:  # noqa: BLE001 - every failure becomes the stream's `error` event
                status, detail = error_status(e)
                yield _sse("error", {"status": status, "detail": detail})

    def feedback_sync(self, sid: str, body: FeedbackIn) -> tuple[FeedbackRecord, ConversationState]:
        return _retry_on_conflict(self._feedback_once, sid, body)

    def _feedback_once(self, sid: str, body: FeedbackIn) -> tuple[FeedbackRecord, ConversationState]:
        state, version = self.store.load_state(sid)
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

    def session_sync(self, sid: str) -> SessionOut:
        info = self.store.session_info(sid)
        records = self.store.turns(sid)
        return SessionOut(
            id=info["id"], created_at=info["created_at"], updated_at=info["updated_at"],
            turns=[TurnOut(turn=t.idx, created_at=t.created_at, user_text=t.user_text, reply=t.reply,
                           emotions=_emotions(t.emotions), entities=t.entities,
                           recommendations=[{k: v for k, v in r.items() if k != "uri"} for r in t.recommendations])
                   for t in records],
            feedback=[FeedbackItem(entity=f.entity, title=f.title, value=f.value, created_at=f.created_at)
                      for f in self.store.feedback(sid)],
            memory=_memory(info["state"], self.pipeline))


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


def require_api_key(request: Request) -> None:
    key = request.app.state.settings.api_key
    if key is None:
        return
    given = request.headers.get("x-api-key", "")
    if not secrets.compare_digest(given.encode("utf-8", "replace"), key.encode("utf-8")):
        raise HTTPException(401, "missing or wrong X-API-Key header", headers={"WWW-Authenticate": "X-API-Key"})


def rate_limit(request: Request) -> None:
    if request.method in ("GET", "HEAD"):
        return
    client = request.client.host if request.client else "unknown"
    wait = request.app.state.rate_limiter.take(client)
    if wait > 0:
        raise HTTPException(429, f"too many requests; retry in {math.ceil(wait)} s",
                            headers={"Retry-After": str(math.ceil(wait))})


# ---------------------------------------------------------------- the app

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 404, 409, 413, 422, 429)}


def _routes() -> APIRouter:
    router = APIRouter(prefix="/sessions", tags=["sessions"], responses=_ERRORS,
                       dependencies=[Depends(require_api_key), Depends(rate_limit)])

    @router.post("", status_code=201, response_model=SessionCreated, summary="Start a conversation")
    async def create_session(svc: Service) -> SessionCreated:
        sid, created = await svc.run(svc.store.create_session)
        return SessionCreated(id=sid, created_at=created)

    @router.get("/{session_id}", response_model=SessionOut, summary="A conversation's turns, feedback and memory")
    async def read_session(session_id: str, svc: Service) -> SessionOut:
        return await svc.run(svc.session_sync, session_id)

    @router.post("/{session_id}/messages", response_model=MessageOut, summary="Send a message; get the reply")
    async def send_message(session_id: str, body: MessageIn, svc: Service) -> MessageOut:
        text = svc.check_text(body.text)
        async with svc.locks.get(session_id):
            done = await svc.run(svc.turn_collected, session_id, text, body.reply)
        return svc.message_out(session_id, done)

    @router.post("/{session_id}/messages/stream", summary="Send a message; the reply as Server-Sent Events",
                 response_class=StreamingResponse,
                 responses={200: {"content": {"text/event-stream": {}},
                                  "description": "events `start`, `token`..., then `done` (committed) or `error`"}})
    async def stream_message(session_id: str, body: MessageIn, svc: Service):
        text = svc.check_text(body.text)
        if not await svc.run(svc.store.exists, session_id):
            raise UnknownSession(f"session {session_id!r} not found")
        return StreamingResponse(svc.stream(session_id, text), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @router.post("/{session_id}/feedback", response_model=FeedbackOut, summary="Like, dislike or mark seen")
    async def send_feedback(session_id: str, body: FeedbackIn, svc: Service) -> FeedbackOut:
        async with svc.locks.get(session_id):
            fb, state = await svc.run(svc.feedback_sync, session_id, body)
        return FeedbackOut(session_id=session_id, entity=fb.entity, title=fb.title, value=body.value,
                           memory=_memory(state, svc.pipeline))

    @router.post("/{session_id}/forget", response_model=Memory, summary="Remove one remembered preference",
                 responses={404: {"model": ErrorOut}})
    async def forget(session_id: str, body: ForgetIn, svc: Service) -> Memory:
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
    created if missing."""
    settings = settings or ServeSettings()

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
            yield
        finally:
            store.close()

    app = FastAPI(title="ecrs", version="0.1.0", lifespan=lifespan,
                  description="Empathetic conversational recommender: chat sessions, streamed replies, feedback.")
    app.state.settings = settings
    app.state.rate_limiter = TokenBucket(settings.rate_per_minute, settings.rate_burst)
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
        return JSONResponse({"detail": detail}, status_code=status)

    for error in (UnknownSession, Conflict, EcrsError):
        app.add_exception_handler(error, _mapped)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers=_PAGE_HEADERS)

    @app.get("/health", response_model=Health, tags=["service"], responses={503: {"model": ErrorOut}})
    async def health(svc: Service) -> Health:
        try:
            await anyio.to_thread.run_sync(svc.store.ping)
        except Exception as e:  # noqa: BLE001 - any database failure means "not ready"
            raise HTTPException(503, f"database unavailable: {type(e).__name__}") from None
        return Health(status="ok", database="ok", auth=settings.api_key is not None,
                      missing=[str(m) for m in getattr(svc.pipeline, "missing", [])])

    app.include_router(_routes())
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app
