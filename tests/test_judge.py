"""The LLM judge (ecrs.evaluation.judge, `ecrs judge`): strict parsing, order-swapped pairwise verdicts, caching,
failures, the human rating form and kappa.

The backend talks to a REAL OpenAI-compatible server on a loopback port (FastAPI + uvicorn in a thread) whose
verdicts are known by construction:
    pairwise: on every dimension the reply containing "GOOD" wins ("tie" when both or neither do);
              a conversation containing "BIASED" gets "A" (the first reply) on every dimension, in both orders;
              with "logprobs" asked for, each value token carries the choice probabilities of `_probs` (a reply
              containing "WARM" against one without: "tie" most probable, but leaning to the WARM reply);
    absolute: every dimension scores the number of "!" in the reply (at most 9);
    "ALWAYS-BAD" in the conversation -> unparseable text every time; "FLAKY" -> unparseable on the first request.
"""
from __future__ import annotations

import csv
import json
import math
import threading
from collections import Counter
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from serving_fixtures import ThreadServer

from ecrs.cli import main as cli_main
from ecrs.errors import DataError, EcrsError
from ecrs.evaluation.judge import (
    DIMENSIONS,
    SINGLE_PROMPT_VERSION,
    V2_EXAMPLE,
    YES_NO_VERSION,
    Judge,
    JudgeOpenAIBackend,
    JudgeParseError,
    PairItem,
    ReplyItem,
    answer_probs,
    answer_text,
    calibrate_orders,
    choice_probs,
    combine_orders,
    compact_grammar,
    control_pairs,
    export_form,
    first_token_probs,
    import_form,
    pairwise_schema,
    pairwise_system,
    parse_choice,
    parse_preferences,
    parse_scores,
    parse_yes_no,
    preference_kappa,
    robotic_pairs,
    scores_to_preferences,
    summarize_pairwise,
    summarize_yes_no,
    with_choice_probs,
)
from ecrs.training.annotate import OpenAIChatBackend

# ---------------------------------------------------------------- the fake endpoint


def _section(text: str, head: str) -> str:
    return text.split(head + ":\n", 1)[1].split("\n\n", 1)[0]


class FakeState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: Counter[str] = Counter()
        self.systems: Counter[str] = Counter()  # system prompts received

    @property
    def requests(self) -> int:
        return sum(self.seen.values())


def _probs(context: str, a: str, b: str) -> dict[str, float]:
    """The fake judge's choice probabilities for one order (A shown first): the verdict of `make_app` gets the most."""
    if "BIASED" in context:
        return {"A": 0.7, "B": 0.2, "tie": 0.1}
    if ("GOOD" in a) != ("GOOD" in b):
        return {"A": 0.6, "B": 0.3, "tie": 0.1} if "GOOD" in a else {"A": 0.3, "B": 0.6, "tie": 0.1}
    if ("WARM" in a) != ("WARM" in b):  # says tie, but leans to the WARM reply
        return {"A": 0.3, "B": 0.1, "tie": 0.6} if "WARM" in a else {"A": 0.1, "B": 0.3, "tie": 0.6}
    return {"A": 0.25, "B": 0.25, "tie": 0.5}


def _logprobs(content: str, probs: dict[str, float]) -> dict:
    """OpenAI-style logprobs whose tokens spell `content`: each dimension's value is one token whose top tokens
    are the three verdicts with `probs` plus two tokens no verdict starts with (` "`, `T`)."""
    cuts = []
    for d in DIMENSIONS:
        start = content.index(f'"{d}": "') + len(f'"{d}": "')
        cuts.append((start, content.index('"', start)))
    tokens, last = [], 0
    for start, end in cuts:
        tokens += [{"token": content[last:start], "logprob": 0.0, "top_logprobs": []},
                   {"token": content[start:end], "logprob": math.log(probs[content[start:end]]),
                    "top_logprobs": [{"token": t, "logprob": math.log(p)} for t, p in
                                     [*probs.items(), (' "', 0.3), ("T", 0.05)]]}]
        last = end
    tokens.append({"token": content[last:], "logprob": 0.0, "top_logprobs": []})
    return {"content": tokens}


