"""What keeps the server up (issue 26): bounded connections, queue, sessions and state; idempotent retries; honest
health; safe start-up. Each test states a fault and checks the server's answer to it."""
from __future__ import annotations

import asyncio
import logging
import socket
import time

import anyio
import httpx
import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from serving_fixtures import ThreadServer, parse_sse, pipeline_fixture  # noqa: F401  (fixtures)
from sqlalchemy.exc import OperationalError

from ecrs.errors import EcrsError
from ecrs.inference.state import ConversationState
from ecrs.recipes.serve import _is_loopback, lock_sqlite, open_database
from ecrs.serving.app import ServeSettings, TurnQueue, create_app
from ecrs.serving.guard import RedactSessionIds, guarded_h11

TITANIC = "I loved Titanic, anything like it?"


def make_client(pipeline, tmp_path, **overrides) -> TestClient:
    settings = ServeSettings(**{"db_url": f"sqlite:///{tmp_path / 'sessions.db'}", "rate_per_minute": 0,
                                **overrides})
    return TestClient(create_app(lambda: pipeline, settings))


# ---------------------------------------------------------------- retries land once

def test_an_idempotency_key_makes_a_retried_message_land_once(pipeline, tmp_path):
    with make_client(pipeline, tmp_path) as c:
        sid = c.post("/sessions").json()["id"]
        key = {"Idempotency-Key": "retry-1"}
        first = c.post(f"/sessions/{sid}/messages", json={"text": TITANIC}, headers=key).json()
        again = c.post(f"/sessions/{sid}/messages", json={"text": TITANIC}, headers=key).json()
        assert again == first
        events = parse_sse(c.post(f"/sessions/{sid}/messages/stream", json={"text": TITANIC}, headers=key).text)
        assert [e for e, _ in events] == ["start", "token", "done"]
        assert events[-1][1]["replayed"] is True and events[-1][1]["reply"] == first["reply"]
        assert events[0][1]["recommendations"] == first["recommendations"]
        page = c.get(f"/sessions/{sid}").json()
        assert page["turn_count"] == 1 and [t["user_text"] for t in page["turns"]] == [TITANIC]
        # a new key is a new message
        assert c.post(f"/sessions/{sid}/messages", json={"text": TITANIC},
                      headers={"Idempotency-Key": "retry-2"}).json()["turn"] == 1
        bad = c.post(f"/sessions/{sid}/messages", json={"text": "hi"}, headers={"Idempotency-Key": "a b"})
        assert bad.status_code == 422


# ---------------------------------------------------------------- what PostgreSQL refuses never reaches a database

def test_nul_bytes_are_refused_before_the_database(client_sqlite):
    c = client_sqlite
    sid = c.post("/sessions").json()["id"]
    r = c.post(f"/sessions/{sid}/messages", json={"text": "hi\x00there"})
    assert r.status_code == 422 and "NUL" in r.json()["detail"]
    for bad in ["%00", sid + "%00", "x" * 5000, sid.upper()]:
        assert c.get(f"/sessions/{bad}").status_code == 404
        assert c.post(f"/sessions/{bad}/messages", json={"text": "hi"}).status_code == 404


@pytest.fixture
def client_sqlite(pipeline, tmp_path):
    with make_client(pipeline, tmp_path) as c:
        yield c


# ---------------------------------------------------------------- bounded reads, feedback, state

def test_history_comes_in_pages(pipeline, tmp_path):
    with make_client(pipeline, tmp_path, page_turns=2) as c:
        sid = c.post("/sessions").json()["id"]
        texts = [TITANIC, "a comedy please", "something with Tom Hanks", "more", "thanks"]
        for t in texts:
            assert c.post(f"/sessions/{sid}/messages", json={"text": t, "reply": False}).status_code == 200
        page = c.get(f"/sessions/{sid}").json()
        assert page["turn_count"] == 5 and [t["turn"] for t in page["turns"]] == [3, 4] and page["next_before"] == 3
        older = c.get(f"/sessions/{sid}", params={"before": 3}).json()
        assert [t["user_text"] for t in older["turns"]] == texts[1:3] and older["next_before"] == 1
        first = c.get(f"/sessions/{sid}", params={"before": 1}).json()
        assert [t["turn"] for t in first["turns"]] == [0] and first["next_before"] is None
        assert c.get(f"/sessions/{sid}", params={"limit": 0}).json()["turns"] == []  # the memory alone
        assert c.get(f"/sessions/{sid}", params={"limit": 3}).status_code == 422
        assert c.get(f"/sessions/{sid}", params={"before": 2**70}).status_code == 422  # no SQLite overflow (fuzz)


