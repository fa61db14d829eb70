"""The hand-written stance data (data/stance/people_genres.jsonl, issue 24): well-formed, consistent with the graph,
the linker and the catalogue's genre words, split by family, and large enough in every label."""
from __future__ import annotations

import importlib.util
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from ecrs.data.bundle import iter_jsonl
from ecrs.data.catalogue import GENRE_WORDS
from ecrs.data.kg import load_redial_kg
from ecrs.data.linking import build_redial_linker

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "stance" / "people_genres.jsonl"
SOURCE = ROOT / "data" / "stance" / "people_genres.txt"
MORE = ROOT / "data" / "stance" / "people_genres_more.txt"  # train-only families f200+, written after the split
STANCES = {"liked", "disliked", "wants", "avoid", "seen", "none"}
KINDS = {"person", "genre", "movie"}
GENRES = set(GENRE_WORDS.values())
GENRE_RE = [(re.compile(rf"\b(?:{pat})\b", re.I), genre) for pat, genre in GENRE_WORDS.items()]
ROW_KEYS = {"id", "family", "split", "text", "mentions"}
MENTION_KEYS = {"surface", "kind", "name", "stance", "start", "end"}


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return [row for _, row in iter_jsonl(DATA)]


@pytest.fixture(scope="module")
def kg():
    return load_redial_kg()


def _mentions(rows, *kinds):
    return [m for r in rows for m in r["mentions"] if m["kind"] in kinds]


def test_rows_are_well_formed(rows):
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    for r in rows:
        assert set(r) == ROW_KEYS, r["id"]
        assert re.fullmatch(r"f\d{3}", r["family"]) and re.fullmatch(rf"{r['family']}-\d+", r["id"]), r["id"]
        assert r["split"] in ("train", "test"), r["id"]
        assert r["text"] == r["text"].strip() and r["text"], r["id"]
        kinds = [m["kind"] for m in r["mentions"]]
        # a reaction to the bot's suggestion names nothing; every other message names a person or genre
        assert kinds == ["reply"] or ("reply" not in kinds and {"person", "genre"} & set(kinds)), r["id"]
        spans = sorted((m["start"], m["end"]) for m in r["mentions"])
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), f"{r['id']}: overlapping mentions"
        for m in r["mentions"]:
            extra = {"reply": set(), "genre": {"lexicon"}}.get(m["kind"], {"linked"})
            assert set(m) == MENTION_KEYS | extra, r["id"]
            assert r["text"][m["start"]:m["end"]] == m["surface"] and m["surface"] in r["text"], r["id"]
            assert m["kind"] in KINDS | {"reply"} and m["stance"] in STANCES, r["id"]
            assert m["stance"] != "seen" or m["kind"] in ("movie", "reply"), f"{r['id']}: 'seen' is for movies only"


def test_jsonl_is_built_from_the_hand_written_source(rows):
    spec = importlib.util.spec_from_file_location("build_stance_data", ROOT / "scripts" / "build_stance_data.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    source = [(f"{fam}-{i}", text, [(m["surface"], m["kind"], m["stance"], m["start"]) for m in ms])
              for fam, utterances in build.parse(SOURCE) + build.parse(MORE)
              for i, (text, ms) in enumerate(utterances, start=1)]
    built = [(r["id"], r["text"], [(m["surface"], m["kind"], m["stance"], m["start"]) for m in r["mentions"]])
             for r in rows]
    assert built == source, "data/stance/people_genres.jsonl is stale: run scripts/build_stance_data.py"


def test_genres_are_catalogue_genres_and_lexicon_flags_are_true(rows):
    for m in _mentions(rows, "genre"):
        assert m["name"] in GENRES, m
        assert m["lexicon"] == any(p.search(m["surface"]) for p, g in GENRE_RE if g == m["name"]), m
    lexicon = Counter(m["lexicon"] for m in _mentions(rows, "genre"))
    assert lexicon[False] >= 50  # words the genre list does not know are well represented


def test_people_and_movies_are_graph_entities_and_links_are_true(rows, kg):
    items = {kg.names[e] for e in kg.item_ids}
    names = set(kg.names)
    linker = build_redial_linker(kg)
    for r in rows:
        found = {(x.start, x.end): kg.names[x.entity_id] for x in linker.link(r["text"])}
        for m in r["mentions"]:
            if m["kind"] in ("genre", "reply"):
                continue
            assert m["name"] in names, f"{r['id']}: {m['name']!r} is not a graph name"
            assert (m["name"] in items) == (m["kind"] == "movie"), f"{r['id']}: {m['name']!r} kind"
            linked = found.get((m["start"], m["end"])) == m["name"]
            assert linked == m["linked"], f"{r['id']}: {m['surface']!r} linked={linked}, marked {m['linked']}"


def test_split_is_by_family(rows):
    split, size = defaultdict(set), Counter()
    for r in rows:
        split[r["family"]].add(r["split"])
        size[r["family"]] += 1
    assert all(len(s) == 1 for s in split.values()), "a family on both sides of the split"
    assert all(6 <= n <= 10 for n in size.values()), size
    first = {f: s for f, s in split.items() if int(f[1:]) < 200}  # the split was drawn over these only
    test = sum("test" in s for s in first.values())
    assert abs(test / len(first) - 0.3) < 0.05
    assert all(s == {"train"} for f, s in split.items() if int(f[1:]) >= 200)


def test_size_and_label_counts(rows):
    assert len(rows) >= 900
    people_genres = Counter(m["stance"] for m in _mentions(rows, "person", "genre"))
    for label in ("liked", "disliked", "wants", "avoid", "none"):
        assert people_genres[label] >= 120, (label, people_genres)
    for kind in ("person", "genre"):
        per_kind = Counter(m["stance"] for m in _mentions(rows, kind))
        assert all(per_kind[label] >= 40 for label in ("liked", "disliked", "wants", "avoid", "none")), per_kind
    movies = Counter(m["stance"] for m in _mentions(rows, "movie"))
    assert movies["seen"] >= 50 and len(movies) == len(STANCES), movies
    assert sum(any(m["kind"] == "movie" for m in r["mentions"]) for r in rows) >= len(rows) / 4
    assert len({m["name"] for m in _mentions(rows, "person")}) >= 80
    linked = [m["linked"] for m in _mentions(rows, "person", "movie")]
    assert sum(linked) / len(linked) >= 0.85
    cells = Counter((r["split"], m["kind"], m["stance"]) for r in rows for m in r["mentions"])
    for split in ("train", "test"):
        for kind in KINDS:
            for label in STANCES - ({"seen"} if kind != "movie" else set()):
                assert cells[split, kind, label] >= 5, (split, kind, label, cells[split, kind, label])
