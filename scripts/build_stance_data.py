"""Turn the hand-written stance source (data/stance/people_genres.txt) into data/stance/people_genres.jsonl.

The source holds every utterance as its author wrote it, with each mention marked in place:
    [Tom Hanks|p:liked]            person, stance; the name is what the linker resolves the span to
    [will ferel|p:disliked=Will Ferrell]  a surface the linker may miss: the graph name is given
    [scary movies|g:avoid=horror]  genre, stance, catalogue genre (a value of catalogue.GENRE_WORDS)
    [Inception|m:seen]             movie, stance
    [reply:seen] seen it           a whole message reacting to the bot's one suggestion and naming nothing
Families open with a line `== f001 <what the sentence idea is>`; the utterances under it are its variants.
This script writes nothing of the text itself: it strips the marks, records offsets, asks the project's linker
whether each person/movie span resolves (`linked`), asks the genre regex list whether it knows each genre surface
(`lexicon`), and assigns the split per family: families are grouped by their most frequent (kind, stance) pair
and, within each group, 30 % of them (sorted, then shuffled by random.Random(SEED)) go to test.

`people_genres_more.txt` (families f200 and up) was written after the test split was fixed, in the same format,
to teach phenomena the first source had too few of (several targets with different stances in one message, terse
dismissals, changes of mind): its families are all `train`, so the test split is unchanged.

Usage: PYTHONPATH=src python scripts/build_stance_data.py [--report] [--check FILE]
  --check FILE  parse and link-check FILE alone (its own family ids) and write nothing
"""
from __future__ import annotations

import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

from ecrs.data.catalogue import GENRE_WORDS
from ecrs.data.kg import load_redial_kg
from ecrs.data.linking import build_redial_linker

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "data" / "stance" / "people_genres.txt"
MORE = ROOT / "data" / "stance" / "people_genres_more.txt"  # train-only families, written after the split
TARGET = ROOT / "data" / "stance" / "people_genres.jsonl"
SEED = 24  # issue 24
TEST_FRACTION = 0.3
KINDS = {"p": "person", "g": "genre", "m": "movie"}
STANCES = ("liked", "disliked", "wants", "avoid", "seen", "none")
# The catalogue's genre regex list, compiled as `ecrs.data.catalogue` compiles it: (pattern, genre).
GENRE_RE = [(re.compile(rf"\b(?:{pat})\b", re.I), genre) for pat, genre in GENRE_WORDS.items()]
MARK = re.compile(r"\[([^\[\]|]+)\|([pgm]):([a-z]+)(?:=([^\]]+))?\]")
REPLY = re.compile(r"^\[reply:([a-z]+)\]\s+(.+)$")  # a reaction to the bot's one suggestion, naming nothing
FAMILY = re.compile(r"^== (f\d{3})\b(.*)$")


def parse(path: Path) -> list[tuple[str, list[tuple[str, list[dict]]]]]:
    """[(family id, [(plain text, mentions without link facts)])]."""
    families: list[tuple[str, list]] = []
    bad: list[str] = []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head = FAMILY.match(line)
        if head:
            if any(f == head.group(1) for f, _ in families):
                sys.exit(f"{path}:{lineno}: family {head.group(1)} twice")
            families.append((head.group(1), []))
            continue
        if not families:
            sys.exit(f"{path}:{lineno}: utterance before the first family line")
        reply = REPLY.match(line)
        if reply:
            if reply.group(1) not in STANCES or MARK.search(reply.group(2)):
                sys.exit(f"{path}:{lineno}: a reply line takes one stance of {STANCES} and names nothing else")
            families[-1][1].append((reply.group(2).strip(), [{"surface": "", "kind": "reply", "name": None,
                                                              "stance": reply.group(1), "start": 0, "end": 0}]))
            continue
        text, mentions, pos = "", [], 0
        for m in MARK.finditer(line):
            text += line[pos:m.start()]
            surface, kind, stance, name = m.group(1), KINDS[m.group(2)], m.group(3), m.group(4)
            if stance not in STANCES or (stance == "seen" and kind != "movie"):
                sys.exit(f"{path}:{lineno}: bad stance {stance!r} for a {kind}")
            if kind == "genre" and not name:
                sys.exit(f"{path}:{lineno}: genre {surface!r} needs =<catalogue genre>")
            mentions.append({"surface": surface, "kind": kind, "name": name, "stance": stance,
                             "start": len(text), "end": len(text) + len(surface)})
            text += surface
            pos = m.end()
        text += line[pos:]
        if "[" in text or "]" in text or "|" in text:
            sys.exit(f"{path}:{lineno}: malformed mark in {line!r}")
        if not any(x["kind"] in ("person", "genre") for x in mentions):
            bad.append(f"{path}:{lineno}: names no person or genre")
        families[-1][1].append((text, mentions))
    if bad:
        sys.exit("\n".join(bad))
    return families