def make_app(state: FakeState) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        if body.get("temperature") != 0:
            return JSONResponse({"error": "temperature must be 0"}, status_code=400)
        user = body["messages"][-1]["content"]
        with state.lock:
            state.systems[body["messages"][0]["content"]] += 1
            state.seen[user] += 1
            n = state.seen[user]
        logprobs = None
        if user.endswith("Answer yes or no."):  # one reply alone: "yes" when it contains GOOD
            reply = _section(user, "Reply")
            content = "Hard to say." if "ALWAYS-BAD" in reply else "yes" if "GOOD" in reply else "no"
            p_yes = 0.9 if "GOOD" in reply else 0.6 if "WARM" in reply else 0.2  # WARM: "no", but less sure
            if body.get("logprobs"):
                logprobs = {"content": [{"token": content, "logprob": 0.0, "top_logprobs": [
                    {"token": "yes", "logprob": math.log(p_yes)}, {"token": "no", "logprob": math.log(1 - p_yes)}]}]}
            choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
            if logprobs is not None:
                choice["logprobs"] = logprobs
            return {"object": "chat.completion", "model": body["model"], "choices": [choice]}
        context = _section(user, "Conversation so far")
        if "ALWAYS-BAD" in context or ("FLAKY" in context and n == 1):
            content = "Reply A is clearly better overall."
        elif user.endswith("Answer A, B or tie only."):  # one dimension per request: the bare word
            a, b = _section(user, "Reply A"), _section(user, "Reply B")
            content = ("A" if "BIASED" in context else
                       "A" if "GOOD" in a and "GOOD" not in b else
                       "B" if "GOOD" in b and "GOOD" not in a else "tie")
            if body.get("logprobs"):
                probs = _probs(context, a, b)
                logprobs = {"content": [{"token": content, "logprob": math.log(probs[content]), "top_logprobs": [
                    {"token": t, "logprob": math.log(q)} for t, q in [*probs.items(), ("Reply", 0.05)]]}]}
        elif "Reply A" in user:
            a, b = _section(user, "Reply A"), _section(user, "Reply B")
            verdict = ("A" if "BIASED" in context else
                       "A" if "GOOD" in a and "GOOD" not in b else
                       "B" if "GOOD" in b and "GOOD" not in a else "tie")
            content = "```json\n" + json.dumps({d: verdict for d in DIMENSIONS}) + "\n```"  # embedded object
            if body.get("logprobs"):
                logprobs = _logprobs(content, _probs(context, a, b))
        else:
            score = min(9, _section(user, "Recommender's reply").count("!"))
            content = json.dumps({d: score for d in DIMENSIONS})
        choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
        if logprobs is not None:
            choice["logprobs"] = logprobs
        return {"object": "chat.completion", "model": body["model"], "choices": [choice]}

    return app


@pytest.fixture(scope="module")
def server():
    state = FakeState()
    with ThreadServer(make_app(state)) as srv:
        yield state, f"{srv.url}/v1"


def _judge(url: str, cache: Path | None, model: str = "fake-judge", logprobs: bool = False) -> Judge:
    backend = (JudgeOpenAIBackend(url, model, logprobs=True, max_tokens=200) if logprobs else
               OpenAIChatBackend(url, model, max_tokens=200))
    return Judge(backend, cache=cache, sleep=lambda s: None)


PAIRS = [  # (id, context, a, b, expected preference, orders agree)
    ("p1", "User: any comedy?", "GOOD: Airplane! is a classic spoof.", "You might like Airplane!.", "a", True),
    ("p2", "User: any drama?", "Try Heat.", "GOOD: Heat has a great cast.", "b", True),
    ("p3", "User: hi", "Try Up.", "Try Up (2009).", "tie", True),
    ("p4", "User: BIASED judge here", "GOOD: Alien is tense.", "Alien.", "tie", False),
]


def _pairs() -> list[PairItem]:
    return [PairItem(i, c, a, b, "sys", "base") for i, c, a, b, _, _ in PAIRS]


# ---------------------------------------------------------------- parsing

def test_parse_scores_accepts_exact_objects_only():
    ok = {d: i for i, d in enumerate(DIMENSIONS)}
    assert parse_scores(json.dumps(ok)) == ok
    assert parse_scores("Scores:\n```json\n" + json.dumps(ok) + "\n```") == ok
    for bad in ("", "no json here", json.dumps({**ok, "emotional_intensity": 10}),
                json.dumps({**ok, "lifelikeness": 7.5}), json.dumps({**ok, "lifelikeness": "7"}),
                json.dumps({**ok, "lifelikeness": True}), json.dumps({k: v for k, v in ok.items() if k != "lifelikeness"}),
                json.dumps({**ok, "overall": 5})):
        with pytest.raises(JudgeParseError):
            parse_scores(bad)


def test_parse_preferences():
    raw = json.dumps(dict(zip(DIMENSIONS, ["A", "b", "TIE", " tie ", "B"])))
    assert parse_preferences(raw) == dict(zip(DIMENSIONS, ["A", "B", "tie", "tie", "B"]))
    for bad in ('{"emotional_intensity": "A"}', json.dumps({d: "C" for d in DIMENSIONS}),
                json.dumps({d: 1 for d in DIMENSIONS}), "A A tie B A"):
        with pytest.raises(JudgeParseError):
            parse_preferences(bad)


