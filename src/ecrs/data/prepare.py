"""`ecrs prepare`: raw dialogues -> linked, emotion-labelled turn samples, split into train / valid / test.

Deterministic and idempotent: the same inputs and config write byte-identical files; inputs are never edited.
Outputs (under `out_dir/<dataset>/`): `{train,valid,test}.jsonl.gz` samples, `dialogues.jsonl.gz` (every
dialogue with its linked entities and seeker-turn emotions, for the co-occurrence statistics and generation),
`manifest.json` (counts, config, input checksums), `config.yaml`.
"""
from __future__ import annotations

import gzip
import io
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from tqdm import tqdm

from ecrs.config import save_config
from ecrs.data.bundle import _sha256, data_dir, iter_jsonl
from ecrs.data.datasets import DATASETS, get_dataset
from ecrs.data.dialogues import Dialogue
from ecrs.data.kg import KnowledgeGraph
from ecrs.data.linking import build_redial_linker
from ecrs.data.samples import (
    Emotions,
    Sample,
    build_samples,
    questionnaire_emotions,
    split_train_valid,
    turn_emotions,
)
from ecrs.emotions import BETA
from ecrs.errors import DataError


@dataclass
class PrepareConfig:
    dataset: str = "redial"  # a name of the dataset registry (ecrs.data.datasets)
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
    # "stance" = each entity a seeker turn names takes the emotion of what was said of it (liked / wanted: like;
    # disliked / avoided: negative; `ecrs train stance`), the others the utterance's (ECR's broadcast)
    entity_emotions: Literal["classifier", "stance", "questionnaire"] = "classifier"
    stance_model: str = "artifacts/stance"  # for entity_emotions: stance
    out_dir: str = "artifacts/data"

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset {self.dataset!r} is not one of {', '.join(DATASETS)}")


@dataclass
class Prepared:
    kg: KnowledgeGraph
    splits: dict[str, list[Sample]]
    dialogues: dict[str, list[Dialogue]]
    stats: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- loading

def load_raw(cfg: PrepareConfig) -> tuple[KnowledgeGraph, dict[str, list[Dialogue]], list[Path]]:
    """The dataset's graph and its train / test (/ valid) dialogues (unlinked), plus the input files read."""
    kg = get_dataset(cfg.dataset).load_kg()
    dialogues, files = get_dataset(cfg.dataset).load_dialogues(kg, cfg)
    return kg, dialogues, files


# ---------------------------------------------------------------- linking and emotions

def link_dialogues(dialogues: list[Dialogue], kg: KnowledgeGraph, desc: str) -> None:
    """Fill `turn.entities` with the live linker (ReDial `@id`s resolve exactly; names in free text by lookup)."""
    linker = build_redial_linker(kg)
    for d in tqdm(dialogues, desc=f"linking {desc}", unit="dlg", mininterval=2):
        for t in d.turns:
            t.entities = [m.entity_id for m in linker.link(t.raw)]
            # Gold movie ids the linker missed are still context entities.
            missing = [m for m in t.movies if m not in t.entities]
            t.entities += missing


# ---------------------------------------------------------------- the whole step

class Stancer(Protocol):
    """Per dialogue, per turn: {entity: emotion} for the entities whose stance says something (liked, disliked,
    wants, avoid), recommender-turn movies included when the seeker's next turn reacts to them
    (`ecrs.models.stance.EntityStancer`)."""

    def label(self, dialogues: list[Dialogue]) -> list[list[dict[int, Emotions]]]: ...


class Labeller(Protocol):
    """Seeker-turn emotion probabilities of whole dialogues: per dialogue, {turn index: 9 probabilities}
    (`ecrs.models.emotion.EmotionLabeller` with the trained classifier)."""

    def label(self, dialogues: list[Dialogue]) -> list[dict[int, list[float]]]: ...


def prepare(cfg: PrepareConfig, write: bool = True, labeller: Labeller | None = None,
            stancer: Stancer | None = None) -> Prepared:
    """The whole step; `labeller` labels the seeker turns' emotions (required unless `emotion_model` is ""),
    `stancer` the entities' own stances (required for entity_emotions: stance)."""
    t0 = time.time()
    dataset = get_dataset(cfg.dataset)
    if cfg.entity_emotions == "questionnaire" and not dataset.questionnaire:
        raise DataError(f"entity_emotions: questionnaire needs seeker feedback on movies, which {cfg.dataset} "
                        "does not have")
    if cfg.emotion_model and labeller is None:
        raise DataError("emotion classifier not found; train it with `ecrs train emotion` "
                        "(or set emotion_model: '' to prepare without emotions)", cfg.emotion_model)
    if cfg.entity_emotions == "stance" and stancer is None:
        raise DataError("stance classifier not found; train it with `ecrs train stance`", cfg.stance_model)
    kg, raw, inputs = load_raw(cfg)
    if not dataset.linked:
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
    labelled = labeller is not None
    splits: dict[str, list[Sample]] = {}
    stats: dict[str, Any] = {"dataset": cfg.dataset, "emotions": labelled,
                             "entity_emotions": cfg.entity_emotions}
    for split, ds in raw.items():
        probs = labeller.label(ds) if labeller is not None else [{} for _ in ds]
        own = stancer.label(ds) if stancer is not None and cfg.entity_emotions == "stance" else [None] * len(ds)
        samples = []
        for d, p, o in zip(ds, probs, own):
            override = questionnaire_emotions(d) if cfg.entity_emotions == "questionnaire" else None
            samples += build_samples(d, kg.item_set, turn_emotions(d, p, cfg.beta), cfg.max_context_entities,
                                     override, o)
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
    path = Path(out_dir) / dataset / f"{split}.jsonl.gz"
    if not path.exists():
        raise DataError(f"prepared samples not found; run `ecrs prepare --set dataset={dataset}`", path)
    return [Sample.from_json(obj) for _, obj in iter_jsonl(path)]

