"""Persistence: sessions, turns and feedback in SQLite (WAL); optimistic concurrency between processes; every
acknowledged turn survives a SIGKILL of the server; feedback export round-trips through the own-data loader."""
from __future__ import annotations

import json
import sqlite3
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from serving_fixtures import ServerProcess, parse_sse, pipeline_fixture, pipeline_pickle_fixture  # noqa: F401  (fixtures)

from ecrs.cli import main as ecrs_main
from ecrs.data.dialogues import load_own
from ecrs.data.samples import build_samples
from ecrs.errors import EcrsError
from ecrs.inference.state import ConversationState
from ecrs.serving.app import ServeSettings, create_app
from ecrs.serving.store import (
    Conflict,
    FeedbackRecord,
    SessionStore,
    TurnRecord,
    UnknownSession,
    export_feedback,
)


@pytest.fixture
def store(tmp_path):
    s = SessionStore(f"sqlite:///{tmp_path / 'db' / 'sessions.db'}")
    s.create_tables()
    yield s
    s.close()


def test_sqlite_runs_in_wal_mode_with_the_chosen_sync(store, tmp_path):
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL: survives SIGKILL
    assert (tmp_path / "db" / "sessions.db").exists()
    power = SessionStore(f"sqlite:///{tmp_path / 'power.db'}", durability="power")
    with power.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL: an fsync per commit
    power.close()
    with pytest.raises(EcrsError, match="durability 'fsync'"):
        SessionStore(f"sqlite:///{tmp_path / 'x.db'}", durability="fsync")


def test_turns_feedback_and_state_round_trip(store):
    sid, _ = store.create_session()
    state, version = store.load_state(sid)
    assert state == ConversationState() and version == 0
    state.turns += [("seeker", "hi"), ("recommender", "hello")]
    state.recommended = [3]
    rec = {"entity": 3, "uri": "<u3>", "title": "T", "year": 2000, "reason": "r", "score": 1.0}
    t = store.commit_turn(sid, version, state, TurnRecord("hi", "hello", [("like", 0.9)], [], [rec]))
    assert t.idx == 0 and t.created_at > 0
    state.record_feedback(3, "disliked")
    store.commit_feedback(sid, 1, state, FeedbackRecord(3, "<u3>", "T (2000)", "disliked"))
    loaded, version = store.load_state(sid)
    assert loaded == state and version == 2
    (turn,) = store.turns(sid)
    assert (turn.user_text, turn.reply, turn.emotions, turn.recommendations) == ("hi", "hello", [("like", 0.9)], [rec])
    assert [(f.entity, f.value) for f in store.feedback(sid)] == [(3, "disliked")]
    with pytest.raises(UnknownSession):
        store.load_state("nope")


def test_a_stale_state_cannot_overwrite_a_newer_one(store, tmp_path):
    """Two processes (two engines on one file) extend the same session: the second commit loses."""
    other = SessionStore(store.url)
    sid, _ = store.create_session()
    mine, v1 = store.load_state(sid)
    theirs, v2 = other.load_state(sid)
    mine.turns.append(("seeker", "a"))
    theirs.turns.append(("seeker", "b"))
    store.commit_turn(sid, v1, mine, TurnRecord("a", ""))
    with pytest.raises(Conflict):
        other.commit_turn(sid, v2, theirs, TurnRecord("b", ""))
    assert [t.user_text for t in other.turns(sid)] == ["a"]
    assert store.load_state(sid)[0].turns == [("seeker", "a")]
    other.close()


def test_two_servers_on_one_database_retry_a_lost_race(pipeline, tmp_path):
    """Server A reads the state, server B commits a turn to the same session, A's commit conflicts: A reruns the
    turn on B's state instead of overwriting it."""
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    settings = ServeSettings(db_url=db, rate_per_minute=0)
    with TestClient(create_app(lambda: pipeline, settings)) as a, \
            TestClient(create_app(lambda: pipeline, settings)) as b:
        sid = a.post("/sessions").json()["id"]
        store = a.app.state.service.store
        load, raced = store.load_state, []

        def load_then_lose_the_race(session_id):
            loaded = load(session_id)
            if not raced:
                raced.append(b.post(f"/sessions/{sid}/messages", json={"text": "I loved Titanic"}).json())
            return loaded

        store.load_state = load_then_lose_the_race
        mine = a.post(f"/sessions/{sid}/messages", json={"text": "Anything with Tom Hanks?"}).json()
        history = b.get(f"/sessions/{sid}").json()
    assert raced[0]["turn"] == 0 and mine["turn"] == 1
    assert [t["user_text"] for t in history["turns"]] == ["I loved Titanic", "Anything with Tom Hanks?"]
    assert history["memory"]["recommended"] == [r["entity"] for t in (raced[0], mine) for r in t["recommendations"]]