def test_compact_grammar_lists_every_dimension_in_order():
    g = compact_grammar(pairwise_schema())
    # spaced as the model writes JSON (judge-v2): a space after each colon and comma
    assert g.startswith('root ::= "{" "\\"emotional_intensity\\": " ("\\"A\\"" | "\\"B\\"" | "\\"tie\\"") '
                        '", \\"emotional_persuasiveness\\": "')
    assert [g.index(d) for d in DIMENSIONS] == sorted(g.index(d) for d in DIMENSIONS)
    v1 = compact_grammar(pairwise_schema(), spaced=False)  # judge-v1's
    assert '"\\"emotional_intensity\\":" (' in v1 and '",\\"emotional_persuasiveness\\":" (' in v1


def _tok(token: str, top: dict[str, float] | None = None) -> dict:
    return {"token": token, "logprob": 0.0,
            "top_logprobs": [{"token": t, "logprob": math.log(p)} for t, p in (top or {}).items()]}


def test_choice_probs_reads_each_value_token():
    answer = {d: v for d, v in zip(DIMENSIONS, ["A", "B", "tie", "A", "B"])}
    content = json.dumps(answer)  # {"emotional_intensity": "A", ...}
    tokens, last = [], 0
    tops = [{"A": 0.6, "B": 0.3, "tie": 0.1, ' "': 0.2},       # ' "' is no verdict: dropped, the rest renormalised
            {"B": 0.5, "A": 0.5, "T": 0.4},                    # "T" starts no verdict ("tie" is lower case)
            {"ti": 0.3, "tie": 0.3, "A": 0.2, "B": 0.2},       # a prefix of "tie" counts for tie
            {"A": 1.0},                                        # values absent from the top tokens get 0
            {}]                                                # no mass at all: the dimension is left out
    for d, top in zip(DIMENSIONS, tops):
        start = content.index(f'"{d}": "') + len(f'"{d}": "')
        end = content.index('"', start)
        tokens += [_tok(content[last:start]), _tok(content[start:end], top)]
        last = end
    tokens.append(_tok(content[last:]))
    probs = choice_probs(content, {"content": tokens}, pairwise_schema())
    assert probs == {
        "emotional_intensity": {"A": 0.6, "B": 0.3, "tie": 0.1},
        "emotional_persuasiveness": {"A": 0.5, "B": 0.5, "tie": 0.0},
        "logic_persuasiveness": {"A": 0.2, "B": 0.2, "tie": 0.6},
        "informativeness": {"A": 1.0, "B": 0.0, "tie": 0.0},
    }
    # a value token that also holds the opening quote (judge-v1's space-free grammar): matched past the quote
    v1 = '{"emotional_intensity":"B"}'
    toks = [_tok('{"emotional_intensity":'), _tok('"B', {'"A': 0.25, '"B': 0.5, '"tie': 0.25, " ": 0.9}), _tok('"}')]
    assert choice_probs(v1, toks, pairwise_schema()) == {"emotional_intensity": {"A": 0.25, "B": 0.5, "tie": 0.25}}
    assert choice_probs(content, {"content": tokens[:-1]}, pairwise_schema()) is None  # tokens do not spell it
    assert choice_probs(content, None, pairwise_schema()) is None


def test_choice_probs_envelope_round_trip():
    content = json.dumps({d: "A" for d in DIMENSIONS})
    assert with_choice_probs(content, None, pairwise_schema()) == content  # nothing to read: the plain answer
    toks = [_tok(content)]  # one token spanning everything: no value token starts where a value does
    assert with_choice_probs(content, toks, pairwise_schema()) == content
    raw = json.dumps({"answer": content, "choice_probs": {"lifelikeness": {"A": 1.0, "B": 0.0, "tie": 0.0}}})
    assert answer_text(raw) == content and answer_probs(raw)["lifelikeness"]["A"] == 1.0
    assert parse_preferences(raw) == {d: "A" for d in DIMENSIONS}
    assert answer_probs(content) is None and answer_text(content) == content


