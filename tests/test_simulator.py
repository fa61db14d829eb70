"""Interactive evaluation with simulated seekers (ecrs.evaluation.simulator, `ecrs simulate`).

The system under test is the real chat pipeline (the small test pipeline of serving_fixtures: ReDial graph,
catalogue, live linker, a quickly trained emotion classifier) with a scorer whose ranking is fixed by the test, so
the turn at which the target appears is known by construction: with k recommendations per turn and nothing else
excluding movies, a target ranked r-th is recommended at turn ceil(r / k). The LLM seeker talks to a REAL
OpenAI-compatible server on a loopback port (FastAPI + uvicorn in a thread), never to a mock.
"""
from __future__ import annotations

import json
import math
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from serving_fixtures import ThreadServer, pipeline_fixture  # noqa: F401  (fixture)

from ecrs.cli import main
from ecrs.data.catalogue import Movie
from ecrs.data.dialogues import Dialogue, Turn
from ecrs.errors import EcrsError
from ecrs.evaluation.simulator import (
    REDACTED,
    TRANSCRIPTS,
    Hint,
    LLMSeeker,
    PipelineSystem,
    RuleSeeker,
    SeekerProfile,
    clean_message,
    mean_rejections,
    mean_turns_to_success,
    redact_title,
    rejected,
    run_dialogue,
    seeker_profiles,
    simulate,
    success_at_k,
    success_turn,
    summarize,
    target_hints,
)
from ecrs.inference.llm import LLMConfig, OpenAIBackend, Retry
from ecrs.inference.pipeline import EmpatheticRecommender

SCREAM, TITANIC = 6132, 7594  # ReDial graph entities: Scream (1996), Titanic (1997)
OPENING = "Hi! I have seen Titanic (1997)."  # links Titanic, so the pipeline recommends from the first turn (a
# loved Titanic would ask for movies like it, which the fixed ranking below does not know)


class RankScorer:
    """Scores every movie by a fixed ranking (entity ids, best first; unlisted movies rank after them)."""

    def __init__(self, item_ids: list[int], order: list[int]):
        rank = {e: i for i, e in enumerate(order)}
        self.scores = -np.array([rank.get(e, len(order)) for e in item_ids], dtype=np.float32)

    def score(self, samples) -> np.ndarray:
        return np.tile(self.scores, (len(samples), 1))  # (N, n_items)


def ranked_at(pipeline: EmpatheticRecommender, target: int, r: int) -> list[int]:
    """The catalogue in id order with `target` at position r (1-based) and the opening's Titanic last."""
    others = [e for e in pipeline.kg.item_ids if e not in (target, TITANIC)]
    return others[: r - 1] + [target] + others[r - 1:] + [TITANIC]


def system_for(pipeline: EmpatheticRecommender, order: list[int], top_k: int = 3) -> PipelineSystem:
    bot = EmpatheticRecommender(pipeline.kg, pipeline.catalogue, pipeline.linker, pipeline.emotion,
                                RankScorer(pipeline.kg.item_ids, order), generator=None, top_k=top_k,
                                stance=pipeline.stance)
    return PipelineSystem(bot, "rank-scorer")


def profile(pipeline: EmpatheticRecommender, id: str = "d0", hints: list[Hint] | None = None) -> SeekerProfile:
    return SeekerProfile(id=id, target=SCREAM, target_title=pipeline.catalogue[SCREAM].title, opening=OPENING,
                         liked=[], disliked=[], hints=hints or [], facts="genres: horror")


# ---------------------------------------------------------------- metrics on hand-made transcripts

def _turn(n_recs: int, accepted: bool = False) -> dict:
    return {"recommended": [[i, f"m{i}"] for i in range(n_recs)], "accepted": accepted}


HAND = [
    {"turns": [_turn(3), _turn(3, True)]},          # success at 2, 3 rejected
    {"turns": [_turn(0), _turn(2), _turn(3)]},      # never, 5 rejected (a question turn rejects nothing)
    {"turns": [_turn(3, True)]},                    # success at 1, 0 rejected (no judgement on the others)
    {"turns": [_turn(1), _turn(1), _turn(1), _turn(2, True)]},  # success at 4, 3 rejected
]


