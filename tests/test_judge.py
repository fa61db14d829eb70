"""The LLM judge (ecrs.evaluation.judge, `ecrs judge`): strict parsing, one dimension per question in both orders,
position calibration, yes/no questions of one reply, the default designs (`Judge.compare`), caching, failures, the
human rating form and kappa.

The backend talks to a REAL OpenAI-compatible server on a loopback port (FastAPI + uvicorn in a thread) whose
verdicts are known by construction:
    "which is better" (one dimension, bare word): the reply containing "GOOD" wins ("tie" when both or neither do);
              a conversation containing "BIASED" gets "A" (the first reply), in both orders; with "logprobs" asked
              for, the first token carries the choice probabilities of `_probs` (a reply containing "WARM" against
              one without: "tie" most probable, but leaning to the WARM reply);
    "yes or no" (one reply alone): "yes" when the reply contains GOOD, P(yes) 0.9 (GOOD), 0.6 (WARM) or 0.2;
    "ALWAYS-BAD" in the conversation (or the reply, yes/no) -> unparseable text every time; "FLAKY" -> unparseable
    on the first request.
"""
from __future__ import annotations

import csv
import json
import math
import re
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
    DEFAULT_DIMENSIONS,
    DIMENSIONS,
    FAULT_CONTROLS,
    JUDGE_PROMPT_VERSION,
    PREFERENCES,
    SINGLE_PROMPT_VERSION,
    YES_NO_VERSION,
    Judge,
    JudgeParseError,
    PairItem,
    answer_probs,
    answer_text,
    calibrate_orders,
    combine_orders,
    control_pairs,
    export_form,
    fact_faults,
    fault_controls,
    first_token_probs,
    import_form,
    parse_choice,
    parse_yes_no,
    preference_kappa,
    robotic_pairs,
    summarize_compare,
    summarize_pairwise,
    summarize_yes_no,
    with_choice_probs,
)
from ecrs.inference.llm import FatalBackendError, LLMConfig, OpenAIBackend, Retry

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
    """The fake judge's choice probabilities for one order (A shown first): its answer gets the most."""
    if "BIASED" in context:
        return {"A": 0.7, "B": 0.2, "tie": 0.1}
    if ("GOOD" in a) != ("GOOD" in b):
        return {"A": 0.6, "B": 0.3, "tie": 0.1} if "GOOD" in a else {"A": 0.3, "B": 0.6, "tie": 0.1}
    if ("WARM" in a) != ("WARM" in b):  # says tie, but leans to the WARM reply
        return {"A": 0.3, "B": 0.1, "tie": 0.6} if "WARM" in a else {"A": 0.1, "B": 0.3, "tie": 0.6}
    return {"A": 0.25, "B": 0.25, "tie": 0.5}


def _first_token(content: str, top: dict[str, float]) -> dict:
    return {"content": [{"token": content, "logprob": 0.0, "top_logprobs": [
        {"token": t, "logprob": math.log(p)} for t, p in top.items()]}]}


def make_app(state: FakeState) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        if body.get("temperature") != 0 or body.get("max_tokens") != 4:
            return JSONResponse({"error": "temperature must be 0, a bare word needs 4 tokens"}, status_code=400)
        user = body["messages"][-1]["content"]
        with state.lock:
            state.systems[body["messages"][0]["content"]] += 1
            state.seen[user] += 1
            n = state.seen[user]
        if user.endswith("Answer yes or no."):  # one reply alone
            reply = _section(user, "Reply")
            content = "Hard to say." if "ALWAYS-BAD" in reply else "yes" if "GOOD" in reply else "no"
            p_yes = 0.9 if "GOOD" in reply else 0.6 if "WARM" in reply else 0.2  # WARM: "no", but less sure
            top = {"yes": p_yes, "no": 1 - p_yes}
        else:  # which of two replies is better on one dimension
            context, a, b = (_section(user, h) for h in ("Conversation so far", "Reply A", "Reply B"))
            if "ALWAYS-BAD" in context or ("FLAKY" in context and n == 1):
                content = "Reply A is clearly better overall."
            else:
                content = ("A" if "BIASED" in context else
                           "A" if "GOOD" in a and "GOOD" not in b else
                           "B" if "GOOD" in b and "GOOD" not in a else "tie")
            top = {**_probs(context, a, b), "Reply": 0.05}
        choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
        if body.get("logprobs"):
            choice["logprobs"] = _first_token(content, top)
        return {"object": "chat.completion", "model": body["model"], "choices": [choice]}

    return app


