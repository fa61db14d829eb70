"""Why the judge's grammar is spaced (judge-v2): how often each grammar forces a verdict through a token the judge
did not want.

    .venv/bin/python benchmarks/judge_grammar.py [--n 50] [--system finetuned] [--threads 2]

For the first `--n` pairs that benchmarks/judge.py judges (`--system` vs the zero-shot base, both orders), the
local judge answers twice, greedily: once with judge-v1's space-free grammar (`{"k":"v","k2":"v2"}`) and once with
v2's (`{"k": "v", "k2": "v2"}`), asking for token log-probabilities. At each dimension's value the script reads
the log-probability of the token the grammar let through where the value's literal starts (the opening quote) and
the judge's most probable token there. A value is *forced* when the judge preferred another token by more than
`--margin` nats (default 5: the written token was at least ~150 times less likely). Also: how often the two
grammars give the same verdict. Writes benchmarks/results/judge_grammar.json.
"""
from __future__ import annotations

import argparse
import bisect
import json
import os
import time
from pathlib import Path

from judge import pair_items  # noqa: E402  (benchmarks/judge.py, beside this script)

from ecrs.evaluation.evaluate import provenance
from ecrs.evaluation.judge import (
    DIMENSIONS,
    JudgeLlamaBackend,
    compact_grammar,
    pairwise_messages,
    pairwise_schema,
    parse_preferences,
    token_starts,
)

RESULTS = Path("benchmarks/results/judge_grammar.json")


def value_tokens(content: str, tokens: list[dict]) -> dict[str, tuple[float, float]]:
    """{dimension: (log-probability of the written token, the judge's best log-probability)} at the token holding
    the opening quote of each dimension's value."""
    starts = token_starts(content, tokens)
    if starts is None:
        return {}
    out = {}
    for d in DIMENSIONS:
        key = json.dumps(d)
        pos = content.index(key) + len(key)
        pos = content.index('"', pos)  # the value's opening quote (after ":" and any space)
        i = bisect.bisect_right(starts, pos) - 1
        best = max((float(t["logprob"]) for t in tokens[i]["top_logprobs"]), default=float(tokens[i]["logprob"]))
        out[d] = (float(tokens[i]["logprob"]), best)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50, help="pairs (each judged in both orders with both grammars)")
    ap.add_argument("--system", default="finetuned")
    ap.add_argument("--base", default="zero_shot_chat")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-turns", type=int, default=3)
    ap.add_argument("--margin", type=float, default=5.0)
    args = ap.parse_args()
    _, items, _, _ = pair_items({args.system: args.n}, args.base, args.max_turns)
    backend = JudgeLlamaBackend(n_threads=args.threads)
    schema = pairwise_schema()
    grammars = {"v1_space_free": compact_grammar(schema, spaced=False), "v2_spaced": compact_grammar(schema)}
    stats = {g: {d: {"forced": 0, "n": 0, "written_logprob_sum": 0.0} for d in DIMENSIONS} for g in grammars}
    same_verdict = dict.fromkeys(DIMENSIONS, 0)
    n_answers = 0
    t0 = time.time()
    for it in items:
        for first, second in ((it.a, it.b), (it.b, it.a)):
            verdicts = {}
            for g, grammar in grammars.items():
                req = {"messages": pairwise_messages(it.context, first, second), "temperature": 0.0,
                       "max_tokens": backend.max_tokens, "grammar": grammar, "logprobs": True, "top_logprobs": 5}
                r = backend.engine.server.handle_chat_completions(req)
                content = r["choices"][0]["message"]["content"]
                verdicts[g] = parse_preferences(content)
                for d, (written, best) in value_tokens(content, r["choices"][0]["logprobs"]["content"]).items():
                    s = stats[g][d]
                    s["n"] += 1
                    s["forced"] += best - written > args.margin
                    s["written_logprob_sum"] += written
            n_answers += 1
            for d in DIMENSIONS:
                same_verdict[d] += verdicts["v1_space_free"][d] == verdicts["v2_spaced"][d]
        print(f"{n_answers // 2}/{len(items)} pairs", flush=True)
    result = {
        "what": "share of verdict values each judge grammar forced through a token the judge did not want "
                f"(written token's log-probability more than {args.margin} below the judge's best there), and how "
                "often the two grammars agree",
        "judge_model": backend.model,
        "pairs": len(items), "answers_per_grammar": n_answers, "system": args.system, "base": args.base,
        "grammars": {g: {d: {"forced_share": round(s["forced"] / s["n"], 4) if s["n"] else None,
                             "mean_written_logprob": round(s["written_logprob_sum"] / s["n"], 3) if s["n"] else None,
                             "n": s["n"]} for d, s in per.items()} for g, per in stats.items()},
        "same_verdict_share": {d: round(v / n_answers, 4) for d, v in same_verdict.items()},
        "seconds": round(time.time() - t0, 1),
        "threads": args.threads,
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
        **provenance(),
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for g, per in result["grammars"].items():
        print(g, {d[:12]: v["forced_share"] for d, v in per.items()})
    print("same verdict", result["same_verdict_share"])


if __name__ == "__main__":
    main()