def test_metrics_on_hand_made_transcripts():
    assert [success_turn(t["turns"]) for t in HAND] == [2, None, 1, 4]
    assert [rejected(t["turns"]) for t in HAND] == [3, 5, 0, 3]
    assert success_at_k(HAND, 4) == {1: 0.25, 2: 0.5, 3: 0.5, 4: 0.75}
    assert mean_turns_to_success(HAND) == pytest.approx(7 / 3)
    assert mean_rejections(HAND) == pytest.approx(11 / 4)
    assert mean_turns_to_success([HAND[1]]) is None
    with pytest.raises(ValueError):
        success_at_k([], 3)
    with pytest.raises(ValueError):
        mean_rejections([])


# ---------------------------------------------------------------- the title guard and the hints

@pytest.mark.parametrize("text,title,expected,n", [
    ("I want The Matrix tonight", "The Matrix", f"I want {REDACTED} tonight", 1),
    ("the  MATRIX and matrix", "The Matrix", f"{REDACTED} and matrix", 1),      # bare one-word part: case kept
    ("something like Matrix", "The Matrix", f"something like {REDACTED}", 1),
    ("Star Wars vibes", "Star Wars: The Last Jedi", f"{REDACTED} vibes", 1),    # the part before the colon
    ("It was fun. Have you seen It?", "It", f"It was fun. Have you seen {REDACTED}?", 1),  # sentence start: a word
    ("jaws dropped", "Jaws", "jaws dropped", 0),
    ("(500) Days of Summer, twice", "(500) Days of Summer", f"{REDACTED}, twice", 1),
    ("I liked Scream 2, not Scream", "Scream", f"I liked {REDACTED} 2, not {REDACTED}", 2),
])
def test_redact_title(text, title, expected, n):
    assert redact_title(text, title) == (expected, n)


def test_target_hints_general_first_and_never_the_title():
    walk = Movie(1, "Walk the Line", 2005, ["biography", "drama"], ["James Mangold"], [], ["Joaquin Phoenix"])
    assert target_hints(walk) == [Hint("genre", "biography"), Hint("decade", "2000s"),
                                  Hint("star", "Joaquin Phoenix"), Hint("director", "James Mangold")]
    tyson = Movie(2, "Tyson", 2008, ["documentary"], ["James Toback"], [], ["Mike Tyson"])
    assert [h.kind for h in target_hints(tyson)] == ["genre", "decade", "director"]


def test_seeker_profiles_pick_the_first_liked_new_suggestion():
    catalogue = {i: Movie(i, t) for i, t in [(1, "Alpha"), (2, "Bravo"), (3, "Charlie"), (4, "Delta")]}
    d = Dialogue("d1", [
        Turn("seeker", "hi"),
        Turn("recommender", "Have you seen Alpha?", movies=[1]),                 # disliked: not a target
        Turn("seeker", "I love Bravo and Charlie", movies=[2, 3]),
        Turn("recommender", "Then Zulu, Charlie or Delta", movies=[5, 3, 4]),   # 5: not in the catalogue,
        Turn("seeker", "Delta, great!", movies=[4]),                            # 3: mentioned before
    ], feedback={1: "disliked", 2: "liked", 3: "liked", 4: "liked", 5: "liked"})
    no_target = Dialogue("d2", [Turn("seeker", "hello"), Turn("recommender", "Alpha?", movies=[1])],
                         feedback={1: "disliked"})
    (p,) = seeker_profiles([d, no_target], catalogue)
    assert (p.id, p.target, p.target_title) == ("d1", 4, "Delta")
    assert p.opening == "hi I love Bravo and Charlie"  # a greeting alone is joined with the next turn
    assert (p.liked, p.disliked) == (["Bravo", "Charlie"], [])
    many = [Dialogue(f"x{i}", d.turns, d.feedback) for i in range(20)]
    ids = [q.id for q in seeker_profiles(many, catalogue, seed=3)]
    assert [q.id for q in seeker_profiles(many, catalogue, n=5, seed=3)] == ids[:5]
    assert ids != [q.id for q in seeker_profiles(many, catalogue, seed=4)]


def test_clean_message():
    assert clean_message('Seeker: "No thanks, something scarier?"\nAssistant: Sure!') == "No thanks, something scarier?"
    assert clean_message("Nope.\n\n[Turn them down]") == "Nope."


# ---------------------------------------------------------------- dialogues with the real pipeline