@pytest.fixture(scope="module")
def server():
    state = FakeState()
    with ThreadServer(make_app(state)) as srv:
        yield state, f"{srv.url}/v1"


def _judge(url: str, cache: Path | None, model: str = "fake-judge", logprobs: bool = False) -> Judge:
    backend = OpenAIBackend(LLMConfig(base_url=url, model=model, logprobs=logprobs))
    return Judge(backend, cache=cache, retry=Retry(sleep=lambda s: None))


PAIRS = [  # (id, context, a, b, expected preference, orders agree)
    ("p1", "User: any comedy?", "GOOD: Airplane! is a classic spoof.", "You might like Airplane!.", "a", True),
    ("p2", "User: any drama?", "Try Heat.", "GOOD: Heat has a great cast.", "b", True),
    ("p3", "User: hi", "Try Up.", "Try Up (2009).", "tie", True),
    ("p4", "User: BIASED judge here", "GOOD: Alien is tense.", "Alien.", "tie", False),
]


def _pairs() -> list[PairItem]:
    return [PairItem(i, c, a, b, "sys", "base") for i, c, a, b, _, _ in PAIRS]


# ---------------------------------------------------------------- parsing and probabilities

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


def test_choice_probs_envelope_round_trip():
    assert with_choice_probs("A", None, PREFERENCES) == "A"  # nothing to read: the plain answer
    nothing = _first_token("A", {"Reply": 1.0})  # no top token starts a value
    assert with_choice_probs("A", nothing, PREFERENCES) == "A"
    raw = with_choice_probs("B", _first_token("B", {"A": 0.2, "B": 0.6, "tie": 0.2}), PREFERENCES)
    assert json.loads(raw) == {"answer": "B", "choice_probs": {"choice": {"A": 0.2, "B": 0.6, "tie": 0.2}}}
    assert answer_text(raw) == "B" and answer_probs(raw)["choice"]["B"] == 0.6 and parse_choice(raw) == {"choice": "B"}
    assert answer_probs("B") is None and answer_text("B") == "B"


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


# ---------------------------------------------------------------- the default designs

def test_compare_asks_each_dimension_its_own_way(server, tmp_path):
    _, url = server
    items = _pairs() + [PairItem("w", "User: hi", "WARM: Up!", "Up.", "sys", "base")]
    judge = _judge(url, tmp_path / "cache.sqlite", logprobs=True)
    rows = judge.compare(items)
    assert list(DEFAULT_DIMENSIONS) == ["emotional_intensity", "lifelikeness"]
    assert judge.requests == 2 * len(items) + 2 * len(items)  # EI: two orders; lifelikeness: each reply alone
    # EI position-calibrated (p4's bias cancels; w leans but stays a tie); lifelikeness by P(yes), no context shown
    assert [r["verdict"] for r in rows] == [{"emotional_intensity": ei, "lifelikeness": ll} for ei, ll in
                                            [("a", "a"), ("b", "b"), ("tie", "tie"), ("tie", "a"), ("tie", "a")]]
    assert rows[0]["by_dimension"]["emotional_intensity"]["prompt_version"] == SINGLE_PROMPT_VERSION
    assert rows[0]["by_dimension"]["lifelikeness"]["p_yes"] == {"a": 0.9, "b": 0.2}
    assert rows[0]["prompt_version"] == JUDGE_PROMPT_VERSION and rows[0]["a"] == "sys"
    s = summarize_compare(rows)
    ei, ll = s["dimensions"]["emotional_intensity"], s["dimensions"]["lifelikeness"]
    assert (s["n"], s["n_failed"], ei["design"], ll["design"]) == (5, 0, "pairwise", "yes_no")
    assert (ei["win"], ei["loss"], ei["tie"]) == (0.2, 0.2, 0.6) and (ll["win"], ll["loss"], ll["tie"]) == (0.6, 0.2, 0.2)
    assert ei["detail"]["calibrated"]["forced"] == {"a": 0.4, "b": 0.2} and ll["detail"]["yes_rate"]["a"] == 0.4
    # without probabilities: the both-orders rule (p4's orders disagree: tie) and the yes/no answers themselves
    plain = _judge(url, None).compare(items)
    assert [r["verdict"]["emotional_intensity"] for r in plain] == ["a", "b", "tie", "tie", "tie"]
    assert [r["verdict"]["lifelikeness"] for r in plain] == ["a", "b", "tie", "a", "tie"]
    with pytest.raises(EcrsError, match="dimensions must be some of"):
        judge.compare(items, ["charm"])