def test_feedback_per_session_is_bounded(pipeline, tmp_path):
    with make_client(pipeline, tmp_path, max_feedback_per_session=2) as c:
        sid = c.post("/sessions").json()["id"]
        movie = c.post(f"/sessions/{sid}/messages", json={"text": TITANIC}).json()["recommendations"][0]["entity"]
        codes = [c.post(f"/sessions/{sid}/feedback", json={"entity": movie, "value": v}).status_code
                 for v in ("liked", "seen", "disliked")]
        assert codes == [200, 200, 409]


def test_a_long_conversation_keeps_a_bounded_state(pipeline):
    state = ConversationState()
    first = pipeline.turn(state, TITANIC)
    named = [e.entity for e in first.entities if e.is_movie]
    for i in range(40):
        pipeline.turn(state, "I loved Titanic and The Godfather, anything with Tom Hanks? " * 3, reply=True)
    assert len(state.turns) <= 40 and len(state.entities) <= 64
    assert state.seeker_turns == 41 and state.dropped_turns > 0
    assert set(named) <= set(state.mentioned) | set(state.entities)  # still never recommended back
    picks = pipeline.turn(state, "something else").recommendations
    assert picks and not set(r.entity for r in picks) & set(named)
    assert ConversationState.from_json(state.to_json()) == state


def test_idle_sessions_expire(pipeline, tmp_path):
    with make_client(pipeline, tmp_path) as c:
        sid = c.post("/sessions").json()["id"]
        c.post(f"/sessions/{sid}/messages", json={"text": TITANIC})
        store = c.app.state.service.store
        assert store.expire(3600) == 0
        assert store.expire(-1) == 1  # idle "for more than -1 s": everything
        assert c.get(f"/sessions/{sid}").status_code == 404 and store.count("turns", sid) == 0


# ---------------------------------------------------------------- the turn queue

def test_a_full_turn_queue_answers_503_with_retry_after():
    async def scenario() -> list[str]:
        queue, log = TurnQueue(workers=1, max_waiting=1, timeout_s=0.3), []

        async def turn(name: str, hold: float) -> None:
            try:
                async with queue.slot():
                    log.append(f"{name} runs")
                    await anyio.sleep(hold)
            except HTTPException as e:
                assert e.status_code == 503 and e.headers["Retry-After"]
                log.append(f"{name} 503 ({'full' if 'waiting' in e.detail else 'timeout'})")

        async with anyio.create_task_group() as tg:
            tg.start_soon(turn, "a", 0.6)
            await anyio.sleep(0.05)
            tg.start_soon(turn, "b", 0.0)  # waits, then times out after 0.3 s
            await anyio.sleep(0.05)
            tg.start_soon(turn, "c", 0.0)  # the queue (1 waiting) is full
        return log

    assert anyio.run(scenario) == ["a runs", "c 503 (full)", "b 503 (timeout)"]


def test_a_client_that_leaves_mid_turn_saves_nothing(pipeline, tmp_path):
    settings = ServeSettings(db_url=f"sqlite:///{tmp_path / 'db.sqlite'}", rate_per_minute=0)
    slow = pipeline.turn_events

    def turn_events(state, text, reply=True):  # a slow reply: the client gives up during it
        for event in slow(state, text, reply):
            time.sleep(0.1)
            yield event

    app = create_app(lambda: pipeline, settings)
    with ThreadServer(app) as server:
        pipeline.turn_events = turn_events
        try:
            with httpx.Client(base_url=server.url) as c:
                sid = c.post("/sessions").json()["id"]
                for path in ("messages", "messages/stream"):
                    with pytest.raises(httpx.ReadTimeout):
                        c.post(f"/sessions/{sid}/{path}", json={"text": TITANIC}, timeout=0.15).read()
                time.sleep(2.0)
                assert c.get(f"/sessions/{sid}").json()["turn_count"] == 0
        finally:
            del pipeline.turn_events


# ---------------------------------------------------------------- health and database errors

