"""How many llama.cpp threads a reply model should use on this machine, quiet and with another process busy.

    .venv/bin/python benchmarks/llm_threads.py [--runs 5] [--models smollm2-tuned,qwen-1.5b]

with OMP_WAIT_POLICY unset (it slows llama.cpp 3x, docs/MODELS.md). For each model and thread count (1, 2), llama.cpp's
own decode rate (`predicted_per_second`, 64 forced tokens after a ~100-token prompt, prompt cache off), the median of
`--runs`, measured twice: quiet, and while another process spins one core (`busy`). A spinning thread pool waits
for its slowest thread, so with 2 threads on 2 cores one busy core stalls every token; the server's default
(`llm_threads`, ecrs.recipes.chat.BotConfig) is the count fastest under load. Writes
benchmarks/results/llm_threads.json.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from ecrs.evaluation.results import write_results
from ecrs.inference.llama import LlamaCppEngine
from ecrs.inference.model_files import resolve_base

RESULTS = Path("benchmarks/results/llm_threads.json")
PROMPT = ("You are a friendly movie fan. The person said: I had a long week and want something funny tonight. "
          "You recommend Groundhog Day (1993), a comedy starring Bill Murray about a weatherman who relives the same "
          "day again and again until he learns to be kind. Write two warm sentences about why they will enjoy it.")


def model_path(name: str) -> Path:
    return Path("artifacts/generator/smollm2/model.gguf") if name == "smollm2-tuned" else resolve_base(name)


def rate(engine: LlamaCppEngine, runs: int) -> float:
    return round(statistics.median(engine.decode_speed(PROMPT, 64) for _ in range(runs)), 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--models", default="smollm2-tuned,qwen-1.5b")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    if os.environ.get("OMP_WAIT_POLICY"):
        sys.exit("unset OMP_WAIT_POLICY first: it slows llama.cpp ~3x")
    rows: dict[str, dict[str, float]] = {}
    for name in args.models.split(","):
        for threads in (1, 2):
            engine = LlamaCppEngine.open(model_path(name), n_threads=threads)
            engine.decode_speed(PROMPT, 8)  # warm-up
            quiet = rate(engine, args.runs)
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            try:
                busy = rate(engine, args.runs)
            finally:
                spinner.kill()
                spinner.wait()
            rows[f"{name}/{threads}"] = {"quiet_tok_s": quiet, "busy_tok_s": busy}
            print(f"{name:14s} threads={threads}: quiet {quiet:6.1f} tok/s, one core busy {busy:6.1f} tok/s",
                  flush=True)
            del engine
    best = {name: max((1, 2), key=lambda t: rows[f"{name}/{t}"]["busy_tok_s"]) for name in args.models.split(",")}
    write_results(args.out, "llm_threads", {"decode": rows, "fastest_under_load": best},
                  data={"prompt_chars": len(PROMPT), "forced_tokens": 64, "runs": args.runs},
                  machine={"cpu_count": os.cpu_count(), "loadavg": os.getloadavg()},
                  command=" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]))


if __name__ == "__main__":
    main()