def test_calibrate_orders_cancels_position_bias():
    biased = {"A": 0.7, "B": 0.2, "tie": 0.1}  # the first reply wins whatever it is: both orders alike
    ab = {DIMENSIONS[0]: biased, DIMENSIONS[1]: {"A": 0.5, "B": 0.4, "tie": 0.1}, DIMENSIONS[2]: biased}
    ba = {DIMENSIONS[0]: biased, DIMENSIONS[1]: {"A": 0.6, "B": 0.3, "tie": 0.1}}  # dims[2] missing here
    verdict, probs = calibrate_orders(ab, ba)
    assert verdict == {DIMENSIONS[0]: "tie", DIMENSIONS[1]: "b"}  # a: (0.5 + 0.3) / 2 < b: (0.4 + 0.6) / 2
    assert probs[DIMENSIONS[0]] == {"a": 0.45, "b": 0.45, "tie": 0.1}
    assert probs[DIMENSIONS[1]] == {"a": 0.4, "b": 0.5, "tie": 0.1}


def test_combine_orders():
    ab = dict(zip(DIMENSIONS, ["A", "A", "tie", "B", "tie"]))
    ba = dict(zip(DIMENSIONS, ["B", "A", "tie", "A", "A"]))  # shown swapped: "B" here means a
    pref, agree = combine_orders(ab, ba)
    assert pref == dict(zip(DIMENSIONS, ["a", "tie", "tie", "b", "tie"]))
    assert agree == dict(zip(DIMENSIONS, [True, False, True, True, False]))


# ---------------------------------------------------------------- judging through the real endpoint

def test_pairwise_both_orders_and_summary(server, tmp_path):
    state, url = server
    judge = _judge(url, tmp_path / "cache.sqlite")
    before = state.requests
    rows = judge.pairwise(_pairs())
    assert state.requests - before == judge.requests == 2 * len(PAIRS)
    for row, (iid, *_, pref, agree) in zip(rows, PAIRS):
        assert row["id"] == iid and (row["a"], row["b"]) == ("sys", "base")
        assert set(row["preference"].values()) == {pref}
        assert set(row["agree"].values()) == {agree}
    s = summarize_pairwise(rows)
    assert (s["n"], s["n_failed"]) == (4, 0)
    for d in DIMENSIONS:
        v = s["dimensions"][d]
        assert (v["wins"], v["losses"], v["ties"]) == (1, 1, 2)
        assert (v["win"], v["loss"], v["tie"], v["order_agreement"]) == (0.25, 0.25, 0.5, 0.75)
    assert s["order_agreement"] == 0.75
    # decisive single-order verdicts per dimension: p1 A,B  p2 B,A  p4 A,A -> 4 of 6 picked the first reply
    assert s["first_position_rate"] == round(4 / 6, 4)
    # single orders: a named by p1 (both) and p4 (ab); b by p2 (both) and p4 (ba); p3 tie twice -> 3 / 3 / 2 of 8
    assert s["dimensions"][DIMENSIONS[0]]["single_order"] == {"win": 0.375, "loss": 0.375, "tie": 0.25, "n": 8}


def test_cache_makes_a_rerun_free(server, tmp_path):
    state, url = server
    cache = tmp_path / "cache.sqlite"
    first = _judge(url, cache).pairwise(_pairs())
    before = state.requests
    again = _judge(url, cache)
    rows = again.pairwise(_pairs())
    assert state.requests == before and again.requests == 0 and again.cache_hits == 2 * len(PAIRS)
    assert [r["preference"] for r in rows] == [r["preference"] for r in first]
    assert all(r["cached"] == [True, True] for r in rows)
    other = _judge(url, cache, model="another-judge")  # the model id is part of the key
    other.pairwise(_pairs()[:1])
    assert other.requests == 2 and state.requests == before + 2


def test_judge_v3_instructions_show_no_sample_values():
    # judge-v2's sample answer pulled a small judge towards its values (benchmarks/judge_anchor.py)
    v3 = pairwise_system()
    assert "e.g." not in v3 and '"A", "B" or "tie"' in v3 and all(d in v3 for d in DIMENSIONS)
    v2 = pairwise_system(V2_EXAMPLE)
    assert v2.startswith(v3.rsplit("\n", 1)[0]) and v2.endswith("e.g. " + json.dumps(V2_EXAMPLE) + ".")


def test_control_pairs_are_known_by_construction():
    items = [PairItem("t1", "User: hi", "sys reply", "  Try Up (2009).  "), PairItem("t2", "User: x", "s", "ok ok")]
    c = control_pairs(items)
    ei, ll = c["emotional_intensity"], c["lifelikeness"]
    assert [p.id for p in ei] == ["control_ei|t1", "control_ei|t2"] and ei[0].b == "Try Up (2009)."
    assert ei[0].a.startswith("Try Up (2009). ") and ei[0].a != ei[0].b and ei[1].a.startswith("ok ok ")
    assert ll[0].a == "Try Up (2009)." and ll[0].b != ll[0].a and sorted(ll[0].b.split()) == sorted(ll[0].a.split())
    assert ll[1].b == "ok ok"  # nothing to shuffle: no endless loop
    assert control_pairs(items, seed=0) == c  # seeded


