"""Example converter: raw ReDial dialogues -> the own-data JSONL format (docs/OWN_DATA.md).

Usage: python scripts/redial_to_own.py data/redial/test.jsonl.gz out.jsonl [--limit N]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ecrs.data.dialogues import dump_own, load_redial
from ecrs.data.kg import load_redial_kg, redial_movie_entities, redial_titles


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    kg = load_redial_kg()
    n = 0
    with args.dst.open("w") as out:
        for d in load_redial(args.src, redial_movie_entities(kg), redial_titles()):
            out.write(json.dumps(dump_own(d, lambda e: kg.id2entity[e]), ensure_ascii=False) + "\n")
            n += 1
            if args.limit and n >= args.limit:
                break
    print(f"wrote {n} dialogues to {args.dst}")


if __name__ == "__main__":
    main()
