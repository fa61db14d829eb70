"""The conversation behaviour benchmark (benchmarks/conversations.py, issue 24), its fast part: every check on tiny
hand-made inputs whose answers are known (each also where it must fail), the loader's validation of both script
files against the bundled catalogue and linker, and a handful of tuning conversations through the small test
pipeline (no crash, a reply every turn; the behaviour itself is measured by the benchmark on trained artifacts)."""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
from serving_fixtures import pipeline_fixture  # noqa: F401  (fixture)

from ecrs.data.catalogue import Movie

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import conversations as cv  # noqa: E402  (the benchmark script, importable without torch)

# A tiny catalogue: two entries of one movie (with and without its year), a remake, and three others.
TINY = {m.entity: m for m in [
    Movie(1, "Alpha", 2001, ["comedy"], directors=["Dee Rector"], stars=["Sam Star", "Pat Lead"]),
    Movie(2, "Beta", 1995, ["horror"], stars=["Kim Scream"], writers=["Wren Writer"]),
    Movie(3, "Gamma", None, ["comedy", "musical"], stars=["Sam Star"]),
    Movie(4, "Alpha", None, ["comedy"]),  # the same movie as 1, held twice (as the graph does)
    Movie(5, "Alpha", 1950, ["drama"], stars=["Old Timer"]),  # a remake: another movie
    Movie(6, "Delta", 2015, ["drama", "horror"], writers=["Wren Writer"]),
]}


def outcome(recs=(), reply="", reply_movies=()) -> cv.TurnOutcome:
    return cv.TurnOutcome(list(recs), reply, list(reply_movies))


def run(kind, value, recs=(), reply="", reply_movies=(), earlier=(), named=()):
    history = cv.History(list(earlier), set(named))
    return cv.CHECKS[kind](value, outcome(recs, reply, reply_movies), history, TINY)


# ---------------------------------------------------------------- each check, passing and failing

def test_genre_checks():
    assert run("no_genre", ["horror"], [1, 3]) is None
    assert "Beta (1995)" in run("no_genre", ["horror"], [1, 2])
    assert run("no_genre", ["horror", "musical"], [3]) is not None  # a list: none of them
    assert run("genre", ["comedy"], [1, 3]) is None
    assert "Delta (2015)" in run("genre", ["comedy"], [1, 6])
    assert run("genre", ["comedy", "horror"], [1, 2]) is None  # a list: any of them, for every movie
    assert run("genre", ["comedy"], []) is None  # no recommendation: vacuous (`recommends` says whether to)


def test_person_checks():
    assert run("no_person", ["Sam Star"], [2, 6]) is None
    assert run("no_person", ["Sam Star"], [2, 3]) is not None
    assert run("no_person", ["Dee Rector"], [1]) is not None  # a director counts
    assert run("no_person", ["Wren Writer"], [6]) is not None  # so does a writer
    assert run("person", ["Sam Star"], [1, 3]) is None
    assert run("person", ["Sam Star"], [1, 2]) is not None
    assert run("person", ["Sam Star", "Kim Scream"], [1, 2]) is None


def test_not_movie_and_no_repeat():
    assert run("not_movie", frozenset({1, 4}), [2, 3]) is None
    assert run("not_movie", frozenset({1, 4}), [2, 4]) is not None
    assert run("no_repeat", True, [2, 3], earlier=[1]) is None
    assert "Beta" in run("no_repeat", True, [2, 3], earlier=[2])
    assert run("no_repeat", True, [2, 2]) is not None  # twice in one turn
    assert run("no_repeat", True, [4], earlier=[1]) is not None  # "Alpha" again, from its year-less entry
    assert run("no_repeat", True, [5], earlier=[1]) is None  # the 1950 "Alpha" is another movie


def test_similar_to():
    alpha = TINY[1]
    assert run("similar_to", alpha, [3]) is None  # shares comedy and Sam Star
    assert run("similar_to", alpha, [3, 2]) is not None  # Beta shares nothing
    assert run("similar_to", alpha, [1]) is not None  # not the movie itself
    assert run("similar_to", alpha, [4]) is not None  # nor its second entry
    assert run("similar_to", TINY[2], [6]) is None  # a writer (and a genre) in common


def test_year_from():
    assert run("year_from", 2000, [1, 6]) is None
    assert run("year_from", 2000, [1, 2]) is not None
    assert run("year_from", 2000, [3]) is not None  # an unknown year is not recent


