"""`ecrs annotate-emotions (INPUT.jsonl | --sample-bundled N) --out OUT.jsonl [backend options]`: label
utterances with the nine ECR emotions by an LLM (docs/ANNOTATION.md). Backend: an OpenAI-compatible chat endpoint
(`--base-url URL --model NAME`) or a local GGUF model through llama.cpp (`--gguf PATH`, default SmolLM2-135M)."""
from __future__ import annotations

import argparse
import json
import os
import sys

from ecrs.errors import EcrsError


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("input")
    src.add_argument("input", nargs="?", help='JSONL of {"id", "text", "context"?, "labels"? (gold)} per line')
    src.add_argument("--sample-bundled", type=int, metavar="N",
                     help="instead of INPUT: N bundled annotated ReDial utterances (their labels are the gold for "
                          "the agreement report)")
    src.add_argument("--seed", type=int, default=0, help="seed of --sample-bundled (default: %(default)s)")
    p.add_argument("--out", required=True,
                   help="output JSONL (appended; rerun to resume); failures go to OUT.failed.jsonl, the "
                        "agreement report to OUT.report.json")
    http = p.add_argument_group("OpenAI-compatible endpoint")
    http.add_argument("--base-url", help="e.g. https://api.openai.com/v1 or http://127.0.0.1:8080/v1")
    http.add_argument("--model", help="model name sent to the endpoint (required with --base-url)")
    http.add_argument("--api-key-env", default="OPENAI_API_KEY",
                      help="environment variable holding the API key; unset = no key (default: %(default)s)")
    http.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default: %(default)s)")
    http.add_argument("--concurrency", type=int, default=1,
                      help="parallel requests (HTTP only; default: %(default)s)")
    local = p.add_argument_group("local llama.cpp model")
    local.add_argument("--gguf", help="GGUF chat model (default: the installed SmolLM2-135M-Instruct)")
    local.add_argument("--threads", type=int, default=2, help="llama.cpp threads (default: %(default)s)")
    local.add_argument("--n-ctx", type=int, default=2048, help="llama.cpp context size (default: %(default)s)")
    p.add_argument("--json-schema", action=argparse.BooleanOptionalAction, default=None,
                   help="constrain the answer to the label JSON schema (default: on for --gguf, off for HTTP, "
                        "where it is sent as response_format)")
    p.add_argument("--max-tokens", type=int, default=64, help="answer length limit (default: %(default)s)")
    p.add_argument("--attempts", type=int, default=3,
                   help="tries per utterance on HTTP errors, timeouts, unparseable answers (default: %(default)s)")
    p.add_argument("--backoff", type=float, default=1.0,
                   help="first retry delay in seconds, doubled per retry, capped at 30 (default: %(default)s)")
    p.add_argument("--skip-failed", action="store_true",
                   help="do not retry utterances recorded in OUT.failed.jsonl by an earlier run")
    p.add_argument("--keep-raw", action="store_true", help="store the model's raw answer in each output row")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def make_backend(args: argparse.Namespace):
    from ecrs.training.annotate import LlamaCppBackend, OpenAIChatBackend

    if args.base_url:
        if args.gguf:
            raise EcrsError("give either --base-url or --gguf, not both")
        if not args.model:
            raise EcrsError("--base-url needs --model (the model name the endpoint serves)")
        return OpenAIChatBackend(args.base_url, args.model, api_key=os.environ.get(args.api_key_env) or None,
                                 timeout=args.timeout, max_tokens=args.max_tokens,
                                 json_schema=bool(args.json_schema), max_concurrency=max(1, args.concurrency))
    if args.model:
        raise EcrsError("--model names a model of an HTTP endpoint; for a local model use --gguf PATH")
    return LlamaCppBackend(args.gguf, n_threads=args.threads, n_ctx=args.n_ctx, max_tokens=args.max_tokens,
                           json_schema=args.json_schema is not False)


def run(args: argparse.Namespace) -> int:
    from ecrs.training.annotate import annotate, read_items, sample_bundled

    if (args.input is None) == (args.sample_bundled is None):
        raise EcrsError("give INPUT.jsonl or --sample-bundled N (one of them)")
    items = read_items(args.input) if args.input else sample_bundled(args.sample_bundled, args.seed)
    backend = make_backend(args)
    try:
        s = annotate(items, backend, args.out, attempts=args.attempts, backoff=args.backoff,
                     concurrency=args.concurrency, keep_raw=args.keep_raw, retry_failed=not args.skip_failed,
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
    return 0