def test_cache_makes_a_rerun_free(server, tmp_path):
    state, url = server
    cache = tmp_path / "cache.sqlite"
    first = _judge(url, cache).compare(_pairs())
    before = state.requests
    again = _judge(url, cache)
    rows = again.compare(_pairs())
    assert state.requests == before and again.requests == 0 and again.cache_hits == 4 * len(PAIRS)
    assert [r["verdict"] for r in rows] == [r["verdict"] for r in first]
    assert all(r["by_dimension"][d]["cached"] == [True, True] for r in rows for d in DEFAULT_DIMENSIONS)
    other = _judge(url, cache, model="another-judge")  # the model id is part of the key
    other.compare(_pairs()[:1])
    assert other.requests == 4 and state.requests == before + 4
    # answers without probabilities are not served to a judge that wants them
    calibrated = _judge(url, cache, logprobs=True)
    calibrated.compare(_pairs()[:1])
    assert calibrated.requests == 4


def test_failures_are_retried_then_recorded(server, tmp_path):
    state, url = server
    judge = _judge(url, tmp_path / "c.sqlite")
    items = [PairItem("bad", "User: ALWAYS-BAD", "GOOD x", "y"), PairItem("flaky", "User: FLAKY", "GOOD x", "y")]
    bad, flaky = judge.compare(items, ["emotional_intensity"])
    assert bad["failed"].startswith("unparseable answer") and bad["kind"] == "parse"
    assert bad["attempts"] == 3 and bad["order"] == "ab" and bad["dimension"] == "emotional_intensity"
    assert bad["raw"] == "Reply A is clearly better overall."
    assert flaky["verdict"] == {"emotional_intensity": "a"}
    assert summarize_compare([bad, flaky])["n_failed"] == 1
    # a failure is not cached: the next run asks again
    again = _judge(url, tmp_path / "c.sqlite")
    assert "failed" in again.compare(items[:1], ["emotional_intensity"])[0] and again.requests == 3


