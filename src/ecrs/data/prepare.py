"""`ecrs prepare`: raw dialogues -> linked, emotion-labelled turn samples, split into train / valid / test.

Deterministic and idempotent: the same inputs and config write byte-identical files; inputs are never edited.
Outputs (under `out_dir/<dataset>/`): `{train,valid,test}.jsonl.gz` samples, `dialogues.jsonl.gz` (every
dialogue with its linked entities and seeker-turn emotions, for the co-occurrence statistics and generation),
`manifest.json` (counts, config, input checksums), `config.yaml`.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from tqdm import tqdm

from ecrs.config import save_config
from ecrs.data.bundle import _sha256, bundled, data_dir
from ecrs.data.dialogues import Dialogue, load_inspired, load_own, load_redial
from ecrs.data.kg import (
    KnowledgeGraph,
    load_inspired_kg,
    load_redial_kg,
    redial_movie_entities,
    redial_titles,
)
from ecrs.data.samples import Sample, build_samples, questionnaire_emotions, split_train_valid, turn_emotions
from ecrs.emotions import BETA
from ecrs.errors import DataError


@dataclass
class PrepareConfig:
    dataset: Literal["redial", "inspired", "own"] = "redial"
    # Folder with the full official ReDial files (train_data.jsonl, test_data.jsonl); None = the bundled subset.
    redial_dir: str | None = None
    # Own-data JSONL files (docs/OWN_DATA.md), linked against the ReDial graph.
    own_train: str | None = None
    own_test: str | None = None
    # Bundled partial train dialogues with speaker turns (truncated after their last movie mention) add
    # recommendation samples; those without speaker segmentation cannot, and are left out.
    use_partial: bool = True
    valid_fraction: float = 0.1
    seed: int = 42
    max_context_entities: int = 32  # ECR keeps the last 32 linked entities
    beta: float = BETA
    emotion_model: str = "artifacts/emotion"  # trained by `ecrs train emotion`; "" = no emotion labels
    # "questionnaire" = an oracle for analysis only: the emotions attached to the movies the seeker answered in the
    # post-dialogue questionnaire become "like" / "negative" (`questionnaire_emotions`); write it to its own out_dir
    entity_emotions: Literal["classifier", "questionnaire"] = "classifier"
    out_dir: str = "artifacts/data"


@dataclass
class Prepared:
    kg: KnowledgeGraph
    splits: dict[str, list[Sample]]
    dialogues: dict[str, list[Dialogue]]
    stats: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- loading

def _redial_sources(cfg: PrepareConfig) -> dict[str, list[Path]]:
    if cfg.redial_dir:
        root = Path(cfg.redial_dir)
        files = {"train": [root / "train_data.jsonl"], "test": [root / "test_data.jsonl"]}
        for p in files["train"] + files["test"]:
            if not p.exists():
                raise DataError("official ReDial file not found (expected train_data.jsonl and test_data.jsonl)", p)
        return files
    train = [bundled("redial/train_complete.jsonl.gz"), bundled("redial/train_noid.jsonl.gz")]
    if cfg.use_partial:
        train.append(bundled("redial/train_partial.jsonl.gz"))
    return {"train": train, "test": [bundled("redial/test.jsonl.gz")]}


def load_raw(cfg: PrepareConfig) -> tuple[KnowledgeGraph, dict[str, list[Dialogue]], list[Path]]:
    """The dataset's graph and its train / test dialogues (unlinked), plus the input files read."""
    if cfg.dataset == "inspired":
        kg = load_inspired_kg()
        files = {s: [bundled(f"inspired/{s}_data_dbpedia.jsonl.gz")] for s in ("train", "valid", "test")}
        dialogues = {s: [d for p in ps for d in load_inspired(p, kg.entity2id)] for s, ps in files.items()}
        return kg, dialogues, [p for ps in files.values() for p in ps]
    kg = load_redial_kg()
    if cfg.dataset == "redial":
        files = _redial_sources(cfg)
        movie_entity, titles = redial_movie_entities(kg), redial_titles()
        dialogues = {s: [d for p in ps for d in load_redial(p, movie_entity, titles)] for s, ps in files.items()}
        return kg, dialogues, [p for ps in files.values() for p in ps]
    if not (cfg.own_train and cfg.own_test):
        raise DataError("dataset 'own' needs own_train and own_test (paths to own-data JSONL files)")
    resolve = movie_resolver(kg)
    files = {"train": [Path(cfg.own_train)], "test": [Path(cfg.own_test)]}
    dialogues = {s: [d for p in ps for d in load_own(p, resolve)] for s, ps in files.items()}
    return kg, dialogues, [p for ps in files.values() for p in ps]