def test_pairwise_with_other_instructions(server, tmp_path):
    state, url = server
    cache = tmp_path / "cache.sqlite"
    _judge(url, cache).pairwise(_pairs()[:2])
    custom = pairwise_system(V2_EXAMPLE)
    before = state.systems[custom]
    judge = _judge(url, cache)
    rows = judge.pairwise(_pairs()[:2], system=custom)
    # the instructions are part of the cache key: nothing is served from the default prompt's answers
    assert judge.requests == 4 and judge.cache_hits == 0 and state.systems[custom] - before == 4
    assert all(r["prompt_version"].endswith("+custom") for r in rows)
    assert [r["preference"][DIMENSIONS[0]] for r in rows] == ["a", "b"]


def test_pairwise_calibrated_verdicts_through_the_endpoint(server, tmp_path):
    _, url = server
    cache = tmp_path / "cache.sqlite"
    rows = _judge(url, cache, logprobs=True).pairwise(_pairs())
    # p1 a GOOD, p2 b GOOD, p3 neither, p4 BIASED (the first reply at 0.7 in both orders: calibrated to a tie)
    assert [set(r["calibrated"].values()) for r in rows] == [{"a"}, {"b"}, {"tie"}, {"tie"}]
    assert rows[0]["calibrated_probs"][DIMENSIONS[0]] == {"a": 0.6, "b": 0.3, "tie": 0.1}
    assert rows[3]["calibrated_probs"][DIMENSIONS[0]] == {"a": 0.45, "b": 0.45, "tie": 0.1}
    assert rows[3]["preference"][DIMENSIONS[0]] == "tie" and not rows[3]["agree"][DIMENSIONS[0]]
    s = summarize_pairwise(rows)
    for d in DIMENSIONS:
        assert s["dimensions"][d]["calibrated"] == {"win": 0.25, "loss": 0.25, "tie": 0.5, "n": 4,
                                                    "mean_p_a_minus_p_b": 0.0, "forced": {"a": 0.25, "b": 0.25}}
    # a tie that leans: the verdict stays tie, the forced direction names the WARM reply (a)
    lean = _judge(url, cache, logprobs=True).pairwise([PairItem("w", "User: hi", "WARM: Up!", "Up.", "sys", "base")])
    assert lean[0]["calibrated"][DIMENSIONS[0]] == "tie"
    c = summarize_pairwise(lean)["dimensions"][DIMENSIONS[0]]["calibrated"]
    assert (c["tie"], c["forced"], c["mean_p_a_minus_p_b"]) == (1.0, {"a": 1.0, "b": 0.0}, 0.2)
    # P(A) / (P(A) + P(B)) per order: p1 2/3 and 1/3, p2 1/3 and 2/3, p3 1/2 twice, p4 7/9 twice
    assert s["first_position_prob"] == round((2 / 3 + 1 / 3 + 1 / 3 + 2 / 3 + 1 / 2 + 1 / 2 + 7 / 9 + 7 / 9) / 8, 4)
    again = _judge(url, cache, logprobs=True)  # the probabilities come back from the cache
    assert [r["calibrated"] for r in again.pairwise(_pairs())] == [r["calibrated"] for r in rows]
    assert again.requests == 0
    plain = _judge(url, None).pairwise(_pairs()[:1])[0]  # no logprobs asked: no calibrated verdict, same rule
    assert "calibrated" not in plain and plain["preference"] == rows[0]["preference"]
    assert "calibrated" not in summarize_pairwise([plain])["dimensions"][DIMENSIONS[0]]


def test_failures_are_retried_then_recorded(server, tmp_path):
    state, url = server
    judge = _judge(url, tmp_path / "c.sqlite")
    items = [PairItem("bad", "User: ALWAYS-BAD", "GOOD x", "y"), PairItem("flaky", "User: FLAKY", "GOOD x", "y")]
    bad, flaky = judge.pairwise(items)
    assert bad["failed"].startswith("unparseable answer") and bad["kind"] == "parse"
    assert bad["attempts"] == 3 and bad["order"] == "ab" and "raw" in bad
    assert set(flaky["preference"].values()) == {"a"}
    assert summarize_pairwise([bad, flaky])["n_failed"] == 1
    # a failure is not cached: the next run asks again
    again = _judge(url, tmp_path / "c.sqlite")
    assert "failed" in again.pairwise(items[:1])[0] and again.requests == 3


