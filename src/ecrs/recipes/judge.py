"""`ecrs judge MODE ...`: rate recommender replies with an LLM judge on ECR's five dimensions
(ecrs.evaluation.judge), and compare it with people.

    ecrs judge pairwise --a A.jsonl --b B.jsonl --out verdicts.jsonl [--backend llama|openai [--logprobs] ...]
    ecrs judge pairwise ... --dimensions emotional_intensity,lifelikeness   # one question per dimension
    ecrs judge absolute replies.jsonl --out scores.jsonl
    ecrs judge agreement verdicts1.jsonl verdicts2.jsonl            # kappa between two judges
    ecrs judge export-form --a A.jsonl --b B.jsonl --n 30 --out form.csv   # + form.html, form.key.json
    ecrs judge import-form filled.csv [more.csv ...] --key form.key.json [--judge verdicts.jsonl]

Reply files: JSONL, one {"id", "reply" (or "response"/"text"), "context"?} a line, e.g. the generation outputs of
benchmarks/generation_eval.py. "context" is the dialogue so far: a string, or a list of [role, text] turns; it is
taken from --context FILE when given, else from A's rows, else B's. Pairwise rows carry position-calibrated verdicts
("calibrated") when the backend returned token log-probabilities: the local judge always, an endpoint with
--logprobs."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ecrs.errors import DataError, EcrsError


def _backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("llama", "openai"), default="llama",
                   help="local GGUF via llama.cpp or an OpenAI-compatible endpoint (default: %(default)s)")
    p.add_argument("--gguf", help="judge GGUF (default: Qwen2.5-Coder-1.5B-Instruct Q4_K_M, installed on first use)")
    p.add_argument("--threads", type=int, default=2, help="llama.cpp threads (default: %(default)s)")
    p.add_argument("--n-ctx", type=int, default=4096, help="llama.cpp context size (default: %(default)s)")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. https://api.openai.com/v1")
    p.add_argument("--model", help="model name sent to the endpoint")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="variable holding the API key (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per HTTP request (default: %(default)s)")
    p.add_argument("--logprobs", action="store_true",
                   help="--backend openai: also ask for token log-probabilities, for position-calibrated verdicts "
                        "(the local llama.cpp judge always returns them)")
    p.add_argument("--concurrency", type=int, default=1, help="parallel HTTP requests (default: %(default)s)")
    p.add_argument("--attempts", type=int, default=3, help="tries per answer (default: %(default)s)")
    p.add_argument("--cache", default="artifacts/judge/cache.sqlite",
                   help="answer cache; a rerun asks only for what is not in it (default: %(default)s)")
    p.add_argument("--max-turns", type=int, default=4, help="dialogue turns shown to the judge (default: %(default)s)")
    p.add_argument("--limit", type=int, help="judge only the first N items")
    p.add_argument("--out", required=True, help="output JSONL (one row per item; summary to OUT.summary.json)")
    p.add_argument("--no-progress", action="store_true")


def _pair_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--a", required=True, help="replies of system A (JSONL)")
    p.add_argument("--b", required=True, help="replies of system B (JSONL)")
    p.add_argument("--context", help='JSONL of {"id", "context"}: the dialogue of each id')
    p.add_argument("--a-name", help="name of system A in the output (default: file stem)")
    p.add_argument("--b-name", help="name of system B (default: file stem)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="mode", required=True)
    pw = sub.add_parser("pairwise", help="A vs B per dimension, both orders")
    _pair_args(pw)
    pw.add_argument("--dimensions", help="ask one question per dimension instead of all five in one answer, for "
                                         "these (comma-separated), e.g. emotional_intensity,lifelikeness")
    _backend_args(pw)
    ab = sub.add_parser("absolute", help="0-9 score per dimension")
    ab.add_argument("input", help="replies (JSONL)")
    ab.add_argument("--context", help='JSONL of {"id", "context"}')
    _backend_args(ab)
    ag = sub.add_parser("agreement", help="Cohen's kappa between two judges' pairwise outputs")
    ag.add_argument("x")
    ag.add_argument("y")
    ex = sub.add_parser("export-form", help="blinded rating form for people (CSV + HTML + key)")
    _pair_args(ex)
    ex.add_argument("--n", type=int, default=30, help="items in the form (default: %(default)s)")
    ex.add_argument("--seed", type=int, default=0)
    ex.add_argument("--max-turns", type=int, default=4)
    ex.add_argument("--out", required=True, help="form CSV; FORM.html and FORM.key.json are written beside it")
    im = sub.add_parser("import-form", help="read filled forms; kappa between people and with the judge")
    im.add_argument("forms", nargs="+", help="filled CSV files, one per rater")
    im.add_argument("--key", help="the form's key file (default: beside the first CSV)")
    im.add_argument("--judge", help="pairwise judge output on the same ids, to compare with")
    im.add_argument("--out", help="write the report JSON here as well")


# ---------------------------------------------------------------- input files

def _read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    from ecrs.data.bundle import iter_jsonl

    p = Path(path)
    if not p.exists():
        raise DataError("file not found", p)
    rows = []
    for lineno, row in iter_jsonl(p):
        if not isinstance(row, dict) or not isinstance(row.get("id"), (str, int)) or isinstance(row["id"], bool):
            raise DataError('expected an object with "id" (string or integer)', p, lineno)
        row["_line"] = lineno
        rows.append(row)
    if not rows:
        raise DataError("no rows", p)
    return rows


def _replies(path: str) -> dict[str, dict[str, Any]]:
    out = {}
    for row in _read_jsonl(path):
        text = next((row[k] for k in ("reply", "response", "text") if k in row), None)
        if not isinstance(text, str):
            raise DataError('expected "reply" (or "response"/"text") as a string', path, row["_line"])
        ctx = row.get("context", "")
        if not isinstance(ctx, (str, list)):
            raise DataError('"context" must be a string or a list of [role, text]', path, row["_line"])
        iid = str(row["id"])
        if iid in out:
            raise DataError(f"duplicate id {iid!r}", path, row["_line"])
        out[iid] = {"reply": text, "context": ctx}
    return out


def _context(ctx: Any, max_turns: int) -> str:
    from ecrs.evaluation.judge import render_context

    if isinstance(ctx, list):
        if not all(isinstance(t, (list, tuple)) and len(t) == 2 and all(isinstance(x, str) for x in t) for t in ctx):
            raise EcrsError('"context" lists must hold [role, text] pairs of strings')
        return render_context([tuple(t) for t in ctx], max_turns=max_turns)
    return render_context(ctx or "", max_turns=max_turns)


def _contexts(args: argparse.Namespace) -> dict[str, Any]:
    if not args.context:
        return {}
    return {str(r["id"]): r.get("context", "") for r in _read_jsonl(args.context)}


def _pair_items(args: argparse.Namespace):
    from ecrs.evaluation.judge import PairItem

    a, b = _replies(args.a), _replies(args.b)
    ids = [i for i in a if i in b]
    if not ids:
        raise EcrsError(f"{args.a} and {args.b} share no id")
    ctx = _contexts(args)
    a_name = args.a_name or Path(args.a).name.split(".")[0]
    b_name = args.b_name or Path(args.b).name.split(".")[0]
    return [PairItem(i, _context(ctx.get(i) or a[i]["context"] or b[i]["context"], args.max_turns),
                     a[i]["reply"], b[i]["reply"], a_name, b_name) for i in ids]


# ---------------------------------------------------------------- judge runs

def _make_judge(args: argparse.Namespace):
    from ecrs.evaluation.judge import Judge, JudgeLlamaBackend, JudgeOpenAIBackend

    if args.backend == "openai":
        if not (args.base_url and args.model):
            raise EcrsError("--backend openai needs --base-url and --model")
        backend = JudgeOpenAIBackend(args.base_url, args.model, logprobs=args.logprobs,
                                     api_key=os.environ.get(args.api_key_env) or None, timeout=args.timeout,
                                     max_tokens=200, max_concurrency=max(1, args.concurrency))
    else:
        if args.base_url or args.model or args.logprobs:
            raise EcrsError("--base-url/--model/--logprobs are for --backend openai; a local model is --gguf PATH")
        backend = JudgeLlamaBackend(args.gguf, n_threads=args.threads, n_ctx=args.n_ctx)
    return Judge(backend, cache=args.cache, attempts=args.attempts, concurrency=args.concurrency)


def _write(out: str, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    Path(f"{out}.summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


def _run_judge(args: argparse.Namespace) -> int:
    from ecrs.evaluation.judge import ReplyItem, summarize_absolute, summarize_pairwise

    if args.mode == "pairwise":
        items = _pair_items(args)
    else:
        ctx = _contexts(args)
        items = [ReplyItem(i, _context(ctx.get(i) or r["context"], args.max_turns), r["reply"])
                 for i, r in _replies(args.input).items()]
    items = items[:args.limit] if args.limit else items
    judge = _make_judge(args)
    try:
        if args.mode == "pairwise":
            dims = [d.strip() for d in args.dimensions.split(",")] if args.dimensions else None
            rows = judge.pairwise(items, progress=not args.no_progress, dimensions=dims)
            summary = summarize_pairwise(rows)
        else:
            rows = judge.absolute(items, progress=not args.no_progress)
            summary = summarize_absolute(rows)
    finally:
        judge.backend.close()
        if judge.cache is not None:
            judge.cache.close()
    summary.update({**judge.meta, "requests": judge.requests, "cache_hits": judge.cache_hits})
    summary["prompt_version"] = next((r["prompt_version"] for r in rows if "prompt_version" in r),
                                     summary["prompt_version"])
    _write(args.out, rows, summary)
    failed = sum("failed" in r for r in rows)
    print(f"{judge.backend.name} {judge.backend.model}: {len(rows) - failed} judged, {failed} failed "
          f"({judge.requests} requests, {judge.cache_hits} from cache) -> {args.out}", file=sys.stderr)
    return 0


def _outcomes(path: str) -> dict[str, dict[str, str]]:
    """{id: {dim: a|b|tie}} of a pairwise judge output."""
    out = {}
    for row in _read_jsonl(path):
        if "failed" in row:
            continue
        if not isinstance(row.get("preference"), dict):
            raise DataError('expected a pairwise judge row with "preference"', path, row["_line"])
        out[str(row["id"])] = row["preference"]
    return out


def run(args: argparse.Namespace) -> int:
    from ecrs.evaluation.judge import export_form, import_form, preference_kappa

    if args.mode in ("pairwise", "absolute"):
        return _run_judge(args)
    if args.mode == "agreement":
        print(json.dumps(preference_kappa(_outcomes(args.x), _outcomes(args.y))))
        return 0
    if args.mode == "export-form":
        if args.n < 1:
            raise EcrsError(f"--n must be >= 1, got {args.n}")
        paths = export_form(_pair_items(args), args.out, n=args.n, seed=args.seed)
        print("wrote " + ", ".join(map(str, paths)) + f" (keep {paths[2].name} from the raters)", file=sys.stderr)
        return 0
    # import-form
    key = args.key or str(Path(args.forms[0]).with_suffix(".key.json"))
    raters = {f: import_form(f, key) for f in args.forms}
    report: dict[str, Any] = {"raters": {f: sum(len(v) for v in r.values()) for f, r in raters.items()},
                              "between_raters": {}, "rater_vs_judge": {}}
    names = list(raters)
    for i, x in enumerate(names):
        for y in names[i + 1:]:
            report["between_raters"][f"{x} vs {y}"] = preference_kappa(raters[x], raters[y])
    if args.judge:
        judged = _outcomes(args.judge)
        for f, r in raters.items():
            report["rater_vs_judge"][f] = preference_kappa(r, judged)
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0
