"""`ecrs annotate-emotions (INPUT.jsonl | --sample-bundled N) --out OUT.jsonl [--config FILE.yaml] [--set key=value]`:
label utterances with the nine ECR emotions by an LLM (docs/ANNOTATION.md). The model is the config's `llm:`
section (`ecrs.inference.llm.LLMConfig`): an OpenAI-compatible endpoint (`--set llm.base_url=URL --set
llm.model=NAME`) or a local GGUF model through llama.cpp (`llm.gguf`, default the installed SmolLM2-135M)."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field

from ecrs.config import add_config_arguments, load_config, save_config
from ecrs.errors import EcrsError
from ecrs.inference.llm import LLMConfig, make_backend
from ecrs.training.annotate import annotate, read_items, sample_bundled


@dataclass
class AnnotateConfig:
    llm: LLMConfig = field(default_factory=LLMConfig)
    keep_raw: bool = False              # store the model's raw answer in each output row
    retry_failed: bool = True           # retry the utterances OUT.failed.jsonl holds from an earlier run
    max_consecutive_errors: int = 5     # utterances failing in a row on backend errors that stop the run


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", nargs="?", help='JSONL of {"id", "text", "context"?, "labels"? (gold)} per line')
    p.add_argument("--sample-bundled", type=int, metavar="N",
                   help="instead of INPUT: N bundled annotated ReDial utterances (their labels are the gold for "
                        "the agreement report)")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample-bundled (default: %(default)s)")
    p.add_argument("--out", required=True,
                   help="output JSONL (appended; rerun to resume); failures go to OUT.failed.jsonl, the "
                        "agreement report to OUT.report.json, the resolved config to OUT.config.yaml")
    add_config_arguments(p, AnnotateConfig, "llm.base_url=http://127.0.0.1:8080/v1 --set llm.model=local")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(AnnotateConfig, args.config, args.set)
    if (args.input is None) == (args.sample_bundled is None):
        raise EcrsError("give INPUT.jsonl or --sample-bundled N (one of them)")
    items = read_items(args.input) if args.input else sample_bundled(args.sample_bundled, args.seed)
    backend = make_backend(cfg.llm)
    save_config(cfg, f"{args.out}.config.yaml")
    try:
        s = annotate(items, backend, args.out, retry=cfg.llm.retry(), keep_raw=cfg.keep_raw,
                     retry_failed=cfg.retry_failed, max_consecutive_errors=cfg.max_consecutive_errors,
                     progress=not args.no_progress)
    finally:
        backend.close()
    print(f"{backend.name} {backend.model}: {s.labelled} labelled, {s.failed} failed, {s.skipped} already done "
          f"of {s.n_items} in {s.seconds:.1f} s -> {s.out}" + (f" (failures: {s.failed_file})" if s.failed else ""),
          file=sys.stderr)
    if s.report is not None:
        r = s.report
        keys = ("n_gold", "n_labelled", "n_failed", "primary_agreement", "kappa_primary", "hit_rate")
        print(json.dumps({k: r[k] for k in keys}))
    return 1 if s.failed and not s.labelled else 0  # nothing labelled: the run failed, whatever it wrote