def test_absolute_scores(server, tmp_path):
    _, url = server
    rows = _judge(url, None).absolute([ReplyItem("r1", "User: hi", "Great!!!"), ReplyItem("r2", "", "Ok.")])
    assert rows[0]["scores"] == {d: 3 for d in DIMENSIONS} and rows[1]["scores"] == {d: 0 for d in DIMENSIONS}
    prefs = scores_to_preferences({"t": rows[0]["scores"]}, {"t": rows[1]["scores"]})
    assert prefs == {"t": {d: "a" for d in DIMENSIONS}}


# ---------------------------------------------------------------- agreement and the human form

def test_preference_kappa_hand_computed():
    dim = DIMENSIONS[0]
    x = {str(i): {dim: v} for i, v in enumerate(["a", "a", "b", "tie"])}
    y = {str(i): {dim: v} for i, v in enumerate(["a", "b", "b", "tie"])}
    k = preference_kappa(x, y)
    # p_o = 3/4; p_e = (2*1 + 1*2 + 1*1) / 16 = 5/16; kappa = (3/4 - 5/16) / (1 - 5/16) = 7/11
    assert k["dimensions"][dim] == {"n": 4, "kappa": round(7 / 11, 4), "agreement": 0.75}
    assert k["kappa"] == round(7 / 11, 4) and k["n"] == 4
    assert preference_kappa(x, x)["kappa"] == 1.0