def test_reply_checks():
    assert run("no_praise", True, reply="Sorry that one didn't click. You might like Beta.") is None
    assert "great taste" in run("no_praise", True, reply="Great taste! You might like Beta.")
    assert run("no_praise", True, reply="You\u2019ve got GOOD TASTE") is not None
    assert run("acknowledges_mood", True, reply="Sorry to hear that. Maybe a comedy?") is None
    assert run("acknowledges_mood", True, reply="Hang in there! Try Alpha.") is None
    assert run("acknowledges_mood", True, reply="You might like Alpha (2001).") is not None
    # Titles do not count: a recommended "Sorry" or "Great Taste" is not what the reply says.
    sorry = {**TINY, 7: Movie(7, "Sorry", 2010, ["drama"])}
    assert cv.check_acknowledges_mood(True, outcome([7], "You might like Sorry (2010)."), cv.History(), sorry)
    taste = {**TINY, 8: Movie(8, "Great Taste", 2010, ["drama"])}
    assert cv.check_no_praise(True, outcome([8], "You might like Great Taste."), cv.History(), taste) is None


def test_closing_and_presence_checks():
    assert run("no_push", True, [], reply="Enjoy, bye!") is None
    assert "recommended" in run("no_push", True, [2], reply="Bye! Also Beta.")
    assert run("no_push", True, [], reply="Enjoy Alpha!", reply_movies=[1], named=[1]) is None  # named before
    assert "new movie" in run("no_push", True, [], reply="Bye! Try Beta.", reply_movies=[2], named=[1])
    assert run("recommends", True, [1]) is None
    assert run("recommends", True, []) == "no recommendation"
    assert run("replies", True, reply="hi") is None
    assert run("replies", True, reply="  ") == "empty reply"


# ---------------------------------------------------------------- the loader refuses bad scripts

def tiny_facts() -> cv.Facts:
    return cv.Facts(TINY)  # no linker: spelling is not checked here


def parse(turns, category="genre dislike", top_k=1):
    return cv.parse_conversation({"id": "x", "category": category, "turns": turns}, "tuning", tiny_facts(), top_k)


def test_a_good_script_resolves():
    conv = parse([{"user": "no horror. a comedy?", "expect": [{"no_genre": "Horror", "scope": "rest"},
                                                               {"genre": "comedy"}, {"recommends": True}]},
                  {"user": "more", "expect": [{"no_repeat": True}]},
                  {"user": {"before": "a", "repeat": "b", "times": 3, "then": "c"}}], top_k=1)
    assert conv.turns[2].text == "abbbc"
    assert [c.kind for c in conv.active(1)] == ["no_genre", "no_repeat"]  # the rest-scoped one carries over
    assert conv.active(0)[0].value == ["horror"]
    assert parse([{"user": "q", "expect": [{"not_movie": "Alpha (2001)"}]}]).turns[0].checks[0].value == {1, 4}
    assert parse([{"user": "q", "expect": [{"not_movie": "alpha"}]}]).turns[0].checks[0].value == {1, 4, 5}


@pytest.mark.parametrize("turns, message", [
    ([{"user": "x", "expect": [{"no_genre": "opera"}]}], "not a catalogue genre"),
    ([{"user": "x", "expect": [{"no_person": "Nobody Atall"}]}], "no star, director or writer"),
    ([{"user": "x", "expect": [{"not_movie": "Omega"}]}], "no catalogue movie is titled"),
    ([{"user": "x", "expect": [{"similar_to": "Alpha"}, {"recommends": True}]}], "add the year"),
    ([{"user": "x", "expect": [{"genre": "comedy"}]}], "needs `recommends`"),
    ([{"user": "x", "expect": [{"no_push": True}, {"recommends": True}]}], "cannot both hold"),
    ([{"user": "x", "expect": [{"recommends": True, "scope": "rest"}]}, {"user": "y", "expect": [{"no_push": True}]}],
     "cannot both hold"),
    ([{"user": "x", "expect": [{"no_genre": "comedy", "scope": "forever"}]}], "scope is turn or rest"),
    ([{"user": "x", "expect": [{"no_praise": "yes"}]}], "takes `true`"),
    ([{"user": "x", "expect": [{"sparkles": True}]}], "unknown check"),
    ([{"user": "x", "expect": [{"no_genre": "comedy", "genre": "drama"}]}], "one kind"),
    ([{"user": "", "expect": [{"replies": True}]}], "non-empty message"),
    ([{"user": "x"}], "no checks"),
    ([{"user": "x", "expect": [{"person": "Sam Star"}, {"genre": "horror"}, {"recommends": True}]}],
     "unsatisfiable, only 0"),
    ([{"user": "x", "expect": [{"year_from": "recent"}]}], "takes a year"),
])
def test_malformed_or_unsatisfiable_scripts_are_refused(turns, message):
    with pytest.raises(cv.ScriptError, match=message):
        parse(turns)


