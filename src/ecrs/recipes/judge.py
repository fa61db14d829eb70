"""`ecrs judge MODE ...`: compare two systems' recommender replies with an LLM judge (ecrs.evaluation.judge), and
compare the judge with people.

    ecrs judge pairwise --a A.jsonl --b B.jsonl --out verdicts.jsonl [--config judge.yaml] [--set key=value ...]
    ecrs judge agreement verdicts1.jsonl verdicts2.jsonl            # kappa between two judges
    ecrs judge export-form --a A.jsonl --b B.jsonl --n 30 --out form.csv   # + form.html, form.key.json
    ecrs judge import-form filled.csv [more.csv ...] --key form.key.json [--judge verdicts.jsonl]

`pairwise` asks each of the config's `dimensions` (default emotional_intensity and lifelikeness, the ones the local
judge qualified on) the way the judge passed its controls, and writes one row per pair with "verdict": {dim: a | b |
tie}. The judge model is the config's `llm:` section (`ecrs.inference.llm.LLMConfig`; default the local
Qwen2.5-Coder-1.5B GGUF, installed on first use), e.g. `--set llm.base_url=URL --set llm.model=NAME --set
llm.logprobs=true` for an OpenAI-compatible endpoint that returns log-probabilities (position-calibrated verdicts).

Reply files: JSONL, one {"id", "reply" (or "response"/"text"), "context"?} a line, e.g. the generation outputs of
benchmarks/generation_eval.py. "context" is the dialogue so far: a string, or a list of [role, text] turns; it is
taken from --context FILE when given, else from A's rows, else B's."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecrs.config import add_config_arguments, load_config, save_config
from ecrs.data.bundle import iter_jsonl
from ecrs.errors import DataError, EcrsError
from ecrs.evaluation.judge import (
    DEFAULT_DIMENSIONS,
    DIMENSIONS,
    Judge,
    PairItem,
    export_form,
    import_form,
    preference_kappa,
    render_context,
    summarize_compare,
)
from ecrs.inference.llm import LLMConfig, make_backend
from ecrs.inference.model_files import qwen_gguf


@dataclass
class JudgeConfig:
    llm: LLMConfig = field(default_factory=LLMConfig)  # llm.gguf unset = Qwen2.5-Coder-1.5B-Instruct Q4_K_M
    dimensions: list[str] = field(default_factory=lambda: list(DEFAULT_DIMENSIONS))
    cache: str | None = "artifacts/judge/cache.sqlite"  # answer cache (a rerun asks only what is new); null = none

    def __post_init__(self) -> None:
        unknown = sorted(set(self.dimensions) - set(DIMENSIONS))
        if unknown or not self.dimensions:
            raise ValueError(f"dimensions must be some of {', '.join(DIMENSIONS)}; got {unknown or 'none'}")


def _pair_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--a", required=True, help="replies of system A (JSONL)")
    p.add_argument("--b", required=True, help="replies of system B (JSONL)")
    p.add_argument("--context", help='JSONL of {"id", "context"}: the dialogue of each id')
    p.add_argument("--a-name", help="name of system A in the output (default: file stem)")
    p.add_argument("--b-name", help="name of system B (default: file stem)")
    p.add_argument("--max-turns", type=int, default=4, help="dialogue turns shown (default: %(default)s)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="mode", required=True)
    pw = sub.add_parser("pairwise", help="A vs B on each dimension, asked the way the judge qualified")
    _pair_args(pw)
    pw.add_argument("--out", required=True,
                    help="output JSONL (one row per pair; summary to OUT.summary.json, config to OUT.config.yaml)")
    pw.add_argument("--limit", type=int, help="judge only the first N pairs")
    add_config_arguments(pw, JudgeConfig, "llm.gguf=model.gguf --set dimensions=[emotional_intensity]")
    pw.add_argument("--no-progress", action="store_true")
    ag = sub.add_parser("agreement", help="Cohen's kappa between two judges' pairwise outputs")
    ag.add_argument("x")
    ag.add_argument("y")
    ex = sub.add_parser("export-form", help="blinded rating form for people (CSV + HTML + key)")
    _pair_args(ex)
    ex.add_argument("--n", type=int, default=30, help="items in the form (default: %(default)s)")
    ex.add_argument("--seed", type=int, default=0)
    ex.add_argument("--out", required=True, help="form CSV; FORM.html and FORM.key.json are written beside it")
    im = sub.add_parser("import-form", help="read filled forms; kappa between people and with the judge")
    im.add_argument("forms", nargs="+", help="filled CSV files, one per rater")
    im.add_argument("--key", help="the form's key file (default: beside the first CSV)")
    im.add_argument("--judge", help="pairwise judge output on the same ids, to compare with")
    im.add_argument("--out", help="write the report JSON here as well")


# ---------------------------------------------------------------- input files

def _read_jsonl(path: str | Path) -> list[dict[str, Any]]:
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
    if isinstance(ctx, list):
        if not all(isinstance(t, (list, tuple)) and len(t) == 2 and all(isinstance(x, str) for x in t) for t in ctx):
            raise EcrsError('"context" lists must hold [role, text] pairs of strings')
        return render_context([tuple(t) for t in ctx], max_turns=max_turns)
    return render_context(ctx or "", max_turns=max_turns)


def _contexts(args: argparse.Namespace) -> dict[str, Any]:
    if not args.context:
        return {}
    return {str(r["id"]): r.get("context", "") for r in _read_jsonl(args.context)}


def _pair_items(args: argparse.Namespace) -> list[PairItem]:
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

def _run_judge(args: argparse.Namespace) -> int:
    cfg = load_config(JudgeConfig, args.config, args.set)
    items = _pair_items(args)
    items = items[:args.limit] if args.limit else items
    judge = Judge(make_backend(cfg.llm, default_gguf=qwen_gguf), cache=cfg.cache, retry=cfg.llm.retry())
    save_config(cfg, f"{args.out}.config.yaml")
    try:
        rows = judge.compare(items, cfg.dimensions, progress=not args.no_progress)
    finally:
        judge.close()
    summary = {**summarize_compare(rows), **judge.meta, "requests": judge.requests, "cache_hits": judge.cache_hits}
    p = Path(args.out)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    Path(f"{args.out}.summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
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
        if not isinstance(row.get("verdict"), dict):
            raise DataError('expected an `ecrs judge pairwise` row with "verdict"', path, row["_line"])
        out[str(row["id"])] = row["verdict"]
    return out


def run(args: argparse.Namespace) -> int:
    if args.mode == "pairwise":
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