def _fill(path: Path, rater) -> None:
    """Fill a form CSV as a rater who applies `rater(reply_1, reply_2) -> "1" | "2" | "tie"` to every dimension."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r.update({d: rater(r["reply_1"], r["reply_2"]) for d in DIMENSIONS})
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_form_round_trip_and_kappa_with_judge(server, tmp_path):
    _, url = server
    items = [PairItem(f"i{k}", "User: hi", *(("GOOD one", "plain") if k % 2 else ("plain", "GOOD two")))
             for k in range(12)]
    items.append(PairItem("script", "User: x", "GOOD </script><b>", "plain"))
    csv_p, html_p, key_p = export_form(items, tmp_path / "form.csv", n=None, seed=3)
    key = json.loads(key_p.read_text())["items"]
    assert 0 < sum(v["swapped"] for v in key.values()) < len(items)  # blinded: both orders occur
    page = html_p.read_text()
    assert "<\\/script><b>" in page and "</script><b>" not in page  # a reply cannot end the script element
    assert "src=" not in page and "http" not in page  # self-contained
    _fill(csv_p, lambda r1, r2: "1" if "GOOD" in r1 else "2" if "GOOD" in r2 else "tie")
    people = import_form(csv_p)
    truth = {it.id: {d: "a" if "GOOD" in it.a else "b" for d in DIMENSIONS} for it in items}
    assert people == truth
    judged = {r["id"]: r["preference"] for r in _judge(url, None).pairwise(items)}
    assert preference_kappa(people, judged)["kappa"] == 1.0


def test_import_form_rejects_bad_values(tmp_path):
    csv_p, _, _ = export_form([PairItem("x", "c", "a", "b"), PairItem("y", "c", "a", "b")], tmp_path / "f.csv")
    _fill(csv_p, lambda r1, r2: "maybe")
    with pytest.raises(DataError, match=r"f\.csv:2: .*'maybe' is not one of 1, 2, tie"):
        import_form(csv_p)
    _fill(csv_p, lambda r1, r2: "")  # unrated cells are left out, not guessed
    assert import_form(csv_p) == {"x": {}, "y": {}}


# ---------------------------------------------------------------- the command

def _write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_cli_pairwise_forms_and_errors(server, tmp_path, capsys):
    _, url = server
    a = _write_jsonl(tmp_path / "sys.jsonl", [{"id": i, "reply": x, "context": [["seeker", c]]}
                                              for i, c, x, *_ in PAIRS])
    b = _write_jsonl(tmp_path / "base.jsonl", [{"id": i, "reply": y} for i, _, _, y, *_ in PAIRS])
    out = tmp_path / "v.jsonl"
    common = ["--a", a, "--b", b, "--backend", "openai", "--base-url", url, "--model", "fake",
              "--cache", str(tmp_path / "c.sqlite"), "--no-progress"]
    assert cli_main(["judge", "pairwise", *common, "--out", str(out)]) == 0
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    assert summary["n"] == 4 and summary["order_agreement"] == 0.75 and summary["requests"] == 8
    assert [json.loads(x)["a"] for x in out.read_text().splitlines()] == ["sys"] * 4
    assert cli_main(["judge", "agreement", str(out), str(out)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["kappa"] == 1.0
    # --logprobs: the cached plain answers are not reused (they carry no probabilities)
    assert cli_main(["judge", "pairwise", *common, "--logprobs", "--out", str(tmp_path / "cal.jsonl")]) == 0
    summary = json.loads(Path(f"{tmp_path / 'cal.jsonl'}.summary.json").read_text())
    assert summary["requests"] == 8 and summary["dimensions"][DIMENSIONS[0]]["calibrated"]["n"] == 4
    # --dimensions: one question per dimension and order
    one = tmp_path / "one.jsonl"
    assert cli_main(["judge", "pairwise", *common, "--logprobs", "--dimensions", "lifelikeness", "--out", str(one)]) == 0
    summary = json.loads(Path(f"{one}.summary.json").read_text())
    assert (summary["requests"], list(summary["dimensions"]), summary["prompt_version"]) == \
        (8, ["lifelikeness"], SINGLE_PROMPT_VERSION)
    assert cli_main(["judge", "pairwise", *common, "--dimensions", "charm", "--out", str(one)]) == 2
    assert "dimensions must be some of" in capsys.readouterr().err
    capsys.readouterr()

    form = tmp_path / "form.csv"
    assert cli_main(["judge", "export-form", "--a", a, "--b", b, "--n", "3", "--out", str(form)]) == 0
    _fill(form, lambda r1, r2: "1" if "GOOD" in r1 else "2" if "GOOD" in r2 else "tie")
    assert cli_main(["judge", "import-form", str(form), "--judge", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report["rater_vs_judge"]) == [str(form)]

    capsys.readouterr()
    assert cli_main(["judge", "pairwise", "--a", a, "--b", b, "--backend", "openai", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == "ecrs: error: --backend openai needs --base-url and --model"
    bad = _write_jsonl(tmp_path / "bad.jsonl", [{"id": "p1", "text": 3}])
    assert cli_main(["judge", "pairwise", "--a", bad, "--b", b, *common[4:], "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ecrs: error: ") and "bad.jsonl:1" in err and "\n" not in err


# ---------------------------------------------------------------- one dimension per request

def test_parse_choice_and_first_token_probs():
    for raw, want in (("A", "A"), (" tie.", "tie"), ("Reply B", "B"), ('"TIE"', "tie"), ("b", "B")):
        assert parse_choice(raw) == {"choice": want}
    assert parse_choice(json.dumps({"answer": "B", "choice_probs": {"choice": {"A": 0.1, "B": 0.8, "tie": 0.1}}})) \
        == {"choice": "B"}
    for bad in ("maybe", "A or B", "Reply A is clearly better overall.", ""):
        with pytest.raises(JudgeParseError):
            parse_choice(bad)
    top = [{"token": "A", "logprob": math.log(0.5)}, {"token": "t", "logprob": math.log(0.1)},
           {"token": "Tie", "logprob": math.log(0.1)}, {"token": " B", "logprob": math.log(0.2)},
           {"token": "Reply", "logprob": math.log(0.1)}]  # "Reply" starts no value: left out, then renormalised
    p = first_token_probs({"content": [{"token": "A", "logprob": 0.0, "top_logprobs": top}]})
    assert p == pytest.approx({"A": 0.5 / 0.9, "B": 0.2 / 0.9, "tie": 0.2 / 0.9}, abs=1e-6)  # rounded to 6 places
    assert first_token_probs(None) is None and first_token_probs({"content": []}) is None
    assert first_token_probs([{"token": "x", "top_logprobs": [{"token": "Reply", "logprob": 0.0}]}]) is None


def test_pairwise_one_dimension_at_a_time(server, tmp_path):
    state, url = server
    cache = tmp_path / "cache.sqlite"
    dims = ["emotional_intensity", "lifelikeness"]
    judge = _judge(url, cache, logprobs=True)
    rows = judge.pairwise(_pairs(), dimensions=dims)
    assert judge.requests == len(PAIRS) * len(dims) * 2  # one request per pair, dimension and order
    assert [r["preference"] for r in rows] == [dict.fromkeys(dims, want) for *_, want, _ in PAIRS]
    assert [r["agree"]["lifelikeness"] for r in rows] == [agree for *_, agree in PAIRS]
    assert {r["prompt_version"] for r in rows} == {SINGLE_PROMPT_VERSION}
    # position-calibrated from the first answer token: p4's first-position bias cancels to a tie
    assert [r["calibrated"] for r in rows] == [dict.fromkeys(dims, v) for v in ("a", "b", "tie", "tie")]
    assert rows[3]["calibrated_probs"]["lifelikeness"] == {"a": 0.45, "b": 0.45, "tie": 0.1}
    s = summarize_pairwise(rows)
    assert list(s["dimensions"]) == dims and s["order_agreement"] == 0.75
    assert s["dimensions"]["lifelikeness"]["calibrated"]["win"] == 0.25
    again = _judge(url, cache, logprobs=True)
    assert again.pairwise(_pairs(), dimensions=dims) == [{**r, "cached": [True] * 4} for r in rows]
    assert again.requests == 0
    # reworded: asked afresh, labelled, and the wording reaches the endpoint
    custom = _judge(url, cache, logprobs=True)
    reworded = custom.pairwise(_pairs()[:1], dimensions=["lifelikeness"], definitions={"lifelikeness": "LIKE A FAN"})
    assert custom.requests == 2 and reworded[0]["prompt_version"] == SINGLE_PROMPT_VERSION + "+custom"
    assert any("lifelikeness: LIKE A FAN." in text for text in state.systems)
    with pytest.raises(EcrsError, match="dimensions must be some of"):
        custom.pairwise(_pairs(), dimensions=["charm"])
    # a question that never parses fails the row, naming the dimension
    bad = _judge(url, None).pairwise([PairItem("x", "User: ALWAYS-BAD", "a", "b")], dimensions=["lifelikeness"])
    assert bad[0]["dimension"] == "lifelikeness" and bad[0]["kind"] == "parse"


def test_robotic_pairs_are_known_by_construction():
    items = [PairItem("t1", "User: hi", "Try Up!", "  Try Up (2009). ")]
    (p,) = robotic_pairs(items)
    assert (p.id, p.a, p.a_name) == ("control_ll_robotic|t1", "Try Up (2009).", "base")
    assert p.b.startswith("As an AI language model") and p.b.endswith(" Try Up (2009).")


def test_paired_yes_no_asks_each_reply_alone(server, tmp_path):
    state, url = server
    cache = tmp_path / "cache.sqlite"
    assert [parse_yes_no(x) for x in ("Yes.", " no", '"YES"')] == [{"choice": "yes"}, {"choice": "no"}, {"choice": "yes"}]
    with pytest.raises(JudgeParseError):
        parse_yes_no("yes and no")
    judge = _judge(url, cache, logprobs=True)
    items = _pairs() + [PairItem("w", "User: hi", "WARM: Up!", "Up.", "sys", "base")]
    rows = judge.paired_yes_no(items, "lifelikeness")
    assert judge.requests == 2 * len(items)
    # P(yes): GOOD 0.9, WARM 0.6, else 0.2; the conversation is never shown, so BIASED (p4) changes nothing
    assert [r["calibrated"]["lifelikeness"] for r in rows] == ["a", "b", "tie", "a", "a"]
    assert rows[4]["answers"] == {"a": "no", "b": "no"} and rows[4]["p_yes"] == {"a": 0.6, "b": 0.2}
    assert {r["prompt_version"] for r in rows} == {YES_NO_VERSION}
    assert not any("Conversation so far" in u for u in state.seen if u.endswith("Answer yes or no."))
    s = summarize_yes_no(rows)
    assert (s["win"], s["loss"], s["tie"], s["n"], s["dimension"]) == (0.6, 0.2, 0.2, 5, "lifelikeness")
    assert s["mean_p_a_minus_p_b"] == round((0.7 - 0.7 + 0 + 0.7 + 0.4) / 5, 4)
    assert s["yes_rate"] == {"a": 0.4, "b": 0.2}
    again = _judge(url, cache, logprobs=True)
    assert [r["p_yes"] for r in again.paired_yes_no(items, "lifelikeness")] == [r["p_yes"] for r in rows]
    assert again.requests == 0
    plain = _judge(url, None).paired_yes_no(items[:2], "lifelikeness")  # no probabilities: the answer, 1 or 0
    assert [r["p_yes"] for r in plain] == [{"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 1.0}]
    custom = _judge(url, cache, logprobs=True)
    assert custom.paired_yes_no(items[:1], "lifelikeness", question=("Judge.", "Is it?"))[0]["prompt_version"] \
        == YES_NO_VERSION + "+custom" and custom.requests == 2
    with pytest.raises(EcrsError, match="no yes/no question"):
        custom.paired_yes_no(items, "informativeness")
    bad = _judge(url, None).paired_yes_no([PairItem("x", "", "ALWAYS-BAD", "b")], "lifelikeness")
    assert bad[0]["kind"] == "parse" and bad[0]["order"] == "a" and summarize_yes_no(bad)["n_failed"] == 1