def test_an_endpoint_that_refuses_stops_the_run(server):
    _, url = server
    judge = _judge(url.replace("/v1", "/nowhere/v1"), None)
    with pytest.raises(FatalBackendError, match="HTTP 404"):
        judge.compare(_pairs()[:1])
    assert judge.requests == 1  # not retried, and no other question asked


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
    assert people == truth  # people rate all five dimensions
    judged = {r["id"]: r["verdict"] for r in _judge(url, None).compare(items)}
    k = preference_kappa(people, judged)  # compared where both rated: the judge's two dimensions
    assert k["kappa"] == 1.0 and k["n"] == 2 * len(items)


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
    common = ["--a", a, "--b", b, "--no-progress", "--set", f"llm.base_url={url}", "--set", "llm.model=fake",
              "--set", f"cache={tmp_path / 'c.sqlite'}", "--set", "llm.backoff=0"]
    assert cli_main(["judge", "pairwise", *common, "--out", str(out)]) == 0
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    assert summary["n"] == 4 and summary["requests"] == 16 and list(summary["dimensions"]) == list(DEFAULT_DIMENSIONS)
    assert summary["dimensions"]["emotional_intensity"]["detail"]["order_agreement"] == 0.75
    assert [json.loads(x)["a"] for x in out.read_text().splitlines()] == ["sys"] * 4
    assert "model: fake" in Path(f"{out}.config.yaml").read_text()
    assert cli_main(["judge", "agreement", str(out), str(out)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["kappa"] == 1.0
    # llm.logprobs: the cached plain answers are not reused (they carry no probabilities)
    cal = tmp_path / "cal.jsonl"
    assert cli_main(["judge", "pairwise", *common, "--set", "llm.logprobs=true", "--out", str(cal)]) == 0
    summary = json.loads(Path(f"{cal}.summary.json").read_text())
    assert summary["requests"] == 16
    assert summary["dimensions"]["emotional_intensity"]["detail"]["calibrated"]["n"] == 4
    one = tmp_path / "one.jsonl"
    assert cli_main(["judge", "pairwise", *common, "--set", "dimensions=[informativeness]", "--limit", "2",
                     "--out", str(one)]) == 0
    summary = json.loads(Path(f"{one}.summary.json").read_text())
    assert (summary["requests"], summary["n"], summary["dimensions"]["informativeness"]["design"]) == \
        (4, 2, "pairwise")
    capsys.readouterr()

    form = tmp_path / "form.csv"
    assert cli_main(["judge", "export-form", "--a", a, "--b", b, "--n", "3", "--out", str(form)]) == 0
    _fill(form, lambda r1, r2: "1" if "GOOD" in r1 else "2" if "GOOD" in r2 else "tie")
    assert cli_main(["judge", "import-form", str(form), "--judge", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report["rater_vs_judge"]) == [str(form)]

    capsys.readouterr()
    bad = _write_jsonl(tmp_path / "bad.jsonl", [{"id": "p1", "text": 3}])
    for argv, message in (
            ([*common, "--set", "dimensions=[charm]"], "dimensions must be some of"),
            (["--a", a, "--b", b, "--set", f"llm.base_url={url}"], "base_url needs model"),
            ([*common, "--set", "llm.grammar=x"], "unknown key 'grammar'"),
            (["--a", bad, "--b", b, *common[4:]], "bad.jsonl:1")):
        assert cli_main(["judge", "pairwise", *argv, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("ecrs: error: ") and message in err and err.count("\n") == 1, err
    assert cli_main(["judge", "agreement", a, a]) == 2  # reply files are not judge outputs
    assert '"verdict"' in capsys.readouterr().err


# ---------------------------------------------------------------- one design at a time

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


def test_control_pairs_are_known_by_construction():
    items = [PairItem("t1", "User: hi", "sys reply", "  Try Up (2009).  "), PairItem("t2", "User: x", "s", "ok ok")]
    c = control_pairs(items)
    ei, ll = c["emotional_intensity"], c["lifelikeness"]
    assert [p.id for p in ei] == ["control_ei|t1", "control_ei|t2"] and ei[0].b == "Try Up (2009)."
    assert ei[0].a.startswith("Try Up (2009). ") and ei[0].a != ei[0].b and ei[1].a.startswith("ok ok ")
    assert ll[0].a == "Try Up (2009)." and ll[0].b != ll[0].a and sorted(ll[0].b.split()) == sorted(ll[0].a.split())
    assert ll[1].b == "ok ok"  # nothing to shuffle: no endless loop
    assert control_pairs(items, seed=0) == c  # seeded


def test_robotic_pairs_are_known_by_construction():
    items = [PairItem("t1", "User: hi", "Try Up!", "  Try Up (2009). ")]
    (p,) = robotic_pairs(items)
    assert (p.id, p.a, p.a_name) == ("control_ll_robotic|t1", "Try Up (2009).", "base")
    assert p.b.startswith("As an AI language model") and p.b.endswith(" Try Up (2009).")


def test_fault_controls_are_known_by_construction():
    items = [PairItem("t1", "User: something scary", "", "Try It (2017). A clown haunts a town."),
             PairItem("t2", "User: funny please", "", "Try Elf (2003)."),
             PairItem("t3", "User: sad day", "", "Try Up (2009).")]
    facts = [[("director", "Andy Muschietti"), ("star", "Bill Skarsgard")], [("director", "Jon Favreau")], []]
    c = fault_controls(items, facts, ["It (2017)", "Elf (2003)", "Up (2009)"])
    assert set(c) == set(FAULT_CONTROLS) and set(FAULT_CONTROLS.values()) >= {
        "emotional_intensity", "emotional_persuasiveness", "logic_persuasiveness", "informativeness", "lifelikeness"}
    dup = c["duplicated_sentence"][0]
    assert dup.a == items[0].b and dup.b == items[0].b + " A clown haunts a town."  # the longest sentence twice
    for kind in ("contradiction", "emotion_vs_neutral", "feeling_vs_neutral"):
        for p in c[kind]:  # both sides: the base plus one sentence of about the same length
            base = next(it.b for it in items if p.id.endswith(it.id))
            assert p.a.startswith(base + " ") and p.b.startswith(base + " ") and p.a != p.b
            assert abs(len(p.a.split()) - len(p.b.split())) <= 4
    assert [(p.a, p.b) for p in c["other_film"]][:1] == [(items[0].b, items[1].b)]
    # swapped fact: the same relation with another item's value, never one of this movie's own; t1's star has no
    # other star to swap with, t3 has no facts
    swaps = {p.id.split("|")[1]: (p.a.rsplit(". ", 1)[1], p.b.rsplit(". ", 1)[1]) for p in c["swapped_fact"]}
    assert swaps["t2"] == ("Its director is Jon Favreau.", "Its director is Andy Muschietti.") and "t3" not in swaps
    assert swaps.get("t1", ("Its director is Andy Muschietti.", "Its director is Jon Favreau.")) == (
        "Its director is Andy Muschietti.", "Its director is Jon Favreau.")
    assert "Recommended movie: It (2017); facts: director: Andy Muschietti" in dup.context
    assert fault_controls(items, facts, ["It (2017)", "Elf (2003)", "Up (2009)"]) == c  # seeded


class _NamesChecker:
    """A grounding checker by construction: a "First Last" name is grounded when the context holds it."""

    def knowledge(self, text):
        return text

    def violations(self, reply, knowledge):
        from ecrs.inference.grounding import Violation
        return [Violation("name", n, 0) for n in re.findall(r"[A-Z][a-z]+ [A-Z][a-z]+", reply) if n not in knowledge]


def test_the_fact_gate_decides_the_fact_dimensions_when_one_reply_invents(server, tmp_path):
    _, url = server
    context = "User: any drama?\n\n(Recommended movie: Heat; facts: director: Michael Mann)"
    pairs = [PairItem("true", context, "Heat. Its director is Michael Mann.", "Heat. Its director is Ridley Scott."),
             PairItem("shared", context, "Heat, with Tony Stark. Great.", "Heat, with Tony Stark. Fine."),
             PairItem("swapped", context, "Heat, by Ridley Scott.", "Heat, by Michael Mann.")]
    dims = ["informativeness", "emotional_intensity"]
    plain = _judge(url, tmp_path / "c.sqlite", logprobs=True).pairwise(pairs, dims)
    assert {r["calibrated"]["informativeness"] for r in plain} == {"tie"}  # the LLM does not see the facts
    judge = _judge(url, tmp_path / "c.sqlite", logprobs=True)
    judge.checker = _NamesChecker()
    rows = judge.pairwise(pairs, dims)
    assert judge.requests == 0  # the same answers, read through the gate
    assert [r["calibrated"]["informativeness"] for r in rows] == ["a", "tie", "b"]  # a slip both share: no gate
    assert [r["preference"]["informativeness"] for r in rows] == ["a", "tie", "b"]
    assert {r["calibrated"]["emotional_intensity"] for r in rows} == {"tie"}  # not a fact dimension
    assert rows[0]["fact_gate"] == {"informativeness": "a"} and "fact_gate" not in rows[1]
    assert fact_faults(_NamesChecker(), pairs[0]) == (False, True)
    # what the generator was shown beyond the judge's context counts as known
    shown = PairItem("plot", context, "Heat. Al Pacino hunts him.", "Heat.", knowledge=context + " Al Pacino")
    assert fact_faults(_NamesChecker(), shown) == (False, False)
