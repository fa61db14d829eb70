"""Sessions, turns and feedback in a SQL database (SQLite by default, any SQLAlchemy URL: PostgreSQL lets several
server processes share sessions).

The conversation state lives in the database, not in a process: every turn reads it, and commits the new state
and the turn's record in one transaction, guarded by a version number so two processes cannot both extend the
same state (the loser gets `Conflict`). A turn is acknowledged to the client only after that commit. SQLite runs
in WAL mode, and `durability` picks its `synchronous` setting:
  "process" (default, synchronous=NORMAL): an acknowledged turn survives the server being killed (SIGKILL, a
            crash); only the OS crashing or the machine losing power can roll back the last turns. The WAL is
            fsynced at checkpoints, not at every commit (~3.5 ms less per turn on these disks).
  "power"   (synchronous=FULL): the WAL is fsynced before every acknowledgement, so turns also survive power loss.

PostgreSQL (several servers behind a load balancer sharing sessions): `pip install -e '.[serve]'` brings the
psycopg 3 driver; run each server with `ecrs serve --set db_url=postgresql+psycopg://USER:PASSWORD@HOST:5432/DB`.
Tables are created at startup (safe with all servers starting at once); an acknowledged turn is as durable as
PostgreSQL's commit (its defaults, fsync and synchronous_commit on). Tested in tests/test_postgres.py.

    store = SessionStore("sqlite:///sessions.db")
    sid = store.create_session()
    state, version = store.load_state(sid)
    ...                                   # run the turn on `state`
    store.commit_turn(sid, version, state, TurnRecord(...))
"""
from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError

from ecrs.errors import EcrsError
from ecrs.inference.state import ConversationState

__all__ = ["Conflict", "FeedbackRecord", "SessionStore", "TurnRecord", "UnknownSession", "export_feedback",
           "valid_session_id"]

FEEDBACK_VALUES = ("liked", "disliked", "seen")
_DDL_LOCK_KEY = 0x65637273  # "ecrs": the PostgreSQL advisory lock that serializes create_tables across processes

metadata = MetaData()
sessions = Table(
    "sessions", metadata,
    Column("id", String(64), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("version", Integer, nullable=False),  # +1 per committed change; optimistic concurrency
    Column("state", Text, nullable=False),  # ConversationState.to_json()
)
turns = Table(
    "turns", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String(64), ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("idx", Integer, nullable=False),  # 0, 1, ... within the session
    Column("created_at", Float, nullable=False),
    Column("user_text", Text, nullable=False),
    Column("reply", Text, nullable=False),
    Column("emotions", Text, nullable=False),  # JSON [[label, p], ...]
    Column("entities", Text, nullable=False),  # JSON [{entity, name, is_movie}, ...]
    Column("recommendations", Text, nullable=False),  # JSON [{entity, uri, title, year, reason, score}, ...]
    # the client's Idempotency-Key: a retried message finds its turn here instead of running twice
    Column("idempotency_key", String(128), nullable=True),
    UniqueConstraint("session_id", "idx"),
    UniqueConstraint("session_id", "idempotency_key", name="uq_turns_idempotency"),
)
feedback = Table(
    "feedback", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String(64), ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
    Column("entity", Integer, nullable=False),
    Column("uri", Text, nullable=False),  # the graph's DBpedia URI: exports resolve without loading the graph
    Column("title", Text, nullable=False),
    Column("value", String(16), nullable=False),
)


class UnknownSession(EcrsError):
    pass


_SESSION_ID = re.compile(r"[0-9a-f]{32}")  # uuid4().hex


def valid_session_id(sid: str) -> str:
    """`sid` if it has the form of an id this store hands out, else `UnknownSession`: a malformed id (a NUL byte,
    which PostgreSQL refuses in text, a megabyte of characters) never reaches the database."""
    if not _SESSION_ID.fullmatch(sid):
        raise UnknownSession("session not found")
    return sid


class Conflict(EcrsError):
    """The session changed since its state was read (another process or request extended it)."""


@dataclass
class TurnRecord:
    user_text: str
    reply: str
    emotions: list[tuple[str, float]] = field(default_factory=list)
    entities: list[dict[str, Any]] = field(default_factory=list)
    recommendations: list[dict[str, Any]] = field(default_factory=list)
    idx: int = -1  # set by the store
    created_at: float = 0.0


@dataclass
class FeedbackRecord:
    entity: int
    uri: str
    title: str
    value: str
    created_at: float = 0.0


SQLITE_SYNCHRONOUS = {"process": "NORMAL", "power": "FULL"}  # durability -> PRAGMA synchronous


def _sqlite_pragmas(synchronous: str):
    def apply(dbapi_conn, _record) -> None:
        cur = dbapi_conn.cursor()
        # WAL: readers never block the writer, and a commit is in the WAL file before it returns (NORMAL) or
        # also fsynced (FULL). busy_timeout: wait for another process's write instead of failing.
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()
    return apply


def make_engine(url: str, durability: str = "process") -> Engine:
    """An engine for `url`; SQLite files get WAL, `synchronous` from `durability`, and their folder created."""
    if durability not in SQLITE_SYNCHRONOUS:
        raise EcrsError(f"durability {durability!r}: expected one of {sorted(SQLITE_SYNCHRONOUS)}")
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas(SQLITE_SYNCHRONOUS[durability]))
        return engine
    return create_engine(url, pool_pre_ping=True)


