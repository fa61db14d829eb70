"""Interactive evaluation with simulated seekers (iEvaLM style): `ecrs simulate` on seeded ReDial test dialogues,
each system against the rule-based seeker and the LLM seeker, results in benchmarks/results/simulator.json.

    nice -n 10 .venv/bin/python benchmarks/simulator.py [--n 100] [--n-llm 10] [--max-turns 5] [--threads 1]

with OMP_WAIT_POLICY unset: the LLM seeker decodes with llama.cpp in this process, ~3x slower with PASSIVE
(docs/MODELS.md); torch runs on --threads threads beside it.

Systems (the chat pipeline with the template reply; the reply does not change which movies are recommended):
  popularity   the popularity baseline fitted on the prepared ReDial train samples;
  ecr          the trained ECR recommender, artifacts/recommender/redial/ecr-fast-s0 (whatever is there when the
               script runs: its metrics.json is recorded beside the results).
Seekers: `rule` (templates) on --n dialogues, and `llm` (SmolLM2-135M-Instruct GGUF through llama.cpp, prompt
sim-v1) on the first --n-llm of the same sample (the sample is a prefix in sha256 order). Every run goes through
the CLI entry point (`ecrs.cli.main`) into a fresh folder under --out-dir, where the transcripts stay.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from ecrs.cli import main as ecrs_main
from ecrs.evaluation.results import write_results
from ecrs.evaluation.simulator import summarize

RESULTS = Path("benchmarks/results/simulator.json")
ECR_RUN = Path("artifacts/recommender/redial/ecr-fast-s0")
SYSTEMS = {"popularity": "popularity", "ecr": str(ECR_RUN)}
DEFINITIONS = {
    "success_at_k": "share of dialogues whose recommendations contained the target within k seeker turns",
    "mean_turns_to_success": "mean 1-based success turn over successful dialogues only (null if none)",
    "mean_rejections": "recommended movies in the turns before success (all turns if none), per dialogue",
    "leaks": "target-title mentions redacted from seeker messages (LLM seeker; the rule seeker quotes the real "
             "opening, which can name it too)",
    "fallbacks": "LLM seeker messages replaced by the rule-based message (backend error or empty answer)",
    "seconds_per_turn": "wall time / seeker turns, loading included, on the shared CPU",
}


def run_cli(out: Path, overrides: list[str]) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    full = ["simulate", *(x for o in overrides for x in ("--set", o)), "--out", str(out), "--no-progress"]
    t0 = time.perf_counter()
    argv = sys.argv
    rc = ecrs_main(full)
    sys.argv = argv  # main() sets it to the `ecrs` command line; the results record this script's command
    wall = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"ecrs {' '.join(full)}: exit {rc}")
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / "transcripts.jsonl").read_text().splitlines()]
    keep = ("simulator", "model", "prompt_version", "system", "n", "max_turns", "top_k", "success_at_k", "successes",
            "mean_turns_to_success", "mean_rejections", "leaks", "dialogues_with_leaks", "fallbacks", "turns")
    result = {k: summary[k] for k in keep}
    result["command"] = "ecrs " + " ".join(full)
    result["wall_seconds"] = round(wall, 1)  # pipeline (and LLM) loading included
    result["seconds_per_turn"] = round(wall / max(1, summary["turns"]), 3)
    # What the seekers actually said, so the LLM's messages can be judged without opening the transcripts.
    result["example"] = {"target_title": rows[0]["target_title"], "success_turn": rows[0]["success_turn"],
                         "seeker_messages": [t["seeker"] for t in rows[0]["turns"]],
                         "recommended": [[title for _, title in t["recommended"]] for t in rows[0]["turns"]]}
    print(json.dumps({k: result[k] for k in ("system", "simulator", "n", "success_at_k", "mean_turns_to_success",
                                             "mean_rejections", "leaks", "fallbacks", "wall_seconds")}))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100, help="dialogues for the rule-based seeker")
    ap.add_argument("--n-llm", type=int, default=10, help="dialogues for the LLM seeker (0 = skip it)")
    ap.add_argument("--max-turns", type=int, default=5)
    ap.add_argument("--top-k", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch and llama.cpp threads (1 is steadiest on a busy CPU)")
    ap.add_argument("--out-dir", default="artifacts/simulator_bench")
    args = ap.parse_args()
    out_dir = Path(args.out_dir)

    ecr_metrics = json.loads((ECR_RUN / "metrics.json").read_text()) if (ECR_RUN / "metrics.json").exists() else {}
    model_pt = ECR_RUN / "model.pt"
    setup = {
        "task": "iEvaLM-style interactive evaluation: a simulated seeker with a target movie from a ReDial test "
                "dialogue talks with the chat pipeline for up to max_turns turns; success = the target (entity id) "
                "is among the turn's recommendations",
        "systems": {"popularity": "pipeline + Popularity fitted on artifacts/data/redial train samples",
                    "ecr": {"run": str(ECR_RUN), "best_valid_R@50": ecr_metrics.get("best_valid_R@50"),
                            "best_epoch": ecr_metrics.get("best_epoch"), "finished": ecr_metrics.get("finished"),
                            "model_pt_mtime": time.strftime("%Y-%m-%dT%H:%M:%S",
                                                            time.localtime(model_pt.stat().st_mtime))
                            if model_pt.exists() else None}},
        "seekers": {"rule": "templates: the real opening + liked movies, then 'not quite' + one hint per turn "
                            "(genre, decade, a star, the director)",
                    "llm": "SmolLM2-135M-Instruct Q4_1 GGUF via llama.cpp, greedy, prompt sim-v1 (same hints); "
                           "title mentions redacted and counted"},
    }
    data = {"dialogues": "bundled redial/test.jsonl.gz", "seed": args.seed,
            "selection": "dialogues with a target (first recommender-suggested movie the seeker's questionnaire "
                         "marks liked, not mentioned before, in the catalogue), first n in sha256(f'{seed}:{id}') "
                         "order; the LLM runs use the first n_llm of the same order"}
    load_at_start = round(os.getloadavg()[0], 2)

    def save(runs: dict[str, dict]) -> None:  # after every run: a long benchmark keeps what it measured
        write_results(RESULTS, "simulator", runs, data=data, machine={"load_average_at_start": load_at_start}, setup=setup,
                      definitions=DEFINITIONS)

    runs: dict[str, dict] = {}
    common = [f"max_turns={args.max_turns}", f"top_k={args.top_k}", f"seed={args.seed}", f"threads={args.threads}"]
    for name, spec in SYSTEMS.items():
        runs[f"{name}/rule"] = run_cli(out_dir / f"{name}-rule", ["simulator=rule", f"n={args.n}",
                                                                   f"recommender={spec}", *common])
        save(runs)
    if args.n_llm:
        for name, spec in SYSTEMS.items():
            runs[f"{name}/llm"] = run_cli(out_dir / f"{name}-llm", ["simulator=llm", f"n={args.n_llm}",
                                                                     f"recommender={spec}", *common,
                                                                     f"llm.threads={args.threads}"])
            # The rule seeker on exactly the LLM's dialogues, for a like-for-like comparison.
            rows = [json.loads(x) for x in (out_dir / f"{name}-rule" / "transcripts.jsonl").read_text().splitlines()]
            s = summarize(rows[: args.n_llm], args.max_turns)
            runs[f"{name}/llm"]["rule_on_same_dialogues"] = {
                "success_at_k": s.success_at_k, "mean_turns_to_success": s.mean_turns_to_success,
                "mean_rejections": s.mean_rejections}
            save(runs)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