def test_export_round_trips_through_the_own_data_loader(pipeline, tmp_path):
    db = f"sqlite:///{tmp_path / 'sessions.db'}"
    with TestClient(create_app(lambda: pipeline, ServeSettings(db_url=db, rate_per_minute=0))) as c:
        sid = c.post("/sessions").json()["id"]
        first = c.post(f"/sessions/{sid}/messages", json={"text": "I loved Titanic, anything like it?"}).json()
        second = c.post(f"/sessions/{sid}/messages", json={"text": "Something funnier?", "reply": False}).json()
        a, b, cc = (r["entity"] for r in first["recommendations"])
        for entity, value in [(a, "liked"), (b, "disliked"), (cc, "seen"), (b, "liked")]:
            assert c.post(f"/sessions/{sid}/feedback", json={"entity": entity, "value": value}).status_code == 200
        silent = c.post("/sessions").json()["id"]  # a turn but no feedback: only with feedback_only=false
        c.post(f"/sessions/{silent}/messages", json={"text": "hello"})
        c.post("/sessions")  # no turn at all: never exported

    out = tmp_path / "export" / "feedback.jsonl"
    assert ecrs_main(["export-feedback", str(out), "--set", f"db_url={db}"]) == 0
    (obj,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert set(obj) == {"id", "turns", "feedback", "source"}

    kg = pipeline.kg
    (d,) = list(load_own(out, kg.entity2id.get))  # movies are exported as DBpedia URIs
    assert d.id == sid
    assert [(t.role, t.text) for t in d.turns] == [
        ("seeker", "I loved Titanic, anything like it?"), ("recommender", first["reply"]),
        ("seeker", "Something funnier?"), ("recommender", second["reply"])]
    assert d.turns[1].movies == [a, b, cc]
    assert d.turns[3].movies == [r["entity"] for r in second["recommendations"]]
    assert d.feedback == {a: "liked", b: "liked", cc: "unknown"}  # last verdict wins; seen-only is unknown
    targets = [t for s in build_samples(d, kg.item_set) for t in s.targets]
    assert {(t.item, t.feedback) for t in targets if t.item in (a, b, cc)} == {(a, "liked"), (b, "liked"),
                                                                               (cc, "unknown")}

    assert export_feedback(db, tmp_path / "all.jsonl", with_feedback_only=False) == 2
    assert ecrs_main(["export-feedback", str(tmp_path / "all2.jsonl"), "--set", f"db_url={db}",
                      "--set", "feedback_only=false"]) == 0
    assert len((tmp_path / "all2.jsonl").read_text().splitlines()) == 2
    with pytest.raises(EcrsError, match="no sessions database"):
        export_feedback(f"sqlite:///{tmp_path / 'missing.db'}", tmp_path / "x.jsonl")
    assert ecrs_main(["export-feedback", str(tmp_path / "x.jsonl"), "--set",
                      f"db_url=sqlite:///{tmp_path / 'missing.db'}"]) == 2


def test_acknowledged_turns_survive_sigkill(pipeline_pickle, tmp_path):
    """Two clients chat while the server is killed with SIGKILL mid-turn; the restarted server (same SQLite file)
    has every turn a client got an acknowledgement for (a JSON reply, or a stream's `done`), and goes on from
    there."""
    db = f"sqlite:///{tmp_path / 'sessions.db'}"
    texts = ["I loved Titanic", "a comedy please", "something with Tom Hanks", "I've seen it", "more!"]

    def chat(url: str, sid: str, acked: dict[int, dict]) -> None:
        with httpx.Client(base_url=url, timeout=20) as c:
            for i in range(40):  # bounded; the kill ends it first
                body = {"text": texts[i % len(texts)], "reply": i % 3 != 2}
                try:
                    if i % 2:
                        events = parse_sse(c.post(f"/sessions/{sid}/messages/stream", json=body).text)
                        if events and events[-1][0] == "done":
                            done = events[-1][1]
                            acked[done["turn"]] = {"reply": done["reply"], "recs": events[0][1]["recommendations"]}
                    else:
                        r = c.post(f"/sessions/{sid}/messages", json=body)
                        if r.status_code == 200:
                            out = r.json()
                            acked[out["turn"]] = {"reply": out["reply"], "recs": out["recommendations"]}
                except (httpx.HTTPError, json.JSONDecodeError, IndexError):
                    return  # the server died mid-request: this turn was never acknowledged

    acked: dict[str, dict[int, dict]] = {}
    with ServerProcess(db, pipeline_pickle, "--set", "rate_per_minute=0") as server:
        for _ in range(2):
            acked[httpx.post(server.url + "/sessions").json()["id"]] = {}
        clients = [threading.Thread(target=chat, args=(server.url, sid, a)) for sid, a in acked.items()]
        for c in clients:
            c.start()
        deadline = time.monotonic() + 60
        while min(map(len, acked.values())) < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.03)  # let the next turns get under way
        server.kill()
        for c in clients:
            c.join(timeout=30)
        assert all(len(a) >= 3 for a in acked.values()), server.output()

    with ServerProcess(db, pipeline_pickle, "--set", "rate_per_minute=0") as server:
        for sid, told_turns in acked.items():
            history = httpx.get(f"{server.url}/sessions/{sid}").json()
            stored = {t["turn"]: t for t in history["turns"]}
            assert sorted(stored) == list(range(len(stored)))  # no holes
            assert set(told_turns) <= set(stored)
            for turn, told in told_turns.items():
                assert stored[turn]["reply"] == told["reply"]
                assert stored[turn]["recommendations"] == told["recs"]
            recommended = [r["entity"] for t in history["turns"] for r in t["recommendations"]]
            assert history["memory"]["recommended"] == recommended  # the state matches the turn log
            nxt = httpx.post(f"{server.url}/sessions/{sid}/messages", json={"text": "anything else?"},
                             timeout=20).json()
            assert nxt["turn"] == len(stored)
            assert not {r["entity"] for r in nxt["recommendations"]} & set(recommended)

    with sqlite3.connect(tmp_path / "sessions.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
