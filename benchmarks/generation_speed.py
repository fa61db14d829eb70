"""Decode speed of the served generator vs the raw base model, both in llama.cpp (ECR_SPEC §8: replies in about a
second on a laptop CPU, streamed).

    .venv/bin/python benchmarks/generation_speed.py [--model artifacts/generator/smollm2] [--runs 7]

with OMP_WAIT_POLICY unset: it slows llama.cpp 3x (docs/MODELS.md).
(a) the base SmolLM2-135M-Instruct Q4_1 GGUF as shipped, (b) our fine-tuned model merged and written back as Q8_0.
Both are loaded in this one process (n_threads=2) and measured
interleaved, run by run, so machine load hits both alike. Per run and model:
  decode_tok_s  llama.cpp's own `predicted_per_second` for 128 forced tokens (ignore_eos) after a ~100-token
                generator prompt, prompt cache off: the bar compares (b) / (a) of the medians;
  serve_tok_s   tokens / wall time of our serving path (`LlamaCppEngine.stream`: greedy + exact no-repeat-3-gram
                with cancel/ban/resume), 60 tokens, prompt processing included (a new movie each run, so only
                the shared system-prompt prefix is cached, as in a chat);
  first_piece_s time to the first streamed piece of that path (prompt processing + first token).
The transformers fp32 fallback is timed once for 32 tokens, for comparison.
Writes benchmarks/results/generation_speed.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from ecrs.data.reviews import load_review_kb
from ecrs.evaluation.results import write_results
from ecrs.inference.llama import LlamaCppEngine, export_merged_gguf
from ecrs.inference.model_files import smollm2_gguf
from ecrs.inference.prompts import render, serve_prompt

RESULTS = Path("benchmarks/results/generation_speed.json")


def export_candidate(model: Path, qtype: str) -> Path:
    """The fine-tune of `model` (its saved peft adapter) merged into the base GGUF as `qtype`, beside model.gguf."""
    from safetensors.torch import load_file

    cfg = json.loads((model / "adapter" / "adapter_config.json").read_text())
    state = load_file(str(model / "adapter" / "adapter_model.safetensors"))
    return export_merged_gguf(smollm2_gguf(), state, cfg["lora_alpha"] / cfg["r"], model / f"model.{qtype.lower()}.gguf",
                              qtype)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="artifacts/generator/smollm2")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--hf", action="store_true", help="also time the transformers fallback (slow)")
    ap.add_argument("--candidate-qtype", choices=("Q5_1",),
                    help="also write the merged fine-tune as this type (MODEL/model.<qtype>.gguf, from MODEL/adapter) "
                         "and measure it in the same interleaved runs: speed, and greedy agreement with the served file")
    ap.add_argument("--machine-note", default="", help="what else ran on the machine during the measurement")
    args = ap.parse_args()
    if "OMP_WAIT_POLICY" in os.environ:
        print("warning: OMP_WAIT_POLICY is set; llama.cpp decodes ~3x slower with PASSIVE")
    kb = load_review_kb()
    # A different movie each run: in a chat every turn's prompt is new (only the system prefix is cached).
    movies = kb.with_reviews()[:: max(1, len(kb.with_reviews()) // (args.runs + 1))][: args.runs + 1]
    prompts = [render(serve_prompt(m, [("seeker", "I loved The Godfather, any other great dramas?")],
                                   [("like", 0.8), ("curious", 0.3)]), "chat") for m in movies]
    prompt = prompts[-1]
    files = {"base_q4_1": smollm2_gguf(), "finetuned_q8_0": Path(args.model) / "model.gguf"}
    if args.candidate_qtype:
        files[f"candidate_{args.candidate_qtype.lower()}"] = export_candidate(Path(args.model), args.candidate_qtype)
    engines = {k: LlamaCppEngine.open(p, n_threads=2) for k, p in files.items()}
    for e in engines.values():  # warm-up: the first request of a fresh server is slow
        e.decode_speed(prompt, 16)
        e.generate(prompt, 8)
    runs: dict[str, dict[str, list[float]]] = {k: {"decode_tok_s": [], "serve_tok_s": [], "first_piece_s": []}
                                               for k in engines}
    load_before = os.getloadavg()
    for r in range(args.runs):
        for name, e in engines.items():
            t0 = time.perf_counter()
            first = None
            n = 0
            for _ in e.stream(prompts[r], 60, no_repeat_ngram=3, stop_at_newline=False):
                first = first if first is not None else time.perf_counter() - t0
            n = e.last.tokens
            wall = time.perf_counter() - t0
            runs[name]["serve_tok_s"].append(n / wall)
            runs[name]["first_piece_s"].append(first or wall)
            runs[name]["decode_tok_s"].append(e.decode_speed(prompts[r], 128))  # after: the stream saw a cold prompt
        print(f"run {r}: " + ", ".join(f"{k} {v['decode_tok_s'][-1]:.1f} tok/s" for k, v in runs.items()),
              flush=True)
    load_after = os.getloadavg()
    candidates = {}
    for name in (k for k in engines if k.startswith("candidate_")):
        # Greedy tokens of each run's prompt, candidate vs the served file: how much the export type changes replies.
        pairs = [(engines["finetuned_q8_0"].greedy_ids(p, 32), engines[name].greedy_ids(p, 32)) for p in prompts]
        same_prefix = [next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b))) for a, b in pairs]
        candidates[name] = {
            "decode_ratio_vs_base": round(statistics.median(runs[name]["decode_tok_s"])
                                          / statistics.median(runs["base_q4_1"]["decode_tok_s"]), 3),
            "paired_ratio_median": round(statistics.median(
                b / a for a, b in zip(runs["base_q4_1"]["decode_tok_s"], runs[name]["decode_tok_s"])), 3),
            "greedy_identical_to_served_32_tokens": round(sum(a == b for a, b in pairs) / len(pairs), 3),
            "greedy_mean_common_prefix_tokens": round(sum(same_prefix) / len(pairs), 1),
            "prompts": len(pairs),
        }
    med = {k: {m: round(statistics.median(v), 2) for m, v in ms.items()} for k, ms in runs.items()}
    ratio = med["finetuned_q8_0"]["decode_tok_s"] / med["base_q4_1"]["decode_tok_s"]
    paired = statistics.median(b / a for a, b in zip(runs["base_q4_1"]["decode_tok_s"],
                                                     runs["finetuned_q8_0"]["decode_tok_s"]))
    metrics = {
        "decode_ratio_finetuned_vs_base": round(ratio, 3),
        "bar_met": ratio >= 0.9,
        "paired_ratio_median": round(paired, 3),  # median over runs of (b)/(a) measured back to back
        "median": med,
        "runs": {k: {m: [round(x, 2) for x in v] for m, v in ms.items()} for k, ms in runs.items()},
    }
    if candidates:
        metrics["candidates"] = candidates  # measured, not served: the served file stays finetuned_q8_0
    if args.hf:
        import torch

        from ecrs.inference.hf_decode import HFEngine

        torch.set_num_threads(1)  # MODELS.md: in a process that also runs llama.cpp
        meta = json.loads((Path(args.model) / "generator.json").read_text())
        hf = HFEngine.open(meta["base"], Path(args.model) / meta["adapter"])
        hf.generate(prompt, 4)
        t0 = time.perf_counter()
        ids = hf.greedy_ids(prompt, 32)
        metrics["transformers_fp32_fallback_tok_s"] = round(len(ids) / (time.perf_counter() - t0), 2)
    write_results(
        RESULTS, "generation_speed", metrics, data={k: {"path": str(p), "mb": round(p.stat().st_size / 2**20, 1)} for k, p in files.items()},
        machine={"loadavg_1m_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
                 "note": (args.machine_note + "; " if args.machine_note else "")
                         + "absolute tok/s vary with load, the interleaved ratio much less"},
        bar="decode tok/s of the served fine-tuned GGUF >= 90 % of the raw base GGUF, same machine, one run",
        n_runs=args.runs, prompt_tokens_approx=len(prompt) // 4, threads=2)
    print(json.dumps({k: metrics[k] for k in ("decode_ratio_finetuned_vs_base", "paired_ratio_median", "bar_met",
                                          "median")}, indent=1))


if __name__ == "__main__":
    main()