class SessionStore:
    """The database of conversations; thread-safe (each call uses its own connection from the pool)."""

    def __init__(self, url: str, durability: str = "process"):
        self.url = url
        self.engine = make_engine(url, durability)

    def create_tables(self) -> None:
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                # Several servers starting at once on a new PostgreSQL database race: create_all's "does the
                # table exist?" check and its CREATE TABLE are not atomic, so all but one fail (duplicate pg_type
                # key). A transaction-scoped advisory lock makes them take turns; the later ones find the tables.
                conn.execute(select(func.pg_advisory_xact_lock(_DDL_LOCK_KEY)))
            metadata.create_all(conn)
            _add_idempotency_key(conn)

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            conn.execute(select(1))
        return True

    def write_check(self, min_free_bytes: int = 16 << 20) -> None:
        """Raise unless a write commits now: a row of the `sessions` table is touched in a committed transaction
        (read-only database, deleted file, lost connection), and a SQLite file's disk keeps `min_free_bytes`
        (SQLite reuses its WAL pages, so a one-row write can succeed on a full disk where a turn fails)."""
        path = self._sqlite_path()
        if path is not None:
            if not path.exists():
                raise OSError(f"{path}: database file is gone")
            free = shutil.disk_usage(path.parent).free
            if free < min_free_bytes:
                raise OSError(f"{path.parent}: disk full ({free >> 20} MB free)")
        with self.engine.begin() as conn:
            # an UPDATE that matches no row still takes the write lock and commits
            conn.execute(update(sessions).where(sessions.c.id == "health").values(updated_at=time.time()))

    def _sqlite_path(self) -> Path | None:
        url = self.engine.url
        if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
            return None
        return Path(url.database)

    def expire(self, idle_seconds: float) -> int:
        """Delete the sessions (with their turns and feedback) untouched for `idle_seconds`; how many."""
        cutoff = time.time() - idle_seconds
        with self.engine.begin() as conn:
            old = select(sessions.c.id).where(sessions.c.updated_at < cutoff)
            conn.execute(delete(feedback).where(feedback.c.session_id.in_(old)))
            conn.execute(delete(turns).where(turns.c.session_id.in_(old)))
            return conn.execute(delete(sessions).where(sessions.c.updated_at < cutoff)).rowcount

    # ------------------------------------------------------------ sessions

    def create_session(self) -> tuple[str, float]:
        sid, now = uuid.uuid4().hex, time.time()
        with self.engine.begin() as conn:
            conn.execute(insert(sessions).values(id=sid, created_at=now, updated_at=now, version=0,
                                                 state=json.dumps(ConversationState().to_json())))
        return sid, now

    def exists(self, sid: str) -> bool:
        if not _SESSION_ID.fullmatch(sid):
            return False
        with self.engine.connect() as conn:
            return conn.execute(select(sessions.c.id).where(sessions.c.id == sid)).first() is not None

    def load_state(self, sid: str) -> tuple[ConversationState, int]:
        """The session's state and its version (pass the version back to `commit_turn`)."""
        valid_session_id(sid)
        with self.engine.connect() as conn:
            row = conn.execute(select(sessions.c.state, sessions.c.version).where(sessions.c.id == sid)).first()
        if row is None:
            raise UnknownSession(f"session {sid!r} not found")
        return ConversationState.from_json(json.loads(row.state)), row.version

    def session_info(self, sid: str) -> dict[str, Any]:
        valid_session_id(sid)
        with self.engine.connect() as conn:
            row = conn.execute(select(sessions).where(sessions.c.id == sid)).first()
        if row is None:
            raise UnknownSession(f"session {sid!r} not found")
        return {"id": row.id, "created_at": row.created_at, "updated_at": row.updated_at, "version": row.version,
                "state": ConversationState.from_json(json.loads(row.state))}

    def _save_state(self, conn, sid: str, version: int, state: ConversationState, now: float) -> None:
        result = conn.execute(
            update(sessions).where(sessions.c.id == sid, sessions.c.version == version)
            .values(state=json.dumps(state.to_json()), version=version + 1, updated_at=now))
        if result.rowcount != 1:
            if conn.execute(select(sessions.c.id).where(sessions.c.id == sid)).first() is None:
                raise UnknownSession(f"session {sid!r} not found")
            raise Conflict(f"session {sid!r} was changed by another request; retry")

    # ------------------------------------------------------------ turns and feedback

    def commit_turn(self, sid: str, version: int, state: ConversationState, turn: TurnRecord,
                    idempotency_key: str | None = None) -> TurnRecord:
        """Store the new state and the turn atomically; returns the turn with its index. Raises `Conflict` if the
        state changed since `load_state` returned `version`, or another request stored `idempotency_key` first."""
        now = time.time()
        try:
            with self.engine.begin() as conn:
                self._save_state(conn, sid, version, state, now)
                idx = conn.execute(select(func.count()).select_from(turns)
                                   .where(turns.c.session_id == sid)).scalar_one()
                conn.execute(insert(turns).values(
                    session_id=sid, idx=idx, created_at=now, user_text=turn.user_text, reply=turn.reply,
                    emotions=json.dumps(turn.emotions), entities=json.dumps(turn.entities),
                    recommendations=json.dumps(turn.recommendations), idempotency_key=idempotency_key))
        except IntegrityError:
            raise Conflict(f"session {sid!r} was changed by another request; retry") from None
        turn.idx, turn.created_at = idx, now
        return turn

    def find_turn(self, sid: str, idempotency_key: str) -> TurnRecord | None:
        """The turn stored with this Idempotency-Key, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(select(turns).where(turns.c.session_id == sid,
                                                   turns.c.idempotency_key == idempotency_key)).first()
        return None if row is None else _turn_record(row)

    def commit_state(self, sid: str, version: int, state: ConversationState) -> None:
        """Store a changed state alone (a forgotten preference). Raises `Conflict` as `commit_turn` does."""
        with self.engine.begin() as conn:
            self._save_state(conn, sid, version, state, time.time())

    def commit_feedback(self, sid: str, version: int, state: ConversationState, fb: FeedbackRecord) -> FeedbackRecord:
        now = time.time()
        with self.engine.begin() as conn:
            self._save_state(conn, sid, version, state, now)
            conn.execute(insert(feedback).values(session_id=sid, created_at=now, entity=fb.entity, uri=fb.uri,
                                                 title=fb.title, value=fb.value))
        fb.created_at = now
        return fb

    def turns(self, sid: str, limit: int | None = None, before: int | None = None) -> list[TurnRecord]:
        """The session's turns in order; with `limit`, only the last `limit` of those before index `before`."""
        q = select(turns).where(turns.c.session_id == sid)
        if before is not None:
            q = q.where(turns.c.idx < before)
        if limit is not None:
            q = q.order_by(turns.c.idx.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = sorted(conn.execute(q).all(), key=lambda r: r.idx)
        return [_turn_record(r) for r in rows]

    def count(self, table: str, sid: str) -> int:
        """How many `turns` or `feedback` rows the session has."""
        t = {"turns": turns, "feedback": feedback}[table]
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(t).where(t.c.session_id == sid)).scalar_one()

    def feedback(self, sid: str) -> list[FeedbackRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(feedback).where(feedback.c.session_id == sid).order_by(feedback.c.id)).all()
        return [FeedbackRecord(entity=r.entity, uri=r.uri, title=r.title, value=r.value, created_at=r.created_at)
                for r in rows]

    def session_ids(self, with_feedback: bool = False) -> list[str]:
        """Sessions with at least one turn (and at least one feedback, if asked), oldest first."""
        q = select(sessions.c.id).order_by(sessions.c.created_at, sessions.c.id)
        q = q.where(sessions.c.id.in_(select(turns.c.session_id)))
        if with_feedback:
            q = q.where(sessions.c.id.in_(select(feedback.c.session_id)))
        with self.engine.connect() as conn:
            return [r.id for r in conn.execute(q)]