@pytest.mark.parametrize("r,expected", [(1, 1), (3, 1), (4, 2), (7, 3), (15, 5), (16, None)])
def test_target_ranked_r_is_found_at_turn_ceil_r_over_k(pipeline, r, expected):
    system = system_for(pipeline, ranked_at(pipeline, SCREAM, r), top_k=3)
    row = run_dialogue(profile(pipeline), system, RuleSeeker(), max_turns=5)
    assert row["success_turn"] == expected == (math.ceil(r / 3) if r <= 15 else None)
    assert row["rejected"] == 3 * ((expected or 6) - 1)
    assert row["turns"][0]["seeker"] == OPENING and row["leaks"] == 0


def test_never_correct_system_fails_every_dialogue(pipeline):
    system = system_for(pipeline, ranked_at(pipeline, SCREAM, len(pipeline.kg.item_ids)))
    rows = [run_dialogue(profile(pipeline, f"d{i}"), system, RuleSeeker(), max_turns=4) for i in range(3)]
    s = summarize(rows, 4)
    assert (s.successes, s.success_at_k, s.mean_turns_to_success) == (0, {1: 0.0, 2: 0.0, 3: 0.0, 4: 0.0}, None)
    assert s.mean_rejections == 12 and s.turns == 12


def test_hints_reach_the_pipeline(pipeline):
    """Scream is ranked below every movie without Neve Campbell: only the star hint (turn 4, after genre and
    decade) can bring it up, and the genre hint must restrict turns 2-3 to horror."""
    movie = pipeline.catalogue[SCREAM]
    with_star = {e for e, m in pipeline.catalogue.items() if "Neve Campbell" in m.stars + m.directors + m.writers}
    order = [e for e in pipeline.kg.item_ids if e not in with_star] + [SCREAM] + sorted(with_star - {SCREAM})
    row = run_dialogue(profile(pipeline, hints=target_hints(movie)), system_for(pipeline, order), RuleSeeker(), 5)
    assert [t["hint"] and t["hint"]["kind"] for t in row["turns"]] == [None, "genre", "decade", "star"]
    assert row["success_turn"] == 4
    for t in row["turns"][1:3]:
        assert all("horror" in pipeline.catalogue[e].genres for e, _ in t["recommended"])


def test_simulate_writes_transcripts_and_resumes(pipeline, tmp_path):
    system = system_for(pipeline, ranked_at(pipeline, SCREAM, 4))
    profiles = [profile(pipeline, f"d{i}") for i in range(3)]
    rows, s = simulate(profiles[:2], system, RuleSeeker(), tmp_path, max_turns=3, progress=False)
    path = tmp_path / TRANSCRIPTS
    first = path.read_text()
    with path.open("a") as f:
        f.write('{"id": "d2", "turns": [')  # a run killed mid-write
    rows, s = simulate(profiles, system, RuleSeeker(), tmp_path, max_turns=3, progress=False)
    lines = path.read_text().splitlines()
    assert path.read_text().startswith(first) and len(lines) == 3
    assert [json.loads(x)["id"] for x in lines] == ["d0", "d1", "d2"]
    assert (s.n, s.successes, s.success_at_k) == (3, 3, {1: 0.0, 2: 1.0, 3: 1.0})
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["system"] == "rank-scorer" and summary["success_at_k"] == {"1": 0.0, "2": 1.0, "3": 1.0}
    with pytest.raises(EcrsError, match="max_turns=3, this run has max_turns=5"):
        simulate(profiles, system, RuleSeeker(), tmp_path, max_turns=5, progress=False)


# ---------------------------------------------------------------- the LLM seeker against a real local endpoint

