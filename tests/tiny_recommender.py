"""A 30-entity graph and dialogues whose right answer is known by construction, for the recommender tests.

Entities 0..19 are movies, 20..29 people; person 20+i stars only in movie i (i < 10). In every sample the seeker
mentions person 20+i, and the recommended (liked) movie is movie i: the only graph neighbour of the person.
"""
from __future__ import annotations

import gzip
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ecrs.data.dialogues import Dialogue, Turn
from ecrs.data.kg import KnowledgeGraph
from ecrs.data.samples import Sample, Target
from ecrs.emotions import EMOTIONS
from ecrs.models.context_encoder import DIM, text_key
from ecrs.models.recommender import ModelConfig

N_MOVIES, N_PEOPLE = 20, 10
RELATIONS = {"<http://dbpedia.org/ontology/starring>": 0, "<http://dbpedia.org/ontology/director>": 1,
             "self_loop": 2}


def tiny_kg() -> KnowledgeGraph:
    e2i = {f"<http://dbpedia.org/resource/Movie_{i}>": i for i in range(N_MOVIES)}
    e2i |= {f"<http://dbpedia.org/resource/Person_{i}>": N_MOVIES + i for i in range(N_PEOPLE)}
    triples = [(i, 0, N_MOVIES + i) for i in range(N_PEOPLE)]  # movie i starring person 20+i
    triples += [(10 + i, 1, N_MOVIES + i) for i in range(N_PEOPLE)]  # movie 10+i directed by person 20+i
    triples += [(e, 2, e) for e in range(N_MOVIES + N_PEOPLE)]
    # Person 20+i is also the director of movie 10+i, but only movie i is ever the answer: the model must learn it.
    return KnowledgeGraph(entity2id=e2i, relation2id=RELATIONS, item_ids=list(range(N_MOVIES)), triples=triples)


def tiny_dialogue(i: int, k: int = 0) -> Dialogue:
    person, movie = N_MOVIES + i, i
    return Dialogue(
        id=f"d{i}-{k}",
        turns=[Turn("seeker", f"I love everything with person {i}", entities=[person]),
               Turn("recommender", f"Then watch movie {i}", movies=[movie], entities=[movie]),
               Turn("seeker", "thanks, sounds great")],
        feedback={movie: "liked"},
    )


def tiny_samples(repeats: int = 1) -> list[Sample]:
    out = []
    for k in range(repeats):
        for i in range(N_PEOPLE):
            d = tiny_dialogue(i, k)
            out.append(Sample(
                id=f"{d.id}/1", dialog_id=d.id, turn=1, context=[("seeker", d.turns[0].text)],
                entities=[N_MOVIES + i], entity_emotions=[[("like", 0.8), ("happy", 0.15)]], mentioned_items=[],
                targets=[Target(i, "liked" if k % 3 else "unknown", False)], response=d.turns[1].text,
                seeker_emotion=[("like", 0.8), ("happy", 0.15)]))
    return out


def tiny_model_config(**kw) -> ModelConfig:
    base = dict(d_kg=8, d_model=8, d_emotion=4, n_task_tokens=2, max_turns=4, max_entities=4, reader_layers=1,
                reader_heads=2, dropout=0.0)
    return ModelConfig(**{**base, **kw})


def seeker_probs(like: float = 0.8, happy: float = 0.15) -> list[float]:
    return [like if e == "like" else happy if e == "happy" else 0.0 for e in EMOTIONS]


def write_tiny_dataset(root: Path, repeats: int = 4) -> tuple[Path, Path, Path]:
    """Writes the graph (kg_dir), prepared splits (data_dir/redial) and a MiniLM cache of random vectors
    (cache_dir) for the texts, so `ecrs train recommender` runs end to end without the real data or MiniLM."""
    kg = tiny_kg()
    kg_dir, data_dir, cache_dir = root / "kg", root / "data", root / "cache"
    kg_dir.mkdir(parents=True)
    subkg: dict[str, list] = {}
    for h, r, t in kg.triples:
        subkg.setdefault(str(h), []).append([r, t])
    for name, obj in {"dbpedia_subkg.json": subkg, "entity2id.json": kg.entity2id,
                      "relation2id.json": kg.relation2id, "item_ids.json": kg.item_ids}.items():
        (kg_dir / name).write_text(json.dumps(obj))
    split_dir = data_dir / "redial"
    split_dir.mkdir(parents=True)
    samples = tiny_samples(repeats)
    for split in ("train", "valid", "test"):
        with gzip.open(split_dir / f"{split}.jsonl.gz", "wt") as f:
            for s in samples:
                f.write(json.dumps(s.to_json()) + "\n")
    with gzip.open(split_dir / "train_dialogues.jsonl.gz", "wt") as f:
        for k in range(repeats):
            for i in range(N_PEOPLE):
                d = tiny_dialogue(i, k)
                f.write(json.dumps({**asdict(d), "feedback": {str(m): v for m, v in d.feedback.items()},
                                    "seeker_emotions": {"0": seeker_probs(), "2": seeker_probs()}}) + "\n")
    texts = sorted({t for s in samples for _, t in s.context})
    cache_dir.mkdir()
    vecs = np.random.default_rng(0).normal(size=(len(texts), DIM)).astype(np.float16)
    np.savez(cache_dir / "turn_embeddings.npz", keys=np.array([text_key(t) for t in texts]), vectors=vecs)
    return kg_dir, data_dir, cache_dir