def test_satisfiability_grows_with_the_turns():
    # Three comedies (1, 3, 4): enough for one top-3 turn, not for a second without repeating.
    parse([{"user": "a comedy", "expect": [{"genre": "comedy", "scope": "rest"}, {"recommends": True}]}], top_k=3)
    with pytest.raises(cv.ScriptError, match="turn 2: unsatisfiable"):
        parse([{"user": "a comedy", "expect": [{"genre": "comedy", "scope": "rest"}, {"recommends": True}]},
               {"user": "more", "expect": [{"no_repeat": True}]}], top_k=3)
    with pytest.raises(cv.ScriptError, match="category"):
        parse([{"user": "x", "expect": [{"replies": True}]}], category="vibes")


# ---------------------------------------------------------------- the committed scripts

@pytest.fixture(scope="module")
def scripts(pipeline):
    facts = cv.Facts(pipeline.catalogue, pipeline.linker, pipeline.kg.names)  # spellings must link
    return {part: cv.load_part(part, facts) for part in cv.PARTS}


def test_both_parts_load_with_enough_conversations_per_category(scripts):
    for part, convs in scripts.items():
        counts = Counter(c.category for c in convs)
        assert len(convs) >= cv.MIN_CONVERSATIONS[part], part
        assert set(counts) == set(cv.CATEGORIES), part
        assert min(counts.values()) >= cv.MIN_PER_CATEGORY[part], (part, counts)
    ids = [c.id for convs in scripts.values() for c in convs]
    assert len(ids) == len(set(ids))
    held, tuning = len(scripts["heldout"]), len(scripts["tuning"])
    # the held-back third when it was written (98 of 314); tuning conversations added since from reviews of the
    # chat dilute it, never the held-back part itself
    assert held >= 98 and 0.25 <= held / (held + tuning) <= 0.4


def test_long_and_empty_ish_messages_are_in_the_robustness_category(scripts):
    robust = [t.text for part in cv.PARTS for c in scripts[part] if c.category == "robustness" for t in c.turns]
    assert max(map(len, robust)) >= 5000
    assert any(not any(ch.isalnum() for ch in text) for text in robust)  # emoji or punctuation only


TUNING_SAMPLE = ("t-person-dislike-02", "t-several-11", "t-no-repeat-07", "t-closing-03", "t-robust-13")


def test_a_handful_of_tuning_conversations_run_on_the_test_pipeline(scripts, pipeline):
    convs = {c.id: c for c in scripts["tuning"]}
    results = [cv.run_conversation(pipeline, convs[i]) for i in TUNING_SAMPLE]
    for r in results:
        assert r.crash is None, (r.conversation.id, r.crash)
        assert len(r.turns) == len(r.conversation.turns)
        assert all(t.reply.strip() for t in r.turns), r.conversation.id
    summary = cv.summarize(results)
    assert summary["tuning"]["conversations"] == len(TUNING_SAMPLE) and summary["all"]["crashes"] == 0
    for f in cv.failures(results, pipeline.catalogue):
        assert f["part"] == "tuning" and f["failed"] and "reply" in f


def test_a_crash_is_counted_and_stops_the_conversation():
    class Crashing:
        catalogue, linker = TINY, None

        def turn(self, state, text):
            raise RuntimeError("boom")

    conv = parse([{"user": "x", "expect": [{"replies": True}]}, {"user": "y", "expect": [{"replies": True}]}])
    result = cv.run_conversation(Crashing(), conv)
    assert result.crash.startswith("RuntimeError: boom") and not result.passed and len(result.turns) == 1
    summary = cv.summarize([result])
    assert summary["tuning"]["crashes"] == 1 and summary["tuning"]["by_category"]["genre dislike"]["crashes"] == 1
    assert cv.failures([result], TINY)[0]["crash"].startswith("RuntimeError")
