"""The PostgreSQL path (project issue 6): the store against a real PostgreSQL server, and several `ecrs serve`
processes sharing sessions through one database, the way they would behind a load balancer. Skipped only where no
PostgreSQL binaries are installed (see pg_fixture.py)."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from pg_fixture import PgCluster, postgres_fixture  # noqa: F401  (fixture)
from serving_fixtures import ServerProcess, parse_sse, pipeline_fixture, pipeline_pickle_fixture  # noqa: F401  (fixtures)

from ecrs.inference.state import ConversationState
from ecrs.serving.store import (
    Conflict,
    FeedbackRecord,
    SessionStore,
    TurnRecord,
    UnknownSession,
    export_feedback,
)

TEXTS = ["I loved Titanic", "a comedy please", "something with Tom Hanks", "I've seen it", "more!"]


@pytest.fixture
def store(postgres: PgCluster) -> Iterator[SessionStore]:
    # Over the unix socket; the servers below use TCP, so both ways of reaching the cluster are exercised.
    s = SessionStore(postgres.url(postgres.create_database(), socket=True))
    s.create_tables()
    yield s
    s.close()


# ---------------------------------------------------------------- the store

def test_turns_feedback_and_state_round_trip(store):
    assert store.engine.dialect.name == "postgresql" and store.ping()
    sid, created = store.create_session()
    state, version = store.load_state(sid)
    assert state == ConversationState() and version == 0
    text = "J'ai adoré Amélie 🎬 — quelque chose de similaire ?"  # non-ASCII survives the UTF-8 database
    state.turns += [("seeker", text), ("recommender", "hello")]
    state.recommended = [3]
    rec = {"entity": 3, "uri": "<u3>", "title": "T", "year": 2000, "reason": "r", "score": 1.0}
    t = store.commit_turn(sid, version, state, TurnRecord(text, "hello", [("like", 0.9)], [], [rec]))
    assert t.idx == 0 and t.created_at >= created
    state.record_feedback(3, "disliked")
    store.commit_feedback(sid, 1, state, FeedbackRecord(3, "<u3>", "T (2000)", "disliked"))
    loaded, version = store.load_state(sid)
    assert loaded == state and version == 2
    (turn,) = store.turns(sid)
    assert (turn.user_text, turn.reply, turn.emotions, turn.recommendations) == (text, "hello", [("like", 0.9)], [rec])
    assert turn.created_at == t.created_at  # double precision: timestamps round-trip exactly
    assert [(f.entity, f.value) for f in store.feedback(sid)] == [(3, "disliked")]
    assert store.session_info(sid)["version"] == 2 and store.exists(sid) and not store.exists("nope")
    with pytest.raises(UnknownSession):
        store.load_state("nope")
    with pytest.raises(UnknownSession):
        store.commit_turn("nope", 0, state, TurnRecord("x", ""))


def test_a_stale_state_cannot_overwrite_a_newer_one(store):
    """Two processes (two engines on one database) extend the same session: the second commit loses."""
    other = SessionStore(store.url)
    try:
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
    finally:
        other.close()


def test_concurrent_writers_lose_nothing_and_keep_order(store):
    """Four engines (as four server processes would) with two threads each append turns to one shared session,
    retrying on Conflict: every turn lands exactly once, indices are 0..n-1 with no holes, each writer's turns
    keep their order, and the state holds exactly the turn log."""
    stores = [store] + [SessionStore(store.url) for _ in range(3)]
    sid, _ = store.create_session()
    per_writer, writers = 6, [(s, f"w{i}{j}") for i, s in enumerate(stores) for j in range(2)]
    conflicts = [0]

    def write(s: SessionStore, name: str) -> None:
        for k in range(per_writer):
            while True:
                state, version = s.load_state(sid)
                state.turns.append(("seeker", f"{name}-{k}"))
                try:
                    s.commit_turn(sid, version, state, TurnRecord(f"{name}-{k}", ""))
                    break
                except Conflict:
                    conflicts[0] += 1  # another writer got there first: reread and try again

    try:
        with ThreadPoolExecutor(len(writers)) as pool:
            for f in [pool.submit(write, s, name) for s, name in writers]:
                f.result()
        records = store.turns(sid)
        assert [t.idx for t in records] == list(range(len(writers) * per_writer))
        texts = [t.user_text for t in records]
        for _, name in writers:
            assert [x for x in texts if x.startswith(name + "-")] == [f"{name}-{k}" for k in range(per_writer)]
        assert [text for _, text in store.load_state(sid)[0].turns] == texts
        assert store.session_info(sid)["version"] == len(texts)
        assert conflicts[0] > 0, "the writers never raced; the test proves nothing"
    finally:
        for s in stores[1:]:
            s.close()


def test_tables_created_by_servers_starting_at_once(postgres):
    """Several processes creating the tables on a new database at the same moment all succeed (without the
    store's advisory lock all but one fail on a duplicate pg_type key)."""
    url = postgres.url(postgres.create_database())
    stores = [SessionStore(url) for _ in range(6)]
    barrier = threading.Barrier(len(stores))

    def create(s: SessionStore) -> None:
        barrier.wait()
        s.create_tables()

    try:
        with ThreadPoolExecutor(len(stores)) as pool:
            for f in [pool.submit(create, s) for s in stores]:
                f.result()
        assert stores[0].load_state(stores[1].create_session()[0])[1] == 0
    finally:
        for s in stores:
            s.close()


def test_session_order_and_export(store, tmp_path):
    """Sessions list oldest first (only those with turns, or with feedback when asked); the own-data export works
    from a PostgreSQL URL."""
    sids = []
    for i in range(3):
        sid, _ = store.create_session()
        state, version = store.load_state(sid)
        state.turns += [("seeker", f"hi {i}"), ("recommender", f"hello {i}")]
        store.commit_turn(sid, version, state, TurnRecord(f"hi {i}", f"hello {i}",
                                                          recommendations=[{"entity": 7, "uri": "<u7>"}]))
        sids.append(sid)
    store.create_session()  # no turn: never listed
    state, version = store.load_state(sids[1])
    store.commit_feedback(sids[1], version, state, FeedbackRecord(7, "<u7>", "T", "liked"))
    assert store.session_ids() == sids
    assert store.session_ids(with_feedback=True) == [sids[1]]

    assert export_feedback(store.url, tmp_path / "fb.jsonl") == 1
    (obj,) = [json.loads(line) for line in (tmp_path / "fb.jsonl").read_text().splitlines()]
    assert obj["id"] == sids[1] and obj["feedback"] == {"<u7>": "liked"}
    assert obj["turns"][1] == {"role": "recommender", "text": "hello 1", "movies": ["<u7>"]}
    assert export_feedback(store.url, tmp_path / "all.jsonl", with_feedback_only=False) == 3


# ---------------------------------------------------------------- servers sharing one database

@pytest.fixture(scope="module")
def server_pair(postgres: PgCluster, pipeline_pickle) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two `ecrs serve` processes on one fresh database, started at the same moment (as a deployment's replicas
    are; they race to create the tables). Shared by the tests below: a start costs ~9 s on a busy 2-core box."""
    url = postgres.url(postgres.create_database())
    pair = (ServerProcess(url, pipeline_pickle, "--set", "rate_per_minute=0"),
            ServerProcess(url, pipeline_pickle, "--set", "rate_per_minute=0"))
    try:
        with ThreadPoolExecutor(2) as pool:
            for f in [pool.submit(s.start) for s in pair]:
                f.result()
        yield pair
    finally:
        for s in pair:
            s.__exit__(None, None, None)


@pytest.fixture
def servers(server_pair) -> tuple[ServerProcess, ServerProcess]:
    # The SIGKILL test kills A; it runs last, but should a test come after it, A is restarted for that one.
    for s in server_pair:
        if s.proc is not None and s.proc.poll() is not None:
            s.start()
    return server_pair


def _turn(url: str, sid: str, text: str, stream: bool = False, reply: bool = True) -> dict:
    """One acknowledged turn through `url`: {turn, reply, recs}."""
    if stream:
        events = parse_sse(httpx.post(f"{url}/sessions/{sid}/messages/stream", json={"text": text},
                                      timeout=30).text)
        assert events[-1][0] == "done", events
        return {"turn": events[-1][1]["turn"], "reply": events[-1][1]["reply"],
                "recs": events[0][1]["recommendations"]}
    r = httpx.post(f"{url}/sessions/{sid}/messages", json={"text": text, "reply": reply}, timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()
    return {"turn": out["turn"], "reply": out["reply"], "recs": out["recommendations"]}


def _assert_history_matches(history: dict, acked: dict[int, dict]) -> list[int]:
    """Every acknowledged turn is stored as it was told, with no holes; the state's memory matches the turn
    log. Returns the recommended entities."""
    stored = {t["turn"]: t for t in history["turns"]}
    assert sorted(stored) == list(range(len(stored)))
    assert set(acked) <= set(stored)
    for turn, told in acked.items():
        assert stored[turn]["reply"] == told["reply"]
        assert stored[turn]["recommendations"] == told["recs"]
    recommended = [r["entity"] for t in history["turns"] for r in t["recommendations"]]
    assert history["memory"]["recommended"] == recommended
    return recommended


def test_a_session_moves_between_servers(servers):
    """The load-balancer case: a session started on server A is continued on B (and back, JSON and streamed),
    feedback given on B, racing requests sent to both; A reads back the full history."""
    a, b = servers
    sid = httpx.post(a.url + "/sessions").json()["id"]
    plan = [(b.url, False, True), (a.url, True, True), (b.url, True, True), (a.url, False, False),
            (b.url, False, True)]
    acked = {}
    for i, (url, stream, reply) in enumerate(plan):
        told = _turn(url, sid, TEXTS[i], stream=stream, reply=reply)
        assert told["turn"] == i
        acked[i] = told
    liked = acked[1]["recs"][0]["entity"]
    assert httpx.post(f"{b.url}/sessions/{sid}/feedback",
                      json={"entity": liked, "value": "liked"}).status_code == 200

    # Both servers extend the session at once: each race is retried on the fresh state (or, after too
    # many lost races, answered 409 with nothing stored); whatever was acknowledged is in the log.
    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda u: httpx.post(f"{u}/sessions/{sid}/messages",
                                                       json={"text": "anything else?"}, timeout=60),
                                  [a.url, b.url] * 3))
    assert {r.status_code for r in responses} <= {200, 409}
    for r in responses:
        if r.status_code == 200:
            out = r.json()
            acked[out["turn"]] = {"reply": out["reply"], "recs": out["recommendations"]}
    assert len(acked) > len(plan)

    history = httpx.get(f"{a.url}/sessions/{sid}").json()
    assert len(history["turns"]) == len(acked)  # a 409 left nothing behind
    assert [t["user_text"] for t in history["turns"][:len(plan)]] == TEXTS[:len(plan)]
    recommended = _assert_history_matches(history, acked)
    assert len(set(recommended)) == len(recommended)  # B knew what A had already recommended, and back
    assert [(f["entity"], f["value"]) for f in history["feedback"]] == [(liked, "liked")]
    assert history == httpx.get(f"{b.url}/sessions/{sid}").json()


def test_acknowledged_turns_survive_sigkill_of_one_server(servers):
    """Two clients chat through server A, which is killed with SIGKILL mid-turn; server B, on the same database,
    has every turn a client got an acknowledgement for (a JSON reply, or a stream's `done`), and carries on."""
    a, b = servers

    def chat(sid: str, acked: dict[int, dict]) -> None:
        with httpx.Client(base_url=a.url, timeout=20) as c:
            for i in range(40):  # bounded; the kill ends it first
                body = {"text": TEXTS[i % len(TEXTS)], "reply": i % 3 != 2}
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
                    return  # A died mid-request: this turn was never acknowledged

    acked: dict[str, dict[int, dict]] = {httpx.post(b.url + "/sessions").json()["id"]: {} for _ in range(2)}
    clients = [threading.Thread(target=chat, args=(sid, told)) for sid, told in acked.items()]
    for c in clients:
        c.start()
    deadline = time.monotonic() + 40
    while min(map(len, acked.values())) < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.03)  # let the next turns get under way
    a.kill()
    for c in clients:
        c.join(timeout=30)
    assert all(len(told) >= 3 for told in acked.values()), a.output()

    for sid, told in acked.items():
        history = httpx.get(f"{b.url}/sessions/{sid}").json()
        recommended = _assert_history_matches(history, told)
        # The killed process's half-done transaction was rolled back and its row lock released: B goes on
        # at once from the last committed turn.
        nxt = _turn(b.url, sid, "anything else?")
        assert nxt["turn"] == len(history["turns"])
        assert not {r["entity"] for r in nxt["recs"]} & set(recommended)