def movie_resolver(kg: KnowledgeGraph):
    """`resolve(str) -> entity id | None` for own-data movies: a DBpedia URI of the graph, or a catalogue title
    with or without year (case-insensitive; a title shared by several movies resolves to the first in catalogue
    order, so give the year to be exact)."""
    from ecrs.data.catalogue import load_catalogue

    by_name: dict[str, int] = {}
    for movie in load_catalogue(kg).values():
        by_name.setdefault(movie.display.lower(), movie.entity)
        by_name.setdefault(movie.title.lower(), movie.entity)

    def resolve(name: str) -> int | None:
        if name in kg.entity2id:
            return kg.entity2id[name]
        return by_name.get(" ".join(name.split()).lower())

    return resolve


# ---------------------------------------------------------------- linking and emotions

def link_dialogues(dialogues: list[Dialogue], kg: KnowledgeGraph, desc: str) -> None:
    """Fill `turn.entities` with the live linker (ReDial `@id`s resolve exactly; names in free text by lookup)."""
    from ecrs.data.linking import build_redial_linker

    linker = build_redial_linker(kg)
    for d in tqdm(dialogues, desc=f"linking {desc}", unit="dlg", mininterval=2):
        for t in d.turns:
            t.entities = [m.entity_id for m in linker.link(t.raw)]
            # Gold movie ids the linker missed are still context entities.
            missing = [m for m in t.movies if m not in t.entities]
            t.entities += missing


class EmotionLabeller:
    """Seeker-turn emotion probabilities from the trained classifier, cached on disk by (model, context, text)."""

    def __init__(self, model_dir: Path, cache_path: Path):
        self.model_dir = model_dir
        self.cache_path = cache_path

    def label(self, dialogues: list[Dialogue]) -> list[dict[int, list[float]]]:
        from ecrs.models.emotion import EmotionClassifier

        model_id = hashlib.sha256(
            "".join(f"{f.name}:{_sha256(f)}" for f in sorted(self.model_dir.iterdir()) if f.is_file()).encode()
        ).hexdigest()
        cache: dict[str, list[float]] = {}
        if self.cache_path.exists():
            with gzip.open(self.cache_path, "rt") as f:
                for line in f:
                    k, v = line.rstrip("\n").split("\t")
                    cache[k] = json.loads(v)
        jobs: list[tuple[int, int, str, str, str]] = []
        for di, d in enumerate(dialogues):
            for k, t in enumerate(d.turns):
                if t.role == "seeker":
                    context = d.turns[k - 1].text if k > 0 and d.turns[k - 1].role == "recommender" else ""
                    key = hashlib.sha1(f"{model_id}\x00{context}\x00{t.text}".encode()).hexdigest()
                    jobs.append((di, k, key, t.text, context))
        todo = list({key: (text, ctx) for _, _, key, text, ctx in jobs if key not in cache}.items())
        if todo:
            model = EmotionClassifier.load(self.model_dir)
            batch = 256
            for i in tqdm(range(0, len(todo), batch), desc="labelling emotions", unit="batch", mininterval=2):
                chunk = todo[i : i + batch]
                probs = model.predict_proba([t for _, (t, _) in chunk], [c for _, (_, c) in chunk])
                for (key, _), p in zip(chunk, probs):
                    cache[key] = [round(float(x), 5) for x in p]
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            with gzip.open(self.cache_path, "wt") as f:
                for k in sorted(cache):
                    f.write(f"{k}\t{json.dumps(cache[k])}\n")
        out: list[dict[int, list[float]]] = [{} for _ in dialogues]
        for di, k, key, _, _ in jobs:
            out[di][k] = cache[key]
        return out


# ---------------------------------------------------------------- the whole step