def split_test(families: list[tuple[str, list[tuple[str, list[dict]]]]]) -> set[str]:
    """The test families: a seeded random 30 % of each group of families sharing their most frequent
    (kind, stance) pair, so that every label of every kind lands on both sides."""
    groups: dict[str, list[str]] = {}
    for fam, utterances in families:
        counts = Counter((m["kind"], m["stance"]) for _, mentions in utterances for m in mentions)
        dominant = min(counts, key=lambda ks: (-counts[ks], ks))  # most frequent, ties by name
        groups.setdefault(f"{dominant[0]}:{dominant[1]}", []).append(fam)
    rng = random.Random(SEED)
    test: set[str] = set()
    for key in sorted(groups):
        ids = sorted(groups[key])
        rng.shuffle(ids)
        test.update(ids[:round(TEST_FRACTION * len(ids))])
    return test


def main(report: bool, check: Path | None = None) -> None:
    if check is not None:
        families, test = parse(check), set()
    else:
        first = parse(SOURCE)
        more = parse(MORE) if MORE.exists() else []
        if overlap := {f for f, _ in first} & {f for f, _ in more}:
            sys.exit(f"{MORE}: family ids also in {SOURCE.name}: {sorted(overlap)}")
        families, test = first + more, split_test(first)
    kg = load_redial_kg()
    linker = build_redial_linker(kg)
    genre_vocab = {g for _, g in GENRE_RE}
    graph_names = set(kg.names)
    item_names = {kg.names[e] for e in kg.item_ids}
    rows, problems, extra, wrong = [], [], [], []
    for fam, utterances in families:
        if not 6 <= len(utterances) <= 10:
            problems.append(f"{fam}: {len(utterances)} utterances")
        for i, (text, mentions) in enumerate(utterances, start=1):
            found = {(x.start, x.end): x for x in linker.link(text)}
            covered = set()
            for men in mentions:
                span = (men["start"], men["end"])
                covered.add(span)
                if men["kind"] == "reply":  # what the linker or the genre words find in it is reported below
                    if found or any(p.search(text) for p, _ in GENRE_RE):
                        problems.append(f"{fam}-{i}: a reply names something: {text!r}")
                    continue
                if men["kind"] == "genre":
                    if men["name"] not in genre_vocab:
                        problems.append(f"{fam}-{i}: genre {men['name']!r} not in the catalogue vocabulary")
                    men["lexicon"] = any(p.search(men["surface"]) for p, g in GENRE_RE if g == men["name"])
                    continue
                hit = found.get(span)
                if hit is not None and men["name"] and men["name"] != kg.names[hit.entity_id]:
                    # the author names the entity meant; the linker resolves the span to another one
                    wrong.append(f"{fam}-{i}: {men['surface']!r} links to {kg.names[hit.entity_id]!r}, "
                                 f"meant {men['name']!r}")
                    hit = None
                if hit is not None:
                    linked_name = kg.names[hit.entity_id]
                    if hit.is_movie != (men["kind"] == "movie"):
                        problems.append(f"{fam}-{i}: {men['surface']!r} -> {linked_name!r} is_movie={hit.is_movie}")
                    men["name"], men["linked"] = linked_name, True
                elif men["name"]:
                    men["linked"] = False
                    if men["name"] not in graph_names:
                        problems.append(f"{fam}-{i}: {men['name']!r} is not a graph name")
                    elif (men["name"] in item_names) != (men["kind"] == "movie"):
                        problems.append(f"{fam}-{i}: {men['name']!r} is a graph item: {men['name'] in item_names}")
                else:
                    near = [(x.surface, kg.names[x.entity_id]) for x in found.values()
                            if x.start < men["end"] and men["start"] < x.end]
                    problems.append(f"{fam}-{i}: {men['surface']!r} not linked (overlaps {near}); give =Name")
            for (s, e), x in found.items():
                if not any(s < b and a < e for a, b in covered):
                    extra.append(f"{fam}-{i}: linker also found {x.surface!r} -> {kg.names[x.entity_id]!r}")
            for pattern, genre in GENRE_RE:
                for g in pattern.finditer(text):
                    if not any(g.start() < b and a < g.end() for a, b in covered):
                        extra.append(f"{fam}-{i}: genre regex also found {g.group()!r} -> {genre}")
            rows.append({"id": f"{fam}-{i}", "family": fam, "split": "test" if fam in test else "train",
                         "text": text, "mentions": [
                             {k: men[k] for k in ("surface", "kind", "name", "stance", "start", "end",
                                                  "linked", "lexicon") if k in men}
                             for men in mentions]})
    if report:
        print("\n".join(extra + wrong))
    if problems:
        print("\n".join(problems))
        sys.exit(f"{len(problems)} problems; nothing written")
    if check is not None:
        print(f"{check}: {len(rows)} utterances in {len(families)} families, no problems")
        return
    with TARGET.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} utterances in {len(families)} families ({len(test)} test families) to {TARGET}")


if __name__ == "__main__":
    args = sys.argv[1:]
    main("--report" in args, Path(args[args.index("--check") + 1]) if "--check" in args else None)