def _turn_record(r: Any) -> TurnRecord:
    return TurnRecord(user_text=r.user_text, reply=r.reply, emotions=[tuple(e) for e in json.loads(r.emotions)],
                      entities=json.loads(r.entities), recommendations=json.loads(r.recommendations),
                      idx=r.idx, created_at=r.created_at)


def _add_idempotency_key(conn: Any) -> None:
    """Databases made before turns had an Idempotency-Key get the column and its unique index (a one-step
    migration; `create_all` adds missing tables, never columns)."""
    if "idempotency_key" in {c["name"] for c in inspect(conn).get_columns("turns")}:
        return
    conn.execute(text("ALTER TABLE turns ADD COLUMN idempotency_key VARCHAR(128)"))
    conn.execute(text("CREATE UNIQUE INDEX uq_turns_idempotency ON turns (session_id, idempotency_key)"))


# ---------------------------------------------------------------- export to the own-data format

def session_dialogue(sid: str, records: list[TurnRecord], fbs: list[FeedbackRecord],
                     source: str = "ecrs-serve") -> dict[str, Any]:
    """One stored conversation as an own-data dialogue (docs/OWN_DATA.md): recommender turns list the
    recommended movies by DBpedia URI; `feedback` holds each movie's last liked/disliked verdict, `unknown` for
    a movie only marked as seen."""
    out_turns: list[dict[str, Any]] = []
    for t in records:
        out_turns.append({"role": "seeker", "text": t.user_text})
        rec: dict[str, Any] = {"role": "recommender", "text": t.reply}
        movies = [r["uri"] for r in t.recommendations if r.get("uri")]
        if movies:
            rec["movies"] = movies
        out_turns.append(rec)
    verdicts: dict[str, str] = {}
    for fb in fbs:
        if fb.value in ("liked", "disliked"):
            verdicts[fb.uri] = fb.value
        else:
            verdicts.setdefault(fb.uri, "unknown")
    obj: dict[str, Any] = {"id": sid, "turns": out_turns}
    if verdicts:
        obj["feedback"] = verdicts
    obj["source"] = source
    return obj


