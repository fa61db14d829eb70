"""The DBpedia knowledge graph around the movies (ECR_SPEC §3), in UniCRS's file format.

Entity and relation ids are assigned here and nowhere else: the order of the bundled `entity2id.json` /
`relation2id.json` (stable files, not a Python set). Edges are used in both directions with the same relation id,
as in UniCRS/ECR; the self-loop relation is kept so R-GCN keeps each node's own state.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from urllib.parse import unquote

import numpy as np

from ecrs.data.bundle import bundled, open_text, read_json
from ecrs.errors import DataError

_URI = re.compile(r"^<http://dbpedia\.org/resource/(.+)>$")
_SUFFIX = re.compile(r"__\w+__\d+$")  # UniCRS role suffixes such as "__PersonFunction__1"
TITLE_QUALIFIER = re.compile(r"\s*\(([^()]*)\)\s*$")  # "(1997 film)", "(TV series)", "(1997)"
YEAR_IN = re.compile(r"\b((?:18|19|20)\d\d)\b")


def entity_name(uri: str) -> str:
    """Human-readable name of a DBpedia URI: `<…/Romeo_and_Juliet_(1968_film)>` -> `Romeo and Juliet (1968 film)`."""
    m = _URI.match(uri)
    name = m.group(1) if m else uri.strip("<>")
    name = _SUFFIX.sub("", unquote(name))
    return name.replace("_", " ").strip()


@dataclass
class KnowledgeGraph:
    entity2id: dict[str, int]
    relation2id: dict[str, int]
    item_ids: list[int]  # entity ids of the movies: the ranking candidates
    triples: list[tuple[int, int, int]]  # (head, relation, tail) as stored (one direction)
    names: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.names = [""] * self.num_entities
        for uri, i in self.entity2id.items():
            self.names[i] = entity_name(uri)

    @property
    def num_entities(self) -> int:
        return max(self.entity2id.values()) + 1

    @property
    def num_relations(self) -> int:
        return max(self.relation2id.values()) + 1

    @cached_property
    def id2entity(self) -> list[str]:
        uris = [""] * self.num_entities
        for uri, i in self.entity2id.items():
            uris[i] = uri
        return uris

    @cached_property
    def id2relation(self) -> list[str]:
        rels = [""] * self.num_relations
        for uri, i in self.relation2id.items():
            rels[i] = uri
        return rels

    @cached_property
    def item_set(self) -> frozenset[int]:
        return frozenset(self.item_ids)

    def edge_tensors(self):
        """PyG inputs: `edge_index` (2, E) long and `edge_type` (E,) long, both directions of every triple."""
        import torch

        t = np.asarray(self.triples, dtype=np.int64).reshape(-1, 3)
        heads, rels, tails = t[:, 0], t[:, 1], t[:, 2]
        src = np.concatenate([heads, tails])
        dst = np.concatenate([tails, heads])
        typ = np.concatenate([rels, rels])
        # Self-loops appear once per direction in the raw file; dedup so each edge counts once in R-GCN's mean.
        e = np.unique(np.stack([src, dst, typ], axis=1), axis=0)
        return torch.from_numpy(e[:, :2].T.copy()), torch.from_numpy(e[:, 2].copy())

    def neighbours(self, entity: int) -> list[tuple[str, int]]:
        """(relation name, neighbour id) for every outgoing stored edge of `entity`, self-loops excluded."""
        return self._adjacency.get(entity, [])

    @cached_property
    def _adjacency(self) -> dict[int, list[tuple[str, int]]]:
        adj: dict[int, list[tuple[str, int]]] = {}
        for h, r, t in self.triples:
            rel = self.id2relation[r]
            if rel == "self_loop" or h == t:
                continue
            adj.setdefault(h, []).append((relation_name(rel), t))
        return adj


def split_title(name: str) -> tuple[str, int | None]:
    """"Titanic (1997)" / "Titanic (1997 film)" / "Titanic (film)" -> ("Titanic", 1997 or None)."""
    name = " ".join(name.split())
    m = TITLE_QUALIFIER.search(name)
    if not m or m.start() == 0:
        return name, None
    year = YEAR_IN.search(m.group(1))
    return name[:m.start()].strip(), int(year.group(1)) if year else None


def relation_name(uri: str) -> str:
    """`<http://dbpedia.org/ontology/musicComposer>` -> `musicComposer`."""
    return uri.strip("<>").rsplit("/", 1)[-1]


def load_kg_files(subkg: Path, entity2id: Path, relation2id: Path, item_ids: Path) -> KnowledgeGraph:
    """Load a graph from UniCRS-format files (`{head: [[rel, tail], ...]}`)."""
    e2i = read_json(entity2id)
    r2i = read_json(relation2id)
    items = read_json(item_ids)
    raw = read_json(subkg)
    n_ent = max(e2i.values()) + 1
    n_rel = max(r2i.values()) + 1
    triples: list[tuple[int, int, int]] = []
    for head, edges in sorted(raw.items(), key=lambda kv: int(kv[0])):
        h = int(head)
        for rel, tail in edges:
            if not (0 <= h < n_ent and 0 <= tail < n_ent and 0 <= rel < n_rel):
                raise DataError(f"edge ({h}, {rel}, {tail}) has an id out of range", subkg)
            triples.append((h, int(rel), int(tail)))
    return KnowledgeGraph(entity2id=e2i, relation2id=r2i, item_ids=sorted(int(i) for i in items), triples=triples)


def load_redial_kg() -> KnowledgeGraph:
    """The bundled DBpedia sub-graph of ReDial movies."""
    return load_kg_files(bundled("kg/dbpedia_subkg.json.gz"), bundled("kg/entity2id.json.gz"),
                         bundled("kg/relation2id.json.gz"), bundled("kg/item_ids.json.gz"))


def load_inspired_kg() -> KnowledgeGraph:
    """INSPIRED's own DBpedia sub-graph (UniCRS release)."""
    return load_kg_files(bundled("inspired/dbpedia_subkg.json.gz"), bundled("inspired/entity2id.json.gz"),
                         bundled("inspired/relation2id.json.gz"), bundled("inspired/item_ids.json.gz"))