def test_health_and_writes_answer_503_when_the_database_cannot_write(pipeline, tmp_path, monkeypatch):
    with make_client(pipeline, tmp_path) as c:
        sid = c.post("/sessions").json()["id"]
        assert c.get("/health").status_code == 200
        store = c.app.state.service.store

        def readonly(*a, **k):
            raise OperationalError("UPDATE sessions", {}, Exception("attempt to write a readonly database"))

        monkeypatch.setattr(store, "commit_turn", readonly)
        monkeypatch.setattr(store, "write_check", readonly)
        h = c.get("/health")
        assert h.status_code == 503 and "not writable" in h.json()["detail"] and h.headers["Retry-After"]
        r = c.post(f"/sessions/{sid}/messages", json={"text": TITANIC})
        assert r.status_code == 503 and r.headers["content-type"] == "application/json"
        assert "nothing was saved" in r.json()["detail"]
        events = parse_sse(c.post(f"/sessions/{sid}/messages/stream", json={"text": TITANIC}).text)
        assert events[-1][0] == "error" and events[-1][1]["status"] == 503
        monkeypatch.undo()  # the disk is writable again: no restart needed
        assert c.get("/health").status_code == 200
        assert c.post(f"/sessions/{sid}/messages", json={"text": TITANIC}).status_code == 200


def test_health_notices_a_deleted_database_file(pipeline, tmp_path):
    with make_client(pipeline, tmp_path) as c:
        (tmp_path / "sessions.db").unlink()
        r = c.get("/health")
        assert r.status_code == 503 and "gone" in r.json()["detail"]


# ---------------------------------------------------------------- connections

def _connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    return s


def _closed(s: socket.socket, wait: float) -> bool:
    s.settimeout(wait)
    try:
        return s.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_idle_trickling_and_excess_connections_are_closed(pipeline, tmp_path):
    app = create_app(lambda: pipeline, ServeSettings(db_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                                                     rate_per_minute=0))
    protocol = guarded_h11(header_timeout_s=0.5, max_connections=100, max_per_client=3)
    with ThreadServer(app, http=protocol) as server:
        idle = _connect(server.port)
        trickle = _connect(server.port)
        trickle.sendall(b"GET /health HTTP/1.1\r\n")
        extra = [_connect(server.port) for _ in range(2)]  # 4 open from one address: the 4th is dropped
        assert _closed(extra[1], 1.0)
        trickle.sendall(b"X-Slow: 1\r\n")
        assert _closed(idle, 2.0) and _closed(trickle, 2.0)  # no complete request within 0.5 s
        for s in (idle, trickle, *extra):
            s.close()
        time.sleep(0.2)
        assert httpx.get(server.url + "/health").status_code == 200  # a normal client still gets through
        time.sleep(0.2)
        assert sum(protocol.open_by_client.values()) == 0  # every close was counted


def test_x_forwarded_for_is_ignored_unless_the_proxy_is_trusted(pipeline, tmp_path):
    settings = ServeSettings(db_url=f"sqlite:///{tmp_path / 'db.sqlite'}", rate_per_minute=3)

    async def spoof(url: str) -> list[int]:
        async with httpx.AsyncClient(base_url=url) as c:
            return [(await c.get("/health", headers={"X-Forwarded-For": f"10.0.0.{i}"})).status_code
                    for i in range(5)]

    with ThreadServer(create_app(lambda: pipeline, settings), proxy_headers=False) as server:
        assert asyncio.run(spoof(server.url)) == [200, 200, 200, 429, 429]  # one client, whatever it claims
    with ThreadServer(create_app(lambda: pipeline, settings), proxy_headers=True,
                      forwarded_allow_ips="127.0.0.1") as server:
        assert asyncio.run(spoof(server.url)) == [200] * 5  # a trusted proxy: each forwarded client on its own


# ---------------------------------------------------------------- start-up and logs

def test_access_log_cuts_session_ids():
    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
                               ("1.2.3.4:5", "POST", "/sessions/0123456789abcdef0123456789abcdef/messages", "1.1",
                                200), None)
    RedactSessionIds().filter(record)
    assert record.getMessage() == '1.2.3.4:5 - "POST /sessions/0123…/messages HTTP/1.1" 200'


def test_one_server_per_sqlite_file_and_one_line_database_errors(tmp_path):
    url = f"sqlite:///{tmp_path / 'sessions.db'}"
    held = lock_sqlite(url)
    with pytest.raises(EcrsError, match="another `ecrs serve` uses this SQLite file"):
        lock_sqlite(url)
    held.close()
    assert lock_sqlite(url) is not None
    with pytest.raises(EcrsError, match=r"^database postgresql\+psycopg://u:\*\*\*@127.0.0.1:1/x: .*refused"):
        open_database(ServeSettings(db_url="postgresql+psycopg://u:p@127.0.0.1:1/x"))
    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and not _is_loopback("0.0.0.0")