def iter_export(store: SessionStore, with_feedback_only: bool = True) -> Iterator[dict[str, Any]]:
    for sid in store.session_ids(with_feedback=with_feedback_only):
        yield session_dialogue(sid, store.turns(sid), store.feedback(sid))


def check_db_url(db_url: str) -> str:
    """`db_url` if SQLAlchemy can read it as a database URL, else a one-line error (before a server starts)."""
    try:
        make_url(db_url)
    except ArgumentError:
        raise EcrsError(f"db_url {db_url!r} is not a database URL (e.g. sqlite:///artifacts/sessions.db or "
                        "postgresql+psycopg://USER:PASSWORD@HOST:5432/DB)") from None
    return db_url


def export_feedback(db_url: str, out: str | Path, with_feedback_only: bool = True) -> int:
    """Write the stored conversations to `out` (JSONL, own-data format); returns how many were written."""
    check_db_url(db_url)
    if db_url.startswith("sqlite") and "///" in db_url and not Path(db_url.split("///", 1)[1]).exists():
        raise EcrsError(f"{db_url}: no sessions database there (start `ecrs serve --set db_url=...` first)")
    store = SessionStore(db_url)
    try:
        store.create_tables()  # an empty database exports nothing rather than failing
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        n = 0
        tmp = out.with_name(out.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for obj in iter_export(store, with_feedback_only):
                f.write(json.dumps(obj, ensure_ascii=False) + "\n")
                n += 1
        tmp.replace(out)
        return n
    finally:
        store.close()
