"""One-off: the results files of earlier code into the one schema of ecrs.evaluation.results, by moving keys only
(no number changes; what the old file did not record stays null). Run once, then removed.

    python benchmarks/migrate_results.py
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from ecrs.evaluation.evaluate import headline

RESULTS = Path("benchmarks/results")
COMMIT = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()


def moved_provenance(d: dict[str, Any]) -> dict[str, Any]:
    """The old flat keys of `d`, moved (popped) into one provenance; `git_dirty` (a bool) stays as recorded."""
    prov = {"command": d.pop("command", None), "commit": d.pop("git_commit", None),
            "dirty_files": d.pop("git_dirty_files", None), "machine": d.pop("machine", None),
            "data": d.pop("data", None)}
    if "git_dirty" in d:
        prov["git_dirty"] = d.pop("git_dirty")
    return prov


def write(name: str, metrics: Any, provenance: dict[str, Any], **rest: Any) -> None:
    out = {"benchmark": name, "metrics": metrics, "provenance": provenance, **rest, "migrated_from_commit": COMMIT}
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")


def load(name: str) -> dict[str, Any]:
    return json.loads((RESULTS / f"{name}.json").read_text())


def rows_file(name: str) -> None:
    rows = load(name).pop("rows")
    for r in rows:
        r["provenance"] = moved_provenance(r)
    # the file as a whole recorded no provenance: only its rows did
    write(name, headline(rows), moved_provenance({}), rows=rows)


def main() -> None:
    rows_file("recommendation")
    rows_file("recommendation_paired")

    gen = load("generation")
    ev, speed, gpu_check, notes = gen.pop("evaluation"), gen.pop("speed"), gen.pop("gpu_check"), gen.pop("notes")
    speed_notes = [n for n in notes if n.startswith("Speed (")]
    metrics, prov, definitions = ev.pop("table"), moved_provenance(ev), ev.pop("metrics")
    write("generation", metrics, prov, definitions=definitions, evaluation=ev,
          notes=[n for n in notes if n not in speed_notes], **gen)

    prov = moved_provenance(speed)
    prov["data"] = speed.pop("files")
    measured = ("decode_ratio_finetuned_vs_base", "bar_met", "paired_ratio_median", "median", "runs", "candidates",
                "transformers_fp32_fallback_tok_s")
    write("generation_speed", {k: speed.pop(k) for k in measured if k in speed}, prov, **speed, notes=speed_notes)
    gpu = Path("experiments/does-the-generator-train-on-a-gpu/gpu_check.json")
    gpu.write_text(json.dumps(gpu_check, indent=1, ensure_ascii=False) + "\n")

    serving = load("serving")
    del serving["benchmark"]  # "serving_load": the schema names a benchmark by its file
    prov, results = moved_provenance(serving), serving.pop("results")
    write("serving", results, prov, **serving)

    lat = load("recommender_latency")
    prov = moved_provenance(lat)
    measured = ("turn_ms", "encode_new_utterance_ms", "recommend_ms", "load_seconds")
    write("recommender_latency", {k: lat.pop(k) for k in measured}, prov, **lat)

    sim = load("simulator")
    setup, runs = sim.pop("setup"), sim.pop("runs")
    write("simulator", runs, moved_provenance(setup), setup=setup, **sim)


if __name__ == "__main__":
    main()