def fake_seeker_app(requests: list[dict]) -> FastAPI:
    """Models: "polite" opens with OPENING-like text, then turns suggestions down with the requested clue;
    "leaky" names the target (read from the system prompt) behind a label and writes the assistant's turn too;
    "broken" answers HTTP 500."""
    app, lock = FastAPI(), threading.Lock()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        with lock:
            requests.append(body)
        if body.get("temperature") != 0 or not body.get("model"):
            return JSONResponse({"error": "temperature must be 0 and model set"}, status_code=400)
        if body["model"] == "broken":
            return JSONResponse({"error": {"message": "internal error"}}, status_code=500)
        title = re.search(r'one particular movie: "(.+?)"', body["messages"][0]["content"]).group(1)
        last = body["messages"][-1]["content"]
        if body["model"] == "leaky":
            content = f"Seeker: I really want {title} tonight!\nAssistant: Sure, here it is."
        elif "[Start the chat" in last:
            content = "Hi! I have seen Titanic (1997), any ideas?"
        else:
            clue = re.search(r"add this clue: (.+?)\.\]", last)
            content = f"No thanks, {clue.group(1)}." if clue else "No thanks, anything else?"
        return {"object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}]}

    return app


@pytest.fixture(scope="module")
def endpoint():
    requests: list[dict] = []
    with ThreadServer(fake_seeker_app(requests)) as server:
        yield requests, server.url + "/v1"


def llm_seeker(url: str, model: str) -> LLMSeeker:
    return LLMSeeker(OpenAIBackend(LLMConfig(base_url=url, model=model, timeout=10)),
                     retry=Retry(2, sleep=lambda s: None))


def test_llm_seeker_keeps_the_target_in_the_system_prompt(pipeline, endpoint):
    requests, url = endpoint
    requests.clear()
    p = profile(pipeline, hints=[Hint("decade", "1990s")])
    row = run_dialogue(p, system_for(pipeline, ranked_at(pipeline, SCREAM, 7)), llm_seeker(url, "polite"), 5)
    assert row["success_turn"] == 3 and (row["leaks"], row["fallbacks"]) == (0, 0)
    assert [t["seeker"] for t in row["turns"]] == [
        "Hi! I have seen Titanic (1997), any ideas?", "No thanks, it came out in the 1990s.", "No thanks, anything else?"]
    assert len(requests) == 3
    for body in requests:
        assert body["temperature"] == 0
        assert "Scream" in body["messages"][0]["content"] and body["messages"][0]["role"] == "system"
        assert not any("Scream" in m["content"] for m in body["messages"][1:])
    # Roles are swapped: the seeker's earlier messages are the model's own ("assistant") turns.
    assert [m["role"] for m in requests[-1]["messages"]] == ["system", "user", "assistant", "user", "assistant",
                                                             "user"]


def test_llm_seeker_title_leak_is_redacted_and_counted(pipeline, endpoint):
    _, url = endpoint
    system = system_for(pipeline, ranked_at(pipeline, SCREAM, len(pipeline.kg.item_ids)))
    row = run_dialogue(profile(pipeline), system, llm_seeker(url, "leaky"), max_turns=2)
    assert [t["seeker"] for t in row["turns"]] == [f"I really want {REDACTED} tonight!"] * 2
    assert [t["leaks"] for t in row["turns"]] == [1, 1] and row["success_turn"] is None
    s = summarize([row], 2)
    assert (s.leaks, s.dialogues_with_leaks) == (2, 1)


def test_llm_backend_failure_falls_back_to_the_rule_message(pipeline, endpoint):
    requests, url = endpoint
    requests.clear()
    p = profile(pipeline)
    system = system_for(pipeline, ranked_at(pipeline, SCREAM, 4))
    row = run_dialogue(p, system, llm_seeker(url, "broken"), max_turns=3)
    rule = run_dialogue(p, system, RuleSeeker(), max_turns=3)
    assert [t["seeker"] for t in row["turns"]] == [t["seeker"] for t in rule["turns"]]
    assert row["fallbacks"] == 2 and all("HTTP 500" in t["fallback"] for t in row["turns"])
    assert len(requests) == 4  # two attempts per message


# ---------------------------------------------------------------- the command

@pytest.mark.parametrize("overrides,message", [
    (["n=0"], "n must be >= 1"),
    (["max_turns=0"], "max_turns must be >= 1"),
    (["simulator=chatty"], "'chatty' is not one of"),
    (["llm.gguf=m.gguf"], "llm.base_url / llm.gguf are for simulator: llm"),
    (["simulator=llm", "llm.base_url=http://x/v1"], "base_url needs model"),
    (["simulator=llm", "llm.model=m"], "for a local model set gguf"),
    (["simulator=llm", "llm.timeout=soon"], "expected a number"),
])
def test_cli_bad_input_is_one_line(overrides, message, tmp_path, capsys):
    argv = [x for o in overrides for x in ("--set", o)]
    assert main(["simulate", "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ecrs: error:") and message in err and "\n" not in err
    assert not Path(tmp_path / "o").exists()
