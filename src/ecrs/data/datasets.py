"""The dataset registry: the one place a dataset name is turned into its graph and its dialogues.

    ds = get_dataset("inspired")
    kg = ds.load_kg()                                  # the item graph (its `item_ids` are the catalogue)
    dialogues, files = ds.load_dialogues(kg, sources)  # {"train": [...], "test": [...], ("valid")}, files read

`sources` carries the options of `ecrs prepare` that say where raw dialogues are (the official ReDial folder, own
JSONL files); every loader reads only its own. A trained run records its dataset (and an own graph folder, `kg_dir`),
and `load_kg(dataset, kg_dir)` rebuilds the same graph for it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ecrs.data.bundle import bundled
from ecrs.data.catalogue import load_catalogue
from ecrs.data.dialogues import Dialogue, load_inspired, load_own, load_redial
from ecrs.data.kg import (
    KnowledgeGraph,
    load_inspired_kg,
    load_kg_files,
    load_redial_kg,
    redial_movie_entities,
    redial_titles,
)
from ecrs.errors import DataError, EcrsError

__all__ = ["DATASETS", "Dataset", "Sources", "get_dataset", "load_kg", "movie_resolver"]

Splits = dict[str, list[Dialogue]]


class Sources(Protocol):
    """Where raw dialogues are, beyond the bundled files (`ecrs.data.prepare.PrepareConfig` has these keys)."""

    redial_dir: str | None
    use_partial: bool
    own_train: str | None
    own_test: str | None


@dataclass(frozen=True)
class Dataset:
    name: str
    load_kg: Callable[[], KnowledgeGraph]
    load_dialogues: Callable[[KnowledgeGraph, Sources], tuple[Splits, list[Path]]]
    linked: bool  # its dialogues come with their entities (INSPIRED); else the live linker finds them
    questionnaire: bool  # the seeker said liked / disliked / seen per movie after the dialogue (ReDial)


def _redial_files(src: Sources) -> dict[str, list[Path]]:
    if src.redial_dir:
        root = Path(src.redial_dir)
        files = {"train": [root / "train_data.jsonl"], "test": [root / "test_data.jsonl"]}
        for p in files["train"] + files["test"]:
            if not p.exists():
                raise DataError("official ReDial file not found (expected train_data.jsonl and test_data.jsonl)", p)
        return files
    train = [bundled("redial/train_complete.jsonl.gz"), bundled("redial/train_noid.jsonl.gz")]
    if src.use_partial:
        # Partial train dialogues with speaker turns (truncated after their last movie mention) add samples.
        train.append(bundled("redial/train_partial.jsonl.gz"))
    return {"train": train, "test": [bundled("redial/test.jsonl.gz")]}


def _load(files: dict[str, list[Path]], read: Callable[[Path], Iterable[Dialogue]]) -> tuple[Splits, list[Path]]:
    splits = {s: [d for p in ps for d in read(p)] for s, ps in files.items()}
    return splits, [p for ps in files.values() for p in ps]


def _redial_dialogues(kg: KnowledgeGraph, src: Sources) -> tuple[Splits, list[Path]]:
    movie_entity, titles = redial_movie_entities(kg), redial_titles()
    return _load(_redial_files(src), lambda p: load_redial(p, movie_entity, titles))


def _inspired_dialogues(kg: KnowledgeGraph, src: Sources) -> tuple[Splits, list[Path]]:
    files = {s: [bundled(f"inspired/{s}_data_dbpedia.jsonl.gz")] for s in ("train", "valid", "test")}
    return _load(files, lambda p: load_inspired(p, kg.entity2id))


def _own_dialogues(kg: KnowledgeGraph, src: Sources) -> tuple[Splits, list[Path]]:
    if not (src.own_train and src.own_test):
        raise DataError("dataset 'own' needs own_train and own_test (paths to own-data JSONL files)")
    resolve = movie_resolver(kg)
    return _load({"train": [Path(src.own_train)], "test": [Path(src.own_test)]}, lambda p: load_own(p, resolve))


def movie_resolver(kg: KnowledgeGraph) -> Callable[[str], int | None]:
    """`resolve(str) -> entity id | None` for own-data movies: a DBpedia URI of the graph, or a catalogue title
    with or without year (case-insensitive; a title shared by several movies resolves to the first in catalogue
    order, so give the year to be exact)."""
    by_name: dict[str, int] = {}
    for movie in load_catalogue(kg).values():
        by_name.setdefault(movie.display.lower(), movie.entity)
        by_name.setdefault(movie.title.lower(), movie.entity)

    def resolve(name: str) -> int | None:
        if name in kg.entity2id:
            return kg.entity2id[name]
        return by_name.get(" ".join(name.split()).lower())

    return resolve


DATASETS: dict[str, Dataset] = {
    "redial": Dataset("redial", load_redial_kg, _redial_dialogues, linked=False, questionnaire=True),
    "inspired": Dataset("inspired", load_inspired_kg, _inspired_dialogues, linked=True, questionnaire=False),
    # Own dialogues (docs/OWN_DATA.md) name movies of the bundled ReDial graph.
    "own": Dataset("own", load_redial_kg, _own_dialogues, linked=False, questionnaire=True),
}


def get_dataset(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise EcrsError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})") from None


def load_kg(dataset: str, kg_dir: str = "") -> KnowledgeGraph:
    """The graph of `dataset`, or of the UniCRS-format files in `kg_dir` (dbpedia_subkg.json, entity2id.json,
    relation2id.json, item_ids.json: an own catalogue, the tests' 30-entity graph) when given."""
    if kg_dir:
        d = Path(kg_dir)
        return load_kg_files(d / "dbpedia_subkg.json", d / "entity2id.json", d / "relation2id.json",
                             d / "item_ids.json")
    return get_dataset(dataset).load_kg()
