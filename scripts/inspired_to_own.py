"""Example converter: INSPIRED dialogues (UniCRS format, bundled) -> the own-data JSONL format (docs/OWN_DATA.md).

Usage: python scripts/inspired_to_own.py data/inspired/test_data_dbpedia.jsonl.gz out.jsonl [--limit N]

Own data is linked against the ReDial graph, so each INSPIRED movie is kept as its DBpedia URI when that URI is a
ReDial graph entity and left out of `movies` otherwise (its title stays in the text; the count is printed).
INSPIRED has no questionnaire, so no `feedback`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from ecrs.data.dialogues import dump_own, load_inspired
from ecrs.data.kg import load_inspired_kg, load_redial_kg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    inspired, redial = load_inspired_kg(), load_redial_kg()
    n = kept = dropped = 0
    with args.dst.open("w") as out:
        for d in load_inspired(args.src, inspired.entity2id):
            turns = []
            for t in d.turns:
                movies = [m for m in t.movies if inspired.id2entity[m] in redial.entity2id]
                kept += len(movies)
                dropped += len(t.movies) - len(movies)
                turns.append(dataclasses.replace(t, movies=movies))
            d = dataclasses.replace(d, turns=turns)
            out.write(json.dumps(dump_own(d, lambda e: inspired.id2entity[e]), ensure_ascii=False) + "\n")
            n += 1
            if args.limit and n >= args.limit:
                break
    print(f"wrote {n} dialogues to {args.dst} ({kept} movie mentions kept, {dropped} not in the ReDial graph left "
          "out of `movies`)")


if __name__ == "__main__":
    main()