def prepare(cfg: PrepareConfig, write: bool = True) -> Prepared:
    t0 = time.time()
    if cfg.entity_emotions == "questionnaire" and cfg.dataset == "inspired":
        raise DataError("entity_emotions: questionnaire needs seeker feedback on movies, which INSPIRED does not have")
    kg, raw, inputs = load_raw(cfg)
    if cfg.dataset != "inspired":
        for split, ds in raw.items():
            link_dialogues(ds, kg, split)
    if "valid" not in raw:
        train_ids, valid_ids = split_train_valid([d.id for d in raw["train"]], cfg.valid_fraction, cfg.seed)
        raw = {
            "train": [d for d in raw["train"] if d.id in train_ids],
            "valid": [d for d in raw["train"] if d.id in valid_ids],
            "test": raw["test"],
        }
    out = Path(cfg.out_dir) / cfg.dataset
    emotion_dir = Path(cfg.emotion_model) if cfg.emotion_model else None
    labelled = bool(emotion_dir and emotion_dir.exists())
    if emotion_dir and not labelled:
        raise DataError("emotion classifier not found; train it with `ecrs train emotion` "
                        "(or set emotion_model: '' to prepare without emotions)", emotion_dir)
    splits: dict[str, list[Sample]] = {}
    stats: dict[str, Any] = {"dataset": cfg.dataset, "emotions": labelled,
                             "entity_emotions": cfg.entity_emotions}
    for split, ds in raw.items():
        probs = EmotionLabeller(emotion_dir, out.parent / "emotion_cache.tsv.gz").label(ds) if labelled else [
            {} for _ in ds]
        samples = []
        for d, p in zip(ds, probs):
            override = questionnaire_emotions(d) if cfg.entity_emotions == "questionnaire" else None
            samples += build_samples(d, kg.item_set, turn_emotions(d, p, cfg.beta), cfg.max_context_entities,
                                     override)
        splits[split] = samples
        n_targets = sum(len(s.targets) for s in samples)
        fb = Counter(t.feedback for s in samples for t in s.targets)
        stats[split] = {
            "dialogues": len(ds),
            "samples": len(samples),
            "targets": n_targets,
            "targets_mentioned_before": sum(t.mentioned_before for s in samples for t in s.targets),
            "feedback": dict(sorted(fb.items())),
            "sources": dict(sorted(Counter(d.source.split(" ")[0] for d in ds).items())),
        }
        if labelled:
            stats[split]["seeker_turns_labelled"] = sum(len(p) for p in probs)
        if write:
            out.mkdir(parents=True, exist_ok=True)
            _write_jsonl_gz(out / f"{split}.jsonl.gz", (s.to_json() for s in samples))
            _write_jsonl_gz(out / f"{split}_dialogues.jsonl.gz", (
                {**asdict(d), "feedback": {str(k): v for k, v in d.feedback.items()},
                 "seeker_emotions": {str(k): v for k, v in p.items()}} for d, p in zip(ds, probs)))
    stats["seconds"] = round(time.time() - t0, 1)
    if write:
        save_config(cfg, out / "config.yaml")
        manifest = {
            "stats": stats,
            "inputs": {str(p.relative_to(data_dir()) if p.is_relative_to(data_dir()) else p): _sha256(p)
                       for p in inputs},
            "kg": {"entities": kg.num_entities, "relations": kg.num_relations, "items": len(kg.item_ids)},
        }
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return Prepared(kg=kg, splits=splits, dialogues=raw, stats=stats)


def _write_jsonl_gz(path: Path, rows) -> None:
    """gzip with mtime 0 so identical content gives identical bytes (idempotent re-runs)."""
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        with io.TextIOWrapper(gz, encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def load_samples(out_dir: str | Path, dataset: str, split: str) -> list[Sample]:
    """Samples written by `prepare`; a clear error naming the command when they are missing."""
    from ecrs.data.bundle import iter_jsonl

    path = Path(out_dir) / dataset / f"{split}.jsonl.gz"
    if not path.exists():
        raise DataError(f"prepared samples not found; run `ecrs prepare --set dataset={dataset}`", path)
    return [Sample.from_json(obj) for _, obj in iter_jsonl(path)]