def redial_titles() -> dict[str, str]:
    """ReDial movie id -> title (with year) from movies_with_mentions.csv."""
    with open_text(bundled("redial/movies_with_mentions.csv.gz")) as f:
        return {row["movieId"]: " ".join(row["movieName"].split()) for row in csv.DictReader(f)}


_TITLE_YEAR = re.compile(r"^(.*?)\s*\((?:(\d{4})\s*)?(?:[\w ]*\s)?(?:film|movie)?\)$")


def _title_year(name: str) -> tuple[str, str | None]:
    """`Alien (1979)` / DBpedia `Alien (1979 film)` / `Alien (film)` -> ("alien", "1979" | None)."""
    m = _TITLE_YEAR.match(name.strip())
    if m:
        return m.group(1).strip().lower(), m.group(2)
    return name.strip().lower(), None


def redial_movie_entities(kg: KnowledgeGraph, extend: bool = True) -> dict[str, int]:
    """ReDial movie id (the `@123` in text, as a string) -> graph entity id.

    First the bundled KGSF mapping (5,246 of 6,924 ids). With `extend`, an unmapped id whose title matches a graph
    movie exactly is mapped too: same title and same year, or the only graph movie of that title when the graph
    name carries no year (about 900 more ids; a title shared by several graph movies stays unmapped).
    """
    mapping = read_json(bundled("kg/redial_movie_to_dbpedia.json.gz"))
    out = {mid: kg.entity2id[uri] for mid, uri in mapping.items() if uri in kg.entity2id}
    if not extend:
        return out
    by_title: dict[str, list[tuple[int, str | None]]] = {}
    for e in kg.item_ids:
        title, year = _title_year(kg.names[e])
        by_title.setdefault(title, []).append((e, year))
    for mid, name in sorted(redial_titles().items()):
        if mid in out:
            continue
        title, year = _title_year(name)
        candidates = by_title.get(title, [])
        same_year = [e for e, y in candidates if year and y == year]
        if len(same_year) == 1:
            out[mid] = same_year[0]
        elif len(candidates) == 1 and candidates[0][1] is None:
            out[mid] = candidates[0][0]
    return out


def person_entities(kg: KnowledgeGraph) -> set[int]:
    """Entities that star in, direct or write a catalogue movie: the people a person can name."""
    return {o for e in kg.item_ids for r, o in kg.neighbours(e) if r in ("starring", "director", "writer")}
